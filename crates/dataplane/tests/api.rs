//! The Data Plane API server over real HTTP on 127.0.0.1.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use dataplane::{serve, ApiState, DataplaneConf, Password, Scheme, User};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const HAPROXY_CFG: &str = "\
# _version=5
global
    maxconn 4096

defaults
    mode tcp
    timeout connect 5s
    timeout client 1m
    timeout server 1m

frontend wazuh_register
    bind :1514
    default_backend wazuh_reporting

backend wazuh_reporting
    balance leastconn
    server master 10.0.0.1:1514 check
    server worker1 10.0.0.2:1515 check weight 50 maxconn 100 backup
";

// "wazuh-haproxy:s3cret"
const GOOD: &str = "Basic d2F6dWgtaGFwcm94eTpzM2NyZXQ=";
// "wazuh-haproxy:wrong"
const WRONG: &str = "Basic d2F6dWgtaGFwcm94eTp3cm9uZw==";
// "hashed:s3cret"
const HASHED: &str = "Basic aGFzaGVkOnMzY3JldA==";

const CONF: &str = "/v2/services/haproxy/configuration";

fn conf() -> DataplaneConf {
    DataplaneConf {
        path: PathBuf::from("dataplaneapi.yml"),
        host: "127.0.0.1".into(),
        port: 0,
        schemes: vec![Scheme::Http],
        tls: None,
        users: vec![
            User {
                name: "wazuh-haproxy".into(),
                password: Password::Plain("s3cret".into()),
            },
            User {
                name: "hashed".into(),
                password: Password::Hashed(format!("$6$salt${}", "a".repeat(86))),
            },
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

async fn start(cfg: &str) -> SocketAddr {
    let state = ApiState::new(conf(), "haproxy.cfg", cfg.to_string()).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve(listener, Arc::new(state)));
    addr
}

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Value,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A minimal HTTP/1.1 client: one request per connection, read to EOF.
async fn get(addr: SocketAddr, path: &str, auth: Option<&str>) -> Reply {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let auth = auth
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\n\r\n");
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let mut lines = head.lines();
    let status = lines.next().unwrap().split(' ').nth(1).unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Reply {
        status: status.parse().unwrap(),
        headers,
        body: if body.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(body).unwrap()
        },
    }
}

fn assert_unauthorized(r: &Reply) {
    assert_eq!(r.status, 401);
    assert_eq!(
        r.header("www-authenticate"),
        Some("Basic realm=\"dataplaneapi\"")
    );
    assert_eq!(r.body["code"], 401);
    assert!(r.body["message"].as_str().is_some_and(|m| !m.is_empty()));
}

#[tokio::test]
async fn auth_is_required_everywhere() {
    let addr = start(HAPROXY_CFG).await;
    for path in [
        "/v2/info".to_string(),
        "/v2/health".to_string(),
        format!("{CONF}/version"),
        format!("{CONF}/backends"),
        format!("{CONF}/servers?backend=wazuh_reporting"),
        "/v2/nope".to_string(),
    ] {
        assert_unauthorized(&get(addr, &path, None).await);
        assert_unauthorized(&get(addr, &path, Some(WRONG)).await);
        assert_unauthorized(&get(addr, &path, Some(HASHED)).await);
        assert_unauthorized(&get(addr, &path, Some("Bearer abc")).await);
    }
    let ok = get(addr, "/v2/health", Some(GOOD)).await;
    assert_eq!(ok.status, 200);
    assert_eq!(ok.body, json!({"haproxy": "up"}));
}

#[tokio::test]
async fn info_and_version() {
    let addr = start(HAPROXY_CFG).await;
    let info = get(addr, "/v2/info", Some(GOOD)).await;
    assert_eq!(info.status, 200);
    let version = info.body["api"]["version"].as_str().unwrap();
    assert!(version.contains(env!("CARGO_PKG_VERSION")), "{version}");
    assert!(info.body["api"]["build_date"].is_string());
    assert!(info.body["system"].is_object());

    let v = get(addr, &format!("{CONF}/version"), Some(GOOD)).await;
    assert_eq!(v.status, 200);
    assert_eq!(v.body, json!(5));
}

#[tokio::test]
async fn version_defaults_to_one() {
    let cfg = HAPROXY_CFG.replacen("# _version=5\n", "", 1);
    let addr = start(&cfg).await;
    let v = get(addr, &format!("{CONF}/version"), Some(GOOD)).await;
    assert_eq!(v.body, json!(1));
    let list = get(addr, &format!("{CONF}/backends"), Some(GOOD)).await;
    assert_eq!(list.body["_version"], 1);
}

#[tokio::test]
async fn frontends_and_binds() {
    let addr = start(HAPROXY_CFG).await;
    let list = get(addr, &format!("{CONF}/frontends"), Some(GOOD)).await;
    assert_eq!(list.status, 200);
    assert_eq!(list.header("configuration-version"), Some("5"));
    assert_eq!(list.body["_version"], 5);
    let data = list.body["data"].as_array().unwrap();
    assert_eq!(data.len(), 1);
    assert_eq!(data[0]["name"], "wazuh_register");
    assert_eq!(data[0]["mode"], "tcp");
    assert_eq!(data[0]["default_backend"], "wazuh_reporting");

    let one = get(
        addr,
        &format!("{CONF}/frontends/wazuh_register"),
        Some(GOOD),
    )
    .await;
    assert_eq!(one.status, 200);
    assert_eq!(one.body["data"], data[0]);

    let binds = get(
        addr,
        &format!("{CONF}/binds?frontend=wazuh_register"),
        Some(GOOD),
    )
    .await;
    assert_eq!(binds.status, 200);
    assert_eq!(binds.body["_version"], 5);
    let b = &binds.body["data"][0];
    assert_eq!(b["port"], 1514);
    assert!(b["name"].is_string() && b["address"].is_string());
}

#[tokio::test]
async fn backends_and_servers() {
    let addr = start(HAPROXY_CFG).await;
    let list = get(addr, &format!("{CONF}/backends"), Some(GOOD)).await;
    assert_eq!(list.status, 200);
    assert_eq!(
        list.body,
        json!({"_version": 5, "data": [
            {"name": "wazuh_reporting", "mode": "tcp", "balance": {"algorithm": "leastconn"},
             "connect_timeout": 5000, "server_timeout": 60000, "queue_timeout": 5000}
        ]})
    );
    let one = get(
        addr,
        &format!("{CONF}/backends/wazuh_reporting"),
        Some(GOOD),
    )
    .await;
    assert_eq!(one.body["data"], list.body["data"][0]);

    let servers = get(
        addr,
        &format!("{CONF}/servers?backend=wazuh_reporting"),
        Some(GOOD),
    )
    .await;
    assert_eq!(servers.status, 200);
    assert_eq!(
        servers.body,
        json!({"_version": 5, "data": [
            {"name": "master", "address": "10.0.0.1", "port": 1514,
             "check": "enabled", "weight": 1, "backup": "disabled"},
            {"name": "worker1", "address": "10.0.0.2", "port": 1515,
             "check": "enabled", "weight": 50, "maxconn": 100, "backup": "enabled"}
        ]})
    );
    let one = get(
        addr,
        &format!("{CONF}/servers/worker1?backend=wazuh_reporting"),
        Some(GOOD),
    )
    .await;
    assert_eq!(one.status, 200);
    assert_eq!(one.body["data"], servers.body["data"][1]);
}

#[tokio::test]
async fn unknown_names_are_404() {
    let addr = start(HAPROXY_CFG).await;
    for path in [
        format!("{CONF}/backends/nope"),
        format!("{CONF}/frontends/nope"),
        format!("{CONF}/servers?backend=nope"),
        format!("{CONF}/servers/nope?backend=wazuh_reporting"),
        format!("{CONF}/binds?frontend=nope"),
        "/v2/nope".to_string(),
    ] {
        let r = get(addr, &path, Some(GOOD)).await;
        assert_eq!(r.status, 404, "{path}");
        assert_eq!(r.body["code"], 404, "{path}");
        assert!(r.body["message"].is_string(), "{path}");
    }
}

#[tokio::test]
async fn missing_parent_is_400() {
    let addr = start(HAPROXY_CFG).await;
    for (path, key) in [
        (format!("{CONF}/servers"), "backend"),
        (format!("{CONF}/servers/master"), "backend"),
        (format!("{CONF}/servers?backend="), "backend"),
        (format!("{CONF}/binds"), "frontend"),
    ] {
        let r = get(addr, &path, Some(GOOD)).await;
        assert_eq!(r.status, 400, "{path}");
        assert_eq!(r.body["code"], 400);
        assert!(r.body["message"].as_str().unwrap().contains(key), "{path}");
    }
}

#[test]
fn bad_config_is_refused() {
    let err = ApiState::new(conf(), "haproxy.cfg", "backend b\n    bogus_kw 1\n".into());
    assert!(err.is_err());
}
