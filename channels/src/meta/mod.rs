//! Meta's platforms: WhatsApp Cloud API, Messenger and Instagram Messaging.
//!
//! The three share their webhook mechanics (a GET handshake, then POSTs signed with
//! `X-Hub-Signature-256`) and the Graph API; this module holds what they share, and each
//! platform's own parsing and send rules live beside it (`whatsapp`, `messenger`,
//! `instagram`, with `messaging` for what Messenger and Instagram have in common).
//! Setup and window rules are documented in `docs/channels/meta.md`.

pub mod config;
pub mod graph;
pub mod instagram;
pub mod messaging;
pub mod messenger;
pub mod sender;
pub mod signature;
pub mod webhook;
pub mod whatsapp;

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use serde_json::Value;

use crate::{ChannelKind, CoreLink, DeliveryMode, DeliveryUpdate, Inbound, Outbound, WindowRules};
pub use config::MetaConfig;
use graph::{GraphClient, GraphError};
use sender::GraphSender;

/// Which Meta platform a channel speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Platform {
    Whatsapp,
    Messenger,
    Instagram,
}

impl Platform {
    /// All three, in a stable order.
    pub const ALL: [Platform; 3] = [Platform::Whatsapp, Platform::Messenger, Platform::Instagram];

    /// The channel this platform is in the daemon.
    pub fn channel(self) -> ChannelKind {
        match self {
            Platform::Whatsapp => ChannelKind::Whatsapp,
            Platform::Messenger => ChannelKind::Messenger,
            Platform::Instagram => ChannelKind::Instagram,
        }
    }

    /// Where Meta is told to send this platform's webhooks.
    pub fn webhook_path(self) -> &'static str {
        match self {
            Platform::Whatsapp => "/webhooks/whatsapp",
            Platform::Messenger => "/webhooks/messenger",
            Platform::Instagram => "/webhooks/instagram",
        }
    }

    /// The public Graph API host, used unless `graph_url` is configured.
    pub fn default_graph_url(self) -> &'static str {
        match self {
            Platform::Whatsapp | Platform::Messenger => "https://graph.facebook.com",
            Platform::Instagram => "https://graph.instagram.com",
        }
    }

    /// The platform's messaging window.
    pub fn window_rules(self, config: &MetaConfig) -> WindowRules {
        match self {
            Platform::Whatsapp => whatsapp::window_rules(config.templates.clone()),
            Platform::Messenger | Platform::Instagram => messaging::window_rules(),
        }
    }

    /// The events of one webhook POST body (already signature-checked).
    pub fn parse(self, body: &[u8]) -> Result<Vec<Event>, ParseError> {
        match self {
            Platform::Whatsapp => whatsapp::parse(body),
            Platform::Messenger => messenger::parse(body),
            Platform::Instagram => instagram::parse(body),
        }
    }

    /// The Graph API bodies that deliver `text` to `customer`.
    pub fn send_bodies(
        self,
        customer: &str,
        text: &str,
        mode: &DeliveryMode,
    ) -> Result<Vec<Value>, SendError> {
        match self {
            Platform::Whatsapp => whatsapp::send_bodies(customer, text, mode),
            Platform::Messenger => messenger::send_bodies(customer, text, mode),
            Platform::Instagram => instagram::send_bodies(customer, text, mode),
        }
    }
}

/// What a webhook POST carries, in order.
#[derive(Debug)]
pub enum Event {
    /// A customer's message.
    Message(Inbound),
    /// A delivery or read report on something the daemon sent.
    Status(DeliveryUpdate),
}

/// Why a signed webhook body could not be read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParseError {
    #[error("the body is not the expected JSON: {0}")]
    Json(String),
    #[error("`object` is `{0}`, not this platform's")]
    WrongObject(String),
    #[error("`{0}` is missing")]
    Missing(&'static str),
}

/// Why a message cannot be sent on this platform at all (never retried).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct SendError(pub String);

/// A Meta conversation key: the business account that was written to (phone number id,
/// Page id, Instagram account id) and the customer's id on the platform, joined by `:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversationKey {
    /// The business side: phone number id, Page id or Instagram account id.
    pub account: String,
    /// The customer: `wa_id`, PSID or IGSID.
    pub customer: String,
}

impl ConversationKey {
    /// A key from its parts.
    pub fn new(account: &str, customer: &str) -> Self {
        ConversationKey {
            account: account.to_string(),
            customer: customer.to_string(),
        }
    }

    /// Reads a key back; `None` for anything not made by [`ConversationKey::new`].
    pub fn parse(key: &str) -> Option<Self> {
        let (account, customer) = key.split_once(':')?;
        (!account.is_empty() && !customer.is_empty()).then(|| Self::new(account, customer))
    }
}

impl std::fmt::Display for ConversationKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.account, self.customer)
    }
}

/// Splits a text into chunks of at most `max_chars` characters and `max_bytes` bytes, on
/// character boundaries, preferring to break after whitespace. Never returns no chunk.
pub fn split_text(text: &str, max_chars: usize, max_bytes: usize) -> Vec<String> {
    let mut chunks = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let mut end = 0;
        let mut last_space = None;
        for (n, (i, c)) in rest.char_indices().enumerate() {
            if n >= max_chars || i + c.len_utf8() > max_bytes {
                break;
            }
            end = i + c.len_utf8();
            if c.is_whitespace() {
                last_space = Some(end);
            }
        }
        if end == 0 {
            // A single character larger than the limit: nothing sensible to do but send it.
            end = rest.chars().next().map_or(rest.len(), char::len_utf8);
        }
        if end < rest.len()
            && let Some(s) = last_space.filter(|s| *s > end / 2)
        {
            end = s;
        }
        chunks.push(rest[..end].to_string());
        rest = &rest[end..];
    }
    if chunks.is_empty() {
        chunks.push(String::new());
    }
    chunks
}

/// Installs ring as rustls' crypto provider for the process, once; a provider installed
/// earlier (by the daemon or another channel) is kept.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Why a Meta channel could not start.
#[derive(Debug, thiserror::Error)]
#[error("{platform:?}: {source}")]
pub struct StartError {
    pub platform: Platform,
    pub source: GraphError,
}

/// One running Meta channel: its webhook endpoint's state and its Graph API sender. Mount it
/// with [`webhook::configure`].
#[derive(Clone)]
pub struct MetaChannel {
    platform: Platform,
    app_secret: Arc<Vec<u8>>,
    verify_token: Arc<String>,
    core: CoreLink,
    sender: Addr<GraphSender>,
    window: WindowRules,
}

impl MetaChannel {
    /// Builds the Graph API client and starts the sender actor.
    pub fn start(
        platform: Platform,
        config: &MetaConfig,
        core: CoreLink,
    ) -> Result<Self, StartError> {
        install_crypto_provider();
        let client = GraphClient::new(
            config.base_url(platform),
            config.api_version.clone(),
            config.access_token.clone(),
            Duration::from_secs(config.request_timeout_secs.max(1)),
        )
        .map_err(|source| StartError { platform, source })?;
        let sender = GraphSender::new(platform, client).start();
        Ok(MetaChannel {
            platform,
            app_secret: Arc::new(config.app_secret.as_bytes().to_vec()),
            verify_token: Arc::new(config.verify_token.clone()),
            core,
            sender,
            window: platform.window_rules(config),
        })
    }

    /// The platform this channel speaks.
    pub fn platform(&self) -> Platform {
        self.platform
    }

    /// Where the daemon sends what must reach this platform's customers.
    pub fn outbound(&self) -> Recipient<Outbound> {
        self.sender.clone().recipient()
    }

    /// The platform's messaging window, for the daemon to enforce.
    pub fn window_rules(&self) -> &WindowRules {
        &self.window
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_reject_garbage() {
        let k = ConversationKey::new("27681414235104944", "16315551234");
        assert_eq!(k.to_string(), "27681414235104944:16315551234");
        assert_eq!(ConversationKey::parse(&k.to_string()), Some(k));
        assert_eq!(ConversationKey::parse("nocolon"), None);
        assert_eq!(ConversationKey::parse(":x"), None);
    }

    #[test]
    fn split_text_respects_both_limits_and_prefers_spaces() {
        assert_eq!(split_text("", 10, 10), vec![String::new()]);
        assert_eq!(split_text("short", 10, 100), vec!["short"]);
        let parts = split_text("aaaa bbbb cccc", 10, usize::MAX);
        assert_eq!(parts, vec!["aaaa bbbb ", "cccc"]);
        let parts = split_text(&"ü".repeat(10), usize::MAX, 5);
        assert!(parts.iter().all(|p| p.len() <= 5));
        assert_eq!(parts.concat(), "ü".repeat(10));
    }
}
