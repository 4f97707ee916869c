//! Delivers outbound messages with `POST /channels/{id}/messages`. Sends to different
//! conversations run concurrently; sends to the same one go one after the other, in the order
//! the outbox handed them over. A long text goes out in parts of at most 2000 characters.
//!
//! Each part is retried here a few times first (a 429 after Discord's `retry_after`, a 5xx
//! or network error after a short backoff), so parts stay in order; then the outbox retries
//! the delivery later, and parts Discord accepted are not sent again as long as the daemon
//! runs. Every part carries a nonce derived from the delivery id, with `enforce_nonce`, so a
//! retry of a send Discord had taken (a timeout after it was accepted) is not shown twice.

use std::collections::HashMap;
use std::time::Duration;

use actix::prelude::*;
use sha2::{Digest, Sha256};
use tokio::sync::oneshot;

use super::api::{ApiError, RestApi};
use super::event::{Target, target};
use super::split::{MAX_CHARS, split};
use crate::{DeliveryReceipt, Outbound, OutboundPayload};

/// How far a delivery got: the parts Discord accepted and the first part's message id.
type Progress = (usize, Option<String>);

/// Attempts per part before the outbox takes over.
const ATTEMPTS: u32 = 3;
/// A rate-limit wait longer than this is left to the outbox (which keeps it durable).
const MAX_INLINE_WAIT: Duration = Duration::from_secs(30);

/// The sender actor of the Discord channel.
pub struct DiscordSender {
    api: RestApi,
    /// Per conversation, the last send queued: (its number, done when it finishes).
    tails: HashMap<String, (u64, oneshot::Receiver<()>)>,
    next: u64,
    /// Deliveries the outbox will retry, by delivery id.
    progress: HashMap<String, Progress>,
}

impl DiscordSender {
    /// A sender through `api`.
    pub fn new(api: RestApi) -> Self {
        DiscordSender {
            api,
            tails: HashMap::new(),
            next: 0,
            progress: HashMap::new(),
        }
    }
}

impl Actor for DiscordSender {
    type Context = Context<Self>;
}

/// The parts of a reply: a support-channel reply starts with a mention of its user.
pub fn parts(text: &str, target: &Target) -> Vec<String> {
    match &target.mention {
        Some(user) => {
            let prefix = format!("<@{user}> ");
            let mut parts = split(text, MAX_CHARS - prefix.len());
            if let Some(first) = parts.first_mut() {
                first.insert_str(0, &prefix);
            }
            parts
        }
        None => split(text, MAX_CHARS),
    }
}

/// Discord's nonce (at most 25 characters) for part `index` of a delivery: the same on
/// every retry of it, different for every other part.
pub fn nonce(delivery_id: &str, index: usize) -> String {
    let digest = Sha256::digest(format!("{delivery_id}/{index}").as_bytes());
    hex::encode(digest)[..25].to_string()
}

/// Sends one part, retrying what may pass on a second try.
async fn send_part(
    api: &RestApi,
    target: &Target,
    content: &str,
    nonce: &str,
) -> Result<String, ApiError> {
    let mut attempt = 0;
    loop {
        match api
            .create_message(
                &target.channel_id,
                content,
                nonce,
                target.mention.as_deref(),
            )
            .await
        {
            Ok(id) => return Ok(id),
            Err(e) if e.is_transient() && attempt + 1 < ATTEMPTS => {
                let wait = e
                    .retry_after()
                    .unwrap_or_else(|| Duration::from_millis(250u64 << attempt));
                if wait > MAX_INLINE_WAIT {
                    return Err(e);
                }
                tracing::info!(error = %e, ?wait, "Discord send will be retried");
                tokio::time::sleep(wait).await;
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

impl Handler<Outbound> for DiscordSender {
    type Result = ResponseActFuture<Self, DeliveryReceipt>;

    fn handle(&mut self, msg: Outbound, _ctx: &mut Self::Context) -> Self::Result {
        let delivered = DeliveryReceipt::Delivered {
            platform_message_id: None,
        };
        let Some(to) = target(&msg.conversation_key) else {
            return Box::pin(fut::ready(DeliveryReceipt::Failed {
                reason: format!("not a Discord conversation key: {}", msg.conversation_key),
            }));
        };
        let m = match msg.payload {
            OutboundPayload::Message(m) => m,
            // An agent typing shows as "typing..." (Discord ends it by itself); best effort,
            // never retried.
            OutboundPayload::Typing { active: true } => {
                let api = self.api.clone();
                return Box::pin(
                    async move {
                        if let Err(e) = api.trigger_typing(&to.channel_id).await {
                            tracing::debug!(error = %e, "Discord typing failed");
                        }
                        delivered
                    }
                    .into_actor(self),
                );
            }
            // Status changes are not sent: the customer learns of a handoff from the notice
            // messages, as on the other platforms.
            _ => return Box::pin(fut::ready(delivered)),
        };
        let parts = parts(&m.text, &to);
        let api = self.api.clone();
        let delivery = msg.delivery_id;
        let (mut sent, mut first_id) = self.progress.remove(&delivery).unwrap_or((0, None));
        let delivery_for_progress = delivery.clone();
        let (done, after_me) = oneshot::channel();
        self.next += 1;
        let me = self.next;
        let key = msg.conversation_key;
        let previous = self
            .tails
            .insert(key.clone(), (me, after_me))
            .map(|(_, rx)| rx);
        let send = async move {
            if let Some(previous) = previous {
                // An error only means the previous send's future was dropped: go on.
                let _ = previous.await;
            }
            let mut failure = None;
            for (index, part) in parts.iter().enumerate().skip(sent) {
                match send_part(&api, &to, part, &nonce(&delivery, index)).await {
                    Ok(id) => {
                        first_id.get_or_insert(id);
                        sent += 1;
                    }
                    Err(e) => {
                        tracing::info!(%delivery, error = %e, "Discord send failed");
                        failure = Some(e.receipt());
                        break;
                    }
                }
            }
            let _ = done.send(());
            match failure {
                Some(r) => (r, Some((sent, first_id))),
                None => (
                    DeliveryReceipt::Delivered {
                        platform_message_id: first_id,
                    },
                    None,
                ),
            }
        };
        Box::pin(
            send.into_actor(self)
                .map(move |(receipt, progress), act, _ctx| {
                    if let (DeliveryReceipt::Retry { .. }, Some(p)) = (&receipt, progress) {
                        act.progress.insert(delivery_for_progress, p);
                    }
                    // Nobody queued behind this send: forget the conversation.
                    if act.tails.get(&key).is_some_and(|(n, _)| *n == me) {
                        act.tails.remove(&key);
                    }
                    receipt
                }),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn support_channel_replies_mention_their_user_and_still_fit() {
        let dm = Target {
            channel_id: "9".into(),
            mention: None,
        };
        assert_eq!(parts("hi", &dm), vec!["hi".to_string()]);
        let support = Target {
            channel_id: "9".into(),
            mention: Some("42".into()),
        };
        assert_eq!(parts("hi", &support), vec!["<@42> hi".to_string()]);
        let long = "a".repeat(MAX_CHARS);
        let p = parts(&long, &support);
        assert_eq!(p.len(), 2);
        assert!(p.iter().all(|p| p.encode_utf16().count() <= MAX_CHARS));
        assert_eq!(p.concat().trim_start_matches("<@42> "), long);
    }

    #[test]
    fn nonces_are_short_stable_and_distinct() {
        let a = nonce("d1", 0);
        assert_eq!(a.len(), 25);
        assert_eq!(a, nonce("d1", 0));
        assert_ne!(a, nonce("d1", 1));
        assert_ne!(a, nonce("d2", 0));
    }
}
