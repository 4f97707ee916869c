//! `MESSAGE_CREATE` payloads read into [`Inbound`] envelopes, and conversation keys read back
//! for delivery. Only what the daemon uses is declared; nothing in a payload can panic.
//!
//! Two kinds of conversation:
//! - a direct message to the bot: keyed by the DM channel's id;
//! - a message in the configured support channel: keyed `{channel id}:{user id}`, so each
//!   user there has a conversation of their own, and replies mention that user.
//!
//! Messages from bots (this one included), webhooks, system messages, and any other guild
//! channel are skipped.

use serde::Deserialize;

use crate::{Attachment, ChannelKind, Contact, Inbound};

/// What one `MESSAGE_CREATE` means for the daemon.
#[derive(Debug)]
pub enum Parsed {
    /// A customer's message, to journal.
    Message(Box<Inbound>),
    /// Nothing to do (with why, for the logs).
    Skipped(&'static str),
}

/// Why a payload could not be read at all.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("not a Discord message: {0}")]
pub struct ParseError(pub String);

#[derive(Debug, Deserialize)]
struct Message {
    id: String,
    channel_id: String,
    #[serde(default)]
    guild_id: Option<String>,
    author: User,
    #[serde(default)]
    content: String,
    #[serde(default)]
    attachments: Vec<RawAttachment>,
    /// 0 is a plain message, 19 a reply; the rest are system messages (joins, pins...).
    #[serde(default, rename = "type")]
    kind: u64,
    #[serde(default)]
    webhook_id: Option<String>,
}

#[derive(Debug, Deserialize)]
struct User {
    id: String,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    global_name: Option<String>,
    #[serde(default)]
    bot: bool,
}

#[derive(Debug, Deserialize)]
struct RawAttachment {
    url: String,
    #[serde(default)]
    filename: Option<String>,
    #[serde(default)]
    size: Option<u64>,
    #[serde(default)]
    content_type: Option<String>,
}

/// Discord's epoch (2015-01-01) in ms since the Unix epoch: the base of snowflake times.
const DISCORD_EPOCH_MS: u64 = 1_420_070_400_000;

/// When a snowflake was made, in ms since the Unix epoch (a message id is its send time).
pub fn snowflake_ms(id: &str) -> Option<u64> {
    id.parse::<u64>().ok().map(|n| (n >> 22) + DISCORD_EPOCH_MS)
}

/// Where to deliver a conversation's messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The channel to post in (the DM channel, or the support channel).
    pub channel_id: String,
    /// Support-channel conversations: the user to mention.
    pub mention: Option<String>,
}

/// Reads a conversation key back into where its replies go; `None` for a key this channel
/// never made.
pub fn target(conversation_key: &str) -> Option<Target> {
    let ok = |s: &str| s.parse::<u64>().is_ok();
    match conversation_key.split_once(':') {
        None if ok(conversation_key) => Some(Target {
            channel_id: conversation_key.to_string(),
            mention: None,
        }),
        Some((channel, user)) if ok(channel) && ok(user) => Some(Target {
            channel_id: channel.to_string(),
            mention: Some(user.to_string()),
        }),
        _ => None,
    }
}

/// Reads one `MESSAGE_CREATE`'s `d`. `own_id` is the bot's user id (from READY), and
/// `support_channel` the configured support channel, if any.
pub fn parse(
    d: serde_json::Value,
    own_id: Option<&str>,
    support_channel: Option<&str>,
) -> Result<Parsed, ParseError> {
    let m: Message = serde_json::from_value(d).map_err(|e| ParseError(e.to_string()))?;
    if m.author.bot || own_id == Some(m.author.id.as_str()) {
        return Ok(Parsed::Skipped("sent by a bot"));
    }
    if m.webhook_id.is_some() {
        return Ok(Parsed::Skipped("sent by a webhook"));
    }
    if !matches!(m.kind, 0 | 19) {
        return Ok(Parsed::Skipped("a system message"));
    }
    let conversation_key = match &m.guild_id {
        None => m.channel_id.clone(),
        Some(_) if support_channel == Some(m.channel_id.as_str()) => {
            format!("{}:{}", m.channel_id, m.author.id)
        }
        Some(_) => return Ok(Parsed::Skipped("not the support channel")),
    };
    if target(&conversation_key).is_none() || m.author.id.parse::<u64>().is_err() {
        return Err(ParseError("ids are not snowflakes".into()));
    }
    let attachments: Vec<Attachment> = m
        .attachments
        .into_iter()
        .map(|a| Attachment {
            id: a.url,
            kind: a
                .content_type
                .unwrap_or_else(|| "application/octet-stream".into()),
            name: a.filename,
            size: a.size,
        })
        .collect();
    if m.content.trim().is_empty() && attachments.is_empty() {
        // Without the MESSAGE_CONTENT intent, guild messages arrive with empty content.
        return Ok(Parsed::Skipped("no text and no attachment"));
    }
    let contact = Contact {
        name: display_name(&m.author),
        channel_user_id: m.author.id.clone(),
        language: None,
        attributes: Default::default(),
    };
    Ok(Parsed::Message(Box::new(Inbound {
        channel: ChannelKind::Discord,
        conversation_key,
        contact,
        sent_at_ms: snowflake_ms(&m.id).unwrap_or_else(crate::now_ms),
        platform_message_id: m.id,
        text: m.content,
        attachments,
        automated: false,
    })))
}

/// "Global Name (@username)", or whichever part the user has.
fn display_name(u: &User) -> Option<String> {
    let global = u
        .global_name
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty());
    let user = u
        .username
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty());
    match (global, user) {
        (Some(g), Some(u)) => Some(format!("{g} (@{u})")),
        (Some(g), None) => Some(g.to_string()),
        (None, Some(u)) => Some(format!("@{u}")),
        (None, None) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn message(extra: serde_json::Value) -> serde_json::Value {
        let mut m = json!({
            "id": "1100000000000000000",
            "channel_id": "900",
            "type": 0,
            "content": "hello",
            "author": {"id": "42", "username": "ada", "global_name": "Ada L", "bot": false},
            "attachments": [],
        });
        if let (Some(m), Some(e)) = (m.as_object_mut(), extra.as_object()) {
            m.extend(e.clone());
        }
        m
    }

    fn inbound(p: Parsed) -> Inbound {
        match p {
            Parsed::Message(m) => *m,
            Parsed::Skipped(why) => panic!("skipped: {why}"),
        }
    }

    #[test]
    fn a_direct_message_is_keyed_by_its_channel() {
        let m = inbound(parse(message(json!({})), Some("7"), None).expect("parses"));
        assert_eq!(m.conversation_key, "900");
        assert_eq!(m.platform_message_id, "1100000000000000000");
        assert_eq!(m.contact.name.as_deref(), Some("Ada L (@ada)"));
        assert_eq!(m.contact.channel_user_id, "42");
        assert_eq!(
            m.sent_at_ms,
            (1_100_000_000_000_000_000u64 >> 22) + DISCORD_EPOCH_MS
        );
        assert_eq!(
            target(&m.conversation_key),
            Some(Target {
                channel_id: "900".into(),
                mention: None
            })
        );
    }

    #[test]
    fn the_support_channel_gives_each_user_a_conversation_and_other_guild_channels_are_skipped() {
        let guild = message(json!({"guild_id": "5"}));
        let m = inbound(parse(guild.clone(), None, Some("900")).expect("parses"));
        assert_eq!(m.conversation_key, "900:42");
        assert_eq!(
            target(&m.conversation_key),
            Some(Target {
                channel_id: "900".into(),
                mention: Some("42".into())
            })
        );
        assert!(matches!(
            parse(guild.clone(), None, Some("901")),
            Ok(Parsed::Skipped(_))
        ));
        assert!(matches!(parse(guild, None, None), Ok(Parsed::Skipped(_))));
    }

    #[test]
    fn bots_webhooks_system_messages_and_empty_ones_are_skipped() {
        let skipped = |v, own: Option<&str>| matches!(parse(v, own, None), Ok(Parsed::Skipped(_)));
        assert!(skipped(
            message(json!({"author": {"id": "7", "bot": true}})),
            None
        ));
        assert!(skipped(message(json!({"author": {"id": "7"}})), Some("7")));
        assert!(skipped(message(json!({"webhook_id": "3"})), None));
        assert!(skipped(message(json!({"type": 7})), None));
        assert!(skipped(message(json!({"content": "  "})), None));
        assert!(parse(json!({"id": 1}), None, None).is_err());
        assert!(parse(message(json!({"channel_id": "x"})), None, None).is_err());
    }

    #[test]
    fn attachments_keep_url_name_size_and_type() {
        let m = inbound(
            parse(
                message(json!({"content": "", "attachments": [
                    {"id": "1", "url": "https://cdn.example/a.png", "filename": "a.png",
                     "size": 2048, "content_type": "image/png"},
                    {"id": "2", "url": "https://cdn.example/b.bin", "filename": "b.bin", "size": 1}
                ]})),
                None,
                None,
            )
            .expect("parses"),
        );
        assert_eq!(m.text, "");
        assert_eq!(
            m.attachments,
            vec![
                Attachment {
                    id: "https://cdn.example/a.png".into(),
                    kind: "image/png".into(),
                    name: Some("a.png".into()),
                    size: Some(2048)
                },
                Attachment {
                    id: "https://cdn.example/b.bin".into(),
                    kind: "application/octet-stream".into(),
                    name: Some("b.bin".into()),
                    size: Some(1)
                }
            ]
        );
    }

    #[test]
    fn keys_this_channel_never_made_have_no_target() {
        for key in ["", "abc", "1:", ":2", "1:2:3", "x:2"] {
            assert_eq!(target(key), None, "{key}");
        }
    }
}
