//! The escalation policy: signals in, a decision out, with the reason and evidence of every
//! trigger that fired. Customer-side triggers are checked before the bot is asked (a
//! customer asking for a person should not get a bot answer first); bot-side triggers after.

pub mod explicit;

use regex::{Regex, RegexBuilder};

use crate::bot::BotReply;
use crate::config::EscalationConfig;
use crate::handoff::TriggerHit;
use explicit::ExplicitRequestDetector;

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

/// The configured triggers, compiled once.
pub struct Policy {
    cfg: EscalationConfig,
    explicit: ExplicitRequestDetector,
    rules: Vec<CompiledRule>,
}

impl Policy {
    /// Compiles the rules. Patterns were validated with the config; one that still fails to
    /// compile is skipped with a warning rather than taking the daemon down.
    pub fn new(cfg: &EscalationConfig) -> Policy {
        let rules = cfg
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
        Policy {
            explicit: ExplicitRequestDetector::new(&cfg.explicit_request.extra_phrases),
            cfg: cfg.clone(),
            rules,
        }
    }

    /// Triggers that fire on the customer's message alone.
    pub fn on_customer_message(&self, seq: u64, text: &str) -> Option<Decision> {
        let mut hits = Vec::new();
        let mut priority = 0u8;
        let mut team = None;
        if self.cfg.explicit_request.enabled
            && let Some(m) = self.explicit.detect(text)
        {
            hits.push(TriggerHit {
                trigger: "explicit_request".into(),
                evidence: format!("asked for a person: \"{}\"", m.phrase),
                message_seq: seq,
                score: Some(f64::from(m.score)),
            });
            priority = priority.max(self.cfg.explicit_request.priority);
        }
        for rule in &self.rules {
            if let Some(found) = rule.patterns.iter().find_map(|p| p.find(text)) {
                hits.push(TriggerHit {
                    trigger: "keyword_rule".into(),
                    evidence: format!("rule `{}` matched \"{}\"", rule.name, found.as_str()),
                    message_seq: seq,
                    score: None,
                });
                if rule.priority >= priority {
                    priority = rule.priority;
                    team = rule.team.clone().or(team);
                }
            }
        }
        self.decide(hits, priority, team)
    }

    /// Triggers that fire on the bot's reply. `confidences` are the bot's confidences so far,
    /// this reply's last.
    pub fn on_bot_reply(
        &self,
        seq: u64,
        reply: &BotReply,
        confidences: &[f64],
    ) -> Option<Decision> {
        let mut hits = Vec::new();
        let mut priority = 0u8;
        let mut team = None;
        if self.cfg.bot_handoff_request
            && let Some(h) = &reply.handoff
        {
            hits.push(TriggerHit {
                trigger: "bot_handoff".into(),
                evidence: format!("the bot asked for a handoff: {}", h.reason),
                message_seq: seq,
                score: None,
            });
            priority = h.priority.unwrap_or(1).min(3);
            team = h.team.clone();
        }
        let lc = &self.cfg.low_confidence;
        if lc.enabled && !confidences.is_empty() {
            let window = &confidences[confidences.len().saturating_sub(lc.window)..];
            let low = window.iter().filter(|c| **c < lc.threshold).count();
            let last_low = confidences.last().is_some_and(|c| *c < lc.threshold);
            // Fire on a low reply only: a good answer after two bad ones is a recovery.
            if last_low && low >= lc.count {
                hits.push(TriggerHit {
                    trigger: "low_confidence".into(),
                    evidence: format!(
                        "{low} of the last {} bot replies below {:.2}: {}",
                        window.len(),
                        lc.threshold,
                        window
                            .iter()
                            .map(|c| format!("{c:.2}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    message_seq: seq,
                    score: confidences.last().copied(),
                });
                priority = priority.max(1);
            }
        }
        self.decide(hits, priority, team)
    }

    fn decide(
        &self,
        hits: Vec<TriggerHit>,
        priority: u8,
        team: Option<String>,
    ) -> Option<Decision> {
        if hits.is_empty() {
            return None;
        }
        Some(Decision {
            triggers: hits,
            priority,
            team: team.unwrap_or_else(|| self.cfg.default_team.clone()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bot::HandoffRequest;
    use crate::config::KeywordRule;

    fn policy() -> Policy {
        let mut cfg = EscalationConfig::default();
        cfg.keyword_rules.push(KeywordRule {
            name: "legal".into(),
            patterns: vec![r"\blawyer\b".into(), r"\bsue\b".into()],
            priority: 3,
            team: Some("legal".into()),
        });
        Policy::new(&cfg)
    }

    #[test]
    fn explicit_request_fires_with_evidence() {
        let d = policy()
            .on_customer_message(4, "can I talk to a human please")
            .expect("fires");
        assert_eq!(d.triggers[0].trigger, "explicit_request");
        assert_eq!(d.triggers[0].message_seq, 4);
        assert_eq!(d.team, "support");
    }

    #[test]
    fn keyword_rule_sets_team_and_priority() {
        let d = policy()
            .on_customer_message(2, "I will call my LAWYER about this")
            .expect("fires");
        assert_eq!(d.triggers[0].trigger, "keyword_rule");
        assert!(d.triggers[0].evidence.contains("legal"));
        assert_eq!(d.priority, 3);
        assert_eq!(d.team, "legal");
        assert!(
            policy()
                .on_customer_message(2, "what are your hours")
                .is_none()
        );
    }

    #[test]
    fn low_confidence_needs_count_of_window_and_a_low_last_reply() {
        let p = policy();
        let r = BotReply::default();
        assert!(p.on_bot_reply(1, &r, &[0.1]).is_none());
        let d = p.on_bot_reply(3, &r, &[0.9, 0.1, 0.2]).expect("fires");
        assert_eq!(d.triggers[0].trigger, "low_confidence");
        assert!(p.on_bot_reply(3, &r, &[0.1, 0.2, 0.9]).is_none());
        assert!(p.on_bot_reply(5, &r, &[0.1, 0.9, 0.9, 0.9, 0.2]).is_none());
    }

    #[test]
    fn bot_handoff_request_fires() {
        let r = BotReply {
            handoff: Some(HandoffRequest {
                reason: "refund over limit".into(),
                team: Some("billing".into()),
                priority: Some(2),
            }),
            ..Default::default()
        };
        let d = policy().on_bot_reply(7, &r, &[0.9]).expect("fires");
        assert_eq!(d.triggers[0].trigger, "bot_handoff");
        assert_eq!(d.team, "billing");
        assert_eq!(d.priority, 2);
    }
}
