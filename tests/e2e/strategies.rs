//! Assignment strategies and capacity weights through the real daemon: a manual team whose
//! agents claim from the queue, a round-robin team, and a channel that weighs half a chat.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::*;

fn with(extra: &str) -> Options {
    Options {
        extra: extra.into(),
        ..Options::default()
    }
}

/// Frames until one of `ty` comes, skipping queue pushes and the usual noise.
async fn expect_past_queue(ws: &mut Ws, ty: &str) -> Value {
    ws.expect_skipping(ty, &["typing", "status", "pong", "queue"])
        .await
}

#[tokio::test]
async fn a_manual_team_shows_its_queue_and_the_first_claim_wins() {
    let o = with(
        r#"
[[router.teams]]
name = "desk"
strategy = "manual"

[[router.rules]]
team = "desk"
"#,
    );
    let (dir, tokens) = Daemon::prepare(&o, &[("ana", "desk", 2), ("bo", "desk", 2)]);
    let d = Daemon::start(dir);
    let (mut ana, _) = d.agent(&tokens[0]).await;
    let (mut bo, _) = d.agent(&tokens[1]).await;
    let mut v = Visitor::new(&d).await;
    let (cid, _) = v.say("I want to talk to a human please").await;

    // No offer: the conversation shows up in the team's queue, pushed to both agents (after
    // the empty queue each was sent when they connected).
    for agent in [&mut ana, &mut bo] {
        let mut q = agent.expect("queue").await;
        if q["entries"] == json!([]) {
            q = agent.expect("queue").await;
        }
        let entries = q["entries"].as_array().expect("entries");
        assert_eq!(entries.len(), 1, "{q}");
        assert_eq!(entries[0]["conversation_id"], json!(cid));
        assert_eq!(entries[0]["team"], "desk");
        assert_eq!(entries[0]["channel"], "widget");
    }
    let quiet = ana.drain(Duration::from_millis(300)).await;
    assert!(quiet.iter().all(|f| f["type"] != "offer"), "{quiet:?}");

    // Asking gives the same view.
    bo.send(json!({"type": "get_queue"})).await;
    let q = bo.expect("queue").await;
    assert_eq!(q["entries"][0]["conversation_id"], json!(cid));

    // Ana claims it.
    ana.send(json!({"type": "claim", "conversation_id": cid}))
        .await;
    let ack = expect_past_queue(&mut ana, "ack").await;
    assert_eq!(ack["request"], "claim");
    let assigned = expect_past_queue(&mut ana, "assigned").await;
    assert_eq!(assigned["conversation_id"], json!(cid));
    assert_eq!(
        assigned["package"]["triggers"][0]["trigger"],
        "explicit_request"
    );
    // The queue the others see is empty again; Bo's claim comes too late.
    let q = bo.expect("queue").await;
    assert_eq!(q["entries"], json!([]), "{q}");
    bo.send(json!({"type": "claim", "conversation_id": cid}))
        .await;
    let err = bo.expect("error").await;
    assert_eq!(err["code"], "not_queued", "{err}");
    assert_eq!(err["request"], "claim");

    // The customer sees the agent's name; the agent's reply reaches them.
    ana.send(json!({"type": "reply", "conversation_id": cid, "text": "Ana here, how can I help?"}))
        .await;
    let m = v.message_from("agent").await;
    assert_eq!(m["text"], "Ana here, how can I help?");

    // Unknown conversations and bad frames get clear errors.
    bo.send(json!({"type": "claim", "conversation_id": "nope"}))
        .await;
    let err = expect_past_queue(&mut bo, "error").await;
    assert_eq!(err["code"], "not_queued");
    bo.send(json!({"type": "claim"})).await;
    let err = expect_past_queue(&mut bo, "error").await;
    assert_eq!(err["code"], "bad_frame", "{err}");
}

#[tokio::test]
async fn a_round_robin_team_offers_agents_in_turn() {
    let o = with(
        r#"
[[router.teams]]
name = "turns"
strategy = "round_robin"

[[router.rules]]
team = "turns"
"#,
    );
    let (dir, tokens) = Daemon::prepare(&o, &[("ann", "turns", 5), ("ben", "turns", 5)]);
    let d = Daemon::start(dir);
    let (mut ann, _) = d.agent(&tokens[0]).await;
    let (mut ben, _) = d.agent(&tokens[1]).await;
    // Balanced would give ann's second conversation to ben and then keep alternating as
    // loads even out; round robin alternates from the start whatever each one holds, which
    // shows once ann holds two and is still offered the third.
    let mut got = Vec::new();
    let mut visitors = Vec::new();
    for _ in 0..3 {
        let mut v = Visitor::new(&d).await;
        let (cid, _) = v.say("can I speak to a person").await;
        visitors.push(v);
        let (who, ws) = tokio::select! {
            f = ann.next_within(Duration::from_secs(5)) => ("ann", f),
            f = ben.next_within(Duration::from_secs(5)) => ("ben", f),
        };
        let offer = ws.expect("an offer");
        assert_eq!(offer["type"], "offer", "{offer}");
        assert_eq!(offer["conversation_id"], json!(cid));
        let agent = if who == "ann" { &mut ann } else { &mut ben };
        agent
            .send(json!({"type": "accept", "conversation_id": cid}))
            .await;
        agent.expect("ack").await;
        agent.expect("assigned").await;
        got.push(who);
    }
    assert_eq!(got, ["ann", "ben", "ann"]);
}

#[tokio::test]
async fn a_lighter_channel_lets_an_agent_hold_more() {
    let o = with(
        r#"
[router.channel_weights]
widget = 0.5
"#,
    );
    let (dir, tokens) = Daemon::prepare(&o, &[("cy", "support", 1)]);
    let d = Daemon::start(dir);
    let (mut cy, _) = d.agent(&tokens[0]).await;
    let mut visitors = Vec::new();
    let mut cids = Vec::new();
    for _ in 0..3 {
        let mut v = Visitor::new(&d).await;
        let (cid, _) = v.say("I want to talk to a human please").await;
        cids.push(cid);
        visitors.push(v);
    }
    // Capacity 1 at half a unit each: two offers, the third waits.
    let mut offered = Vec::new();
    for _ in 0..2 {
        let offer = cy.expect("offer").await;
        offered.push(offer["conversation_id"].as_str().unwrap_or("").to_string());
    }
    // (Which two depends on the order the three escalations reached the router.)
    assert_ne!(offered[0], offered[1]);
    assert!(offered.iter().all(|o| cids.contains(o)), "{offered:?}");
    let left: Vec<&String> = cids.iter().filter(|c| !offered.contains(c)).collect();
    let more = cy.drain(Duration::from_millis(500)).await;
    assert!(more.iter().all(|f| f["type"] != "offer"), "{more:?}");
    let (_, queue) = d.api_get("/api/v1/queue").await;
    let waiting: Vec<&str> = queue["queue"]
        .as_array()
        .expect("queue")
        .iter()
        .filter(|e| e["offered_to"].is_null())
        .filter_map(|e| e["conversation_id"].as_str())
        .collect();
    assert_eq!(waiting, [left[0].as_str()]);
}

/// Frames an agent gets around accepting and closing that this test does not look at.
const NOISE: &[&str] = &[
    "typing", "status", "pong", "queue", "assigned", "released", "message",
];

#[tokio::test]
async fn once_the_team_has_a_pace_queued_customers_get_an_estimated_wait() {
    let (dir, tokens) = Daemon::prepare(&Options::default(), &[("cy", "support", 1)]);
    let d = Daemon::start(dir);
    let (mut cy, _) = d.agent(&tokens[0]).await;
    let mut waiting = Vec::new();
    for _ in 0..5 {
        let mut v = Visitor::new(&d).await;
        v.say("I want to talk to a human please").await;
        waiting.push(v);
    }
    // Three conversations taken and closed one after the other give the team a pace.
    for _ in 0..3 {
        let offer = cy.expect_skipping("offer", NOISE).await;
        let cid = offer["conversation_id"].clone();
        cy.send(json!({"type": "accept", "conversation_id": cid}))
            .await;
        cy.expect_skipping("ack", NOISE).await;
        cy.send(json!({"type": "close", "conversation_id": cid}))
            .await;
        cy.expect_skipping("ack", NOISE).await;
    }
    // The last one is still waiting behind the one now offered: position 1 of the team's
    // waiting conversations or 2, with an estimate in whole minutes.
    let last = waiting.last_mut().expect("a visitor");
    let mut eta = Value::Null;
    for _ in 0..20 {
        let Some(f) = last.ws.next_within(Duration::from_secs(2)).await else {
            break;
        };
        if f["type"] == "status" && !f["eta_secs"].is_null() {
            eta = f;
            break;
        }
    }
    assert_eq!(eta["state"], "queued", "no estimate came: {eta}");
    let secs = eta["eta_secs"].as_u64().expect("eta_secs");
    assert!(secs >= 60 && secs % 60 == 0, "{eta}");
    assert!(eta["position"].as_u64().is_some(), "{eta}");
}

#[tokio::test]
async fn a_returning_customer_goes_back_to_their_agent_while_others_are_balanced() {
    let (dir, tokens) = Daemon::prepare(
        &Options::default(),
        &[("ana", "support", 3), ("bo", "support", 3)],
    );
    let d = Daemon::start(dir);
    let (mut ana, _) = d.agent(&tokens[0]).await;
    let (mut bo, _) = d.agent(&tokens[1]).await;
    bo.send(json!({"type": "presence", "status": "away"})).await;
    bo.until("ack").await;

    // Ana helps Vera and closes.
    let mut vera = Visitor::new(&d).await;
    let (vera_id, _) = vera.say("I want to talk to a human please").await;
    let offer = ana.until("offer").await;
    assert_eq!(offer["conversation_id"], json!(vera_id));
    ana.send(json!({"type": "accept", "conversation_id": vera_id}))
        .await;
    ana.until("ack").await;
    ana.until("assigned").await;
    ana.send(json!({"type": "close", "conversation_id": vera_id}))
        .await;
    ana.until("ack").await;
    // Ana takes Walt too, so she holds more than Bo once he is back.
    let mut walt = Visitor::new(&d).await;
    let (walt_id, _) = walt.say("I want to talk to a human please").await;
    let offer = ana.until("offer").await;
    assert_eq!(offer["conversation_id"], json!(walt_id));
    ana.send(json!({"type": "accept", "conversation_id": walt_id}))
        .await;
    ana.until("ack").await;
    bo.send(json!({"type": "presence", "status": "online"}))
        .await;
    bo.until("ack").await;

    // Vera comes back: she is offered to Ana, who knows her, though Bo holds less.
    vera.say("I want to talk to a human please").await;
    let offer = ana.until("offer").await;
    assert_eq!(offer["conversation_id"], json!(vera_id));
    assert_eq!(offer["package"]["previous_agent"], "ana");
    assert_eq!(offer["package"]["handoff_number"], 2);
    // A new customer goes to the least loaded agent: Bo.
    let mut zoe = Visitor::new(&d).await;
    let (zoe_id, _) = zoe.say("I want to talk to a human please").await;
    let offer = bo.until("offer").await;
    assert_eq!(offer["conversation_id"], json!(zoe_id));
    assert!(offer["package"].get("previous_agent").is_none(), "{offer}");
}
