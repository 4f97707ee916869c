//! What bots call: `POST /api/v1/conversations/{id}/messages`, the asynchronous reply of a
//! bot that answered a message with `202 Accepted`. Authorized by the bot's own API key
//! (`bot.webhooks[].api_key`), not an admin key: a bot can speak only in conversations it
//! owns, and a message for one it does not own is refused with 409 and never reaches the
//! customer.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use super::AppState;
use super::error::ApiError;
use crate::bot::{BotReply, HandoffRequest};
use crate::conversation::{BotPost, ConversationError, send_to};

/// The body of a bot's asynchronous reply: the same fields as a synchronous one.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BotMessages {
    #[serde(default)]
    messages: Vec<String>,
    /// One message, for bots that send one at a time.
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    confidence: Option<f64>,
    #[serde(default)]
    intent: Option<String>,
    #[serde(default)]
    handoff: Option<HandoffRequest>,
    #[serde(default)]
    quick_replies: Vec<String>,
}

pub(super) fn bot_of(req: &HttpRequest, state: &AppState) -> Result<String, ApiError> {
    let given = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(ApiError::unauthorized)?;
    state
        .bots
        .bot_for_key(given)
        .map(str::to_string)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "a bot's API key is needed: Authorization: Bearer <bot.webhooks[].api_key>",
            )
        })
}

pub async fn post_messages(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: web::Json<BotMessages>,
) -> Result<HttpResponse, ApiError> {
    let bot = bot_of(&req, &state)?;
    let id = path.into_inner();
    let b = body.into_inner();
    let mut messages = b.messages;
    messages.extend(b.text);
    let reply = BotReply {
        messages,
        confidence: b.confidence,
        intent: b.intent,
        handoff: b.handoff,
        deferred: false,
        quick_replies: b.quick_replies,
    };
    reply.validate().map_err(ApiError::bad_request)?;
    if reply.messages.is_empty() && reply.handoff.is_none() {
        return Err(ApiError::bad_request(
            "nothing to do: give `messages` (or `text`) and/or `handoff`",
        ));
    }
    let seqs = post_reply(&state, bot, &id, reply).await?;
    Ok(HttpResponse::Created().json(json!({
        "conversation_id": id,
        "seqs": seqs,
    })))
}

/// Hands a bot's reply to its conversation; the errors every bot endpoint answers.
pub(super) async fn post_reply(
    state: &AppState,
    bot: String,
    id: &str,
    reply: BotReply,
) -> Result<Vec<u64>, ApiError> {
    let res = send_to(&state.directory, id, BotPost { bot, reply })
        .await
        .and_then(|r| r);
    match res {
        Ok(seqs) => Ok(seqs),
        Err(ConversationError::NotOwner) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_owner",
            "the bot does not own this conversation (it is queued for or held by people, \
             or served by another bot): nothing was sent",
        )),
        Err(ConversationError::NotFound(_)) => Err(ApiError::not_found(
            "unknown_conversation",
            format!("no conversation `{id}`"),
        )),
        Err(e @ ConversationError::Unavailable) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            e.to_string(),
        )),
        Err(e) => Err(ApiError::internal(e.to_string())),
    }
}
