//! Telegram, through the Bot API: updates come by long polling (the default) or by webhook,
//! replies go out with `sendMessage`. Private chats are conversations, keyed by chat id.
//! Setup and limits are documented in `docs/channels/telegram.md`.
//!
//! Plain reqwest rather than teloxide: the daemon must decide when an update counts as read
//! (only once journaled, with the position in its own store), which teloxide's dispatcher
//! decides by itself; and the handful of calls used here do not justify its build cost.

pub mod api;
pub mod config;
pub mod polling;
pub mod sender;
pub mod split;
pub mod update;
pub mod webhook;

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;

use crate::CoreLink;
use crate::Outbound;
use crate::cursor::CursorStore;
use api::{ApiError, BotApi};
pub use config::{Mode, TelegramConfig};
use sender::TelegramSender;

/// Why the Telegram channel could not start.
#[derive(Debug, thiserror::Error)]
#[error("telegram: {0}")]
pub struct StartError(#[from] pub ApiError);

/// The running Telegram channel: the sender actor, and in webhook mode the endpoint's state
/// (mount it with [`webhook::configure`]).
#[derive(Clone)]
pub struct TelegramChannel {
    core: CoreLink,
    sender: Addr<TelegramSender>,
    /// Set in webhook mode only.
    webhook_secret: Option<Arc<String>>,
}

impl TelegramChannel {
    /// Builds the Bot API client, starts the sender, and starts polling (polling mode) or
    /// registers the webhook when `webhook_url` is set (webhook mode). Must run inside an
    /// actix system.
    pub fn start(
        config: &TelegramConfig,
        core: CoreLink,
        cursors: Arc<dyn CursorStore>,
    ) -> Result<Self, StartError> {
        crate::meta::install_crypto_provider();
        let api = BotApi::new(
            &config.base_url(),
            &config.token,
            Duration::from_secs(config.request_timeout_secs.max(1)),
        )?;
        let sender = TelegramSender::new(api.clone()).start();
        let webhook_secret = match config.mode {
            Mode::Polling => {
                actix_rt::spawn(polling::run(
                    api,
                    core.clone(),
                    cursors,
                    config.poll_timeout_secs,
                ));
                None
            }
            Mode::Webhook => {
                let secret = config.webhook_secret.clone().unwrap_or_default();
                if let Some(url) = config.webhook_url.clone() {
                    let secret = secret.clone();
                    actix_rt::spawn(async move {
                        match api.set_webhook(&url, &secret).await {
                            Ok(()) => tracing::info!("Telegram webhook registered"),
                            Err(e) => tracing::error!(error = %e, "setWebhook failed"),
                        }
                    });
                }
                Some(Arc::new(secret))
            }
        };
        Ok(TelegramChannel {
            core,
            sender,
            webhook_secret,
        })
    }

    /// Where the daemon sends what must reach Telegram's customers.
    pub fn outbound(&self) -> Recipient<Outbound> {
        self.sender.clone().recipient()
    }

    /// True when updates arrive on [`webhook::PATH`], which must then be mounted.
    pub fn uses_webhook(&self) -> bool {
        self.webhook_secret.is_some()
    }
}
