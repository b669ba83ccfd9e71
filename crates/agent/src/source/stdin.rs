//! Lines from a byte stream (stdin in production, a byte slice in tests).

use tokio::io::{AsyncBufRead, AsyncBufReadExt};
use tokio::sync::mpsc;

use super::{now_ms, LineBuf};
use crate::event::Event;

/// Sends one event per line (no position: a stream cannot be resumed) until EOF; a last line
/// without a newline is sent too. Stops early when the receiver is gone or on a read error.
pub async fn read_lines<R: AsyncBufRead + Unpin>(mut r: R, label: &str, tx: mpsc::Sender<Event>) {
    let mut line = LineBuf::default();
    loop {
        let buf = match r.fill_buf().await {
            Ok(buf) => buf,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                tracing::warn!(source = label, "read error, stopping: {e}");
                return;
            }
        };
        if buf.is_empty() {
            if !line.is_empty() {
                let _ = tx.send(event(label, line.take())).await;
            }
            return;
        }
        let (used, done) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => {
                line.push(&buf[..i]);
                (i + 1, true)
            }
            None => {
                line.push(buf);
                (buf.len(), false)
            }
        };
        r.consume(used);
        if done && tx.send(event(label, line.take())).await.is_err() {
            return;
        }
    }
}

fn event(label: &str, log: Vec<u8>) -> Event {
    Event {
        ts_ms: now_ms(),
        location: label.to_string(),
        log,
        pos: None,
    }
}
