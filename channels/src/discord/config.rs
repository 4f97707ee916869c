//! The `[discord]` section of the daemon's config: the bot's token, where Discord's REST API
//! is, which gateway intents to ask for, and the optional support channel.

use serde::Deserialize;

/// The Discord channel's settings, as written in the config file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiscordConfig {
    /// The bot token from the developer portal (Bot page), without the `Bot ` prefix.
    pub token: String,
    /// The REST base URL; Discord's public host when left out (a test fake otherwise). The
    /// gateway address is asked from `{api_url}/api/v10/gateway`, so it follows.
    #[serde(default)]
    pub api_url: Option<String>,
    /// Gateway intents by name (`direct_messages`, `guild_messages`, `message_content`...).
    #[serde(default = "default_intents")]
    pub intents: Vec<String>,
    /// A guild text channel where each user's messages form a conversation of their own.
    #[serde(default)]
    pub support_channel_id: Option<String>,
    /// Seconds one REST request may take before it counts as a network error.
    #[serde(default = "default_request_timeout")]
    pub request_timeout_secs: u64,
}

fn default_intents() -> Vec<String> {
    DEFAULT_INTENTS.iter().map(|s| s.to_string()).collect()
}

fn default_request_timeout() -> u64 {
    15
}

/// Discord's public host; REST lives under `/api/v10`.
pub const DEFAULT_API_URL: &str = "https://discord.com";

/// What the channel needs to read direct messages and the support channel.
pub const DEFAULT_INTENTS: &[&str] = &["direct_messages", "guild_messages", "message_content"];

/// The gateway intents the config may name, with their bits (Discord's gateway docs).
const INTENTS: &[(&str, u64)] = &[
    ("guilds", 1 << 0),
    ("guild_messages", 1 << 9),
    ("guild_message_typing", 1 << 11),
    ("direct_messages", 1 << 12),
    ("direct_message_typing", 1 << 14),
    ("message_content", 1 << 15),
];

impl DiscordConfig {
    /// Problems as (key below the section, message); empty when the section is usable.
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut bad = |k: &str, m: String| out.push((k.to_string(), m));
        let token = self.token.trim();
        if token.is_empty() || token != self.token {
            bad("token", "must be the bot token, without spaces".into());
        } else if token.starts_with("Bot ") || token.starts_with("Bearer ") {
            bad("token", "must be the bare token, without `Bot `".into());
        } else if !token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        {
            bad(
                "token",
                "must be the token from the developer portal (letters, digits, `.`, `_`, `-`)"
                    .into(),
            );
        }
        if let Some(url) = &self.api_url
            && !(url.starts_with("https://") || url.starts_with("http://"))
        {
            bad("api_url", "must start with https:// (or http://)".into());
        }
        let unknown: Vec<&str> = self
            .intents
            .iter()
            .filter(|i| intent_bit(i).is_none())
            .map(String::as_str)
            .collect();
        if !unknown.is_empty() {
            let known: Vec<&str> = INTENTS.iter().map(|(n, _)| *n).collect();
            bad(
                "intents",
                format!(
                    "unknown intent(s) {}; known: {}",
                    unknown.join(", "),
                    known.join(", ")
                ),
            );
        } else if !self.intents.iter().any(|i| i == "direct_messages")
            && self.support_channel_id.is_none()
        {
            bad(
                "intents",
                "without direct_messages (and no support_channel_id) no message can arrive".into(),
            );
        }
        if let Some(id) = &self.support_channel_id {
            if !is_snowflake(id) {
                bad(
                    "support_channel_id",
                    "must be a channel id (digits; Developer Mode, Copy Channel ID)".into(),
                );
            } else if !self.intents.iter().any(|i| i == "guild_messages") {
                bad(
                    "support_channel_id",
                    "needs the guild_messages intent in `intents`".into(),
                );
            }
        }
        if self.request_timeout_secs == 0 {
            bad("request_timeout_secs", "must be above 0".into());
        }
        out
    }

    /// The REST base URL without a trailing slash.
    pub fn base_url(&self) -> String {
        self.api_url
            .as_deref()
            .unwrap_or(DEFAULT_API_URL)
            .trim_end_matches('/')
            .to_string()
    }

    /// The intents' bit field for IDENTIFY; unknown names (refused by [`Self::problems`])
    /// count for nothing.
    pub fn intent_bits(&self) -> u64 {
        self.intents.iter().filter_map(|i| intent_bit(i)).sum()
    }
}

fn intent_bit(name: &str) -> Option<u64> {
    INTENTS.iter().find(|(n, _)| *n == name).map(|(_, b)| *b)
}

/// Discord ids are snowflakes: unsigned 64-bit numbers written in decimal.
pub fn is_snowflake(s: &str) -> bool {
    !s.is_empty() && s.len() <= 20 && s.parse::<u64>().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config(extra: serde_json::Value) -> DiscordConfig {
        let mut v = json!({"token": "MTA.abc-DEF_ghi"});
        if let (Some(m), Some(e)) = (v.as_object_mut(), extra.as_object()) {
            m.extend(e.clone());
        }
        serde_json::from_value(v).expect("config parses")
    }

    fn keys(c: &DiscordConfig) -> Vec<String> {
        c.problems().into_iter().map(|(k, _)| k).collect()
    }

    #[test]
    fn the_defaults_need_only_a_token() {
        let c = config(json!({}));
        assert!(c.problems().is_empty(), "{:?}", c.problems());
        assert_eq!(c.base_url(), DEFAULT_API_URL);
        assert_eq!(c.intent_bits(), (1 << 9) | (1 << 12) | (1 << 15));
        let c = config(json!({"api_url": "http://127.0.0.1:9/"}));
        assert_eq!(c.base_url(), "http://127.0.0.1:9");
    }

    #[test]
    fn problems_name_their_keys() {
        let c = config(json!({"token": "Bot MTA.abc"}));
        assert_eq!(keys(&c), vec!["token"]);
        let c = config(json!({"token": ""}));
        assert_eq!(keys(&c), vec!["token"]);
        let c = config(json!({"token": "a/b", "api_url": "ftp://x", "request_timeout_secs": 0}));
        assert_eq!(keys(&c), vec!["token", "api_url", "request_timeout_secs"]);
        let c = config(json!({"intents": ["direct_messages", "presences"]}));
        assert_eq!(keys(&c), vec!["intents"]);
        let c = config(json!({"intents": ["guild_messages"]}));
        assert_eq!(keys(&c), vec!["intents"]);
        let c = config(json!({"support_channel_id": "general"}));
        assert_eq!(keys(&c), vec!["support_channel_id"]);
        let c = config(json!({"support_channel_id": "123", "intents": ["direct_messages"]}));
        assert_eq!(keys(&c), vec!["support_channel_id"]);
        let c = config(json!({"support_channel_id": "123456789012345678",
                              "intents": ["guild_messages", "message_content"]}));
        assert!(c.problems().is_empty(), "{:?}", c.problems());
    }
}
