//! `echo`: clients send widget-sized message frames to the baseline server at a paced rate
//! (or closed loop); latency is send to echo. The baseline answers each connection's frames
//! in order, so echoes are matched to sends by order and checked by their `client_id`.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::client::{self, Read, Ws};
use crate::scenario::{Ctx, Outcome, Pacer, faq_question, open_many};

pub async fn run(ctx: Arc<Ctx>) -> anyhow::Result<Outcome> {
    let n = ctx.args.customers;
    let url = ctx.echo_url();
    let conns = open_many(&ctx, n, |_| client::connect(&url)).await;
    let t0 = Instant::now() + Duration::from_millis(50);
    let phase_end = t0 + Duration::from_secs_f64(ctx.args.duration);
    let drain_end = phase_end + Duration::from_secs_f64(ctx.args.drain);
    ctx.window_start();
    let mut tasks = Vec::new();
    for (i, ws) in conns.into_iter().enumerate() {
        let Some(ws) = ws else { continue };
        let ctx = ctx.clone();
        tasks.push(tokio::spawn(async move {
            let mut pacer = Pacer::new(&ctx.args, i, n, t0);
            client_loop(&ctx, i, ws, &mut pacer, phase_end, drain_end).await;
        }));
    }
    for t in tasks {
        if t.await.is_err() {
            ctx.metrics.count("unexpected");
        }
    }
    ctx.window_end();
    let window = ctx.args.duration;
    Ok(Outcome {
        throughput: ctx.metrics.get("echoed_in_window") as f64 / window,
        offered: Some(ctx.metrics.get("sent_in_window") as f64 / window),
        unit: "echoes/s",
        window_s: window,
        extra: BTreeMap::new(),
    })
}

async fn client_loop(
    ctx: &Ctx,
    i: usize,
    mut ws: Ws,
    pacer: &mut Pacer,
    phase_end: Instant,
    drain_end: Instant,
) {
    let m = &ctx.metrics;
    // (client_id, when it left), oldest first.
    let mut pending: VecDeque<(String, Instant)> = VecDeque::new();
    let mut k: u64 = 0;
    loop {
        let now = Instant::now();
        let sending = now < phase_end;
        if now >= drain_end || (!sending && pending.is_empty()) {
            break;
        }
        let due = if sending {
            pacer.due(pending.len())
        } else {
            None
        };
        let wake = if sending { phase_end } else { drain_end };
        tokio::select! {
            r = client::read(&mut ws) => match r {
                Read::Frame(f) => {
                    let received = Instant::now();
                    match pending.pop_front() {
                        Some((id, at)) if f.client_id.as_deref() == Some(id.as_str()) => {
                            m.latency("send -> echo", received - at);
                            m.count("echoed");
                            if received <= phase_end {
                                m.count("echoed_in_window");
                            }
                        }
                        _ => m.count("mismatched"),
                    }
                }
                Read::Garbage => m.count("unexpected"),
                Read::Closed => {
                    m.count("disconnected");
                    break;
                }
            },
            _ = tokio::time::sleep_until(due.unwrap_or(wake)), if due.is_some() => {
                let scheduled = pacer.sent();
                let id = format!("e{i}-{k}");
                k += 1;
                let text = faq_question(i, k as usize);
                let at = Instant::now();
                m.latency("generator send lag", at.saturating_duration_since(scheduled));
                if client::send(&mut ws, client::widget_message(text, &id)).await.is_err() {
                    m.count("disconnected");
                    break;
                }
                m.count("sent");
                if scheduled < phase_end {
                    m.count("sent_in_window");
                }
                pending.push_back((id, at));
            },
            _ = tokio::time::sleep_until(wake) => {}
        }
    }
    m.add("unanswered", pending.len() as u64);
    client::close(ws).await;
}
