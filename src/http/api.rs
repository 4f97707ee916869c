//! The REST API under `/api/v1`, for dashboards, scripts and bots. Every call needs an API
//! key from the config as `Authorization: Bearer <key>`.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use handoffd_channels::ChannelKind;
use serde::Deserialize;
use serde_json::json;

use super::AppState;
use super::error::ApiError;
use crate::agents::auth::{constant_time_eq, hash_token, new_token};
use crate::config::valid_name;
use crate::handoff::{HandoffPackage, TranscriptEntry};
use crate::model::{AgentRecord, ConversationRecord};
use crate::router::{AgentAdded, GetAgentLoads, GetQueue, GetStats};
use crate::store::{ConversationFilter, Op};

fn authorize(req: &HttpRequest, state: &AppState) -> Result<(), ApiError> {
    let given = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(ApiError::unauthorized)?;
    // Compare with every key, always, so timing says nothing about which one is close.
    let ok = state
        .api_keys
        .iter()
        .fold(false, |ok, k| constant_time_eq(k, given) | ok);
    if ok {
        Ok(())
    } else {
        Err(ApiError::unauthorized())
    }
}

/// Query of `GET /api/v1/conversations`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    owner: Option<String>,
    team: Option<String>,
    channel: Option<String>,
    limit: Option<usize>,
}

fn summary(c: &ConversationRecord) -> serde_json::Value {
    json!({
        "id": c.id,
        "channel": c.channel,
        "contact": c.contact,
        "owner": c.owner,
        "created_at_ms": c.created_at_ms,
        "updated_at_ms": c.updated_at_ms,
        "last_seq": c.last_seq,
        "handoffs": c.handoffs,
        "priority": c.escalation.as_ref().map(|e| e.priority),
        "sentiment": c.sentiment,
    })
}

pub async fn list_conversations(
    req: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    authorize(&req, &state)?;
    let q = query.into_inner();
    if let Some(o) = &q.owner
        && !["bot", "queued", "agent"].contains(&o.as_str())
    {
        return Err(ApiError::bad_request("owner is one of bot, queued, agent"));
    }
    let channel = match &q.channel {
        Some(c) => Some(
            ChannelKind::parse(c)
                .ok_or_else(|| ApiError::bad_request(format!("unknown channel `{c}`")))?,
        ),
        None => None,
    };
    let filter = ConversationFilter {
        owner: q.owner,
        team: q.team,
        channel,
        limit: q.limit.unwrap_or(100).min(1000),
    };
    let store = state.store.clone();
    let list = web::block(move || store.conversations(&filter))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))??;
    Ok(HttpResponse::Ok().json(json!({
        "conversations": list.iter().map(summary).collect::<Vec<_>>()
    })))
}

pub async fn get_conversation(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    authorize(&req, &state)?;
    let id = path.into_inner();
    let store = state.store.clone();
    let lookup = id.clone();
    let (record, messages) = web::block(move || {
        let record = store.conversation(&lookup)?;
        let messages = match &record {
            Some(_) => store.messages_after(&lookup, 0)?,
            None => Vec::new(),
        };
        Ok::<_, crate::store::StoreError>((record, messages))
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))??;
    let Some(record) = record else {
        return Err(ApiError::not_found(
            "unknown_conversation",
            format!("no conversation with id `{id}`"),
        ));
    };
    let package = record
        .escalation
        .as_ref()
        .map(|e| HandoffPackage::assemble(&record, e, &messages));
    let transcript: Vec<serde_json::Value> = messages
        .iter()
        .map(|m| {
            let mut v = serde_json::to_value(TranscriptEntry::from(m)).unwrap_or_default();
            if let (Some(obj), Some(bot)) = (v.as_object_mut(), &m.bot) {
                obj.insert("bot".into(), serde_json::to_value(bot).unwrap_or_default());
            }
            v
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({
        "conversation": summary(&record),
        "entities": record.entities,
        "transcript": transcript,
        "handoff_package": package,
    })))
}

/// Body of `POST /api/v1/agents`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewAgent {
    id: String,
    #[serde(default)]
    name: Option<String>,
    teams: Vec<String>,
    #[serde(default)]
    capacity: Option<u32>,
    #[serde(default)]
    skills: Vec<String>,
    #[serde(default)]
    languages: Vec<String>,
    #[serde(default)]
    supervisor: bool,
}

pub async fn list_agents(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    authorize(&req, &state)?;
    let agents = state.store.agents()?;
    Ok(HttpResponse::Ok().json(json!({
        "agents": agents.iter().map(|a| json!({
            "id": a.id, "name": a.display_name, "teams": a.teams, "capacity": a.capacity,
            "skills": a.skills, "languages": a.languages, "supervisor": a.supervisor,
        })).collect::<Vec<_>>()
    })))
}

pub async fn add_agent(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Json<NewAgent>,
) -> Result<HttpResponse, ApiError> {
    authorize(&req, &state)?;
    let body = body.into_inner();
    let (mut record, token) = new_agent_record(
        &body.id,
        body.name.as_deref(),
        &body.teams,
        body.capacity.unwrap_or(state.default_capacity),
        &state.teams,
    )
    .map_err(ApiError::bad_request)?;
    record.skills = body.skills;
    record.languages = body.languages.iter().map(|l| l.to_lowercase()).collect();
    record.supervisor = body.supervisor;
    if state.store.agent(&record.id)?.is_some() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "agent_exists",
            format!("agent `{}` exists already", record.id),
        ));
    }
    state
        .store
        .commit(vec![Op::PutAgent(Box::new(record.clone()))])
        .await?;
    state.router.do_send(AgentAdded(record.clone()));
    Ok(HttpResponse::Created().json(json!({
        "agent": {"id": record.id, "name": record.display_name, "teams": record.teams, "capacity": record.capacity, "supervisor": record.supervisor},
        "token": token,
    })))
}

/// Checks and builds a new agent account; returns it with its token (shown only once).
pub fn new_agent_record(
    id: &str,
    name: Option<&str>,
    teams: &[String],
    capacity: u32,
    known_teams: &std::collections::HashSet<String>,
) -> Result<(AgentRecord, String), String> {
    if !valid_name(id) {
        return Err("an agent id is 1 to 64 letters, digits, `.`, `-` or `_`".into());
    }
    if teams.is_empty() {
        return Err("an agent needs at least one team".into());
    }
    for t in teams {
        if !known_teams.contains(t) {
            return Err(format!("team `{t}` is not defined in [[router.teams]]"));
        }
    }
    if capacity == 0 || capacity > 1000 {
        return Err("capacity is 1 to 1000".into());
    }
    let token = new_token();
    let record = AgentRecord {
        id: id.to_string(),
        display_name: name.unwrap_or(id).to_string(),
        teams: teams.to_vec(),
        capacity,
        token_hash: hash_token(&token),
        created_at_ms: handoffd_channels::now_ms(),
        skills: Vec::new(),
        languages: Vec::new(),
        supervisor: false,
    };
    Ok((record, token))
}

/// `GET /api/v1/queue`: waiting conversations in the order they will be served.
pub async fn queue(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    authorize(&req, &state)?;
    let queue = state
        .router
        .send(GetQueue { for_agent: None })
        .await
        .map_err(|_| ApiError::internal("the router is not running"))?;
    Ok(HttpResponse::Ok().json(json!({ "queue": queue })))
}

/// `GET /metrics`: Prometheus text format. Needs the API key like the rest of the API
/// (Prometheus sends it with `authorization: {credentials: ...}` or `bearer_token`).
pub async fn metrics(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    authorize(&req, &state)?;
    let unavailable = |_| ApiError::internal("the router is not running");
    let queue = state
        .router
        .send(GetQueue { for_agent: None })
        .await
        .map_err(unavailable)?;
    let stats = state.router.send(GetStats).await.map_err(unavailable)?;
    let agents = state
        .router
        .send(GetAgentLoads)
        .await
        .map_err(unavailable)?;
    let live = state
        .directory
        .send(crate::conversation::LiveCount)
        .await
        .map_err(|_| ApiError::internal("the directory is not running"))?;
    let now = handoffd_channels::now_ms();
    let mut per_team: std::collections::BTreeMap<String, (usize, f64)> =
        state.teams.iter().map(|t| (t.clone(), (0, 0.0))).collect();
    for q in &queue {
        let e = per_team.entry(q.team.clone()).or_insert((0, 0.0));
        e.0 += 1;
        e.1 =
            e.1.max(now.saturating_sub(q.enqueued_at_ms) as f64 / 1000.0);
    }
    let writes = state.store.write_stats();
    let snapshot = crate::metrics::Snapshot {
        queue: per_team.into_iter().map(|(t, (d, o))| (t, d, o)).collect(),
        agents_online: stats.agents_online,
        agents,
        conversations_live: live,
        journal_batches: writes.batches,
        journal_requests: writes.requests,
        journal_durable: writes.durable,
        outbox_pending: state.store.outbox().map(|o| o.len()).unwrap_or(0),
    };
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(crate::metrics::render(&snapshot)))
}

/// What `POST /api/v1/debug/clock` accepts: one of the two.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MoveClock {
    #[serde(default)]
    advance_secs: Option<i64>,
    #[serde(default)]
    set_ms: Option<u64>,
}

/// `POST /api/v1/debug/clock`: moves the daemon's clock (only with `debug.clock_control`),
/// then has the router check its SLA deadlines; answers once that is done, with the time.
pub async fn move_clock(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Json<MoveClock>,
) -> Result<HttpResponse, ApiError> {
    authorize(&req, &state)?;
    let Some(clock) = &state.clock else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "the clock can only be moved with debug.clock_control = true",
        ));
    };
    match (body.advance_secs, body.set_ms) {
        (Some(secs), None) => clock.advance(secs.saturating_mul(1000)),
        (None, Some(at)) => clock.set(at),
        _ => {
            return Err(ApiError::bad_request(
                "give exactly one of advance_secs and set_ms",
            ));
        }
    }
    let breaches = state
        .router
        .send(crate::router::SweepSla)
        .await
        .map_err(|_| ApiError::internal("the router is not running"))?;
    Ok(HttpResponse::Ok().json(json!({ "now_ms": clock.now_ms(), "breaches": breaches })))
}

/// Most attributes a contact keeps.
const MAX_ATTRIBUTES: usize = 50;

/// `PUT /api/v1/conversations/{id}/attributes`: the business sets what it knows of the
/// customer (`{"tier": "vip"}`; `null` removes one). Routing rules match on attributes at
/// escalation, so set them before (a conversation already waiting keeps its route).
pub async fn set_attributes(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: web::Json<std::collections::BTreeMap<String, Option<String>>>,
) -> Result<HttpResponse, ApiError> {
    authorize(&req, &state)?;
    let id = path.into_inner();
    let changes = body.into_inner();
    for (k, v) in &changes {
        let key_ok = (1..=64).contains(&k.len())
            && k.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
        if !key_ok {
            return Err(ApiError::bad_request(format!(
                "attribute name `{k}`: 1 to 64 letters, digits, `_`, `-` or `.`"
            )));
        }
        if v.as_ref().is_some_and(|v| v.chars().count() > 256) {
            return Err(ApiError::bad_request(format!(
                "attribute `{k}`: at most 256 characters"
            )));
        }
    }
    if changes.len() > MAX_ATTRIBUTES {
        return Err(ApiError::bad_request(format!(
            "at most {MAX_ATTRIBUTES} attributes"
        )));
    }
    if state.store.conversation(&id)?.is_none() {
        return Err(ApiError::not_found(
            "unknown_conversation",
            format!("no conversation with id `{id}`"),
        ));
    }
    let res = crate::conversation::send_to(
        &state.directory,
        &id,
        crate::conversation::SetAttributes { changes },
    )
    .await
    .and_then(|r| r);
    match res {
        Ok(attributes) => Ok(HttpResponse::Ok().json(json!({ "attributes": attributes }))),
        Err(crate::conversation::ConversationError::Invalid(m)) => Err(ApiError::bad_request(m)),
        Err(crate::conversation::ConversationError::NotFound(_)) => Err(ApiError::not_found(
            "unknown_conversation",
            format!("no conversation with id `{id}`"),
        )),
        Err(e) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            e.to_string(),
        )),
    }
}
