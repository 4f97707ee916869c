//! The router's bookkeeping types.

use std::cmp::Reverse;
use std::collections::HashSet;
use std::time::Instant;

use crate::agents::protocol::Presence;
use crate::model::{AgentRecord, QueueEntry};

/// Queue order: highest priority first, then the oldest ticket.
pub type QueueKey = (Reverse<u8>, u64);

pub fn queue_key(e: &QueueEntry) -> QueueKey {
    (Reverse(e.priority), e.ticket)
}

/// What the router knows of one agent.
pub struct AgentState {
    pub record: AgentRecord,
    pub presence: Presence,
    pub assigned: HashSet<String>,
    pub offered: HashSet<String>,
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
            assigned: HashSet::new(),
            offered: HashSet::new(),
            sessions: 0,
            last_assigned: Instant::now(),
            disconnect_generation: 0,
        }
    }

    /// Conversations held plus offers open: an offer reserves a slot.
    pub fn load(&self) -> usize {
        self.assigned.len() + self.offered.len()
    }
}
