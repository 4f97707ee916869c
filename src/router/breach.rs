//! The router's side of SLAs: feeding the clocks what happens, persisting them, sweeping for
//! passed deadlines and carrying out each breach's configured actions.

use std::time::Instant;

use actix::fut::LocalBoxActorFuture;
use actix::prelude::*;

use super::Router;
use super::sla::{Breach, BreachAction};
use crate::agents::protocol::ServerFrame;
use crate::conversation::{ConversationError, PostNotice, Requeue, UpdateQueued, send_to};
use crate::metrics::METRICS;
use crate::model::{QueueEntry, SlaClock, SlaTarget};
use crate::store::Op;

/// What a conversation tells the router for its SLA clock.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub enum SlaSignal {
    /// The agent holding it answered the customer.
    AgentReplied(String),
    /// The customer wrote while an agent holds it.
    CustomerWrote(String),
}

impl Handler<SlaSignal> for Router {
    type Result = ();

    fn handle(&mut self, msg: SlaSignal, _ctx: &mut Self::Context) {
        let now_ms = self.clock.now_ms();
        let changed = match &msg {
            SlaSignal::AgentReplied(cid) => self.sla.agent_replied(cid, now_ms),
            SlaSignal::CustomerWrote(cid) => self.sla.customer_wrote(cid, now_ms),
        };
        if let Some(c) = changed {
            self.persist_sla(vec![c], Vec::new());
            self.overview_dirty = true;
        }
    }
}

/// Checks the SLA deadlines now (the clock was moved); answered once the breaches found
/// have been acted on as far as the router itself goes (conversations confirm after).
#[derive(Message)]
#[rtype(result = "usize")]
pub struct SweepSla;

impl Handler<SweepSla> for Router {
    type Result = usize;

    fn handle(&mut self, _msg: SweepSla, ctx: &mut Self::Context) -> usize {
        let n = self.sweep_sla(ctx);
        if self.age_queue() {
            self.dispatch(ctx);
        }
        n
    }
}

impl Router {
    /// Writes changed clocks and deletes ended ones, in the order the changes were made
    /// (the writer keeps submission order), without waiting for the disk.
    pub(super) fn persist_sla(&self, put: Vec<SlaClock>, delete: Vec<String>) {
        let mut ops: Vec<Op> = put
            .into_iter()
            .map(|c| Op::PutSlaClock(Box::new(c)))
            .collect();
        ops.extend(delete.into_iter().map(Op::DeleteSlaClock));
        match self.store.submit(ops) {
            Ok(done) => {
                actix::spawn(async move {
                    if let Err(e) = done.await {
                        tracing::error!(error = %e, "SLA clock not saved");
                    }
                });
            }
            Err(e) => tracing::error!(error = %e, "SLA clock not saved"),
        }
    }

    /// The conversation left people (closed, or back to the bot): its clock ends.
    pub(super) fn stop_sla(&mut self, conversation_id: &str) {
        if self.sla.closed(conversation_id) {
            self.persist_sla(Vec::new(), vec![conversation_id.to_string()]);
            self.overview_dirty = true;
        }
    }

    /// Tells a customer something on the router's behalf.
    pub(super) fn post_notice(&self, conversation_id: &str, text: String, ctx: &mut Context<Self>) {
        if text.trim().is_empty() {
            return;
        }
        let directory = self.directory.clone();
        let cid = conversation_id.to_string();
        async move { send_to(&directory, &cid, PostNotice { text }).await }
            .into_actor(self)
            .map(|res, _, _| {
                if let Err(e) = res.and_then(|r| r) {
                    tracing::warn!(error = %e, "notice not posted");
                }
            })
            .spawn(ctx);
    }

    /// Finds the deadlines that passed and acts on them; returns how many there were.
    pub(super) fn sweep_sla(&mut self, ctx: &mut Context<Self>) -> usize {
        let (breaches, changed) = self.sla.sweep(self.clock.now_ms());
        if changed.is_empty() {
            return 0;
        }
        self.persist_sla(changed, Vec::new());
        let n = breaches.len();
        for b in breaches {
            self.on_breach(b, ctx);
        }
        self.overview_dirty = true;
        n
    }

    fn on_breach(&mut self, b: Breach, ctx: &mut Context<Self>) {
        METRICS
            .sla_breaches
            .inc(&[("team", &b.team), ("target", b.target.as_str())]);
        let actions: Vec<BreachAction> = self
            .sla
            .policy(&b.policy)
            .map(|p| p.actions(b.target).to_vec())
            .unwrap_or_default();
        let holder = self.core.holder_of(&b.conversation_id).map(str::to_string);
        tracing::warn!(
            conversation = %b.conversation_id,
            team = %b.team,
            target = b.target.as_str(),
            agent = holder.as_deref().unwrap_or("-"),
            "SLA breached"
        );
        if actions.contains(&BreachAction::NotifySupervisors) {
            let frame = ServerFrame::SlaBreach {
                conversation_id: b.conversation_id.clone(),
                team: b.team.clone(),
                target: b.target,
                policy: b.policy.clone(),
                due_at_ms: b.due_at_ms,
                breached_at_ms: b.breached_at_ms,
                agent_id: holder.clone(),
                actions: actions.iter().map(action_name).collect(),
            };
            for id in self.supervisors_of(&b.team) {
                self.registry.push(&id, &frame);
            }
        }
        let raise = actions.contains(&BreachAction::RaisePriority);
        let reassign = actions.contains(&BreachAction::Reassign);
        let overflow = actions.iter().find_map(|a| match a {
            BreachAction::Overflow(t) => Some(t.clone()),
            _ => None,
        });
        match holder {
            // Held by an agent who did not answer in time: back to the queue, in its
            // original place, and to someone else.
            Some(agent) if reassign && b.target != SlaTarget::Resolution => {
                self.take_back(&agent, &b, raise, ctx);
            }
            Some(_) => {}
            None if self.core.queued_entry(&b.conversation_id).is_some() => {
                if reassign
                    && let Some(offer) = self.core.offer_of(&b.conversation_id).cloned()
                    && let Some(agent) =
                        self.core
                            .expire(&b.conversation_id, offer.id, Instant::now())
                {
                    if let Some(t) = self.timers.remove(&offer.id) {
                        ctx.cancel_future(t);
                    }
                    self.registry.push(
                        &agent,
                        &ServerFrame::OfferWithdrawn {
                            conversation_id: b.conversation_id.clone(),
                            reason: "sla_breach".into(),
                        },
                    );
                }
                if raise || overflow.is_some() {
                    let what = match (&overflow, raise) {
                        (Some(t), true) => format!("moved to team {t} with a higher priority"),
                        (Some(t), false) => format!("moved to team {t}"),
                        _ => "priority raised".to_string(),
                    };
                    let note = format!(
                        "SLA {} breached (policy {}): {what}",
                        b.target.as_str().replace('_', " "),
                        b.policy
                    );
                    self.change_queued(&b.conversation_id, raise, overflow, note, ctx);
                }
            }
            None => {}
        }
        self.dispatch(ctx);
    }

    /// Moves a waiting conversation up a priority level and/or to another team. It leaves
    /// the queue while its actor records the change, so nobody is offered it meanwhile.
    fn change_queued(
        &mut self,
        conversation_id: &str,
        raise: bool,
        team: Option<String>,
        note: String,
        ctx: &mut Context<Self>,
    ) {
        if self.core.is_accepting(conversation_id) {
            return;
        }
        self.withdraw(conversation_id, "sla_breach", ctx);
        let Some(old) = self.core.remove_queued(conversation_id) else {
            return;
        };
        let mut entry = old.clone();
        if raise {
            entry.priority = raised(entry.priority);
        }
        if let Some(t) = team {
            // Another team's agents: the old route's skills no longer apply.
            entry.team = t;
            entry.skills.clear();
            entry.only_agent = None;
        }
        let change = self.update_queued(old, entry, note);
        ctx.spawn(change.map(|_, _, _| ()));
    }

    /// Has the conversation actor record a changed queue entry, then queues it again (the
    /// old one if the change failed for any reason but the conversation no longer waiting).
    /// Resolves with the actor's answer once the queue holds the outcome.
    pub(super) fn update_queued(
        &mut self,
        old: QueueEntry,
        entry: QueueEntry,
        note: String,
    ) -> LocalBoxActorFuture<Self, Result<(), ConversationError>> {
        let directory = self.directory.clone();
        let cid = entry.conversation_id.clone();
        let msg = UpdateQueued {
            entry: entry.clone(),
            note,
        };
        async move { send_to(&directory, &cid, msg).await }
            .into_actor(self)
            .map(move |res, act, ctx| {
                let res = res.and_then(|r| r);
                match &res {
                    Ok(()) => {
                        let now_ms = act.clock.now_ms();
                        if let Some(c) =
                            act.sla
                                .enqueued(&entry.conversation_id, &entry.team, entry.priority, now_ms)
                        {
                            act.persist_sla(vec![c], Vec::new());
                        }
                        act.core.enqueue(entry);
                    }
                    Err(ConversationError::NotQueued) => {}
                    Err(e) => {
                        tracing::warn!(conversation = %old.conversation_id, error = %e, "queue entry not changed");
                        act.core.enqueue(old);
                    }
                }
                act.dispatch(ctx);
                res
            })
            .boxed_local()
    }

    /// Takes a conversation back from an agent who missed its response deadline.
    fn take_back(&mut self, agent_id: &str, b: &Breach, raise: bool, ctx: &mut Context<Self>) {
        let priority = raise
            .then(|| {
                self.store
                    .conversation(&b.conversation_id)
                    .ok()
                    .flatten()
                    .and_then(|r| r.escalation.map(|e| raised(e.priority)))
            })
            .flatten();
        let msg = Requeue {
            agent_id: agent_id.to_string(),
            reason: format!(
                "SLA {} breached (policy {})",
                b.target.as_str().replace('_', " "),
                b.policy
            ),
            priority,
        };
        let directory = self.directory.clone();
        let cid = b.conversation_id.clone();
        let target = cid.clone();
        let agent = agent_id.to_string();
        async move { send_to(&directory, &target, msg).await }
            .into_actor(self)
            .map(move |res, act, ctx| {
                match res {
                    Ok(Ok(entry)) => {
                        act.core.release_from_all(&cid);
                        act.core.cool_down(&agent, &cid, Instant::now());
                        act.registry.push(
                            &agent,
                            &ServerFrame::Released {
                                conversation_id: cid.clone(),
                                reason: "sla_breach".into(),
                            },
                        );
                        // The next agent owes the customer a first answer of their own.
                        let now_ms = act.clock.now_ms();
                        if let Some(c) = act.sla.restart_first_response(&cid, now_ms) {
                            act.persist_sla(vec![c], Vec::new());
                        }
                        act.core.enqueue(entry);
                    }
                    Ok(Err(e)) | Err(e) => {
                        tracing::debug!(conversation = %cid, error = %e, "not taken back")
                    }
                }
                act.dispatch(ctx);
            })
            .spawn(ctx);
    }
}

/// One priority level up, at most urgent (3).
fn raised(priority: u8) -> u8 {
    priority.saturating_add(1).min(3)
}

/// The config name of an action, for frames.
fn action_name(a: &BreachAction) -> String {
    match a {
        BreachAction::RaisePriority => "raise_priority".into(),
        BreachAction::Reassign => "reassign".into(),
        BreachAction::NotifySupervisors => "notify_supervisors".into(),
        BreachAction::Overflow(t) => format!("overflow:{t}"),
    }
}
