//! Sealed streams end to end: handshake, chunking, and every way a frame can be wrong.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use wire::frame;
use wire::handshake;
use wire::seal::{derive_keys, Opener, Sealer};
use wire::{seal_frame, Kind, Message, MsgReader, MsgWriter, WireError, CHUNK, MAX_SEALED};

const PSK: &[u8] = b"0123456789abcdefghijABCDEFGHIJ01";
const LIMIT: Duration = Duration::from_secs(20);

fn keys() -> (Sealer, Opener) {
    let (k, _) = derive_keys(PSK, &[1; 32], &[2; 32]);
    (Sealer::new(k), Opener::new(k))
}

/// Everything a MsgWriter produces for `msgs`, plus the opener for those bytes.
async fn written(msgs: &[Message]) -> (Vec<u8>, Opener) {
    let (sealer, opener) = keys();
    let mut w = MsgWriter::new(Vec::new(), sealer);
    for m in msgs {
        w.write(m).await.unwrap();
    }
    (w.into_inner(), opener)
}

async fn listener() -> (TcpListener, std::net::SocketAddr) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let a = l.local_addr().unwrap();
    (l, a)
}

fn msg(id: u32, kind: Kind, cmd: &str, payload: &[u8]) -> Message {
    Message::new(id, kind, cmd, payload.to_vec())
}

#[tokio::test]
async fn duplex_roundtrip_both_directions() {
    tokio::time::timeout(LIMIT, async {
        let (a, b) = tokio::io::duplex(1 << 16);
        let (c, s) = tokio::join!(wire::connect(a, PSK), wire::accept(b, PSK));
        let ((mut cr, mut cw), (mut sr, mut sw)) = (c.unwrap(), s.unwrap());
        let ping = msg(1, Kind::Request, "ping", b"hello");
        cw.write(&ping).await.unwrap();
        assert_eq!(sr.read().await.unwrap(), Some(ping));
        let pong = msg(1, Kind::Response, "ping", b"");
        sw.write(&pong).await.unwrap();
        assert_eq!(cr.read().await.unwrap(), Some(pong));
        cw.shutdown().await.unwrap();
        assert_eq!(sr.read().await.unwrap(), None);
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn large_payload_roundtrips_over_tcp_via_chunks() {
    tokio::time::timeout(LIMIT, async {
        let (l, addr) = listener().await;
        let payload: Vec<u8> = (0..CHUNK * 7 / 2).map(|i| (i * 31 % 251) as u8).collect();
        let expect = payload.clone();
        let server = tokio::spawn(async move {
            let (s, _) = l.accept().await.unwrap();
            let (mut r, mut w) = wire::accept(s, PSK).await.unwrap();
            let m = r.read().await.unwrap().unwrap();
            w.write(&Message::new(m.id, Kind::Response, "sync", m.payload))
                .await
                .unwrap();
        });
        let (mut r, mut w) = wire::connect(TcpStream::connect(addr).await.unwrap(), PSK)
            .await
            .unwrap();
        w.write(&Message::new(9, Kind::Request, "sync", payload))
            .await
            .unwrap();
        let back = r.read().await.unwrap().unwrap();
        assert_eq!(
            (back.id, back.kind, back.command.as_str()),
            (9, Kind::Response, "sync")
        );
        assert_eq!(back.payload.len(), expect.len());
        assert!(back.payload == expect);
        server.await.unwrap();
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn chunking_splits_at_chunk_size_with_more_flags() {
    let payload = vec![7u8; CHUNK * 7 / 2];
    let (bytes, mut opener) = written(&[msg(3, Kind::Notice, "big", &payload)]).await;
    let mut rest = &bytes[..];
    let mut seen = Vec::new();
    while !rest.is_empty() {
        let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        assert!(len <= MAX_SEALED);
        let pt = opener.open(&rest[..4], &rest[4..4 + len]).unwrap();
        let f = frame::decode(&pt).unwrap();
        seen.push((f.id, f.more, f.chunk.len()));
        rest = &rest[4 + len..];
    }
    assert_eq!(
        seen,
        vec![
            (3, true, CHUNK),
            (3, true, CHUNK),
            (3, true, CHUNK),
            (3, false, CHUNK / 2)
        ]
    );
    // And a reader puts it back together.
    let (_, opener) = keys();
    let mut r = MsgReader::new(&bytes[..], opener);
    assert_eq!(r.read().await.unwrap().unwrap().payload, payload);
    assert_eq!(r.read().await.unwrap(), None);
}

#[tokio::test]
async fn empty_and_exact_chunk_payloads() {
    let msgs = [
        msg(1, Kind::Notice, "", b""),
        Message::new(2, Kind::Error, "x", vec![1; CHUNK]),
        Message::new(3, Kind::Response, "y", vec![2; CHUNK + 1]),
    ];
    let (bytes, opener) = written(&msgs).await;
    let mut r = MsgReader::new(&bytes[..], opener);
    for m in &msgs {
        assert_eq!(r.read().await.unwrap().as_ref(), Some(m));
    }
    assert_eq!(r.read().await.unwrap(), None);
}

#[tokio::test]
async fn flipping_any_bit_of_a_sealed_frame_fails() {
    let (bytes, _) = written(&[msg(5, Kind::Request, "cmd", b"some payload")]).await;
    for bit in 0..bytes.len() * 8 {
        let mut t = bytes.clone();
        t[bit / 8] ^= 1 << (bit % 8);
        let (_, opener) = keys();
        let mut r = MsgReader::new(&t[..], opener);
        let res = r.read().await;
        if bit >= 32 {
            assert!(matches!(res, Err(WireError::Auth)), "bit {bit}: {res:?}");
        } else {
            // A changed length prefix: wrong AAD / short read (Auth), a read past the end
            // (Closed) or an impossible size (FrameTooLarge); never a message.
            assert!(
                matches!(
                    res,
                    Err(WireError::Auth | WireError::Closed | WireError::FrameTooLarge(_))
                ),
                "bit {bit}: {res:?}"
            );
        }
    }
}

#[tokio::test]
async fn replayed_and_reordered_frames_fail() {
    let (bytes, _) = written(&[
        msg(1, Kind::Notice, "a", b"1"),
        msg(2, Kind::Notice, "b", b"2"),
    ])
    .await;
    let first_len = 4 + u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
    let (f1, f2) = bytes.split_at(first_len);

    let replay = [f1, f1].concat();
    let mut r = MsgReader::new(&replay[..], keys().1);
    assert_eq!(r.read().await.unwrap().unwrap().command, "a");
    assert!(matches!(r.read().await, Err(WireError::Auth)));

    let reorder = [f2, f1].concat();
    let mut r = MsgReader::new(&reorder[..], keys().1);
    assert!(matches!(r.read().await, Err(WireError::Auth)));

    let dropped = f2.to_vec();
    let mut r = MsgReader::new(&dropped[..], keys().1);
    assert!(matches!(r.read().await, Err(WireError::Auth)));
}

/// Hand-made client on a raw socket: valid handshake, then replayed / tampered bytes.
#[tokio::test]
async fn raw_client_replay_and_tamper_over_tcp() {
    tokio::time::timeout(LIMIT, async {
        for tamper in [false, true] {
            let (l, addr) = listener().await;
            let server = tokio::spawn(async move {
                let (s, _) = l.accept().await.unwrap();
                let (mut r, _w) = wire::accept(s, PSK).await.unwrap();
                let first = r.read().await;
                let second = r.read().await;
                (first, second)
            });
            let mut s = TcpStream::connect(addr).await.unwrap();
            let (mut sealer, _opener) = handshake::client(&mut s, PSK).await.unwrap();
            let f = seal_frame(
                &mut sealer,
                &frame::encode(1, Kind::Notice, false, "n", b"x"),
            )
            .unwrap();
            s.write_all(&f).await.unwrap();
            let mut second = seal_frame(
                &mut sealer,
                &frame::encode(2, Kind::Notice, false, "n", b"y"),
            )
            .unwrap();
            if tamper {
                let last = second.len() - 1;
                second[last] ^= 0x80;
            } else {
                second = f.clone(); // replay
            }
            s.write_all(&second).await.unwrap();
            let (first, second) = server.await.unwrap();
            assert_eq!(first.unwrap().unwrap().payload, b"x");
            assert!(matches!(second, Err(WireError::Auth)), "{second:?}");
        }
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn a_refusal_instead_of_a_hello_reaches_the_client() {
    tokio::time::timeout(LIMIT, async {
        let (l, addr) = listener().await;
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            s.write_all(&handshake::reject_bytes("agent 007 is not registered"))
                .await
                .unwrap();
        });
        let c = wire::connect(TcpStream::connect(addr).await.unwrap(), PSK).await;
        match c {
            Err(WireError::Rejected(r)) => assert_eq!(r, "agent 007 is not registered"),
            other => panic!("client got {:?}", other.map(|_| ())),
        }
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn an_agent_with_another_key_is_told_so() {
    tokio::time::timeout(LIMIT, async {
        let (l, addr) = listener().await;
        tokio::spawn(async move {
            let (s, _) = l.accept().await.unwrap();
            let _ = wire::accept_with(s, PSK, "invalid key for agent 001", 4096).await;
        });
        let c = wire::connect(TcpStream::connect(addr).await.unwrap(), b"other").await;
        match c {
            Err(WireError::Rejected(r)) => assert_eq!(r, "invalid key for agent 001"),
            other => panic!("client got {:?}", other.map(|_| ())),
        }
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn wrong_psk_client_rejected_server_auth() {
    tokio::time::timeout(LIMIT, async {
        let (l, addr) = listener().await;
        let server = tokio::spawn(async move {
            let (s, _) = l.accept().await.unwrap();
            wire::accept(s, PSK).await.map(|_| ())
        });
        let c = wire::connect(TcpStream::connect(addr).await.unwrap(), b"another key").await;
        match c {
            Err(e @ WireError::Rejected(_)) => {
                assert_eq!(e.to_string(), "rejected: wrong cluster key")
            }
            other => panic!("client got {:?}", other.map(|_| ())),
        }
        assert!(matches!(server.await.unwrap(), Err(WireError::Auth)));
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn bad_magic_and_version_refused() {
    tokio::time::timeout(LIMIT, async {
        for (hello, want_magic) in [
            (b"GET / HTTP/1.1\r\n".to_vec(), true),
            (b"RMPW\x02".to_vec(), false),
        ] {
            let (l, addr) = listener().await;
            let server = tokio::spawn(async move {
                let (s, _) = l.accept().await.unwrap();
                wire::accept(s, PSK).await.map(|_| ())
            });
            let mut s = TcpStream::connect(addr).await.unwrap();
            s.write_all(&hello).await.unwrap();
            let res = server.await.unwrap();
            if want_magic {
                assert!(matches!(res, Err(WireError::BadMagic)), "{res:?}");
            } else {
                assert!(matches!(res, Err(WireError::BadVersion(2))), "{res:?}");
            }
            // The server closed without answering (a reset when our bytes were unread).
            let mut buf = [0u8; 8];
            let n = s.read(&mut buf).await;
            assert!(matches!(n, Ok(0) | Err(_)), "{n:?}");
        }
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn client_refuses_non_rampart_server() {
    tokio::time::timeout(LIMIT, async {
        let (l, addr) = listener().await;
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut hello = [0u8; handshake::HELLO_LEN];
            s.read_exact(&mut hello).await.unwrap();
            s.write_all(b"SSH-2.0-OpenSSH_9.6\r\n").await.unwrap();
            let _ = s.read(&mut hello).await;
        });
        let res = wire::connect(TcpStream::connect(addr).await.unwrap(), PSK).await;
        assert!(matches!(res, Err(WireError::BadMagic)));
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn oversized_length_prefix_is_frame_too_large() {
    let (bytes, opener) = written(&[msg(1, Kind::Notice, "a", b"ok")]).await;
    let mut t = bytes.clone();
    t.extend_from_slice(&((MAX_SEALED + 1) as u32).to_be_bytes());
    let mut r = MsgReader::new(&t[..], opener);
    assert!(r.read().await.unwrap().is_some());
    match r.read().await {
        Err(WireError::FrameTooLarge(n)) => assert_eq!(n, MAX_SEALED + 1),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn header_without_body_times_out() {
    let (mut raw, b) = tokio::io::duplex(1 << 16);
    let (c, s) = tokio::join!(handshake::client(&mut raw, PSK), wire::accept(b, PSK));
    c.unwrap();
    let (mut r, _w) = s.unwrap();
    raw.write_all(&100u32.to_be_bytes()).await.unwrap();
    let started = tokio::time::Instant::now();
    assert!(matches!(r.read().await, Err(WireError::Timeout)));
    assert!(started.elapsed() >= wire::BODY_TIMEOUT);

    // A shorter, settable timeout, and a prefix cut in half.
    let (mut raw, b) = tokio::io::duplex(1 << 16);
    let (c, s) = tokio::join!(handshake::client(&mut raw, PSK), wire::accept(b, PSK));
    c.unwrap();
    let (mut r, _w) = s.unwrap();
    r.set_body_timeout(Duration::from_millis(100));
    raw.write_all(&[0, 0]).await.unwrap();
    let started = tokio::time::Instant::now();
    assert!(matches!(r.read().await, Err(WireError::Timeout)));
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[tokio::test]
async fn eof_clean_or_mid_message() {
    // Clean EOF between messages.
    let (bytes, opener) = written(&[msg(1, Kind::Notice, "a", b"1")]).await;
    let mut r = MsgReader::new(&bytes[..], opener);
    assert!(r.read().await.unwrap().is_some());
    assert_eq!(r.read().await.unwrap(), None);

    // EOF inside a frame.
    let (bytes, opener) = written(&[msg(1, Kind::Notice, "a", b"1")]).await;
    let mut r = MsgReader::new(&bytes[..bytes.len() - 1], opener);
    assert!(matches!(r.read().await, Err(WireError::Closed)));

    // EOF after a frame announcing more chunks.
    let (mut sealer, opener) = keys();
    let f = seal_frame(
        &mut sealer,
        &frame::encode(1, Kind::Notice, true, "a", b"1"),
    )
    .unwrap();
    let mut r = MsgReader::new(&f[..], opener);
    assert!(matches!(r.read().await, Err(WireError::Closed)));
}

#[tokio::test]
async fn interleaved_chunks_are_a_protocol_error() {
    let (mut sealer, opener) = keys();
    let mut bytes = seal_frame(
        &mut sealer,
        &frame::encode(1, Kind::Response, true, "a", b"1"),
    )
    .unwrap();
    bytes.extend(
        seal_frame(
            &mut sealer,
            &frame::encode(2, Kind::Response, false, "a", b"2"),
        )
        .unwrap(),
    );
    let mut r = MsgReader::new(&bytes[..], opener);
    assert!(matches!(r.read().await, Err(WireError::Protocol(_))));

    // A sealed but malformed frame (unknown kind) is a protocol error too.
    let (mut sealer, opener) = keys();
    let mut pt = frame::encode(1, Kind::Notice, false, "a", b"");
    pt[4] = 77;
    let bytes = seal_frame(&mut sealer, &pt).unwrap();
    let mut r = MsgReader::new(&bytes[..], opener);
    assert!(matches!(r.read().await, Err(WireError::Protocol(_))));
}

#[tokio::test]
async fn reject_reaches_the_reader() {
    let (a, b) = tokio::io::duplex(1 << 16);
    let (c, s) = tokio::join!(wire::connect(a, PSK), wire::accept(b, PSK));
    let ((mut cr, _cw), (_sr, sw)) = (c.unwrap(), s.unwrap());
    sw.reject("duplicate node name").await.unwrap();
    match cr.read().await {
        Err(e @ WireError::Rejected(_)) => {
            assert_eq!(e.to_string(), "rejected: duplicate node name")
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn writer_refuses_bad_messages_without_breaking_the_stream() {
    let (sealer, opener) = keys();
    let mut w = MsgWriter::new(Vec::new(), sealer);
    assert!(matches!(
        w.write(&msg(1, Kind::Notice, &"c".repeat(33), b"")).await,
        Err(WireError::Protocol(_))
    ));
    assert!(matches!(
        w.write(&msg(1, Kind::Notice, "naïve", b"")).await,
        Err(WireError::Protocol(_))
    ));
    // calloc-backed, so this does not touch 256 MiB of memory.
    let huge = Message::new(1, Kind::Notice, "h", vec![0; wire::MAX_MESSAGE + 1]);
    assert!(matches!(
        w.write(&huge).await,
        Err(WireError::MessageTooLarge)
    ));
    drop(huge);
    let ok = msg(2, Kind::Notice, "fine", b"still works");
    w.write(&ok).await.unwrap();
    let bytes = w.into_inner();
    let mut r = MsgReader::new(&bytes[..], opener);
    assert_eq!(r.read().await.unwrap(), Some(ok));
}

#[tokio::test]
async fn an_unauthenticated_peer_cannot_announce_a_big_confirm() {
    tokio::time::timeout(LIMIT, async {
        let (l, addr) = listener().await;
        let server = tokio::spawn(async move {
            let (s, _) = l.accept().await.unwrap();
            wire::accept(s, PSK).await.map(|_| ())
        });
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(&wire::handshake::hello_bytes(&[7u8; 32]))
            .await
            .unwrap();
        let mut theirs = [0u8; wire::handshake::HELLO_LEN];
        s.read_exact(&mut theirs).await.unwrap();
        // A sealed frame of 1 MiB would be allowed later; not as the key confirmation.
        s.write_all(&(1u32 << 20).to_be_bytes()).await.unwrap();
        let res = server.await.unwrap();
        assert!(matches!(res, Err(WireError::FrameTooLarge(_))), "{res:?}");
    })
    .await
    .unwrap();
}
