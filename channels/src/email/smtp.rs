//! Outbound over SMTP with lettre: one actor sends one mail at a time, so a thread's ids are
//! updated in order. After a mail is accepted its Message-ID is remembered for threading.
//! SMTP permanent errors (5xx, bad address) are final; anything else is retried by the
//! daemon's outbox.

use std::sync::Arc;

use actix::prelude::*;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use super::EmailSettings;
use super::compose::compose;
use super::config::Security;
use super::store::{Batch, MailState};
use crate::{DeliveryReceipt, Outbound, OutboundPayload};

/// Why the SMTP transport could not be built.
#[derive(Debug, thiserror::Error)]
#[error("SMTP relay `{host}`: {reason}")]
pub struct TransportError {
    /// The configured relay host.
    pub host: String,
    /// What lettre refused.
    pub reason: String,
}

/// Builds the transport the settings describe.
pub fn transport(
    settings: &EmailSettings,
) -> Result<AsyncSmtpTransport<Tokio1Executor>, TransportError> {
    let s = &settings.smtp;
    let err = |e: lettre::transport::smtp::Error| TransportError {
        host: s.host.clone(),
        reason: e.to_string(),
    };
    let tls = || -> Result<TlsParameters, TransportError> {
        let mut params = TlsParameters::builder(s.host.clone());
        if let Some(path) = &s.ca_file {
            let pem = std::fs::read(path).map_err(|e| TransportError {
                host: s.host.clone(),
                reason: format!("{}: {e}", path.display()),
            })?;
            params = params.add_root_certificate(Certificate::from_pem(&pem).map_err(err)?);
        }
        params.build_rustls().map_err(err)
    };
    let relay = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&s.host);
    let mut b = match s.security {
        Security::Tls => relay.tls(Tls::Wrapper(tls()?)),
        Security::StartTls => relay.tls(Tls::Required(tls()?)),
        Security::Plain => relay,
    };
    b = b.port(s.port).timeout(Some(s.timeout));
    if !s.username.is_empty() {
        b = b.credentials(Credentials::new(s.username.clone(), s.password.clone()));
    }
    Ok(b.build())
}

/// The outbound side of the email channel.
pub struct SmtpOutbound {
    /// Addresses and names used in outgoing mail.
    pub settings: Arc<EmailSettings>,
    /// Threads to reply into; sent ids are recorded here.
    pub state: MailState,
    /// The configured SMTP relay.
    pub transport: AsyncSmtpTransport<Tokio1Executor>,
}

impl Actor for SmtpOutbound {
    type Context = Context<Self>;
}

impl Handler<Outbound> for SmtpOutbound {
    type Result = AtomicResponse<Self, DeliveryReceipt>;

    fn handle(&mut self, msg: Outbound, _ctx: &mut Self::Context) -> Self::Result {
        let settings = self.settings.clone();
        let state = self.state.clone();
        let transport = self.transport.clone();
        AtomicResponse::new(Box::pin(
            async move { deliver(msg, &settings, &state, &transport).await }.into_actor(self),
        ))
    }
}

async fn deliver(
    msg: Outbound,
    settings: &EmailSettings,
    state: &MailState,
    transport: &AsyncSmtpTransport<Tokio1Executor>,
) -> DeliveryReceipt {
    let visible = match &msg.payload {
        OutboundPayload::Message(m) => m,
        // Typing and status have no meaning in mail.
        OutboundPayload::Typing { .. } | OutboundPayload::Status(_) => {
            return DeliveryReceipt::Delivered {
                platform_message_id: None,
            };
        }
    };
    let key = &msg.conversation_key;
    let thread = match state.thread(key) {
        Ok(Some(t)) => t,
        Ok(None) => {
            return DeliveryReceipt::Failed {
                reason: format!("no email thread for conversation key `{key}`"),
            };
        }
        Err(e) => {
            return DeliveryReceipt::Retry {
                after_ms: 2000,
                reason: e.to_string(),
            };
        }
    };
    let composed = match compose(settings, key, &thread, visible, &msg.delivery_id) {
        Ok(c) => c,
        Err(e) => {
            return DeliveryReceipt::Failed {
                reason: e.to_string(),
            };
        }
    };
    // The id is mapped to the conversation before the mail leaves: a reply to it must find
    // its conversation even if the daemon stops right after sending. (A retry sends the
    // same id; a mail never sent leaves a mapping nobody will ever use.)
    let mut b = Batch::default();
    b.message(&composed.message_id, key);
    if let Err(e) = state.commit(b).await {
        return DeliveryReceipt::Retry {
            after_ms: 2000,
            reason: e.to_string(),
        };
    }
    match transport.send(composed.message).await {
        Ok(_) => {
            if let Err(e) = remember(state, key, &composed.message_id).await {
                // The mail is out; only threading of a reply to it could suffer, and the
                // plus address in its Reply-To still leads back here.
                tracing::error!(%key, error = %e, "cannot remember a sent mail");
            }
            DeliveryReceipt::Delivered {
                platform_message_id: Some(composed.message_id),
            }
        }
        Err(e) if e.is_permanent() => DeliveryReceipt::Failed {
            reason: format!("SMTP: {e}"),
        },
        Err(e) => DeliveryReceipt::Retry {
            after_ms: 5000,
            reason: format!("SMTP: {e}"),
        },
    }
}

/// Adds a sent mail's id to its thread's References (read again under the lock: mail may
/// have come in while this one was on its way).
async fn remember(
    state: &MailState,
    key: &str,
    message_id: &str,
) -> Result<(), crate::state::StateError> {
    let _threads = state.lock_threads().await;
    let mut thread = state.thread(key)?.unwrap_or_default();
    thread.push_id(message_id);
    let mut b = Batch::default();
    b.thread(key, &thread);
    state.commit(b).await
}
