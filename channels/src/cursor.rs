//! Where a channel that pulls from its platform (Telegram's long polling) keeps how far it
//! has read. The channel saves a position only after everything before it is journaled, and
//! starts from it again after a restart, so nothing acknowledged is lost and nothing is read
//! twice. The daemon implements it on its store; the channel never sees the disk.

use std::future::Future;
use std::pin::Pin;

use crate::ChannelKind;

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
