//! handoffd: a live chat handoff gateway. A bot answers first; when it cannot serve the
//! customer, the conversation goes to a person with everything they need; when the person is
//! done, the bot takes over again with the whole history.
//!
//! [`Gateway::start`] builds the running system from a [`Config`]; `main` and every test use it.

pub mod agents;
pub mod analysis;
pub mod bot;
pub mod clock;
pub mod config;
pub mod conversation;
pub mod delivery;
pub mod escalation;
pub mod handoff;
pub mod http;
pub mod metrics;
pub mod model;
pub mod router;
pub mod store;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use actix_web::{App, HttpServer, web};
use handoffd_channels::discord::DiscordChannel;
use handoffd_channels::email::EmailChannel;
use handoffd_channels::meta::{MetaChannel, Platform};
use handoffd_channels::telegram::TelegramChannel;
use handoffd_channels::widget::{WidgetChannel, WidgetSettings};
use handoffd_channels::{ChannelKind, CoreLink};

use crate::agents::AgentRegistry;
use crate::agents::session::AgentEndpoint;
use crate::config::Config;
use crate::conversation::{ConversationSettings, Directory, InboundRoute, Services, SetServices};
use crate::delivery::Outbox;
use crate::escalation::Policy;
use crate::http::AppState;
use crate::router::{Router, RouterSettings};
use crate::store::Store;

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Store(#[from] store::StoreError),
    #[error("bot: {0}")]
    Bot(#[from] bot::registry::BotsError),
    #[error("analysis: {0}")]
    Analysis(String),
    #[error("email: {0}")]
    Email(String),
    #[error("channel: {0}")]
    Channel(#[from] handoffd_channels::meta::StartError),
    #[error("channel: {0}")]
    Telegram(#[from] handoffd_channels::telegram::StartError),
    #[error("channel: {0}")]
    Discord(#[from] handoffd_channels::discord::StartError),
    #[error(transparent)]
    Listen(#[from] http::listen::ListenError),
}

/// The analyzer the config describes.
pub fn analyzer_from(config: &Config) -> Result<analysis::Analyzer, StartError> {
    let settings = config
        .analysis
        .settings(&config.escalation.explicit_request.extra_phrases)
        .map_err(StartError::Analysis)?;
    analysis::Analyzer::new(&settings).map_err(|e| StartError::Analysis(e.to_string()))
}

/// A running daemon.
pub struct Gateway {
    /// The address the HTTP server listens on (the real port when the config said 0).
    pub addr: SocketAddr,
    server: actix_web::dev::Server,
    arbiters: Vec<Arbiter>,
}

impl Gateway {
    /// Opens the store, starts every actor and the HTTP server. Must run inside an actix
    /// `System`.
    pub async fn start(config: Config) -> Result<Gateway, StartError> {
        // First, so that a taken port is found before any actor has started.
        let (listeners, addr) = http::listen::bind(&config.server.listen)?;
        let store = Store::open_with_options(
            &config.journal_path(),
            config.storage.cache_mib.saturating_mul(1024 * 1024),
            config.storage.quick_repair,
        )?;
        let workers = if config.server.workers == 0 {
            std::thread::available_parallelism().map_or(2, |n| n.get())
        } else {
            config.server.workers
        };
        // Conversation actors live on their own arbiters, one per core, spread round-robin.
        let arbiters: Vec<Arbiter> = (0..workers).map(|_| Arbiter::new()).collect();
        let handles = arbiters.iter().map(|a| a.handle()).collect();

        let registry = AgentRegistry::default();
        let directory = Directory::new(store.clone(), handles);
        let routes = directory.routes();
        let directory = directory.start();
        let core = CoreLink {
            inbound: Arc::new(InboundRoute::new(routes, directory.clone())),
            typing: directory.clone().recipient(),
            history: directory.clone().recipient(),
            delivery: directory.clone().recipient(),
            left: directory.clone().recipient(),
        };
        let widget = WidgetChannel::start(
            WidgetSettings {
                allowed_origins: config.widget.allowed_origins.clone(),
                max_frame_bytes: config.widget.max_frame_bytes,
                max_message_chars: config.widget.max_message_chars,
                token_secret: config.widget.token_secret.as_bytes().to_vec(),
                idle_timeout: Duration::from_secs(config.widget.idle_timeout_secs.max(5)),
            },
            core.clone(),
        );
        let mut channels = HashMap::new();
        channels.insert(ChannelKind::Widget, widget.outbound());
        let immediate = HashMap::from([(ChannelKind::Widget, widget.immediate())]);
        if let Some(settings) = config.email.settings() {
            // The channel keeps its IMAP cursor and thread mappings in the journal.
            let state: Arc<dyn handoffd_channels::state::ChannelState> = Arc::new(store.clone());
            let email = EmailChannel::start(settings, state, core.clone())
                .map_err(|e| StartError::Email(e.to_string()))?;
            channels.insert(ChannelKind::Email, email.outbound());
        }
        // Meta's channels run when their config section is present.
        let mut meta = Vec::new();
        let mut windows = HashMap::new();
        for platform in Platform::ALL {
            if let Some(c) = config.meta(platform) {
                let channel = MetaChannel::start(platform, c, core.clone())?;
                channels.insert(platform.channel(), channel.outbound());
                windows.insert(platform.channel(), channel.window_rules().clone());
                tracing::info!(
                    path = platform.webhook_path(),
                    "{} channel started",
                    platform.channel()
                );
                meta.push(channel);
            }
        }
        let windows = Arc::new(windows);
        // Telegram runs when its section is present; its webhook is mounted in webhook mode.
        let telegram = match &config.telegram {
            Some(c) => {
                let channel = TelegramChannel::start(c, core.clone(), Arc::new(store.clone()))?;
                channels.insert(ChannelKind::Telegram, channel.outbound());
                tracing::info!(mode = ?c.mode, "telegram channel started");
                channel.uses_webhook().then_some(channel)
            }
            None => None,
        };
        // Discord runs when its section is present; its session and the messages it has
        // journaled are kept in the store.
        if let Some(c) = &config.discord {
            let channel = DiscordChannel::start(c, core.clone(), Arc::new(store.clone()))?;
            channels.insert(ChannelKind::Discord, channel.outbound());
            tracing::info!(support_channel = ?c.support_channel_id, "discord channel started");
        }

        let router_ctx = Context::<Router>::new();
        let router_addr = router_ctx.address();
        let outbox = Outbox::new(store.clone(), channels, directory.clone()).start();
        let bots = Arc::new(bot::Bots::from_config(&config.bot)?);
        let svc = Arc::new(Services {
            store: store.clone(),
            bots: bots.clone(),
            analyzer: analyzer_from(&config)?,
            policy: Policy::new(&config.escalation),
            router: router_addr.clone(),
            outbox,
            agents: registry.clone(),
            directory: directory.clone(),
            settings: ConversationSettings::from_config(&config),
            windows: windows.clone(),
            immediate,
        });
        directory.do_send(SetServices(svc));
        let clock = clock::Clock::system();
        if config.debug.clock_control {
            tracing::warn!(
                "debug.clock_control is on: POST /api/v1/debug/clock moves the SLA clock; never use this in production"
            );
        }
        router_ctx.run(Router::new(
            store.clone(),
            directory.clone(),
            registry.clone(),
            RouterSettings::from_config(&config),
            clock.clone(),
        ));

        let teams: Arc<HashSet<String>> =
            Arc::new(config.router.teams.iter().map(|t| t.name.clone()).collect());
        let state = web::Data::new(AppState {
            store: store.clone(),
            router: router_addr.clone(),
            directory: directory.clone(),
            api_keys: config.api.keys.clone(),
            teams: teams.clone(),
            default_capacity: config.agents.default_capacity,
            bots,
            clock: config.debug.clock_control.then_some(clock),
        });
        let pages = web::Data::new(http::pages::WebSettings {
            allowed_origins: config.widget.allowed_origins.clone(),
        });
        let widget = web::Data::new(widget);
        let agents = web::Data::new(AgentEndpoint {
            store: store.clone(),
            router: router_addr,
            directory,
            registry,
            teams,
            max_frame_bytes: config.agents.max_frame_bytes,
            windows,
        });
        let max_body = config.server.max_body_bytes;
        let mut server = HttpServer::new(move || {
            let (state, widget, agents, pages) =
                (state.clone(), widget.clone(), agents.clone(), pages.clone());
            let meta = meta.clone();
            let telegram = telegram.clone();
            App::new()
                .wrap(
                    actix_web::middleware::Logger::new("%a \"%r\" %s %Dms")
                        .log_target("handoffd::http"),
                )
                .configure(move |cfg| {
                    if let Some(t) = telegram {
                        handoffd_channels::telegram::webhook::configure(cfg, t);
                    }
                    http::configure(cfg, state, widget, agents, pages, meta, max_body)
                })
        })
        .workers(workers)
        // Without it Nagle's algorithm holds a bot reply written right after the ack until
        // the client acknowledges the ack: up to 40 ms per turn on an idle connection.
        .tcp_nodelay(true)
        .shutdown_timeout(config.server.shutdown_timeout_secs);
        for listener in listeners {
            server = server
                .listen(listener)
                .map_err(|source| http::listen::ListenError::new(&config.server.listen, source))?;
        }
        let server = server.run();
        Ok(Gateway {
            addr,
            server,
            arbiters,
        })
    }

    /// Runs until the server stops (SIGINT/SIGTERM are handled by actix-web), then stops the
    /// conversation arbiters. Everything acknowledged is already on disk.
    pub async fn run(self) -> std::io::Result<()> {
        let res = self.server.await;
        for a in &self.arbiters {
            a.stop();
        }
        res
    }
}
