//! The Bot Framework Connector API, as much of it as a bot needs to talk through handoffd:
//! `POST /v3/conversations/{id}/activities` and `.../activities/{replyToId}`. A `message`
//! activity is the bot's reply; an `event` named `handoff.initiate` asks for a person (its
//! `value` may name a `reason`, `team` and `priority`; its transcript attachment is checked
//! and counted, handoffd already holds the conversation itself); `typing` is taken and
//! dropped. The bot authenticates with its `api_key`; a bot that does not own the
//! conversation gets 409 and nothing reaches the customer.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::bot_api::{bot_of, post_reply};
use super::error::ApiError;
use crate::bot::{BotReply, HandoffRequest};

/// The content type of a transcript attached to `handoff.initiate`.
const TRANSCRIPT_TYPE: &str = "application/vnd.microsoft.activity.transcript";

/// The parts of an activity handoffd reads; the rest of the schema is accepted and ignored.
#[derive(Debug, Deserialize)]
pub struct Activity {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    value: Option<Value>,
    #[serde(default)]
    attachments: Vec<Attachment>,
}

#[derive(Debug, Deserialize)]
struct Attachment {
    #[serde(rename = "contentType")]
    content_type: String,
    #[serde(default)]
    content: Option<Value>,
}

/// Reads the handoff request of a `handoff.initiate` event.
fn handoff_of(a: &Activity) -> Result<HandoffRequest, ApiError> {
    let value = a.value.clone().unwrap_or(Value::Null);
    if !(value.is_null() || value.is_object()) {
        return Err(ApiError::bad_request(
            "handoff.initiate: `value` must be an object",
        ));
    }
    let mut transcript = None;
    for att in a
        .attachments
        .iter()
        .filter(|x| x.content_type == TRANSCRIPT_TYPE)
    {
        let n = att
            .content
            .as_ref()
            .and_then(|c| c.get("activities"))
            .and_then(Value::as_array)
            .map(Vec::len)
            .ok_or_else(|| {
                ApiError::bad_request(
                    "handoff.initiate: a transcript attachment holds `content.activities`",
                )
            })?;
        transcript = Some(n);
    }
    let priority = match value.get("priority") {
        None | Some(Value::Null) => None,
        Some(p) => Some(
            p.as_u64()
                .filter(|p| *p <= 3)
                .ok_or_else(|| ApiError::bad_request("handoff.initiate: priority is 0..3"))?
                as u8,
        ),
    };
    let mut reason = value
        .get("reason")
        .and_then(Value::as_str)
        .unwrap_or("the bot initiated a handoff")
        .to_string();
    if let Some(n) = transcript {
        reason.push_str(&format!(" (the bot's transcript: {n} activities)"));
    }
    Ok(HandoffRequest {
        reason,
        team: value.get("team").and_then(Value::as_str).map(String::from),
        priority,
    })
}

async fn post(
    req: HttpRequest,
    state: web::Data<AppState>,
    conversation_id: String,
    body: web::Json<Activity>,
) -> Result<HttpResponse, ApiError> {
    let bot = bot_of(&req, &state)?;
    let a = body.into_inner();
    let reply = match (a.kind.as_str(), a.name.as_deref()) {
        ("message", _) => {
            let text = a.text.clone().unwrap_or_default();
            BotReply {
                messages: vec![text],
                ..BotReply::default()
            }
        }
        ("event", Some("handoff.initiate")) => BotReply {
            handoff: Some(handoff_of(&a)?),
            ..BotReply::default()
        },
        ("typing", _) => return Ok(HttpResponse::Ok().json(json!({"id": ""}))),
        (kind, name) => {
            return Err(ApiError::bad_request(format!(
                "activities of type `{kind}`{} are not taken here",
                name.map(|n| format!(" named `{n}`")).unwrap_or_default()
            )));
        }
    };
    reply.validate().map_err(ApiError::bad_request)?;
    let seqs = post_reply(&state, bot, &conversation_id, reply).await?;
    let id = seqs
        .last()
        .map(|s| format!("{conversation_id}:{s}"))
        .unwrap_or_default();
    Ok(HttpResponse::Ok().json(json!({ "id": id })))
}

/// `POST /v3/conversations/{conversationId}/activities`
pub async fn send_to_conversation(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: web::Json<Activity>,
) -> Result<HttpResponse, ApiError> {
    post(req, state, path.into_inner(), body).await
}

/// `POST /v3/conversations/{conversationId}/activities/{activityId}` (a reply to an
/// activity: the same here, replies are threaded by the conversation).
pub async fn reply_to_activity(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    body: web::Json<Activity>,
) -> Result<HttpResponse, ApiError> {
    post(req, state, path.into_inner().0, body).await
}
