//! The pages the daemon serves (`/widget.js`, `/web/...`, `/inbox`): content types, caching,
//! the Content-Security-Policy, CORS for the widget's allowed origins; and the agent
//! protocol's `get_queue`, which the inbox's queue list uses.

use serde_json::json;

use crate::support::*;

const SHOP: &str = "http://shop.example.test";

async fn get(url: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut req = reqwest::Client::new().get(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.expect("GET")
}

fn header(r: &reqwest::Response, name: &str) -> String {
    r.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

#[tokio::test]
async fn pages_have_types_caching_csp_and_cors_for_allowed_origins_only() {
    let o = Options {
        allowed_origins: vec![SHOP.into()],
        ..Options::default()
    };
    let (dir, _) = Daemon::prepare(&o, &[]);
    let d = Daemon::start(dir);

    // The widget loader: JavaScript, revalidated by ETag, CORS for the shop only.
    let r = get(&d.url("/widget.js"), &[("origin", SHOP)]).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "content-type"), "text/javascript; charset=utf-8");
    assert_eq!(header(&r, "cache-control"), "no-cache");
    assert_eq!(header(&r, "access-control-allow-origin"), SHOP);
    assert_eq!(header(&r, "x-content-type-options"), "nosniff");
    let etag = header(&r, "etag");
    assert!(etag.starts_with('"') && etag.len() > 10, "{etag}");
    let body = r.text().await.expect("body");
    assert!(body.contains("/web/widget/app.js"), "{body}");

    let again = get(&d.url("/widget.js"), &[("if-none-match", &etag)]).await;
    assert_eq!(again.status(), 304);
    assert_eq!(header(&again, "etag"), etag);
    assert!(again.text().await.expect("body").is_empty());

    let other = get(
        &d.url("/web/widget/app.js"),
        &[("origin", "http://evil.example.test")],
    )
    .await;
    assert_eq!(other.status(), 200);
    assert_eq!(header(&other, "access-control-allow-origin"), "");

    let css = get(&d.url("/web/widget/widget.css"), &[]).await;
    assert_eq!(header(&css, "content-type"), "text/css; charset=utf-8");

    // The inbox page: HTML with a strict policy and no inline script.
    let r = get(&d.url("/inbox"), &[]).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "content-type"), "text/html; charset=utf-8");
    let csp = header(&r, "content-security-policy");
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(!csp.contains("unsafe"), "{csp}");
    let html = r.text().await.expect("body");
    assert!(
        html.contains(r#"<script type="module" src="/web/inbox/main.js">"#),
        "{html}"
    );

    // Unknown files are a JSON 404.
    let r = get(&d.url("/web/inbox/nope.js"), &[]).await;
    assert_eq!(r.status(), 404);
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(body["error"]["code"], "not_found");

    // The websocket keeps refusing origins that are not listed.
    let refused = get(
        &d.url("/widget/ws"),
        &[
            ("origin", "http://evil.example.test"),
            ("connection", "upgrade"),
            ("upgrade", "websocket"),
            ("sec-websocket-version", "13"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ],
    )
    .await;
    assert_eq!(refused.status(), 403);
}

#[tokio::test]
async fn get_queue_lists_what_waits_for_the_agents_teams() {
    let o = Options {
        offer_timeout_secs: 30,
        ..Options::default()
    };
    let (dir, tokens) = Daemon::prepare(&o, &[("alice", "support", 1), ("bob", "billing", 1)]);
    let d = Daemon::start(dir);
    let (mut alice, _) = d.agent(&tokens[0]).await;
    let (mut bob, _) = d.agent(&tokens[1]).await;

    alice.send(json!({"type": "get_queue"})).await;
    let empty = alice.expect("queue").await;
    assert_eq!(empty["entries"], json!([]));

    let mut v = Visitor::new(&d).await;
    let (conv, _) = v.say("I want to talk to a human please").await;
    let offer = alice.expect("offer").await;
    assert_eq!(offer["conversation_id"], json!(conv));

    alice.send(json!({"type": "get_queue"})).await;
    let q = alice.expect_skipping("queue", &["typing"]).await;
    let entries = q["entries"].as_array().expect("entries");
    assert_eq!(entries.len(), 1, "{q}");
    let e = &entries[0];
    assert_eq!(e["conversation_id"], json!(conv));
    assert_eq!(e["team"], "support");
    assert_eq!(e["position"], 1);
    assert_eq!(e["offered_to"], "alice");
    assert_eq!(e["channel"], "widget");
    assert_eq!(e["contact"]["name"], "Test Customer");
    assert!(e["enqueued_at_ms"].as_u64().unwrap_or(0) > 0, "{e}");

    // Bob is in another team: the support queue is not his to see.
    bob.send(json!({"type": "get_queue"})).await;
    let other = bob.expect("queue").await;
    assert_eq!(other["entries"], json!([]));
}
