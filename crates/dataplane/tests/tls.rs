//! HTTPS listeners (with and without client certificates), both listeners
//! from one configuration, and hashed-password users, over real sockets on
//! 127.0.0.1 with certificates generated in a temporary directory.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use dataplane::{ApiState, DataplaneConf, ListenError, Listeners, Password, Scheme, Tls, User};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

const HAPROXY_CFG: &str = "\
# _version=3
global
    maxconn 100

backend b
    server s1 10.0.0.1:1514
";

/// Every network step of a test is bounded by this.
const STEP: Duration = Duration::from_secs(10);

// "wazuh-haproxy:s3cret"
const PLAIN_OK: &str = "Basic d2F6dWgtaGFwcm94eTpzM2NyZXQ=";
// "sha512:s3cret", "sha512:wrong"
const SHA512_OK: &str = "Basic c2hhNTEyOnMzY3JldA==";
const SHA512_WRONG: &str = "Basic c2hhNTEyOndyb25n";
// "bcrypt:s3cret", "bcrypt:wrong"
const BCRYPT_OK: &str = "Basic YmNyeXB0OnMzY3JldA==";
const BCRYPT_WRONG: &str = "Basic YmNyeXB0Ondyb25n";

/// `openssl passwd -6 -salt rampartSalt s3cret`
const SHA512_S3CRET: &str = "$6$rampartSalt$2BdmtiOrMWlUF2V2m6aA3HT3U09UGTq7YdBg4feSvqSfMU7hu.VQcnLRmMVfdJhip9I245Uv9tahv9Fj/oflb.";
/// crypt(3) of s3cret with setting `$2b$10$abcdefghijklmnopqrstuu`.
const BCRYPT_S3CRET: &str = "$2b$10$abcdefghijklmnopqrstuu3KWNuWLhBnmgYfnzONPueahDuedC/lu";

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// A certificate authority able to issue server and client certificates.
struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

struct Issued {
    cert: CertificateDer<'static>,
    cert_pem: String,
    key_der: Vec<u8>,
    key_pem: String,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        Ca { issuer }
    }

    fn pem(&self) -> String {
        self.issuer.pem()
    }

    fn issue(&self, sans: &[&str], usage: ExtendedKeyUsagePurpose) -> Issued {
        let mut params =
            CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        params.distinguished_name.push(
            DnType::CommonName,
            sans.first().copied().unwrap_or("client"),
        );
        params.extended_key_usages = vec![usage];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Issued {
            cert: cert.der().clone(),
            cert_pem: cert.pem(),
            key_der: key.serialize_der(),
            key_pem: key.serialize_pem(),
        }
    }
}

/// Server certificate and key (and optionally a client CA) on disk.
struct Pki {
    dir: tempfile::TempDir,
    ca: Ca,
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::new("rampart test CA");
        let server = ca.issue(
            &["localhost", "127.0.0.1"],
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        std::fs::write(dir.path().join("server.crt"), &server.cert_pem).unwrap();
        std::fs::write(dir.path().join("server.key"), &server.key_pem).unwrap();
        std::fs::write(dir.path().join("ca.crt"), ca.pem()).unwrap();
        Pki { dir, ca }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// TLS settings on port 0; clients need a certificate from `client_ca`
    /// when given.
    fn tls(&self, client_ca: Option<&Ca>) -> Tls {
        let tls_ca = client_ca.map(|ca| {
            let p = self.path("client-ca.crt");
            std::fs::write(&p, ca.pem()).unwrap();
            p
        });
        Tls {
            tls_port: 0,
            tls_certificate: self.path("server.crt"),
            tls_key: self.path("server.key"),
            tls_ca,
        }
    }

    /// A client trusting this CA, presenting `cert` if given.
    fn connector(&self, cert: Option<&Issued>) -> TlsConnector {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca.issuer.der().clone()).unwrap();
        let builder = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
        let mut config = match cert {
            Some(c) => builder
                .with_client_auth_cert(
                    vec![c.cert.clone()],
                    PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(c.key_der.clone())),
                )
                .unwrap(),
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        TlsConnector::from(Arc::new(config))
    }
}

fn conf(schemes: Vec<Scheme>, tls: Option<Tls>) -> DataplaneConf {
    let user = |name: &str, password: Password| User {
        name: name.into(),
        password,
    };
    DataplaneConf {
        path: PathBuf::from("dataplaneapi.yml"),
        host: "127.0.0.1".into(),
        port: 0,
        schemes,
        tls,
        users: vec![
            user("wazuh-haproxy", Password::Plain("s3cret".into())),
            user("sha512", Password::Hashed(SHA512_S3CRET.into())),
            user("bcrypt", Password::Hashed(BCRYPT_S3CRET.into())),
        ],
        transaction_dir: PathBuf::from("/tmp/haproxy"),
        max_open_transactions: 20,
        config_file: PathBuf::from("haproxy.cfg"),
        haproxy_bin: None,
        reload_delay: Duration::from_secs(5),
        reload_cmd: None,
        restart_cmd: None,
        warnings: Vec::new(),
    }
}

/// Binds and serves `conf`; returns the HTTP and HTTPS addresses.
async fn start(conf: DataplaneConf) -> (Option<SocketAddr>, Option<SocketAddr>) {
    let listeners = Listeners::bind(&conf).await.unwrap();
    let addrs = (listeners.http_addr(), listeners.https_addr());
    let state = Arc::new(ApiState::new(conf, "haproxy.cfg", HAPROXY_CFG.into()).unwrap());
    tokio::spawn(listeners.run(state));
    addrs
}

/// One `GET` with `Connection: close`, read to EOF; the status code, or why
/// there was none.
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    path: &str,
    auth: &str,
) -> Result<u16, String> {
    let req =
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: {auth}\r\nConnection: close\r\n\r\n");
    let io = async {
        stream.write_all(req.as_bytes()).await?;
        stream.flush().await?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await?;
        Ok::<_, std::io::Error>(raw)
    };
    let raw = tokio::time::timeout(STEP, io)
        .await
        .map_err(|_| "timed out".to_string())?
        .map_err(|e| format!("i/o: {e}"))?;
    let text = String::from_utf8_lossy(&raw);
    let status = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok());
    status.ok_or_else(|| format!("not an HTTP response: {text:?}"))
}

async fn https_get(
    addr: SocketAddr,
    connector: &TlsConnector,
    path: &str,
    auth: &str,
) -> Result<u16, String> {
    let tcp = tokio::time::timeout(STEP, TcpStream::connect(addr))
        .await
        .map_err(|_| "connect timed out".to_string())?
        .map_err(|e| format!("connect: {e}"))?;
    let name = ServerName::try_from("localhost").map_err(|e| e.to_string())?;
    let tls = tokio::time::timeout(STEP, connector.connect(name, tcp))
        .await
        .map_err(|_| "handshake timed out".to_string())?
        .map_err(|e| format!("handshake: {e}"))?;
    exchange(tls, path, auth).await
}

/// A TLS refusal (an alert, in the handshake or at the first read), not a
/// timeout or an HTTP answer.
fn refused_by_tls(r: &Result<u16, String>) -> bool {
    r.as_ref()
        .is_err_and(|e| e.contains("alert") || e.starts_with("handshake"))
}

async fn http_get(addr: SocketAddr, path: &str, auth: &str) -> Result<u16, String> {
    let tcp = tokio::time::timeout(STEP, TcpStream::connect(addr))
        .await
        .map_err(|_| "connect timed out".to_string())?
        .map_err(|e| format!("connect: {e}"))?;
    exchange(tcp, path, auth).await
}

#[tokio::test]
async fn https_serves_the_api() {
    let pki = Pki::new();
    let (http, https) = start(conf(vec![Scheme::Https], Some(pki.tls(None)))).await;
    assert_eq!(http, None, "scheme https only: no plain listener");
    let https = https.unwrap();
    let client = pki.connector(None);
    assert_eq!(
        https_get(https, &client, "/v2/info", PLAIN_OK).await,
        Ok(200)
    );
    assert_eq!(
        https_get(
            https,
            &client,
            "/v2/services/haproxy/configuration/version",
            PLAIN_OK
        )
        .await,
        Ok(200)
    );
    assert_eq!(
        https_get(https, &client, "/v2/info", "Basic bm9ib2R5Om5vcGU=").await,
        Ok(401)
    );
}

#[tokio::test]
async fn plain_http_to_the_tls_port_gets_no_answer() {
    let pki = Pki::new();
    let (_, https) = start(conf(vec![Scheme::Https], Some(pki.tls(None)))).await;
    let https = https.unwrap();
    let plain = http_get(https, "/v2/info", PLAIN_OK).await;
    assert!(plain.is_err(), "{plain:?}");
    // The failed handshake closed only that connection.
    let client = pki.connector(None);
    assert_eq!(
        https_get(https, &client, "/v2/info", PLAIN_OK).await,
        Ok(200)
    );
}

#[tokio::test]
async fn client_certificates_are_required_with_tls_ca() {
    let pki = Pki::new();
    let client_ca = Ca::new("rampart client CA");
    let (_, https) = start(conf(vec![Scheme::Https], Some(pki.tls(Some(&client_ca))))).await;
    let https = https.unwrap();

    let good = client_ca.issue(&["wazuh-master"], ExtendedKeyUsagePurpose::ClientAuth);
    let with_cert = pki.connector(Some(&good));
    assert_eq!(
        https_get(https, &with_cert, "/v2/info", PLAIN_OK).await,
        Ok(200)
    );

    // TLS 1.3 reports a refused client certificate after the client's side
    // of the handshake, so the failure may show at the first read.
    let no_cert = https_get(https, &pki.connector(None), "/v2/info", PLAIN_OK).await;
    assert!(refused_by_tls(&no_cert), "{no_cert:?}");

    let rogue_ca = Ca::new("someone else's CA");
    let rogue = rogue_ca.issue(&["wazuh-master"], ExtendedKeyUsagePurpose::ClientAuth);
    let other = https_get(https, &pki.connector(Some(&rogue)), "/v2/info", PLAIN_OK).await;
    assert!(refused_by_tls(&other), "{other:?}");

    // Refused clients did not disturb the listener.
    assert_eq!(
        https_get(https, &with_cert, "/v2/health", PLAIN_OK).await,
        Ok(200)
    );
}

#[tokio::test]
async fn hashed_users_authenticate_over_https() {
    let pki = Pki::new();
    let (_, https) = start(conf(vec![Scheme::Https], Some(pki.tls(None)))).await;
    let https = https.unwrap();
    let client = pki.connector(None);
    for (auth, want) in [
        (SHA512_OK, 200),
        (SHA512_WRONG, 401),
        (BCRYPT_OK, 200),
        (BCRYPT_WRONG, 401),
        // Again, now from the cache of verified passwords.
        (SHA512_OK, 200),
        (BCRYPT_OK, 200),
        (SHA512_WRONG, 401),
    ] {
        assert_eq!(
            https_get(https, &client, "/v2/health", auth).await,
            Ok(want),
            "{auth}"
        );
    }
}

#[tokio::test]
async fn http_and_https_from_one_conf() {
    let pki = Pki::new();
    let (http, https) = start(conf(vec![Scheme::Http, Scheme::Https], Some(pki.tls(None)))).await;
    let (http, https) = (http.unwrap(), https.unwrap());
    assert_ne!(http.port(), https.port());
    assert_eq!(http_get(http, "/v2/info", PLAIN_OK).await, Ok(200));
    assert_eq!(http_get(http, "/v2/info", SHA512_OK).await, Ok(200));
    assert_eq!(
        https_get(https, &pki.connector(None), "/v2/info", BCRYPT_OK).await,
        Ok(200)
    );
}

#[tokio::test]
async fn http_only_conf_has_no_tls_listener() {
    let (http, https) = start(conf(vec![Scheme::Http], None)).await;
    assert_eq!(https, None);
    assert_eq!(
        http_get(http.unwrap(), "/v2/health", PLAIN_OK).await,
        Ok(200)
    );
}

#[tokio::test]
async fn busy_port_is_named_in_the_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let mut c = conf(vec![Scheme::Http], None);
    c.port = port;
    let err = Listeners::bind(&c).await.unwrap_err();
    assert!(matches!(err, ListenError::Bind { .. }), "{err:?}");
    assert!(
        err.to_string()
            .starts_with(&format!("cannot listen on 127.0.0.1:{port}:")),
        "{err}"
    );
}

fn bind_error(tls: Tls) -> ListenError {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(Listeners::bind(&conf(vec![Scheme::Https], Some(tls))))
        .unwrap_err()
}

fn starts_with_path(err: &ListenError, path: &Path) {
    let shown = err.to_string();
    assert!(
        shown.starts_with(&format!("{}: ", path.display())),
        "{shown}"
    );
}

#[test]
fn unusable_tls_files_are_named() {
    let pki = Pki::new();

    let mut tls = pki.tls(None);
    tls.tls_key = pki.path("missing.key");
    let err = bind_error(tls.clone());
    assert!(matches!(err, ListenError::Read { .. }), "{err:?}");
    starts_with_path(&err, &tls.tls_key);

    // A certificate where the key should be: no key, and nothing secret in
    // the message.
    let mut tls = pki.tls(None);
    tls.tls_key = pki.path("server.crt");
    let err = bind_error(tls.clone());
    assert!(matches!(err, ListenError::Pem { .. }), "{err:?}");
    starts_with_path(&err, &tls.tls_key);

    let mut tls = pki.tls(None);
    tls.tls_certificate = pki.path("server.key");
    let err = bind_error(tls.clone());
    assert!(matches!(err, ListenError::Pem { .. }), "{err:?}");
    starts_with_path(&err, &tls.tls_certificate);
    assert!(!err.to_string().contains("PRIVATE KEY-----"), "{err}");

    let mut tls = pki.tls(None);
    let garbage = pki.path("garbage.crt");
    std::fs::write(&garbage, "not a certificate\n").unwrap();
    tls.tls_ca = Some(garbage.clone());
    let err = bind_error(tls);
    starts_with_path(&err, &garbage);

    // Certificate and key that do not belong together.
    let other = pki
        .ca
        .issue(&["localhost"], ExtendedKeyUsagePurpose::ServerAuth);
    let other_key = pki.path("other.key");
    std::fs::write(&other_key, &other.key_pem).unwrap();
    let mut tls = pki.tls(None);
    tls.tls_key = other_key;
    let err = bind_error(tls);
    assert!(matches!(err, ListenError::Tls { .. }), "{err:?}");
}

#[test]
fn https_without_tls_settings_is_refused() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let err = rt
        .block_on(Listeners::bind(&conf(vec![Scheme::Https], None)))
        .unwrap_err();
    assert!(matches!(err, ListenError::NoTls), "{err:?}");
}
