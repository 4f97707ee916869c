//! External bots through the real daemon: a fake webhook bot on loopback that checks
//! nothing itself, so the test can see exactly what handoffd sent it and script what it
//! answers.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, web};
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
    /// Keeps the fake running; it stops when dropped.
    _server: FakeServer,
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
        let server = FakeServer::start(shared, bot_route);
        FakeBot {
            url: format!("{}/bot", server.url),
            state,
            _server: server,
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
        json!({"text": "It ships tomorrow.", "confidence": 0.9,
               "quick_replies": ["Thanks", "Track it"]}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["seqs"].as_array().map(Vec::len), Some(1));
    let shipped = v.message_from("bot").await;
    assert_eq!(shipped["text"], "It ships tomorrow.");
    assert_eq!(shipped["quick_replies"], json!(["Thanks", "Track it"]));
    let (status, body) = post_as_bot(
        &d,
        BOT_KEY,
        &cid,
        json!({"text": "x", "quick_replies": [""]}),
    )
    .await;
    assert_eq!(status, 400, "an empty quick reply: {body}");

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

/// What a fake got: (path or auth header, body), oldest first.
type RequestLog = Arc<Mutex<Vec<(String, Value)>>>;

/// A fake Rasa server: `/model/parse` and the REST channel, answering by keyword.
struct FakeRasa {
    url: String,
    got: RequestLog,
    /// Keeps the fake running; it stops when dropped.
    _server: FakeServer,
}

async fn rasa_route(
    req: HttpRequest,
    body: web::Json<Value>,
    got: web::Data<RequestLog>,
) -> HttpResponse {
    let path = req.path().to_string();
    got.lock()
        .expect("rasa log")
        .push((path.clone(), body.0.clone()));
    match path.as_str() {
        "/model/parse" => {
            let text = body["text"].as_str().unwrap_or("");
            let (name, confidence) = if text.contains("zebra") {
                ("human_handoff", 0.95)
            } else if text.contains("blah") {
                ("nlu_fallback", 0.3)
            } else {
                ("greet", 0.9)
            };
            HttpResponse::Ok().json(json!({
                "text": text,
                "intent": {"name": name, "confidence": confidence},
                "entities": [],
                "intent_ranking": [{"name": name, "confidence": confidence}]
            }))
        }
        "/webhooks/rest/webhook" => {
            let sender = body["sender"].clone();
            let text = body["message"].as_str().unwrap_or("");
            let answer = if text.starts_with("/handoff_completed") {
                json!([{"recipient_id": sender, "text": "Welcome back! How would you rate the help you got?",
                        "buttons": [{"title": "Good", "payload": "/rate{\"r\":5}"}, {"title": "Bad", "payload": "/rate{\"r\":1}"}]}])
            } else if text.starts_with("/handoff_accepted") {
                json!([])
            } else if text.contains("zebra") {
                json!([{"recipient_id": sender, "text": "I'll get a colleague."}])
            } else {
                json!([{"recipient_id": sender, "text": format!("rasa: {text}")}])
            };
            HttpResponse::Ok().json(answer)
        }
        _ => HttpResponse::NotFound().finish(),
    }
}

impl FakeRasa {
    fn start() -> FakeRasa {
        let got = Arc::new(Mutex::new(Vec::new()));
        let shared = got.clone();
        let server = FakeServer::start(shared, rasa_route);
        FakeRasa {
            url: server.url.clone(),
            got,
            _server: server,
        }
    }

    fn got(&self) -> Vec<(String, Value)> {
        self.got.lock().expect("rasa log").clone()
    }
}

#[tokio::test]
async fn rasa_answers_hands_off_by_intent_and_is_told_of_the_handback() {
    let rasa = FakeRasa::start();
    let o = Options {
        extra: format!(
            r#"
[[bot.rasa]]
name = "rasa"
url = "{}/"
channels = ["widget"]
after_handoff = "resume"
"#,
            rasa.url
        ),
        ..Options::default()
    };
    let (dir, tokens) = Daemon::prepare(&o, &[("alice", "support", 2)]);
    let d = Daemon::start(dir);
    let (mut agent, _) = d.agent(&tokens[0]).await;
    let mut v = Visitor::new(&d).await;

    // Parse first (intent and confidence), then the REST channel, with the conversation
    // as Rasa's sender.
    let (cid, _) = v.say("hello there").await;
    assert_eq!(v.message_from("bot").await["text"], "rasa: hello there");
    let got = rasa.got();
    assert_eq!(got[0].0, "/model/parse");
    assert_eq!(got[0].1["text"], "hello there");
    assert_eq!(got[1].0, "/webhooks/rest/webhook");
    assert_eq!(got[1].1, json!({"sender": cid, "message": "hello there"}));

    // The handoff intent: Rasa's message goes out, then the offer.
    v.say("the zebra question").await;
    assert_eq!(v.message_from("bot").await["text"], "I'll get a colleague.");
    let offer = agent.expect("offer").await;
    assert_eq!(offer["conversation_id"], json!(cid));
    let triggers: Vec<&str> = offer["package"]["triggers"]
        .as_array()
        .expect("triggers")
        .iter()
        .filter_map(|t| t["trigger"].as_str())
        .collect();
    assert!(triggers.contains(&"bot_handoff"), "{triggers:?}");

    // Accepted and completed reach Rasa as intents; on completion Rasa speaks first.
    agent
        .send(json!({"type": "accept", "conversation_id": cid}))
        .await;
    agent.expect("ack").await;
    agent
        .send(json!({"type": "reply", "conversation_id": cid, "text": "Sorted."}))
        .await;
    assert_eq!(v.message_from("agent").await["text"], "Sorted.");
    agent
        .send(json!({"type": "close", "conversation_id": cid}))
        .await;
    let back = v.message_from("bot").await;
    assert_eq!(
        back["text"],
        "Welcome back! How would you rate the help you got?"
    );
    assert_eq!(back["quick_replies"], json!(["Good", "Bad"]));
    let texts: Vec<String> = rasa
        .got()
        .into_iter()
        .filter(|(p, _)| p == "/webhooks/rest/webhook")
        .filter_map(|(_, b)| b["message"].as_str().map(String::from))
        .collect();
    assert!(
        texts
            .iter()
            .any(|t| t.starts_with("/handoff_accepted") && t.contains("alice")),
        "{texts:?}"
    );
    assert!(
        texts.iter().any(|t| t.starts_with("/handoff_completed")),
        "{texts:?}"
    );
    // No customer message reached Rasa while the agent had the conversation.
    assert!(!texts.iter().any(|t| t == "Sorted."), "{texts:?}");
}

/// A fake Bot Framework bot: takes activities at its messaging endpoint and answers through
/// the Connector API at the activity's `serviceUrl`, like a Bot Framework SDK bot does.
struct FakeBf {
    url: String,
    got: RequestLog,
    /// Keeps the fake running; it stops when dropped.
    _server: FakeServer,
}

const BF_SECRET: &str = "bf-endpoint-secret-0123456789";
const BF_KEY: &str = "bf-connector-key-0123456789ab";

async fn bf_route(
    req: HttpRequest,
    body: web::Json<Value>,
    got: web::Data<RequestLog>,
) -> HttpResponse {
    let auth = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    if auth != format!("Bearer {BF_SECRET}") {
        return HttpResponse::Unauthorized().finish();
    }
    let a = body.0;
    got.lock().expect("bf log").push((auth, a.clone()));
    let service = a["serviceUrl"].as_str().unwrap_or("").to_string();
    let conv = a["conversation"]["id"].as_str().unwrap_or("").to_string();
    let reply_to = a["id"].as_str().unwrap_or("").to_string();
    let text = a["text"].as_str().unwrap_or("").to_string();
    let answer = match (a["type"].as_str(), a["name"].as_str()) {
        (Some("message"), _) if text.contains("zebra") => Some(json!({
            "type": "event", "name": "handoff.initiate",
            "value": {"reason": "the customer has a zebra question", "priority": 2},
            "attachments": [{"contentType": "application/vnd.microsoft.activity.transcript",
                             "content": {"activities": [{"type": "message", "text": text}]}}]
        })),
        (Some("message"), _) => Some(json!({"type": "message", "text": format!("bf: {text}")})),
        (Some("event"), Some("handoff.status")) if a["value"]["state"] == "completed" => {
            Some(json!({"type": "message", "text": "Back with the bot. Anything else?"}))
        }
        _ => None,
    };
    if let Some(answer) = answer {
        actix_rt::spawn(async move {
            let url = format!("{service}/v3/conversations/{conv}/activities/{reply_to}");
            let _ = reqwest::Client::new()
                .post(url)
                .bearer_auth(BF_KEY)
                .json(&answer)
                .send()
                .await;
        });
    }
    HttpResponse::Ok().finish()
}

impl FakeBf {
    fn start() -> FakeBf {
        handoffd_channels::meta::install_crypto_provider();
        let got: RequestLog = Arc::new(Mutex::new(Vec::new()));
        let shared = got.clone();
        let server = FakeServer::start(shared, bf_route);
        FakeBf {
            url: format!("{}/api/messages", server.url),
            got,
            _server: server,
        }
    }

    fn activities(&self) -> Vec<Value> {
        self.got
            .lock()
            .expect("bf log")
            .iter()
            .map(|(_, a)| a.clone())
            .collect()
    }

    async fn wait_status(&self, state: &str) -> Value {
        for _ in 0..200 {
            if let Some(a) = self
                .activities()
                .into_iter()
                .find(|a| a["name"] == "handoff.status" && a["value"]["state"] == state)
            {
                return a;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("no handoff.status {state}: {:?}", self.activities());
    }
}

#[tokio::test]
async fn a_bot_framework_bot_talks_through_the_connector_api_and_the_handoff_protocol() {
    let bf = FakeBf::start();
    // The daemon's own address is known only once it runs; the bot is told it in every
    // activity's serviceUrl, so a placeholder is patched after start.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
        l.local_addr().expect("addr").port()
    };
    let o = Options {
        listen: format!("127.0.0.1:{port}"),
        extra: format!(
            r#"
[[bot.botframework]]
name = "bfbot"
url = "{url}"
secret = "{BF_SECRET}"
api_key = "{BF_KEY}"
service_url = "http://127.0.0.1:{port}"
channels = ["widget"]
"#,
            url = bf.url
        ),
        ..Options::default()
    };
    let (dir, tokens) = Daemon::prepare(&o, &[("alice", "support", 2)]);
    let d = Daemon::start(dir);
    let (mut agent, _) = d.agent(&tokens[0]).await;
    let mut v = Visitor::new(&d).await;

    // A message activity out, the reply back through the Connector API.
    let (cid, seq) = v.say("hi bot").await;
    assert_eq!(v.message_from("bot").await["text"], "bf: hi bot");
    let first = bf.activities()[0].clone();
    assert_eq!(first["type"], "message");
    assert_eq!(first["text"], "hi bot");
    assert_eq!(first["conversation"]["id"], json!(cid));
    assert_eq!(first["id"], json!(format!("{cid}:{seq}")));
    assert_eq!(
        first["serviceUrl"],
        json!(format!("http://127.0.0.1:{port}"))
    );
    assert_eq!(first["from"]["role"], "user");

    // handoff.initiate: people take over; the bot hears `accepted`.
    v.say("a zebra question").await;
    let offer = agent.expect("offer").await;
    assert_eq!(offer["conversation_id"], json!(cid));
    let bot_handoff = offer["package"]["triggers"]
        .as_array()
        .expect("triggers")
        .iter()
        .find(|t| t["trigger"] == "bot_handoff")
        .cloned()
        .expect("bot_handoff trigger");
    assert!(
        bot_handoff.to_string().contains("zebra question"),
        "{bot_handoff}"
    );
    assert_eq!(offer["package"]["priority"], 2);
    agent
        .send(json!({"type": "accept", "conversation_id": cid}))
        .await;
    agent.expect("ack").await;
    let accepted = bf.wait_status("accepted").await;
    assert_eq!(accepted["type"], "event");
    assert_eq!(accepted["conversation"]["id"], json!(cid));

    // While people own it the Connector API refuses the bot.
    let r = reqwest::Client::new()
        .post(d.url(&format!("/v3/conversations/{cid}/activities")))
        .bearer_auth(BF_KEY)
        .json(&json!({"type": "message", "text": "butting in"}))
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status().as_u16(), 409);
    let r = reqwest::Client::new()
        .post(d.url(&format!("/v3/conversations/{cid}/activities")))
        .bearer_auth(BF_KEY)
        .json(&json!({"type": "conversationUpdate"}))
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status().as_u16(), 400);

    // The agent closes: `completed`, and the bot speaks again on its own.
    agent
        .send(json!({"type": "close", "conversation_id": cid}))
        .await;
    bf.wait_status("completed").await;
    assert_eq!(
        v.message_from("bot").await["text"],
        "Back with the bot. Anything else?"
    );
    let frames = v.ws.drain(Duration::from_millis(300)).await;
    assert!(
        frames.iter().all(|f| f["text"] != "butting in"),
        "{frames:?}"
    );
}

#[tokio::test]
async fn with_nobody_to_take_it_the_conversation_goes_back_to_the_bot_which_is_told() {
    let bot = FakeBot::start();
    let o = bot_config(
        &bot,
        r#"
[[router.teams]]
name = "nights"
when_no_agent = "bot"
max_wait_secs = 1

[[router.rules]]
team = "nights"
"#,
    );
    let (dir, tokens) = Daemon::prepare(&o, &[("owl", "nights", 1)]);
    let d = Daemon::start(dir);

    // Nobody of the team online: straight back to the bot.
    let mut v = Visitor::new(&d).await;
    let (cid, _) = v.say("I want to talk to a human please").await;
    let back = v.message_from("system").await;
    let back = if back["text"].as_str().unwrap_or("").contains("Nobody") {
        back
    } else {
        v.message_from("system").await
    };
    assert!(
        back["text"]
            .as_str()
            .unwrap_or("")
            .contains("Nobody from our team"),
        "{back}"
    );
    let failed = bot.wait_for("handoff.failed", 0).await;
    assert!(failed.signature_ok);
    assert_eq!(failed.body["conversation_id"], json!(cid));
    assert!(
        failed.body["reason"]
            .as_str()
            .unwrap_or("")
            .contains("no agent"),
        "{:?}",
        failed.body
    );
    let c = d.conversation(&cid).await;
    assert_eq!(c["conversation"]["owner"]["state"], "bot", "{c}");
    // The bot answers again.
    v.say("ok then, what are your hours").await;
    assert_eq!(
        v.message_from("bot").await["text"],
        "echo: ok then, what are your hours"
    );

    // An agent online but full: the second conversation waits, then after max_wait_secs
    // goes back to the bot. The first, offered to the agent, stays.
    let (mut owl, _) = d.agent(&tokens[0]).await;
    let mut first = Visitor::new(&d).await;
    let (c1, _) = first.say("I want to talk to a human please").await;
    assert_eq!(owl.expect("offer").await["conversation_id"], json!(c1));
    let before = bot.got().len();
    let mut second = Visitor::new(&d).await;
    let (c2, _) = second.say("I want to talk to a human please").await;
    let failed = bot.wait_for("handoff.failed", before).await;
    assert_eq!(failed.body["conversation_id"], json!(c2));
    assert!(
        failed.body["reason"]
            .as_str()
            .unwrap_or("")
            .contains("within 1 s"),
        "{:?}",
        failed.body
    );
    assert_eq!(
        d.conversation(&c2).await["conversation"]["owner"]["state"],
        "bot"
    );
    assert_eq!(
        d.conversation(&c1).await["conversation"]["owner"]["state"],
        "queued"
    );
}
