//! The Graph API client: one JSON POST to `{base}/{version}/{account}/messages`, and the
//! mapping of Meta's errors to what the outbox must do: retry (rate limits, 5xx, network)
//! or give up and tell people (invalid recipient, window closed, token expired...).

use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use crate::DeliveryReceipt;

/// A Graph API client for one channel.
#[derive(Clone)]
pub struct GraphClient {
    http: reqwest::Client,
    base_url: String,
    api_version: String,
    access_token: String,
}

/// Why a send did not succeed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GraphError {
    #[error("cannot reach the Graph API: {0}")]
    Network(String),
    #[error("Graph API error {code} (HTTP {status}): {message}")]
    Api {
        status: u16,
        /// Meta's `error.code`; 0 when the body had none.
        code: i64,
        message: String,
        /// From a `Retry-After` header, when there was one.
        retry_after_ms: Option<u64>,
    },
    #[error("the Graph API answered something unexpected: {0}")]
    BadResponse(String),
}

/// Meta's error body: `{"error": {"message", "type", "code", "error_subcode", "fbtrace_id"}}`.
#[derive(Debug, Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Debug, Deserialize)]
struct ErrorDetail {
    #[serde(default)]
    message: String,
    #[serde(default)]
    code: i64,
    #[serde(default)]
    error_data: Option<Value>,
}

/// Error codes of Meta's throttling: retried after a longer wait.
const RATE_LIMIT_CODES: &[i64] = &[
    4,      // application request limit
    17,     // user request limit
    32,     // page request limit
    341,    // application limit
    613,    // calls to this API exceed the rate limit
    80007,  // WhatsApp Business Account rate limit
    130429, // WhatsApp throughput limit
    131048, // WhatsApp spam rate limit
    131056, // WhatsApp pair rate limit
];

/// Error codes Meta documents as temporary trouble on its side.
const TRANSIENT_CODES: &[i64] = &[
    1,      // unknown error, "retry later"
    2,      // service temporarily unavailable
    131000, // WhatsApp: something went wrong
    131016, // WhatsApp service unavailable
    133004, // WhatsApp server temporarily unavailable
];

impl GraphError {
    /// What the outbox does about it.
    pub fn receipt(&self) -> DeliveryReceipt {
        let reason = self.to_string();
        match self {
            GraphError::Network(_) => DeliveryReceipt::Retry {
                after_ms: 2_000,
                reason,
            },
            GraphError::Api {
                status,
                code,
                retry_after_ms,
                ..
            } => {
                if *status == 429 || RATE_LIMIT_CODES.contains(code) {
                    DeliveryReceipt::Retry {
                        after_ms: retry_after_ms.unwrap_or(30_000),
                        reason,
                    }
                } else if *status >= 500 || TRANSIENT_CODES.contains(code) {
                    DeliveryReceipt::Retry {
                        after_ms: retry_after_ms.unwrap_or(2_000),
                        reason,
                    }
                } else {
                    DeliveryReceipt::Failed { reason }
                }
            }
            // Meta took the request but we cannot read its answer: sending again could
            // duplicate the message, so it is reported rather than retried.
            GraphError::BadResponse(_) => DeliveryReceipt::Failed { reason },
        }
    }
}

impl GraphClient {
    /// A client with a request timeout. The rustls crypto provider must be installed
    /// (see [`super::install_crypto_provider`]).
    pub fn new(
        base_url: String,
        api_version: String,
        access_token: String,
        timeout: Duration,
    ) -> Result<Self, GraphError> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .build()
            .map_err(|e| GraphError::Network(format!("cannot build the HTTP client: {e}")))?;
        Ok(GraphClient {
            http,
            base_url,
            api_version,
            access_token,
        })
    }

    /// The URL of an account's `messages` edge.
    pub fn messages_url(&self, account: &str) -> String {
        format!("{}/{}/{account}/messages", self.base_url, self.api_version)
    }

    /// Sends one message; on success, the id Meta gave it (`wamid.…` or `mid`).
    pub async fn send_message(&self, account: &str, body: &Value) -> Result<String, GraphError> {
        let res = self
            .http
            .post(self.messages_url(account))
            .bearer_auth(&self.access_token)
            .json(body)
            .send()
            .await
            .map_err(|e| GraphError::Network(e.to_string()))?;
        let status = res.status().as_u16();
        let retry_after_ms = res
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(|s| s.saturating_mul(1000));
        let bytes = res
            .bytes()
            .await
            .map_err(|e| GraphError::Network(e.to_string()))?;
        if !(200..300).contains(&status) {
            return Err(api_error(status, &bytes, retry_after_ms));
        }
        let v: Value = serde_json::from_slice(&bytes)
            .map_err(|e| GraphError::BadResponse(format!("not JSON: {e}")))?;
        message_id(&v).ok_or_else(|| GraphError::BadResponse(format!("no message id in {v}")))
    }
}

fn api_error(status: u16, body: &[u8], retry_after_ms: Option<u64>) -> GraphError {
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(b) => {
            let mut message = b.error.message;
            if let Some(details) = b
                .error
                .error_data
                .as_ref()
                .and_then(|d| d.get("details"))
                .and_then(Value::as_str)
            {
                message = format!("{message} ({details})");
            }
            GraphError::Api {
                status,
                code: b.error.code,
                message,
                retry_after_ms,
            }
        }
        Err(_) => GraphError::Api {
            status,
            code: 0,
            message: String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned(),
            retry_after_ms,
        },
    }
}

/// WhatsApp answers `{"messages": [{"id": "wamid…"}]}`, Messenger and Instagram
/// `{"recipient_id", "message_id"}`.
fn message_id(v: &Value) -> Option<String> {
    v.get("messages")
        .and_then(|m| m.get(0))
        .and_then(|m| m.get("id"))
        .or_else(|| v.get("message_id"))
        .and_then(Value::as_str)
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(status: u16, code: i64) -> GraphError {
        GraphError::Api {
            status,
            code,
            message: "m".into(),
            retry_after_ms: None,
        }
    }

    fn is_retry(e: &GraphError) -> bool {
        matches!(e.receipt(), DeliveryReceipt::Retry { .. })
    }

    #[test]
    fn rate_limits_server_errors_and_network_trouble_are_retried() {
        for e in [
            api(400, 4),
            api(400, 80007),
            api(400, 130429),
            api(400, 131056),
            api(429, 0),
            api(500, 1),
            api(503, 0),
            api(500, 131000),
            GraphError::Network("refused".into()),
        ] {
            assert!(is_retry(&e), "{e:?} must be retried");
        }
        let DeliveryReceipt::Retry { after_ms, .. } = api(400, 613).receipt() else {
            panic!("rate limit must retry")
        };
        assert!(after_ms >= 30_000);
        let with_header = GraphError::Api {
            status: 429,
            code: 4,
            message: "m".into(),
            retry_after_ms: Some(7_000),
        };
        assert_eq!(
            with_header.receipt(),
            DeliveryReceipt::Retry {
                after_ms: 7_000,
                reason: with_header.to_string()
            }
        );
    }

    #[test]
    fn recipient_window_and_token_errors_are_final() {
        for e in [
            api(400, 131047), // re-engagement: outside the 24-hour window
            api(400, 131026), // undeliverable
            api(401, 190),    // access token expired
            api(400, 100),    // invalid parameter / recipient
            api(400, 10),     // Messenger: outside the allowed window
            api(400, 551),    // person unavailable
            api(404, 132001), // template does not exist
            GraphError::BadResponse("?".into()),
        ] {
            let DeliveryReceipt::Failed { reason } = e.receipt() else {
                panic!("{e:?} must be final")
            };
            assert!(!reason.is_empty());
        }
    }

    #[test]
    fn meta_error_bodies_are_read() {
        let body = br#"{"error":{"message":"Re-engagement message","type":"OAuthException","code":131047,"error_data":{"messaging_product":"whatsapp","details":"More than 24 hours have passed"},"fbtrace_id":"Az8or2yhqkZfEZ-_4Qn_Bam"}}"#;
        let e = api_error(400, body, None);
        assert_eq!(
            e,
            GraphError::Api {
                status: 400,
                code: 131047,
                message: "Re-engagement message (More than 24 hours have passed)".into(),
                retry_after_ms: None
            }
        );
        let e = api_error(502, b"<html>bad gateway</html>", None);
        assert!(matches!(
            e,
            GraphError::Api {
                code: 0,
                status: 502,
                ..
            }
        ));
        assert!(is_retry(&e));
    }

    #[test]
    fn message_ids_are_found_in_both_answer_shapes() {
        let wa = serde_json::json!({"messaging_product": "whatsapp", "contacts": [{"input": "1", "wa_id": "1"}], "messages": [{"id": "wamid.X"}]});
        assert_eq!(message_id(&wa).as_deref(), Some("wamid.X"));
        let fb = serde_json::json!({"recipient_id": "1", "message_id": "m_1"});
        assert_eq!(message_id(&fb).as_deref(), Some("m_1"));
        assert_eq!(message_id(&serde_json::json!({})), None);
    }
}
