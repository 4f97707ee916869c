//! The escalation policy: signals in, a decision out, with the reason and evidence of every
//! trigger that fired. Customer-side triggers are checked before the bot is asked (a customer
//! asking for a person should not get a bot answer first); bot-side triggers after the bot
//! answered and before its answer is sent; `bot_failure` when the bot gave no answer.
//!
//! Trigger ids are stable: they appear in logs, the handoff package and `handoffd eval`.

pub mod config;
pub mod eval;
pub mod explicit;
pub mod tracker;

use regex::{Regex, RegexBuilder, RegexSetBuilder};

use crate::analysis::MessageAnalysis;
use crate::analysis::sentiment::SentimentState;
use crate::bot::BotReply;
use crate::handoff::TriggerHit;
pub use config::EscalationConfig;
pub use tracker::{CustomerTurn, Tracker};

/// Every trigger id, in the order they are checked.
pub const TRIGGERS: [&str; 9] = [
    "explicit_request",
    "keyword_rule",
    "sensitive_intent",
    "negative_sentiment",
    "repetition",
    "long_conversation",
    "bot_handoff",
    "low_confidence",
    "bot_failure",
];

/// Where and how urgently an escalation goes.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub triggers: Vec<TriggerHit>,
    pub priority: u8,
    pub team: String,
}

struct CompiledRule {
    name: String,
    patterns: Vec<Regex>,
    priority: u8,
    team: Option<String>,
}

/// Collects the hits of one evaluation; the decision takes the highest priority, and the
/// team of the most urgent hit that names one.
#[derive(Default)]
struct Hits {
    hits: Vec<TriggerHit>,
    priority: u8,
    team: Option<(u8, String)>,
}

impl Hits {
    fn add(&mut self, hit: TriggerHit, priority: u8, team: Option<&String>) {
        self.priority = self.priority.max(priority);
        if let Some(t) = team
            && self.team.as_ref().is_none_or(|(p, _)| priority > *p)
        {
            self.team = Some((priority, t.clone()));
        }
        self.hits.push(hit);
    }
}

fn hit(trigger: &str, evidence: String, seq: u64, score: Option<f64>) -> TriggerHit {
    TriggerHit {
        trigger: trigger.into(),
        evidence,
        message_seq: seq,
        score,
    }
}

/// The configured triggers, compiled once.
pub struct Policy {
    cfg: EscalationConfig,
    rules: Vec<CompiledRule>,
    /// Every rule's patterns in one set: most messages match none, which one pass over the
    /// text tells, instead of one search per pattern. `None` if the set could not be built
    /// (the patterns are then searched one by one).
    any_pattern: Option<regex::RegexSet>,
}

impl Policy {
    /// Compiles the rules. Patterns were validated with the config; one that still fails to
    /// compile is skipped with a warning rather than taking the daemon down.
    pub fn new(cfg: &EscalationConfig) -> Policy {
        let rules: Vec<CompiledRule> = cfg
            .keyword_rules
            .iter()
            .map(|r| CompiledRule {
                name: r.name.clone(),
                patterns: r
                    .patterns
                    .iter()
                    .filter_map(|p| {
                        RegexBuilder::new(p)
                            .case_insensitive(true)
                            .build()
                            .map_err(
                                |e| tracing::warn!(rule = %r.name, error = %e, "pattern skipped"),
                            )
                            .ok()
                    })
                    .collect(),
                priority: r.priority,
                team: r.team.clone(),
            })
            .collect();
        let all: Vec<&str> = rules
            .iter()
            .flat_map(|r| r.patterns.iter().map(Regex::as_str))
            .collect();
        let any_pattern = RegexSetBuilder::new(all)
            .case_insensitive(true)
            .build()
            .map_err(|e| tracing::warn!(error = %e, "keyword patterns searched one by one"))
            .ok();
        Policy {
            cfg: cfg.clone(),
            rules,
            any_pattern,
        }
    }

    /// The config the policy was built from.
    pub fn config(&self) -> &EscalationConfig {
        &self.cfg
    }

    /// Triggers that fire on the customer's message. `tracker` has already seen it; `mood`
    /// includes its sentiment.
    pub fn on_customer_message(
        &self,
        seq: u64,
        text: &str,
        analysis: &MessageAnalysis,
        mood: &SentimentState,
        tracker: &Tracker,
    ) -> Option<Decision> {
        let mut h = Hits::default();
        let c = &self.cfg;
        if c.explicit_request.enabled
            && let Some(m) = &analysis.explicit_request
        {
            h.add(
                hit(
                    "explicit_request",
                    format!("asked for a person: \"{}\"", m.phrase),
                    seq,
                    Some(f64::from(m.score)),
                ),
                c.explicit_request.priority,
                None,
            );
        }
        let rules: &[CompiledRule] = match &self.any_pattern {
            Some(set) if !set.is_match(text) => &[],
            _ => &self.rules,
        };
        for rule in rules {
            if let Some(found) = rule.patterns.iter().find_map(|p| p.find(text)) {
                h.add(
                    hit(
                        "keyword_rule",
                        format!("rule `{}` matched \"{}\"", rule.name, found.as_str()),
                        seq,
                        None,
                    ),
                    rule.priority,
                    rule.team.as_ref(),
                );
            }
        }
        let si = &c.sensitive_intent;
        if si.enabled
            && let Some(i) = analysis
                .intents
                .iter()
                .find(|i| i.sensitive && i.act && si.intents.contains(&i.name))
        {
            h.add(
                hit(
                    "sensitive_intent",
                    format!("asks us to act on `{}`: {}", i.name, i.evidence),
                    seq,
                    None,
                ),
                si.priority,
                si.team.as_ref(),
            );
        }
        let ns = &c.negative_sentiment;
        if ns.enabled {
            let s = analysis.sentiment;
            if s <= ns.threshold {
                h.add(
                    hit(
                        "negative_sentiment",
                        format!("message sentiment {s:.2} at or below {:.2}", ns.threshold),
                        seq,
                        Some(f64::from(s)),
                    ),
                    ns.priority,
                    None,
                );
            } else if mood.samples >= 2 && mood.trend <= -ns.steep_drop && s <= ns.drop_floor {
                h.add(
                    hit(
                        "negative_sentiment",
                        format!(
                            "sentiment falling fast: trend {:.2}, now {s:.2}",
                            mood.trend
                        ),
                        seq,
                        Some(f64::from(s)),
                    ),
                    ns.priority,
                    None,
                );
            }
        }
        let rp = &c.repetition;
        if rp.enabled {
            let recent: Vec<&CustomerTurn> = tracker.customer_messages().collect();
            let window = &recent[recent.len().saturating_sub(rp.window)..];
            // Messages without content words ("hi", "ok") never repeat anything.
            if let Some((current, earlier)) = window.split_last()
                && let Some(now) = current.features()
            {
                let same: Vec<(u64, f32)> = earlier
                    .iter()
                    .filter_map(|turn| {
                        let similarity = now.similarity(turn.features()?);
                        (similarity >= rp.similarity).then_some((turn.seq, similarity))
                    })
                    .collect();
                if same.len() + 1 >= rp.count {
                    let best = same.iter().map(|(_, s)| *s).fold(0.0f32, f32::max);
                    h.add(
                        hit(
                            "repetition",
                            format!(
                                "asked the same {} times (messages {}, and this one)",
                                same.len() + 1,
                                same.iter()
                                    .map(|(s, _)| s.to_string())
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ),
                            seq,
                            Some(f64::from(best)),
                        ),
                        rp.priority,
                        None,
                    );
                }
            }
        }
        let lc = &c.long_conversation;
        if lc.enabled && tracker.customer_turns() >= lc.max_customer_turns {
            h.add(
                hit(
                    "long_conversation",
                    format!(
                        "{} customer messages without resolution (limit {})",
                        tracker.customer_turns(),
                        lc.max_customer_turns
                    ),
                    seq,
                    None,
                ),
                lc.priority,
                None,
            );
        }
        self.decide(h)
    }

    /// Triggers that fire on the bot's reply; `tracker` has already seen it.
    pub fn on_bot_reply(&self, seq: u64, reply: &BotReply, tracker: &Tracker) -> Option<Decision> {
        let mut h = Hits::default();
        let c = &self.cfg;
        if c.bot_handoff.enabled
            && let Some(req) = &reply.handoff
        {
            h.add(
                hit(
                    "bot_handoff",
                    format!("the bot asked for a handoff: {}", req.reason),
                    seq,
                    None,
                ),
                req.priority.unwrap_or(c.bot_handoff.priority).min(3),
                req.team.as_ref(),
            );
        }
        let lc = &c.low_confidence;
        let confidences = tracker.stretch_confidences();
        if lc.enabled && reply.confidence.is_some() && !confidences.is_empty() {
            let window = &confidences[confidences.len().saturating_sub(lc.window)..];
            let low = window.iter().filter(|c| **c < lc.threshold).count();
            let last_low = confidences.last().is_some_and(|c| *c < lc.threshold);
            // Fire on a low reply only: a good answer after two bad ones is a recovery.
            if last_low && low >= lc.count {
                h.add(
                    hit(
                        "low_confidence",
                        format!(
                            "{low} of the last {} bot replies below {:.2}: {}",
                            window.len(),
                            lc.threshold,
                            window
                                .iter()
                                .map(|c| format!("{c:.2}"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                        seq,
                        confidences.last().copied(),
                    ),
                    lc.priority,
                    None,
                );
            }
        }
        let rp = &c.repetition;
        if rp.enabled && rp.bot_repeats >= 2 {
            let answers: Vec<&String> = tracker.bot_answers().rev().take(rp.bot_repeats).collect();
            if answers.len() == rp.bot_repeats
                && answers.windows(2).all(|w| same_answer(w[0], w[1]))
            {
                h.add(
                    hit(
                        "repetition",
                        format!(
                            "the bot gave the same answer {} times in a row",
                            rp.bot_repeats
                        ),
                        seq,
                        None,
                    ),
                    rp.priority,
                    None,
                );
            }
        }
        self.decide(h)
    }

    /// The bot gave no answer. `now_ms` is compared with the last handback for the loop guard.
    pub fn on_bot_failure(
        &self,
        seq: u64,
        error: &str,
        tracker: &Tracker,
        now_ms: u64,
    ) -> Option<Decision> {
        let bf = &self.cfg.bot_failure;
        if !bf.enabled || tracker.consecutive_failures() < bf.count {
            return None;
        }
        if let Some(at) = tracker.last_handback_ms()
            && now_ms.saturating_sub(at) < bf.cooldown_secs.saturating_mul(1000)
        {
            tracing::warn!("bot failing right after a handback; not escalating again (loop guard)");
            return None;
        }
        let mut h = Hits::default();
        h.add(
            hit(
                "bot_failure",
                format!(
                    "{} bot turn(s) failed in a row: {error}",
                    tracker.consecutive_failures()
                ),
                seq,
                None,
            ),
            bf.priority,
            None,
        );
        self.decide(h)
    }

    fn decide(&self, h: Hits) -> Option<Decision> {
        if h.hits.is_empty() {
            return None;
        }
        Some(Decision {
            triggers: h.hits,
            priority: h.priority,
            team: h
                .team
                .map(|(_, t)| t)
                .unwrap_or_else(|| self.cfg.default_team.clone()),
        })
    }
}

/// Whether two bot answers are the same text but for case and spacing. Compared word by word
/// without building either normalized string: it runs on every bot reply.
fn same_answer(a: &str, b: &str) -> bool {
    let (mut x, mut y) = (a.split_whitespace(), b.split_whitespace());
    loop {
        match (x.next(), y.next()) {
            (None, None) => return true,
            (Some(p), Some(q)) => {
                let same = p == q
                    || p.chars()
                        .flat_map(char::to_lowercase)
                        .eq(q.chars().flat_map(char::to_lowercase));
                if !same {
                    return false;
                }
            }
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests;
