//! What Messenger and Instagram share: the `entry[].messaging[]` webhook events (messages,
//! echoes, deliveries, reads, postbacks) and the Send API body, with the HUMAN_AGENT tag for a
//! person's reply after the 24-hour window.

use serde::Deserialize;
use serde_json::{Value, json};

use super::{ConversationKey, Event, ParseError, SendError, split_text};
use crate::{
    Attachment, ChannelKind, Contact, DeliveryMode, DeliveryStatus, DeliveryTarget, DeliveryUpdate,
    Inbound, WindowRules,
};

const DAY_MS: u64 = 24 * 3_600_000;

/// The window on both: 24 hours for anyone, then 7 days for people with HUMAN_AGENT.
pub fn window_rules() -> WindowRules {
    WindowRules {
        free_form_ms: DAY_MS,
        human_agent_ms: Some(7 * DAY_MS),
        templates: Vec::new(),
    }
}

#[derive(Debug, Deserialize)]
struct Payload {
    object: String,
    #[serde(default)]
    entry: Vec<Entry>,
}

#[derive(Debug, Deserialize)]
struct Entry {
    #[serde(default)]
    messaging: Vec<Messaging>,
}

#[derive(Debug, Deserialize)]
struct Party {
    id: String,
}

#[derive(Debug, Deserialize)]
struct Messaging {
    sender: Party,
    recipient: Party,
    #[serde(default)]
    timestamp: Option<u64>,
    #[serde(default)]
    message: Option<Message>,
    #[serde(default)]
    delivery: Option<Delivery>,
    #[serde(default)]
    read: Option<Read>,
    #[serde(default)]
    postback: Option<Postback>,
}

#[derive(Debug, Deserialize)]
struct Message {
    mid: String,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    is_echo: bool,
    #[serde(default)]
    attachments: Vec<MediaAttachment>,
}

#[derive(Debug, Deserialize)]
struct MediaAttachment {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    payload: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct Delivery {
    #[serde(default)]
    mids: Vec<String>,
    #[serde(default)]
    watermark: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct Read {
    #[serde(default)]
    watermark: Option<u64>,
    #[serde(default)]
    mid: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Postback {
    #[serde(default)]
    mid: Option<String>,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    payload: Option<String>,
}

/// The events of one webhook POST (`object` must be `expected_object`), in order. Echoes of
/// the business's own messages are left out.
pub fn parse(
    body: &[u8],
    channel: ChannelKind,
    expected_object: &str,
) -> Result<Vec<Event>, ParseError> {
    let payload: Payload =
        serde_json::from_slice(body).map_err(|e| ParseError::Json(e.to_string()))?;
    if payload.object != expected_object {
        return Err(ParseError::WrongObject(payload.object));
    }
    let mut events = Vec::new();
    for ev in payload.entry.iter().flat_map(|e| e.messaging.iter()) {
        let at_ms = ev.timestamp.unwrap_or_else(crate::now_ms);
        if let Some(m) = &ev.message {
            if m.is_echo {
                tracing::debug!(%channel, mid = %m.mid, "echo of our own message ignored");
                continue;
            }
            events.push(Event::Message(customer_message(ev, channel, m, at_ms)));
        } else if let Some(p) = &ev.postback {
            let text = p
                .title
                .clone()
                .or_else(|| p.payload.clone())
                .unwrap_or_default();
            let mid = p
                .mid
                .clone()
                .unwrap_or_else(|| format!("postback:{}:{at_ms}", ev.sender.id));
            events.push(Event::Message(Inbound {
                channel,
                conversation_key: key(ev),
                contact: contact(ev),
                platform_message_id: mid,
                text,
                attachments: Vec::new(),
                sent_at_ms: at_ms,
                automated: false,
            }));
        } else if let Some(d) = &ev.delivery {
            for mid in &d.mids {
                events.push(Event::Status(DeliveryUpdate {
                    channel,
                    target: DeliveryTarget::Message {
                        platform_message_id: mid.clone(),
                    },
                    status: DeliveryStatus::Delivered,
                    at_ms: d.watermark.unwrap_or(at_ms),
                    error: None,
                }));
            }
        } else if let Some(r) = &ev.read {
            // Instagram names the message read; Messenger gives a watermark: everything sent
            // before it was read.
            let target = match (&r.mid, r.watermark) {
                (Some(mid), _) => DeliveryTarget::Message {
                    platform_message_id: mid.clone(),
                },
                (None, Some(w)) => DeliveryTarget::UpTo {
                    conversation_key: key(ev),
                    watermark_ms: w,
                },
                (None, None) => continue,
            };
            events.push(Event::Status(DeliveryUpdate {
                channel,
                target,
                status: DeliveryStatus::Read,
                at_ms,
                error: None,
            }));
        }
    }
    Ok(events)
}

/// The business account (Page or Instagram account) first, then the customer: replies go out
/// from the account that received the message.
fn key(ev: &Messaging) -> String {
    ConversationKey::new(&ev.recipient.id, &ev.sender.id).to_string()
}

fn contact(ev: &Messaging) -> Contact {
    Contact {
        name: None,
        channel_user_id: ev.sender.id.clone(),
        language: None,
        attributes: Default::default(),
    }
}

fn customer_message(ev: &Messaging, channel: ChannelKind, m: &Message, at_ms: u64) -> Inbound {
    let attachments = m
        .attachments
        .iter()
        .map(|a| {
            let payload = a.payload.as_ref();
            let id = payload
                .and_then(|p| p.get("url").or_else(|| p.get("attachment_id")))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            Attachment {
                id,
                kind: if a.kind.is_empty() {
                    "file".into()
                } else {
                    a.kind.clone()
                },
                name: payload
                    .and_then(|p| p.get("title"))
                    .and_then(Value::as_str)
                    .map(str::to_string),
                size: None,
            }
        })
        .collect();
    Inbound {
        channel,
        conversation_key: key(ev),
        contact: contact(ev),
        platform_message_id: m.mid.clone(),
        text: m.text.clone().unwrap_or_default(),
        attachments,
        sent_at_ms: at_ms,
        automated: false,
    }
}

/// Send API bodies for one message to `recipient` (several when the text is too long). A
/// person's reply after the standard window carries `MESSAGE_TAG` + `HUMAN_AGENT`.
pub fn send_bodies(
    recipient: &str,
    text: &str,
    mode: &DeliveryMode,
    max_chars: usize,
    max_bytes: usize,
) -> Result<Vec<Value>, SendError> {
    let tagged = match mode {
        DeliveryMode::Standard => false,
        DeliveryMode::HumanAgent => true,
        DeliveryMode::Template { .. } => {
            return Err(SendError(
                "templates are a WhatsApp feature; this channel cannot send them".into(),
            ));
        }
    };
    Ok(split_text(text, max_chars, max_bytes)
        .into_iter()
        .map(|chunk| {
            let mut body = json!({
                "recipient": {"id": recipient},
                "messaging_type": "RESPONSE",
                "message": {"text": chunk},
            });
            if tagged {
                body["messaging_type"] = json!("MESSAGE_TAG");
                body["tag"] = json!("HUMAN_AGENT");
            }
            body
        })
        .collect())
}
