//! A client of the HAProxy Data Plane API v2, making the calls Wazuh's helper makes
//! (`hap_helper/proxy.py`): health, runtime info, backends, frontends with their bind, servers,
//! runtime admin state and native stats.
//!
//! Like Wazuh it sends `version=<last seen _version>` on every request and refreshes that
//! version after a configuration write whose answer carries none; a 409 (version mismatch, the
//! configuration changed under us) refreshes it and retries the write once.

use std::error::Error as _;
use std::fmt;
use std::net::IpAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{json, Value};

use crate::config::{HaproxyHelper, HelperProtocol};

/// Bound of every request, connection included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How much of a non-JSON error body goes into a message.
const MAX_QUOTED: usize = 200;

#[derive(Debug, thiserror::Error)]
pub enum HelperError {
    /// A `<haproxy_helper>` setting that cannot be used (unreadable certificate, bad address).
    #[error("<haproxy_helper>: {0}")]
    Config(String),
    #[error("cannot reach the Data Plane API at {url}: {reason}")]
    Connect { url: String, reason: String },
    #[error(
        "the TLS certificate of the Data Plane API at {url} could not be verified ({reason}); \
         set <haproxy_cert> to the CA certificate that signed it"
    )]
    Tls { url: String, reason: String },
    #[error("the Data Plane API did not answer {method} {path} within {}s", REQUEST_TIMEOUT.as_secs())]
    Timeout { method: Method, path: String },
    #[error("the Data Plane API refused the credentials: invalid credentials for haproxy_user")]
    Credentials,
    #[error("{url} is not a Data Plane API v2 (GET /v2/health answered 404)")]
    NotDataPlane { url: String },
    #[error("the Data Plane API answered {method} {path} with {status}: {message}")]
    Api {
        method: Method,
        path: String,
        status: u16,
        message: String,
    },
    #[error("unexpected answer from the Data Plane API to {method} {path}: {reason}")]
    Malformed {
        method: Method,
        path: String,
        reason: String,
    },
}

/// `runtime/info`'s first process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeInfo {
    pub version: String,
    pub pid: Option<u64>,
}

/// A server of a backend as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConf {
    pub name: String,
    pub address: String,
    /// Absent when the server line has no port.
    pub port: Option<u16>,
}

/// A server's native stats, the fields the helper uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerStats {
    /// Current sessions.
    pub scur: u64,
    /// `UP`, `DOWN`, `NOLB`, `MAINT`, `no check`, …
    pub status: String,
    /// Seconds since the last status change.
    pub lastchg: Option<u64>,
}

/// A server's runtime admin state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminState {
    Ready,
    Drain,
}

impl AdminState {
    pub fn as_str(self) -> &'static str {
        match self {
            AdminState::Ready => "ready",
            AdminState::Drain => "drain",
        }
    }
}

/// The client. The password lives only inside it and never shows in `Debug`.
pub struct DpaClient {
    http: reqwest::Client,
    /// `http(s)://host:port/v2`
    base: String,
    user: String,
    password: String,
    resolver: Option<String>,
    version: AtomicU64,
}

impl fmt::Debug for DpaClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DpaClient")
            .field("base", &self.base)
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .field("version", &self.version())
            .finish_non_exhaustive()
    }
}

type Query = Vec<(&'static str, String)>;

impl DpaClient {
    pub fn new(cfg: &HaproxyHelper) -> Result<Self, HelperError> {
        if cfg.address.is_empty() {
            return Err(HelperError::Config("no <haproxy_address>".into()));
        }
        let host = match cfg.address.parse::<IpAddr>() {
            Ok(IpAddr::V6(ip)) => format!("[{ip}]"),
            _ => cfg.address.clone(),
        };
        let base = format!("{}://{host}:{}/v2", cfg.protocol, cfg.port);
        let builder = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            // A redirect would carry the credentials elsewhere.
            .redirect(reqwest::redirect::Policy::none());
        // reqwest builds without a crypto provider of its own: it always gets a config, for
        // http one that trusts nothing (redirects are off, so it is never used).
        let tls = match cfg.protocol {
            HelperProtocol::Https => tls_config(cfg)?,
            HelperProtocol::Http => tls_builder()?
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth(),
        };
        let builder = builder.use_preconfigured_tls(tls);
        let http = builder
            .build()
            .map_err(|e| HelperError::Config(format!("cannot build the HTTP client: {e}")))?;
        Ok(DpaClient {
            http,
            base,
            user: cfg.user.clone(),
            password: cfg.password.clone(),
            resolver: cfg.resolver.clone(),
            version: AtomicU64::new(0),
        })
    }

    /// `http(s)://host:port/v2`, for messages.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// The last configuration version seen.
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Relaxed)
    }

    /// `GET /v2/health`: the API is there and takes our credentials.
    pub async fn health(&self) -> Result<(), HelperError> {
        let (status, body) = self.send(Method::GET, "/health", Vec::new(), None).await?;
        match status {
            s if s.is_success() => Ok(()),
            StatusCode::UNAUTHORIZED => Err(HelperError::Credentials),
            StatusCode::NOT_FOUND => Err(HelperError::NotDataPlane {
                url: self.base.clone(),
            }),
            s => Err(api_error(Method::GET, "/health", s, &body)),
        }
    }

    /// `GET /services/haproxy/runtime/info` → the first process's version and pid.
    pub async fn runtime_info(&self) -> Result<RuntimeInfo, HelperError> {
        let path = "/services/haproxy/runtime/info";
        let v = self.get(path, Vec::new()).await?;
        let info = &v[0]["info"];
        let bad = |reason: &str| malformed(Method::GET, path, reason);
        let version = info["version"]
            .as_str()
            .ok_or_else(|| bad("no [0].info.version"))?;
        Ok(RuntimeInfo {
            version: version.to_string(),
            pid: info["pid"].as_u64(),
        })
    }

    /// Names of the configured backends.
    pub async fn backends(&self) -> Result<Vec<String>, HelperError> {
        let path = "/services/haproxy/configuration/backends";
        let v = self.get(path, Vec::new()).await?;
        names(&v, path)
    }

    /// `mode tcp`, `balance leastconn`, applied at once.
    pub async fn add_backend(&self, name: &str) -> Result<(), HelperError> {
        let body = json!({"name": name, "mode": "tcp", "balance": {"algorithm": "leastconn"}});
        self.write(
            Method::POST,
            "/services/haproxy/configuration/backends",
            vec![("force_reload", "true".into())],
            body,
        )
        .await
        .map(drop)
    }

    /// Frontend name → its `default_backend`, if any.
    pub async fn frontends(&self) -> Result<Vec<(String, Option<String>)>, HelperError> {
        let path = "/services/haproxy/configuration/frontends";
        let v = self.get(path, Vec::new()).await?;
        data_items(&v, path)?
            .iter()
            .map(|f| {
                let name = f["name"]
                    .as_str()
                    .ok_or_else(|| malformed(Method::GET, path, "a frontend without a name"))?;
                Ok((
                    name.to_string(),
                    f["default_backend"].as_str().map(String::from),
                ))
            })
            .collect()
    }

    /// A tcp frontend to `backend`, then its bind on `port` (all addresses), named
    /// `<name>_bind` as Wazuh names it.
    pub async fn add_frontend(
        &self,
        name: &str,
        port: u16,
        backend: &str,
    ) -> Result<(), HelperError> {
        let answer = self
            .write(
                Method::POST,
                "/services/haproxy/configuration/frontends",
                vec![("force_reload", "true".into())],
                json!({"name": name, "mode": "tcp", "default_backend": backend}),
            )
            .await?;
        // The bind goes on the frontend as stored (its name as the API answered it).
        let stored = answer["name"].as_str().unwrap_or(name).to_string();
        self.write(
            Method::POST,
            "/services/haproxy/configuration/binds",
            vec![
                ("frontend", stored.clone()),
                ("force_reload", "true".into()),
            ],
            json!({"port": port, "name": format!("{stored}_bind")}),
        )
        .await
        .map(drop)
    }

    /// The servers configured in `backend`.
    pub async fn servers(&self, backend: &str) -> Result<Vec<ServerConf>, HelperError> {
        let path = "/services/haproxy/configuration/servers";
        let v = self.get(path, vec![("backend", backend.into())]).await?;
        data_items(&v, path)?
            .iter()
            .map(|s| {
                let bad = |r: &str| malformed(Method::GET, path, r);
                Ok(ServerConf {
                    name: s["name"]
                        .as_str()
                        .ok_or_else(|| bad("a server without a name"))?
                        .to_string(),
                    address: s["address"].as_str().unwrap_or_default().to_string(),
                    port: match &s["port"] {
                        Value::Null => None,
                        p => Some(
                            p.as_u64()
                                .and_then(|p| u16::try_from(p).ok())
                                .ok_or_else(|| bad("a server port out of range"))?,
                        ),
                    },
                })
            })
            .collect()
    }

    /// Adds a server with health checks, applied at once.
    pub async fn add_server(
        &self,
        backend: &str,
        name: &str,
        address: &str,
        port: u16,
    ) -> Result<(), HelperError> {
        self.write(
            Method::POST,
            "/services/haproxy/configuration/servers",
            vec![("backend", backend.into()), ("force_reload", "true".into())],
            self.server_body(name, address, port),
        )
        .await
        .map(drop)
    }

    /// Replaces a server's definition (new address or port), applied at once.
    pub async fn replace_server(
        &self,
        backend: &str,
        name: &str,
        address: &str,
        port: u16,
    ) -> Result<(), HelperError> {
        self.write(
            Method::PUT,
            &format!("/services/haproxy/configuration/servers/{name}"),
            vec![("backend", backend.into()), ("force_reload", "true".into())],
            self.server_body(name, address, port),
        )
        .await
        .map(drop)
    }

    pub async fn remove_server(&self, backend: &str, name: &str) -> Result<(), HelperError> {
        self.write(
            Method::DELETE,
            &format!("/services/haproxy/configuration/servers/{name}"),
            vec![("backend", backend.into()), ("force_reload", "true".into())],
            Value::Null,
        )
        .await
        .map(drop)
    }

    /// Runtime admin state: a drained server keeps its sessions but gets no new ones.
    pub async fn set_admin_state(
        &self,
        backend: &str,
        server: &str,
        state: AdminState,
    ) -> Result<(), HelperError> {
        self.write(
            Method::PUT,
            &format!("/services/haproxy/runtime/servers/{server}"),
            vec![("backend", backend.into())],
            json!({"admin_state": state.as_str()}),
        )
        .await
        .map(drop)
    }

    /// `stats/native` of one server: `[0].stats[0].stats`. `None` when the running HAProxy
    /// has no such server (yet).
    pub async fn server_stats(
        &self,
        backend: &str,
        server: &str,
    ) -> Result<Option<ServerStats>, HelperError> {
        let path = "/services/haproxy/stats/native";
        let q = vec![
            ("type", "server".into()),
            ("parent", backend.into()),
            ("name", server.into()),
        ];
        let v = self.get(path, q).await?;
        let bad = |r: &str| malformed(Method::GET, path, r);
        let first = v
            .as_array()
            .and_then(|a| a.first())
            .ok_or_else(|| bad("not a non-empty array"))?;
        if let Some(e) = first["error"].as_str().filter(|e| !e.is_empty()) {
            return Err(bad(&format!("the runtime API reported: {e}")));
        }
        let list = first["stats"]
            .as_array()
            .ok_or_else(|| bad("no [0].stats array"))?;
        let Some(entry) = list.first() else {
            return Ok(None);
        };
        let stats = &entry["stats"];
        if !stats.is_object() {
            return Err(bad("no [0].stats[0].stats object"));
        }
        Ok(Some(ServerStats {
            scur: stats["scur"].as_u64().unwrap_or(0),
            status: stats["status"].as_str().unwrap_or_default().to_string(),
            lastchg: stats["lastchg"].as_u64(),
        }))
    }

    fn server_body(&self, name: &str, address: &str, port: u16) -> Value {
        let mut body = json!({"check": "enabled", "name": name, "address": address, "port": port});
        // A host name is resolved by HAProxy's resolver, and a failed resolution at start
        // must not stop HAProxy (Wazuh's `init-addr`).
        if let Some(r) = &self.resolver {
            if address.parse::<IpAddr>().is_err() {
                body["resolvers"] = json!(r);
                body["init-addr"] = json!("last,libc,none");
            }
        }
        body
    }

    /// A read: 2xx with JSON, else an error.
    async fn get(&self, path: &str, query: Query) -> Result<Value, HelperError> {
        let (status, body) = self.send(Method::GET, path, query, None).await?;
        self.accept(Method::GET, path, status, &body).await
    }

    /// A write: refreshes the version when needed; on 409 refreshes it and retries once.
    async fn write(
        &self,
        method: Method,
        path: &str,
        query: Query,
        body: Value,
    ) -> Result<Value, HelperError> {
        let body = (!body.is_null()).then_some(body);
        let (mut status, mut text) = self
            .send(method.clone(), path, query.clone(), body.as_ref())
            .await?;
        if status == StatusCode::CONFLICT {
            self.refresh_version().await?;
            (status, text) = self
                .send(method.clone(), path, query, body.as_ref())
                .await?;
        }
        let v = self.accept(method.clone(), path, status, &text).await?;
        if !has_version(&v) && path.contains("/configuration/") {
            self.refresh_version().await?;
        }
        Ok(v)
    }

    /// Checks a status, parses the body and remembers its `_version`.
    async fn accept(
        &self,
        method: Method,
        path: &str,
        status: StatusCode,
        body: &[u8],
    ) -> Result<Value, HelperError> {
        if status == StatusCode::UNAUTHORIZED {
            return Err(HelperError::Credentials);
        }
        if !status.is_success() {
            return Err(api_error(method, path, status, body));
        }
        let v = if body.iter().all(u8::is_ascii_whitespace) {
            Value::Null
        } else {
            serde_json::from_slice(body)
                .map_err(|e| malformed(method, path, &format!("not JSON: {e}")))?
        };
        if let Some(n) = v.get("_version").and_then(Value::as_u64) {
            self.version.store(n, Ordering::Relaxed);
        }
        Ok(v)
    }

    /// `GET /configuration/version`: a bare integer.
    async fn refresh_version(&self) -> Result<(), HelperError> {
        let path = "/services/haproxy/configuration/version";
        let v = self.get(path, Vec::new()).await?;
        let n = v
            .as_u64()
            .or_else(|| v.get("_version").and_then(Value::as_u64))
            .ok_or_else(|| malformed(Method::GET, path, "not a version number"))?;
        self.version.store(n, Ordering::Relaxed);
        Ok(())
    }

    /// One request with the credentials and `version`; transport errors become `HelperError`.
    async fn send(
        &self,
        method: Method,
        path: &str,
        mut query: Query,
        body: Option<&Value>,
    ) -> Result<(StatusCode, Vec<u8>), HelperError> {
        // Wazuh's health probe carries no version; everything else does.
        if path != "/health" {
            query.push(("version", self.version().to_string()));
        }
        let mut req = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .basic_auth(&self.user, Some(&self.password))
            .query(&query);
        if let Some(b) = body {
            req = req.json(b);
        }
        let res = req
            .send()
            .await
            .map_err(|e| self.transport_error(&method, path, e))?;
        let status = res.status();
        let bytes = res
            .bytes()
            .await
            .map_err(|e| self.transport_error(&method, path, e))?;
        Ok((status, bytes.to_vec()))
    }

    fn transport_error(&self, method: &Method, path: &str, e: reqwest::Error) -> HelperError {
        if e.is_timeout() {
            return HelperError::Timeout {
                method: method.clone(),
                path: path.to_string(),
            };
        }
        let url = self.base.clone();
        if let Some(tls) = tls_cause(&e) {
            return HelperError::Tls { url, reason: tls };
        }
        HelperError::Connect {
            url,
            reason: chain(&e),
        }
    }
}

fn has_version(v: &Value) -> bool {
    v.get("_version").and_then(Value::as_u64).is_some()
}

/// `data[].name` of a configuration list.
fn names(v: &Value, path: &str) -> Result<Vec<String>, HelperError> {
    data_items(v, path)?
        .iter()
        .map(|b| {
            b["name"]
                .as_str()
                .map(String::from)
                .ok_or_else(|| malformed(Method::GET, path, "an item without a name"))
        })
        .collect()
}

fn data_items<'v>(v: &'v Value, path: &str) -> Result<&'v Vec<Value>, HelperError> {
    v["data"]
        .as_array()
        .ok_or_else(|| malformed(Method::GET, path, "no data array"))
}

fn malformed(method: Method, path: &str, reason: &str) -> HelperError {
    HelperError::Malformed {
        method,
        path: path.to_string(),
        reason: reason.to_string(),
    }
}

/// The API's `{"code", "message"}` error, or the start of whatever else it sent.
fn api_error(method: Method, path: &str, status: StatusCode, body: &[u8]) -> HelperError {
    let message = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v["message"].as_str().map(String::from))
        .unwrap_or_else(|| {
            let text = String::from_utf8_lossy(body);
            let text = text.trim();
            match text.char_indices().nth(MAX_QUOTED) {
                Some((i, _)) => format!("{}…", &text[..i]),
                None if text.is_empty() => "(no message)".to_string(),
                None => text.to_string(),
            }
        });
    HelperError::Api {
        method,
        path: path.to_string(),
        status: status.as_u16(),
        message,
    }
}

/// The error and its causes, `a: b: c`.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}

/// The certificate problem behind a failed request, if that is what failed.
fn tls_cause(e: &reqwest::Error) -> Option<String> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = e.source();
    while let Some(c) = cur {
        if let Some(r @ rustls::Error::InvalidCertificate(_)) = rustls_error(c) {
            return Some(r.to_string());
        }
        cur = c.source();
    }
    None
}

/// A rustls error, possibly wrapped in (nested) `io::Error`s, whose `source` skips them.
fn rustls_error<'e>(e: &'e (dyn std::error::Error + 'static)) -> Option<&'e rustls::Error> {
    if let Some(r) = e.downcast_ref::<rustls::Error>() {
        return Some(r);
    }
    let inner = e.downcast_ref::<std::io::Error>()?.get_ref()?;
    rustls_error(inner)
}

/// Server verification against `haproxy_cert` or the platform's roots, and the client
/// certificate when configured. Verification is never disabled.
fn tls_config(cfg: &HaproxyHelper) -> Result<rustls::ClientConfig, HelperError> {
    let mut roots = rustls::RootCertStore::empty();
    match &cfg.haproxy_cert {
        Some(ca) => {
            for cert in read_certs(ca, "<haproxy_cert>")? {
                roots.add(cert).map_err(|e| {
                    HelperError::Config(format!("<haproxy_cert> {}: {e}", ca.display()))
                })?;
            }
        }
        None => {
            // Unreadable platform certificates only shrink the set; a server then fails
            // verification with a message naming haproxy_cert.
            let native = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(native.certs);
        }
    }
    let builder = tls_builder()?.with_root_certificates(roots);
    match (&cfg.client_cert, &cfg.client_cert_key) {
        (Some(cert), Some(key)) => {
            let chain = read_certs(cert, "<client_cert>")?;
            let key = PrivateKeyDer::from_pem_file(key).map_err(|e| {
                HelperError::Config(format!(
                    "cannot read <client_cert_key> {}: {e}",
                    key.display()
                ))
            })?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| HelperError::Config(format!("<client_cert>: {e}")))
        }
        (None, None) => Ok(builder.with_no_client_auth()),
        _ => Err(HelperError::Config(
            "<client_cert> and <client_cert_key> go together".into(),
        )),
    }
}

/// The workspace's crypto provider (aws-lc-rs), explicitly: no process default is assumed.
fn tls_builder(
) -> Result<rustls::ConfigBuilder<rustls::ClientConfig, rustls::WantsVerifier>, HelperError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| HelperError::Config(format!("TLS: {e}")))
}

fn read_certs(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>, HelperError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| HelperError::Config(format!("cannot read {what} {}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(HelperError::Config(format!(
            "{what} {} holds no PEM certificate",
            path.display()
        )));
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_password() {
        let cfg = HaproxyHelper {
            address: "127.0.0.1".into(),
            user: "admin".into(),
            password: "s3cr3t-pw".into(),
            ..HaproxyHelper::default()
        };
        let c = DpaClient::new(&cfg).unwrap();
        let d = format!("{c:?}");
        assert!(!d.contains("s3cr3t-pw"), "{d}");
        assert!(d.contains("admin"));
        assert_eq!(c.base_url(), "http://127.0.0.1:5555/v2");
    }

    #[test]
    fn ipv6_addresses_are_bracketed() {
        let cfg = HaproxyHelper {
            address: "::1".into(),
            port: 5556,
            protocol: HelperProtocol::Https,
            ..HaproxyHelper::default()
        };
        assert_eq!(
            DpaClient::new(&cfg).unwrap().base_url(),
            "https://[::1]:5556/v2"
        );
    }

    #[test]
    fn resolver_applies_to_host_names_only() {
        let cfg = HaproxyHelper {
            address: "lb".into(),
            resolver: Some("dns".into()),
            ..HaproxyHelper::default()
        };
        let c = DpaClient::new(&cfg).unwrap();
        let b = c.server_body("w1", "worker1.example", 1514);
        assert_eq!(b["resolvers"], "dns");
        assert_eq!(b["init-addr"], "last,libc,none");
        let b = c.server_body("w1", "10.0.0.1", 1514);
        assert!(b.get("resolvers").is_none() && b.get("init-addr").is_none());
        assert_eq!(b["check"], "enabled");
        assert_eq!(b["port"], 1514);
    }

    #[test]
    fn api_errors_carry_the_message() {
        let e = api_error(
            Method::POST,
            "/x",
            StatusCode::BAD_REQUEST,
            br#"{"code":400,"message":"missing name"}"#,
        );
        assert_eq!(
            e.to_string(),
            "the Data Plane API answered POST /x with 400: missing name"
        );
        let long = "x".repeat(500);
        let e = api_error(Method::GET, "/y", StatusCode::BAD_GATEWAY, long.as_bytes());
        assert!(e.to_string().ends_with('…'));
        assert!(e.to_string().len() < 300);
    }

    #[test]
    fn unusable_certificate_settings_are_config_errors() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.pem");
        let cfg = HaproxyHelper {
            address: "lb".into(),
            protocol: HelperProtocol::Https,
            haproxy_cert: Some(missing.clone()),
            ..HaproxyHelper::default()
        };
        let e = DpaClient::new(&cfg).unwrap_err();
        assert!(
            matches!(&e, HelperError::Config(m) if m.contains("<haproxy_cert>")),
            "{e}"
        );
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        let cfg = HaproxyHelper {
            haproxy_cert: Some(empty),
            ..cfg
        };
        assert!(
            matches!(DpaClient::new(&cfg), Err(HelperError::Config(m)) if m.contains("no PEM"))
        );
        let cfg = HaproxyHelper {
            haproxy_cert: None,
            client_cert: Some(missing),
            ..cfg
        };
        assert!(
            matches!(DpaClient::new(&cfg), Err(HelperError::Config(m)) if m.contains("together"))
        );
    }
}
