//! Supervisors: agents with the supervisor role see their teams' queues, agents' load and
//! SLA state live (an `overview` frame, pushed when something changes), hear of breaches,
//! and may assign or transfer any conversation of their teams.

use std::time::Instant;

use actix::prelude::*;
use serde::Serialize;

use super::{QueuedView, Refusal, Router, RouterError};
use crate::agents::protocol::{Presence, ServerFrame, TransferTarget};
use crate::conversation::{AgentAction, AgentRequest, send_to};
use crate::model::SlaTimer;

/// One team as a supervisor sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TeamOverview {
    pub name: String,
    pub queued: usize,
    /// How long the longest-waiting conversation has waited, in milliseconds.
    pub oldest_wait_ms: u64,
    pub agents_online: usize,
    /// Within business hours now (teams without hours are always open).
    pub open: bool,
    /// When a closed team opens again, for people.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_open: Option<String>,
    /// Conversations of the team with a breached SLA timer.
    pub sla_breached: usize,
}

/// A conversation an agent holds, with its SLA state.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HeldView {
    pub conversation_id: String,
    pub team: String,
    /// The customer, read from the store.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contact: Option<handoffd_channels::Contact>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sla: Vec<SlaTimer>,
}

/// One agent's presence and load.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgentOverview {
    pub id: String,
    pub name: String,
    pub teams: Vec<String>,
    pub presence: Presence,
    /// Has an open session.
    pub connected: bool,
    /// Capacity in use, in conversations (channel weights applied).
    pub load: f64,
    pub capacity: u32,
    pub conversations: Vec<HeldView>,
}

/// Everything a supervisor watches, limited to their teams.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Overview {
    /// The daemon's clock, so SLA deadlines can be shown as time left.
    pub now_ms: u64,
    pub teams: Vec<TeamOverview>,
    pub agents: Vec<AgentOverview>,
    pub queue: Vec<QueuedView>,
}

/// How many waiting conversations an overview lists (the counts cover them all).
const OVERVIEW_QUEUE_LEN: usize = 200;

impl Router {
    /// Whether `agent_id` is a supervisor of `team` (of every team when in none).
    fn supervises(&self, agent_id: &str, team: &str) -> bool {
        self.core.agent(agent_id).is_some_and(|a| {
            a.record.supervisor
                && (a.record.teams.is_empty() || a.record.teams.iter().any(|t| t == team))
        })
    }

    /// The connected supervisors of a team.
    pub(super) fn supervisors_of(&self, team: &str) -> Vec<String> {
        self.core
            .agents()
            .filter(|a| a.sessions > 0)
            .map(|a| a.record.id.clone())
            .filter(|id| self.supervises(id, team))
            .collect()
    }

    fn sla_of(&self, conversation_id: &str) -> Vec<SlaTimer> {
        self.sla
            .clock(conversation_id)
            .map(|c| c.timers.clone())
            .unwrap_or_default()
    }

    /// The overview for one supervisor.
    fn overview_for(&self, supervisor_id: &str) -> Option<Overview> {
        let me = self.core.agent(supervisor_id)?;
        if !me.record.supervisor {
            return None;
        }
        let now_ms = self.clock.now_ms();
        let mine = |team: &str| self.supervises(supervisor_id, team);
        let mut queue: Vec<QueuedView> = self
            .queue_view(None)
            .into_iter()
            .filter(|q| mine(&q.team))
            .collect();
        let mut teams = self.team_overviews(&queue, now_ms, &mine);
        teams.sort_by(|a, b| a.name.cmp(&b.name));
        // The counts above cover the whole queue; the list shows its head, with names.
        queue.truncate(OVERVIEW_QUEUE_LEN);
        for q in &mut queue {
            q.sla = self.sla_of(&q.conversation_id);
            if let Ok(Some(r)) = self.store.conversation(&q.conversation_id) {
                q.contact = Some(r.contact);
            }
        }
        let mut agents: Vec<AgentOverview> = self
            .core
            .agents()
            .filter(|a| a.record.teams.iter().any(|t| mine(t)))
            .map(|a| {
                let mut conversations: Vec<HeldView> = a
                    .assigned()
                    .iter()
                    .map(|(cid, slot)| HeldView {
                        conversation_id: cid.clone(),
                        team: slot.team.clone(),
                        contact: self
                            .store
                            .conversation(cid)
                            .ok()
                            .flatten()
                            .map(|r| r.contact),
                        sla: self.sla_of(cid),
                    })
                    .collect();
                conversations.sort_by(|x, y| x.conversation_id.cmp(&y.conversation_id));
                AgentOverview {
                    id: a.record.id.clone(),
                    name: a.record.display_name.clone(),
                    teams: a.record.teams.clone(),
                    presence: a.presence,
                    connected: a.sessions > 0,
                    load: f64::from(a.load()) / f64::from(super::UNIT),
                    capacity: a.record.capacity,
                    conversations,
                }
            })
            .collect();
        agents.sort_by(|a, b| a.id.cmp(&b.id));
        Some(Overview {
            now_ms,
            teams,
            agents,
            queue,
        })
    }

    fn team_overviews(
        &self,
        queue: &[QueuedView],
        now_ms: u64,
        mine: &dyn Fn(&str) -> bool,
    ) -> Vec<TeamOverview> {
        self.settings
            .teams
            .keys()
            .filter(|t| mine(t))
            .map(|t| {
                let waiting: Vec<&QueuedView> = queue.iter().filter(|q| q.team == *t).collect();
                let calendar = self.sla.calendar(t);
                let open = calendar.is_none_or(|c| c.is_open(now_ms));
                TeamOverview {
                    name: t.clone(),
                    queued: waiting.len(),
                    oldest_wait_ms: waiting
                        .iter()
                        .map(|q| now_ms.saturating_sub(q.enqueued_at_ms))
                        .max()
                        .unwrap_or(0),
                    agents_online: self
                        .core
                        .agents()
                        .filter(|a| {
                            a.sessions > 0
                                && a.presence == Presence::Online
                                && a.record.teams.contains(t)
                        })
                        .count(),
                    open,
                    next_open: if open {
                        None
                    } else {
                        calendar.and_then(|c| c.describe_next_open(now_ms))
                    },
                    sla_breached: self
                        .sla
                        .clocks()
                        .filter(|c| {
                            c.team == *t && c.timers.iter().any(|x| x.breached_at_ms.is_some())
                        })
                        .count(),
                }
            })
            .collect()
    }

    /// Sends connected supervisors a fresh overview when something changed.
    pub(super) fn push_overviews(&mut self) {
        if !self.overview_dirty {
            return;
        }
        self.overview_dirty = false;
        let supervisors: Vec<String> = self
            .core
            .agents()
            .filter(|a| a.record.supervisor && a.sessions > 0)
            .map(|a| a.record.id.clone())
            .collect();
        for id in supervisors {
            if let Some(o) = self.overview_for(&id) {
                self.registry.push(&id, &ServerFrame::Overview(Box::new(o)));
            }
        }
    }

    /// The team of a conversation the router knows (waiting or held).
    fn team_of(&self, conversation_id: &str) -> Option<String> {
        if let Some(e) = self.core.queued_entry(conversation_id) {
            return Some(e.team.clone());
        }
        let holder = self.core.holder_of(conversation_id)?;
        self.core
            .agent(holder)?
            .assigned()
            .get(conversation_id)
            .map(|s| s.team.clone())
    }
}

/// A supervisor asks for their overview.
#[derive(Message)]
#[rtype(result = "Result<Overview, RouterError>")]
pub struct GetOverview {
    pub supervisor_id: String,
}

impl Handler<GetOverview> for Router {
    type Result = Result<Overview, RouterError>;

    fn handle(&mut self, msg: GetOverview, _ctx: &mut Self::Context) -> Self::Result {
        self.overview_for(&msg.supervisor_id)
            .ok_or_else(|| RouterError::Forbidden("only supervisors see the overview".into()))
    }
}

/// A supervisor puts a waiting conversation with an agent of their choice.
#[derive(Message)]
#[rtype(result = "Result<(), RouterError>")]
pub struct SupervisorAssign {
    pub supervisor_id: String,
    pub conversation_id: String,
    pub agent_id: String,
}

impl Handler<SupervisorAssign> for Router {
    type Result = ResponseActFuture<Self, Result<(), RouterError>>;

    fn handle(&mut self, msg: SupervisorAssign, ctx: &mut Self::Context) -> Self::Result {
        let cid = msg.conversation_id;
        let refuse = |e| -> Self::Result { Box::pin(fut::ready(Err(e))) };
        let Some(team) = self.core.queued_entry(&cid).map(|e| e.team.clone()) else {
            return refuse(RouterError::NotQueued(cid));
        };
        if !self.supervises(&msg.supervisor_id, &team) {
            return refuse(RouterError::Forbidden(format!(
                "you do not supervise team {team}"
            )));
        }
        if self.core.agent(&msg.agent_id).is_none() {
            return refuse(RouterError::UnknownAgent);
        }
        if self.core.is_accepting(&cid) {
            return refuse(RouterError::NotQueued(cid));
        }
        self.withdraw(&cid, "assigned by a supervisor", ctx);
        match self
            .core
            .assign_by_supervisor(&msg.agent_id, &cid, Instant::now())
        {
            Ok(entry) => self.assign(msg.agent_id, entry),
            Err(r) => {
                let e = match r {
                    Refusal::UnknownAgent => RouterError::UnknownAgent,
                    Refusal::NotEligible => RouterError::AgentFull(msg.agent_id),
                    _ => RouterError::NotQueued(cid),
                };
                self.dispatch(ctx);
                refuse(e)
            }
        }
    }
}

/// A supervisor transfers any conversation of their teams, held or waiting.
#[derive(Message)]
#[rtype(result = "Result<(), RouterError>")]
pub struct SupervisorTransfer {
    pub supervisor_id: String,
    pub supervisor_name: String,
    pub conversation_id: String,
    pub to: TransferTarget,
    pub note: Option<String>,
}

impl Handler<SupervisorTransfer> for Router {
    type Result = ResponseActFuture<Self, Result<(), RouterError>>;

    fn handle(&mut self, msg: SupervisorTransfer, ctx: &mut Self::Context) -> Self::Result {
        let cid = msg.conversation_id.clone();
        let refuse = |e| -> Self::Result { Box::pin(fut::ready(Err(e))) };
        let Some(team) = self.team_of(&cid) else {
            return refuse(RouterError::NotQueued(cid));
        };
        if !self.supervises(&msg.supervisor_id, &team) {
            return refuse(RouterError::Forbidden(format!(
                "you do not supervise team {team}"
            )));
        }
        let by = format!("{} (supervisor)", msg.supervisor_name);
        if let Some(holder) = self.core.holder_of(&cid).map(str::to_string) {
            // The holder's conversation actor does the transfer as for the agent, so the
            // package, the note and the release work the same way.
            let directory = self.directory.clone();
            let req = AgentRequest {
                agent_id: holder,
                agent_name: by,
                action: AgentAction::Transfer {
                    to: msg.to,
                    note: msg.note,
                },
            };
            return Box::pin(
                async move { send_to(&directory, &cid, req).await }
                    .into_actor(self)
                    .map(|res, _, _| {
                        res.and_then(|r| r)
                            .map(|_| ())
                            .map_err(RouterError::Conversation)
                    }),
            );
        }
        if self.core.is_accepting(&cid) {
            return refuse(RouterError::NotQueued(cid));
        }
        self.withdraw(&cid, "transferred by a supervisor", ctx);
        let Some(old) = self.core.remove_queued(&cid) else {
            return refuse(RouterError::NotQueued(cid));
        };
        let mut entry = old.clone();
        let label = match &msg.to {
            TransferTarget::Team(t) => {
                entry.team = t.clone();
                entry.skills.clear();
                entry.only_agent = None;
                format!("team {t}")
            }
            TransferTarget::Agent(a) => {
                entry.only_agent = Some(a.clone());
                format!("agent {a}")
            }
        };
        let mut note = format!("Transferred by {by} to {label}");
        if let Some(n) = msg.note.filter(|n| !n.trim().is_empty()) {
            note.push_str(&format!(": {n}"));
        }
        Box::pin(
            self.update_queued(old, entry, note)
                .map(|res, _, _| res.map_err(RouterError::Conversation)),
        )
    }
}
