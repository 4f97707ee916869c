//! What the email channel remembers, on top of the daemon's [`ChannelState`]:
//! the IMAP cursor (UIDVALIDITY and last UID handled), each thread (who the customer is,
//! the subject, the message ids to reply to) and which conversation every message id
//! belongs to, ours and theirs, so any reply finds its conversation.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::state::{ChannelState, StateError};

/// Ids kept in a thread's References: the first (the root) and the latest ones.
const MAX_THREAD_REFERENCES: usize = 20;

/// How far the mailbox was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// The mailbox's UIDVALIDITY when the UIDs below were seen; a change voids them.
    pub uid_validity: u32,
    /// Every message with a UID up to this one is handled.
    pub last_uid: u32,
}

/// One email conversation as the channel needs it to write back.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Thread {
    /// The customer's address replies go to.
    pub address: String,
    /// The customer's display name, for the To header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The first mail's subject; replies use it with `Re: `.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Message ids of the thread, oldest first, bounded: our replies' References.
    #[serde(default)]
    pub references: Vec<String>,
    /// The customer's latest mail: what our replies answer (In-Reply-To).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_message_id: Option<String>,
}

impl Thread {
    /// Adds one of our mails to the thread, keeping the root and the latest ids. True when
    /// the id is new (a mail sent or read again changes nothing).
    pub fn push_id(&mut self, id: &str) -> bool {
        if self.references.iter().any(|r| r == id) {
            return false;
        }
        self.references.push(id.to_string());
        if self.references.len() > MAX_THREAD_REFERENCES {
            let excess = self.references.len() - MAX_THREAD_REFERENCES;
            self.references.drain(1..=excess);
        }
        true
    }

    /// Adds a customer's mail: it is also what our next replies answer, unless it was
    /// already known (read again after a restart) and newer mail came since.
    pub fn push_customer_id(&mut self, id: &str) {
        if self.push_id(id) {
            self.last_message_id = Some(id.to_string());
        }
    }
}

/// Typed access to the email channel's keys.
#[derive(Clone)]
pub struct MailState {
    inner: Arc<dyn ChannelState>,
    /// Held around every read-modify-write of a thread: the IMAP reader and the SMTP sender
    /// both update threads, and neither may lose the other's update.
    threads: Arc<tokio::sync::Mutex<()>>,
}

fn cursor_key(mailbox: &str) -> String {
    format!("email:cursor:{mailbox}")
}
fn thread_key(key: &str) -> String {
    format!("email:thread:{key}")
}
fn message_key(id: &str) -> String {
    format!("email:msgid:{id}")
}

impl MailState {
    /// Wraps the daemon's state; clones share the thread lock.
    pub fn new(inner: Arc<dyn ChannelState>) -> Self {
        Self {
            inner,
            threads: Arc::default(),
        }
    }

    /// Exclusive right to read, change and write back threads until the guard is dropped.
    pub async fn lock_threads(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.threads.lock().await
    }

    /// How far `mailbox` was read; `None` before the first start.
    pub fn cursor(&self, mailbox: &str) -> Result<Option<Cursor>, StateError> {
        self.json(&cursor_key(mailbox))
    }

    /// The thread of a conversation key, if mail was ever read for it.
    pub fn thread(&self, key: &str) -> Result<Option<Thread>, StateError> {
        self.json(&thread_key(key))
    }

    /// The conversation key a message id belongs to.
    pub fn conversation_of(&self, message_id: &str) -> Result<Option<String>, StateError> {
        Ok(self
            .inner
            .get(&message_key(message_id))?
            .and_then(|v| String::from_utf8(v).ok()))
    }

    fn json<T: serde::de::DeserializeOwned>(&self, key: &str) -> Result<Option<T>, StateError> {
        match self.inner.get(key)? {
            None => Ok(None),
            Some(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| StateError(format!("{key}: {e}"))),
        }
    }

    /// Writes a batch built with [`Batch`]; resolves once durable.
    pub async fn commit(&self, batch: Batch) -> Result<(), StateError> {
        if batch.entries.is_empty() {
            return Ok(());
        }
        self.inner.put(batch.entries).await
    }
}

/// Changes to write together.
#[derive(Debug, Default)]
pub struct Batch {
    entries: Vec<(String, Vec<u8>)>,
}

impl Batch {
    /// The key/value pairs to write, for a caller that writes them in a commit of its own.
    pub fn into_entries(self) -> Vec<(String, Vec<u8>)> {
        self.entries
    }

    /// Moves the mailbox's cursor.
    pub fn cursor(&mut self, mailbox: &str, c: Cursor) -> &mut Self {
        self.json(cursor_key(mailbox), &c)
    }

    /// Replaces a conversation's thread.
    pub fn thread(&mut self, key: &str, t: &Thread) -> &mut Self {
        self.json(thread_key(key), t)
    }

    /// Maps a message id (ours or theirs) to its conversation, for threading replies.
    pub fn message(&mut self, message_id: &str, conversation_key: &str) -> &mut Self {
        self.entries.push((
            message_key(message_id),
            conversation_key.as_bytes().to_vec(),
        ));
        self
    }

    fn json<T: Serialize>(&mut self, key: String, v: &T) -> &mut Self {
        match serde_json::to_vec(v) {
            Ok(bytes) => self.entries.push((key, bytes)),
            // Plain structs of strings and numbers always serialize.
            Err(e) => tracing::error!(%key, error = %e, "cannot encode email state"),
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::MemoryState;

    #[tokio::test]
    async fn state_round_trips_and_references_stay_bounded() {
        let state = MailState::new(Arc::new(MemoryState::default()));
        let mut t = Thread {
            address: "a@x.test".into(),
            ..Default::default()
        };
        for i in 0..30 {
            t.push_customer_id(&format!("id{i}@x"));
        }
        assert_eq!(t.references.len(), MAX_THREAD_REFERENCES);
        assert_eq!(t.references[0], "id0@x");
        assert_eq!(t.references.last().map(String::as_str), Some("id29@x"));
        assert_eq!(t.last_message_id.as_deref(), Some("id29@x"));
        // Our own mails and known ids seen again do not change what we answer.
        assert!(t.push_id("ours@shop"));
        assert!(!t.push_id("ours@shop"));
        t.push_customer_id("id0@x");
        assert_eq!(t.last_message_id.as_deref(), Some("id29@x"));
        assert_eq!(t.references.len(), MAX_THREAD_REFERENCES);
        let mut b = Batch::default();
        b.thread("k1", &t).message("id0@x", "k1").cursor(
            "INBOX",
            Cursor {
                uid_validity: 7,
                last_uid: 42,
            },
        );
        state.commit(b).await.expect("commit");
        assert_eq!(state.thread("k1").expect("read"), Some(t));
        assert_eq!(
            state.conversation_of("id0@x").expect("read").as_deref(),
            Some("k1")
        );
        assert_eq!(state.conversation_of("nope").expect("read"), None);
        assert_eq!(
            state.cursor("INBOX").expect("read"),
            Some(Cursor {
                uid_validity: 7,
                last_uid: 42
            })
        );
    }
}
