//! The HTTP face of the daemon (actix-web): websocket endpoints for widgets and agents, the
//! REST API, health checks, and the widget and inbox pages. Every error is JSON with a 4xx or 5xx status.

pub mod api;
pub mod bot_api;
pub mod botframework_api;
pub mod error;
pub mod listen;
pub mod pages;

use std::collections::HashSet;
use std::sync::Arc;

use actix::Addr;
use actix_web::{HttpRequest, HttpResponse, web};
use handoffd_channels::meta::{MetaChannel, webhook};
use handoffd_channels::widget::{self, WidgetChannel};
use serde_json::json;

use crate::agents::session::{self, AgentEndpoint};
use crate::conversation::{Directory, LiveCount};
use crate::router::{GetStats, Router};
use crate::store::Store;
use error::ApiError;

/// Shared state of the HTTP handlers.
pub struct AppState {
    pub store: Store,
    pub router: Addr<Router>,
    pub directory: Addr<Directory>,
    pub api_keys: Vec<String>,
    pub teams: Arc<HashSet<String>>,
    pub default_capacity: u32,
    /// The running bots: their API keys authorize asynchronous replies.
    pub bots: Arc<crate::bot::Bots>,
    /// The daemon's clock, when `debug.clock_control` lets tests move it.
    pub clock: Option<crate::clock::Clock>,
}

/// Mounts every route; used by the server and nothing else.
pub fn configure(
    cfg: &mut web::ServiceConfig,
    state: web::Data<AppState>,
    widget: web::Data<WidgetChannel>,
    agents: web::Data<AgentEndpoint>,
    web_pages: web::Data<pages::WebSettings>,
    meta: Vec<MetaChannel>,
    max_body: usize,
) {
    // Meta's webhook endpoints (`/webhooks/<platform>`), for the channels that run.
    for channel in meta {
        webhook::configure(cfg, channel);
    }
    cfg.app_data(state)
        .app_data(widget)
        .app_data(agents)
        .app_data(
            web::JsonConfig::default()
                .limit(max_body)
                .error_handler(|e, _| ApiError::bad_request(e.to_string()).into()),
        )
        .app_data(
            web::QueryConfig::default()
                .error_handler(|e, _| ApiError::bad_request(e.to_string()).into()),
        )
        .app_data(
            web::PathConfig::default()
                .error_handler(|e, _| ApiError::bad_request(e.to_string()).into()),
        )
        .app_data(web::PayloadConfig::default().limit(max_body))
        .route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz))
        .route("/metrics", web::get().to(api::metrics))
        .route("/widget/ws", web::get().to(widget::ws_route))
        .route("/agent/ws", web::get().to(session::ws_route))
        .configure(|cfg| pages::configure(cfg, web_pages))
        .route(
            "/v3/conversations/{id}/activities",
            web::post().to(botframework_api::send_to_conversation),
        )
        .route(
            "/v3/conversations/{id}/activities/{activity}",
            web::post().to(botframework_api::reply_to_activity),
        )
        .service(
            web::scope("/api/v1")
                .route("/conversations", web::get().to(api::list_conversations))
                .route("/conversations/{id}", web::get().to(api::get_conversation))
                .route(
                    "/conversations/{id}/attributes",
                    web::put().to(api::set_attributes),
                )
                .route(
                    "/conversations/{id}/messages",
                    web::post().to(bot_api::post_messages),
                )
                .route("/queue", web::get().to(api::queue))
                .route("/agents", web::get().to(api::list_agents))
                .route("/agents", web::post().to(api::add_agent))
                .route("/debug/clock", web::post().to(api::move_clock)),
        )
        .default_service(web::to(not_found));
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// Ready when the store answers a read and the router answers a message.
async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    if let Some(reason) = state.store.write_failure() {
        return Err(ApiError::new(
            actix_web::http::StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            reason,
        ));
    }
    state.store.agents().map_err(|e| {
        ApiError::new(
            actix_web::http::StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            e.to_string(),
        )
    })?;
    let stats = state.router.send(GetStats).await.map_err(|_| {
        ApiError::new(
            actix_web::http::StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            "the router is not running",
        )
    })?;
    let live = state.directory.send(LiveCount).await.map_err(|_| {
        ApiError::new(
            actix_web::http::StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            "the conversation directory is not running",
        )
    })?;
    let outbox_pending = state.store.outbox().map(|o| o.len()).unwrap_or(0);
    Ok(HttpResponse::Ok().json(json!({
        "status": "ready",
        "router": stats,
        "conversations_live": live,
        "outbox_pending": outbox_pending,
    })))
}

async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::not_found(
        "not_found",
        format!("no route for {} {}", req.method(), req.path()),
    ))
}
