//! Delivers outbound messages through the Graph API. One actor per Meta channel; sends run
//! concurrently, and the outbox keeps each conversation's order by waiting for receipts.

use actix::prelude::*;

use super::graph::GraphClient;
use super::{ConversationKey, Platform};
use crate::{DeliveryReceipt, Outbound, OutboundPayload};

/// The sender actor of one Meta channel.
pub struct GraphSender {
    platform: Platform,
    client: GraphClient,
}

impl GraphSender {
    /// A sender for `platform` through `client`.
    pub fn new(platform: Platform, client: GraphClient) -> Self {
        GraphSender { platform, client }
    }
}

impl Actor for GraphSender {
    type Context = Context<Self>;
}

impl Handler<Outbound> for GraphSender {
    type Result = ResponseFuture<DeliveryReceipt>;

    fn handle(&mut self, msg: Outbound, _ctx: &mut Self::Context) -> Self::Result {
        let ready = |r: DeliveryReceipt| -> Self::Result { Box::pin(async move { r }) };
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
        Box::pin(async move {
            let mut first_id = None;
            // A long text goes out in parts; a retry after a failed part sends the whole
            // message again (the platform may then show the first parts twice).
            for body in &bodies {
                match client.send_message(&key.account, body).await {
                    Ok(id) => {
                        first_id.get_or_insert(id);
                    }
                    Err(e) => {
                        tracing::info!(%delivery, error = %e, "Graph API send failed");
                        return e.receipt();
                    }
                }
            }
            DeliveryReceipt::Delivered {
                platform_message_id: first_id,
            }
        })
    }
}
