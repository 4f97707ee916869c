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

/// The conversation key of the mail thread that follows up a conversation of another
/// channel by email (a chat nobody could answer in time). Like every email key it is short
/// lowercase alphanumerics, so it fits in a plus address.
pub fn follow_up_key(conversation_id: &str) -> String {
    let id: String = conversation_id
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .take(60)
        .collect();
    format!("f{id}")
}

/// What to write (with the daemon's own commit) to open the follow-up thread `key` to
/// `address`: mail sent to that key then goes to the customer, and their replies, threaded
/// by Message-ID or plus address, come back under the same key.
pub fn follow_up_thread(
    key: &str,
    address: &str,
    name: Option<String>,
    subject: &str,
) -> Vec<(String, Vec<u8>)> {
    let thread = store::Thread {
        address: address.to_string(),
        name,
        subject: Some(subject.to_string()),
        references: Vec::new(),
        last_message_id: None,
    };
    let mut b = store::Batch::default();
    b.thread(key, &thread);
    b.into_entries()
}
