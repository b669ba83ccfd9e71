//! The `logs/cluster.log` writer, line-compatible with wazuh-clusterd:
//! `2024/04/05 19:23:06 INFO: [Master] [Local integrity] Finished in 0.090s.`
//! Every line is also forwarded to `tracing` (target "cluster").

use std::fmt::{self, Display};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use time::{OffsetDateTime, UtcOffset};

/// Severity, printed as Wazuh does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    Error,
    Warning,
    Info,
    Debug,
    Debug2,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Error => "ERROR",
            Level::Warning => "WARNING",
            Level::Info => "INFO",
            Level::Debug => "DEBUG",
            Level::Debug2 => "DEBUG2",
        }
    }
}

impl Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One cluster log. Cheap to share (`Arc`); writes are serialized so lines never interleave.
#[derive(Debug)]
pub struct ClusterLog {
    /// `None` for the discarding sink.
    file: Option<Mutex<File>>,
    debug: u8,
    offset: UtcOffset,
    write_failures: AtomicU64,
}

impl ClusterLog {
    /// Opens `path` for appending (creating it with mode 0640 and its parent directories).
    /// `debug` is the clusterd debug level: 1 enables DEBUG lines, 2 also DEBUG2.
    pub fn open(path: &Path, debug: u8) -> std::io::Result<Arc<ClusterLog>> {
        if let Some(parent) = path.parent() {
            if !parent.as_os_str().is_empty() {
                fs::create_dir_all(parent)?;
            }
        }
        let file = OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o640)
            .open(path)?;
        Ok(Arc::new(ClusterLog {
            file: Some(Mutex::new(file)),
            debug,
            offset: local_offset(),
            write_failures: AtomicU64::new(0),
        }))
    }

    /// A log that writes nothing to disk (lines still go to `tracing`). For tests.
    pub fn sink() -> Arc<ClusterLog> {
        Arc::new(ClusterLog {
            file: None,
            debug: 2,
            offset: UtcOffset::UTC,
            write_failures: AtomicU64::new(0),
        })
    }

    /// Whether lines of `level` are written at this debug level.
    pub fn enabled(&self, level: Level) -> bool {
        match level {
            Level::Debug => self.debug >= 1,
            Level::Debug2 => self.debug >= 2,
            _ => true,
        }
    }

    /// How many lines could not be written (the log never fails its caller).
    pub fn write_failures(&self) -> u64 {
        self.write_failures.load(Ordering::Relaxed)
    }

    pub fn log(&self, level: Level, tag: &str, task: &str, msg: impl Display) {
        if !self.enabled(level) {
            return;
        }
        let now = OffsetDateTime::now_utc().to_offset(self.offset);
        let line = format_line(now, level, tag, task, msg);
        forward(level, &line);
        let Some(file) = &self.file else { return };
        let mut buf = line.into_bytes();
        buf.push(b'\n');
        // A poisoned lock only means another writer panicked; the file is still usable.
        let mut f = file.lock().unwrap_or_else(|p| p.into_inner());
        // One write_all of the whole line: with O_APPEND the line lands in one piece.
        if f.write_all(&buf).is_err() {
            self.write_failures.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn error(&self, tag: &str, task: &str, msg: impl Display) {
        self.log(Level::Error, tag, task, msg);
    }
    pub fn warning(&self, tag: &str, task: &str, msg: impl Display) {
        self.log(Level::Warning, tag, task, msg);
    }
    pub fn info(&self, tag: &str, task: &str, msg: impl Display) {
        self.log(Level::Info, tag, task, msg);
    }
    pub fn debug(&self, tag: &str, task: &str, msg: impl Display) {
        self.log(Level::Debug, tag, task, msg);
    }
    pub fn debug2(&self, tag: &str, task: &str, msg: impl Display) {
        self.log(Level::Debug2, tag, task, msg);
    }
}

/// Caches the local UTC offset. The `time` crate can only read it while the process is
/// single-threaded, so the binary should call this before starting its runtime; otherwise
/// (or if the offset is unknown) UTC is used.
pub fn init_local_offset() -> UtcOffset {
    local_offset()
}

fn local_offset() -> UtcOffset {
    static OFFSET: OnceLock<UtcOffset> = OnceLock::new();
    *OFFSET.get_or_init(|| UtcOffset::current_local_offset().unwrap_or(UtcOffset::UTC))
}

/// One line without its newline: `YYYY/MM/DD HH:MM:SS LEVEL: [tag] [task] msg`
/// (an empty tag or task is left out).
pub fn format_line(
    ts: OffsetDateTime,
    level: Level,
    tag: &str,
    task: &str,
    msg: impl Display,
) -> String {
    let mut s = format!(
        "{:04}/{:02}/{:02} {:02}:{:02}:{:02} {}:",
        ts.year(),
        u8::from(ts.month()),
        ts.day(),
        ts.hour(),
        ts.minute(),
        ts.second(),
        level.as_str()
    );
    for part in [tag, task] {
        if !part.is_empty() {
            s.push_str(" [");
            s.push_str(part);
            s.push(']');
        }
    }
    s.push(' ');
    // Display into the buffer directly; writing to a String cannot fail.
    let _ = fmt::Write::write_fmt(&mut s, format_args!("{msg}"));
    s
}

fn forward(level: Level, line: &str) {
    match level {
        Level::Error => tracing::error!(target: "cluster", "{line}"),
        Level::Warning => tracing::warn!(target: "cluster", "{line}"),
        Level::Info => tracing::info!(target: "cluster", "{line}"),
        Level::Debug => tracing::debug!(target: "cluster", "{line}"),
        Level::Debug2 => tracing::trace!(target: "cluster", "{line}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn wazuh_line_format() {
        let ts = datetime!(2024-04-05 19:23:06 UTC);
        assert_eq!(
            format_line(
                ts,
                Level::Info,
                "Master",
                "Local integrity",
                "Finished in 0.090s. Calculated metadata of 34 files."
            ),
            "2024/04/05 19:23:06 INFO: [Master] [Local integrity] Finished in 0.090s. \
             Calculated metadata of 34 files."
        );
        let ts = datetime!(2024-01-02 03:04:05 +02:00);
        assert_eq!(
            format_line(ts, Level::Debug2, "Worker worker1", "", 42),
            "2024/01/02 03:04:05 DEBUG2: [Worker worker1] 42"
        );
        assert_eq!(
            format_line(ts, Level::Warning, "", "", "x"),
            "2024/01/02 03:04:05 WARNING: x"
        );
        assert_eq!(Level::Error.to_string(), "ERROR");
        assert_eq!(Level::Debug.to_string(), "DEBUG");
    }

    #[test]
    fn debug_levels_filter_and_append() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("logs/cluster.log");
        let log = ClusterLog::open(&path, 1).unwrap();
        log.info("Master", "Main", "one");
        log.debug("Master", "Main", "two");
        log.debug2("Master", "Main", "three");
        drop(log);
        let log = ClusterLog::open(&path, 0).unwrap();
        log.error("Master", "Main", "four");
        log.debug("Master", "Main", "five");
        let text = fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines[0].ends_with(" INFO: [Master] [Main] one"));
        assert!(lines[1].ends_with(" DEBUG: [Master] [Main] two"));
        assert!(lines[2].ends_with(" ERROR: [Master] [Main] four"));
        assert_eq!(log.write_failures(), 0);
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode & !0o640, 0, "mode {mode:o}");
    }

    #[test]
    fn concurrent_lines_stay_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cluster.log");
        let log = ClusterLog::open(&path, 0).unwrap();
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let log = Arc::clone(&log);
                std::thread::spawn(move || {
                    for i in 0..200 {
                        log.info(
                            "Worker",
                            "Agent-info",
                            format!("t{t} i{i} {}", "x".repeat(300)),
                        );
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 1600);
        assert!(
            text.lines()
                .all(|l| l.contains(" INFO: [Worker] [Agent-info] t")
                    && l.ends_with(&"x".repeat(300)))
        );
    }

    #[test]
    fn sink_discards() {
        let log = ClusterLog::sink();
        log.info("Master", "Main", "nothing");
        assert_eq!(log.write_failures(), 0);
        assert!(log.enabled(Level::Debug2));
    }
}
