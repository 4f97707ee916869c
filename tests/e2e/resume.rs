//! A widget connection cut mid-conversation resumes with exactly what it missed.

use std::time::Duration;

use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn reconnect_replays_exactly_the_missed_messages_once_in_order() {
    let (dir, tokens) = Daemon::prepare(&Options::default(), &[("bob", "support", 1)]);
    let d = Daemon::start(dir);
    let (mut agent, _) = d.agent(&tokens[0]).await;

    let mut v = Visitor::new(&d).await;
    let (conv, _) = v.say("please connect me to an agent").await;
    v.message_from("system").await; // warm handoff notice
    agent.expect("offer").await;
    agent
        .send(json!({"type": "accept", "conversation_id": conv}))
        .await;
    agent.expect_skipping("assigned", &["ack"]).await;
    v.message_from("system").await; // "bob joined"
    let seen_before_cut = v.last_seq;

    // The connection drops; the agent keeps writing.
    let token = v.token.clone();
    v.ws.close().await;
    let mut sent_seqs = Vec::new();
    for i in 1..=3 {
        agent
            .send(json!({"type": "reply", "conversation_id": conv, "text": format!("missed {i}"), "client_id": format!("x{i}")}))
            .await;
        let ack = agent.expect_skipping("ack", &["message"]).await;
        sent_seqs.push(ack["seq"].as_u64().expect("seq"));
    }

    // Reconnect with the token and the last seq seen: exactly the three, in order, once.
    let mut ws = d.widget().await;
    ws.send(json!({"type": "hello", "token": token, "last_seq": seen_before_cut}))
        .await;
    let welcome = ws.expect("welcome").await;
    assert_eq!(welcome["conversation_id"], json!(conv));
    assert_eq!(welcome["status"]["state"], "agent");
    let replayed: Vec<_> = ws
        .drain(Duration::from_millis(500))
        .await
        .into_iter()
        .filter(|f| f["type"] == "message")
        .collect();
    let texts: Vec<&str> = replayed
        .iter()
        .map(|f| f["text"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(texts, vec!["missed 1", "missed 2", "missed 3"]);
    let seqs: Vec<u64> = replayed
        .iter()
        .map(|f| f["seq"].as_u64().unwrap_or(0))
        .collect();
    assert_eq!(seqs, sent_seqs);

    // Live messages after the replay arrive once.
    agent
        .send(json!({"type": "reply", "conversation_id": conv, "text": "live again", "client_id": "x4"}))
        .await;
    agent.expect_skipping("ack", &["message"]).await;
    let live: Vec<_> = ws
        .drain(Duration::from_millis(500))
        .await
        .into_iter()
        .filter(|f| f["type"] == "message")
        .collect();
    assert_eq!(live.len(), 1, "{live:?}");
    assert_eq!(live[0]["text"], "live again");

    // A customer message resent with the same client id (its ack was lost) is stored once.
    ws.send(json!({"type": "message", "text": "are you there?", "client_id": "dup-1"}))
        .await;
    let a1 = ws
        .expect_skipping("ack", &["message", "typing", "status"])
        .await;
    ws.send(json!({"type": "message", "text": "are you there?", "client_id": "dup-1"}))
        .await;
    let a2 = ws
        .expect_skipping("ack", &["message", "typing", "status"])
        .await;
    assert_eq!(a1["seq"], a2["seq"]);
    assert_eq!(a2["duplicate"], true);
    let c = d.conversation(&conv).await;
    let count = c["transcript"]
        .as_array()
        .expect("transcript")
        .iter()
        .filter(|m| m["text"] == "are you there?")
        .count();
    assert_eq!(count, 1);

    // A fresh page (no last_seq) gets the whole visible history, its own messages included.
    let mut page = d.widget().await;
    page.send(json!({"type": "hello", "token": v.token})).await;
    page.expect("welcome").await;
    let all: Vec<_> = page
        .drain(Duration::from_millis(500))
        .await
        .into_iter()
        .filter(|f| f["type"] == "message")
        .collect();
    let seqs: Vec<u64> = all.iter().map(|f| f["seq"].as_u64().unwrap_or(0)).collect();
    let mut sorted = seqs.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(seqs, sorted, "history in order, no duplicates");
    assert!(
        all.iter()
            .any(|f| f["role"] == "customer" && f["client_id"] == "dup-1")
    );

    // A forged token is refused.
    let mut bad = d.widget().await;
    bad.send(json!({"type": "hello", "token": "v1.abcdef.AAAA"}))
        .await;
    let e = bad.expect("error").await;
    assert_eq!(e["code"], "invalid_token");
    // The error frame is followed by a close frame that says why: the session has stopped by
    // then, and its writer still sends what was queued.
    assert_eq!(
        bad.close_frame_within(Duration::from_secs(5)).await,
        Some((1008, "invalid token".to_string()))
    );
}
