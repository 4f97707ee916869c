//! The agent websocket protocol: JSON frames tagged by `type`. Documented with examples in
//! `docs/agent-protocol.md`; change both together.

use serde::{Deserialize, Serialize};

use handoffd_channels::WindowView;

use crate::handoff::{HandoffPackage, TranscriptEntry};

/// Agent presence as agents set it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Presence {
    Online,
    /// Signed in but not taking new conversations (a break); keeps what they hold.
    Away,
    /// Off duty while a client stays connected (an open inbox tab); no offers either.
    Offline,
}

/// Where a transfer goes: another agent or a team.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransferTarget {
    Agent(String),
    Team(String),
}

/// Frames an agent client sends.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientFrame {
    Auth {
        token: String,
    },
    Presence {
        status: Presence,
    },
    Accept {
        conversation_id: String,
    },
    /// Take a waiting conversation from the queue without an offer (manual teams).
    Claim {
        conversation_id: String,
    },
    /// Ask for the waiting conversations of one's teams (answered with a `queue` frame).
    GetQueue,
    Decline {
        conversation_id: String,
        #[serde(default)]
        reason: Option<String>,
    },
    Reply {
        conversation_id: String,
        text: String,
        #[serde(default)]
        client_id: Option<String>,
    },
    /// Sends a configured template (WhatsApp, the only thing allowed outside its window).
    Template {
        conversation_id: String,
        template: String,
        #[serde(default)]
        params: Vec<String>,
        #[serde(default)]
        client_id: Option<String>,
    },
    Note {
        conversation_id: String,
        text: String,
    },
    Typing {
        conversation_id: String,
        active: bool,
    },
    Transfer {
        conversation_id: String,
        #[serde(default)]
        to_agent: Option<String>,
        #[serde(default)]
        to_team: Option<String>,
        #[serde(default)]
        note: Option<String>,
    },
    Close {
        conversation_id: String,
    },
    GetConversation {
        conversation_id: String,
    },
    /// Supervisors: ask for the overview of one's teams (queues, agents' load, SLA state).
    GetOverview,
    /// Supervisors: put a waiting conversation with an agent.
    Assign {
        conversation_id: String,
        agent_id: String,
    },
    Ping,
}

impl ClientFrame {
    /// The frame's type name, echoed in acks and errors.
    pub fn kind(&self) -> &'static str {
        match self {
            ClientFrame::Auth { .. } => "auth",
            ClientFrame::Presence { .. } => "presence",
            ClientFrame::Accept { .. } => "accept",
            ClientFrame::Claim { .. } => "claim",
            ClientFrame::GetQueue => "get_queue",
            ClientFrame::Decline { .. } => "decline",
            ClientFrame::Reply { .. } => "reply",
            ClientFrame::Template { .. } => "template",
            ClientFrame::Note { .. } => "note",
            ClientFrame::Typing { .. } => "typing",
            ClientFrame::Transfer { .. } => "transfer",
            ClientFrame::Close { .. } => "close",
            ClientFrame::GetConversation { .. } => "get_conversation",
            ClientFrame::GetOverview => "get_overview",
            ClientFrame::Assign { .. } => "assign",
            ClientFrame::Ping => "ping",
        }
    }
}

/// The agent as the welcome frame describes them.
#[derive(Debug, Clone, Serialize)]
pub struct AgentInfo {
    pub id: String,
    pub name: String,
    pub teams: Vec<String>,
    pub capacity: u32,
    /// Supervisors also get `overview` and `sla_breach` frames, and may `assign` and
    /// `transfer` any conversation of their teams.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub supervisor: bool,
}

/// Frames the daemon sends to an agent client.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    Welcome {
        agent: AgentInfo,
        presence: Presence,
        /// Conversations this agent holds now.
        conversations: Vec<String>,
    },
    Offer {
        conversation_id: String,
        expires_in_ms: u64,
        package: Box<HandoffPackage>,
    },
    OfferWithdrawn {
        conversation_id: String,
        reason: String,
    },
    Assigned {
        conversation_id: String,
        package: Box<HandoffPackage>,
    },
    Message {
        conversation_id: String,
        message: TranscriptEntry,
    },
    Typing {
        conversation_id: String,
        active: bool,
    },
    Conversation {
        conversation_id: String,
        owner: crate::model::Owner,
        package: Option<Box<HandoffPackage>>,
        transcript: Vec<TranscriptEntry>,
        /// The messaging window, on channels that have one.
        #[serde(skip_serializing_if = "Option::is_none")]
        window: Option<WindowView>,
    },
    /// Where the conversation stands in its channel's messaging window: sent when an agent
    /// gets the conversation and after every customer message, so the agent knows what may
    /// be sent before typing.
    Window {
        conversation_id: String,
        window: WindowView,
    },
    /// The platform reported on a message sent to the customer (delivered, read, failed).
    Delivery {
        conversation_id: String,
        seq: u64,
        delivery: crate::model::DeliveryReport,
    },
    /// The waiting conversations of the agent's teams, in the order they will be served:
    /// the answer to `get_queue`, and pushed to agents of manual teams when it changes.
    Queue {
        entries: Vec<crate::router::QueuedView>,
    },
    /// Supervisors: their teams' queues, agents' load and SLA state; the answer to
    /// `get_overview`, and pushed when something changes.
    Overview(Box<crate::router::Overview>),
    /// Supervisors: an SLA deadline of one of their teams' conversations passed.
    SlaBreach {
        conversation_id: String,
        team: String,
        target: crate::model::SlaTarget,
        policy: String,
        due_at_ms: u64,
        breached_at_ms: u64,
        /// The agent holding it when the deadline passed.
        #[serde(skip_serializing_if = "Option::is_none")]
        agent_id: Option<String>,
        /// The configured actions being taken.
        actions: Vec<String>,
    },
    /// The conversation left this agent (closed, transferred, re-queued).
    Released {
        conversation_id: String,
        reason: String,
    },
    Ack {
        /// The type of the frame acknowledged.
        request: &'static str,
        #[serde(skip_serializing_if = "Option::is_none")]
        conversation_id: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        seq: Option<u64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        client_id: Option<String>,
    },
    Error {
        code: String,
        message: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        request: Option<&'static str>,
    },
    Pong,
}

impl ServerFrame {
    pub fn error(code: &str, message: impl Into<String>, request: Option<&'static str>) -> Self {
        ServerFrame::Error {
            code: code.into(),
            message: message.into(),
            request,
        }
    }

    pub fn ack(request: &'static str, conversation_id: Option<String>) -> Self {
        ServerFrame::Ack {
            request,
            conversation_id,
            seq: None,
            client_id: None,
        }
    }
}
