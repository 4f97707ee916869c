//! Delivers outbound messages with `sendMessage`. Sends to different chats run concurrently;
//! sends to the same chat go one after the other, in the order the outbox handed them over.
//! A long text goes out in parts, and a part Telegram accepted is not sent again when the
//! outbox retries the rest (after a 429, say), as long as the daemon keeps running.

use std::collections::HashMap;

use actix::prelude::*;
use tokio::sync::oneshot;

use super::api::BotApi;
use super::split::{MAX_UNITS, split_utf16};
use crate::{DeliveryReceipt, Outbound, OutboundPayload};

/// How far a delivery got: the parts Telegram accepted and the first part's message id.
type Progress = (usize, Option<String>);

/// The sender actor of the Telegram channel.
pub struct TelegramSender {
    api: BotApi,
    /// Per chat, the last send queued: (its number, done when it finishes).
    tails: HashMap<String, (u64, oneshot::Receiver<()>)>,
    next: u64,
    /// Deliveries the outbox will retry, by delivery id.
    progress: HashMap<String, Progress>,
}

impl TelegramSender {
    /// A sender through `api`.
    pub fn new(api: BotApi) -> Self {
        TelegramSender {
            api,
            tails: HashMap::new(),
            next: 0,
            progress: HashMap::new(),
        }
    }
}

impl Actor for TelegramSender {
    type Context = Context<Self>;
}

impl Handler<Outbound> for TelegramSender {
    type Result = ResponseActFuture<Self, DeliveryReceipt>;

    fn handle(&mut self, msg: Outbound, _ctx: &mut Self::Context) -> Self::Result {
        let delivered = DeliveryReceipt::Delivered {
            platform_message_id: None,
        };
        let m = match msg.payload {
            OutboundPayload::Message(m) => m,
            // An agent typing shows as "typing..." (Telegram ends it by itself); best effort,
            // never retried.
            OutboundPayload::Typing { active: true } => {
                let api = self.api.clone();
                let chat = msg.conversation_key;
                return Box::pin(
                    async move {
                        if let Err(e) = api.send_typing(&chat).await {
                            tracing::debug!(error = %e, "sendChatAction failed");
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
        let parts = split_utf16(&m.text, MAX_UNITS);
        let api = self.api.clone();
        let delivery = msg.delivery_id;
        let (mut sent, mut first_id) = self.progress.remove(&delivery).unwrap_or((0, None));
        let delivery_for_progress = delivery.clone();
        let (done, after_me) = oneshot::channel();
        self.next += 1;
        let me = self.next;
        let previous = self
            .tails
            .insert(msg.conversation_key.clone(), (me, after_me))
            .map(|(_, rx)| rx);
        let chat = msg.conversation_key;
        let chat_for_tail = chat.clone();
        let send = async move {
            if let Some(previous) = previous {
                // An error only means the previous send's future was dropped: go on.
                let _ = previous.await;
            }
            let mut failure = None;
            for part in parts.iter().skip(sent) {
                match api.send_message(&chat, part).await {
                    Ok(id) => {
                        first_id.get_or_insert(id);
                        sent += 1;
                    }
                    Err(e) => {
                        tracing::info!(%delivery, error = %e, "Telegram send failed");
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
                    // Nobody queued behind this send: forget the chat.
                    if act.tails.get(&chat_for_tail).is_some_and(|(n, _)| *n == me) {
                        act.tails.remove(&chat_for_tail);
                    }
                    receipt
                }),
        )
    }
}
