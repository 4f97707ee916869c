//! Delivers outbound messages through the Graph API. One actor per Meta channel. Sends to
//! different customers run concurrently; sends to the same customer go one after the other,
//! in the order the outbox handed them over, so a conversation's messages arrive in order.

use std::collections::HashMap;

use actix::prelude::*;
use tokio::sync::oneshot;

use super::graph::GraphClient;
use super::{ConversationKey, Platform};
use crate::{DeliveryReceipt, Outbound, OutboundPayload};

/// The sender actor of one Meta channel.
pub struct GraphSender {
    platform: Platform,
    client: GraphClient,
    /// Per conversation key, the last send queued: (its number, done when it finishes).
    tails: HashMap<String, (u64, oneshot::Receiver<()>)>,
    next: u64,
}

impl GraphSender {
    /// A sender for `platform` through `client`.
    pub fn new(platform: Platform, client: GraphClient) -> Self {
        GraphSender {
            platform,
            client,
            tails: HashMap::new(),
            next: 0,
        }
    }
}

impl Actor for GraphSender {
    type Context = Context<Self>;
}

impl Handler<Outbound> for GraphSender {
    type Result = ResponseActFuture<Self, DeliveryReceipt>;

    fn handle(&mut self, msg: Outbound, _ctx: &mut Self::Context) -> Self::Result {
        let ready = |r: DeliveryReceipt| -> Self::Result { Box::pin(fut::ready(r)) };
        // Typing and status changes have no Meta equivalent worth a request; the customer
        // learns of a handoff from the notice messages.
        let OutboundPayload::Message(m) = msg.payload else {
            return ready(DeliveryReceipt::Delivered {
                platform_message_id: None,
            });
        };
        let Some(key) = ConversationKey::parse(&msg.conversation_key) else {
            return ready(DeliveryReceipt::Failed {
                reason: format!(
                    "`{}` is not a {:?} conversation key",
                    msg.conversation_key, self.platform
                ),
            });
        };
        let bodies = match self
            .platform
            .send_bodies(&key.customer, &m.text, &m.delivery_mode)
        {
            Ok(b) => b,
            Err(e) => return ready(DeliveryReceipt::Failed { reason: e.0 }),
        };
        let client = self.client.clone();
        let delivery = msg.delivery_id;
        // Wait for the previous send to the same customer, and be the one the next waits for.
        let (done, after_me) = oneshot::channel();
        self.next += 1;
        let me = self.next;
        let previous = self
            .tails
            .insert(msg.conversation_key.clone(), (me, after_me))
            .map(|(_, rx)| rx);
        let conversation_key = msg.conversation_key;
        let send = async move {
            if let Some(previous) = previous {
                // An error only means the previous send's future was dropped: go on.
                let _ = previous.await;
            }
            let mut first_id = None;
            let mut receipt = None;
            // A long text goes out in parts; a retry after a failed part sends the whole
            // message again (the platform may then show the first parts twice).
            for body in &bodies {
                match client.send_message(&key.account, body).await {
                    Ok(id) => {
                        first_id.get_or_insert(id);
                    }
                    Err(e) => {
                        tracing::info!(%delivery, error = %e, "Graph API send failed");
                        receipt = Some(e.receipt());
                        break;
                    }
                }
            }
            let _ = done.send(());
            receipt.unwrap_or(DeliveryReceipt::Delivered {
                platform_message_id: first_id,
            })
        };
        Box::pin(send.into_actor(self).map(move |receipt, act, _ctx| {
            // Nobody queued behind this send: forget the conversation.
            if act
                .tails
                .get(&conversation_key)
                .is_some_and(|(n, _)| *n == me)
            {
                act.tails.remove(&conversation_key);
            }
            receipt
        }))
    }
}
