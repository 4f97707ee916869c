//! Which websocket sessions each agent has open. Shared by the router (offers) and the
//! conversation actors (live customer messages), read far more often than written.

use std::collections::HashMap;
use std::sync::Arc;

use actix::{Message, Recipient};
use parking_lot::RwLock;

use super::protocol::ServerFrame;

/// A frame for one agent session, already serialised once for all its sessions.
#[derive(Message, Clone)]
#[rtype(result = "()")]
pub struct AgentPush(pub Arc<str>);

/// One open session: its id and where to push frames.
type SessionEntry = (u64, Recipient<AgentPush>);

/// Agent id -> open sessions.
#[derive(Clone, Default)]
pub struct AgentRegistry {
    inner: Arc<RwLock<HashMap<String, Vec<SessionEntry>>>>,
}

impl AgentRegistry {
    pub fn add(&self, agent_id: &str, session_id: u64, to: Recipient<AgentPush>) {
        self.inner
            .write()
            .entry(agent_id.to_string())
            .or_default()
            .push((session_id, to));
    }

    /// Removes a session; returns how many the agent still has.
    pub fn remove(&self, agent_id: &str, session_id: u64) -> usize {
        let mut map = self.inner.write();
        let left = match map.get_mut(agent_id) {
            Some(list) => {
                list.retain(|(id, _)| *id != session_id);
                list.len()
            }
            None => 0,
        };
        if left == 0 {
            map.remove(agent_id);
        }
        left
    }

    pub fn session_count(&self, agent_id: &str) -> usize {
        self.inner.read().get(agent_id).map_or(0, Vec::len)
    }

    /// Sends a frame to one session of the agent; false when it is not connected.
    pub fn push_to_session(&self, agent_id: &str, session_id: u64, frame: &ServerFrame) -> bool {
        let Ok(text) = serde_json::to_string(frame) else {
            return false;
        };
        let map = self.inner.read();
        match map
            .get(agent_id)
            .and_then(|l| l.iter().find(|(id, _)| *id == session_id))
        {
            Some((_, r)) => {
                r.do_send(AgentPush(text.into()));
                true
            }
            None => false,
        }
    }

    /// Sends a frame to every session of the agent; false when none is connected.
    pub fn push(&self, agent_id: &str, frame: &ServerFrame) -> bool {
        let Ok(text) = serde_json::to_string(frame) else {
            return false;
        };
        let text: Arc<str> = text.into();
        let map = self.inner.read();
        let Some(list) = map.get(agent_id) else {
            return false;
        };
        for (_, r) in list {
            r.do_send(AgentPush(text.clone()));
        }
        !list.is_empty()
    }
}
