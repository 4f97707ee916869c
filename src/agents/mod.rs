//! Agents: one `AgentSession` actor per websocket, the registry that finds an agent's open
//! sessions, token authentication, and the protocol types.

pub mod auth;
pub mod protocol;
pub mod registry;
pub mod session;

pub use registry::AgentRegistry;
