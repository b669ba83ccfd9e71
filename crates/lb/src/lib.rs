//! rampart's load balancer: reads HAProxy configuration and proxies TCP sessions with
//! HAProxy's balancing, queueing, health-check and runtime-API behaviour.
//!
//! Pure logic (`config`, `balance`, `health`, `stats`, `runtime_api::commands` parsing)
//! is kept apart from the tokio shell (`engine`, `session`, `forward`, `checker`,
//! `runtime_api`, `daemon`). `unsafe` is denied except in the two syscall wrappers that
//! need it (`fdpass`: adopting received descriptors; `log`: poll/write on stdio).
#![deny(unsafe_code)]

pub mod balance;
pub mod checker;
pub mod config;
pub mod daemon;
pub mod engine;
#[allow(unsafe_code)]
pub mod fdpass;
pub mod forward;
pub mod health;
#[allow(unsafe_code)]
pub mod log;
pub mod pipes;
pub mod runtime_api;
pub mod session;
pub mod state;
pub mod stats;
