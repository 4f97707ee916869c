//! Conversations: one `ConversationActor` per conversation (its mailbox is the conversation's
//! order), and the `Directory` that finds a live actor, revives a dormant one from the store,
//! or starts a new one.

mod actor;
mod directory;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use tokio::sync::oneshot;

use crate::agents::AgentRegistry;
use crate::agents::protocol::TransferTarget;
use crate::analysis::Analyzer;
use crate::bot::Bots;
use crate::config::{Config, HandoffMode};
use crate::delivery::Outbox;
use crate::escalation::Policy;
use crate::model::{Assignment, QueueEntry};
use crate::router::Router;
use crate::store::{Store, StoreError};
use handoffd_channels::{
    ChannelKind, DeliveryStatus, ImmediateDelivery, Inbound, InboundAck, InboundError, WindowRules,
};

pub use actor::ConversationActor;
pub use directory::{
    Directory, InboundRoute, LiveCount, Lookup, Routes, SetServices, TellPosition,
};

/// What every conversation actor needs, shared.
pub struct Services {
    pub store: Store,
    pub bots: Arc<Bots>,
    pub analyzer: Analyzer,
    pub policy: Policy,
    pub router: Addr<Router>,
    pub outbox: Addr<Outbox>,
    pub agents: AgentRegistry,
    pub directory: Addr<Directory>,
    pub settings: ConversationSettings,
    /// Messaging windows of the channels that have one (Meta's): enforced before sending.
    pub windows: Arc<HashMap<ChannelKind, WindowRules>>,
    /// Channels that deliver on the conversation's own thread (the widget): their messages
    /// skip the outbox unless the hand-off asks for more than it can do.
    pub immediate: HashMap<ChannelKind, Arc<dyn ImmediateDelivery>>,
}

/// The parts of the config conversations read.
#[derive(Debug, Clone)]
pub struct ConversationSettings {
    pub idle_timeout: Duration,
    /// How soon a bot-owned conversation stops once its customer left (`None`: only the
    /// idle timeout applies).
    pub stop_after_leaving: Option<Duration>,
    pub bot_timeout: Duration,
    pub mode: HandoffMode,
    pub warm_message: String,
    pub agent_joined_message: String,
    pub handback_message: String,
    /// Said when the bot fails and no escalation follows.
    pub bot_failure_reply: String,
    pub routing_rules: Vec<crate::config::RoutingRule>,
    pub default_team: String,
    /// The email follow-up's wording (`router.follow_up`).
    pub follow_up: crate::config::FollowUpConfig,
}

impl ConversationSettings {
    pub fn from_config(c: &Config) -> Self {
        ConversationSettings {
            idle_timeout: Duration::from_secs(c.conversations.idle_timeout_secs.max(1)),
            stop_after_leaving: (c.conversations.stop_after_leaving_secs > 0)
                .then(|| Duration::from_secs(c.conversations.stop_after_leaving_secs)),
            bot_timeout: Duration::from_millis(c.bot.timeout_ms),
            mode: c.escalation.mode,
            warm_message: c.escalation.warm_message.clone(),
            agent_joined_message: c.escalation.agent_joined_message.clone(),
            handback_message: c.escalation.handback_message.clone(),
            bot_failure_reply: c.bot.failure_reply.clone(),
            routing_rules: c.router.rules.clone(),
            default_team: c.escalation.default_team.clone(),
            follow_up: c.router.follow_up.clone(),
        }
    }
}

/// Why a conversation refused a request. Each maps to an error code agents see.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum ConversationError {
    #[error("no conversation with id `{0}`")]
    NotFound(String),
    #[error("the conversation is not yours")]
    NotOwner,
    #[error("the conversation is not waiting in the queue")]
    NotQueued,
    #[error("invalid request: {0}")]
    Invalid(String),
    #[error("{0}")]
    Storage(String),
    #[error("the conversation is unavailable")]
    Unavailable,
    /// The channel's messaging window does not allow this message now.
    #[error("{0}")]
    WindowClosed(String),
}

impl ConversationError {
    /// Stable code for error frames and JSON bodies.
    pub fn code(&self) -> &'static str {
        match self {
            ConversationError::NotFound(_) => "unknown_conversation",
            ConversationError::NotOwner => "not_owner",
            ConversationError::NotQueued => "not_queued",
            ConversationError::Invalid(_) => "invalid_request",
            ConversationError::Storage(_) => "storage_error",
            ConversationError::Unavailable => "unavailable",
            ConversationError::WindowClosed(_) => "window_closed",
        }
    }
}

impl From<StoreError> for ConversationError {
    fn from(e: StoreError) -> Self {
        ConversationError::Storage(e.to_string())
    }
}

/// A customer message for the actor; the ack is sent as soon as it is journaled, before the
/// bot is asked, so the channel can acknowledge its platform quickly. With an in-process bot
/// (which answers at once) the message and the bot's reply share one commit, and the ack
/// is sent when it is durable, before the reply is delivered.
#[derive(Message)]
#[rtype(result = "()")]
pub struct CustomerMessage {
    /// Shared with the channel's wait for the ack, which hands it on again if the actor
    /// retires before reading it.
    pub inbound: Arc<Inbound>,
    pub ack: oneshot::Sender<Result<InboundAck, InboundError>>,
}

/// What an agent does to a conversation.
#[derive(Debug, Clone)]
pub enum AgentAction {
    Reply {
        text: String,
        client_id: Option<String>,
    },
    /// A configured template, filled with its parameters.
    Template {
        name: String,
        params: Vec<String>,
        client_id: Option<String>,
    },
    Note {
        text: String,
    },
    Close,
    Transfer {
        to: TransferTarget,
        note: Option<String>,
    },
}

/// An agent's request; answered with the sequence number of the journaled message, if any.
#[derive(Message, Clone)]
#[rtype(result = "Result<Option<u64>, ConversationError>")]
pub struct AgentRequest {
    pub agent_id: String,
    pub agent_name: String,
    pub action: AgentAction,
}

/// A bot's asynchronous reply (posted through the API); answered with the sequence numbers
/// of the journaled messages. Refused with `NotOwner` unless this bot owns the conversation.
#[derive(Message, Clone)]
#[rtype(result = "Result<Vec<u64>, ConversationError>")]
pub struct BotPost {
    pub bot: String,
    pub reply: crate::bot::BotReply,
}

/// The router gives the conversation to an agent who accepted the offer.
#[derive(Message, Clone)]
#[rtype(result = "Result<(), ConversationError>")]
pub struct AssignAgent {
    pub agent_name: String,
    pub assignment: Assignment,
}

/// The router takes the conversation back from an agent who left; it returns to its place.
#[derive(Message, Clone)]
#[rtype(result = "Result<QueueEntry, ConversationError>")]
pub struct Requeue {
    pub agent_id: String,
    pub reason: String,
    /// A new priority for its place in the queue (an SLA breach may raise it).
    pub priority: Option<u8>,
}

/// The router changes a waiting conversation's queue entry (priority, team), with a note
/// saying why; refused with `NotQueued` unless the conversation still waits.
#[derive(Message, Clone)]
#[rtype(result = "Result<(), ConversationError>")]
pub struct UpdateQueued {
    pub entry: QueueEntry,
    pub note: String,
}

/// Nobody can answer in time and the team follows up by email: the conversation asks for
/// the customer's address (or confirms the one it knows). Refused unless still waiting.
#[derive(Message, Clone)]
#[rtype(result = "Result<(), ConversationError>")]
pub struct OfferFollowUp;

/// The business sets what it knows of the customer (contact attributes, for routing);
/// `None` values remove an attribute. Answered with the attributes now.
#[derive(Message, Clone)]
#[rtype(result = "Result<std::collections::BTreeMap<String, String>, ConversationError>")]
pub struct SetAttributes {
    pub changes: std::collections::BTreeMap<String, Option<String>>,
}

/// A system message to the customer on the router's behalf (e.g. the team is closed now).
#[derive(Message, Clone)]
#[rtype(result = "Result<(), ConversationError>")]
pub struct PostNotice {
    pub text: String,
}

/// The router gives up on finding an agent (none online, or the team's longest wait
/// passed): the conversation goes back to its bot, the customer is told `message`, and the
/// bot hears `handoff.failed` with `reason`.
#[derive(Message, Clone)]
#[rtype(result = "Result<(), ConversationError>")]
pub struct ReturnToBot {
    pub reason: String,
    pub message: String,
}

/// The customer closed their last connection; a bot-owned conversation may stop soon.
#[derive(Message, Clone, Copy)]
#[rtype(result = "()")]
pub struct CustomerGone;

/// Typing from the customer (to the agent) or from the agent (to the customer).
#[derive(Message, Clone)]
#[rtype(result = "()")]
pub struct TypingSignal {
    /// `None` for the customer, the agent's id otherwise.
    pub agent_id: Option<String>,
    pub active: bool,
}

/// Sends a message to a conversation by id, reviving it if needed. An actor that retired
/// between lookup and delivery is looked up again.
pub async fn send_to<M>(
    directory: &Addr<Directory>,
    conversation_id: &str,
    msg: M,
) -> Result<M::Result, ConversationError>
where
    M: Message + Send + Clone + 'static,
    M::Result: Send,
    ConversationActor: Handler<M>,
{
    for _ in 0..5 {
        let addr = directory
            .send(Lookup {
                conversation_id: conversation_id.to_string(),
            })
            .await
            .map_err(|_| ConversationError::Unavailable)??;
        match addr.send(msg.clone()).await {
            Ok(r) => return Ok(r),
            Err(MailboxError::Closed) => continue,
            Err(MailboxError::Timeout) => return Err(ConversationError::Unavailable),
        }
    }
    Err(ConversationError::Unavailable)
}

/// The outbox gave up on a delivery: the conversation records it so people can see it.
#[derive(Message, Clone)]
#[rtype(result = "()")]
pub struct DeliveryFailed {
    /// The message that was not delivered, when it was a message.
    pub seq: Option<u64>,
    pub reason: String,
}

/// The router tells a queued conversation its place, for the customer.
#[derive(Message, Clone)]
#[rtype(result = "()")]
pub struct QueuePosition {
    pub position: usize,
    pub eta_secs: Option<u64>,
}

/// Which outbound messages a platform's delivery report is about.
#[derive(Debug, Clone, PartialEq)]
pub enum ReportTarget {
    /// One message.
    Seq(u64),
    /// Every message sent up to this time (Messenger's read watermark).
    UpTo(u64),
}

/// A platform's delivery or read report, for the conversation to record and show its agent.
#[derive(Message, Clone)]
#[rtype(result = "()")]
pub struct RecordDelivery {
    pub target: ReportTarget,
    pub status: DeliveryStatus,
    pub at_ms: u64,
    pub error: Option<String>,
}
