//! Loopback integration tests of the TCP proxy: balancing, failover, queueing,
//! redispatch, backups, half-close and timeouts.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn lb_addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn tally(names: &[String]) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    for n in names {
        *m.entry(n.clone()).or_insert(0) += 1;
    }
    m
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leastconn_spreads_held_sessions_evenly_and_fills_the_emptiest() {
    let (a, b, c) = (
        Origin::start("a").await,
        Origin::start("b").await,
        Origin::start("c").await,
    );
    let port = free_port();
    let lb = Lb::start(&format!(
        "defaults\n mode tcp\n timeout connect 2s\n timeout client 30s\n timeout server 30s\n\
         frontend f\n bind 127.0.0.1:{port}\n default_backend be\n\
         backend be\n balance leastconn\n server a {}\n server b {}\n server c {}\n",
        a.addr, b.addr, c.addr
    ))
    .await;
    let mut held = Vec::new();
    for _ in 0..30 {
        held.push(connect_named(lb_addr(port)).await.expect("session"));
    }
    let names: Vec<String> = held.iter().map(|(_, n)| n.clone()).collect();
    let t = tally(&names);
    assert_eq!((t["a"], t["b"], t["c"]), (10, 10, 10), "{t:?}");

    // Close five of a's sessions: the next five must all go to a.
    let mut kept = Vec::new();
    let mut closed = 0;
    for (s, n) in held {
        if n == "a" && closed < 5 {
            closed += 1;
            drop(s);
        } else {
            kept.push(s);
        }
    }
    eventually("a's sessions end", || a.live() == 5).await;
    for _ in 0..5 {
        let (s, n) = connect_named(lb_addr(port)).await.expect("session");
        assert_eq!(n, "a");
        kept.push(s);
    }
    drop(lb);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weighted_leastconn_and_roundrobin_honour_weights() {
    let (a, b) = (Origin::start("a").await, Origin::start("b").await);
    let (p1, p2) = (free_port(), free_port());
    let _lb = Lb::start(&format!(
        "defaults\n mode tcp\n timeout connect 2s\n timeout client 30s\n timeout server 30s\n\
         listen lc\n bind 127.0.0.1:{p1}\n balance leastconn\n server a {} weight 1\n server b {} weight 3\n\
         listen rr\n bind 127.0.0.1:{p2}\n balance roundrobin\n server a {} weight 1\n server b {} weight 3\n",
        a.addr, b.addr, a.addr, b.addr
    ))
    .await;
    let mut held = Vec::new();
    for _ in 0..8 {
        held.push(connect_named(lb_addr(p1)).await.expect("session"));
    }
    let t = tally(&held.iter().map(|(_, n)| n.clone()).collect::<Vec<_>>());
    assert_eq!((t["a"], t["b"]), (2, 6), "leastconn by weight: {t:?}");
    let mut names = Vec::new();
    for _ in 0..40 {
        names.push(short_session(lb_addr(p2)).await.expect("rr session"));
    }
    let t = tally(&names);
    assert_eq!((t["a"], t["b"]), (10, 30), "roundrobin by weight: {t:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_server_gets_no_new_session_after_fall_times_inter() {
    let (a, b) = (Origin::start("a").await, Origin::start("b").await);
    let port = free_port();
    let lb = Lb::start(&format!(
        "global\n stats socket @SOCK@ level admin\n\
         defaults\n mode tcp\n timeout connect 1s\n timeout client 30s\n timeout server 30s\n\
         frontend f\n bind 127.0.0.1:{port}\n default_backend be\n\
         backend be\n balance leastconn\n server a {} check inter 100 fall 2 rise 2\n server b {} check inter 100 fall 2 rise 2\n",
        a.addr, b.addr
    ))
    .await;
    eventually("both servers checked", || {
        a.accepted() >= 2 && b.accepted() >= 2
    })
    .await;
    b.kill();
    // fall × inter = 200 ms; the check loop must mark it down well within the bound.
    let sock = lb.sock.clone();
    let mut down = false;
    for _ in 0..100 {
        let csv = cli(&sock, "show stat").await;
        if stat_row(&csv, "be", "b")["status"] == "DOWN" {
            down = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(down, "server b never went DOWN");
    let csv = lb.cmd("show stat").await;
    let row = stat_row(&csv, "be", "b");
    assert_eq!(row["check_status"], "L4CON");
    assert_eq!(row["chkdown"], "1");
    let before = a.accepted();
    for _ in 0..20 {
        assert_eq!(
            short_session(lb_addr(port)).await.expect("served by a"),
            "a"
        );
    }
    assert!(a.accepted() >= before + 20);

    // It comes back after `rise` good checks.
    let b2 = Origin::start_at("b", b.addr).await;
    eventually("b is UP again", || b2.accepted() >= 2).await;
    let mut saw_b = false;
    for _ in 0..50 {
        let csv = lb.cmd("show stat").await;
        if stat_row(&csv, "be", "b")["status"] == "UP" {
            saw_b = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(saw_b, "server b did not come back UP");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_queue_at_maxconn_and_time_out_per_timeout_queue() {
    let a = Origin::start("a").await;
    let port = free_port();
    let lb = Lb::start(&format!(
        "global\n stats socket @SOCK@ level admin\n\
         defaults\n mode tcp\n timeout connect 1s\n timeout client 30s\n timeout server 30s\n timeout queue 600ms\n\
         frontend f\n bind 127.0.0.1:{port}\n default_backend be\n\
         backend be\n server a {} maxconn 2\n",
        a.addr
    ))
    .await;
    let first = connect_named(lb_addr(port)).await.expect("1st");
    let second = connect_named(lb_addr(port)).await.expect("2nd");
    assert_eq!(a.live(), 2);
    // The third waits in the queue; freeing a slot lets it through.
    let third = tokio::spawn(connect_named(lb_addr(port)));
    eventually("third is queued", || a.live() == 2).await;
    let mut queued = false;
    for _ in 0..50 {
        let csv = lb.cmd("show stat").await;
        if stat_row(&csv, "be", "a")["qcur"] == "1" {
            queued = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(queued, "third session not seen in the queue");
    drop(first);
    let (third_s, name) = third
        .await
        .expect("join")
        .expect("third served after a slot freed");
    assert_eq!(name, "a");
    assert_eq!(a.accepted(), 3);

    // With both slots busy, a session waits `timeout queue` and is then closed unserved.
    let started = std::time::Instant::now();
    let r = connect_named(lb_addr(port)).await;
    assert!(
        r.is_err(),
        "a session past the queue timeout must not be served"
    );
    assert!(started.elapsed() >= Duration::from_millis(500));
    assert_eq!(a.accepted(), 3);
    let csv = lb.cmd("show stat").await;
    assert_eq!(stat_row(&csv, "be", "a")["qmax"], "1");
    drop((second, third_s));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redispatch_moves_a_failing_connection_to_another_server() {
    let b = Origin::start("b").await;
    let dead = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let (p1, p2) = (free_port(), free_port());
    let lb = Lb::start(&format!(
        "global\n stats socket @SOCK@ level admin\n\
         defaults\n mode tcp\n timeout connect 500ms\n timeout client 30s\n timeout server 30s\n retries 1\n\
         listen with\n bind 127.0.0.1:{p1}\n balance roundrobin\n option redispatch\n server dead {dead}\n server b {}\n\
         listen without\n bind 127.0.0.1:{p2}\n balance roundrobin\n server dead {dead}\n server b {}\n",
        b.addr, b.addr
    ))
    .await;
    for _ in 0..6 {
        assert_eq!(short_session(lb_addr(p1)).await.expect("redispatched"), "b");
    }
    let csv = lb.cmd("show stat").await;
    let row = stat_row(&csv, "with", "dead");
    let wredis: u32 = row["wredis"].parse().expect("wredis");
    assert!(
        wredis >= 2,
        "sessions sent to the dead server were redispatched: {wredis}"
    );
    assert_eq!(
        row["econ"], "0",
        "no session gave up, so no connection error is counted"
    );
    // Without redispatch, sessions sent to the dead server fail after their retries.
    let mut failed = 0;
    for _ in 0..4 {
        if short_session(lb_addr(p2)).await.is_err() {
            failed += 1;
        }
    }
    assert_eq!(failed, 2);
    let csv = lb.cmd("show stat").await;
    assert_eq!(
        stat_row(&csv, "without", "dead")["econ"],
        "2",
        "one error per abandoned session"
    );
    assert_eq!(stat_row(&csv, "without", "dead")["wretr"], "2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backups_serve_only_when_every_active_server_is_down() {
    let (a, b1, b2) = (
        Origin::start("a").await,
        Origin::start("b1").await,
        Origin::start("b2").await,
    );
    let (p1, p2) = (free_port(), free_port());
    let lb = Lb::start(&format!(
        "global\n stats socket @SOCK@ level admin\n\
         defaults\n mode tcp\n timeout connect 1s\n timeout client 30s\n timeout server 30s\n\
         listen one\n bind 127.0.0.1:{p1}\n server a {} \n server b1 {} backup\n server b2 {} backup\n\
         listen all\n bind 127.0.0.1:{p2}\n option allbackups\n server a {} \n server b1 {} backup\n server b2 {} backup\n",
        a.addr, b1.addr, b2.addr, a.addr, b1.addr, b2.addr
    ))
    .await;
    for _ in 0..4 {
        assert_eq!(short_session(lb_addr(p1)).await.expect("active"), "a");
    }
    assert_eq!(
        lb.cmd("set server one/a state maint; set server all/a state maint")
            .await
            .trim(),
        ""
    );
    for _ in 0..4 {
        assert_eq!(
            short_session(lb_addr(p1)).await.expect("first backup"),
            "b1"
        );
    }
    let mut names = Vec::new();
    for _ in 0..4 {
        names.push(short_session(lb_addr(p2)).await.expect("all backups"));
    }
    let t = tally(&names);
    assert_eq!((t["b1"], t["b2"]), (2, 2), "{t:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_close_delivers_everything_both_ways() {
    let a = Origin::start("a").await;
    let port = free_port();
    let _lb = Lb::start(&format!(
        "defaults\n mode tcp\n timeout connect 1s\n timeout client 30s\n timeout server 30s\n\
         listen l\n bind 127.0.0.1:{port}\n server a {}\n",
        a.addr
    ))
    .await;
    let mut s = tokio::net::TcpStream::connect(lb_addr(port))
        .await
        .expect("connect");
    let payload: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    s.write_all(&payload).await.expect("send");
    s.shutdown().await.expect("half-close");
    let mut got = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut got))
        .await
        .expect("server side closes after our FIN")
        .expect("read");
    assert_eq!(&got[..2], b"a\n");
    assert_eq!(&got[2..], &payload[..], "echo after half-close is complete");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_sessions_are_closed_after_timeout_client() {
    let a = Origin::start("a").await;
    let port = free_port();
    let _lb = Lb::start(&format!(
        "defaults\n mode tcp\n timeout connect 1s\n timeout client 300ms\n timeout server 30s\n\
         listen l\n bind 127.0.0.1:{port}\n server a {}\n",
        a.addr
    ))
    .await;
    let (mut r, _) = connect_named(lb_addr(port)).await.expect("session");
    let started = std::time::Instant::now();
    let mut rest = Vec::new();
    tokio::time::timeout(WAIT, r.read_to_end(&mut rest))
        .await
        .expect("closed by the balancer")
        .ok();
    assert!(started.elapsed() >= Duration::from_millis(250));
    eventually("origin sees the close", || a.live() == 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_small_segments_queued_before_forwarding_all_arrive() {
    // While the session waits for a server slot, 1,000 separate 100-byte segments pile up
    // in the balancer's socket. A splice then stops when the pipe runs out of slots, not
    // because the socket is empty: no byte may be left behind.
    let a = Origin::start("a").await;
    let port = free_port();
    let _lb = Lb::start(&format!(
        "defaults\n mode tcp\n timeout connect 1s\n timeout client 30s\n timeout server 30s\n timeout queue 20s\n\
         listen l\n bind 127.0.0.1:{port}\n server a {} maxconn 1\n",
        a.addr
    ))
    .await;
    let first = connect_named(lb_addr(port)).await.expect("first session");
    // sendfile from 1,000 different file pages: segments the kernel cannot merge.
    let dir = TempDir::new("segments");
    let path = dir.path().join("pages");
    std::fs::write(&path, vec![7u8; 1000 * 4096]).expect("page file");
    let std_stream = std::net::TcpStream::connect(lb_addr(port)).expect("connect");
    std_stream.set_nodelay(true).expect("nodelay");
    let std_stream = tokio::task::spawn_blocking(move || {
        let file = std::fs::File::open(&path).expect("open");
        for i in 0..1000i64 {
            let mut off = i * 4096;
            let n = nix::sys::sendfile::sendfile(&std_stream, &file, Some(&mut off), 100)
                .expect("sendfile");
            assert_eq!(n, 100);
        }
        std_stream
    })
    .await
    .expect("sender");
    std_stream.set_nonblocking(true).expect("nonblocking");
    let mut s = tokio::net::TcpStream::from_std(std_stream).expect("tokio stream");
    drop(first);
    let mut got = vec![0u8; 2 + 100_000];
    tokio::time::timeout(WAIT, s.read_exact(&mut got))
        .await
        .expect("every queued byte is forwarded and echoed")
        .expect("read");
    assert_eq!(&got[..2], b"a\n");
    assert!(got[2..].iter().all(|&b| b == 7));
}
