//! The handoff package: everything an agent needs so that the customer never repeats
//! themselves. A typed structure with a published JSON Schema (`docs/handoff-package.schema.json`);
//! readers ignore fields they do not know, so it can grow.

use handoffd_channels::{Attachment, ChannelKind, Contact};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::analysis::sentiment::SentimentState;
use crate::model::{ConversationRecord, KnownEntity, MessageRecord, Role};

/// One trigger that fired, with the evidence that made it fire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TriggerHit {
    /// Stable trigger id: `explicit_request`, `keyword_rule`, `low_confidence`, `bot_handoff`.
    pub trigger: String,
    /// What matched: the phrase, the rule's name, the confidences, the bot's reason.
    pub evidence: String,
    /// The message that fired it.
    pub message_seq: u64,
    /// The score behind the decision, when there is one (similarity, confidence).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
}

/// The escalation decision, kept on the conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Escalation {
    pub triggers: Vec<TriggerHit>,
    /// 0 (low) to 3 (urgent).
    pub priority: u8,
    pub team: String,
    pub escalated_at_ms: u64,
    /// The intent the bot or the rules reported last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intent: Option<String>,
    /// The bot's confidence on each of its replies so far, oldest first.
    #[serde(default)]
    pub confidence_history: Vec<f64>,
    /// A few lines an agent can read in five seconds.
    pub summary: String,
}

/// A transcript line as agents and bots see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TranscriptEntry {
    pub seq: u64,
    pub role: Role,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    pub text: String,
    pub at_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sentiment: Option<f32>,
    /// Set on messages written while a person owned the conversation: which handoff.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handoff: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(with = "Vec<serde_json::Value>")]
    pub attachments: Vec<Attachment>,
    /// A machine wrote this customer message (auto-reply, out-of-office, bounce): the bot
    /// did not answer it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub automated: bool,
    /// What the customer's platform last reported about a message sent to them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<crate::model::DeliveryReport>,
}

impl From<&MessageRecord> for TranscriptEntry {
    fn from(m: &MessageRecord) -> Self {
        TranscriptEntry {
            seq: m.seq,
            role: m.role,
            author: m.author.clone(),
            text: m.text.clone(),
            at_ms: m.at_ms,
            sentiment: m.sentiment,
            handoff: m.handoff,
            attachments: m.attachments.clone(),
            automated: m.automated,
            delivery: m.delivery.as_deref().cloned(),
        }
    }
}

/// The contact as the package shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PackageContact {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub channel_user_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
}

impl From<&Contact> for PackageContact {
    fn from(c: &Contact) -> Self {
        PackageContact {
            name: c.name.clone(),
            channel_user_id: c.channel_user_id.clone(),
            language: c.language.clone(),
        }
    }
}

/// Sentiment as the package shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PackageSentiment {
    pub current: f32,
    pub lowest: f32,
    pub trend: f32,
}

impl From<&SentimentState> for PackageSentiment {
    fn from(s: &SentimentState) -> Self {
        PackageSentiment {
            current: s.current,
            lowest: s.lowest,
            trend: s.trend,
        }
    }
}

/// What an agent receives with an offer and sees beside the conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct HandoffPackage {
    /// Version of this structure; bumped only on incompatible changes.
    pub version: u32,
    pub conversation_id: String,
    #[schemars(with = "String")]
    pub channel: ChannelKind,
    pub contact: PackageContact,
    pub transcript: Vec<TranscriptEntry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intent: Option<String>,
    pub confidence_history: Vec<f64>,
    pub sentiment: PackageSentiment,
    pub entities: Vec<KnownEntity>,
    pub summary: String,
    pub triggers: Vec<TriggerHit>,
    pub priority: u8,
    pub team: String,
    pub escalated_at_ms: u64,
    /// How many times this conversation was handed to people before, this one included.
    pub handoff_number: u32,
    /// The agent who helped this customer last, for sticky routing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_agent: Option<String>,
    /// Replies are also mailed here (the customer left an address when nobody could
    /// answer in time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub follow_up_email: Option<String>,
}

impl HandoffPackage {
    /// Builds the package from the conversation, its escalation and its messages.
    pub fn assemble(
        conv: &ConversationRecord,
        escalation: &Escalation,
        messages: &[MessageRecord],
    ) -> HandoffPackage {
        HandoffPackage {
            version: 1,
            conversation_id: conv.id.clone(),
            channel: conv.channel,
            contact: (&conv.contact).into(),
            transcript: messages.iter().map(TranscriptEntry::from).collect(),
            intent: escalation.intent.clone(),
            confidence_history: escalation.confidence_history.clone(),
            sentiment: (&conv.sentiment).into(),
            entities: conv.entities.clone(),
            summary: escalation.summary.clone(),
            triggers: escalation.triggers.clone(),
            priority: escalation.priority,
            team: escalation.team.clone(),
            escalated_at_ms: escalation.escalated_at_ms,
            handoff_number: conv.handoffs,
            previous_agent: conv.last_agent.clone(),
            follow_up_email: conv.follow_up_email.clone(),
        }
    }

    /// The JSON Schema published in `docs/handoff-package.schema.json`.
    pub fn json_schema() -> serde_json::Value {
        serde_json::to_value(schemars::schema_for!(HandoffPackage)).unwrap_or_default()
    }
}
