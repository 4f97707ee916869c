//! Ordered websocket writes for connection actors.
//!
//! actix's `ctx.wait` runs the most recently added future first, so two frames queued in one
//! handler would go out in reverse order. Instead, each connection actor keeps a [`WsWriter`]:
//! a queue of frames and at most one send in flight, driven by one small future spawned on the
//! actor while there is something to send. Frames leave in exactly the order they were queued.
//!
//! The writer lives inside the actor rather than in a task of its own with a channel in
//! front: an idle connection then holds no channel and no task, only an empty queue, which is
//! what lets tens of thousands of idle widget connections stay small (docs/benchmarks.md).
//!
//! A client too slow to keep up fills the queue and is disconnected; it resumes from its last
//! sequence number. When the actor stops, [`WsWriter::finish`] hands what is still queued (the
//! close frame last) to a task that sends it, so a closing connection says why.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use actix::{Actor, ActorFuture, AsyncContext, Context};
use actix_ws::{CloseReason, Session};

/// Frames queued per connection before the client counts as too slow.
const QUEUE: usize = 1024;

enum Outgoing {
    Text(String),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Close(Option<CloseReason>),
}

/// One frame on its way into actix-ws: it owns the session and gives it back when done (none
/// after a close, which consumes it).
type Sending = Pin<Box<dyn Future<Output = Option<Session>>>>;

/// The sending half of one websocket connection, owned by its actor.
pub struct WsWriter {
    /// The session, when no frame is in flight.
    session: Option<Session>,
    /// The frame in flight, holding the session.
    sending: Option<Sending>,
    queue: VecDeque<Outgoing>,
    /// A drain future is spawned on the actor.
    draining: bool,
    /// The connection is gone (or closed): nothing more can be sent.
    gone: bool,
}

/// An actor that writes to a websocket through a [`WsWriter`]: the drain future spawned on
/// the actor reaches the writer through it.
pub trait WsActor: Actor<Context = Context<Self>> {
    /// The actor's writer.
    fn ws_writer(&mut self) -> &mut WsWriter;
}

impl WsWriter {
    /// Takes over the session actix-ws handed out with the connection; nothing else should
    /// write to it, or frames could interleave out of order.
    pub fn new(session: Session) -> WsWriter {
        WsWriter {
            session: Some(session),
            sending: None,
            queue: VecDeque::new(),
            draining: false,
            gone: false,
        }
    }

    /// Queues a text frame; false when the connection is gone or too far behind.
    pub fn text<A: WsActor>(&mut self, ctx: &mut Context<A>, text: String) -> bool {
        self.push(ctx, Outgoing::Text(text))
    }

    /// Queues a heartbeat ping; false when the connection is gone or too far behind.
    pub fn ping<A: WsActor>(&mut self, ctx: &mut Context<A>, payload: &[u8]) -> bool {
        self.push(ctx, Outgoing::Ping(payload.to_vec()))
    }

    /// Queues the answer to a client's ping; false when the connection is gone or too far
    /// behind.
    pub fn pong<A: WsActor>(&mut self, ctx: &mut Context<A>, payload: &[u8]) -> bool {
        self.push(ctx, Outgoing::Pong(payload.to_vec()))
    }

    /// Queues the close frame after everything already queued.
    pub fn close<A: WsActor>(&mut self, ctx: &mut Context<A>, reason: Option<CloseReason>) {
        self.push(ctx, Outgoing::Close(reason));
    }

    /// Sends what is still queued from a task of its own; for the actor's `stopped`, after
    /// which its spawned futures no longer run.
    pub fn finish(&mut self) {
        if self.gone || (self.sending.is_none() && self.queue.is_empty()) {
            return;
        }
        let mut rest = WsWriter {
            session: self.session.take(),
            sending: self.sending.take(),
            queue: std::mem::take(&mut self.queue),
            draining: true,
            gone: false,
        };
        self.gone = true;
        actix_rt::spawn(async move {
            std::future::poll_fn(|cx| rest.poll_drain(cx)).await;
        });
    }

    fn push<A: WsActor>(&mut self, ctx: &mut Context<A>, out: Outgoing) -> bool {
        if self.gone || self.queue.len() >= QUEUE {
            return false;
        }
        self.queue.push_back(out);
        if !self.draining {
            self.draining = true;
            ctx.spawn(Drain);
        }
        true
    }

    /// Sends queued frames one after another until the queue is empty (ready) or actix-ws's
    /// own buffer is full (pending: its writer wakes this task again).
    fn poll_drain(&mut self, cx: &mut TaskContext<'_>) -> Poll<()> {
        loop {
            if let Some(sending) = self.sending.as_mut() {
                let Poll::Ready(session) = sending.as_mut().poll(cx) else {
                    return Poll::Pending;
                };
                self.sending = None;
                match session {
                    Some(s) => self.session = Some(s),
                    None => {
                        // Closed by us or by the peer: drop what is left.
                        self.gone = true;
                        self.queue.clear();
                    }
                }
            }
            let Some(session) = self.session.take() else {
                self.draining = false;
                return Poll::Ready(());
            };
            let Some(out) = self.queue.pop_front() else {
                self.session = Some(session);
                self.draining = false;
                return Poll::Ready(());
            };
            self.sending = Some(Box::pin(send(session, out)));
        }
    }
}

/// Sends one frame; the session back unless the connection is gone or was closed.
async fn send(mut session: Session, out: Outgoing) -> Option<Session> {
    let sent = match out {
        Outgoing::Text(t) => session.text(t).await,
        Outgoing::Ping(p) => session.ping(&p).await,
        Outgoing::Pong(p) => session.pong(&p).await,
        Outgoing::Close(reason) => {
            let _ = session.close(reason).await;
            return None;
        }
    };
    sent.ok().map(|()| session)
}

/// The future that drains an actor's writer; spawned only while there is something to send.
struct Drain;

impl<A: WsActor> ActorFuture<A> for Drain {
    type Output = ();

    fn poll(
        self: Pin<&mut Self>,
        act: &mut A,
        _ctx: &mut A::Context,
        task: &mut TaskContext<'_>,
    ) -> Poll<()> {
        act.ws_writer().poll_drain(task)
    }
}
