//! Following one log file across rotation, like Wazuh's logcollector, without timers: the
//! caller decides when to [`Tailer::poll`].
//!
//! A file is identified by (dev, ino). The path is looked at only once the open file has been
//! read to its end: if it now names another file (rename rotation) the old one is drained once
//! more and left, and the new one is read from offset 0; if the open file shrank below what was
//! read (copytruncate) reading restarts at 0. Lines written to the old file after it was copied
//! and before it was truncated are lost, as with Wazuh.

use std::ffi::OsStr;
use std::fs::{self, File, Metadata};
use std::io::{self, ErrorKind};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

use super::LineBuf;
use crate::event::{Event, SourcePos};

/// Bytes read per system call.
const CHUNK: usize = 64 * 1024;

/// How to position the first file opened.
#[derive(Debug, Clone, Copy)]
enum Start {
    Beginning,
    /// First sight with only-future-events.
    End,
    /// The persisted position.
    Resume(SourcePos),
}

/// The file being read.
#[derive(Debug)]
struct Open {
    file: File,
    dev: u64,
    ino: u64,
    /// Just past the last complete line handed out.
    offset: u64,
    /// Where the next read starts: `offset` plus the partial line held in `line`.
    read_pos: u64,
    line: LineBuf,
}

impl Open {
    fn new(file: File, meta: &Metadata, offset: u64) -> Open {
        Open {
            file,
            dev: meta.dev(),
            ino: meta.ino(),
            offset,
            read_pos: offset,
            line: LineBuf::default(),
        }
    }

    fn pos(&self, offset: u64) -> SourcePos {
        SourcePos {
            dev: self.dev,
            ino: self.ino,
            offset,
        }
    }

    fn is(&self, meta: &Metadata) -> bool {
        meta.dev() == self.dev && meta.ino() == self.ino
    }

    /// Hands out the complete lines available now; true when a limit stopped it.
    fn read_lines(
        &mut self,
        lim: &mut Limits,
        label: &str,
        out: &mut Vec<Event>,
    ) -> io::Result<bool> {
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = match self.file.read_at(&mut buf, self.read_pos) {
                Ok(0) => return Ok(false),
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            let mut i = 0;
            while let Some(j) = buf[i..n].iter().position(|&b| b == b'\n') {
                self.line.push(&buf[i..i + j]);
                i += j + 1;
                let end = self.read_pos + i as u64;
                self.emit(end, lim, label, out);
                if lim.full(out) {
                    // The rest of the chunk is read again next time.
                    self.read_pos = end;
                    return Ok(true);
                }
            }
            self.line.push(&buf[i..n]);
            self.read_pos += n as u64;
        }
    }

    fn emit(&mut self, end: u64, lim: &mut Limits, label: &str, out: &mut Vec<Event>) {
        let log = self.line.take();
        lim.bytes += log.len();
        self.offset = end;
        out.push(Event {
            ts_ms: lim.now_ms,
            location: label.to_string(),
            log,
            pos: Some(self.pos(end)),
        });
    }

    /// The file is left for good: its unfinished last line goes out as it is.
    fn flush_partial(&mut self, lim: &mut Limits, label: &str, out: &mut Vec<Event>) {
        if !self.line.is_empty() {
            self.emit(self.read_pos, lim, label, out);
        }
    }
}

struct Limits {
    now_ms: i64,
    max_lines: usize,
    max_bytes: usize,
    bytes: usize,
}

impl Limits {
    fn full(&self, out: &[Event]) -> bool {
        out.len() >= self.max_lines || self.bytes >= self.max_bytes
    }
}

/// Follows one `<localfile>`.
#[derive(Debug)]
pub struct Tailer {
    location: PathBuf,
    label: String,
    cur: Option<Open>,
    start: Start,
    /// Reported by [`Tailer::position`] until a file is open.
    saved: Option<SourcePos>,
}

impl Tailer {
    /// `saved` is the position persisted for this location (from the spool); None = first sight:
    /// start at the end when `only_future_events`, else at the start. A file that does not exist
    /// yet is read from its start when it appears.
    ///
    /// With a saved position whose (dev, ino) the path no longer has, the rotated file is looked
    /// for among the siblings whose name starts with the file name (`x.1`, `x-20240101`…) and
    /// finished from the saved offset first; if it is gone the current file is read from 0.
    pub fn new(
        location: PathBuf,
        label: String,
        only_future_events: bool,
        saved: Option<SourcePos>,
    ) -> Tailer {
        let start = match saved {
            Some(pos) => Start::Resume(pos),
            None if only_future_events => Start::End,
            None => Start::Beginning,
        };
        let mut t = Tailer {
            location,
            label,
            cur: None,
            start,
            saved,
        };
        if let Err(e) = t.open_first() {
            // Retried by every poll.
            tracing::warn!(file = %t.location.display(), "cannot open: {e}");
        }
        t
    }

    /// The configured path.
    pub fn location(&self) -> &Path {
        &self.location
    }

    /// `Event::location` of this source.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// Reads complete lines available now (at most `max_lines`/`max_bytes`, at least one line
    /// when any is there), following rotation as the module doc says. A partial last line is
    /// kept for a later poll unless its file was rotated away. A missing file is not an error.
    /// Each event's `pos` is the position just after its line in its own file.
    pub fn poll(
        &mut self,
        now_ms: i64,
        max_lines: usize,
        max_bytes: usize,
    ) -> io::Result<Vec<Event>> {
        let mut out = Vec::new();
        if max_lines == 0 {
            return Ok(out);
        }
        let mut lim = Limits {
            now_ms,
            max_lines,
            max_bytes,
            bytes: 0,
        };
        if self.cur.is_none() {
            self.open_first()?;
        }
        loop {
            let label = self.label.as_str();
            let Some(cur) = self.cur.as_mut() else {
                return Ok(out);
            };
            if cur.file.metadata()?.len() < cur.read_pos {
                tracing::info!(file = %self.location.display(), "truncated; reading from the start");
                cur.flush_partial(&mut lim, label, &mut out);
                cur.offset = 0;
                cur.read_pos = 0;
            }
            if cur.read_lines(&mut lim, label, &mut out)? {
                return Ok(out);
            }
            // At the end of the open file: is it still the one the path names?
            let meta = match fs::metadata(&self.location) {
                Ok(m) => m,
                // Moved away and not recreated yet: keep reading the old one.
                Err(e) if e.kind() == ErrorKind::NotFound => return Ok(out),
                Err(e) => return Err(e),
            };
            if cur.is(&meta) {
                return Ok(out);
            }
            // Rotated: what the writer added meanwhile, then the partial line, then move on.
            if cur.read_lines(&mut lim, label, &mut out)? {
                return Ok(out);
            }
            cur.flush_partial(&mut lim, label, &mut out);
            match open(&self.location) {
                Ok((file, meta)) => {
                    tracing::info!(file = %self.location.display(), "rotated; reading the new file");
                    self.cur = Some(Open::new(file, &meta, 0));
                }
                Err(e) if e.kind() == ErrorKind::NotFound => return Ok(out),
                Err(e) => return Err(e),
            }
        }
    }

    /// Where a restart should resume: the open file and the end of its last complete line.
    pub fn position(&self) -> Option<SourcePos> {
        match &self.cur {
            Some(c) => Some(c.pos(c.offset)),
            None => self.saved,
        }
    }

    /// Opens the path (or the rotated sibling) the first time, as `start` says.
    fn open_first(&mut self) -> io::Result<()> {
        let opened = match open(&self.location) {
            Ok(x) => Some(x),
            Err(e) if e.kind() == ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        let start = std::mem::replace(&mut self.start, Start::Beginning);
        self.cur = match (start, opened) {
            (Start::Resume(pos), opened) => self.resume(pos, opened),
            (_, None) => None,
            (Start::End, Some((file, meta))) => {
                let len = meta.len();
                Some(Open::new(file, &meta, len))
            }
            (Start::Beginning, Some((file, meta))) => Some(Open::new(file, &meta, 0)),
        };
        Ok(())
    }

    /// Where to go on with a saved position, given what the path names now.
    fn resume(&self, pos: SourcePos, opened: Option<(File, Metadata)>) -> Option<Open> {
        let file = self.location.display();
        match opened {
            Some((f, meta)) if meta.dev() == pos.dev && meta.ino() == pos.ino => {
                let offset = if meta.len() < pos.offset {
                    tracing::warn!(%file, "truncated while stopped; reading from the start");
                    0
                } else {
                    pos.offset
                };
                Some(Open::new(f, &meta, offset))
            }
            // The path's current file is picked up once the old one is finished.
            opened => self.rotated_sibling(pos).or_else(|| {
                tracing::warn!(
                    %file,
                    "rotated while stopped and the old file is gone: lines written to it after \
                     the saved position are lost; reading the current file from the start"
                );
                opened.map(|(f, meta)| Open::new(f, &meta, 0))
            }),
        }
    }

    /// The file with the saved identity among the siblings named like the path.
    fn rotated_sibling(&self, pos: SourcePos) -> Option<Open> {
        let name = self.location.file_name()?.as_bytes();
        let dir = match self.location.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let entries = fs::read_dir(dir).ok()?;
        for entry in entries.flatten() {
            let entry_name = entry.file_name();
            let n: &OsStr = &entry_name;
            if n.as_bytes() == name || !n.as_bytes().starts_with(name) {
                continue;
            }
            let Ok((file, meta)) = open(&entry.path()) else {
                continue;
            };
            if meta.dev() != pos.dev || meta.ino() != pos.ino {
                continue;
            }
            tracing::info!(
                file = %self.location.display(),
                rotated = %entry.path().display(),
                "rotated while stopped; finishing the old file first"
            );
            let offset = if meta.len() < pos.offset {
                0
            } else {
                pos.offset
            };
            return Some(Open::new(file, &meta, offset));
        }
        None
    }
}

/// Opens a file and reads the identity of what was opened (not of what the path names later).
fn open(path: &Path) -> io::Result<(File, Metadata)> {
    let file = File::open(path)?;
    let meta = file.metadata()?;
    if meta.is_dir() {
        return Err(io::Error::new(
            ErrorKind::InvalidInput,
            format!("{} is a directory", path.display()),
        ));
    }
    Ok((file, meta))
}
