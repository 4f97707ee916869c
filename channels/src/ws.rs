//! Ordered websocket writes for connection actors.
//!
//! actix's `ctx.wait` runs the most recently added future first, so two frames queued in one
//! handler would go out in reverse order. Instead, each connection owns one writer task fed by
//! a bounded channel: frames leave in exactly the order they were queued. A client too slow to
//! keep up fills the channel and is disconnected; it resumes from its last sequence number.

use actix_ws::{CloseReason, Session};
use tokio::sync::mpsc;

/// Frames queued per connection before the client counts as too slow.
const QUEUE: usize = 1024;

enum Outgoing {
    Text(String),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Close(Option<CloseReason>),
}

/// The sending half of a connection; cheap to clone.
#[derive(Clone)]
pub struct WsWriter {
    tx: mpsc::Sender<Outgoing>,
}

impl WsWriter {
    /// Starts the writer task on the current arbiter.
    pub fn spawn(session: Session) -> WsWriter {
        let (tx, mut rx) = mpsc::channel::<Outgoing>(QUEUE);
        actix_rt::spawn(async move {
            let mut session = session;
            while let Some(out) = rx.recv().await {
                let ok = match out {
                    Outgoing::Text(t) => session.text(t).await.is_ok(),
                    Outgoing::Ping(p) => session.ping(&p).await.is_ok(),
                    Outgoing::Pong(p) => session.pong(&p).await.is_ok(),
                    Outgoing::Close(reason) => {
                        let _ = session.close(reason).await;
                        return;
                    }
                };
                if !ok {
                    return;
                }
            }
        });
        WsWriter { tx }
    }

    /// Queues a text frame; false when the connection is gone or too far behind.
    pub fn text(&self, text: String) -> bool {
        self.tx.try_send(Outgoing::Text(text)).is_ok()
    }

    pub fn ping(&self, payload: &[u8]) -> bool {
        self.tx.try_send(Outgoing::Ping(payload.to_vec())).is_ok()
    }

    pub fn pong(&self, payload: &[u8]) -> bool {
        self.tx.try_send(Outgoing::Pong(payload.to_vec())).is_ok()
    }

    /// Queues the close frame after everything already queued.
    pub fn close(&self, reason: Option<CloseReason>) {
        let _ = self.tx.try_send(Outgoing::Close(reason));
    }
}
