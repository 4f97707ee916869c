//! End-to-end tests: a real `handoffd` process on loopback, driven over its real sockets.
//! One test binary keeps link time down.

mod bad_input;
mod bots;
mod browser;
mod burst;
mod cli;
mod discord;
mod email;
mod fallbacks;
mod handoff;
mod lifecycle;
mod load_smoke;
mod mail_support;
mod meta;
mod restart;
mod resume;
mod sla;
mod strategies;
mod support;
mod telegram;
mod triggers;
mod web;
