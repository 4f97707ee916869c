//! WhatsApp Cloud API: `whatsapp_business_account` webhooks (`messages` and `statuses` under
//! `entry[].changes[].value`) and sends to `{phone_number_id}/messages`. Outside the 24-hour
//! window only an approved template may be sent; there is no human-agent tag.

use serde::Deserialize;
use serde_json::{Value, json};

use super::{ConversationKey, Event, ParseError, SendError, split_text};
use crate::{
    Attachment, ChannelKind, Contact, DeliveryMode, DeliveryStatus, DeliveryTarget, DeliveryUpdate,
    Inbound, TemplateSpec, WindowRules,
};

/// Longest text body WhatsApp accepts, in characters.
pub const MAX_TEXT_CHARS: usize = 4096;

const DAY_MS: u64 = 24 * 3_600_000;

/// WhatsApp's window: 24 hours free-form, then templates only.
pub fn window_rules(templates: Vec<TemplateSpec>) -> WindowRules {
    WindowRules {
        free_form_ms: DAY_MS,
        human_agent_ms: None,
        templates,
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
    changes: Vec<Change>,
}

#[derive(Debug, Deserialize)]
struct Change {
    #[serde(default)]
    field: String,
    #[serde(default)]
    value: ChangeValue,
}

#[derive(Debug, Default, Deserialize)]
struct ChangeValue {
    #[serde(default)]
    metadata: Option<Metadata>,
    #[serde(default)]
    contacts: Vec<WaContact>,
    #[serde(default)]
    messages: Vec<Value>,
    #[serde(default)]
    statuses: Vec<Status>,
}

#[derive(Debug, Deserialize)]
struct Metadata {
    phone_number_id: String,
}

#[derive(Debug, Deserialize)]
struct WaContact {
    #[serde(default)]
    wa_id: String,
    #[serde(default)]
    profile: Option<Profile>,
}

#[derive(Debug, Deserialize)]
struct Profile {
    #[serde(default)]
    name: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Status {
    id: String,
    status: String,
    #[serde(default)]
    timestamp: Option<String>,
    #[serde(default)]
    errors: Vec<Value>,
}

/// The events of one webhook POST, in order.
pub fn parse(body: &[u8]) -> Result<Vec<Event>, ParseError> {
    let payload: Payload =
        serde_json::from_slice(body).map_err(|e| ParseError::Json(e.to_string()))?;
    if payload.object != "whatsapp_business_account" {
        return Err(ParseError::WrongObject(payload.object));
    }
    let mut events = Vec::new();
    for change in payload.entry.iter().flat_map(|e| e.changes.iter()) {
        if change.field != "messages" {
            continue;
        }
        let v = &change.value;
        let Some(meta) = &v.metadata else {
            continue;
        };
        for m in &v.messages {
            events.push(Event::Message(inbound(
                &meta.phone_number_id,
                &v.contacts,
                m,
            )?));
        }
        for s in &v.statuses {
            if let Some(update) = status(s) {
                events.push(Event::Status(update));
            }
        }
    }
    Ok(events)
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter()
        .try_fold(v, |v, k| v.get(*k))
        .and_then(Value::as_str)
}

fn seconds_to_ms(ts: Option<&str>) -> u64 {
    ts.and_then(|t| t.parse::<u64>().ok())
        .map_or_else(crate::now_ms, |s| s.saturating_mul(1000))
}

fn inbound(
    phone_number_id: &str,
    contacts: &[WaContact],
    m: &Value,
) -> Result<Inbound, ParseError> {
    let from = str_at(m, &["from"]).ok_or(ParseError::Missing("messages[].from"))?;
    let id = str_at(m, &["id"]).ok_or(ParseError::Missing("messages[].id"))?;
    let kind = str_at(m, &["type"]).unwrap_or("unknown");
    let name = contacts
        .iter()
        .find(|c| c.wa_id == from)
        .and_then(|c| c.profile.as_ref())
        .and_then(|p| p.name.clone());
    let mut attachments = Vec::new();
    let text = match kind {
        "text" => str_at(m, &["text", "body"]).unwrap_or_default().to_string(),
        "image" | "video" | "audio" | "document" | "sticker" => {
            let media = &m[kind];
            attachments.push(Attachment {
                id: str_at(media, &["id"]).unwrap_or_default().to_string(),
                kind: str_at(media, &["mime_type"]).unwrap_or(kind).to_string(),
                name: str_at(media, &["filename"]).map(str::to_string),
                size: None,
            });
            str_at(media, &["caption"]).unwrap_or_default().to_string()
        }
        "location" => {
            let l = &m["location"];
            format!(
                "[location] {} {}",
                l.get("latitude").map(Value::to_string).unwrap_or_default(),
                l.get("longitude").map(Value::to_string).unwrap_or_default()
            )
        }
        "button" => str_at(m, &["button", "text"])
            .unwrap_or_default()
            .to_string(),
        "interactive" => str_at(m, &["interactive", "button_reply", "title"])
            .or_else(|| str_at(m, &["interactive", "list_reply", "title"]))
            .unwrap_or_default()
            .to_string(),
        "reaction" => format!(
            "[reaction] {}",
            str_at(m, &["reaction", "emoji"]).unwrap_or_default()
        ),
        other => format!("[unsupported WhatsApp message type: {other}]"),
    };
    Ok(Inbound {
        channel: ChannelKind::Whatsapp,
        conversation_key: ConversationKey::new(phone_number_id, from).to_string(),
        contact: Contact {
            name,
            channel_user_id: from.to_string(),
            language: None,
            attributes: Default::default(),
        },
        platform_message_id: id.to_string(),
        text,
        attachments,
        sent_at_ms: seconds_to_ms(str_at(m, &["timestamp"])),
        automated: false,
    })
}

fn status(s: &Status) -> Option<DeliveryUpdate> {
    let status = match s.status.as_str() {
        "sent" => DeliveryStatus::Sent,
        "delivered" => DeliveryStatus::Delivered,
        "read" => DeliveryStatus::Read,
        "failed" => DeliveryStatus::Failed,
        _ => return None,
    };
    let error = s.errors.first().map(|e| {
        format!(
            "WhatsApp error {}: {}",
            e.get("code").map(Value::to_string).unwrap_or_default(),
            str_at(e, &["title"])
                .or_else(|| str_at(e, &["message"]))
                .unwrap_or("unknown")
        )
    });
    Some(DeliveryUpdate {
        channel: ChannelKind::Whatsapp,
        target: DeliveryTarget::Message {
            platform_message_id: s.id.clone(),
        },
        status,
        at_ms: seconds_to_ms(s.timestamp.as_deref()),
        error,
    })
}

/// The request bodies for one message to `to` (several when a text is too long).
pub fn send_bodies(to: &str, text: &str, mode: &DeliveryMode) -> Result<Vec<Value>, SendError> {
    match mode {
        DeliveryMode::Standard => Ok(split_text(text, MAX_TEXT_CHARS, usize::MAX)
            .into_iter()
            .map(|chunk| {
                json!({
                    "messaging_product": "whatsapp",
                    "recipient_type": "individual",
                    "to": to,
                    "type": "text",
                    "text": {"preview_url": false, "body": chunk},
                })
            })
            .collect()),
        DeliveryMode::Template {
            name,
            language,
            params,
        } => {
            let mut template = json!({"name": name, "language": {"code": language}});
            if !params.is_empty() {
                let parameters: Vec<Value> = params
                    .iter()
                    .map(|p| json!({"type": "text", "text": p}))
                    .collect();
                template["components"] = json!([{"type": "body", "parameters": parameters}]);
            }
            Ok(vec![json!({
                "messaging_product": "whatsapp",
                "recipient_type": "individual",
                "to": to,
                "type": "template",
                "template": template,
            })])
        }
        DeliveryMode::HumanAgent => Err(SendError(
            "WhatsApp has no human agent tag: outside the 24-hour window only a template can be sent"
                .into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Meta's sample inbound text message.
    pub const TEXT: &str = r#"{"object":"whatsapp_business_account","entry":[{"id":"8856996819413533","changes":[{"value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"16505553333","phone_number_id":"27681414235104944"},"contacts":[{"profile":{"name":"Kerry Fisher"},"wa_id":"16315551234"}],"messages":[{"from":"16315551234","id":"wamid.ABGGFlCGg0cvAgo-sJQh43L5Pe4W","timestamp":"1603059201","text":{"body":"Hello this is an answer"},"type":"text"}]},"field":"messages"}]}]}"#;

    #[test]
    fn the_sample_text_message_becomes_an_inbound_with_the_contact_name() {
        let events = parse(TEXT.as_bytes()).expect("parse");
        let [Event::Message(m)] = events.as_slice() else {
            panic!("one message expected: {events:?}")
        };
        assert_eq!(m.channel, ChannelKind::Whatsapp);
        assert_eq!(m.conversation_key, "27681414235104944:16315551234");
        assert_eq!(m.contact.name.as_deref(), Some("Kerry Fisher"));
        assert_eq!(m.contact.channel_user_id, "16315551234");
        assert_eq!(m.platform_message_id, "wamid.ABGGFlCGg0cvAgo-sJQh43L5Pe4W");
        assert_eq!(m.text, "Hello this is an answer");
        assert_eq!(m.sent_at_ms, 1_603_059_201_000);
    }

    #[test]
    fn media_keeps_its_id_type_and_caption() {
        let body = r#"{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages","value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"1","phone_number_id":"PN"},"contacts":[{"profile":{"name":"K"},"wa_id":"C"}],"messages":[{"from":"C","id":"wamid.IMG","timestamp":"1603059201","type":"image","image":{"caption":"my receipt","mime_type":"image/jpeg","sha256":"abc","id":"1479537139650973"}},{"from":"C","id":"wamid.DOC","timestamp":"1603059202","type":"document","document":{"filename":"invoice.pdf","mime_type":"application/pdf","id":"9"}}]}}]}]}"#;
        let events = parse(body.as_bytes()).expect("parse");
        let [Event::Message(img), Event::Message(doc)] = events.as_slice() else {
            panic!("two messages expected: {events:?}")
        };
        assert_eq!(img.text, "my receipt");
        assert_eq!(img.attachments[0].id, "1479537139650973");
        assert_eq!(img.attachments[0].kind, "image/jpeg");
        assert_eq!(doc.attachments[0].name.as_deref(), Some("invoice.pdf"));
        assert_eq!(doc.text, "");
    }

    #[test]
    fn statuses_become_delivery_updates() {
        let body = r#"{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages","value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"1","phone_number_id":"PN"},"statuses":[{"id":"wamid.OUT","status":"read","timestamp":"1603059300","recipient_id":"C"},{"id":"wamid.BAD","status":"failed","timestamp":"1603059301","recipient_id":"C","errors":[{"code":131047,"title":"Re-engagement message"}]}]}}]}]}"#;
        let events = parse(body.as_bytes()).expect("parse");
        let [Event::Status(read), Event::Status(failed)] = events.as_slice() else {
            panic!("two statuses expected: {events:?}")
        };
        assert_eq!(read.status, DeliveryStatus::Read);
        assert_eq!(
            read.target,
            DeliveryTarget::Message {
                platform_message_id: "wamid.OUT".into()
            }
        );
        assert_eq!(read.at_ms, 1_603_059_300_000);
        assert_eq!(failed.status, DeliveryStatus::Failed);
        assert!(
            failed
                .error
                .as_deref()
                .is_some_and(|e| e.contains("131047"))
        );
    }

    #[test]
    fn other_objects_and_broken_json_are_errors() {
        assert!(matches!(
            parse(br#"{"object":"page","entry":[]}"#),
            Err(ParseError::WrongObject(_))
        ));
        assert!(matches!(parse(b"{"), Err(ParseError::Json(_))));
        let no_id = r#"{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"messages","value":{"metadata":{"phone_number_id":"PN"},"messages":[{"from":"C","type":"text","text":{"body":"x"}}]}}]}]}"#;
        assert!(matches!(
            parse(no_id.as_bytes()),
            Err(ParseError::Missing(_))
        ));
    }

    #[test]
    fn texts_and_templates_are_sent_in_meta_format() {
        let bodies = send_bodies("16315551234", "hi", &DeliveryMode::Standard).expect("text");
        assert_eq!(
            bodies,
            vec![
                json!({"messaging_product": "whatsapp", "recipient_type": "individual", "to": "16315551234", "type": "text", "text": {"preview_url": false, "body": "hi"}})
            ]
        );
        let mode = DeliveryMode::Template {
            name: "order_update".into(),
            language: "en_US".into(),
            params: vec!["Kerry".into()],
        };
        let bodies = send_bodies("C", "Hi Kerry", &mode).expect("template");
        assert_eq!(bodies[0]["type"], "template");
        assert_eq!(bodies[0]["template"]["name"], "order_update");
        assert_eq!(bodies[0]["template"]["language"]["code"], "en_US");
        assert_eq!(
            bodies[0]["template"]["components"][0]["parameters"][0],
            json!({"type": "text", "text": "Kerry"})
        );
        assert!(send_bodies("C", "late", &DeliveryMode::HumanAgent).is_err());
        let long = "x".repeat(MAX_TEXT_CHARS + 10);
        assert_eq!(
            send_bodies("C", &long, &DeliveryMode::Standard)
                .expect("long")
                .len(),
            2
        );
    }
}
