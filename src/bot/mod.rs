//! The bot that answers first. `Bot` is the seam every adapter (the built-in FAQ bot here;
//! webhook, Rasa and Bot Framework later) plugs into; the conversation actor calls it with a
//! timeout and never trusts it to answer.

pub mod faq;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use handoffd_channels::{ChannelKind, Contact};
use serde::{Deserialize, Serialize};

use crate::config::{BotConfig, FaqEntry};
use crate::handoff::TranscriptEntry;

/// A future a bot returns; boxed so bots can be chosen at run time.
pub type BotFuture = Pin<Box<dyn Future<Output = Result<BotReply, BotError>> + Send>>;

/// Everything a bot is given for one customer message.
#[derive(Debug, Clone, Serialize)]
pub struct BotTurn {
    pub conversation_id: String,
    pub channel: ChannelKind,
    pub contact: Contact,
    /// The message to answer.
    pub message: TranscriptEntry,
    /// The whole customer-visible transcript, agents' messages included (their `handoff`
    /// field tells which human stretch they belong to). Internal notes are left out.
    pub transcript: Vec<TranscriptEntry>,
    /// True on the first turn after an agent handed the conversation back.
    pub resumed_after_handoff: bool,
}

/// A bot's request to hand the conversation to people.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HandoffRequest {
    pub reason: String,
    #[serde(default)]
    pub team: Option<String>,
    #[serde(default)]
    pub priority: Option<u8>,
}

/// What a bot answers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BotReply {
    /// Messages to send, in order; may be empty.
    pub messages: Vec<String>,
    /// How sure the bot is, 0..1, when it knows.
    pub confidence: Option<f64>,
    pub intent: Option<String>,
    pub handoff: Option<HandoffRequest>,
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
}

/// Builds the configured bot.
pub fn from_config(cfg: &BotConfig) -> Result<Arc<dyn Bot>, faq::FaqFileError> {
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
        let first = turn
            .transcript
            .iter()
            .filter(|m| m.role == crate::model::Role::Customer)
            .count()
            <= 1;
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
                }
            }
            None => {
                messages.push(self.fallback.clone());
                BotReply {
                    messages,
                    confidence: Some(confidence),
                    intent: None,
                    handoff: None,
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
}
