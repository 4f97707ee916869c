//! The `[escalation]` section: how handoffs are announced and every trigger's settings. The
//! defaults suit a typical online shop; `handoffd eval` calibrates them on real history.

use std::collections::HashSet;

use serde::Deserialize;

use crate::config::ConfigProblem;

/// Warm: the customer is told a person is coming. Cold: the conversation moves silently.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HandoffMode {
    Warm,
    Cold,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EscalationConfig {
    #[serde(default = "default_mode")]
    pub mode: HandoffMode,
    /// What the customer is told on a warm handoff.
    #[serde(default = "default_warm_message")]
    pub warm_message: String,
    /// Told when an agent joins; `{agent}` is replaced by the agent's name.
    #[serde(default = "default_agent_joined")]
    pub agent_joined_message: String,
    /// Told when the agent closes and the bot is back.
    #[serde(default = "default_handback_message")]
    pub handback_message: String,
    /// Team that gets escalations no rule sends elsewhere.
    #[serde(default = "default_team")]
    pub default_team: String,
    #[serde(default)]
    pub explicit_request: ExplicitRequestConfig,
    #[serde(default)]
    pub keyword_rules: Vec<KeywordRule>,
    #[serde(default)]
    pub sensitive_intent: SensitiveIntentConfig,
    #[serde(default)]
    pub bot_handoff: BotHandoffConfig,
    #[serde(default)]
    pub low_confidence: LowConfidenceConfig,
    #[serde(default)]
    pub negative_sentiment: NegativeSentimentConfig,
    #[serde(default)]
    pub repetition: RepetitionConfig,
    #[serde(default)]
    pub long_conversation: LongConversationConfig,
    #[serde(default)]
    pub bot_failure: BotFailureConfig,
}

fn default_mode() -> HandoffMode {
    HandoffMode::Warm
}
fn default_warm_message() -> String {
    "I'm connecting you with a person now. They'll see everything we talked about, so you won't have to repeat yourself.".into()
}
fn default_agent_joined() -> String {
    "{agent} joined the conversation.".into()
}
fn default_handback_message() -> String {
    "The conversation with our team has ended. I'm here if you need anything else.".into()
}
/// The team escalations go to unless a rule says otherwise.
pub fn default_team() -> String {
    "support".into()
}
fn default_true() -> bool {
    true
}

impl Default for EscalationConfig {
    fn default() -> Self {
        Self {
            mode: default_mode(),
            warm_message: default_warm_message(),
            agent_joined_message: default_agent_joined(),
            handback_message: default_handback_message(),
            default_team: default_team(),
            explicit_request: ExplicitRequestConfig::default(),
            keyword_rules: Vec::new(),
            sensitive_intent: SensitiveIntentConfig::default(),
            bot_handoff: BotHandoffConfig::default(),
            low_confidence: LowConfidenceConfig::default(),
            negative_sentiment: NegativeSentimentConfig::default(),
            repetition: RepetitionConfig::default(),
            long_conversation: LongConversationConfig::default(),
            bot_failure: BotFailureConfig::default(),
        }
    }
}

/// `explicit_request`: the customer asks for a person.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExplicitRequestConfig {
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// More phrases that ask for a person, on top of the built-in ones.
    #[serde(default)]
    pub extra_phrases: Vec<String>,
    #[serde(default = "two")]
    pub priority: u8,
}

fn two() -> u8 {
    2
}
fn one() -> u8 {
    1
}

impl Default for ExplicitRequestConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            extra_phrases: Vec::new(),
            priority: 2,
        }
    }
}

/// `keyword_rule`: a message matches one of the rule's patterns.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeywordRule {
    /// Stable name, reported as the evidence of the `keyword_rule` trigger.
    pub name: String,
    /// Case-insensitive regular expressions.
    pub patterns: Vec<String>,
    #[serde(default = "two")]
    pub priority: u8,
    /// Team to route to; the default team when absent.
    #[serde(default)]
    pub team: Option<String>,
}

/// `sensitive_intent`: the customer asks us to act on something only people handle (a
/// refund, an account change, a complaint). Questions about the policy do not count.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SensitiveIntentConfig {
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Which sensitive intents escalate; the built-in ones and `[[analysis.intents]]`
    /// marked `sensitive`.
    #[serde(default = "default_sensitive")]
    pub intents: Vec<String>,
    #[serde(default = "one")]
    pub priority: u8,
    /// Team for these escalations; the default team when absent.
    #[serde(default)]
    pub team: Option<String>,
}

fn default_sensitive() -> Vec<String> {
    ["refund", "account_change", "complaint"]
        .map(String::from)
        .to_vec()
}

impl Default for SensitiveIntentConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            intents: default_sensitive(),
            priority: 1,
            team: None,
        }
    }
}

/// `bot_handoff`: the bot asks for a person, or says its flow has ended.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BotHandoffConfig {
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Priority when the bot does not give one.
    #[serde(default = "one")]
    pub priority: u8,
}

impl Default for BotHandoffConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            priority: 1,
        }
    }
}

/// `low_confidence`: `count` of the last `window` bot replies were unsure.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LowConfidenceConfig {
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// A bot reply below this confidence counts as a low-confidence reply.
    #[serde(default = "default_threshold")]
    pub threshold: f64,
    #[serde(default = "two_usize")]
    pub count: usize,
    #[serde(default = "three_usize")]
    pub window: usize,
    #[serde(default = "one")]
    pub priority: u8,
}

fn default_threshold() -> f64 {
    0.35
}
fn two_usize() -> usize {
    2
}
fn three_usize() -> usize {
    3
}

impl Default for LowConfidenceConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            threshold: default_threshold(),
            count: 2,
            window: 3,
            priority: 1,
        }
    }
}

/// `negative_sentiment`: one very negative message, or the mood falling fast.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NegativeSentimentConfig {
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// A customer message scoring at or below this (-1..1) fires.
    #[serde(default = "default_sentiment_threshold")]
    pub threshold: f32,
    /// Fires when the running sentiment falls this much (trend) ...
    #[serde(default = "default_steep_drop")]
    pub steep_drop: f32,
    /// ... and the current message is negative (below this).
    #[serde(default = "default_drop_floor")]
    pub drop_floor: f32,
    #[serde(default = "two")]
    pub priority: u8,
}

fn default_sentiment_threshold() -> f32 {
    -0.6
}
fn default_steep_drop() -> f32 {
    0.5
}
fn default_drop_floor() -> f32 {
    -0.3
}

impl Default for NegativeSentimentConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            threshold: default_sentiment_threshold(),
            steep_drop: default_steep_drop(),
            drop_floor: default_drop_floor(),
            priority: 2,
        }
    }
}

/// `repetition`: the customer asks the same thing again, or the bot gives the same answer.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepetitionConfig {
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Fires when the same question has been asked this many times in all...
    #[serde(default = "default_repeat_count")]
    pub count: usize,
    /// ... among the last `window` customer messages.
    #[serde(default = "default_repeat_window")]
    pub window: usize,
    /// Similarity (0..1) from which two messages count as the same question.
    #[serde(default = "default_similarity")]
    pub similarity: f32,
    /// Fires when the bot gives the same answer this many times in a row (0: never).
    #[serde(default = "two_usize")]
    pub bot_repeats: usize,
    #[serde(default = "one")]
    pub priority: u8,
}

fn default_repeat_count() -> usize {
    3
}
fn default_repeat_window() -> usize {
    6
}
fn default_similarity() -> f32 {
    0.6
}

impl Default for RepetitionConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            count: default_repeat_count(),
            window: default_repeat_window(),
            similarity: default_similarity(),
            bot_repeats: 2,
            priority: 1,
        }
    }
}

/// `long_conversation`: too many customer turns with the bot and no resolution.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LongConversationConfig {
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Customer messages since the conversation started (or since the last handback).
    #[serde(default = "default_max_turns")]
    pub max_customer_turns: usize,
    #[serde(default = "one")]
    pub priority: u8,
}

fn default_max_turns() -> usize {
    12
}

impl Default for LongConversationConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            max_customer_turns: default_max_turns(),
            priority: 1,
        }
    }
}

/// `bot_failure`: the bot errors or times out.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BotFailureConfig {
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Consecutive failed bot turns that fire.
    #[serde(default = "one_usize")]
    pub count: usize,
    /// Loop guard: after a handback, bot failures do not escalate again for this long (the
    /// customer gets the fallback reply instead), so a broken bot cannot bounce a
    /// conversation between bot and queue forever.
    #[serde(default = "default_failure_cooldown")]
    pub cooldown_secs: u64,
    #[serde(default = "two")]
    pub priority: u8,
}

fn one_usize() -> usize {
    1
}
fn default_failure_cooldown() -> u64 {
    600
}

impl Default for BotFailureConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            count: 1,
            cooldown_secs: default_failure_cooldown(),
            priority: 2,
        }
    }
}

impl EscalationConfig {
    /// Problems the types cannot express: ranges, regexes, references to teams.
    pub fn validate(&self, teams: &HashSet<&str>) -> Vec<ConfigProblem> {
        let mut out = Vec::new();
        let mut bad = |key: &str, message: String| {
            out.push(ConfigProblem {
                key: format!("escalation.{key}"),
                line: None,
                message,
            })
        };
        let team_ok = |t: &str| teams.contains(t);
        if !team_ok(&self.default_team) {
            bad(
                "default_team",
                format!(
                    "team `{}` is not defined in [[router.teams]]",
                    self.default_team
                ),
            );
        }
        let priorities = [
            ("explicit_request.priority", self.explicit_request.priority),
            ("sensitive_intent.priority", self.sensitive_intent.priority),
            ("bot_handoff.priority", self.bot_handoff.priority),
            ("low_confidence.priority", self.low_confidence.priority),
            (
                "negative_sentiment.priority",
                self.negative_sentiment.priority,
            ),
            ("repetition.priority", self.repetition.priority),
            (
                "long_conversation.priority",
                self.long_conversation.priority,
            ),
            ("bot_failure.priority", self.bot_failure.priority),
        ];
        for (key, p) in priorities {
            if p > 3 {
                bad(key, "priority is 0 (low) to 3 (urgent)".into());
            }
        }
        let lc = &self.low_confidence;
        if !(0.0..=1.0).contains(&lc.threshold) {
            bad("low_confidence.threshold", "must be between 0 and 1".into());
        }
        if lc.window == 0 || lc.count == 0 || lc.count > lc.window {
            bad(
                "low_confidence.count",
                format!(
                    "count ({}) must be between 1 and window ({})",
                    lc.count, lc.window
                ),
            );
        }
        let ns = &self.negative_sentiment;
        for (key, v) in [
            ("negative_sentiment.threshold", ns.threshold),
            ("negative_sentiment.drop_floor", ns.drop_floor),
        ] {
            if !(-1.0..=1.0).contains(&v) {
                bad(key, "must be between -1 and 1".into());
            }
        }
        if !(0.0..=2.0).contains(&ns.steep_drop) {
            bad(
                "negative_sentiment.steep_drop",
                "must be between 0 and 2".into(),
            );
        }
        let r = &self.repetition;
        if r.count < 2 || r.count > r.window.max(2) {
            bad(
                "repetition.count",
                format!(
                    "count ({}) must be at least 2 and at most window ({})",
                    r.count, r.window
                ),
            );
        }
        if !(0.0..=1.0).contains(&r.similarity) {
            bad("repetition.similarity", "must be between 0 and 1".into());
        }
        if self.long_conversation.max_customer_turns == 0 {
            bad(
                "long_conversation.max_customer_turns",
                "must be at least 1".into(),
            );
        }
        if self.bot_failure.count == 0 {
            bad("bot_failure.count", "must be at least 1".into());
        }
        if let Some(t) = &self.sensitive_intent.team
            && !team_ok(t)
        {
            bad(
                "sensitive_intent.team",
                format!("team `{t}` is not defined in [[router.teams]]"),
            );
        }
        let mut rule_names = HashSet::new();
        for (i, rule) in self.keyword_rules.iter().enumerate() {
            if !rule_names.insert(rule.name.as_str()) {
                bad(
                    &format!("keyword_rules[{i}].name"),
                    format!("rule `{}` is defined twice", rule.name),
                );
            }
            if rule.patterns.is_empty() {
                bad(
                    &format!("keyword_rules[{i}].patterns"),
                    "a rule needs at least one pattern".into(),
                );
            }
            for (j, p) in rule.patterns.iter().enumerate() {
                if let Err(e) = regex::RegexBuilder::new(p).case_insensitive(true).build() {
                    bad(
                        &format!("keyword_rules[{i}].patterns[{j}]"),
                        format!("not a valid regular expression: {e}"),
                    );
                }
            }
            if let Some(team) = &rule.team
                && !team_ok(team)
            {
                bad(
                    &format!("keyword_rules[{i}].team"),
                    format!("team `{team}` is not defined in [[router.teams]]"),
                );
            }
            if rule.priority > 3 {
                bad(
                    &format!("keyword_rules[{i}].priority"),
                    "priority is 0 (low) to 3 (urgent)".into(),
                );
            }
        }
        out
    }
}
