//! Typed configuration: `config.toml` with `${ENV_VAR}` expansion and validation that names
//! every problem with its TOML key and line.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use handoffd_channels::discord::DiscordConfig;
use handoffd_channels::meta::{MetaConfig, Platform};
use handoffd_channels::telegram::TelegramConfig;
use serde::Deserialize;

pub use crate::escalation::config::{
    BotFailureConfig, BotHandoffConfig, EscalationConfig, ExplicitRequestConfig, HandoffMode,
    KeywordRule, LongConversationConfig, LowConfidenceConfig, NegativeSentimentConfig,
    RepetitionConfig, SensitiveIntentConfig,
};

/// The whole configuration of a daemon.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub storage: StorageConfig,
    #[serde(default)]
    pub api: ApiConfig,
    #[serde(default)]
    pub widget: WidgetConfig,
    #[serde(default)]
    pub conversations: ConversationsConfig,
    #[serde(default)]
    pub bot: BotConfig,
    #[serde(default)]
    pub analysis: AnalysisConfig,
    #[serde(default)]
    pub escalation: EscalationConfig,
    #[serde(default)]
    pub router: RouterConfig,
    #[serde(default)]
    pub agents: AgentsConfig,
    #[serde(default)]
    pub email: EmailConfig,
    /// WhatsApp Cloud API; the channel runs when the section is present.
    #[serde(default)]
    pub whatsapp: Option<MetaConfig>,
    /// Messenger; the channel runs when the section is present.
    #[serde(default)]
    pub messenger: Option<MetaConfig>,
    /// Instagram Messaging; the channel runs when the section is present.
    #[serde(default)]
    pub instagram: Option<MetaConfig>,
    /// Telegram's Bot API; the channel runs when the section is present.
    #[serde(default)]
    pub telegram: Option<TelegramConfig>,
    /// Discord's gateway and REST API; the channel runs when the section is present.
    #[serde(default)]
    pub discord: Option<DiscordConfig>,
    #[serde(default)]
    pub debug: DebugConfig,
}

/// Hooks for tests. Never for production.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DebugConfig {
    /// Serves `POST /api/v1/debug/clock`, which moves the daemon's clock for SLA deadlines
    /// and business hours, so tests need not wait for minutes or for Monday morning.
    #[serde(default)]
    pub clock_control: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to listen on; port 0 picks a free port (the daemon prints the one it got).
    #[serde(default = "default_listen")]
    pub listen: String,
    /// HTTP worker threads and conversation arbiters; 0 means one per core.
    #[serde(default)]
    pub workers: usize,
    /// Largest HTTP request body accepted, in bytes.
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
    /// Seconds given to open connections to finish on shutdown.
    #[serde(default = "default_shutdown_secs")]
    pub shutdown_timeout_secs: u64,
}

fn default_listen() -> String {
    "127.0.0.1:8080".into()
}
fn default_max_body() -> usize {
    1024 * 1024
}
fn default_shutdown_secs() -> u64 {
    5
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            workers: 0,
            max_body_bytes: default_max_body(),
            shutdown_timeout_secs: default_shutdown_secs(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// Directory holding the journal (`handoffd.redb`). Relative paths are relative to the
    /// config file.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// Page cache of the journal in MiB: what redb may keep of the file in memory. More
    /// makes reads of old conversations faster; writes do not need it.
    #[serde(default = "default_cache_mib")]
    pub cache_mib: usize,
    /// Each durable commit (every half second, up to about five a second under heavy load;
    /// batches in between are made durable by the write-ahead log) also saves the journal's
    /// allocator state (redb's quick repair), so a restart after a crash or `kill -9` need
    /// not walk the whole file to rebuild it: seconds for a journal of gigabytes otherwise.
    /// The saved state grows with the file; the commit runs beside the writer, which goes
    /// on answering batches from the write-ahead log meanwhile.
    #[serde(default = "default_quick_repair")]
    pub quick_repair: bool,
}

fn default_quick_repair() -> bool {
    true
}

fn default_cache_mib() -> usize {
    crate::store::DEFAULT_CACHE_BYTES / (1024 * 1024)
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("./data")
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            data_dir: default_data_dir(),
            cache_mib: default_cache_mib(),
            quick_repair: default_quick_repair(),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    /// Keys accepted as `Authorization: Bearer <key>` by the REST API. Empty disables the API.
    #[serde(default)]
    pub keys: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WidgetConfig {
    /// Origins allowed to open the widget websocket; `*` allows any.
    #[serde(default = "default_origins")]
    pub allowed_origins: Vec<String>,
    /// Secret that signs visitor tokens. Changing it makes every visitor start over.
    #[serde(default)]
    pub token_secret: String,
    #[serde(default = "default_frame_bytes")]
    pub max_frame_bytes: usize,
    #[serde(default = "default_message_chars")]
    pub max_message_chars: usize,
    /// A connection silent for this long is closed (the client reconnects and resumes).
    #[serde(default = "default_ws_idle")]
    pub idle_timeout_secs: u64,
}

fn default_origins() -> Vec<String> {
    vec!["*".into()]
}
fn default_frame_bytes() -> usize {
    64 * 1024
}
fn default_message_chars() -> usize {
    8000
}
fn default_ws_idle() -> u64 {
    60
}

impl Default for WidgetConfig {
    fn default() -> Self {
        Self {
            allowed_origins: default_origins(),
            token_secret: String::new(),
            max_frame_bytes: default_frame_bytes(),
            max_message_chars: default_message_chars(),
            idle_timeout_secs: default_ws_idle(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConversationsConfig {
    /// A conversation actor with nothing to do for this long stops; its state stays in the
    /// store and comes back with the next message.
    #[serde(default = "default_idle_secs")]
    pub idle_timeout_secs: u64,
    /// A conversation the bot owns stops this long after its customer closed their last
    /// connection (the widget), when nothing happened meanwhile, rather than after the idle
    /// timeout: a visitor who left needs no memory, and comes back from the store. 0 leaves
    /// only the idle timeout.
    #[serde(default = "default_after_leaving_secs")]
    pub stop_after_leaving_secs: u64,
}

fn default_idle_secs() -> u64 {
    300
}

fn default_after_leaving_secs() -> u64 {
    30
}

impl Default for ConversationsConfig {
    fn default() -> Self {
        Self {
            idle_timeout_secs: default_idle_secs(),
            stop_after_leaving_secs: default_after_leaving_secs(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BotConfig {
    /// Which bot answers while the bot owns a conversation. Only `faq` exists so far.
    #[serde(default = "default_bot_kind")]
    pub kind: String,
    /// The bot's answer must arrive within this time, or the turn counts as a bot failure.
    #[serde(default = "default_bot_timeout")]
    pub timeout_ms: u64,
    /// Below this confidence the FAQ bot gives its fallback reply.
    #[serde(default = "default_threshold")]
    pub confidence_threshold: f64,
    #[serde(default = "default_fallback")]
    pub fallback_reply: String,
    /// Said when the bot fails or times out and no escalation follows.
    #[serde(default = "default_failure_reply")]
    pub failure_reply: String,
    /// Said when the customer first writes.
    #[serde(default)]
    pub greeting: Option<String>,
    /// Question and answer pairs.
    #[serde(default)]
    pub faq: Vec<FaqEntry>,
    /// A TOML file with more `[[faq]]` entries, relative to the config file.
    #[serde(default)]
    pub faq_file: Option<PathBuf>,
    /// External bots called over HTTP (`[[bot.webhooks]]`); the FAQ bot serves the
    /// channels none of them names.
    #[serde(default)]
    pub webhooks: Vec<WebhookBotConfig>,
    /// Rasa servers (`[[bot.rasa]]`), each for the channels it names.
    #[serde(default)]
    pub rasa: Vec<RasaBotConfig>,
    /// Bot Framework bots (`[[bot.botframework]]`), with handoffd as their channel.
    #[serde(default)]
    pub botframework: Vec<BotFrameworkConfig>,
}

/// A Bot Framework bot: handoffd posts activities to its messaging endpoint and serves the
/// Connector API it answers through (see `docs/bots.md`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BotFrameworkConfig {
    /// Recorded as the author of its messages; unique among bots.
    pub name: String,
    /// The bot's messaging endpoint (`http://127.0.0.1:3978/api/messages`).
    pub url: String,
    /// Sent to the bot as `Authorization: Bearer` on every activity (16+ characters).
    pub secret: String,
    /// What the bot presents (`Authorization: Bearer`) on the Connector API.
    pub api_key: String,
    /// handoffd's own base URL as the bot reaches it: the activities' `serviceUrl`.
    pub service_url: String,
    /// Channels this bot serves; empty means every channel no other bot names.
    #[serde(default)]
    pub channels: Vec<String>,
    #[serde(default)]
    pub after_handoff: crate::bot::AfterHandoff,
    #[serde(default = "default_failure_threshold")]
    pub failure_threshold: u32,
    #[serde(default = "default_circuit_open")]
    pub circuit_open_secs: u64,
}

/// A Rasa server used through its REST channel and NLU parse endpoint (see `docs/bots.md`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RasaBotConfig {
    /// Recorded as the author of its messages; unique among bots.
    pub name: String,
    /// Rasa's base URL (`http://127.0.0.1:5005`): `/webhooks/rest/webhook` and
    /// `/model/parse` are called under it.
    pub url: String,
    /// Rasa's `--auth-token`, sent as `?token=`; empty when Rasa runs without one.
    #[serde(default)]
    pub token: String,
    /// Channels this bot serves; empty means every channel no other bot names.
    #[serde(default)]
    pub channels: Vec<String>,
    /// Intents that mean "hand me to a person" (a custom payload `{"handoff": {...}}` in a
    /// reply works too).
    #[serde(default = "default_handoff_intents")]
    pub handoff_intents: Vec<String>,
    /// Tell Rasa about handoffs by triggering the intents `handoff_accepted` and
    /// `handoff_completed` (`/handoff_completed{"agent": "..."}`).
    #[serde(default = "default_true_bool")]
    pub events_as_intents: bool,
    #[serde(default)]
    pub after_handoff: crate::bot::AfterHandoff,
    #[serde(default = "default_failure_threshold")]
    pub failure_threshold: u32,
    #[serde(default = "default_circuit_open")]
    pub circuit_open_secs: u64,
}

fn default_handoff_intents() -> Vec<String> {
    vec!["human_handoff".into()]
}
fn default_true_bool() -> bool {
    true
}

/// A bot behind an HTTP endpoint (see `docs/bots.md`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookBotConfig {
    /// Recorded as the author of its messages; unique among bots.
    pub name: String,
    /// Where customer messages and handoff events are POSTed.
    pub url: String,
    /// Key of the HMAC-SHA256 signature over each body (`X-Handoffd-Signature-256`).
    pub secret: String,
    /// What the bot presents (`Authorization: Bearer`) to post asynchronous replies; empty
    /// means it answers only synchronously.
    #[serde(default)]
    pub api_key: String,
    /// Channels this bot serves; empty means every channel no other bot names.
    #[serde(default)]
    pub channels: Vec<String>,
    /// `wait` for the customer after a handback, or `resume`: the bot's answer to
    /// `handoff.completed` is sent (a satisfaction question, say).
    #[serde(default)]
    pub after_handoff: crate::bot::AfterHandoff,
    /// Failures in a row before the bot is not called for `circuit_open_secs`.
    #[serde(default = "default_failure_threshold")]
    pub failure_threshold: u32,
    #[serde(default = "default_circuit_open")]
    pub circuit_open_secs: u64,
}

fn default_failure_threshold() -> u32 {
    5
}
fn default_circuit_open() -> u64 {
    30
}

fn default_bot_kind() -> String {
    "faq".into()
}
fn default_bot_timeout() -> u64 {
    3000
}
fn default_threshold() -> f64 {
    0.35
}
fn default_fallback() -> String {
    "Sorry, I don't know that one yet. Could you put it another way? You can also ask for a person at any time."
        .into()
}

fn default_failure_reply() -> String {
    "Sorry, something went wrong on my side. Please try again in a moment, or ask for a person."
        .into()
}

impl Default for BotConfig {
    fn default() -> Self {
        Self {
            kind: default_bot_kind(),
            timeout_ms: default_bot_timeout(),
            confidence_threshold: default_threshold(),
            fallback_reply: default_fallback(),
            failure_reply: default_failure_reply(),
            greeting: None,
            faq: Vec::new(),
            faq_file: None,
            webhooks: Vec::new(),
            rasa: Vec::new(),
            botframework: Vec::new(),
        }
    }
}

/// One question the FAQ bot knows, with its answer.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaqEntry {
    /// The main question; `alternatives` are other ways people ask it.
    pub question: String,
    #[serde(default)]
    pub alternatives: Vec<String>,
    pub answer: String,
    /// Reported to the escalation policy as the bot's intent when this entry answers.
    #[serde(default)]
    pub intent: Option<String>,
    /// Answering this entry asks for a handoff (for topics only people handle).
    #[serde(default)]
    pub handoff: bool,
    /// One-tap follow-ups offered with the answer (buttons on the widget).
    #[serde(default)]
    pub quick_replies: Vec<String>,
}

/// `[analysis]`: the languages to expect, and the business's own intents and entities.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnalysisConfig {
    /// ISO 639-1 codes among en, es, fr, de, pt, it. Detection only chooses among these.
    #[serde(default = "default_languages")]
    pub languages: Vec<String>,
    /// The built-in intents (refund, account_change, complaint, cancel_order).
    #[serde(default = "default_on")]
    pub builtin_intents: bool,
    #[serde(default)]
    pub intents: Vec<IntentConfig>,
    #[serde(default)]
    pub entities: Vec<EntityPatternConfig>,
}

fn default_languages() -> Vec<String> {
    ["en", "es", "fr", "de", "pt", "it"]
        .map(String::from)
        .to_vec()
}
fn default_on() -> bool {
    true
}

impl Default for AnalysisConfig {
    fn default() -> Self {
        Self {
            languages: default_languages(),
            builtin_intents: true,
            intents: Vec::new(),
            entities: Vec::new(),
        }
    }
}

/// A named intent recognised by phrases (typo-tolerant) or regular expressions.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntentConfig {
    pub name: String,
    #[serde(default)]
    pub phrases: Vec<String>,
    #[serde(default)]
    pub patterns: Vec<String>,
    /// Sensitive intents can fire the `sensitive_intent` trigger when the customer asks us
    /// to act.
    #[serde(default)]
    pub sensitive: bool,
}

/// A business's own entity: a name and a regular expression (group 1, if any, is the value).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntityPatternConfig {
    pub name: String,
    pub pattern: String,
}

impl AnalysisConfig {
    /// The analyzer's settings; the explicit-request phrases come from `[escalation]`.
    pub fn settings(
        &self,
        explicit_phrases: &[String],
    ) -> Result<crate::analysis::AnalyzerSettings, String> {
        let mut languages = Vec::new();
        for l in &self.languages {
            languages.push(
                l.parse::<crate::analysis::language::Language>()
                    .map_err(|_| {
                        format!("unknown language `{l}`; known: en, es, fr, de, pt, it")
                    })?,
            );
        }
        Ok(crate::analysis::AnalyzerSettings {
            languages,
            entity_patterns: self
                .entities
                .iter()
                .map(|e| (e.name.clone(), e.pattern.clone()))
                .collect(),
            intents: self
                .intents
                .iter()
                .map(|i| crate::analysis::intents::IntentRule {
                    name: i.name.clone(),
                    phrases: i.phrases.clone(),
                    patterns: i.patterns.clone(),
                    sensitive: i.sensitive,
                })
                .collect(),
            builtin_intents: self.builtin_intents,
            explicit_phrases: explicit_phrases.to_vec(),
        })
    }

    fn validate(&self, explicit_phrases: &[String]) -> Vec<ConfigProblem> {
        let mut out = Vec::new();
        let mut bad = |key: String, message: String| {
            out.push(ConfigProblem {
                key: format!("analysis.{key}"),
                line: None,
                message,
            })
        };
        for (i, l) in self.languages.iter().enumerate() {
            if l.parse::<crate::analysis::language::Language>().is_err() {
                bad(
                    format!("languages[{i}]"),
                    format!("unknown language `{l}`; known: en, es, fr, de, pt, it"),
                );
            }
        }
        if self.languages.is_empty() {
            bad("languages".into(), "at least one language is needed".into());
        }
        for (i, e) in self.entities.iter().enumerate() {
            if !valid_name(&e.name) {
                bad(
                    format!("entities[{i}].name"),
                    "a name is 1 to 64 letters, digits, `.`, `-` or `_`".into(),
                );
            }
            if let Err(err) = regex::Regex::new(&e.pattern) {
                bad(
                    format!("entities[{i}].pattern"),
                    format!("not a valid regular expression: {err}"),
                );
            }
        }
        for (i, it) in self.intents.iter().enumerate() {
            if !valid_name(&it.name) {
                bad(
                    format!("intents[{i}].name"),
                    "a name is 1 to 64 letters, digits, `.`, `-` or `_`".into(),
                );
            }
            if it.phrases.is_empty() && it.patterns.is_empty() {
                bad(
                    format!("intents[{i}].phrases"),
                    "an intent needs phrases or patterns".into(),
                );
            }
            for (j, p) in it.patterns.iter().enumerate() {
                if let Err(err) = regex::RegexBuilder::new(p).case_insensitive(true).build() {
                    bad(
                        format!("intents[{i}].patterns[{j}]"),
                        format!("not a valid regular expression: {err}"),
                    );
                }
            }
        }
        if out.is_empty()
            && let Ok(settings) = self.settings(explicit_phrases)
            && let Err(e) = crate::analysis::Analyzer::new(&settings)
        {
            out.push(ConfigProblem {
                key: "analysis".into(),
                line: None,
                message: e.to_string(),
            });
        }
        out
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouterConfig {
    /// Seconds an agent has to accept an offer before it goes to the next agent.
    #[serde(default = "default_offer_timeout")]
    pub offer_timeout_secs: u64,
    /// Seconds after an agent's last session disconnects before their conversations go back
    /// to the queue (a page reload must not cost them their conversations).
    #[serde(default = "default_requeue")]
    pub requeue_after_disconnect_secs: u64,
    /// Seconds before a conversation an agent declined is offered to that agent again.
    #[serde(default = "default_decline_cooldown")]
    pub decline_cooldown_secs: u64,
    /// Teams conversations can be routed to.
    #[serde(default = "default_teams")]
    pub teams: Vec<TeamConfig>,
    /// Routing rules, tried in order; the first that matches applies.
    #[serde(default)]
    pub rules: Vec<RoutingRule>,
    /// Told to the customer when their conversation goes back to the bot for want of an
    /// agent (`when_no_agent = "bot"`).
    #[serde(default = "default_no_agent_message")]
    pub no_agent_message: String,
    /// What a conversation of each channel counts against an agent's capacity (1 = a live
    /// chat; e.g. `email = 0.5` lets an agent of capacity 3 hold six emails). Channels not
    /// listed count 1.
    #[serde(default)]
    pub channel_weights: BTreeMap<String, f64>,
    /// SLA policies, tried in order: the first covering a conversation's team and priority
    /// sets its deadlines (see docs/routing.md).
    #[serde(default)]
    pub sla: Vec<crate::router::sla::SlaPolicyConfig>,
    /// Told to a customer who escalates while their team is outside its business hours;
    /// `{next_open}` becomes when it opens again. A team may set its own.
    #[serde(default = "default_closed_message")]
    pub closed_message: String,
    /// Told to a customer who waits while nobody of their team is online (teams with
    /// `when_no_agent = "queue"`).
    #[serde(default = "default_offline_message")]
    pub offline_message: String,
    /// The wording of the email follow-up (teams with `when_no_agent` or `when_closed` =
    /// `"email"`).
    #[serde(default)]
    pub follow_up: FollowUpConfig,
}

/// `[router.follow_up]`: what customers are told when a team follows up by email.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FollowUpConfig {
    /// Asks for the address.
    #[serde(default = "default_follow_up_ask")]
    pub ask: String,
    /// The address is known already; `{email}` is replaced by it.
    #[serde(default = "default_follow_up_known")]
    pub known: String,
    /// Said when the customer gives an address; `{email}` is replaced by it.
    #[serde(default = "default_follow_up_thanks")]
    pub thanks: String,
    /// Subject of the follow-up mail thread.
    #[serde(default = "default_follow_up_subject")]
    pub subject: String,
}

impl Default for FollowUpConfig {
    fn default() -> Self {
        FollowUpConfig {
            ask: default_follow_up_ask(),
            known: default_follow_up_known(),
            thanks: default_follow_up_thanks(),
            subject: default_follow_up_subject(),
        }
    }
}

fn default_follow_up_ask() -> String {
    "Nobody from our team can answer right now. Leave your email address here and we'll reply to you by email as soon as someone is back.".into()
}
fn default_follow_up_known() -> String {
    "Nobody from our team can answer right now. We'll reply to you by email at {email} as soon as someone is back.".into()
}
fn default_follow_up_thanks() -> String {
    "Thanks! We'll write to you at {email} as soon as someone is back. You can also stay here."
        .into()
}
fn default_follow_up_subject() -> String {
    "Your conversation with us".into()
}

/// Sends escalations with some property to a team, requiring skills, raising priority.
/// Every condition given must hold; a rule with none matches everything.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutingRule {
    /// An intent found in the conversation (the bot's or the rules').
    #[serde(default)]
    pub intent: Option<String>,
    /// A trigger that fired.
    #[serde(default)]
    pub trigger: Option<String>,
    /// The customer's language (ISO 639-1).
    #[serde(default)]
    pub language: Option<String>,
    /// The channel (widget, telegram...).
    #[serde(default)]
    pub channel: Option<String>,
    /// An entity kind known in the conversation (order_number, email...).
    #[serde(default)]
    pub entity: Option<String>,
    /// Contact attributes the customer must have, all of them (`{ tier = "vip" }`): set
    /// by the business through `PUT /api/v1/conversations/{id}/attributes`.
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
    /// Team to send it to. A team named by the trigger itself (a keyword rule's) wins.
    #[serde(default)]
    pub team: Option<String>,
    /// Skills the agent must have.
    #[serde(default)]
    pub skills: Vec<String>,
    /// Raise the priority to at least this.
    #[serde(default)]
    pub min_priority: Option<u8>,
}

fn default_offer_timeout() -> u64 {
    30
}
fn default_requeue() -> u64 {
    60
}
fn default_decline_cooldown() -> u64 {
    300
}
fn default_no_agent_message() -> String {
    "Nobody from our team can take this right now, so I'll keep helping you here. You can ask for a person again later.".into()
}
fn default_offline_message() -> String {
    "Nobody from our team is online right now. You keep your place in line, and we'll answer you here as soon as someone is back.".into()
}
fn default_closed_message() -> String {
    "Our team is away right now and back {next_open}. You keep your place in line, and we'll answer you here as soon as we're back.".into()
}
fn default_teams() -> Vec<TeamConfig> {
    vec![TeamConfig {
        name: crate::escalation::config::default_team(),
        strategy: Default::default(),
        max_open: None,
        when_no_agent: Default::default(),
        max_wait_secs: None,
        business_hours: None,
        when_closed: Default::default(),
        closed_message: None,
        raise_priority_every_secs: None,
    }]
}

impl Default for RouterConfig {
    fn default() -> Self {
        Self {
            offer_timeout_secs: default_offer_timeout(),
            requeue_after_disconnect_secs: default_requeue(),
            decline_cooldown_secs: default_decline_cooldown(),
            teams: default_teams(),
            rules: Vec::new(),
            channel_weights: BTreeMap::new(),
            no_agent_message: default_no_agent_message(),
            sla: Vec::new(),
            closed_message: default_closed_message(),
            offline_message: default_offline_message(),
            follow_up: FollowUpConfig::default(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeamConfig {
    pub name: String,
    /// How waiting conversations reach the team's agents: `balanced` (the least loaded
    /// agent), `round_robin` (agents in turn) or `manual` (agents claim from the queue).
    #[serde(default)]
    pub strategy: crate::router::Strategy,
    /// Conversations the team holds at once (held or offered), whatever its agents'
    /// capacities add up to; unset means no team limit.
    #[serde(default)]
    pub max_open: Option<u32>,
    /// When nobody of the team is online at escalation (or `max_wait_secs` passes): `queue`
    /// (wait) or `bot` (back to the bot, which is told `handoff.failed`).
    #[serde(default)]
    pub when_no_agent: crate::router::NoAgentFallback,
    /// Longest wait in the queue before `when_no_agent` applies even with agents online.
    #[serde(default)]
    pub max_wait_secs: Option<u64>,
    /// Opening hours and holidays in the team's time zone: SLA timers count only open
    /// time, and escalations outside them get `when_closed`. None: always open.
    #[serde(default)]
    pub business_hours: Option<crate::router::calendar::BusinessHoursConfig>,
    /// Escalated outside business hours: `queue` (wait, told when the team is back) or
    /// `bot` (back to the bot, told the same, which hears `handoff.failed`).
    #[serde(default)]
    pub when_closed: crate::router::NoAgentFallback,
    /// This team's own `router.closed_message`.
    #[serde(default)]
    pub closed_message: Option<String>,
    /// A waiting conversation gains a priority level (up to urgent) each time this many
    /// seconds pass, so a long wait moves it ahead of newer conversations of its level.
    #[serde(default)]
    pub raise_priority_every_secs: Option<u64>,
}

/// The email channel (`[email]`, `[email.imap]`, `[email.smtp]`). Off by default so the
/// default daemon needs no mail server. See `docs/channels/email.md`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    #[serde(default)]
    pub enabled: bool,
    /// The support address customers write to, e.g. `support@example.com`.
    #[serde(default)]
    pub address: String,
    /// Display name on outgoing mail.
    #[serde(default = "default_email_from_name")]
    pub from_name: String,
    /// Subject of replies when the customer's mail had none.
    #[serde(default = "default_email_subject")]
    pub default_subject: String,
    /// Longest text kept from one mail, in characters.
    #[serde(default = "default_message_chars")]
    pub max_text_chars: usize,
    #[serde(default)]
    pub imap: ImapConfig,
    #[serde(default)]
    pub smtp: SmtpConfig,
}

fn default_email_from_name() -> String {
    "Support".into()
}
fn default_email_subject() -> String {
    "Your message".into()
}

impl Default for EmailConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            address: String::new(),
            from_name: default_email_from_name(),
            default_subject: default_email_subject(),
            max_text_chars: default_message_chars(),
            imap: ImapConfig::default(),
            smtp: SmtpConfig::default(),
        }
    }
}

/// Where customer mail is read (`[email.imap]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImapConfig {
    #[serde(default)]
    pub host: String,
    /// Default: 993 with `tls`, 143 with `starttls` or `plain`.
    #[serde(default)]
    pub port: Option<u16>,
    /// `tls`, `starttls`, or `plain` (loopback hosts only).
    #[serde(default = "default_tls")]
    pub security: String,
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub password: String,
    #[serde(default = "default_mailbox")]
    pub mailbox: String,
    /// Wait for new mail with IDLE when the server offers it; `false` always polls.
    #[serde(default = "default_true")]
    pub idle: bool,
    /// How often the mailbox is checked when IDLE is not used.
    #[serde(default = "default_poll_secs")]
    pub poll_interval_secs: u64,
    /// IDLE is re-issued this often (at most 29 minutes, RFC 2177).
    #[serde(default = "default_idle_renew_secs")]
    pub idle_renew_secs: u64,
    /// Longest wait for one server answer.
    #[serde(default = "default_mail_timeout_secs")]
    pub timeout_secs: u64,
    #[serde(default = "default_backoff_min")]
    pub reconnect_min_secs: u64,
    #[serde(default = "default_backoff_max")]
    pub reconnect_max_secs: u64,
    /// On the very first start, also answer mail already in the mailbox.
    #[serde(default)]
    pub read_backlog: bool,
    /// Larger mail is recorded from its headers only.
    #[serde(default = "default_max_mail_bytes")]
    pub max_message_bytes: u32,
    /// PEM file of extra trusted root certificates (a private CA); relative to the config.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

fn default_tls() -> String {
    "tls".into()
}
fn default_starttls() -> String {
    "starttls".into()
}
fn default_mailbox() -> String {
    "INBOX".into()
}
fn default_true() -> bool {
    true
}
fn default_poll_secs() -> u64 {
    60
}
fn default_idle_renew_secs() -> u64 {
    25 * 60
}
fn default_mail_timeout_secs() -> u64 {
    60
}
fn default_backoff_min() -> u64 {
    1
}
fn default_backoff_max() -> u64 {
    300
}
fn default_max_mail_bytes() -> u32 {
    25 * 1024 * 1024
}

impl Default for ImapConfig {
    fn default() -> Self {
        Self {
            host: String::new(),
            port: None,
            security: default_tls(),
            username: String::new(),
            password: String::new(),
            mailbox: default_mailbox(),
            idle: true,
            poll_interval_secs: default_poll_secs(),
            idle_renew_secs: default_idle_renew_secs(),
            timeout_secs: default_mail_timeout_secs(),
            reconnect_min_secs: default_backoff_min(),
            reconnect_max_secs: default_backoff_max(),
            read_backlog: false,
            max_message_bytes: default_max_mail_bytes(),
            ca_file: None,
        }
    }
}

/// Where answers are sent (`[email.smtp]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    #[serde(default)]
    pub host: String,
    /// Default: 465 with `tls`, 587 with `starttls`, 25 with `plain`.
    #[serde(default)]
    pub port: Option<u16>,
    /// `tls`, `starttls`, or `plain` (loopback hosts only).
    #[serde(default = "default_starttls")]
    pub security: String,
    /// Empty: no authentication.
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub password: String,
    #[serde(default = "default_smtp_timeout_secs")]
    pub timeout_secs: u64,
    /// PEM file of extra trusted root certificates (a private CA); relative to the config.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

fn default_smtp_timeout_secs() -> u64 {
    30
}

impl Default for SmtpConfig {
    fn default() -> Self {
        Self {
            host: String::new(),
            port: None,
            security: default_starttls(),
            username: String::new(),
            password: String::new(),
            timeout_secs: default_smtp_timeout_secs(),
            ca_file: None,
        }
    }
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl EmailConfig {
    /// Checks an enabled email section; a disabled one is not looked at.
    fn validate(&self) -> Vec<ConfigProblem> {
        use handoffd_channels::email::Security;
        let mut out = Vec::new();
        if !self.enabled {
            return out;
        }
        let mut bad = |key: &str, message: String| {
            out.push(ConfigProblem {
                key: format!("email.{key}"),
                line: None,
                message,
            })
        };
        match self.address.rsplit_once('@') {
            Some((local, domain))
                if !local.is_empty()
                    && !domain.is_empty()
                    && !local.contains('+')
                    && !self.address.contains(char::is_whitespace) => {}
            _ => bad(
                "address",
                "must be a plain address like support@example.com (no +tag)".into(),
            ),
        }
        if self.max_text_chars == 0 {
            bad("max_text_chars", "must be above 0".into());
        }
        for (section, host, security) in [
            ("imap", &self.imap.host, &self.imap.security),
            ("smtp", &self.smtp.host, &self.smtp.security),
        ] {
            if host.trim().is_empty() {
                bad(&format!("{section}.host"), "is required".into());
            }
            match Security::parse(security) {
                None => bad(
                    &format!("{section}.security"),
                    format!("unknown `{security}`; known: tls, starttls, plain"),
                ),
                Some(Security::Plain) if !is_loopback(host) => bad(
                    &format!("{section}.security"),
                    "`plain` sends passwords in clear text: only allowed for a loopback host"
                        .into(),
                ),
                _ => {}
            }
        }
        if self.imap.username.is_empty() {
            bad("imap.username", "is required".into());
        }
        if self.imap.mailbox.trim().is_empty() {
            bad("imap.mailbox", "must not be empty".into());
        }
        if self.imap.poll_interval_secs == 0 {
            bad("imap.poll_interval_secs", "must be above 0".into());
        }
        if !(10..=29 * 60).contains(&self.imap.idle_renew_secs) {
            bad(
                "imap.idle_renew_secs",
                "must be between 10 and 1740 (29 minutes, RFC 2177)".into(),
            );
        }
        if self.imap.timeout_secs == 0 || self.smtp.timeout_secs == 0 {
            bad("imap.timeout_secs", "timeouts must be above 0".into());
        }
        if self.imap.reconnect_min_secs == 0
            || self.imap.reconnect_max_secs < self.imap.reconnect_min_secs
        {
            bad(
                "imap.reconnect_max_secs",
                "need 0 < reconnect_min_secs <= reconnect_max_secs".into(),
            );
        }
        if self.imap.max_message_bytes < 1024 {
            bad("imap.max_message_bytes", "must be at least 1024".into());
        }
        for (section, file) in [("imap", &self.imap.ca_file), ("smtp", &self.smtp.ca_file)] {
            if let Some(f) = file
                && let Err(e) = std::fs::metadata(f)
            {
                bad(
                    &format!("{section}.ca_file"),
                    format!("{}: {e}", f.display()),
                );
            }
        }
        out
    }

    /// The channel's settings; `None` when disabled or invalid (validation said why).
    pub fn settings(&self) -> Option<handoffd_channels::email::EmailSettings> {
        use handoffd_channels::email::{EmailSettings, ImapSettings, Security, SmtpSettings};
        use std::time::Duration;
        if !self.enabled {
            return None;
        }
        let imap_sec = Security::parse(&self.imap.security)?;
        let smtp_sec = Security::parse(&self.smtp.security)?;
        Some(EmailSettings {
            address: self.address.clone(),
            from_name: self.from_name.clone(),
            default_subject: self.default_subject.clone(),
            max_text_chars: self.max_text_chars,
            imap: ImapSettings {
                host: self.imap.host.clone(),
                port: self.imap.port.unwrap_or(match imap_sec {
                    Security::Tls => 993,
                    _ => 143,
                }),
                security: imap_sec,
                username: self.imap.username.clone(),
                password: self.imap.password.clone(),
                mailbox: self.imap.mailbox.clone(),
                use_idle: self.imap.idle,
                poll_interval: Duration::from_secs(self.imap.poll_interval_secs),
                idle_renew: Duration::from_secs(self.imap.idle_renew_secs),
                io_timeout: Duration::from_secs(self.imap.timeout_secs),
                backoff_min: Duration::from_secs(self.imap.reconnect_min_secs),
                backoff_max: Duration::from_secs(self.imap.reconnect_max_secs),
                read_backlog: self.imap.read_backlog,
                max_message_bytes: self.imap.max_message_bytes,
                ca_file: self.imap.ca_file.clone(),
            },
            smtp: SmtpSettings {
                host: self.smtp.host.clone(),
                port: self.smtp.port.unwrap_or(match smtp_sec {
                    Security::Tls => 465,
                    Security::StartTls => 587,
                    Security::Plain => 25,
                }),
                security: smtp_sec,
                username: self.smtp.username.clone(),
                password: self.smtp.password.clone(),
                timeout: Duration::from_secs(self.smtp.timeout_secs),
                ca_file: self.smtp.ca_file.clone(),
            },
        })
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentsConfig {
    /// Conversations an agent holds at once unless `agent add --capacity` says otherwise.
    #[serde(default = "default_capacity")]
    pub default_capacity: u32,
    /// Largest websocket frame accepted from an agent client.
    #[serde(default = "default_frame_bytes")]
    pub max_frame_bytes: usize,
}

fn default_capacity() -> u32 {
    3
}

impl Default for AgentsConfig {
    fn default() -> Self {
        Self {
            default_capacity: default_capacity(),
            max_frame_bytes: default_frame_bytes(),
        }
    }
}

/// One problem found in a config file, with where it is.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigProblem {
    /// Dotted TOML key, e.g. `escalation.keyword_rules[1].team`.
    pub key: String,
    /// 1-based line, when the key could be found in the file.
    pub line: Option<usize>,
    pub message: String,
}

impl std::fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(line) => write!(f, "line {line}: {}: {}", self.key, self.message),
            None => write!(f, "{}: {}", self.key, self.message),
        }
    }
}

/// Why a config could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}", format_problems(.0))]
    Invalid(Vec<ConfigProblem>),
}

fn format_problems(problems: &[ConfigProblem]) -> String {
    problems
        .iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

impl Config {
    /// Reads, expands, parses and validates a config file. Relative paths in it are made
    /// relative to the file's folder.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::from_toml(&text, base)
    }

    /// Parses config text; `base` anchors relative paths.
    pub fn from_toml(text: &str, base: &Path) -> Result<Config, ConfigError> {
        let (expanded, mut problems) = expand_env(text);
        let mut config: Config = match toml::from_str(&expanded) {
            Ok(c) => c,
            Err(e) => {
                let line = e.span().map(|s| line_of_offset(&expanded, s.start));
                let key = match (key_from_toml_error(&e), line) {
                    (k, Some(l)) if k == "(document)" => key_at_line(&expanded, l - 1),
                    (k, _) => k,
                };
                problems.push(ConfigProblem {
                    key,
                    line,
                    message: e.message().trim().to_string(),
                });
                return Err(ConfigError::Invalid(problems));
            }
        };
        if config.storage.data_dir.is_relative() {
            config.storage.data_dir = base.join(&config.storage.data_dir);
        }
        if let Some(f) = &config.bot.faq_file
            && f.is_relative()
        {
            config.bot.faq_file = Some(base.join(f));
        }
        for f in [
            &mut config.email.imap.ca_file,
            &mut config.email.smtp.ca_file,
        ]
        .into_iter()
        .flatten()
        {
            if f.is_relative() {
                *f = base.join(&*f);
            }
        }
        problems.extend(config.validate());
        for p in problems.iter_mut() {
            if p.line.is_none() {
                p.line = locate_key(text, &p.key);
            }
        }
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError::Invalid(problems))
        }
    }

    /// Checks what serde cannot: references between sections, ranges, regexes, addresses.
    fn validate(&self) -> Vec<ConfigProblem> {
        let mut out = Vec::new();
        let mut bad = |key: String, message: String| {
            out.push(ConfigProblem {
                key,
                line: None,
                message,
            })
        };
        if self.server.listen.parse::<SocketAddr>().is_err() {
            bad(
                "server.listen".into(),
                format!(
                    "`{}` is not an address like 127.0.0.1:8080",
                    self.server.listen
                ),
            );
        }
        if self.server.max_body_bytes < 1024 {
            bad(
                "server.max_body_bytes".into(),
                "must be at least 1024".into(),
            );
        }
        for (i, k) in self.api.keys.iter().enumerate() {
            if k.len() < 16 {
                bad(
                    format!("api.keys[{i}]"),
                    "an API key must be at least 16 characters".into(),
                );
            }
        }
        if self.widget.token_secret.len() < 16 {
            bad(
                "widget.token_secret".into(),
                "must be at least 16 characters (it signs visitor tokens)".into(),
            );
        }
        if self.widget.max_frame_bytes < 1024 {
            bad(
                "widget.max_frame_bytes".into(),
                "must be at least 1024".into(),
            );
        }
        if self.widget.max_message_chars == 0 {
            bad("widget.max_message_chars".into(), "must be above 0".into());
        }
        for platform in Platform::ALL {
            if let Some(c) = self.meta(platform) {
                for (key, message) in c.problems(platform) {
                    bad(format!("{}.{key}", platform.channel()), message);
                }
            }
        }
        if let Some(t) = &self.telegram {
            for (key, message) in t.problems() {
                bad(format!("telegram.{key}"), message);
            }
        }
        if let Some(t) = &self.discord {
            for (key, message) in t.problems() {
                bad(format!("discord.{key}"), message);
            }
        }
        if self.agents.max_frame_bytes < 1024 {
            bad(
                "agents.max_frame_bytes".into(),
                "must be at least 1024".into(),
            );
        }
        if self.agents.default_capacity == 0 {
            bad(
                "agents.default_capacity".into(),
                "must be at least 1".into(),
            );
        }
        if self.bot.kind != "faq" {
            bad(
                "bot.kind".into(),
                format!("unknown bot `{}`; known: faq", self.bot.kind),
            );
        }
        if !(0.0..=1.0).contains(&self.bot.confidence_threshold) {
            bad(
                "bot.confidence_threshold".into(),
                "must be between 0 and 1".into(),
            );
        }
        if self.bot.timeout_ms == 0 {
            bad("bot.timeout_ms".into(), "must be above 0".into());
        }
        for (i, e) in self.bot.faq.iter().enumerate() {
            if e.question.trim().is_empty() {
                bad(format!("bot.faq[{i}].question"), "must not be empty".into());
            }
            if e.answer.trim().is_empty() {
                bad(format!("bot.faq[{i}].answer"), "must not be empty".into());
            }
        }
        if let Some(f) = &self.bot.faq_file
            && let Err(e) = crate::bot::faq::load_faq_file(f)
        {
            bad("bot.faq_file".into(), e.to_string());
        }
        // What every external bot has: name, URLs, channels, breaker threshold. Checked in one
        // pass so names and channels are unique across adapters.
        struct BotCommon<'a> {
            key: String,
            name: &'a str,
            urls: Vec<(&'static str, &'a str)>,
            channels: &'a [String],
            failure_threshold: u32,
        }
        let webhooks = self
            .bot
            .webhooks
            .iter()
            .enumerate()
            .map(|(i, w)| BotCommon {
                key: format!("bot.webhooks[{i}]"),
                name: &w.name,
                urls: vec![("url", &w.url)],
                channels: &w.channels,
                failure_threshold: w.failure_threshold,
            });
        let rasa = self.bot.rasa.iter().enumerate().map(|(i, r)| BotCommon {
            key: format!("bot.rasa[{i}]"),
            name: &r.name,
            urls: vec![("url", &r.url)],
            channels: &r.channels,
            failure_threshold: r.failure_threshold,
        });
        let botframework = self
            .bot
            .botframework
            .iter()
            .enumerate()
            .map(|(i, b)| BotCommon {
                key: format!("bot.botframework[{i}]"),
                name: &b.name,
                urls: vec![("url", &b.url), ("service_url", &b.service_url)],
                channels: &b.channels,
                failure_threshold: b.failure_threshold,
            });
        let mut bot_names = HashSet::new();
        let mut bot_channels = HashSet::new();
        let mut catch_alls = 0;
        for bot in webhooks.chain(rasa).chain(botframework) {
            let key = |k: &str| format!("{}.{k}", bot.key);
            if !valid_name(bot.name) || bot.name == "faq-bot" {
                bad(
                    key("name"),
                    "a bot name is 1 to 64 letters, digits, `.`, `-` or `_`, not `faq-bot`".into(),
                );
            }
            if !bot_names.insert(bot.name) {
                bad(key("name"), format!("bot `{}` is defined twice", bot.name));
            }
            for (k, v) in &bot.urls {
                if !(v.starts_with("http://") || v.starts_with("https://")) {
                    bad(key(k), "must be an http:// or https:// URL".into());
                }
            }
            if bot.failure_threshold == 0 {
                bad(key("failure_threshold"), "must be above 0".into());
            }
            if bot.channels.is_empty() {
                catch_alls += 1;
            }
            for c in bot.channels {
                if handoffd_channels::ChannelKind::parse(c).is_none() {
                    bad(key("channels"), format!("unknown channel `{c}`"));
                } else if !bot_channels.insert(c.as_str()) {
                    bad(
                        key("channels"),
                        format!("channel `{c}` is already served by another bot"),
                    );
                }
            }
        }
        // What only some adapters have: secrets and API keys.
        for (i, w) in self.bot.webhooks.iter().enumerate() {
            let key = |k: &str| format!("bot.webhooks[{i}].{k}");
            if w.secret.len() < 16 {
                bad(
                    key("secret"),
                    "at least 16 characters (it keys the body signature)".into(),
                );
            }
            if !w.api_key.is_empty() && w.api_key.len() < 16 {
                bad(key("api_key"), "at least 16 characters, or empty".into());
            }
            if !w.api_key.is_empty() && self.api.keys.contains(&w.api_key) {
                bad(
                    key("api_key"),
                    "must differ from the admin keys in api.keys".into(),
                );
            }
        }
        for (i, b) in self.bot.botframework.iter().enumerate() {
            let key = |k: &str| format!("bot.botframework[{i}].{k}");
            if b.secret.len() < 16 {
                bad(key("secret"), "at least 16 characters".into());
            }
            if b.api_key.len() < 16 || self.api.keys.contains(&b.api_key) {
                bad(
                    key("api_key"),
                    "at least 16 characters, different from the admin keys in api.keys".into(),
                );
            }
        }
        if catch_alls > 1 {
            bad(
                "bot".into(),
                "only one external bot may leave `channels` empty (it serves the rest)".into(),
            );
        }
        let mut teams = HashSet::new();
        for (i, t) in self.router.teams.iter().enumerate() {
            if !valid_name(&t.name) {
                bad(
                    format!("router.teams[{i}].name"),
                    "a team name is 1 to 64 letters, digits, `.`, `-` or `_`".into(),
                );
            }
            if !teams.insert(t.name.as_str()) {
                bad(
                    format!("router.teams[{i}].name"),
                    format!("team `{}` is defined twice", t.name),
                );
            }
        }
        if self.router.teams.is_empty() {
            bad("router.teams".into(), "at least one team is needed".into());
        }
        for (i, t) in self.router.teams.iter().enumerate() {
            if t.max_wait_secs == Some(0) {
                bad(
                    format!("router.teams[{i}].max_wait_secs"),
                    "must be above 0 (leave it out for no limit)".into(),
                );
            }
            if t.max_wait_secs.is_some() && t.when_no_agent == crate::router::NoAgentFallback::Queue
            {
                bad(
                    format!("router.teams[{i}].max_wait_secs"),
                    "only applies with when_no_agent = \"bot\" or \"email\" (a queue fallback keeps waiting)"
                        .into(),
                );
            }
            let email_fallback =
                [t.when_no_agent, t.when_closed].contains(&crate::router::NoAgentFallback::Email);
            if email_fallback && !self.email.enabled {
                bad(
                    format!("router.teams[{i}].when_no_agent"),
                    "the email follow-up needs the email channel ([email] enabled = true)".into(),
                );
            }
            if t.raise_priority_every_secs == Some(0) {
                bad(
                    format!("router.teams[{i}].raise_priority_every_secs"),
                    "must be above 0 (leave it out for no ageing)".into(),
                );
            }
            if t.max_open == Some(0) {
                bad(
                    format!("router.teams[{i}].max_open"),
                    "must be above 0 (leave it out for no team limit)".into(),
                );
            }
            if let Some(h) = &t.business_hours {
                if let Err(e) = crate::router::calendar::BusinessCalendar::from_config(h) {
                    bad(format!("router.teams[{i}].business_hours"), e.to_string());
                }
                let days = [
                    &h.monday,
                    &h.tuesday,
                    &h.wednesday,
                    &h.thursday,
                    &h.friday,
                    &h.saturday,
                    &h.sunday,
                ];
                if days.iter().all(|d| d.is_empty()) {
                    bad(
                        format!("router.teams[{i}].business_hours"),
                        "no open hours on any day: the team would never open (leave business_hours out for always open)".into(),
                    );
                }
            }
        }
        let mut sla_names = HashSet::new();
        for (i, p) in self.router.sla.iter().enumerate() {
            if let Err((key, message)) = crate::router::sla::SlaPolicy::from_config(p, &|t| {
                self.router.teams.iter().any(|x| x.name == t)
            }) {
                bad(format!("router.sla[{i}].{key}"), message);
            }
            if !sla_names.insert(p.name.as_str()) {
                bad(
                    format!("router.sla[{i}].name"),
                    format!("SLA policy `{}` is defined twice", p.name),
                );
            }
            if p.min_priority > 3 {
                bad(
                    format!("router.sla[{i}].min_priority"),
                    "priority is 0 (low) to 3 (urgent)".into(),
                );
            }
        }
        for (name, w) in &self.router.channel_weights {
            if handoffd_channels::ChannelKind::parse(name).is_none() {
                bad(
                    format!("router.channel_weights.{name}"),
                    format!("unknown channel `{name}`"),
                );
            }
            if !(w.is_finite() && *w >= 0.01 && *w <= 10.0) {
                bad(
                    format!("router.channel_weights.{name}"),
                    "a weight is between 0.01 and 10 (1 is a live chat)".into(),
                );
            }
        }
        if self.router.offer_timeout_secs == 0 {
            bad("router.offer_timeout_secs".into(), "must be above 0".into());
        }
        for (i, r) in self.router.rules.iter().enumerate() {
            if let Some(t) = &r.team
                && !teams.contains(t.as_str())
            {
                out.push(ConfigProblem {
                    key: format!("router.rules[{i}].team"),
                    line: None,
                    message: format!("team `{t}` is not defined in [[router.teams]]"),
                });
            }
            if r.min_priority.is_some_and(|p| p > 3) {
                out.push(ConfigProblem {
                    key: format!("router.rules[{i}].min_priority"),
                    line: None,
                    message: "priority is 0 (low) to 3 (urgent)".into(),
                });
            }
            if let Some(c) = &r.channel
                && handoffd_channels::ChannelKind::parse(c).is_none()
            {
                out.push(ConfigProblem {
                    key: format!("router.rules[{i}].channel"),
                    line: None,
                    message: format!("unknown channel `{c}`"),
                });
            }
        }
        out.extend(self.email.validate());
        out.extend(self.escalation.validate(&teams));
        out.extend(
            self.analysis
                .validate(&self.escalation.explicit_request.extra_phrases),
        );
        out
    }

    /// True when `team` is one of the configured teams.
    pub fn has_team(&self, team: &str) -> bool {
        self.router.teams.iter().any(|t| t.name == team)
    }

    /// Path of the journal file.
    /// The section of a Meta platform, when it is configured (and so enabled).
    pub fn meta(&self, platform: Platform) -> Option<&MetaConfig> {
        match platform {
            Platform::Whatsapp => self.whatsapp.as_ref(),
            Platform::Messenger => self.messenger.as_ref(),
            Platform::Instagram => self.instagram.as_ref(),
        }
    }

    pub fn journal_path(&self) -> PathBuf {
        self.storage.data_dir.join("handoffd.redb")
    }
}

/// Names used as keys (teams, agents): short, printable, no spaces.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
}

/// Replaces `${NAME}` and `${NAME:-default}` with the environment's value. A missing variable
/// without a default is a problem, reported with its line. `$${` stays a literal `${`.
fn expand_env(text: &str) -> (String, Vec<ConfigProblem>) {
    let mut out = String::with_capacity(text.len());
    let mut problems = Vec::new();
    for (lineno, full_line) in text.split_inclusive('\n').enumerate() {
        // Comments are left alone: `${...}` in a comment is documentation, not a variable.
        let (line, comment) = full_line.split_at(comment_start(full_line));
        let mut rest = line;
        while let Some(pos) = rest.find("${") {
            if pos > 0 && rest.as_bytes()[pos - 1] == b'$' {
                out.push_str(&rest[..pos - 1]);
                out.push_str("${");
                rest = &rest[pos + 2..];
                continue;
            }
            out.push_str(&rest[..pos]);
            let after = &rest[pos + 2..];
            let Some(end) = after.find('}') else {
                out.push_str(&rest[pos..]);
                rest = "";
                break;
            };
            let inner = &after[..end];
            let (name, default) = match inner.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (inner, None),
            };
            match (std::env::var(name), default) {
                (Ok(v), _) if !v.is_empty() => out.push_str(&toml_escape(&v)),
                (_, Some(d)) => out.push_str(d),
                (Ok(_), None) | (Err(_), None) => {
                    problems.push(ConfigProblem {
                        key: key_at_line(text, lineno),
                        line: Some(lineno + 1),
                        message: format!("environment variable `{name}` is not set"),
                    });
                }
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        out.push_str(comment);
    }
    (out, problems)
}

/// Byte index where a line's comment starts (a `#` outside any string), or its length.
fn comment_start(line: &str) -> usize {
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for (i, c) in line.char_indices() {
        match quote {
            Some(q) => {
                if q == '"' && c == '\\' && !escaped {
                    escaped = true;
                    continue;
                }
                if c == q && !escaped {
                    quote = None;
                }
                escaped = false;
            }
            None => match c {
                '"' | '\'' => quote = Some(c),
                '#' => return i,
                _ => {}
            },
        }
    }
    line.len()
}

/// Environment values land inside TOML strings: keep quotes and backslashes literal.
fn toml_escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"")
}

fn line_of_offset(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

fn key_from_toml_error(e: &toml::de::Error) -> String {
    // toml reports the path in its message as "in `a.b`"; fall back to the document root.
    let msg = e.to_string();
    if let Some(start) = msg.find("in `") {
        let rest = &msg[start + 4..];
        if let Some(end) = rest.find('`') {
            return rest[..end].to_string();
        }
    }
    "(document)".into()
}

/// The dotted key assigned on a given (0-based) line, for problems found before parsing.
fn key_at_line(text: &str, target: usize) -> String {
    let mut table = String::new();
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        if let Some(h) = header_name(t) {
            table = h.to_string();
        }
        if i == target {
            let key = t.split('=').next().unwrap_or("").trim();
            return if table.is_empty() {
                key.to_string()
            } else {
                format!("{table}.{key}")
            };
        }
    }
    "(document)".into()
}

fn header_name(line: &str) -> Option<&str> {
    let l = line.split('#').next().unwrap_or("").trim();
    if let Some(inner) = l.strip_prefix("[[").and_then(|r| r.strip_suffix("]]")) {
        return Some(inner.trim());
    }
    l.strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .map(str::trim)
}

/// Finds the line of a dotted key like `escalation.keyword_rules[1].patterns[0]` in config
/// text written with ordinary tables and arrays of tables. Returns the nearest line found:
/// the key's own line, else its table's header.
pub fn locate_key(text: &str, key: &str) -> Option<usize> {
    // Split `a.b[2].c[0]` into the table path with array indexes and the final key.
    let mut parts: Vec<(String, Option<usize>)> = Vec::new();
    for seg in key.split('.') {
        match seg.split_once('[') {
            Some((name, idx)) => parts.push((
                name.to_string(),
                idx.trim_end_matches(']').parse::<usize>().ok(),
            )),
            None => parts.push((seg.to_string(), None)),
        }
    }
    // Try the longest table prefix first: the table is everything but the last segment.
    let (last, table) = parts.split_last()?;
    let table_name = table
        .iter()
        .map(|(n, _)| n.as_str())
        .collect::<Vec<_>>()
        .join(".");
    let wanted_index = table.last().and_then(|(_, i)| *i);
    let mut counts: std::collections::HashMap<String, usize> = Default::default();
    let mut in_table = table_name.is_empty();
    let mut header_line = None;
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        if let Some(h) = header_name(t) {
            let is_array = t.starts_with("[[");
            let idx = if is_array {
                let c = counts.entry(h.to_string()).or_insert(0);
                *c += 1;
                Some(*c - 1)
            } else {
                None
            };
            in_table = h == table_name && (wanted_index.is_none() || idx == wanted_index);
            if in_table && header_line.is_none() {
                header_line = Some(i + 1);
            }
            continue;
        }
        if in_table {
            let k = t.split('=').next().unwrap_or("").trim().trim_matches('"');
            if t.contains('=') && k == last.0 {
                return Some(i + 1);
            }
        }
    }
    header_line
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[widget]
token_secret = "0123456789abcdef0123"
"#;

    #[test]
    fn minimal_config_is_valid() {
        let c = Config::from_toml(GOOD, Path::new("/tmp")).expect("valid");
        assert_eq!(c.escalation.default_team, "support");
        assert_eq!(c.storage.data_dir, Path::new("/tmp/./data"));
    }

    #[test]
    fn external_bots_are_checked_together_and_one_by_one() {
        let text = r#"[widget]
token_secret = "a-long-enough-widget-secret"

[[bot.webhooks]]
name = "a"
url = "ftp://x"
secret = "short"
channels = ["widget", "nope"]

[[bot.rasa]]
name = "a"
url = "http://x"
channels = ["widget"]

[[bot.botframework]]
name = "faq-bot"
url = "http://x"
secret = "0123456789abcdef0"
api_key = "k"
service_url = "x"
failure_threshold = 0
"#;
        let Err(ConfigError::Invalid(problems)) = Config::from_toml(text, Path::new(".")) else {
            panic!("expected problems");
        };
        let mut keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "bot.botframework[0].api_key",
                "bot.botframework[0].failure_threshold",
                "bot.botframework[0].name",
                "bot.botframework[0].service_url",
                "bot.rasa[0].channels",
                "bot.rasa[0].name",
                "bot.webhooks[0].channels",
                "bot.webhooks[0].secret",
                "bot.webhooks[0].url",
            ]
        );
    }

    #[test]
    fn problems_carry_key_and_line() {
        let text = r#"[widget]
token_secret = "short"

[[router.teams]]
name = "support"

[[escalation.keyword_rules]]
name = "legal"
patterns = ["lawyer"]

[[escalation.keyword_rules]]
name = "billing"
patterns = ["(unclosed"]
team = "nobody"
"#;
        let Err(ConfigError::Invalid(problems)) = Config::from_toml(text, Path::new(".")) else {
            panic!("expected problems");
        };
        let find = |k: &str| problems.iter().find(|p| p.key == k).cloned();
        assert_eq!(find("widget.token_secret").and_then(|p| p.line), Some(2));
        assert_eq!(
            find("escalation.keyword_rules[1].patterns[0]").and_then(|p| p.line),
            Some(13)
        );
        assert_eq!(
            find("escalation.keyword_rules[1].team").and_then(|p| p.line),
            Some(14)
        );
    }

    #[test]
    fn unknown_keys_and_bad_types_are_reported_with_lines() {
        let text = "[widget]\ntoken_secret = \"0123456789abcdef0123\"\nmax_frame_bytes = \"big\"\n";
        let Err(ConfigError::Invalid(p)) = Config::from_toml(text, Path::new(".")) else {
            panic!("expected problems");
        };
        assert_eq!(p[0].line, Some(3), "{p:?}");
        let text = "[widgte]\nx = 1\n";
        let Err(ConfigError::Invalid(p)) = Config::from_toml(text, Path::new(".")) else {
            panic!("expected problems");
        };
        assert_eq!(p[0].line, Some(1), "{p:?}");
    }

    #[test]
    fn meta_sections_take_secrets_from_the_environment_and_are_checked() {
        // SAFETY: the variable is only used by this test.
        unsafe { std::env::set_var("HANDOFFD_TEST_WA_SECRET", "wa-app-secret-0123") };
        let text = "[widget]\ntoken_secret = \"0123456789abcdef0123\"\n[whatsapp]\napp_secret = \"${HANDOFFD_TEST_WA_SECRET}\"\nverify_token = \"v\"\naccess_token = \"t\"\n[[whatsapp.templates]]\nname = \"order_update\"\nlanguage = \"en_US\"\ntext = \"Hi {{1}}\"\n";
        let c = Config::from_toml(text, Path::new(".")).expect("valid");
        let wa = c.meta(Platform::Whatsapp).expect("whatsapp enabled");
        assert_eq!(wa.app_secret, "wa-app-secret-0123");
        assert_eq!(wa.templates.len(), 1);
        assert!(c.meta(Platform::Messenger).is_none());
        let text = "[widget]\ntoken_secret = \"0123456789abcdef0123\"\n[messenger]\napp_secret = \"x\"\nverify_token = \"v\"\naccess_token = \"\"\napi_version = \"latest\"\n";
        let Err(ConfigError::Invalid(problems)) = Config::from_toml(text, Path::new(".")) else {
            panic!("must be invalid")
        };
        for key in [
            "messenger.app_secret",
            "messenger.access_token",
            "messenger.api_version",
        ] {
            let p = problems.iter().find(|p| p.key == key);
            assert!(p.is_some_and(|p| p.line.is_some()), "{key}: {problems:?}");
        }
    }

    #[test]
    fn the_telegram_section_takes_its_token_from_the_environment_and_is_checked() {
        // SAFETY: the variable is only used by this test.
        unsafe { std::env::set_var("HANDOFFD_TEST_TG_TOKEN", "123456:ABC-def") };
        let text = "[widget]\ntoken_secret = \"0123456789abcdef0123\"\n[telegram]\ntoken = \"${HANDOFFD_TEST_TG_TOKEN}\"\n";
        let c = Config::from_toml(text, Path::new(".")).expect("valid");
        let t = c.telegram.expect("telegram enabled");
        assert_eq!(t.token, "123456:ABC-def");
        assert_eq!(t.mode, handoffd_channels::telegram::Mode::Polling);
        let text = "[widget]\ntoken_secret = \"0123456789abcdef0123\"\n[telegram]\ntoken = \"nope\"\nmode = \"webhook\"\n";
        let Err(ConfigError::Invalid(problems)) = Config::from_toml(text, Path::new(".")) else {
            panic!("must be invalid")
        };
        for key in ["telegram.token", "telegram.webhook_secret"] {
            assert!(problems.iter().any(|p| p.key == key), "{key}: {problems:?}");
        }
        let p = problems.iter().find(|p| p.key == "telegram.token");
        assert!(p.is_some_and(|p| p.line == Some(4)), "{problems:?}");
    }

    #[test]
    fn sla_policies_and_fallbacks_are_checked_with_the_offending_key() {
        let base = "[widget]\ntoken_secret = \"0123456789abcdef0123\"\n[[router.teams]]\nname = \"support\"\n";
        let ok = format!(
            "{base}[[router.sla]]\nname = \"std\"\nfirst_response_secs = 60\non_first_response_breach = [\"reassign\", \"overflow:support\"]\n"
        );
        let c = Config::from_toml(&ok, Path::new(".")).expect("valid");
        assert_eq!(c.router.sla.len(), 1);
        let bad = format!(
            "{base}[[router.sla]]\nname = \"std\"\nfirst_response_secs = 60\non_first_response_breach = [\"overflow:nowhere\"]\n\
             [[router.sla]]\nname = \"std\"\nmin_priority = 7\n\
             [[router.teams]]\nname = \"mail\"\nwhen_no_agent = \"email\"\n"
        );
        let Err(ConfigError::Invalid(problems)) = Config::from_toml(&bad, Path::new(".")) else {
            panic!("must be invalid")
        };
        for key in [
            "router.sla[0].on_first_response_breach",
            "router.sla[1].assignment_secs",
            "router.sla[1].name",
            "router.sla[1].min_priority",
            "router.teams[1].when_no_agent",
        ] {
            assert!(problems.iter().any(|p| p.key == key), "{key}: {problems:?}");
        }
    }

    #[test]
    fn the_discord_section_takes_its_token_from_the_environment_and_is_checked() {
        // SAFETY: the variable is only used by this test.
        unsafe { std::env::set_var("HANDOFFD_TEST_DISCORD_TOKEN", "MTA.discord-token_1") };
        let text = "[widget]\ntoken_secret = \"0123456789abcdef0123\"\n[discord]\ntoken = \"${HANDOFFD_TEST_DISCORD_TOKEN}\"\n";
        let c = Config::from_toml(text, Path::new(".")).expect("valid");
        let d = c.discord.expect("discord enabled");
        assert_eq!(d.token, "MTA.discord-token_1");
        assert_eq!(d.support_channel_id, None);
        let text = "[widget]\ntoken_secret = \"0123456789abcdef0123\"\n[discord]\ntoken = \"Bot x\"\nintents = [\"direct_messages\", \"presences\"]\nsupport_channel_id = \"general\"\n";
        let Err(ConfigError::Invalid(problems)) = Config::from_toml(text, Path::new(".")) else {
            panic!("must be invalid")
        };
        for key in [
            "discord.token",
            "discord.intents",
            "discord.support_channel_id",
        ] {
            assert!(problems.iter().any(|p| p.key == key), "{key}: {problems:?}");
        }
        let p = problems.iter().find(|p| p.key == "discord.token");
        assert!(p.is_some_and(|p| p.line == Some(4)), "{problems:?}");
    }

    #[test]
    fn env_expansion_with_defaults_and_missing() {
        // SAFETY: tests in this module do not read this variable concurrently.
        unsafe { std::env::set_var("HANDOFFD_TEST_SECRET", "from-env-0123456789") };
        let text = "[widget]\ntoken_secret = \"${HANDOFFD_TEST_SECRET}\"\n[api]\nkeys = [\"${HANDOFFD_NOPE_KEY:-default-key-0123456789}\"]\n";
        let c = Config::from_toml(text, Path::new(".")).expect("valid");
        assert_eq!(c.widget.token_secret, "from-env-0123456789");
        assert_eq!(c.api.keys, vec!["default-key-0123456789".to_string()]);
        let text = "# a comment may mention ${ANYTHING}\n[widget]\ntoken_secret = \"${HANDOFFD_SURELY_UNSET_VAR}\" # ${NOR_THIS}\n";
        let Err(ConfigError::Invalid(p)) = Config::from_toml(text, Path::new(".")) else {
            panic!("expected problems");
        };
        assert_eq!(p.len(), 2, "{p:?}"); // the unset variable, and the empty secret it leaves
        assert!(p.iter().any(|p| p.line == Some(3)
            && p.key == "widget.token_secret"
            && p.message.contains("HANDOFFD_SURELY_UNSET_VAR")));
    }

    #[test]
    fn email_is_off_by_default_and_reads_passwords_from_the_environment() {
        let c = Config::from_toml(GOOD, Path::new("/tmp")).expect("valid");
        assert!(!c.email.enabled);
        assert!(c.email.settings().is_none());

        // SAFETY: no other test reads this variable.
        unsafe { std::env::set_var("HANDOFFD_TEST_IMAP_PASSWORD", "imap-from-env") };
        let text = format!(
            "{GOOD}\n[email]\nenabled = true\naddress = \"support@shop.test\"\n\
             [email.imap]\nhost = \"imap.shop.test\"\nusername = \"support@shop.test\"\n\
             password = \"${{HANDOFFD_TEST_IMAP_PASSWORD}}\"\n\
             [email.smtp]\nhost = \"smtp.shop.test\"\nusername = \"support@shop.test\"\n\
             password = \"${{HANDOFFD_TEST_SMTP_PASSWORD_UNSET:-smtp-default}}\"\n"
        );
        let c = Config::from_toml(&text, Path::new(".")).expect("valid");
        let s = c.email.settings().expect("enabled");
        assert_eq!(s.imap.password, "imap-from-env");
        assert_eq!(s.smtp.password, "smtp-default");
        assert_eq!((s.imap.port, s.smtp.port), (993, 587));
        assert_eq!(s.imap.security, handoffd_channels::email::Security::Tls);
        assert_eq!(
            s.smtp.security,
            handoffd_channels::email::Security::StartTls
        );
        assert_eq!(s.imap.mailbox, "INBOX");
    }

    #[test]
    fn an_enabled_email_section_is_checked() {
        let text = format!(
            "{GOOD}\n[email]\nenabled = true\naddress = \"support+x@shop.test\"\n\
             [email.imap]\nhost = \"imap.shop.test\"\nsecurity = \"plain\"\n\
             idle_renew_secs = 3600\n[email.smtp]\nhost = \"\"\nsecurity = \"ssl\"\n"
        );
        let Err(ConfigError::Invalid(p)) = Config::from_toml(&text, Path::new(".")) else {
            panic!("expected problems");
        };
        let keys: Vec<&str> = p.iter().map(|p| p.key.as_str()).collect();
        for key in [
            "email.address",
            "email.imap.security",
            "email.imap.username",
            "email.imap.idle_renew_secs",
            "email.smtp.host",
            "email.smtp.security",
        ] {
            assert!(keys.contains(&key), "{key} missing from {p:?}");
        }
        let plain = p
            .iter()
            .find(|p| p.key == "email.imap.security")
            .expect("plain refused");
        assert!(plain.message.contains("loopback"), "{plain:?}");
        assert!(plain.line.is_some(), "{plain:?}");
        // `plain` is fine on loopback.
        let text = format!(
            "{GOOD}\n[email]\nenabled = true\naddress = \"support@shop.test\"\n\
             [email.imap]\nhost = \"127.0.0.1\"\nport = 1143\nsecurity = \"plain\"\n\
             username = \"u\"\n[email.smtp]\nhost = \"localhost\"\nsecurity = \"plain\"\n"
        );
        let c = Config::from_toml(&text, Path::new(".")).expect("valid");
        let s = c.email.settings().expect("enabled");
        assert_eq!((s.imap.port, s.smtp.port), (1143, 25));
    }
}
