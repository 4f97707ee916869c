//! Which conversation a mail belongs to.
//!
//! In order: the mail's own Message-ID when it was read before (a mail read again after a
//! restart or a UIDVALIDITY change goes where it went the first time); a message id in
//! In-Reply-To or anywhere in References that we have seen
//! (clients truncate References, so every id listed is looked up, latest first); then a
//! plus address of ours (`support+<conversation>@domain`) among the recipients when that
//! conversation exists; else a new conversation whose key is derived from the mail's own
//! Message-ID, so reading the same mail twice lands in the same conversation.

use sha2::{Digest, Sha256};

use super::content::ParsedMail;
use super::store::MailState;
use crate::state::StateError;

/// How the conversation was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// Through a message id of the thread.
    Reference(String),
    /// Through `support+<key>@domain` in the recipients.
    PlusAddress,
    /// Nothing matched: a new conversation.
    New,
}

/// The conversation key for a mail and how it was found. `fallback_id` identifies mail
/// without a Message-ID (mailbox, UIDVALIDITY and UID).
pub fn resolve(
    mail: &ParsedMail,
    state: &MailState,
    support_address: (&str, &str),
    fallback_id: &str,
) -> Result<(String, Found), StateError> {
    let candidates = mail
        .message_id
        .iter()
        .chain(mail.in_reply_to.iter())
        .chain(mail.references.iter().rev());
    for id in candidates {
        if let Some(key) = state.conversation_of(id)? {
            return Ok((key, Found::Reference(id.clone())));
        }
    }
    for r in &mail.recipients {
        if let Some(key) = plus_key(r, support_address)
            && state.thread(&key)?.is_some()
        {
            return Ok((key, Found::PlusAddress));
        }
    }
    let own = mail.message_id.as_deref().unwrap_or(fallback_id);
    Ok((new_key(own), Found::New))
}

/// The key in `local+key@domain` when `local@domain` is the support address.
pub fn plus_key(address: &str, (local, domain): (&str, &str)) -> Option<String> {
    let (l, d) = address.rsplit_once('@')?;
    if !d.eq_ignore_ascii_case(domain) {
        return None;
    }
    let (base, key) = l.split_once('+')?;
    if !base.eq_ignore_ascii_case(local) || !valid_key(key) {
        return None;
    }
    Some(key.to_ascii_lowercase())
}

/// Conversation keys are short lowercase hex with a prefix: safe in an address.
fn valid_key(key: &str) -> bool {
    (2..=64).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// The key of a new conversation started by the mail with this id.
pub fn new_key(message_id: &str) -> String {
    let digest = Sha256::digest(message_id.as_bytes());
    let mut key = String::from("m");
    for b in digest.iter().take(10) {
        key.push_str(&format!("{b:02x}"));
    }
    key
}

/// The plus address of a conversation, where customers' replies come back.
pub fn plus_address(key: &str, (local, domain): (&str, &str)) -> String {
    format!("{local}+{key}@{domain}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::email::store::{Batch, Thread};
    use crate::state::MemoryState;
    use std::sync::Arc;

    fn mail() -> ParsedMail {
        ParsedMail {
            message_id: Some("new@client.test".into()),
            in_reply_to: vec![],
            references: vec![],
            from: None,
            reply_to: None,
            recipients: vec!["support@shop.test".into()],
            subject: None,
            sent_at_ms: None,
            text: String::new(),
            attachments: vec![],
            automatic: None,
        }
    }

    const SUPPORT: (&str, &str) = ("support", "shop.test");

    #[tokio::test]
    async fn references_then_plus_address_then_new() {
        let state = MailState::new(Arc::new(MemoryState::default()));
        let mut b = Batch::default();
        b.message("ours@shop.test", "mkey1").thread(
            "mkey2",
            &Thread {
                address: "a@x.test".into(),
                ..Default::default()
            },
        );
        state.commit(b).await.expect("commit");

        // A truncated References: only an old id is known, and it is not the last one.
        let mut m = mail();
        m.references = vec!["ours@shop.test".into(), "unknown@x".into()];
        m.recipients = vec!["support+mkey2@shop.test".into()];
        assert_eq!(
            resolve(&m, &state, SUPPORT, "uid").expect("resolve"),
            ("mkey1".into(), Found::Reference("ours@shop.test".into()))
        );

        // No known id: the plus address.
        m.references.clear();
        assert_eq!(
            resolve(&m, &state, SUPPORT, "uid").expect("resolve"),
            ("mkey2".into(), Found::PlusAddress)
        );

        // A plus address of a conversation we never had, or another domain: new.
        m.recipients = vec![
            "support+mnothere@shop.test".into(),
            "support+mkey2@other.test".into(),
        ];
        let (key, how) = resolve(&m, &state, SUPPORT, "uid").expect("resolve");
        assert_eq!(how, Found::New);
        assert_eq!(key, new_key("new@client.test"));
        // Deterministic: the same mail read twice lands in the same conversation.
        assert_eq!(resolve(&m, &state, SUPPORT, "uid").expect("resolve").0, key);
        // A mail read before goes where it went, whatever its headers say now.
        let mut b = Batch::default();
        b.message("new@client.test", "mkey2");
        state.commit(b).await.expect("commit");
        assert_eq!(
            resolve(&m, &state, SUPPORT, "uid").expect("resolve"),
            ("mkey2".into(), Found::Reference("new@client.test".into()))
        );
        // Without a Message-ID the fallback id decides.
        m.message_id = None;
        assert_eq!(
            resolve(&m, &state, SUPPORT, "INBOX/7/3")
                .expect("resolve")
                .0,
            new_key("INBOX/7/3")
        );
    }

    #[test]
    fn plus_addresses_parse_strictly() {
        assert_eq!(
            plus_key("Support+MAbc12@Shop.Test", SUPPORT),
            Some("mabc12".into())
        );
        assert_eq!(plus_key("support@shop.test", SUPPORT), None);
        assert_eq!(plus_key("sales+mabc@shop.test", SUPPORT), None);
        assert_eq!(plus_key("support+a-b@shop.test", SUPPORT), None);
        assert_eq!(plus_address("mabc", SUPPORT), "support+mabc@shop.test");
    }
}
