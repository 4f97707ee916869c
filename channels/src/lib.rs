//! The edge of handoffd.
//!
//! A channel turns platform events into [`Inbound`] envelopes and delivers [`Outbound`]
//! envelopes back to the platform. It knows nothing of conversations, bots or agents: the
//! daemon gives it a [`CoreLink`] (where to send what it receives) and asks it to deliver
//! through a `Recipient<Outbound>` (a channel that can deliver on the caller's thread, the
//! widget, also offers an [`ImmediateDelivery`]). Everything about handoff lives in the
//! daemon.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use actix::{Message, Recipient};
use serde::{Deserialize, Serialize};

pub mod cursor;
pub mod discord;
pub mod email;
pub mod meta;
pub mod split;
pub mod state;
pub mod telegram;
pub mod widget;
pub mod window;
pub mod ws;

pub use window::{DeliveryMode, TemplateSpec, WindowRules, WindowState, WindowView};

/// The platforms a customer can write from. Stable lowercase names are used in config,
/// storage keys and the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum ChannelKind {
    Widget,
    Telegram,
    Discord,
    Whatsapp,
    Messenger,
    Instagram,
    Email,
}

impl ChannelKind {
    /// The stable name used in storage keys, config and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelKind::Widget => "widget",
            ChannelKind::Telegram => "telegram",
            ChannelKind::Discord => "discord",
            ChannelKind::Whatsapp => "whatsapp",
            ChannelKind::Messenger => "messenger",
            ChannelKind::Instagram => "instagram",
            ChannelKind::Email => "email",
        }
    }

    /// Parses the stable name back; `None` for anything unknown.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "widget" => ChannelKind::Widget,
            "telegram" => ChannelKind::Telegram,
            "discord" => ChannelKind::Discord,
            "whatsapp" => ChannelKind::Whatsapp,
            "messenger" => ChannelKind::Messenger,
            "instagram" => ChannelKind::Instagram,
            "email" => ChannelKind::Email,
            _ => return None,
        })
    }
}

impl ChannelKind {
    /// True for channels whose clients fetch what they missed from the journal when they
    /// come back (the widget resumes after its last seen `seq`). For them a message that
    /// could not be pushed is not lost, so it needs no outbox entry of its own.
    pub fn replays_from_journal(self) -> bool {
        matches!(self, ChannelKind::Widget)
    }
}

impl ChannelKind {
    /// True for channels whose clients show quick replies as buttons (the widget).
    pub fn shows_quick_replies(self) -> bool {
        matches!(self, ChannelKind::Widget)
    }
}

impl std::fmt::Display for ChannelKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who the customer is on their platform, as far as the platform tells us.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Contact {
    /// Display name, when the platform gives one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The customer's id on the channel (chat id, phone number, visitor id...).
    pub channel_user_id: String,
    /// Language the platform or the client reports (BCP 47), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// What the business knows of the customer (`tier = "vip"`, `plan = "pro"`), set
    /// through the API; routing rules match on it. Channels never set it.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub attributes: std::collections::BTreeMap<String, String>,
}

/// A file or media item that came with a message; the content stays on the platform.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attachment {
    /// The platform's id or URL for the item.
    pub id: String,
    /// MIME type or platform media kind.
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
}

/// A customer's message as a channel received it. Send it with [`CoreLink::submit`].
///
/// The daemon answers at once with a [`PendingAck`], which resolves only after the message
/// is durable in the journal, so a channel can acknowledge its platform (HTTP 200,
/// websocket ack) on `Ok`.
#[derive(Debug, Clone, Message)]
#[rtype(result = "PendingAck")]
pub struct Inbound {
    pub channel: ChannelKind,
    /// The conversation's key on that channel (chat id, visitor id, thread id...).
    pub conversation_key: String,
    pub contact: Contact,
    /// The platform's own id for this message: a second delivery with the same id is stored once.
    pub platform_message_id: String,
    pub text: String,
    pub attachments: Vec<Attachment>,
    /// When the platform says the message was sent (ms since the Unix epoch).
    pub sent_at_ms: u64,
    /// A machine wrote it (an auto-reply, out-of-office or bounce): the conversation records
    /// it, but the bot never answers it, so two auto-responders cannot loop.
    pub automated: bool,
}

/// The daemon's answer to an [`Inbound`] it has passed on to its conversation: resolves
/// once the message is durable, or refused. The channel awaits it on its own task, so the
/// wait for the journal does not pass through the daemon's directory.
pub type PendingAck =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<InboundAck, InboundError>> + Send>>;

/// What the daemon answers once an inbound message is durable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboundAck {
    /// The conversation the message joined.
    pub conversation_id: String,
    /// The message's position in the conversation.
    pub seq: u64,
    /// True when this platform message id had been stored before (nothing new was written).
    pub duplicate: bool,
}

/// Why the daemon could not take an inbound message. The channel must not acknowledge it.
#[derive(Debug, Clone, thiserror::Error, Serialize, Deserialize, PartialEq)]
pub enum InboundError {
    #[error("the message was refused: {0}")]
    Refused(String),
    #[error("the journal could not store the message: {0}")]
    Storage(String),
    #[error("the daemon is shutting down")]
    Unavailable,
}

/// The customer started or stopped typing.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct CustomerTyping {
    pub channel: ChannelKind,
    pub conversation_key: String,
    pub active: bool,
}

/// The customer closed their last connection (the widget's websocket): nobody is there to
/// read a bot's answer until they come back, so their conversation need not stay in memory.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct CustomerLeft {
    pub channel: ChannelKind,
    pub conversation_key: String,
}

/// A channel that can resume a client (the widget) asks for what the customer may see after
/// a sequence number.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<History, InboundError>")]
pub struct HistoryRequest {
    pub channel: ChannelKind,
    pub conversation_key: String,
    pub after_seq: u64,
}

/// The customer-visible part of a conversation after some point, oldest first.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct History {
    pub conversation_id: Option<String>,
    pub messages: Vec<VisibleMessage>,
    /// Who answers now, so a resumed client shows the right state.
    pub status: Option<ConversationStatus>,
}

/// Who is answering the customer, as the customer may see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ConversationStatus {
    Bot,
    Queued {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        position: Option<usize>,
        /// Estimated wait in seconds (whole minutes), from how fast the team has been
        /// taking conversations lately; absent until there is enough to go on.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        eta_secs: Option<u64>,
    },
    Agent {
        agent_name: String,
    },
}

/// A message the customer may see: their own, the bot's, an agent's, or a system notice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VisibleMessage {
    pub seq: u64,
    /// `customer`, `bot`, `agent` or `system`.
    pub role: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author_name: Option<String>,
    pub text: String,
    pub sent_at_ms: u64,
    /// The client's own id for a customer message, so a client can match it to its ack.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// How a platform with a messaging window must send it (tag, template); the daemon
    /// decides it from the window rules, channels without a window ignore it.
    #[serde(default, skip_serializing_if = "DeliveryMode::is_standard")]
    pub delivery_mode: DeliveryMode,
    /// Answers the customer can pick with one tap (a bot's quick replies). Only channels
    /// that show them as buttons get them; for the others they are already in `text`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub quick_replies: Vec<String>,
}

/// Something the daemon wants a channel to deliver to a customer.
#[derive(Debug, Clone, Message)]
#[rtype(result = "DeliveryReceipt")]
pub struct Outbound {
    /// Stable id of this delivery: a retried delivery carries the same id.
    pub delivery_id: String,
    pub channel: ChannelKind,
    pub conversation_key: String,
    pub payload: OutboundPayload,
}

/// What is delivered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum OutboundPayload {
    /// A message from the bot, an agent or the system, already journaled under `seq`.
    /// Shared: one message goes to every open connection of its customer.
    Message(Arc<VisibleMessage>),
    /// An agent is typing (or stopped).
    Typing { active: bool },
    /// The conversation's owner changed, or the queue position moved.
    Status(ConversationStatus),
}

/// How a delivery ended. The daemon keeps undelivered messages in its outbox until one of
/// the final outcomes is reported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum DeliveryReceipt {
    /// The platform accepted the message.
    Delivered {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        platform_message_id: Option<String>,
    },
    /// Nobody is connected now; the client fetches it from the journal when it resumes.
    HeldForResume,
    /// Try again later (rate limit, 5xx, network error).
    Retry { after_ms: u64, reason: String },
    /// It will never be delivered (blocked, invalid recipient...).
    Failed { reason: String },
}

impl DeliveryReceipt {
    /// True when the outbox may forget the delivery.
    pub fn is_final(&self) -> bool {
        !matches!(self, DeliveryReceipt::Retry { .. })
    }
}

/// What became of a message the daemon sent, as the platform reports it later (WhatsApp
/// `statuses`, Messenger `delivery`/`read`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    Sent,
    Delivered,
    Read,
    Failed,
}

impl DeliveryStatus {
    /// The stable name used in the agent protocol.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Sent => "sent",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Read => "read",
            DeliveryStatus::Failed => "failed",
        }
    }
}

/// Which outbound message(s) a delivery report is about.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "by", rename_all = "snake_case")]
pub enum DeliveryTarget {
    /// One message, by the id the platform gave it when it was sent.
    Message { platform_message_id: String },
    /// Everything sent in a conversation up to a time (Messenger's `read.watermark`).
    UpTo {
        conversation_key: String,
        watermark_ms: u64,
    },
}

/// A platform's report on a message the daemon sent. The reply comes once it is recorded, so
/// a webhook can acknowledge the platform; an unknown message is answered `Ok(false)`.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<bool, InboundError>")]
pub struct DeliveryUpdate {
    pub channel: ChannelKind,
    pub target: DeliveryTarget,
    pub status: DeliveryStatus,
    /// When the platform says it happened (ms since the Unix epoch).
    pub at_ms: u64,
    /// The platform's reason, for `Failed`.
    pub error: Option<String>,
}

/// Takes a customer's message from a channel, on the channel's own thread.
///
/// A trait rather than an actor's mailbox so the daemon can hand a message straight to its
/// conversation when it already knows where that conversation lives, without a detour
/// through another thread. Any actor that handles [`Inbound`] is a sink too.
pub trait InboundSink: Send + Sync {
    /// Passes the message on and answers with the wait for its ack.
    fn submit(&self, inbound: Inbound) -> PendingAck;
}

impl InboundSink for Recipient<Inbound> {
    fn submit(&self, inbound: Inbound) -> PendingAck {
        let handing = self.send(inbound);
        Box::pin(async move {
            match handing.await {
                Ok(pending) => pending.await,
                Err(_) => Err(InboundError::Unavailable),
            }
        })
    }
}

/// Delivers on the caller's own thread and says at once how it went: for a channel whose
/// delivery is only a hand-off to a connection in this process (the widget), so a
/// conversation's reply needs no detour through the outbox's thread.
pub trait ImmediateDelivery: Send + Sync {
    /// Hands `payload` to whoever is connected as `conversation_key` now. Borrowed parts,
    /// not an [`Outbound`]: the caller keeps its delivery record and copies nothing.
    fn deliver_now(&self, conversation_key: &str, payload: &OutboundPayload) -> DeliveryReceipt;
}

/// Where a channel sends what it receives. Given to every channel by the daemon.
#[derive(Clone)]
pub struct CoreLink {
    pub inbound: std::sync::Arc<dyn InboundSink>,
    pub typing: Recipient<CustomerTyping>,
    pub history: Recipient<HistoryRequest>,
    /// Delivery and read reports on messages the daemon sent.
    pub delivery: Recipient<DeliveryUpdate>,
    /// Customers whose last connection closed (channels with connections: the widget).
    pub left: Recipient<CustomerLeft>,
}

impl CoreLink {
    /// Hands a customer's message to the daemon; resolves once it is journaled (or
    /// refused). The future owns what it needs, so an actor can wait on it.
    pub fn submit(
        &self,
        inbound: Inbound,
    ) -> impl std::future::Future<Output = Result<InboundAck, InboundError>> + Send + 'static {
        self.inbound.submit(inbound)
    }
}

/// Milliseconds since the Unix epoch, the time unit of every envelope.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
