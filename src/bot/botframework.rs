//! A Bot Framework bot, with handoffd as its channel: every customer message reaches the
//! bot's messaging endpoint as a `message` activity whose `serviceUrl` points back at
//! handoffd, and the bot answers the way Bot Framework bots do, by posting activities to the
//! Connector API (`/v3/conversations/{id}/activities`), which handoffd serves
//! (`src/http/botframework_api.rs`).
//!
//! Handoff follows Bot Framework's handoff protocol: the bot sends a `handoff.initiate`
//! event activity (context in `value`, its transcript as an attachment); handoffd answers
//! with `handoff.status` events whose `value.state` is `accepted`, `failed` (with a
//! `message`) or `completed`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde_json::{Value, json};

use super::webhook::Breaker;
use super::{AfterHandoff, Bot, BotError, BotEvent, BotEventKind, BotFuture, BotReply, BotTurn};
use crate::config::BotFrameworkConfig;

/// A bot reached through its Bot Framework messaging endpoint.
pub struct BotFrameworkBot {
    name: String,
    endpoint: String,
    secret: String,
    service_url: String,
    after_handoff: AfterHandoff,
    http: reqwest::Client,
    breaker: Arc<Mutex<Breaker>>,
}

impl BotFrameworkBot {
    pub fn new(cfg: &BotFrameworkConfig, timeout: Duration) -> Result<Self, BotError> {
        let http = super::http_client(timeout)?;
        Ok(BotFrameworkBot {
            name: cfg.name.clone(),
            endpoint: cfg.url.clone(),
            secret: cfg.secret.clone(),
            service_url: cfg.service_url.trim_end_matches('/').to_string(),
            after_handoff: cfg.after_handoff,
            http,
            breaker: Arc::new(Mutex::new(Breaker::new(
                cfg.failure_threshold,
                Duration::from_secs(cfg.circuit_open_secs),
            ))),
        })
    }

    /// The fields every activity to the bot carries.
    fn envelope(&self, conversation_id: &str, id: String, kind: &str) -> Value {
        json!({
            "type": kind,
            "id": id,
            "timestamp": rfc3339_now(),
            "serviceUrl": self.service_url,
            "channelId": "handoffd",
            "recipient": {"id": self.name, "role": "bot"},
            "conversation": {"id": conversation_id},
        })
    }

    /// Delivers an activity; the bot answers later through the Connector API, so any 2xx is
    /// a deferred reply.
    fn deliver(&self, activity: Value) -> BotFuture {
        let http = self.http.clone();
        let url = self.endpoint.clone();
        let secret = self.secret.clone();
        let breaker = self.breaker.clone();
        Box::pin(async move {
            if !breaker.lock().allows(Instant::now()) {
                return Err(BotError::Failed(
                    "the bot failed repeatedly and is not called for now (circuit open)".into(),
                ));
            }
            let res = http
                .post(&url)
                .bearer_auth(&secret)
                .json(&activity)
                .send()
                .await;
            let result = match res {
                Ok(r) if r.status().is_success() => Ok(BotReply {
                    deferred: true,
                    ..BotReply::default()
                }),
                Ok(r) => Err(format!("the bot answered {}", r.status())),
                Err(e) if e.is_timeout() => Err("the bot did not answer in time".to_string()),
                Err(e) => Err(format!("cannot reach the bot: {e}")),
            };
            breaker.lock().record(result.is_ok(), Instant::now());
            result.map_err(BotError::Failed)
        })
    }
}

/// Now as RFC 3339 in UTC, the timestamp format of activities.
fn rfc3339_now() -> String {
    let ms = handoffd_channels::now_ms();
    rfc3339(ms)
}

/// Formats milliseconds since the epoch as `YYYY-MM-DDTHH:MM:SS.mmmZ` (civil-from-days).
fn rfc3339(ms: u64) -> String {
    let secs = ms / 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms % 1000
    )
}

impl Bot for BotFrameworkBot {
    fn name(&self) -> &str {
        &self.name
    }

    fn answer(&self, turn: BotTurn) -> BotFuture {
        let mut a = self.envelope(
            &turn.conversation_id,
            format!("{}:{}", turn.conversation_id, turn.message.seq),
            "message",
        );
        a["text"] = json!(turn.message.text);
        a["from"] = json!({
            "id": turn.contact.channel_user_id,
            "name": turn.contact.name,
            "role": "user",
        });
        if let Some(l) = &turn.language {
            a["locale"] = json!(l);
        }
        a["channelData"] = json!({
            "channel": turn.channel,
            "sentiment": turn.message.sentiment,
            "resumedAfterHandoff": turn.resumed_after_handoff,
        });
        self.deliver(a)
    }

    fn event(&self, event: BotEvent) -> BotFuture {
        let state = match event.kind {
            BotEventKind::Accepted => "accepted",
            BotEventKind::Failed => "failed",
            BotEventKind::Completed => "completed",
        };
        let mut a = self.envelope(
            &event.conversation_id,
            format!(
                "{}:{}:{}",
                event.conversation_id,
                event.kind.as_str(),
                event.at_ms
            ),
            "event",
        );
        a["name"] = json!("handoff.status");
        let mut value = json!({ "state": state });
        if let Some(reason) = &event.reason {
            value["message"] = json!(reason);
        }
        a["value"] = value;
        a["from"] = json!({"id": "handoffd", "role": "channel"});
        if event.kind == BotEventKind::Completed {
            a["channelData"] = json!({
                "agentName": event.agent_name,
                "agentTranscript": event.agent_transcript,
                "humanStretchEndedAtSeq": event.human_stretch_ended_at_seq,
            });
        }
        self.deliver(a)
    }

    fn after_handoff(&self) -> AfterHandoff {
        // The bot speaks whenever it posts to the Connector API; nothing to send for it.
        self.after_handoff
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        // 2024-02-29T12:34:56.789Z, a leap day.
        assert_eq!(rfc3339(1_709_210_096_789), "2024-02-29T12:34:56.789Z");
        assert_eq!(rfc3339(1_798_761_599_000), "2026-12-31T23:59:59.000Z");
    }
}
