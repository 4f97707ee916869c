//! Which bot serves which conversation: several bots can run at once, each for the channels
//! its config names; the built-in FAQ bot serves the rest. Also the keys bots use to post
//! asynchronous replies.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use handoffd_channels::ChannelKind;

use super::webhook::WebhookBot;
use super::{Bot, BotError, faq_from_config};
use crate::config::BotConfig;

/// Why the bots could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BotsError {
    #[error(transparent)]
    Faq(#[from] super::faq::FaqFileError),
    #[error("bot `{name}`: {source}")]
    Webhook { name: String, source: BotError },
}

/// The running bots.
pub struct Bots {
    fallback: Arc<dyn Bot>,
    by_channel: HashMap<ChannelKind, Arc<dyn Bot>>,
    /// The bot that serves every channel not named by another (`channels` left empty).
    catch_all: Option<Arc<dyn Bot>>,
    /// API key -> bot name, for asynchronous replies.
    keys: HashMap<String, String>,
}

impl Bots {
    /// Builds every configured bot. Channels are checked by `check-config`; a webhook bot
    /// with no channels serves all channels no other bot names.
    pub fn from_config(cfg: &BotConfig) -> Result<Bots, BotsError> {
        let fallback = faq_from_config(cfg)?;
        let timeout = Duration::from_millis(cfg.timeout_ms);
        let mut bots = Bots {
            fallback,
            by_channel: HashMap::new(),
            catch_all: None,
            keys: HashMap::new(),
        };
        for w in &cfg.webhooks {
            let bot: Arc<dyn Bot> =
                Arc::new(
                    WebhookBot::new(w, timeout).map_err(|source| BotsError::Webhook {
                        name: w.name.clone(),
                        source,
                    })?,
                );
            if w.channels.is_empty() {
                bots.catch_all.get_or_insert(bot.clone());
            }
            for c in w.channels.iter().filter_map(|c| ChannelKind::parse(c)) {
                bots.by_channel.entry(c).or_insert_with(|| bot.clone());
            }
            if !w.api_key.is_empty() {
                bots.keys.insert(w.api_key.clone(), w.name.clone());
            }
        }
        Ok(bots)
    }

    /// Only the given bot, for every channel (tests and the `eval` tool).
    pub fn single(bot: Arc<dyn Bot>) -> Bots {
        Bots {
            fallback: bot,
            by_channel: HashMap::new(),
            catch_all: None,
            keys: HashMap::new(),
        }
    }

    /// The bot that serves conversations of `channel`.
    pub fn for_channel(&self, channel: ChannelKind) -> Arc<dyn Bot> {
        self.by_channel
            .get(&channel)
            .or(self.catch_all.as_ref())
            .unwrap_or(&self.fallback)
            .clone()
    }

    /// The name of the bot an API key belongs to, compared in constant time per key.
    pub fn bot_for_key(&self, key: &str) -> Option<&str> {
        self.keys
            .iter()
            .find(|(k, _)| constant_time_eq(k.as_bytes(), key.as_bytes()))
            .map(|(_, name)| name.as_str())
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
