//! When nobody can answer: a team outside its business hours, or with nobody online. Each
//! team says what happens then (`when_closed`, `when_no_agent`): the customer waits in the
//! queue and is told so, or the conversation goes back to the bot. Checked when a
//! conversation joins the queue, and again when a team's last agent has been gone for the
//! grace period.

use std::collections::HashSet;

use actix::prelude::*;

use super::{NoAgentFallback, Router};
use crate::conversation::{OfferFollowUp, send_to};

/// Why nobody can answer a team's customers now.
enum Unavailable {
    /// Outside business hours; when the team is back, for people.
    Closed { back: String },
    /// Within hours, but no agent of the team is online.
    NobodyOnline,
}

impl Router {
    fn unavailable(&self, team: &str) -> Option<Unavailable> {
        let now_ms = self.clock.now_ms();
        if let Some(calendar) = self.sla.calendar(team)
            && !calendar.is_open(now_ms)
        {
            let back = calendar
                .describe_next_open(now_ms)
                .unwrap_or_else(|| "later".into());
            return Some(Unavailable::Closed { back });
        }
        (!self.core.team_online(team)).then_some(Unavailable::NobodyOnline)
    }

    /// Applies the team's fallback to a waiting conversation if nobody can answer it now.
    /// Returns true when the conversation left the queue (back to the bot).
    pub(super) fn unavailable_fallback(
        &mut self,
        conversation_id: &str,
        team: &str,
        ctx: &mut Context<Self>,
    ) -> bool {
        let Some(why) = self.unavailable(team) else {
            return false;
        };
        let policy = self.settings.teams.get(team).cloned().unwrap_or_default();
        let (fallback, message, reason) = match why {
            Unavailable::Closed { back } => {
                let (fallback, template) = self
                    .settings
                    .when_closed
                    .get(team)
                    .cloned()
                    .unwrap_or_else(|| (NoAgentFallback::Queue, String::new()));
                (
                    fallback,
                    template.replace("{next_open}", &back),
                    format!("team {team} is outside its business hours"),
                )
            }
            Unavailable::NobodyOnline => {
                let message = match policy.when_no_agent {
                    NoAgentFallback::Bot => self.settings.no_agent_message.clone(),
                    // The email follow-up has its own wording (`router.follow_up`).
                    NoAgentFallback::Queue | NoAgentFallback::Email => {
                        self.settings.offline_message.clone()
                    }
                };
                (
                    policy.when_no_agent,
                    message,
                    format!("no agent of team {team} is online"),
                )
            }
        };
        match fallback {
            NoAgentFallback::Bot => {
                self.return_to_bot(conversation_id.to_string(), reason, message, ctx);
                true
            }
            NoAgentFallback::Queue => {
                if self.told_unavailable.insert(conversation_id.to_string()) {
                    self.post_notice(conversation_id, message, ctx);
                }
                false
            }
            NoAgentFallback::Email => {
                self.offer_follow_up(conversation_id, ctx);
                false
            }
        }
    }

    /// Has a waiting conversation offer the customer a reply by email (once per wait).
    pub(super) fn offer_follow_up(&mut self, conversation_id: &str, ctx: &mut Context<Self>) {
        if !self.told_unavailable.insert(conversation_id.to_string()) {
            return;
        }
        let directory = self.directory.clone();
        let cid = conversation_id.to_string();
        async move { send_to(&directory, &cid, OfferFollowUp).await }
            .into_actor(self)
            .map(|res, _, _| {
                if let Err(e) = res.and_then(|r| r) {
                    tracing::debug!(error = %e, "no email follow-up offered");
                }
            })
            .spawn(ctx);
    }

    /// After the grace period, checks the teams an agent left (disconnected, or no longer
    /// online): a team with nobody online applies its fallback to its waiting conversations.
    pub(super) fn schedule_team_check(&mut self, teams: Vec<String>, ctx: &mut Context<Self>) {
        ctx.run_later(self.settings.requeue_after_disconnect, move |act, ctx| {
            let mut left = false;
            for team in &teams {
                if act.core.team_online(team) {
                    continue;
                }
                let waiting: Vec<String> = act
                    .core
                    .queue()
                    .filter(|e| e.team == *team && e.only_agent.is_none())
                    .map(|e| e.conversation_id.clone())
                    .filter(|cid| act.core.waiting_unoffered(cid))
                    .collect();
                for cid in waiting {
                    left |= act.unavailable_fallback(&cid, team, ctx);
                }
            }
            if left {
                act.dispatch(ctx);
            }
        });
    }

    /// Forgets who was told what once they stop waiting.
    pub(super) fn forget_told(&mut self, waiting: &HashSet<&String>) {
        self.told_unavailable.retain(|id| waiting.contains(id));
        self.base_priority.retain(|id, _| waiting.contains(id));
    }

    /// Raises the priority of conversations that waited long, in teams that ask for it:
    /// one level per `raise_priority_every` waited, from the priority they were queued
    /// with, up to urgent. Returns whether the queue order changed.
    pub(super) fn age_queue(&mut self) -> bool {
        let now_ms = self.clock.now_ms();
        let due: Vec<(String, u8, u64, u64)> = self
            .core
            .queue()
            .filter_map(|e| {
                let every = self.settings.teams.get(&e.team)?.raise_priority_every?;
                Some((
                    e.conversation_id.clone(),
                    e.priority,
                    e.enqueued_at_ms,
                    (every.as_millis() as u64).max(1),
                ))
            })
            .collect();
        let mut changed = false;
        for (cid, current, enqueued_at_ms, every_ms) in due {
            let base = *self.base_priority.entry(cid.clone()).or_insert(current);
            let steps = now_ms.saturating_sub(enqueued_at_ms) / every_ms;
            let aged = u64::from(base).saturating_add(steps).min(3) as u8;
            if aged > current {
                changed |= self.core.set_priority(&cid, aged);
            }
        }
        changed
    }
}
