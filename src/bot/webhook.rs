//! The HTTP webhook bot: handoffd POSTs every customer message (and every handoff event) to
//! the bot's URL, signed with HMAC-SHA256 over the body, and takes either a synchronous
//! reply in the response or a `202 Accepted` followed by asynchronous replies through the
//! REST API. The wire format is documented in `docs/bots.md` with a JSON Schema.
//!
//! A bot is a remote service that can be slow, down or broken, so every call has a timeout,
//! safe failures are retried once (the `X-Handoffd-Delivery` id lets the bot drop the
//! duplicate), and a circuit breaker stops calling a bot that keeps failing: its turns fail
//! at once (the `bot_failure` trigger then decides) instead of each waiting for a timeout.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use parking_lot::Mutex;
use serde::Serialize;
use serde_json::Value;
use sha2::Sha256;

use super::{AfterHandoff, Bot, BotError, BotEvent, BotFuture, BotReply, BotTurn};
use crate::config::WebhookBotConfig;

/// The header carrying `sha256=<hex HMAC of the body>`.
pub const SIGNATURE_HEADER: &str = "X-Handoffd-Signature-256";
/// The header naming what the body is (`message`, `handoff.accepted`...).
pub const EVENT_HEADER: &str = "X-Handoffd-Event";
/// The header with the id of this delivery: the same on a retry.
pub const DELIVERY_HEADER: &str = "X-Handoffd-Delivery";

/// Signs a body the way the bot must check it: `sha256=` and the hex HMAC-SHA256 of the
/// exact bytes, keyed with the bot's secret.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(m) => m,
        // HMAC takes keys of any length; this arm is never taken.
        Err(_) => return String::new(),
    };
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Stops calling a bot after `threshold` failures in a row, for `open_for`; then lets one
/// call through to see whether it is back.
#[derive(Debug)]
pub(crate) struct Breaker {
    threshold: u32,
    open_for: Duration,
    failures: u32,
    open_until: Option<Instant>,
}

impl Breaker {
    pub(crate) fn new(threshold: u32, open_for: Duration) -> Breaker {
        Breaker {
            threshold: threshold.max(1),
            open_for,
            failures: 0,
            open_until: None,
        }
    }

    pub(crate) fn allows(&mut self, now: Instant) -> bool {
        match self.open_until {
            Some(until) if now < until => false,
            Some(_) => {
                // Half open: one call decides; a failure opens it again at once.
                self.open_until = None;
                self.failures = self.threshold.saturating_sub(1);
                true
            }
            None => true,
        }
    }

    pub(crate) fn record(&mut self, ok: bool, now: Instant) {
        if ok {
            self.failures = 0;
            self.open_until = None;
            return;
        }
        self.failures += 1;
        if self.failures >= self.threshold {
            self.open_until = Some(now + self.open_for);
        }
    }
}

/// A bot behind an HTTP endpoint.
pub struct WebhookBot {
    name: String,
    url: String,
    secret: Vec<u8>,
    after_handoff: AfterHandoff,
    http: reqwest::Client,
    breaker: Arc<Mutex<Breaker>>,
}

/// Why one call to the bot failed, and whether sending it again is safe.
struct CallError {
    message: String,
    retry: bool,
}

/// What the bot is sent for a customer message (`type` is `message`).
#[derive(Serialize, schemars::JsonSchema)]
pub struct MessageBody<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    /// The bot's name from the config.
    bot: &'a str,
    #[serde(flatten)]
    turn: &'a BotTurn,
}

impl WebhookBot {
    /// Builds the bot's HTTP client. The rustls crypto provider must be installed (the
    /// daemon does it at start) for `https` URLs.
    pub fn new(cfg: &WebhookBotConfig, timeout: Duration) -> Result<Self, BotError> {
        let http = super::http_client(timeout)?;
        Ok(WebhookBot {
            name: cfg.name.clone(),
            url: cfg.url.clone(),
            secret: cfg.secret.as_bytes().to_vec(),
            after_handoff: cfg.after_handoff,
            http,
            breaker: Arc::new(Mutex::new(Breaker::new(
                cfg.failure_threshold,
                Duration::from_secs(cfg.circuit_open_secs),
            ))),
        })
    }

    /// POSTs a signed body, retrying once when that is safe; `Ok(None)` for an empty
    /// accepted answer (202/204: replies come later through the API).
    fn post(&self, event: &'static str, delivery: String, body: Vec<u8>) -> CallFuture {
        let http = self.http.clone();
        let url = self.url.clone();
        let signature = sign(&self.secret, &body);
        let breaker = self.breaker.clone();
        Box::pin(async move {
            if !breaker.lock().allows(Instant::now()) {
                return Err(BotError::Failed(
                    "the bot failed repeatedly and is not called for now (circuit open)".into(),
                ));
            }
            let mut last = String::new();
            for attempt in 0..2 {
                if attempt > 0 {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                let res = call(&http, &url, event, &delivery, &signature, body.clone()).await;
                match res {
                    Ok(v) => {
                        breaker.lock().record(true, Instant::now());
                        return Ok(v);
                    }
                    Err(e) => {
                        last = e.message;
                        if !e.retry {
                            break;
                        }
                    }
                }
            }
            breaker.lock().record(false, Instant::now());
            Err(BotError::Failed(last))
        })
    }
}

type CallFuture =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Option<Value>, BotError>> + Send>>;

async fn call(
    http: &reqwest::Client,
    url: &str,
    event: &str,
    delivery: &str,
    signature: &str,
    body: Vec<u8>,
) -> Result<Option<Value>, CallError> {
    let res = http
        .post(url)
        .header("Content-Type", "application/json")
        .header(SIGNATURE_HEADER, signature)
        .header(EVENT_HEADER, event)
        .header(DELIVERY_HEADER, delivery)
        .body(body)
        .send()
        .await
        .map_err(|e| CallError {
            // Timeouts are not retried: the bot may still be working on it, and the turn's
            // own deadline is near anyway.
            retry: !e.is_timeout(),
            message: if e.is_timeout() {
                "the bot did not answer in time".into()
            } else {
                format!("cannot reach the bot: {e}")
            },
        })?;
    let status = res.status();
    if status.is_server_error() {
        return Err(CallError {
            message: format!("the bot answered {status}"),
            retry: true,
        });
    }
    if !status.is_success() {
        return Err(CallError {
            message: format!("the bot refused the request: {status}"),
            retry: false,
        });
    }
    if status == reqwest::StatusCode::ACCEPTED || status == reqwest::StatusCode::NO_CONTENT {
        return Ok(None);
    }
    let bytes = res.bytes().await.map_err(|e| CallError {
        message: format!("the bot's answer was cut off: {e}"),
        retry: false,
    })?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| CallError {
            message: format!("the bot's answer is not JSON: {e}"),
            retry: false,
        })
}

/// Reads a bot's answer; a malformed one is a bot failure, named precisely.
fn parse_reply(v: Option<Value>) -> Result<BotReply, BotError> {
    match v {
        None => Ok(BotReply {
            deferred: true,
            ..BotReply::default()
        }),
        Some(v) => {
            let reply: BotReply = serde_json::from_value(v)
                .map_err(|e| BotError::Failed(format!("malformed bot reply: {e}")))?;
            reply.validate().map_err(BotError::Failed)?;
            Ok(reply)
        }
    }
}

impl Bot for WebhookBot {
    fn name(&self) -> &str {
        &self.name
    }

    fn answer(&self, turn: BotTurn) -> BotFuture {
        let delivery = format!("{}:{}", turn.conversation_id, turn.message.seq);
        let body = serde_json::to_vec(&MessageBody {
            kind: "message",
            bot: &self.name,
            turn: &turn,
        });
        let call = match body {
            Ok(b) => self.post("message", delivery, b),
            Err(e) => return Box::pin(async move { Err(BotError::Failed(e.to_string())) }),
        };
        Box::pin(async move { parse_reply(call.await?) })
    }

    fn event(&self, event: BotEvent) -> BotFuture {
        let delivery = format!(
            "{}:{}:{}",
            event.conversation_id,
            event.kind.as_str(),
            event.at_ms
        );
        let kind = event.kind.as_str();
        let body = serde_json::to_vec(&EventBody {
            kind,
            bot: &self.name,
            event: &event,
        });
        let call = match body {
            Ok(b) => self.post(kind, delivery, b),
            Err(e) => return Box::pin(async move { Err(BotError::Failed(e.to_string())) }),
        };
        Box::pin(async move { parse_reply(call.await?) })
    }

    fn after_handoff(&self) -> AfterHandoff {
        self.after_handoff
    }
}

/// What the bot is sent for a handoff event (`type` is `handoff.accepted`,
/// `handoff.failed` or `handoff.completed`).
#[derive(Serialize, schemars::JsonSchema)]
pub struct EventBody<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    /// The bot's name from the config.
    bot: &'a str,
    #[serde(flatten)]
    event: &'a BotEvent,
}

/// The JSON Schemas of the webhook protocol, published under `docs/` (`handoffd schema
/// bot-message`, `bot-event`, `bot-reply`).
pub fn json_schema(name: &str) -> Option<serde_json::Value> {
    let schema = match name {
        "bot-message" => schemars::schema_for!(MessageBody<'static>),
        "bot-event" => schemars::schema_for!(EventBody<'static>),
        "bot-reply" => schemars::schema_for!(BotReply),
        _ => return None,
    };
    serde_json::to_value(schema).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_match_an_independent_hmac() {
        // HMAC-SHA256("key", "The quick brown fox jumps over the lazy dog"), RFC 4231 style
        // test vector widely published for this pair.
        let s = sign(b"key", b"The quick brown fox jumps over the lazy dog");
        assert_eq!(
            s,
            "sha256=f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
        );
    }

    #[test]
    fn the_breaker_opens_after_repeated_failures_and_tries_again_later() {
        let mut b = Breaker {
            threshold: 3,
            open_for: Duration::from_secs(10),
            failures: 0,
            open_until: None,
        };
        let t0 = Instant::now();
        for _ in 0..2 {
            assert!(b.allows(t0));
            b.record(false, t0);
        }
        assert!(b.allows(t0), "two failures are not enough");
        b.record(false, t0);
        assert!(!b.allows(t0 + Duration::from_secs(5)), "open");
        // After the pause one call goes through; its failure opens the breaker again.
        let later = t0 + Duration::from_secs(11);
        assert!(b.allows(later));
        b.record(false, later);
        assert!(!b.allows(later));
        // A success closes it.
        let much_later = later + Duration::from_secs(11);
        assert!(b.allows(much_later));
        b.record(true, much_later);
        b.record(false, much_later);
        assert!(b.allows(much_later));
    }

    #[test]
    fn replies_are_read_strictly() {
        let ok = parse_reply(Some(serde_json::json!({
            "messages": ["hello"], "confidence": 0.8, "intent": "greet"
        })))
        .expect("valid");
        assert_eq!(ok.messages, ["hello"]);
        assert!(!ok.deferred);
        assert!(parse_reply(None).expect("empty").deferred);
        let bad = parse_reply(Some(serde_json::json!({"messages": "hello"})));
        assert!(matches!(bad, Err(BotError::Failed(m)) if m.contains("malformed")));
        let out_of_range = parse_reply(Some(serde_json::json!({"confidence": 7})));
        assert!(out_of_range.is_err());
    }
}
