//! Where a channel that pulls from its platform (Telegram's long polling) keeps how far it
//! has read. The channel saves a position only after everything before it is journaled, and
//! starts from it again after a restart, so nothing acknowledged is lost and nothing is read
//! twice. The daemon implements it on its store; the channel never sees the disk.

use std::future::Future;
use std::pin::Pin;

use crate::ChannelKind;
use crate::state::ChannelState;

/// Why a position could not be read or saved.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("cursor store: {0}")]
pub struct CursorError(pub String);

/// A save in progress; resolves once the position is durable.
pub type CursorSave = Pin<Box<dyn Future<Output = Result<(), CursorError>> + Send>>;

/// Durable named positions, per channel.
pub trait CursorStore: Send + Sync + 'static {
    /// The position saved under `name`, if any.
    fn load(&self, channel: ChannelKind, name: &str) -> Result<Option<String>, CursorError>;
    /// Saves `value` under `name`; the future resolves once it is on disk.
    fn save(&self, channel: ChannelKind, name: &str, value: String) -> CursorSave;
}

/// Every [`ChannelState`] keeps cursors too, under `<channel>:cursor:<name>`: one durable
/// key/value space for all channel state, however a channel uses it.
impl<T: ChannelState> CursorStore for T {
    fn load(&self, channel: ChannelKind, name: &str) -> Result<Option<String>, CursorError> {
        let raw = self
            .get(&cursor_key(channel, name))
            .map_err(|e| CursorError(e.to_string()))?;
        raw.map(|bytes| {
            String::from_utf8(bytes).map_err(|_| CursorError("a saved cursor is not UTF-8".into()))
        })
        .transpose()
    }

    fn save(&self, channel: ChannelKind, name: &str, value: String) -> CursorSave {
        let put = self.put(vec![(cursor_key(channel, name), value.into_bytes())]);
        Box::pin(async move { put.await.map_err(|e| CursorError(e.to_string())) })
    }
}

fn cursor_key(channel: ChannelKind, name: &str) -> String {
    format!("{channel}:cursor:{name}")
}
