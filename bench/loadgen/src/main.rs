//! `loadgen`: the origin server and the load generators behind `bench/run.sh`.
//!
//! - `origin`   a multi-thread echo (or echo-once-then-close) server.
//! - `connrate` N workers looping connect → write B → read B → close; new connections/s.
//! - `latency`  open-loop requests at a fixed aggregate rate over persistent connections;
//!   latency is measured from each request's *scheduled* send time (no coordinated omission).
//! - `idle`     opens N connections, proves each one end to end, then holds them.
//!
//! Every measuring subcommand prints exactly one JSON line on stdout. I/O errors are counted,
//! never unwrapped, and every subcommand is bounded in time.

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio::time::{sleep, timeout, timeout_at};

#[derive(Parser)]
#[command(
    name = "loadgen",
    about = "Origin server and load generators for rampart's side-by-side benchmarks"
)]
struct Cli {
    /// Runtime worker threads (default: one per core).
    #[arg(long, global = true)]
    threads: Option<usize>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Serve on ADDR until SIGTERM/SIGINT or --seconds.
    Origin {
        #[arg(long)]
        listen: SocketAddr,
        #[arg(long, value_enum, default_value = "echo")]
        mode: Mode,
        /// Stop by itself after this long.
        #[arg(long, default_value_t = 3600.0)]
        seconds: f64,
    },
    /// New connections per second: connect, write SIZE bytes, read SIZE bytes, close.
    Connrate {
        #[arg(long)]
        target: SocketAddr,
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        #[arg(long, default_value_t = 5.0)]
        seconds: f64,
        #[arg(long, default_value_t = 64)]
        size: usize,
    },
    /// Open-loop latency at a fixed aggregate request rate over persistent connections.
    Latency {
        #[arg(long)]
        target: SocketAddr,
        /// Requests per second, all connections together.
        #[arg(long, default_value_t = 5000.0)]
        rate: f64,
        /// Measured duration (after --warmup).
        #[arg(long, default_value_t = 5.0)]
        seconds: f64,
        /// Requests scheduled in this first stretch are sent but not recorded.
        #[arg(long, default_value_t = 1.0)]
        warmup: f64,
        #[arg(long, default_value_t = 64)]
        size: usize,
        #[arg(long, default_value_t = 50)]
        connections: usize,
    },
    /// Open COUNT proven connections, write READY_FILE, hold them.
    Idle {
        #[arg(long)]
        target: SocketAddr,
        #[arg(long)]
        count: usize,
        /// Written (atomically) with the result JSON once every connection is settled.
        #[arg(long)]
        ready_file: PathBuf,
        /// Release the connections after this long at most.
        #[arg(long, default_value_t = 600.0)]
        hold_seconds: f64,
        /// Also release them when standard input reaches end of file.
        #[arg(long)]
        stdin_eof: bool,
        /// Connections being opened at once.
        #[arg(long, default_value_t = 256)]
        concurrency: usize,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Mode {
    /// Write back whatever is read; keep the connection until the client closes.
    Echo,
    /// Write back the first read, then close (server-initiated close).
    Close,
}

/// How long one connection attempt, or one request, may take before it counts as an error.
const OP_TIMEOUT: Duration = Duration::from_secs(10);

fn main() -> Result<()> {
    let cli = Cli::parse();
    raise_nofile();
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = cli.threads {
        rt.worker_threads(n.max(1));
    }
    let rt = rt
        .enable_all()
        .build()
        .context("building the tokio runtime")?;
    rt.block_on(async move {
        match cli.cmd {
            Cmd::Origin {
                listen,
                mode,
                seconds,
            } => origin(listen, mode, secs(seconds)?).await,
            Cmd::Connrate {
                target,
                concurrency,
                seconds,
                size,
            } => connrate(target, concurrency.max(1), secs(seconds)?, size.max(1)).await,
            Cmd::Latency {
                target,
                rate,
                seconds,
                warmup,
                size,
                connections,
            } => {
                if !rate.is_finite() || rate <= 0.0 {
                    bail!("--rate must be positive");
                }
                let (run, warm) = (secs(seconds)?, secs(warmup)?);
                latency(target, rate, run, warm, size.max(1), connections.max(1)).await
            }
            Cmd::Idle {
                target,
                count,
                ready_file,
                hold_seconds,
                stdin_eof,
                concurrency,
            } => {
                let hold = secs(hold_seconds)?;
                idle(
                    target,
                    count,
                    &ready_file,
                    hold,
                    stdin_eof,
                    concurrency.max(1),
                )
                .await
            }
        }
    })
}

fn secs(s: f64) -> Result<Duration> {
    Duration::try_from_secs_f64(s).context("a duration in seconds must be finite and >= 0")
}

/// Raise the soft open-file limit to the hard one (idle holds thousands of sockets).
fn raise_nofile() {
    // SAFETY: plain libc calls on a local, fully initialised struct.
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                eprintln!(
                    "loadgen: could not raise RLIMIT_NOFILE: {}",
                    io::Error::last_os_error()
                );
            }
        }
    }
}

/// User + system CPU seconds this process has used so far.
fn cpu_seconds() -> f64 {
    // SAFETY: getrusage fills the zeroed struct it is given.
    unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        if libc::getrusage(libc::RUSAGE_SELF, &mut ru) != 0 {
            return 0.0;
        }
        let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
        tv(ru.ru_utime) + tv(ru.ru_stime)
    }
}

/// Counts errors by kind, for one summary line on stderr.
#[derive(Default, Clone)]
struct Errors(Arc<Mutex<BTreeMap<String, u64>>>);

impl Errors {
    fn add(&self, what: impl Into<String>) {
        if let Ok(mut m) = self.0.lock() {
            *m.entry(what.into()).or_default() += 1;
        }
    }
    fn total(&self) -> u64 {
        self.0.lock().map(|m| m.values().sum()).unwrap_or(0)
    }
    fn report(&self, who: &str) {
        if let Ok(m) = self.0.lock() {
            if !m.is_empty() {
                let parts: Vec<String> = m.iter().map(|(k, v)| format!("{k}: {v}")).collect();
                eprintln!("loadgen {who}: errors: {}", parts.join(", "));
            }
        }
    }
}

fn kind(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(code) => format!("{:?} (os error {code})", e.kind()),
        None => format!("{:?}", e.kind()),
    }
}

async fn stop_signal() -> Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("SIGINT handler")?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// origin

async fn origin(listen: SocketAddr, mode: Mode, run_for: Duration) -> Result<()> {
    let sock = if listen.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }?;
    sock.set_reuseaddr(true)?;
    sock.bind(listen)
        .with_context(|| format!("binding {listen}"))?;
    let listener = sock.listen(4096)?;
    let errors = Errors::default();
    let accepted = Arc::new(AtomicU64::new(0));
    let serve = {
        let (errors, accepted) = (errors.clone(), accepted.clone());
        async move {
            loop {
                match listener.accept().await {
                    Ok((s, _)) => {
                        accepted.fetch_add(1, Ordering::Relaxed);
                        let errors = errors.clone();
                        tokio::spawn(async move {
                            match serve_one(s, mode).await {
                                // connrate closes with a RST on purpose (SO_LINGER 0)
                                Err(e) if e.kind() != io::ErrorKind::ConnectionReset => {
                                    errors.add(kind(&e))
                                }
                                _ => {}
                            }
                        });
                    }
                    Err(e) => {
                        // EMFILE and friends: count, back off a little, keep serving.
                        errors.add(format!("accept {}", kind(&e)));
                        sleep(Duration::from_millis(10)).await;
                    }
                }
            }
        }
    };
    tokio::select! {
        _ = serve => {}
        r = stop_signal() => r?,
        _ = sleep(run_for) => {}
    }
    eprintln!(
        "loadgen origin: {} connections accepted",
        accepted.load(Ordering::Relaxed)
    );
    errors.report("origin");
    Ok(())
}

async fn serve_one(mut s: TcpStream, mode: Mode) -> io::Result<()> {
    s.set_nodelay(true)?;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = s.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        s.write_all(&buf[..n]).await?;
        if let Mode::Close = mode {
            return s.shutdown().await;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// connrate

async fn connrate(target: SocketAddr, conc: usize, run_for: Duration, size: usize) -> Result<()> {
    let completed = Arc::new(AtomicU64::new(0));
    let errors = Errors::default();
    let cpu0 = cpu_seconds();
    let start = Instant::now();
    let deadline = tokio::time::Instant::from_std(start + run_for);
    let mut workers = Vec::with_capacity(conc);
    for _ in 0..conc {
        let (completed, errors) = (completed.clone(), errors.clone());
        workers.push(tokio::spawn(async move {
            let payload = vec![b'c'; size];
            let mut buf = vec![0u8; size];
            while tokio::time::Instant::now() < deadline {
                match timeout_at(deadline, one_exchange(target, &payload, &mut buf)).await {
                    Err(_) => break, // cut short by the end of the run: not counted either way
                    Ok(Ok(())) => {
                        completed.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(Err(e)) => {
                        errors.add(kind(&e));
                        // A refused or exhausted target must not turn into a busy loop.
                        sleep(Duration::from_millis(1)).await;
                    }
                }
            }
        }));
    }
    for w in workers {
        if let Err(e) = w.await {
            errors.add(format!("worker {e}"));
        }
    }
    let done = completed.load(Ordering::Relaxed);
    let elapsed = run_for.as_secs_f64().max(1e-9);
    println!(
        "{{\"conn_per_s\":{:.0},\"errors\":{},\"completed\":{},\"seconds\":{:.3},\"concurrency\":{},\"cpu_s\":{:.2}}}",
        done as f64 / elapsed,
        errors.total(),
        done,
        elapsed,
        conc,
        cpu_seconds() - cpu0
    );
    errors.report("connrate");
    Ok(())
}

/// One short-lived connection. SO_LINGER 0: the close is a RST, so the client side never
/// holds a TIME_WAIT entry and a long run cannot exhaust the ephemeral ports.
async fn one_exchange(target: SocketAddr, payload: &[u8], buf: &mut [u8]) -> io::Result<()> {
    let sock = if target.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }?;
    socket2::SockRef::from(&sock).set_linger(Some(Duration::ZERO))?;
    let mut s = timeout(OP_TIMEOUT, sock.connect(target))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
    s.set_nodelay(true)?;
    s.write_all(payload).await?;
    timeout(OP_TIMEOUT, s.read_exact(buf))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "reply timed out"))??;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// latency

async fn latency(
    target: SocketAddr,
    rate: f64,
    run_for: Duration,
    warmup: Duration,
    size: usize,
    conns: usize,
) -> Result<()> {
    let mut streams = Vec::with_capacity(conns);
    for _ in 0..conns {
        let s = timeout(OP_TIMEOUT, TcpStream::connect(target))
            .await
            .context("connect timed out")?
            .with_context(|| format!("connecting to {target}"))?;
        s.set_nodelay(true)?;
        streams.push(Arc::new(s));
    }
    // Proof that every connection answers before the clock starts.
    for s in &streams {
        let mut b = [0u8; 1];
        write_all_fd(s.as_raw_fd(), b"w", Instant::now() + OP_TIMEOUT)?;
        timeout(OP_TIMEOUT, read_exact_shared(s, &mut b))
            .await
            .context("warm-up reply timed out")??;
    }

    let cpu0 = cpu_seconds();
    let start = Instant::now() + Duration::from_millis(20);
    let record_from = start + warmup;
    let end = record_from + run_for;
    let hard_end = end + Duration::from_secs(2);
    let total = ((warmup + run_for).as_secs_f64() * rate).round() as u64;

    // Readers: one task per connection, matching replies in order with the scheduled times
    // the pacer queued *before* writing each request.
    let mut txs = Vec::with_capacity(conns);
    let mut readers = Vec::with_capacity(conns);
    for s in &streams {
        let (tx, mut rx) = mpsc::unbounded_channel::<Instant>();
        txs.push(Some(tx));
        let s = s.clone();
        readers.push(tokio::spawn(async move {
            let mut buf = vec![0u8; size];
            let (mut lat, mut got, mut err) = (Vec::new(), 0u64, None);
            while let Some(sched) = rx.recv().await {
                let deadline = tokio::time::Instant::from_std(hard_end);
                match timeout_at(deadline, read_exact_shared(&s, &mut buf)).await {
                    Ok(Ok(())) => {
                        got += 1;
                        if sched >= record_from {
                            lat.push(sched.elapsed().as_micros() as u64);
                        }
                    }
                    Ok(Err(e)) => {
                        err = Some(kind(&e));
                        break;
                    }
                    Err(_) => {
                        err = Some("reply timed out".into());
                        break;
                    }
                }
            }
            (lat, got, err)
        }));
    }

    // Pacer: a plain thread with a 1 ns timer slack, so sends leave on schedule to within a few
    // microseconds (tokio's timer has a 1 ms granularity). It writes with send(2) on the raw
    // descriptors; the Arc'd streams keep them open until it is done.
    let fds: Vec<RawFd> = streams.iter().map(|s| s.as_raw_fd()).collect();
    let payload = vec![b'l'; size];
    let pacer = std::thread::spawn(move || {
        // SAFETY: prctl on the calling thread only.
        unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong, 0, 0, 0) };
        let mut write_errors = BTreeMap::<String, u64>::new();
        let mut lag = Vec::with_capacity(total as usize);
        for i in 0..total {
            let at = start + Duration::from_secs_f64(i as f64 / rate);
            let now = Instant::now();
            if at > now {
                std::thread::sleep(at - now);
            }
            if at >= record_from {
                lag.push(at.elapsed().as_micros() as u64);
            }
            let c = (i % fds.len() as u64) as usize;
            let Some(tx) = &txs[c] else { continue };
            if tx.send(at).is_err() {
                txs[c] = None; // its reader gave up
                continue;
            }
            if let Err(e) = write_all_fd(fds[c], &payload, hard_end) {
                *write_errors
                    .entry(format!("write {}", kind(&e)))
                    .or_default() += 1;
                txs[c] = None;
            }
        }
        (write_errors, lag)
        // dropping txs here lets every reader finish its queue and stop
    });
    let (write_errors, mut lag) = tokio::task::spawn_blocking(move || pacer.join())
        .await
        .context("pacer join")?
        .map_err(|_| anyhow::anyhow!("pacer thread panicked"))?;

    let errors = Errors::default();
    for (k, v) in write_errors {
        for _ in 0..v {
            errors.add(k.clone());
        }
    }
    let (mut all, mut answered) = (Vec::new(), 0u64);
    for r in readers {
        match r.await {
            Ok((lat, got, err)) => {
                all.extend(lat);
                answered += got;
                if let Some(e) = err {
                    errors.add(e);
                }
            }
            Err(e) => errors.add(format!("reader {e}")),
        }
    }
    drop(streams);
    all.sort_unstable();
    lag.sort_unstable();
    let pct = |v: &[u64], q: f64| -> u64 {
        if v.is_empty() {
            return 0;
        }
        let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
        v[rank - 1]
    };
    let mean = if all.is_empty() {
        0.0
    } else {
        all.iter().sum::<u64>() as f64 / all.len() as f64
    };
    println!(
        "{{\"p50_us\":{},\"p99_us\":{},\"p999_us\":{},\"max_us\":{},\"mean_us\":{:.1},\"count\":{},\"errors\":{},\"rate\":{},\"connections\":{},\"send_lag_p50_us\":{},\"send_lag_p99_us\":{},\"cpu_s\":{:.2}}}",
        pct(&all, 0.50),
        pct(&all, 0.99),
        pct(&all, 0.999),
        all.last().copied().unwrap_or(0),
        mean,
        all.len(),
        total - answered.min(total),
        rate,
        conns,
        pct(&lag, 0.50),
        pct(&lag, 0.99),
        cpu_seconds() - cpu0
    );
    errors.report("latency");
    Ok(())
}

/// read_exact on a shared stream (reads need only `&TcpStream`).
async fn read_exact_shared(s: &TcpStream, buf: &mut [u8]) -> io::Result<()> {
    let mut got = 0;
    while got < buf.len() {
        s.readable().await?;
        match s.try_read(&mut buf[got..]) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Blocking-style write of all of `data` on a non-blocking descriptor, waiting with poll(2)
/// when the socket buffer is full (that wait is the proxy's backpressure, and the latency
/// clock keeps running from the scheduled time through it).
fn write_all_fd(fd: RawFd, mut data: &[u8], until: Instant) -> io::Result<()> {
    while !data.is_empty() {
        // SAFETY: fd is open (owned by a live TcpStream); data is a valid slice.
        let n = unsafe {
            libc::send(
                fd,
                data.as_ptr().cast(),
                data.len(),
                libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
            )
        };
        if n >= 0 {
            data = &data[n as usize..];
            continue;
        }
        let e = io::Error::last_os_error();
        match e.kind() {
            io::ErrorKind::Interrupted => {}
            io::ErrorKind::WouldBlock => {
                let left = until.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(io::ErrorKind::TimedOut.into());
                }
                let mut p = libc::pollfd {
                    fd,
                    events: libc::POLLOUT,
                    revents: 0,
                };
                // SAFETY: one valid pollfd.
                unsafe { libc::poll(&mut p, 1, left.as_millis().min(1000) as libc::c_int) };
            }
            _ => return Err(e),
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// idle

async fn idle(
    target: SocketAddr,
    count: usize,
    ready_file: &Path,
    hold: Duration,
    stdin_eof: bool,
    conc: usize,
) -> Result<()> {
    let started = Instant::now();
    let errors = Errors::default();
    let sem = Arc::new(Semaphore::new(conc));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..count {
        let permit = sem.clone().acquire_owned().await?;
        tasks.spawn(async move {
            let r = timeout(OP_TIMEOUT, open_proven(target)).await;
            drop(permit);
            match r {
                Ok(r) => r,
                Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "timed out")),
            }
        });
    }
    let mut held = Vec::with_capacity(count);
    while let Some(r) = tasks.join_next().await {
        match r {
            Ok(Ok(s)) => held.push(s),
            Ok(Err(e)) => errors.add(kind(&e)),
            Err(e) => errors.add(format!("task {e}")),
        }
    }
    let line = format!(
        "{{\"established\":{},\"errors\":{},\"seconds\":{:.3}}}",
        held.len(),
        errors.total(),
        started.elapsed().as_secs_f64()
    );
    let tmp = ready_file.with_extension("tmp");
    std::fs::write(&tmp, format!("{line}\n"))
        .and_then(|_| std::fs::rename(&tmp, ready_file))
        .with_context(|| format!("writing {}", ready_file.display()))?;
    println!("{line}");
    errors.report("idle");

    let eof = async {
        if stdin_eof {
            let mut sink = vec![0u8; 4096];
            let mut stdin = tokio::io::stdin();
            while matches!(stdin.read(&mut sink).await, Ok(n) if n > 0) {}
        } else {
            std::future::pending::<()>().await
        }
    };
    tokio::select! {
        r = stop_signal() => r?,
        _ = sleep(hold) => {}
        _ = eof => {}
    }
    // Close with a RST: thousands of client-side TIME_WAIT entries would only eat the
    // ephemeral ports the next figure needs.
    for s in &held {
        let _ = socket2::SockRef::from(s).set_linger(Some(Duration::ZERO));
    }
    drop(held);
    Ok(())
}

/// Connect, send one byte, read its echo: the proxy has the server side up for sure.
async fn open_proven(target: SocketAddr) -> io::Result<TcpStream> {
    let mut s = TcpStream::connect(target).await?;
    s.set_nodelay(true)?;
    s.write_all(b"i").await?;
    let mut b = [0u8; 1];
    s.read_exact(&mut b).await?;
    Ok(s)
}
