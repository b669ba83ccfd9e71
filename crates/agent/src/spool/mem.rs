//! The simulator's spool: the same contract as [`super::DiskSpool`] with everything held in
//! memory (so nothing survives the process, and `sync` has nothing to do).

use std::collections::BTreeMap;
use std::io;

use super::{note_position, record, Appended, Batch, Cache, Spool, Window};
use crate::event::{Event, Record, SourcePos};

pub struct MemSpool {
    win: Window,
    /// Exactly the held records: the bound keeps them to `queue_size`.
    held: Cache,
    session_node: Option<String>,
    positions: BTreeMap<String, SourcePos>,
}

impl MemSpool {
    pub fn new(queue_size: u64) -> MemSpool {
        Self::starting_at(queue_size, 1)
    }

    /// A spool whose first event gets seq `first` (see [`super::fresh_base`]).
    pub fn starting_at(queue_size: u64, first: u64) -> MemSpool {
        MemSpool {
            win: Window::starting_at(queue_size, first),
            held: Cache::new(usize::MAX),
            session_node: None,
            positions: BTreeMap::new(),
        }
    }
}

impl Spool for MemSpool {
    fn append(&mut self, events: Vec<Event>) -> io::Result<Appended> {
        // Same refusals as the disk spool, so the simulator exercises the agent's paths.
        for ev in &events {
            record::check(ev).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        }
        let appended = self.win.append(events.len() as u64);
        for (seq, event) in (appended.first..).zip(events) {
            note_position(&mut self.positions, &event);
            self.held.push(Record { seq, event });
        }
        self.held.trim_below(self.win.start());
        Ok(appended)
    }

    fn sync(&mut self) -> io::Result<()> {
        Ok(())
    }

    fn read_from(
        &mut self,
        from: u64,
        max_events: usize,
        max_bytes: usize,
    ) -> io::Result<Vec<Record>> {
        let mut batch = Batch::new(max_events, max_bytes);
        self.held.read(from.max(self.win.start()), &mut batch);
        Ok(batch.out)
    }

    fn ack(&mut self, upto: u64) -> io::Result<()> {
        if self.win.ack(upto) {
            self.held.trim_below(self.win.start());
        }
        Ok(())
    }

    fn acked(&self) -> u64 {
        self.win.acked
    }

    fn next_seq(&self) -> u64 {
        self.win.next_seq
    }

    fn pending(&self) -> u64 {
        self.win.pending()
    }

    fn dropped(&self) -> u64 {
        self.win.dropped
    }

    fn session_node(&self) -> Option<String> {
        self.session_node.clone()
    }

    fn set_session_node(&mut self, node: Option<String>) -> io::Result<()> {
        self.session_node = node;
        Ok(())
    }

    fn positions(&self) -> BTreeMap<String, SourcePos> {
        self.positions.clone()
    }
}
