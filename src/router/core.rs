//! The router's decisions, without any I/O: who is offered what, who holds what, what waits.
//!
//! Time is passed in, nothing is sent anywhere: the `Router` actor around it does the
//! talking (offers to agents, assignments to conversations, timers). Keeping the decisions
//! pure lets property tests drive thousands of random sequences of escalations, accepts,
//! declines, disconnects and closes through it and check the invariants after every step.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use super::state::{AgentState, QueueKey, queue_key};
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
}

/// The router's state and rules.
pub struct RouterCore {
    offer_timeout: Duration,
    decline_cooldown: Duration,
    /// Every waiting conversation, highest priority first, then oldest first.
    queue: BTreeMap<QueueKey, QueueEntry>,
    queued: HashMap<String, QueueKey>,
    agents: HashMap<String, AgentState>,
    offers: HashMap<String, OpenOffer>,
    /// Conversations whose accept is being confirmed by the conversation actor.
    accepting: HashSet<String>,
    /// (conversation, agent) -> when declined or let time out, and whether it was an
    /// explicit decline (strict) or a timeout (skipped only while someone else can take it).
    declined: HashMap<(String, String), (Instant, bool)>,
    next_offer_id: u64,
}

impl RouterCore {
    pub fn new(offer_timeout: Duration, decline_cooldown: Duration) -> Self {
        RouterCore {
            offer_timeout,
            decline_cooldown,
            queue: BTreeMap::new(),
            queued: HashMap::new(),
            agents: HashMap::new(),
            offers: HashMap::new(),
            accepting: HashSet::new(),
            declined: HashMap::new(),
            next_offer_id: 1,
        }
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
        match self.agents.get_mut(&a.agent_id) {
            Some(s) => {
                s.assigned.insert(a.conversation_id.clone());
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

    /// Whether `agent` may be offered `entry`. On the second pass an agent who only let an
    /// earlier offer time out is eligible again; one who declined is not, until the cooldown.
    fn eligible(
        &self,
        agent: &AgentState,
        entry: &QueueEntry,
        second_pass: bool,
        now: Instant,
    ) -> bool {
        // A transfer to a named agent goes to that agent whatever their teams.
        let addressed = match &entry.only_agent {
            Some(only) => *only == agent.record.id,
            None => {
                agent.record.teams.contains(&entry.team)
                    && entry.skills.iter().all(|s| agent.record.skills.contains(s))
            }
        };
        if !addressed
            || agent.presence != Presence::Online
            || agent.sessions == 0
            || agent.load() >= agent.record.capacity as usize
        {
            return false;
        }
        match self
            .declined
            .get(&(entry.conversation_id.clone(), agent.record.id.clone()))
        {
            Some((at, strict)) if now.saturating_duration_since(*at) < self.decline_cooldown => {
                !*strict && second_pass
            }
            _ => true,
        }
    }

    /// Decides the offers to make now, in queue order: each waiting conversation goes to the
    /// eligible agent with the fewest conversations, ties to the one idle longest. Each offer
    /// reserves a slot of the agent's capacity at once.
    pub fn dispatch(&mut self, now: Instant) -> Vec<NewOffer> {
        let cooldown = self.decline_cooldown;
        self.declined
            .retain(|_, (at, _)| now.saturating_duration_since(*at) < cooldown);
        let waiting: Vec<QueueEntry> = self
            .queue
            .values()
            .filter(|e| {
                !self.offers.contains_key(&e.conversation_id)
                    && !self.accepting.contains(&e.conversation_id)
            })
            .cloned()
            .collect();
        let mut made = Vec::new();
        for entry in waiting {
            // Stop early once nobody has room: the rest of the queue waits.
            if !self
                .agents
                .values()
                .any(|a| a.sessions > 0 && a.load() < a.record.capacity as usize)
            {
                break;
            }
            // Sticky routing: a returning customer goes to the agent who helped them last,
            // when that agent can take them now.
            let sticky = entry
                .preferred_agent
                .as_ref()
                .and_then(|id| self.agents.get(id))
                .filter(|a| self.eligible(a, &entry, false, now))
                .map(|a| a.record.id.clone());
            let pick = |second_pass: bool| {
                self.agents
                    .values()
                    .filter(|a| self.eligible(a, &entry, second_pass, now))
                    // Agents who speak the customer's language first, then the least loaded,
                    // then the one idle longest.
                    .min_by(|a, b| {
                        let miss = |x: &AgentState| {
                            entry.language.as_ref().is_some_and(|l| {
                                !x.record.languages.is_empty() && !x.record.languages.contains(l)
                            })
                        };
                        (miss(a), a.load(), a.last_assigned, &a.record.id).cmp(&(
                            miss(b),
                            b.load(),
                            b.last_assigned,
                            &b.record.id,
                        ))
                    })
                    .map(|a| a.record.id.clone())
            };
            // First skip agents who let this offer time out; fall back to them if nobody
            // else can take it.
            let Some(agent_id) = sticky.or_else(|| pick(false)).or_else(|| pick(true)) else {
                continue;
            };
            let id = self.next_offer_id;
            self.next_offer_id += 1;
            if let Some(a) = self.agents.get_mut(&agent_id) {
                a.offered.insert(entry.conversation_id.clone());
            }
            self.offers.insert(
                entry.conversation_id.clone(),
                OpenOffer {
                    id,
                    agent_id: agent_id.clone(),
                    deadline: now + self.offer_timeout,
                },
            );
            made.push(NewOffer {
                offer_id: id,
                conversation_id: entry.conversation_id,
                agent_id,
            });
        }
        made
    }

    /// Takes an open offer back (timeout, away, disconnect, undeliverable).
    pub fn withdraw(&mut self, conversation_id: &str) -> Option<OpenOffer> {
        let offer = self.offers.remove(conversation_id)?;
        if let Some(a) = self.agents.get_mut(&offer.agent_id) {
            a.offered.remove(conversation_id);
        }
        Some(offer)
    }

    /// The offer's time ran out; true when it was still open (and is now withdrawn).
    pub fn expire(&mut self, conversation_id: &str, offer_id: u64, now: Instant) -> Option<String> {
        if self.offers.get(conversation_id)?.id != offer_id {
            return None;
        }
        let offer = self.withdraw(conversation_id)?;
        self.declined.insert(
            (conversation_id.to_string(), offer.agent_id.clone()),
            (now, false),
        );
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
        self.declined.insert(
            (conversation_id.to_string(), agent_id.to_string()),
            (now, true),
        );
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
        if let Some(agent) = self.agents.get_mut(agent_id) {
            agent.assigned.insert(conversation_id.to_string());
            agent.last_assigned = now;
        }
        self.accepting.insert(conversation_id.to_string());
        Ok((entry, offer))
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
            a.assigned.remove(conversation_id);
        }
        if drop_from_queue {
            self.remove_queued(conversation_id);
        }
    }

    /// The conversation left its agent (closed, transferred, re-queued).
    pub fn release(&mut self, agent_id: &str, conversation_id: &str) {
        if let Some(a) = self.agents.get_mut(agent_id) {
            a.assigned.remove(conversation_id);
        }
    }

    /// Forgets a conversation's assignment whoever held it.
    pub fn release_from_all(&mut self, conversation_id: &str) {
        for a in self.agents.values_mut() {
            a.assigned.remove(conversation_id);
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
            if a.load() > a.record.capacity as usize {
                return Err(format!(
                    "agent {} holds {} + {} offers over capacity {}",
                    a.record.id,
                    a.assigned.len(),
                    a.offered.len(),
                    a.record.capacity
                ));
            }
            for c in &a.assigned {
                if let Some(other) = holders.insert(c, &a.record.id) {
                    return Err(format!("{c} held by {other} and {}", a.record.id));
                }
                if self.queued.contains_key(c) && !self.accepting.contains(c) {
                    return Err(format!("{c} is both held and waiting"));
                }
            }
            for c in &a.offered {
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
                .is_some_and(|a| a.offered.contains(c))
            {
                return Err(format!("offer of {c} unknown to its agent"));
            }
        }
        if self.queued.len() != self.queue.len() {
            return Err("queue index out of step".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
