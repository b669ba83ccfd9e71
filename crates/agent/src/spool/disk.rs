//! The agent's on-disk spool.
//!
//! `dir/NNNNNNNNNNNNNNNNNNNN.seg` (named by the first seq it holds, 20 digits) hold framed
//! records (see [`super::record`]) with consecutive seqs; a segment ends where the next one
//! begins. `dir/state` (JSON) holds what the segments cannot: acked, dropped, floor, the session
//! node and the source positions of records no longer held.
//!
//! Crash safety rests on these orderings: a batch is one `write()` on an `O_APPEND` file before
//! `append` returns (a process kill keeps it); recovery truncates a segment at its first record
//! that is torn, corrupt or out of sequence; a segment is fdatasync'ed before the next one is
//! created, so only the last can be torn by a power loss; the state is written to a temp file,
//! fsync'ed and renamed, and is durable (dir fsync'ed) before any segment is deleted. The state
//! only holds positions of records already durable, so a power loss cannot move a source past
//! lines it has lost.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::record::{self, DecodeError, HEADER_LEN};
use super::{note_position, Appended, Batch, Cache, Spool, Window};
use crate::event::{Event, Record, SourcePos};

const STATE: &str = "state";
const STATE_TMP: &str = "state.tmp";
const SEG_EXT: &str = ".seg";
/// The append buffer is dropped after a batch larger than this instead of kept for reuse.
const KEEP_BUF: usize = 4 << 20;

#[derive(Debug, Error)]
pub enum SpoolError {
    #[error("spool {}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("spool state {}: {source}", path.display())]
    State {
        path: PathBuf,
        source: serde_json::Error,
    },
}

impl From<SpoolError> for io::Error {
    fn from(e: SpoolError) -> io::Error {
        let kind = match &e {
            SpoolError::Io { source, .. } => source.kind(),
            SpoolError::State { .. } => io::ErrorKind::InvalidData,
        };
        io::Error::new(kind, e)
    }
}

/// Tuning; the defaults are what the agent uses, tests make them small.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpoolOptions {
    /// A new segment is started once the current one reaches this size.
    pub segment_bytes: u64,
    /// Encoded size of the newest records kept in memory so `read_from` need not read the disk.
    pub cache_bytes: usize,
    /// Bytes of segment between in-memory index entries: a disk read seeks to the nearest
    /// entry and decodes forward from there.
    pub index_stride: u64,
    /// Seq of the first event of a spool created now (an existing one keeps its numbering);
    /// production passes [`super::fresh_base`].
    pub first_seq: u64,
}

impl Default for SpoolOptions {
    fn default() -> Self {
        SpoolOptions {
            segment_bytes: 16 << 20,
            cache_bytes: 8 << 20,
            index_stride: 64 << 10,
            first_seq: 1,
        }
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct StateFile {
    acked: u64,
    dropped: u64,
    floor: u64,
    session_node: Option<String>,
    positions: BTreeMap<String, SourcePos>,
}

#[derive(Debug)]
struct Segment {
    /// One past the last seq it holds.
    end: u64,
    len: u64,
    /// `(seq, offset)` of a record every `index_stride` bytes, starting with the first.
    index: Vec<(u64, u64)>,
}

impl Segment {
    fn new(first: u64) -> Segment {
        Segment {
            end: first,
            len: 0,
            index: Vec::new(),
        }
    }

    fn note(&mut self, seq: u64, offset: u64, stride: u64) {
        if self.index.last().is_none_or(|&(_, o)| offset - o >= stride) {
            self.index.push((seq, offset));
        }
    }
}

/// One agent's spool directory. Only one `DiskSpool` may have a directory open at a time (there
/// is no lock file: the agent holds its home directory).
pub struct DiskSpool {
    dir: PathBuf,
    opts: SpoolOptions,
    win: Window,
    session_node: Option<String>,
    positions: BTreeMap<String, SourcePos>,
    /// `positions` as of the last fdatasync: what the state file may claim.
    durable_positions: BTreeMap<String, SourcePos>,
    segments: BTreeMap<u64, Segment>,
    /// Append handle of the last segment.
    writer: Option<File>,
    /// The next append must start a new segment (no writer, or a failed write left junk).
    need_roll: bool,
    cache: Cache,
    data_dirty: bool,
    dir_dirty: bool,
    state_dirty: bool,
    buf: Vec<u8>,
}

fn seg_name(first: u64) -> String {
    format!("{first:020}{SEG_EXT}")
}

fn parse_seg_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(SEG_EXT)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Adds the path to an I/O error so the caller's log names the file.
fn at(path: &Path) -> impl FnOnce(io::Error) -> io::Error + '_ {
    move |e| io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(at(dir))
}

/// Reads until `buf` is full or end of file; returns the bytes read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Reads the next frame; `Ok(Ok(None))` at a clean end of file, `Ok(Err(_))` when the bytes
/// there are not a record.
fn read_frame(
    r: &mut impl Read,
    buf: &mut Vec<u8>,
) -> io::Result<Result<Option<(Record, usize)>, DecodeError>> {
    let mut header = [0u8; HEADER_LEN];
    match read_full(r, &mut header)? {
        0 => return Ok(Ok(None)),
        HEADER_LEN => {}
        _ => return Ok(Err(DecodeError::Truncated)),
    }
    let total = match record::frame_len(&header) {
        Ok(t) => t,
        Err(e) => return Ok(Err(e)),
    };
    buf.clear();
    buf.extend_from_slice(&header);
    buf.resize(total, 0);
    if read_full(r, &mut buf[HEADER_LEN..])? < total - HEADER_LEN {
        return Ok(Err(DecodeError::Truncated));
    }
    Ok(record::decode(buf).map(Some))
}

/// What recovery found in one segment file.
struct Scanned {
    seg: Segment,
    /// Bytes past the last good record (torn, corrupt, or beyond the next segment's start).
    junk: u64,
}

/// Reads a segment from its start, handing each good record to `each`, and stops at the first
/// record that is damaged, not the expected seq, or at `stop` (the next segment's first seq).
fn scan_segment(
    path: &Path,
    first: u64,
    stop: Option<u64>,
    stride: u64,
    mut each: impl FnMut(Record, usize),
) -> io::Result<Scanned> {
    let file = File::open(path)?;
    let file_len = file.metadata()?.len();
    let mut r = BufReader::with_capacity(256 * 1024, file);
    let mut seg = Segment::new(first);
    let mut buf = Vec::new();
    while stop.is_none_or(|s| seg.end < s) {
        match read_frame(&mut r, &mut buf)? {
            Ok(Some((rec, n))) if rec.seq == seg.end => {
                seg.note(rec.seq, seg.len, stride);
                seg.end += 1;
                seg.len += n as u64;
                each(rec, n);
            }
            _ => break,
        }
    }
    Ok(Scanned {
        junk: file_len - seg.len,
        seg,
    })
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> SpoolError {
    let path = path.to_path_buf();
    move |source| SpoolError::Io { path, source }
}

fn create_file(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .create_new(true)
        .append(true)
        .mode(0o600)
        .open(path)
}

impl DiskSpool {
    pub fn open(dir: &Path, queue_size: u64) -> Result<DiskSpool, SpoolError> {
        Self::open_with(dir, queue_size, SpoolOptions::default())
    }

    /// Opens (creating it 0700 if needed) and recovers the spool in `dir`.
    pub fn open_with(
        dir: &Path,
        queue_size: u64,
        opts: SpoolOptions,
    ) -> Result<DiskSpool, SpoolError> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io_err(dir))?;
        let tmp = dir.join(STATE_TMP);
        match fs::remove_file(&tmp) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(io_err(&tmp)(e)),
            _ => {}
        }
        let state_path = dir.join(STATE);
        let state: Option<StateFile> = match fs::read(&state_path) {
            Ok(bytes) => {
                Some(
                    serde_json::from_slice(&bytes).map_err(|source| SpoolError::State {
                        path: state_path.clone(),
                        source,
                    })?,
                )
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(io_err(&state_path)(e)),
        };

        let mut firsts = Vec::new();
        for entry in fs::read_dir(dir).map_err(io_err(dir))? {
            let entry = entry.map_err(io_err(dir))?;
            if let Some(first) = entry.file_name().to_str().and_then(parse_seg_name) {
                firsts.push(first);
            }
        }
        firsts.sort_unstable();

        let mut win = match (&state, firsts.first()) {
            (Some(st), _) => {
                let mut w = Window::new(queue_size);
                w.acked = st.acked;
                w.floor = st.floor.max(1);
                w.dropped = st.dropped;
                w
            }
            // Segments without a state file: numbering continues from the oldest segment.
            (None, Some(&first)) => Window::starting_at(queue_size, first),
            (None, None) => Window::starting_at(queue_size, opts.first_seq),
        };
        let state = state.unwrap_or_default();
        let start = win.start();

        // Records overlay the state's positions: any record still on disk is at least as new.
        let mut positions = state.positions;
        let mut cache = Cache::new(opts.cache_bytes);
        let mut segments = BTreeMap::new();
        for (i, &first) in firsts.iter().enumerate() {
            let path = dir.join(seg_name(first));
            let stop = firsts.get(i + 1).copied();
            let scanned = scan_segment(&path, first, stop, opts.index_stride, |rec, _| {
                note_position(&mut positions, &rec.event);
                if rec.seq >= start {
                    cache.push(rec);
                }
            })
            .map_err(io_err(&path))?;
            if scanned.junk > 0 {
                tracing::warn!(
                    "spool {}: dropping {} bytes after seq {} (torn or corrupt)",
                    path.display(),
                    scanned.junk,
                    scanned.seg.end.saturating_sub(1)
                );
                let f = OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .map_err(io_err(&path))?;
                f.set_len(scanned.seg.len)
                    .and_then(|()| f.sync_all())
                    .map_err(io_err(&path))?;
            }
            segments.insert(first, scanned.seg);
        }

        let last_end = segments.values().next_back().map_or(1, |s| s.end);
        win.next_seq = last_end.max(win.acked + 1).max(win.floor);
        let dropped = win.enforce();
        if dropped > 0 {
            tracing::warn!(
                "spool {}: dropped the {dropped} oldest unacknowledged events to stay within queue_size {}",
                dir.display(),
                win.queue_size
            );
        }
        cache.trim_below(win.start());

        // Continue the last segment if it ends where the next seq begins.
        let mut writer = None;
        if let Some((&first, seg)) = segments.iter().next_back() {
            let path = dir.join(seg_name(first));
            let f = OpenOptions::new()
                .append(true)
                .open(&path)
                .map_err(io_err(&path))?;
            // What was scanned may sit only in the page cache after a process kill.
            f.sync_data().map_err(io_err(&path))?;
            if seg.end == win.next_seq {
                writer = Some(f);
            }
        }
        sync_dir(dir).map_err(io_err(dir))?;

        let mut spool = DiskSpool {
            dir: dir.to_path_buf(),
            opts,
            win,
            session_node: state.session_node,
            durable_positions: positions.clone(),
            positions,
            segments,
            need_roll: writer.is_none(),
            writer,
            cache,
            data_dirty: false,
            dir_dirty: false,
            state_dirty: dropped > 0,
            buf: Vec::new(),
        };
        spool.persist().map_err(io_err(dir))?;
        Ok(spool)
    }

    fn seg_path(&self, first: u64) -> PathBuf {
        self.dir.join(seg_name(first))
    }

    fn must_roll(&self) -> bool {
        self.need_roll
            || self.writer.is_none()
            || self
                .segments
                .values()
                .next_back()
                .is_none_or(|s| s.len >= self.opts.segment_bytes || s.end != self.win.next_seq)
    }

    /// Starts a new segment at `next_seq`, first making the current one durable so that only the
    /// last segment can ever be torn.
    fn roll(&mut self) -> io::Result<()> {
        self.sync()?;
        self.writer = None;
        let first = self.win.next_seq;
        let path = self.seg_path(first);
        // An empty segment already named so (left by a failed write) is replaced.
        if self.segments.remove(&first).is_some() {
            match fs::remove_file(&path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(at(&path)(e)),
                _ => {}
            }
        }
        let f = create_file(&path).map_err(at(&path))?;
        self.segments.insert(first, Segment::new(first));
        self.writer = Some(f);
        self.need_roll = false;
        self.dir_dirty = true;
        Ok(())
    }

    fn mark_synced(&mut self) {
        self.data_dirty = false;
        self.durable_positions.clone_from(&self.positions);
    }

    /// Segments whose every record is acked or dropped. The one being appended to stays until it
    /// is full, so a spool that keeps up does not create a file per ack.
    fn deletable(&self) -> Vec<u64> {
        let start = self.win.start();
        let current = match (&self.writer, self.need_roll) {
            (Some(_), false) => self
                .segments
                .iter()
                .next_back()
                .filter(|(_, s)| s.len < self.opts.segment_bytes)
                .map(|(&f, _)| f),
            _ => None,
        };
        self.segments
            .iter()
            .filter(|&(&f, s)| s.end <= start && Some(f) != current)
            .map(|(&f, _)| f)
            .collect()
    }

    /// Writes the state if it changed and deletes segments no longer needed (state durable
    /// first, holding the positions of everything being deleted).
    fn persist(&mut self) -> io::Result<()> {
        let doomed = self.deletable();
        if doomed.is_empty() {
            if self.state_dirty {
                self.write_state(false)?;
            }
            return Ok(());
        }
        self.sync()?;
        self.write_state(true)?;
        let last = self.segments.keys().next_back().copied();
        let mut first_err = None;
        for first in doomed {
            let path = self.seg_path(first);
            match fs::remove_file(&path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    first_err.get_or_insert(at(&path)(e));
                }
                _ => {
                    self.segments.remove(&first);
                    if Some(first) == last {
                        self.writer = None;
                        self.need_roll = true;
                    }
                }
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// Temp file, fsync, rename; `durable` also fsyncs the directory so the rename survives a
    /// power loss (needed before deleting segments; otherwise an older state only costs resends).
    fn write_state(&mut self, durable: bool) -> io::Result<()> {
        let state = StateFile {
            acked: self.win.acked,
            dropped: self.win.dropped,
            floor: self.win.floor,
            session_node: self.session_node.clone(),
            positions: self.durable_positions.clone(),
        };
        let json = serde_json::to_vec_pretty(&state)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        let tmp = self.dir.join(STATE_TMP);
        let path = self.dir.join(STATE);
        (|| {
            let mut f = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(&json)?;
            f.sync_data()
        })()
        .map_err(at(&tmp))?;
        fs::rename(&tmp, &path).map_err(at(&path))?;
        if durable {
            sync_dir(&self.dir)?;
            self.dir_dirty = false;
        }
        self.state_dirty = false;
        Ok(())
    }

    /// Adds held records in `[start, upto)` from the segment files; returns whether `batch`
    /// filled up.
    fn read_disk(&self, start: u64, upto: u64, batch: &mut Batch) -> io::Result<bool> {
        let from_seg = self
            .segments
            .range(..=start)
            .next_back()
            .map_or(start, |(&f, _)| f);
        let mut buf = Vec::new();
        for (&first, seg) in self.segments.range(from_seg..upto) {
            if seg.end <= start {
                continue;
            }
            let path = self.seg_path(first);
            let from = start.max(first);
            let i = seg.index.partition_point(|&(s, _)| s <= from);
            let (mut seq, offset) = match i {
                0 => (first, 0),
                _ => seg.index[i - 1],
            };
            let mut file = File::open(&path).map_err(at(&path))?;
            file.seek(SeekFrom::Start(offset)).map_err(at(&path))?;
            let mut r = BufReader::with_capacity(64 * 1024, file);
            let stop = seg.end.min(upto);
            while seq < stop {
                let (rec, len) = match read_frame(&mut r, &mut buf).map_err(at(&path))? {
                    Ok(Some(x)) if x.0.seq == seq => x,
                    _ => {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            format!("{}: record {seq} unreadable", path.display()),
                        ))
                    }
                };
                seq += 1;
                if rec.seq < from {
                    continue;
                }
                if !batch.fits(len) {
                    return Ok(true);
                }
                batch.push(rec, len);
            }
        }
        Ok(false)
    }
}

impl Spool for DiskSpool {
    fn append(&mut self, events: Vec<Event>) -> io::Result<Appended> {
        if events.is_empty() {
            return Ok(self.win.append(0));
        }
        for ev in &events {
            record::check(ev).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        }
        if self.must_roll() {
            self.roll()?;
        }
        let Some((&seg_first, seg)) = self.segments.iter_mut().next_back() else {
            return Err(io::Error::other("spool has no segment after roll"));
        };
        let Some(writer) = self.writer.as_mut() else {
            return Err(io::Error::other("spool has no writer after roll"));
        };
        let first = self.win.next_seq;
        self.buf.clear();
        let index_len = seg.index.len();
        let mut records = Vec::with_capacity(events.len());
        for (seq, event) in (first..).zip(events) {
            let rec = Record { seq, event };
            seg.note(seq, seg.len + self.buf.len() as u64, self.opts.index_stride);
            if let Err(e) = record::encode(&rec, &mut self.buf) {
                seg.index.truncate(index_len);
                return Err(io::Error::new(io::ErrorKind::InvalidInput, e));
            }
            records.push(rec);
        }
        if let Err(e) = writer.write_all(&self.buf) {
            // Cut a partial write off so the segment stays clean; if even that fails, the junk
            // is left behind a new segment, where recovery ignores it.
            seg.index.truncate(index_len);
            if writer.set_len(seg.len).is_err() {
                self.need_roll = true;
            }
            return Err(at(&self.dir.join(seg_name(seg_first)))(e));
        }
        seg.len += self.buf.len() as u64;
        seg.end = first + records.len() as u64;
        if self.buf.capacity() > KEEP_BUF {
            self.buf = Vec::new();
        }
        self.data_dirty = true;

        let appended = self.win.append(records.len() as u64);
        for rec in records {
            note_position(&mut self.positions, &rec.event);
            self.cache.push(rec);
        }
        self.cache.trim_below(self.win.start());
        if appended.dropped > 0 {
            self.state_dirty = true;
            // The batch is safely appended; persisting the drop is retried on the next change.
            if let Err(e) = self.persist() {
                tracing::warn!(
                    "spool {}: cannot record dropped events: {e}",
                    self.dir.display()
                );
            }
        }
        Ok(appended)
    }

    fn sync(&mut self) -> io::Result<()> {
        // Directory first: positions become claimable only once their segment's name is durable.
        if self.dir_dirty {
            sync_dir(&self.dir)?;
            self.dir_dirty = false;
        }
        if self.data_dirty {
            if let (Some(w), Some(&first)) = (&self.writer, self.segments.keys().next_back()) {
                w.sync_data().map_err(at(&self.seg_path(first)))?;
            }
            self.mark_synced();
        }
        Ok(())
    }

    fn read_from(
        &mut self,
        from: u64,
        max_events: usize,
        max_bytes: usize,
    ) -> io::Result<Vec<Record>> {
        let start = from.max(self.win.start());
        let mut batch = Batch::new(max_events, max_bytes);
        if start >= self.win.next_seq {
            return Ok(batch.out);
        }
        let cached = self.cache.front_seq().unwrap_or(self.win.next_seq);
        if start < cached && self.read_disk(start, cached, &mut batch)? {
            return Ok(batch.out);
        }
        self.cache.read(start.max(cached), &mut batch);
        Ok(batch.out)
    }

    fn ack(&mut self, upto: u64) -> io::Result<()> {
        if self.win.ack(upto) {
            self.state_dirty = true;
            self.cache.trim_below(self.win.start());
        }
        self.persist()
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
        if node == self.session_node && !self.state_dirty {
            return Ok(());
        }
        self.session_node = node;
        self.state_dirty = true;
        self.write_state(true)
    }

    fn positions(&self) -> BTreeMap<String, SourcePos> {
        self.positions.clone()
    }
}
