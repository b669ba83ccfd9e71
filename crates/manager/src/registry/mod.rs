//! The master's durable agent registry.
//!
//! It is shaped as a deterministic state machine (`state`) fed by an ordered command log, with a
//! thin durable shell (`store`) that group-commits the log and the resulting rows to redb. The log
//! is what a worker replica (and later a Raft follower) replays to reach the same state.

pub mod state;
pub mod store;

pub use state::{
    Agent, AgentReport, AgentStatus, Command, ForcePolicy, Outcome, RejectReason, State,
};
pub use store::{Registry, RegistryError, RegistryOptions, Snapshot};
