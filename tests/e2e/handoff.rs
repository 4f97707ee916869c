//! The whole path: bot answers, handoff with the package, agent replies, close, handback.

use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn faq_then_handoff_then_agent_then_handback_to_the_bot() {
    let (dir, tokens) = Daemon::prepare(&Options::default(), &[("alice", "support", 2)]);
    let d = Daemon::start(dir);
    let (mut agent, welcome) = d.agent(&tokens[0]).await;
    assert_eq!(welcome["agent"]["id"], "alice");

    // The bot answers an FAQ question.
    let mut v = Visitor::new(&d).await;
    let (conv, seq1) = v.say("what are your opening hours?").await;
    assert_eq!(seq1, 1);
    let answer = v.message_from("bot").await;
    assert_eq!(answer["text"], "We are open 9 to 5.");

    // Asking for a person: warm handoff message, and an offer with the whole transcript.
    v.say("I want to talk to a human please").await;
    let warm = v.message_from("system").await;
    assert!(
        warm["text"].as_str().unwrap_or("").contains("person"),
        "{warm}"
    );
    let offer = agent.expect("offer").await;
    assert_eq!(offer["conversation_id"], json!(conv));
    let pkg = &offer["package"];
    let texts: Vec<&str> = pkg["transcript"]
        .as_array()
        .expect("transcript")
        .iter()
        .map(|m| m["text"].as_str().unwrap_or(""))
        .collect();
    assert!(texts.contains(&"what are your opening hours?"), "{texts:?}");
    assert!(texts.contains(&"We are open 9 to 5."), "{texts:?}");
    assert!(
        texts.contains(&"I want to talk to a human please"),
        "{texts:?}"
    );
    assert_eq!(pkg["triggers"][0]["trigger"], "explicit_request");
    assert_eq!(pkg["team"], "support");
    assert_eq!(pkg["channel"], "widget");
    assert!(
        pkg["summary"]
            .as_str()
            .unwrap_or("")
            .contains("opening hours"),
        "{pkg}"
    );

    // While queued the bot is silent.
    v.say("hello? anyone?").await;
    let quiet = v.ws.drain(std::time::Duration::from_millis(400)).await;
    assert!(
        quiet.iter().all(|f| f["role"] != "bot"),
        "bot spoke while queued: {quiet:?}"
    );

    // Accept, reply, the customer sees it with the agent's name.
    agent
        .send(json!({"type": "accept", "conversation_id": conv}))
        .await;
    let assigned = agent.expect_skipping("assigned", &["ack", "typing"]).await;
    assert_eq!(assigned["conversation_id"], json!(conv));
    let joined = v.message_from("system").await;
    assert!(
        joined["text"].as_str().unwrap_or("").contains("alice"),
        "{joined}"
    );
    agent
        .send(json!({"type": "reply", "conversation_id": conv, "text": "Hi, I'm Alice. How can I help?", "client_id": "r1"}))
        .await;
    let ack = agent.expect_skipping("ack", &["message", "typing"]).await;
    assert_eq!(ack["request"], "reply");
    let from_agent = v.message_from("agent").await;
    assert_eq!(from_agent["text"], "Hi, I'm Alice. How can I help?");
    assert_eq!(from_agent["author_name"], "alice");

    // The customer's messages now go to the agent live, and the bot stays silent.
    v.say("my order 12345678 is late").await;
    // (The agent's sessions also get the agent's own replies, for other open tabs.)
    let live = loop {
        let f = agent.expect_skipping("message", &["ack", "typing"]).await;
        if f["message"]["role"] != "agent" {
            break f;
        }
    };
    assert_eq!(live["message"]["text"], "my order 12345678 is late");
    assert_eq!(live["message"]["role"], "customer");

    // An internal note never reaches the customer.
    agent
        .send(json!({"type": "note", "conversation_id": conv, "text": "VIP customer, be nice"}))
        .await;
    agent.expect_skipping("ack", &["message", "typing"]).await;

    // Close: the bot owns it again and is told the human part ended.
    agent
        .send(json!({"type": "close", "conversation_id": conv}))
        .await;
    let ack = agent
        .expect_skipping("ack", &["message", "typing", "released"])
        .await;
    assert_eq!(ack["request"], "close");
    let back = v.message_from("system").await;
    assert!(
        back["text"].as_str().unwrap_or("").contains("ended"),
        "{back}"
    );

    // The next question is the bot's, and the bot was given the agent's part.
    v.say("how do I reset my password").await;
    let bot = v.message_from("bot").await;
    assert_eq!(
        bot["text"],
        "Use the Forgot password link on the sign-in page."
    );

    let c = d.conversation(&conv).await;
    assert_eq!(c["conversation"]["owner"]["state"], "bot");
    let transcript = c["transcript"].as_array().expect("transcript");
    let last_bot = transcript
        .iter()
        .rev()
        .find(|m| m["role"] == "bot")
        .expect("bot message");
    assert_eq!(last_bot["bot"]["resumed_after_handoff"], true, "{last_bot}");
    assert!(
        last_bot["bot"]["agent_messages_seen"].as_u64().unwrap_or(0) >= 1,
        "{last_bot}"
    );
    // The agent's messages are marked as the human stretch.
    let agent_msg = transcript
        .iter()
        .find(|m| m["role"] == "agent")
        .expect("agent msg");
    assert_eq!(agent_msg["handoff"], 1);
    // Notes are in the transcript for people, never on the widget.
    assert!(
        transcript
            .iter()
            .any(|m| m["role"] == "note" && m["text"] == "VIP customer, be nice")
    );
    let seen = v.ws.drain(std::time::Duration::from_millis(300)).await;
    assert!(seen.iter().all(|f| f["text"] != "VIP customer, be nice"));
    // Entities were collected along the way.
    assert!(
        c["entities"]
            .as_array()
            .expect("entities")
            .iter()
            .any(|e| e["kind"] == "order_number" && e["value"] == "12345678"),
        "{}",
        c["entities"]
    );
}

#[tokio::test]
async fn metrics_count_handoffs_messages_and_waits() {
    let (dir, tokens) = Daemon::prepare(&Options::default(), &[("alice", "support", 2)]);
    let d = Daemon::start(dir);
    let (mut agent, _) = d.agent(&tokens[0]).await;
    let mut v = Visitor::new(&d).await;
    let (conv, _) = v.say("I want to talk to a human please").await;
    agent.expect("offer").await;
    agent
        .send(json!({"type": "accept", "conversation_id": conv}))
        .await;
    agent.expect_skipping("assigned", &["ack"]).await;
    agent
        .send(json!({"type": "reply", "conversation_id": conv, "text": "hello"}))
        .await;
    agent.expect_skipping("ack", &["message"]).await;
    let mut w = Visitor::new(&d).await;
    w.say("my lawyer will call you").await;
    w.message_from("system").await;

    let http = reqwest::Client::new();
    let unauthorised = http.get(d.url("/metrics")).send().await.expect("GET");
    assert_eq!(unauthorised.status().as_u16(), 401);
    let text = http
        .get(d.url("/metrics"))
        .bearer_auth(API_KEY)
        .send()
        .await
        .expect("GET")
        .text()
        .await
        .expect("body");
    for line in [
        "handoffd_handoffs_total{trigger=\"explicit_request\"} 1",
        "handoffd_handoffs_total{trigger=\"keyword_rule\"} 1",
        "handoffd_messages_total{channel=\"widget\",direction=\"in\"} 2",
        "handoffd_time_to_assignment_seconds_count 1",
        "handoffd_time_to_first_response_seconds_count 1",
        "handoffd_queue_depth{team=\"support\"} 1",
        "handoffd_agents_online 1",
        "handoffd_agent_utilisation{agent=\"alice\"} 0.5",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing `{line}` in:\n{text}"
        );
    }
    let out: u64 = text
        .lines()
        .find(|l| l.starts_with("handoffd_messages_total{channel=\"widget\",direction=\"out\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(
        out >= 4,
        "warm notices, join notice and the agent's reply: {out}"
    );
}

#[tokio::test]
async fn keyword_rules_and_low_confidence_escalate_with_their_evidence() {
    let (dir, _) = Daemon::prepare(&Options::default(), &[]);
    let d = Daemon::start(dir);

    let mut v = Visitor::new(&d).await;
    let (legal, _) = v.say("I will call my lawyer about this").await;
    v.message_from("system").await;
    let c = d.conversation(&legal).await;
    let pkg = &c["handoff_package"];
    assert_eq!(pkg["triggers"][0]["trigger"], "keyword_rule");
    assert!(
        pkg["triggers"][0]["evidence"]
            .as_str()
            .unwrap_or("")
            .contains("legal")
    );
    assert_eq!(pkg["priority"], 3);

    // Two unknown questions in a row: the bot's fallback once, then a handoff.
    let mut w = Visitor::new(&d).await;
    let (conv, _) = w.say("do you sell submarines with wooden propellers").await;
    let fallback = w.message_from("bot").await;
    assert!(fallback["text"].as_str().unwrap_or("").contains("Sorry"));
    w.say("can I pay for the submarine with seashells").await;
    w.message_from("system").await;
    let c = d.conversation(&conv).await;
    assert_eq!(c["conversation"]["owner"]["state"], "queued");
    assert_eq!(
        c["handoff_package"]["triggers"][0]["trigger"],
        "low_confidence"
    );
    assert_eq!(
        c["handoff_package"]["confidence_history"]
            .as_array()
            .map(|a| a.len()),
        Some(2)
    );
}
