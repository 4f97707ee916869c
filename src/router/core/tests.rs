//! Property tests: random sequences of everything that can happen to the router, with the
//! invariants checked after every step.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::strategy::Strategy;

use super::*;
use crate::model::{AgentRecord, QueueEntry};
use crate::router::state::{ChannelWeights, Strategy as Assign, TeamPolicy, UNIT};
use handoffd_channels::ChannelKind;

const TEAMS: [&str; 2] = ["support", "billing"];

fn agent(id: &str, teams: &[&str], capacity: u32) -> AgentRecord {
    AgentRecord {
        id: id.into(),
        display_name: id.into(),
        teams: teams.iter().map(|t| t.to_string()).collect(),
        capacity,
        token_hash: String::new(),
        created_at_ms: 0,
        skills: Vec::new(),
        languages: Vec::new(),
        supervisor: false,
    }
}

#[derive(Debug, Clone)]
enum Step {
    Escalate {
        team: usize,
        priority: u8,
        email: bool,
    },
    Claim {
        agent: usize,
        pick: usize,
    },
    Connect(usize),
    Disconnect(usize),
    Away(usize, bool),
    Accept {
        pick: usize,
        confirmed: bool,
    },
    Decline(usize),
    Expire(usize),
    Close(usize),
    Requeue(usize),
    /// The holder transfers a conversation: to the other team, or to a named agent.
    Transfer {
        pick: usize,
        to_agent: Option<usize>,
    },
    /// A supervisor puts a waiting conversation with an agent.
    SupervisorAssign {
        pick: usize,
        agent: usize,
    },
    /// An SLA breach or waiting time raises a waiting conversation's priority.
    Raise(usize),
    /// An SLA breach takes a held conversation back from its agent.
    TakeBack(usize),
    Wait(u64),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0..2usize, 0..4u8, any::<bool>())
            .prop_map(|(team, priority, email)| Step::Escalate { team, priority, email }),
        2 => (0..4usize, 0..8usize).prop_map(|(agent, pick)| Step::Claim { agent, pick }),
        2 => (0..4usize).prop_map(Step::Connect),
        1 => (0..4usize).prop_map(Step::Disconnect),
        1 => (0..4usize, any::<bool>()).prop_map(|(a, away)| Step::Away(a, away)),
        4 => (0..8usize, prop::bool::weighted(0.9))
            .prop_map(|(pick, confirmed)| Step::Accept { pick, confirmed }),
        1 => (0..8usize).prop_map(Step::Decline),
        1 => (0..8usize).prop_map(Step::Expire),
        3 => (0..8usize).prop_map(Step::Close),
        1 => (0..4usize).prop_map(Step::Requeue),
        2 => (0..8usize, prop::option::of(0..4usize))
            .prop_map(|(pick, to_agent)| Step::Transfer { pick, to_agent }),
        1 => (0..8usize, 0..4usize).prop_map(|(pick, agent)| Step::SupervisorAssign { pick, agent }),
        1 => (0..8usize).prop_map(Step::Raise),
        1 => (0..8usize).prop_map(Step::TakeBack),
        1 => (1..400u64).prop_map(Step::Wait),
    ]
}

/// What the test knows besides the core: the original queue entry of each held
/// conversation, the explicit declines, the offers each dispatch made.
struct World {
    core: RouterCore,
    now: Instant,
    ticket: u64,
    /// Transfers made: they take tickets of their own.
    transfers: u64,
    ids: Vec<String>,
    held: Vec<(String, String, QueueEntry)>,
    closed: HashSet<String>,
    declined: HashSet<(String, String)>,
}

/// How the teams are set up for one run: strategies, the billing team's limit, and whether
/// emails weigh half a chat.
#[derive(Debug, Clone)]
struct Setup {
    support: Assign,
    billing: Assign,
    billing_max_open: Option<u32>,
    light_email: bool,
}

fn setup() -> impl Strategy<Value = Setup> {
    let strategy = || {
        prop_oneof![
            Just(Assign::Balanced),
            Just(Assign::RoundRobin),
            Just(Assign::Manual)
        ]
    };
    (
        strategy(),
        strategy(),
        prop::option::of(1..4u32),
        any::<bool>(),
    )
        .prop_map(|(support, billing, billing_max_open, light_email)| Setup {
            support,
            billing,
            billing_max_open,
            light_email,
        })
}

impl World {
    fn with(setup: &Setup) -> World {
        let mut core = RouterCore::new(Duration::from_secs(30), Duration::from_secs(300));
        core.set_teams(
            [
                (
                    "support".to_string(),
                    TeamPolicy {
                        strategy: setup.support,
                        max_open: None,
                        ..TeamPolicy::default()
                    },
                ),
                (
                    "billing".to_string(),
                    TeamPolicy {
                        strategy: setup.billing,
                        max_open: setup.billing_max_open,
                        ..TeamPolicy::default()
                    },
                ),
            ]
            .into_iter()
            .collect(),
        );
        if setup.light_email {
            core.set_channel_weights(ChannelWeights(
                [(ChannelKind::Email, UNIT / 2)].into_iter().collect(),
            ));
        }
        core.upsert_agent(agent("a0", &["support"], 1));
        core.upsert_agent(agent("a1", &["support", "billing"], 2));
        core.upsert_agent(agent("a2", &["billing"], 3));
        core.upsert_agent(agent("a3", &["support"], 1));
        World {
            core,
            now: Instant::now(),
            ticket: 0,
            transfers: 0,
            ids: ["a0", "a1", "a2", "a3"].map(String::from).to_vec(),
            held: Vec::new(),
            closed: HashSet::new(),
            declined: HashSet::new(),
        }
    }

    fn open_offers(&self) -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = self
            .core
            .queue()
            .filter_map(|e| {
                self.core
                    .offer_of(&e.conversation_id)
                    .map(|o| (e.conversation_id.clone(), o.agent_id.clone()))
            })
            .collect();
        v.sort();
        v
    }

    fn apply(&mut self, s: &Step) {
        match s {
            Step::Escalate {
                team,
                priority,
                email,
            } => {
                self.ticket += 1;
                self.core.enqueue(QueueEntry {
                    conversation_id: format!("c{}", self.ticket),
                    team: TEAMS[*team].into(),
                    priority: *priority,
                    enqueued_at_ms: self.ticket,
                    ticket: self.ticket,
                    only_agent: None,
                    preferred_agent: None,
                    skills: Vec::new(),
                    language: None,
                    channel: Some(if *email {
                        ChannelKind::Email
                    } else {
                        ChannelKind::Widget
                    }),
                });
            }
            Step::Claim { agent, pick } => {
                let waiting: Vec<String> = self
                    .core
                    .queue()
                    .map(|e| e.conversation_id.clone())
                    .collect();
                if waiting.is_empty() {
                    return;
                }
                let c = waiting[pick % waiting.len()].clone();
                let a = self.ids[*agent].clone();
                if let Ok(entry) = self.core.claim(&a, &c, self.now) {
                    self.core.check_invariants().expect("while claiming");
                    self.core.finish_accept(&a, &c, true, false);
                    self.held.push((c, a, entry));
                }
            }
            Step::Connect(a) => {
                let id = &self.ids[*a];
                let n = self.core.agent(id).map_or(0, |s| s.sessions);
                self.core.set_sessions(id, n + 1);
            }
            Step::Disconnect(a) => {
                let id = self.ids[*a].clone();
                self.core.set_sessions(&id, 0);
                let offered: Vec<String> = self
                    .core
                    .agent(&id)
                    .map(|s| s.offered().keys().cloned().collect())
                    .unwrap_or_default();
                for c in offered {
                    self.core.withdraw(&c);
                }
            }
            Step::Away(a, away) => {
                let id = self.ids[*a].clone();
                let p = if *away {
                    Presence::Away
                } else {
                    Presence::Online
                };
                self.core.set_presence(&id, p);
                if *away {
                    let offered: Vec<String> = self
                        .core
                        .agent(&id)
                        .map(|s| s.offered().keys().cloned().collect())
                        .unwrap_or_default();
                    for c in offered {
                        self.core.withdraw(&c);
                    }
                }
            }
            Step::Accept { pick, confirmed } => {
                let offers = self.open_offers();
                if offers.is_empty() {
                    return;
                }
                let (c, a) = offers[pick % offers.len()].clone();
                // Someone else cannot take it.
                let other = self
                    .ids
                    .iter()
                    .find(|id| **id != a)
                    .cloned()
                    .unwrap_or_default();
                assert_eq!(
                    self.core.begin_accept(&other, &c, self.now).err(),
                    Some(Refusal::NoOffer)
                );
                let (entry, _) = self
                    .core
                    .begin_accept(&a, &c, self.now)
                    .expect("open offer");
                self.core.check_invariants().expect("while accepting");
                self.core.finish_accept(&a, &c, *confirmed, false);
                if *confirmed {
                    self.held.push((c, a, entry));
                }
            }
            Step::Decline(pick) => {
                let offers = self.open_offers();
                if offers.is_empty() {
                    return;
                }
                let (c, a) = offers[pick % offers.len()].clone();
                self.core.decline(&a, &c, self.now).expect("open offer");
                self.declined.insert((c, a));
            }
            Step::Expire(pick) => {
                let offers = self.open_offers();
                if offers.is_empty() {
                    return;
                }
                let (c, _) = offers[pick % offers.len()].clone();
                let id = self.core.offer_of(&c).map(|o| o.id).unwrap_or(0);
                assert!(self.core.expire(&c, id, self.now).is_some());
                assert!(self.core.expire(&c, id, self.now).is_none(), "expires once");
            }
            Step::Close(pick) => {
                if self.held.is_empty() {
                    return;
                }
                let (c, a, _) = self.held.remove(pick % self.held.len());
                self.core.release(&a, &c);
                self.closed.insert(c);
            }
            Step::Requeue(a) => {
                let id = self.ids[*a].clone();
                let mine: Vec<usize> = (0..self.held.len())
                    .filter(|i| self.held[*i].1 == id)
                    .collect();
                for i in mine.into_iter().rev() {
                    let (c, _, entry) = self.held.remove(i);
                    self.core.release_from_all(&c);
                    self.core.enqueue(entry);
                }
            }
            Step::Transfer { pick, to_agent } => {
                if self.held.is_empty() {
                    return;
                }
                let (c, a, entry) = self.held.remove(pick % self.held.len());
                // As the conversation does it: released first, then queued anew, so a
                // transfer to a full team waits instead of sticking to the old agent.
                self.core.release(&a, &c);
                // A new place at the back: tickets above every escalation's.
                self.transfers += 1;
                let ticket = 1_000_000 + self.transfers;
                let moved = match to_agent {
                    Some(i) => QueueEntry {
                        only_agent: Some(self.ids[*i].clone()),
                        ticket,
                        ..entry
                    },
                    None => QueueEntry {
                        team: if entry.team == TEAMS[0] {
                            TEAMS[1]
                        } else {
                            TEAMS[0]
                        }
                        .into(),
                        only_agent: None,
                        ticket,
                        ..entry
                    },
                };
                self.core.enqueue(moved);
            }
            Step::SupervisorAssign { pick, agent } => {
                let waiting: Vec<String> = self
                    .core
                    .queue()
                    .map(|e| e.conversation_id.clone())
                    .collect();
                if waiting.is_empty() {
                    return;
                }
                let c = waiting[pick % waiting.len()].clone();
                let a = self.ids[*agent].clone();
                // Any open offer is withdrawn first, as the router does.
                self.core.withdraw(&c);
                let fits = {
                    let e = self.core.queued_entry(&c).cloned();
                    let s = self.core.agent(&a);
                    match (e, s) {
                        (Some(e), Some(s)) => s.fits(self.core.weights.of(&e)),
                        _ => false,
                    }
                };
                match self.core.assign_by_supervisor(&a, &c, self.now) {
                    Ok(entry) => {
                        assert!(fits, "assigned past capacity");
                        self.core.check_invariants().expect("while assigning");
                        self.core.finish_accept(&a, &c, true, false);
                        self.held.push((c, a, entry));
                    }
                    Err(r) => assert!(!fits || r != Refusal::NotEligible, "{r:?}"),
                }
            }
            Step::Raise(pick) => {
                let waiting: Vec<(String, u8)> = self
                    .core
                    .queue()
                    .map(|e| (e.conversation_id.clone(), e.priority))
                    .collect();
                if waiting.is_empty() {
                    return;
                }
                let (c, p) = waiting[pick % waiting.len()].clone();
                let offered = self.core.offer_of(&c).map(|o| o.id);
                assert_eq!(self.core.set_priority(&c, (p + 1).min(3)), p < 3);
                assert_eq!(
                    self.core.offer_of(&c).map(|o| o.id),
                    offered,
                    "the open offer stays"
                );
            }
            Step::TakeBack(pick) => {
                if self.held.is_empty() {
                    return;
                }
                let (c, a, entry) = self.held.remove(pick % self.held.len());
                self.core.release_from_all(&c);
                self.core.cool_down(&a, &c, self.now);
                self.declined.insert((c.clone(), a));
                self.core.enqueue(QueueEntry {
                    only_agent: None,
                    ..entry
                });
            }
            Step::Wait(secs) => self.now += Duration::from_secs(*secs),
        }
    }

    /// After a dispatch nobody who could take a waiting conversation is left idle.
    fn check_liveness(&self) -> Result<(), String> {
        for e in self.core.queue() {
            if self.core.offer_of(&e.conversation_id).is_some() {
                continue;
            }
            if self.core.strategy(&e.team) == Assign::Manual || !self.core.team_has_room(&e.team) {
                continue;
            }
            for a in self.core.agents() {
                let addressed = match &e.only_agent {
                    Some(only) => *only == a.record.id,
                    None => a.record.teams.contains(&e.team),
                };
                let free = a.sessions > 0
                    && a.presence == Presence::Online
                    && a.fits(self.core.weights.of(e))
                    && addressed;
                if free
                    && !self
                        .declined
                        .contains(&(e.conversation_id.clone(), a.record.id.clone()))
                {
                    return Err(format!(
                        "{} waits while {} is free",
                        e.conversation_id, a.record.id
                    ));
                }
            }
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn invariants_hold_for_any_sequence(
        setup in setup(),
        steps in prop::collection::vec(step(), 1..120),
    ) {
        let mut w = World::with(&setup);
        for s in &steps {
            w.apply(s);
            w.core.check_invariants().map_err(|e| TestCaseError::fail(format!("after {s:?}: {e}")))?;
            let made = w.core.dispatch(w.now);
            w.core.check_invariants().map_err(|e| TestCaseError::fail(format!("dispatch after {s:?}: {e}")))?;
            w.check_liveness().map_err(|e| TestCaseError::fail(format!("after {s:?}: {e}")))?;
            // One dispatch offers in queue order: priority first, then age.
            let keys: Vec<(std::cmp::Reverse<u8>, u64)> = made
                .iter()
                .filter_map(|o| w.core.queued_entry(&o.conversation_id))
                .map(|e| (std::cmp::Reverse(e.priority), e.ticket))
                .collect();
            prop_assert!(keys.windows(2).all(|k| k[0] < k[1]), "offers out of order: {keys:?}");
            // Nothing is lost or doubled: every conversation is exactly one of waiting, held
            // (by exactly the agent the core says), or closed.
            let held: HashSet<&String> = w.held.iter().map(|(c, _, _)| c).collect();
            for t in 1..=w.ticket {
                let c = format!("c{t}");
                let states = [
                    w.core.queued_entry(&c).is_some(),
                    held.contains(&c),
                    w.closed.contains(&c),
                ];
                prop_assert_eq!(states.iter().filter(|s| **s).count(), 1, "{} is {:?}", c, states);
            }
            for (c, a, _) in &w.held {
                prop_assert!(w.core.agent(a).is_some_and(|s| s.assigned().contains_key(c)));
            }
        }
    }
}

#[test]
fn a_burst_of_a_thousand_escalations_against_fifty_agents_respects_capacity() {
    let mut core = RouterCore::new(Duration::from_secs(30), Duration::from_secs(300));
    for i in 0..50 {
        core.upsert_agent(agent(&format!("agent{i}"), &["support"], 1 + (i % 3)));
        core.set_sessions(&format!("agent{i}"), 1);
    }
    let now = Instant::now();
    for t in 0..1000u64 {
        core.enqueue(QueueEntry {
            conversation_id: format!("c{t}"),
            team: "support".into(),
            priority: (t % 4) as u8,
            enqueued_at_ms: t,
            ticket: t,
            only_agent: None,
            preferred_agent: None,
            skills: Vec::new(),
            language: None,
            channel: None,
        });
    }
    let capacity: usize = core.agents().map(|a| a.record.capacity as usize).sum();
    let made = core.dispatch(now);
    assert_eq!(made.len(), capacity, "every free slot gets an offer");
    core.check_invariants().expect("invariants");
    // The offers went to the most urgent conversations first.
    let offered: HashSet<String> = made.iter().map(|o| o.conversation_id.clone()).collect();
    let most_urgent: HashSet<String> = core
        .queue()
        .take(capacity)
        .map(|e| e.conversation_id.clone())
        .collect();
    assert_eq!(offered, most_urgent);
    // Accept them all; a second dispatch offers nothing more.
    for o in &made {
        core.begin_accept(&o.agent_id, &o.conversation_id, now)
            .expect("accept");
        core.finish_accept(&o.agent_id, &o.conversation_id, true, false);
    }
    assert!(core.dispatch(now).is_empty());
    assert_eq!(core.queue_len(), 1000 - capacity);
    core.check_invariants().expect("invariants");
}

#[test]
fn a_declined_conversation_waits_for_someone_else_and_a_timed_out_one_does_not() {
    let mut core = RouterCore::new(Duration::from_secs(30), Duration::from_secs(300));
    core.upsert_agent(agent("solo", &["support"], 1));
    core.set_sessions("solo", 1);
    let now = Instant::now();
    core.enqueue(QueueEntry {
        conversation_id: "c1".into(),
        team: "support".into(),
        priority: 1,
        enqueued_at_ms: 1,
        ticket: 1,
        only_agent: None,
        preferred_agent: None,
        skills: Vec::new(),
        language: None,
        channel: None,
    });
    let o = core.dispatch(now).pop().expect("offer");
    assert!(core.expire("c1", o.offer_id, now).is_some());
    // Only agent around: a timeout does not stop it from being offered again.
    assert_eq!(core.dispatch(now).len(), 1);
    core.decline("solo", "c1", now).expect("decline");
    assert!(
        core.dispatch(now).is_empty(),
        "a decline holds for the cooldown"
    );
    assert_eq!(core.dispatch(now + Duration::from_secs(301)).len(), 1);
}

#[test]
fn a_returning_customer_goes_first_to_the_agent_who_helped_last() {
    let mut core = RouterCore::new(Duration::from_secs(30), Duration::from_secs(300));
    core.upsert_agent(agent("busy", &["support"], 3));
    core.upsert_agent(agent("idle", &["support"], 3));
    core.set_sessions("busy", 1);
    core.set_sessions("idle", 1);
    let now = Instant::now();
    let entry = |id: &str, ticket: u64, preferred: Option<&str>| QueueEntry {
        conversation_id: id.into(),
        team: "support".into(),
        priority: 1,
        enqueued_at_ms: ticket,
        ticket,
        only_agent: None,
        preferred_agent: preferred.map(String::from),
        skills: Vec::new(),
        language: None,
        channel: None,
    };
    // Whoever takes the first conversation then holds one more than the other agent, so
    // balancing alone would send the next one to the other.
    core.enqueue(entry("first", 1, None));
    let o = core.dispatch(now).pop().expect("offer");
    core.begin_accept(&o.agent_id, "first", now)
        .expect("accept");
    core.finish_accept(&o.agent_id, "first", true, false);
    let holder = o.agent_id.clone();
    let other = if holder == "busy" { "idle" } else { "busy" };
    core.enqueue(entry("returning", 2, Some(&holder)));
    let o = core.dispatch(now).pop().expect("offer");
    assert_eq!(o.agent_id, holder, "sticky beats balancing");
    // When the preferred agent cannot take it, the usual choice applies.
    core.withdraw("returning");
    core.set_sessions(&holder, 0);
    let o = core.dispatch(now).pop().expect("offer");
    assert_eq!(o.agent_id, other);
}

#[test]
fn skills_are_required_and_the_customers_language_is_preferred() {
    let mut core = RouterCore::new(Duration::from_secs(30), Duration::from_secs(300));
    let mut spanish = agent("ana", &["support"], 2);
    spanish.languages = vec!["es".into()];
    let mut refunds = agent("rui", &["support"], 2);
    refunds.skills = vec!["refunds".into()];
    refunds.languages = vec!["pt".into()];
    // rui is created first: with everything else equal he has been idle longest and would
    // get the next conversation, were it not for the language.
    core.upsert_agent(refunds);
    std::thread::sleep(Duration::from_millis(2));
    core.upsert_agent(spanish);
    core.set_sessions("ana", 1);
    core.set_sessions("rui", 1);
    let now = Instant::now();
    let entry = |id: &str, t: u64, skills: &[&str], language: Option<&str>| QueueEntry {
        conversation_id: id.into(),
        team: "support".into(),
        priority: 1,
        enqueued_at_ms: t,
        ticket: t,
        only_agent: None,
        preferred_agent: None,
        skills: skills.iter().map(|s| s.to_string()).collect(),
        language: language.map(String::from),
        channel: None,
    };
    core.enqueue(entry("plain", 1, &[], None));
    assert_eq!(
        core.dispatch(now).pop().expect("offer").agent_id,
        "rui",
        "idle longest"
    );
    core.withdraw("plain");
    core.remove_queued("plain");
    core.enqueue(entry("spanish", 2, &[], Some("es")));
    let o = core.dispatch(now).pop().expect("offer");
    assert_eq!(o.agent_id, "ana", "ana speaks Spanish");
    core.enqueue(entry("needs-refunds", 3, &["refunds"], Some("es")));
    let o = core.dispatch(now).pop().expect("offer");
    assert_eq!(
        o.agent_id, "rui",
        "only rui has the skill, whatever the language"
    );
    // Nobody with the skill free: it waits rather than going to the wrong agent.
    core.enqueue(entry("refunds-2", 4, &["refunds"], None));
    core.enqueue(entry("refunds-3", 5, &["refunds"], None));
    let made = core.dispatch(now);
    assert!(made.iter().all(|o| o.agent_id == "rui"), "{made:?}");
    assert!(made.len() <= 1);
    core.check_invariants().expect("invariants");
}

fn plain(id: &str, t: u64, team: &str, channel: Option<ChannelKind>) -> QueueEntry {
    QueueEntry {
        conversation_id: id.into(),
        team: team.into(),
        priority: 1,
        enqueued_at_ms: t,
        ticket: t,
        only_agent: None,
        preferred_agent: None,
        skills: Vec::new(),
        language: None,
        channel,
    }
}

fn with_team(strategy: Assign, max_open: Option<u32>) -> RouterCore {
    let mut core = RouterCore::new(Duration::from_secs(30), Duration::from_secs(300));
    core.set_teams(
        [(
            "support".to_string(),
            TeamPolicy {
                strategy,
                max_open,
                ..TeamPolicy::default()
            },
        )]
        .into_iter()
        .collect(),
    );
    core
}

#[test]
fn round_robin_takes_agents_in_turn_whatever_they_hold() {
    let mut core = with_team(Assign::RoundRobin, None);
    for id in ["a", "b", "c"] {
        core.upsert_agent(agent(id, &["support"], 5));
        core.set_sessions(id, 1);
    }
    let now = Instant::now();
    let mut got = Vec::new();
    for t in 0..7u64 {
        core.enqueue(plain(&format!("c{t}"), t, "support", None));
        let o = core.dispatch(now).pop().expect("offer");
        core.begin_accept(&o.agent_id, &o.conversation_id, now)
            .expect("accept");
        core.finish_accept(&o.agent_id, &o.conversation_id, true, false);
        got.push(o.agent_id);
    }
    assert_eq!(got, ["a", "b", "c", "a", "b", "c", "a"]);
    // An agent who cannot take one is skipped, and the turn goes on after whoever took it.
    core.set_sessions("b", 0);
    core.enqueue(plain("x", 10, "support", None));
    assert_eq!(core.dispatch(now).pop().expect("offer").agent_id, "c");
}

#[test]
fn a_manual_team_gets_no_offers_and_its_agents_claim() {
    let mut core = with_team(Assign::Manual, None);
    core.upsert_agent(agent("ana", &["support"], 1));
    core.upsert_agent(agent("outsider", &["billing"], 3));
    core.set_sessions("ana", 1);
    core.set_sessions("outsider", 1);
    let now = Instant::now();
    core.enqueue(plain("c1", 1, "support", None));
    core.enqueue(plain("c2", 2, "support", None));
    assert!(
        core.dispatch(now).is_empty(),
        "manual teams are not offered"
    );
    assert_eq!(core.claim("outsider", "c1", now), Err(Refusal::NotEligible));
    assert_eq!(core.claim("ana", "nope", now), Err(Refusal::NotQueued));
    let entry = core.claim("ana", "c2", now).expect("claim");
    assert_eq!(
        entry.conversation_id, "c2",
        "any waiting one, not only the oldest"
    );
    assert_eq!(
        core.claim("ana", "c2", now),
        Err(Refusal::NotQueued),
        "claimed once"
    );
    core.finish_accept("ana", "c2", true, false);
    assert_eq!(
        core.claim("ana", "c1", now),
        Err(Refusal::NotEligible),
        "capacity holds"
    );
    core.check_invariants().expect("invariants");
    // A transfer to a named agent is still offered to that agent.
    core.release("ana", "c2");
    let mut named = plain("c3", 3, "support", None);
    named.only_agent = Some("ana".into());
    core.enqueue(named);
    let o = core.dispatch(now).pop().expect("offer");
    assert_eq!(
        (o.agent_id.as_str(), o.conversation_id.as_str()),
        ("ana", "c3")
    );
    // An agent may also claim what is offered to them.
    assert_eq!(
        core.claim("ana", "c3", now).map(|_| ()),
        Ok(()),
        "own offer"
    );
}

#[test]
fn an_offer_made_to_someone_else_cannot_be_claimed() {
    let mut core = with_team(Assign::Balanced, None);
    core.upsert_agent(agent("ana", &["support"], 2));
    core.upsert_agent(agent("bo", &["support"], 2));
    core.set_sessions("ana", 1);
    core.set_sessions("bo", 1);
    let now = Instant::now();
    core.enqueue(plain("c1", 1, "support", None));
    let o = core.dispatch(now).pop().expect("offer");
    let other = if o.agent_id == "ana" { "bo" } else { "ana" };
    assert_eq!(core.claim(other, "c1", now), Err(Refusal::OfferedToAnother));
}

#[test]
fn channel_weights_let_an_agent_hold_more_of_a_lighter_channel() {
    let mut core = with_team(Assign::Balanced, None);
    core.set_channel_weights(ChannelWeights(
        [(ChannelKind::Email, UNIT / 2)].into_iter().collect(),
    ));
    core.upsert_agent(agent("ana", &["support"], 1));
    core.set_sessions("ana", 1);
    let now = Instant::now();
    for t in 0..3u64 {
        core.enqueue(plain(
            &format!("mail{t}"),
            t,
            "support",
            Some(ChannelKind::Email),
        ));
    }
    let made = core.dispatch(now);
    assert_eq!(
        made.len(),
        2,
        "two emails at half a chat each fill a capacity of one"
    );
    core.check_invariants().expect("invariants");
    for o in &made {
        core.begin_accept("ana", &o.conversation_id, now)
            .expect("accept");
        core.finish_accept("ana", &o.conversation_id, true, false);
    }
    core.release("ana", "mail0");
    // Half a unit free: another email fits, a chat does not.
    core.enqueue(plain("chat", 0, "support", Some(ChannelKind::Widget)));
    let made = core.dispatch(now);
    assert_eq!(made.len(), 1);
    assert_eq!(made[0].conversation_id, "mail2");
}

#[test]
fn a_team_limit_holds_whatever_its_agents_could_take() {
    let mut core = with_team(Assign::Balanced, Some(2));
    for id in ["a", "b"] {
        core.upsert_agent(agent(id, &["support"], 5));
        core.set_sessions(id, 1);
    }
    let now = Instant::now();
    for t in 0..5u64 {
        core.enqueue(plain(&format!("c{t}"), t, "support", None));
    }
    let made = core.dispatch(now);
    assert_eq!(made.len(), 2, "the team holds at most two at once");
    assert_eq!(core.claim("a", "c4", now), Err(Refusal::NotEligible));
    core.check_invariants().expect("invariants");
    core.withdraw(&made[0].conversation_id);
    assert_eq!(core.dispatch(now).len(), 1, "a freed place is used again");
}
