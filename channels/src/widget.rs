//! The website chat widget channel: one websocket per browser tab at `/widget/ws`.
//!
//! A visitor is known by a signed visitor token handed out on first connect. The token is
//! the conversation key, so a reconnecting client resumes its conversation: it says which
//! sequence number it saw last and gets every customer-visible message after it, once, in
//! order, before any live message. The protocol is documented in `docs/widget-protocol.md`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use actix::prelude::*;
use actix_web::{HttpRequest, HttpResponse, web};
use actix_ws::{AggregatedMessage, CloseCode, CloseReason, ProtocolError};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::ws::{WsActor, WsWriter};
use crate::{
    ChannelKind, Contact, ConversationStatus, CoreLink, CustomerTyping, DeliveryReceipt,
    HistoryRequest, ImmediateDelivery, Inbound, InboundError, Outbound, OutboundPayload,
    VisibleMessage, now_ms,
};

/// Widget settings the daemon passes in from its config.
#[derive(Debug, Clone)]
pub struct WidgetSettings {
    /// Origins allowed to open the websocket (`*` allows any). Checked against the `Origin` header.
    pub allowed_origins: Vec<String>,
    /// Largest websocket frame accepted from a browser.
    pub max_frame_bytes: usize,
    /// Longest customer message accepted, in characters.
    pub max_message_chars: usize,
    /// Secret used to sign visitor tokens.
    pub token_secret: Vec<u8>,
    /// A connection that says nothing (not even a pong) for this long is closed.
    pub idle_timeout: Duration,
}

/// Signs and checks visitor tokens: `v1.<visitor id>.<HMAC-SHA256 of the id>`.
#[derive(Clone)]
pub struct VisitorTokens {
    key: Hmac<Sha256>,
}

impl VisitorTokens {
    /// HMAC takes keys of any length, so every secret is usable.
    pub fn new(secret: &[u8]) -> Self {
        let key = <Hmac<Sha256> as hmac::digest::KeyInit>::new_from_slice(secret)
            .unwrap_or_else(|_| <Hmac<Sha256> as hmac::digest::KeyInit>::new(&Default::default()));
        Self { key }
    }

    fn mac(&self, visitor_id: &str) -> Hmac<Sha256> {
        let mut mac = self.key.clone();
        mac.update(visitor_id.as_bytes());
        mac
    }

    /// A fresh visitor id and its token.
    pub fn issue(&self) -> (String, String) {
        let mut raw = [0u8; 16];
        rand::rng().fill_bytes(&mut raw);
        let id = hex::encode(raw);
        let token = self.sign(&id);
        (id, token)
    }

    /// The token for a known visitor id.
    pub fn sign(&self, visitor_id: &str) -> String {
        let sig = self.mac(visitor_id).finalize().into_bytes();
        format!("v1.{visitor_id}.{}", URL_SAFE_NO_PAD.encode(sig))
    }

    /// The visitor id inside a token, if the signature holds (constant-time compare).
    pub fn verify(&self, token: &str) -> Option<String> {
        let mut parts = token.splitn(3, '.');
        let (Some("v1"), Some(id), Some(sig)) = (parts.next(), parts.next(), parts.next()) else {
            return None;
        };
        if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return None;
        }
        let sig = URL_SAFE_NO_PAD.decode(sig).ok()?;
        self.mac(id).verify_slice(&sig).ok()?;
        Some(id.to_string())
    }
}

/// Shared state of the widget endpoint, registered as actix-web app data.
#[derive(Clone)]
pub struct WidgetChannel {
    settings: std::sync::Arc<WidgetSettings>,
    tokens: VisitorTokens,
    hub: std::sync::Arc<WidgetHub>,
    outbound: Addr<HubMailbox>,
    core: CoreLink,
}

impl WidgetChannel {
    /// Starts the mailbox through which the outbox reaches connected visitors.
    pub fn start(settings: WidgetSettings, core: CoreLink) -> Self {
        let tokens = VisitorTokens::new(&settings.token_secret);
        let hub = std::sync::Arc::new(WidgetHub::default());
        let outbound = HubMailbox { hub: hub.clone() }.start();
        Self {
            settings: std::sync::Arc::new(settings),
            tokens,
            hub,
            outbound,
            core,
        }
    }

    /// Where the daemon's outbox sends what must reach widget visitors.
    pub fn outbound(&self) -> Recipient<Outbound> {
        self.outbound.clone().recipient()
    }

    /// The same deliveries, made on the caller's thread: a conversation hands its reply
    /// straight to the visitor's connections.
    pub fn immediate(&self) -> std::sync::Arc<dyn ImmediateDelivery> {
        self.hub.clone()
    }

    /// The visitor token signer, for the daemon's own use (tests, REST).
    pub fn tokens(&self) -> &VisitorTokens {
        &self.tokens
    }

    fn origin_allowed(&self, req: &HttpRequest) -> bool {
        let allowed = &self.settings.allowed_origins;
        if allowed.iter().any(|o| o == "*") {
            return true;
        }
        match req.headers().get("origin").and_then(|v| v.to_str().ok()) {
            // Non-browser clients send no Origin; browsers always do.
            None => true,
            Some(origin) => allowed.iter().any(|o| o.eq_ignore_ascii_case(origin)),
        }
    }
}

/// The actix-web handler for `GET /widget/ws`.
pub async fn ws_route(
    req: HttpRequest,
    body: web::Payload,
    channel: web::Data<WidgetChannel>,
) -> Result<HttpResponse, actix_web::Error> {
    if !channel.origin_allowed(&req) {
        return Ok(HttpResponse::Forbidden().json(serde_json::json!({
            "error": {"code": "origin_not_allowed", "message": "this origin may not open the widget"}
        })));
    }
    let (response, session, stream) = actix_ws::handle(&req, body)?;
    let stream = stream
        .max_frame_size(channel.settings.max_frame_bytes)
        .aggregate_continuations()
        .max_continuation_size(channel.settings.max_frame_bytes);
    // Shared, not copied: each copy of the channel's addresses is an allocation, and there
    // may be tens of thousands of connections.
    let channel = channel.into_inner();
    WidgetSession::create(|ctx| {
        ctx.add_stream(stream);
        WidgetSession {
            id: next_session_id(),
            channel,
            writer: WsWriter::new(session),
            closing: false,
            hello_timer: None,
            visitor: None,
            last_seq_sent: 0,
            last_heard: Instant::now(),
        }
    });
    Ok(response)
}

fn next_session_id() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// A customer's message frame, read straight into its fields: the common frame skips the
/// buffering that reading an internally tagged [`ClientFrame`] needs. It accepts exactly the
/// frames `ClientFrame::Message` accepts; anything else is read as a [`ClientFrame`], whose
/// errors are the ones clients see.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MessageFrame {
    #[serde(rename = "type")]
    _kind: MessageTag,
    text: String,
    #[serde(default)]
    client_id: Option<String>,
}

/// The only `type` a [`MessageFrame`] has.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case")]
enum MessageTag {
    Message,
}

/// Frames a widget client sends.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum ClientFrame {
    Hello {
        #[serde(default)]
        token: Option<String>,
        #[serde(default)]
        last_seq: Option<u64>,
        #[serde(default)]
        name: Option<String>,
        #[serde(default)]
        language: Option<String>,
    },
    Message {
        text: String,
        #[serde(default)]
        client_id: Option<String>,
    },
    Typing {
        active: bool,
    },
    Ping,
}

/// Frames the daemon sends to a widget client.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ServerFrame<'a> {
    Welcome {
        token: &'a str,
        visitor_id: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        conversation_id: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        status: Option<&'a ConversationStatus>,
    },
    Message(&'a VisibleMessage),
    Ack {
        #[serde(skip_serializing_if = "Option::is_none")]
        client_id: Option<&'a str>,
        seq: u64,
        conversation_id: &'a str,
        duplicate: bool,
    },
    Typing {
        active: bool,
    },
    Status(&'a ConversationStatus),
    Pong,
    Error {
        code: &'a str,
        message: &'a str,
    },
}

struct Visitor {
    id: String,
    name: Option<String>,
    language: Option<String>,
}

/// One browser connection.
struct WidgetSession {
    id: u64,
    channel: std::sync::Arc<WidgetChannel>,
    writer: WsWriter,
    closing: bool,
    /// The deadline for the hello, until it comes.
    hello_timer: Option<SpawnHandle>,
    visitor: Option<Visitor>,
    /// Highest message sequence number this client has been sent; live pushes at or below it
    /// were already replayed and are skipped.
    last_seq_sent: u64,
    last_heard: Instant,
}

const HEARTBEAT: Duration = Duration::from_secs(15);

impl WsActor for WidgetSession {
    fn ws_writer(&mut self) -> &mut WsWriter {
        &mut self.writer
    }
}

impl Actor for WidgetSession {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(HEARTBEAT, |act, ctx| {
            if act.last_heard.elapsed() > act.channel.settings.idle_timeout {
                act.close(ctx, CloseCode::Away, "idle");
                return;
            }
            act.writer.ping(ctx, b"hb");
        });
        // A client must introduce itself promptly. The timer is cancelled by the hello, so
        // an idle connection does not carry it.
        self.hello_timer = Some(ctx.run_later(Duration::from_secs(10), |act, ctx| {
            if act.visitor.is_none() {
                act.send_error(ctx, "hello_required", "the first frame must be a hello");
                act.close(ctx, CloseCode::Policy, "no hello");
            }
        }));
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        self.writer.finish();
        if let Some(v) = &self.visitor
            && self.channel.hub.unregister(&v.id, self.id)
        {
            // The visitor's last tab closed.
            self.channel.core.left.do_send(crate::CustomerLeft {
                channel: ChannelKind::Widget,
                conversation_key: v.id.clone(),
            });
        }
    }
}

impl WidgetSession {
    fn send_frame(&mut self, ctx: &mut Context<Self>, frame: &ServerFrame<'_>) {
        let Ok(text) = serde_json::to_string(frame) else {
            return;
        };
        if !self.closing && !self.writer.text(ctx, text) {
            // Gone, or too slow to keep up: it will resume from its last sequence number.
            ctx.stop();
        }
    }

    fn send_error(&mut self, ctx: &mut Context<Self>, code: &str, message: &str) {
        self.send_frame(ctx, &ServerFrame::Error { code, message });
    }

    fn close(&mut self, ctx: &mut Context<Self>, code: CloseCode, description: &str) {
        if !self.closing {
            self.closing = true;
            self.writer.close(
                ctx,
                Some(CloseReason {
                    code,
                    description: Some(description.to_string()),
                }),
            );
        }
        ctx.stop();
    }

    fn handle_text(&mut self, text: &str, ctx: &mut Context<Self>) {
        if let Ok(m) = serde_json::from_str::<MessageFrame>(text) {
            self.customer_message(m.text, m.client_id, ctx);
            return;
        }
        let frame: ClientFrame = match serde_json::from_str(text) {
            Ok(f) => f,
            Err(e) => {
                let code = if serde_json::from_str::<serde_json::Value>(text).is_ok() {
                    "bad_frame"
                } else {
                    "malformed_json"
                };
                self.send_error(ctx, code, &e.to_string());
                return;
            }
        };
        match frame {
            ClientFrame::Hello {
                token,
                last_seq,
                name,
                language,
            } => self.hello(token, last_seq.unwrap_or(0), name, language, ctx),
            ClientFrame::Ping => self.send_frame(ctx, &ServerFrame::Pong),
            ClientFrame::Message { text, client_id } => self.customer_message(text, client_id, ctx),
            ClientFrame::Typing { active } => {
                if let Some(v) = &self.visitor {
                    self.channel.core.typing.do_send(CustomerTyping {
                        channel: ChannelKind::Widget,
                        conversation_key: v.id.clone(),
                        active,
                    });
                } else {
                    self.send_error(ctx, "hello_required", "say hello first");
                }
            }
        }
    }

    fn hello(
        &mut self,
        token: Option<String>,
        last_seq: u64,
        name: Option<String>,
        language: Option<String>,
        ctx: &mut Context<Self>,
    ) {
        if self.visitor.is_some() {
            self.send_error(ctx, "already_greeted", "hello was already received");
            return;
        }
        let (visitor_id, token) = match token {
            Some(t) => match self.channel.tokens.verify(&t) {
                Some(id) => (id, t),
                None => {
                    self.send_error(ctx, "invalid_token", "the visitor token is not valid");
                    self.close(ctx, CloseCode::Policy, "invalid token");
                    return;
                }
            },
            None => self.channel.tokens.issue(),
        };
        let name = name
            .filter(|n| !n.trim().is_empty())
            .map(|n| truncate(&n, 80));
        let language = language.filter(|l| !l.is_empty()).map(|l| truncate(&l, 16));
        if let Some(timer) = self.hello_timer.take() {
            ctx.cancel_future(timer);
        }
        self.visitor = Some(Visitor {
            id: visitor_id.clone(),
            name,
            language,
        });
        self.last_seq_sent = last_seq;
        // Register before fetching history: anything pushed meanwhile waits in our mailbox
        // (ctx.wait below holds it) and is dropped if the replay already carried it.
        self.channel
            .hub
            .register(&visitor_id, self.id, ctx.address());
        let history = self.channel.core.history.send(HistoryRequest {
            channel: ChannelKind::Widget,
            conversation_key: visitor_id.clone(),
            after_seq: last_seq,
        });
        ctx.wait(history.into_actor(self).map(move |res, act, ctx| {
            let history = match res {
                Ok(Ok(h)) => h,
                failed => {
                    // Not greeted after all: the client may say hello again.
                    act.visitor = None;
                    act.channel.hub.unregister(&visitor_id, act.id);
                    let why = match failed {
                        Ok(Err(e)) => e.to_string(),
                        _ => "the daemon is shutting down".to_string(),
                    };
                    act.send_error(ctx, "unavailable", &why);
                    return;
                }
            };
            act.send_frame(
                ctx,
                &ServerFrame::Welcome {
                    token: &token,
                    visitor_id: &visitor_id,
                    conversation_id: history.conversation_id.as_deref(),
                    status: history.status.as_ref(),
                },
            );
            for m in &history.messages {
                if m.seq > act.last_seq_sent {
                    act.last_seq_sent = m.seq;
                    act.send_frame(ctx, &ServerFrame::Message(m));
                }
            }
        }));
    }

    fn customer_message(
        &mut self,
        text: String,
        client_id: Option<String>,
        ctx: &mut Context<Self>,
    ) {
        let Some(visitor) = &self.visitor else {
            self.send_error(ctx, "hello_required", "say hello first");
            return;
        };
        let trimmed = text.trim();
        if trimmed.is_empty() {
            self.send_error(ctx, "empty_message", "a message needs some text");
            return;
        }
        if trimmed.chars().count() > self.channel.settings.max_message_chars {
            self.send_error(
                ctx,
                "message_too_long",
                "the message is longer than allowed",
            );
            return;
        }
        if let Some(c) = &client_id
            && (c.is_empty() || c.len() > 128)
        {
            self.send_error(ctx, "bad_client_id", "client_id must be 1 to 128 bytes");
            return;
        }
        // The client's id makes a resent message (after a dropped connection) a duplicate
        // that is stored once; without one, every frame is a new message.
        let platform_message_id = match &client_id {
            Some(c) => format!("c:{c}"),
            None => format!("s:{}:{}", self.id, uuid_like()),
        };
        let inbound = Inbound {
            channel: ChannelKind::Widget,
            conversation_key: visitor.id.clone(),
            contact: Contact {
                name: visitor.name.clone(),
                channel_user_id: visitor.id.clone(),
                language: visitor.language.clone(),
                attributes: Default::default(),
            },
            platform_message_id,
            // The frame's own string when there was nothing to trim.
            text: if trimmed.len() == text.len() {
                text
            } else {
                trimmed.to_string()
            },
            attachments: Vec::new(),
            sent_at_ms: now_ms(),
            automated: false,
        };
        // `wait` keeps this connection's frames in order: the next frame is read only after
        // this one is journaled and acknowledged.
        let fut = self.channel.core.submit(inbound);
        ctx.wait(fut.into_actor(self).map(move |res, act, ctx| match res {
            Ok(ack) => act.send_frame(
                ctx,
                &ServerFrame::Ack {
                    client_id: client_id.as_deref(),
                    seq: ack.seq,
                    conversation_id: &ack.conversation_id,
                    duplicate: ack.duplicate,
                },
            ),
            Err(InboundError::Refused(reason)) => act.send_error(ctx, "refused", &reason),
            Err(InboundError::Unavailable) => {
                act.send_error(ctx, "unavailable", "the daemon is shutting down")
            }
            Err(e) => act.send_error(ctx, "not_stored", &e.to_string()),
        }));
    }
}

fn truncate(s: &str, max_chars: usize) -> String {
    s.chars().take(max_chars).collect()
}

fn uuid_like() -> String {
    let mut raw = [0u8; 8];
    rand::rng().fill_bytes(&mut raw);
    hex::encode(raw)
}

impl StreamHandler<Result<AggregatedMessage, ProtocolError>> for WidgetSession {
    fn handle(&mut self, item: Result<AggregatedMessage, ProtocolError>, ctx: &mut Self::Context) {
        self.last_heard = Instant::now();
        match item {
            Ok(AggregatedMessage::Text(text)) => self.handle_text(&text, ctx),
            Ok(AggregatedMessage::Binary(_)) => {
                self.send_error(ctx, "binary_not_supported", "send JSON text frames");
            }
            Ok(AggregatedMessage::Ping(bytes)) => {
                self.writer.pong(ctx, &bytes);
            }
            Ok(AggregatedMessage::Pong(_)) => {}
            Ok(AggregatedMessage::Close(_)) => self.close(ctx, CloseCode::Normal, "bye"),
            Err(ProtocolError::Overflow) => {
                self.send_error(ctx, "frame_too_large", "the frame is larger than allowed");
                self.close(ctx, CloseCode::Size, "frame too large");
            }
            Err(e) => {
                self.send_error(ctx, "protocol_error", &e.to_string());
                self.close(ctx, CloseCode::Protocol, "protocol error");
            }
        }
    }

    fn finished(&mut self, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

/// A delivery for one connection.
#[derive(Message)]
#[rtype(result = "()")]
struct Push(OutboundPayload);

impl Handler<Push> for WidgetSession {
    type Result = ();

    fn handle(&mut self, msg: Push, ctx: &mut Self::Context) {
        if self.visitor.is_none() {
            return;
        }
        match &msg.0 {
            OutboundPayload::Message(m) => {
                if m.seq <= self.last_seq_sent {
                    return;
                }
                self.last_seq_sent = m.seq;
                self.send_frame(ctx, &ServerFrame::Message(m));
            }
            OutboundPayload::Typing { active } => {
                self.send_frame(ctx, &ServerFrame::Typing { active: *active })
            }
            OutboundPayload::Status(s) => self.send_frame(ctx, &ServerFrame::Status(s)),
        }
    }
}

/// A visitor's open connections, by session id.
type Connections = Vec<(u64, Addr<WidgetSession>)>;

/// Knows which connections belong to which visitor, and delivers to them from any thread.
#[derive(Default)]
struct WidgetHub {
    sessions: std::sync::Mutex<HashMap<String, Connections>>,
}

impl WidgetHub {
    fn sessions(&self) -> std::sync::MutexGuard<'_, HashMap<String, Connections>> {
        // Nothing is left half-done under the lock: a panic elsewhere leaves a usable map.
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn register(&self, key: &str, session_id: u64, addr: Addr<WidgetSession>) {
        self.sessions()
            .entry(key.to_string())
            .or_default()
            .push((session_id, addr));
    }

    /// Forgets a closed connection; true when it was the visitor's last.
    fn unregister(&self, key: &str, session_id: u64) -> bool {
        let mut sessions = self.sessions();
        let Some(list) = sessions.get_mut(key) else {
            return false;
        };
        let before = list.len();
        list.retain(|(id, addr)| *id != session_id && addr.connected());
        if list.is_empty() {
            sessions.remove(key);
            return before > 0;
        }
        false
    }
}

impl ImmediateDelivery for WidgetHub {
    fn deliver_now(&self, conversation_key: &str, payload: &OutboundPayload) -> DeliveryReceipt {
        let mut sessions = self.sessions();
        let Some(list) = sessions.get_mut(conversation_key) else {
            return DeliveryReceipt::HeldForResume;
        };
        list.retain(|(_, addr)| addr.connected());
        let mut delivered = false;
        for (_, addr) in list.iter() {
            addr.do_send(Push(payload.clone()));
            delivered = true;
        }
        if list.is_empty() {
            sessions.remove(conversation_key);
        }
        if delivered {
            DeliveryReceipt::Delivered {
                platform_message_id: None,
            }
        } else {
            DeliveryReceipt::HeldForResume
        }
    }
}

/// The hub as an actor, for the outbox, which reaches every channel through a mailbox.
struct HubMailbox {
    hub: std::sync::Arc<WidgetHub>,
}

impl Actor for HubMailbox {
    type Context = Context<Self>;
}

impl Handler<Outbound> for HubMailbox {
    type Result = MessageResult<Outbound>;

    fn handle(&mut self, msg: Outbound, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult(self.hub.deliver_now(&msg.conversation_key, &msg.payload))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_frames_read_directly_as_the_tagged_frame_reads_them() {
        let frames = [
            r#"{"type":"message","text":"hi"}"#,
            r#"{"text":"hi","type":"message","client_id":"c1"}"#,
            r#"{"type":"message","text":"hi","client_id":null}"#,
            r#"{"type":"message","text":"a \"quoted\" \u00e9"}"#,
            r#"{"type":"message"}"#,
            r#"{"type":"message","text":"hi","extra":1}"#,
            r#"{"type":"message","text":5}"#,
            r#"{"type":"message","text":"hi","text":"again"}"#,
            r#"{"type":"hello"}"#,
            r#"{"type":"ping"}"#,
            r#"{"type":"typing","active":true}"#,
            r#"{"text":"hi"}"#,
            r#"{"type":"Message","text":"hi"}"#,
            r#"not json"#,
        ];
        for frame in frames {
            let direct = serde_json::from_str::<MessageFrame>(frame)
                .ok()
                .map(|m| (m.text, m.client_id));
            let tagged = match serde_json::from_str::<ClientFrame>(frame) {
                Ok(ClientFrame::Message { text, client_id }) => Some((text, client_id)),
                _ => None,
            };
            assert_eq!(direct, tagged, "{frame}");
        }
    }

    #[test]
    fn tokens_round_trip_and_reject_forgeries() {
        let tokens = VisitorTokens::new(b"secret");
        let (id, token) = tokens.issue();
        assert_eq!(tokens.verify(&token).as_deref(), Some(id.as_str()));
        let other = VisitorTokens::new(b"other");
        assert_eq!(other.verify(&token), None);
        let forged = format!("v1.{}.{}", "aaaa", token.rsplit('.').next().unwrap_or(""));
        assert_eq!(tokens.verify(&forged), None);
        assert_eq!(tokens.verify("garbage"), None);
        assert_eq!(tokens.verify("v1..abc"), None);
    }
}
