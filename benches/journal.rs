//! The escalation policy's cost per customer message and the journal's cost per append,
//! without the network: `cargo bench --bench journal`.
//!
//! The policy is run on a conversation of ten turns, the way the conversation actor runs it
//! after analysis. The store benchmark commits one message (and its conversation record) at
//! a time, fsync included, from one writer and from 64 concurrent writers, which the
//! group commit folds into shared transactions; and the message alone, which is what most
//! turns commit now that the record is written only when its messages cannot rebuild it.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use handoffd::analysis::sentiment::SentimentState;
use handoffd::analysis::{Analyzer, AnalyzerSettings};
use handoffd::escalation::{EscalationConfig, Policy, Tracker};
use handoffd::model::{ConversationRecord, MessageRecord, Role};
use handoffd::store::{Op, Store};
use handoffd_channels::{ChannelKind, Contact};

const TURNS: &[&str] = &[
    "hi",
    "I ordered shoes two weeks ago",
    "the order number is 55501234",
    "they have not arrived yet",
    "can you check the tracking?",
    "it says label created since last week",
    "when will they be delivered?",
    "this is taking too long",
    "where is my order??",
    "I still have no shoes",
];

fn policy(c: &mut Criterion) {
    let analyzer = Analyzer::new(&AnalyzerSettings::default()).expect("analyzer");
    let policy = Policy::new(&EscalationConfig::default());
    let analyses: Vec<_> = TURNS.iter().map(|t| analyzer.analyze(t)).collect();
    let mut g = c.benchmark_group("escalation policy");
    g.throughput(Throughput::Elements(TURNS.len() as u64));
    g.bench_function("ten customer turns", |b| {
        b.iter(|| {
            let mut tracker = Tracker::default();
            let mut mood = SentimentState::default();
            let mut fired = 0;
            for (i, (text, a)) in TURNS.iter().zip(&analyses).enumerate() {
                let seq = i as u64 + 1;
                mood.update(a.sentiment);
                tracker.observe_customer(seq, text);
                if policy
                    .on_customer_message(seq, text, a, &mood, &tracker)
                    .is_some()
                {
                    fired += 1;
                }
            }
            black_box(fired)
        })
    });
    g.finish();
}

fn message(seq: u64) -> MessageRecord {
    MessageRecord {
        seq,
        role: Role::Customer,
        author: None,
        author_name: None,
        text: "where is my order 55501234? it has not arrived".into(),
        at_ms: seq,
        platform_message_id: Some(format!("m{seq}")),
        attachments: Vec::new(),
        sentiment: Some(-0.2),
        language: Some("en".into()),
        intents: Vec::new(),
        handoff: None,
        bot: None,
        automated: false,
        delivery_mode: Default::default(),
        delivery: None,
        quick_replies: Vec::new(),
        platform_at_ms: None,
    }
}

fn conversation(id: &str) -> ConversationRecord {
    ConversationRecord::new(
        id.into(),
        ChannelKind::Widget,
        format!("k-{id}"),
        Contact {
            channel_user_id: format!("k-{id}"),
            ..Default::default()
        },
        1,
    )
}

fn store(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("bench.redb")).expect("store");
    let mut g = c.benchmark_group("journal append");
    g.measurement_time(Duration::from_secs(8));
    g.throughput(Throughput::Elements(1));
    let mut seq = 0u64;
    g.bench_function("one writer, one message per commit", |b| {
        b.iter(|| {
            seq += 1;
            let mut conv = conversation("c-single");
            conv.last_seq = seq;
            rt.block_on(store.commit(vec![
                Op::AppendMessage {
                    conversation_id: "c-single".into(),
                    message: Arc::new(message(seq)),
                },
                Op::PutConversation(Box::new(conv)),
            ]))
            .expect("commit")
        })
    });
    g.throughput(Throughput::Elements(WRITERS));
    let mut round = 0u64;
    // Each case: 64 writers commit one message each at once (group commit), with or without
    // the conversation record, on a journal with or without redb's quick repair.
    let plain_dir = tempfile::tempdir().expect("tempdir");
    let plain = Store::open_with_options(&plain_dir.path().join("bench.redb"), 64 << 20, false)
        .expect("store");
    let cases = [
        ("64 concurrent writers, one message each", &store, true),
        // The shape of most commits since the conversation actor leaves the record out when
        // the store can rebuild it from the messages: the message alone.
        (
            "64 concurrent writers, one message each, record left out",
            &store,
            false,
        ),
        // What saving the allocator state in every commit costs (`storage.quick_repair`).
        (
            "64 concurrent writers, one message each, record left out, quick repair off",
            &plain,
            false,
        ),
    ];
    for (name, journal, with_record) in cases {
        g.bench_function(name, |b| {
            b.iter_batched(
                || {
                    round += 1;
                    round
                },
                |round| rt.block_on(concurrent_round(journal, round, with_record)),
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

/// Writers in a bench round, each committing one message at once.
const WRITERS: u64 = 64;

/// One round: every writer commits its conversation's next message (and its record when
/// `with_record`) concurrently, so the journal groups them.
async fn concurrent_round(store: &Store, round: u64, with_record: bool) {
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let id = format!("c-{w}");
            let mut ops = vec![Op::AppendMessage {
                conversation_id: id.clone(),
                message: Arc::new(message(round)),
            }];
            if with_record {
                let mut conv = conversation(&id);
                conv.last_seq = round;
                ops.push(Op::PutConversation(Box::new(conv)));
            }
            store.commit(ops).await
        }));
    }
    for t in tasks {
        t.await.expect("join").expect("commit");
    }
}

criterion_group!(benches, policy, store);
criterion_main!(benches);
