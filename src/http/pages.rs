//! The web pages the daemon serves itself: the chat widget (`/widget.js` and the modules it
//! loads) and the agent inbox (`/inbox`). The files under `web/` are embedded in the binary,
//! so one executable is all a business installs; there is no build step.
//!
//! Every answer carries an `ETag` (a hash of the content) with `Cache-Control: no-cache`, so
//! browsers revalidate cheaply and never run a stale script after an upgrade. Pages carry a
//! strict Content-Security-Policy (no inline scripts or styles). Widget files are loaded by
//! other sites, so they carry CORS headers for `widget.allowed_origins`.

use std::sync::OnceLock;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use sha2::{Digest, Sha256};

use super::error::ApiError;

/// What a file is, which decides its headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// An HTML page of the daemon's own origin: gets the Content-Security-Policy.
    Page,
    /// A script or stylesheet of the inbox, same origin only.
    Inbox,
    /// Part of the widget, loaded by customers' sites: gets CORS headers.
    Widget,
}

/// One embedded file.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    kind: Kind,
    body: &'static [u8],
}

const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const HTML: &str = "text/html; charset=utf-8";

macro_rules! asset {
    ($path:literal, $file:literal, $ct:expr, $kind:expr) => {
        Asset {
            path: $path,
            content_type: $ct,
            kind: $kind,
            body: include_bytes!(concat!("../../web/", $file)),
        }
    };
}

static ASSETS: &[Asset] = &[
    asset!("/widget.js", "widget.js", JS, Kind::Widget),
    asset!("/web/widget/app.js", "widget/app.js", JS, Kind::Widget),
    asset!(
        "/web/widget/client.js",
        "widget/client.js",
        JS,
        Kind::Widget
    ),
    asset!("/web/widget/store.js", "widget/store.js", JS, Kind::Widget),
    asset!(
        "/web/widget/strings.js",
        "widget/strings.js",
        JS,
        Kind::Widget
    ),
    asset!("/web/widget/view.js", "widget/view.js", JS, Kind::Widget),
    asset!(
        "/web/widget/widget.css",
        "widget/widget.css",
        CSS,
        Kind::Widget
    ),
    asset!("/inbox", "inbox/index.html", HTML, Kind::Page),
    asset!("/web/inbox/inbox.css", "inbox/inbox.css", CSS, Kind::Inbox),
    asset!("/web/inbox/main.js", "inbox/main.js", JS, Kind::Inbox),
    asset!(
        "/web/inbox/connection.js",
        "inbox/connection.js",
        JS,
        Kind::Inbox
    ),
    asset!("/web/inbox/state.js", "inbox/state.js", JS, Kind::Inbox),
    asset!("/web/inbox/lists.js", "inbox/lists.js", JS, Kind::Inbox),
    asset!(
        "/web/inbox/conversation.js",
        "inbox/conversation.js",
        JS,
        Kind::Inbox
    ),
    asset!("/web/inbox/package.js", "inbox/package.js", JS, Kind::Inbox),
    asset!("/web/inbox/alerts.js", "inbox/alerts.js", JS, Kind::Inbox),
    asset!("/web/inbox/dom.js", "inbox/dom.js", JS, Kind::Inbox),
    asset!(
        "/web/inbox/supervisor.js",
        "inbox/supervisor.js",
        JS,
        Kind::Inbox
    ),
];

/// The policy of the daemon's pages: scripts, styles and websockets from the daemon only.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; connect-src 'self'; img-src 'self' data:; media-src 'none'; \
     base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Which sites may load the widget; registered as app data next to the routes.
#[derive(Debug, Clone)]
pub struct WebSettings {
    /// `widget.allowed_origins` of the config; `*` allows any site.
    pub allowed_origins: Vec<String>,
}

impl WebSettings {
    /// The `Access-Control-Allow-Origin` value for a request, or None to send none (the
    /// browser then refuses to run the module on that site).
    fn allow_origin(&self, req: &HttpRequest) -> Option<String> {
        if self.allowed_origins.iter().any(|o| o == "*") {
            return Some("*".into());
        }
        let origin = req.headers().get(header::ORIGIN)?.to_str().ok()?;
        self.allowed_origins
            .iter()
            .any(|o| o.eq_ignore_ascii_case(origin))
            .then(|| origin.to_string())
    }
}

fn etags() -> &'static [String] {
    static ETAGS: OnceLock<Vec<String>> = OnceLock::new();
    ETAGS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|a| {
                let digest = Sha256::digest(a.body);
                format!("\"{}\"", hex::encode(&digest[..12]))
            })
            .collect()
    })
}

fn matches_etag(req: &HttpRequest, etag: &str) -> bool {
    req.headers()
        .get_all(header::IF_NONE_MATCH)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|t| t == etag || t == "*" || t.strip_prefix("W/") == Some(etag))
}

/// Mounts the pages: `/widget.js`, `/inbox` and `/web/...`.
pub fn configure(cfg: &mut web::ServiceConfig, settings: web::Data<WebSettings>) {
    cfg.app_data(settings)
        .route("/widget.js", web::get().to(serve))
        .route("/inbox", web::get().to(serve))
        .route("/web/{tail:.*}", web::get().to(serve));
}

/// Answers a GET for an embedded file, or a JSON 404.
async fn serve(
    req: HttpRequest,
    settings: web::Data<WebSettings>,
) -> Result<HttpResponse, ApiError> {
    let Some(index) = ASSETS.iter().position(|a| a.path == req.path()) else {
        return Err(ApiError::not_found(
            "not_found",
            format!("no file at {}", req.path()),
        ));
    };
    let asset = &ASSETS[index];
    let etag = etags()
        .get(index)
        .cloned()
        .unwrap_or_else(|| "\"0\"".to_string());
    let fresh = matches_etag(&req, &etag);
    let mut res = if fresh {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    res.insert_header((header::ETAG, etag))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"));
    match asset.kind {
        Kind::Page => {
            res.insert_header((header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY))
                .insert_header((header::REFERRER_POLICY, "no-referrer"))
                .insert_header((header::X_FRAME_OPTIONS, "DENY"));
        }
        Kind::Inbox => {}
        Kind::Widget => {
            res.insert_header(("cross-origin-resource-policy", "cross-origin"))
                .insert_header((header::VARY, "Origin"));
            if let Some(origin) = settings.allow_origin(&req) {
                res.insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, origin));
            }
        }
    }
    if fresh {
        return Ok(res.finish());
    }
    Ok(res.content_type(asset.content_type).body(asset.body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_path_is_unique_and_typed() {
        let mut seen = std::collections::HashSet::new();
        for a in ASSETS {
            assert!(seen.insert(a.path), "duplicate path {}", a.path);
            assert!(!a.body.is_empty(), "{} is empty", a.path);
            let ext_ok = match a.content_type {
                JS => a.path.ends_with(".js"),
                CSS => a.path.ends_with(".css"),
                _ => a.kind == Kind::Page,
            };
            assert!(ext_ok, "{} has content type {}", a.path, a.content_type);
        }
        assert_eq!(etags().len(), ASSETS.len());
    }

    #[test]
    fn pages_have_no_inline_script_or_style() {
        let handler = regex::Regex::new(r"\son[a-z]+\s*=").unwrap_or_else(|e| panic!("{e}"));
        for a in ASSETS.iter().filter(|a| a.kind == Kind::Page) {
            let text = String::from_utf8_lossy(a.body);
            for chunk in text.split("<script").skip(1) {
                assert!(chunk.contains("src="), "{}: inline script", a.path);
            }
            assert!(!text.contains("<style"), "{}: inline style", a.path);
            assert!(!text.contains(" style="), "{}: style attribute", a.path);
            assert!(!handler.is_match(&text), "{}: inline event handler", a.path);
        }
    }
}
