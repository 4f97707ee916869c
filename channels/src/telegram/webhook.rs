//! Webhook mode: Telegram POSTs each update to `/webhooks/telegram` with the secret given to
//! `setWebhook` in `X-Telegram-Bot-Api-Secret-Token`. The answer is 200 only once the message
//! is journaled; anything else makes Telegram deliver the update again later.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

use super::TelegramChannel;
use super::update::{self, Parsed};
use crate::InboundError;

/// Where Telegram is told to send updates.
pub const PATH: &str = "/webhooks/telegram";

/// The header carrying the webhook secret.
pub const SECRET_HEADER: &str = "X-Telegram-Bot-Api-Secret-Token";

/// Mounts the channel's webhook endpoint.
pub fn configure(cfg: &mut web::ServiceConfig, channel: TelegramChannel) {
    cfg.service(
        web::resource(PATH)
            .app_data(web::Data::new(channel))
            .route(web::post().to(update_posted)),
    );
}

fn error(status: StatusCode, code: &str, message: impl Into<String>) -> HttpResponse {
    HttpResponse::build(status).json(json!({"error": {"code": code, "message": message.into()}}))
}

/// True when `given` is the configured secret, compared without early exit.
pub fn secret_matches(given: Option<&[u8]>, secret: &[u8]) -> bool {
    given.is_some_and(|g| {
        g.len() == secret.len() && g.iter().zip(secret).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    })
}

async fn update_posted(
    req: HttpRequest,
    body: web::Bytes,
    channel: web::Data<TelegramChannel>,
) -> HttpResponse {
    let Some(secret) = channel.webhook_secret.as_deref() else {
        return error(
            StatusCode::NOT_FOUND,
            "not_found",
            "the Telegram channel does not use a webhook",
        );
    };
    let given = req.headers().get(SECRET_HEADER).map(|v| v.as_bytes());
    if !secret_matches(given, secret.as_bytes()) {
        tracing::warn!("Telegram webhook POST with a wrong secret refused");
        return error(
            StatusCode::UNAUTHORIZED,
            "bad_secret",
            format!("{SECRET_HEADER} is missing or wrong"),
        );
    }
    let (update_id, parsed) = match update::parse_bytes(&body) {
        Ok(p) => p,
        Err(e) => {
            // An update from Telegram (the secret matched) that this daemon cannot read is
            // acknowledged and skipped, as polling does: refusing it would make Telegram
            // send it again and again. A body that is not an update at all is refused.
            let id = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| update::update_id(&v));
            return match id {
                Some(id) => {
                    tracing::warn!(update_id = id, error = %e, "Telegram update skipped");
                    HttpResponse::Ok().json(json!({"update_id": id, "skipped": "unreadable"}))
                }
                None => error(StatusCode::BAD_REQUEST, "bad_request", e.to_string()),
            };
        }
    };
    let inbound = match parsed {
        Parsed::Message(m) => *m,
        Parsed::Skipped(why) => {
            return HttpResponse::Ok().json(json!({"update_id": update_id, "skipped": why}));
        }
    };
    let result = channel.core.submit(inbound).await;
    match result {
        Ok(ack) => HttpResponse::Ok().json(json!({
            "update_id": update_id,
            "stored": !ack.duplicate,
            "duplicate": ack.duplicate,
        })),
        Err(e) => {
            tracing::error!(update_id, error = %e, "Telegram update not stored");
            let status = match e {
                InboundError::Refused(_) => StatusCode::UNPROCESSABLE_ENTITY,
                _ => StatusCode::SERVICE_UNAVAILABLE,
            };
            error(status, "not_stored", e.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_secret_matches() {
        let s = b"0123456789abcdef";
        assert!(secret_matches(Some(s), s));
        assert!(!secret_matches(Some(b"0123456789abcdeF"), s));
        assert!(!secret_matches(Some(b"0123456789abcde"), s));
        assert!(!secret_matches(Some(b""), s));
        assert!(!secret_matches(None, s));
    }
}
