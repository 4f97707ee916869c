//! The gateway client: one websocket session to Discord (HELLO, IDENTIFY or RESUME,
//! heartbeats, dispatches), kept up for as long as the daemon runs.
//!
//! Nothing read is lost and nothing is stored twice:
//! - a `MESSAGE_CREATE` counts as handled only once the daemon journaled it; then its id and
//!   the session's sequence number are saved together in the channel's durable state;
//! - after a dropped connection the session is resumed on READY's `resume_gateway_url`
//!   (RESUME with the last handled sequence number), and Discord replays what followed;
//! - after a restart the saved session is resumed the same way;
//! - a replayed message whose id was saved before is passed over (the daemon would also
//!   recognise its id, this spares it the work).
//!
//! INVALID_SESSION that cannot be resumed, and the close codes saying so, start a new session
//! with IDENTIFY after Discord's 1 to 5 second wait.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use super::api::{API_VERSION, RestApi};
use super::event::{self, Parsed};
use crate::state::ChannelState;
use crate::{CoreLink, Inbound, InboundError};

/// Where the session is saved in the channel state.
pub const SESSION_KEY: &str = "discord:gateway:session";

/// The channel-state key recording that a message was journaled.
pub fn seen_key(message_id: &str) -> String {
    format!("discord:seen:{message_id}")
}

/// Longest wait between connection attempts while Discord cannot be reached.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// Wait after a close code that no retry can cure (a bad token, disallowed intents): the
/// operator has to fix the config or the portal; trying again rarely spares Discord's limits.
const FATAL_WAIT: Duration = Duration::from_secs(600);
/// How long Discord has to say HELLO after the websocket opens.
const HELLO_WAIT: Duration = Duration::from_secs(30);

/// A gateway session that can be resumed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Session {
    /// READY's `session_id`, sent back in RESUME.
    pub session_id: String,
    /// READY's `resume_gateway_url`: where RESUME must go.
    pub resume_url: String,
    /// The last sequence number handled (journaled, for messages).
    pub seq: u64,
}

/// What the gateway client needs.
pub struct Gateway {
    /// Asks for the gateway's address.
    pub api: RestApi,
    /// The bot token, sent in IDENTIFY and RESUME.
    pub token: String,
    /// The intents' bit field for IDENTIFY.
    pub intents: u64,
    /// The guild channel whose messages are conversations too.
    pub support_channel: Option<String>,
    /// Where messages are journaled.
    pub core: CoreLink,
    /// Where the session and the handled message ids are saved.
    pub state: Arc<dyn ChannelState>,
}

/// How one connection ended, and so what the next one does.
#[derive(Debug, PartialEq)]
enum Ended {
    /// Connect again and RESUME (or IDENTIFY when there is no session).
    Reconnect,
    /// The session is gone: IDENTIFY anew after `wait`.
    Identify { wait: Duration },
    /// Discord refused the bot for good (bad token, intents...).
    Fatal(String),
    /// The connection could not be made, or broke before the session was up.
    Failed(String),
}

/// A gateway frame.
#[derive(Debug, Deserialize)]
struct Frame {
    op: u8,
    #[serde(default)]
    d: Value,
    #[serde(default)]
    s: Option<u64>,
    #[serde(default)]
    t: Option<String>,
}

/// The websocket, over TCP or TLS.
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}
type Socket = WebSocketStream<Box<dyn Io>>;

impl Gateway {
    /// Runs the gateway until the process stops.
    pub async fn run(self) {
        let mut session = match self.state.get(SESSION_KEY) {
            Ok(Some(bytes)) => serde_json::from_slice::<Session>(&bytes).ok(),
            Ok(None) => None,
            Err(e) => {
                tracing::error!(error = %e, "cannot read Discord's saved session; identifying anew");
                None
            }
        };
        let mut gateway_url: Option<String> = None;
        let mut own_id: Option<String> = None;
        let mut backoff = Duration::from_millis(500);
        // Connections in a row that failed while resuming: past a few, identify anew.
        let mut resume_failures = 0u32;
        loop {
            let url = match (&session, &gateway_url) {
                (Some(s), _) => s.resume_url.clone(),
                (None, Some(u)) => u.clone(),
                (None, None) => match self.api.gateway_url().await {
                    Ok(u) => {
                        gateway_url = Some(u.clone());
                        u
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, ?backoff, "cannot get Discord's gateway address");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                        continue;
                    }
                },
            };
            let mut up = false;
            let ended = self
                .connection(&url, &mut session, &mut own_id, &mut up)
                .await;
            if up {
                backoff = Duration::from_millis(500);
                resume_failures = 0;
            }
            let failure = match ended {
                Ended::Reconnect if up => {
                    tracing::info!(
                        resume = session.is_some(),
                        "Discord gateway connection ended; reconnecting"
                    );
                    None
                }
                // Ended before READY or RESUMED: waits like a failure, so a gateway that
                // keeps closing at once is not hammered.
                Ended::Reconnect => Some("the connection ended before the session was up".into()),
                Ended::Failed(why) => Some(why),
                Ended::Identify { wait } => {
                    tracing::info!(?wait, "Discord session cannot be resumed; identifying anew");
                    session = None;
                    self.forget_session().await;
                    tokio::time::sleep(wait).await;
                    None
                }
                Ended::Fatal(why) => {
                    tracing::error!(%why, "Discord refused the bot; fix the [discord] config or the developer portal settings");
                    session = None;
                    tokio::time::sleep(FATAL_WAIT).await;
                    None
                }
            };
            if let Some(why) = failure {
                tracing::warn!(%why, ?backoff, "Discord gateway connection failed");
                // The address may have moved: ask again next time.
                if session.is_none() {
                    gateway_url = None;
                } else {
                    resume_failures += 1;
                    if resume_failures >= 3 {
                        session = None;
                        self.forget_session().await;
                    }
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }

    async fn forget_session(&self) {
        if let Err(e) = self
            .state
            .put(vec![(SESSION_KEY.to_string(), b"null".to_vec())])
            .await
        {
            tracing::error!(error = %e, "cannot forget Discord's session");
        }
    }

    /// One websocket connection, from HELLO until it ends. `up` turns true once READY or
    /// RESUMED came.
    async fn connection(
        &self,
        url: &str,
        session: &mut Option<Session>,
        own_id: &mut Option<String>,
        up: &mut bool,
    ) -> Ended {
        let mut ws = match connect(url).await {
            Ok(ws) => ws,
            Err(e) => return Ended::Failed(e),
        };
        let interval = match tokio::time::timeout(HELLO_WAIT, next_frame(&mut ws)).await {
            Ok(Ok(Some(f))) if f.op == 10 => f.d["heartbeat_interval"].as_u64().unwrap_or(41_250),
            Ok(Ok(Some(f))) => return Ended::Failed(format!("op {} before HELLO", f.op)),
            Ok(Ok(None)) => return Ended::Failed("closed before HELLO".into()),
            Ok(Err(e)) => return Ended::Failed(e),
            Err(_) => return Ended::Failed("no HELLO".into()),
        };
        let interval = Duration::from_millis(interval.max(100));
        let opening = match session.as_ref() {
            Some(s) => json!({"op": 6, "d": {
                "token": format!("Bot {}", self.token),
                "session_id": s.session_id,
                "seq": s.seq,
            }}),
            None => json!({"op": 2, "d": {
                "token": format!("Bot {}", self.token),
                "intents": self.intents,
                "properties": {"os": std::env::consts::OS, "browser": "handoffd", "device": "handoffd"},
            }}),
        };
        if let Err(e) = ws.send(Message::text(opening.to_string())).await {
            return Ended::Failed(e.to_string());
        }
        // The first heartbeat after a random part of the interval, as Discord asks.
        let first = tokio::time::Instant::now() + interval.mul_f64(rand::random::<f64>());
        let mut heartbeat = tokio::time::interval_at(first, interval);
        // After a long wait on the journal, one heartbeat, not a burst (a burst would take
        // the second for a missing ACK).
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut acked = true;
        // The last sequence number received, for heartbeats.
        let mut last_seq = session.as_ref().map(|s| s.seq);
        loop {
            tokio::select! {
                _ = heartbeat.tick() => {
                    if !acked {
                        // A zombie connection: drop it and resume.
                        let _ = ws.close(None).await;
                        return Ended::Reconnect;
                    }
                    acked = false;
                    if let Err(e) = ws.send(Message::text(json!({"op": 1, "d": last_seq}).to_string())).await {
                        tracing::debug!(error = %e, "heartbeat not sent");
                        return Ended::Reconnect;
                    }
                }
                frame = next_frame(&mut ws) => {
                    let frame = match frame {
                        Ok(Some(f)) => f,
                        Ok(None) => return Ended::Reconnect,
                        Err(e) if e.starts_with("close ") => return closed(&e),
                        Err(e) => {
                            tracing::debug!(error = %e, "Discord gateway read failed");
                            return Ended::Reconnect;
                        }
                    };
                    if let Some(s) = frame.s {
                        last_seq = Some(s);
                    }
                    match frame.op {
                        0 => {
                            if let Some(ended) = self.dispatch(frame, session, own_id, up).await {
                                return ended;
                            }
                        }
                        1 => {
                            let _ = ws.send(Message::text(json!({"op": 1, "d": last_seq}).to_string())).await;
                        }
                        7 => {
                            let _ = ws.close(None).await;
                            return Ended::Reconnect;
                        }
                        9 => {
                            let _ = ws.close(None).await;
                            if frame.d.as_bool() == Some(true) && session.is_some() {
                                return Ended::Reconnect;
                            }
                            let wait = Duration::from_millis(1000 + rand::random::<u64>() % 4000);
                            return Ended::Identify { wait };
                        }
                        11 => acked = true,
                        _ => {}
                    }
                }
            }
        }
    }

    /// Handles one dispatch (op 0). A message is journaled, and its id saved, before its
    /// sequence number counts; `Some` ends the connection.
    async fn dispatch(
        &self,
        frame: Frame,
        session: &mut Option<Session>,
        own_id: &mut Option<String>,
        up: &mut bool,
    ) -> Option<Ended> {
        let seq = frame.s;
        match frame.t.as_deref() {
            Some("READY") => {
                let (Some(id), Some(resume)) = (
                    frame.d["session_id"].as_str(),
                    frame.d["resume_gateway_url"].as_str(),
                ) else {
                    return Some(Ended::Failed(
                        "READY without session_id or resume_gateway_url".into(),
                    ));
                };
                *own_id = frame.d["user"]["id"].as_str().map(str::to_string);
                let s = Session {
                    session_id: id.to_string(),
                    resume_url: resume.to_string(),
                    seq: seq.unwrap_or(0),
                };
                self.save(&s, None).await;
                *session = Some(s);
                *up = true;
                tracing::info!(bot = ?own_id, "Discord gateway ready");
            }
            Some("RESUMED") => {
                *up = true;
                tracing::info!("Discord gateway session resumed");
            }
            Some("MESSAGE_CREATE") => {
                let message_id = frame.d["id"].as_str().map(str::to_string);
                let handled = match &message_id {
                    Some(id) => self.handle_message(id, frame.d, own_id.as_deref()).await,
                    None => false,
                };
                if let (Some(s), Some(n)) = (session.as_mut(), seq) {
                    s.seq = s.seq.max(n);
                    if handled {
                        self.save(s, message_id.as_deref()).await;
                    }
                }
                return None;
            }
            _ => {}
        }
        if let (Some(s), Some(n)) = (session.as_mut(), seq) {
            s.seq = s.seq.max(n);
        }
        None
    }

    /// Journals one message unless it was before; true when it was journaled now (its id is
    /// then to be saved).
    async fn handle_message(&self, id: &str, d: Value, own_id: Option<&str>) -> bool {
        match self.state.get(&seen_key(id)) {
            Ok(Some(_)) => {
                tracing::debug!(message = id, "Discord message replayed; already stored");
                return false;
            }
            Ok(None) => {}
            // The daemon still recognises the id; go on.
            Err(e) => tracing::warn!(error = %e, "cannot read Discord's seen messages"),
        }
        match event::parse(d, own_id, self.support_channel.as_deref()) {
            Ok(Parsed::Message(inbound)) => {
                deliver(&self.core, *inbound).await;
                true
            }
            Ok(Parsed::Skipped(why)) => {
                tracing::debug!(message = id, why, "Discord message skipped");
                false
            }
            Err(e) => {
                tracing::warn!(message = id, error = %e, "Discord message skipped");
                false
            }
        }
    }

    /// Saves the session, and that `message` was journaled, in one durable write.
    async fn save(&self, session: &Session, message: Option<&str>) {
        let mut entries = Vec::new();
        if let Ok(bytes) = serde_json::to_vec(session) {
            entries.push((SESSION_KEY.to_string(), bytes));
        }
        if let Some(id) = message {
            entries.push((seen_key(id), b"1".to_vec()));
        }
        if let Err(e) = self.state.put(entries).await {
            // A replay after a restart is then recognised by the daemon's own id check.
            tracing::error!(error = %e, "cannot save Discord's session");
        }
    }
}

/// What a close frame means (`e` is `close <code>: <reason>`).
fn closed(e: &str) -> Ended {
    let code = e
        .strip_prefix("close ")
        .and_then(|r| r.split(':').next())
        .and_then(|c| c.trim().parse::<u16>().ok())
        .unwrap_or(1000);
    match code {
        4004 => Ended::Fatal("authentication failed: check the token".into()),
        4010..=4012 => Ended::Fatal(format!("gateway refused the connection ({e})")),
        4013 => Ended::Fatal("invalid intents in `intents`".into()),
        4014 => Ended::Fatal(
            "disallowed intents: enable MESSAGE CONTENT on the Bot page of the developer portal"
                .into(),
        ),
        4007 | 4009 => Ended::Identify {
            wait: Duration::from_millis(1000),
        },
        _ => Ended::Reconnect,
    }
}

/// The next JSON frame; `Ok(None)` when the stream ended, `Err("close <code>: ...")` for a
/// close frame.
async fn next_frame(ws: &mut Socket) -> Result<Option<Frame>, String> {
    loop {
        let text = match ws.next().await {
            None => return Ok(None),
            Some(Err(e)) => return Err(e.to_string()),
            Some(Ok(Message::Text(t))) => t.to_string(),
            Some(Ok(Message::Binary(b))) => String::from_utf8_lossy(&b).into_owned(),
            Some(Ok(Message::Close(c))) => {
                let (code, reason) = c
                    .map(|c| (u16::from(c.code), c.reason.to_string()))
                    .unwrap_or((u16::from(CloseCode::Normal), String::new()));
                return Err(format!("close {code}: {reason}"));
            }
            Some(Ok(_)) => continue,
        };
        match serde_json::from_str::<Frame>(&text) {
            Ok(f) => return Ok(Some(f)),
            Err(e) => tracing::warn!(error = %e, "unreadable Discord gateway frame skipped"),
        }
    }
}

/// Opens the websocket at `base` (`wss://...` or, for a fake, `ws://...`), asking for API
/// v10 in JSON.
async fn connect(base: &str) -> Result<Socket, String> {
    let base = base.split('?').next().unwrap_or(base).trim_end_matches('/');
    let url = format!("{base}/?v={API_VERSION}&encoding=json");
    let request = url
        .as_str()
        .into_client_request()
        .map_err(|e| e.to_string())?;
    let uri = request.uri().clone();
    let tls = match uri.scheme_str() {
        Some("wss") => true,
        Some("ws") => false,
        _ => return Err(format!("not a websocket address: {base}")),
    };
    let host = uri
        .host()
        .ok_or("no host in the gateway address")?
        .to_string();
    let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
    let tcp = tokio::time::timeout(
        Duration::from_secs(10),
        TcpStream::connect((host.as_str(), port)),
    )
    .await
    .map_err(|_| format!("connecting to {host}:{port} timed out"))?
    .map_err(|e| format!("{host}:{port}: {e}"))?;
    let _ = tcp.set_nodelay(true);
    let io: Box<dyn Io> = if tls {
        Box::new(tls_connect(&host, tcp).await?)
    } else {
        Box::new(tcp)
    };
    let (ws, _) = tokio::time::timeout(
        Duration::from_secs(10),
        tokio_tungstenite::client_async(request, io),
    )
    .await
    .map_err(|_| "websocket handshake timed out".to_string())?
    .map_err(|e| e.to_string())?;
    Ok(ws)
}

/// TLS to the gateway, checked against the web PKI roots (ring's provider passed explicitly,
/// as the email channel does).
async fn tls_connect(
    host: &str,
    tcp: TcpStream,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, String> {
    use tokio_rustls::rustls::pki_types::ServerName;
    use tokio_rustls::rustls::{ClientConfig, RootCertStore};
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let roots = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from(host.to_string()).map_err(|e| e.to_string())?;
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|e| e.to_string())
}

/// Hands one message to the daemon, waiting until it is journaled. A message the daemon
/// refuses is logged and passed over; while the journal cannot take it, it is offered again
/// (the session's sequence number does not move meanwhile).
async fn deliver(core: &CoreLink, inbound: Inbound) {
    let mut backoff = Duration::from_millis(200);
    loop {
        let result = core.submit(inbound.clone()).await;
        match result {
            Ok(_) => return,
            Err(InboundError::Refused(why)) => {
                tracing::warn!(message = %inbound.platform_message_id, %why, "Discord message refused");
                return;
            }
            Err(e) => {
                tracing::error!(error = %e, ?backoff, "Discord message not stored yet");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::MemoryState;
    use crate::{CustomerTyping, DeliveryUpdate, History, HistoryRequest, InboundAck};
    use actix::prelude::*;
    use std::sync::Mutex;

    /// The daemon's side of the link: records the message ids it is handed.
    struct Core(Arc<Mutex<Vec<String>>>);

    impl Actor for Core {
        type Context = Context<Self>;
    }

    impl Handler<Inbound> for Core {
        type Result = MessageResult<Inbound>;
        fn handle(&mut self, msg: Inbound, _: &mut Context<Self>) -> Self::Result {
            if let Ok(mut ids) = self.0.lock() {
                ids.push(msg.platform_message_id);
            }
            let ack: crate::PendingAck = Box::pin(async {
                Ok(InboundAck {
                    conversation_id: "c".into(),
                    seq: 1,
                    duplicate: false,
                })
            });
            MessageResult(ack)
        }
    }

    impl Handler<CustomerTyping> for Core {
        type Result = ();
        fn handle(&mut self, _: CustomerTyping, _: &mut Context<Self>) {}
    }

    impl Handler<HistoryRequest> for Core {
        type Result = Result<History, InboundError>;
        fn handle(&mut self, _: HistoryRequest, _: &mut Context<Self>) -> Self::Result {
            Ok(History::default())
        }
    }

    impl Handler<DeliveryUpdate> for Core {
        type Result = Result<bool, InboundError>;
        fn handle(&mut self, _: DeliveryUpdate, _: &mut Context<Self>) -> Self::Result {
            Ok(false)
        }
    }

    impl Handler<crate::CustomerLeft> for Core {
        type Result = ();
        fn handle(&mut self, _: crate::CustomerLeft, _: &mut Context<Self>) {}
    }

    fn gateway(state: Arc<dyn ChannelState>, ids: Arc<Mutex<Vec<String>>>) -> Gateway {
        let core = Core(ids).start();
        Gateway {
            api: RestApi::new("http://127.0.0.1:9", "t", Duration::from_secs(1)).expect("client"),
            token: "t".into(),
            intents: 0,
            support_channel: None,
            core: CoreLink {
                inbound: std::sync::Arc::new(core.clone().recipient::<Inbound>()),
                typing: core.clone().recipient(),
                history: core.clone().recipient(),
                delivery: core.clone().recipient(),
                left: core.recipient(),
            },
            state,
        }
    }

    fn frame(v: Value) -> Frame {
        serde_json::from_value(v).expect("frame")
    }

    fn message_create(s: u64, id: &str) -> Frame {
        frame(json!({"op": 0, "t": "MESSAGE_CREATE", "s": s, "d": {
            "id": id, "channel_id": "900", "type": 0, "content": "hi",
            "author": {"id": "42", "username": "ada"}}}))
    }

    fn saved(state: &MemoryState) -> Option<Session> {
        let bytes = state.get(SESSION_KEY).ok()??;
        serde_json::from_slice(&bytes).ok()
    }

    #[actix_rt::test]
    async fn a_replayed_message_is_handed_over_once_even_after_a_restart() {
        let state = Arc::new(MemoryState::default());
        let ids = Arc::new(Mutex::new(Vec::new()));
        let g = gateway(state.clone(), ids.clone());
        let (mut session, mut own, mut up) = (None, None, false);
        let ready = frame(json!({"op": 0, "t": "READY", "s": 1, "d": {
            "session_id": "s1", "resume_gateway_url": "wss://resume.example",
            "user": {"id": "7"}}}));
        assert_eq!(
            g.dispatch(ready, &mut session, &mut own, &mut up).await,
            None
        );
        assert!(up);
        assert_eq!(own.as_deref(), Some("7"));
        g.dispatch(message_create(2, "1001"), &mut session, &mut own, &mut up)
            .await;
        // The message is saved as handled, with its sequence number.
        assert_eq!(saved(&state).map(|s| s.seq), Some(2));
        assert!(matches!(state.get(&seen_key("1001")), Ok(Some(_))));
        // Replayed after a resume: not handed over again; the session moves on.
        g.dispatch(message_create(3, "1001"), &mut session, &mut own, &mut up)
            .await;
        assert_eq!(session.as_ref().map(|s| s.seq), Some(3));
        // A restart on the same state: the saved session, and the id still known.
        let g = gateway(state.clone(), ids.clone());
        let mut session = saved(&state);
        assert_eq!(
            session,
            Some(Session {
                session_id: "s1".into(),
                resume_url: "wss://resume.example".into(),
                seq: 2
            })
        );
        g.dispatch(message_create(3, "1001"), &mut session, &mut own, &mut up)
            .await;
        g.dispatch(message_create(4, "1002"), &mut session, &mut own, &mut up)
            .await;
        assert_eq!(
            ids.lock().map(|v| v.clone()).unwrap_or_default(),
            vec!["1001".to_string(), "1002".to_string()]
        );
        assert_eq!(saved(&state).map(|s| s.seq), Some(4));
    }

    #[test]
    fn close_codes_decide_what_comes_next() {
        assert!(matches!(
            closed("close 4004: Authentication failed."),
            Ended::Fatal(_)
        ));
        assert!(matches!(
            closed("close 4014: Disallowed intent(s)."),
            Ended::Fatal(_)
        ));
        assert!(matches!(
            closed("close 4009: Session timed out"),
            Ended::Identify { .. }
        ));
        assert_eq!(closed("close 4000: Unknown error"), Ended::Reconnect);
        assert_eq!(closed("close 1001: going away"), Ended::Reconnect);
    }
}
