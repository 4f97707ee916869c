//! A burst of escalations against two agents of capacity 1.

use std::time::Duration;

use serde_json::json;

use crate::support::*;

async fn take_offer(agent: &mut Ws) -> String {
    let offer = agent
        .expect_skipping("offer", &["ack", "released", "message"])
        .await;
    let cid = offer["conversation_id"].as_str().expect("cid").to_string();
    agent
        .send(json!({"type": "accept", "conversation_id": cid}))
        .await;
    let assigned = agent.expect_skipping("assigned", &["ack", "message"]).await;
    assert_eq!(assigned["conversation_id"], json!(cid));
    cid
}

#[tokio::test]
async fn twenty_escalations_two_agents_capacity_one() {
    let (dir, tokens) = Daemon::prepare(
        &Options::default(),
        &[("alice", "support", 1), ("bob", "support", 1)],
    );
    let d = Daemon::start(dir);
    let (mut alice, _) = d.agent(&tokens[0]).await;
    let (mut bob, _) = d.agent(&tokens[1]).await;

    // Twenty customers ask for a person at once.
    let visitors = futures_util::future::join_all((0..20).map(|i| {
        let d = &d;
        async move {
            let mut v = Visitor::new(d).await;
            let (cid, _) = v
                .say(&format!("customer {i}: I want to talk to a human"))
                .await;
            (v, cid)
        }
    }))
    .await;
    assert_eq!(visitors.len(), 20);

    let a1 = take_offer(&mut alice).await;
    let b1 = take_offer(&mut bob).await;
    assert_ne!(a1, b1);
    // Holding one each, neither is offered anything else.
    for agent in [&mut alice, &mut bob] {
        let extra = agent.drain(Duration::from_millis(700)).await;
        assert!(
            extra.iter().all(|f| f["type"] != "offer"),
            "an agent at capacity got an offer: {extra:?}"
        );
    }
    let (_, q) = d.api_get("/api/v1/queue").await;
    let queue = q["queue"].as_array().expect("queue").clone();
    assert_eq!(queue.len(), 18);
    let enqueued: Vec<u64> = queue
        .iter()
        .map(|e| e["enqueued_at_ms"].as_u64().unwrap_or(0))
        .collect();
    assert!(
        enqueued.windows(2).all(|w| w[0] <= w[1]),
        "queue not oldest first: {enqueued:?}"
    );
    let positions: Vec<u64> = queue
        .iter()
        .map(|e| e["position"].as_u64().unwrap_or(0))
        .collect();
    assert_eq!(positions, (1..=18).collect::<Vec<u64>>());
    let (_, stats) = d.api_get("/readyz").await;
    assert_eq!(stats["router"]["assigned"], 2);

    // Each close frees the slot, and the next in line is offered: in queue order.
    let mut expected = queue
        .iter()
        .map(|e| e["conversation_id"].as_str().unwrap_or("").to_string());
    let mut held_a = a1;
    let mut held_b = b1;
    for round in 0..3 {
        alice
            .send(json!({"type": "close", "conversation_id": held_a}))
            .await;
        held_a = take_offer(&mut alice).await;
        assert_eq!(
            Some(held_a.clone()),
            expected.next(),
            "round {round} (alice)"
        );
        bob.send(json!({"type": "close", "conversation_id": held_b}))
            .await;
        held_b = take_offer(&mut bob).await;
        assert_eq!(Some(held_b.clone()), expected.next(), "round {round} (bob)");
    }
    let (_, q) = d.api_get("/api/v1/queue").await;
    assert_eq!(q["queue"].as_array().map(|a| a.len()), Some(12));
}

#[tokio::test]
async fn offers_time_out_to_the_next_agent_and_declines_are_respected() {
    let o = Options {
        offer_timeout_secs: 1,
        ..Options::default()
    };
    let (dir, tokens) = Daemon::prepare(&o, &[("alice", "support", 1), ("bob", "support", 1)]);
    let d = Daemon::start(dir);
    let (mut alice, _) = d.agent(&tokens[0]).await;
    let mut v = Visitor::new(&d).await;
    let (cid, _) = v.say("human please").await;
    // Only alice is online: she gets it, lets it time out.
    let offer = alice.expect("offer").await;
    assert_eq!(offer["conversation_id"], json!(cid));
    let withdrawn = alice.expect_skipping("offer_withdrawn", &[]).await;
    assert_eq!(withdrawn["reason"], "timeout");
    // Nobody else is there, so it comes back to her.
    let again = alice.expect("offer").await;
    assert_eq!(again["conversation_id"], json!(cid));
    // Now bob is online; alice declines, bob gets it.
    let (mut bob, _) = d.agent(&tokens[1]).await;
    alice
        .send(json!({"type": "decline", "conversation_id": cid}))
        .await;
    let ack = alice.expect_skipping("ack", &["offer_withdrawn"]).await;
    assert_eq!(ack["request"], "decline");
    let to_bob = bob.expect("offer").await;
    assert_eq!(to_bob["conversation_id"], json!(cid));
    // Accepting an offer that is someone else's is an error.
    alice
        .send(json!({"type": "accept", "conversation_id": cid}))
        .await;
    let e = alice.expect_skipping("error", &["offer_withdrawn"]).await;
    assert_eq!(e["code"], "no_offer");
}
