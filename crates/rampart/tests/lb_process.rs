//! `rampart lb` as a process: check mode, signals, seamless binary upgrade, logs.
//! Servers listen on 127.0.0.1 only; every wait is bounded.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

mod common;

use common::*;

fn session(port: u16) -> std::io::Result<String> {
    let s = TcpStream::connect_timeout(&SocketAddr::from(([127, 0, 0, 1], port)), WAIT)?;
    s.set_read_timeout(Some(WAIT))?;
    let mut r = BufReader::new(s);
    let mut name = String::new();
    r.read_line(&mut name)?;
    r.get_mut().write_all(b"ping\n")?;
    let mut echo = String::new();
    r.read_line(&mut echo)?;
    if name.is_empty() || echo != "ping\n" {
        return Err(std::io::Error::other(format!(
            "bad exchange {name:?} {echo:?}"
        )));
    }
    Ok(name.trim().to_string())
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(20));
    }
}

fn start(args: &[&str]) -> Proc {
    Proc(
        Command::new(BIN)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn rampart"),
    )
}

fn signal(p: &Proc, sig: i32) {
    // SAFETY-free: kill(1) keeps the test free of unsafe code.
    let ok = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(p.0.id().to_string())
        .status()
        .expect("kill");
    assert!(ok.success());
}

#[test]
fn check_mode_accepts_the_seed_configurations() {
    for f in ["wazuh.cfg", "haproxy-keepalived.cfg"] {
        let out = Command::new(BIN)
            .args(["lb", "-c", "-f"])
            .arg(fixture(f))
            .output()
            .expect("run");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{f}: {stdout}");
        assert!(
            stdout.contains("Configuration file is valid"),
            "{f}: {stdout}"
        );
    }
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/haproxy.cfg");
    let out = Command::new(BIN)
        .args(["lb", "-c", "-f"])
        .arg(example)
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn check_mode_reports_file_line_and_suggestion() {
    let d = Dir::new("check");
    let f = d.0.join("bad.cfg");
    std::fs::write(
        &f,
        "defaults\n  mode tcp\n\nbackend be\n  balanse leastconn\n",
    )
    .expect("write");
    let out = Command::new(BIN)
        .args(["lb", "-c", "-f"])
        .arg(&f)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(text.contains(&format!("[{}:5]", f.display())), "{text}");
    assert!(
        text.contains("unknown keyword 'balanse' in 'backend' section; did you mean 'balance'"),
        "{text}"
    );
}

#[test]
fn agrees_with_haproxy_on_the_seed_configurations() {
    if Command::new("haproxy").arg("-v").output().is_err() {
        eprintln!("SKIPPED: haproxy is not installed (CI installs it)");
        return;
    }
    for f in ["wazuh.cfg", "haproxy-keepalived.cfg"] {
        let theirs = Command::new("haproxy")
            .args(["-c", "-f"])
            .arg(fixture(f))
            .output()
            .expect("haproxy");
        let ours = Command::new(BIN)
            .args(["lb", "-c", "-f"])
            .arg(fixture(f))
            .output()
            .expect("rampart");
        assert_eq!(
            theirs.status.success(),
            ours.status.success(),
            "{f}: haproxy and rampart disagree"
        );
    }
}

fn cfg(sock: &Path, port: u16, origin: SocketAddr, extra: &str) -> String {
    format!(
        "global\n stats socket {} level admin expose-fd listeners\n\
         defaults\n mode tcp\n timeout connect 1s\n timeout client 10s\n timeout server 10s\n\
         listen l\n bind 127.0.0.1:{port}\n server a {origin}\n{extra}",
        sock.display()
    )
}

#[test]
fn sighup_reloads_good_files_and_keeps_running_on_bad_ones() {
    let d = Dir::new("hup");
    let (sock, file) = (d.0.join("s.sock"), d.0.join("h.cfg"));
    let (a, b) = (origin("a"), origin("b"));
    let (p1, p2) = (free_port(), free_port());
    std::fs::write(&file, cfg(&sock, p1, a, "")).expect("write");
    let lb = start(&["lb", "-f", file.to_str().expect("utf8")]);
    wait_for("listener", || session(p1).is_ok());

    std::fs::write(&file, "listen l\n bind 127.0.0.1:notaport\n").expect("write");
    signal(&lb, 1);
    thread::sleep(Duration::from_millis(300));
    assert_eq!(session(p1).expect("still serving after a bad reload"), "a");

    std::fs::write(
        &file,
        cfg(
            &sock,
            p1,
            a,
            &format!("listen m\n bind 127.0.0.1:{p2}\n server b {b}\n"),
        ),
    )
    .expect("write");
    signal(&lb, 1);
    wait_for("new frontend after SIGHUP", || {
        session(p2).map(|n| n == "b").unwrap_or(false)
    });
    assert_eq!(session(p1).expect("old frontend kept"), "a");
}

#[test]
fn binary_upgrade_hands_over_listeners_without_a_failed_connection() {
    let d = Dir::new("upgrade");
    let (sock, file, pid) = (d.0.join("s.sock"), d.0.join("h.cfg"), d.0.join("pid"));
    let a = origin("a");
    let port = free_port();
    std::fs::write(&file, cfg(&sock, port, a, "")).expect("write");
    let f = file.to_str().expect("utf8");
    let old = start(&["lb", "-f", f, "-p", pid.to_str().expect("utf8")]);
    wait_for("old listener", || session(port).is_ok());

    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let clients: Vec<_> = (0..3)
        .map(|_| {
            let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
            thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    match session(port) {
                        Ok(_) => ok.fetch_add(1, Ordering::SeqCst),
                        Err(_) => failed.fetch_add(1, Ordering::SeqCst),
                    };
                }
            })
        })
        .collect();
    wait_for("load running", || ok.load(Ordering::SeqCst) > 50);
    let old_pid = old.0.id().to_string();
    let new = start(&[
        "lb",
        "-f",
        f,
        "-x",
        sock.to_str().expect("utf8"),
        "-sf",
        &old_pid,
        "-p",
        pid.to_str().expect("utf8"),
    ]);
    let mut old = old;
    let deadline = Instant::now() + WAIT;
    let status = loop {
        if let Some(st) = old.0.try_wait().expect("wait") {
            break st;
        }
        assert!(
            Instant::now() < deadline,
            "old process did not finish after -sf"
        );
        thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "old process exits cleanly: {status:?}");
    let at_handover = ok.load(Ordering::SeqCst);
    wait_for("new process serves", || {
        ok.load(Ordering::SeqCst) > at_handover + 50
    });
    stop.store(true, Ordering::SeqCst);
    for c in clients {
        c.join().expect("client");
    }
    assert_eq!(
        failed.load(Ordering::SeqCst),
        0,
        "no connection failed during the upgrade"
    );
    let pid_text = std::fs::read_to_string(&pid).expect("pidfile");
    assert_eq!(pid_text.trim(), new.0.id().to_string());
    drop(new);
}

#[test]
fn tcplog_lines_reach_a_syslog_udp_target() {
    let d = Dir::new("log");
    let file = d.0.join("h.cfg");
    let a = origin("a");
    let port = free_port();
    let syslog = UdpSocket::bind("127.0.0.1:0").expect("udp");
    syslog.set_read_timeout(Some(WAIT)).expect("timeout");
    let text = format!(
        "global\n log {} local2 info\n\
         defaults\n mode tcp\n log global\n option tcplog\n timeout connect 1s\n timeout client 10s\n timeout server 10s\n\
         frontend fe\n bind 127.0.0.1:{port}\n default_backend be\n\
         backend be\n server a {a}\n",
        syslog.local_addr().expect("addr")
    );
    std::fs::write(&file, text).expect("write");
    let _lb = start(&["lb", "-f", file.to_str().expect("utf8")]);
    wait_for("listener", || {
        TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    // That probe carried no data; the next session is a real one.
    assert_eq!(session(port).expect("session"), "a");
    let deadline = Instant::now() + WAIT;
    let mut buf = [0u8; 2048];
    loop {
        assert!(Instant::now() < deadline, "no tcplog line received");
        let n = syslog.recv(&mut buf).expect("a syslog datagram");
        let line = String::from_utf8_lossy(&buf[..n]).to_string();
        // <150> = local2.info; then "fe be/a Tw/Tc/Tt bytes -- ac/fc/bc/sc/rc sq/bq".
        if line.contains(" fe be/a ") && line.contains(" -- ") {
            assert!(line.starts_with("<150>"), "{line}");
            assert!(line.contains("haproxy["), "{line}");
            assert!(line.contains("127.0.0.1:"), "{line}");
            break;
        }
    }
}

fn wait_exit(p: &mut Proc, within: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(st) = p.0.try_wait().expect("wait") {
            return Some(st);
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sigterm_ends_a_soft_stop_at_once() {
    let d = Dir::new("softterm");
    let (sock, file) = (d.0.join("s.sock"), d.0.join("h.cfg"));
    let port = free_port();
    std::fs::write(&file, cfg(&sock, port, origin("a"), "")).expect("write");
    let mut lb = start(&["lb", "-f", file.to_str().expect("utf8")]);
    wait_for("listener", || session(port).is_ok());
    let held = TcpStream::connect(("127.0.0.1", port)).expect("held session");
    signal(&lb, 10); // SIGUSR1: soft stop, waits for the held session
    assert!(
        wait_exit(&mut lb, Duration::from_millis(500)).is_none(),
        "soft stop waits for sessions"
    );
    signal(&lb, 15);
    assert!(
        wait_exit(&mut lb, Duration::from_secs(5)).is_some(),
        "SIGTERM stops at once"
    );
    drop(held);
}

#[test]
fn soft_stop_handover_without_fd_passing_binds_alongside() {
    let d = Dir::new("sf");
    let (sock, file) = (d.0.join("s.sock"), d.0.join("h.cfg"));
    let port = free_port();
    std::fs::write(&file, cfg(&sock, port, origin("a"), "")).expect("write");
    let f = file.to_str().expect("utf8");
    let mut old = start(&["lb", "-f", f]);
    wait_for("old listener", || session(port).is_ok());
    let pid = old.0.id().to_string();
    let _new = start(&["lb", "-f", f, "-sf", &pid]);
    let st = wait_exit(&mut old, WAIT).expect("old process leaves after -sf");
    assert!(st.success());
    wait_for("new process serves", || session(port).is_ok());
}

#[test]
fn server_state_changes_are_logged_in_haproxy_words() {
    let d = Dir::new("downlog");
    let file = d.0.join("h.cfg");
    let err = d.0.join("stderr");
    let (port, dead) = (free_port(), free_port());
    std::fs::write(
        &file,
        format!(
            "defaults\n mode tcp\n timeout connect 1s\n timeout client 10s\n timeout server 10s\n\
             frontend fe\n bind 127.0.0.1:{port}\n default_backend be\n\
             backend be\n server a 127.0.0.1:{dead} check inter 100\n"
        ),
    )
    .expect("write");
    let _lb = Proc(
        Command::new(BIN)
            .args(["lb", "-f", file.to_str().expect("utf8")])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&err).expect("stderr"))
            .spawn()
            .expect("spawn"),
    );
    wait_for("DOWN line", || {
        std::fs::read_to_string(&err)
            .map(|t| t.contains("backend be has no server available!"))
            .unwrap_or(false)
    });
    let text = std::fs::read_to_string(&err).expect("stderr");
    assert!(
        text.contains("Server be/a is DOWN, reason: Layer4 connection problem, info: \"Connection refused\", check duration: "),
        "{text}"
    );
    assert!(
        text.contains("0 active and 0 backup servers left."),
        "{text}"
    );
}
