//! At `maxconn` and at the open-file limit, `rampart lb` queues or refuses cleanly, logs
//! accept failures at most once per second, and recovers without a restart.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

mod common;
use common::*;

/// Starts rampart under `ulimit -n NOFILE`, stderr to a file.
fn start(tag: &str, nofile: u32, cfg: &str) -> (Proc, Dir, PathBuf, PathBuf) {
    let d = Dir::new(tag);
    let dir = d.0.clone();
    let sock = dir.join("s.sock");
    let file = dir.join("h.cfg");
    std::fs::write(&file, cfg.replace("@SOCK@", &sock.display().to_string())).expect("cfg");
    let err = dir.join("stderr");
    let child = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "ulimit -n {nofile} && exec {BIN} lb -f {}",
            file.display()
        ))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&err).expect("stderr file"))
        .spawn()
        .expect("spawn");
    let p = Proc(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !sock.exists() {
        assert!(Instant::now() < deadline, "rampart did not start");
        thread::sleep(Duration::from_millis(20));
    }
    (p, d, sock, err)
}

/// Connects and waits up to `wait` for the origin's greeting through the balancer.
fn greeted(port: u16, wait: Duration) -> Option<TcpStream> {
    let s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(wait)).ok()?;
    let mut line = String::new();
    BufReader::new(s.try_clone().ok()?)
        .read_line(&mut line)
        .ok()?;
    (line == "hi\n").then_some(s)
}

#[test]
fn sessions_wait_at_global_maxconn_and_proceed_when_a_slot_frees() {
    let port = free_port();
    let cfg = format!(
        "global\n maxconn 20\n stats socket @SOCK@ level admin\n\
         defaults\n mode tcp\n timeout connect 1s\n timeout client 30s\n timeout server 30s\n\
         listen l\n bind 127.0.0.1:{port}\n server a {}\n",
        origin("hi")
    );
    let (_p, _dir, _sock, _err) = start("maxconn", 20_000, &cfg);
    let held: Vec<TcpStream> = (0..20)
        .map(|_| greeted(port, Duration::from_secs(5)).expect("within maxconn"))
        .collect();
    // The 21st is left in the kernel's backlog, not refused and not served.
    let waiting = TcpStream::connect(("127.0.0.1", port)).expect("kernel accepts into the backlog");
    waiting
        .set_read_timeout(Some(Duration::from_millis(500)))
        .expect("timeout");
    let mut line = String::new();
    assert!(BufReader::new(waiting.try_clone().expect("clone"))
        .read_line(&mut line)
        .is_err());
    drop(held.into_iter().next());
    waiting
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut line = String::new();
    BufReader::new(waiting)
        .read_line(&mut line)
        .expect("served once a slot frees");
    assert_eq!(line, "hi\n");
}

#[test]
fn descriptor_exhaustion_is_logged_sparingly_and_recovered_from() {
    let port = free_port();
    let cfg = format!(
        "global\n maxconn 150\n stats socket @SOCK@ level admin\n stats timeout 60s\n\
         defaults\n mode tcp\n timeout connect 1s\n timeout client 30s\n timeout server 30s\n retries 0\n\
         listen l\n bind 127.0.0.1:{port}\n server a {}\n",
        origin("hi")
    );
    let (mut p, _dir, sock, err) = start("nofile", 400, &cfg);
    assert!(
        greeted(port, Duration::from_secs(5)).is_some(),
        "serves before the squeeze"
    );
    // Eat the process's descriptors with idle runtime-API sessions (prompt mode keeps them).
    let mut hogs = Vec::new();
    for _ in 0..420 {
        let Ok(mut u) = UnixStream::connect(&sock) else {
            break;
        };
        if u.write_all(b"prompt\n").is_err() {
            break;
        }
        hogs.push(u);
    }
    thread::sleep(Duration::from_millis(300));
    let squeezed = Instant::now();
    let tries: Vec<Option<TcpStream>> = (0..30)
        .map(|_| greeted(port, Duration::from_millis(200)))
        .collect();
    let served_while_squeezed = tries.iter().filter(|t| t.is_some()).count();
    assert!(
        served_while_squeezed < 30,
        "descriptors were exhausted, some sessions must wait"
    );
    thread::sleep(Duration::from_millis(1500));
    let elapsed = squeezed.elapsed().as_secs_f64();
    drop(hogs);
    // Recovery: no restart, every new session is served again.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut ok = 0;
    while ok < 20 {
        assert!(
            Instant::now() < deadline,
            "did not recover after descriptors came back"
        );
        if greeted(port, Duration::from_secs(2)).is_some() {
            ok += 1;
        }
    }
    assert!(p.0.try_wait().expect("wait").is_none(), "still running");
    let log = std::fs::read_to_string(&err).expect("stderr");
    let complaints = log
        .lines()
        .filter(|l| l.contains("accept() failed"))
        .count();
    assert!(complaints >= 1, "the exhaustion was reported:\n{log}");
    assert!(
        complaints as f64 <= elapsed + 2.0,
        "{complaints} accept complaints in {elapsed:.1}s: more than one per second"
    );
    drop(tries);
}
