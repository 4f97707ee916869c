//! Bad input gets a clear error, the daemon keeps serving everyone else, and nothing stored
//! changes.

use std::time::Duration;

use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::support::*;

async fn snapshot(d: &Daemon) -> Vec<Value> {
    let (_, list) = d.api_get("/api/v1/conversations").await;
    let mut out = vec![list.clone()];
    for c in list["conversations"].as_array().expect("list") {
        out.push(d.conversation(c["id"].as_str().expect("id")).await);
    }
    out.push(d.api_get("/api/v1/queue").await.1);
    out
}

#[tokio::test]
async fn bad_input_gets_clear_errors_and_changes_nothing() {
    let (dir, tokens) = Daemon::prepare(&Options::default(), &[("alice", "support", 1)]);
    let d = Daemon::start(dir);
    let mut bystander = Visitor::new(&d).await;
    let (bot_conv, _) = bystander.say("when are you open?").await;
    bystander.message_from("bot").await;
    let mut waiting = Visitor::new(&d).await;
    waiting.say("a human please").await;
    // Told it is being connected, then that nobody is online yet: the state is settled.
    waiting.message_from("system").await;
    let notice = waiting.message_from("system").await;
    assert!(
        notice["text"]
            .as_str()
            .is_some_and(|t| t.starts_with("Nobody from our team is online")),
        "{notice}"
    );
    let before = snapshot(&d).await;

    // --- agent websocket ---
    let (mut agent, _) = d.agent(&tokens[0]).await;
    agent.expect("offer").await;
    agent.send_raw("{not json".into()).await.expect("send");
    assert_eq!(agent.expect("error").await["code"], "malformed_json");
    agent.send(json!({"type": "fly", "to": "moon"})).await;
    assert_eq!(agent.expect("error").await["code"], "bad_frame");
    agent
        .send(json!({"type": "reply", "conversation_id": bot_conv, "text": "hijack"}))
        .await;
    let e = agent.expect("error").await;
    assert_eq!(e["code"], "not_owner");
    assert_eq!(e["request"], "reply");
    agent
        .send(json!({"type": "reply", "conversation_id": "no-such-conversation", "text": "hi"}))
        .await;
    assert_eq!(agent.expect("error").await["code"], "unknown_conversation");
    agent
        .send(json!({"type": "close", "conversation_id": bot_conv}))
        .await;
    assert_eq!(agent.expect("error").await["code"], "not_owner");
    agent
        .send(json!({"type": "accept", "conversation_id": "no-such-conversation"}))
        .await;
    assert_eq!(agent.expect("error").await["code"], "no_offer");
    agent
        .send(json!({"type": "transfer", "conversation_id": bot_conv, "to_team": "nowhere"}))
        .await;
    assert_eq!(agent.expect("error").await["code"], "unknown_team");
    agent
        .send(json!({"type": "reply", "conversation_id": bot_conv, "text": "   "}))
        .await;
    assert_eq!(agent.expect("error").await["code"], "invalid_request");
    agent
        .send(json!({"type": "get_conversation", "conversation_id": bot_conv}))
        .await;
    assert_eq!(agent.expect("error").await["code"], "not_owner");
    // Still a working session after all that.
    agent.send(json!({"type": "ping"})).await;
    agent.expect("pong").await;
    // A 10 MiB frame: an error frame, then the connection closes.
    let huge = format!(
        r#"{{"type":"note","conversation_id":"{bot_conv}","text":"{}"}}"#,
        "x".repeat(10 * 1024 * 1024)
    );
    let _ = agent.send_raw(huge).await;
    let f = agent.next_within(FRAME_WAIT).await.expect("an error frame");
    assert_eq!(f["code"], "frame_too_large", "{f}");
    assert!(agent.closed_within(Duration::from_secs(5)).await);

    // Wrong agent token: an auth frame gets an error and the session closes...
    let mut intruder = Ws::connect(&format!("ws://{}/agent/ws", d.addr)).await;
    intruder
        .send(json!({"type": "auth", "token": "hfa_wrong"}))
        .await;
    assert_eq!(intruder.expect("error").await["code"], "unauthorized");
    assert!(intruder.closed_within(Duration::from_secs(5)).await);
    // ...anything before auth too...
    let mut early = Ws::connect(&format!("ws://{}/agent/ws", d.addr)).await;
    early
        .send(json!({"type": "presence", "status": "online"}))
        .await;
    assert_eq!(early.expect("error").await["code"], "unauthorized");
    // ...and a wrong bearer header is a plain 401.
    let mut req = format!("ws://{}/agent/ws", d.addr)
        .into_client_request()
        .expect("request");
    req.headers_mut()
        .insert("authorization", "Bearer hfa_wrong".parse().expect("header"));
    match tokio_tungstenite::connect_async(req).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status().as_u16(), 401)
        }
        other => panic!("expected HTTP 401, got {other:?}"),
    }

    // --- widget websocket ---
    let mut w = d.widget().await;
    w.send(json!({"type": "message", "text": "before hello"}))
        .await;
    assert_eq!(w.expect("error").await["code"], "hello_required");
    w.send_raw("[1,2".into()).await.expect("send");
    assert_eq!(w.expect("error").await["code"], "malformed_json");
    w.send(json!({"type": "hello", "shoe_size": 42})).await;
    assert_eq!(w.expect("error").await["code"], "bad_frame");
    w.send(json!({"type": "hello"})).await;
    w.expect("welcome").await;
    w.send(json!({"type": "message", "text": ""})).await;
    assert_eq!(w.expect("error").await["code"], "empty_message");
    let _ = w
        .send_raw(format!(
            r#"{{"type":"message","text":"{}"}}"#,
            "y".repeat(10 * 1024 * 1024)
        ))
        .await;
    let f = w.next_within(FRAME_WAIT).await.expect("an error frame");
    assert_eq!(f["code"], "frame_too_large", "{f}");
    assert!(w.closed_within(Duration::from_secs(5)).await);

    // --- REST ---
    let http = reqwest::Client::new();
    let r = http
        .get(d.url("/api/v1/conversations"))
        .bearer_auth("wrong-key-0123456789")
        .send()
        .await
        .expect("GET");
    assert_eq!(r.status().as_u16(), 401);
    let body: Value = r.json().await.expect("JSON body");
    assert_eq!(body["error"]["code"], "unauthorized");
    let (status, body) = d
        .api_get("/api/v1/conversations/no-such-conversation")
        .await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "unknown_conversation");
    let (status, body) = d.api_get("/api/v1/conversations?owner=martian").await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "bad_request");
    let (status, body) = d.api_get("/api/v1/conversations?colour=blue").await;
    assert_eq!(status, 400, "{body}");
    let r = http
        .post(d.url("/api/v1/agents"))
        .bearer_auth(API_KEY)
        .header("content-type", "application/json")
        .body("{\"id\": ")
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status().as_u16(), 400);
    assert_eq!(
        r.json::<Value>().await.expect("JSON")["error"]["code"],
        "bad_request"
    );
    let r = http
        .post(d.url("/api/v1/agents"))
        .bearer_auth(API_KEY)
        .json(&json!({"id": "carol", "teams": ["nowhere"]}))
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status().as_u16(), 400);
    let r = http
        .post(d.url("/api/v1/agents"))
        .bearer_auth(API_KEY)
        .header("content-type", "application/json")
        .body(format!("{{\"id\":\"{}\"}}", "z".repeat(2 * 1024 * 1024)))
        .send()
        .await
        .expect("POST");
    assert!(r.status().is_client_error(), "{}", r.status());
    assert!(r.json::<Value>().await.expect("JSON")["error"]["code"].is_string());
    let (status, body) = d.api_get("/no/such/route").await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "not_found");

    // Nothing stored changed, and everyone else is still served.
    assert_eq!(snapshot(&d).await, before);
    bystander.say("how do I reset my password").await;
    let answer = bystander.message_from("bot").await;
    assert_eq!(
        answer["text"],
        "Use the Forgot password link on the sign-in page."
    );
}
