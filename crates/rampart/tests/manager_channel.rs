//! The cluster channel against a running master, byte by byte: a tampered or replayed
//! frame closes only that connection; an incompatible version is refused in the hello.

mod common;

use std::time::Duration;

use common::manager::{wait_for, Node, NodeSpec, KEY};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use wire::seal::{seal_frame, Opener, Sealer};
use wire::{frame, handshake, Kind};

const LONG: Duration = Duration::from_secs(30);

/// Handshake by hand and send a hello; returns the stream and the session's keys.
async fn hello(port: u16, name: &str, version: &str) -> (TcpStream, Sealer, Opener, Vec<u8>) {
    let mut s = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let (mut sealer, opener) = handshake::client(&mut s, KEY.as_bytes())
        .await
        .expect("handshake");
    let text = format!("{name} wazuh worker {version} 127.0.0.1:1514");
    let f = seal_frame(
        &mut sealer,
        &frame::encode(1, Kind::Request, false, "hello", text.as_bytes()),
    )
    .expect("seal");
    s.write_all(&f).await.expect("write");
    let mut len = [0u8; 4];
    s.read_exact(&mut len).await.expect("answer length");
    let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
    s.read_exact(&mut body).await.expect("answer");
    let mut opener = opener;
    let plain = opener.open(&len, &body).expect("authentic answer");
    (s, sealer, opener, plain)
}

/// Reads until EOF (the master closed) or the time limit.
async fn closed_by_peer(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + LONG;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

#[test]
fn tampered_and_replayed_frames_close_only_that_connection() {
    let mut master = Node::new(NodeSpec::master("master-node"));
    master.start();
    let mut w = Node::new(NodeSpec::worker("worker-01", &master.spec));
    w.start();
    wait_for("worker joined", LONG, || master.cluster_nodes().len() == 2);
    let port = master.spec.cluster_port;
    let rt = common::manager::runtime();
    rt.block_on(async {
        // Tampered: one flipped bit in a keep-alive.
        let (mut s, mut sealer, _, plain) =
            hello(port, "intruder", manager::node::proto::VERSION).await;
        let answer = frame::decode(&plain).expect("frame");
        assert_eq!(answer.kind, Kind::Response);
        let mut f = seal_frame(
            &mut sealer,
            &frame::encode(2, Kind::Request, false, "keepalive", b""),
        )
        .expect("seal");
        let last = f.len() - 1;
        f[last] ^= 0x01;
        s.write_all(&f).await.expect("write");
        assert!(
            closed_by_peer(&mut s).await,
            "a tampered frame closes the connection"
        );

        // Replayed: the same valid frame twice.
        let (mut s, mut sealer, _, _) =
            hello(port, "replayer", manager::node::proto::VERSION).await;
        let f = seal_frame(
            &mut sealer,
            &frame::encode(2, Kind::Request, false, "keepalive", b""),
        )
        .expect("seal");
        s.write_all(&f).await.expect("write");
        s.write_all(&f).await.expect("write again");
        assert!(
            closed_by_peer(&mut s).await,
            "a replayed frame closes the connection"
        );
    });
    wait_for("failures logged", LONG, || {
        let log = master.log();
        log.contains("[Worker intruder] [Main] Disconnected: frame failed authentication")
            && log.contains("[Worker replayer] [Main] Disconnected: frame failed authentication")
    });
    // The real worker kept its connection throughout.
    assert_eq!(master.cluster_nodes(), vec!["master-node", "worker-01"]);
    assert_eq!(
        w.log().matches("Successfully connected to master.").count(),
        1
    );
}

#[test]
fn an_incompatible_version_is_refused_in_the_hello() {
    let mut master = Node::new(NodeSpec::master("master-node"));
    master.start();
    let rt = common::manager::runtime();
    let plain = rt.block_on(async {
        hello(master.spec.cluster_port, "old-worker", "3.13.0")
            .await
            .3
    });
    let answer = frame::decode(&plain).expect("frame");
    assert_eq!(answer.kind, Kind::Error);
    let text = String::from_utf8_lossy(answer.chunk).to_string();
    assert!(text.contains("incompatible version 3.13.0"), "{text}");
    wait_for("logged", LONG, || {
        master
            .log()
            .contains("incompatible version 3.13.0 of worker 'old-worker'")
    });
    assert_eq!(master.cluster_nodes(), vec!["master-node"]);
}
