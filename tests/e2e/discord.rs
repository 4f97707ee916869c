//! Discord end to end: a fake of Discord on loopback and the real daemon driven by it.
//!
//! The fake has a REST half (`GET /api/v10/gateway`, `POST /api/v10/channels/{id}/messages`
//! recording every body, `POST .../typing`; scripted errors in Discord's JSON shape) and a
//! gateway half on two websocket listeners, the first for new sessions and the second
//! announced as READY's `resume_gateway_url`. It speaks the gateway's wire format: HELLO,
//! IDENTIFY checked for the bot token, READY, heartbeats answered with ACKs, MESSAGE_CREATE
//! dispatches numbered by `s`, RESUME answered by replaying what followed the given
//! sequence number (one event more, on purpose: the last one the daemon had already
//! handled) and RESUMED, or by INVALID_SESSION when scripted.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use crate::support::*;

const TOKEN: &str = "MTA5.fake-discord_token";
const BOT_ID: &str = "1000000000000000001";
const USER: &str = "2000000000000000002";
const DM: &str = "3000000000000000003";

/// What the fake's gateway can be told to do to the live connection.
enum Cmd {
    Send(Value),
    /// Drops the TCP connection without a close frame.
    Drop,
}

/// One websocket connection the daemon opened.
#[derive(Debug, Clone)]
struct Conn {
    /// `main` or `resume`: which listener took it.
    listener: &'static str,
    query: String,
    /// The daemon's first frame (IDENTIFY or RESUME).
    opening: Value,
}

#[derive(Default)]
struct FakeState {
    /// The gateway URL `GET /gateway` returns.
    gateway_url: String,
    resume_url: String,
    /// `(channel id, body, when)` of every message POST, failed ones included.
    posts: Vec<(String, Value, Instant)>,
    /// How many posts Discord accepted (scripted errors are not).
    created: Vec<Value>,
    typing: Vec<String>,
    /// Answers for the next message POSTs instead of a success: status, Retry-After, body.
    script: VecDeque<(u16, Option<String>, Value)>,
    /// Requests without `Authorization: Bot <TOKEN>`.
    unauthorized: Vec<String>,
    gateway_gets: usize,
    next_id: u64,
    // The gateway half.
    session_id: Option<String>,
    sessions: u64,
    seq: u64,
    /// Every dispatch of the current session, for replays.
    events: Vec<Value>,
    conns: Vec<Conn>,
    heartbeats: usize,
    live: Option<mpsc::UnboundedSender<Cmd>>,
    /// Answer the next RESUME with INVALID_SESSION (d: false).
    refuse_next_resume: bool,
}

type Shared = Arc<Mutex<FakeState>>;

fn lock(s: &Shared) -> std::sync::MutexGuard<'_, FakeState> {
    s.lock().expect("fake state")
}

async fn rest_route(req: HttpRequest, body: web::Bytes, state: web::Data<Shared>) -> HttpResponse {
    let path = req.path().to_string();
    let mut st = lock(&state);
    let authorized = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        == Some(&format!("Bot {TOKEN}"));
    if !authorized {
        st.unauthorized.push(path);
        return HttpResponse::Unauthorized()
            .json(json!({"message": "401: Unauthorized", "code": 0}));
    }
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (req.method().as_str(), parts.as_slice()) {
        ("GET", ["api", "v10", "gateway"]) => {
            st.gateway_gets += 1;
            HttpResponse::Ok().json(json!({"url": st.gateway_url}))
        }
        ("POST", ["api", "v10", "channels", channel, "typing"]) => {
            st.typing.push(channel.to_string());
            HttpResponse::NoContent().finish()
        }
        ("POST", ["api", "v10", "channels", channel, "messages"]) => {
            let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            st.posts
                .push((channel.to_string(), body.clone(), Instant::now()));
            if let Some((status, retry_after, answer)) = st.script.pop_front() {
                let status = actix_web::http::StatusCode::from_u16(status).expect("status");
                let mut r = HttpResponse::build(status);
                if let Some(h) = retry_after {
                    r.insert_header(("Retry-After", h));
                }
                return r.json(answer);
            }
            st.next_id += 1;
            let id = (5_000_000_000_000_000_000u64 + st.next_id).to_string();
            st.created.push(body.clone());
            HttpResponse::Ok().json(json!({
                "id": id, "channel_id": channel, "content": body["content"], "type": 0,
                "author": {"id": BOT_ID, "username": "handoffd", "bot": true},
            }))
        }
        _ => HttpResponse::NotFound().json(json!({"message": "404: Not Found", "code": 0})),
    }
}

/// The next JSON frame from the daemon; None when the connection ended.
async fn read_json<S>(ws: &mut tokio_tungstenite::WebSocketStream<S>) -> Option<Value>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    loop {
        match ws.next().await? {
            Ok(Message::Text(t)) => return serde_json::from_str(&t).ok(),
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(_) => continue,
        }
    }
}

/// One gateway connection, from HELLO to its end.
// The handshake callback's error type is tungstenite's HTTP response, by its signature.
#[allow(clippy::result_large_err)]
async fn serve_gateway(tcp: tokio::net::TcpStream, listener: &'static str, state: Shared) {
    let query = Arc::new(Mutex::new(String::new()));
    let q = query.clone();
    let callback =
        move |req: &tokio_tungstenite::tungstenite::handshake::server::Request,
              resp: tokio_tungstenite::tungstenite::handshake::server::Response| {
            *q.lock().expect("query") = req.uri().query().unwrap_or("").to_string();
            Ok(resp)
        };
    let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(tcp, callback).await else {
        return;
    };
    let send = |v: Value| Message::text(v.to_string());
    if ws
        .send(send(json!({"op": 10, "d": {"heartbeat_interval": 400}})))
        .await
        .is_err()
    {
        return;
    }
    let Some(opening) = read_json(&mut ws).await else {
        return;
    };
    let query = query.lock().expect("query").clone();
    let (tx, mut rx) = mpsc::unbounded_channel();
    // What to answer, decided under the lock; the socket is written after it.
    enum Answer {
        Refuse(Option<Value>, Option<u16>),
        Frames(Vec<Value>),
    }
    let answer = {
        let mut st = lock(&state);
        st.conns.push(Conn {
            listener,
            query,
            opening: opening.clone(),
        });
        let token_ok = opening["d"]["token"] == format!("Bot {TOKEN}");
        match opening["op"].as_u64() {
            _ if !token_ok => Answer::Refuse(None, Some(4004)),
            Some(2) => {
                st.sessions += 1;
                let session = format!("session-{}", st.sessions);
                st.session_id = Some(session.clone());
                st.events.clear();
                st.seq = 1;
                st.live = Some(tx);
                Answer::Frames(vec![json!({"op": 0, "t": "READY", "s": 1, "d": {
                    "v": 10,
                    "user": {"id": BOT_ID, "username": "handoffd", "bot": true},
                    "guilds": [],
                    "session_id": session,
                    "resume_gateway_url": st.resume_url,
                    "application": {"id": BOT_ID, "flags": 0},
                }})])
            }
            Some(6) => {
                let resumable = st.session_id.is_some()
                    && opening["d"]["session_id"] == json!(st.session_id)
                    && !st.refuse_next_resume;
                if resumable {
                    // One event more than asked for: the daemon must recognise it.
                    let from = opening["d"]["seq"].as_u64().unwrap_or(0);
                    let mut frames: Vec<Value> = st
                        .events
                        .iter()
                        .filter(|e| e["s"].as_u64().is_some_and(|s| s >= from))
                        .cloned()
                        .collect();
                    st.seq += 1;
                    frames.push(json!({"op": 0, "t": "RESUMED", "s": st.seq, "d": null}));
                    st.live = Some(tx);
                    Answer::Frames(frames)
                } else {
                    st.refuse_next_resume = false;
                    st.session_id = None;
                    Answer::Refuse(Some(json!({"op": 9, "d": false})), None)
                }
            }
            _ => Answer::Refuse(None, None),
        }
    };
    let outgoing = match answer {
        Answer::Frames(f) => f,
        Answer::Refuse(frame, code) => {
            if let Some(f) = frame {
                let _ = ws.send(send(f)).await;
            }
            let close = code.map(|c| tokio_tungstenite::tungstenite::protocol::CloseFrame {
                code: c.into(),
                reason: "Authentication failed.".into(),
            });
            let _ = ws.close(close).await;
            return;
        }
    };
    for frame in outgoing {
        if ws.send(send(frame)).await.is_err() {
            return;
        }
    }
    loop {
        tokio::select! {
            cmd = rx.recv() => match cmd {
                Some(Cmd::Send(v)) => {
                    if ws.send(send(v)).await.is_err() {
                        return;
                    }
                }
                Some(Cmd::Drop) | None => return,
            },
            frame = read_json(&mut ws) => match frame {
                Some(f) if f["op"] == 1 => {
                    lock(&state).heartbeats += 1;
                    if ws.send(send(json!({"op": 11}))).await.is_err() {
                        return;
                    }
                }
                Some(_) => {}
                None => return,
            },
        }
    }
}

async fn accept_loop(listener: TcpListener, name: &'static str, state: Shared) {
    while let Ok((tcp, _)) = listener.accept().await {
        tokio::spawn(serve_gateway(tcp, name, state.clone()));
    }
}

/// The fake Discord: REST on an actix thread, the gateway on the test's runtime.
struct FakeDiscord {
    url: String,
    state: Shared,
    _server: FakeServer,
}

impl FakeDiscord {
    async fn start() -> FakeDiscord {
        let main = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind gateway");
        let resume = TcpListener::bind("127.0.0.1:0").await.expect("bind resume");
        let state: Shared = Arc::new(Mutex::new(FakeState {
            gateway_url: format!("ws://{}", main.local_addr().expect("addr")),
            resume_url: format!("ws://{}", resume.local_addr().expect("addr")),
            ..FakeState::default()
        }));
        tokio::spawn(accept_loop(main, "main", state.clone()));
        tokio::spawn(accept_loop(resume, "resume", state.clone()));
        let server = FakeServer::start(state.clone(), rest_route);
        FakeDiscord {
            url: server.url.clone(),
            state,
            _server: server,
        }
    }

    fn script(&self, status: u16, retry_after: Option<&str>, body: Value) {
        lock(&self.state)
            .script
            .push_back((status, retry_after.map(str::to_string), body));
    }

    /// Dispatches an event in the current session: sent at once when the daemon is
    /// connected, and kept for replay either way. Returns its sequence number.
    fn dispatch(&self, t: &str, d: Value) -> u64 {
        let mut st = lock(&self.state);
        st.seq += 1;
        let event = json!({"op": 0, "t": t, "s": st.seq, "d": d});
        st.events.push(event.clone());
        if let Some(live) = &st.live {
            let _ = live.send(Cmd::Send(event));
        }
        st.seq
    }

    /// A direct message from the test user; returns its sequence number.
    fn dm(&self, id: u64, text: &str) -> u64 {
        self.dispatch("MESSAGE_CREATE", message(id, DM, None, USER, text))
    }

    fn drop_connection(&self) {
        if let Some(live) = lock(&self.state).live.take() {
            let _ = live.send(Cmd::Drop);
        }
    }

    fn conns(&self) -> Vec<Conn> {
        lock(&self.state).conns.clone()
    }

    /// Waits (bounded) until the daemon has opened `n` sessions or resumes in all.
    async fn wait_conns(&self, n: usize) -> Vec<Conn> {
        for _ in 0..400 {
            let c = self.conns();
            if c.len() >= n && lock(&self.state).live.is_some() {
                return c;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!(
            "the daemon opened {} gateway connection(s), not {n}",
            self.conns().len()
        );
    }

    fn posts(&self) -> Vec<(String, Value, Instant)> {
        lock(&self.state).posts.clone()
    }

    fn contents(&self) -> Vec<String> {
        self.posts()
            .iter()
            .map(|(_, b, _)| b["content"].as_str().unwrap_or("").to_string())
            .collect()
    }

    fn created_count(&self, content: &str) -> usize {
        lock(&self.state)
            .created
            .iter()
            .filter(|b| b["content"] == content)
            .count()
    }

    /// Waits (bounded) until `content` was POSTed `times` times; returns every post.
    async fn wait_content(&self, content: &str, times: usize) -> Vec<(String, Value, Instant)> {
        for _ in 0..400 {
            if self.contents().iter().filter(|c| *c == content).count() >= times {
                return self.posts();
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!(
            "`{content}` not posted {times} time(s); posted: {:?}",
            self.contents()
        );
    }
}

/// A MESSAGE_CREATE payload; `guild` set for a guild channel.
fn message(id: u64, channel: &str, guild: Option<&str>, author: &str, text: &str) -> Value {
    let mut m = json!({
        "id": (1_200_000_000_000_000_000u64 + id).to_string(),
        "channel_id": channel,
        "type": 0,
        "content": text,
        "author": {"id": author, "username": "ada", "global_name": "Ada Lovelace", "bot": false},
        "attachments": [],
        "timestamp": "2026-11-29T04:00:00.000000+00:00",
    });
    if let Some(g) = guild {
        m["guild_id"] = json!(g);
    }
    m
}

fn discord_config(fake: &FakeDiscord, extra: &str) -> String {
    format!(
        "\n[discord]\ntoken = \"{TOKEN}\"\napi_url = \"{}\"\n{extra}\n",
        fake.url
    )
}

fn start(fake: &FakeDiscord, extra: &str) -> (Daemon, Vec<String>) {
    let o = Options {
        extra: discord_config(fake, extra),
        ..Options::default()
    };
    let (dir, tokens) = Daemon::prepare(&o, &[("alice", "support", 2)]);
    (Daemon::start(dir), tokens)
}

async fn conversations(d: &Daemon) -> Vec<Value> {
    let (status, body) = d.api_get("/api/v1/conversations?channel=discord").await;
    assert_eq!(status, 200, "{body}");
    body["conversations"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

async fn customer_messages(d: &Daemon, id: &str) -> Vec<Value> {
    d.conversation(id).await["transcript"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|m| m["role"] == "customer")
        .collect()
}

async fn customer_texts(d: &Daemon, id: &str) -> Vec<String> {
    customer_messages(d, id)
        .await
        .iter()
        .map(|m| m["text"].as_str().unwrap_or("").to_string())
        .collect()
}

/// Waits (bounded) until the conversation of `user` holds `n` customer messages.
async fn wait_customer_count(d: &Daemon, user: &str, n: usize) -> String {
    for _ in 0..400 {
        if let Some(c) = conversations(d)
            .await
            .into_iter()
            .find(|c| c["contact"]["channel_user_id"] == user)
        {
            let id = c["id"].as_str().expect("id").to_string();
            if customer_messages(d, &id).await.len() >= n {
                return id;
            }
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!(
        "the conversation of {user} never held {n} customer message(s): {:?}",
        conversations(d).await
    );
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

/// The FAQ answer as Discord gets it: its quick reply listed under the text.
const HOURS: &str = "We are open 9 to 5.\nAre you open on Sundays?";
const RESET: &str = "Use the Forgot password link on the sign-in page.";

#[tokio::test]
async fn discord_dm_bot_answer_rate_limit_handoff_split_reply_attachment_and_handback() {
    let fake = FakeDiscord::start().await;
    // The bot's first answer meets a rate limit once: half a second by the body's float,
    // the header rounded up as Discord does.
    fake.script(
        429,
        Some("1"),
        json!({"message": "You are being rate limited.", "retry_after": 0.5, "global": false}),
    );
    let (d, tokens) = start(&fake, "");
    let (mut agent, _) = d.agent(&tokens[0]).await;
    let conns = fake.wait_conns(1).await;
    assert_eq!(conns[0].listener, "main");
    assert_eq!(conns[0].opening["op"], 2, "a new session is identified");
    assert_eq!(
        conns[0].opening["d"]["intents"],
        (1 << 9) | (1 << 12) | (1 << 15),
        "the default intents: guild messages, direct messages, message content"
    );
    assert!(conns[0].query.contains("v=10") && conns[0].query.contains("encoding=json"));

    fake.dm(1, "What are your opening hours?");
    let posts = fake.wait_content(HOURS, 2).await;
    let hours: Vec<_> = posts
        .iter()
        .filter(|(_, b, _)| b["content"] == HOURS)
        .collect();
    assert_eq!(
        hours[0].1, hours[1].1,
        "the same message is sent again after the 429"
    );
    let waited = hours[1].2.duration_since(hours[0].2);
    assert!(
        waited >= Duration::from_millis(450),
        "retry_after honoured: {waited:?}"
    );
    assert_eq!(hours[1].0, DM);
    assert_eq!(hours[1].1["allowed_mentions"], json!({"parse": []}));
    assert_eq!(fake.created_count(HOURS), 1, "delivered exactly once");

    let list = conversations(&d).await;
    assert_eq!(list.len(), 1, "{list:?}");
    let id = list[0]["id"].as_str().expect("id").to_string();
    let contact = &list[0]["contact"];
    assert_eq!(contact["name"], "Ada Lovelace (@ada)", "{list:?}");
    assert_eq!(contact["channel_user_id"], USER);

    // Escalation, offer, and the agent's long reply in parts under Discord's limit.
    fake.dm(2, "I want to talk to a human please");
    let offered = accept_offer(&mut agent).await;
    assert_eq!(offered, id);
    agent
        .send(json!({"type": "typing", "conversation_id": id, "active": true}))
        .await;
    let long: String = (0..1000)
        .map(|i| {
            if i % 50 == 49 {
                format!("l{i}\n")
            } else {
                format!("w{i} ")
            }
        })
        .collect::<String>()
        .trim_end()
        .to_string();
    assert!(long.chars().count() > 4000);
    let before = fake.posts().len();
    agent
        .send(json!({"type": "reply", "conversation_id": id, "text": long}))
        .await;
    let mut parts = Vec::new();
    for _ in 0..400 {
        parts = fake.posts()[before..]
            .iter()
            .filter(|(_, b, _)| {
                b["content"]
                    .as_str()
                    .is_some_and(|t| t.starts_with('w') || t.starts_with('l'))
            })
            .map(|(c, b, _)| (c.clone(), b["content"].as_str().unwrap_or("").to_string()))
            .collect::<Vec<_>>();
        if parts.iter().map(|(_, t)| t.len()).sum::<usize>() >= long.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(parts.len() >= 3, "{parts:?}");
    assert!(
        parts
            .iter()
            .all(|(c, t)| c == DM && t.chars().count() <= 2000)
    );
    assert!(
        parts[..parts.len() - 1]
            .iter()
            .all(|(_, t)| t.ends_with('\n') || t.ends_with(' ')),
        "parts break after a line or a word"
    );
    let joined: String = parts.iter().map(|(_, t)| t.as_str()).collect();
    assert_eq!(joined, long, "the parts make the whole reply, in order");
    assert!(
        lock(&fake.state).typing.contains(&DM.to_string()),
        "the agent typing shows"
    );

    // The customer answers the agent with a file: it reaches the agent, not the bot.
    let mut with_file = message(3, DM, None, USER, "Thanks Alice, here is the invoice");
    with_file["attachments"] = json!([{
        "id": "77", "filename": "invoice.pdf", "size": 48213,
        "url": "https://cdn.discordapp.test/attachments/3/77/invoice.pdf",
        "content_type": "application/pdf",
    }]);
    fake.dispatch("MESSAGE_CREATE", with_file);
    let mut from_customer = Value::Null;
    for _ in 0..20 {
        let m = agent_frame(&mut agent, "message").await;
        if m["message"]["role"] == "customer" {
            from_customer = m;
            break;
        }
    }
    assert_eq!(
        from_customer["message"]["text"],
        "Thanks Alice, here is the invoice"
    );

    // Close: the bot answers again.
    agent
        .send(json!({"type": "close", "conversation_id": id}))
        .await;
    agent_frame(&mut agent, "released").await;
    fake.dm(4, "How do I reset my password?");
    fake.wait_content(RESET, 1).await;
    assert!(fake.posts().iter().all(|(c, _, _)| c == DM));
    assert!(lock(&fake.state).unauthorized.is_empty());
    let messages = customer_messages(&d, &id).await;
    let texts: Vec<&str> = messages
        .iter()
        .map(|m| m["text"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        texts,
        vec![
            "What are your opening hours?",
            "I want to talk to a human please",
            "Thanks Alice, here is the invoice",
            "How do I reset my password?"
        ]
    );
    assert_eq!(
        messages[2]["attachments"],
        json!([{"id": "https://cdn.discordapp.test/attachments/3/77/invoice.pdf",
                "kind": "application/pdf", "name": "invoice.pdf", "size": 48213}])
    );
    assert!(lock(&fake.state).heartbeats >= 1, "heartbeats are sent");
}

#[tokio::test]
async fn discord_server_errors_are_retried_and_a_user_who_cannot_be_messaged_is_shown_to_the_agent()
{
    let fake = FakeDiscord::start().await;
    fake.script(502, None, json!({"message": "502 Bad Gateway", "code": 0}));
    fake.script(503, None, json!({"message": "upstream connect error"}));
    let (d, tokens) = start(&fake, "");
    let (mut agent, _) = d.agent(&tokens[0]).await;
    fake.wait_conns(1).await;
    fake.dm(10, "What are your opening hours?");
    let posts = fake.wait_content(HOURS, 3).await;
    assert_eq!(posts.len(), 3);
    assert_eq!(
        fake.created_count(HOURS),
        1,
        "delivered once after two server errors"
    );

    fake.dm(11, "I want to talk to a human please");
    let id = accept_offer(&mut agent).await;
    // Let the handoff notices go out before the failure is scripted.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = fake.posts().len();
    fake.script(
        403,
        None,
        json!({"message": "Cannot send messages to this user", "code": 50007}),
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
        text.contains("could not be delivered")
            && text.contains("Cannot send messages to this user"),
        "{note}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        fake.posts().len(),
        before + 1,
        "a user who cannot be messaged is not retried"
    );
    let t = d.conversation(&id).await["transcript"].clone();
    assert!(
        t.as_array().is_some_and(|t| t
            .iter()
            .any(|m| m["text"].as_str().is_some_and(|s| s.contains("50007")))),
        "the failure is recorded on the conversation: {t}"
    );
}

#[tokio::test]
async fn discord_dropped_gateway_resumes_on_the_resume_url_and_a_restart_stores_nothing_twice() {
    let fake = FakeDiscord::start().await;
    let (d, _) = start(&fake, "");
    fake.wait_conns(1).await;
    let s1 = fake.dm(20, "What are your opening hours?");
    let id = wait_customer_count(&d, USER, 1).await;
    fake.wait_content(HOURS, 1).await;

    // The connection drops; a message comes while the daemon is away.
    fake.drop_connection();
    fake.dm(21, "How do I reset my password?");
    let conns = fake.wait_conns(2).await;
    assert_eq!(
        conns[1].listener, "resume",
        "RESUME goes to resume_gateway_url"
    );
    assert_eq!(conns[1].opening["op"], 6);
    assert_eq!(conns[1].opening["d"]["token"], format!("Bot {TOKEN}"));
    assert_eq!(conns[1].opening["d"]["session_id"], "session-1");
    assert_eq!(
        conns[1].opening["d"]["seq"], s1,
        "the last sequence number handled: the message journaled before the drop"
    );
    // The fake replayed the message from before the drop and the new one.
    wait_customer_count(&d, USER, 2).await;
    fake.wait_content(RESET, 1).await;
    // A message after the replay, in order behind it, shows the replay is done.
    fake.dm(22, "When are you open?");
    wait_customer_count(&d, USER, 3).await;
    assert_eq!(
        customer_texts(&d, &id).await,
        vec![
            "What are your opening hours?",
            "How do I reset my password?",
            "When are you open?"
        ],
        "the replayed message is not stored twice"
    );
    assert_eq!(
        fake.created_count(HOURS),
        2,
        "one answer per stored question, none for the replay"
    );
    assert_eq!(fake.created_count(RESET), 1);

    // kill -9 and a restart: the saved session is resumed, the fake replays the last
    // message again plus one sent while the daemon was down.
    let s3 = lock(&fake.state).seq;
    // The sequence number is saved right after the message is journaled; the bot's answer
    // and two heartbeats later it is on disk.
    fake.wait_content(HOURS, 2).await;
    let beats = lock(&fake.state).heartbeats;
    for _ in 0..200 {
        if lock(&fake.state).heartbeats >= beats + 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let dir = d.kill9();
    fake.drop_connection();
    fake.dm(23, "How do I reset my password?");
    let d = Daemon::start(dir);
    let conns = fake.wait_conns(3).await;
    assert_eq!(conns[2].listener, "resume");
    assert_eq!(conns[2].opening["op"], 6);
    assert_eq!(
        conns[2].opening["d"]["seq"], s3,
        "the saved sequence number"
    );
    wait_customer_count(&d, USER, 4).await;
    // And INVALID_SESSION on the next resume: the daemon identifies anew on the main URL.
    lock(&fake.state).refuse_next_resume = true;
    fake.drop_connection();
    for _ in 0..400 {
        if fake.conns().len() >= 5 && lock(&fake.state).live.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let conns = fake.conns();
    assert!(conns.len() >= 5, "{conns:?}");
    assert_eq!(conns[3].opening["op"], 6);
    assert_eq!(conns[4].listener, "main");
    assert_eq!(
        conns[4].opening["op"], 2,
        "a refused session is identified anew"
    );
    fake.dm(24, "What are your opening hours?");
    wait_customer_count(&d, USER, 5).await;
    assert_eq!(
        customer_texts(&d, &id).await,
        vec![
            "What are your opening hours?",
            "How do I reset my password?",
            "When are you open?",
            "How do I reset my password?",
            "What are your opening hours?"
        ]
    );
    assert_eq!(fake.created_count(RESET), 2);
}

#[tokio::test]
async fn discord_support_channel_gives_each_user_a_conversation_and_replies_mention_them() {
    const SUPPORT: &str = "4000000000000000004";
    const GUILD: &str = "6000000000000000006";
    const OTHER_USER: &str = "2000000000000000099";
    let fake = FakeDiscord::start().await;
    let (d, _) = start(&fake, &format!("support_channel_id = \"{SUPPORT}\""));
    fake.wait_conns(1).await;
    // Ignored: another guild channel, another bot, the bot itself.
    fake.dispatch(
        "MESSAGE_CREATE",
        message(30, "4000000000000000777", Some(GUILD), USER, "hello?"),
    );
    let mut other_bot = message(
        31,
        SUPPORT,
        Some(GUILD),
        "7000000000000000007",
        "I am a bot",
    );
    other_bot["author"]["bot"] = json!(true);
    fake.dispatch("MESSAGE_CREATE", other_bot);
    fake.dispatch(
        "MESSAGE_CREATE",
        message(32, SUPPORT, Some(GUILD), BOT_ID, "We are open 9 to 5."),
    );
    // Two users in the support channel.
    fake.dispatch(
        "MESSAGE_CREATE",
        message(
            33,
            SUPPORT,
            Some(GUILD),
            USER,
            "What are your opening hours?",
        ),
    );
    let mut other = message(
        34,
        SUPPORT,
        Some(GUILD),
        OTHER_USER,
        "How do I reset my password?",
    );
    other["author"]["username"] = json!("grace");
    other["author"]["global_name"] = Value::Null;
    fake.dispatch("MESSAGE_CREATE", other);
    let first = wait_customer_count(&d, USER, 1).await;
    let second = wait_customer_count(&d, OTHER_USER, 1).await;
    assert_ne!(first, second);
    assert_eq!(
        conversations(&d).await.len(),
        2,
        "nothing else became a conversation"
    );
    let hours = format!("<@{USER}> {HOURS}");
    let reset = format!("<@{OTHER_USER}> {RESET}");
    let posts = fake.wait_content(&reset, 1).await;
    fake.wait_content(&hours, 1).await;
    for (content, user) in [(&hours, USER), (&reset, OTHER_USER)] {
        let (channel, body, _) = posts
            .iter()
            .chain(fake.posts().iter())
            .find(|(_, b, _)| b["content"] == **content)
            .cloned()
            .expect("posted");
        assert_eq!(channel, SUPPORT);
        assert_eq!(
            body["allowed_mentions"],
            json!({"parse": [], "users": [user]})
        );
    }
    let c = d.conversation(&second).await;
    assert_eq!(c["conversation"]["contact"]["name"], "@grace", "{c}");
    assert_eq!(fake.posts().len(), 2, "the bot answered only the two users");
}
