//! SLA policies, breach actions and supervisors through the real daemon. Time is moved by
//! the test (`debug.clock_control` and `POST /api/v1/debug/clock`), never slept through.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::*;

/// The SLA policy every test here runs with: support's conversations must be taken within
/// a minute (else supervisors hear of it, and it moves up and over to billing), answered
/// within two (else it goes to another agent), and answered again within five.
const SLA: &str = r#"
[debug]
clock_control = true

[[router.sla]]
name = "standard"
teams = ["support"]
assignment_secs = 60
first_response_secs = 120
next_response_secs = 300
resolution_secs = 3600
on_assignment_breach = ["notify_supervisors", "raise_priority", "overflow:billing"]
on_first_response_breach = ["reassign", "notify_supervisors"]
on_next_response_breach = ["notify_supervisors"]
"#;

fn options(extra: &str) -> Options {
    Options {
        extra: format!("{SLA}\n{extra}"),
        ..Options::default()
    }
}

/// Moves the daemon's clock; returns how many deadlines passed.
async fn advance(d: &Daemon, secs: i64) -> u64 {
    let (status, body) = d
        .api_post("/api/v1/debug/clock", json!({"advance_secs": secs}))
        .await;
    assert_eq!(status, 200, "{body}");
    body["breaches"].as_u64().expect("breaches")
}

/// Adds a supervisor through the API; returns their token.
async fn add_supervisor(d: &Daemon, id: &str, teams: &[&str]) -> String {
    let (status, body) = d
        .api_post(
            "/api/v1/agents",
            json!({"id": id, "teams": teams, "capacity": 1, "supervisor": true}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["agent"]["supervisor"], true);
    body["token"].as_str().expect("token").to_string()
}

/// A supervisor's session, set away so that they get no offers of their own.
async fn supervisor(d: &Daemon, token: &str) -> Ws {
    let (mut ws, welcome) = d.agent(token).await;
    assert_eq!(welcome["agent"]["supervisor"], true, "{welcome}");
    ws.send(json!({"type": "presence", "status": "away"})).await;
    ws.until("ack").await;
    ws
}

/// Pushed overviews until one satisfies `pred`.
async fn overview_where(ws: &mut Ws, pred: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..50 {
        let o = ws.until("overview").await;
        if pred(&o) {
            return o;
        }
    }
    panic!("no overview matched");
}

fn timer<'a>(sla: &'a Value, target: &str) -> &'a Value {
    sla.as_array()
        .and_then(|a| a.iter().find(|t| t["target"] == target))
        .unwrap_or_else(|| panic!("no {target} timer in {sla}"))
}

#[tokio::test]
async fn an_unassigned_conversation_breaches_and_is_raised_moved_and_reported() {
    let (dir, tokens) = Daemon::prepare(&options(""), &[("bill", "billing", 2)]);
    let d = Daemon::start(dir);
    let sam = add_supervisor(&d, "sam", &["support"]).await;
    let mut sam = supervisor(&d, &sam).await;

    let mut v = Visitor::new(&d).await;
    let (cid, _) = v.say("I want to talk to a human please").await;
    // The supervisor sees it waiting, with its SLA deadlines.
    let o = overview_where(&mut sam, |o| {
        o["queue"].as_array().is_some_and(|q| !q.is_empty())
    })
    .await;
    let entry = &o["queue"][0];
    assert_eq!(entry["conversation_id"], json!(cid));
    let assignment = timer(&entry["sla"], "assignment");
    let started = assignment["started_at_ms"].as_u64().expect("start");
    assert_eq!(assignment["due_at_ms"].as_u64(), Some(started + 60_000));
    assert_eq!(
        timer(&entry["sla"], "first_response")["due_at_ms"].as_u64(),
        Some(started + 120_000)
    );
    let support = o["teams"]
        .as_array()
        .and_then(|t| t.iter().find(|t| t["name"] == "support"))
        .expect("support in the overview");
    assert_eq!(support["queued"], 1);
    assert_eq!(support["agents_online"], 0, "the supervisor is away");
    assert!(
        o["teams"]
            .as_array()
            .expect("teams")
            .iter()
            .all(|t| t["name"] != "billing"),
        "sam supervises support only: {o}"
    );
    let (_, q) = d.api_get("/api/v1/queue").await;
    let priority = q["queue"][0]["priority"].as_u64().expect("priority");

    // 59 seconds on: nothing yet.
    assert_eq!(advance(&d, 59).await, 0);
    // Past the minute: the breach is reported and acted on.
    assert_eq!(advance(&d, 2).await, 1);
    let breach = sam.until("sla_breach").await;
    assert_eq!(breach["conversation_id"], json!(cid));
    assert_eq!(breach["target"], "assignment");
    assert_eq!(breach["team"], "support");
    assert_eq!(breach["policy"], "standard");
    assert_eq!(breach["due_at_ms"].as_u64(), Some(started + 60_000));
    assert!(breach.get("agent_id").is_none(), "nobody held it: {breach}");
    assert_eq!(
        breach["actions"],
        json!(["notify_supervisors", "raise_priority", "overflow:billing"])
    );

    // It now waits in billing's queue, one level up, keeping its place in time.
    let mut moved = Value::Null;
    for _ in 0..100 {
        let (_, q) = d.api_get("/api/v1/queue").await;
        if q["queue"][0]["team"] == "billing" {
            moved = q["queue"][0].clone();
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(moved["conversation_id"], json!(cid), "not moved: {moved}");
    assert_eq!(moved["priority"].as_u64(), Some((priority + 1).min(3)));
    assert!(
        timer(&moved["sla"], "assignment")["breached_at_ms"].is_u64(),
        "{moved}"
    );
    // A billing agent gets it, with the reason in the transcript.
    let (mut bill, _) = d.agent(&tokens[0]).await;
    let offer = bill.until("offer").await;
    assert_eq!(offer["conversation_id"], json!(cid));
    let notes: Vec<&str> = offer["package"]["transcript"]
        .as_array()
        .expect("transcript")
        .iter()
        .filter(|m| m["role"] == "note")
        .filter_map(|m| m["text"].as_str())
        .collect();
    assert!(
        notes
            .iter()
            .any(|n| n.contains("SLA assignment breached") && n.contains("billing")),
        "{notes:?}"
    );
    let metrics = d.metrics().await;
    assert!(
        metrics.contains("handoffd_sla_breaches_total{team=\"support\",target=\"assignment\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_missed_first_response_goes_to_another_agent_and_next_responses_are_timed() {
    let (dir, tokens) =
        Daemon::prepare(&options(""), &[("ana", "support", 1), ("bo", "support", 1)]);
    let d = Daemon::start(dir);
    let sam = add_supervisor(&d, "sam", &["support"]).await;
    let mut sam = supervisor(&d, &sam).await;
    let (mut ana, _) = d.agent(&tokens[0]).await;
    let (mut v, cid) = escalate(&d, &mut ana).await;
    let (mut bo, _) = d.agent(&tokens[1]).await;

    // Ana does not answer within two minutes: the conversation goes to Bo.
    assert_eq!(advance(&d, 121).await, 1);
    let released = ana.until("released").await;
    assert_eq!(released["conversation_id"], json!(cid));
    assert_eq!(released["reason"], "sla_breach");
    let breach = sam.until("sla_breach").await;
    assert_eq!(breach["target"], "first_response");
    assert_eq!(breach["agent_id"], "ana");
    let offer = bo.until("offer").await;
    assert_eq!(offer["conversation_id"], json!(cid));
    assert!(
        offer["package"]["transcript"]
            .as_array()
            .expect("transcript")
            .iter()
            .any(|m| m["role"] == "note"
                && m["text"]
                    .as_str()
                    .is_some_and(|t| t.contains("SLA first response breached"))),
        "{offer}"
    );
    bo.send(json!({"type": "accept", "conversation_id": cid}))
        .await;
    bo.until("assigned").await;
    // Bo owes a first answer of his own, from the breach on: he answers in time.
    assert_eq!(advance(&d, 100).await, 0);
    bo.send(json!({"type": "reply", "conversation_id": cid, "text": "Hi, Bo here."}))
        .await;
    bo.until("ack").await;
    v.message_from("agent").await;
    let o = overview_where(&mut sam, |o| {
        o["agents"].as_array().is_some_and(|a| {
            a.iter().any(|a| {
                a["id"] == "bo"
                    && a["conversations"][0]["sla"].as_array().is_some_and(|s| {
                        s.iter()
                            .any(|t| t["target"] == "first_response" && t["met_at_ms"].is_u64())
                    })
            })
        })
    })
    .await;
    let bo_view = o["agents"]
        .as_array()
        .and_then(|a| a.iter().find(|a| a["id"] == "bo"))
        .expect("bo");
    assert_eq!(bo_view["load"], 1.0);
    assert_eq!(bo_view["capacity"], 1);
    assert_eq!(bo_view["connected"], true);

    // The customer writes again: Bo has five minutes; he lets them pass.
    v.say("Are you still there?").await;
    let mut next = Value::Null;
    for _ in 0..50 {
        let o = sam.until("overview").await;
        if let Some(t) = o["agents"]
            .as_array()
            .and_then(|a| a.iter().find(|a| a["id"] == "bo"))
            .and_then(|a| a["conversations"][0]["sla"].as_array())
            .and_then(|s| s.iter().find(|t| t["target"] == "next_response"))
        {
            next = t.clone();
            break;
        }
    }
    let started = next["started_at_ms"].as_u64().expect("next response timer");
    assert_eq!(next["due_at_ms"].as_u64(), Some(started + 300_000));
    assert_eq!(advance(&d, 301).await, 1);
    let breach = sam.until("sla_breach").await;
    assert_eq!(breach["target"], "next_response");
    assert_eq!(breach["agent_id"], "bo");
    // Notify only: Bo keeps the conversation.
    bo.send(json!({"type": "reply", "conversation_id": cid, "text": "Yes, sorry!"}))
        .await;
    let ack = bo.until("ack").await;
    assert_eq!(ack["conversation_id"], json!(cid));
    // Closing ends the clock: no more breaches, even an hour on (resolution would be).
    bo.send(json!({"type": "close", "conversation_id": cid}))
        .await;
    bo.until("released").await;
    assert_eq!(advance(&d, 3600).await, 0);
}

#[tokio::test]
async fn supervisors_assign_and_transfer_any_conversation_of_their_teams() {
    let (dir, tokens) = Daemon::prepare(
        &options(""),
        &[("ana", "support", 1), ("bill", "billing", 1)],
    );
    let d = Daemon::start(dir);
    let sam = add_supervisor(&d, "sam", &["support"]).await;
    let mut sam = supervisor(&d, &sam).await;
    let (mut ana, _) = d.agent(&tokens[0]).await;
    ana.send(json!({"type": "presence", "status": "away"}))
        .await;
    ana.until("ack").await;

    // Agents are not supervisors.
    ana.send(json!({"type": "get_overview"})).await;
    assert_eq!(ana.until("error").await["code"], "forbidden");
    ana.send(json!({"type": "assign", "conversation_id": "x", "agent_id": "ana"}))
        .await;
    assert_eq!(ana.until("error").await["code"], "forbidden");

    let mut v = Visitor::new(&d).await;
    let (cid, _) = v.say("I want to talk to a human please").await;
    overview_where(&mut sam, |o| o["queue"][0]["conversation_id"] == json!(cid)).await;
    // Ana is away, so nobody is offered it; Sam gives it to her anyway.
    sam.send(json!({"type": "assign", "conversation_id": cid, "agent_id": "ana"}))
        .await;
    let ack = sam.until("ack").await;
    assert_eq!(ack["request"], "assign");
    let assigned = ana.until("assigned").await;
    assert_eq!(assigned["conversation_id"], json!(cid));
    // Sam may read what Ana holds.
    sam.send(json!({"type": "get_conversation", "conversation_id": cid}))
        .await;
    let view = sam.until("conversation").await;
    assert_eq!(view["owner"]["agent_id"], "ana", "{view}");
    // Ana is full now: a second assignment to her is refused.
    let mut v2 = Visitor::new(&d).await;
    let (cid2, _) = v2.say("I want to talk to a human please").await;
    overview_where(&mut sam, |o| {
        o["queue"]
            .as_array()
            .is_some_and(|q| q.iter().any(|e| e["conversation_id"] == json!(cid2)))
    })
    .await;
    sam.send(json!({"type": "assign", "conversation_id": cid2, "agent_id": "ana"}))
        .await;
    assert_eq!(sam.until("error").await["code"], "agent_full");

    // Sam moves Ana's conversation to billing with a note that travels with it.
    sam.send(json!({"type": "transfer", "conversation_id": cid, "to_team": "billing", "note": "VIP, refund approved"}))
        .await;
    let ack = sam.until("ack").await;
    assert_eq!(ack["request"], "transfer");
    let released = ana.until("released").await;
    assert_eq!(released["conversation_id"], json!(cid));
    let (mut bill, _) = d.agent(&tokens[1]).await;
    let offer = bill.until("offer").await;
    assert_eq!(offer["conversation_id"], json!(cid));
    assert!(
        offer["package"]["transcript"]
            .as_array()
            .expect("transcript")
            .iter()
            .any(|m| m["text"]
                == "Transferred by sam (supervisor) to team billing: VIP, refund approved"),
        "{offer}"
    );
    // A waiting conversation can be transferred too, here to a named agent; a team Sam
    // does not supervise is out of his reach.
    sam.send(json!({"type": "transfer", "conversation_id": cid2, "to_agent": "bill"}))
        .await;
    sam.until("ack").await;
    let (_, q) = d.api_get("/api/v1/queue").await;
    let waiting = q["queue"]
        .as_array()
        .and_then(|q| {
            q.iter()
                .find(|e| e["conversation_id"] == json!(cid2))
                .cloned()
        })
        .expect("still waiting");
    assert_eq!(waiting["team"], "support");
    bill.send(json!({"type": "accept", "conversation_id": cid}))
        .await;
    bill.until("assigned").await;
    sam.send(json!({"type": "transfer", "conversation_id": cid, "to_team": "support"}))
        .await;
    assert_eq!(sam.until("error").await["code"], "forbidden");
}

#[tokio::test]
async fn sla_deadlines_survive_a_restart() {
    let (dir, _) = Daemon::prepare(&options(""), &[]);
    let d = Daemon::start(dir);
    let sam_token = add_supervisor(&d, "sam", &["support"]).await;
    let mut sam = supervisor(&d, &sam_token).await;
    let mut v = Visitor::new(&d).await;
    let (cid, _) = v.say("I want to talk to a human please").await;
    let o = overview_where(&mut sam, |o| o["queue"][0]["conversation_id"] == json!(cid)).await;
    let due = timer(&o["queue"][0]["sla"], "assignment")["due_at_ms"]
        .as_u64()
        .expect("due");
    drop(sam);
    drop(v);

    let d = Daemon::start(d.kill9());
    let mut sam = supervisor(&d, &sam_token).await;
    sam.send(json!({"type": "get_overview"})).await;
    let o = sam.until("overview").await;
    assert_eq!(o["queue"][0]["conversation_id"], json!(cid));
    assert_eq!(
        timer(&o["queue"][0]["sla"], "assignment")["due_at_ms"].as_u64(),
        Some(due),
        "the original deadline"
    );
    // The restarted daemon's clock is the system's again: a minute on, it is breached.
    assert_eq!(advance(&d, 61).await, 1);
    let breach = sam.until("sla_breach").await;
    assert_eq!(breach["conversation_id"], json!(cid));
    assert_eq!(breach["due_at_ms"].as_u64(), Some(due));
}

#[tokio::test]
async fn the_clock_cannot_be_moved_without_debug_clock_control() {
    let (dir, _) = Daemon::prepare(&Options::default(), &[]);
    let d = Daemon::start(dir);
    let (status, body) = d
        .api_post("/api/v1/debug/clock", json!({"advance_secs": 60}))
        .await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "not_found");
}

#[tokio::test]
async fn waiting_raises_priority_and_attributes_route_vips() {
    let o = Options {
        extra: r#"
[debug]
clock_control = true

[[router.teams]]
name = "queue"
raise_priority_every_secs = 60

[[router.teams]]
name = "vip"

[[router.rules]]
attributes = { tier = "vip" }
team = "vip"
min_priority = 3

[[router.rules]]
team = "queue"
"#
        .into(),
        ..Options::default()
    };
    let (dir, _) = Daemon::prepare(&o, &[]);
    let d = Daemon::start(dir);

    // The business tells handoffd who the customer is before they ask for a person.
    let mut vip = Visitor::new(&d).await;
    let (vip_id, _) = vip.say("What are your opening hours?").await;
    let (status, body) = d
        .api_put(
            &format!("/api/v1/conversations/{vip_id}/attributes"),
            json!({"tier": "vip", "plan": "pro"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["attributes"], json!({"plan": "pro", "tier": "vip"}));
    let (status, body) = d
        .api_put(
            &format!("/api/v1/conversations/{vip_id}/attributes"),
            json!({"plan": null}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["attributes"], json!({"tier": "vip"}));
    for (path, bad, code) in [
        (
            format!("/api/v1/conversations/{vip_id}/attributes"),
            json!({"no spaces": "x"}),
            400,
        ),
        (
            format!("/api/v1/conversations/{vip_id}/attributes"),
            json!({"tier": 3}),
            400,
        ),
        (
            "/api/v1/conversations/nope/attributes".to_string(),
            json!({"tier": "vip"}),
            404,
        ),
    ] {
        let (status, body) = d.api_put(&path, bad).await;
        assert_eq!(status, code, "{body}");
        assert!(body["error"]["code"].is_string(), "{body}");
    }

    // An ordinary customer waits two minutes: two levels up, to urgent.
    let mut early = Visitor::new(&d).await;
    let (early_id, _) = early.say("I want to talk to a human please").await;
    let q = d.queue_of(1).await;
    assert_eq!(q["queue"][0]["team"], "queue");
    let start = q["queue"][0]["priority"].as_u64().expect("priority");
    assert!(start < 3, "{q}");
    advance(&d, 121).await;
    let (_, q) = d.api_get("/api/v1/queue").await;
    assert_eq!(
        q["queue"][0]["priority"].as_u64(),
        Some((start + 2).min(3)),
        "{q}"
    );

    // The VIP escalates now: their own team, urgent at once.
    vip.say("I want to talk to a human please").await;
    d.queue_of(2).await;
    // A legal threat from a newcomer is urgent too, but waits behind the aged conversation.
    let mut late = Visitor::new(&d).await;
    let (late_id, _) = late.say("I will call my lawyer about this").await;
    let q = d.queue_of(3).await;
    let order: Vec<(&str, &str, u64)> = q["queue"]
        .as_array()
        .expect("queue")
        .iter()
        .map(|e| {
            (
                e["conversation_id"].as_str().unwrap_or_default(),
                e["team"].as_str().unwrap_or_default(),
                e["priority"].as_u64().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        order,
        vec![
            (early_id.as_str(), "queue", 3),
            (vip_id.as_str(), "vip", 3),
            (late_id.as_str(), "queue", 3),
        ],
        "{q}"
    );
}
