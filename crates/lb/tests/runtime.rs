//! The runtime API over a real Unix socket, and reloads under load.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;

fn lb_addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn base_cfg(port: u16, a: SocketAddr, b: SocketAddr, extra_server: &str) -> String {
    format!(
        "global\n stats socket @SOCK@ level admin\n stats timeout 5s\n\
         defaults\n mode tcp\n timeout connect 1s\n timeout client 30s\n timeout server 30s\n\
         frontend f\n bind 127.0.0.1:{port}\n default_backend be\n\
         backend be\n balance roundrobin\n server a {a}\n server b {b}\n{extra_server}"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn show_commands_answer_in_haproxy_shapes() {
    let (a, b) = (Origin::start("a").await, Origin::start("b").await);
    let port = free_port();
    let lb = Lb::start(&base_cfg(port, a.addr, b.addr, "")).await;
    short_session(lb_addr(port)).await.expect("session");

    let info = lb.cmd("show info").await;
    assert!(
        info.contains(&format!("Pid: {}\n", std::process::id())),
        "{info}"
    );
    assert!(info.contains("CumConns: 1\n"), "{info}");
    let csv = lb.cmd("show stat").await;
    assert!(csv.starts_with("# pxname,svname,qcur,qmax,scur,smax,slim,stot,"));
    assert_eq!(stat_row(&csv, "f", "FRONTEND")["status"], "OPEN");
    assert_eq!(stat_row(&csv, "f", "FRONTEND")["stot"], "1");
    assert_eq!(stat_row(&csv, "be", "BACKEND")["algo"], "roundrobin");
    assert_eq!(stat_row(&csv, "be", "a")["status"], "no check");
    assert_eq!(stat_row(&csv, "be", "a")["addr"], a.addr.to_string());
    let state = lb.cmd("show servers state").await;
    let mut lines = state.lines();
    assert_eq!(lines.next(), Some("1"));
    assert!(lines
        .next()
        .unwrap_or("")
        .starts_with("# be_id be_name srv_id srv_name srv_addr"));
    let row: Vec<&str> = lines.next().unwrap_or("").split(' ').collect();
    assert_eq!(&row[1..6], &["be", "1", "a", "127.0.0.1", "2"]);
    // Several commands on one line, separated by ';'.
    let both = lb.cmd("show backend; get weight be/a").await;
    assert_eq!(both, "# name\nbe\n\n1 (initial 1)\n\n");
    assert!(lb.cmd("show frobs").await.starts_with("Unknown command"));
    assert_eq!(
        lb.cmd("set server be/zz state ready").await,
        "No such server.\n\n"
    );
    assert_eq!(
        lb.cmd("set server nope/a state ready").await,
        "No such backend.\n\n"
    );
    assert_eq!(
        lb.cmd("set server be/a weight 300").await,
        "Absolute weight can only be between 0 and 256 inclusive.\n\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maint_drain_weight_and_addr_steer_new_sessions() {
    let (a, b, c) = (
        Origin::start("a").await,
        Origin::start("b").await,
        Origin::start("c").await,
    );
    let port = free_port();
    let lb = Lb::start(&base_cfg(port, a.addr, b.addr, "")).await;

    assert_eq!(lb.cmd("set server be/a state maint").await, "\n");
    for _ in 0..4 {
        assert_eq!(short_session(lb_addr(port)).await.expect("b"), "b");
    }
    let csv = lb.cmd("show stat").await;
    assert_eq!(stat_row(&csv, "be", "a")["status"], "MAINT");
    assert_eq!(lb.cmd("set server be/a state ready").await, "\n");
    assert_eq!(lb.cmd("set server be/b state drain").await, "\n");
    assert_eq!(
        stat_row(&lb.cmd("show stat").await, "be", "b")["status"],
        "DRAIN"
    );
    for _ in 0..4 {
        assert_eq!(short_session(lb_addr(port)).await.expect("a"), "a");
    }
    lb.cmd("enable server be/b").await;
    // Weight 0 takes a server out of rotation.
    lb.cmd("set server be/a weight 0").await;
    for _ in 0..4 {
        assert_eq!(short_session(lb_addr(port)).await.expect("b"), "b");
    }
    lb.cmd("set server be/a weight 1").await;
    // Re-point b at c's address.
    let reply = lb
        .cmd(&format!(
            "set server be/b addr {} port {}",
            c.addr.ip(),
            c.addr.port()
        ))
        .await;
    assert_eq!(
        reply,
        format!(
            "no need to change the addr, port changed from '{}' to '{}' by 'stats socket command'\n\n",
            b.addr.port(),
            c.addr.port()
        )
    );
    lb.cmd("disable server be/a").await;
    assert_eq!(short_session(lb_addr(port)).await.expect("c"), "c");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_and_del_server_at_runtime() {
    let (a, b, c) = (
        Origin::start("a").await,
        Origin::start("b").await,
        Origin::start("c").await,
    );
    let port = free_port();
    let lb = Lb::start(&base_cfg(port, a.addr, b.addr, "")).await;
    assert_eq!(
        lb.cmd(&format!("add server be/c {} weight 2", c.addr))
            .await,
        "New server registered.\n\n"
    );
    assert_eq!(
        lb.cmd(&format!("add server be/c {}", c.addr)).await,
        "Already exists a server with the same name in backend.\n\n"
    );
    // New servers start in maintenance, as in HAProxy.
    assert_eq!(
        stat_row(&lb.cmd("show stat").await, "be", "c")["status"],
        "MAINT"
    );
    lb.cmd("set server be/c state ready").await;
    let mut hits = 0;
    for _ in 0..8 {
        if short_session(lb_addr(port)).await.expect("session") == "c" {
            hits += 1;
        }
    }
    assert_eq!(hits, 4, "weight 2 of a total of 4");
    assert_eq!(
        lb.cmd("del server be/c").await,
        "Only servers in maintenance mode can be deleted.\n\n"
    );
    lb.cmd("set server be/c state maint").await;
    assert_eq!(lb.cmd("del server be/c").await, "Server deleted.\n\n");
    assert!(!lb.cmd("show stat").await.contains("be,c,"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_level_socket_cannot_change_state() {
    let a = Origin::start("a").await;
    let port = free_port();
    let lb = Lb::start(&format!(
        "global\n stats socket @SOCK@ level user\n\
         defaults\n mode tcp\n timeout connect 1s\n timeout client 30s\n timeout server 30s\n\
         listen l\n bind 127.0.0.1:{port}\n server a {}\n",
        a.addr
    ))
    .await;
    assert_eq!(lb.cmd("disable server l/a").await, "Permission denied\n\n");
    assert!(lb.cmd("show stat").await.contains("l,a,"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_keeps_runtime_state_and_refuses_a_bad_file() {
    let (a, b, c) = (
        Origin::start("a").await,
        Origin::start("b").await,
        Origin::start("c").await,
    );
    let port = free_port();
    let lb = Lb::start(&base_cfg(port, a.addr, b.addr, "")).await;
    lb.cmd("set server be/a state maint").await;
    lb.cmd("set server be/b weight 7").await;

    // A broken file is refused and the running configuration stays.
    std::fs::write(&lb.cfg_path, "backend be\n balanse leastconn\n").expect("write");
    let reply = lb.cmd("reload").await;
    assert!(reply.starts_with("Success=0"), "{reply}");
    assert!(reply.contains("did you mean 'balance'"), "{reply}");
    assert_eq!(
        short_session(lb_addr(port)).await.expect("still serving"),
        "b"
    );

    // A good file with a new server and a new frontend applies; runtime state survives.
    let port2 = free_port();
    let extra = format!(
        " server c {}\nlisten extra\n bind 127.0.0.1:{port2}\n server c {}\n",
        c.addr, c.addr
    );
    lb.rewrite(&base_cfg(port, a.addr, b.addr, &extra));
    let reply = lb.cmd("reload").await;
    assert!(reply.starts_with("Success=1"), "{reply}");
    let csv = lb.cmd("show stat").await;
    assert_eq!(
        stat_row(&csv, "be", "a")["status"],
        "MAINT",
        "maintenance survives the reload"
    );
    assert_eq!(
        stat_row(&csv, "be", "b")["weight"],
        "7",
        "runtime weight survives the reload"
    );
    assert_eq!(
        short_session(lb_addr(port2)).await.expect("new frontend"),
        "c"
    );
    let mut seen_c = false;
    for _ in 0..10 {
        if short_session(lb_addr(port)).await.expect("session") == "c" {
            seen_c = true;
        }
    }
    assert!(seen_c, "the new server takes traffic");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_under_continuous_load_fails_no_connection() {
    let (a, b) = (Origin::start("a").await, Origin::start("b").await);
    let port = free_port();
    let lb = Lb::start(&base_cfg(port, a.addr, b.addr, "")).await;
    let ok = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut clients = Vec::new();
    for _ in 0..4 {
        let (ok, failed, stop) = (ok.clone(), failed.clone(), stop.clone());
        clients.push(tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                match short_session(lb_addr(port)).await {
                    Ok(_) => ok.fetch_add(1, Ordering::SeqCst),
                    Err(_) => failed.fetch_add(1, Ordering::SeqCst),
                };
            }
        }));
    }
    // Alternate between two configurations while sessions flow.
    for i in 0..10 {
        let w = if i % 2 == 0 { " weight 3" } else { "" };
        let cfg = base_cfg(port, a.addr, b.addr, "").replace(
            &format!("server b {}", b.addr),
            &format!("server b {}{w}", b.addr),
        );
        lb.rewrite(&cfg);
        let reply = lb.cmd("reload").await;
        assert!(reply.starts_with("Success=1"), "{reply}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, Ordering::SeqCst);
    for c in clients {
        c.await.expect("client");
    }
    assert!(
        ok.load(Ordering::SeqCst) > 100,
        "load ran: {}",
        ok.load(Ordering::SeqCst)
    );
    assert_eq!(
        failed.load(Ordering::SeqCst),
        0,
        "no failed connection across reloads"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn established_sessions_survive_a_reload_that_removes_their_frontend() {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    let (a, b) = (Origin::start("a").await, Origin::start("b").await);
    let (port, port2) = (free_port(), free_port());
    let extra = format!(
        "listen gone\n bind 127.0.0.1:{port2}\n server a {}\n",
        a.addr
    );
    let lb = Lb::start(&base_cfg(port, a.addr, b.addr, &extra)).await;
    let (mut held, name) = connect_named(lb_addr(port2)).await.expect("session");
    assert_eq!(name, "a");
    lb.rewrite(&base_cfg(port, a.addr, b.addr, ""));
    assert!(lb.cmd("reload").await.starts_with("Success=1"));
    // The listener is gone…
    assert!(tokio::net::TcpStream::connect(lb_addr(port2))
        .await
        .is_err());
    // …but the session it accepted still carries data both ways.
    held.get_mut()
        .write_all(b"still here\n")
        .await
        .expect("send");
    let mut echo = String::new();
    tokio::time::timeout(WAIT, held.read_line(&mut echo))
        .await
        .expect("echo")
        .expect("read");
    assert_eq!(echo, "still here\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maintenance_pauses_checks_and_ready_restarts_them() {
    let a = Origin::start("a").await;
    let port = free_port();
    let lb = Lb::start(&format!(
        "global\n stats socket @SOCK@ level admin\n\
         defaults\n mode tcp\n timeout connect 1s\n timeout client 30s\n timeout server 30s\n\
         listen l\n bind 127.0.0.1:{port}\n server a {} check inter 100 rise 1 fall 1\n",
        a.addr
    ))
    .await;
    eventually("checks run", || a.accepted() >= 2).await;
    lb.cmd("disable server l/a").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let paused_at = a.accepted();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        a.accepted(),
        paused_at,
        "no check probes while in maintenance"
    );
    let state = lb.cmd("show servers state l").await;
    let row: Vec<&str> = state.lines().nth(2).unwrap_or("").split(' ').collect();
    assert_eq!(
        (row[5], row[13]),
        ("0", "14"),
        "op_state stopped, checks paused: {state}"
    );
    lb.cmd("enable server l/a").await;
    eventually("checks resume", || a.accepted() > paused_at).await;
    assert_eq!(
        short_session(lb_addr(port)).await.expect("served again"),
        "a"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_refused_on_a_bind_error_changes_nothing() {
    let (a, b) = (Origin::start("a").await, Origin::start("b").await);
    let port = free_port();
    let cfg = base_cfg(port, a.addr, b.addr, "").replace(
        &format!(" bind 127.0.0.1:{port}\n"),
        &format!(" bind 127.0.0.1:{port}\n maxconn 5\n"),
    );
    let lb = Lb::start(&cfg).await;
    assert_eq!(
        stat_row(&lb.cmd("show stat").await, "f", "FRONTEND")["slim"],
        "5"
    );
    // The new file raises maxconn but also binds a port someone else holds.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let busy = taken.local_addr().expect("addr").port();
    let bad = cfg.replace(" maxconn 5\n", " maxconn 50\n")
        + &format!(
            "listen clash\n bind 127.0.0.1:{busy}\n server a {}\n",
            a.addr
        );
    lb.rewrite(&bad);
    let reply = lb.cmd("reload").await;
    assert!(reply.starts_with("Success=0"), "{reply}");
    assert!(reply.contains("cannot bind socket"), "{reply}");
    let csv = lb.cmd("show stat").await;
    assert_eq!(
        stat_row(&csv, "f", "FRONTEND")["slim"],
        "5",
        "limits untouched"
    );
    assert!(
        !csv.contains("clash,"),
        "nothing of the refused file is live"
    );
    // The enforced limit is still 5: five sessions are served, a sixth waits.
    let mut held = Vec::new();
    for _ in 0..5 {
        held.push(
            connect_named(lb_addr(port))
                .await
                .expect("within maxconn 5"),
        );
    }
    let sixth =
        tokio::time::timeout(Duration::from_millis(500), connect_named(lb_addr(port))).await;
    assert!(sixth.is_err(), "a sixth session must wait at maxconn 5");
    drop(taken);
}
