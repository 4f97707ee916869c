//! The router's bookkeeping types.

use std::cmp::Reverse;
use std::collections::HashMap;
use std::time::Instant;

use handoffd_channels::ChannelKind;
use serde::Deserialize;

use crate::agents::protocol::Presence;
use crate::model::{AgentRecord, QueueEntry};

/// Queue order: highest priority first, then the oldest ticket.
pub type QueueKey = (Reverse<u8>, u64);

pub fn queue_key(e: &QueueEntry) -> QueueKey {
    (Reverse(e.priority), e.ticket)
}

/// Capacity is counted in thousandths of a conversation, so a channel can weigh less than a
/// live chat (an email at 0.5 lets an agent of capacity 3 hold six emails) without floats
/// drifting in the sums.
pub const UNIT: u32 = 1000;

/// How a team's waiting conversations find their agents.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// Offer to the eligible agent holding the least, ties to the one idle longest.
    #[default]
    Balanced,
    /// Offer to the eligible agents in turn, whatever they hold (within capacity).
    RoundRobin,
    /// No offers: agents see the team's queue and claim what they take.
    Manual,
}

/// What happens to a conversation nobody in its team can take.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoAgentFallback {
    /// It waits in the queue (the customer keeps seeing their position).
    #[default]
    Queue,
    /// It goes back to the bot, which is told `handoff.failed`.
    Bot,
    /// It waits, and the customer is offered a reply by email: asked for their address
    /// (unless known), agents' replies are then mailed to it too, and mail replies come
    /// back into the same conversation.
    Email,
}

/// What the router needs to know of a team.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TeamPolicy {
    pub strategy: Strategy,
    /// Conversations the team may hold (assigned or offered) at once; `None` is no limit
    /// beyond its agents' capacities.
    pub max_open: Option<u32>,
    /// What to do when no agent of the team is online at escalation, or when `max_wait`
    /// passes.
    pub when_no_agent: NoAgentFallback,
    /// Longest wait before `when_no_agent` applies anyway.
    pub max_wait: Option<std::time::Duration>,
    /// A waiting conversation gains a priority level each time this much has passed.
    pub raise_priority_every: Option<std::time::Duration>,
}

/// What each channel's conversation costs of an agent's capacity, in [`UNIT`]s.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChannelWeights(pub HashMap<ChannelKind, u32>);

impl ChannelWeights {
    /// The weight of a queued conversation; a full unit unless configured.
    pub fn of(&self, entry: &QueueEntry) -> u32 {
        entry
            .channel
            .and_then(|c| self.0.get(&c).copied())
            .unwrap_or(UNIT)
    }
}

/// A conversation an agent holds or is offered, with what it costs them.
#[derive(Debug, Clone, PartialEq)]
pub struct Slot {
    pub team: String,
    pub weight: u32,
    /// Transferred to this agent by name: not counted against the team's limit, since a
    /// person chose to put it there.
    pub addressed: bool,
}

impl Slot {
    /// The slot a queued conversation takes.
    pub fn for_entry(entry: &QueueEntry, weights: &ChannelWeights) -> Slot {
        Slot {
            team: entry.team.clone(),
            weight: weights.of(entry),
            addressed: entry.only_agent.is_some(),
        }
    }
}

/// What the router knows of one agent.
pub struct AgentState {
    pub record: AgentRecord,
    pub presence: Presence,
    /// Held and offered conversations change only through the methods below, which keep
    /// `load` (read on every dispatch, for every agent) in step with them.
    assigned: HashMap<String, Slot>,
    offered: HashMap<String, Slot>,
    load: u32,
    /// Open websocket sessions; no offers without one.
    pub sessions: usize,
    /// When the agent last got a conversation: ties go to the one idle longest.
    pub last_assigned: Instant,
    /// Bumped on every connect and disconnect so a stale re-queue timer does nothing.
    pub disconnect_generation: u64,
}

impl AgentState {
    pub fn new(record: AgentRecord) -> Self {
        AgentState {
            record,
            presence: Presence::Online,
            assigned: HashMap::new(),
            offered: HashMap::new(),
            load: 0,
            sessions: 0,
            last_assigned: Instant::now(),
            disconnect_generation: 0,
        }
    }

    /// Conversations the agent holds.
    pub fn assigned(&self) -> &HashMap<String, Slot> {
        &self.assigned
    }

    /// Conversations offered to the agent and not yet answered.
    pub fn offered(&self) -> &HashMap<String, Slot> {
        &self.offered
    }

    pub fn hold(&mut self, conversation_id: String, slot: Slot) {
        self.load += slot.weight;
        if let Some(old) = self.assigned.insert(conversation_id, slot) {
            self.load -= old.weight;
        }
    }

    pub fn drop_held(&mut self, conversation_id: &str) {
        if let Some(old) = self.assigned.remove(conversation_id) {
            self.load -= old.weight;
        }
    }

    pub fn add_offer(&mut self, conversation_id: String, slot: Slot) {
        self.load += slot.weight;
        if let Some(old) = self.offered.insert(conversation_id, slot) {
            self.load -= old.weight;
        }
    }

    pub fn drop_offer(&mut self, conversation_id: &str) {
        if let Some(old) = self.offered.remove(conversation_id) {
            self.load -= old.weight;
        }
    }

    /// Weighted load in [`UNIT`]s: conversations held plus offers open (an offer reserves
    /// its slot from the moment it is made).
    pub fn load(&self) -> u32 {
        self.load
    }

    /// The load summed afresh, for the invariant checks.
    pub fn recount(&self) -> u32 {
        self.assigned
            .values()
            .chain(self.offered.values())
            .map(|s| s.weight)
            .sum()
    }

    /// The agent's capacity in [`UNIT`]s.
    pub fn capacity(&self) -> u32 {
        self.record.capacity.saturating_mul(UNIT)
    }

    /// Whether a conversation of `weight` still fits.
    pub fn fits(&self, weight: u32) -> bool {
        self.load().saturating_add(weight) <= self.capacity()
    }

    /// Whether the agent could take anything at all now.
    pub fn has_room(&self) -> bool {
        self.sessions > 0 && self.presence == Presence::Online && self.load() < self.capacity()
    }

    /// Conversations of `team` held or offered.
    pub fn team_load(&self, team: &str) -> u32 {
        self.assigned
            .values()
            .chain(self.offered.values())
            .filter(|s| s.team == team && !s.addressed)
            .count() as u32
    }
}
