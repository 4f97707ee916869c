//! One fetched mail becomes an [`Inbound`] for the core, plus the state to remember for it:
//! the thread (reply address, subject, ids) and the mail's Message-ID mapped to its
//! conversation.

use crate::state::StateError;
use crate::{Attachment, ChannelKind, Contact, Inbound, now_ms};

use super::EmailSettings;
use super::content::{self, ParsedMail};
use super::store::{Batch, MailState, Thread};
use super::thread::{self, Found};

/// Where a mail was read from.
#[derive(Debug, Clone)]
pub struct Source {
    /// The folder the mail is in.
    pub mailbox: String,
    /// UIDVALIDITY of that folder.
    pub uid_validity: u32,
    /// The mail's UID in that folder.
    pub uid: u32,
    /// The mail's full size on the server.
    pub size: u32,
    /// Only the header was fetched: the mail is larger than the configured limit.
    pub header_only: bool,
}

impl Source {
    /// An IMAP URL (RFC 5092) naming the raw message on the server, kept with the message.
    pub fn url(&self) -> String {
        format!(
            "imap:///{};UIDVALIDITY={}/;UID={}",
            self.mailbox, self.uid_validity, self.uid
        )
    }
}

/// What to do with one mail.
#[derive(Debug)]
pub enum Ingested {
    /// Commit the batch (the thread), then give the mail to the core.
    Deliver {
        /// The message for the conversation.
        inbound: Box<Inbound>,
        /// The thread update and Message-ID mapping.
        batch: Batch,
        /// How the conversation was found (for the log).
        found: Found,
    },
    /// Not for a conversation (our own mail coming back, or no message at all).
    Skip(String),
}

/// Turns raw bytes into what the core and the state need.
pub fn ingest(
    raw: &[u8],
    source: &Source,
    settings: &EmailSettings,
    state: &MailState,
) -> Result<Ingested, StateError> {
    let Some(support) = settings.address_parts() else {
        return Ok(Ingested::Skip("the support address is invalid".into()));
    };
    let Some(mail) = content::parse(raw, settings.max_text_chars) else {
        return Ok(Ingested::Skip("not a mail message".into()));
    };
    if let Some(from) = &mail.from
        && is_ours(&from.address, support)
    {
        return Ok(Ingested::Skip(format!("sent by us ({})", from.address)));
    }
    let fallback_id = format!(
        "uid:{}/{}/{}",
        source.mailbox, source.uid_validity, source.uid
    );
    let (key, found) = thread::resolve(&mail, state, support, &fallback_id)?;
    let mut t = state.thread(&key)?.unwrap_or_default();
    if let Some(p) = &mail.reply_to {
        t.address = p.address.clone();
        if p.name.is_some() {
            t.name = p.name.clone();
        }
    }
    if t.subject.is_none() {
        t.subject = mail.subject.clone().filter(|s| !s.is_empty());
    }
    let mut batch = Batch::default();
    if let Some(id) = &mail.message_id {
        t.push_customer_id(id);
        batch.message(id, &key);
    }
    batch.thread(&key, &t);
    let inbound = to_inbound(&mail, &key, &t, source, &fallback_id);
    Ok(Ingested::Deliver {
        inbound: Box::new(inbound),
        batch,
        found,
    })
}

/// Mail from the support address itself (or one of its plus addresses).
fn is_ours(address: &str, (local, domain): (&str, &str)) -> bool {
    let Some((l, d)) = address.rsplit_once('@') else {
        return false;
    };
    let base = l.split('+').next().unwrap_or(l);
    d.eq_ignore_ascii_case(domain) && base.eq_ignore_ascii_case(local)
}

fn to_inbound(
    mail: &ParsedMail,
    key: &str,
    thread: &Thread,
    source: &Source,
    fallback_id: &str,
) -> Inbound {
    let text = if source.header_only {
        format!(
            "(This mail is {} bytes, larger than handoffd reads; open it in the mailbox.)",
            source.size
        )
    } else if mail.text.trim().is_empty() {
        "(no text)".to_string()
    } else {
        mail.text.clone()
    };
    let url = source.url();
    let mut attachments = vec![Attachment {
        id: url.clone(),
        kind: "message/rfc822".into(),
        name: Some("original message".into()),
        size: Some(u64::from(source.size)),
    }];
    attachments.extend(
        mail.attachments
            .iter()
            .enumerate()
            .map(|(i, a)| Attachment {
                id: format!("{url};ATTACHMENT={}", i + 1),
                kind: a.kind.clone(),
                name: a.name.clone(),
                size: Some(a.size),
            }),
    );
    let sender = mail.from.as_ref().or(mail.reply_to.as_ref());
    Inbound {
        channel: ChannelKind::Email,
        conversation_key: key.to_string(),
        contact: Contact {
            name: sender.and_then(|p| p.name.clone()).or(thread.name.clone()),
            channel_user_id: sender
                .map(|p| p.address.clone())
                .unwrap_or_else(|| thread.address.clone()),
            language: None,
            attributes: Default::default(),
        },
        platform_message_id: mail
            .message_id
            .clone()
            .unwrap_or_else(|| fallback_id.to_string()),
        text,
        attachments,
        sent_at_ms: mail.sent_at_ms.unwrap_or_else(now_ms),
        automated: mail.automatic.is_some(),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::email::config::{ImapSettings, Security, SmtpSettings};
    use crate::state::MemoryState;
    use std::sync::Arc;
    use std::time::Duration;

    pub fn settings() -> EmailSettings {
        EmailSettings {
            address: "support@shop.test".into(),
            from_name: "Shop Support".into(),
            default_subject: "Your message".into(),
            max_text_chars: 10_000,
            imap: ImapSettings {
                host: "127.0.0.1".into(),
                port: 1,
                security: Security::Plain,
                username: "u".into(),
                password: "p".into(),
                mailbox: "INBOX".into(),
                use_idle: true,
                poll_interval: Duration::from_secs(30),
                idle_renew: Duration::from_secs(600),
                io_timeout: Duration::from_secs(30),
                backoff_min: Duration::from_secs(1),
                backoff_max: Duration::from_secs(60),
                read_backlog: false,
                max_message_bytes: 1 << 20,
                ca_file: None,
            },
            smtp: SmtpSettings {
                host: "127.0.0.1".into(),
                port: 1,
                security: Security::Plain,
                username: String::new(),
                password: String::new(),
                timeout: Duration::from_secs(30),
                ca_file: None,
            },
        }
    }

    fn source(uid: u32) -> Source {
        Source {
            mailbox: "INBOX".into(),
            uid_validity: 9,
            uid,
            size: 100,
            header_only: false,
        }
    }

    #[tokio::test]
    async fn a_reply_joins_the_thread_its_first_mail_started() {
        let state = MailState::new(Arc::new(MemoryState::default()));
        let s = settings();
        let first = b"From: Jane <jane@x.test>\r\nTo: support@shop.test\r\nSubject: Order\r\nMessage-ID: <j1@x.test>\r\n\r\nWhere is my order?";
        let Ingested::Deliver {
            inbound,
            batch,
            found,
        } = ingest(first, &source(1), &s, &state).expect("ingest")
        else {
            panic!("first mail must be delivered")
        };
        assert_eq!(found, Found::New);
        assert_eq!(inbound.text, "Where is my order?");
        assert_eq!(inbound.contact.channel_user_id, "jane@x.test");
        assert_eq!(inbound.platform_message_id, "j1@x.test");
        assert_eq!(
            inbound.attachments[0].id,
            "imap:///INBOX;UIDVALIDITY=9/;UID=1"
        );
        assert!(!inbound.automated);
        state.commit(batch).await.expect("commit");
        let key = inbound.conversation_key.clone();
        let t = state.thread(&key).expect("read").expect("thread");
        assert_eq!(t.subject.as_deref(), Some("Order"));
        assert_eq!(t.last_message_id.as_deref(), Some("j1@x.test"));

        let reply = b"From: jane@x.test\r\nSubject: Re: Order\r\nMessage-ID: <j2@x.test>\r\nIn-Reply-To: <unknown@shop.test>\r\nReferences: <j1@x.test> <unknown@shop.test>\r\nAuto-Submitted: auto-replied\r\n\r\nI am away.";
        let Ingested::Deliver { inbound, found, .. } =
            ingest(reply, &source(2), &s, &state).expect("ingest")
        else {
            panic!("reply must be delivered")
        };
        assert_eq!(found, Found::Reference("j1@x.test".into()));
        assert_eq!(inbound.conversation_key, key);
        assert!(inbound.automated);
    }

    #[tokio::test]
    async fn our_own_mail_and_non_mail_are_skipped() {
        let state = MailState::new(Arc::new(MemoryState::default()));
        let s = settings();
        let ours = b"From: support+mabc@shop.test\r\nSubject: Re: x\r\n\r\nhello";
        assert!(matches!(
            ingest(ours, &source(1), &s, &state).expect("ingest"),
            Ingested::Skip(_)
        ));
        let big = Source {
            header_only: true,
            size: 50_000_000,
            ..source(3)
        };
        let Ingested::Deliver { inbound, .. } =
            ingest(b"From: a@x.test\r\nSubject: huge\r\n\r\n", &big, &s, &state).expect("ingest")
        else {
            panic!("a large mail is still recorded")
        };
        assert!(inbound.text.contains("50000000 bytes"), "{}", inbound.text);
        assert_eq!(inbound.platform_message_id, "uid:INBOX/9/3");
    }
}
