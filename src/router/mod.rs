//! The router: queues escalated conversations, offers them to agents, and decides who holds
//! what. It is the only actor that decides assignments, and it counts an offer against the
//! agent's capacity from the moment it is made, so no agent ever exceeds its capacity, even
//! under a burst. On start it rebuilds its state from the store: queue order with original
//! enqueue times, and every assignment.

mod breach;
pub mod calendar;
pub mod core;
mod fallback;
pub mod rules;
pub mod sla;
mod state;
mod supervise;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use actix::prelude::*;
use handoffd_channels::now_ms;

use crate::agents::AgentRegistry;
use crate::agents::protocol::{AgentInfo, Presence, ServerFrame};
use crate::clock::Clock;
use crate::config::Config;
use crate::conversation::{
    AssignAgent, ConversationError, Directory, Requeue, ReturnToBot, TellPosition, send_to,
};
use crate::handoff::HandoffPackage;
use crate::model::{AgentRecord, Assignment, QueueEntry};
use crate::store::Store;
pub use breach::{SlaSignal, SweepSla};
use calendar::BusinessCalendar;
use core::{NewOffer, Refusal, RouterCore};
use sla::{SlaBook, SlaPolicy};
pub use state::{ChannelWeights, NoAgentFallback, QueueKey, Strategy, TeamPolicy, UNIT};
pub use supervise::{
    AgentOverview, GetOverview, HeldView, Overview, SupervisorAssign, SupervisorTransfer,
    TeamOverview,
};

/// The router's settings, read once from the config.
#[derive(Debug, Clone)]
pub struct RouterSettings {
    pub offer_timeout: Duration,
    pub requeue_after_disconnect: Duration,
    pub decline_cooldown: Duration,
    pub teams: HashMap<String, TeamPolicy>,
    pub channel_weights: ChannelWeights,
    pub no_agent_message: String,
    /// Told to a customer who waits while nobody of the team is online (`when_no_agent =
    /// "queue"`).
    pub offline_message: String,
    /// SLA policies in config order: the first covering a conversation applies.
    pub sla_policies: Vec<SlaPolicy>,
    /// Business hours of the teams that have them.
    pub calendars: HashMap<String, BusinessCalendar>,
    /// What each team does with a conversation escalated outside its hours, and the message.
    pub when_closed: HashMap<String, (NoAgentFallback, String)>,
}

impl RouterSettings {
    pub fn from_config(c: &Config) -> Self {
        RouterSettings {
            offer_timeout: Duration::from_secs(c.router.offer_timeout_secs),
            requeue_after_disconnect: Duration::from_secs(c.router.requeue_after_disconnect_secs),
            decline_cooldown: Duration::from_secs(c.router.decline_cooldown_secs),
            teams: c
                .router
                .teams
                .iter()
                .map(|t| {
                    let policy = TeamPolicy {
                        strategy: t.strategy,
                        max_open: t.max_open,
                        when_no_agent: t.when_no_agent,
                        max_wait: t.max_wait_secs.map(Duration::from_secs),
                        raise_priority_every: t.raise_priority_every_secs.map(Duration::from_secs),
                    };
                    (t.name.clone(), policy)
                })
                .collect(),
            channel_weights: ChannelWeights(
                c.router
                    .channel_weights
                    .iter()
                    .filter_map(|(name, w)| {
                        let kind = handoffd_channels::ChannelKind::parse(name)?;
                        Some((kind, (w * f64::from(UNIT)).round().max(1.0) as u32))
                    })
                    .collect(),
            ),
            no_agent_message: c.router.no_agent_message.clone(),
            offline_message: c.router.offline_message.clone(),
            // The config was checked at load: what fails here was reported there.
            sla_policies: c
                .router
                .sla
                .iter()
                .filter_map(|p| {
                    SlaPolicy::from_config(p, &|t| c.router.teams.iter().any(|x| x.name == t)).ok()
                })
                .collect(),
            calendars: c
                .router
                .teams
                .iter()
                .filter_map(|t| {
                    let hours = t.business_hours.as_ref()?;
                    Some((t.name.clone(), BusinessCalendar::from_config(hours).ok()?))
                })
                .collect(),
            when_closed: c
                .router
                .teams
                .iter()
                .map(|t| {
                    let message = t
                        .closed_message
                        .clone()
                        .unwrap_or_else(|| c.router.closed_message.clone());
                    (t.name.clone(), (t.when_closed, message))
                })
                .collect(),
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
    #[error("`{0}` is not waiting in the queue")]
    NotQueued(String),
    #[error("you cannot take `{0}` now (team, skills, capacity or presence)")]
    NotEligible(String),
    #[error("`{0}` is offered to another agent right now")]
    OfferedToAnother(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("agent `{0}` has no room for this conversation")]
    AgentFull(String),
}

impl RouterError {
    pub fn code(&self) -> &'static str {
        match self {
            RouterError::NoOffer(_) => "no_offer",
            RouterError::Conversation(e) => e.code(),
            RouterError::UnknownAgent => "unknown_agent",
            RouterError::NotQueued(_) => "not_queued",
            RouterError::NotEligible(_) => "not_eligible",
            RouterError::OfferedToAnother(_) => "offered_to_another",
            RouterError::Forbidden(_) => "forbidden",
            RouterError::AgentFull(_) => "agent_full",
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
    /// The position and estimated wait each queued customer was last told.
    told_position: HashMap<String, (usize, Option<u64>)>,
    /// When each team's last few conversations were assigned: the pace the estimated
    /// waits are worked out from.
    recent_assignments: HashMap<String, std::collections::VecDeque<Instant>>,
    /// The queue each agent of a manual team was last sent (conversation ids, in order).
    pushed_queue: HashMap<String, Vec<String>>,
    /// The SLA timers of escalated conversations.
    sla: SlaBook,
    /// The wall clock of deadlines and business hours (movable by tests).
    clock: Clock,
    /// Something supervisors see changed since their last overview.
    overview_dirty: bool,
    /// Waiting conversations whose customer was told nobody can answer now (told once).
    told_unavailable: std::collections::HashSet<String>,
    /// The priority each aged conversation was queued with (teams that raise priority
    /// with waiting time).
    base_priority: HashMap<String, u8>,
}

impl Router {
    pub fn new(
        store: Store,
        directory: Addr<Directory>,
        registry: AgentRegistry,
        settings: RouterSettings,
        clock: Clock,
    ) -> Self {
        let mut core = RouterCore::new(settings.offer_timeout, settings.decline_cooldown);
        let sla = SlaBook::new(settings.sla_policies.clone(), settings.calendars.clone());
        core.set_teams(settings.teams.clone());
        core.set_channel_weights(settings.channel_weights.clone());
        Router {
            core,
            store,
            directory,
            registry,
            settings,
            timers: HashMap::new(),
            told_position: HashMap::new(),
            recent_assignments: HashMap::new(),
            pushed_queue: HashMap::new(),
            sla,
            clock,
            overview_dirty: true,
            told_unavailable: Default::default(),
            base_priority: HashMap::new(),
        }
    }

    fn restore(&mut self, ctx: &mut Context<Self>) -> Result<(), crate::store::StoreError> {
        for a in self.store.agents()? {
            self.core.upsert_agent(a);
        }
        for e in self.store.queue_entries()? {
            self.schedule_max_wait(&e, ctx);
            self.core.enqueue(e);
        }
        for a in self.store.assignments()? {
            if !self.core.restore_assignment(&a) {
                tracing::warn!(agent = %a.agent_id, "assignment to an unknown agent");
            }
        }
        // Deadlines are absolute: a breach that fell while the daemon was down is acted on
        // at the first sweep.
        for c in self.store.sla_clocks()? {
            self.sla.restore(c);
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
            .filter(|a| !a.assigned().is_empty())
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
        self.push_manual_queues();
        self.overview_dirty = true;
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

    /// An agent stopped taking conversations (gone or away): their open offers are taken
    /// back, and their teams checked for anyone left after the grace period.
    fn stop_offering(&mut self, agent_id: &str, reason: &str, ctx: &mut Context<Self>) {
        let Some(a) = self.core.agent(agent_id) else {
            return;
        };
        let offered: Vec<String> = a.offered().keys().cloned().collect();
        let teams = a.record.teams.clone();
        for cid in offered {
            self.withdraw(&cid, reason, ctx);
        }
        self.schedule_team_check(teams, ctx);
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
        let now = Instant::now();
        let mut changed = Vec::new();
        for (id, p) in &positions {
            if *p > ANNOUNCED {
                continue;
            }
            let eta = self
                .core
                .queued_entry(id)
                .and_then(|e| self.eta_secs(&e.team, *p, now));
            if self.told_position.get(id) != Some(&(*p, eta)) {
                changed.push((id.clone(), *p, eta));
            }
        }
        let waiting: std::collections::HashSet<&String> =
            positions.iter().map(|(id, _)| id).collect();
        self.told_position.retain(|id, _| waiting.contains(id));
        self.forget_told(&waiting);
        for (id, position, eta_secs) in changed {
            self.told_position.insert(id.clone(), (position, eta_secs));
            // Through the directory's mailbox, so updates arrive in the order they were made.
            self.directory.do_send(TellPosition {
                conversation_id: id,
                position,
                eta_secs,
            });
        }
    }

    /// The estimated wait of the `position`th conversation of `team`, in seconds rounded up
    /// to whole minutes: position divided by the pace of the team's recent assignments.
    /// None until three assignments within the last hour give a pace.
    fn eta_secs(&self, team: &str, position: usize, now: Instant) -> Option<u64> {
        const HORIZON: Duration = Duration::from_secs(3600);
        let recent: Vec<&Instant> = self
            .recent_assignments
            .get(team)?
            .iter()
            .filter(|t| now.saturating_duration_since(**t) < HORIZON)
            .collect();
        if recent.len() < 3 {
            return None;
        }
        let first = *recent.first()?;
        // Counted up to now, so a team that stopped assigning looks slower as time goes on.
        let span = now.saturating_duration_since(*first).as_secs_f64().max(1.0);
        let per_sec = (recent.len() - 1) as f64 / span;
        let secs = position as f64 / per_sec;
        Some(((secs / 60.0).ceil().max(1.0) as u64) * 60)
    }

    /// Remembers an assignment of `team` for the estimated waits.
    fn note_assignment(&mut self, team: &str) {
        const KEPT: usize = 20;
        let recent = self.recent_assignments.entry(team.to_string()).or_default();
        recent.push_back(Instant::now());
        while recent.len() > KEPT {
            recent.pop_front();
        }
    }

    /// Starts the team's longest-wait timer for a queued conversation, counted from when it
    /// was enqueued (so a restart keeps the original deadline).
    fn schedule_max_wait(&mut self, entry: &QueueEntry, ctx: &mut Context<Self>) {
        let Some(policy) = self.settings.teams.get(&entry.team) else {
            return;
        };
        let Some(max) = policy.max_wait else {
            return;
        };
        let fallback = policy.when_no_agent;
        if fallback == NoAgentFallback::Queue {
            return;
        }
        if entry.only_agent.is_some() {
            return;
        }
        let waited = Duration::from_millis(now_ms().saturating_sub(entry.enqueued_at_ms));
        let cid = entry.conversation_id.clone();
        let ticket = entry.ticket;
        ctx.run_later(max.saturating_sub(waited), move |act, ctx| {
            // Only the same stay in the queue, still waiting with nobody looking at it.
            let same = act
                .core
                .queued_entry(&cid)
                .is_some_and(|e| e.ticket == ticket);
            if same && act.core.waiting_unoffered(&cid) {
                if fallback == NoAgentFallback::Email {
                    act.offer_follow_up(&cid, ctx);
                    return;
                }
                let reason = format!("nobody took it within {} s", max.as_secs());
                let message = act.settings.no_agent_message.clone();
                act.return_to_bot(cid, reason, message, ctx);
            }
        });
    }

    /// Gives up on a waiting conversation: back to its bot (see `ReturnToBot`).
    fn return_to_bot(
        &mut self,
        conversation_id: String,
        reason: String,
        message: String,
        ctx: &mut Context<Self>,
    ) {
        let directory = self.directory.clone();
        let msg = ReturnToBot { reason, message };
        let cid = conversation_id.clone();
        async move { send_to(&directory, &cid, msg).await }
            .into_actor(self)
            .map(move |res, act, ctx| {
                match res.and_then(|r| r) {
                    Ok(()) => {
                        act.core.withdraw(&conversation_id);
                        act.core.remove_queued(&conversation_id);
                        act.stop_sla(&conversation_id);
                    }
                    // Taken or closed meanwhile: nothing to undo.
                    Err(e) => tracing::debug!(conversation = %conversation_id, error = %e, "not returned to the bot"),
                }
                act.dispatch(ctx);
            })
            .spawn(ctx);
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
        let held: Vec<String> = a.assigned().keys().cloned().collect();
        for conversation_id in held {
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
                        priority: None,
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
                        let team = entry.team.clone();
                        act.core.enqueue(entry);
                        // Its team may have nobody left either.
                        act.unavailable_fallback(&conversation_id, &team, ctx);
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
        // SLA deadlines are checked every second (and at once when a test moves the clock);
        // supervisors' overviews are refreshed at most four times a second.
        ctx.run_interval(Duration::from_secs(1), |act, ctx| {
            act.sweep_sla(ctx);
            if act.age_queue() {
                act.dispatch(ctx);
            }
        });
        ctx.run_interval(Duration::from_millis(250), |act, _| act.push_overviews());
    }
}

/// A conversation joins the queue (already durable).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Enqueue(pub QueueEntry);

impl Handler<Enqueue> for Router {
    type Result = ();

    fn handle(&mut self, msg: Enqueue, ctx: &mut Self::Context) {
        let entry = msg.0;
        self.schedule_max_wait(&entry, ctx);
        let cid = entry.conversation_id.clone();
        let team = entry.team.clone();
        let addressed = entry.only_agent.is_some();
        let now_ms = self.clock.now_ms();
        if let Some(c) = self.sla.enqueued(&cid, &team, entry.priority, now_ms) {
            self.persist_sla(vec![c], Vec::new());
        }
        self.core.enqueue(entry);
        if !addressed && self.unavailable_fallback(&cid, &team, ctx) {
            return;
        }
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
            supervisor: a.record.supervisor,
        };
        let mut held: Vec<String> = a.assigned().keys().cloned().collect();
        held.sort();
        let presence = a.presence;
        // Offers already made to this agent reach the new session too, with the time left.
        let pending: Vec<String> = a.offered().keys().cloned().collect();
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
        self.schedule_requeue_check(&msg.agent_id, ctx);
        self.stop_offering(&msg.agent_id, "the agent disconnected", ctx);
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
        if msg.presence != Presence::Online {
            self.stop_offering(&msg.agent_id, "the agent is away", ctx);
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
            Err(_) => return Box::pin(fut::ready(Err(RouterError::NoOffer(cid)))),
        };
        if let Some(t) = self.timers.remove(&offer.id) {
            ctx.cancel_future(t);
        }
        self.assign(msg.agent_id, entry)
    }
}

impl Router {
    /// Hands a conversation the core has reserved for `agent_id` to that agent: the
    /// conversation actor journals the assignment, then the agent gets the package.
    fn assign(
        &mut self,
        agent_id: String,
        entry: QueueEntry,
    ) -> ResponseActFuture<Self, Result<(), RouterError>> {
        let cid = entry.conversation_id.clone();
        let agent_name = self
            .core
            .agent(&agent_id)
            .map(|a| a.record.display_name.clone())
            .unwrap_or_else(|| agent_id.clone());
        let assignment = Assignment {
            conversation_id: cid.clone(),
            agent_id: agent_id.clone(),
            team: entry.team.clone(),
            assigned_at_ms: now_ms(),
            queued: entry,
        };
        let directory = self.directory.clone();
        let target = cid.clone();
        let team = assignment.team.clone();
        Box::pin(
            async move {
                send_to(
                    &directory,
                    &target,
                    AssignAgent {
                        agent_name,
                        assignment,
                    },
                )
                .await
            }
            .into_actor(self)
            .map(move |res, act, ctx| {
                let res = res.and_then(|r| r);
                let out = match res {
                    Ok(()) => {
                        act.core.finish_accept(&agent_id, &cid, true, false);
                        act.note_assignment(&team);
                        let now_ms = act.clock.now_ms();
                        if let Some(c) = act.sla.assigned(&cid, now_ms) {
                            act.persist_sla(vec![c], Vec::new());
                        }
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

/// An agent takes a waiting conversation from the queue themselves (manual teams; any
/// team's when they may hold it); answered once the conversation is theirs.
#[derive(Message)]
#[rtype(result = "Result<(), RouterError>")]
pub struct Claim {
    pub agent_id: String,
    pub conversation_id: String,
}

impl Handler<Claim> for Router {
    type Result = ResponseActFuture<Self, Result<(), RouterError>>;

    fn handle(&mut self, msg: Claim, ctx: &mut Self::Context) -> Self::Result {
        let cid = msg.conversation_id;
        // Claiming one's own open offer is an accept: its timer must go too.
        let own_offer = self
            .core
            .offer_of(&cid)
            .filter(|o| o.agent_id == msg.agent_id)
            .map(|o| o.id);
        let entry = match self.core.claim(&msg.agent_id, &cid, Instant::now()) {
            Ok(e) => e,
            Err(r) => {
                let e = match r {
                    Refusal::UnknownAgent => RouterError::UnknownAgent,
                    Refusal::NotEligible => RouterError::NotEligible(cid),
                    Refusal::OfferedToAnother => RouterError::OfferedToAnother(cid),
                    Refusal::NotQueued | Refusal::NoOffer => RouterError::NotQueued(cid),
                };
                return Box::pin(fut::ready(Err(e)));
            }
        };
        if let Some(t) = own_offer.and_then(|id| self.timers.remove(&id)) {
            ctx.cancel_future(t);
        }
        self.assign(msg.agent_id, entry)
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
    /// Closed (its SLA clock ends) rather than transferred (the clock runs on).
    pub closed: bool,
}

impl Handler<Released> for Router {
    type Result = ();

    fn handle(&mut self, msg: Released, ctx: &mut Self::Context) {
        self.core.release(&msg.agent_id, &msg.conversation_id);
        if msg.closed {
            self.stop_sla(&msg.conversation_id);
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
            assigned: self.core.agents().map(|a| a.assigned().len()).sum(),
        })
    }
}

/// One line of the queue as the API and agents see it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct QueuedView {
    pub conversation_id: String,
    pub team: String,
    pub priority: u8,
    pub enqueued_at_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel: Option<handoffd_channels::ChannelKind>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub skills: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// 1-based position among the team's waiting conversations.
    pub position: usize,
    /// The agent it is offered to right now, if any.
    pub offered_to: Option<String>,
    /// The customer, so an inbox can list them by name. The router does not keep it: the
    /// agent session fills it in from the store when it answers `get_queue`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contact: Option<handoffd_channels::Contact>,
    /// Its SLA timers (running, met or breached), when a policy covers it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sla: Vec<crate::model::SlaTimer>,
}

/// Asks the router for the queue, in the order it will be served: all of it, or the part an
/// agent's teams serve.
#[derive(Message)]
#[rtype(result = "Vec<QueuedView>")]
pub struct GetQueue {
    pub for_agent: Option<String>,
}

impl Handler<GetQueue> for Router {
    type Result = MessageResult<GetQueue>;

    fn handle(&mut self, msg: GetQueue, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult(self.queue_view(msg.for_agent.as_deref()))
    }
}

impl Router {
    /// The queue as agents and the API see it; `for_agent` keeps what their teams serve
    /// (and transfers addressed to them).
    fn queue_view(&self, for_agent: Option<&str>) -> Vec<QueuedView> {
        let teams: Option<&[String]> = match for_agent {
            Some(id) => match self.core.agent(id) {
                Some(a) => Some(&a.record.teams),
                None => return Vec::new(),
            },
            None => None,
        };
        let positions: HashMap<String, usize> = self.core.positions().into_iter().collect();
        self.core
            .queue()
            .filter(|e| match (teams, &e.only_agent) {
                (None, _) => true,
                (Some(_), Some(only)) => Some(only.as_str()) == for_agent,
                (Some(t), None) => t.contains(&e.team),
            })
            .map(|e| QueuedView {
                conversation_id: e.conversation_id.clone(),
                team: e.team.clone(),
                priority: e.priority,
                enqueued_at_ms: e.enqueued_at_ms,
                channel: e.channel,
                skills: e.skills.clone(),
                language: e.language.clone(),
                position: positions.get(&e.conversation_id).copied().unwrap_or(0),
                offered_to: self
                    .core
                    .offer_of(&e.conversation_id)
                    .map(|o| o.agent_id.clone()),
                contact: None,
                sla: self
                    .sla
                    .clock(&e.conversation_id)
                    .map(|c| c.timers.clone())
                    .unwrap_or_default(),
            })
            .collect()
    }

    /// Agents of manual teams work from the queue: each online one gets the new `queue`
    /// frame when the waiting conversations of their teams change.
    fn push_manual_queues(&mut self) {
        let manual: Vec<String> = self
            .settings
            .teams
            .iter()
            .filter(|(_, p)| p.strategy == Strategy::Manual)
            .map(|(t, _)| t.clone())
            .collect();
        if manual.is_empty() {
            return;
        }
        let agents: Vec<String> = self
            .core
            .agents()
            .filter(|a| a.sessions > 0 && a.record.teams.iter().any(|t| manual.contains(t)))
            .map(|a| a.record.id.clone())
            .collect();
        for id in agents {
            let entries = self.queue_view(Some(&id));
            let ids: Vec<String> = entries.iter().map(|e| e.conversation_id.clone()).collect();
            if self.pushed_queue.get(&id) == Some(&ids) {
                continue;
            }
            self.pushed_queue.insert(id.clone(), ids);
            self.registry.push(&id, &ServerFrame::Queue { entries });
        }
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
            .map(|a| (a.record.id.clone(), a.assigned().len(), a.record.capacity))
            .collect();
        loads.sort();
        MessageResult(loads)
    }
}
