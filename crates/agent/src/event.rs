//! What flows from sources through the spool to the manager.

use serde::{Deserialize, Serialize};

/// Longest line kept whole, as Wazuh's OS_MAXSTR; longer lines are cut at this length.
pub const MAX_LOG: usize = 65536;

/// Where a file source stands: the file's identity and the offset just past the last line read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SourcePos {
    pub dev: u64,
    pub ino: u64,
    pub offset: u64,
}

/// One log line read from a source, before it has a sequence number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Agent wall clock when the line was read, unix milliseconds.
    pub ts_ms: i64,
    /// `<localfile><location>` as configured, or `"stdin"`.
    pub location: String,
    /// The line without its newline, at most [`MAX_LOG`] bytes.
    pub log: Vec<u8>,
    /// For file sources: the position after this line, so a restart resumes exactly there.
    pub pos: Option<SourcePos>,
}

/// An event with the per-agent sequence number the spool gave it (1, 2, 3…).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub seq: u64,
    pub event: Event,
}
