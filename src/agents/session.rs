//! One agent websocket connection at `/agent/ws`: authenticates the agent (an
//! `Authorization: Bearer` header, or an `auth` frame first), turns frames into requests to
//! the router and conversations, and forwards what the daemon pushes. Every request gets an
//! `ack` or an `error` frame; a bad frame never closes the session, except before auth.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use actix_web::{HttpRequest, HttpResponse, web};
use actix_ws::{AggregatedMessage, CloseCode, CloseReason, ProtocolError};
use handoffd_channels::ws::{WsActor, WsWriter};
use handoffd_channels::{ChannelKind, WindowRules, now_ms};

use super::AgentRegistry;
use super::auth::hash_token;
use super::protocol::{ClientFrame, ServerFrame, TransferTarget};
use super::registry::AgentPush;
use crate::conversation::{AgentAction, AgentRequest, Directory, TypingSignal, send_to};
use crate::handoff::{HandoffPackage, TranscriptEntry};
use crate::model::Owner;
use crate::router::{
    Accept, AgentConnected, AgentDisconnected, Claim, Decline, GetOverview, GetQueue, QueuedView,
    Router, RouterError, SetPresence, SupervisorAssign, SupervisorTransfer,
};
use crate::store::Store;

/// Longest agent message accepted, in characters.
const MAX_TEXT_CHARS: usize = 16_000;
const HEARTBEAT: Duration = Duration::from_secs(15);
const IDLE_LIMIT: Duration = Duration::from_secs(60);

/// What the agent endpoint needs, registered as actix-web app data.
#[derive(Clone)]
pub struct AgentEndpoint {
    pub store: Store,
    pub router: Addr<Router>,
    pub directory: Addr<Directory>,
    pub registry: AgentRegistry,
    pub teams: Arc<HashSet<String>>,
    pub max_frame_bytes: usize,
    /// Messaging windows of the channels that have one.
    pub windows: Arc<HashMap<ChannelKind, WindowRules>>,
}

/// The actix-web handler for `GET /agent/ws`.
pub async fn ws_route(
    req: HttpRequest,
    body: web::Payload,
    endpoint: web::Data<AgentEndpoint>,
) -> Result<HttpResponse, actix_web::Error> {
    // A token in the header is checked before the upgrade, so a wrong one is a plain 401.
    let header_token = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_string);
    let mut agent = None;
    if let Some(token) = header_token {
        match endpoint.store.agent_by_token_hash(&hash_token(&token)) {
            Ok(Some(a)) => agent = Some(a),
            Ok(None) => {
                return Ok(HttpResponse::Unauthorized().json(serde_json::json!({
                    "error": {"code": "unauthorized", "message": "unknown agent token"}
                })));
            }
            Err(e) => {
                return Ok(HttpResponse::ServiceUnavailable().json(serde_json::json!({
                    "error": {"code": "storage_error", "message": e.to_string()}
                })));
            }
        }
    }
    let (response, session, stream) = actix_ws::handle(&req, body)?;
    let stream = stream
        .max_frame_size(endpoint.max_frame_bytes)
        .aggregate_continuations()
        .max_continuation_size(endpoint.max_frame_bytes);
    let endpoint = endpoint.get_ref().clone();
    AgentSession::create(move |ctx| {
        ctx.add_stream(stream);
        let mut s = AgentSession {
            id: next_session_id(),
            endpoint,
            writer: WsWriter::new(session),
            closing: false,
            agent: None,
            last_heard: Instant::now(),
        };
        if let Some(a) = agent {
            s.authenticated(a, ctx);
        }
        s
    });
    Ok(response)
}

fn next_session_id() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

struct Agent {
    id: String,
    name: String,
    teams: Vec<String>,
    supervisor: bool,
}

/// One agent connection.
pub struct AgentSession {
    id: u64,
    endpoint: AgentEndpoint,
    writer: WsWriter,
    closing: bool,
    agent: Option<Agent>,
    last_heard: Instant,
}

impl WsActor for AgentSession {
    fn ws_writer(&mut self) -> &mut WsWriter {
        &mut self.writer
    }
}

impl Actor for AgentSession {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(HEARTBEAT, |act, ctx| {
            if act.last_heard.elapsed() > IDLE_LIMIT {
                act.close(ctx, CloseCode::Away, "idle");
                return;
            }
            act.writer.ping(ctx, b"hb");
        });
        ctx.run_later(Duration::from_secs(10), |act, ctx| {
            if act.agent.is_none() {
                act.send(
                    ctx,
                    ServerFrame::error("unauthorized", "authenticate first", None),
                );
                act.close(ctx, CloseCode::Policy, "no auth");
            }
        });
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        self.writer.finish();
        if let Some(a) = &self.agent {
            self.endpoint.registry.remove(&a.id, self.id);
            self.endpoint.router.do_send(AgentDisconnected {
                agent_id: a.id.clone(),
            });
        }
    }
}

impl AgentSession {
    fn send(&mut self, ctx: &mut Context<Self>, frame: ServerFrame) {
        match serde_json::to_string(&frame) {
            Ok(text) => self.send_text(ctx, text.into()),
            Err(e) => tracing::error!(error = %e, "cannot encode an agent frame"),
        }
    }

    fn send_text(&mut self, ctx: &mut Context<Self>, text: Arc<str>) {
        if !self.closing && !self.writer.text(ctx, text.to_string()) {
            ctx.stop();
        }
    }

    fn close(&mut self, ctx: &mut Context<Self>, code: CloseCode, why: &str) {
        if !self.closing {
            self.closing = true;
            self.writer.close(
                ctx,
                Some(CloseReason {
                    code,
                    description: Some(why.to_string()),
                }),
            );
        }
        ctx.stop();
    }

    fn authenticated(&mut self, a: crate::model::AgentRecord, ctx: &mut Context<Self>) {
        let id = a.id;
        self.endpoint
            .registry
            .add(&id, self.id, ctx.address().recipient());
        self.agent = Some(Agent {
            id: id.clone(),
            name: a.display_name,
            teams: a.teams,
            supervisor: a.supervisor,
        });
        let fut = self.endpoint.router.send(AgentConnected {
            agent_id: id,
            session_id: self.id,
        });
        ctx.wait(fut.into_actor(self).map(|res, act, ctx| match res {
            Ok(Ok((agent, presence, conversations))) => act.send(
                ctx,
                ServerFrame::Welcome {
                    agent,
                    presence,
                    conversations,
                },
            ),
            Ok(Err(e)) => {
                act.send(
                    ctx,
                    ServerFrame::error(e.code(), e.to_string(), Some("auth")),
                );
                act.close(ctx, CloseCode::Policy, "unknown agent");
            }
            Err(_) => act.close(ctx, CloseCode::Away, "shutting down"),
        }));
    }

    fn handle_text(&mut self, text: &str, ctx: &mut Context<Self>) {
        let frame: ClientFrame = match serde_json::from_str(text) {
            Ok(f) => f,
            Err(e) => {
                let code = if serde_json::from_str::<serde_json::Value>(text).is_ok() {
                    "bad_frame"
                } else {
                    "malformed_json"
                };
                self.send(ctx, ServerFrame::error(code, e.to_string(), None));
                return;
            }
        };
        let kind = frame.kind();
        if let ClientFrame::Ping = frame {
            self.send(ctx, ServerFrame::Pong);
            return;
        }
        let Some(agent) = &self.agent else {
            let ClientFrame::Auth { token } = frame else {
                self.send(
                    ctx,
                    ServerFrame::error("unauthorized", "authenticate first", Some(kind)),
                );
                self.close(ctx, CloseCode::Policy, "not authenticated");
                return;
            };
            match self.endpoint.store.agent_by_token_hash(&hash_token(&token)) {
                Ok(Some(a)) => self.authenticated(a, ctx),
                Ok(None) => {
                    self.send(
                        ctx,
                        ServerFrame::error("unauthorized", "unknown agent token", Some(kind)),
                    );
                    self.close(ctx, CloseCode::Policy, "unauthorized");
                }
                Err(e) => self.send(
                    ctx,
                    ServerFrame::error("storage_error", e.to_string(), Some(kind)),
                ),
            }
            return;
        };
        let agent_id = agent.id.clone();
        let agent_name = agent.name.clone();
        let supervisor = agent.supervisor;
        match frame {
            ClientFrame::Auth { .. } => self.send(
                ctx,
                ServerFrame::error(
                    "already_authenticated",
                    "this session is authenticated",
                    Some(kind),
                ),
            ),
            ClientFrame::Ping => {}
            ClientFrame::Presence { status } => {
                self.endpoint.router.do_send(SetPresence {
                    agent_id,
                    presence: status,
                });
                self.send(ctx, ServerFrame::ack(kind, None));
            }
            ClientFrame::GetQueue => {
                let fut = self.endpoint.router.send(GetQueue {
                    for_agent: Some(agent_id),
                });
                ctx.wait(fut.into_actor(self).map(move |res, act, ctx| {
                    let frame = match res {
                        Ok(entries) => ServerFrame::Queue {
                            entries: act.with_contacts(entries),
                        },
                        Err(_) => ServerFrame::error(
                            "unavailable",
                            "the router is not running",
                            Some(kind),
                        ),
                    };
                    act.send(ctx, frame);
                }));
            }
            ClientFrame::Claim { conversation_id } => {
                let fut = self.endpoint.router.send(Claim {
                    agent_id,
                    conversation_id: conversation_id.clone(),
                });
                self.answer_router(ctx, kind, conversation_id, fut);
            }
            ClientFrame::Accept { conversation_id } => {
                let fut = self.endpoint.router.send(Accept {
                    agent_id,
                    conversation_id: conversation_id.clone(),
                });
                self.answer_router(ctx, kind, conversation_id, fut);
            }
            ClientFrame::Decline {
                conversation_id,
                reason,
            } => {
                if let Some(r) = &reason {
                    let r: String = r.chars().take(200).collect();
                    tracing::info!(agent = %agent_id, conversation = %conversation_id, reason = %r, "offer declined");
                }
                let fut = self.endpoint.router.send(Decline {
                    agent_id,
                    conversation_id: conversation_id.clone(),
                });
                ctx.wait(fut.into_actor(self).map(move |res, act, ctx| {
                    let frame = match res {
                        Ok(Ok(())) => ServerFrame::ack(kind, Some(conversation_id)),
                        Ok(Err(e)) => ServerFrame::error(e.code(), e.to_string(), Some(kind)),
                        Err(_) => ServerFrame::error(
                            "unavailable",
                            "the router is not running",
                            Some(kind),
                        ),
                    };
                    act.send(ctx, frame);
                }));
            }
            ClientFrame::Reply {
                conversation_id,
                text,
                client_id,
            } => {
                if let Err(msg) = check_text(&text) {
                    self.send(ctx, ServerFrame::error("invalid_request", msg, Some(kind)));
                    return;
                }
                if client_id
                    .as_ref()
                    .is_some_and(|c| c.is_empty() || c.len() > 128)
                {
                    self.send(
                        ctx,
                        ServerFrame::error(
                            "invalid_request",
                            "client_id must be 1 to 128 bytes",
                            Some(kind),
                        ),
                    );
                    return;
                }
                let action = AgentAction::Reply {
                    text,
                    client_id: client_id.clone(),
                };
                self.conversation_request(
                    ctx,
                    kind,
                    conversation_id,
                    agent_id,
                    agent_name,
                    action,
                    client_id,
                );
            }
            ClientFrame::Template {
                conversation_id,
                template,
                params,
                client_id,
            } => {
                if template.is_empty()
                    || params.len() > 20
                    || params.iter().any(|p| check_text(p).is_err())
                    || client_id
                        .as_ref()
                        .is_some_and(|c| c.is_empty() || c.len() > 128)
                {
                    self.send(
                        ctx,
                        ServerFrame::error(
                            "invalid_request",
                            "a template needs its name, at most 20 non-empty parameters and a client_id of 1 to 128 bytes",
                            Some(kind),
                        ),
                    );
                    return;
                }
                let action = AgentAction::Template {
                    name: template,
                    params,
                    client_id: client_id.clone(),
                };
                self.conversation_request(
                    ctx,
                    kind,
                    conversation_id,
                    agent_id,
                    agent_name,
                    action,
                    client_id,
                );
            }
            ClientFrame::Note {
                conversation_id,
                text,
            } => {
                if let Err(msg) = check_text(&text) {
                    self.send(ctx, ServerFrame::error("invalid_request", msg, Some(kind)));
                    return;
                }
                let action = AgentAction::Note { text };
                self.conversation_request(
                    ctx,
                    kind,
                    conversation_id,
                    agent_id,
                    agent_name,
                    action,
                    None,
                );
            }
            ClientFrame::Close { conversation_id } => {
                self.conversation_request(
                    ctx,
                    kind,
                    conversation_id,
                    agent_id,
                    agent_name,
                    AgentAction::Close,
                    None,
                );
            }
            ClientFrame::Transfer {
                conversation_id,
                to_agent,
                to_team,
                note,
            } => {
                let to = match (to_agent, to_team) {
                    (Some(a), None) => match self.endpoint.store.agent(&a) {
                        Ok(Some(_)) if a != agent_id => TransferTarget::Agent(a),
                        Ok(Some(_)) => {
                            self.send(
                                ctx,
                                ServerFrame::error(
                                    "invalid_request",
                                    "you already hold this conversation",
                                    Some(kind),
                                ),
                            );
                            return;
                        }
                        Ok(None) => {
                            self.send(
                                ctx,
                                ServerFrame::error(
                                    "unknown_agent",
                                    format!("no agent `{a}`"),
                                    Some(kind),
                                ),
                            );
                            return;
                        }
                        Err(e) => {
                            self.send(
                                ctx,
                                ServerFrame::error("storage_error", e.to_string(), Some(kind)),
                            );
                            return;
                        }
                    },
                    (None, Some(t)) if self.endpoint.teams.contains(&t) => TransferTarget::Team(t),
                    (None, Some(t)) => {
                        self.send(
                            ctx,
                            ServerFrame::error(
                                "unknown_team",
                                format!("no team `{t}`"),
                                Some(kind),
                            ),
                        );
                        return;
                    }
                    _ => {
                        self.send(
                            ctx,
                            ServerFrame::error(
                                "invalid_request",
                                "give exactly one of to_agent and to_team",
                                Some(kind),
                            ),
                        );
                        return;
                    }
                };
                if let Some(n) = &note
                    && n.chars().count() > MAX_TEXT_CHARS
                {
                    self.send(
                        ctx,
                        ServerFrame::error(
                            "invalid_request",
                            "the note is longer than 16000 characters",
                            Some(kind),
                        ),
                    );
                    return;
                }
                if supervisor {
                    let fut = self.endpoint.router.send(SupervisorTransfer {
                        supervisor_id: agent_id,
                        supervisor_name: agent_name,
                        conversation_id: conversation_id.clone(),
                        to,
                        note,
                    });
                    self.answer_router(ctx, kind, conversation_id, fut);
                    return;
                }
                let action = AgentAction::Transfer { to, note };
                self.conversation_request(
                    ctx,
                    kind,
                    conversation_id,
                    agent_id,
                    agent_name,
                    action,
                    None,
                );
            }
            ClientFrame::Typing {
                conversation_id,
                active,
            } => {
                let directory = self.endpoint.directory.clone();
                actix::spawn(async move {
                    let _ = send_to(
                        &directory,
                        &conversation_id,
                        TypingSignal {
                            agent_id: Some(agent_id),
                            active,
                        },
                    )
                    .await;
                });
            }
            ClientFrame::GetOverview => {
                let fut = self.endpoint.router.send(GetOverview {
                    supervisor_id: agent_id,
                });
                ctx.wait(fut.into_actor(self).map(move |res, act, ctx| {
                    let frame = match res {
                        Ok(Ok(o)) => ServerFrame::Overview(Box::new(o)),
                        Ok(Err(e)) => ServerFrame::error(e.code(), e.to_string(), Some(kind)),
                        Err(_) => ServerFrame::error(
                            "unavailable",
                            "the router is not running",
                            Some(kind),
                        ),
                    };
                    act.send(ctx, frame);
                }));
            }
            ClientFrame::Assign {
                conversation_id,
                agent_id: to_agent,
            } => {
                if !supervisor {
                    self.send(
                        ctx,
                        ServerFrame::error(
                            "forbidden",
                            "only supervisors assign conversations",
                            Some(kind),
                        ),
                    );
                    return;
                }
                let fut = self.endpoint.router.send(SupervisorAssign {
                    supervisor_id: agent_id,
                    conversation_id: conversation_id.clone(),
                    agent_id: to_agent,
                });
                self.answer_router(ctx, kind, conversation_id, fut);
            }
            ClientFrame::GetConversation { conversation_id } => {
                let frame = self.conversation_view(&conversation_id);
                self.send(ctx, frame);
            }
        }
    }

    /// Adds each waiting customer's contact (name, language) from the store, so the inbox
    /// can list them by name. A failed read leaves that one without: the list still works.
    fn with_contacts(&self, mut entries: Vec<QueuedView>) -> Vec<QueuedView> {
        for e in &mut entries {
            if let Ok(Some(record)) = self.endpoint.store.conversation(&e.conversation_id) {
                e.contact = Some(record.contact);
            }
        }
        entries
    }

    /// Waits for the router's answer to a request about one conversation (accept, claim,
    /// a supervisor's assign or transfer) and sends the ack or the error frame.
    fn answer_router(
        &mut self,
        ctx: &mut Context<Self>,
        kind: &'static str,
        conversation_id: String,
        fut: impl std::future::Future<Output = Result<Result<(), RouterError>, MailboxError>> + 'static,
    ) {
        ctx.wait(fut.into_actor(self).map(move |res, act, ctx| {
            let frame = match res {
                Ok(Ok(())) => ServerFrame::ack(kind, Some(conversation_id)),
                Ok(Err(e)) => ServerFrame::error(e.code(), e.to_string(), Some(kind)),
                Err(_) => {
                    ServerFrame::error("unavailable", "the router is not running", Some(kind))
                }
            };
            act.send(ctx, frame);
        }));
    }

    #[allow(clippy::too_many_arguments)]
    fn conversation_request(
        &mut self,
        ctx: &mut Context<Self>,
        kind: &'static str,
        conversation_id: String,
        agent_id: String,
        agent_name: String,
        action: AgentAction,
        client_id: Option<String>,
    ) {
        let directory = self.endpoint.directory.clone();
        let cid = conversation_id.clone();
        let fut = async move {
            send_to(
                &directory,
                &cid,
                AgentRequest {
                    agent_id,
                    agent_name,
                    action,
                },
            )
            .await
        };
        ctx.wait(fut.into_actor(self).map(move |res, act, ctx| {
            let frame = match res {
                Ok(Ok(seq)) => ServerFrame::Ack {
                    request: kind,
                    conversation_id: Some(conversation_id),
                    seq,
                    client_id,
                },
                Ok(Err(e)) | Err(e) => ServerFrame::error(e.code(), e.to_string(), Some(kind)),
            };
            act.send(ctx, frame);
        }));
    }

    /// The transcript and package of a conversation this agent may see: one they hold, or
    /// one waiting in a queue of their teams.
    fn conversation_view(&self, conversation_id: &str) -> ServerFrame {
        let kind = Some("get_conversation");
        let Some(agent) = &self.agent else {
            return ServerFrame::error("unauthorized", "authenticate first", kind);
        };
        let record = match self.endpoint.store.conversation(conversation_id) {
            Ok(Some(r)) => r,
            Ok(None) => {
                return ServerFrame::error(
                    "unknown_conversation",
                    format!("no conversation with id `{conversation_id}`"),
                    kind,
                );
            }
            Err(e) => return ServerFrame::error("storage_error", e.to_string(), kind),
        };
        // Supervisors read any conversation their teams hold or wait for.
        let allowed = match &record.owner {
            Owner::Agent { agent_id, team, .. } => {
                *agent_id == agent.id || (agent.supervisor && agent.teams.contains(team))
            }
            Owner::Queued { team, .. } => agent.teams.contains(team),
            Owner::Bot => false,
        };
        if !allowed {
            return ServerFrame::error("not_owner", "the conversation is not yours", kind);
        }
        let messages = match self.endpoint.store.messages_after(conversation_id, 0) {
            Ok(m) => m,
            Err(e) => return ServerFrame::error("storage_error", e.to_string(), kind),
        };
        let package = record
            .escalation
            .as_ref()
            .map(|e| Box::new(HandoffPackage::assemble(&record, e, &messages)));
        ServerFrame::Conversation {
            conversation_id: conversation_id.to_string(),
            owner: record.owner.clone(),
            package,
            transcript: messages.iter().map(TranscriptEntry::from).collect(),
            window: self
                .endpoint
                .windows
                .get(&record.channel)
                .map(|w| w.view(record.last_customer_message_ms, now_ms())),
        }
    }
}

fn check_text(text: &str) -> Result<(), &'static str> {
    if text.trim().is_empty() {
        return Err("the text is empty");
    }
    if text.chars().count() > MAX_TEXT_CHARS {
        return Err("the text is longer than 16000 characters");
    }
    Ok(())
}

impl StreamHandler<Result<AggregatedMessage, ProtocolError>> for AgentSession {
    fn handle(&mut self, item: Result<AggregatedMessage, ProtocolError>, ctx: &mut Self::Context) {
        self.last_heard = Instant::now();
        match item {
            Ok(AggregatedMessage::Text(text)) => self.handle_text(&text, ctx),
            Ok(AggregatedMessage::Binary(_)) => self.send(
                ctx,
                ServerFrame::error("binary_not_supported", "send JSON text frames", None),
            ),
            Ok(AggregatedMessage::Ping(bytes)) => {
                self.writer.pong(ctx, &bytes);
            }
            Ok(AggregatedMessage::Pong(_)) => {}
            Ok(AggregatedMessage::Close(_)) => self.close(ctx, CloseCode::Normal, "bye"),
            Err(ProtocolError::Overflow) => {
                self.send(
                    ctx,
                    ServerFrame::error(
                        "frame_too_large",
                        format!(
                            "frames are limited to {} bytes",
                            self.endpoint.max_frame_bytes
                        ),
                        None,
                    ),
                );
                self.close(ctx, CloseCode::Size, "frame too large");
            }
            Err(e) => {
                self.send(
                    ctx,
                    ServerFrame::error("protocol_error", e.to_string(), None),
                );
                self.close(ctx, CloseCode::Protocol, "protocol error");
            }
        }
    }

    fn finished(&mut self, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

impl Handler<AgentPush> for AgentSession {
    type Result = ();

    fn handle(&mut self, msg: AgentPush, ctx: &mut Self::Context) {
        self.send_text(ctx, msg.0);
    }
}
