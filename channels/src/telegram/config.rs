//! The `[telegram]` section of the daemon's config: the bot's token, how updates arrive
//! (long polling or webhook) and where the Bot API is.

use serde::Deserialize;

/// How Telegram's updates reach the daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// The daemon asks (`getUpdates`): works behind NAT, needs no public HTTPS.
    #[default]
    Polling,
    /// Telegram POSTs to `/webhooks/telegram` on the daemon's own server.
    Webhook,
}

/// The Telegram channel's settings, as written in the config file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelegramConfig {
    /// The token BotFather gave (`123456:ABC...`).
    pub token: String,
    /// `polling` (the default) or `webhook`.
    #[serde(default)]
    pub mode: Mode,
    /// The Bot API's base URL; Telegram's public host when left out (a local Bot API
    /// server or a test fake otherwise).
    #[serde(default)]
    pub api_url: Option<String>,
    /// Webhook mode: the secret Telegram sends in `X-Telegram-Bot-Api-Secret-Token`.
    #[serde(default)]
    pub webhook_secret: Option<String>,
    /// Webhook mode: the public HTTPS URL of `/webhooks/telegram`; when set, the daemon
    /// registers it with `setWebhook` at start.
    #[serde(default)]
    pub webhook_url: Option<String>,
    /// Polling mode: seconds one `getUpdates` long poll may wait for updates.
    #[serde(default = "default_poll_timeout")]
    pub poll_timeout_secs: u64,
    /// Seconds a `sendMessage` may take before it is retried.
    #[serde(default = "default_request_timeout")]
    pub request_timeout_secs: u64,
}

fn default_poll_timeout() -> u64 {
    30
}

fn default_request_timeout() -> u64 {
    15
}

/// Telegram's public Bot API host.
pub const DEFAULT_API_URL: &str = "https://api.telegram.org";

impl TelegramConfig {
    /// Problems as (key below the section, message); empty when the section is usable.
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut bad = |k: &str, m: &str| out.push((k.to_string(), m.to_string()));
        let token_ok = self.token.split_once(':').is_some_and(|(id, rest)| {
            !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()) && !rest.is_empty()
        }) && !self.token.contains('/');
        if !token_ok {
            bad(
                "token",
                "must be the token BotFather gave, like 123456:ABC-DEF...",
            );
        }
        if let Some(url) = &self.api_url
            && !(url.starts_with("https://") || url.starts_with("http://"))
        {
            bad(
                "api_url",
                "must start with https:// (or http:// for a local Bot API server)",
            );
        }
        if self.mode == Mode::Webhook {
            match &self.webhook_secret {
                None => bad("webhook_secret", "is required in webhook mode"),
                Some(s)
                    if s.len() < 16
                        || s.len() > 256
                        || !s
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') =>
                {
                    bad(
                        "webhook_secret",
                        "must be 16 to 256 characters of A-Z, a-z, 0-9, _ and -",
                    )
                }
                Some(_) => {}
            }
            if let Some(url) = &self.webhook_url
                && !url.starts_with("https://")
            {
                bad("webhook_url", "Telegram only calls https:// webhooks");
            }
        } else if self.webhook_url.is_some() {
            bad("webhook_url", "only used with mode = \"webhook\"");
        }
        // 0 would be short polling: a request after request with nothing to wait on.
        if !(1..=50).contains(&self.poll_timeout_secs) {
            bad("poll_timeout_secs", "must be from 1 to 50");
        }
        if self.request_timeout_secs == 0 {
            bad("request_timeout_secs", "must be above 0");
        }
        out
    }

    /// The Bot API base URL without a trailing slash.
    pub fn base_url(&self) -> String {
        self.api_url
            .as_deref()
            .unwrap_or(DEFAULT_API_URL)
            .trim_end_matches('/')
            .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str) -> TelegramConfig {
        let text = format!("token = \"123456:ABC-def_ghi\"\n{extra}");
        serde_json::from_value(toml_like(&text)).expect("config parses")
    }

    /// The tests write the section as simple `key = value` lines; this turns them into JSON
    /// (the channels crate has no TOML parser of its own).
    fn toml_like(text: &str) -> serde_json::Value {
        let mut map = serde_json::Map::new();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let (k, v) = line.split_once('=').expect("key = value");
            let v = v.trim();
            let value = match v.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
                Some(s) => serde_json::Value::String(s.to_string()),
                None => serde_json::Value::from(v.parse::<u64>().expect("number")),
            };
            map.insert(k.trim().to_string(), value);
        }
        serde_json::Value::Object(map)
    }

    #[test]
    fn polling_is_the_default_and_needs_only_a_token() {
        let c = config("");
        assert_eq!(c.mode, Mode::Polling);
        assert!(c.problems().is_empty(), "{:?}", c.problems());
        assert_eq!(c.base_url(), DEFAULT_API_URL);
        let c = config("api_url = \"http://127.0.0.1:9/\"");
        assert_eq!(c.base_url(), "http://127.0.0.1:9");
    }

    #[test]
    fn problems_name_their_keys() {
        let keys = |c: TelegramConfig| -> Vec<String> {
            c.problems().into_iter().map(|(k, _)| k).collect()
        };
        let mut c = config("mode = \"webhook\"");
        c.token = "nocolon".into();
        assert_eq!(keys(c), vec!["token", "webhook_secret"]);
        let c = config("mode = \"webhook\"\nwebhook_secret = \"short\"");
        assert_eq!(keys(c), vec!["webhook_secret"]);
        let c = config(
            "mode = \"webhook\"\nwebhook_secret = \"0123456789abcdef\"\nwebhook_url = \"http://x\"",
        );
        assert_eq!(keys(c), vec!["webhook_url"]);
        let c =
            config("webhook_url = \"https://x\"\npoll_timeout_secs = 90\napi_url = \"ftp://x\"");
        assert_eq!(keys(c), vec!["api_url", "webhook_url", "poll_timeout_secs"]);
        let c = config("poll_timeout_secs = 0");
        assert_eq!(keys(c), vec!["poll_timeout_secs"]);
        let c = config("mode = \"webhook\"\nwebhook_secret = \"0123456789abcdef\"");
        assert!(c.problems().is_empty());
    }
}
