//! Multiplexed requests over one sealed connection.

use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use wire::rpc::{spawn_peer, Incoming, Peer, RpcError};
use wire::{frame, handshake, seal_frame, Kind, MsgReader, WireError};

const PSK: &[u8] = b"0123456789abcdefghijABCDEFGHIJ01";
const LIMIT: Duration = Duration::from_secs(20);
const REQ: Duration = Duration::from_secs(10);

async fn peers() -> (
    (Peer, mpsc::Receiver<Incoming>),
    (Peer, mpsc::Receiver<Incoming>),
) {
    let (a, b) = tokio::io::duplex(1 << 16);
    let (c, s) = tokio::join!(wire::connect(a, PSK), wire::accept(b, PSK));
    let (cr, cw) = c.unwrap();
    let (sr, sw) = s.unwrap();
    (spawn_peer(cr, cw), spawn_peer(sr, sw))
}

/// Answers every request with "<command>:<payload>" from its own task, so answers go out
/// in whatever order the tasks finish; "fail" gets an Error, "drop" no answer at all.
fn serve(mut rx: mpsc::Receiver<Incoming>) -> tokio::task::JoinHandle<Vec<String>> {
    tokio::spawn(async move {
        let mut notices = Vec::new();
        while let Some(inc) = rx.recv().await {
            let Some(reply) = inc.reply else {
                notices.push(format!(
                    "{}:{}",
                    inc.command,
                    String::from_utf8_lossy(&inc.payload)
                ));
                continue;
            };
            tokio::spawn(async move {
                match inc.command.as_str() {
                    "fail" => reply.err("nope").await,
                    "drop" => drop(reply),
                    "echo" => reply.ok(inc.payload).await,
                    cmd => {
                        let n: u64 = String::from_utf8_lossy(&inc.payload).parse().unwrap_or(0);
                        tokio::time::sleep(Duration::from_millis(n % 7)).await;
                        reply.ok(format!("{cmd}:{n}").into_bytes()).await
                    }
                }
            });
        }
        notices
    })
}

#[tokio::test]
async fn hundred_concurrent_requests_both_ways() {
    tokio::time::timeout(LIMIT, async {
        let ((client, crx), (server, srx)) = peers().await;
        serve(crx);
        serve(srx);
        let mut tasks = Vec::new();
        for i in 0..100u64 {
            for (p, cmd) in [(client.clone(), "up"), (server.clone(), "down")] {
                tasks.push(tokio::spawn(async move {
                    let got = p
                        .request(cmd, i.to_string().into_bytes(), REQ)
                        .await
                        .unwrap();
                    assert_eq!(got, format!("{cmd}:{i}").into_bytes());
                }));
            }
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert!(!client.is_closed() && !server.is_closed());
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn errors_and_unanswered_requests_surface_as_remote() {
    tokio::time::timeout(LIMIT, async {
        let ((client, _crx), (_server, srx)) = peers().await;
        serve(srx);
        assert_eq!(
            client.request("fail", vec![], REQ).await,
            Err(RpcError::Remote("nope".into()))
        );
        assert_eq!(
            client.request("drop", vec![], REQ).await,
            Err(RpcError::Remote(wire::rpc::NO_ANSWER.into()))
        );
        // The connection is still fine afterwards.
        assert_eq!(
            client.request("echo", b"hi".to_vec(), REQ).await.unwrap(),
            b"hi"
        );
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn notices_arrive_without_reply_and_in_order() {
    tokio::time::timeout(LIMIT, async {
        let ((client, _crx), (server, srx)) = peers().await;
        let notices = serve(srx);
        for i in 0..5 {
            client
                .notify("tick", format!("{i}").into_bytes())
                .await
                .unwrap();
        }
        // A request after the notices is answered only after they were delivered.
        client.request("echo", vec![], REQ).await.unwrap();
        client.close();
        assert_eq!(client.closed().await, wire::rpc::REASON_LOCAL);
        assert_eq!(server.closed().await, wire::rpc::REASON_EOF);
        assert_eq!(
            notices.await.unwrap(),
            vec!["tick:0", "tick:1", "tick:2", "tick:3", "tick:4"]
        );
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn request_timeout_then_late_answer_is_ignored() {
    tokio::time::timeout(LIMIT, async {
        let ((client, _crx), (_server, mut srx)) = peers().await;
        let slow = client.request("slow", vec![], Duration::from_millis(200));
        let (res, inc) = tokio::join!(slow, srx.recv());
        assert_eq!(res, Err(RpcError::Timeout));
        // Answer after the requester gave up: ignored, connection unharmed.
        let inc = inc.unwrap();
        inc.reply.unwrap().ok(b"late".to_vec()).await;
        let again = client.request("again", vec![], REQ);
        let (res, inc) = tokio::join!(again, async {
            let inc = srx.recv().await.unwrap();
            assert_eq!(inc.command, "again");
            inc.reply.unwrap().ok(b"fresh".to_vec()).await;
        });
        let () = inc;
        assert_eq!(res.unwrap(), b"fresh");
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn large_payloads_through_rpc() {
    tokio::time::timeout(LIMIT, async {
        let ((client, _crx), (_server, srx)) = peers().await;
        serve(srx);
        let big: Vec<u8> = (0..(3 << 20) + 12345).map(|i| (i % 253) as u8).collect();
        let back = client.request("echo", big.clone(), REQ).await.unwrap();
        assert!(back == big);
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn invalid_requests_are_refused_locally() {
    let ((client, _crx), (_server, _srx)) = peers().await;
    assert!(matches!(
        client.request(&"x".repeat(40), vec![], REQ).await,
        Err(RpcError::Invalid(_))
    ));
    assert!(matches!(
        client.notify("ünicode", vec![]).await,
        Err(RpcError::Invalid(_))
    ));
    assert!(!client.is_closed());
}

/// A raw client completes the handshake, lets the server peer send it a request, then
/// writes a tampered frame: the server peer closes with the reason and fails the request.
#[tokio::test]
async fn tampered_frame_mid_session_closes_peer_and_fails_pending() {
    tokio::time::timeout(LIMIT, async {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (s, _) = l.accept().await.unwrap();
            let (r, w) = wire::accept(s, PSK).await.unwrap();
            spawn_peer(r, w)
        });
        let mut raw = TcpStream::connect(addr).await.unwrap();
        let (mut sealer, opener) = handshake::client(&mut raw, PSK).await.unwrap();
        let (peer, mut incoming) = server.await.unwrap();

        let pending = tokio::spawn({
            let peer = peer.clone();
            async move { peer.request("integrity", b"?".to_vec(), REQ).await }
        });
        // Read the server's request off the raw socket.
        let (rd, mut wr) = raw.into_split();
        let mut reader = MsgReader::new(rd, opener);
        let req = reader.read().await.unwrap().unwrap();
        assert_eq!(
            (req.kind, req.command.as_str()),
            (Kind::Request, "integrity")
        );

        // One good notice, then a tampered one.
        let good = seal_frame(
            &mut sealer,
            &frame::encode(0, Kind::Notice, false, "ok", b"1"),
        )
        .unwrap();
        wr.write_all(&good).await.unwrap();
        let note = incoming.recv().await.unwrap();
        assert_eq!((note.command.as_str(), note.reply.is_none()), ("ok", true));
        let mut bad = seal_frame(
            &mut sealer,
            &frame::encode(req.id, Kind::Response, false, "integrity", b"forged"),
        )
        .unwrap();
        bad[10] ^= 1;
        wr.write_all(&bad).await.unwrap();

        let reason = peer.closed().await;
        assert_eq!(reason, WireError::Auth.to_string());
        assert!(reason.contains("authentication"));
        assert_eq!(
            pending.await.unwrap(),
            Err(RpcError::Closed(reason.clone()))
        );
        assert!(incoming.recv().await.is_none());
        assert!(peer.is_closed());
        assert_eq!(
            peer.request("x", vec![], REQ).await,
            Err(RpcError::Closed(reason.clone()))
        );
        assert!(matches!(
            peer.notify("x", vec![]).await,
            Err(RpcError::Closed(_))
        ));
        // The server shut the socket.
        assert!(matches!(reader.read().await, Ok(None) | Err(_)));
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn close_fails_pending_and_flushes_a_final_answer() {
    tokio::time::timeout(LIMIT, async {
        let ((client, _crx), (server, mut srx)) = peers().await;
        // Server answers "hello" with an error, then closes at once: the answer still goes out.
        let srv = tokio::spawn(async move {
            let inc = srx.recv().await.unwrap();
            inc.reply.unwrap().err("duplicate node name").await;
            server.close();
            server.closed().await
        });
        assert_eq!(
            client.request("hello", vec![], REQ).await,
            Err(RpcError::Remote("duplicate node name".into()))
        );
        assert_eq!(srv.await.unwrap(), wire::rpc::REASON_LOCAL);
        assert_eq!(client.closed().await, wire::rpc::REASON_EOF);

        // Pending requests fail when the local side closes.
        let ((client, _crx), (_server, _srx)) = peers().await;
        let pending = tokio::spawn({
            let c = client.clone();
            async move { c.request("never", vec![], REQ).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        client.close();
        assert_eq!(
            pending.await.unwrap(),
            Err(RpcError::Closed(wire::rpc::REASON_LOCAL.into()))
        );
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn dropping_every_handle_closes_the_connection() {
    tokio::time::timeout(LIMIT, async {
        let ((client, crx), (server, _srx)) = peers().await;
        let c2 = client.clone();
        drop(client);
        drop(crx);
        tokio::time::sleep(Duration::from_millis(50)).await;
        // One clone is still alive: nothing happens.
        assert!(!server.is_closed());
        drop(c2);
        assert_eq!(server.closed().await, wire::rpc::REASON_EOF);
    })
    .await
    .unwrap();
}
