//! The spool: every event gets a per-agent sequence number and is stored before it is sent,
//! trimmed only when a manager acknowledges it, and resent from the unacknowledged tail after a
//! reconnect or restart. [`DiskSpool`] is the agent's; [`MemSpool`] serves the simulator's
//! thousands of agents with the same API.
//!
//! The seqs held are `max(acked + 1, floor) .. next_seq`, where `floor` moves when the
//! `queue_size` bound drops the oldest unacknowledged events.

use std::collections::{BTreeMap, VecDeque};

use crate::event::{Record, SourcePos};

pub mod disk;
pub mod mem;
pub mod record;

pub use disk::{DiskSpool, SpoolError, SpoolOptions};
pub use mem::MemSpool;

use crate::event::Event;

/// What [`Spool::append`] did. An empty batch gives `first == last + 1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// Seq of the first event of the batch.
    pub first: u64,
    /// Seq of the last event of the batch.
    pub last: u64,
    /// Oldest unacknowledged events dropped by this call to stay within `queue_size`.
    pub dropped: u64,
}

pub trait Spool: Send + 'static {
    /// Gives the events consecutive seqs and appends them (written to the OS before returning, so
    /// a process kill keeps them). Drops oldest unacked events if the bound is exceeded.
    /// On error nothing of the batch is held and `positions()` is unchanged.
    fn append(&mut self, events: Vec<Event>) -> std::io::Result<Appended>;
    /// Makes everything appended so far durable (fdatasync); cheap when nothing changed.
    fn sync(&mut self) -> std::io::Result<()>;
    /// Records with seq >= from (and not dropped/acked), in order, at most max_events and about
    /// max_bytes (at least one record if any and `max_events > 0`).
    fn read_from(
        &mut self,
        from: u64,
        max_events: usize,
        max_bytes: usize,
    ) -> std::io::Result<Vec<Record>>;
    /// Everything <= upto is stored by a manager: forget it and persist `acked`. upto beyond the
    /// last seq is clamped; lower than acked is a no-op.
    fn ack(&mut self, upto: u64) -> std::io::Result<()>;
    fn acked(&self) -> u64;
    /// The seq the next appended event will get.
    fn next_seq(&self) -> u64;
    /// Events held (appended, not acked, not dropped).
    fn pending(&self) -> u64;
    /// Total dropped by the bound since the spool was created.
    fn dropped(&self) -> u64;
    /// The manager node the current/last session went to.
    fn session_node(&self) -> Option<String>;
    fn set_session_node(&mut self, node: Option<String>) -> std::io::Result<()>;
    /// Newest position of every file source (by `Event.location`) ever appended.
    fn positions(&self) -> BTreeMap<String, SourcePos>;
}

/// Where a brand-new spool starts counting: the wall clock in milliseconds times 1024.
///
/// Managers remember the highest seq they stored per agent and drop anything at or below it.
/// An agent whose spool was lost (reinstalled, or the simulator's memory spool in a new
/// process) must not count from 1 again, or its new events would be dropped as repeats. Each
/// new spool starts past any seq an older one could have reached unless that one produced
/// more than a million events a second; the numbers stay below 2^53, exact in JSON.
pub fn fresh_base() -> u64 {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    ms.saturating_mul(1024).max(1)
}

/// The seq counters shared by both spools; pure so the bound arithmetic is tested once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Window {
    pub next_seq: u64,
    pub acked: u64,
    /// Lowest seq not dropped by the bound (may lie at or below `acked`).
    pub floor: u64,
    pub dropped: u64,
    pub queue_size: u64,
}

impl Window {
    /// A new spool whose first event gets `first`.
    pub fn starting_at(queue_size: u64, first: u64) -> Window {
        let first = first.max(1);
        Window {
            next_seq: first,
            acked: first - 1,
            floor: first,
            ..Window::new(queue_size)
        }
    }

    /// A bound of 0 would drop every event as it arrives; it is taken as 1.
    pub fn new(queue_size: u64) -> Window {
        Window {
            next_seq: 1,
            acked: 0,
            floor: 1,
            dropped: 0,
            queue_size: queue_size.max(1),
        }
    }

    /// Lowest seq still held.
    pub fn start(&self) -> u64 {
        (self.acked + 1).max(self.floor)
    }

    pub fn pending(&self) -> u64 {
        self.next_seq.saturating_sub(self.start())
    }

    /// Assigns `n` seqs and applies the bound.
    pub fn append(&mut self, n: u64) -> Appended {
        let first = self.next_seq;
        self.next_seq += n;
        let dropped = self.enforce();
        Appended {
            first,
            last: self.next_seq - 1,
            dropped,
        }
    }

    /// Drops the oldest held seqs beyond `queue_size`; returns how many.
    pub fn enforce(&mut self) -> u64 {
        let over = self.pending().saturating_sub(self.queue_size);
        if over > 0 {
            self.floor = self.start() + over;
            self.dropped += over;
        }
        over
    }

    /// Returns whether `acked` moved.
    pub fn ack(&mut self, upto: u64) -> bool {
        let upto = upto.min(self.next_seq - 1);
        if upto <= self.acked {
            return false;
        }
        self.acked = upto;
        true
    }
}

/// Collects a `read_from` answer within its limits.
pub(crate) struct Batch {
    pub out: Vec<Record>,
    bytes: usize,
    max_events: usize,
    max_bytes: usize,
}

impl Batch {
    pub fn new(max_events: usize, max_bytes: usize) -> Batch {
        Batch {
            out: Vec::new(),
            bytes: 0,
            max_events,
            max_bytes,
        }
    }

    /// Whether a record of `len` encoded bytes may still be added.
    pub fn fits(&self, len: usize) -> bool {
        self.out.len() < self.max_events
            && (self.out.is_empty() || self.bytes.saturating_add(len) <= self.max_bytes)
    }

    pub fn push(&mut self, rec: Record, len: usize) {
        self.bytes += len;
        self.out.push(rec);
    }
}

/// The newest records in memory, oldest first, bounded by their encoded size.
pub(crate) struct Cache {
    recs: VecDeque<Record>,
    bytes: usize,
    cap: usize,
}

impl Cache {
    pub fn new(cap: usize) -> Cache {
        Cache {
            recs: VecDeque::new(),
            bytes: 0,
            cap,
        }
    }

    pub fn push(&mut self, rec: Record) {
        self.bytes += record::encoded_len(&rec.event);
        self.recs.push_back(rec);
        while self.bytes > self.cap {
            self.pop_front();
        }
    }

    fn pop_front(&mut self) {
        if let Some(r) = self.recs.pop_front() {
            self.bytes -= record::encoded_len(&r.event);
        }
    }

    /// Forgets records below `start` (acked or dropped).
    pub fn trim_below(&mut self, start: u64) {
        while self.recs.front().is_some_and(|r| r.seq < start) {
            self.pop_front();
        }
    }

    pub fn front_seq(&self) -> Option<u64> {
        self.recs.front().map(|r| r.seq)
    }

    /// Adds records with seq >= from to `batch` until it is full.
    pub fn read(&self, from: u64, batch: &mut Batch) {
        let i = self.recs.partition_point(|r| r.seq < from);
        for r in self.recs.range(i..) {
            let len = record::encoded_len(&r.event);
            if !batch.fits(len) {
                return;
            }
            batch.push(r.clone(), len);
        }
    }
}

/// Remembers `pos` for its location, allocating the key only for a new location.
pub(crate) fn note_position(positions: &mut BTreeMap<String, SourcePos>, event: &Event) {
    if let Some(pos) = event.pos {
        match positions.get_mut(&event.location) {
            Some(p) => *p = pos,
            None => {
                positions.insert(event.location.clone(), pos);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_bound_drops_oldest_and_counts() {
        let mut w = Window::new(5);
        assert_eq!(
            w.append(3),
            Appended {
                first: 1,
                last: 3,
                dropped: 0
            }
        );
        assert_eq!(w.append(4).dropped, 2);
        assert_eq!((w.start(), w.pending(), w.dropped), (3, 5, 2));
        // Acks past the floor make room again.
        assert!(w.ack(6));
        assert_eq!((w.start(), w.pending()), (7, 1));
        assert_eq!(w.append(4).dropped, 0);
        assert_eq!(w.append(1).dropped, 1);
        assert_eq!((w.start(), w.pending(), w.dropped), (8, 5, 3));
    }

    #[test]
    fn window_ack_clamps_and_ignores_old() {
        let mut w = Window::new(100);
        w.append(10);
        assert!(w.ack(4));
        assert!(!w.ack(3));
        assert!(!w.ack(4));
        assert!(w.ack(1000));
        assert_eq!((w.acked, w.pending(), w.next_seq), (10, 0, 11));
        assert!(!w.ack(1000));
    }

    #[test]
    fn window_zero_bound_is_one() {
        let mut w = Window::new(0);
        assert_eq!(w.append(3).dropped, 2);
        assert_eq!(w.pending(), 1);
    }

    #[test]
    fn batch_keeps_one_oversized_record() {
        let rec = |seq| Record {
            seq,
            event: Event {
                ts_ms: 0,
                location: "x".into(),
                log: vec![b'a'; 100],
                pos: None,
            },
        };
        let mut b = Batch::new(10, 10);
        assert!(b.fits(200));
        b.push(rec(1), 200);
        assert!(!b.fits(1));
        let mut b = Batch::new(0, 1000);
        assert!(!b.fits(1));
        b.out.clear();
    }
}
