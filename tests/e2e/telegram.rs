//! Telegram end to end: a fake Bot API on loopback holds updates for `getUpdates` (honouring
//! `offset` the way Telegram does), records every `sendMessage`, and answers with Telegram's
//! envelope, or with a scripted error (`{"ok": false, "error_code", "description",
//! "parameters"}`). The real daemon polls it, or takes webhook POSTs, and is driven by it.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};

use crate::support::*;

const TOKEN: &str = "123456:TEST-token_abc";
const SECRET: &str = "telegram-webhook-secret-0123";
const CHAT: i64 = 5551234;

#[derive(Default)]
struct BotState {
    /// Every update ever queued; `getUpdates` returns those at or after the offset.
    updates: Vec<Value>,
    /// The `offset` of each `getUpdates` call, in order (`None` when absent).
    offsets: Vec<Option<i64>>,
    /// `sendMessage` bodies, in order, failed ones included.
    sent: Vec<Value>,
    /// `sendChatAction` bodies, in order.
    actions: Vec<Value>,
    /// Answers for the next `sendMessage` calls instead of a success.
    script: VecDeque<(u16, Value)>,
    /// Paths that did not start with `/bot<TOKEN>/`.
    bad_paths: Vec<String>,
    next_message_id: i64,
}

/// A fake Bot API on loopback, in a thread of its own.
struct FakeBotApi {
    url: String,
    state: Arc<Mutex<BotState>>,
    /// Keeps the fake running; it stops when dropped.
    _server: FakeServer,
}

fn ok(result: Value) -> HttpResponse {
    HttpResponse::Ok().json(json!({"ok": true, "result": result}))
}

async fn bot_route(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<Arc<Mutex<BotState>>>,
) -> HttpResponse {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let prefix = format!("/bot{TOKEN}/");
    let Some(method) = req
        .path()
        .strip_prefix(&prefix)
        .map(str::to_ascii_lowercase)
    else {
        state
            .lock()
            .expect("state")
            .bad_paths
            .push(req.path().into());
        return HttpResponse::NotFound()
            .json(json!({"ok": false, "error_code": 404, "description": "Not Found"}));
    };
    match method.as_str() {
        "getupdates" => {
            let offset = body["offset"].as_i64();
            // Long poll, kept short here: whatever the daemon asks, at most ~1 s.
            let wait = body["timeout"].as_u64().unwrap_or(0).min(1);
            state.lock().expect("state").offsets.push(offset);
            for _ in 0..=(wait * 20) {
                let ready: Vec<Value> = {
                    let st = state.lock().expect("state");
                    st.updates
                        .iter()
                        .filter(|u| offset.is_none_or(|o| u["update_id"].as_i64() >= Some(o)))
                        .cloned()
                        .collect()
                };
                if !ready.is_empty() || wait == 0 {
                    return ok(Value::Array(ready));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            ok(json!([]))
        }
        "sendmessage" => {
            let mut st = state.lock().expect("state");
            st.sent.push(body.clone());
            if let Some((status, answer)) = st.script.pop_front() {
                let status = actix_web::http::StatusCode::from_u16(status).expect("status");
                return HttpResponse::build(status).json(answer);
            }
            st.next_message_id += 1;
            ok(json!({
                "message_id": st.next_message_id,
                "date": 1_700_000_000,
                "chat": {"id": body["chat_id"], "type": "private"},
                "text": body["text"],
            }))
        }
        "sendchataction" => {
            state.lock().expect("state").actions.push(body);
            ok(json!(true))
        }
        "setwebhook" | "getme" => ok(json!(true)),
        _ => HttpResponse::NotFound().json(
            json!({"ok": false, "error_code": 404, "description": "Not Found: method not found"}),
        ),
    }
}

impl FakeBotApi {
    fn start() -> FakeBotApi {
        let state = Arc::new(Mutex::new(BotState::default()));
        let shared = state.clone();
        let server = FakeServer::start(shared, bot_route);
        FakeBotApi {
            url: server.url.clone(),
            state,
            _server: server,
        }
    }

    /// Queues a private text message from the test customer; returns its update id.
    fn push_text(&self, update_id: i64, message_id: i64, text: &str) {
        self.push(json!({
            "update_id": update_id,
            "message": {
                "message_id": message_id,
                "date": handoffd_channels::now_ms() / 1000,
                "chat": {"id": CHAT, "type": "private", "first_name": "Kerry"},
                "from": {"id": CHAT, "is_bot": false, "first_name": "Kerry", "last_name": "Fisher",
                         "username": "kerryf", "language_code": "en"},
                "text": text,
            }
        }));
    }

    fn push(&self, update: Value) {
        self.state.lock().expect("state").updates.push(update);
    }

    fn script(&self, status: u16, body: Value) {
        self.state
            .lock()
            .expect("state")
            .script
            .push_back((status, body));
    }

    fn sent(&self) -> Vec<Value> {
        self.state.lock().expect("state").sent.clone()
    }

    fn offsets(&self) -> Vec<Option<i64>> {
        self.state.lock().expect("state").offsets.clone()
    }

    fn sent_texts(&self) -> Vec<String> {
        self.sent()
            .iter()
            .map(|b| b["text"].as_str().unwrap_or("").to_string())
            .collect()
    }

    /// Waits (bounded) until `sendMessage` was called with `text` `times` times.
    async fn wait_text(&self, text: &str, times: usize) -> Vec<Value> {
        for _ in 0..300 {
            if self.sent_texts().iter().filter(|t| *t == text).count() >= times {
                return self.sent();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "`{text}` not sent {times} time(s); sent: {:?}",
            self.sent_texts()
        );
    }

    /// Waits (bounded) until a `getUpdates` call carried `offset`.
    async fn wait_offset(&self, offset: i64) {
        for _ in 0..300 {
            if self.offsets().contains(&Some(offset)) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no getUpdates with offset {offset}: {:?}", self.offsets());
    }
}

fn telegram_config(api: &FakeBotApi, webhook: bool) -> String {
    let mode = if webhook {
        format!("mode = \"webhook\"\nwebhook_secret = \"{SECRET}\"")
    } else {
        "mode = \"polling\"\npoll_timeout_secs = 1".to_string()
    };
    format!(
        "\n[telegram]\ntoken = \"{TOKEN}\"\napi_url = \"{}\"\n{mode}\n",
        api.url
    )
}

fn start(api: &FakeBotApi, webhook: bool) -> (Daemon, Vec<String>) {
    let o = Options {
        extra: telegram_config(api, webhook),
        ..Options::default()
    };
    let (dir, tokens) = Daemon::prepare(&o, &[("alice", "support", 2)]);
    (Daemon::start(dir), tokens)
}

async fn only_conversation(d: &Daemon) -> Value {
    let (status, body) = d.api_get("/api/v1/conversations?channel=telegram").await;
    assert_eq!(status, 200, "{body}");
    let list = body["conversations"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(list.len(), 1, "{list:?}");
    list[0].clone()
}

async fn customer_texts(d: &Daemon, id: &str) -> Vec<String> {
    d.conversation(id).await["transcript"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter(|m| m["role"] == "customer")
        .map(|m| m["text"].as_str().unwrap_or("").to_string())
        .collect()
}

/// Skips the frames that come and go until one of type `ty`.
async fn agent_frame(agent: &mut Ws, ty: &str) -> Value {
    agent
        .expect_skipping(
            ty,
            &[
                "typing", "status", "pong", "ack", "message", "window", "delivery", "assigned",
                "offer",
            ],
        )
        .await
}

/// Waits for an offer, has the agent accept it, and returns the conversation id.
async fn accept_offer(agent: &mut Ws) -> String {
    let offer = agent
        .expect_skipping(
            "offer",
            &["typing", "status", "ack", "message", "window", "delivery"],
        )
        .await;
    let id = offer["conversation_id"].as_str().expect("id").to_string();
    agent
        .send(json!({"type": "accept", "conversation_id": id}))
        .await;
    agent_frame(agent, "assigned").await;
    id
}

/// The FAQ answer as Telegram gets it: its quick reply listed under the text.
const HOURS: &str = "We are open 9 to 5.\nAre you open on Sundays?";
const RESET: &str = "Use the Forgot password link on the sign-in page.";

#[tokio::test]
async fn telegram_polling_bot_answer_rate_limit_handoff_split_reply_and_handback() {
    let api = FakeBotApi::start();
    // The bot's first answer meets Telegram's flood control once.
    api.script(
        429,
        json!({"ok": false, "error_code": 429, "description": "Too Many Requests: retry after 1",
               "parameters": {"retry_after": 1}}),
    );
    let (d, tokens) = start(&api, false);
    let (mut agent, _) = d.agent(&tokens[0]).await;

    api.push_text(100, 1, "What are your opening hours?");
    let sent = api.wait_text(HOURS, 2).await;
    assert_eq!(
        sent[0], sent[1],
        "the same message is sent again after the 429"
    );
    assert_eq!(sent[1], json!({"chat_id": CHAT, "text": HOURS}));
    let conv = only_conversation(&d).await;
    let id = conv["id"].as_str().expect("id").to_string();
    let contact = &conv["contact"];
    assert_eq!(contact["name"], "Kerry Fisher (@kerryf)", "{conv}");
    assert_eq!(contact["channel_user_id"], CHAT.to_string());
    assert_eq!(contact["language"], "en");
    // The update was confirmed to Telegram only after it was journaled.
    api.wait_offset(101).await;

    // Escalation, offer, and the agent's long reply in parts under Telegram's limit.
    api.push_text(101, 2, "I want to talk to a human please");
    let offered = accept_offer(&mut agent).await;
    assert_eq!(offered, id);
    // The agent typing shows as "typing..." in the chat.
    agent
        .send(json!({"type": "typing", "conversation_id": id, "active": true}))
        .await;
    let mut actions = Vec::new();
    for _ in 0..100 {
        actions = api.state.lock().expect("state").actions.clone();
        if !actions.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(actions, vec![json!({"chat_id": CHAT, "action": "typing"})]);
    let long: String = (0..1200)
        .map(|i| format!("w{i} "))
        .collect::<String>()
        .trim_end()
        .to_string();
    assert!(long.chars().count() > 4096);
    let before = api.sent().len();
    agent
        .send(json!({"type": "reply", "conversation_id": id, "text": long}))
        .await;
    let mut parts = Vec::new();
    for _ in 0..200 {
        parts = api.sent()[before..]
            .iter()
            .filter(|b| {
                b["text"].as_str().is_some_and(|t| {
                    t.starts_with('w') && t.chars().nth(1).is_some_and(|c| c.is_ascii_digit())
                })
            })
            .map(|b| b["text"].as_str().unwrap_or("").to_string())
            .collect::<Vec<_>>();
        if parts.concat().len() >= long.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(parts.len() >= 2, "{parts:?}");
    assert!(parts.iter().all(|p| p.encode_utf16().count() <= 4096));
    assert_eq!(
        parts.concat(),
        long,
        "the parts make the whole reply, in order"
    );

    // The customer answers the agent: it reaches the agent, not the bot.
    api.push_text(102, 3, "Thanks Alice");
    let mut from_customer = Value::Null;
    for _ in 0..20 {
        let m = agent_frame(&mut agent, "message").await;
        if m["message"]["role"] == "customer" {
            from_customer = m;
            break;
        }
    }
    assert_eq!(from_customer["message"]["text"], "Thanks Alice");

    // Close: the bot answers again.
    agent
        .send(json!({"type": "close", "conversation_id": id}))
        .await;
    agent_frame(&mut agent, "released").await;
    api.push_text(103, 4, "How do I reset my password?");
    api.wait_text(RESET, 1).await;
    assert!(api.sent().iter().all(|b| b["chat_id"] == CHAT));
    assert!(api.state.lock().expect("state").bad_paths.is_empty());
    assert_eq!(
        customer_texts(&d, &id).await,
        vec![
            "What are your opening hours?",
            "I want to talk to a human please",
            "Thanks Alice",
            "How do I reset my password?"
        ]
    );
}

#[tokio::test]
async fn telegram_duplicates_are_stored_once_and_a_restart_resumes_after_the_last_update() {
    let api = FakeBotApi::start();
    let (d, _) = start(&api, false);
    api.push_text(200, 10, "What are your opening hours?");
    // The same message again under a new update id (Telegram redelivering).
    api.push_text(201, 10, "What are your opening hours?");
    api.wait_offset(202).await;
    let id = only_conversation(&d).await["id"]
        .as_str()
        .expect("id")
        .to_string();
    assert_eq!(customer_texts(&d, &id).await.len(), 1);
    api.wait_text(HOURS, 1).await;

    // kill -9, a message arrives while the daemon is down, and it starts again.
    let dir = d.kill9();
    api.push_text(202, 11, "How do I reset my password?");
    let polls_before = api.offsets().len();
    let d = Daemon::start(dir);
    api.wait_text(RESET, 1).await;
    let first_after = api.offsets()[polls_before];
    assert_eq!(
        first_after,
        Some(202),
        "a restart asks for what follows the last update handled"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        customer_texts(&d, &id).await,
        vec![
            "What are your opening hours?",
            "How do I reset my password?"
        ]
    );
    assert_eq!(
        api.sent_texts().iter().filter(|t| *t == HOURS).count(),
        1,
        "nothing handled before the restart is answered again"
    );
}

#[tokio::test]
async fn telegram_server_errors_are_retried_and_a_blocked_user_is_shown_to_the_agent() {
    let api = FakeBotApi::start();
    api.script(
        502,
        json!({"ok": false, "error_code": 502, "description": "Bad Gateway"}),
    );
    let (d, tokens) = start(&api, false);
    let (mut agent, _) = d.agent(&tokens[0]).await;
    api.push_text(300, 20, "What are your opening hours?");
    let sent = api.wait_text(HOURS, 2).await;
    assert_eq!(sent.len(), 2);

    api.push_text(301, 21, "I want to talk to a human please");
    let id = accept_offer(&mut agent).await;
    // Let the handoff notices go out before the failure is scripted.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = api.sent().len();
    api.script(
        403,
        json!({"ok": false, "error_code": 403, "description": "Forbidden: bot was blocked by the user"}),
    );
    agent
        .send(json!({"type": "reply", "conversation_id": id, "text": "Hi, Alice here."}))
        .await;
    let mut note = Value::Null;
    for _ in 0..50 {
        let f = agent_frame(&mut agent, "message").await;
        if f["message"]["role"] == "note" {
            note = f;
            break;
        }
    }
    let text = note["message"]["text"].as_str().unwrap_or("");
    assert!(
        text.contains("could not be delivered") && text.contains("bot was blocked by the user"),
        "{note}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        api.sent().len(),
        before + 1,
        "a blocked user is not retried"
    );
    let t = d.conversation(&id).await["transcript"].clone();
    assert!(
        t.as_array().is_some_and(|t| t.iter().any(|m| m["text"]
            .as_str()
            .is_some_and(|s| s.contains("bot was blocked by the user")))),
        "the failure is recorded on the conversation: {t}"
    );
}

async fn post_update(d: &Daemon, secret: Option<&str>, body: String) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .post(d.url("/webhooks/telegram"))
        .header("content-type", "application/json")
        .body(body);
    if let Some(s) = secret {
        req = req.header("X-Telegram-Bot-Api-Secret-Token", s);
    }
    let r = req.send().await.expect("POST");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn telegram_webhook_checks_the_secret_and_stores_a_redelivery_once() {
    let api = FakeBotApi::start();
    let (d, _) = start(&api, true);
    let update = json!({"update_id": 400, "message": {
        "message_id": 30, "date": 1_700_000_000,
        "chat": {"id": CHAT, "type": "private"},
        "from": {"id": CHAT, "is_bot": false, "first_name": "Kerry"},
        "text": "What are your opening hours?"}})
    .to_string();

    let (status, body) = post_update(&d, None, update.clone()).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["code"], "bad_secret");
    let (status, body) = post_update(&d, Some("wrong-secret-0123456789"), update.clone()).await;
    assert_eq!(status, 401, "{body}");
    let (status, body) = post_update(&d, Some(SECRET), "{not json".into()).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"]["message"].is_string());

    let (status, body) = post_update(&d, Some(SECRET), update.clone()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["stored"], true);
    let (status, body) = post_update(&d, Some(SECRET), update).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["duplicate"], true);
    api.wait_text(HOURS, 1).await;
    let id = only_conversation(&d).await["id"]
        .as_str()
        .expect("id")
        .to_string();
    assert_eq!(customer_texts(&d, &id).await.len(), 1);
    // A group message is acknowledged and ignored.
    let group = json!({"update_id": 401, "message": {"message_id": 1, "date": 1,
        "chat": {"id": -100, "type": "group"}, "text": "hi"}});
    let (status, body) = post_update(&d, Some(SECRET), group.to_string()).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["skipped"].is_string());
    // An update Telegram sent (the secret matched) that cannot be read is acknowledged
    // and skipped, so Telegram does not send it forever; a body without an update id is not.
    let odd = json!({"update_id": 402, "message": {"chat": 5}});
    let (status, body) = post_update(&d, Some(SECRET), odd.to_string()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["skipped"], "unreadable");
    let (status, body) = post_update(&d, Some(SECRET), json!({"message": {}}).to_string()).await;
    assert_eq!(status, 400, "{body}");
    // Webhook mode never polls.
    assert!(api.offsets().is_empty());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(api.sent_texts().iter().filter(|t| *t == HOURS).count(), 1);
}
