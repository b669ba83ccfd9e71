//! `rampart agent` and `rampart simulate`: agents that enroll, read log sources, spool every
//! event on disk with a sequence number and report it to a manager until acknowledged.
//!
//! Pure cores (`config`, `spool::record`) sit beside thin I/O shells (`spool`, `source`).
#![forbid(unsafe_code)]

pub mod config;
pub mod enroll;
pub mod event;
pub mod failover;
pub mod keys;
pub mod session;
pub mod simulate;
pub mod source;
pub mod spool;

/// What agents report as their version (Wazuh agents say `Wazuh vX.Y.Z`).
pub const VERSION_STRING: &str = concat!("rampart v", env!("CARGO_PKG_VERSION"));
pub mod cli;
pub mod daemon;
