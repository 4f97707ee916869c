//! The rest of a conversation's life: idle actors revived, agents who vanish, transfers,
//! typing, presence, queue positions, cold handoff.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::*;

async fn readyz(d: &Daemon) -> Value {
    let (status, body) = d.api_get("/readyz").await;
    assert_eq!(status, 200, "{body}");
    body
}

/// Six more FAQ topics, so that successive turns are neither repeats nor failures.
const TOPICS: [(&str, &str); 6] = [
    ("Do you ship abroad?", "We ship to 40 countries."),
    (
        "Which payment methods do you accept?",
        "Cards and bank transfers.",
    ),
    ("How long is the warranty?", "Two years on every product."),
    ("Where is your shop?", "At 1 Main Street."),
    ("Do you sell gift cards?", "Yes, from 10 to 200 euros."),
    ("Can I return a product?", "Within 30 days, unused."),
];

fn topics_config() -> String {
    TOPICS
        .iter()
        .map(|(q, a)| format!("[[bot.faq]]\nquestion = \"{q}\"\nanswer = \"{a}\"\n\n"))
        .collect()
}

#[tokio::test]
async fn idle_conversations_stop_and_come_back_from_the_journal() {
    let topics = TOPICS;
    let extra = topics_config();
    let o = Options {
        conversation_idle_secs: 1,
        extra,
        ..Options::default()
    };
    let (dir, _) = Daemon::prepare(&o, &[]);
    let d = Daemon::start(dir);
    let mut v = Visitor::new(&d).await;
    let (cid, s1) = v.say("when are you open?").await;
    v.message_from("bot").await;
    assert_eq!(readyz(&d).await["conversations_live"], 1);

    // A conversation that keeps talking outlives the timeout: each message pushes the end
    // of the idle second further out (six messages 400 ms apart span 2.4 s, and the actor
    // is still live before each one).
    let mut last_seq = s1;
    for (question, answer) in topics {
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(readyz(&d).await["conversations_live"], 1);
        let (_, seq) = v.say(question).await;
        assert_eq!(v.message_from("bot").await["text"], answer);
        assert_eq!(seq, last_seq + 2);
        last_seq = seq;
    }
    let s1 = last_seq;

    // Bounded wait for the actor to retire.
    let mut stopped = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if readyz(&d).await["conversations_live"] == 0 {
            stopped = true;
            break;
        }
    }
    assert!(stopped, "the idle conversation actor did not stop");

    // The next message revives it with its history: same conversation, next seq, and the
    // bot still sees the earlier turns.
    let (cid2, s2) = v.say("how do I reset my password").await;
    assert_eq!(cid2, cid);
    assert_eq!(s2, s1 + 2, "seq continues after the bot's answer");
    v.message_from("bot").await;
    let c = d.conversation(&cid).await;
    let last = c["transcript"]
        .as_array()
        .and_then(|t| t.last().cloned())
        .unwrap_or_default();
    // Seven turns before the actor stopped, and the customer's new message.
    assert_eq!(last["bot"]["transcript_len"], 15, "{last}");
}

/// Waits (bounded) until `/readyz` counts `live` conversation actors; false if it never does.
async fn live_becomes(d: &Daemon, live: u64) -> bool {
    for _ in 0..50 {
        if readyz(d).await["conversations_live"] == live {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test]
async fn a_conversation_stops_soon_after_its_visitor_closes_the_last_tab() {
    let o = Options {
        stop_after_leaving_secs: 1,
        ..Options::default()
    };
    let (dir, _) = Daemon::prepare(&o, &[]);
    let d = Daemon::start(dir);
    let mut a = Visitor::new(&d).await;
    let (cid, seq) = a.say("when are you open?").await;
    a.message_from("bot").await;
    let mut b = Visitor::new(&d).await;
    b.say("how do I reset my password").await;
    b.message_from("bot").await;
    // A person's conversation keeps the idle timeout when its customer leaves.
    let mut c = Visitor::new(&d).await;
    c.say("I will call my lawyer").await;
    c.message_from("system").await;
    assert!(live_becomes(&d, 3).await);

    // A second tab of the first visitor; closing the first tab leaves the visitor there.
    let mut second = d.widget().await;
    second
        .send(json!({"type": "hello", "token": a.token, "last_seq": a.last_seq}))
        .await;
    second.expect("welcome").await;
    a.ws.close().await;
    c.ws.close().await;
    tokio::time::sleep(Duration::from_millis(1600)).await;
    assert_eq!(
        readyz(&d).await["conversations_live"],
        3,
        "one tab is still open"
    );

    // The last tab closes: the bot's conversation stops; the queued one and the visitor
    // still connected keep theirs.
    second.close().await;
    assert!(live_becomes(&d, 2).await, "the conversation did not stop");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(readyz(&d).await["conversations_live"], 2);

    // The visitor comes back: the same conversation, from the store, answered as before.
    let mut back = d.widget().await;
    back.send(json!({"type": "hello", "token": a.token})).await;
    back.expect("welcome").await;
    back.send(json!({"type": "message", "text": "how do I reset my password", "client_id": "r1"}))
        .await;
    let ack = back.until("ack").await;
    assert_eq!(ack["conversation_id"], json!(cid));
    assert_eq!(
        ack["seq"],
        json!(seq + 2),
        "the seq goes on after the bot's answer"
    );
    loop {
        let m = back.until("message").await;
        if m["role"] == "bot" {
            assert_eq!(
                m["text"],
                "Use the Forgot password link on the sign-in page."
            );
            break;
        }
    }
    assert!(live_becomes(&d, 3).await);
    drop(b);
}

#[tokio::test]
async fn messages_around_each_retirement_of_a_conversation_are_stored_once_and_answered() {
    // Each message comes about when the idle conversation's actor retires (one second after
    // the last turn): before it, the connection hands it straight to the live actor; after
    // it, the actor's route is gone and the directory revives the conversation. Either way
    // each message is acknowledged once, in order, and answered.
    let o = Options {
        conversation_idle_secs: 1,
        extra: topics_config(),
        ..Options::default()
    };
    let (dir, _) = Daemon::prepare(&o, &[]);
    let d = Daemon::start(dir);
    let mut v = Visitor::new(&d).await;
    let (cid, mut last_seq) = v.say("when are you open?").await;
    v.message_from("bot").await;
    for (i, (question, answer)) in TOPICS.into_iter().enumerate() {
        // 950 to 1,200 ms: around the one-second idle timeout, a little later each time.
        tokio::time::sleep(Duration::from_millis(950 + 50 * i as u64)).await;
        let (cid2, seq) = v.say(question).await;
        assert_eq!(cid2, cid, "turn {i} stayed in the conversation");
        assert_eq!(seq, last_seq + 2, "turn {i}: no message lost or doubled");
        assert_eq!(v.message_from("bot").await["text"], answer, "turn {i}");
        last_seq = seq;
    }
    let transcript = d.conversation(&cid).await["transcript"]
        .as_array()
        .map_or(0, |t| t.len());
    assert_eq!(transcript, 14, "seven turns, each stored once");
}

#[tokio::test]
async fn an_agent_who_disconnects_loses_their_conversations_to_the_queue_in_place() {
    let o = Options {
        requeue_after_disconnect_secs: 1,
        ..Options::default()
    };
    let (dir, tokens) = Daemon::prepare(&o, &[("alice", "support", 1), ("bob", "support", 1)]);
    let d = Daemon::start(dir);
    let (mut alice, _) = d.agent(&tokens[0]).await;
    let (mut v, cid) = escalate(&d, &mut alice).await;
    let enqueued_at = d.conversation(&cid).await["handoff_package"]["escalated_at_ms"].clone();
    v.ws.drain(Duration::from_millis(300)).await; // the statuses of the first handoff

    // A quick reconnect (a page reload) keeps the conversation.
    alice.close().await;
    let (alice, welcome) = d.agent(&tokens[0]).await;
    assert_eq!(welcome["conversations"], json!([cid]));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        d.conversation(&cid).await["conversation"]["owner"]["agent_id"],
        "alice"
    );

    // Gone for good: back to the queue with its original enqueue time, offered to bob.
    alice.close().await;
    let (mut bob, _) = d.agent(&tokens[1]).await;
    let offer = bob.expect("offer").await;
    assert_eq!(offer["conversation_id"], json!(cid));
    let (_, q) = d.api_get("/api/v1/queue").await;
    assert_eq!(q["queue"][0]["conversation_id"], json!(cid));
    assert_eq!(q["queue"][0]["enqueued_at_ms"], enqueued_at);
    let status = v.ws.expect_skipping("status", &["message", "typing"]).await;
    assert_eq!(status["state"], "queued");
    let c = d.conversation(&cid).await;
    assert!(
        c["transcript"]
            .as_array()
            .expect("transcript")
            .iter()
            .any(|m| m["role"] == "note"
                && m["text"].as_str().unwrap_or("").contains("disconnected"))
    );
}

#[tokio::test]
async fn transfers_to_a_team_and_to_an_agent() {
    let o = Options {
        requeue_after_disconnect_secs: 1,
        ..Options::default()
    };
    let (dir, tokens) = Daemon::prepare(
        &o,
        &[
            ("alice", "support", 2),
            ("bob", "billing", 2),
            ("carol", "support", 2),
        ],
    );
    let d = Daemon::start(dir);
    let (mut alice, _) = d.agent(&tokens[0]).await;
    let (mut bob, _) = d.agent(&tokens[1]).await;
    let (v, cid) = escalate(&d, &mut alice).await;

    // To the billing team, with a note for whoever takes it.
    alice
        .send(json!({"type": "transfer", "conversation_id": cid, "to_team": "billing", "note": "invoice question"}))
        .await;
    let ack = alice.expect_skipping("ack", &["message", "released"]).await;
    assert_eq!(ack["request"], "transfer");
    let offer = bob.expect("offer").await;
    assert_eq!(offer["conversation_id"], json!(cid));
    assert_eq!(offer["package"]["team"], "billing");
    assert!(
        offer["package"]["transcript"]
            .as_array()
            .expect("transcript")
            .iter()
            .any(|m| m["role"] == "note"
                && m["text"]
                    .as_str()
                    .unwrap_or("")
                    .contains("invoice question"))
    );
    bob.send(json!({"type": "accept", "conversation_id": cid}))
        .await;
    bob.expect_skipping("assigned", &["ack"]).await;

    // To a named agent: only carol is offered it, even though alice is free.
    let (mut carol, _) = d.agent(&tokens[2]).await;
    bob.send(json!({"type": "transfer", "conversation_id": cid, "to_agent": "carol"}))
        .await;
    bob.expect_skipping("ack", &["message", "released"]).await;
    let offer = carol.expect("offer").await;
    assert_eq!(offer["conversation_id"], json!(cid));
    let to_alice = alice.drain(Duration::from_millis(500)).await;
    assert!(
        to_alice.iter().all(|f| f["type"] != "offer"),
        "{to_alice:?}"
    );
    // bob no longer owns it.
    bob.send(json!({"type": "reply", "conversation_id": cid, "text": "still me?"}))
        .await;
    assert_eq!(
        bob.expect_skipping("error", &["message", "released"]).await["code"],
        "not_owner"
    );
    // carol takes it, then vanishes: it goes back to its team's queue, no longer bound to
    // carol, and bob (billing) is offered it.
    carol
        .send(json!({"type": "accept", "conversation_id": cid}))
        .await;
    carol.expect_skipping("assigned", &["ack"]).await;
    carol.close().await;
    let offer = bob
        .expect_skipping("offer", &["message", "released", "typing"])
        .await;
    assert_eq!(offer["conversation_id"], json!(cid));
    drop(v);
}

#[tokio::test]
async fn typing_goes_both_ways_and_presence_controls_offers() {
    let (dir, tokens) = Daemon::prepare(&Options::default(), &[("alice", "support", 2)]);
    let d = Daemon::start(dir);
    let (mut alice, _) = d.agent(&tokens[0]).await;
    let (mut v, cid) = escalate(&d, &mut alice).await;

    v.ws.send(json!({"type": "typing", "active": true})).await;
    let t = alice.expect_skipping("typing", &["message"]).await;
    assert_eq!(t["conversation_id"], json!(cid));
    assert_eq!(t["active"], true);
    alice
        .send(json!({"type": "typing", "conversation_id": cid, "active": true}))
        .await;
    let t = v.ws.expect_skipping("typing", &["message", "status"]).await;
    assert_eq!(t["active"], true);

    // Away: no new offers until back online.
    alice
        .send(json!({"type": "presence", "status": "away"}))
        .await;
    alice.expect_skipping("ack", &["message", "typing"]).await;
    let mut w = Visitor::new(&d).await;
    let (cid2, _) = w.say("agent please").await;
    let quiet = alice.drain(Duration::from_millis(600)).await;
    assert!(quiet.iter().all(|f| f["type"] != "offer"), "{quiet:?}");
    alice
        .send(json!({"type": "presence", "status": "online"}))
        .await;
    let offer = alice
        .expect_skipping("offer", &["ack", "message", "typing"])
        .await;
    assert_eq!(offer["conversation_id"], json!(cid2));
}

#[tokio::test]
async fn queued_customers_are_told_their_position() {
    let (dir, _) = Daemon::prepare(&Options::default(), &[]);
    let d = Daemon::start(dir);
    let mut first = Visitor::new(&d).await;
    first.say("speak to a person please").await;
    let s = first.ws.expect_skipping("status", &["message"]).await;
    assert_eq!(s["state"], "queued");
    // The first status may come before the position is known; wait for the number.
    let mut s = s;
    while s["position"].is_null() {
        s = first.ws.expect_skipping("status", &["message"]).await;
    }
    assert_eq!(s["position"], 1);
    let mut second = Visitor::new(&d).await;
    second.say("I need a human").await;
    let mut s = second.ws.expect_skipping("status", &["message"]).await;
    while s["position"].is_null() {
        s = second.ws.expect_skipping("status", &["message"]).await;
    }
    assert_eq!(s["position"], 2);
}

#[tokio::test]
async fn cold_handoff_moves_silently() {
    let o = Options {
        extra: String::new(),
        ..Options::default()
    };
    let (dir, tokens) = Daemon::prepare(&o, &[("alice", "support", 1)]);
    // Switch the generated config to cold mode.
    let path = dir.path().join("config.toml");
    let text = std::fs::read_to_string(&path).expect("config");
    std::fs::write(&path, text.replace("mode = \"warm\"", "mode = \"cold\"")).expect("write");
    let d = Daemon::start(dir);
    let (mut alice, _) = d.agent(&tokens[0]).await;
    let mut v = Visitor::new(&d).await;
    let (cid, _) = v.say("real person please").await;
    alice.expect("offer").await;
    let frames = v.ws.drain(Duration::from_millis(400)).await;
    assert!(
        frames.iter().all(|f| f["type"] != "message"),
        "cold handoff told the customer: {frames:?}"
    );
    let c = d.conversation(&cid).await;
    assert_eq!(c["conversation"]["owner"]["state"], "queued");
    assert!(
        c["transcript"]
            .as_array()
            .expect("t")
            .iter()
            .all(|m| m["role"] != "system")
    );
}

#[tokio::test]
async fn an_agent_may_have_several_sessions_and_each_sees_everything() {
    let (dir, tokens) = Daemon::prepare(&Options::default(), &[("alice", "support", 1)]);
    let d = Daemon::start(dir);
    let (mut desk, _) = d.agent(&tokens[0]).await;
    let (mut phone, _) = d.agent(&tokens[0]).await;
    let mut v = Visitor::new(&d).await;
    let (cid, _) = v.say("human please").await;
    assert_eq!(desk.expect("offer").await["conversation_id"], json!(cid));
    assert_eq!(phone.expect("offer").await["conversation_id"], json!(cid));
    desk.send(json!({"type": "accept", "conversation_id": cid}))
        .await;
    desk.expect_skipping("assigned", &["ack"]).await;
    phone.expect_skipping("assigned", &["ack"]).await;
    desk.send(json!({"type": "reply", "conversation_id": cid, "text": "from the desk"}))
        .await;
    let echo = phone.expect("message").await;
    assert_eq!(echo["message"]["text"], "from the desk");
    assert_eq!(echo["message"]["role"], "agent");
    // Capacity is per agent, not per session: a second customer waits.
    let mut w = Visitor::new(&d).await;
    w.say("a person please").await;
    for s in [&mut desk, &mut phone] {
        let frames = s.drain(Duration::from_millis(500)).await;
        assert!(frames.iter().all(|f| f["type"] != "offer"), "{frames:?}");
    }
}

#[tokio::test]
async fn an_agent_reply_resent_with_the_same_client_id_is_stored_once() {
    let (dir, tokens) = Daemon::prepare(&Options::default(), &[("alice", "support", 1)]);
    let d = Daemon::start(dir);
    let (mut alice, _) = d.agent(&tokens[0]).await;
    let (mut v, cid) = escalate(&d, &mut alice).await;
    let reply =
        json!({"type": "reply", "conversation_id": cid, "text": "only once", "client_id": "same"});
    alice.send(reply.clone()).await;
    let first = alice.expect_skipping("ack", &["message"]).await;
    alice.send(reply).await;
    let second = alice.expect_skipping("ack", &["message"]).await;
    assert_eq!(first["seq"], second["seq"]);
    let c = d.conversation(&cid).await;
    let n = c["transcript"]
        .as_array()
        .expect("transcript")
        .iter()
        .filter(|m| m["text"] == "only once")
        .count();
    assert_eq!(n, 1);
    let seen: Vec<Value> =
        v.ws.drain(Duration::from_millis(400))
            .await
            .into_iter()
            .filter(|f| f["text"] == "only once")
            .collect();
    assert_eq!(seen.len(), 1, "{seen:?}");
}

#[tokio::test]
async fn deliveries_pending_at_a_crash_are_delivered_after_restart() {
    use handoffd::model::{ConversationRecord, OutboxEntry};
    use handoffd::store::{Op, Store};
    use handoffd_channels::{ChannelKind, Contact, OutboundPayload, VisibleMessage};

    let (dir, _) = Daemon::prepare(&Options::default(), &[]);
    // What a crash between journaling and delivering leaves behind: an outbox entry.
    {
        let store = Store::open(&dir.path().join("data/handoffd.redb")).expect("store");
        let record = ConversationRecord::new(
            "c-pending".into(),
            ChannelKind::Widget,
            "visitor1".into(),
            Contact {
                channel_user_id: "visitor1".into(),
                ..Default::default()
            },
            1,
        );
        let entry = OutboxEntry {
            delivery_id: "c-pending:1".into(),
            conversation_id: "c-pending".into(),
            channel: ChannelKind::Widget,
            conversation_key: "visitor1".into(),
            payload: OutboundPayload::Message(std::sync::Arc::new(VisibleMessage {
                quick_replies: Vec::new(),
                seq: 1,
                role: "bot".into(),
                author_name: None,
                text: "pending".into(),
                sent_at_ms: 1,
                client_id: None,
                delivery_mode: Default::default(),
            })),
            attempts: 0,
            created_at_ms: 1,
            stored: true,
        };
        store
            .commit(vec![
                Op::PutConversation(Box::new(record)),
                Op::PutOutbox(Box::new(entry)),
            ])
            .await
            .expect("commit");
    }
    let d = Daemon::start(dir);
    let mut delivered = false;
    for _ in 0..50 {
        if readyz(&d).await["outbox_pending"] == 0 {
            delivered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        delivered,
        "the pending delivery was not taken up after the restart"
    );
}

#[tokio::test]
async fn routing_rules_send_an_escalation_to_a_team_and_require_skills() {
    let o = Options {
        extra: r#"
[[router.rules]]
intent = "refund"
team = "billing"
skills = ["refunds"]
min_priority = 2
"#
        .into(),
        ..Options::default()
    };
    let (dir, _) = Daemon::prepare(&o, &[]);
    let d = Daemon::start(dir);
    let http = reqwest::Client::new();
    let mut tokens = Vec::new();
    for (id, skills) in [("bob", vec!["refunds"]), ("carol", vec![])] {
        let r = http
            .post(d.url("/api/v1/agents"))
            .bearer_auth(API_KEY)
            .json(&json!({"id": id, "teams": ["billing"], "skills": skills, "languages": ["en"]}))
            .send()
            .await
            .expect("POST");
        assert_eq!(r.status().as_u16(), 201);
        let body: Value = r.json().await.expect("JSON");
        tokens.push(body["token"].as_str().expect("token").to_string());
    }
    let (mut carol, _) = d.agent(&tokens[1]).await;
    let (mut bob, _) = d.agent(&tokens[0]).await;
    let mut v = Visitor::new(&d).await;
    let (cid, _) = v.say("the mixer is broken, I want my money back").await;
    let offer = bob.expect("offer").await;
    assert_eq!(offer["conversation_id"], json!(cid));
    assert_eq!(offer["package"]["team"], "billing");
    assert_eq!(offer["package"]["priority"], 2);
    let to_carol = carol.drain(Duration::from_millis(500)).await;
    assert!(
        to_carol.iter().all(|f| f["type"] != "offer"),
        "{to_carol:?}"
    );
    let (_, agents) = d.api_get("/api/v1/agents").await;
    assert!(
        agents["agents"]
            .as_array()
            .expect("agents")
            .iter()
            .any(|a| a["id"] == "bob" && a["skills"] == json!(["refunds"]))
    );
}
