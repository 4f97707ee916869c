//! The test harness: a real `handoffd` process on loopback with a throwaway data directory,
//! websocket clients for widgets and agents, and a REST client.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

pub const API_KEY: &str = "test-api-key-0123456789";
/// How long a test waits for one expected frame before failing.
pub const FRAME_WAIT: Duration = Duration::from_secs(10);

/// Settings a test may change in the generated config.
#[derive(Clone)]
pub struct Options {
    pub offer_timeout_secs: u64,
    pub requeue_after_disconnect_secs: u64,
    pub conversation_idle_secs: u64,
    /// `conversations.stop_after_leaving_secs`.
    pub stop_after_leaving_secs: u64,
    /// `widget.allowed_origins`, written as TOML strings.
    pub allowed_origins: Vec<String>,
    pub extra: String,
    /// Where the daemon listens; port 0 picks a free one.
    pub listen: String,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            offer_timeout_secs: 30,
            requeue_after_disconnect_secs: 60,
            conversation_idle_secs: 300,
            stop_after_leaving_secs: 30,
            allowed_origins: vec!["*".into()],
            extra: String::new(),
            listen: "127.0.0.1:0".into(),
        }
    }
}

/// A daemon process and its data directory.
pub struct Daemon {
    pub dir: tempfile::TempDir,
    pub addr: String,
    child: Option<Child>,
}

fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_handoffd"))
}

pub fn write_config(dir: &Path, o: &Options) -> PathBuf {
    let text = format!(
        r#"
[server]
listen = "{listen}"
workers = 2
shutdown_timeout_secs = 1

[storage]
data_dir = "{data}"

[api]
keys = ["{API_KEY}"]

[widget]
token_secret = "test-widget-secret-0123456789"
allowed_origins = {origins}

[conversations]
idle_timeout_secs = {idle}
stop_after_leaving_secs = {after_leaving}

[bot]
confidence_threshold = 0.35

[[bot.faq]]
question = "What are your opening hours?"
alternatives = ["When are you open?"]
answer = "We are open 9 to 5."
intent = "opening_hours"
quick_replies = ["Are you open on Sundays?"]

[[bot.faq]]
question = "How do I reset my password?"
answer = "Use the Forgot password link on the sign-in page."
intent = "reset_password"

[escalation]
mode = "warm"

[[escalation.keyword_rules]]
name = "legal"
patterns = ['\blawyer\b']
priority = 3

[router]
offer_timeout_secs = {offer}
requeue_after_disconnect_secs = {requeue}

[[router.teams]]
name = "support"

[[router.teams]]
name = "billing"

{extra}
"#,
        data = dir.join("data").display(),
        idle = o.conversation_idle_secs,
        after_leaving = o.stop_after_leaving_secs,
        offer = o.offer_timeout_secs,
        origins = serde_json::to_string(&o.allowed_origins).expect("origins as a TOML array"),
        requeue = o.requeue_after_disconnect_secs,
        extra = o.extra,
        listen = o.listen,
    );
    let path = dir.join("config.toml");
    std::fs::write(&path, text).expect("write config");
    path
}

impl Daemon {
    /// A fresh data directory with a config, and agents added through the CLI.
    pub fn prepare(o: &Options, agents: &[(&str, &str, u32)]) -> (tempfile::TempDir, Vec<String>) {
        // reqwest is built with rustls for the Graph API client; its clients here need the
        // process's crypto provider.
        handoffd_channels::meta::install_crypto_provider();
        let dir = tempfile::tempdir().expect("tempdir");
        let config = write_config(dir.path(), o);
        let mut tokens = Vec::new();
        for (id, team, capacity) in agents {
            let out = Command::new(binary())
                .args(["--config"])
                .arg(&config)
                .args(["agent", "add", id, "--team", team, "--capacity"])
                .arg(capacity.to_string())
                .output()
                .expect("run agent add");
            assert!(
                out.status.success(),
                "agent add failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            tokens.push(String::from_utf8_lossy(&out.stdout).trim().to_string());
        }
        (dir, tokens)
    }

    /// Starts the daemon on a prepared directory and waits for its address.
    pub fn start(dir: tempfile::TempDir) -> Daemon {
        handoffd_channels::meta::install_crypto_provider();
        let config = dir.path().join("config.toml");
        let mut child = Command::new(binary())
            .arg("--config")
            .arg(&config)
            .arg("serve")
            // HANDOFFD_TEST_LOG=debug shows the daemon's own logs while debugging a test.
            .env(
                "RUST_LOG",
                std::env::var("HANDOFFD_TEST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn handoffd");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            while let Some(Ok(line)) = lines.next() {
                if let Some(addr) = line.strip_prefix("handoffd listening on http://") {
                    let _ = tx.send(addr.to_string());
                }
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("daemon did not report its address");
        Daemon {
            dir,
            addr,
            child: Some(child),
        }
    }

    /// `kill -9`: no chance to flush anything.
    pub fn kill9(mut self) -> tempfile::TempDir {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill(); // SIGKILL on Unix
            let _ = c.wait();
        }
        std::mem::replace(&mut self.dir, tempfile::tempdir().expect("tempdir"))
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub async fn api_get(&self, path: &str) -> (u16, Value) {
        let r = reqwest::Client::new()
            .get(self.url(path))
            .bearer_auth(API_KEY)
            .send()
            .await
            .expect("GET");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn api_post(&self, path: &str, body: Value) -> (u16, Value) {
        let r = reqwest::Client::new()
            .post(self.url(path))
            .bearer_auth(API_KEY)
            .json(&body)
            .send()
            .await
            .expect("POST");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn api_put(&self, path: &str, body: Value) -> (u16, Value) {
        let r = reqwest::Client::new()
            .put(self.url(path))
            .bearer_auth(API_KEY)
            .json(&body)
            .send()
            .await
            .expect("PUT");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// `GET /api/v1/queue` once the queue holds `n` conversations (an escalation reaches
    /// the queue a moment after the customer's message is acknowledged).
    pub async fn queue_of(&self, n: usize) -> Value {
        let mut q = Value::Null;
        for _ in 0..250 {
            q = self.api_get("/api/v1/queue").await.1;
            if q["queue"].as_array().is_some_and(|a| a.len() == n) {
                return q;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the queue never held {n}: {q}");
    }

    /// The Prometheus text of `/metrics`.
    pub async fn metrics(&self) -> String {
        reqwest::Client::new()
            .get(self.url("/metrics"))
            .bearer_auth(API_KEY)
            .send()
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("metrics text")
    }

    pub async fn conversation(&self, id: &str) -> Value {
        let (status, body) = self.api_get(&format!("/api/v1/conversations/{id}")).await;
        assert_eq!(status, 200, "{body}");
        body
    }

    pub async fn widget(&self) -> Ws {
        Ws::connect(&format!("ws://{}/widget/ws", self.addr)).await
    }

    /// An agent session authenticated with a first `auth` frame; returns it after `welcome`.
    pub async fn agent(&self, token: &str) -> (Ws, Value) {
        let mut ws = Ws::connect(&format!("ws://{}/agent/ws", self.addr)).await;
        ws.send(json!({"type": "auth", "token": token})).await;
        let welcome = ws.expect("welcome").await;
        (ws, welcome)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A websocket client speaking JSON frames.
pub struct Ws {
    inner: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Ws {
    pub async fn connect(url: &str) -> Ws {
        let (inner, _) = connect_async(url).await.expect("websocket connect");
        Ws { inner }
    }

    pub async fn send(&mut self, v: Value) {
        self.inner
            .send(Message::text(v.to_string()))
            .await
            .expect("send frame");
    }

    pub async fn send_raw(&mut self, text: String) -> Result<(), String> {
        self.inner
            .send(Message::text(text))
            .await
            .map_err(|e| e.to_string())
    }

    /// The next JSON frame, or None when the connection closed or nothing came in `wait`.
    pub async fn next_within(&mut self, wait: Duration) -> Option<Value> {
        loop {
            match tokio::time::timeout(wait, self.inner.next()).await {
                Ok(Some(Ok(Message::Text(t)))) => {
                    return Some(serde_json::from_str(&t).expect("server frames are JSON"));
                }
                Ok(Some(Ok(Message::Close(_)))) | Ok(None) | Ok(Some(Err(_))) | Err(_) => {
                    return None;
                }
                Ok(Some(Ok(_))) => continue,
            }
        }
    }

    /// The next frame of a type, skipping `skip_types`; fails on anything else.
    pub async fn expect(&mut self, ty: &str) -> Value {
        self.expect_skipping(ty, &["typing", "status", "pong"])
            .await
    }

    pub async fn expect_skipping(&mut self, ty: &str, skip: &[&str]) -> Value {
        loop {
            let f = self
                .next_within(FRAME_WAIT)
                .await
                .unwrap_or_else(|| panic!("no `{ty}` frame came"));
            let got = f["type"].as_str().unwrap_or("");
            if got == ty {
                return f;
            }
            assert!(skip.contains(&got), "expected `{ty}`, got {f}");
        }
    }

    /// The next frame of type `ty`, whatever comes before it (bounded: 200 frames).
    pub async fn until(&mut self, ty: &str) -> Value {
        for _ in 0..200 {
            let f = self
                .next_within(FRAME_WAIT)
                .await
                .unwrap_or_else(|| panic!("no `{ty}` frame came"));
            if f["type"] == ty {
                return f;
            }
        }
        panic!("no `{ty}` frame among the next 200");
    }

    /// Collects frames until `quiet` passes with nothing new.
    pub async fn drain(&mut self, quiet: Duration) -> Vec<Value> {
        let mut out = Vec::new();
        while let Some(f) = self.next_within(quiet).await {
            out.push(f);
        }
        out
    }

    /// True when the server closed the connection (or it closes within `wait`).
    pub async fn closed_within(&mut self, wait: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return false;
            }
            match tokio::time::timeout(left, self.inner.next()).await {
                Ok(Some(Ok(Message::Close(_)))) | Ok(None) | Ok(Some(Err(_))) => return true,
                Ok(Some(Ok(_))) => continue,
                Err(_) => return false,
            }
        }
    }

    /// The server's close frame (code and reason), skipping other frames; `None` when the
    /// connection ends without one or nothing comes within `wait`.
    pub async fn close_frame_within(&mut self, wait: Duration) -> Option<(u16, String)> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match tokio::time::timeout(left, self.inner.next()).await {
                Ok(Some(Ok(Message::Close(frame)))) => {
                    return frame.map(|f| (u16::from(f.code), f.reason.to_string()));
                }
                Ok(Some(Ok(_))) => continue,
                Ok(None) | Ok(Some(Err(_))) | Err(_) => return None,
            }
        }
    }

    pub async fn close(mut self) {
        let _ = self.inner.close(None).await;
    }
}

/// A new customer asks for a person; `agent` gets the offer and accepts it. Frames before
/// the offer and the assignment (queue pushes, acks, overviews) are skipped.
pub async fn escalate(d: &Daemon, agent: &mut Ws) -> (Visitor, String) {
    let mut v = Visitor::new(d).await;
    let (cid, _) = v.say("I would like to talk to a human").await;
    let offer = agent.until("offer").await;
    assert_eq!(offer["conversation_id"], json!(cid));
    agent
        .send(json!({"type": "accept", "conversation_id": cid}))
        .await;
    agent.until("assigned").await;
    (v, cid)
}

/// A widget visitor: hello done, token kept.
pub struct Visitor {
    pub ws: Ws,
    pub token: String,
    pub last_seq: u64,
    next_client_id: u64,
}

impl Visitor {
    pub async fn new(d: &Daemon) -> Visitor {
        let mut ws = d.widget().await;
        ws.send(json!({"type": "hello", "name": "Test Customer"}))
            .await;
        let w = ws.expect("welcome").await;
        Visitor {
            ws,
            token: w["token"].as_str().expect("token").to_string(),
            last_seq: 0,
            next_client_id: 1,
        }
    }

    /// Sends a message and waits for its ack; returns (conversation id, seq).
    pub async fn say(&mut self, text: &str) -> (String, u64) {
        let cid = format!("m{}", self.next_client_id);
        self.next_client_id += 1;
        self.ws
            .send(json!({"type": "message", "text": text, "client_id": cid}))
            .await;
        loop {
            let f = self.ws.next_within(FRAME_WAIT).await.expect("ack expected");
            match f["type"].as_str() {
                Some("ack") => {
                    assert_eq!(f["client_id"], json!(cid));
                    let seq = f["seq"].as_u64().expect("seq");
                    self.last_seq = self.last_seq.max(seq);
                    return (f["conversation_id"].as_str().expect("cid").to_string(), seq);
                }
                Some("message") => {
                    self.last_seq = self.last_seq.max(f["seq"].as_u64().unwrap_or(0));
                }
                Some("typing") | Some("status") => {}
                _ => panic!("unexpected frame while waiting for ack: {f}"),
            }
        }
    }

    /// The next message frame (bot, agent or system).
    pub async fn message(&mut self) -> Value {
        let f = self.ws.expect("message").await;
        self.last_seq = self.last_seq.max(f["seq"].as_u64().unwrap_or(0));
        f
    }

    /// Waits for a message from `role`, skipping others.
    pub async fn message_from(&mut self, role: &str) -> Value {
        loop {
            let m = self.message().await;
            if m["role"] == role {
                return m;
            }
        }
    }
}

/// A fake of a platform's HTTP API on loopback, in a thread of its own: every request goes
/// to `route`, which gets `state` as `web::Data`. It stops when dropped.
pub struct FakeServer {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    handle: actix_web::dev::ServerHandle,
}

impl FakeServer {
    pub fn start<S, F, Args>(state: S, route: F) -> FakeServer
    where
        S: Clone + Send + 'static,
        F: actix_web::Handler<Args> + Send,
        Args: actix_web::FromRequest + 'static,
        F::Output: actix_web::Responder + 'static,
    {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            actix_rt::System::new().block_on(async move {
                let server = actix_web::HttpServer::new(move || {
                    actix_web::App::new()
                        .app_data(actix_web::web::Data::new(state.clone()))
                        .default_service(actix_web::web::to(route.clone()))
                })
                .workers(1)
                .shutdown_timeout(1)
                .bind("127.0.0.1:0")
                .expect("bind a fake server");
                let addr = server.addrs()[0];
                let server = server.run();
                tx.send((addr, server.handle())).expect("report address");
                let _ = server.await;
            });
        });
        let (addr, handle) = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("fake server started");
        FakeServer {
            url: format!("http://{addr}"),
            handle,
        }
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        // The stop command is sent at once; nothing needs to wait for it.
        drop(self.handle.stop(false));
    }
}
