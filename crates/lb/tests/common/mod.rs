//! Shared helpers for loopback integration tests: origin servers that announce their
//! name, a running engine built from configuration text, and a runtime-API client.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream, UnixStream};
use tokio::task::JoinHandle;

use lb::engine::Engine;

/// Upper bound for any single wait in these tests.
pub const WAIT: Duration = Duration::from_secs(10);

/// An origin server: greets each connection with `NAME\n`, then echoes until EOF.
pub struct Origin {
    pub name: String,
    pub addr: SocketAddr,
    pub accepted: Arc<AtomicUsize>,
    pub live: Arc<AtomicUsize>,
    accept_task: JoinHandle<()>,
    conns: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Origin {
    pub async fn start(name: &str) -> Origin {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind origin");
        Origin::serve(name, listener)
    }

    pub async fn start_at(name: &str, addr: SocketAddr) -> Origin {
        let listener = TcpListener::bind(addr).await.expect("bind origin at addr");
        Origin::serve(name, listener)
    }

    fn serve(name: &str, listener: TcpListener) -> Origin {
        let addr = listener.local_addr().expect("addr");
        let accepted = Arc::new(AtomicUsize::new(0));
        let live = Arc::new(AtomicUsize::new(0));
        let conns: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let (a, l, c, n) = (
            accepted.clone(),
            live.clone(),
            conns.clone(),
            name.to_string(),
        );
        let accept_task = tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                a.fetch_add(1, Ordering::SeqCst);
                l.fetch_add(1, Ordering::SeqCst);
                let (l2, n2) = (l.clone(), n.clone());
                let h = tokio::spawn(async move {
                    let _ = s.write_all(format!("{n2}\n").as_bytes()).await;
                    let mut buf = [0u8; 4096];
                    loop {
                        match s.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(k) => {
                                if s.write_all(&buf[..k]).await.is_err() {
                                    break;
                                }
                            }
                        }
                    }
                    l2.fetch_sub(1, Ordering::SeqCst);
                });
                c.lock().expect("conns").push(h);
            }
        });
        Origin {
            name: name.to_string(),
            addr,
            accepted,
            live,
            accept_task,
            conns,
        }
    }

    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    pub fn live(&self) -> usize {
        self.live.load(Ordering::SeqCst)
    }

    /// Stops listening and resets every open connection: a crashed server.
    pub fn kill(&self) {
        self.accept_task.abort();
        for h in self.conns.lock().expect("conns").drain(..) {
            h.abort();
        }
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A port free right now on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A fresh directory under the system temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "rampart-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&p).expect("temp dir");
        TempDir(p)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running engine with its configuration file and runtime socket.
pub struct Lb {
    pub engine: Arc<Engine>,
    pub cfg_path: PathBuf,
    pub sock: PathBuf,
    pub dir: TempDir,
}

impl Lb {
    /// Starts an engine on `cfg` (with `@SOCK@` replaced by a runtime socket path).
    pub async fn start(cfg: &str) -> Lb {
        let dir = TempDir::new("lb");
        let sock = dir.path().join("admin.sock");
        let cfg_path = dir.path().join("haproxy.cfg");
        std::fs::write(
            &cfg_path,
            cfg.replace("@SOCK@", &sock.display().to_string()),
        )
        .expect("write cfg");
        let files = vec![cfg_path.clone()];
        let parsed = lb::config::load_files(&files).expect("valid test configuration");
        let sockets = parsed.global.stats_sockets.clone();
        let engine = Engine::start(files, parsed, Default::default())
            .await
            .expect("engine starts");
        for s in &sockets {
            lb::runtime_api::serve(engine.clone(), s, Duration::from_secs(10))
                .expect("stats socket");
        }
        Lb {
            engine,
            cfg_path,
            sock,
            dir,
        }
    }

    pub fn rewrite(&self, cfg: &str) {
        std::fs::write(
            &self.cfg_path,
            cfg.replace("@SOCK@", &self.sock.display().to_string()),
        )
        .expect("rewrite cfg");
    }

    /// Sends one runtime-API line and returns the whole reply.
    pub async fn cmd(&self, line: &str) -> String {
        cli(&self.sock, line).await
    }
}

pub async fn cli(sock: &Path, line: &str) -> String {
    let fut = async {
        let mut s = UnixStream::connect(sock)
            .await
            .expect("connect runtime socket");
        s.write_all(format!("{line}\n").as_bytes())
            .await
            .expect("send");
        let mut out = String::new();
        s.read_to_string(&mut out).await.expect("read reply");
        out
    };
    tokio::time::timeout(WAIT, fut)
        .await
        .expect("runtime API answers")
}

/// Connects through the balancer and returns the stream and the greeting server's name.
pub async fn connect_named(addr: SocketAddr) -> std::io::Result<(BufReader<TcpStream>, String)> {
    let fut = async {
        let s = TcpStream::connect(addr).await?;
        let mut r = BufReader::new(s);
        let mut name = String::new();
        r.read_line(&mut name).await?;
        if name.is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "closed before greeting",
            ));
        }
        Ok((r, name.trim().to_string()))
    };
    tokio::time::timeout(WAIT, fut).await.unwrap_or_else(|_| {
        Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "no greeting",
        ))
    })
}

/// One short session: connect, read greeting, echo a line, close. Returns the server.
pub async fn short_session(addr: SocketAddr) -> std::io::Result<String> {
    let (mut r, name) = connect_named(addr).await?;
    r.get_mut().write_all(b"ping\n").await?;
    let mut echo = String::new();
    tokio::time::timeout(WAIT, r.read_line(&mut echo))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no echo"))??;
    if echo != "ping\n" {
        return Err(std::io::Error::other(format!("bad echo {echo:?}")));
    }
    Ok(name)
}

/// Polls `f` every 20 ms until it is true or `WAIT` passes.
pub async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !f() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The `show stat` row of `px/sv` as a map of column name to value.
pub fn stat_row(csv: &str, px: &str, sv: &str) -> std::collections::HashMap<String, String> {
    let mut lines = csv.lines();
    let header: Vec<&str> = lines
        .next()
        .expect("header")
        .trim_start_matches("# ")
        .split(',')
        .collect();
    for l in lines {
        let cells: Vec<&str> = l.split(',').collect();
        if cells.first() == Some(&px) && cells.get(1) == Some(&sv) {
            return header
                .iter()
                .zip(cells)
                .map(|(h, c)| (h.to_string(), c.to_string()))
                .collect();
        }
    }
    panic!("no row {px}/{sv} in:\n{csv}");
}
