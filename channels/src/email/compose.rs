//! Builds the mail for one outbound message: our own Message-ID (derived from the delivery
//! id, so a retried delivery carries the same one), In-Reply-To and References so the
//! customer's client threads it, a Reply-To plus address so any reply finds its
//! conversation, and `Auto-Submitted: auto-replied` on the bot's and handoffd's own mail so
//! customers' auto-responders do not answer it (RFC 3834).

use lettre::Message;
use lettre::message::Mailbox;
use lettre::message::header::{ContentType, Header, HeaderName, HeaderValue};

use super::EmailSettings;
use super::store::Thread;
use super::thread::plus_address;
use crate::VisibleMessage;

/// Why a mail could not be built. Never worth retrying.
#[derive(Debug, thiserror::Error)]
pub enum ComposeError {
    #[error("invalid address `{0}`: {1}")]
    Address(String, String),
    #[error("cannot build the mail: {0}")]
    Build(String),
}

/// A built mail and its Message-ID (without brackets).
pub struct Composed {
    /// The mail, ready for the transport.
    pub message: Message,
    /// Its Message-ID, to remember for threading replies.
    pub message_id: String,
}

/// The `Auto-Submitted` header (RFC 3834).
#[derive(Clone)]
struct AutoSubmitted(String);

impl Header for AutoSubmitted {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("Auto-Submitted")
    }

    fn parse(s: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(Self(s.to_string()))
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), self.0.clone())
    }
}

/// Our Message-ID for a delivery of conversation `key`.
pub fn message_id(delivery_id: &str, key: &str, domain: &str) -> String {
    let safe: String = delivery_id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '.')
        .take(80)
        .collect();
    format!("{safe}.{key}@{domain}")
}

/// Builds the mail for `msg` in the conversation `key`.
pub fn compose(
    settings: &EmailSettings,
    key: &str,
    thread: &Thread,
    msg: &VisibleMessage,
    delivery_id: &str,
) -> Result<Composed, ComposeError> {
    let (local, domain) = settings
        .address_parts()
        .ok_or_else(|| ComposeError::Address(settings.address.clone(), "no domain".into()))?;
    let addr = |a: &str| {
        a.parse::<lettre::Address>()
            .map_err(|e| ComposeError::Address(a.to_string(), e.to_string()))
    };
    let display = match (msg.role.as_str(), &msg.author_name) {
        ("agent", Some(name)) => format!("{name} ({})", settings.from_name),
        _ => settings.from_name.clone(),
    };
    let from = Mailbox::new(Some(display), addr(&settings.address)?);
    let reply_to = Mailbox::new(
        Some(settings.from_name.clone()),
        addr(&plus_address(key, (local, domain)))?,
    );
    let to = Mailbox::new(thread.name.clone(), addr(&thread.address)?);
    let subject = reply_subject(
        thread
            .subject
            .as_deref()
            .unwrap_or(&settings.default_subject),
    );
    let id = message_id(delivery_id, key, domain);
    let mut builder = Message::builder()
        .from(from)
        .reply_to(reply_to)
        .to(to)
        .subject(subject)
        .message_id(Some(format!("<{id}>")))
        .header(ContentType::TEXT_PLAIN);
    if let Some(parent) = &thread.last_message_id {
        builder = builder.in_reply_to(format!("<{parent}>"));
    }
    if !thread.references.is_empty() {
        let refs: Vec<String> = thread.references.iter().map(|r| format!("<{r}>")).collect();
        builder = builder.references(refs.join(" "));
    }
    if msg.role != "agent" {
        builder = builder.header(AutoSubmitted("auto-replied".into()));
    }
    let mut body = msg.text.clone();
    if let ("agent", Some(name)) = (msg.role.as_str(), &msg.author_name) {
        body.push_str(&format!("\n\n{name}\n{}", settings.from_name));
    }
    let message = builder
        .body(body)
        .map_err(|e| ComposeError::Build(e.to_string()))?;
    Ok(Composed {
        message,
        message_id: id,
    })
}

/// "Re: " once, whatever the customer's client did.
fn reply_subject(subject: &str) -> String {
    let s = subject.trim();
    let lower = s.to_lowercase();
    if ["re:", "aw:", "sv:", "réf:", "rif:"]
        .iter()
        .any(|p| lower.starts_with(p))
    {
        s.to_string()
    } else {
        format!("Re: {s}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::email::ingest::tests::settings;

    fn visible(role: &str, name: Option<&str>, text: &str) -> VisibleMessage {
        VisibleMessage {
            quick_replies: Vec::new(),
            seq: 2,
            role: role.into(),
            author_name: name.map(String::from),
            text: text.into(),
            sent_at_ms: 0,
            client_id: None,
            delivery_mode: Default::default(),
        }
    }

    #[test]
    fn replies_carry_threading_headers_and_our_own_id() {
        let thread = Thread {
            address: "jane@x.test".into(),
            name: Some("Jane".into()),
            subject: Some("Where is my order?".into()),
            references: vec!["j1@x.test".into(), "j2@x.test".into()],
            last_message_id: Some("j2@x.test".into()),
        };
        let c = compose(
            &settings(),
            "mkey",
            &thread,
            &visible("bot", None, "It ships today."),
            "d-1",
        )
        .expect("compose");
        assert_eq!(c.message_id, "d-1.mkey@shop.test");
        let raw = String::from_utf8(c.message.formatted()).expect("utf8");
        assert!(raw.contains("Message-ID: <d-1.mkey@shop.test>"), "{raw}");
        assert!(raw.contains("In-Reply-To: <j2@x.test>"), "{raw}");
        assert!(raw.contains("References: <j1@x.test> <j2@x.test>"), "{raw}");
        assert!(raw.contains("Subject: Re: Where is my order?"), "{raw}");
        assert!(raw.contains("support+mkey@shop.test"), "{raw}");
        assert!(raw.contains("Auto-Submitted: auto-replied"), "{raw}");
        assert!(raw.contains("To: Jane <jane@x.test>"), "{raw}");

        let agent = compose(
            &settings(),
            "mkey",
            &thread,
            &visible("agent", Some("alice"), "Hi"),
            "d-2",
        )
        .expect("compose");
        let raw = String::from_utf8(agent.message.formatted()).expect("utf8");
        assert!(!raw.contains("Auto-Submitted"), "{raw}");
        let parsed = mail_parser::MessageParser::default()
            .parse(raw.as_bytes())
            .expect("parses");
        let from = parsed.from().and_then(|a| a.first()).and_then(|a| a.name());
        assert_eq!(from, Some("alice (Shop Support)"), "{raw}");
    }

    #[test]
    fn a_bad_customer_address_is_an_error_not_a_panic() {
        let thread = Thread {
            address: "not an address".into(),
            ..Default::default()
        };
        assert!(compose(&settings(), "k", &thread, &visible("bot", None, "x"), "d").is_err());
        assert_eq!(reply_subject("RE: x"), "RE: x");
        assert_eq!(reply_subject("x"), "Re: x");
    }
}
