//! `handoffd eval`: replays recorded conversations through the analysis and the policy and
//! reports, per conversation and per trigger, when and why it would have escalated, so the
//! thresholds can be calibrated on a business's own history.
//!
//! Input is JSON Lines, one conversation per line (see `docs/escalation.md`). Replay follows
//! live operation: for the customer message at index i the policy sees everything before it,
//! the message itself, and then the bot turn at i+1 (if any) before it would be sent. The
//! first escalation ends the conversation's replay. No bot is called.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Decision, Policy, Tracker};
use crate::analysis::Analyzer;
use crate::analysis::sentiment::SentimentState;
use crate::bot::{BotReply, HandoffRequest};
use crate::handoff::TriggerHit;
use crate::model::{ConversationRecord, MessageRecord, Role};

/// One recorded conversation. Unknown fields are ignored everywhere.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct RecordedConversation {
    pub id: String,
    #[serde(default)]
    pub channel: Option<String>,
    pub messages: Vec<RecordedMessage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected: Option<Expected>,
}

/// One recorded message. `confidence`, `intent` and `handoff` describe bot turns.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct RecordedMessage {
    pub role: RecordedRole,
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handoff: Option<bool>,
}

/// Who wrote a recorded message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RecordedRole {
    Customer,
    Bot,
    Agent,
}

/// What should have happened: escalate or not, and at which message index.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq)]
pub struct Expected {
    pub escalate: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<usize>,
}

/// What the policy did with one conversation.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub id: String,
    pub escalated: bool,
    pub at: Option<usize>,
    pub triggers: Vec<String>,
    pub reasons: Vec<TriggerHit>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected: Option<Expected>,
}

/// A line that could not be read; the rest are still replayed.
#[derive(Debug, Clone, Serialize)]
pub struct LineError {
    pub line: usize,
    pub message: String,
}

/// Replays one conversation.
pub fn replay(conv: &RecordedConversation, analyzer: &Analyzer, policy: &Policy) -> Outcome {
    let mut tracker = Tracker::default();
    let mut mood = SentimentState::default();
    let mut decision: Option<(usize, Decision)> = None;
    let mut in_human_stretch = false;
    for (i, m) in conv.messages.iter().enumerate() {
        match m.role {
            RecordedRole::Agent => {
                in_human_stretch = true;
                continue;
            }
            RecordedRole::Bot => continue, // seen with the customer message before it
            RecordedRole::Customer => {}
        }
        if in_human_stretch {
            tracker.handback(0);
            in_human_stretch = false;
        }
        let seq = i as u64;
        let analysis = analyzer.analyze(&m.text);
        mood.update(analysis.sentiment);
        tracker.observe_customer(seq, &m.text);
        if let Some(d) = policy.on_customer_message(seq, &m.text, &analysis, &mood, &tracker) {
            decision = Some((i, d));
            break;
        }
        if let Some(bot) = conv
            .messages
            .get(i + 1)
            .filter(|b| b.role == RecordedRole::Bot)
        {
            let reply = BotReply {
                messages: vec![bot.text.clone()],
                confidence: bot.confidence,
                intent: bot.intent.clone(),
                handoff: bot.handoff.unwrap_or(false).then(|| HandoffRequest {
                    reason: "the recorded bot turn asked for a handoff".into(),
                    team: None,
                    priority: None,
                }),
                deferred: false,
                quick_replies: Vec::new(),
            };
            tracker.observe_bot(&reply.messages, reply.confidence);
            if let Some(d) = policy.on_bot_reply(seq, &reply, &tracker) {
                decision = Some((i, d));
                break;
            }
        }
    }
    match decision {
        Some((at, d)) => Outcome {
            id: conv.id.clone(),
            escalated: true,
            at: Some(at),
            triggers: d.triggers.iter().map(|t| t.trigger.clone()).collect(),
            reasons: d.triggers,
            expected: conv.expected,
        },
        None => Outcome {
            id: conv.id.clone(),
            escalated: false,
            at: None,
            triggers: Vec::new(),
            reasons: Vec::new(),
            expected: conv.expected,
        },
    }
}

/// Replays every line of a JSON Lines document; bad lines are reported, not fatal.
pub fn run(input: &str, analyzer: &Analyzer, policy: &Policy) -> (Vec<Outcome>, Vec<LineError>) {
    let mut outcomes = Vec::new();
    let mut errors = Vec::new();
    for (n, line) in input.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<RecordedConversation>(line) {
            Ok(conv) => outcomes.push(replay(&conv, analyzer, policy)),
            Err(e) => errors.push(LineError {
                line: n + 1,
                message: e.to_string(),
            }),
        }
    }
    (outcomes, errors)
}

/// Counts for one trigger or for the whole policy.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Metrics {
    pub true_positives: usize,
    pub false_positives: usize,
    pub false_negatives: usize,
    pub true_negatives: usize,
    pub precision: Option<f64>,
    pub recall: Option<f64>,
    pub f1: Option<f64>,
    /// Escalated before the labelled message.
    pub premature: usize,
    /// Escalated after the labelled message.
    pub late: usize,
}

impl Metrics {
    fn finish(&mut self) {
        let tp = self.true_positives as f64;
        let p = (self.true_positives + self.false_positives > 0)
            .then(|| tp / (self.true_positives + self.false_positives) as f64);
        let r = (self.true_positives + self.false_negatives > 0)
            .then(|| tp / (self.true_positives + self.false_negatives) as f64);
        self.precision = p;
        self.recall = r;
        self.f1 = match (p, r) {
            (Some(p), Some(r)) if p + r > 0.0 => Some(2.0 * p * r / (p + r)),
            (Some(_), Some(_)) => Some(0.0),
            _ => None,
        };
    }
}

/// The summary of a run.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub conversations: usize,
    pub escalated: usize,
    pub labelled: usize,
    pub errors: usize,
    pub overall: Metrics,
    /// Per trigger: a conversation counts as this trigger's positive when it fired.
    pub per_trigger: BTreeMap<String, Metrics>,
}

/// Precision, recall, F1, premature and late escalations, overall and per trigger.
pub fn summarize(outcomes: &[Outcome], errors: usize) -> Summary {
    let mut overall = Metrics::default();
    let mut per_trigger: BTreeMap<String, Metrics> = super::TRIGGERS
        .iter()
        .map(|t| (t.to_string(), Metrics::default()))
        .collect();
    let mut labelled = 0;
    for o in outcomes {
        let Some(exp) = o.expected else { continue };
        labelled += 1;
        tally(&mut overall, o.escalated, exp, o.at);
        for (id, m) in per_trigger.iter_mut() {
            let fired = o.triggers.iter().any(|t| t == id);
            tally(m, fired, exp, o.at);
        }
    }
    overall.finish();
    for m in per_trigger.values_mut() {
        m.finish();
    }
    Summary {
        conversations: outcomes.len(),
        escalated: outcomes.iter().filter(|o| o.escalated).count(),
        labelled,
        errors,
        overall,
        per_trigger,
    }
}

fn tally(m: &mut Metrics, predicted: bool, exp: Expected, at: Option<usize>) {
    match (predicted, exp.escalate) {
        (true, true) => {
            m.true_positives += 1;
            if let (Some(at), Some(want)) = (at, exp.at) {
                if at < want {
                    m.premature += 1;
                } else if at > want {
                    m.late += 1;
                }
            }
        }
        (true, false) => m.false_positives += 1,
        (false, true) => m.false_negatives += 1,
        (false, false) => m.true_negatives += 1,
    }
}

/// The readable table printed without `--json`.
pub fn table(outcomes: &[Outcome], errors: &[LineError], summary: &Summary) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "{:<24} {:<9} {:>4} {:<10} triggers\n",
        "conversation", "escalate", "at", "expected"
    ));
    for o in outcomes {
        let expected = match o.expected {
            Some(Expected {
                escalate: true,
                at: Some(a),
            }) => format!("yes@{a}"),
            Some(Expected {
                escalate: true,
                at: None,
            }) => "yes".into(),
            Some(Expected {
                escalate: false, ..
            }) => "no".into(),
            None => "-".into(),
        };
        out.push_str(&format!(
            "{:<24} {:<9} {:>4} {:<10} {}\n",
            truncate(&o.id, 24),
            if o.escalated { "yes" } else { "no" },
            o.at.map_or("-".into(), |a| a.to_string()),
            expected,
            o.triggers.join(",")
        ));
    }
    for e in errors {
        out.push_str(&format!("line {}: {}\n", e.line, e.message));
    }
    out.push_str(&format!(
        "\n{} conversations, {} escalated, {} labelled, {} bad lines\n",
        summary.conversations, summary.escalated, summary.labelled, summary.errors
    ));
    if summary.labelled > 0 {
        out.push_str(&format!(
            "{:<20} {:>4} {:>4} {:>4} {:>4} {:>9} {:>7} {:>6} {:>9} {:>5}\n",
            "trigger", "tp", "fp", "fn", "tn", "precision", "recall", "f1", "premature", "late"
        ));
        let row = |name: &str, m: &Metrics| {
            let f = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.3}"));
            format!(
                "{:<20} {:>4} {:>4} {:>4} {:>4} {:>9} {:>7} {:>6} {:>9} {:>5}\n",
                name,
                m.true_positives,
                m.false_positives,
                m.false_negatives,
                m.true_negatives,
                f(m.precision),
                f(m.recall),
                f(m.f1),
                m.premature,
                m.late
            )
        };
        out.push_str(&row("overall", &summary.overall));
        for (name, m) in &summary.per_trigger {
            out.push_str(&row(name, m));
        }
    }
    out
}

fn truncate(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

/// A stored conversation in the format `eval` reads. `expected` records what really
/// happened: whether it was handed to people, and at which customer message.
pub fn export_conversation(
    c: &ConversationRecord,
    messages: &[MessageRecord],
) -> RecordedConversation {
    let mut out = Vec::new();
    let mut escalated_at: Option<usize> = None;
    let first_trigger_seq = (c.handoffs == 1)
        .then_some(c.escalation.as_ref())
        .flatten()
        .and_then(|e| e.triggers.first().map(|t| t.message_seq));
    let mut last_customer: Option<usize> = None;
    for m in messages {
        let role = match m.role {
            Role::Customer => RecordedRole::Customer,
            Role::Bot => RecordedRole::Bot,
            Role::Agent => RecordedRole::Agent,
            Role::System | Role::Note => continue,
        };
        if role == RecordedRole::Agent && escalated_at.is_none() {
            escalated_at = last_customer;
        }
        let bot = m.bot.as_ref().filter(|_| role == RecordedRole::Bot);
        if role == RecordedRole::Customer {
            if first_trigger_seq == Some(m.seq) && escalated_at.is_none() {
                escalated_at = Some(out.len());
            }
            last_customer = Some(out.len());
        }
        out.push(RecordedMessage {
            role,
            text: m.text.clone(),
            confidence: bot.and_then(|b| b.confidence),
            intent: bot.and_then(|b| b.intent.clone()),
            handoff: None,
        });
    }
    RecordedConversation {
        id: c.id.clone(),
        channel: Some(c.channel.as_str().to_string()),
        messages: out,
        expected: Some(Expected {
            escalate: c.handoffs > 0,
            at: if c.handoffs > 0 { escalated_at } else { None },
        }),
    }
}
