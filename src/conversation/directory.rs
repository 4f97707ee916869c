//! Finds the actor of a conversation: live, revived from the store, or new. Also answers the
//! channels' requests that need no actor (history for a resuming widget).
//!
//! Conversation actors are spread over a set of arbiters (one per core) round-robin. The
//! directory is the only place that starts them, so there is never more than one actor per
//! conversation.

use std::collections::HashMap;
use std::sync::Arc;

use actix::prelude::*;
use handoffd_channels::{
    ChannelKind, ConversationStatus, CustomerTyping, DeliveryTarget, DeliveryUpdate, History,
    HistoryRequest, Inbound, InboundAck, InboundError, now_ms,
};
use tokio::sync::oneshot;
use uuid::Uuid;

use super::{
    ConversationActor, ConversationError, CustomerMessage, QueuePosition, RecordDelivery,
    ReportTarget, Services, TypingSignal, send_to,
};
use crate::model::{ConversationRecord, Owner};
use crate::store::Store;

/// The directory actor.
pub struct Directory {
    live: HashMap<String, Addr<ConversationActor>>,
    /// (channel, key) -> conversation id, for conversations this process has seen.
    keys: HashMap<(ChannelKind, String), String>,
    arbiters: Vec<ArbiterHandle>,
    next_arbiter: usize,
    store: Store,
    /// Set once at startup: the services hold the directory's own address.
    svc: Option<Arc<Services>>,
}

impl Directory {
    pub fn new(store: Store, arbiters: Vec<ArbiterHandle>) -> Self {
        Directory {
            live: HashMap::new(),
            keys: HashMap::new(),
            arbiters,
            next_arbiter: 0,
            store,
            svc: None,
        }
    }

    fn start_actor(
        &mut self,
        record: ConversationRecord,
        transcript: Vec<crate::model::MessageRecord>,
    ) -> Result<Addr<ConversationActor>, ConversationError> {
        let svc = self.svc.clone().ok_or(ConversationError::Unavailable)?;
        let id = record.id.clone();
        let addr = if self.arbiters.is_empty() {
            ConversationActor::new(svc, record, transcript).start()
        } else {
            let arbiter = &self.arbiters[self.next_arbiter % self.arbiters.len()];
            self.next_arbiter = self.next_arbiter.wrapping_add(1);
            ConversationActor::start_in_arbiter(arbiter, move |_| {
                ConversationActor::new(svc, record, transcript)
            })
        };
        self.live.insert(id, addr.clone());
        Ok(addr)
    }

    /// The live actor of a stored conversation, reviving it if needed.
    fn get(&mut self, id: &str) -> Result<Addr<ConversationActor>, ConversationError> {
        if let Some(addr) = self.live.get(id)
            && addr.connected()
        {
            return Ok(addr.clone());
        }
        let record = self
            .store
            .conversation(id)?
            .ok_or_else(|| ConversationError::NotFound(id.to_string()))?;
        let transcript = self.store.messages_after(id, 0)?;
        self.keys
            .insert((record.channel, record.key.clone()), record.id.clone());
        self.start_actor(record, transcript)
    }

    /// The conversation for a channel key, creating it (unsaved until its first message) if
    /// there is none.
    fn get_or_create(
        &mut self,
        inbound: &Inbound,
    ) -> Result<Addr<ConversationActor>, ConversationError> {
        let key = (inbound.channel, inbound.conversation_key.clone());
        let id = match self.keys.get(&key) {
            Some(id) => Some(id.clone()),
            None => self
                .store
                .conversation_by_key(inbound.channel, &inbound.conversation_key)?,
        };
        if let Some(id) = id {
            if let Some(addr) = self.live.get(&id)
                && addr.connected()
            {
                return Ok(addr.clone());
            }
            if self.store.conversation(&id)?.is_some() {
                return self.get(&id);
            }
            // Known key whose first message never became durable: start it again unsaved.
            let record = ConversationRecord::new(
                id,
                inbound.channel,
                inbound.conversation_key.clone(),
                inbound.contact.clone(),
                now_ms(),
            );
            return self.start_actor(record, Vec::new());
        }
        let id = Uuid::now_v7().simple().to_string();
        let record = ConversationRecord::new(
            id.clone(),
            inbound.channel,
            inbound.conversation_key.clone(),
            inbound.contact.clone(),
            now_ms(),
        );
        self.keys.insert(key, id);
        self.start_actor(record, Vec::new())
    }

    fn history(&self, req: &HistoryRequest) -> Result<History, InboundError> {
        let storage = |e: crate::store::StoreError| InboundError::Storage(e.to_string());
        let Some(id) = self
            .store
            .conversation_by_key(req.channel, &req.conversation_key)
            .map_err(storage)?
        else {
            return Ok(History::default());
        };
        let Some(record) = self.store.conversation(&id).map_err(storage)? else {
            return Ok(History::default());
        };
        let messages = self
            .store
            .messages_after(&id, req.after_seq)
            .map_err(storage)?
            .into_iter()
            .filter(|m| m.role.customer_visible())
            .map(|m| m.visible())
            .collect();
        let status = match &record.owner {
            Owner::Bot => ConversationStatus::Bot,
            Owner::Queued { .. } => ConversationStatus::Queued {
                position: None,
                eta_secs: None,
            },
            Owner::Agent { agent_id, .. } => ConversationStatus::Agent {
                agent_name: self
                    .store
                    .agent(agent_id)
                    .ok()
                    .flatten()
                    .map_or_else(|| agent_id.clone(), |a| a.display_name),
            },
        };
        Ok(History {
            conversation_id: Some(id),
            messages,
            status: Some(status),
        })
    }
}

impl Actor for Directory {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Enough room for bursts from many channel sessions at once.
        ctx.set_mailbox_capacity(4096);
    }
}

/// Hands the directory the services once they exist (they hold its address).
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetServices(pub Arc<Services>);

impl Handler<SetServices> for Directory {
    type Result = ();

    fn handle(&mut self, msg: SetServices, _ctx: &mut Self::Context) {
        self.svc = Some(msg.0);
    }
}

/// Finds a conversation's actor by id.
#[derive(Message)]
#[rtype(result = "Result<Addr<ConversationActor>, ConversationError>")]
pub struct Lookup {
    pub conversation_id: String,
}

impl Handler<Lookup> for Directory {
    type Result = Result<Addr<ConversationActor>, ConversationError>;

    fn handle(&mut self, msg: Lookup, _ctx: &mut Self::Context) -> Self::Result {
        self.get(&msg.conversation_id)
    }
}

/// An idle actor asks to be forgotten; true when it may stop.
#[derive(Message)]
#[rtype(result = "bool")]
pub struct Retire {
    pub conversation_id: String,
    pub channel: ChannelKind,
    pub key: String,
    pub addr: Addr<ConversationActor>,
}

impl Handler<Retire> for Directory {
    type Result = bool;

    fn handle(&mut self, msg: Retire, _ctx: &mut Self::Context) -> bool {
        match self.live.get(&msg.conversation_id) {
            Some(addr) if *addr == msg.addr => {
                self.live.remove(&msg.conversation_id);
                // Forget its key too: a dormant conversation costs no memory here.
                self.keys.remove(&(msg.channel, msg.key));
                true
            }
            // Already replaced: the old actor may stop too.
            Some(_) | None => true,
        }
    }
}

/// Looks an inbound message's conversation up for the retry loop.
#[derive(Message)]
#[rtype(result = "Result<Addr<ConversationActor>, ConversationError>")]
struct Resolve(Inbound);

impl Handler<Resolve> for Directory {
    type Result = Result<Addr<ConversationActor>, ConversationError>;

    fn handle(&mut self, msg: Resolve, _ctx: &mut Self::Context) -> Self::Result {
        self.get_or_create(&msg.0)
    }
}

/// Hands a customer's message to its conversation's actor; the receiver gets the ack.
/// Not `send`: its answer would come only after the bot's turn, while the ack comes as soon
/// as the message is journaled. A message dropped unread drops the sender.
fn hand_to(
    addr: &Addr<ConversationActor>,
    inbound: Inbound,
) -> oneshot::Receiver<Result<InboundAck, InboundError>> {
    let (ack, rx) = oneshot::channel();
    addr.do_send(CustomerMessage { inbound, ack });
    rx
}

impl Handler<Inbound> for Directory {
    type Result = MessageResult<Inbound>;

    /// Passes the message on at once, in the order messages reach the directory, and
    /// answers with the wait for its ack, which the channel runs on its own task.
    fn handle(&mut self, inbound: Inbound, ctx: &mut Self::Context) -> Self::Result {
        let first = self
            .get_or_create(&inbound)
            .map(|addr| hand_to(&addr, inbound.clone()));
        let me = ctx.address();
        let pending: handoffd_channels::PendingAck = Box::pin(async move {
            let mut waiting = first.map_err(|e| InboundError::Storage(e.to_string()))?;
            // An actor that retires while our message waits in its mailbox drops it: look it
            // up again. The platform id makes a repeat harmless.
            for _ in 0..5 {
                if let Ok(res) = waiting.await {
                    return res;
                }
                let addr = me
                    .send(Resolve(inbound.clone()))
                    .await
                    .map_err(|_| InboundError::Unavailable)?
                    .map_err(|e| InboundError::Storage(e.to_string()))?;
                waiting = hand_to(&addr, inbound.clone());
            }
            Err(InboundError::Unavailable)
        });
        MessageResult(pending)
    }
}

impl Handler<CustomerTyping> for Directory {
    type Result = ();

    fn handle(&mut self, msg: CustomerTyping, _ctx: &mut Self::Context) {
        // Typing only matters to a live conversation with an agent; never revive for it.
        let Some(id) = self.keys.get(&(msg.channel, msg.conversation_key)) else {
            return;
        };
        if let Some(addr) = self.live.get(id) {
            addr.do_send(TypingSignal {
                agent_id: None,
                active: msg.active,
            });
        }
    }
}

impl Handler<HistoryRequest> for Directory {
    type Result = Result<History, InboundError>;

    fn handle(&mut self, msg: HistoryRequest, _ctx: &mut Self::Context) -> Self::Result {
        self.history(&msg)
    }
}

/// How many conversation actors are alive, for health checks and tests of idle stopping.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct LiveCount;

impl Handler<LiveCount> for Directory {
    type Result = usize;

    fn handle(&mut self, _msg: LiveCount, _ctx: &mut Self::Context) -> usize {
        self.live.retain(|_, addr| addr.connected());
        self.live.len()
    }
}

/// The router tells a queued conversation its place; forwarded in order.
#[derive(Message)]
#[rtype(result = "()")]
pub struct TellPosition {
    pub conversation_id: String,
    pub position: usize,
    /// Estimated wait, whole minutes in seconds, when the router has one.
    pub eta_secs: Option<u64>,
}

impl Handler<TellPosition> for Directory {
    type Result = ();

    fn handle(&mut self, msg: TellPosition, _ctx: &mut Self::Context) {
        match self.get(&msg.conversation_id) {
            Ok(addr) => addr.do_send(QueuePosition {
                position: msg.position,
                eta_secs: msg.eta_secs,
            }),
            Err(e) => {
                tracing::debug!(conversation = %msg.conversation_id, error = %e, "no position update")
            }
        }
    }
}

impl Handler<DeliveryUpdate> for Directory {
    type Result = ResponseFuture<Result<bool, InboundError>>;

    /// Finds the conversation (and message) a platform's report is about and has it
    /// recorded; a report on a message this daemon does not know is answered `Ok(false)`.
    fn handle(&mut self, msg: DeliveryUpdate, ctx: &mut Self::Context) -> Self::Result {
        let storage = |e: crate::store::StoreError| InboundError::Storage(e.to_string());
        let found = match &msg.target {
            DeliveryTarget::Message {
                platform_message_id,
            } => self
                .store
                .outbound_ref(msg.channel, platform_message_id)
                .map(|r| r.map(|r| (r.conversation_id, ReportTarget::Seq(r.seq)))),
            DeliveryTarget::UpTo {
                conversation_key,
                watermark_ms,
            } => self
                .store
                .conversation_by_key(msg.channel, conversation_key)
                .map(|id| id.map(|id| (id, ReportTarget::UpTo(*watermark_ms)))),
        };
        let me = ctx.address();
        Box::pin(async move {
            let Some((conversation_id, target)) = found.map_err(storage)? else {
                tracing::debug!(channel = %msg.channel, target = ?msg.target, "delivery report on an unknown message");
                return Ok(false);
            };
            let record = RecordDelivery {
                target,
                status: msg.status,
                at_ms: msg.at_ms,
                error: msg.error,
            };
            send_to(&me, &conversation_id, record)
                .await
                .map_err(|e| InboundError::Storage(e.to_string()))?;
            Ok(true)
        })
    }
}
