//! Long polling: `getUpdates` with an offset, each message journaled before it counts as
//! read. The last update handled is saved in the daemon's store before the next poll
//! confirms it to Telegram, so a restart starts right after it: nothing Telegram forgot is
//! missing from the journal, and nothing already journaled is read again. Should the
//! daemon die between journaling a message and saving the position, the message comes
//! again and is recognised by its id.

use std::sync::Arc;
use std::time::Duration;

use super::api::{ApiError, BotApi};
use super::update::{self, Parsed};
use crate::cursor::CursorStore;
use crate::{ChannelKind, CoreLink, Inbound, InboundError};

/// The name the position is saved under.
pub const CURSOR: &str = "last_update_id";

/// Longest wait between attempts when Telegram or the journal keeps failing.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Polls until the process stops.
pub async fn run(api: BotApi, core: CoreLink, cursors: Arc<dyn CursorStore>, timeout_secs: u64) {
    let mut last = match cursors.load(ChannelKind::Telegram, CURSOR) {
        Ok(v) => v.and_then(|v| v.parse::<i64>().ok()),
        Err(e) => {
            tracing::error!(error = %e, "cannot read Telegram's saved position; starting from what Telegram still holds");
            None
        }
    };
    tracing::info!(last_update_id = ?last, "Telegram long polling started");
    let mut backoff = Duration::from_millis(500);
    loop {
        let updates = match api.get_updates(last.map(|l| l + 1), timeout_secs).await {
            Ok(u) => {
                backoff = Duration::from_millis(500);
                u
            }
            Err(e) => {
                let wait = match &e {
                    ApiError::Api {
                        code: 429,
                        retry_after_secs: Some(s),
                        ..
                    } => Duration::from_secs(*s),
                    _ => backoff,
                };
                tracing::warn!(error = %e, ?wait, "getUpdates failed");
                tokio::time::sleep(wait).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        let before = last;
        for raw in updates {
            let Some(id) = update::update_id(&raw) else {
                tracing::warn!("an update without update_id was skipped");
                continue;
            };
            if last.is_some_and(|l| id <= l) {
                continue; // already handled
            }
            match update::parse_value(raw) {
                Ok((_, Parsed::Message(inbound))) => deliver(&core, *inbound).await,
                Ok((_, Parsed::Skipped(why))) => {
                    tracing::debug!(update_id = id, why, "Telegram update skipped")
                }
                Err(e) => tracing::warn!(update_id = id, error = %e, "Telegram update skipped"),
            }
            last = Some(id);
        }
        if last != before
            && let Some(l) = last
            && let Err(e) = cursors
                .save(ChannelKind::Telegram, CURSOR, l.to_string())
                .await
        {
            // The next poll confirms these updates anyway; after a restart they come again
            // from the older position and are recognised as duplicates.
            tracing::error!(error = %e, "cannot save Telegram's position");
        }
    }
}

/// Hands one message to the daemon, waiting until it is journaled. A message the daemon
/// refuses is logged and passed over; while the journal cannot take it, it is offered again
/// (the poll does not move on, so Telegram keeps everything after it).
async fn deliver(core: &CoreLink, inbound: Inbound) {
    let mut backoff = Duration::from_millis(200);
    loop {
        let result = core.submit(inbound.clone()).await;
        match result {
            Ok(_) => return,
            Err(InboundError::Refused(why)) => {
                tracing::warn!(message = %inbound.platform_message_id, %why, "Telegram message refused");
                return;
            }
            Err(e) => {
                tracing::error!(error = %e, ?backoff, "Telegram message not stored yet");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}
