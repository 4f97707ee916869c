//! The router: queues escalated conversations, offers them to agents, and decides who holds
//! what. It is the only actor that decides assignments, and it counts an offer against the
//! agent's capacity from the moment it is made, so no agent ever exceeds its capacity, even
//! under a burst. On start it rebuilds its state from the store: queue order with original
//! enqueue times, and every assignment.

mod state;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use actix::prelude::*;
use handoffd_channels::now_ms;

use crate::agents::AgentRegistry;
use crate::agents::protocol::{AgentInfo, Presence, ServerFrame};
use crate::config::Config;
use crate::conversation::{
    AssignAgent, ConversationError, Directory, Requeue, TellPosition, send_to,
};
use crate::handoff::HandoffPackage;
use crate::model::{AgentRecord, Assignment, QueueEntry};
use crate::store::Store;
pub use state::QueueKey;
use state::{AgentState, Offer, queue_key};

/// Timing settings of the router.
#[derive(Debug, Clone)]
pub struct RouterSettings {
    pub offer_timeout: Duration,
    pub requeue_after_disconnect: Duration,
    pub decline_cooldown: Duration,
}

impl RouterSettings {
    pub fn from_config(c: &Config) -> Self {
        RouterSettings {
            offer_timeout: Duration::from_secs(c.router.offer_timeout_secs),
            requeue_after_disconnect: Duration::from_secs(c.router.requeue_after_disconnect_secs),
            decline_cooldown: Duration::from_secs(c.router.decline_cooldown_secs),
        }
    }
}

/// Why the router refused an agent's request.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum RouterError {
    #[error("there is no offer of `{0}` for you")]
    NoOffer(String),
    #[error("{0}")]
    Conversation(#[from] ConversationError),
    #[error("unknown agent")]
    UnknownAgent,
}

impl RouterError {
    pub fn code(&self) -> &'static str {
        match self {
            RouterError::NoOffer(_) => "no_offer",
            RouterError::Conversation(e) => e.code(),
            RouterError::UnknownAgent => "unknown_agent",
        }
    }
}

/// The router actor.
pub struct Router {
    store: Store,
    directory: Addr<Directory>,
    registry: AgentRegistry,
    settings: RouterSettings,
    /// Every waiting conversation, highest priority first, then oldest first.
    queue: BTreeMap<QueueKey, QueueEntry>,
    queued: HashMap<String, QueueKey>,
    agents: HashMap<String, AgentState>,
    offers: HashMap<String, Offer>,
    /// Conversations whose accept is being confirmed by the conversation actor.
    accepting: HashSet<String>,
    /// (conversation, agent) -> when declined (or let time out), and whether it was an
    /// explicit decline (strict) or a timeout (skipped only while someone else can take it).
    declined: HashMap<(String, String), (Instant, bool)>,
    /// The position each queued customer was last told.
    told_position: HashMap<String, usize>,
    next_offer_id: u64,
}

impl Router {
    pub fn new(
        store: Store,
        directory: Addr<Directory>,
        registry: AgentRegistry,
        settings: RouterSettings,
    ) -> Self {
        Router {
            store,
            directory,
            registry,
            settings,
            queue: BTreeMap::new(),
            queued: HashMap::new(),
            agents: HashMap::new(),
            offers: HashMap::new(),
            accepting: HashSet::new(),
            declined: HashMap::new(),
            told_position: HashMap::new(),
            next_offer_id: 1,
        }
    }

    fn restore(&mut self, ctx: &mut Context<Self>) -> Result<(), crate::store::StoreError> {
        for a in self.store.agents()? {
            self.agents.insert(a.id.clone(), AgentState::new(a));
        }
        for e in self.store.queue_entries()? {
            self.insert_queue(e);
        }
        for a in self.store.assignments()? {
            match self.agents.get_mut(&a.agent_id) {
                Some(s) => {
                    s.assigned.insert(a.conversation_id.clone());
                }
                None => tracing::warn!(agent = %a.agent_id, "assignment to an unknown agent"),
            }
        }
        tracing::info!(
            queued = self.queue.len(),
            agents = self.agents.len(),
            "router restored"
        );
        // Nobody is connected yet: agents who hold conversations get the usual grace period
        // to come back before their conversations return to the queue.
        let ids: Vec<String> = self
            .agents
            .values()
            .filter(|a| !a.assigned.is_empty())
            .map(|a| a.record.id.clone())
            .collect();
        for id in ids {
            self.schedule_requeue_check(&id, ctx);
        }
        Ok(())
    }

    fn insert_queue(&mut self, e: QueueEntry) {
        if let Some(old) = self.queued.remove(&e.conversation_id) {
            self.queue.remove(&old);
        }
        let key = queue_key(&e);
        self.queued.insert(e.conversation_id.clone(), key);
        self.queue.insert(key, e);
    }

    fn remove_queue(&mut self, conversation_id: &str) -> Option<QueueEntry> {
        let key = self.queued.remove(conversation_id)?;
        self.queue.remove(&key)
    }

    /// The position (1-based) of a conversation among those waiting for its team.
    pub fn position(&self, conversation_id: &str) -> Option<usize> {
        let key = self.queued.get(conversation_id)?;
        let team = &self.queue.get(key)?.team;
        Some(
            self.queue
                .range(..=*key)
                .filter(|(_, e)| &e.team == team)
                .count(),
        )
    }

    fn package(&self, conversation_id: &str) -> Option<HandoffPackage> {
        let record = self.store.conversation(conversation_id).ok()??;
        let messages = self.store.messages_after(conversation_id, 0).ok()?;
        let escalation = record.escalation.clone()?;
        Some(HandoffPackage::assemble(&record, &escalation, &messages))
    }

    /// Whether `agent` may be offered `entry`. On the second pass an agent who only let an
    /// earlier offer time out is eligible again; one who declined is not, until the cooldown.
    fn eligible(&self, agent: &AgentState, entry: &QueueEntry, second_pass: bool) -> bool {
        // A transfer to a named agent goes to that agent whatever their teams.
        let addressed = match &entry.only_agent {
            Some(only) => *only == agent.record.id,
            None => agent.record.teams.contains(&entry.team),
        };
        if !addressed
            || agent.presence != Presence::Online
            || self.registry.session_count(&agent.record.id) == 0
            || agent.load() >= agent.record.capacity as usize
        {
            return false;
        }
        match self
            .declined
            .get(&(entry.conversation_id.clone(), agent.record.id.clone()))
        {
            Some((at, strict)) if at.elapsed() < self.settings.decline_cooldown => {
                !*strict && second_pass
            }
            _ => true,
        }
    }

    /// Offers waiting conversations, in queue order, to agents who can take them: the
    /// eligible agent with the fewest conversations, ties to the one idle longest.
    fn dispatch(&mut self, ctx: &mut Context<Self>) {
        self.declined
            .retain(|_, (at, _)| at.elapsed() < self.settings.decline_cooldown);
        let waiting: Vec<QueueEntry> = self
            .queue
            .values()
            .filter(|e| {
                !self.offers.contains_key(&e.conversation_id)
                    && !self.accepting.contains(&e.conversation_id)
            })
            .cloned()
            .collect();
        for entry in waiting {
            let pick = |second_pass: bool| {
                self.agents
                    .values()
                    .filter(|a| self.eligible(a, &entry, second_pass))
                    .min_by_key(|a| (a.load(), a.last_assigned))
                    .map(|a| a.record.id.clone())
            };
            // First skip agents who let this offer time out; fall back to them if nobody
            // else can take it.
            let Some(agent_id) = pick(false).or_else(|| pick(true)) else {
                continue;
            };
            self.offer(entry, agent_id, ctx);
        }
        self.tell_positions();
    }

    /// Tells queued customers their place when it changed. Only the first places are
    /// announced: past them a number means little and costs a message per move.
    fn tell_positions(&mut self) {
        const ANNOUNCED: usize = 50;
        let mut per_team: HashMap<&str, usize> = HashMap::new();
        let mut changed = Vec::new();
        for e in self.queue.values() {
            let p = per_team.entry(e.team.as_str()).or_insert(0);
            *p += 1;
            if *p <= ANNOUNCED && self.told_position.get(&e.conversation_id) != Some(p) {
                changed.push((e.conversation_id.clone(), *p));
            }
        }
        self.told_position
            .retain(|id, _| self.queued.contains_key(id));
        for (id, position) in changed {
            self.told_position.insert(id.clone(), position);
            // Through the directory's mailbox, so updates arrive in the order they were made.
            self.directory.do_send(TellPosition {
                conversation_id: id,
                position,
            });
        }
    }

    fn offer(&mut self, entry: QueueEntry, agent_id: String, ctx: &mut Context<Self>) {
        let Some(package) = self.package(&entry.conversation_id) else {
            tracing::warn!(conversation = %entry.conversation_id, "queued conversation has no package; dropping it from the queue");
            self.remove_queue(&entry.conversation_id);
            return;
        };
        let id = self.next_offer_id;
        self.next_offer_id += 1;
        let conversation_id = entry.conversation_id.clone();
        let delivered = self.registry.push(
            &agent_id,
            &ServerFrame::Offer {
                conversation_id: conversation_id.clone(),
                expires_in_ms: self.settings.offer_timeout.as_millis() as u64,
                package: Box::new(package),
            },
        );
        if !delivered {
            return;
        }
        let cid = conversation_id.clone();
        let timer = ctx.run_later(self.settings.offer_timeout, move |act, ctx| {
            act.offer_expired(&cid, id, ctx)
        });
        if let Some(a) = self.agents.get_mut(&agent_id) {
            a.offered.insert(conversation_id.clone());
        }
        tracing::debug!(conversation = %conversation_id, agent = %agent_id, "offered");
        self.offers.insert(
            conversation_id,
            Offer {
                id,
                agent_id,
                timer,
                deadline: Instant::now() + self.settings.offer_timeout,
            },
        );
    }

    fn offer_expired(&mut self, conversation_id: &str, offer_id: u64, ctx: &mut Context<Self>) {
        let Some(offer) = self.offers.get(conversation_id) else {
            return;
        };
        if offer.id != offer_id {
            return;
        }
        let agent_id = offer.agent_id.clone();
        self.withdraw(conversation_id, "timeout", ctx);
        self.declined.insert(
            (conversation_id.to_string(), agent_id),
            (Instant::now(), false),
        );
        self.dispatch(ctx);
    }

    /// Takes an open offer back and tells the agent.
    fn withdraw(&mut self, conversation_id: &str, reason: &str, ctx: &mut Context<Self>) {
        let Some(offer) = self.offers.remove(conversation_id) else {
            return;
        };
        ctx.cancel_future(offer.timer);
        if let Some(a) = self.agents.get_mut(&offer.agent_id) {
            a.offered.remove(conversation_id);
        }
        self.registry.push(
            &offer.agent_id,
            &ServerFrame::OfferWithdrawn {
                conversation_id: conversation_id.to_string(),
                reason: reason.to_string(),
            },
        );
    }

    fn schedule_requeue_check(&mut self, agent_id: &str, ctx: &mut Context<Self>) {
        let Some(a) = self.agents.get_mut(agent_id) else {
            return;
        };
        a.disconnect_generation += 1;
        let generation = a.disconnect_generation;
        let agent_id = agent_id.to_string();
        ctx.run_later(self.settings.requeue_after_disconnect, move |act, ctx| {
            act.requeue_if_still_gone(&agent_id, generation, ctx)
        });
    }

    fn requeue_if_still_gone(&mut self, agent_id: &str, generation: u64, ctx: &mut Context<Self>) {
        if self.registry.session_count(agent_id) > 0 {
            return;
        }
        let Some(a) = self.agents.get(agent_id) else {
            return;
        };
        if a.disconnect_generation != generation {
            return;
        }
        for conversation_id in a.assigned.clone() {
            let directory = self.directory.clone();
            let agent = agent_id.to_string();
            let cid = conversation_id.clone();
            async move {
                send_to(
                    &directory,
                    &cid,
                    Requeue {
                        agent_id: agent,
                        reason: "the agent disconnected".into(),
                    },
                )
                .await
            }
            .into_actor(self)
            .map(move |res, act, ctx| {
                match res {
                    Ok(Ok(entry)) => {
                        tracing::info!(conversation = %conversation_id, "re-queued after agent disconnect");
                        act.release_from_all(&conversation_id);
                        act.insert_queue(entry);
                    }
                    Ok(Err(ConversationError::NotOwner)) => act.release_from_all(&conversation_id),
                    Ok(Err(e)) | Err(e) => {
                        tracing::warn!(conversation = %conversation_id, error = %e, "re-queue failed")
                    }
                }
                act.dispatch(ctx);
            })
            .spawn(ctx);
        }
    }

    fn release_from_all(&mut self, conversation_id: &str) {
        for a in self.agents.values_mut() {
            a.assigned.remove(conversation_id);
        }
    }
}

impl Actor for Router {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(8192);
        if let Err(e) = self.restore(ctx) {
            tracing::error!(error = %e, "router could not restore its state");
        }
        self.dispatch(ctx);
    }
}

/// A conversation joins the queue (already durable).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Enqueue(pub QueueEntry);

impl Handler<Enqueue> for Router {
    type Result = ();

    fn handle(&mut self, msg: Enqueue, ctx: &mut Self::Context) {
        self.insert_queue(msg.0);
        self.dispatch(ctx);
    }
}

/// An agent session authenticated; answers with what the welcome frame needs.
#[derive(Message)]
#[rtype(result = "Result<(AgentInfo, Presence, Vec<String>), RouterError>")]
pub struct AgentConnected {
    pub agent_id: String,
    pub session_id: u64,
}

impl Handler<AgentConnected> for Router {
    type Result = Result<(AgentInfo, Presence, Vec<String>), RouterError>;

    fn handle(&mut self, msg: AgentConnected, ctx: &mut Self::Context) -> Self::Result {
        if !self.agents.contains_key(&msg.agent_id) {
            // Added while we run (CLI before start, or REST): read it from the store.
            if let Ok(Some(rec)) = self.store.agent(&msg.agent_id) {
                self.agents.insert(rec.id.clone(), AgentState::new(rec));
            }
        }
        let a = self
            .agents
            .get_mut(&msg.agent_id)
            .ok_or(RouterError::UnknownAgent)?;
        a.disconnect_generation += 1;
        let info = AgentInfo {
            id: a.record.id.clone(),
            name: a.record.display_name.clone(),
            teams: a.record.teams.clone(),
            capacity: a.record.capacity,
        };
        let mut held: Vec<String> = a.assigned.iter().cloned().collect();
        held.sort();
        let presence = a.presence;
        // Offers already made to this agent reach the new session too, with the time left.
        let pending: Vec<String> = a.offered.iter().cloned().collect();
        for cid in pending {
            let left = self
                .offers
                .get(&cid)
                .map(|o| o.deadline.saturating_duration_since(Instant::now()));
            if let (Some(left), Some(p)) = (left, self.package(&cid)) {
                self.registry.push_to_session(
                    &msg.agent_id,
                    msg.session_id,
                    &ServerFrame::Offer {
                        conversation_id: cid,
                        expires_in_ms: left.as_millis() as u64,
                        package: Box::new(p),
                    },
                );
            }
        }
        ctx.notify(Dispatch);
        Ok((info, presence, held))
    }
}

/// An agent session closed (the registry already forgot it).
#[derive(Message)]
#[rtype(result = "()")]
pub struct AgentDisconnected {
    pub agent_id: String,
}

impl Handler<AgentDisconnected> for Router {
    type Result = ();

    fn handle(&mut self, msg: AgentDisconnected, ctx: &mut Self::Context) {
        if self.registry.session_count(&msg.agent_id) > 0 {
            return;
        }
        let offered: Vec<String> = self
            .agents
            .get(&msg.agent_id)
            .map(|a| a.offered.iter().cloned().collect())
            .unwrap_or_default();
        for cid in offered {
            self.withdraw(&cid, "the agent disconnected", ctx);
        }
        self.schedule_requeue_check(&msg.agent_id, ctx);
        self.dispatch(ctx);
    }
}

/// An agent sets their presence.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetPresence {
    pub agent_id: String,
    pub presence: Presence,
}

impl Handler<SetPresence> for Router {
    type Result = ();

    fn handle(&mut self, msg: SetPresence, ctx: &mut Self::Context) {
        let Some(a) = self.agents.get_mut(&msg.agent_id) else {
            return;
        };
        a.presence = msg.presence;
        if msg.presence == Presence::Away {
            let offered: Vec<String> = a.offered.iter().cloned().collect();
            for cid in offered {
                self.withdraw(&cid, "the agent is away", ctx);
            }
        }
        self.dispatch(ctx);
    }
}

/// An agent accepts an offer; answered with the package once the conversation is theirs.
#[derive(Message)]
#[rtype(result = "Result<(), RouterError>")]
pub struct Accept {
    pub agent_id: String,
    pub conversation_id: String,
}

impl Handler<Accept> for Router {
    type Result = ResponseActFuture<Self, Result<(), RouterError>>;

    fn handle(&mut self, msg: Accept, ctx: &mut Self::Context) -> Self::Result {
        let cid = msg.conversation_id.clone();
        match self.offers.get(&cid) {
            Some(o) if o.agent_id == msg.agent_id => {}
            _ => return Box::pin(fut::ready(Err(RouterError::NoOffer(cid)))),
        }
        if let Some(o) = self.offers.remove(&cid) {
            ctx.cancel_future(o.timer);
        }
        let Some(entry) = self
            .queued
            .get(&cid)
            .and_then(|k| self.queue.get(k))
            .cloned()
        else {
            return Box::pin(fut::ready(Err(RouterError::NoOffer(cid))));
        };
        let Some(agent) = self.agents.get_mut(&msg.agent_id) else {
            return Box::pin(fut::ready(Err(RouterError::UnknownAgent)));
        };
        agent.offered.remove(&cid);
        // Reserve the slot before the conversation confirms, so no other offer can take it.
        agent.assigned.insert(cid.clone());
        agent.last_assigned = Instant::now();
        let agent_name = agent.record.display_name.clone();
        self.accepting.insert(cid.clone());
        let assignment = Assignment {
            conversation_id: cid.clone(),
            agent_id: msg.agent_id.clone(),
            team: entry.team.clone(),
            assigned_at_ms: now_ms(),
            queued: entry,
        };
        let directory = self.directory.clone();
        let agent_id = msg.agent_id;
        Box::pin(
            async move {
                send_to(
                    &directory,
                    &cid,
                    AssignAgent {
                        agent_name,
                        assignment,
                    },
                )
                .await
            }
            .into_actor(self)
            .map(move |res, act, ctx| {
                let cid = msg.conversation_id;
                act.accepting.remove(&cid);
                let res = match res {
                    Ok(r) => r,
                    Err(e) => Err(e),
                };
                let out = match res {
                    Ok(()) => {
                        act.remove_queue(&cid);
                        if let Some(p) = act.package(&cid) {
                            act.registry.push(
                                &agent_id,
                                &ServerFrame::Assigned {
                                    conversation_id: cid.clone(),
                                    package: Box::new(p),
                                },
                            );
                        }
                        tracing::info!(conversation = %cid, agent = %agent_id, "assigned");
                        Ok(())
                    }
                    Err(e) => {
                        if let Some(a) = act.agents.get_mut(&agent_id) {
                            a.assigned.remove(&cid);
                        }
                        if matches!(
                            e,
                            ConversationError::NotQueued | ConversationError::NotFound(_)
                        ) {
                            act.remove_queue(&cid);
                        }
                        Err(RouterError::Conversation(e))
                    }
                };
                act.dispatch(ctx);
                out
            }),
        )
    }
}

/// An agent declines an offer.
#[derive(Message)]
#[rtype(result = "Result<(), RouterError>")]
pub struct Decline {
    pub agent_id: String,
    pub conversation_id: String,
}

impl Handler<Decline> for Router {
    type Result = Result<(), RouterError>;

    fn handle(&mut self, msg: Decline, ctx: &mut Self::Context) -> Self::Result {
        match self.offers.get(&msg.conversation_id) {
            Some(o) if o.agent_id == msg.agent_id => {}
            _ => return Err(RouterError::NoOffer(msg.conversation_id)),
        }
        self.withdraw(&msg.conversation_id, "declined", ctx);
        self.declined
            .insert((msg.conversation_id, msg.agent_id), (Instant::now(), true));
        self.dispatch(ctx);
        Ok(())
    }
}

/// A conversation left its agent (closed or transferred): the slot is free again.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Released {
    pub agent_id: String,
    pub conversation_id: String,
}

impl Handler<Released> for Router {
    type Result = ();

    fn handle(&mut self, msg: Released, ctx: &mut Self::Context) {
        if let Some(a) = self.agents.get_mut(&msg.agent_id) {
            a.assigned.remove(&msg.conversation_id);
        }
        self.registry.push(
            &msg.agent_id,
            &ServerFrame::Released {
                conversation_id: msg.conversation_id,
                reason: "closed or transferred".into(),
            },
        );
        self.dispatch(ctx);
    }
}

/// A new agent account exists (added through the API while running).
#[derive(Message)]
#[rtype(result = "()")]
pub struct AgentAdded(pub AgentRecord);

impl Handler<AgentAdded> for Router {
    type Result = ();

    fn handle(&mut self, msg: AgentAdded, _ctx: &mut Self::Context) {
        let rec = msg.0;
        match self.agents.get_mut(&rec.id) {
            Some(a) => a.record = rec,
            None => {
                self.agents.insert(rec.id.clone(), AgentState::new(rec));
            }
        }
    }
}

/// Runs a dispatch round.
#[derive(Message)]
#[rtype(result = "()")]
struct Dispatch;

impl Handler<Dispatch> for Router {
    type Result = ();

    fn handle(&mut self, _msg: Dispatch, ctx: &mut Self::Context) {
        self.dispatch(ctx);
    }
}

/// Figures for health checks and the API.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RouterStats {
    pub queued: usize,
    pub offers: usize,
    pub agents_online: usize,
    pub assigned: usize,
}

/// Asks the router for its figures.
#[derive(Message)]
#[rtype(result = "RouterStats")]
pub struct GetStats;

impl Handler<GetStats> for Router {
    type Result = MessageResult<GetStats>;

    fn handle(&mut self, _msg: GetStats, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult(RouterStats {
            queued: self.queue.len(),
            offers: self.offers.len(),
            agents_online: self
                .agents
                .keys()
                .filter(|id| self.registry.session_count(id) > 0)
                .count(),
            assigned: self.agents.values().map(|a| a.assigned.len()).sum(),
        })
    }
}

/// One line of the queue as the API shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct QueuedView {
    pub conversation_id: String,
    pub team: String,
    pub priority: u8,
    pub enqueued_at_ms: u64,
    /// 1-based position among the team's waiting conversations.
    pub position: usize,
    /// The agent it is offered to right now, if any.
    pub offered_to: Option<String>,
}

/// Asks the router for the queue, in the order it will be served.
#[derive(Message)]
#[rtype(result = "Vec<QueuedView>")]
pub struct GetQueue;

impl Handler<GetQueue> for Router {
    type Result = MessageResult<GetQueue>;

    fn handle(&mut self, _msg: GetQueue, _ctx: &mut Self::Context) -> Self::Result {
        let mut per_team: HashMap<&str, usize> = HashMap::new();
        MessageResult(
            self.queue
                .values()
                .map(|e| {
                    let p = per_team.entry(e.team.as_str()).or_insert(0);
                    *p += 1;
                    QueuedView {
                        conversation_id: e.conversation_id.clone(),
                        team: e.team.clone(),
                        priority: e.priority,
                        enqueued_at_ms: e.enqueued_at_ms,
                        position: *p,
                        offered_to: self
                            .offers
                            .get(&e.conversation_id)
                            .map(|o| o.agent_id.clone()),
                    }
                })
                .collect(),
        )
    }
}
