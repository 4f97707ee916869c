//! What the policy remembers of a conversation between messages: recent customer messages,
//! the bot's recent answers and confidences, failures, turns since the last handback. Live
//! conversations and `handoffd eval` feed it the same way, so both decide alike.

use std::cell::OnceCell;
use std::collections::VecDeque;

use crate::analysis::repetition::Features;
use crate::model::{MessageRecord, Role};

/// Customer messages kept for repetition checks.
const KEEP_CUSTOMER: usize = 32;
/// Bot answers kept for the bot-repeats check.
const KEEP_BOT: usize = 8;

/// One customer message of the current bot stretch, with its repetition features worked out
/// the first time they are needed and then kept: every later message is compared with it.
#[derive(Debug, Clone)]
pub struct CustomerTurn {
    /// The message's sequence number, named in the repetition trigger's evidence.
    pub seq: u64,
    /// The message as the customer wrote it.
    pub text: String,
    features: OnceCell<Option<Features>>,
}

impl CustomerTurn {
    /// What the repetition check compares; `None` for messages without content words.
    pub fn features(&self) -> Option<&Features> {
        self.features
            .get_or_init(|| Features::of(&self.text))
            .as_ref()
    }
}

/// The policy's memory of one conversation.
#[derive(Debug, Clone, Default)]
pub struct Tracker {
    /// Recent customer messages of the current bot stretch.
    customer: VecDeque<CustomerTurn>,
    /// Customer messages since the conversation started or was last handed back.
    customer_turns: usize,
    /// The bot's recent answers (joined texts of one turn), newest last.
    bot_answers: VecDeque<String>,
    /// Confidences of the bot's turns in the current stretch.
    stretch_confidences: Vec<f64>,
    /// Every confidence the bot reported, for the handoff package.
    confidence_history: Vec<f64>,
    consecutive_failures: usize,
    last_handback_ms: Option<u64>,
}

impl Tracker {
    /// Rebuilds the memory from a stored transcript (a conversation revived from the store).
    pub fn rebuild(messages: &[MessageRecord]) -> Tracker {
        let mut t = Tracker::default();
        let mut in_human_stretch = false;
        for m in messages {
            let human = m.handoff.is_some();
            if in_human_stretch && !human {
                t.handback(m.at_ms);
            }
            in_human_stretch = human;
            if human {
                continue;
            }
            match m.role {
                Role::Customer => {
                    t.observe_customer(m.seq, &m.text);
                    // A bot turn that sent nothing is kept on the customer's message.
                    if let Some(b) = &m.bot {
                        t.observe_bot(&[], b.confidence);
                    }
                }
                Role::Bot => {
                    let confidence = m.bot.as_ref().and_then(|b| b.confidence);
                    t.observe_bot(std::slice::from_ref(&m.text), confidence);
                }
                Role::Agent | Role::System | Role::Note => {}
            }
        }
        t
    }

    /// A customer message while the bot holds the conversation.
    pub fn observe_customer(&mut self, seq: u64, text: &str) {
        self.customer.push_back(CustomerTurn {
            seq,
            text: text.to_string(),
            features: OnceCell::new(),
        });
        if self.customer.len() > KEEP_CUSTOMER {
            self.customer.pop_front();
        }
        self.customer_turns += 1;
    }

    /// A bot turn that answered (possibly with nothing to send).
    pub fn observe_bot(&mut self, texts: &[String], confidence: Option<f64>) {
        self.consecutive_failures = 0;
        if let Some(c) = confidence {
            self.stretch_confidences.push(c);
            self.confidence_history.push(c);
        }
        if !texts.is_empty() {
            self.bot_answers.push_back(texts.join("\n"));
            if self.bot_answers.len() > KEEP_BOT {
                self.bot_answers.pop_front();
            }
        }
    }

    /// A bot turn that failed (error or timeout).
    pub fn observe_bot_failure(&mut self) {
        self.consecutive_failures += 1;
    }

    /// The agent handed the conversation back: the bot starts a fresh stretch.
    pub fn handback(&mut self, at_ms: u64) {
        self.customer.clear();
        self.customer_turns = 0;
        self.bot_answers.clear();
        self.stretch_confidences.clear();
        self.consecutive_failures = 0;
        self.last_handback_ms = Some(at_ms);
    }

    /// The customer's recent messages, oldest first; the current one last.
    pub fn customer_messages(&self) -> impl Iterator<Item = &CustomerTurn> {
        self.customer.iter()
    }

    pub fn customer_turns(&self) -> usize {
        self.customer_turns
    }

    pub fn bot_answers(&self) -> impl DoubleEndedIterator<Item = &String> {
        self.bot_answers.iter()
    }

    pub fn stretch_confidences(&self) -> &[f64] {
        &self.stretch_confidences
    }

    pub fn confidence_history(&self) -> &[f64] {
        &self.confidence_history
    }

    pub fn consecutive_failures(&self) -> usize {
        self.consecutive_failures
    }

    pub fn last_handback_ms(&self) -> Option<u64> {
        self.last_handback_ms
    }
}
