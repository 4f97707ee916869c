//! A small client for Discord's REST API (v10): the gateway address, sending messages, and
//! the typing indicator. Errors keep what decides a retry: the HTTP status, Discord's JSON
//! error `code`, and a rate limit's `retry_after` (from the body, in seconds as a float, or
//! the `Retry-After` header). The token only travels in the `Authorization` header, so no URL
//! or error message holds it.

use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::DeliveryReceipt;

/// Discord's API version this channel speaks.
pub const API_VERSION: u8 = 10;

/// A REST client for one bot; cheap to clone.
#[derive(Clone)]
pub struct RestApi {
    http: reqwest::Client,
    /// `{api_url}/api/v10`.
    root: String,
    /// `Bot {token}`: a secret, never logged.
    authorization: String,
    request_timeout: Duration,
}

/// Why a REST call did not succeed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ApiError {
    #[error("cannot reach Discord: {0}")]
    Network(String),
    #[error("Discord error {status}{}: {message}", code.map(|c| format!(" (code {c})")).unwrap_or_default())]
    Http {
        status: u16,
        /// Discord's JSON error code (50007 "Cannot send messages to this user"...).
        code: Option<u64>,
        message: String,
        /// For a 429: how long to wait, in seconds.
        retry_after_secs: Option<f64>,
    },
    #[error("Discord answered something unexpected: {0}")]
    BadResponse(String),
}

/// Discord's error body (`{"code", "message"}`, and `retry_after` on a 429).
#[derive(Debug, Default, Deserialize)]
struct ErrorBody {
    #[serde(default)]
    code: Option<u64>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    retry_after: Option<f64>,
}

#[derive(Debug, Deserialize)]
struct Gateway {
    url: String,
}

#[derive(Debug, Deserialize)]
struct CreatedMessage {
    id: String,
}

/// The longest rate-limit wait honoured; anything longer is capped (and retried again then).
const MAX_RETRY_AFTER: f64 = 300.0;

impl ApiError {
    /// True for what sending again later may cure: rate limits, server errors, the network.
    pub fn is_transient(&self) -> bool {
        match self {
            ApiError::Network(_) => true,
            ApiError::Http { status, .. } => *status == 429 || *status >= 500,
            ApiError::BadResponse(_) => false,
        }
    }

    /// How long to wait before the next attempt, when Discord said so.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ApiError::Http {
                retry_after_secs: Some(s),
                ..
            } if s.is_finite() && *s >= 0.0 => {
                Some(Duration::from_secs_f64(s.min(MAX_RETRY_AFTER)))
            }
            _ => None,
        }
    }

    /// What the outbox does about a send that failed (after the sender's own retries).
    pub fn receipt(&self) -> DeliveryReceipt {
        let reason = self.to_string();
        if self.is_transient() {
            let after_ms = self
                .retry_after()
                .map_or(2_000, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
            DeliveryReceipt::Retry { after_ms, reason }
        } else {
            // 403 Missing Access, 50007 the user does not accept DMs from the bot, 404 an
            // unknown channel, 401 a revoked token; or an unreadable answer to a message
            // Discord may have taken (sending again could show it twice).
            DeliveryReceipt::Failed { reason }
        }
    }
}

impl RestApi {
    /// A client for the bot with `token` at `base_url` (`https://discord.com` or a fake).
    /// Installs the process's rustls crypto provider if none is (reqwest needs one).
    pub fn new(base_url: &str, token: &str, request_timeout: Duration) -> Result<Self, ApiError> {
        crate::meta::install_crypto_provider();
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!(
                "DiscordBot (handoffd, ",
                env!("CARGO_PKG_VERSION"),
                ")"
            ))
            .build()
            .map_err(|e| ApiError::Network(e.without_url().to_string()))?;
        Ok(RestApi {
            http,
            root: format!("{}/api/v{API_VERSION}", base_url.trim_end_matches('/')),
            authorization: format!("Bot {token}"),
            request_timeout,
        })
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Vec<u8>, ApiError> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.root))
            .header("Authorization", &self.authorization)
            .timeout(self.request_timeout);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .map_err(|e| ApiError::Network(e.without_url().to_string()))?;
        let status = response.status().as_u16();
        let header_retry = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<f64>().ok());
        let bytes = response
            .bytes()
            .await
            .map_err(|e| ApiError::Network(e.without_url().to_string()))?;
        if (200..300).contains(&status) {
            return Ok(bytes.to_vec());
        }
        let parsed: ErrorBody = serde_json::from_slice(&bytes).unwrap_or_default();
        // The body's float is the precise one; the header is whole seconds rounded up.
        let retry_after_secs = if status == 429 {
            parsed.retry_after.or(header_retry)
        } else {
            None
        };
        Err(ApiError::Http {
            status,
            code: parsed.code,
            message: parsed.message.unwrap_or_else(|| format!("HTTP {status}")),
            retry_after_secs,
        })
    }

    /// The gateway's websocket address (`GET /gateway`), without query.
    pub async fn gateway_url(&self) -> Result<String, ApiError> {
        let bytes = self.call(reqwest::Method::GET, "/gateway", None).await?;
        let g: Gateway = serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::BadResponse(format!("gateway: {e}")))?;
        Ok(g.url)
    }

    /// Posts one message to a channel and returns Discord's message id. `nonce` with
    /// `enforce_nonce` makes Discord return the first message instead of posting a second
    /// when a retry repeats a send it had taken (a timeout after it was accepted).
    /// `mention` is the one user the message may ping; nothing else in it pings anyone.
    pub async fn create_message(
        &self,
        channel_id: &str,
        content: &str,
        nonce: &str,
        mention: Option<&str>,
    ) -> Result<String, ApiError> {
        let allowed = match mention {
            Some(user) => json!({"parse": [], "users": [user]}),
            None => json!({"parse": []}),
        };
        let body = json!({
            "content": content,
            "nonce": nonce,
            "enforce_nonce": true,
            "allowed_mentions": allowed,
        });
        let bytes = self
            .call(
                reqwest::Method::POST,
                &format!("/channels/{channel_id}/messages"),
                Some(&body),
            )
            .await?;
        let created: CreatedMessage = serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::BadResponse(format!("create message: {e}")))?;
        Ok(created.id)
    }

    /// Shows "<bot> is typing..." in a channel for about ten seconds.
    pub async fn trigger_typing(&self, channel_id: &str) -> Result<(), ApiError> {
        self.call(
            reqwest::Method::POST,
            &format!("/channels/{channel_id}/typing"),
            None,
        )
        .await
        .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http(status: u16, code: Option<u64>, retry: Option<f64>) -> ApiError {
        ApiError::Http {
            status,
            code,
            message: "x".into(),
            retry_after_secs: retry,
        }
    }

    #[test]
    fn rate_limits_server_errors_and_the_network_are_retried_the_rest_is_final() {
        assert_eq!(
            http(429, None, Some(1.5)).receipt(),
            DeliveryReceipt::Retry {
                after_ms: 1500,
                reason: "Discord error 429: x".into()
            }
        );
        assert_eq!(
            http(429, None, Some(1e9)).retry_after(),
            Some(Duration::from_secs(300))
        );
        assert_eq!(http(429, None, Some(f64::NAN)).retry_after(), None);
        assert!(matches!(
            http(502, None, None).receipt(),
            DeliveryReceipt::Retry { after_ms: 2000, .. }
        ));
        assert!(ApiError::Network("reset".into()).is_transient());
        for (status, code) in [
            (403, Some(50007)),
            (403, Some(50001)),
            (404, Some(10003)),
            (401, None),
        ] {
            assert!(matches!(
                http(status, code, None).receipt(),
                DeliveryReceipt::Failed { .. }
            ));
        }
        assert_eq!(
            http(403, Some(50007), None).to_string(),
            "Discord error 403 (code 50007): x"
        );
        assert!(!ApiError::BadResponse("?".into()).is_transient());
    }
}
