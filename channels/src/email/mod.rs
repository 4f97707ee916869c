//! The email channel: customer mail comes in over IMAP (IDLE, or polling), answers go out
//! over SMTP, and replies are threaded into their conversation by Message-ID, References
//! and plus address. `docs/channels/email.md` describes setup, threading and limits.
//!
//! One module per job: [`config`] (settings), [`imap`] (inbound loop), [`ingest`] (one mail
//! to an `Inbound`), [`content`] (parsing, text, attachments), [`html`] (HTML to text),
//! [`quote`] (quote and signature stripping), [`auto`] (auto-reply and bounce detection),
//! [`thread`] (which conversation), [`store`] (what is remembered), [`compose`] and
//! [`smtp`] (outbound), [`tls`].

pub mod auto;
pub mod compose;
pub mod config;
pub mod content;
pub mod html;
pub mod imap;
pub mod ingest;
pub mod quote;
pub mod smtp;
pub mod store;
pub mod thread;
pub mod tls;

use std::sync::Arc;

use actix::prelude::*;

pub use config::{EmailSettings, ImapSettings, Security, SmtpSettings};

use crate::state::ChannelState;
use crate::{CoreLink, Outbound};

/// A running email channel.
pub struct EmailChannel {
    outbound: Addr<smtp::SmtpOutbound>,
}

impl EmailChannel {
    /// Starts the SMTP sender and the IMAP reader. Must run inside an actix system.
    pub fn start(
        settings: EmailSettings,
        state: Arc<dyn ChannelState>,
        core: CoreLink,
    ) -> Result<EmailChannel, smtp::TransportError> {
        // (A bad `ca_file` for IMAP is reported as a TransportError too: the channel cannot
        // start either way.)
        let settings = Arc::new(settings);
        let state = store::MailState::new(state);
        let transport = smtp::transport(&settings)?;
        let extra_roots = match &settings.imap.ca_file {
            Some(path) => tls::load_roots(path).map_err(|reason| smtp::TransportError {
                host: settings.imap.host.clone(),
                reason,
            })?,
            None => Vec::new(),
        };
        let outbound = smtp::SmtpOutbound {
            settings: settings.clone(),
            state: state.clone(),
            transport,
        }
        .start();
        let inbound = imap::ImapInbound {
            settings,
            state,
            core,
            extra_roots,
        };
        actix::spawn(inbound.run());
        Ok(EmailChannel { outbound })
    }

    /// Where the daemon sends what must reach email customers.
    pub fn outbound(&self) -> Recipient<Outbound> {
        self.outbound.clone().recipient()
    }
}
