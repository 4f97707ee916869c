//! The bot that answers first. `Bot` is the seam every adapter (the built-in FAQ bot here;
//! webhook, Rasa and Bot Framework later) plugs into; the conversation actor calls it with a
//! timeout and never trusts it to answer.

pub mod botframework;
pub mod faq;
pub mod rasa;
pub mod registry;
pub mod webhook;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use handoffd_channels::{ChannelKind, Contact};

pub use registry::Bots;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::config::{BotConfig, FaqEntry};
use crate::handoff::TranscriptEntry;

/// A future a bot returns; boxed so bots can be chosen at run time.
pub type BotFuture = Pin<Box<dyn Future<Output = Result<BotReply, BotError>> + Send>>;

/// Everything a bot is given for one customer message.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct BotTurn {
    pub conversation_id: String,
    /// widget, telegram, discord, whatsapp, messenger, instagram or email.
    #[schemars(with = "String")]
    pub channel: ChannelKind,
    #[schemars(with = "crate::handoff::PackageContact")]
    pub contact: Contact,
    /// The message to answer.
    pub message: TranscriptEntry,
    /// The whole customer-visible transcript, agents' messages included (their `handoff`
    /// field tells which human stretch they belong to). Internal notes are left out.
    pub transcript: Vec<TranscriptEntry>,
    /// True on the first turn after an agent handed the conversation back.
    pub resumed_after_handoff: bool,
    /// The conversation's language as detected (ISO 639-1), when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// Customer messages so far, this one included. Bots that say they need no transcript
    /// ([`Bot::wants_transcript`]) get an empty one and this count instead; not sent to
    /// external bots, which count from the transcript.
    #[serde(skip)]
    #[schemars(skip)]
    pub customer_messages: usize,
}

/// A bot's request to hand the conversation to people.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct HandoffRequest {
    pub reason: String,
    #[serde(default)]
    pub team: Option<String>,
    #[serde(default)]
    pub priority: Option<u8>,
}

/// What a bot answers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BotReply {
    /// Messages to send, in order; may be empty.
    #[serde(default)]
    pub messages: Vec<String>,
    /// How sure the bot is, 0..1, when it knows.
    #[serde(default)]
    pub confidence: Option<f64>,
    #[serde(default)]
    pub intent: Option<String>,
    #[serde(default)]
    pub handoff: Option<HandoffRequest>,
    /// One-tap answers offered after the last message (buttons on the widget; listed after
    /// the text on channels without buttons).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub quick_replies: Vec<String>,
    /// The bot took the message and will answer later through the API (HTTP 202): no
    /// fallback is sent and the turn is not judged.
    #[serde(skip)]
    pub deferred: bool,
}

impl BotReply {
    /// Checks what serde cannot: ranges and sizes.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(c) = self.confidence
            && !(0.0..=1.0).contains(&c)
        {
            return Err(format!("confidence {c} is outside 0..1"));
        }
        if let Some(p) = self.handoff.as_ref().and_then(|h| h.priority)
            && p > 3
        {
            return Err(format!("handoff priority {p} is outside 0..3"));
        }
        if self.messages.len() > 20 {
            return Err("a reply holds at most 20 messages".into());
        }
        if self.messages.iter().any(|m| m.trim().is_empty()) {
            return Err("a message must not be empty".into());
        }
        if self.messages.iter().any(|m| m.chars().count() > 8000) {
            return Err("a message holds at most 8000 characters".into());
        }
        if self.quick_replies.len() > 10 {
            return Err("at most 10 quick replies".into());
        }
        if self
            .quick_replies
            .iter()
            .any(|q| q.trim().is_empty() || q.chars().count() > 80)
        {
            return Err("a quick reply is 1 to 80 characters".into());
        }
        if !self.quick_replies.is_empty() && self.messages.is_empty() {
            return Err("quick replies need a message to follow".into());
        }
        Ok(())
    }
}

/// What happened to a handoff, as a bot is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
pub enum BotEventKind {
    /// An agent took the conversation.
    #[serde(rename = "handoff.accepted")]
    Accepted,
    /// The handoff could not be served; the conversation is the bot's again.
    #[serde(rename = "handoff.failed")]
    Failed,
    /// The agent closed the conversation; it is the bot's again.
    #[serde(rename = "handoff.completed")]
    Completed,
}

impl BotEventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            BotEventKind::Accepted => "handoff.accepted",
            BotEventKind::Failed => "handoff.failed",
            BotEventKind::Completed => "handoff.completed",
        }
    }
}

/// A handoff event sent to the bot of a conversation.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct BotEvent {
    #[serde(skip)]
    pub kind: BotEventKind,
    pub conversation_id: String,
    #[schemars(with = "String")]
    pub channel: ChannelKind,
    pub at_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// `handoff.completed`: the messages of the human stretch that just ended (customer,
    /// agent and system turns; internal notes left out).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub agent_transcript: Vec<TranscriptEntry>,
    /// `handoff.completed`: the last `seq` of the human stretch; the bot's turn starts after it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub human_stretch_ended_at_seq: Option<u64>,
    /// `handoff.completed`: whether the bot's reply to this event is sent to the customer
    /// (`after_handoff = "resume"`) or ignored (`"wait"`: the bot waits for the customer).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resume: Option<bool>,
}

/// What a bot does when an agent hands a conversation back.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AfterHandoff {
    /// Wait for the customer's next message.
    #[default]
    Wait,
    /// Speak first: the bot's answer to `handoff.completed` is sent (a rating question...).
    Resume,
}

/// Why a bot gave no answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BotError {
    #[error("the bot did not answer within {0} ms")]
    Timeout(u64),
    #[error("the bot failed: {0}")]
    Failed(String),
}

/// A bot adapter.
pub trait Bot: Send + Sync {
    /// Name recorded as the author of the bot's messages.
    fn name(&self) -> &str;
    fn answer(&self, turn: BotTurn) -> BotFuture;

    /// Tells the bot what became of a handoff. Bots that do not care answer nothing.
    fn event(&self, _event: BotEvent) -> BotFuture {
        Box::pin(async { Ok(BotReply::default()) })
    }

    /// Whether the bot speaks first after a handback.
    fn after_handoff(&self) -> AfterHandoff {
        AfterHandoff::Wait
    }

    /// True when `answer` computes its reply in this process without waiting on anything:
    /// the conversation then commits the customer's message and the reply together, one
    /// journal request per turn. A bot that may be slow must say false, or every customer's
    /// ack would wait for it.
    fn answers_in_process(&self) -> bool {
        false
    }

    /// False when the bot never reads [`BotTurn::transcript`]: the conversation then does
    /// not copy its whole transcript into every turn (a cost that grows with the
    /// conversation).
    fn wants_transcript(&self) -> bool {
        true
    }
}

/// The HTTP client every external bot adapter uses: the turn's timeout, a shorter connect
/// timeout, and rustls with the process's crypto provider.
pub(crate) fn http_client(timeout: std::time::Duration) -> Result<reqwest::Client, BotError> {
    handoffd_channels::meta::install_crypto_provider();
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(std::time::Duration::from_secs(5)))
        .build()
        .map_err(|e| BotError::Failed(format!("cannot build the HTTP client: {e}")))
}

/// Builds the built-in FAQ bot.
pub fn faq_from_config(cfg: &BotConfig) -> Result<Arc<dyn Bot>, faq::FaqFileError> {
    let mut entries: Vec<FaqEntry> = cfg.faq.clone();
    if let Some(path) = &cfg.faq_file {
        entries.extend(faq::load_faq_file(path)?);
    }
    Ok(Arc::new(FaqBot::new(entries, cfg)))
}

/// The built-in bot: answers from question/answer pairs by lexical retrieval.
pub struct FaqBot {
    index: faq::FaqIndex,
    entries: Vec<FaqEntry>,
    threshold: f64,
    fallback: String,
    greeting: Option<String>,
}

impl FaqBot {
    pub fn new(entries: Vec<FaqEntry>, cfg: &BotConfig) -> Self {
        FaqBot {
            index: faq::FaqIndex::new(&entries),
            entries,
            threshold: cfg.confidence_threshold,
            fallback: cfg.fallback_reply.clone(),
            greeting: cfg.greeting.clone(),
        }
    }

    fn reply_to(&self, turn: &BotTurn) -> BotReply {
        let found = self.index.best(&turn.message.text);
        let confidence = found.as_ref().map(|m| m.confidence).unwrap_or(0.0);
        let mut messages = Vec::new();
        // A greeting only on the very first customer message.
        let first = turn.customer_messages <= 1;
        if first && let Some(g) = &self.greeting {
            messages.push(g.clone());
        }
        match found.filter(|m| m.confidence >= self.threshold) {
            Some(m) => {
                let Some(entry) = self.entries.get(m.entry) else {
                    return BotReply::default();
                };
                messages.push(entry.answer.clone());
                BotReply {
                    messages,
                    confidence: Some(confidence),
                    intent: entry.intent.clone(),
                    handoff: entry.handoff.then(|| HandoffRequest {
                        reason: format!("the FAQ entry `{}` is handled by people", entry.question),
                        team: None,
                        priority: None,
                    }),
                    deferred: false,
                    quick_replies: entry.quick_replies.clone(),
                }
            }
            None => {
                messages.push(self.fallback.clone());
                BotReply {
                    messages,
                    confidence: Some(confidence),
                    intent: None,
                    handoff: None,
                    deferred: false,
                    quick_replies: Vec::new(),
                }
            }
        }
    }
}

impl Bot for FaqBot {
    fn name(&self) -> &str {
        "faq-bot"
    }

    fn answer(&self, turn: BotTurn) -> BotFuture {
        let reply = self.reply_to(&turn);
        Box::pin(async move { Ok(reply) })
    }

    fn answers_in_process(&self) -> bool {
        true
    }

    fn wants_transcript(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Role;

    fn entry(q: &str, a: &str) -> FaqEntry {
        FaqEntry {
            question: q.into(),
            alternatives: vec![],
            answer: a.into(),
            intent: Some("hours".into()),
            handoff: false,
            quick_replies: Vec::new(),
        }
    }

    fn turn(text: &str) -> BotTurn {
        let m = TranscriptEntry {
            seq: 1,
            role: Role::Customer,
            author: None,
            text: text.into(),
            at_ms: 0,
            sentiment: None,
            handoff: None,
            attachments: vec![],
            automated: false,
            delivery: None,
        };
        BotTurn {
            conversation_id: "c".into(),
            channel: ChannelKind::Widget,
            contact: Contact::default(),
            message: m.clone(),
            transcript: vec![m],
            resumed_after_handoff: false,
            language: None,
            customer_messages: 1,
        }
    }

    #[tokio::test]
    async fn answers_known_questions_and_falls_back_on_unknown_ones() {
        let cfg = BotConfig::default();
        let bot = FaqBot::new(
            vec![entry("What are your opening hours?", "We are open 9 to 5.")],
            &cfg,
        );
        let r = bot
            .answer(turn("what are your opening hours"))
            .await
            .expect("reply");
        assert_eq!(r.messages, vec!["We are open 9 to 5.".to_string()]);
        assert!(r.confidence.unwrap_or(0.0) >= cfg.confidence_threshold);
        assert_eq!(r.intent.as_deref(), Some("hours"));
        let r = bot
            .answer(turn("do you sell submarines"))
            .await
            .expect("reply");
        assert_eq!(r.messages, vec![cfg.fallback_reply.clone()]);
        assert!(r.confidence.unwrap_or(1.0) < cfg.confidence_threshold);
    }

    /// The FAQ bot is given no transcript: the count of customer messages decides the
    /// greeting.
    #[tokio::test]
    async fn the_greeting_comes_with_the_first_customer_message_only() {
        let cfg = BotConfig {
            greeting: Some("Hello!".into()),
            ..BotConfig::default()
        };
        let bot = FaqBot::new(vec![entry("What are your opening hours?", "9 to 5.")], &cfg);
        assert!(!bot.wants_transcript());
        let first = bot.answer(turn("opening hours?")).await.expect("reply");
        assert_eq!(first.messages, ["Hello!", "9 to 5."]);
        let mut later = turn("opening hours?");
        later.transcript.clear();
        later.customer_messages = 2;
        let second = bot.answer(later).await.expect("reply");
        assert_eq!(second.messages, ["9 to 5."]);
    }
}
