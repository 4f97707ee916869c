//! The router: queues escalated conversations, offers them to agents, and decides who holds
//! what. It is the only actor that decides assignments, and it counts an offer against the
//! agent's capacity from the moment it is made, so no agent ever exceeds its capacity, even
//! under a burst. On start it rebuilds its state from the store: queue order with original
//! enqueue times, and every assignment.

pub mod core;
pub mod rules;
mod state;

use std::collections::HashMap;
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
use core::{NewOffer, Refusal, RouterCore};
pub use state::QueueKey;

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

/// The router actor: the I/O around `RouterCore`'s decisions (offers to agents, assignments
/// to conversations, timers, restore from the store).
pub struct Router {
    store: Store,
    directory: Addr<Directory>,
    registry: AgentRegistry,
    settings: RouterSettings,
    core: RouterCore,
    /// The timer of each open offer, by offer id.
    timers: HashMap<u64, SpawnHandle>,
    /// The position each queued customer was last told.
    told_position: HashMap<String, usize>,
}

impl Router {
    pub fn new(
        store: Store,
        directory: Addr<Directory>,
        registry: AgentRegistry,
        settings: RouterSettings,
    ) -> Self {
        Router {
            core: RouterCore::new(settings.offer_timeout, settings.decline_cooldown),
            store,
            directory,
            registry,
            settings,
            timers: HashMap::new(),
            told_position: HashMap::new(),
        }
    }

    fn restore(&mut self, ctx: &mut Context<Self>) -> Result<(), crate::store::StoreError> {
        for a in self.store.agents()? {
            self.core.upsert_agent(a);
        }
        for e in self.store.queue_entries()? {
            self.core.enqueue(e);
        }
        for a in self.store.assignments()? {
            if !self.core.restore_assignment(&a) {
                tracing::warn!(agent = %a.agent_id, "assignment to an unknown agent");
            }
        }
        tracing::info!(
            queued = self.core.queue_len(),
            agents = self.core.agents().count(),
            "router restored"
        );
        // Nobody is connected yet: agents who hold conversations get the usual grace period
        // to come back before their conversations return to the queue.
        let ids: Vec<String> = self
            .core
            .agents()
            .filter(|a| !a.assigned.is_empty())
            .map(|a| a.record.id.clone())
            .collect();
        for id in ids {
            self.schedule_requeue_check(&id, ctx);
        }
        Ok(())
    }

    fn package(&self, conversation_id: &str) -> Option<HandoffPackage> {
        let record = self.store.conversation(conversation_id).ok()??;
        let messages = self.store.messages_after(conversation_id, 0).ok()?;
        let escalation = record.escalation.clone()?;
        Some(HandoffPackage::assemble(&record, &escalation, &messages))
    }

    fn sync_sessions(&mut self, agent_id: &str) {
        let n = self.registry.session_count(agent_id);
        self.core.set_sessions(agent_id, n);
    }

    /// Makes the offers the core decides on, then tells customers their places.
    fn dispatch(&mut self, ctx: &mut Context<Self>) {
        for offer in self.core.dispatch(Instant::now()) {
            self.deliver_offer(offer, ctx);
        }
        self.tell_positions();
    }

    fn deliver_offer(&mut self, offer: NewOffer, ctx: &mut Context<Self>) {
        let NewOffer {
            offer_id,
            conversation_id,
            agent_id,
        } = offer;
        let Some(package) = self.package(&conversation_id) else {
            tracing::warn!(conversation = %conversation_id, "queued conversation has no package; dropping it from the queue");
            self.core.withdraw(&conversation_id);
            self.core.remove_queued(&conversation_id);
            return;
        };
        let delivered = self.registry.push(
            &agent_id,
            &ServerFrame::Offer {
                conversation_id: conversation_id.clone(),
                expires_in_ms: self.settings.offer_timeout.as_millis() as u64,
                package: Box::new(package),
            },
        );
        if !delivered {
            // The agent's last session went away meanwhile; its disconnect will re-dispatch.
            self.core.withdraw(&conversation_id);
            return;
        }
        let cid = conversation_id.clone();
        let timer = ctx.run_later(self.settings.offer_timeout, move |act, ctx| {
            act.timers.remove(&offer_id);
            if let Some(agent) = act.core.expire(&cid, offer_id, Instant::now()) {
                act.registry.push(
                    &agent,
                    &ServerFrame::OfferWithdrawn {
                        conversation_id: cid.clone(),
                        reason: "timeout".into(),
                    },
                );
                act.dispatch(ctx);
            }
        });
        self.timers.insert(offer_id, timer);
        tracing::debug!(conversation = %conversation_id, agent = %agent_id, "offered");
    }

    /// Takes an open offer back and tells the agent.
    fn withdraw(&mut self, conversation_id: &str, reason: &str, ctx: &mut Context<Self>) {
        let Some(offer) = self.core.withdraw(conversation_id) else {
            return;
        };
        if let Some(t) = self.timers.remove(&offer.id) {
            ctx.cancel_future(t);
        }
        self.registry.push(
            &offer.agent_id,
            &ServerFrame::OfferWithdrawn {
                conversation_id: conversation_id.to_string(),
                reason: reason.to_string(),
            },
        );
    }

    /// Tells queued customers their place when it changed. Only the first places are
    /// announced: past them a number means little and costs a message per move.
    fn tell_positions(&mut self) {
        const ANNOUNCED: usize = 50;
        let positions = self.core.positions();
        let mut changed = Vec::new();
        for (id, p) in &positions {
            if *p <= ANNOUNCED && self.told_position.get(id) != Some(p) {
                changed.push((id.clone(), *p));
            }
        }
        let waiting: std::collections::HashSet<&String> =
            positions.iter().map(|(id, _)| id).collect();
        self.told_position.retain(|id, _| waiting.contains(id));
        for (id, position) in changed {
            self.told_position.insert(id.clone(), position);
            // Through the directory's mailbox, so updates arrive in the order they were made.
            self.directory.do_send(TellPosition {
                conversation_id: id,
                position,
            });
        }
    }

    fn schedule_requeue_check(&mut self, agent_id: &str, ctx: &mut Context<Self>) {
        let Some(a) = self.core.agent(agent_id) else {
            return;
        };
        let generation = a.disconnect_generation + 1;
        self.core.bump_generation(agent_id);
        let agent_id = agent_id.to_string();
        ctx.run_later(self.settings.requeue_after_disconnect, move |act, ctx| {
            act.requeue_if_still_gone(&agent_id, generation, ctx)
        });
    }

    fn requeue_if_still_gone(&mut self, agent_id: &str, generation: u64, ctx: &mut Context<Self>) {
        if self.registry.session_count(agent_id) > 0 {
            return;
        }
        let Some(a) = self.core.agent(agent_id) else {
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
                        act.core.release_from_all(&conversation_id);
                        act.core.enqueue(entry);
                    }
                    Ok(Err(ConversationError::NotOwner)) => act.core.release_from_all(&conversation_id),
                    Ok(Err(e)) | Err(e) => {
                        tracing::warn!(conversation = %conversation_id, error = %e, "re-queue failed")
                    }
                }
                act.dispatch(ctx);
            })
            .spawn(ctx);
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
        self.core.enqueue(msg.0);
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
        if self.core.agent(&msg.agent_id).is_none() {
            // Added while we run (CLI before start, or REST): read it from the store.
            if let Ok(Some(rec)) = self.store.agent(&msg.agent_id) {
                self.core.upsert_agent(rec);
            }
        }
        self.core.bump_generation(&msg.agent_id);
        self.sync_sessions(&msg.agent_id);
        let a = self
            .core
            .agent(&msg.agent_id)
            .ok_or(RouterError::UnknownAgent)?;
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
                .core
                .offer_of(&cid)
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
        self.dispatch(ctx);
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
        self.sync_sessions(&msg.agent_id);
        if self.registry.session_count(&msg.agent_id) > 0 {
            return;
        }
        let offered: Vec<String> = self
            .core
            .agent(&msg.agent_id)
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
        if !self.core.set_presence(&msg.agent_id, msg.presence) {
            return;
        }
        if msg.presence == Presence::Away {
            let offered: Vec<String> = self
                .core
                .agent(&msg.agent_id)
                .map(|a| a.offered.iter().cloned().collect())
                .unwrap_or_default();
            for cid in offered {
                self.withdraw(&cid, "the agent is away", ctx);
            }
        }
        self.dispatch(ctx);
    }
}

/// An agent accepts an offer; answered once the conversation is theirs.
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
        let (entry, offer) = match self.core.begin_accept(&msg.agent_id, &cid, Instant::now()) {
            Ok(r) => r,
            Err(Refusal::NoOffer) => return Box::pin(fut::ready(Err(RouterError::NoOffer(cid)))),
            Err(Refusal::UnknownAgent) => {
                return Box::pin(fut::ready(Err(RouterError::UnknownAgent)));
            }
        };
        if let Some(t) = self.timers.remove(&offer.id) {
            ctx.cancel_future(t);
        }
        let agent_name = self
            .core
            .agent(&msg.agent_id)
            .map(|a| a.record.display_name.clone())
            .unwrap_or_else(|| msg.agent_id.clone());
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
                let res = res.and_then(|r| r);
                let out = match res {
                    Ok(()) => {
                        act.core.finish_accept(&agent_id, &cid, true, false);
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
                        let gone = matches!(
                            e,
                            ConversationError::NotQueued | ConversationError::NotFound(_)
                        );
                        act.core.finish_accept(&agent_id, &cid, false, gone);
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
        let offer = self
            .core
            .decline(&msg.agent_id, &msg.conversation_id, Instant::now())
            .map_err(|_| RouterError::NoOffer(msg.conversation_id.clone()))?;
        if let Some(t) = self.timers.remove(&offer.id) {
            ctx.cancel_future(t);
        }
        self.registry.push(
            &msg.agent_id,
            &ServerFrame::OfferWithdrawn {
                conversation_id: msg.conversation_id,
                reason: "declined".into(),
            },
        );
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
        self.core.release(&msg.agent_id, &msg.conversation_id);
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
        self.core.upsert_agent(msg.0);
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
            queued: self.core.queue_len(),
            offers: self.core.offers_len(),
            agents_online: self.core.agents().filter(|a| a.sessions > 0).count(),
            assigned: self.core.agents().map(|a| a.assigned.len()).sum(),
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
        let positions: HashMap<String, usize> = self.core.positions().into_iter().collect();
        MessageResult(
            self.core
                .queue()
                .map(|e| QueuedView {
                    conversation_id: e.conversation_id.clone(),
                    team: e.team.clone(),
                    priority: e.priority,
                    enqueued_at_ms: e.enqueued_at_ms,
                    position: positions.get(&e.conversation_id).copied().unwrap_or(0),
                    offered_to: self
                        .core
                        .offer_of(&e.conversation_id)
                        .map(|o| o.agent_id.clone()),
                })
                .collect(),
        )
    }
}

/// Asks the router for each agent's load: (agent id, conversations held, capacity).
#[derive(Message)]
#[rtype(result = "Vec<(String, usize, u32)>")]
pub struct GetAgentLoads;

impl Handler<GetAgentLoads> for Router {
    type Result = MessageResult<GetAgentLoads>;

    fn handle(&mut self, _msg: GetAgentLoads, _ctx: &mut Self::Context) -> Self::Result {
        let mut loads: Vec<(String, usize, u32)> = self
            .core
            .agents()
            .map(|a| (a.record.id.clone(), a.assigned.len(), a.record.capacity))
            .collect();
        loads.sort();
        MessageResult(loads)
    }
}
