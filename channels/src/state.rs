//! Durable state a channel keeps for itself (an IMAP cursor, thread mappings...).
//!
//! Channels know nothing of the daemon's store, yet some must remember things across
//! restarts. The daemon hands them a [`ChannelState`]: a small key/value view of its journal,
//! where a `put` returns only once the values are durable.

use futures_util::future::BoxFuture;

/// Why channel state could not be read or written.
#[derive(Debug, Clone, thiserror::Error)]
#[error("channel state: {0}")]
pub struct StateError(pub String);

/// A durable key/value space for one channel. Keys are chosen by the channel; values are
/// opaque bytes (channels use JSON so records can grow fields).
pub trait ChannelState: Send + Sync + 'static {
    /// The value under `key`, if any.
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StateError>;

    /// Writes every entry atomically; resolves once they are on disk.
    fn put(&self, entries: Vec<(String, Vec<u8>)>) -> BoxFuture<'static, Result<(), StateError>>;
}

/// An in-memory [`ChannelState`] for tests: nothing survives the process.
#[derive(Default)]
pub struct MemoryState {
    map: std::sync::Mutex<std::collections::HashMap<String, Vec<u8>>>,
}

impl ChannelState for MemoryState {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StateError> {
        let map = self.map.lock().map_err(|_| StateError("poisoned".into()))?;
        Ok(map.get(key).cloned())
    }

    fn put(&self, entries: Vec<(String, Vec<u8>)>) -> BoxFuture<'static, Result<(), StateError>> {
        let res = match self.map.lock() {
            Ok(mut map) => {
                map.extend(entries);
                Ok(())
            }
            Err(_) => Err(StateError("poisoned".into())),
        };
        Box::pin(async move { res })
    }
}
