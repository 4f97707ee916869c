//! What the email channel needs to know, as the daemon passes it in from its config.

use std::time::Duration;

/// How a connection to a mail server is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// TLS from the first byte (IMAPS 993, SMTPS 465).
    Tls,
    /// A plain connection upgraded with STARTTLS before login (IMAP 143, submission 587).
    StartTls,
    /// No encryption at all: only for a server on loopback (tests, a local relay).
    Plain,
}

impl Security {
    /// Parses the config spelling: `tls`, `starttls` or `plain`.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "tls" => Security::Tls,
            "starttls" => Security::StartTls,
            "plain" => Security::Plain,
            _ => return None,
        })
    }
}

/// Where mail comes in.
#[derive(Debug, Clone)]
pub struct ImapSettings {
    pub host: String,
    pub port: u16,
    pub security: Security,
    pub username: String,
    pub password: String,
    /// The mailbox watched for customer mail.
    pub mailbox: String,
    /// Wait with IDLE when the server offers it; `false` always polls.
    pub use_idle: bool,
    /// Without IDLE, the mailbox is checked this often.
    pub poll_interval: Duration,
    /// IDLE is re-issued this often (RFC 2177: before 29 minutes).
    pub idle_renew: Duration,
    /// Longest wait for one server answer before the connection counts as lost.
    pub io_timeout: Duration,
    /// Reconnect backoff bounds.
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// On the very first start (no cursor stored), also read mail already in the mailbox.
    pub read_backlog: bool,
    /// Mail larger than this is recorded from its headers only.
    pub max_message_bytes: u32,
    /// A PEM file of extra trusted root certificates (a private CA), besides the web PKI.
    pub ca_file: Option<std::path::PathBuf>,
}

/// Where mail goes out.
#[derive(Debug, Clone)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    pub security: Security,
    /// Empty: no authentication.
    pub username: String,
    pub password: String,
    pub timeout: Duration,
    /// A PEM file of extra trusted root certificates (a private CA), besides the web PKI.
    pub ca_file: Option<std::path::PathBuf>,
}

/// The whole email channel.
#[derive(Debug, Clone)]
pub struct EmailSettings {
    /// The support address customers write to, e.g. `support@example.com`. Replies come from
    /// it and point their Reply-To at `support+<conversation>@example.com`.
    pub address: String,
    /// Display name on outgoing mail.
    pub from_name: String,
    /// Subject of a reply when the customer's mail had none.
    pub default_subject: String,
    /// Longest text kept from one mail, in characters.
    pub max_text_chars: usize,
    pub imap: ImapSettings,
    pub smtp: SmtpSettings,
}

impl EmailSettings {
    /// The local part and domain of the support address.
    pub fn address_parts(&self) -> Option<(&str, &str)> {
        let (local, domain) = self.address.rsplit_once('@')?;
        if local.is_empty() || domain.is_empty() {
            return None;
        }
        Some((local, domain))
    }
}
