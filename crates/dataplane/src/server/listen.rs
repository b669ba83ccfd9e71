//! The listeners `dataplaneapi.yml` asks for: plain HTTP on `host:port`
//! when `scheme` has `http`, HTTPS on `host:tls_port` when it has `https`
//! (client certificates required when `tls_ca` is set).

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

use super::{router, ApiState};
use crate::model::{DataplaneConf, Scheme, Tls};

/// A client that connects but never finishes the handshake is dropped after
/// this long.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Likewise for a client that does not send a complete request header in
/// time (hyper's own default, made explicit since it needs a timer).
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);

/// Connections served at once over all listeners; more are closed at once,
/// so idle or slow clients cannot exhaust tasks and file descriptors.
const MAX_CONNECTIONS: usize = 256;

/// What every connection of one server shares.
#[derive(Clone)]
pub(crate) struct ConnLimits {
    slots: Arc<Semaphore>,
    header_timeout: Duration,
}

impl ConnLimits {
    pub(crate) fn new(max: usize, header_timeout: Duration) -> Self {
        ConnLimits {
            slots: Arc::new(Semaphore::new(max)),
            header_timeout,
        }
    }
}

impl Default for ConnLimits {
    fn default() -> Self {
        ConnLimits::new(MAX_CONNECTIONS, HEADER_TIMEOUT)
    }
}

/// Why the listeners could not be set up or stopped serving.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// `host:port` as configured.
        addr: String,
        #[source]
        source: io::Error,
    },
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The file was read but holds no usable certificate or key.
    #[error("{}: {message}", path.display())]
    Pem { path: PathBuf, message: String },
    #[error("TLS setup with {}: {message}", certificate.display())]
    Tls {
        certificate: PathBuf,
        message: String,
    },
    #[error("scheme https is set but the tls section is missing")]
    NoTls,
    #[error("accepting connections on {addr}: {source}")]
    Accept {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
}

/// A listening socket and the address it got.
struct Bound {
    listener: TcpListener,
    addr: SocketAddr,
}

/// Bound sockets, ready to serve; binding first lets the caller fail fast
/// and learn the real addresses (port 0 in tests).
pub struct Listeners {
    http: Option<Bound>,
    https: Option<(Bound, TlsAcceptor)>,
}

impl std::fmt::Debug for Listeners {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listeners")
            .field("http", &self.http_addr())
            .field("https", &self.https_addr())
            .finish()
    }
}

impl Listeners {
    /// Loads the TLS material, then binds every listener `conf` asks for.
    pub async fn bind(conf: &DataplaneConf) -> Result<Self, ListenError> {
        // Certificates first: a bad file should not leave a port half-open.
        let tls = if conf.schemes.contains(&Scheme::Https) {
            let tls = conf.tls.as_ref().ok_or(ListenError::NoTls)?;
            Some((
                tls.tls_port,
                TlsAcceptor::from(Arc::new(server_config(tls)?)),
            ))
        } else {
            None
        };
        let http = if conf.schemes.contains(&Scheme::Http) {
            Some(bind_tcp(&conf.host, conf.port).await?)
        } else {
            None
        };
        let https = match tls {
            Some((port, acceptor)) => Some((bind_tcp(&conf.host, port).await?, acceptor)),
            None => None,
        };
        Ok(Listeners { http, https })
    }

    /// Where plain HTTP is served, if it is.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http.as_ref().map(|b| b.addr)
    }

    /// Where HTTPS is served, if it is.
    pub fn https_addr(&self) -> Option<SocketAddr> {
        self.https.as_ref().map(|(b, _)| b.addr)
    }

    /// Serves the API on every listener; returns only if one fails.
    pub async fn run(self, state: Arc<ApiState>) -> Result<(), ListenError> {
        let app = router(state);
        let limits = ConnLimits::default();
        let http = {
            let (app, limits) = (app.clone(), limits.clone());
            async move {
                match self.http {
                    Some(bound) => serve_loop(bound.listener, None, app, limits).await,
                    None => std::future::pending().await,
                }
            }
        };
        let https = async move {
            match self.https {
                Some((bound, acceptor)) => {
                    serve_loop(bound.listener, Some(acceptor), app, limits).await
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            r = http => r,
            r = https => r,
        }
    }
}

/// Binds the listeners of `state.conf()` and serves the API on them.
pub async fn serve_conf(state: Arc<ApiState>) -> Result<(), ListenError> {
    Listeners::bind(state.conf()).await?.run(state).await
}

/// `host` as written in dataplaneapi.yml: an address (IPv6 possibly in
/// brackets) or a name to resolve.
async fn bind_tcp(host: &str, port: u16) -> Result<Bound, ListenError> {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let failed = |source| ListenError::Bind {
        addr: display_addr(host, port),
        source,
    };
    let listener = TcpListener::bind((bare, port)).await.map_err(failed)?;
    let addr = listener.local_addr().map_err(failed)?;
    Ok(Bound { listener, addr })
}

fn display_addr(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Accepts connections on `listener` (TLS first when `tls` is set) and
/// serves `app` on each, within `limits`; runs until the task is dropped.
pub(crate) async fn serve_loop(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    app: Router,
    limits: ConnLimits,
) -> Result<(), ListenError> {
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                // Per-connection failures (reset before accept, out of file
                // descriptors) must not stop the server; back off a little.
                tracing::warn!("dataplane API: accepting a connection: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = Arc::clone(&limits.slots).try_acquire_owned() else {
            tracing::debug!(%peer, "dataplane API: too many connections, closing");
            drop(tcp);
            continue;
        };
        let (tls, app, header_timeout) = (tls.clone(), app.clone(), limits.header_timeout);
        tokio::spawn(async move {
            // Held until the connection is done.
            let _slot = slot;
            let Some(acceptor) = tls else {
                serve_connection(tcp, app, header_timeout, peer).await;
                return;
            };
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => serve_connection(stream, app, header_timeout, peer).await,
                Ok(Err(e)) => tracing::debug!(%peer, "dataplane API: TLS handshake failed: {e}"),
                Err(_) => tracing::debug!(%peer, "dataplane API: TLS handshake timed out"),
            }
        });
    }
}

/// HTTP/1.1 on one connection, dropped when the request header is late.
async fn serve_connection<I>(io: I, app: Router, header_timeout: Duration, peer: SocketAddr)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let served = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .serve_connection(TokioIo::new(io), TowerToHyperService::new(app))
        .await;
    if let Err(e) = served {
        tracing::debug!(%peer, "dataplane API: connection: {e}");
    }
}

/// The rustls configuration for `tls`: certificate chain and key, client
/// certificates verified against `tls_ca` when set, HTTP/1.1 over ALPN.
pub(crate) fn server_config(tls: &Tls) -> Result<ServerConfig, ListenError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let chain = read_certs(&tls.tls_certificate)?;
    let key = read_key(&tls.tls_key)?;
    let tls_err = |message: String| ListenError::Tls {
        certificate: tls.tls_certificate.clone(),
        message,
    };
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_err(e.to_string()))?;
    let builder = match &tls.tls_ca {
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for cert in read_certs(ca)? {
                roots.add(cert).map_err(|e| ListenError::Pem {
                    path: ca.clone(),
                    message: format!("not a usable CA certificate: {e}"),
                })?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| ListenError::Pem {
                    path: ca.clone(),
                    message: format!("cannot verify clients with it: {e}"),
                })?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(chain, key).map_err(|e| {
        tls_err(format!(
            "certificate and key {} do not go together: {e}",
            tls.tls_key.display()
        ))
    })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

fn read_file(path: &Path) -> Result<Vec<u8>, ListenError> {
    std::fs::read(path).map_err(|source| ListenError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, ListenError> {
    let pem = read_file(path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ListenError::Pem {
            path: path.to_path_buf(),
            message: format!("bad PEM: {e}"),
        })?;
    if certs.is_empty() {
        return Err(ListenError::Pem {
            path: path.to_path_buf(),
            message: "no CERTIFICATE in PEM format".into(),
        });
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, ListenError> {
    let pem = read_file(path)?;
    // The error text never includes key material, only what was missing.
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| ListenError::Pem {
        path: path.to_path_buf(),
        message: format!("no usable private key in PEM format: {e}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_for_messages() {
        assert_eq!(display_addr("0.0.0.0", 5555), "0.0.0.0:5555");
        assert_eq!(display_addr("::1", 5555), "[::1]:5555");
        assert_eq!(display_addr("[::1]", 5555), "[::1]:5555");
        assert_eq!(display_addr("localhost", 1), "localhost:1");
    }

    /// Writes `req` (if any) and reads until the server closes, bounded.
    async fn exchange(stream: &mut tokio::net::TcpStream, req: &str) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        if !req.is_empty() {
            let _ = stream.write_all(req.as_bytes()).await;
        }
        let mut raw = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut raw));
        // A reset is a close too.
        let _ = read.await.expect("the server did not close the connection");
        String::from_utf8_lossy(&raw).into_owned()
    }

    #[tokio::test]
    async fn slow_and_excess_connections_are_closed() {
        use tokio::net::TcpStream;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new().route("/", axum::routing::get(|| async { "ok" }));
        let limits = ConnLimits::new(1, Duration::from_millis(300));
        let server = tokio::spawn(serve_loop(listener, None, app, limits));

        // A slow client holds the only slot with half a request header...
        let mut slow = TcpStream::connect(addr).await.unwrap();
        let mut excess = TcpStream::connect(addr).await.unwrap();
        // ...so the next connection is closed without an answer.
        assert_eq!(exchange(&mut excess, "").await, "");
        // The header timeout ends the slow one.
        let reply = exchange(&mut slow, "GET / HTTP/1.1\r\nHost: x\r\n").await;
        assert!(!reply.contains("200 OK"), "{reply}");
        // Its slot is free again once its task ends.
        let mut served = false;
        for _ in 0..50 {
            let mut c = TcpStream::connect(addr).await.unwrap();
            let reply = exchange(
                &mut c,
                "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            )
            .await;
            if reply.starts_with("HTTP/1.1 200 OK") {
                served = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(served, "no connection was served after the slow one ended");
        server.abort();
    }

    #[test]
    fn missing_files_are_named() {
        let tls = Tls {
            tls_port: 0,
            tls_certificate: PathBuf::from("/nonexistent/rampart.crt"),
            tls_key: PathBuf::from("/nonexistent/rampart.key"),
            tls_ca: None,
        };
        let err = server_config(&tls).unwrap_err();
        assert!(matches!(err, ListenError::Read { .. }), "{err:?}");
        assert!(
            err.to_string()
                .starts_with("/nonexistent/rampart.crt: cannot read"),
            "{err}"
        );
    }
}
