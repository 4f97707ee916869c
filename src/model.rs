//! The records handoffd keeps: conversations, their messages, the queue, assignments, agents
//! and pending deliveries. They are plain serde types; `store/` decides how they sit on disk.

use handoffd_channels::{
    Attachment, ChannelKind, Contact, DeliveryMode, DeliveryStatus, OutboundPayload,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::analysis::entities::FoundEntity;
use crate::analysis::sentiment::SentimentState;
use crate::handoff::Escalation;

/// Who answers the customer. Exactly one at a time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Owner {
    Bot,
    Queued {
        team: String,
        since_ms: u64,
    },
    Agent {
        agent_id: String,
        team: String,
        since_ms: u64,
    },
}

impl Owner {
    /// The short name used in filters and the API.
    pub fn name(&self) -> &'static str {
        match self {
            Owner::Bot => "bot",
            Owner::Queued { .. } => "queued",
            Owner::Agent { .. } => "agent",
        }
    }

    /// The team, for queued and agent-owned conversations.
    pub fn team(&self) -> Option<&str> {
        match self {
            Owner::Bot => None,
            Owner::Queued { team, .. } | Owner::Agent { team, .. } => Some(team),
        }
    }
}

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Customer,
    Bot,
    Agent,
    /// Notices from handoffd itself ("a person is coming").
    System,
    /// An agent's internal note: never shown to the customer.
    Note,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Customer => "customer",
            Role::Bot => "bot",
            Role::Agent => "agent",
            Role::System => "system",
            Role::Note => "note",
        }
    }

    /// Whether the customer may see messages of this role.
    pub fn customer_visible(self) -> bool {
        !matches!(self, Role::Note)
    }
}

/// What the bot reported along with a reply, kept for escalation and for audit.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BotTurnMeta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intent: Option<String>,
    /// Number of transcript messages the bot was given for this turn.
    pub transcript_len: usize,
    /// How many of them were written by agents: proof the bot saw the human stretch.
    pub agent_messages_seen: usize,
    /// True on the bot's first turn after an agent closed the conversation.
    #[serde(default)]
    pub resumed_after_handoff: bool,
    /// Why the bot gave no answer (error or timeout), when it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
}

/// One message of a conversation, as journaled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageRecord {
    pub seq: u64,
    pub role: Role,
    /// Agent id for agent messages and notes; bot name for bot messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// The name the customer sees for the author (an agent's display name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author_name: Option<String>,
    pub text: String,
    pub at_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform_message_id: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<Attachment>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sentiment: Option<f32>,
    /// Detected language (ISO 639-1) of a customer message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// Intents the rules found in a customer message.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub intents: Vec<String>,
    /// Which handoff (1, 2...) this message belongs to when written while an agent owned the
    /// conversation; `None` for the bot's stretches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handoff: Option<u32>,
    /// Boxed, as most messages have none: a transcript keeps hundreds of messages in memory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bot: Option<Box<BotTurnMeta>>,
    /// A machine wrote this customer message (auto-reply, bounce): recorded, never answered
    /// by the bot, and never a trigger for escalation.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub automated: bool,
    /// How it was sent on a platform with a messaging window (tag, template).
    #[serde(default, skip_serializing_if = "DeliveryMode::is_standard")]
    pub delivery_mode: DeliveryMode,
    /// What the platform last reported about an outbound message (delivered, read...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<Box<DeliveryReport>>,
    /// A bot's quick replies, for channels that show them as buttons.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub quick_replies: Vec<String>,
    /// The platform's time of a customer message, when it differs from `at_ms`. The
    /// conversation's messaging window runs from it, and it is what lets a read of the
    /// journal bring the conversation record up to date from its messages
    /// ([`ConversationRecord::fold_message`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform_at_ms: Option<u64>,
}

/// The latest delivery report on an outbound message, as the platform sent it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DeliveryReport {
    /// `sent`, `delivered`, `read` or `failed`.
    #[schemars(with = "String")]
    pub status: DeliveryStatus,
    pub at_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Where a message the daemon sent lives, found by the id its platform gave it, so the
/// platform's later delivery and read reports reach it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboundRef {
    pub conversation_id: String,
    pub seq: u64,
}

impl MessageRecord {
    /// The client id a widget gave its message (kept inside the platform id).
    pub fn client_id(&self) -> Option<&str> {
        self.platform_message_id
            .as_deref()
            .and_then(|p| p.strip_prefix("c:"))
    }
}

/// A conversation's state apart from its messages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConversationRecord {
    pub id: String,
    pub channel: ChannelKind,
    /// The conversation's key on its channel.
    pub key: String,
    pub contact: Contact,
    pub owner: Owner,
    pub created_at_ms: u64,
    pub updated_at_ms: u64,
    /// Sequence number of the last message.
    pub last_seq: u64,
    /// How many times the conversation was handed to people.
    #[serde(default)]
    pub handoffs: u32,
    #[serde(default)]
    pub sentiment: SentimentState,
    #[serde(default)]
    pub entities: Vec<KnownEntity>,
    /// The latest escalation: why, which team, what priority.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalation: Option<Escalation>,
    /// The agent who helped last, for returning customers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_agent: Option<String>,
    /// The bot's next turn is its first after a human stretch.
    #[serde(default)]
    pub bot_resuming: bool,
    /// The language the customer writes in, as last detected (ISO 639-1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// When the customer last wrote, by the platform's clock: messaging windows run from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_customer_message_ms: Option<u64>,
    /// Where agents' replies are also mailed while nobody could answer in time (the
    /// `email` fallback); dropped when the conversation closes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub follow_up_email: Option<String>,
    /// The customer was asked for an email address and has not given one yet.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub follow_up_pending: bool,
}

/// An entity found in the conversation and where.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct KnownEntity {
    pub kind: String,
    pub value: String,
    /// Sequence number of the message it was first seen in.
    pub seq: u64,
}

impl KnownEntity {
    pub fn from_found(found: FoundEntity, seq: u64) -> Self {
        Self {
            kind: found.kind,
            value: found.value,
            seq,
        }
    }
}

/// A conversation waiting for an agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueEntry {
    pub conversation_id: String,
    pub team: String,
    pub priority: u8,
    pub enqueued_at_ms: u64,
    /// Orders entries enqueued in the same millisecond; grows across restarts.
    pub ticket: u64,
    /// Set by a transfer to a named agent: only that agent is offered the conversation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub only_agent: Option<String>,
    /// The agent who helped this customer last: offered first when available (sticky
    /// routing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferred_agent: Option<String>,
    /// Skills an agent must have to be offered it (from the routing rules).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skills: Vec<String>,
    /// The customer's language: agents who speak it are offered first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// The conversation's channel: what it weighs against an agent's capacity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<ChannelKind>,
}

/// Which agent holds a conversation. Written only on the router's decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Assignment {
    pub conversation_id: String,
    pub agent_id: String,
    pub team: String,
    pub assigned_at_ms: u64,
    /// The queue entry it came from, so a re-queue keeps its original place.
    pub queued: QueueEntry,
}

/// An agent account. The token itself is never stored, only its hash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentRecord {
    pub id: String,
    pub display_name: String,
    pub teams: Vec<String>,
    pub capacity: u32,
    pub token_hash: String,
    pub created_at_ms: u64,
    /// What the agent can handle; routing rules may require skills.
    #[serde(default)]
    pub skills: Vec<String>,
    /// Languages the agent writes (ISO 639-1); empty means any. Customers are offered
    /// first to agents who speak their language.
    #[serde(default)]
    pub languages: Vec<String>,
    /// Supervisors see their teams' queues, agents' load and SLA state live on the agent
    /// websocket, hear of SLA breaches, and may assign or transfer any conversation of
    /// their teams (all teams when they belong to none).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub supervisor: bool,
}

/// Something to deliver to a channel, kept until the channel reports a final outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxEntry {
    pub delivery_id: String,
    pub conversation_id: String,
    pub channel: ChannelKind,
    pub conversation_key: String,
    pub payload: OutboundPayload,
    pub attempts: u32,
    pub created_at_ms: u64,
    /// False for deliveries that were never written to the outbox table (channels that
    /// replay from the journal): there is nothing to delete when they end.
    #[serde(default = "stored_in_outbox")]
    pub stored: bool,
}

fn stored_in_outbox() -> bool {
    true
}

impl OutboxEntry {
    /// What the channel is asked to deliver.
    pub fn outbound(&self) -> handoffd_channels::Outbound {
        handoffd_channels::Outbound {
            delivery_id: self.delivery_id.clone(),
            channel: self.channel,
            conversation_key: self.conversation_key.clone(),
            payload: self.payload.clone(),
        }
    }
}

impl MessageRecord {
    /// What a channel is asked to deliver for this message: its visible form, built once
    /// and shared by the outbox entry and every connection it reaches.
    pub fn payload(&self) -> handoffd_channels::OutboundPayload {
        handoffd_channels::OutboundPayload::Message(std::sync::Arc::new(self.visible()))
    }

    /// The form a channel shows the customer.
    pub fn visible(&self) -> handoffd_channels::VisibleMessage {
        handoffd_channels::VisibleMessage {
            seq: self.seq,
            role: self.role.as_str().to_string(),
            author_name: self.author_name.clone(),
            text: self.text.clone(),
            sent_at_ms: self.at_ms,
            client_id: self.client_id().map(str::to_string),
            delivery_mode: self.delivery_mode.clone(),
            quick_replies: self.quick_replies.clone(),
        }
    }
}

impl ConversationRecord {
    /// A conversation that has not been written yet.
    pub fn new(
        id: String,
        channel: ChannelKind,
        key: String,
        contact: Contact,
        now_ms: u64,
    ) -> Self {
        ConversationRecord {
            id,
            channel,
            key,
            contact,
            owner: Owner::Bot,
            created_at_ms: now_ms,
            updated_at_ms: now_ms,
            last_seq: 0,
            handoffs: 0,
            sentiment: SentimentState::default(),
            entities: Vec::new(),
            escalation: None,
            last_agent: None,
            bot_resuming: false,
            language: None,
            last_customer_message_ms: None,
            follow_up_email: None,
            follow_up_pending: false,
        }
    }
}

impl ConversationRecord {
    /// Brings the record's per-message fields up to date with a message journaled after it.
    ///
    /// Why: most commits change nothing in a conversation but what its newest message says
    /// (the last seq and time, the running sentiment, the language, when the customer last
    /// wrote). Rewriting the whole record for that copied one more B-tree leaf into every
    /// commit; instead the conversation actor leaves the record out of a commit whenever
    /// folding the commit's messages into the record as stored gives exactly the record it
    /// holds, and the store folds the messages written after the record on every read. So
    /// this function must stay the exact replay of what the actor does per message; anything
    /// it does not cover makes the actor write the record.
    pub fn fold_message(&mut self, m: &MessageRecord) {
        if m.seq <= self.last_seq {
            // Already in the record (a message rewritten in place, or an older one).
            return;
        }
        self.last_seq = m.seq;
        self.updated_at_ms = m.at_ms;
        if m.role == Role::Customer {
            // An auto-reply's wording says nothing about how the customer feels.
            if !m.automated {
                self.sentiment.update(m.sentiment.unwrap_or(0.0));
            }
            if m.language.is_some() {
                self.language = m.language.clone();
            }
            let sent = m.platform_at_ms.unwrap_or(m.at_ms);
            self.last_customer_message_ms = Some(
                self.last_customer_message_ms
                    .map_or(sent, |last| last.max(sent)),
            );
        }
    }
}

/// Tickets order the queue: microseconds since the epoch at first use, then one more each
/// time, so they keep growing across restarts while the clock does.
pub fn next_ticket() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let now = handoffd_channels::now_ms().saturating_mul(1000);
    let mut cur = NEXT.load(Ordering::Relaxed);
    loop {
        let next = cur.max(now) + 1;
        match NEXT.compare_exchange(cur, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return next,
            Err(actual) => cur = actual,
        }
    }
}

/// Which promise to the customer an SLA timer measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SlaTarget {
    /// From escalation until an agent holds the conversation.
    Assignment,
    /// From escalation until the agent's first reply.
    FirstResponse,
    /// From a customer message, while an agent holds the conversation, until the agent answers.
    NextResponse,
    /// From escalation until the agent closes the conversation.
    Resolution,
}

impl SlaTarget {
    /// The stable name used in config, frames and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            SlaTarget::Assignment => "assignment",
            SlaTarget::FirstResponse => "first_response",
            SlaTarget::NextResponse => "next_response",
            SlaTarget::Resolution => "resolution",
        }
    }
}

/// One running SLA timer. Deadlines are absolute wall-clock times worked out in the team's
/// business hours when the timer starts, so a restart resumes them unchanged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlaTimer {
    pub target: SlaTarget,
    pub started_at_ms: u64,
    /// `None` when the team's hours never open again: such a timer cannot be breached.
    pub due_at_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub met_at_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub breached_at_ms: Option<u64>,
}

impl SlaTimer {
    /// Still counting: neither met nor breached.
    pub fn running(&self) -> bool {
        self.met_at_ms.is_none() && self.breached_at_ms.is_none()
    }
}

/// The SLA timers of one escalated conversation, kept by the router from escalation to close
/// (or until it goes back to the bot).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlaClock {
    pub conversation_id: String,
    /// The team it is with now (transfers and overflow move it; deadlines stay).
    pub team: String,
    /// The name of the policy that set the deadlines.
    pub policy: String,
    pub started_at_ms: u64,
    pub timers: Vec<SlaTimer>,
}
