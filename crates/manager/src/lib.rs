//! `rampart manager`: one node of a Wazuh-style manager cluster (master or worker).
//!
//! Pure cores (`config`, `registry::state`, `authd`, `integrity::meta`) sit beside thin I/O
//! shells (`registry::store`, `integrity::{scan,apply}`, `node`).
#![forbid(unsafe_code)]

pub mod archives;
pub mod authd;
pub mod cli;
pub mod clusterlog;
pub mod config;
pub mod helper;
pub mod home;
pub mod integrity;
pub mod node;
pub mod registry;
