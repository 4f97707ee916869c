//! Each escalation trigger fires through the real daemon, and its reasons reach the agent in
//! the offer's handoff package.

use serde_json::{Value, json};

use crate::support::*;

/// Sends the customer's lines (waiting for the bot's answer where it gives one) and returns
/// the offer the agent receives for that conversation.
async fn offer_after(d: &Daemon, agent: &mut Ws, lines: &[&str]) -> Value {
    let mut v = Visitor::new(d).await;
    let mut cid = String::new();
    for line in lines {
        let (c, _) = v.say(line).await;
        cid = c;
    }
    loop {
        let offer = agent.expect_skipping("offer", &["offer_withdrawn"]).await;
        if offer["conversation_id"] == json!(cid) {
            return offer;
        }
    }
}

fn triggers(offer: &Value) -> Vec<String> {
    offer["package"]["triggers"]
        .as_array()
        .expect("triggers")
        .iter()
        .map(|t| t["trigger"].as_str().unwrap_or("").to_string())
        .collect()
}

fn evidence(offer: &Value, trigger: &str) -> String {
    offer["package"]["triggers"]
        .as_array()
        .expect("triggers")
        .iter()
        .find(|t| t["trigger"] == trigger)
        .map(|t| t["evidence"].as_str().unwrap_or("").to_string())
        .unwrap_or_default()
}

#[tokio::test]
async fn every_trigger_reaches_the_agent_with_its_evidence() {
    let o = Options {
        extra: r#"
[[bot.faq]]
question = "I want to change the name on my invoice"
answer = "Let me get someone from billing for that."
handoff = true
"#
        .into(),
        ..Options::default()
    };
    let (dir, tokens) = Daemon::prepare(&o, &[("alice", "support", 50)]);
    let d = Daemon::start(dir);
    let (mut agent, _) = d.agent(&tokens[0]).await;

    // explicit_request, in Spanish.
    let offer = offer_after(
        &d,
        &mut agent,
        &["quiero hablar con una persona, por favor"],
    )
    .await;
    assert!(
        triggers(&offer).contains(&"explicit_request".to_string()),
        "{offer}"
    );

    // keyword_rule.
    let offer = offer_after(&d, &mut agent, &["my lawyer will hear about this"]).await;
    assert_eq!(triggers(&offer), vec!["keyword_rule"]);
    assert!(evidence(&offer, "keyword_rule").contains("legal"));
    assert_eq!(offer["package"]["priority"], 3);

    // sensitive_intent: a request to act, after a policy question that did not escalate.
    let offer = offer_after(
        &d,
        &mut agent,
        &[
            "what are your opening hours?",
            "I want my money back for the broken blender",
        ],
    )
    .await;
    assert!(
        triggers(&offer).contains(&"sensitive_intent".to_string()),
        "{offer}"
    );
    assert!(
        evidence(&offer, "sensitive_intent").contains("refund"),
        "{offer}"
    );

    // negative_sentiment.
    let offer = offer_after(
        &d,
        &mut agent,
        &["This is absolutely terrible, the WORST service I have ever had!!!"],
    )
    .await;
    assert!(
        triggers(&offer).contains(&"negative_sentiment".to_string()),
        "{offer}"
    );
    assert!(
        offer["package"]["sentiment"]["lowest"]
            .as_f64()
            .unwrap_or(0.0)
            < -0.5
    );

    // repetition: the same question three times, rephrased, with a typo. (The FAQ bot
    // answers it each time, so this is not low confidence.)
    let offer = offer_after(
        &d,
        &mut agent,
        &[
            "how do I reset my password",
            "how can I reset my pasword?",
            "reset password, how do I do it",
        ],
    )
    .await;
    assert!(
        triggers(&offer).contains(&"repetition".to_string()),
        "{offer}"
    );

    // bot_handoff: an FAQ entry only people handle.
    let offer = offer_after(&d, &mut agent, &["I want to change the name on my invoice"]).await;
    assert_eq!(triggers(&offer), vec!["bot_handoff"]);
    let transcript = offer["package"]["transcript"]
        .as_array()
        .expect("transcript");
    assert!(
        transcript
            .iter()
            .any(|m| m["text"] == "Let me get someone from billing for that."),
        "the bot's own handoff message is part of the transcript"
    );

    // low_confidence.
    let offer = offer_after(
        &d,
        &mut agent,
        &[
            "do you ship submarines",
            "can I pay for the submarine in seashells",
        ],
    )
    .await;
    // The bot's fallback twice in a row is also the bot repeating itself.
    let t = triggers(&offer);
    assert!(t.contains(&"low_confidence".to_string()), "{t:?}");
    assert!(
        t.iter().all(|t| t == "low_confidence" || t == "repetition"),
        "{t:?}"
    );
    assert_eq!(
        offer["package"]["confidence_history"]
            .as_array()
            .map(|a| a.len()),
        Some(2)
    );
}

#[tokio::test]
async fn long_conversations_escalate_and_good_ones_do_not() {
    let o = Options {
        extra: "[escalation.long_conversation]\nmax_customer_turns = 4\n".into(),
        ..Options::default()
    };
    let (dir, tokens) = Daemon::prepare(&o, &[("alice", "support", 5)]);
    let d = Daemon::start(dir);
    let (mut agent, _) = d.agent(&tokens[0]).await;

    // A friendly conversation the bot handles: no escalation.
    let mut happy = Visitor::new(&d).await;
    let (happy_id, _) = happy.say("when are you open?").await;
    happy.message_from("bot").await;
    happy.say("great, thanks a lot!").await;
    happy.ws.drain(std::time::Duration::from_millis(300)).await;

    let offer = offer_after(
        &d,
        &mut agent,
        &[
            "when are you open?",
            "and how do I reset my password",
            "what are your opening hours on saturday",
            "ok and the password reset link?",
        ],
    )
    .await;
    assert!(
        triggers(&offer).contains(&"long_conversation".to_string()),
        "{offer}"
    );
    let c = d.conversation(&happy_id).await;
    assert_eq!(c["conversation"]["owner"]["state"], "bot");
}

#[tokio::test]
async fn exported_history_replays_through_eval_to_the_same_decision() {
    let (dir, _) = Daemon::prepare(&Options::default(), &[]);
    let d = Daemon::start(dir);
    let mut v = Visitor::new(&d).await;
    let (cid, _) = v.say("what are your opening hours?").await;
    v.message_from("bot").await;
    v.say("ok, now let me talk to a human").await;
    v.message_from("system").await;
    let mut calm = Visitor::new(&d).await;
    calm.say("how do I reset my password").await;
    calm.message_from("bot").await;
    let dir = d.kill9();

    let config = dir.path().join("config.toml");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_handoffd"))
        .arg("--config")
        .arg(&config)
        .arg("export")
        .output()
        .expect("export");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert_eq!(lines.len(), 2);
    let escalated = lines
        .iter()
        .find(|l| l["id"] == json!(cid))
        .expect("exported");
    assert_eq!(escalated["expected"], json!({"escalate": true, "at": 2}));
    assert_eq!(escalated["messages"][1]["role"], "bot");
    assert!(escalated["messages"][1]["confidence"].as_f64().is_some());

    let file = dir.path().join("history.jsonl");
    std::fs::write(&file, &text).expect("write");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_handoffd"))
        .arg("--config")
        .arg(&config)
        .args(["eval", "--json"])
        .arg(&file)
        .output()
        .expect("eval");
    assert!(out.status.success());
    let doc: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(doc["summary"]["overall"]["true_positives"], 1);
    assert_eq!(doc["summary"]["overall"]["true_negatives"], 1);
    assert_eq!(doc["summary"]["overall"]["premature"], 0);
    assert_eq!(doc["summary"]["overall"]["late"], 0);
}
