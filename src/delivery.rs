//! The outbox: what must reach a customer's platform is journaled first (by the conversation,
//! in the same commit as the message), then delivered here, retried with backoff, and
//! forgotten only when the channel reports a final outcome. A restart delivers whatever was
//! still pending. A final failure is written into the conversation so the agent or bot knows.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use actix::prelude::*;
use handoffd_channels::{ChannelKind, DeliveryReceipt, Outbound, OutboundPayload};

use crate::conversation::{DeliveryFailed, Directory, send_to};
use crate::model::{OutboundRef, OutboxEntry};
use crate::store::{Op, Store};

/// Attempts before a delivery that keeps asking for retries is given up.
const MAX_ATTEMPTS: u32 = 12;

/// Delivers a journaled outbox entry.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Deliver(pub OutboxEntry);

/// Delivers something that needs no journal (typing, status): lost if nobody is there.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Ephemeral(pub Outbound);

/// The outbox actor.
pub struct Outbox {
    store: Store,
    channels: HashMap<ChannelKind, Recipient<Outbound>>,
    directory: Addr<Directory>,
    in_flight: HashSet<String>,
}

impl Outbox {
    pub fn new(
        store: Store,
        channels: HashMap<ChannelKind, Recipient<Outbound>>,
        directory: Addr<Directory>,
    ) -> Self {
        Outbox {
            store,
            channels,
            directory,
            in_flight: HashSet::new(),
        }
    }

    fn attempt(&mut self, mut entry: OutboxEntry, ctx: &mut Context<Self>) {
        let Some(channel) = self.channels.get(&entry.channel).cloned() else {
            self.finish(
                entry,
                DeliveryReceipt::Failed {
                    reason: "the channel is not configured".into(),
                },
                ctx,
            );
            return;
        };
        self.in_flight.insert(entry.delivery_id.clone());
        entry.attempts += 1;
        channel
            .send(entry.outbound())
            .into_actor(self)
            .map(move |res, act, ctx| {
                let receipt = res.unwrap_or_else(|_| DeliveryReceipt::Retry {
                    after_ms: 1000,
                    reason: "the channel is not running".into(),
                });
                act.finish(entry, receipt, ctx);
            })
            .spawn(ctx);
    }

    fn finish(&mut self, entry: OutboxEntry, receipt: DeliveryReceipt, ctx: &mut Context<Self>) {
        match receipt {
            DeliveryReceipt::Retry { after_ms, reason } if entry.attempts < MAX_ATTEMPTS => {
                let backoff = 500u64.saturating_mul(1 << entry.attempts.min(10));
                let wait = Duration::from_millis(after_ms.max(backoff).min(300_000));
                tracing::debug!(delivery = %entry.delivery_id, %reason, ?wait, "delivery will be retried");
                ctx.run_later(wait, move |act, ctx| act.attempt(entry, ctx));
            }
            DeliveryReceipt::Retry { reason, .. } => {
                let reason = format!("gave up after {} attempts: {reason}", entry.attempts);
                self.finish(entry, DeliveryReceipt::Failed { reason }, ctx);
            }
            final_receipt => {
                self.in_flight.remove(&entry.delivery_id);
                let store = self.store.clone();
                let id = entry.delivery_id.clone();
                let directory = self.directory.clone();
                // Widget deliveries were never written to the outbox table.
                let mut ops = Vec::new();
                if entry.stored {
                    ops.push(Op::DeleteOutbox(id.clone()));
                }
                // The platform's id of a delivered message: its later delivery and read
                // reports find the message by it.
                if let (
                    DeliveryReceipt::Delivered {
                        platform_message_id: Some(pid),
                    },
                    OutboundPayload::Message(m),
                ) = (&final_receipt, &entry.payload)
                {
                    ops.push(Op::PutOutboundRef {
                        channel: entry.channel,
                        platform_message_id: pid.clone(),
                        target: OutboundRef {
                            conversation_id: entry.conversation_id.clone(),
                            seq: m.seq,
                        },
                    });
                }
                actix::spawn(async move {
                    if !ops.is_empty()
                        && let Err(e) = store.commit(ops).await
                    {
                        tracing::error!(delivery = %id, error = %e, "cannot clear delivered outbox entry");
                    }
                    if let DeliveryReceipt::Failed { reason } = final_receipt {
                        tracing::warn!(delivery = %id, %reason, "delivery failed");
                        let seq = match &entry.payload {
                            OutboundPayload::Message(m) => Some(m.seq),
                            _ => None,
                        };
                        let _ = send_to(
                            &directory,
                            &entry.conversation_id,
                            DeliveryFailed { seq, reason },
                        )
                        .await;
                    }
                });
            }
        }
    }
}

impl Actor for Outbox {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(8192);
        // Whatever was pending when the daemon last stopped goes out again.
        match self.store.outbox() {
            Ok(entries) => {
                if !entries.is_empty() {
                    tracing::info!(count = entries.len(), "resuming pending deliveries");
                }
                for e in entries {
                    self.attempt(e, ctx);
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot read the outbox"),
        }
    }
}

impl Handler<Deliver> for Outbox {
    type Result = ();

    fn handle(&mut self, msg: Deliver, ctx: &mut Self::Context) {
        if self.in_flight.contains(&msg.0.delivery_id) {
            return;
        }
        self.attempt(msg.0, ctx);
    }
}

impl Handler<Ephemeral> for Outbox {
    type Result = ();

    fn handle(&mut self, msg: Ephemeral, _ctx: &mut Self::Context) {
        if let Some(channel) = self.channels.get(&msg.0.channel) {
            channel.do_send(msg.0);
        }
    }
}
