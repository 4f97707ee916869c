//! Telegram's `Update` objects, read into [`Inbound`] envelopes. Only what the daemon uses is
//! declared; everything else in the payload is ignored, and nothing in it can panic.
//! Private chats are conversations (keyed by chat id); group chats, channel posts, edits and
//! messages from other bots are skipped.

use serde::Deserialize;

use crate::{Attachment, ChannelKind, Contact, Inbound};

/// What one update means for the daemon.
#[derive(Debug)]
pub enum Parsed {
    /// A customer's message, to journal.
    Message(Box<Inbound>),
    /// Nothing to do (with why, for the logs).
    Skipped(&'static str),
}

/// Why an update could not be read at all.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("not a Telegram update: {0}")]
pub struct ParseError(pub String);

#[derive(Debug, Deserialize)]
struct Update {
    update_id: i64,
    #[serde(default)]
    message: Option<Message>,
}

#[derive(Debug, Deserialize)]
struct Message {
    message_id: i64,
    date: i64,
    chat: Chat,
    #[serde(default)]
    from: Option<User>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    caption: Option<String>,
    #[serde(default)]
    photo: Option<Vec<PhotoSize>>,
    #[serde(default)]
    document: Option<Document>,
    #[serde(default)]
    voice: Option<Voice>,
}

#[derive(Debug, Deserialize)]
struct Chat {
    id: i64,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Debug, Deserialize)]
struct User {
    id: i64,
    #[serde(default)]
    is_bot: bool,
    #[serde(default)]
    first_name: String,
    #[serde(default)]
    last_name: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    language_code: Option<String>,
}

#[derive(Debug, Deserialize)]
struct PhotoSize {
    file_id: String,
    #[serde(default)]
    width: u64,
    #[serde(default)]
    height: u64,
    #[serde(default)]
    file_size: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct Document {
    file_id: String,
    #[serde(default)]
    file_name: Option<String>,
    #[serde(default)]
    mime_type: Option<String>,
    #[serde(default)]
    file_size: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct Voice {
    file_id: String,
    #[serde(default)]
    mime_type: Option<String>,
    #[serde(default)]
    file_size: Option<u64>,
}

/// Reads the `update_id` of an update that may be malformed otherwise, so a bad update can
/// still be confirmed and skipped.
pub fn update_id(raw: &serde_json::Value) -> Option<i64> {
    raw.get("update_id").and_then(serde_json::Value::as_i64)
}

/// Reads one update from its JSON text (a webhook body).
pub fn parse_bytes(body: &[u8]) -> Result<(i64, Parsed), ParseError> {
    let update: Update = serde_json::from_slice(body).map_err(|e| ParseError(e.to_string()))?;
    Ok((update.update_id, interpret(update)))
}

/// Reads one update from the `result` array of `getUpdates`.
pub fn parse_value(raw: serde_json::Value) -> Result<(i64, Parsed), ParseError> {
    let update: Update = serde_json::from_value(raw).map_err(|e| ParseError(e.to_string()))?;
    Ok((update.update_id, interpret(update)))
}

fn interpret(update: Update) -> Parsed {
    let Some(m) = update.message else {
        return Parsed::Skipped("not a new message");
    };
    if m.chat.kind != "private" {
        return Parsed::Skipped("not a private chat");
    }
    let user = m.from.as_ref();
    if user.is_some_and(|u| u.is_bot) {
        return Parsed::Skipped("sent by a bot");
    }
    let mut attachments = Vec::new();
    // Telegram sends every size of a photo; the largest (the last) is the photo.
    if let Some(p) = m
        .photo
        .as_deref()
        .and_then(|sizes| sizes.iter().max_by_key(|p| p.width * p.height))
    {
        attachments.push(Attachment {
            id: p.file_id.clone(),
            kind: "image/jpeg".into(),
            name: None,
            size: p.file_size,
        });
    }
    if let Some(d) = &m.document {
        attachments.push(Attachment {
            id: d.file_id.clone(),
            kind: d
                .mime_type
                .clone()
                .unwrap_or_else(|| "application/octet-stream".into()),
            name: d.file_name.clone(),
            size: d.file_size,
        });
    }
    if let Some(v) = &m.voice {
        attachments.push(Attachment {
            id: v.file_id.clone(),
            kind: v.mime_type.clone().unwrap_or_else(|| "audio/ogg".into()),
            name: None,
            size: v.file_size,
        });
    }
    let text = m.text.or(m.caption).unwrap_or_default();
    if text.trim().is_empty() && attachments.is_empty() {
        return Parsed::Skipped("no text, photo, document or voice");
    }
    let contact = Contact {
        name: user.and_then(display_name),
        channel_user_id: user.map_or(m.chat.id, |u| u.id).to_string(),
        language: user.and_then(|u| u.language_code.clone()),
        attributes: Default::default(),
    };
    Parsed::Message(Box::new(Inbound {
        channel: ChannelKind::Telegram,
        conversation_key: m.chat.id.to_string(),
        contact,
        platform_message_id: m.message_id.to_string(),
        text,
        attachments,
        sent_at_ms: u64::try_from(m.date).unwrap_or(0).saturating_mul(1000),
        // Telegram has no auto-replies to guard against (bots cannot write to bots).
        automated: false,
    }))
}

/// "First Last (@username)", from whatever parts the user has.
fn display_name(u: &User) -> Option<String> {
    let mut name = u.first_name.trim().to_string();
    if let Some(last) = u
        .last_name
        .as_deref()
        .map(str::trim)
        .filter(|l| !l.is_empty())
    {
        if !name.is_empty() {
            name.push(' ');
        }
        name.push_str(last);
    }
    if let Some(user) = u.username.as_deref().filter(|n| !n.is_empty()) {
        if name.is_empty() {
            name = format!("@{user}");
        } else {
            name = format!("{name} (@{user})");
        }
    }
    (!name.is_empty()).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn message(extra: serde_json::Value) -> serde_json::Value {
        let mut m = json!({
            "message_id": 42,
            "date": 1_700_000_000,
            "chat": {"id": 777, "type": "private", "first_name": "Ada"},
            "from": {"id": 777, "is_bot": false, "first_name": "Ada", "last_name": "Lovelace",
                     "username": "ada", "language_code": "en"},
        });
        if let (Some(m), Some(extra)) = (m.as_object_mut(), extra.as_object()) {
            m.extend(extra.clone());
        }
        json!({"update_id": 9001, "message": m})
    }

    fn inbound(v: serde_json::Value) -> Inbound {
        match parse_value(v) {
            Ok((9001, Parsed::Message(m))) => *m,
            other => panic!("expected a message, got {other:?}"),
        }
    }

    #[test]
    fn a_private_text_message_becomes_an_inbound_with_the_contact() {
        let m = inbound(message(json!({"text": "When are you open?"})));
        assert_eq!(m.channel, ChannelKind::Telegram);
        assert_eq!(m.conversation_key, "777");
        assert_eq!(m.platform_message_id, "42");
        assert_eq!(m.text, "When are you open?");
        assert_eq!(m.sent_at_ms, 1_700_000_000_000);
        assert_eq!(m.contact.name.as_deref(), Some("Ada Lovelace (@ada)"));
        assert_eq!(m.contact.channel_user_id, "777");
        assert_eq!(m.contact.language.as_deref(), Some("en"));
        assert!(m.attachments.is_empty());
    }

    #[test]
    fn photos_documents_and_voice_are_attachments_and_the_caption_is_the_text() {
        let m = inbound(message(json!({
            "caption": "my receipt",
            "photo": [
                {"file_id": "small", "file_unique_id": "a", "width": 90, "height": 90, "file_size": 1000},
                {"file_id": "big", "file_unique_id": "b", "width": 1280, "height": 960, "file_size": 90000},
            ],
        })));
        assert_eq!(m.text, "my receipt");
        assert_eq!(m.attachments.len(), 1);
        assert_eq!(m.attachments[0].id, "big");
        assert_eq!(m.attachments[0].size, Some(90000));
        let m = inbound(message(json!({
            "document": {"file_id": "doc1", "file_unique_id": "d", "file_name": "invoice.pdf",
                         "mime_type": "application/pdf", "file_size": 12345},
        })));
        assert_eq!(m.text, "");
        assert_eq!(m.attachments[0].kind, "application/pdf");
        assert_eq!(m.attachments[0].name.as_deref(), Some("invoice.pdf"));
        let m = inbound(message(json!({
            "voice": {"file_id": "v1", "file_unique_id": "v", "duration": 3, "file_size": 4096},
        })));
        assert_eq!(m.attachments[0].kind, "audio/ogg");
        assert_eq!(m.attachments[0].size, Some(4096));
    }

    #[test]
    fn groups_bots_edits_and_empty_messages_are_skipped() {
        let group = json!({"update_id": 1, "message": {"message_id": 1, "date": 1,
            "chat": {"id": -100, "type": "group"}, "text": "hi"}});
        assert!(matches!(parse_value(group), Ok((1, Parsed::Skipped(_)))));
        let mut bot = message(json!({"text": "hi"}));
        bot["message"]["from"]["is_bot"] = json!(true);
        assert!(matches!(parse_value(bot), Ok((9001, Parsed::Skipped(_)))));
        let edit = json!({"update_id": 2, "edited_message": {}});
        assert!(matches!(parse_value(edit), Ok((2, Parsed::Skipped(_)))));
        let sticker = message(json!({"sticker": {"file_id": "s"}}));
        assert!(matches!(
            parse_value(sticker),
            Ok((9001, Parsed::Skipped(_)))
        ));
    }

    #[test]
    fn malformed_updates_are_errors_not_panics() {
        assert!(parse_bytes(b"not json").is_err());
        assert!(parse_bytes(b"{}").is_err());
        assert!(parse_bytes(br#"{"update_id": 3, "message": {"chat": 5}}"#).is_err());
        assert_eq!(update_id(&json!({"update_id": 5, "message": 1})), Some(5));
        assert_eq!(update_id(&json!([])), None);
        // A minimal user without names still yields a contact.
        let mut v = message(json!({"text": "x"}));
        v["message"]["from"] = json!({"id": 1, "is_bot": false, "first_name": ""});
        assert_eq!(inbound(v).contact.name, None);
    }
}
