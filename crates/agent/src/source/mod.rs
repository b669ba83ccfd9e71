//! Where events come from: log files followed across rotation ([`tail`]) and a byte stream
//! such as stdin ([`stdin`]). Both cut lines the same way ([`LineBuf`]).

pub mod stdin;
pub mod tail;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc;
use tokio::time::MissedTickBehavior;

use crate::event::{Event, MAX_LOG};
pub use tail::Tailer;

/// Most lines one tailer hands over per poll, so one busy file cannot starve the others.
pub const POLL_MAX_LINES: usize = 1000;
/// Most bytes of log one tailer hands over per poll.
pub const POLL_MAX_BYTES: usize = 1 << 20;

/// Wall clock, unix milliseconds.
pub fn now_ms() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(_) => 0, // clock before 1970: nothing sensible to report
    }
}

/// Polls every tailer each `interval` and sends each non-empty batch; a full batch makes the
/// next round start at once. Awaiting `send` is the back-pressure: while the spool is slow
/// nothing more is read (the files keep the data). Ends when the receiver is gone.
pub async fn run_tailers(mut files: Vec<Tailer>, interval: Duration, tx: mpsc::Sender<Vec<Event>>) {
    // Last error per file, so a lasting problem (permissions) is logged once, not 4 times a second.
    let mut last_err: Vec<Option<String>> = vec![None; files.len()];
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        loop {
            if tx.is_closed() {
                return;
            }
            let mut more = false;
            for (t, last) in files.iter_mut().zip(last_err.iter_mut()) {
                match t.poll(now_ms(), POLL_MAX_LINES, POLL_MAX_BYTES) {
                    Ok(batch) => {
                        if last.take().is_some() {
                            tracing::info!(file = %t.location().display(), "reading again");
                        }
                        if batch.is_empty() {
                            continue;
                        }
                        let bytes: usize = batch.iter().map(|e| e.log.len()).sum();
                        more |= batch.len() >= POLL_MAX_LINES || bytes >= POLL_MAX_BYTES;
                        if tx.send(batch).await.is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        let msg = e.to_string();
                        if last.as_deref() != Some(msg.as_str()) {
                            tracing::warn!(file = %t.location().display(), "cannot read: {msg}");
                            *last = Some(msg);
                        }
                    }
                }
            }
            if !more {
                break;
            }
            tokio::task::yield_now().await;
        }
    }
}

/// One line being assembled from chunks: keeps at most `MAX_LOG + 1` bytes (one more than a
/// log may hold, to tell a trailing `\r` from an overlong line) and drops the rest.
#[derive(Debug, Default)]
pub(crate) struct LineBuf {
    line: Vec<u8>,
    /// Bytes past the cap were dropped: the line is cut.
    cut: bool,
}

impl LineBuf {
    const CAP: usize = MAX_LOG + 1;

    pub(crate) fn push(&mut self, bytes: &[u8]) {
        let room = Self::CAP.saturating_sub(self.line.len());
        let take = room.min(bytes.len());
        self.line.extend_from_slice(&bytes[..take]);
        if take < bytes.len() {
            self.cut = true;
        }
    }

    /// Nothing pending (not even a cut remainder).
    pub(crate) fn is_empty(&self) -> bool {
        self.line.is_empty() && !self.cut
    }

    /// The finished line: trailing `\r` removed, at most `MAX_LOG` bytes.
    pub(crate) fn take(&mut self) -> Vec<u8> {
        let mut line = std::mem::take(&mut self.line);
        if !self.cut && line.last() == Some(&b'\r') {
            line.pop();
        }
        line.truncate(MAX_LOG);
        self.cut = false;
        line
    }
}
