//! When nobody can answer: no agent of the team online, or the team outside its business
//! hours. The customer is told and waits, or goes back to the bot, as the team says.

use std::time::Duration;

use serde_json::{Value, json};

use crate::mail_support::*;
use crate::support::*;

fn options(extra: &str) -> Options {
    Options {
        requeue_after_disconnect_secs: 1,
        extra: extra.into(),
        ..Options::default()
    }
}

/// Waits for a system message containing `needle`.
async fn system_message_with(v: &mut Visitor, needle: &str) -> String {
    for _ in 0..20 {
        let m = v.message_from("system").await;
        let text = m["text"].as_str().unwrap_or_default().to_string();
        if text.contains(needle) {
            return text;
        }
    }
    panic!("no system message with `{needle}`");
}

/// Polls the conversation until its owner is `owner`.
async fn owner_becomes(d: &Daemon, cid: &str, owner: &str) -> Value {
    let mut last = Value::Null;
    for _ in 0..200 {
        last = d.conversation(cid).await;
        if last["conversation"]["owner"]["state"] == owner {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("owner never became {owner}: {last}");
}

#[tokio::test]
async fn a_customer_waiting_with_nobody_online_is_told_and_served_when_someone_comes() {
    let (dir, tokens) = Daemon::prepare(&options(""), &[("ana", "support", 1)]);
    let d = Daemon::start(dir);
    let mut v = Visitor::new(&d).await;
    let (cid, _) = v.say("I want to talk to a human please").await;
    system_message_with(&mut v, "Nobody from our team is online right now").await;
    let (mut ana, _) = d.agent(&tokens[0]).await;
    let offer = ana.until("offer").await;
    assert_eq!(offer["conversation_id"], json!(cid));
}

#[tokio::test]
async fn when_a_teams_last_agent_leaves_its_waiting_customers_go_back_to_the_bot() {
    let o = options(
        r#"
[[router.teams]]
name = "nights"
when_no_agent = "bot"

[[router.rules]]
team = "nights"
"#,
    );
    let (dir, tokens) = Daemon::prepare(&o, &[("nina", "nights", 1)]);
    let d = Daemon::start(dir);
    let (mut nina, _) = d.agent(&tokens[0]).await;
    // Nina takes the first customer; the second waits, since she is full.
    let (mut first, a) = escalate(&d, &mut nina).await;
    let mut second = Visitor::new(&d).await;
    let (b, _) = second.say("I want to talk to a human please").await;
    let q = d.queue_of(1).await;
    assert_eq!(q["queue"][0]["conversation_id"], json!(b), "{q}");

    // Nina leaves. After the grace period both customers go back to the bot, told so.
    nina.close().await;
    for (v, cid) in [(&mut first, &a), (&mut second, &b)] {
        system_message_with(v, "Nobody from our team can take this right now").await;
        let c = owner_becomes(&d, cid, "bot").await;
        let notes: Vec<&str> = c["transcript"]
            .as_array()
            .expect("transcript")
            .iter()
            .filter(|m| m["role"] == "note")
            .filter_map(|m| m["text"].as_str())
            .collect();
        assert!(
            notes
                .iter()
                .any(|n| n.contains("Returned to the bot: no agent of team nights is online")),
            "{notes:?}"
        );
    }
    // The bot answers again.
    second.say("What are your opening hours?").await;
    let m = second.message_from("bot").await;
    assert_eq!(m["text"], "We are open 9 to 5.");
}

#[tokio::test]
async fn with_nobody_online_a_chat_goes_on_by_email_and_mail_replies_come_back_to_it() {
    let Some(dovecot) = Dovecot::start().await else {
        return;
    };
    let mut sink = SmtpSink::start().await;
    let o = options(&format!(
        r#"
[[router.teams]]
name = "mail"
when_no_agent = "email"

[[router.rules]]
team = "mail"

{}
"#,
        email_config(dovecot.port, sink.port, true)
    ));
    let (dir, tokens) = Daemon::prepare(&o, &[("mia", "mail", 2)]);
    let d = Daemon::start(dir);
    let mut v = Visitor::new(&d).await;
    let (cid, _) = v.say("I want to talk to a human please").await;
    system_message_with(&mut v, "Leave your email address here").await;
    v.say("Sure, it's jo.doe@example.test").await;
    let thanks = system_message_with(&mut v, "jo.doe@example.test").await;
    assert!(thanks.starts_with("Thanks!"), "{thanks}");

    // Mia comes online later, takes it, and sees where replies also go.
    let (mut mia, _) = d.agent(&tokens[0]).await;
    let offer = mia.until("offer").await;
    assert_eq!(offer["conversation_id"], json!(cid));
    assert_eq!(offer["package"]["follow_up_email"], "jo.doe@example.test");
    mia.send(json!({"type": "accept", "conversation_id": cid}))
        .await;
    mia.until("assigned").await;
    mia.send(json!({"type": "reply", "conversation_id": cid, "text": "Hello Jo, your refund is on its way."}))
        .await;
    mia.until("ack").await;
    // The chat shows it, and so does Jo's mailbox.
    let m = v.message_from("agent").await;
    assert_eq!(m["text"], "Hello Jo, your refund is on its way.");
    let (mail, others) = sink.until_body("your refund is on its way").await;
    assert!(others.is_empty(), "nothing else was mailed: {others:?}");
    assert_eq!(mail.rcpt, vec!["jo.doe@example.test".to_string()]);
    assert_eq!(
        mail.header("Subject").as_deref(),
        Some("Re: Your conversation with us")
    );
    let sent_id = mail.message_id();

    // Jo answers by mail: it lands in the same conversation, in front of Mia.
    dovecot
        .deliver(&format!(
            "From: Jo Doe <jo.doe@example.test>\nTo: {USER}\nSubject: Re: Your conversation with us\n\
             Message-ID: <jo-1@example.test>\nIn-Reply-To: <{sent_id}>\nReferences: <{sent_id}>\n\n\
             Thank you, that is all I needed.\n"
        ))
        .await;
    // (Mia's own reply comes back to her sessions first.)
    let mut msg = mia.until("message").await;
    while msg["message"]["role"] == "agent" {
        msg = mia.until("message").await;
    }
    assert_eq!(msg["conversation_id"], json!(cid), "{msg}");
    assert_eq!(msg["message"]["role"], "customer");
    assert_eq!(msg["message"]["text"], "Thank you, that is all I needed.");
    let (_, list) = d.api_get("/api/v1/conversations?channel=email").await;
    assert_eq!(
        list["conversations"].as_array().map(Vec::len),
        Some(0),
        "no separate email conversation: {list}"
    );
}

/// Friday 2026-12-04, 16:50 in Berlin; Saturday 10:00; Monday 2026-12-07, 09:20 and 09:21.
const FRIDAY_1650: u64 = 1_796_399_400_000;
const SATURDAY_1000: u64 = 1_796_461_200_000;
const MONDAY_0920: u64 = 1_796_631_600_000;
const MONDAY_0921: u64 = 1_796_631_660_000;

/// Sets the daemon's clock; returns how many SLA deadlines passed.
async fn set_clock(d: &Daemon, at_ms: u64) -> u64 {
    let (status, body) = d
        .api_post("/api/v1/debug/clock", json!({"set_ms": at_ms}))
        .await;
    assert_eq!(status, 200, "{body}");
    body["breaches"].as_u64().expect("breaches")
}

#[tokio::test]
async fn business_hours_pause_sla_timers_and_closed_teams_apply_their_fallback() {
    let hours = r#"time_zone = "Europe/Berlin"
monday = ["09:00-17:00"]
tuesday = ["09:00-17:00"]
wednesday = ["09:00-17:00"]
thursday = ["09:00-17:00"]
friday = ["09:00-17:00"]
holidays = ["2026-12-24"]"#;
    let o = options(&format!(
        r#"
[debug]
clock_control = true

[[router.teams]]
name = "office"
when_closed = "queue"
[router.teams.business_hours]
{hours}

[[router.teams]]
name = "shop"
when_closed = "bot"
closed_message = "The shop desk is closed until {{next_open}}."
[router.teams.business_hours]
{hours}

[[router.sla]]
name = "office"
teams = ["office"]
first_response_secs = 1800
on_first_response_breach = ["notify_supervisors"]

[[router.rules]]
attributes = {{ desk = "shop" }}
team = "shop"

[[router.rules]]
team = "office"
"#
    ));
    let (dir, tokens) = Daemon::prepare(&o, &[("olga", "office", 3)]);
    let d = Daemon::start(dir);
    let (mut olga, _) = d.agent(&tokens[0]).await;

    // Friday 16:50: open. A 30-minute first response has ten minutes today, twenty on
    // Monday from 09:00.
    set_clock(&d, FRIDAY_1650).await;
    let mut fri = Visitor::new(&d).await;
    let (fri_id, _) = fri.say("I want to talk to a human please").await;
    let offer = olga.until("offer").await;
    assert_eq!(offer["conversation_id"], json!(fri_id));
    let q = d.queue_of(1).await;
    let timer = q["queue"][0]["sla"]
        .as_array()
        .and_then(|s| s.iter().find(|t| t["target"] == "first_response").cloned())
        .expect("first response timer");
    let due = timer["due_at_ms"].as_u64().expect("due");
    let started = timer["started_at_ms"].as_u64().expect("start");
    let late_by = started - FRIDAY_1650;
    assert!(
        late_by < 10_000,
        "started {late_by} ms after the clock was set"
    );
    assert_eq!(
        due,
        MONDAY_0920 + late_by,
        "due Monday 09:20, not Friday 17:20"
    );
    olga.send(json!({"type": "accept", "conversation_id": fri_id}))
        .await;
    olga.until("assigned").await;

    // Saturday 10:00: closed. The office's customer waits and is told when it opens.
    set_clock(&d, SATURDAY_1000).await;
    let mut sat = Visitor::new(&d).await;
    let (sat_id, _) = sat.say("I want to talk to a human please").await;
    let closed = system_message_with(&mut sat, "away right now").await;
    assert!(
        closed.contains("Monday") && closed.contains("09:00"),
        "{closed}"
    );
    // Olga is online and has room, but it is outside hours: she is still offered it (an
    // agent at work outside hours may take it), and it stays in the queue until then.
    let offer = olga.until("offer").await;
    assert_eq!(offer["conversation_id"], json!(sat_id));

    // The shop's customer goes back to the bot, told when the desk opens.
    let mut shopper = Visitor::new(&d).await;
    let (shop_id, _) = shopper.say("What are your opening hours?").await;
    shopper.message_from("bot").await;
    let (status, body) = d
        .api_put(
            &format!("/api/v1/conversations/{shop_id}/attributes"),
            json!({"desk": "shop"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    shopper.say("I want to talk to a human please").await;
    let told = system_message_with(&mut shopper, "The shop desk is closed until").await;
    assert!(told.contains("Monday"), "{told}");
    let c = owner_becomes(&d, &shop_id, "bot").await;
    assert!(
        c["transcript"]
            .as_array()
            .expect("transcript")
            .iter()
            .any(|m| m["text"]
                .as_str()
                .is_some_and(|t| t.contains("team shop is outside its business hours"))),
        "{c}"
    );

    // Monday 09:21: Friday's first response is one minute late.
    assert_eq!(set_clock(&d, MONDAY_0921).await, 1);
    let metrics = d.metrics().await;
    assert!(
        metrics
            .contains("handoffd_sla_breaches_total{team=\"office\",target=\"first_response\"} 1"),
        "{metrics}"
    );
}
