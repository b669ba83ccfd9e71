//! Request/response multiplexing over one sealed connection.
//!
//! [`spawn_peer`] starts a reader task and a writer task. Requests may flow both ways at
//! once: request ids come from a per-peer counter and a Response/Error id always refers to a
//! Request the receiving side sent. Any read error ends the connection: pending requests
//! fail with `Closed(reason)`, the incoming channel closes and [`Peer::closed`] resolves.
//! The connection also ends once every [`Peer`] clone and the incoming receiver are dropped.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, oneshot, watch, Notify};

use crate::{frame, Kind, Message, MsgReader, MsgWriter, WireError, MAX_MESSAGE};

/// Messages queued for the writer task; a full queue back-pressures callers.
pub const WRITE_QUEUE: usize = 64;
/// Messages delivered but not yet taken by the application.
pub const INCOMING_QUEUE: usize = 64;
/// After a local `close`, how long queued messages may take to go out.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

pub const REASON_LOCAL: &str = "closed locally";
pub const REASON_EOF: &str = "connection closed by peer";
pub const REASON_ABANDONED: &str = "no handle left on the connection";
/// Error text sent when a [`Responder`] is dropped unanswered.
pub const NO_ANSWER: &str = "no answer";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RpcError {
    /// The peer answered with an Error message carrying this text.
    #[error("peer answered with an error: {0}")]
    Remote(String),
    #[error("request timed out")]
    Timeout,
    /// The connection ended, for this reason.
    #[error("connection closed: {0}")]
    Closed(String),
    /// Refused before sending: bad command or oversized payload.
    #[error("invalid message: {0}")]
    Invalid(String),
}

type Reply = oneshot::Sender<Result<Vec<u8>, RpcError>>;

struct Pending {
    map: HashMap<u32, Reply>,
    closed: Option<String>,
}

struct Shared {
    pending: Mutex<Pending>,
    /// `Some(reason)` once the connection ended; wakes both tasks and `closed()`.
    state: watch::Sender<Option<String>>,
    /// The end came from a local `close()`: let queued messages drain.
    graceful: AtomicBool,
    next_id: AtomicU32,
    handles_gone: AtomicBool,
    handles_gone_notify: Notify,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere cannot leave the map inconsistent (single inserts/removes).
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    /// Ends the connection once; later calls keep the first reason.
    fn finish(&self, reason: &str, graceful: bool) {
        let drained = {
            let mut p = lock(&self.pending);
            if p.closed.is_some() {
                return;
            }
            p.closed = Some(reason.to_owned());
            std::mem::take(&mut p.map)
        };
        if graceful {
            self.graceful.store(true, Ordering::SeqCst);
        }
        self.state.send_replace(Some(reason.to_owned()));
        for (_, tx) in drained {
            let _ = tx.send(Err(RpcError::Closed(reason.to_owned())));
        }
    }

    fn reason(&self) -> String {
        self.state
            .borrow()
            .clone()
            .unwrap_or_else(|| REASON_LOCAL.to_owned())
    }

    fn closed_error(&self) -> RpcError {
        RpcError::Closed(self.reason())
    }
}

async fn wait_closed(rx: &mut watch::Receiver<Option<String>>) {
    // The sender lives in `Shared`, which the caller holds, so this only ends on close.
    let _ = rx.wait_for(Option::is_some).await;
}

/// Dropping the last clone lets the connection end once the incoming receiver is gone too.
struct HandleGuard(Arc<Shared>);

impl Drop for HandleGuard {
    fn drop(&mut self) {
        self.0.handles_gone.store(true, Ordering::SeqCst);
        self.0.handles_gone_notify.notify_one();
    }
}

/// Handle on a multiplexed connection; cheap to clone.
#[derive(Clone)]
pub struct Peer {
    shared: Arc<Shared>,
    tx: mpsc::Sender<Message>,
    _guard: Arc<HandleGuard>,
}

impl std::fmt::Debug for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peer")
            .field("closed", &*self.shared.state.borrow())
            .finish_non_exhaustive()
    }
}

/// Removes a pending entry however `request` ends (answer, timeout, caller gave up).
struct PendingGuard<'a> {
    shared: &'a Shared,
    id: u32,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        lock(&self.shared.pending).map.remove(&self.id);
    }
}

fn check(cmd: &str, payload: &[u8]) -> Result<(), RpcError> {
    frame::check_command(cmd).map_err(|e| RpcError::Invalid(e.to_string()))?;
    if payload.len() > MAX_MESSAGE {
        return Err(RpcError::Invalid(WireError::MessageTooLarge.to_string()));
    }
    Ok(())
}

impl Peer {
    /// Sends a Request and waits for its Response (payload) or Error (`Remote`). `timeout`
    /// covers queueing, sending and the answer; a late answer is then ignored.
    pub async fn request(
        &self,
        cmd: &str,
        payload: Vec<u8>,
        timeout: Duration,
    ) -> Result<Vec<u8>, RpcError> {
        check(cmd, &payload)?;
        let (reply_tx, reply_rx) = oneshot::channel();
        let id = {
            let mut p = lock(&self.shared.pending);
            if let Some(reason) = &p.closed {
                return Err(RpcError::Closed(reason.clone()));
            }
            let mut id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
            while p.map.contains_key(&id) {
                id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
            }
            p.map.insert(id, reply_tx);
            id
        };
        let _guard = PendingGuard {
            shared: &self.shared,
            id,
        };
        let msg = Message::new(id, Kind::Request, cmd, payload);
        let exchange = async {
            self.tx
                .send(msg)
                .await
                .map_err(|_| self.shared.closed_error())?;
            reply_rx
                .await
                .unwrap_or_else(|_| Err(self.shared.closed_error()))
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .unwrap_or(Err(RpcError::Timeout))
    }

    /// Sends a one-way Notice once it is queued for the writer.
    pub async fn notify(&self, cmd: &str, payload: Vec<u8>) -> Result<(), RpcError> {
        check(cmd, &payload)?;
        if self.is_closed() {
            return Err(self.shared.closed_error());
        }
        self.tx
            .send(Message::new(0, Kind::Notice, cmd, payload))
            .await
            .map_err(|_| self.shared.closed_error())
    }

    /// Ends the connection: messages already queued get up to [`DRAIN_TIMEOUT`] to go out,
    /// then the socket is shut; pending requests fail with `Closed("closed locally")`.
    pub fn close(&self) {
        self.shared.finish(REASON_LOCAL, true);
    }

    /// Resolves once the connection ended, with the reason.
    pub async fn closed(&self) -> String {
        let mut rx = self.shared.state.subscribe();
        wait_closed(&mut rx).await;
        self.shared.reason()
    }

    pub fn is_closed(&self) -> bool {
        self.shared.state.borrow().is_some()
    }
}

/// A message the peer sent: a Request (with `reply`) or a Notice (`reply` is `None`).
#[derive(Debug)]
pub struct Incoming {
    pub command: String,
    pub payload: Vec<u8>,
    pub reply: Option<Responder>,
}

/// Answers one Request. Dropping it unanswered sends an Error "no answer".
#[derive(Debug)]
pub struct Responder {
    id: u32,
    command: String,
    tx: Option<mpsc::Sender<Message>>,
}

impl Responder {
    /// The request's id (per the sending side).
    pub fn id(&self) -> u32 {
        self.id
    }

    fn answer(&mut self, kind: Kind, payload: Vec<u8>) -> Option<(mpsc::Sender<Message>, Message)> {
        let tx = self.tx.take()?;
        let msg = Message::new(self.id, kind, std::mem::take(&mut self.command), payload);
        Some((tx, msg))
    }

    /// Sends a Response. One too large to send becomes an Error so the requester is not
    /// left waiting.
    pub async fn ok(mut self, payload: Vec<u8>) {
        let (kind, payload) = if payload.len() > MAX_MESSAGE {
            (Kind::Error, b"response too large".to_vec())
        } else {
            (Kind::Response, payload)
        };
        if let Some((tx, msg)) = self.answer(kind, payload) {
            let _ = tx.send(msg).await;
        }
    }

    /// Sends an Error carrying `msg`; the requester sees `RpcError::Remote(msg)`.
    pub async fn err(mut self, msg: impl Into<String>) {
        let mut text: String = msg.into();
        if text.len() > MAX_MESSAGE {
            let mut end = MAX_MESSAGE;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
        }
        if let Some((tx, msg)) = self.answer(Kind::Error, text.into_bytes()) {
            let _ = tx.send(msg).await;
        }
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        let Some((tx, msg)) = self.answer(Kind::Error, NO_ANSWER.as_bytes().to_vec()) else {
            return;
        };
        match tx.try_send(msg) {
            Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => {}
            Err(mpsc::error::TrySendError::Full(msg)) => {
                // Drop cannot wait; hand the send to the runtime if there is one.
                if let Ok(rt) = tokio::runtime::Handle::try_current() {
                    rt.spawn(async move {
                        let _ = tx.send(msg).await;
                    });
                }
            }
        }
    }
}

/// Starts the reader and writer tasks of one connection. Must run inside a tokio runtime.
pub fn spawn_peer<R, W>(
    reader: MsgReader<R>,
    writer: MsgWriter<W>,
) -> (Peer, mpsc::Receiver<Incoming>)
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    spawn_peer_with(reader, writer, INCOMING_QUEUE)
}

/// [`spawn_peer`] holding at most `incoming` undelivered messages (with the reader's message
/// cap, that bounds what one peer can make us buffer).
pub fn spawn_peer_with<R, W>(
    reader: MsgReader<R>,
    writer: MsgWriter<W>,
    incoming: usize,
) -> (Peer, mpsc::Receiver<Incoming>)
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let shared = Arc::new(Shared {
        pending: Mutex::new(Pending {
            map: HashMap::new(),
            closed: None,
        }),
        state: watch::Sender::new(None),
        graceful: AtomicBool::new(false),
        next_id: AtomicU32::new(1),
        handles_gone: AtomicBool::new(false),
        handles_gone_notify: Notify::new(),
    });
    let (out_tx, out_rx) = mpsc::channel(WRITE_QUEUE);
    let (in_tx, in_rx) = mpsc::channel(incoming.max(1));
    tokio::spawn(reader_task(reader, shared.clone(), out_tx.clone(), in_tx));
    tokio::spawn(writer_task(writer, shared.clone(), out_rx));
    let peer = Peer {
        _guard: Arc::new(HandleGuard(shared.clone())),
        shared,
        tx: out_tx,
    };
    (peer, in_rx)
}

/// Resolves when nobody can use the connection any more.
async fn abandoned(shared: &Shared, incoming: &mpsc::Sender<Incoming>) {
    incoming.closed().await;
    loop {
        let woken = shared.handles_gone_notify.notified();
        if shared.handles_gone.load(Ordering::SeqCst) {
            return;
        }
        woken.await;
    }
}

async fn reader_task<R: AsyncRead + Unpin>(
    mut reader: MsgReader<R>,
    shared: Arc<Shared>,
    out: mpsc::Sender<Message>,
    incoming: mpsc::Sender<Incoming>,
) {
    let mut state = shared.state.subscribe();
    let reason = loop {
        let read = tokio::select! {
            r = reader.read() => r,
            () = wait_closed(&mut state) => return,
            () = abandoned(&shared, &incoming) => break REASON_ABANDONED.to_owned(),
        };
        let m = match read {
            Ok(Some(m)) => m,
            Ok(None) => break REASON_EOF.to_owned(),
            Err(e) => {
                tracing::debug!(error = %e, "wire connection failed");
                break e.to_string();
            }
        };
        let delivery = match m.kind {
            Kind::Response | Kind::Error => {
                let reply = lock(&shared.pending).map.remove(&m.id);
                match reply {
                    Some(tx) => {
                        let result = if m.kind == Kind::Response {
                            Ok(m.payload)
                        } else {
                            Err(RpcError::Remote(
                                String::from_utf8_lossy(&m.payload).into_owned(),
                            ))
                        };
                        let _ = tx.send(result);
                    }
                    // Late answer to a request that already timed out.
                    None => tracing::debug!(id = m.id, "answer to unknown request ignored"),
                }
                continue;
            }
            Kind::Request => Incoming {
                reply: Some(Responder {
                    id: m.id,
                    command: m.command.clone(),
                    tx: Some(out.clone()),
                }),
                command: m.command,
                payload: m.payload,
            },
            Kind::Notice => Incoming {
                command: m.command,
                payload: m.payload,
                reply: None,
            },
        };
        // A dropped receiver hands the Incoming back; dropping it answers "no answer".
        tokio::select! {
            _ = incoming.send(delivery) => {}
            () = wait_closed(&mut state) => return,
        }
    };
    shared.finish(&reason, false);
}

/// Resolves when an in-progress write must be abandoned: at once after a failure, after
/// [`DRAIN_TIMEOUT`] after a local close.
async fn write_deadline(shared: &Shared, state: &mut watch::Receiver<Option<String>>) {
    wait_closed(state).await;
    if shared.graceful.load(Ordering::SeqCst) {
        tokio::time::sleep(DRAIN_TIMEOUT).await;
    }
}

/// Writes one message; `Ok(false)` means the stream was abandoned mid-message.
async fn write_one<W: AsyncWrite + Unpin>(
    writer: &mut MsgWriter<W>,
    shared: &Shared,
    state: &mut watch::Receiver<Option<String>>,
    m: &Message,
) -> Result<bool, WireError> {
    tokio::select! {
        r = writer.write(m) => match r {
            Ok(()) => Ok(true),
            // Refused before any byte was written: drop the message, keep the connection.
            Err(e @ (WireError::MessageTooLarge | WireError::Protocol(_))) => {
                tracing::warn!(error = %e, command = %m.command, "message not sent");
                Ok(true)
            }
            Err(e) => Err(e),
        },
        () = write_deadline(shared, state) => Ok(false),
    }
}

async fn writer_task<W: AsyncWrite + Unpin>(
    mut writer: MsgWriter<W>,
    shared: Arc<Shared>,
    mut rx: mpsc::Receiver<Message>,
) {
    let mut state = shared.state.subscribe();
    let mut intact = true;
    loop {
        let m = tokio::select! {
            biased;
            () = wait_closed(&mut state) => break,
            m = rx.recv() => match m {
                Some(m) => m,
                None => break,
            },
        };
        match write_one(&mut writer, &shared, &mut state, &m).await {
            Ok(true) => {}
            Ok(false) => {
                intact = false;
                break;
            }
            Err(e) => {
                shared.finish(&format!("write failed: {e}"), false);
                intact = false;
                break;
            }
        }
    }
    // After a local close, send what callers already queued (e.g. a final Error answer).
    if intact && shared.graceful.load(Ordering::SeqCst) {
        let deadline = tokio::time::Instant::now() + DRAIN_TIMEOUT;
        while let Ok(m) = rx.try_recv() {
            match tokio::time::timeout_at(deadline, writer.write(&m)).await {
                Ok(Ok(())) | Ok(Err(WireError::MessageTooLarge | WireError::Protocol(_))) => {}
                _ => break,
            }
        }
    }
    rx.close();
    let _ = tokio::time::timeout(Duration::from_secs(1), writer.shutdown()).await;
}
