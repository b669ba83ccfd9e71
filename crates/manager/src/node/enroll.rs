//! Enrollment on every node (Wazuh authd over TLS, port 1515). A worker resolves the IP,
//! makes the key and forwards to the master; the agent gets its key only after the master
//! committed it, and a forward whose answer was lost is cancelled by key.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::authd::{self, EnrollRequest, KeyReply};
use crate::registry::{Agent, Command, ForcePolicy, Outcome};

use super::keys_file::write_secret;
use super::proto::{self, EnrollCancel, EnrollFwd};
use super::{now, Node, Role};

/// Wazuh authd gives a client this long to finish the TLS handshake and send its request.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_CONCURRENT: usize = 512;

pub async fn spawn_server(node: Arc<Node>) -> anyhow::Result<()> {
    let acceptor = TlsAcceptor::from(Arc::new(server_config(&node)?));
    let password = load_password(&node)?.map(Arc::new);
    let auth = &node.conf.auth;
    let ip = auth.local_ip.unwrap_or(IpAddr::from([0, 0, 0, 0]));
    let addr = SocketAddr::new(ip, auth.port);
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} for enrollment"))?;
    node.log.info(
        &node.tag(),
        "Enrollment",
        format!(
            "Accepting enrollments on {addr} (TLS){}.",
            if password.is_some() {
                ", password required"
            } else {
                ""
            }
        ),
    );
    let limit = Arc::new(Semaphore::new(MAX_CONCURRENT));
    tokio::spawn(async move {
        loop {
            let Ok(permit) = limit.clone().acquire_owned().await else {
                return;
            };
            match listener.accept().await {
                Ok((stream, src)) => {
                    let (node, acceptor, password) =
                        (node.clone(), acceptor.clone(), password.clone());
                    tokio::spawn(async move {
                        handle(
                            &node,
                            acceptor,
                            stream,
                            src,
                            password.as_deref().map(String::as_str),
                        )
                        .await;
                        drop(permit);
                    });
                }
                Err(e) => {
                    node.log
                        .error(&node.tag(), "Enrollment", format!("accept failed: {e}"));
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    });
    Ok(())
}

async fn handle(
    node: &Node,
    acceptor: TlsAcceptor,
    stream: TcpStream,
    src: SocketAddr,
    password: Option<&str>,
) {
    let tag = node.tag();
    let mut tls = match tokio::time::timeout(CLIENT_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(t)) => t,
        Ok(Err(e)) => {
            node.log.debug(
                &tag,
                "Enrollment",
                format!("TLS handshake with {src} failed: {e}"),
            );
            return;
        }
        Err(_) => return,
    };
    let reply = match read_request(&mut tls).await {
        Ok(line) => match authd::parse_request(&line) {
            Ok(req) => {
                let name = req.name.clone();
                match process(node, req, src.ip(), password).await {
                    Ok(a) => authd::format_key(a.id, &a.name, &a.ip, &a.key),
                    Err(e) => {
                        node.log.warning(
                            &tag,
                            "Enrollment",
                            format!("Refused agent '{name}' from {}: {e}", src.ip()),
                        );
                        authd::format_error(&e)
                    }
                }
            }
            Err(e) => {
                node.log.warning(
                    &tag,
                    "Enrollment",
                    format!("Invalid request from {}: {e}", src.ip()),
                );
                authd::format_error(&e.to_string())
            }
        },
        Err(e) => {
            node.log.debug(&tag, "Enrollment", format!("{src}: {e}"));
            return;
        }
    };
    let _ = tls.write_all(reply.as_bytes()).await;
    let _ = tls.shutdown().await;
}

/// One request line: up to a newline, EOF, or a pause after some data (clients that do not
/// end the line still get an answer).
async fn read_request<S: AsyncRead + Unpin>(s: &mut S) -> Result<String, String> {
    let mut buf = Vec::with_capacity(256);
    let mut chunk = [0u8; 1024];
    let deadline = tokio::time::Instant::now() + CLIENT_TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let wait = if buf.is_empty() {
            left
        } else {
            left.min(Duration::from_millis(200))
        };
        match tokio::time::timeout(wait, s.read(&mut chunk)).await {
            Ok(Ok(0)) => break,
            Ok(Ok(n)) => {
                buf.extend_from_slice(&chunk[..n]);
                if buf.len() > authd::MAX_REQUEST {
                    return Err("request too long".into());
                }
                if buf.contains(&b'\n') {
                    break;
                }
            }
            Ok(Err(e)) => return Err(e.to_string()),
            Err(_) if buf.is_empty() => return Err("no request in time".into()),
            Err(_) => break,
        }
    }
    String::from_utf8(buf).map_err(|_| "request is not UTF-8".into())
}

/// Check the password, resolve the IP, make the key, then register on the master
/// (directly or forwarded).
pub async fn process(
    node: &Node,
    req: EnrollRequest,
    src: IpAddr,
    password: Option<&str>,
) -> Result<Agent, String> {
    authd::check_password(&req, password).map_err(|e| e.to_string())?;
    let ip = authd::resolve_ip(req.ip.as_ref(), src, node.conf.auth.use_source_ip);
    let fwd = EnrollFwd {
        name: req.name,
        ip,
        key: authd::new_key(),
        groups: req.groups,
        key_hash: req.key_hash,
        via: node.conf.cluster.node_name.clone(),
    };
    match &node.role {
        Role::Worker(w) => {
            let timeout = node.conf.cluster.intervals.request_timeout;
            let payload = serde_json::to_vec(&fwd).map_err(|e| e.to_string())?;
            match w.peer() {
                None => Err("Could not reach the master node; try again later".into()),
                Some(peer) => match peer.request(proto::ENROLL, payload, timeout).await {
                    Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| e.to_string()),
                    Err(wire::rpc::RpcError::Remote(msg)) => Err(msg),
                    Err(e) => {
                        // The master may have committed it: take it back (now, and after a
                        // reconnect until the master confirms) so no agent exists whose key
                        // nobody received.
                        w.cancel_later(EnrollCancel {
                            name: fwd.name.clone(),
                            key: fwd.key.clone(),
                        });
                        let (w, p) = (w.clone(), peer.clone());
                        tokio::spawn(async move { w.flush_cancels(&p, timeout).await });
                        Err(format!(
                            "Could not reach the master node ({e}); try again later"
                        ))
                    }
                },
            }
        }
        _ => register_on_master(node, fwd).await,
    }
}

/// Each group must be a valid name (authd's rules: no `.`, `..` or `/`) with a folder
/// under `etc/shared`.
pub fn groups_exist(node: &Node, groups: &[String]) -> Result<(), String> {
    if !groups.is_empty() {
        authd::parse_groups(&groups.join(",")).map_err(|e| e.to_string())?;
    }
    for g in groups {
        if !node.home.shared().join(g).is_dir() {
            return Err(format!("Invalid group: {g}"));
        }
    }
    Ok(())
}

fn force_policy(node: &Node) -> ForcePolicy {
    let f = &node.conf.auth.force;
    ForcePolicy {
        enabled: f.enabled,
        key_mismatch: f.key_mismatch,
        disconnected_time: f.disconnected_time.map(|d| d.as_secs()),
        after_registration_time: f.after_registration_time.as_secs(),
    }
}

pub async fn register_on_master(node: &Node, fwd: EnrollFwd) -> Result<Agent, String> {
    groups_exist(node, &fwd.groups)?;
    let cmd = Command::Register {
        name: fwd.name.clone(),
        ip: fwd.ip.clone(),
        key: fwd.key,
        groups: fwd.groups,
        time: now(),
        force: force_policy(node),
        key_hash: fwd.key_hash,
    };
    let outcome = node.registry.submit(cmd).await.map_err(|e| {
        node.log
            .error("Master", "Enrollment", format!("registry error: {e}"));
        "Internal error; try again later".to_string()
    })?;
    let agent = match outcome.1 {
        Outcome::Registered(a) if cancelled(node, &a.name, &a.key) => {
            // The worker gave up before this commit: undo it.
            super::master::delete_agent(node, a.id).await?;
            return Err("Enrollment cancelled; try again".into());
        }
        Outcome::Registered(a) => a,
        Outcome::Replaced { old, agent } => {
            node.log.info(
                "Master",
                "Enrollment",
                format!(
                    "Agent {old:03} ({}) replaced by a new enrollment.",
                    agent.name
                ),
            );
            agent
        }
        Outcome::Rejected(r) => return Err(r.to_string()),
        other => return Err(format!("unexpected outcome {other:?}")),
    };
    node.log.info(
        "Master",
        "Enrollment",
        format!(
            "Agent {:03} ({}) registered with IP {} via {}.",
            agent.id, agent.name, agent.ip, fwd.via
        ),
    );
    Ok(agent)
}

fn cancelled(node: &Node, name: &str, key: &str) -> bool {
    match &node.role {
        Role::Master(m) => m.take_cancelled(name, key),
        _ => false,
    }
}

pub async fn cancel_on_master(node: &Node, c: &EnrollCancel) -> Result<(), String> {
    let found = node.registry.by_name(&c.name).filter(|a| a.key == c.key);
    if found.is_none() {
        // Not committed yet (or never will be): remember, so a late commit is undone.
        if let Role::Master(m) = &node.role {
            m.remember_cancelled(c);
        }
    }
    if let Some(a) = found {
        super::master::delete_agent(node, a.id).await?;
        node.log.warning(
            "Master",
            "Enrollment",
            format!(
                "Enrollment of agent {:03} ({}) cancelled: the worker could not deliver its key.",
                a.id, a.name
            ),
        );
    }
    Ok(())
}

fn resolve(node: &Node, p: &Option<PathBuf>, default: PathBuf) -> PathBuf {
    match p {
        Some(p) if p.is_absolute() => p.clone(),
        Some(p) => node.home.root.join(p),
        None => default,
    }
}

/// The configured certificate, or one generated on first start (key 0600).
fn server_config(node: &Node) -> anyhow::Result<rustls::ServerConfig> {
    let auth = &node.conf.auth;
    let cert = resolve(node, &auth.ssl_manager_cert, node.home.ssl_cert());
    let key = resolve(node, &auth.ssl_manager_key, node.home.ssl_key());
    match (cert.exists(), key.exists()) {
        (true, true) => {}
        (false, false) => {
            let name = node.conf.cluster.node_name.clone();
            let ck = rcgen::generate_simple_self_signed(vec![name, "localhost".into()])
                .context("cannot generate the enrollment certificate")?;
            write_secret(&key, ck.signing_key.serialize_pem().as_bytes())
                .with_context(|| format!("cannot write {}", key.display()))?;
            std::fs::write(&cert, ck.cert.pem())
                .with_context(|| format!("cannot write {}", cert.display()))?;
            node.log.info(
                &node.tag(),
                "Enrollment",
                format!("Generated a self-signed certificate in {}.", cert.display()),
            );
        }
        _ => anyhow::bail!(
            "<auth>: found only one of {} and {}; provide both or neither (one is generated)",
            cert.display(),
            key.display()
        ),
    }
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert)
        .and_then(|it| it.collect::<Result<_, _>>())
        .map_err(|e| anyhow::anyhow!("{}: {e}", cert.display()))?;
    let private = PrivateKeyDer::from_pem_file(&key)
        .map_err(|e| anyhow::anyhow!("{}: {e}", key.display()))?;
    let builder = rustls::ServerConfig::builder();
    let builder = match &auth.ssl_agent_ca {
        Some(ca) => {
            let ca = resolve(node, &Some(ca.clone()), PathBuf::new());
            let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots(&ca)?))
                .build()
                .context("<ssl_agent_ca>")?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    builder
        .with_single_cert(certs, private)
        .context("the enrollment certificate and key do not match")
}

fn roots(ca: &Path) -> anyhow::Result<rustls::RootCertStore> {
    let mut store = rustls::RootCertStore::empty();
    for c in
        CertificateDer::pem_file_iter(ca).map_err(|e| anyhow::anyhow!("{}: {e}", ca.display()))?
    {
        let c = c.map_err(|e| anyhow::anyhow!("{}: {e}", ca.display()))?;
        store.add(c).with_context(|| format!("{}", ca.display()))?;
    }
    Ok(store)
}

/// `etc/authd.pass` when `<use_password>yes`; generated (0600) when missing. The password
/// itself is never logged.
fn load_password(node: &Node) -> anyhow::Result<Option<String>> {
    if !node.conf.auth.use_password {
        return Ok(None);
    }
    let path = node.home.authd_pass();
    match std::fs::read_to_string(&path) {
        Ok(s) if !s.trim().is_empty() => Ok(Some(s.trim().to_string())),
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(anyhow::anyhow!("cannot read {}: {e}", path.display()))
        }
        Ok(_) | Err(_) => {
            let pw = authd::new_key()[..32].to_string();
            write_secret(&path, format!("{pw}\n").as_bytes())
                .with_context(|| format!("cannot write {}", path.display()))?;
            node.log.info(
                &node.tag(),
                "Enrollment",
                format!(
                    "No password in {}; generated a random one there.",
                    path.display()
                ),
            );
            Ok(Some(pw))
        }
    }
}

/// Enroll as an agent does: TLS to `addr`, one request line, one answer. Without a CA the
/// manager's certificate is not verified (Wazuh agents' default without `server_ca_path`).
pub async fn enroll_client(
    addr: SocketAddr,
    req: &EnrollRequest,
    server_ca: Option<&Path>,
) -> Result<KeyReply, String> {
    let builder = rustls::ClientConfig::builder();
    let config = match server_ca {
        Some(ca) => builder
            .with_root_certificates(roots(ca).map_err(|e| e.to_string())?)
            .with_no_client_auth(),
        None => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyServerCert::new()))
            .with_no_client_auth(),
    };
    let stream = tokio::time::timeout(CLIENT_TIMEOUT, TcpStream::connect(addr))
        .await
        .map_err(|_| format!("{addr}: connect timed out"))?
        .map_err(|e| format!("{addr}: {e}"))?;
    let name = ServerName::IpAddress(addr.ip().into());
    let mut tls = tokio::time::timeout(
        CLIENT_TIMEOUT,
        TlsConnector::from(Arc::new(config)).connect(name, stream),
    )
    .await
    .map_err(|_| "TLS handshake timed out".to_string())?
    .map_err(|e| format!("TLS handshake failed: {e}"))?;
    tls.write_all(authd::format_request(req).as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(60), tls.read_to_end(&mut answer))
        .await
        .map_err(|_| "no answer from the manager".to_string())?
        .or_else(|e| {
            if answer.is_empty() {
                Err(e.to_string())
            } else {
                Ok(0)
            }
        })?;
    authd::parse_reply(String::from_utf8_lossy(&answer).trim_end())
}

/// Accepts any server certificate but still checks the handshake signatures.
#[derive(Debug)]
struct AnyServerCert(Arc<rustls::crypto::CryptoProvider>);

impl AnyServerCert {
    fn new() -> Self {
        AnyServerCert(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
    }
}

impl rustls::client::danger::ServerCertVerifier for AnyServerCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
