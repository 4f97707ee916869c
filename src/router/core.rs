//! The router's decisions, without any I/O: who is offered what, who holds what, what waits.
//!
//! Time is passed in, nothing is sent anywhere: the `Router` actor around it does the
//! talking (offers to agents, assignments to conversations, timers). Keeping the decisions
//! pure lets property tests drive thousands of random sequences of escalations, accepts,
//! declines, disconnects and closes through it and check the invariants after every step.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use super::state::{AgentState, ChannelWeights, QueueKey, Slot, Strategy, TeamPolicy, queue_key};
use crate::agents::protocol::Presence;
use crate::model::{AgentRecord, Assignment, QueueEntry};

/// An offer the core decided to make; the actor delivers it and starts its timer.
#[derive(Debug, Clone, PartialEq)]
pub struct NewOffer {
    pub offer_id: u64,
    pub conversation_id: String,
    pub agent_id: String,
}

/// An open offer.
#[derive(Debug, Clone)]
pub struct OpenOffer {
    pub id: u64,
    pub agent_id: String,
    pub deadline: Instant,
}

/// Why the core refused an agent's request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    NoOffer,
    UnknownAgent,
    /// A claim of a conversation that is not waiting (taken, closed, unknown).
    NotQueued,
    /// A claim by an agent who may not take it now (team, skills, capacity, presence).
    NotEligible,
    /// A claim of a conversation offered to someone else right now.
    OfferedToAnother,
}

/// The router's state and rules.
pub struct RouterCore {
    offer_timeout: Duration,
    decline_cooldown: Duration,
    /// Strategy and limits per team; a team not listed is balanced with no team limit.
    teams: HashMap<String, TeamPolicy>,
    weights: ChannelWeights,
    /// Every waiting conversation, highest priority first, then oldest first.
    queue: BTreeMap<QueueKey, QueueEntry>,
    queued: HashMap<String, QueueKey>,
    agents: HashMap<String, AgentState>,
    offers: HashMap<String, OpenOffer>,
    /// Conversations whose accept is being confirmed by the conversation actor.
    accepting: HashSet<String>,
    /// conversation -> agent -> when declined or let time out, and whether it was an
    /// explicit decline (strict) or a timeout (skipped only while someone else can take it).
    declined: HashMap<String, HashMap<String, (Instant, bool)>>,
    /// Round robin: the agent each team offered to last.
    last_in_turn: HashMap<String, String>,
    next_offer_id: u64,
}

impl RouterCore {
    pub fn new(offer_timeout: Duration, decline_cooldown: Duration) -> Self {
        RouterCore {
            offer_timeout,
            decline_cooldown,
            teams: HashMap::new(),
            weights: ChannelWeights::default(),
            queue: BTreeMap::new(),
            queued: HashMap::new(),
            agents: HashMap::new(),
            offers: HashMap::new(),
            accepting: HashSet::new(),
            declined: HashMap::new(),
            last_in_turn: HashMap::new(),
            next_offer_id: 1,
        }
    }

    /// Sets each team's strategy and limits.
    pub fn set_teams(&mut self, teams: HashMap<String, TeamPolicy>) {
        self.teams = teams;
    }

    /// Sets what each channel's conversations weigh against capacity.
    pub fn set_channel_weights(&mut self, weights: ChannelWeights) {
        self.weights = weights;
    }

    fn policy(&self, team: &str) -> TeamPolicy {
        self.teams.get(team).cloned().unwrap_or_default()
    }

    /// Adds or updates an agent account (sessions and presence are kept).
    pub fn upsert_agent(&mut self, record: AgentRecord) {
        match self.agents.get_mut(&record.id) {
            Some(a) => a.record = record,
            None => {
                self.agents
                    .insert(record.id.clone(), AgentState::new(record));
            }
        }
    }

    pub fn agent(&self, id: &str) -> Option<&AgentState> {
        self.agents.get(id)
    }

    pub fn agents(&self) -> impl Iterator<Item = &AgentState> {
        self.agents.values()
    }

    /// Restores an assignment read from the store.
    pub fn restore_assignment(&mut self, a: &Assignment) -> bool {
        let slot = Slot::for_entry(&a.queued, &self.weights);
        match self.agents.get_mut(&a.agent_id) {
            Some(s) => {
                s.hold(a.conversation_id.clone(), slot);
                true
            }
            None => false,
        }
    }

    /// Puts a conversation in the queue (or moves it to its new place).
    pub fn enqueue(&mut self, e: QueueEntry) {
        self.remove_queued(&e.conversation_id);
        let key = queue_key(&e);
        self.queued.insert(e.conversation_id.clone(), key);
        self.queue.insert(key, e);
    }

    /// Takes a conversation out of the queue, with any offer of it.
    pub fn remove_queued(&mut self, conversation_id: &str) -> Option<QueueEntry> {
        let key = self.queued.remove(conversation_id)?;
        self.queue.remove(&key)
    }

    /// Gives a waiting conversation a new priority, moving it to its new place (any open
    /// offer of it stays). True when it changed.
    pub fn set_priority(&mut self, conversation_id: &str, priority: u8) -> bool {
        let Some(mut e) = self.queued_entry(conversation_id).cloned() else {
            return false;
        };
        if e.priority == priority {
            return false;
        }
        e.priority = priority;
        self.enqueue(e);
        true
    }

    pub fn queue(&self) -> impl Iterator<Item = &QueueEntry> {
        self.queue.values()
    }

    pub fn queue_len(&self) -> usize {
        self.queue.len()
    }

    pub fn queued_entry(&self, conversation_id: &str) -> Option<&QueueEntry> {
        self.queued
            .get(conversation_id)
            .and_then(|k| self.queue.get(k))
    }

    pub fn offer_of(&self, conversation_id: &str) -> Option<&OpenOffer> {
        self.offers.get(conversation_id)
    }

    pub fn offers_len(&self) -> usize {
        self.offers.len()
    }

    /// The strategy of a team (balanced unless configured).
    pub fn strategy(&self, team: &str) -> Strategy {
        self.policy(team).strategy
    }

    /// Invalidates the agent's pending re-queue timers (they carry the old generation).
    pub fn bump_generation(&mut self, agent_id: &str) {
        if let Some(a) = self.agents.get_mut(agent_id) {
            a.disconnect_generation += 1;
        }
    }

    /// An agent's session count changed (the registry is the source of truth).
    pub fn set_sessions(&mut self, agent_id: &str, sessions: usize) {
        if let Some(a) = self.agents.get_mut(agent_id) {
            a.sessions = sessions;
        }
    }

    pub fn set_presence(&mut self, agent_id: &str, presence: Presence) -> bool {
        match self.agents.get_mut(agent_id) {
            Some(a) => {
                a.presence = presence;
                true
            }
            None => false,
        }
    }

    /// Whether any agent of `team` is online with a session (could be offered its
    /// conversations, capacity aside).
    pub fn team_online(&self, team: &str) -> bool {
        self.agents.values().any(|a| {
            a.sessions > 0
                && a.presence == Presence::Online
                && a.record.teams.iter().any(|t| t == team)
        })
    }

    /// Whether the conversation waits with no offer and no accept in flight.
    pub fn waiting_unoffered(&self, conversation_id: &str) -> bool {
        self.queued.contains_key(conversation_id)
            && !self.offers.contains_key(conversation_id)
            && !self.accepting.contains(conversation_id)
    }

    /// Conversations of `team` held or offered right now.
    fn team_load(&self, team: &str) -> u32 {
        self.agents.values().map(|a| a.team_load(team)).sum()
    }

    /// Whether the team may take one more conversation.
    fn team_has_room(&self, team: &str) -> bool {
        match self.policy(team).max_open {
            Some(max) => self.team_load(team) < max,
            None => true,
        }
    }

    /// Whether `agent` could hold `entry` now: addressed to them (team and skills, or a
    /// transfer by name), online with a session, and room for its weight.
    fn can_hold(&self, agent: &AgentState, entry: &QueueEntry) -> bool {
        // A transfer to a named agent goes to that agent whatever their teams.
        let addressed = match &entry.only_agent {
            Some(only) => *only == agent.record.id,
            None => {
                agent.record.teams.contains(&entry.team)
                    && entry.skills.iter().all(|s| agent.record.skills.contains(s))
            }
        };
        addressed
            && agent.presence == Presence::Online
            && agent.sessions > 0
            && agent.fits(self.weights.of(entry))
    }

    /// Whether `agent` may be offered `entry`. On the second pass an agent who only let an
    /// earlier offer time out is eligible again; one who declined is not, until the cooldown.
    fn eligible(
        &self,
        agent: &AgentState,
        entry: &QueueEntry,
        second_pass: bool,
        now: Instant,
    ) -> bool {
        if !self.can_hold(agent, entry) {
            return false;
        }
        let declined = self
            .declined
            .get(&entry.conversation_id)
            .and_then(|by| by.get(&agent.record.id));
        match declined {
            Some((at, strict)) if now.saturating_duration_since(*at) < self.decline_cooldown => {
                !*strict && second_pass
            }
            _ => true,
        }
    }

    /// Picks among the eligible agents by the team's strategy. Agents who write the
    /// customer's language always come first.
    fn pick(
        &self,
        entry: &QueueEntry,
        strategy: Strategy,
        second_pass: bool,
        now: Instant,
    ) -> Option<String> {
        let miss = |x: &AgentState| {
            entry
                .language
                .as_ref()
                .is_some_and(|l| !x.record.languages.is_empty() && !x.record.languages.contains(l))
        };
        let eligible = self
            .agents
            .values()
            .filter(|a| self.eligible(a, entry, second_pass, now));
        match strategy {
            // The least loaded, then the one idle longest.
            Strategy::Balanced | Strategy::Manual => eligible
                .min_by(|a, b| {
                    (miss(a), a.load(), a.last_assigned, &a.record.id).cmp(&(
                        miss(b),
                        b.load(),
                        b.last_assigned,
                        &b.record.id,
                    ))
                })
                .map(|a| a.record.id.clone()),
            // The next agent after the last one offered, in a fixed order (by id).
            Strategy::RoundRobin => {
                let last = self.last_in_turn.get(&entry.team);
                eligible
                    .min_by(|a, b| {
                        let after = |x: &AgentState| last.is_none_or(|l| x.record.id > *l);
                        (miss(a), !after(a), &a.record.id).cmp(&(miss(b), !after(b), &b.record.id))
                    })
                    .map(|a| a.record.id.clone())
            }
        }
    }

    /// Decides the offers to make now, in queue order: each waiting conversation goes to an
    /// eligible agent chosen by its team's strategy (none for manual teams, whose agents
    /// claim). Each offer reserves the agent's capacity at once.
    pub fn dispatch(&mut self, now: Instant) -> Vec<NewOffer> {
        let cooldown = self.decline_cooldown;
        self.declined.retain(|_, by| {
            by.retain(|_, (at, _)| now.saturating_duration_since(*at) < cooldown);
            !by.is_empty()
        });
        let mut made = Vec::new();
        // Nobody has room: the whole queue waits (checked first, so a long queue costs
        // nothing while every agent is full).
        if !self.agents.values().any(AgentState::has_room) {
            return made;
        }
        let waiting: Vec<QueueKey> = self
            .queue
            .iter()
            .filter(|(_, e)| {
                !self.offers.contains_key(&e.conversation_id)
                    && !self.accepting.contains(&e.conversation_id)
            })
            .map(|(k, _)| *k)
            .collect();
        for key in waiting {
            if !self.agents.values().any(AgentState::has_room) {
                break;
            }
            let Some(entry) = self.queue.get(&key) else {
                continue;
            };
            let policy = self.policy(&entry.team);
            // Manual teams: agents claim from the queue; only a transfer to a named
            // agent is offered.
            if policy.strategy == Strategy::Manual && entry.only_agent.is_none() {
                continue;
            }
            if entry.only_agent.is_none() && !self.team_has_room(&entry.team) {
                continue;
            }
            // Sticky routing: a returning customer goes to the agent who helped them last,
            // when that agent can take them now.
            let sticky = entry
                .preferred_agent
                .as_ref()
                .and_then(|id| self.agents.get(id))
                .filter(|a| self.eligible(a, entry, false, now))
                .map(|a| a.record.id.clone());
            // First skip agents who let this offer time out; fall back to them if nobody
            // else can take it.
            let Some(agent_id) = sticky
                .or_else(|| self.pick(entry, policy.strategy, false, now))
                .or_else(|| self.pick(entry, policy.strategy, true, now))
            else {
                continue;
            };
            let slot = Slot::for_entry(entry, &self.weights);
            let conversation_id = entry.conversation_id.clone();
            if policy.strategy == Strategy::RoundRobin {
                self.last_in_turn
                    .insert(slot.team.clone(), agent_id.clone());
            }
            let id = self.next_offer_id;
            self.next_offer_id += 1;
            if let Some(a) = self.agents.get_mut(&agent_id) {
                a.add_offer(conversation_id.clone(), slot);
            }
            self.offers.insert(
                conversation_id.clone(),
                OpenOffer {
                    id,
                    agent_id: agent_id.clone(),
                    deadline: now + self.offer_timeout,
                },
            );
            made.push(NewOffer {
                offer_id: id,
                conversation_id,
                agent_id,
            });
        }
        made
    }

    /// Takes an open offer back (timeout, away, disconnect, undeliverable).
    pub fn withdraw(&mut self, conversation_id: &str) -> Option<OpenOffer> {
        let offer = self.offers.remove(conversation_id)?;
        if let Some(a) = self.agents.get_mut(&offer.agent_id) {
            a.drop_offer(conversation_id);
        }
        Some(offer)
    }

    /// The offer's time ran out; true when it was still open (and is now withdrawn).
    pub fn expire(&mut self, conversation_id: &str, offer_id: u64, now: Instant) -> Option<String> {
        if self.offers.get(conversation_id)?.id != offer_id {
            return None;
        }
        let offer = self.withdraw(conversation_id)?;
        self.declined
            .entry(conversation_id.to_string())
            .or_default()
            .insert(offer.agent_id.clone(), (now, false));
        Some(offer.agent_id)
    }

    pub fn decline(
        &mut self,
        agent_id: &str,
        conversation_id: &str,
        now: Instant,
    ) -> Result<OpenOffer, Refusal> {
        match self.offers.get(conversation_id) {
            Some(o) if o.agent_id == agent_id => {}
            _ => return Err(Refusal::NoOffer),
        }
        let offer = self.withdraw(conversation_id).ok_or(Refusal::NoOffer)?;
        self.declined
            .entry(conversation_id.to_string())
            .or_default()
            .insert(agent_id.to_string(), (now, true));
        Ok(offer)
    }

    /// An agent accepts: the slot stays reserved while the conversation confirms. Returns the
    /// queue entry the assignment is made from, and the withdrawn offer (for its timer).
    pub fn begin_accept(
        &mut self,
        agent_id: &str,
        conversation_id: &str,
        now: Instant,
    ) -> Result<(QueueEntry, OpenOffer), Refusal> {
        match self.offers.get(conversation_id) {
            Some(o) if o.agent_id == agent_id => {}
            _ => return Err(Refusal::NoOffer),
        }
        let entry = self
            .queued_entry(conversation_id)
            .cloned()
            .ok_or(Refusal::NoOffer)?;
        if !self.agents.contains_key(agent_id) {
            return Err(Refusal::UnknownAgent);
        }
        let offer = self.withdraw(conversation_id).ok_or(Refusal::NoOffer)?;
        self.hold(agent_id, &entry, now);
        Ok((entry, offer))
    }

    /// The agent holds the conversation while its actor confirms the assignment.
    fn hold(&mut self, agent_id: &str, entry: &QueueEntry, now: Instant) {
        let slot = Slot::for_entry(entry, &self.weights);
        if let Some(agent) = self.agents.get_mut(agent_id) {
            agent.hold(entry.conversation_id.clone(), slot);
            agent.last_assigned = now;
        }
        self.accepting.insert(entry.conversation_id.clone());
    }

    /// An agent takes a waiting conversation themselves (manual teams, or any team's queue
    /// when the agent may hold it): the same checks as an offer, without the offer. The
    /// conversation is then confirmed with [`RouterCore::finish_accept`] like an accept.
    pub fn claim(
        &mut self,
        agent_id: &str,
        conversation_id: &str,
        now: Instant,
    ) -> Result<QueueEntry, Refusal> {
        let entry = self.takeable(conversation_id)?;
        let agent = self.agents.get(agent_id).ok_or(Refusal::UnknownAgent)?;
        let own_offer = match self.offers.get(conversation_id) {
            Some(o) if o.agent_id == agent_id => true,
            Some(_) => return Err(Refusal::OfferedToAnother),
            None => false,
        };
        // An offer already reserves its slot; without one the claim must fit.
        if !own_offer
            && (!self.can_hold(agent, &entry)
                || (entry.only_agent.is_none() && !self.team_has_room(&entry.team)))
        {
            return Err(Refusal::NotEligible);
        }
        if own_offer {
            self.withdraw(conversation_id);
        }
        self.hold(agent_id, &entry, now);
        Ok(entry)
    }

    /// The entry of a waiting conversation nobody is being confirmed for.
    fn takeable(&self, conversation_id: &str) -> Result<QueueEntry, Refusal> {
        if self.accepting.contains(conversation_id) {
            return Err(Refusal::NotQueued);
        }
        self.queued_entry(conversation_id)
            .cloned()
            .ok_or(Refusal::NotQueued)
    }

    /// A supervisor puts a waiting conversation with an agent: any team, skills or presence,
    /// but never past the agent's capacity. Like a transfer by name, a person chose where
    /// it goes, so it does not count against the team's limit (the entry returned is
    /// addressed to the agent, and a restart keeps it so). Someone else's open offer must
    /// have been withdrawn first. Confirmed with [`RouterCore::finish_accept`].
    pub fn assign_by_supervisor(
        &mut self,
        agent_id: &str,
        conversation_id: &str,
        now: Instant,
    ) -> Result<QueueEntry, Refusal> {
        if self.offers.contains_key(conversation_id) {
            return Err(Refusal::OfferedToAnother);
        }
        let entry = self.takeable(conversation_id)?;
        let agent = self.agents.get(agent_id).ok_or(Refusal::UnknownAgent)?;
        if !agent.fits(self.weights.of(&entry)) {
            return Err(Refusal::NotEligible);
        }
        let entry = QueueEntry {
            only_agent: Some(agent_id.to_string()),
            ..entry
        };
        self.hold(agent_id, &entry, now);
        Ok(entry)
    }

    /// Whether an accept of the conversation is being confirmed right now.
    pub fn is_accepting(&self, conversation_id: &str) -> bool {
        self.accepting.contains(conversation_id)
    }

    /// The agent holding the conversation, if any.
    pub fn holder_of(&self, conversation_id: &str) -> Option<&str> {
        self.agents
            .values()
            .find(|a| a.assigned().contains_key(conversation_id))
            .map(|a| a.record.id.as_str())
    }

    /// Keeps `agent_id` from being offered the conversation again for the decline cooldown
    /// (it was taken from them for an SLA breach).
    pub fn cool_down(&mut self, agent_id: &str, conversation_id: &str, now: Instant) {
        self.declined
            .entry(conversation_id.to_string())
            .or_default()
            .insert(agent_id.to_string(), (now, true));
    }

    /// The conversation confirmed (`Ok`) or refused the assignment. `drop_from_queue` is set
    /// when the conversation is no longer waiting at all.
    pub fn finish_accept(
        &mut self,
        agent_id: &str,
        conversation_id: &str,
        ok: bool,
        drop_from_queue: bool,
    ) {
        self.accepting.remove(conversation_id);
        if ok {
            self.remove_queued(conversation_id);
            return;
        }
        if let Some(a) = self.agents.get_mut(agent_id) {
            a.drop_held(conversation_id);
        }
        if drop_from_queue {
            self.remove_queued(conversation_id);
        }
    }

    /// The conversation left its agent (closed, transferred, re-queued).
    pub fn release(&mut self, agent_id: &str, conversation_id: &str) {
        if let Some(a) = self.agents.get_mut(agent_id) {
            a.drop_held(conversation_id);
        }
    }

    /// Forgets a conversation's assignment whoever held it.
    pub fn release_from_all(&mut self, conversation_id: &str) {
        for a in self.agents.values_mut() {
            a.drop_held(conversation_id);
        }
    }

    /// The position (1-based) of each waiting conversation among its team's.
    pub fn positions(&self) -> Vec<(String, usize)> {
        let mut per_team: HashMap<&str, usize> = HashMap::new();
        self.queue
            .values()
            .map(|e| {
                let p = per_team.entry(e.team.as_str()).or_insert(0);
                *p += 1;
                (e.conversation_id.clone(), *p)
            })
            .collect()
    }

    /// Checks the invariants; used by tests after every step.
    pub fn check_invariants(&self) -> Result<(), String> {
        let mut holders: HashMap<&str, &str> = HashMap::new();
        for a in self.agents.values() {
            if a.load() != a.recount() {
                return Err(format!("agent {} load out of step", a.record.id));
            }
            if a.load() > a.capacity() {
                return Err(format!(
                    "agent {} holds {} + {} offers (load {}) over capacity {}",
                    a.record.id,
                    a.assigned().len(),
                    a.offered().len(),
                    a.load(),
                    a.record.capacity
                ));
            }
            for c in a.assigned().keys() {
                if let Some(other) = holders.insert(c, &a.record.id) {
                    return Err(format!("{c} held by {other} and {}", a.record.id));
                }
                if self.queued.contains_key(c) && !self.accepting.contains(c) {
                    return Err(format!("{c} is both held and waiting"));
                }
            }
            for c in a.offered().keys() {
                match self.offers.get(c) {
                    Some(o) if o.agent_id == a.record.id => {}
                    _ => {
                        return Err(format!(
                            "{c} marked offered to {} without an offer",
                            a.record.id
                        ));
                    }
                }
            }
        }
        for (c, o) in &self.offers {
            if !self.queued.contains_key(c) {
                return Err(format!("offer of {c} which is not queued"));
            }
            if !self
                .agents
                .get(&o.agent_id)
                .is_some_and(|a| a.offered().contains_key(c))
            {
                return Err(format!("offer of {c} unknown to its agent"));
            }
        }
        if self.queued.len() != self.queue.len() {
            return Err("queue index out of step".into());
        }
        for (team, policy) in &self.teams {
            if let Some(max) = policy.max_open {
                // Transfers to a named agent are not counted (see `Slot::addressed`).
                let load = self.team_load(team);
                if load > max {
                    return Err(format!("team {team} holds {load} over its limit {max}"));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
