//! WhatsApp, Messenger and Instagram end to end: signed webhook POSTs shaped like Meta's
//! samples go to the real daemon, and a fake Graph API on loopback records what the daemon
//! sends and answers like Meta does (ids on success, Meta's error body on failure).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, web};
use handoffd_channels::meta::signature;
use serde_json::{Value, json};

use crate::support::*;

const WA_SECRET: &str = "wa-app-secret-for-tests";
const FB_SECRET: &str = "fb-app-secret-for-tests";
const IG_SECRET: &str = "ig-app-secret-for-tests";
const PHONE_ID: &str = "27681414235104944";
const PAGE_ID: &str = "PAGE-ID";
const IG_ID: &str = "IGID";
const HOUR_MS: u64 = 3_600_000;

/// What the fake Graph API received.
#[derive(Debug, Clone)]
pub struct Sent {
    pub path: String,
    pub auth: String,
    pub body: Value,
}

#[derive(Default)]
struct GraphState {
    sent: Vec<Sent>,
    /// Answers to give before the default success, oldest first.
    script: VecDeque<(u16, Value)>,
    next_id: u64,
}

/// A fake Graph API on loopback, in a thread of its own.
pub struct FakeGraph {
    pub url: String,
    state: Arc<Mutex<GraphState>>,
    /// Keeps the fake running; it stops when dropped.
    _server: FakeServer,
}

async fn graph_route(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<Arc<Mutex<GraphState>>>,
) -> HttpResponse {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let auth = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let mut st = state.lock().expect("graph state");
    st.sent.push(Sent {
        path: req.path().to_string(),
        auth,
        body: body.clone(),
    });
    if let Some((status, answer)) = st.script.pop_front() {
        let status = actix_web::http::StatusCode::from_u16(status).expect("status");
        return HttpResponse::build(status).json(answer);
    }
    st.next_id += 1;
    let n = st.next_id;
    if body.get("messaging_product").is_some() {
        HttpResponse::Ok().json(json!({
            "messaging_product": "whatsapp",
            "contacts": [{"input": body["to"], "wa_id": body["to"]}],
            "messages": [{"id": format!("wamid.out.{n}")}],
        }))
    } else {
        HttpResponse::Ok().json(json!({
            "recipient_id": body["recipient"]["id"],
            "message_id": format!("m_out_{n}"),
        }))
    }
}

impl FakeGraph {
    pub fn start() -> FakeGraph {
        let state = Arc::new(Mutex::new(GraphState::default()));
        let shared = state.clone();
        let server = FakeServer::start(shared, graph_route);
        FakeGraph {
            url: server.url.clone(),
            state,
            _server: server,
        }
    }

    /// The next answer is `status` with `body` instead of a success.
    pub fn script(&self, status: u16, body: Value) {
        self.state
            .lock()
            .expect("graph state")
            .script
            .push_back((status, body));
    }

    pub fn sent(&self) -> Vec<Sent> {
        self.state.lock().expect("graph state").sent.clone()
    }

    /// Waits (bounded) until at least `n` requests came in.
    pub async fn wait_sent(&self, n: usize) -> Vec<Sent> {
        for _ in 0..200 {
            let sent = self.sent();
            if sent.len() >= n {
                return sent;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the fake Graph API got {:?}, not {n} requests", self.sent());
    }
}

fn meta_config(graph: &FakeGraph) -> String {
    format!(
        r#"
[whatsapp]
app_secret = "{WA_SECRET}"
verify_token = "verify-wa"
access_token = "wa-token"
graph_url = "{url}"
api_version = "v23.0"

[[whatsapp.templates]]
name = "order_update"
language = "en_US"
text = "Hi {{{{1}}}}, your order {{{{2}}}} has an update."

[messenger]
app_secret = "{FB_SECRET}"
verify_token = "verify-fb"
access_token = "fb-token"
graph_url = "{url}"
api_version = "v23.0"

[instagram]
app_secret = "{IG_SECRET}"
verify_token = "verify-ig"
access_token = "ig-token"
graph_url = "{url}"
api_version = "v23.0"
"#,
        url = graph.url
    )
}

fn start(graph: &FakeGraph) -> (Daemon, Vec<String>) {
    let o = Options {
        extra: meta_config(graph),
        ..Options::default()
    };
    let (dir, tokens) = Daemon::prepare(&o, &[("alice", "support", 2)]);
    (Daemon::start(dir), tokens)
}

fn now_ms() -> u64 {
    handoffd_channels::now_ms()
}

/// Meta's sample WhatsApp text message, with our ids and time.
fn wa_text(wamid: &str, from: &str, text: &str, sent_ms: u64) -> String {
    json!({
        "object": "whatsapp_business_account",
        "entry": [{
            "id": "8856996819413533",
            "changes": [{
                "value": {
                    "messaging_product": "whatsapp",
                    "metadata": {"display_phone_number": "16505553333", "phone_number_id": PHONE_ID},
                    "contacts": [{"profile": {"name": "Kerry Fisher"}, "wa_id": from}],
                    "messages": [{
                        "from": from,
                        "id": wamid,
                        "timestamp": (sent_ms / 1000).to_string(),
                        "text": {"body": text},
                        "type": "text"
                    }]
                },
                "field": "messages"
            }]
        }]
    })
    .to_string()
}

fn wa_status(wamid: &str, status: &str, to: &str) -> String {
    json!({
        "object": "whatsapp_business_account",
        "entry": [{
            "id": "8856996819413533",
            "changes": [{
                "value": {
                    "messaging_product": "whatsapp",
                    "metadata": {"display_phone_number": "16505553333", "phone_number_id": PHONE_ID},
                    "statuses": [{
                        "id": wamid,
                        "status": status,
                        "timestamp": (now_ms() / 1000).to_string(),
                        "recipient_id": to
                    }]
                },
                "field": "messages"
            }]
        }]
    })
    .to_string()
}

/// A Messenger (`page`) or Instagram (`instagram`) message event.
fn messaging(object: &str, account: &str, sender: &str, event: Value) -> String {
    let mut ev = event;
    ev["sender"] = json!({"id": sender});
    ev["recipient"] = json!({"id": account});
    json!({
        "object": object,
        "entry": [{"id": account, "time": now_ms(), "messaging": [ev]}]
    })
    .to_string()
}

fn message_event(mid: &str, text: &str, sent_ms: u64) -> Value {
    json!({"timestamp": sent_ms, "message": {"mid": mid, "text": text}})
}

async fn post(d: &Daemon, platform: &str, body: &str, sig: Option<String>) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .post(d.url(&format!("/webhooks/{platform}")))
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(sig) = sig {
        req = req.header("x-hub-signature-256", sig);
    }
    let res = req.send().await.expect("POST webhook");
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn signed(d: &Daemon, platform: &str, secret: &str, body: &str) -> Value {
    let sig = signature::sign(secret.as_bytes(), body.as_bytes());
    let (status, answer) = post(d, platform, body, Some(sig)).await;
    assert_eq!(status, 200, "{answer}");
    answer
}

async fn conversations(d: &Daemon, channel: &str) -> Vec<Value> {
    let (status, body) = d
        .api_get(&format!("/api/v1/conversations?channel={channel}"))
        .await;
    assert_eq!(status, 200, "{body}");
    body["conversations"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

async fn only_conversation(d: &Daemon, channel: &str) -> String {
    let list = conversations(d, channel).await;
    assert_eq!(list.len(), 1, "{list:?}");
    list[0]["id"].as_str().expect("id").to_string()
}

async fn transcript(d: &Daemon, id: &str) -> Vec<Value> {
    d.conversation(id).await["transcript"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Sends until the agent's next frame of `ty`, skipping the frames that come and go.
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

/// Waits for the offer that `post_request` causes, has alice accept it, and returns the
/// conversation id and the window frame she gets.
async fn hand_to_alice(
    agent: &mut Ws,
    post_request: impl std::future::Future<Output = Value>,
) -> (String, Value) {
    post_request.await;
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
    let window = agent_frame(agent, "window").await;
    assert_eq!(window["conversation_id"], json!(id));
    (id, window)
}

#[tokio::test]
async fn webhooks_check_the_handshake_and_signatures_and_store_a_redelivery_once() {
    let graph = FakeGraph::start();
    let (d, _) = start(&graph);
    let http = reqwest::Client::new();

    // The handshake echoes the challenge for the right token only.
    for (platform, token) in [
        ("whatsapp", "verify-wa"),
        ("messenger", "verify-fb"),
        ("instagram", "verify-ig"),
    ] {
        let url = d.url(&format!(
            "/webhooks/{platform}?hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token={token}"
        ));
        let res = http.get(url).send().await.expect("GET");
        assert_eq!(res.status().as_u16(), 200);
        assert_eq!(res.text().await.expect("body"), "1158201444");
        let url = d.url(&format!(
            "/webhooks/{platform}?hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=meatyhamhock"
        ));
        let res = http.get(url).send().await.expect("GET");
        assert_eq!(res.status().as_u16(), 403);
        let body: Value = res.json().await.expect("json error");
        assert_eq!(body["error"]["code"], "verification_failed");
    }

    // Bad, missing or other-app signatures: 401 and nothing stored.
    let body = wa_text(
        "wamid.ABGGFlCGg0cvAgo-sJQh43L5Pe4W",
        "16315551234",
        "Hello this is an answer",
        now_ms(),
    );
    let wrong_key = signature::sign(FB_SECRET.as_bytes(), body.as_bytes());
    for sig in [
        None,
        Some("sha256=00".to_string()),
        Some("nonsense".to_string()),
        Some(wrong_key),
    ] {
        let (status, answer) = post(&d, "whatsapp", &body, sig).await;
        assert_eq!(status, 401, "{answer}");
        assert_eq!(answer["error"]["code"], "bad_signature");
    }
    // A signature over other bytes (the same JSON re-serialized differently) fails too.
    let tampered = body.replace("Hello", "Hallo");
    let sig = signature::sign(WA_SECRET.as_bytes(), body.as_bytes());
    let (status, _) = post(&d, "whatsapp", &tampered, Some(sig)).await;
    assert_eq!(status, 401);
    assert!(conversations(&d, "whatsapp").await.is_empty());

    // Signed but not JSON, or another platform's payload: 400 with a JSON body.
    let junk = "{not json";
    let (status, answer) = post(
        &d,
        "whatsapp",
        junk,
        Some(signature::sign(WA_SECRET.as_bytes(), junk.as_bytes())),
    )
    .await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["error"]["code"], "bad_request");
    let fb = messaging(
        "page",
        PAGE_ID,
        "PSID",
        message_event("m_1", "hi", now_ms()),
    );
    let (status, _) = post(
        &d,
        "whatsapp",
        &fb,
        Some(signature::sign(WA_SECRET.as_bytes(), fb.as_bytes())),
    )
    .await;
    assert_eq!(status, 400);

    // The genuine POST is stored; Meta's redelivery of it is recognised.
    let first = signed(&d, "whatsapp", WA_SECRET, &body).await;
    assert_eq!(first["stored"], 1, "{first}");
    let again = signed(&d, "whatsapp", WA_SECRET, &body).await;
    assert_eq!(again["duplicates"], 1, "{again}");
    assert_eq!(again["stored"], 0, "{again}");
    let id = only_conversation(&d, "whatsapp").await;
    let conv = d.conversation(&id).await;
    assert_eq!(conv["conversation"]["contact"]["name"], "Kerry Fisher");
    let customer: Vec<Value> = transcript(&d, &id)
        .await
        .into_iter()
        .filter(|m| m["role"] == "customer")
        .collect();
    assert_eq!(customer.len(), 1, "{customer:?}");

    // Messenger: the echo of our own message is not a customer message.
    let echo = json!({
        "object": "page",
        "entry": [{"id": PAGE_ID, "time": now_ms(), "messaging": [
            {"sender": {"id": PAGE_ID}, "recipient": {"id": "PSID"}, "timestamp": now_ms(),
             "message": {"mid": "m_echo", "is_echo": true, "app_id": 1517776481860111u64, "text": "our own words"}}
        ]}]
    })
    .to_string();
    let answer = signed(&d, "messenger", FB_SECRET, &echo).await;
    assert_eq!(answer["stored"], 0, "{answer}");
    assert!(conversations(&d, "messenger").await.is_empty());
}

#[tokio::test]
async fn whatsapp_bot_answer_handoff_agent_reply_statuses_and_handback() {
    let graph = FakeGraph::start();
    let (d, tokens) = start(&graph);
    let (mut agent, _) = d.agent(&tokens[0]).await;
    let customer = "16315551234";

    // The bot answers through the Graph API, in WhatsApp's format.
    signed(
        &d,
        "whatsapp",
        WA_SECRET,
        &wa_text(
            "wamid.in.1",
            customer,
            "What are your opening hours?",
            now_ms(),
        ),
    )
    .await;
    let sent = graph.wait_sent(1).await;
    assert_eq!(sent[0].path, format!("/v23.0/{PHONE_ID}/messages"));
    assert_eq!(sent[0].auth, "Bearer wa-token");
    assert_eq!(
        sent[0].body,
        json!({"messaging_product": "whatsapp", "recipient_type": "individual", "to": customer, "type": "text", "text": {"preview_url": false, "body": "We are open 9 to 5.\nAre you open on Sundays?"}})
    );
    let id = only_conversation(&d, "whatsapp").await;

    // Meta's statuses land on the message they are about (the outbox may still be saving
    // the message's id, so the status is redelivered the way Meta would).
    let mut recorded = Value::Null;
    for _ in 0..50 {
        signed(
            &d,
            "whatsapp",
            WA_SECRET,
            &wa_status("wamid.out.1", "delivered", customer),
        )
        .await;
        let t = transcript(&d, &id).await;
        if let Some(bot) = t
            .iter()
            .find(|m| m["role"] == "bot" && !m["delivery"].is_null())
        {
            recorded = bot["delivery"].clone();
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(recorded["status"], "delivered", "no status recorded");
    signed(
        &d,
        "whatsapp",
        WA_SECRET,
        &wa_status("wamid.out.1", "read", customer),
    )
    .await;
    // A late "delivered" after "read" does not move it back.
    signed(
        &d,
        "whatsapp",
        WA_SECRET,
        &wa_status("wamid.out.1", "delivered", customer),
    )
    .await;
    let t = transcript(&d, &id).await;
    let bot = t.iter().find(|m| m["role"] == "bot").expect("bot message");
    assert_eq!(bot["delivery"]["status"], "read");
    // A status on a message this daemon never sent is acknowledged and ignored.
    signed(
        &d,
        "whatsapp",
        WA_SECRET,
        &wa_status("wamid.unknown", "read", customer),
    )
    .await;

    // Escalation: the agent learns the window is open before typing.
    let (offered, window) = hand_to_alice(&mut agent, async {
        signed(
            &d,
            "whatsapp",
            WA_SECRET,
            &wa_text(
                "wamid.in.2",
                customer,
                "I want to talk to a human please",
                now_ms(),
            ),
        )
        .await
    })
    .await;
    assert_eq!(offered, id);
    assert_eq!(window["window"]["state"], "open", "{window}");
    assert!(
        window["window"]["until_ms"]
            .as_u64()
            .is_some_and(|u| u > now_ms() + 23 * HOUR_MS)
    );
    assert_eq!(window["window"]["templates"], json!(["order_update"]));

    agent
        .send(json!({"type": "reply", "conversation_id": id, "text": "Hi Kerry, Alice here.", "client_id": "r1"}))
        .await;
    let ack = agent_frame(&mut agent, "ack").await;
    assert_eq!(ack["request"], "reply");
    let agent_seq = ack["seq"].as_u64().expect("seq");
    let sent = loop {
        let sent = graph.wait_sent(3).await;
        if sent
            .iter()
            .any(|s| s.body["text"]["body"] == "Hi Kerry, Alice here.")
        {
            break sent;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let reply = sent
        .iter()
        .position(|s| s.body["text"]["body"] == "Hi Kerry, Alice here.")
        .expect("agent reply sent");
    let wamid = format!("wamid.out.{}", reply + 1);

    // The agent sees the customer read it.
    let mut delivery = Value::Null;
    for _ in 0..50 {
        signed(
            &d,
            "whatsapp",
            WA_SECRET,
            &wa_status(&wamid, "read", customer),
        )
        .await;
        if let Some(f) = agent.next_within(Duration::from_millis(200)).await
            && f["type"] == "delivery"
        {
            delivery = f;
            break;
        }
    }
    assert_eq!(delivery["seq"], agent_seq, "{delivery}");
    assert_eq!(delivery["delivery"]["status"], "read");

    // Close: the bot answers again, through the Graph API.
    agent
        .send(json!({"type": "close", "conversation_id": id}))
        .await;
    agent_frame(&mut agent, "released").await;
    let before = graph.sent().len();
    signed(
        &d,
        "whatsapp",
        WA_SECRET,
        &wa_text(
            "wamid.in.3",
            customer,
            "How do I reset my password?",
            now_ms(),
        ),
    )
    .await;
    let after = loop {
        let sent = graph.wait_sent(before + 1).await;
        if sent
            .iter()
            .any(|s| s.body["text"]["body"] == "Use the Forgot password link on the sign-in page.")
        {
            break sent;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(after.iter().all(|s| s.body["to"] == customer));
}

#[tokio::test]
async fn whatsapp_outside_24_hours_only_templates_go_out() {
    let graph = FakeGraph::start();
    let (d, tokens) = start(&graph);
    let (mut agent, _) = d.agent(&tokens[0]).await;
    let customer = "16315550000";
    let old = now_ms() - 25 * HOUR_MS;

    // A message Meta delivers late (its time is 25 hours ago): the bot's answer is not sent.
    signed(
        &d,
        "whatsapp",
        WA_SECRET,
        &wa_text("wamid.old.1", customer, "What are your opening hours?", old),
    )
    .await;
    let id = only_conversation(&d, "whatsapp").await;
    let mut noted = false;
    for _ in 0..100 {
        let t = transcript(&d, &id).await;
        if t.iter().any(|m| {
            m["role"] == "note" && m["text"].as_str().unwrap_or("").contains("was not sent")
        }) {
            noted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(noted, "the withheld bot answer must be noted");
    let t = transcript(&d, &id).await;
    let bot = t
        .iter()
        .find(|m| m["role"] == "bot")
        .expect("the bot's answer is kept");
    assert_eq!(bot["delivery"]["status"], "failed", "{bot}");
    assert!(
        bot["delivery"]["error"]
            .as_str()
            .unwrap_or("")
            .starts_with("not sent"),
        "{bot}"
    );

    let (offered, window) = hand_to_alice(&mut agent, async {
        signed(
            &d,
            "whatsapp",
            WA_SECRET,
            &wa_text(
                "wamid.old.2",
                customer,
                "I want to talk to a human please",
                old + 1000,
            ),
        )
        .await
    })
    .await;
    assert_eq!(offered, id);
    assert_eq!(window["window"]["state"], "template_only", "{window}");

    // A free-form reply is refused before it reaches Meta.
    agent
        .send(json!({"type": "reply", "conversation_id": id, "text": "Sorry for the wait!"}))
        .await;
    let err = agent_frame(&mut agent, "error").await;
    assert_eq!(err["code"], "window_closed", "{err}");
    assert_eq!(err["request"], "reply");
    assert!(
        err["message"].as_str().unwrap_or("").contains("template"),
        "{err}"
    );

    // Wrong template use is a clear error too.
    agent
        .send(json!({"type": "template", "conversation_id": id, "template": "order_update", "params": ["Kerry"]}))
        .await;
    let err = agent_frame(&mut agent, "error").await;
    assert_eq!(err["code"], "invalid_request", "{err}");
    agent
        .send(json!({"type": "template", "conversation_id": id, "template": "nope", "params": []}))
        .await;
    let err = agent_frame(&mut agent, "error").await;
    assert_eq!(err["code"], "invalid_request", "{err}");

    // The configured template goes out in Meta's template format.
    agent
        .send(json!({"type": "template", "conversation_id": id, "template": "order_update", "params": ["Kerry", "A-1001"], "client_id": "t1"}))
        .await;
    let ack = agent_frame(&mut agent, "ack").await;
    assert_eq!(ack["request"], "template");
    let sent = graph.wait_sent(1).await;
    assert_eq!(sent.len(), 1, "only the template may reach Meta: {sent:?}");
    assert_eq!(
        sent[0].body,
        json!({
            "messaging_product": "whatsapp", "recipient_type": "individual", "to": customer, "type": "template",
            "template": {"name": "order_update", "language": {"code": "en_US"},
                         "components": [{"type": "body", "parameters": [{"type": "text", "text": "Kerry"}, {"type": "text", "text": "A-1001"}]}]}
        })
    );
    let t = transcript(&d, &id).await;
    assert!(
        t.iter()
            .any(|m| m["role"] == "agent"
                && m["text"] == "Hi Kerry, your order A-1001 has an update."),
        "{t:?}"
    );

    // The conversation view carries the window too.
    agent
        .send(json!({"type": "get_conversation", "conversation_id": id}))
        .await;
    let view = agent_frame(&mut agent, "conversation").await;
    assert_eq!(view["window"]["state"], "template_only", "{view}");
    assert_eq!(view["window"]["templates"], json!(["order_update"]));

    // The customer writes again: the window opens and the agent is told.
    signed(
        &d,
        "whatsapp",
        WA_SECRET,
        &wa_text("wamid.new.3", customer, "thanks, what happened?", now_ms()),
    )
    .await;
    let window = agent_frame(&mut agent, "window").await;
    assert_eq!(window["window"]["state"], "open");
    agent
        .send(json!({"type": "reply", "conversation_id": id, "text": "It shipped today."}))
        .await;
    agent_frame(&mut agent, "ack").await;
    let sent = graph.wait_sent(2).await;
    assert_eq!(sent[1].body["text"]["body"], "It shipped today.");

    // Replies typed quickly reach Meta in their order.
    for text in ["one", "two", "three"] {
        agent
            .send(json!({"type": "reply", "conversation_id": id, "text": text}))
            .await;
    }
    let sent = graph.wait_sent(5).await;
    let bodies: Vec<&Value> = sent[2..].iter().map(|s| &s.body["text"]["body"]).collect();
    assert_eq!(bodies, vec!["one", "two", "three"]);

    // WhatsApp reports a delivery failure later, in `statuses`: the agent is told.
    let failed = json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": "8856996819413533", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "16505553333", "phone_number_id": PHONE_ID},
            "statuses": [{"id": "wamid.out.3", "status": "failed", "timestamp": (now_ms() / 1000).to_string(),
                          "recipient_id": customer, "errors": [{"code": 131026, "title": "Message undeliverable"}]}]
        }}]}]
    })
    .to_string();
    let mut note = Value::Null;
    for _ in 0..50 {
        signed(&d, "whatsapp", WA_SECRET, &failed).await;
        if let Some(f) = agent.next_within(Duration::from_millis(200)).await
            && f["type"] == "message"
            && f["message"]["role"] == "note"
        {
            note = f;
            break;
        }
    }
    let text = note["message"]["text"].as_str().unwrap_or("");
    assert!(
        text.contains("could not be delivered") && text.contains("131026"),
        "{note}"
    );
}

#[tokio::test]
async fn messenger_late_replies_carry_the_human_agent_tag_and_reads_are_recorded() {
    let graph = FakeGraph::start();
    let (d, tokens) = start(&graph);
    let (mut agent, _) = d.agent(&tokens[0]).await;
    let old = now_ms() - 30 * HOUR_MS;

    // The customer wrote 30 hours ago: the bot may not answer, a person may, with the tag.
    let (id, window) = hand_to_alice(&mut agent, async {
        let body = messaging(
            "page",
            PAGE_ID,
            "PSID-1",
            message_event("m_in_1", "I want to talk to a human please", old),
        );
        signed(&d, "messenger", FB_SECRET, &body).await
    })
    .await;
    assert_eq!(window["window"]["state"], "human_agent_only", "{window}");
    let until = window["window"]["until_ms"].as_u64().expect("until");
    assert_eq!(until, old + 7 * 24 * HOUR_MS);
    agent
        .send(json!({"type": "reply", "conversation_id": id, "text": "Sorry for the wait, your refund was approved today.", "client_id": "late"}))
        .await;
    let ack = agent_frame(&mut agent, "ack").await;
    let seq = ack["seq"].as_u64().expect("seq");
    let sent = graph.wait_sent(1).await;
    assert_eq!(
        sent.len(),
        1,
        "the bot and the notices must not go out: {sent:?}"
    );
    assert_eq!(sent[0].path, format!("/v23.0/{PAGE_ID}/messages"));
    assert_eq!(sent[0].auth, "Bearer fb-token");
    assert_eq!(
        sent[0].body,
        json!({"recipient": {"id": "PSID-1"}, "messaging_type": "MESSAGE_TAG", "tag": "HUMAN_AGENT",
               "message": {"text": "Sorry for the wait, your refund was approved today."}})
    );

    // The customer answers: the window is open, replies go untagged.
    let body = messaging(
        "page",
        PAGE_ID,
        "PSID-1",
        message_event("m_in_2", "great, thanks", now_ms()),
    );
    signed(&d, "messenger", FB_SECRET, &body).await;
    let window = agent_frame(&mut agent, "window").await;
    assert_eq!(window["window"]["state"], "open");
    agent
        .send(json!({"type": "reply", "conversation_id": id, "text": "You're welcome!"}))
        .await;
    agent_frame(&mut agent, "ack").await;
    let sent = graph.wait_sent(2).await;
    assert_eq!(
        sent[1].body,
        json!({"recipient": {"id": "PSID-1"}, "messaging_type": "RESPONSE", "message": {"text": "You're welcome!"}})
    );

    // Messenger's delivery names the message; its read is a watermark over all we sent.
    let mut got = Value::Null;
    for _ in 0..50 {
        let read = messaging(
            "page",
            PAGE_ID,
            "PSID-1",
            json!({"timestamp": now_ms(), "read": {"watermark": now_ms()}}),
        );
        signed(&d, "messenger", FB_SECRET, &read).await;
        if let Some(f) = agent.next_within(Duration::from_millis(200)).await
            && f["type"] == "delivery"
            && f["seq"] == seq
        {
            got = f;
            break;
        }
    }
    assert_eq!(got["delivery"]["status"], "read", "{got}");
    let t = transcript(&d, &id).await;
    let late = t.iter().find(|m| m["seq"] == seq).expect("late reply");
    assert_eq!(late["delivery"]["status"], "read");
    // The notices the window held back are not claimed read by the watermark.
    let held: Vec<&Value> = t.iter().filter(|m| m["role"] == "system").collect();
    assert!(!held.is_empty(), "{t:?}");
    assert!(
        held.iter().all(|m| m["delivery"]["status"] == "failed"),
        "{held:?}"
    );

    // After seven days nothing free-form can be sent, not even by a person.
    let ancient = now_ms() - 8 * 24 * HOUR_MS;
    let (id2, window) = hand_to_alice(&mut agent, async {
        let body = messaging(
            "page",
            PAGE_ID,
            "PSID-2",
            message_event("m_old_1", "I want to talk to a human please", ancient),
        );
        signed(&d, "messenger", FB_SECRET, &body).await
    })
    .await;
    assert_eq!(window["window"]["state"], "closed", "{window}");
    agent
        .send(json!({"type": "reply", "conversation_id": id2, "text": "Hello?"}))
        .await;
    let err = agent_frame(&mut agent, "error").await;
    assert_eq!(err["code"], "window_closed", "{err}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(graph.sent().len(), 2, "nothing more may reach Meta");
}

#[tokio::test]
async fn instagram_bot_answers_graph_errors_are_retried_or_shown_to_the_agent() {
    let graph = FakeGraph::start();
    let (d, tokens) = start(&graph);
    let (mut agent, _) = d.agent(&tokens[0]).await;

    // Meta is down once (HTTP 503): the bot's answer is retried and arrives.
    graph.script(503, json!({"error": {"message": "Service temporarily unavailable", "type": "OAuthException", "code": 2, "fbtrace_id": "A1"}}));
    let body = messaging(
        "instagram",
        IG_ID,
        "IGSID",
        message_event("MESSAGE-ID", "What are your opening hours?", now_ms()),
    );
    let answer = signed(&d, "instagram", IG_SECRET, &body).await;
    assert_eq!(answer["stored"], 1, "{answer}");
    let sent = graph.wait_sent(2).await;
    assert_eq!(sent[0].body, sent[1].body, "the same message is sent again");
    assert_eq!(sent[1].path, format!("/v23.0/{IG_ID}/messages"));
    assert_eq!(sent[1].auth, "Bearer ig-token");
    assert_eq!(
        sent[1].body,
        json!({"recipient": {"id": "IGSID"}, "messaging_type": "RESPONSE", "message": {"text": "We are open 9 to 5.\nAre you open on Sundays?"}})
    );

    // An echo of that answer is not a customer message.
    let echo = messaging(
        "instagram",
        "IGSID",
        IG_ID,
        json!({"timestamp": now_ms(), "message": {"mid": "ECHO", "text": "We are open 9 to 5.", "is_echo": true}}),
    );
    signed(&d, "instagram", IG_SECRET, &echo).await;

    // A permanent error (invalid recipient) is not retried; the agent is told.
    let (id, window) = hand_to_alice(&mut agent, async {
        let body = messaging(
            "instagram",
            IG_ID,
            "IGSID",
            message_event("MESSAGE-ID-2", "I want to talk to a human please", now_ms()),
        );
        signed(&d, "instagram", IG_SECRET, &body).await
    })
    .await;
    assert_eq!(window["window"]["state"], "open");
    // Whatever notices went out before, the agent's reply meets the error.
    let before = graph.wait_sent(2).await.len();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = graph.sent().len().max(before);
    graph.script(400, json!({"error": {"message": "(#100) No matching user found", "type": "OAuthException", "code": 100, "error_subcode": 2018001, "fbtrace_id": "A2"}}));
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
        text.contains("could not be delivered") && text.contains("No matching user found"),
        "{note}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        graph.sent().len(),
        before + 1,
        "a permanent failure is not retried"
    );
    let t = transcript(&d, &id).await;
    let customer_msgs = t.iter().filter(|m| m["role"] == "customer").count();
    assert_eq!(customer_msgs, 2, "the echo must not be stored: {t:?}");

    // Instagram's window: a person may answer a two-day-old message, tagged HUMAN_AGENT.
    let old = now_ms() - 48 * HOUR_MS;
    let (late_id, window) = hand_to_alice(&mut agent, async {
        let body = messaging(
            "instagram",
            IG_ID,
            "IGSID-2",
            message_event("MESSAGE-ID-3", "I want to talk to a human please", old),
        );
        signed(&d, "instagram", IG_SECRET, &body).await
    })
    .await;
    assert_eq!(window["window"]["state"], "human_agent_only", "{window}");
    let before = graph.sent().len();
    agent
        .send(json!({"type": "reply", "conversation_id": late_id, "text": "Following up on your question from Tuesday."}))
        .await;
    let sent = graph.wait_sent(before + 1).await;
    assert_eq!(
        sent.len(),
        before + 1,
        "only the agent's reply may go out: {sent:?}"
    );
    assert_eq!(
        sent[before].body,
        json!({"recipient": {"id": "IGSID-2"}, "messaging_type": "MESSAGE_TAG", "tag": "HUMAN_AGENT",
               "message": {"text": "Following up on your question from Tuesday."}})
    );
}

#[tokio::test]
async fn statuses_and_windows_survive_a_kill_9() {
    let graph = FakeGraph::start();
    let (d, tokens) = start(&graph);
    let customer = "16315559999";

    // A bot answer sent before the crash, its id saved by the outbox.
    signed(
        &d,
        "whatsapp",
        WA_SECRET,
        &wa_text(
            "wamid.r.1",
            customer,
            "What are your opening hours?",
            now_ms(),
        ),
    )
    .await;
    graph.wait_sent(1).await;
    let id = only_conversation(&d, "whatsapp").await;
    let mut saved = false;
    for _ in 0..50 {
        signed(
            &d,
            "whatsapp",
            WA_SECRET,
            &wa_status("wamid.out.1", "sent", customer),
        )
        .await;
        if transcript(&d, &id)
            .await
            .iter()
            .any(|m| m["delivery"]["status"] == "sent")
        {
            saved = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(saved, "the sent status must be recorded");
    // A second customer whose last message is 25 hours old.
    signed(
        &d,
        "whatsapp",
        WA_SECRET,
        &wa_text(
            "wamid.r.2",
            "16315558888",
            "I want to talk to a human please",
            now_ms() - 25 * HOUR_MS,
        ),
    )
    .await;

    let mut queued = false;
    for _ in 0..100 {
        let (_, q) = d.api_get("/api/v1/conversations?owner=queued").await;
        if q["conversations"].as_array().is_some_and(|c| c.len() == 1) {
            queued = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(queued, "the late customer must be queued before the crash");

    let dir = d.kill9();
    let d = Daemon::start(dir);

    // The platform id of the answer survived: a later read lands on it.
    signed(
        &d,
        "whatsapp",
        WA_SECRET,
        &wa_status("wamid.out.1", "read", customer),
    )
    .await;
    let t = transcript(&d, &id).await;
    let bot = t.iter().find(|m| m["role"] == "bot").expect("bot answer");
    assert_eq!(bot["delivery"]["status"], "read", "{bot}");
    // Redelivery of a message from before the crash is still recognised.
    let again = signed(
        &d,
        "whatsapp",
        WA_SECRET,
        &wa_text(
            "wamid.r.1",
            customer,
            "What are your opening hours?",
            now_ms(),
        ),
    )
    .await;
    assert_eq!(again["duplicates"], 1, "{again}");

    // The old conversation's window is still closed to free-form text.
    let (mut agent, _) = d.agent(&tokens[0]).await;
    let offer = agent.expect_skipping("offer", &["typing", "status"]).await;
    let late = offer["conversation_id"].as_str().expect("id").to_string();
    agent
        .send(json!({"type": "accept", "conversation_id": late}))
        .await;
    let window = agent_frame(&mut agent, "window").await;
    assert_eq!(window["window"]["state"], "template_only", "{window}");
}
