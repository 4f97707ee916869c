//! SLA policies and the timers they set. Pure bookkeeping: the router feeds it what happens
//! to a conversation (escalated, assigned, the agent answered, the customer wrote, closed)
//! with the time of its clock, and asks it which deadlines passed. Deadlines are worked out
//! once, when a timer starts, in the team's business hours (see [`super::calendar`]): time
//! outside the hours does not count, and a restart resumes the same deadlines.

use std::collections::HashMap;
use std::time::Duration;

use serde::Deserialize;

use super::calendar::BusinessCalendar;
use crate::model::{SlaClock, SlaTarget, SlaTimer};

/// What the router does when a deadline passes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BreachAction {
    /// The conversation moves up one priority level in its queue.
    RaisePriority,
    /// A waiting conversation's offer goes to the next agent; a held one goes back to the
    /// queue (in its original place) and to another agent.
    Reassign,
    /// The team's supervisors get an `sla_breach` frame.
    NotifySupervisors,
    /// A waiting conversation moves to another team's queue, keeping its wait.
    Overflow(String),
}

impl BreachAction {
    /// Reads an action as written in config: `raise_priority`, `reassign`,
    /// `notify_supervisors` or `overflow:<team>`.
    pub fn parse(s: &str) -> Result<BreachAction, String> {
        match s {
            "raise_priority" => Ok(BreachAction::RaisePriority),
            "reassign" => Ok(BreachAction::Reassign),
            "notify_supervisors" => Ok(BreachAction::NotifySupervisors),
            _ => match s.strip_prefix("overflow:") {
                Some(team) if !team.trim().is_empty() => {
                    Ok(BreachAction::Overflow(team.trim().to_string()))
                }
                _ => Err(format!(
                    "unknown breach action `{s}` (raise_priority, reassign, notify_supervisors, overflow:<team>)"
                )),
            },
        }
    }
}

/// One `[[router.sla]]` entry as written in config.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlaPolicyConfig {
    pub name: String,
    /// Teams it covers; none means every team.
    #[serde(default)]
    pub teams: Vec<String>,
    /// Covers conversations of this priority or more.
    #[serde(default)]
    pub min_priority: u8,
    #[serde(default)]
    pub assignment_secs: Option<u64>,
    #[serde(default)]
    pub first_response_secs: Option<u64>,
    #[serde(default)]
    pub next_response_secs: Option<u64>,
    #[serde(default)]
    pub resolution_secs: Option<u64>,
    #[serde(default)]
    pub on_assignment_breach: Vec<String>,
    #[serde(default)]
    pub on_first_response_breach: Vec<String>,
    #[serde(default)]
    pub on_next_response_breach: Vec<String>,
    #[serde(default)]
    pub on_resolution_breach: Vec<String>,
}

/// A checked SLA policy.
#[derive(Debug, Clone, PartialEq)]
pub struct SlaPolicy {
    pub name: String,
    pub teams: Vec<String>,
    pub min_priority: u8,
    /// Business time allowed for each target the policy sets.
    pub targets: Vec<(SlaTarget, Duration)>,
    pub on_breach: HashMap<SlaTarget, Vec<BreachAction>>,
}

impl SlaPolicy {
    /// Checks a config entry against the known teams; the error names the offending key.
    pub fn from_config(
        c: &SlaPolicyConfig,
        known_teams: &dyn Fn(&str) -> bool,
    ) -> Result<SlaPolicy, (String, String)> {
        if c.name.trim().is_empty() {
            return Err(("name".into(), "an SLA policy needs a name".into()));
        }
        for t in &c.teams {
            if !known_teams(t) {
                return Err((
                    "teams".into(),
                    format!("team `{t}` is not defined in [[router.teams]]"),
                ));
            }
        }
        let mut targets = Vec::new();
        for (target, secs) in [
            (SlaTarget::Assignment, c.assignment_secs),
            (SlaTarget::FirstResponse, c.first_response_secs),
            (SlaTarget::NextResponse, c.next_response_secs),
            (SlaTarget::Resolution, c.resolution_secs),
        ] {
            match secs {
                Some(0) => {
                    return Err((
                        format!("{}_secs", target.as_str()),
                        "a target must be at least 1 second".into(),
                    ));
                }
                Some(s) => targets.push((target, Duration::from_secs(s))),
                None => {}
            }
        }
        if targets.is_empty() {
            return Err((
                "assignment_secs".into(),
                "an SLA policy sets at least one target (assignment_secs, first_response_secs, next_response_secs, resolution_secs)".into(),
            ));
        }
        let mut on_breach = HashMap::new();
        for (target, names) in [
            (SlaTarget::Assignment, &c.on_assignment_breach),
            (SlaTarget::FirstResponse, &c.on_first_response_breach),
            (SlaTarget::NextResponse, &c.on_next_response_breach),
            (SlaTarget::Resolution, &c.on_resolution_breach),
        ] {
            let key = format!("on_{}_breach", target.as_str());
            let mut actions = Vec::new();
            for n in names {
                let a = BreachAction::parse(n).map_err(|e| (key.clone(), e))?;
                if let BreachAction::Overflow(t) = &a
                    && !known_teams(t)
                {
                    return Err((key, format!("overflow team `{t}` is not defined")));
                }
                actions.push(a);
            }
            on_breach.insert(target, actions);
        }
        Ok(SlaPolicy {
            name: c.name.clone(),
            teams: c.teams.clone(),
            min_priority: c.min_priority,
            targets,
            on_breach,
        })
    }

    fn covers(&self, team: &str, priority: u8) -> bool {
        priority >= self.min_priority
            && (self.teams.is_empty() || self.teams.iter().any(|t| t == team))
    }

    fn target(&self, target: SlaTarget) -> Option<Duration> {
        self.targets
            .iter()
            .find(|(t, _)| *t == target)
            .map(|(_, d)| *d)
    }

    /// What to do when `target` is breached.
    pub fn actions(&self, target: SlaTarget) -> &[BreachAction] {
        self.on_breach.get(&target).map_or(&[], Vec::as_slice)
    }
}

/// A deadline that passed: what the router acts on.
#[derive(Debug, Clone, PartialEq)]
pub struct Breach {
    pub conversation_id: String,
    pub team: String,
    pub policy: String,
    pub target: SlaTarget,
    pub due_at_ms: u64,
    pub breached_at_ms: u64,
}

/// The running SLA clocks of all escalated conversations.
#[derive(Debug, Default)]
pub struct SlaBook {
    policies: Vec<SlaPolicy>,
    calendars: HashMap<String, BusinessCalendar>,
    clocks: HashMap<String, SlaClock>,
}

impl SlaBook {
    /// `policies` in config order (the first that covers a conversation applies);
    /// `calendars` by team (teams without one are always open).
    pub fn new(policies: Vec<SlaPolicy>, calendars: HashMap<String, BusinessCalendar>) -> Self {
        SlaBook {
            policies,
            calendars,
            clocks: HashMap::new(),
        }
    }

    /// The calendar of a team (always open when it has no business hours).
    pub fn calendar(&self, team: &str) -> Option<&BusinessCalendar> {
        self.calendars.get(team)
    }

    /// The policy with this name.
    pub fn policy(&self, name: &str) -> Option<&SlaPolicy> {
        self.policies.iter().find(|p| p.name == name)
    }

    /// Takes a clock back after a restart, deadlines unchanged.
    pub fn restore(&mut self, clock: SlaClock) {
        self.clocks.insert(clock.conversation_id.clone(), clock);
    }

    pub fn clock(&self, conversation_id: &str) -> Option<&SlaClock> {
        self.clocks.get(conversation_id)
    }

    pub fn clocks(&self) -> impl Iterator<Item = &SlaClock> {
        self.clocks.values()
    }

    fn due(&self, team: &str, start_ms: u64, allowed: Duration) -> Option<u64> {
        let ms = allowed.as_millis() as u64;
        match self.calendars.get(team) {
            Some(c) => c.add_business_time(start_ms, ms),
            None => Some(start_ms.saturating_add(ms)),
        }
    }

    fn timer(&self, team: &str, target: SlaTarget, start_ms: u64, allowed: Duration) -> SlaTimer {
        SlaTimer {
            target,
            started_at_ms: start_ms,
            due_at_ms: self.due(team, start_ms, allowed),
            met_at_ms: None,
            breached_at_ms: None,
        }
    }

    /// An escalated conversation joins a queue. The first time, the covering policy (if any)
    /// starts its timers; a conversation that already has a clock (a transfer, a re-queue)
    /// keeps its deadlines and only changes team. Returns the clock to persist, if it changed.
    pub fn enqueued(
        &mut self,
        conversation_id: &str,
        team: &str,
        priority: u8,
        now_ms: u64,
    ) -> Option<SlaClock> {
        if let Some(c) = self.clocks.get_mut(conversation_id) {
            if c.team == team {
                return None;
            }
            c.team = team.to_string();
            return Some(c.clone());
        }
        let policy = self.policies.iter().find(|p| p.covers(team, priority))?;
        let timers: Vec<SlaTimer> = [
            SlaTarget::Assignment,
            SlaTarget::FirstResponse,
            SlaTarget::Resolution,
        ]
        .into_iter()
        .filter_map(|t| policy.target(t).map(|d| (t, d)))
        .map(|(t, d)| self.timer(team, t, now_ms, d))
        .collect();
        let clock = SlaClock {
            conversation_id: conversation_id.to_string(),
            team: team.to_string(),
            policy: policy.name.clone(),
            started_at_ms: now_ms,
            timers,
        };
        self.clocks
            .insert(conversation_id.to_string(), clock.clone());
        Some(clock)
    }

    /// Marks timers of `targets` met: in time, or late when already breached (so people
    /// can tell a missed target that was reached after all from one still open).
    fn meet(
        &mut self,
        conversation_id: &str,
        targets: &[SlaTarget],
        now_ms: u64,
    ) -> Option<SlaClock> {
        let c = self.clocks.get_mut(conversation_id)?;
        let mut changed = false;
        for t in c.timers.iter_mut() {
            if targets.contains(&t.target) && t.met_at_ms.is_none() {
                t.met_at_ms = Some(now_ms);
                changed = true;
            }
        }
        changed.then(|| c.clone())
    }

    /// An agent took the conversation.
    pub fn assigned(&mut self, conversation_id: &str, now_ms: u64) -> Option<SlaClock> {
        self.meet(conversation_id, &[SlaTarget::Assignment], now_ms)
    }

    /// The agent holding the conversation answered the customer.
    pub fn agent_replied(&mut self, conversation_id: &str, now_ms: u64) -> Option<SlaClock> {
        self.meet(
            conversation_id,
            &[SlaTarget::FirstResponse, SlaTarget::NextResponse],
            now_ms,
        )
    }

    /// The customer wrote while an agent holds the conversation: once the first response
    /// is in, the next-response timer starts (unless one already runs).
    pub fn customer_wrote(&mut self, conversation_id: &str, now_ms: u64) -> Option<SlaClock> {
        let c = self.clocks.get(conversation_id)?;
        let first_pending = c
            .timers
            .iter()
            .any(|t| t.target == SlaTarget::FirstResponse && t.running());
        let next_running = c
            .timers
            .iter()
            .any(|t| t.target == SlaTarget::NextResponse && t.running());
        if first_pending || next_running {
            return None;
        }
        let allowed = self.policy(&c.policy)?.target(SlaTarget::NextResponse)?;
        let team = c.team.clone();
        let timer = self.timer(&team, SlaTarget::NextResponse, now_ms, allowed);
        let c = self.clocks.get_mut(conversation_id)?;
        // Only the latest next-response timer is kept: the clock stays small however long
        // the conversation runs (breaches were counted when they happened).
        c.timers.retain(|t| t.target != SlaTarget::NextResponse);
        c.timers.push(timer);
        Some(c.clone())
    }

    /// The conversation was closed by its agent: resolution is met and the clock ends.
    /// Returns whether there was a clock to delete.
    pub fn closed(&mut self, conversation_id: &str) -> bool {
        self.clocks.remove(conversation_id).is_some()
    }

    /// Marks every running timer whose deadline is at or before `now_ms` breached and
    /// returns the breaches, with the clocks to persist.
    pub fn sweep(&mut self, now_ms: u64) -> (Vec<Breach>, Vec<SlaClock>) {
        let mut breaches = Vec::new();
        let mut changed = Vec::new();
        for c in self.clocks.values_mut() {
            let mut touched = false;
            for t in c.timers.iter_mut() {
                if let (true, Some(due)) = (t.running(), t.due_at_ms)
                    && due <= now_ms
                {
                    t.breached_at_ms = Some(now_ms);
                    touched = true;
                    breaches.push(Breach {
                        conversation_id: c.conversation_id.clone(),
                        team: c.team.clone(),
                        policy: c.policy.clone(),
                        target: t.target,
                        due_at_ms: due,
                        breached_at_ms: now_ms,
                    });
                }
            }
            if touched {
                changed.push(c.clone());
            }
        }
        breaches.sort_by(|a, b| {
            (a.due_at_ms, &a.conversation_id).cmp(&(b.due_at_ms, &b.conversation_id))
        });
        (breaches, changed)
    }

    /// A reassigned conversation owes a fresh first response to its next agent: the
    /// breached timer is replaced by one running from now.
    pub fn restart_first_response(
        &mut self,
        conversation_id: &str,
        now_ms: u64,
    ) -> Option<SlaClock> {
        let c = self.clocks.get(conversation_id)?;
        let allowed = self.policy(&c.policy)?.target(SlaTarget::FirstResponse)?;
        let team = c.team.clone();
        let timer = self.timer(&team, SlaTarget::FirstResponse, now_ms, allowed);
        let c = self.clocks.get_mut(conversation_id)?;
        c.timers
            .retain(|t| !matches!(t.target, SlaTarget::FirstResponse | SlaTarget::NextResponse));
        c.timers.push(timer);
        Some(c.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(name: &str, teams: &[&str], min_priority: u8) -> SlaPolicy {
        SlaPolicy::from_config(
            &SlaPolicyConfig {
                name: name.into(),
                teams: teams.iter().map(|t| t.to_string()).collect(),
                min_priority,
                assignment_secs: Some(60),
                first_response_secs: Some(120),
                next_response_secs: Some(300),
                resolution_secs: Some(3600),
                on_assignment_breach: vec!["raise_priority".into(), "overflow:tier2".into()],
                on_first_response_breach: vec!["reassign".into()],
                on_next_response_breach: vec!["notify_supervisors".into()],
                on_resolution_breach: vec![],
            },
            &|t| ["support", "tier2"].contains(&t),
        )
        .expect("valid policy")
    }

    #[test]
    fn the_first_policy_covering_team_and_priority_sets_the_deadlines() {
        let mut book = SlaBook::new(
            vec![
                policy("urgent", &["support"], 3),
                policy("standard", &[], 0),
            ],
            HashMap::new(),
        );
        let c = book.enqueued("a", "support", 3, 1_000).expect("clock");
        assert_eq!(c.policy, "urgent");
        let due: Vec<_> = c.timers.iter().map(|t| (t.target, t.due_at_ms)).collect();
        assert_eq!(
            due,
            vec![
                (SlaTarget::Assignment, Some(61_000)),
                (SlaTarget::FirstResponse, Some(121_000)),
                (SlaTarget::Resolution, Some(3_601_000)),
            ]
        );
        assert_eq!(
            book.enqueued("b", "support", 1, 0).expect("clock").policy,
            "standard"
        );
        // A transfer keeps the deadlines and changes the team.
        let moved = book.enqueued("a", "tier2", 3, 50_000).expect("changed");
        assert_eq!(moved.team, "tier2");
        assert_eq!(moved.timers, c.timers);
        assert!(book.enqueued("a", "tier2", 3, 60_000).is_none());
    }

    #[test]
    fn timers_are_met_breached_once_and_next_response_restarts() {
        let mut book = SlaBook::new(vec![policy("p", &[], 0)], HashMap::new());
        book.enqueued("a", "support", 1, 0);
        assert!(book.assigned("a", 30_000).is_some());
        assert!(book.assigned("a", 31_000).is_none(), "met only once");
        // The customer writes before the first answer: no next-response timer yet.
        assert!(book.customer_wrote("a", 40_000).is_none());
        let (b, _) = book.sweep(121_000);
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].target, SlaTarget::FirstResponse);
        assert!(
            book.sweep(200_000).0.is_empty(),
            "a breach is reported once"
        );
        let late = book.agent_replied("a", 200_000).expect("met late");
        let first = late
            .timers
            .iter()
            .find(|t| t.target == SlaTarget::FirstResponse)
            .expect("timer");
        assert_eq!(
            (first.breached_at_ms, first.met_at_ms),
            (Some(121_000), Some(200_000))
        );
        let c = book
            .customer_wrote("a", 210_000)
            .expect("next response starts");
        let next = c
            .timers
            .iter()
            .find(|t| t.target == SlaTarget::NextResponse)
            .expect("timer");
        assert_eq!(next.due_at_ms, Some(510_000));
        assert!(book.customer_wrote("a", 220_000).is_none(), "one at a time");
        book.agent_replied("a", 300_000);
        assert!(book.sweep(600_000).0.is_empty());
        let (b, _) = book.sweep(3_600_000);
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].target, SlaTarget::Resolution);
        assert!(book.closed("a"));
        assert!(book.clock("a").is_none());
    }

    #[test]
    fn deadlines_count_only_business_time() {
        let hours: super::super::calendar::BusinessHoursConfig = toml::from_str(
            r#"
time_zone = "Europe/Berlin"
monday = ["09:00-17:00"]
friday = ["09:00-17:00"]
"#,
        )
        .expect("hours");
        let calendar = BusinessCalendar::from_config(&hours).expect("calendar");
        let mut book = SlaBook::new(
            vec![policy("p", &[], 0)],
            [("support".to_string(), calendar)].into_iter().collect(),
        );
        // Friday 2026-12-04 16:50 in Berlin: two minutes of first response are due at
        // 16:52; an hour of resolution runs out on Monday at 09:50.
        let friday_1650 = 1_796_399_400_000;
        let c = book
            .enqueued("a", "support", 1, friday_1650)
            .expect("clock");
        let due = |t: SlaTarget| {
            c.timers
                .iter()
                .find(|x| x.target == t)
                .and_then(|x| x.due_at_ms)
        };
        assert_eq!(due(SlaTarget::FirstResponse), Some(friday_1650 + 120_000));
        let monday_0950 = 1_796_633_400_000;
        assert_eq!(due(SlaTarget::Resolution), Some(monday_0950));
        // Another team has no hours: wall-clock time.
        let c = book.enqueued("b", "tier2", 1, friday_1650).expect("clock");
        assert_eq!(
            c.timers.last().and_then(|t| t.due_at_ms),
            Some(friday_1650 + 3_600_000)
        );
    }

    #[test]
    fn conversations_no_policy_covers_get_no_clock() {
        let mut book = SlaBook::new(vec![policy("vip", &["support"], 3)], HashMap::new());
        assert!(book.enqueued("a", "support", 2, 0).is_none());
        assert!(book.enqueued("b", "tier2", 3, 0).is_none());
        assert!(book.sweep(u64::MAX / 2).0.is_empty());
    }

    #[test]
    fn bad_policies_name_the_offending_key() {
        let mut c = SlaPolicyConfig {
            name: "x".into(),
            teams: vec![],
            min_priority: 0,
            assignment_secs: None,
            first_response_secs: None,
            next_response_secs: None,
            resolution_secs: None,
            on_assignment_breach: vec![],
            on_first_response_breach: vec![],
            on_next_response_breach: vec![],
            on_resolution_breach: vec![],
        };
        let known = |t: &str| t == "support";
        assert_eq!(
            SlaPolicy::from_config(&c, &known).unwrap_err().0,
            "assignment_secs"
        );
        c.first_response_secs = Some(0);
        assert_eq!(
            SlaPolicy::from_config(&c, &known).unwrap_err().0,
            "first_response_secs"
        );
        c.first_response_secs = Some(60);
        c.on_first_response_breach = vec!["panic".into()];
        let e = SlaPolicy::from_config(&c, &known).unwrap_err();
        assert_eq!(e.0, "on_first_response_breach");
        assert!(e.1.contains("panic"));
        c.on_first_response_breach = vec!["overflow:nobody".into()];
        assert!(
            SlaPolicy::from_config(&c, &known)
                .unwrap_err()
                .1
                .contains("nobody")
        );
        c.on_first_response_breach = vec!["overflow:support".into()];
        c.teams = vec!["ghosts".into()];
        assert_eq!(SlaPolicy::from_config(&c, &known).unwrap_err().0, "teams");
    }
}
