//! The websocket client side shared by every scenario: connecting with a time limit,
//! sending JSON text frames, and reading the daemon's frames into one lenient struct.

use std::time::Duration;

use anyhow::Context;
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Longest a TCP connect plus websocket handshake may take before it counts as failed.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Opens a websocket. Nagle is off (a chat frame must leave at once) and the read buffer is
/// small, so ten thousand idle connections cost the generator little memory.
pub async fn connect(url: &str) -> anyhow::Result<Ws> {
    let config = WebSocketConfig::default()
        .read_buffer_size(8 * 1024)
        .write_buffer_size(0);
    let connecting = tokio_tungstenite::connect_async_with_config(url, Some(config), true);
    let (ws, _) = tokio::time::timeout(CONNECT_TIMEOUT, connecting)
        .await
        .context("connect timed out")?
        .with_context(|| format!("cannot connect to {url}"))?;
    Ok(ws)
}

/// Sends one text frame.
pub async fn send(ws: &mut Ws, text: String) -> anyhow::Result<()> {
    ws.send(Message::text(text)).await.context("send failed")
}

/// A frame from the daemon, with the fields any scenario looks at. Frames of both protocols
/// fit: fields a frame does not have stay empty, unknown fields are ignored.
#[derive(Debug, Default, Deserialize)]
pub struct Frame {
    #[serde(rename = "type")]
    pub kind: String,
    pub seq: Option<u64>,
    pub role: Option<String>,
    pub text: Option<String>,
    pub client_id: Option<String>,
    pub conversation_id: Option<String>,
    pub token: Option<String>,
    pub duplicate: Option<bool>,
    pub code: Option<String>,
    pub state: Option<String>,
    pub request: Option<String>,
    /// An error's text on the widget, a transcript entry in an agent's `message` push.
    pub message: Option<Value>,
}

/// What reading the next frame gave.
pub enum Read {
    Frame(Box<Frame>),
    /// A text frame that is not one of ours (not JSON, or no `type`).
    Garbage,
    /// The connection closed, failed, or was closed by the daemon.
    Closed,
}

/// The next text frame; pings are answered by tungstenite as part of reading.
/// Cancel-safe: it can be a branch of `select!`.
pub async fn read(ws: &mut Ws) -> Read {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => {
                return match serde_json::from_str::<Frame>(t.as_str()) {
                    Ok(f) => Read::Frame(Box::new(f)),
                    Err(_) => Read::Garbage,
                };
            }
            Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return Read::Closed,
            Some(Ok(_)) => continue,
        }
    }
}

/// Reads until a frame of `kind` arrives, within `wait`; frames of other kinds are returned
/// to `other` so the caller can still account for them.
pub async fn expect(
    ws: &mut Ws,
    kind: &str,
    wait: Duration,
    mut other: impl FnMut(Frame),
) -> anyhow::Result<Frame> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, read(ws)).await {
            Err(_) => anyhow::bail!("no `{kind}` frame within {wait:?}"),
            Ok(Read::Closed) => anyhow::bail!("closed while waiting for `{kind}`"),
            Ok(Read::Garbage) => anyhow::bail!("a frame that is not JSON"),
            Ok(Read::Frame(f)) if f.kind == kind => return Ok(*f),
            Ok(Read::Frame(f)) if f.kind == "error" => {
                anyhow::bail!(
                    "error `{}` while waiting for `{kind}`",
                    f.code.as_deref().unwrap_or("?")
                )
            }
            Ok(Read::Frame(f)) => other(*f),
        }
    }
}

/// Closes politely but without waiting long: the scenario is over for this connection.
pub async fn close(mut ws: Ws) {
    let _ = tokio::time::timeout(Duration::from_millis(500), ws.close(None)).await;
}

/// The websocket base (`ws://host:port`) of a target given as `http://`, `ws://` or
/// `host:port`, without a trailing slash or path.
pub fn ws_base(target: &str) -> String {
    let t = target.trim().trim_end_matches('/');
    let rest = t
        .strip_prefix("http://")
        .or_else(|| t.strip_prefix("ws://"))
        .unwrap_or(t);
    let host = rest.split('/').next().unwrap_or(rest);
    format!("ws://{host}")
}

/// The text of an agent `message` push or an error frame's `message`.
pub fn nested_text(v: &Option<Value>) -> Option<&str> {
    match v {
        Some(Value::String(s)) => Some(s),
        Some(Value::Object(o)) => o.get("text").and_then(Value::as_str),
        _ => None,
    }
}

/// Widget frames we send; written by hand with serde_json so the text is escaped properly.
pub fn widget_hello(token: Option<&str>, last_seq: u64, name: &str) -> String {
    let mut v = serde_json::json!({"type": "hello", "name": name});
    if let Some(t) = token {
        v["token"] = Value::from(t);
        v["last_seq"] = Value::from(last_seq);
    }
    v.to_string()
}

pub fn widget_message(text: &str, client_id: &str) -> String {
    serde_json::json!({"type": "message", "text": text, "client_id": client_id}).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_become_websocket_bases() {
        assert_eq!(ws_base("http://127.0.0.1:8080"), "ws://127.0.0.1:8080");
        assert_eq!(ws_base("ws://127.0.0.1:8080/"), "ws://127.0.0.1:8080");
        assert_eq!(ws_base("127.0.0.1:9/widget/ws"), "ws://127.0.0.1:9");
    }

    #[test]
    fn frames_of_both_protocols_parse() {
        let w: Frame = serde_json::from_str(
            r#"{"type":"message","seq":3,"role":"bot","text":"hi","sent_at_ms":1}"#,
        )
        .expect("widget message");
        assert_eq!((w.kind.as_str(), w.seq), ("message", Some(3)));
        let e: Frame =
            serde_json::from_str(r#"{"type":"error","code":"bad_frame","message":"no"}"#)
                .expect("error");
        assert_eq!(nested_text(&e.message), Some("no"));
        let a: Frame = serde_json::from_str(
            r#"{"type":"message","conversation_id":"c","message":{"seq":6,"role":"customer","text":"x"}}"#,
        )
        .expect("agent message");
        assert_eq!(nested_text(&a.message), Some("x"));
    }
}
