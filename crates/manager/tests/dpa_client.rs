//! The Data Plane API v2 client against recorded request/response pairs.
//!
//! The fixtures (`tests/fixtures/dpa/<scenario>/NN_*.json`) follow HAProxy's published API
//! specification (dataplaneapi-specification: status codes, `_version` bodies, `native_stats`
//! and runtime info shapes). A small replay server answers them in order and checks that each
//! request is the recorded one: method, path, query (keys and values, `version` included),
//! JSON body and basic-auth header.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use manager::config::{HaproxyHelper, HelperProtocol};
use manager::helper::{AdminState, DpaClient, HelperError, ServerConf};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

const USER: &str = "admin";
const PASSWORD: &str = "s3cret";
/// `Basic base64("admin:s3cret")`.
const AUTH: &str = "Basic YWRtaW46czNjcmV0";
const LIMIT: Duration = Duration::from_secs(20);

struct Exchange {
    file: String,
    request: Value,
    response: Value,
}

fn load(scenario: &str) -> Vec<Exchange> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/dpa")
        .join(scenario);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let v: Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
            Exchange {
                file: p.file_name().unwrap().to_string_lossy().into_owned(),
                request: v["request"].clone(),
                response: v["response"].clone(),
            }
        })
        .collect()
}

/// What the replay server saw: how many exchanges were served and every mismatch.
#[derive(Default)]
struct Replay {
    next: usize,
    mismatches: Vec<String>,
}

struct Server {
    port: u16,
    state: Arc<Mutex<Replay>>,
    total: usize,
}

impl Server {
    fn served(&self) -> usize {
        self.state.lock().unwrap().next
    }

    /// Every exchange was asked for, exactly as recorded.
    fn assert_done(&self) {
        let s = self.state.lock().unwrap();
        assert!(s.mismatches.is_empty(), "{:#?}", s.mismatches);
        assert_eq!(s.next, self.total, "not every recorded request was made");
    }
}

async fn serve(scenario: &str, tls: Option<tokio_rustls::TlsAcceptor>) -> Server {
    let exchanges = Arc::new(load(scenario));
    let total = exchanges.len();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let state = Arc::new(Mutex::new(Replay::default()));
    let st = state.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (ex, st, tls) = (exchanges.clone(), st.clone(), tls.clone());
            tokio::spawn(async move {
                match tls {
                    Some(acceptor) => {
                        if let Ok(s) = acceptor.accept(stream).await {
                            connection(s, ex, st).await;
                        }
                    }
                    None => connection(stream, ex, st).await,
                }
            });
        }
    });
    Server { port, state, total }
}

struct Request {
    method: String,
    path: String,
    query: BTreeMap<String, String>,
    auth: Option<String>,
    body: Value,
}

/// One HTTP/1.1 request, or `None` at the end of the connection.
async fn read_request<S: AsyncRead + Unpin>(s: &mut S, buf: &mut Vec<u8>) -> Option<Request> {
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let mut chunk = [0u8; 4096];
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8(buf[..head_end].to_vec()).ok()?;
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let method = first.next()?.to_string();
    let target = first.next()?.to_string();
    let mut len = 0;
    let mut auth = None;
    for l in lines {
        if let Some((k, v)) = l.split_once(':') {
            match k.trim().to_ascii_lowercase().as_str() {
                "content-length" => len = v.trim().parse().ok()?,
                "authorization" => auth = Some(v.trim().to_string()),
                _ => {}
            }
        }
    }
    while buf.len() < head_end + len {
        let mut chunk = [0u8; 4096];
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body_bytes: Vec<u8> = buf.drain(..head_end + len).skip(head_end).collect();
    let body = if body_bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&body_bytes).unwrap_or(Value::String("<not JSON>".into()))
    };
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let query = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect();
    Some(Request {
        method,
        path: path.to_string(),
        query,
        auth,
        body,
    })
}

fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let hex = b
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match (b[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
                continue;
            }
            (b'+', _) => out.push(b' '),
            (c, _) => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn mismatches(ex: &Exchange, req: &Request) -> Vec<String> {
    let want = &ex.request;
    let mut out = Vec::new();
    let mut check = |what: &str, got: String, want: String| {
        if got != want {
            out.push(format!("{}: {what}: got {got}, want {want}", ex.file));
        }
    };
    check(
        "method",
        req.method.clone(),
        want["method"].as_str().unwrap().into(),
    );
    check(
        "path",
        req.path.clone(),
        want["path"].as_str().unwrap().into(),
    );
    let want_q: BTreeMap<String, String> = want["query"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
        .collect();
    check("query", format!("{:?}", req.query), format!("{want_q:?}"));
    check("body", req.body.to_string(), want["body"].to_string());
    check(
        "authorization",
        req.auth.clone().unwrap_or_default(),
        AUTH.to_string(),
    );
    out
}

fn reason(status: u64) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        409 => "Conflict",
        _ => "Status",
    }
}

async fn connection<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    exchanges: Arc<Vec<Exchange>>,
    state: Arc<Mutex<Replay>>,
) {
    let mut buf = Vec::new();
    while let Some(req) = read_request(&mut s, &mut buf).await {
        let ex = {
            let mut st = state.lock().unwrap();
            let Some(ex) = exchanges.get(st.next) else {
                st.mismatches.push(format!(
                    "unexpected extra request {} {}",
                    req.method, req.path
                ));
                return;
            };
            st.next += 1;
            let m = mismatches(ex, &req);
            st.mismatches.extend(m);
            ex
        };
        let r = &ex.response;
        if let Some(raw) = r["raw"].as_str() {
            let _ = s.write_all(raw.as_bytes()).await;
            let _ = s.shutdown().await;
            return;
        }
        let status = r["status"].as_u64().unwrap();
        let body = match (&r["body_text"], &r["body"]) {
            (Value::String(t), _) => t.clone(),
            (_, Value::Null) => String::new(),
            (_, b) => b.to_string(),
        };
        let mut head = format!("HTTP/1.1 {status} {}\r\n", reason(status));
        for (k, v) in r["headers"].as_object().unwrap() {
            head.push_str(&format!("{k}: {}\r\n", v.as_str().unwrap()));
        }
        head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
        if s.write_all(head.as_bytes()).await.is_err()
            || s.write_all(body.as_bytes()).await.is_err()
            || s.flush().await.is_err()
        {
            return;
        }
    }
}

fn cfg(port: u16) -> HaproxyHelper {
    HaproxyHelper {
        address: "127.0.0.1".into(),
        port,
        user: USER.into(),
        password: PASSWORD.into(),
        resolver: Some("dns".into()),
        ..HaproxyHelper::default()
    }
}

async fn bounded<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(LIMIT, f)
        .await
        .expect("test took too long")
}

#[tokio::test]
async fn a_whole_helper_sequence_replays() {
    bounded(async {
        let srv = serve("sequence", None).await;
        let c = DpaClient::new(&cfg(srv.port)).unwrap();
        const BE: &str = "wazuh_reporting";

        c.health().await.unwrap();
        let info = c.runtime_info().await.unwrap();
        assert_eq!(info.version, "2.8.5-1");
        assert_eq!(info.pid, Some(4242));

        assert_eq!(c.backends().await.unwrap(), vec!["stats_be".to_string()]);
        assert_eq!(c.version(), 7);
        c.add_backend(BE).await.unwrap();
        // The POST answer had no _version: re-read from /configuration/version.
        assert_eq!(c.version(), 8);

        let fronts = c.frontends().await.unwrap();
        assert_eq!(
            fronts,
            vec![
                ("stats".to_string(), Some("stats_be".to_string())),
                ("bare".to_string(), None)
            ]
        );
        c.add_frontend("wazuh_reporting_front", 1514, BE)
            .await
            .unwrap();
        assert_eq!(c.version(), 10);

        assert!(c.servers(BE).await.unwrap().is_empty());
        c.add_server(BE, "master", "10.0.0.1", 1514).await.unwrap();
        // A host name goes through the resolver.
        c.add_server(BE, "w1", "worker1.lan", 1514).await.unwrap();
        let servers = c.servers(BE).await.unwrap();
        assert_eq!(
            servers,
            vec![
                ServerConf {
                    name: "master".into(),
                    address: "10.0.0.1".into(),
                    port: Some(1514)
                },
                ServerConf {
                    name: "w1".into(),
                    address: "worker1.lan".into(),
                    port: Some(1514)
                },
                ServerConf {
                    name: "portless".into(),
                    address: "10.0.0.9".into(),
                    port: None
                },
            ]
        );
        c.replace_server(BE, "w1", "10.0.0.2", 1515).await.unwrap();
        c.remove_server(BE, "w1").await.unwrap();
        assert_eq!(c.version(), 14);

        // Runtime changes do not touch the configuration version.
        c.set_admin_state(BE, "master", AdminState::Drain)
            .await
            .unwrap();
        c.set_admin_state(BE, "master", AdminState::Ready)
            .await
            .unwrap();
        assert_eq!(c.version(), 14);

        let st = c.server_stats(BE, "master").await.unwrap().unwrap();
        assert_eq!(st.scur, 12);
        assert_eq!(st.status, "UP");
        assert_eq!(st.lastchg, Some(42));
        assert_eq!(c.server_stats(BE, "w1").await.unwrap(), None);
        srv.assert_done();
    })
    .await;
}

#[tokio::test]
async fn bad_credentials_name_haproxy_user() {
    bounded(async {
        let srv = serve("unauthorized", None).await;
        let c = DpaClient::new(&cfg(srv.port)).unwrap();
        let e = c.health().await.unwrap_err();
        assert!(matches!(e, HelperError::Credentials));
        assert!(e.to_string().contains("haproxy_user"), "{e}");
        assert!(!e.to_string().contains(PASSWORD));
        let e = c.backends().await.unwrap_err();
        assert!(matches!(e, HelperError::Credentials), "{e}");
        srv.assert_done();
    })
    .await;
}

#[tokio::test]
async fn a_404_health_is_not_a_data_plane_api() {
    bounded(async {
        let srv = serve("not_dataplane", None).await;
        let c = DpaClient::new(&cfg(srv.port)).unwrap();
        let e = c.health().await.unwrap_err();
        assert!(matches!(e, HelperError::NotDataPlane { .. }), "{e}");
        assert!(e.to_string().contains("not a Data Plane API"), "{e}");
        srv.assert_done();
    })
    .await;
}

#[tokio::test]
async fn a_version_mismatch_refreshes_and_retries_once() {
    bounded(async {
        let srv = serve("conflict", None).await;
        let c = DpaClient::new(&cfg(srv.port)).unwrap();
        c.add_backend("wazuh_reporting").await.unwrap();
        assert_eq!(c.version(), 16);
        // A second mismatch in a row is reported, not retried forever.
        let e = c.remove_server("wazuh_reporting", "w1").await.unwrap_err();
        match &e {
            HelperError::Api {
                status, message, ..
            } => {
                assert_eq!(*status, 409);
                assert_eq!(message, "version mismatch");
            }
            other => panic!("unexpected {other}"),
        }
        assert_eq!(c.version(), 17);
        srv.assert_done();
    })
    .await;
}

#[tokio::test]
async fn garbage_answers_are_clean_errors() {
    bounded(async {
        let srv = serve("garbage", None).await;
        let c = DpaClient::new(&cfg(srv.port)).unwrap();
        let e = c.runtime_info().await.unwrap_err();
        assert!(
            matches!(&e, HelperError::Malformed { reason, .. } if reason.contains("not JSON")),
            "{e}"
        );
        let e = c.backends().await.unwrap_err();
        assert!(
            matches!(&e, HelperError::Malformed { reason, .. } if reason.contains("no data")),
            "{e}"
        );
        let e = c.servers("nope").await.unwrap_err();
        match &e {
            HelperError::Api {
                status, message, ..
            } => {
                assert_eq!(*status, 404);
                assert!(message.contains("backend nope does not exist"));
            }
            other => panic!("unexpected {other}"),
        }
        let e = c.frontends().await.unwrap_err();
        assert!(matches!(e, HelperError::Connect { .. }), "{e}");
        srv.assert_done();
    })
    .await;
}

#[tokio::test]
async fn nothing_listening_is_a_connect_error() {
    bounded(async {
        // Bind then drop: the port is free and refuses connections.
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
            l.local_addr().unwrap().port()
        };
        let c = DpaClient::new(&cfg(port)).unwrap();
        let e = c.health().await.unwrap_err();
        assert!(matches!(e, HelperError::Connect { .. }), "{e}");
    })
    .await;
}

/// A self-signed certificate for 127.0.0.1 and an acceptor serving it.
fn tls_server(dir: &Path) -> (PathBuf, tokio_rustls::TlsAcceptor) {
    let ck = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).unwrap();
    let cert_path = dir.join("haproxy-ca.pem");
    std::fs::write(&cert_path, ck.cert.pem()).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(ck.signing_key.serialize_der().into());
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![ck.cert.der().clone()], key)
        .unwrap();
    (cert_path, tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

#[tokio::test]
async fn https_verifies_the_server_against_haproxy_cert() {
    bounded(async {
        let dir = tempfile::tempdir().unwrap();
        let (ca, acceptor) = tls_server(dir.path());
        let srv = serve("tls", Some(acceptor)).await;
        let c = DpaClient::new(&HaproxyHelper {
            protocol: HelperProtocol::Https,
            haproxy_cert: Some(ca),
            ..cfg(srv.port)
        })
        .unwrap();
        c.health().await.unwrap();
        srv.assert_done();
    })
    .await;
}

#[tokio::test]
async fn an_unverifiable_server_names_haproxy_cert_as_the_fix() {
    bounded(async {
        let dir = tempfile::tempdir().unwrap();
        let (_, acceptor) = tls_server(dir.path());
        let srv = serve("tls", Some(acceptor)).await;
        // Platform roots only: the self-signed certificate is unknown to them.
        let c = DpaClient::new(&HaproxyHelper {
            protocol: HelperProtocol::Https,
            ..cfg(srv.port)
        })
        .unwrap();
        let e = c.health().await.unwrap_err();
        assert!(matches!(e, HelperError::Tls { .. }), "{e}");
        assert!(e.to_string().contains("<haproxy_cert>"), "{e}");
        assert_eq!(srv.served(), 0);
    })
    .await;
}

#[tokio::test]
async fn a_client_certificate_is_presented_when_configured() {
    bounded(async {
        let dir = tempfile::tempdir().unwrap();
        let server = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).unwrap();
        let client = rcgen::generate_simple_self_signed(vec!["wazuh-master".into()]).unwrap();
        let ca = dir.path().join("haproxy-ca.pem");
        let cert = dir.path().join("client.pem");
        let key = dir.path().join("client.key");
        std::fs::write(&ca, server.cert.pem()).unwrap();
        std::fs::write(&cert, client.cert.pem()).unwrap();
        std::fs::write(&key, client.signing_key.serialize_pem()).unwrap();

        // The server only takes clients holding the client certificate.
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots.add(client.cert.der().clone()).unwrap();
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            provider.clone(),
        )
        .build()
        .unwrap();
        let skey =
            rustls::pki_types::PrivateKeyDer::Pkcs8(server.signing_key.serialize_der().into());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(vec![server.cert.der().clone()], skey)
            .unwrap();
        let srv = serve(
            "tls",
            Some(tokio_rustls::TlsAcceptor::from(Arc::new(config))),
        )
        .await;
        let https = HaproxyHelper {
            protocol: HelperProtocol::Https,
            haproxy_cert: Some(ca),
            ..cfg(srv.port)
        };
        // Without the certificate the server refuses the handshake.
        let bare = DpaClient::new(&https).unwrap();
        assert!(bare.health().await.is_err());
        assert_eq!(srv.served(), 0);
        let c = DpaClient::new(&HaproxyHelper {
            client_cert: Some(cert),
            client_cert_key: Some(key),
            ..https
        })
        .unwrap();
        c.health().await.unwrap();
        srv.assert_done();
    })
    .await;
}
