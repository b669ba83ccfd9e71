//! rampart's load balancer: reads HAProxy configuration and proxies TCP sessions with
//! HAProxy's balancing, queueing, health-check and runtime-API behaviour.
//!
//! Pure logic (`config`, `balance`, `health`, `queue` decisions, `stats` rendering) is
//! kept apart from the tokio shell (`engine`, `proxy`, `checker`, `runtime_api`).

pub mod balance;
pub mod config;
pub mod fdpass;
pub mod health;
pub mod log;
pub mod state;
