//! The router's own cost per assignment, without I/O: a burst of 1,000 escalations against
//! 50 agents, each escalation followed by a dispatch (as the router actor does on every
//! `Enqueue`), then every offer accepted. Run with `cargo bench --bench router`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use handoffd::model::{AgentRecord, QueueEntry};
use handoffd::router::core::RouterCore;
use handoffd::router::{Strategy, TeamPolicy};

const AGENTS: usize = 50;
const ESCALATIONS: u64 = 1000;

fn agent(i: usize) -> AgentRecord {
    AgentRecord {
        id: format!("agent{i:02}"),
        display_name: format!("Agent {i}"),
        teams: vec!["support".into()],
        // 50 agents of capacity 20 can hold the whole burst.
        capacity: 20,
        token_hash: String::new(),
        created_at_ms: 0,
        skills: Vec::new(),
        languages: if i % 5 == 0 {
            vec!["es".into()]
        } else {
            Vec::new()
        },
        supervisor: false,
    }
}

fn entry(t: u64) -> QueueEntry {
    QueueEntry {
        conversation_id: format!("conversation-{t:06}"),
        team: "support".into(),
        priority: (t % 4) as u8,
        enqueued_at_ms: t,
        ticket: t,
        only_agent: None,
        preferred_agent: None,
        skills: Vec::new(),
        language: Some(if t % 7 == 0 { "es" } else { "en" }.into()),
        channel: None,
    }
}

fn router(strategy: Strategy) -> RouterCore {
    let mut core = RouterCore::new(Duration::from_secs(30), Duration::from_secs(300));
    core.set_teams(
        [(
            "support".to_string(),
            TeamPolicy {
                strategy,
                max_open: None,
                ..TeamPolicy::default()
            },
        )]
        .into_iter()
        .collect(),
    );
    for i in 0..AGENTS {
        let a = agent(i);
        let id = a.id.clone();
        core.upsert_agent(a);
        core.set_sessions(&id, 1);
    }
    core
}

/// Enqueue and dispatch one by one, then accept every offer; returns the assignments made.
fn burst(mut core: RouterCore) -> usize {
    let now = Instant::now();
    let mut offers = Vec::new();
    for t in 0..ESCALATIONS {
        core.enqueue(entry(t));
        offers.extend(core.dispatch(now));
    }
    for o in &offers {
        if core
            .begin_accept(&o.agent_id, &o.conversation_id, now)
            .is_ok()
        {
            core.finish_accept(&o.agent_id, &o.conversation_id, true, false);
        }
    }
    offers.len()
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("router burst of 1000 against 50 agents");
    g.throughput(Throughput::Elements(ESCALATIONS));
    for (name, strategy) in [
        ("balanced", Strategy::Balanced),
        ("round_robin", Strategy::RoundRobin),
    ] {
        g.bench_function(name, |b| {
            b.iter_batched(
                || router(strategy),
                |core| black_box(burst(core)),
                BatchSize::LargeInput,
            )
        });
    }
    g.finish();
    // Every agent full and a long queue: what each further escalation costs then.
    c.bench_function(
        "router dispatch with 1000 waiting and every agent full",
        |b| {
            let mut core = router(Strategy::Balanced);
            burst_into(&mut core);
            let now = Instant::now();
            let extra = entry(10 * ESCALATIONS);
            b.iter(|| {
                core.enqueue(extra.clone());
                let made = black_box(core.dispatch(now));
                // Taken out again so the queue stays at 1,000 however many iterations run.
                core.remove_queued(&extra.conversation_id);
                made
            })
        },
    );
}

/// Fills every agent, then queues 1,000 more that cannot be offered.
fn burst_into(core: &mut RouterCore) {
    let now = Instant::now();
    for t in 0..2 * ESCALATIONS {
        core.enqueue(entry(t));
        for o in core.dispatch(now) {
            if core
                .begin_accept(&o.agent_id, &o.conversation_id, now)
                .is_ok()
            {
                core.finish_accept(&o.agent_id, &o.conversation_id, true, false);
            }
        }
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
