//! Discord, through a bot: messages arrive over the gateway websocket, replies go out with
//! the REST API. Direct messages to the bot are conversations keyed by the DM channel's id;
//! with `support_channel_id` set, each user writing in that guild channel has a conversation
//! of their own there. Setup and limits are documented in `docs/channels/discord.md`.
//!
//! The gateway client is written here on tokio-tungstenite, and REST on reqwest, rather than
//! with serenity: serenity 0.12.5 resumes a dropped session on the address it first connected
//! to, not READY's `resume_gateway_url` as Discord requires; its event handler gives no way
//! to count a message as handled only once it is journaled; and with its rate limiter off
//! (needed against a fake) its REST errors drop a 429's `retry_after`. Both libraries used
//! here are already in the build.

pub mod api;
pub mod config;
pub mod event;
pub mod gateway;
pub mod sender;
pub mod split;

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;

use crate::CoreLink;
use crate::Outbound;
use crate::state::ChannelState;
use api::{ApiError, RestApi};
pub use config::DiscordConfig;
use sender::DiscordSender;

/// Why the Discord channel could not start.
#[derive(Debug, thiserror::Error)]
#[error("discord: {0}")]
pub struct StartError(#[from] pub ApiError);

/// The running Discord channel: its sender actor (the gateway runs on its own).
#[derive(Clone)]
pub struct DiscordChannel {
    sender: Addr<DiscordSender>,
}

impl DiscordChannel {
    /// Builds the REST client, starts the sender, and connects the gateway (in the
    /// background: it keeps trying while Discord cannot be reached). Must run inside an
    /// actix system.
    pub fn start(
        config: &DiscordConfig,
        core: CoreLink,
        state: Arc<dyn ChannelState>,
    ) -> Result<Self, StartError> {
        crate::meta::install_crypto_provider();
        let api = RestApi::new(
            &config.base_url(),
            &config.token,
            Duration::from_secs(config.request_timeout_secs.max(1)),
        )?;
        let sender = DiscordSender::new(api.clone()).start();
        let gateway = gateway::Gateway {
            api,
            token: config.token.clone(),
            intents: config.intent_bits(),
            support_channel: config.support_channel_id.clone(),
            core,
            state,
        };
        actix_rt::spawn(gateway.run());
        Ok(DiscordChannel { sender })
    }

    /// Where the daemon sends what must reach Discord's users.
    pub fn outbound(&self) -> Recipient<Outbound> {
        self.sender.clone().recipient()
    }
}
