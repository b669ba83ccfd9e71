//! rampart's load balancer: reads HAProxy configuration and proxies TCP sessions with
//! HAProxy's balancing, queueing, health-check and runtime-API behaviour.
//!
//! Pure logic (`config`, `balance`, `health`, `queue` decisions, `stats` rendering) is
//! kept apart from the tokio shell (`engine`, `proxy`, `checker`, `runtime_api`).

pub mod balance;
pub mod checker;
pub mod config;
pub mod daemon;
pub mod engine;
pub mod fdpass;
pub mod forward;
pub mod health;
pub mod log;
pub mod pipes;
pub mod runtime_api;
pub mod session;
pub mod state;
pub mod stats;
