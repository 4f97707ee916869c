//! Finds the actor of a conversation: live, revived from the store, or new. Also answers the
//! channels' requests that need no actor (history for a resuming widget).
//!
//! A conversation's actor starts on the thread of the connection its first message came
//! from (an HTTP worker's arbiter), so a customer's turn, its ack and the bot's reply stay on
//! one thread; actors revived for other reasons (an agent, the router) are spread over the
//! conversation arbiters round-robin. The directory is the only place that starts them, so
//! there is never more than one actor per conversation.
//!
//! Channels reach the directory through [`InboundRoute`]: a message for a conversation whose
//! actor is live goes straight to that actor from the channel's thread, found in the shared
//! [`Routes`]; only the first message of a conversation (or one whose actor has retired)
//! passes through the directory actor.

use std::collections::HashMap;
use std::sync::Arc;

use actix::prelude::*;
use handoffd_channels::{
    ChannelKind, ConversationStatus, CustomerLeft, CustomerTyping, DeliveryTarget, DeliveryUpdate,
    History, HistoryRequest, Inbound, InboundAck, InboundError, InboundSink, PendingAck, now_ms,
};
use parking_lot::RwLock;
use tokio::sync::oneshot;
use uuid::Uuid;

use super::{
    ConversationActor, ConversationError, CustomerGone, CustomerMessage, QueuePosition,
    RecordDelivery, ReportTarget, Services, TypingSignal, send_to,
};
use crate::model::{ConversationRecord, Owner};
use crate::store::Store;

/// The live conversation actors by (channel, key), shared with every channel's thread.
/// Written only by the directory; a stale entry (an actor that has just stopped) is harmless,
/// since a message it drops is looked up again through the directory.
/// Keyed by channel first, so a lookup borrows the key instead of copying it.
pub type Routes = Arc<RwLock<HashMap<ChannelKind, HashMap<String, Addr<ConversationActor>>>>>;

/// The directory actor.
pub struct Directory {
    live: HashMap<String, Addr<ConversationActor>>,
    /// (channel, key) -> conversation id, for conversations this process has seen.
    keys: HashMap<(ChannelKind, String), String>,
    routes: Routes,
    arbiters: Vec<ArbiterHandle>,
    next_arbiter: usize,
    store: Store,
    /// Set once at startup: the services hold the directory's own address.
    svc: Option<Arc<Services>>,
}

impl Directory {
    /// The actor of a channel's conversation if it is live; signals that only matter to a
    /// live conversation (typing, a customer who left) never revive one.
    fn live_by_key(&self, channel: ChannelKind, key: String) -> Option<&Addr<ConversationActor>> {
        let id = self.keys.get(&(channel, key))?;
        self.live.get(id)
    }

    pub fn new(store: Store, arbiters: Vec<ArbiterHandle>) -> Self {
        Directory {
            live: HashMap::new(),
            keys: HashMap::new(),
            routes: Routes::default(),
            arbiters,
            next_arbiter: 0,
            store,
            svc: None,
        }
    }

    /// The routes the directory keeps, for an [`InboundRoute`].
    pub fn routes(&self) -> Routes {
        self.routes.clone()
    }

    /// Starts a conversation's actor on `place` (the arbiter its customer's message came
    /// from) or, without one, on the next conversation arbiter.
    fn start_actor(
        &mut self,
        record: ConversationRecord,
        transcript: Vec<crate::model::MessageRecord>,
        place: Option<&ArbiterHandle>,
    ) -> Result<Addr<ConversationActor>, ConversationError> {
        let svc = self.svc.clone().ok_or(ConversationError::Unavailable)?;
        let id = record.id.clone();
        let (channel, key) = (record.channel, record.key.clone());
        let arbiter = place.or_else(|| {
            let a = self
                .arbiters
                .get(self.next_arbiter % self.arbiters.len().max(1));
            self.next_arbiter = self.next_arbiter.wrapping_add(1);
            a
        });
        let addr = match arbiter {
            Some(arbiter) => ConversationActor::start_in_arbiter(arbiter, move |_| {
                ConversationActor::new(svc, record, transcript)
            }),
            None => ConversationActor::new(svc, record, transcript).start(),
        };
        self.live.insert(id, addr.clone());
        self.routes
            .write()
            .entry(channel)
            .or_default()
            .insert(key, addr.clone());
        Ok(addr)
    }

    /// The live actor of a stored conversation, reviving it if needed.
    fn get(&mut self, id: &str) -> Result<Addr<ConversationActor>, ConversationError> {
        self.get_at(id, None)
    }

    fn get_at(
        &mut self,
        id: &str,
        place: Option<&ArbiterHandle>,
    ) -> Result<Addr<ConversationActor>, ConversationError> {
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
        self.start_actor(record, transcript, place)
    }

    /// The conversation for a channel key, creating it (unsaved until its first message) if
    /// there is none.
    fn get_or_create(
        &mut self,
        inbound: &Inbound,
        place: Option<&ArbiterHandle>,
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
                return self.get_at(&id, place);
            }
            // Known key whose first message never became durable: start it again unsaved.
            let record = ConversationRecord::new(
                id,
                inbound.channel,
                inbound.conversation_key.clone(),
                inbound.contact.clone(),
                now_ms(),
            );
            return self.start_actor(record, Vec::new(), place);
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
        self.start_actor(record, Vec::new(), place)
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
                let mut routes = self.routes.write();
                if let Some(by_key) = routes.get_mut(&msg.channel)
                    && by_key.get(&msg.key) == Some(&msg.addr)
                {
                    by_key.remove(&msg.key);
                }
                drop(routes);
                self.keys.remove(&(msg.channel, msg.key));
                true
            }
            // Already replaced: the old actor may stop too.
            Some(_) | None => true,
        }
    }
}

/// Looks an inbound message's conversation up for the retry loop; a new actor starts on the
/// arbiter the message came from.
#[derive(Message)]
#[rtype(result = "Result<Addr<ConversationActor>, ConversationError>")]
struct Resolve(Arc<Inbound>, Option<ArbiterHandle>);

impl Handler<Resolve> for Directory {
    type Result = Result<Addr<ConversationActor>, ConversationError>;

    fn handle(&mut self, msg: Resolve, _ctx: &mut Self::Context) -> Self::Result {
        self.get_or_create(&msg.0, msg.1.as_ref())
    }
}

/// Hands a customer's message to its conversation's actor; the receiver gets the ack.
/// Not `send`: its answer would come only after the bot's turn, while the ack comes as soon
/// as the message is journaled. A message dropped unread drops the sender.
fn hand_to(
    addr: &Addr<ConversationActor>,
    inbound: Arc<Inbound>,
) -> oneshot::Receiver<Result<InboundAck, InboundError>> {
    let (ack, rx) = oneshot::channel();
    addr.do_send(CustomerMessage { inbound, ack });
    rx
}

/// Waits for a handed message's ack; an actor that retires while the message waits in its
/// mailbox drops it, so the message is looked up again (the platform id makes a repeat
/// harmless).
async fn acked(
    first: Result<oneshot::Receiver<Result<InboundAck, InboundError>>, InboundError>,
    directory: Arc<Addr<Directory>>,
    inbound: Arc<Inbound>,
    place: Option<ArbiterHandle>,
) -> Result<InboundAck, InboundError> {
    let mut waiting = first?;
    for _ in 0..5 {
        if let Ok(res) = waiting.await {
            return res;
        }
        let addr = directory
            .send(Resolve(inbound.clone(), place.clone()))
            .await
            .map_err(|_| InboundError::Unavailable)?
            .map_err(|e| InboundError::Storage(e.to_string()))?;
        waiting = hand_to(&addr, inbound.clone());
    }
    Err(InboundError::Unavailable)
}

/// A customer's message, with the arbiter it came from: an actor started for it starts
/// there. Passed on at once, in the order messages reach the directory; the answer is the
/// wait for its ack, which the channel runs on its own task.
#[derive(Message)]
#[rtype(result = "PendingAck")]
struct Place {
    inbound: Inbound,
    arbiter: Option<ArbiterHandle>,
}

impl Handler<Place> for Directory {
    type Result = MessageResult<Place>;

    fn handle(&mut self, msg: Place, ctx: &mut Self::Context) -> Self::Result {
        let Place { inbound, arbiter } = msg;
        let inbound = Arc::new(inbound);
        let first = self
            .get_or_create(&inbound, arbiter.as_ref())
            .map(|addr| hand_to(&addr, inbound.clone()))
            .map_err(|e| InboundError::Storage(e.to_string()));
        let pending: PendingAck = Box::pin(acked(first, Arc::new(ctx.address()), inbound, arbiter));
        MessageResult(pending)
    }
}

/// How channels hand customers' messages in: straight to a live conversation's actor from
/// the channel's own thread, or through the directory when there is none yet.
pub struct InboundRoute {
    routes: Routes,
    /// Shared with each message's wait for its ack: an `Addr` clone allocates, an `Arc`
    /// clone does not.
    directory: Arc<Addr<Directory>>,
    /// The thread that built the route: the main one, where the directory, router and
    /// outbox run. A channel task running there (a poller) does not get its conversations
    /// placed beside it.
    main_thread: std::thread::ThreadId,
}

impl InboundRoute {
    /// Must be built on the main thread.
    pub fn new(routes: Routes, directory: Addr<Directory>) -> Self {
        InboundRoute {
            routes,
            directory: Arc::new(directory),
            main_thread: std::thread::current().id(),
        }
    }

    /// Where a conversation whose message comes from this thread should live: beside the
    /// connection on an HTTP worker, anywhere (round-robin) from the main thread.
    fn place(&self) -> Option<ArbiterHandle> {
        if std::thread::current().id() == self.main_thread {
            None
        } else {
            actix_rt::Arbiter::try_current()
        }
    }
}

impl InboundSink for InboundRoute {
    fn submit(&self, inbound: Inbound) -> PendingAck {
        let live = self
            .routes
            .read()
            .get(&inbound.channel)
            .and_then(|by_key| by_key.get(&inbound.conversation_key))
            .filter(|addr| addr.connected())
            .cloned();
        let place = self.place();
        if let Some(addr) = live {
            let inbound = Arc::new(inbound);
            let first = Ok(hand_to(&addr, inbound.clone()));
            return Box::pin(acked(first, self.directory.clone(), inbound, place));
        }
        let asked = self.directory.send(Place {
            inbound,
            arbiter: place,
        });
        Box::pin(async move {
            match asked.await {
                Ok(pending) => pending.await,
                Err(_) => Err(InboundError::Unavailable),
            }
        })
    }
}

impl Handler<CustomerTyping> for Directory {
    type Result = ();

    fn handle(&mut self, msg: CustomerTyping, _ctx: &mut Self::Context) {
        // Typing only matters to a live conversation with an agent; never revive for it.
        if let Some(addr) = self.live_by_key(msg.channel, msg.conversation_key) {
            addr.do_send(TypingSignal {
                agent_id: None,
                active: msg.active,
            });
        }
    }
}

impl Handler<CustomerLeft> for Directory {
    type Result = ();

    fn handle(&mut self, msg: CustomerLeft, _ctx: &mut Self::Context) {
        // Only a live conversation has memory to give back; never revive for it.
        if let Some(addr) = self.live_by_key(msg.channel, msg.conversation_key) {
            addr.do_send(CustomerGone);
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
