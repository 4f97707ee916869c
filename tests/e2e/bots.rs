//! External bots through the real daemon: a fake webhook bot on loopback that checks
//! nothing itself, so the test can see exactly what handoffd sent it and script what it
//! answers.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::support::*;

const SECRET: &str = "bot-signing-secret-0123456789";
const BOT_KEY: &str = "bot-api-key-0123456789abcdef";

/// One request the fake bot got.
#[derive(Debug, Clone)]
struct Got {
    event: String,
    signature_ok: bool,
    body: Value,
}

/// A scripted answer: status, body (raw text), delay before answering.
type Answer = (u16, String, u64);

#[derive(Default)]
struct BotState {
    got: Vec<Got>,
    script: VecDeque<Answer>,
    /// Answer every request with this once the script is used up, instead of the echo.
    always: Option<Answer>,
}

struct FakeBot {
    url: String,
    state: Arc<Mutex<BotState>>,
    handle: actix_web::dev::ServerHandle,
}

async fn bot_route(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<Arc<Mutex<BotState>>>,
) -> HttpResponse {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).expect("hmac key");
    mac.update(&body);
    let want = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let answer = {
        let mut st = state.lock().expect("bot state");
        st.got.push(Got {
            event: header("x-handoffd-event"),
            signature_ok: header("x-handoffd-signature-256") == want,
            body: parsed.clone(),
        });
        st.script.pop_front().or_else(|| st.always.clone())
    };
    match answer {
        Some((status, text, delay)) => {
            if delay > 0 {
                tokio::time::sleep(Duration::from_millis(delay)).await;
            }
            HttpResponse::build(actix_web::http::StatusCode::from_u16(status).expect("status"))
                .content_type("application/json")
                .body(text)
        }
        None => {
            let text = parsed["message"]["text"].as_str().unwrap_or("");
            HttpResponse::Ok()
                .json(json!({"messages": [format!("echo: {text}")], "confidence": 0.9}))
        }
    }
}

impl FakeBot {
    fn start() -> FakeBot {
        let state = Arc::new(Mutex::new(BotState::default()));
        let shared = state.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            actix_rt::System::new().block_on(async move {
                let server = HttpServer::new(move || {
                    App::new()
                        .app_data(web::Data::new(shared.clone()))
                        .default_service(web::to(bot_route))
                })
                .workers(1)
                .shutdown_timeout(1)
                .bind("127.0.0.1:0")
                .expect("bind fake bot");
                let addr = server.addrs()[0];
                let server = server.run();
                tx.send((addr, server.handle())).expect("report address");
                let _ = server.await;
            });
        });
        let (addr, handle) = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("fake bot started");
        FakeBot {
            url: format!("http://{addr}/bot"),
            state,
            handle,
        }
    }

    fn script(&self, status: u16, body: Value) {
        self.state
            .lock()
            .expect("bot state")
            .script
            .push_back((status, body.to_string(), 0));
    }

    fn script_raw(&self, answer: Answer) {
        self.state
            .lock()
            .expect("bot state")
            .script
            .push_back(answer);
    }

    fn always(&self, answer: Answer) {
        self.state.lock().expect("bot state").always = Some(answer);
    }

    fn got(&self) -> Vec<Got> {
        self.state.lock().expect("bot state").got.clone()
    }

    /// Waits (bounded) for a request of `event` beyond the first `after` requests.
    async fn wait_for(&self, event: &str, after: usize) -> Got {
        for _ in 0..200 {
            if let Some(g) = self
                .got()
                .into_iter()
                .skip(after)
                .find(|g| g.event == event)
            {
                return g;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("the fake bot got no `{event}`: {:?}", self.got());
    }
}

impl Drop for FakeBot {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
    }
}

fn bot_config(bot: &FakeBot, extra: &str) -> Options {
    Options {
        extra: format!(
            r#"
[[bot.webhooks]]
name = "shopbot"
url = "{url}"
secret = "{SECRET}"
api_key = "{BOT_KEY}"
channels = ["widget"]
after_handoff = "resume"
failure_threshold = 2
circuit_open_secs = 60
{extra}
"#,
            url = bot.url
        ),
        ..Options::default()
    }
}

async fn post_as_bot(d: &Daemon, key: &str, conversation: &str, body: Value) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(d.url(&format!("/api/v1/conversations/{conversation}/messages")))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .expect("POST");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_webhook_bot_answers_defers_hands_off_is_told_and_resumes() {
    let bot = FakeBot::start();
    let (dir, tokens) = Daemon::prepare(&bot_config(&bot, ""), &[("alice", "support", 2)]);
    let d = Daemon::start(dir);
    let (mut agent, _) = d.agent(&tokens[0]).await;

    // A synchronous answer, to a signed request carrying the message and the transcript.
    let mut v = Visitor::new(&d).await;
    let (cid, _) = v.say("hi there").await;
    let m = v.message_from("bot").await;
    assert_eq!(m["text"], "echo: hi there");
    let first = bot.wait_for("message", 0).await;
    assert!(first.signature_ok, "bad signature: {first:?}");
    assert_eq!(first.body["type"], "message");
    assert_eq!(first.body["bot"], "shopbot");
    assert_eq!(first.body["conversation_id"], json!(cid));
    assert_eq!(first.body["channel"], "widget");
    assert_eq!(first.body["message"]["text"], "hi there");
    assert_eq!(first.body["transcript"][0]["text"], "hi there");

    // 202: the answer comes later through the API, with the bot's own key.
    bot.script_raw((202, String::new(), 0));
    v.say("where is my order 55501234?").await;
    let quiet = v.ws.drain(Duration::from_millis(400)).await;
    assert!(quiet.iter().all(|f| f["type"] != "message"), "{quiet:?}");
    let (status, body) = post_as_bot(&d, "wrong-key", &cid, json!({"text": "x"})).await;
    assert_eq!(status, 401, "{body}");
    let (status, body) = post_as_bot(&d, API_KEY, &cid, json!({"text": "x"})).await;
    assert_eq!(status, 401, "an admin key is not a bot key: {body}");
    let (status, body) = post_as_bot(&d, BOT_KEY, &cid, json!({"messages": [""]})).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "bad_request");
    let (status, body) =
        post_as_bot(&d, BOT_KEY, "no-such-conversation", json!({"text": "x"})).await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = post_as_bot(
        &d,
        BOT_KEY,
        &cid,
        json!({"text": "It ships tomorrow.", "confidence": 0.9}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["seqs"].as_array().map(Vec::len), Some(1));
    assert_eq!(v.message_from("bot").await["text"], "It ships tomorrow.");

    // The bot asks for a handoff in its reply: its message goes out, then people take over.
    bot.script(
        200,
        json!({"messages": ["Let me get a colleague."], "intent": "warranty",
               "handoff": {"reason": "refunds are done by people", "priority": 2}}),
    );
    v.say("a question about the warranty on my kettle").await;
    assert_eq!(
        v.message_from("bot").await["text"],
        "Let me get a colleague."
    );
    let offer = agent.expect("offer").await;
    assert_eq!(offer["conversation_id"], json!(cid));
    let triggers: Vec<&str> = offer["package"]["triggers"]
        .as_array()
        .expect("triggers")
        .iter()
        .filter_map(|t| t["trigger"].as_str())
        .collect();
    assert!(triggers.contains(&"bot_handoff"), "{triggers:?}");
    assert_eq!(offer["package"]["priority"], 2);

    // While people own it, the bot's messages are refused and never reach the customer.
    let asked_before = bot.got().len();
    let (status, body) = post_as_bot(&d, BOT_KEY, &cid, json!({"text": "still here!"})).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "not_owner");
    agent
        .send(json!({"type": "accept", "conversation_id": cid}))
        .await;
    agent.expect("ack").await;
    let accepted = bot.wait_for("handoff.accepted", asked_before).await;
    assert!(accepted.signature_ok);
    assert_eq!(accepted.body["type"], "handoff.accepted");
    assert_eq!(accepted.body["conversation_id"], json!(cid));
    assert_eq!(accepted.body["agent_name"], "alice");
    v.say("hello?").await;
    agent
        .send(json!({"type": "reply", "conversation_id": cid, "text": "Refund done."}))
        .await;
    assert_eq!(v.message_from("agent").await["text"], "Refund done.");
    let during: Vec<Got> = bot.got().into_iter().skip(asked_before).collect();
    assert!(
        during.iter().all(|g| g.event != "message"),
        "the bot was asked while people owned the conversation: {during:?}"
    );

    // The agent closes: the bot is told, with the human stretch, and speaks first.
    bot.script(200, json!({"messages": ["How did we do? Rate us 1 to 5."]}));
    let before_close = bot.got().len();
    agent
        .send(json!({"type": "close", "conversation_id": cid}))
        .await;
    let done = bot.wait_for("handoff.completed", before_close).await;
    assert!(done.signature_ok);
    assert_eq!(done.body["resume"], true);
    assert_eq!(done.body["agent_name"], "alice");
    let stretch: Vec<&str> = done.body["agent_transcript"]
        .as_array()
        .expect("agent transcript")
        .iter()
        .filter_map(|m| m["text"].as_str())
        .collect();
    assert!(stretch.contains(&"Refund done."), "{stretch:?}");
    assert!(stretch.contains(&"hello?"), "{stretch:?}");
    assert!(
        !stretch.contains(&"hi there"),
        "only the human stretch: {stretch:?}"
    );
    assert!(done.body["human_stretch_ended_at_seq"].as_u64().is_some());
    assert_eq!(
        v.message_from("bot").await["text"],
        "How did we do? Rate us 1 to 5."
    );

    // Back with the bot: the next message is the bot's again, with the whole history.
    let before_next = bot.got().len();
    v.say("5").await;
    assert_eq!(v.message_from("bot").await["text"], "echo: 5");
    let next = bot.wait_for("message", before_next).await;
    // The bot already resumed when it answered `handoff.completed`; this is a plain turn.
    assert_eq!(next.body["resumed_after_handoff"], false);
    let texts: Vec<&str> = next.body["transcript"]
        .as_array()
        .expect("transcript")
        .iter()
        .filter_map(|m| m["text"].as_str())
        .collect();
    assert!(
        texts.contains(&"Refund done.") && texts.contains(&"hi there"),
        "{texts:?}"
    );
}

#[tokio::test]
async fn a_failing_bot_is_retried_once_then_cut_off_and_the_customer_is_still_answered() {
    let bot = FakeBot::start();
    let o = bot_config(
        &bot,
        r#"
[escalation.bot_failure]
enabled = false
"#,
    );
    let (dir, _) = Daemon::prepare(&o, &[]);
    let d = Daemon::start(dir);
    let mut v = Visitor::new(&d).await;

    // A malformed answer is a failure (not retried: the bot did answer).
    bot.script_raw((200, "this is not json".into(), 0));
    v.say("hello").await;
    let m = v.message_from("system").await;
    assert!(
        m["text"].as_str().unwrap_or("").contains("went wrong"),
        "{m}"
    );
    assert_eq!(bot.got().len(), 1);

    // 5xx is retried once; still failing, the customer gets the failure reply.
    bot.always((500, "{}".into(), 0));
    v.say("tell me about shipping").await;
    let m = v.message_from("system").await;
    assert!(
        m["text"].as_str().unwrap_or("").contains("went wrong"),
        "{m}"
    );
    assert_eq!(bot.got().len(), 3, "one try and one retry");

    // Two failures in a row opened the breaker: the bot is not called, the answer is
    // immediate.
    v.say("hello again").await;
    let m = v.message_from("system").await;
    assert!(
        m["text"].as_str().unwrap_or("").contains("went wrong"),
        "{m}"
    );
    assert_eq!(bot.got().len(), 3, "the circuit is open: {:?}", bot.got());
}

#[tokio::test]
async fn a_bot_that_times_out_hands_the_customer_to_people() {
    let bot = FakeBot::start();
    let (dir, tokens) = Daemon::prepare(&bot_config(&bot, ""), &[("alice", "support", 1)]);
    let d = Daemon::start(dir);
    let (mut agent, _) = d.agent(&tokens[0]).await;
    // Longer than the daemon's bot timeout (3 s by default, set lower below).
    bot.script_raw((200, json!({"messages": ["too late"]}).to_string(), 4000));
    let mut v = Visitor::new(&d).await;
    let (cid, _) = v.say("what is the status of my parcel").await;
    let offer = agent.expect("offer").await;
    assert_eq!(offer["conversation_id"], json!(cid));
    assert_eq!(offer["package"]["triggers"][0]["trigger"], "bot_failure");
    let frames = v.ws.drain(Duration::from_millis(1500)).await;
    assert!(
        frames.iter().all(|f| f["text"] != "too late"),
        "a late answer must not reach the customer: {frames:?}"
    );
}
