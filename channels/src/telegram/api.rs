//! A small Bot API client: JSON POSTs to `{base}/bot{token}/{method}`, Telegram's
//! `{"ok": ..., "result" | "error_code", "description", "parameters"}` envelope, and the
//! mapping of its errors to what the outbox must do. The token is part of every URL, so no
//! URL ever reaches a log or an error message.

use std::time::Duration;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::DeliveryReceipt;

/// A Bot API client for one bot; cheap to clone.
#[derive(Clone)]
pub struct BotApi {
    http: reqwest::Client,
    /// `{base}/bot{token}`: a secret, never logged.
    root: String,
    request_timeout: Duration,
}

/// Why a Bot API call did not succeed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ApiError {
    #[error("cannot reach the Bot API: {0}")]
    Network(String),
    #[error("Bot API error {code}: {description}")]
    Api {
        /// Telegram's `error_code` (an HTTP status), or the HTTP status when the body had none.
        code: u16,
        description: String,
        /// `parameters.retry_after`, in seconds.
        retry_after_secs: Option<u64>,
    },
    #[error("the Bot API answered something unexpected: {0}")]
    BadResponse(String),
}

/// Telegram's answer envelope.
#[derive(Debug, Deserialize)]
struct Envelope {
    ok: bool,
    #[serde(default)]
    result: Option<Value>,
    #[serde(default)]
    error_code: Option<u16>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    parameters: Option<ResponseParameters>,
}

#[derive(Debug, Deserialize)]
struct ResponseParameters {
    #[serde(default)]
    retry_after: Option<u64>,
}

/// What `sendMessage` returns that the daemon keeps.
#[derive(Debug, Deserialize)]
struct SentMessage {
    message_id: i64,
}

impl ApiError {
    /// What the outbox does about a failed send.
    pub fn receipt(&self) -> DeliveryReceipt {
        let reason = self.to_string();
        match self {
            ApiError::Network(_) => DeliveryReceipt::Retry {
                after_ms: 2_000,
                reason,
            },
            ApiError::Api {
                code: 429,
                retry_after_secs,
                ..
            } => DeliveryReceipt::Retry {
                after_ms: retry_after_secs.unwrap_or(5).saturating_mul(1000),
                reason,
            },
            ApiError::Api { code, .. } if *code >= 500 => DeliveryReceipt::Retry {
                after_ms: 2_000,
                reason,
            },
            // 403 "bot was blocked by the user", 400 "chat not found", 401 a revoked token...:
            // sending again cannot help.
            ApiError::Api { .. } => DeliveryReceipt::Failed { reason },
            // Telegram took the request but its answer is unreadable: sending again could
            // show the message twice, so it is reported rather than retried.
            ApiError::BadResponse(_) => DeliveryReceipt::Failed { reason },
        }
    }
}

impl BotApi {
    /// A client for the bot with `token` at `base_url`. The rustls crypto provider must be
    /// installed (see [`crate::meta::install_crypto_provider`]).
    pub fn new(base_url: &str, token: &str, request_timeout: Duration) -> Result<Self, ApiError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| ApiError::Network(e.without_url().to_string()))?;
        Ok(BotApi {
            http,
            root: format!("{}/bot{token}", base_url.trim_end_matches('/')),
            request_timeout,
        })
    }

    /// Calls `method` with a JSON body; `Ok(result)` when Telegram says `ok`.
    async fn call<T: DeserializeOwned>(
        &self,
        method: &str,
        body: &Value,
        timeout: Duration,
    ) -> Result<T, ApiError> {
        let response = self
            .http
            .post(format!("{}/{method}", self.root))
            .timeout(timeout)
            .json(body)
            .send()
            .await
            .map_err(|e| ApiError::Network(e.without_url().to_string()))?;
        let status = response.status().as_u16();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| ApiError::Network(e.without_url().to_string()))?;
        let envelope: Envelope = match serde_json::from_slice(&bytes) {
            Ok(e) => e,
            Err(_) if status >= 400 => {
                return Err(ApiError::Api {
                    code: status,
                    description: format!("HTTP {status} without a Bot API body"),
                    retry_after_secs: None,
                });
            }
            Err(e) => return Err(ApiError::BadResponse(format!("{method}: {e}"))),
        };
        if !envelope.ok {
            return Err(ApiError::Api {
                code: envelope.error_code.unwrap_or(status),
                description: envelope.description.unwrap_or_default(),
                retry_after_secs: envelope.parameters.and_then(|p| p.retry_after),
            });
        }
        let result = envelope.result.unwrap_or(Value::Null);
        serde_json::from_value(result).map_err(|e| ApiError::BadResponse(format!("{method}: {e}")))
    }

    /// Long-polls for updates after `offset`; passing an offset confirms every update
    /// before it to Telegram, which then never sends them again.
    pub async fn get_updates(
        &self,
        offset: Option<i64>,
        timeout_secs: u64,
    ) -> Result<Vec<Value>, ApiError> {
        let mut body = json!({
            "timeout": timeout_secs,
            "allowed_updates": ["message"],
        });
        if let Some(offset) = offset {
            body["offset"] = json!(offset);
        }
        // The HTTP request outlives the long poll by a margin.
        let timeout = Duration::from_secs(timeout_secs) + self.request_timeout;
        self.call("getUpdates", &body, timeout).await
    }

    /// Sends plain text (no `parse_mode`: nothing in it is markup, so nothing needs
    /// escaping) and returns Telegram's message id.
    pub async fn send_message(&self, chat_id: &str, text: &str) -> Result<String, ApiError> {
        let body = json!({"chat_id": chat_value(chat_id), "text": text});
        let sent: SentMessage = self
            .call("sendMessage", &body, self.request_timeout)
            .await?;
        Ok(sent.message_id.to_string())
    }

    /// Shows "typing..." in the chat for about five seconds (or until the next message).
    pub async fn send_typing(&self, chat_id: &str) -> Result<(), ApiError> {
        let body = json!({"chat_id": chat_value(chat_id), "action": "typing"});
        let _: Value = self
            .call("sendChatAction", &body, self.request_timeout)
            .await?;
        Ok(())
    }

    /// Tells Telegram where to POST updates, with the secret it must send along.
    pub async fn set_webhook(&self, url: &str, secret: &str) -> Result<(), ApiError> {
        let body = json!({
            "url": url,
            "secret_token": secret,
            "allowed_updates": ["message"],
        });
        let _: Value = self.call("setWebhook", &body, self.request_timeout).await?;
        Ok(())
    }
}

/// Chat ids are numbers; a key that is not one is sent as given (`@channelname`).
fn chat_value(chat_id: &str) -> Value {
    chat_id
        .parse::<i64>()
        .map_or_else(|_| json!(chat_id), |n| json!(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(code: u16, retry_after_secs: Option<u64>) -> ApiError {
        ApiError::Api {
            code,
            description: "x".into(),
            retry_after_secs,
        }
    }

    #[test]
    fn rate_limits_and_server_errors_are_retried_the_rest_is_final() {
        assert_eq!(
            api(429, Some(7)).receipt(),
            DeliveryReceipt::Retry {
                after_ms: 7000,
                reason: "Bot API error 429: x".into()
            }
        );
        assert!(matches!(
            api(429, None).receipt(),
            DeliveryReceipt::Retry { after_ms: 5000, .. }
        ));
        assert!(matches!(
            api(502, None).receipt(),
            DeliveryReceipt::Retry { .. }
        ));
        assert!(matches!(
            ApiError::Network("reset".into()).receipt(),
            DeliveryReceipt::Retry { .. }
        ));
        for code in [400, 401, 403] {
            assert!(matches!(
                api(code, None).receipt(),
                DeliveryReceipt::Failed { .. }
            ));
        }
        assert!(matches!(
            ApiError::BadResponse("?".into()).receipt(),
            DeliveryReceipt::Failed { .. }
        ));
    }
}
