//! `kill -9` in the middle of things: everything acknowledged is still there afterwards.

use serde_json::{Value, json};

use crate::support::*;

fn texts(c: &Value) -> Vec<(u64, String, String)> {
    c["transcript"]
        .as_array()
        .expect("transcript")
        .iter()
        .map(|m| {
            (
                m["seq"].as_u64().unwrap_or(0),
                m["role"].as_str().unwrap_or("").to_string(),
                m["text"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn kill_9_keeps_transcripts_owners_queue_order_and_assignments() {
    let (dir, tokens) = Daemon::prepare(&Options::default(), &[("alice", "support", 1)]);
    let d = Daemon::start(dir);
    let (mut alice, _) = d.agent(&tokens[0]).await;

    // A: with alice.
    let mut a = Visitor::new(&d).await;
    let (conv_a, _) = a.say("I need a human").await;
    alice.expect("offer").await;
    alice
        .send(json!({"type": "accept", "conversation_id": conv_a}))
        .await;
    alice.expect_skipping("assigned", &["ack"]).await;
    alice
        .send(json!({"type": "reply", "conversation_id": conv_a, "text": "alice here", "client_id": "a1"}))
        .await;
    alice.expect_skipping("ack", &["message"]).await;
    let (_, acked_a) = a.say("thanks, my order is 55512345").await;

    // B then C: queued behind A (alice has capacity 1).
    let mut b = Visitor::new(&d).await;
    let (conv_b, _) = b.say("let me speak to a person").await;
    b.message_from("system").await;
    let mut c = Visitor::new(&d).await;
    let (conv_c, _) = c.say("real person please").await;
    c.message_from("system").await;
    let (_, acked_c) = c.say("still waiting").await;

    let (_, q) = d.api_get("/api/v1/queue").await;
    let before_queue = q["queue"].clone();
    let order: Vec<&str> = before_queue
        .as_array()
        .expect("queue")
        .iter()
        .map(|e| e["conversation_id"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(order, vec![conv_b.as_str(), conv_c.as_str()]);
    let before: Vec<Value> =
        futures_util::future::join_all([&conv_a, &conv_b, &conv_c].map(|id| d.conversation(id)))
            .await;

    // kill -9 and start again on the same directory.
    let dir = d.kill9();
    let d = Daemon::start(dir);

    let after: Vec<Value> =
        futures_util::future::join_all([&conv_a, &conv_b, &conv_c].map(|id| d.conversation(id)))
            .await;
    for (b4, af) in before.iter().zip(&after) {
        assert_eq!(texts(b4), texts(af), "transcript changed across kill -9");
        assert_eq!(b4["conversation"]["owner"], af["conversation"]["owner"]);
    }
    assert_eq!(after[0]["conversation"]["owner"]["state"], "agent");
    assert_eq!(after[0]["conversation"]["owner"]["agent_id"], "alice");
    assert_eq!(after[1]["conversation"]["owner"]["state"], "queued");
    assert_eq!(after[2]["conversation"]["owner"]["state"], "queued");
    assert!(
        texts(&after[0])
            .iter()
            .any(|(s, _, t)| *s == acked_a && t == "thanks, my order is 55512345")
    );
    assert!(
        texts(&after[2])
            .iter()
            .any(|(s, _, t)| *s == acked_c && t == "still waiting")
    );
    let (_, q) = d.api_get("/api/v1/queue").await;
    let strip = |v: &Value| -> Vec<(String, u64)> {
        v.as_array()
            .expect("queue")
            .iter()
            .map(|e| {
                (
                    e["conversation_id"].as_str().unwrap_or("").to_string(),
                    e["enqueued_at_ms"].as_u64().unwrap_or(0),
                )
            })
            .collect()
    };
    assert_eq!(
        strip(&q["queue"]),
        strip(&before_queue),
        "queue order and enqueue times"
    );

    // alice comes back holding A; closing it offers B, the first in line.
    let (mut alice, welcome) = d.agent(&tokens[0]).await;
    assert_eq!(welcome["conversations"], json!([conv_a]));
    alice
        .send(json!({"type": "close", "conversation_id": conv_a}))
        .await;
    let offer = alice
        .expect_skipping("offer", &["ack", "released", "message"])
        .await;
    assert_eq!(offer["conversation_id"], json!(conv_b));

    // The widget of A resumes after the restart and sees everything after what it had.
    let mut ws = d.widget().await;
    ws.send(json!({"type": "hello", "token": a.token, "last_seq": 0}))
        .await;
    ws.expect("welcome").await;
    let frames = ws.drain(std::time::Duration::from_millis(500)).await;
    assert!(
        frames.iter().any(|f| f["text"] == "alice here"),
        "{frames:?}"
    );
}

/// Most customer and bot turns leave the conversation record out of their commit (the
/// store rebuilds it from the record as last written and the messages after it). After
/// `kill -9` the conversation must read back exactly as it was, and the next message must
/// continue its sequence instead of overwriting a journaled one.
#[tokio::test]
async fn kill_9_restores_a_conversation_whose_record_was_left_out_of_its_commits() {
    let (dir, _) = Daemon::prepare(&Options::default(), &[]);
    let d = Daemon::start(dir);
    let mut v = Visitor::new(&d).await;
    let mut conv = String::new();
    for text in [
        "What are your opening hours?",
        "How do I reset my password?",
        "When are you open?",
    ] {
        let (id, _) = v.say(text).await;
        v.message_from("bot").await;
        conv = id;
    }
    let before = d.conversation(&conv).await;
    assert!(before["conversation"]["last_seq"].as_u64().unwrap_or(0) >= 6);

    let dir = d.kill9();
    let d = Daemon::start(dir);
    let after = d.conversation(&conv).await;
    assert_eq!(
        before["conversation"], after["conversation"],
        "record changed across kill -9"
    );
    assert_eq!(texts(&before), texts(&after));

    let mut ws = d.widget().await;
    ws.send(json!({"type": "hello", "token": v.token, "last_seq": v.last_seq}))
        .await;
    ws.expect("welcome").await;
    ws.send(
        json!({"type": "message", "text": "How do I reset my password?", "client_id": "after"}),
    )
    .await;
    let ack = ws
        .expect_skipping("ack", &["message", "typing", "status"])
        .await;
    let last = before["conversation"]["last_seq"].as_u64().unwrap_or(0);
    assert_eq!(ack["seq"].as_u64(), Some(last + 1), "{ack}");
    let frames = ws.drain(std::time::Duration::from_millis(1500)).await;
    let bot = frames
        .iter()
        .find(|f| f["type"] == "message")
        .unwrap_or_else(|| panic!("no bot reply after the restart: {frames:?} / {ack}"));
    assert_eq!(bot["role"], "bot", "{bot}");
    assert_eq!(bot["seq"].as_u64(), Some(last + 2), "{bot}");
    let now = d.conversation(&conv).await;
    assert_eq!(now["conversation"]["last_seq"].as_u64(), Some(last + 2));
    assert_eq!(texts(&now)[..texts(&before).len()], texts(&before)[..]);
}

/// The value of one counter in the Prometheus text.
fn counter(metrics: &str, name: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or(0)
}

/// Each batch is made durable by the write-ahead log; at rest a durable journal commit
/// follows within half a second, and the log keeps one segment.
#[tokio::test]
async fn at_rest_a_durable_commit_covers_the_write_ahead_log() {
    let (dir, _) = Daemon::prepare(&Options::default(), &[]);
    let d = Daemon::start(dir);
    let mut v = Visitor::new(&d).await;
    v.say("What are your opening hours?").await;
    v.message_from("bot").await;
    let commits = counter(&d.metrics().await, "handoffd_journal_commits_total");
    assert!(commits >= 1, "the turn was committed");
    let mut durable = 0;
    for _ in 0..40 {
        durable = counter(&d.metrics().await, "handoffd_journal_durable_commits_total");
        if durable >= 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        durable >= 1,
        "no durable commit within 4 s of the last write"
    );
    let segments: Vec<_> = std::fs::read_dir(d.dir.path().join("data/handoffd.wal"))
        .expect("the write-ahead log's directory")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".wal"))
        .collect();
    assert_eq!(segments.len(), 1, "old segments are removed");
}
