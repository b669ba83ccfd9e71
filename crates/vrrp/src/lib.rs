#![forbid(unsafe_code)]
//! `rampart vrrp`: a virtual IP that fails over between balancers, reading keepalived.conf.
//!
//! Pure parts: `config` (keepalived.conf → validated model), `packet` (VRRP v2/v3 codec),
//! `state` (the RFC 5798 state machine driven by events and a clock it is given).

pub mod config;
pub mod packet;
pub mod state;
