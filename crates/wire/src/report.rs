//! The agent reporting protocol (TCP 1514), shared by `rampart agent` and the manager.
//!
//! A connection starts with a plaintext preface naming the agent (`RMPA`, version, agent id),
//! so the manager can pick that agent's key; then the usual sealed handshake with the agent's
//! key as the pre-shared key. An unknown id gets a plaintext rejection, a wrong key fails the
//! key confirmation. After that, messages (see the command constants):
//!
//! - agent → manager `startup` (request, [`Startup`]) → [`Welcome`]; no event flows before it.
//! - agent → manager `events` (notice, [`encode_events`]): consecutive seqs, increasing.
//! - manager → agent `ack` (notice, [`Ack`]): every seq ≤ `upto` is durably stored.
//! - manager → agent `resume` (notice, [`Resume`]) when the welcome could not say yet where
//!   to resume (the agent's previous node had to be asked first).
//! - agent → manager `keepalive` (request, [`KeepAlive`]) every `notify_time`.
//! - manager → agent `reconnect` (notice, [`Reconnect`]): close and go through failover again.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub const MAGIC: &[u8; 4] = b"RMPA";
pub const VERSION: u8 = 1;
pub const PREFACE_LEN: usize = 9;

pub const STARTUP: &str = "startup";
pub const EVENTS: &str = "events";
pub const ACK: &str = "ack";
pub const RESUME: &str = "resume";
pub const KEEPALIVE: &str = "keepalive";
pub const RECONNECT: &str = "reconnect";

/// Longest log line carried (Wazuh's OS_MAXSTR).
pub const MAX_LOG: usize = 65536;
/// Longest `location`.
pub const MAX_LOCATION: usize = 4096;
/// Read buffer of an agent session: most messages are a few KiB and most sessions are idle.
pub const READ_BUFFER: usize = 4 << 10;
/// Largest message of an agent session: a batch is about 512 KiB plus one record.
pub const MAX_MESSAGE: usize = 4 << 20;
/// Messages of one agent session read ahead of the manager, at most.
pub const INCOMING_QUEUE: usize = 8;
/// Most events in one `events` message.
pub const MAX_BATCH: usize = 65536;

pub fn preface(agent_id: u32) -> [u8; PREFACE_LEN] {
    let mut p = [0u8; PREFACE_LEN];
    p[..4].copy_from_slice(MAGIC);
    p[4] = VERSION;
    p[5..].copy_from_slice(&agent_id.to_be_bytes());
    p
}

/// The agent id of a preface, or why it is not one.
pub fn parse_preface(p: &[u8; PREFACE_LEN]) -> Result<u32, String> {
    if &p[..4] != MAGIC {
        return Err("not a rampart agent (bad preface)".into());
    }
    if p[4] != VERSION {
        return Err(format!("unsupported agent protocol version {}", p[4]));
    }
    Ok(u32::from_be_bytes([p[5], p[6], p[7], p[8]]))
}

/// What an agent says when a session starts.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct Startup {
    pub name: String,
    /// What keep-alives will carry too.
    #[serde(flatten)]
    pub info: KeepAlive,
    /// Highest seq the agent knows to be stored.
    pub acked: u64,
    /// Seq the agent's next new event will get.
    pub next_seq: u64,
    /// Node of the agent's previous session, if any.
    pub prev_node: Option<String>,
    /// Events past `acked` may have reached `prev_node` without an acknowledgement.
    pub in_doubt: bool,
}

/// The manager's answer to [`Startup`].
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Welcome {
    pub node: String,
    pub cluster: String,
    /// Everything ≤ this is stored somewhere: send from the next seq. `None`: wait for a
    /// [`Resume`] notice.
    pub resume_from: Option<u64>,
}

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resume {
    pub resume_from: u64,
}

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ack {
    pub upto: u64,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct KeepAlive {
    pub version: String,
    pub os: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub config_profile: Vec<String>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Reconnect {
    pub reason: String,
}

/// One event on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireEvent {
    pub seq: u64,
    /// Agent clock, unix milliseconds.
    pub ts_ms: i64,
    pub location: String,
    pub log: Vec<u8>,
}

/// Borrowed form, so the agent encodes straight from its spool records.
#[derive(Debug, Clone, Copy)]
pub struct EventRef<'a> {
    pub seq: u64,
    pub ts_ms: i64,
    pub location: &'a str,
    pub log: &'a [u8],
}

/// `u32 count`, then per event `u64 seq | i64 ts_ms | u16 loc_len | loc | u32 log_len | log`,
/// all big-endian. Over-long locations and logs are cut to the limits.
pub fn encode_events<'a>(events: impl IntoIterator<Item = EventRef<'a>>) -> Vec<u8> {
    let mut out = Vec::with_capacity(4096);
    out.extend_from_slice(&0u32.to_be_bytes());
    let mut n: u32 = 0;
    for e in events {
        let loc = cut_str(e.location, MAX_LOCATION);
        let log = &e.log[..e.log.len().min(MAX_LOG)];
        out.extend_from_slice(&e.seq.to_be_bytes());
        out.extend_from_slice(&e.ts_ms.to_be_bytes());
        out.extend_from_slice(&(loc.len() as u16).to_be_bytes());
        out.extend_from_slice(loc.as_bytes());
        out.extend_from_slice(&(log.len() as u32).to_be_bytes());
        out.extend_from_slice(log);
        n += 1;
    }
    out[..4].copy_from_slice(&n.to_be_bytes());
    out
}

fn cut_str(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

struct Cursor<'a> {
    buf: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.buf.len() < n {
            return Err("events message truncated".into());
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    fn u16(&mut self) -> Result<u16, String> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, String> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Result<u64, String> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }
}

/// Decodes an `events` message, checking every bound and that seqs strictly increase.
pub fn decode_events(buf: &[u8]) -> Result<Vec<WireEvent>, String> {
    let mut c = Cursor { buf };
    let n = c.u32()? as usize;
    if n > MAX_BATCH {
        return Err(format!("{n} events in one message (at most {MAX_BATCH})"));
    }
    // Each event takes at least 22 bytes: never allocate more than the message can hold.
    let mut out = Vec::with_capacity(n.min(buf.len() / 22));
    let mut last = 0u64;
    for _ in 0..n {
        let seq = c.u64()?;
        let ts_ms = c.u64()? as i64;
        let loc_len = usize::from(c.u16()?);
        if loc_len > MAX_LOCATION {
            return Err(format!("location of {loc_len} bytes"));
        }
        let location = std::str::from_utf8(c.take(loc_len)?)
            .map_err(|_| "location is not UTF-8".to_string())?
            .to_string();
        let log_len = c.u32()? as usize;
        if log_len > MAX_LOG {
            return Err(format!("log of {log_len} bytes (at most {MAX_LOG})"));
        }
        let log = c.take(log_len)?.to_vec();
        if seq == 0 || seq <= last {
            return Err(format!("seq {seq} does not follow {last}"));
        }
        last = seq;
        out.push(WireEvent {
            seq,
            ts_ms,
            location,
            log,
        });
    }
    if !c.buf.is_empty() {
        return Err("trailing bytes after the events".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn preface_round_trip_and_rejects() {
        assert_eq!(parse_preface(&preface(7)), Ok(7));
        let mut p = preface(7);
        p[0] = b'X';
        assert!(parse_preface(&p).is_err());
        let mut p = preface(7);
        p[4] = 9;
        assert!(parse_preface(&p).unwrap_err().contains("version 9"));
    }

    #[test]
    fn events_must_increase() {
        let e = |seq| EventRef {
            seq,
            ts_ms: 1,
            location: "x",
            log: b"y",
        };
        assert!(decode_events(&encode_events([e(1), e(2)])).is_ok());
        assert!(decode_events(&encode_events([e(2), e(2)])).is_err());
        assert!(decode_events(&encode_events([e(0)])).is_err());
    }

    #[test]
    fn oversized_fields_are_cut_on_encode() {
        let log = vec![b'a'; MAX_LOG + 10];
        let loc = "é".repeat(MAX_LOCATION);
        let m = encode_events([EventRef {
            seq: 1,
            ts_ms: 0,
            location: &loc,
            log: &log,
        }]);
        let d = decode_events(&m).unwrap();
        assert_eq!(d[0].log.len(), MAX_LOG);
        assert!(d[0].location.len() <= MAX_LOCATION);
    }

    proptest! {
        #[test]
        fn round_trip(evs in proptest::collection::vec((any::<i64>(), ".{0,20}", proptest::collection::vec(any::<u8>(), 0..200)), 0..20)) {
            let owned: Vec<WireEvent> = evs.iter().enumerate().map(|(i, (ts, loc, log))| WireEvent {
                seq: i as u64 * 3 + 1, ts_ms: *ts, location: loc.clone(), log: log.clone() }).collect();
            let m = encode_events(owned.iter().map(|e| EventRef { seq: e.seq, ts_ms: e.ts_ms, location: &e.location, log: &e.log }));
            prop_assert_eq!(decode_events(&m).unwrap(), owned);
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = decode_events(&bytes);
        }

        #[test]
        fn truncation_is_detected(cut in 0usize..60) {
            let m = encode_events([EventRef { seq: 1, ts_ms: 2, location: "loc", log: b"some log line here" },
                                   EventRef { seq: 2, ts_ms: 3, location: "l", log: b"x" }]);
            let cut = cut.min(m.len() - 1);
            prop_assert!(decode_events(&m[..cut]).is_err());
        }
    }
}
