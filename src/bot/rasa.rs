//! Rasa as the bot: each customer message goes to Rasa's NLU (`POST /model/parse`) for the
//! intent and its confidence, then to the REST channel (`POST /webhooks/rest/webhook`) for
//! the replies. `nlu_fallback` (Rasa's own "I did not understand") counts as no confidence,
//! which the `low_confidence` trigger acts on. A handoff is asked for by a configured
//! intent, or by a custom payload `{"handoff": {"reason", "team", "priority"}}` in a reply.
//!
//! Handoff events reach Rasa the way Rasa takes external events: as a message that triggers
//! an intent directly (`/handoff_completed{"agent": "Alice"}`), so a story or rule can react
//! (ask for a rating, reset a form). Buttons become quick replies.

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde::Deserialize;
use serde_json::{Value, json};

use super::webhook::Breaker;
use super::{AfterHandoff, Bot, BotError, BotEvent, BotFuture, BotReply, BotTurn, HandoffRequest};
use crate::config::RasaBotConfig;

/// A Rasa server.
pub struct RasaBot {
    name: String,
    base: String,
    token: Option<String>,
    handoff_intents: Vec<String>,
    events_as_intents: bool,
    after_handoff: AfterHandoff,
    http: reqwest::Client,
    breaker: Arc<Mutex<Breaker>>,
}

/// What `/model/parse` says of a text (the parts handoffd reads).
#[derive(Debug, Deserialize)]
struct Parse {
    intent: Option<ParsedIntent>,
}

#[derive(Debug, Deserialize)]
struct ParsedIntent {
    name: Option<String>,
    #[serde(default)]
    confidence: f64,
}

/// One element of the REST channel's answer: a text, buttons, an image or a custom payload.
#[derive(Debug, Deserialize)]
struct RestMessage {
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    image: Option<String>,
    #[serde(default)]
    buttons: Vec<Button>,
    #[serde(default)]
    custom: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct Button {
    title: String,
}

impl RasaBot {
    pub fn new(cfg: &RasaBotConfig, timeout: Duration) -> Result<Self, BotError> {
        let http = super::http_client(timeout)?;
        Ok(RasaBot {
            name: cfg.name.clone(),
            base: cfg.url.trim_end_matches('/').to_string(),
            token: (!cfg.token.is_empty()).then(|| cfg.token.clone()),
            handoff_intents: cfg.handoff_intents.clone(),
            events_as_intents: cfg.events_as_intents,
            after_handoff: cfg.after_handoff,
            http,
            breaker: Arc::new(Mutex::new(Breaker::new(
                cfg.failure_threshold,
                Duration::from_secs(cfg.circuit_open_secs),
            ))),
        })
    }

    fn url(&self, path: &str) -> String {
        match &self.token {
            Some(t) => format!("{}{path}?token={t}", self.base),
            None => format!("{}{path}", self.base),
        }
    }

    /// Asks Rasa for the intent, then for the replies, and reads both into a `BotReply`.
    fn turn(&self, sender: String, text: String, parse: bool) -> BotFuture {
        let http = self.http.clone();
        let parse_url = self.url("/model/parse");
        let rest_url = self.url("/webhooks/rest/webhook");
        let handoff_intents = self.handoff_intents.clone();
        let breaker = self.breaker.clone();
        Box::pin(async move {
            if !breaker.lock().allows(Instant::now()) {
                return Err(BotError::Failed(
                    "Rasa failed repeatedly and is not called for now (circuit open)".into(),
                ));
            }
            let result = async {
                let intent = if parse {
                    let v = post_json(&http, &parse_url, &json!({ "text": text })).await?;
                    let p: Parse = serde_json::from_value(v)
                        .map_err(|e| format!("malformed /model/parse answer: {e}"))?;
                    p.intent
                } else {
                    None
                };
                let v = post_json(
                    &http,
                    &rest_url,
                    &json!({ "sender": sender, "message": text }),
                )
                .await?;
                let messages: Vec<RestMessage> = serde_json::from_value(v)
                    .map_err(|e| format!("malformed REST channel answer: {e}"))?;
                Ok::<_, String>(read_reply(intent, messages, &handoff_intents))
            }
            .await;
            breaker.lock().record(result.is_ok(), Instant::now());
            result.map_err(BotError::Failed)
        })
    }
}

async fn post_json(http: &reqwest::Client, url: &str, body: &Value) -> Result<Value, String> {
    let res = http.post(url).json(body).send().await.map_err(|e| {
        if e.is_timeout() {
            "Rasa did not answer in time".to_string()
        } else {
            format!("cannot reach Rasa: {e}")
        }
    })?;
    let status = res.status();
    if !status.is_success() {
        return Err(format!("Rasa answered {status}"));
    }
    res.json()
        .await
        .map_err(|e| format!("Rasa's answer is not JSON: {e}"))
}

/// Turns Rasa's intent and messages into a reply: texts (buttons listed after the text, an
/// image as its link), the confidence (none for `nlu_fallback`), and a handoff when the
/// intent is a handoff intent or a custom payload asks for one.
fn read_reply(
    intent: Option<ParsedIntent>,
    messages: Vec<RestMessage>,
    handoff_intents: &[String],
) -> BotReply {
    let mut reply = BotReply::default();
    if let Some(i) = intent {
        let name = i.name.unwrap_or_default();
        reply.confidence = Some(if name == "nlu_fallback" {
            0.0
        } else {
            i.confidence.clamp(0.0, 1.0)
        });
        if handoff_intents.contains(&name) {
            reply.handoff = Some(HandoffRequest {
                reason: format!("Rasa recognised the handoff intent `{name}`"),
                team: None,
                priority: None,
            });
        }
        if !name.is_empty() {
            reply.intent = Some(name);
        }
    }
    for m in messages {
        let mut text = m.text.unwrap_or_default();
        if !m.buttons.is_empty() {
            let titles: Vec<String> = m.buttons.iter().map(|b| b.title.clone()).collect();
            if text.trim().is_empty() {
                // Buttons with no text of their own: listed as the text.
                text = titles.join(" | ");
            } else {
                // The buttons of the last message that has them become quick replies.
                reply.quick_replies = titles;
            }
        }
        if let Some(img) = m.image {
            if !text.is_empty() {
                text.push('\n');
            }
            text.push_str(&img);
        }
        if !text.trim().is_empty() {
            reply.messages.push(text);
        }
        if let Some(h) = m
            .custom
            .as_ref()
            .and_then(|c| c.get("handoff"))
            .and_then(|h| serde_json::from_value::<HandoffRequest>(h.clone()).ok())
        {
            reply.handoff = Some(h);
        }
    }
    reply
}

impl Bot for RasaBot {
    fn name(&self) -> &str {
        &self.name
    }

    fn answer(&self, turn: BotTurn) -> BotFuture {
        // Rasa keeps its own tracker per sender: the conversation id keeps one per
        // conversation, across handoffs.
        self.turn(turn.conversation_id, turn.message.text, true)
    }

    fn event(&self, event: BotEvent) -> BotFuture {
        if !self.events_as_intents {
            return Box::pin(async { Ok(BotReply::default()) });
        }
        // `/intent{json}` triggers the intent directly, without NLU.
        let intent = event.kind.as_str().replace('.', "_");
        let entities = json!({ "agent": event.agent_name.clone().unwrap_or_default() });
        let text = format!("/{intent}{entities}");
        self.turn(event.conversation_id, text, false)
    }

    fn after_handoff(&self) -> AfterHandoff {
        self.after_handoff
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn intent(name: &str, confidence: f64) -> Option<ParsedIntent> {
        Some(ParsedIntent {
            name: Some(name.into()),
            confidence,
        })
    }

    fn msgs(v: Value) -> Vec<RestMessage> {
        serde_json::from_value(v).expect("rest messages")
    }

    #[test]
    fn texts_buttons_and_images_become_messages() {
        let r = read_reply(
            intent("greet", 0.97),
            msgs(json!([
                {"recipient_id": "c1", "text": "Hi! How can I help?"},
                {"recipient_id": "c1", "text": "Pick one:", "buttons": [
                    {"title": "Orders", "payload": "/orders"}, {"title": "Returns", "payload": "/returns"}]},
                {"recipient_id": "c1", "image": "https://example.com/map.png"}
            ])),
            &[],
        );
        assert_eq!(
            r.messages,
            [
                "Hi! How can I help?",
                "Pick one:",
                "https://example.com/map.png"
            ]
        );
        assert_eq!(r.quick_replies, ["Orders", "Returns"]);
        assert_eq!(r.confidence, Some(0.97));
        assert_eq!(r.intent.as_deref(), Some("greet"));
        assert!(r.handoff.is_none());
    }

    #[test]
    fn nlu_fallback_is_no_confidence_and_handoffs_come_from_intents_or_payloads() {
        let r = read_reply(intent("nlu_fallback", 0.3), msgs(json!([])), &[]);
        assert_eq!(r.confidence, Some(0.0));
        let r = read_reply(
            intent("human_handoff", 0.9),
            msgs(json!([{"text": "Getting someone."}])),
            &["human_handoff".to_string()],
        );
        assert!(r.handoff.is_some());
        let r = read_reply(
            intent("refund", 0.9),
            msgs(
                json!([{"custom": {"handoff": {"reason": "refunds", "team": "billing", "priority": 2}}}]),
            ),
            &[],
        );
        let h = r.handoff.expect("handoff from the payload");
        assert_eq!(h.team.as_deref(), Some("billing"));
        assert_eq!(h.priority, Some(2));
        assert!(r.messages.is_empty());
    }
}
