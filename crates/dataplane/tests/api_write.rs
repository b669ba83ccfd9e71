//! The write side of the Data Plane API over real HTTP on 127.0.0.1: the
//! file on disk, the version, transactions, reloads and the balancer calls.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dataplane::server::balancer::BoxFuture;
use dataplane::{
    serve, AdminState, ApiState, Balancer, DataplaneConf, Password, RuntimeServer, Scheme, StatRow,
    User,
};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const CFG: &str = "\
# _version=5
# managed by the Wazuh helper; keep this note
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
    # the master first
    server master 10.0.0.1:1514 check
    server worker1 10.0.0.2:1515 check weight 50 maxconn 100 backup
";

// "wazuh-haproxy:s3cret"
const GOOD: &str = "Basic d2F6dWgtaGFwcm94eTpzM2NyZXQ=";
const CONF: &str = "/v2/services/haproxy/configuration";
const SVC: &str = "/v2/services/haproxy";

/// A balancer recording what the API asks of it.
#[derive(Default)]
struct Recorder {
    calls: Mutex<Vec<String>>,
    runtime_ok: AtomicBool,
    fail_reload: AtomicBool,
}

impl Recorder {
    fn record(&self, call: String) {
        self.calls.lock().unwrap().push(call);
    }

    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.calls.lock().unwrap())
    }
}

impl Balancer for Recorder {
    fn reload(&self) -> BoxFuture<'_, Result<(), String>> {
        self.record("reload".into());
        let fail = self.fail_reload.load(Ordering::SeqCst);
        Box::pin(async move {
            if fail {
                Err("engine refused the configuration".into())
            } else {
                Ok(())
            }
        })
    }

    fn add_server(&self, backend: &str, name: &str, args: &[String]) -> Result<(), String> {
        self.record(format!("add_server {backend} {name} {}", args.join(" ")));
        if self.runtime_ok.load(Ordering::SeqCst) {
            Ok(())
        } else {
            Err("not at runtime".into())
        }
    }

    fn del_server(&self, backend: &str, name: &str) -> Result<(), String> {
        self.record(format!("del_server {backend} {name}"));
        if self.runtime_ok.load(Ordering::SeqCst) {
            Ok(())
        } else {
            Err("not at runtime".into())
        }
    }

    fn runtime_servers(&self, _: &str) -> Option<Vec<RuntimeServer>> {
        None
    }

    fn set_admin_state(&self, _: &str, _: &str, _: AdminState) -> Result<(), String> {
        Err("no".into())
    }

    fn info(&self) -> Vec<(String, Value)> {
        Vec::new()
    }

    fn stats(&self) -> Vec<StatRow> {
        Vec::new()
    }
}

struct Api {
    addr: SocketAddr,
    dir: tempfile::TempDir,
    bal: Arc<Recorder>,
}

impl Api {
    fn file(&self) -> PathBuf {
        self.dir.path().join("haproxy.cfg")
    }

    fn text(&self) -> String {
        std::fs::read_to_string(self.file()).unwrap()
    }

    fn tx_dir(&self) -> PathBuf {
        self.dir.path().join("tx")
    }
}

fn conf(dir: &Path, max_open: u32) -> DataplaneConf {
    DataplaneConf {
        path: PathBuf::from("dataplaneapi.yml"),
        host: "127.0.0.1".into(),
        port: 0,
        schemes: vec![Scheme::Http],
        tls: None,
        users: vec![User {
            name: "wazuh-haproxy".into(),
            password: Password::Plain("s3cret".into()),
        }],
        transaction_dir: dir.join("tx"),
        max_open_transactions: max_open,
        config_file: dir.join("haproxy.cfg"),
        haproxy_bin: None,
        reload_delay: Duration::from_millis(200),
        reload_cmd: None,
        restart_cmd: None,
        warnings: Vec::new(),
    }
}

async fn start_with(max_open: u32) -> Api {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("haproxy.cfg"), CFG).unwrap();
    let bal = Arc::new(Recorder::default());
    let state = ApiState::load(conf(dir.path(), max_open))
        .unwrap()
        .with_balancer(bal.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve(listener, Arc::new(state)));
    Api { addr, dir, bal }
}

async fn start() -> Api {
    start_with(20).await
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

/// One HTTP/1.1 request per connection, read to EOF, bounded in time.
async fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    auth: Option<&str>,
    body: Option<&str>,
) -> Reply {
    let fut = async {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let auth = auth
            .map(|a| format!("Authorization: {a}\r\n"))
            .unwrap_or_default();
        let body = body.unwrap_or("");
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(req.as_bytes()).await.unwrap();
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.unwrap();
        raw
    };
    let raw = tokio::time::timeout(Duration::from_secs(10), fut)
        .await
        .expect("request timed out");
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

impl Api {
    async fn get(&self, path: &str) -> Reply {
        call(self.addr, "GET", path, Some(GOOD), None).await
    }

    async fn send(&self, method: &str, path: &str, body: Option<Value>) -> Reply {
        let body = body.map(|b| b.to_string());
        call(self.addr, method, path, Some(GOOD), body.as_deref()).await
    }

    async fn version(&self) -> u64 {
        self.get(&format!("{CONF}/version"))
            .await
            .body
            .as_u64()
            .unwrap()
    }

    /// Waits (bounded) until a reload is no longer in progress.
    async fn reload_done(&self, id: &str) -> Value {
        for _ in 0..100 {
            let r = self.get(&format!("{SVC}/reloads/{id}")).await;
            assert_eq!(r.status, 200);
            if r.body["status"] != "in_progress" {
                return r.body;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("reload {id} did not finish");
    }
}

fn version_line(text: &str) -> &str {
    text.lines().next().unwrap()
}

#[tokio::test]
async fn wazuh_call_sequence() {
    let api = start().await;
    // Wazuh sends its last seen version with every request, GETs included.
    let list = api.get(&format!("{CONF}/backends?version=0")).await;
    assert_eq!(list.status, 200);
    let mut v = list.body["_version"].as_u64().unwrap();
    assert_eq!(v, 5);

    let r = api
        .send(
            "POST",
            &format!("{CONF}/backends?force_reload=true&version={v}"),
            Some(json!({"name": "wazuh_cluster", "mode": "tcp", "balance": {"algorithm": "leastconn"}})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["name"], "wazuh_cluster");
    v = api.version().await;
    assert_eq!(v, 6);

    let r = api
        .send(
            "POST",
            &format!("{CONF}/frontends?force_reload=true&version={v}"),
            Some(json!({"name": "wazuh_cluster_front", "mode": "tcp", "default_backend": "wazuh_cluster"})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    v = api.version().await;
    let r = api
        .send(
            "POST",
            &format!("{CONF}/binds?force_reload=true&frontend=wazuh_cluster_front&version={v}"),
            Some(json!({"port": 1516, "name": "wazuh_cluster_front_bind"})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    v = api.version().await;

    let r = api
        .send(
            "POST",
            &format!("{CONF}/servers?backend=wazuh_cluster&force_reload=true&version={v}"),
            Some(json!({"check": "enabled", "name": "wazuh-worker2", "address": "10.0.0.3", "port": 1514})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    v = api.version().await;
    let servers = api
        .get(&format!("{CONF}/servers?backend=wazuh_cluster&version={v}"))
        .await;
    assert_eq!(servers.body["data"][0]["address"], "10.0.0.3");
    assert_eq!(servers.body["data"][0]["check"], "enabled");

    let r = api
        .send(
            "DELETE",
            &format!(
                "{CONF}/servers/wazuh-worker2?backend=wazuh_cluster&force_reload=true&version={v}"
            ),
            None,
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.body);
    v = api.version().await;

    let mut global = api.get(&format!("{CONF}/global?version={v}")).await.body["data"].clone();
    assert_eq!(global["maxconn"], 4096);
    assert!(global.get("hard_stop_after").is_none());
    global["hard_stop_after"] = json!(90000);
    let r = api
        .send("PUT", &format!("{CONF}/global?version={v}"), Some(global))
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let id = r.header("reload-id").unwrap().to_string();
    assert_eq!(api.reload_done(&id).await["status"], "succeeded");
    let g = api.get(&format!("{CONF}/global")).await;
    assert_eq!(g.body["data"]["hard_stop_after"], 90000);
    assert_eq!(g.body["_version"], 11);

    let text = api.text();
    assert_eq!(version_line(&text), "# _version=11");
    assert!(text.contains("# managed by the Wazuh helper; keep this note\nglobal\n    hard-stop-after 90000\n    maxconn 4096\n"), "{text}");
    assert!(
        text.contains("\nbackend wazuh_cluster\n    mode tcp\n    balance leastconn\n"),
        "{text}"
    );
    assert!(text.contains("\nfrontend wazuh_cluster_front\n    mode tcp\n    default_backend wazuh_cluster\n    bind :1516 name wazuh_cluster_front_bind\n"), "{text}");
    assert!(!text.contains("wazuh-worker2"));
    assert!(text.contains("    # the master first\n"));
    assert_eq!(
        api.bal.take(),
        [
            "reload",
            "reload",
            "reload",
            "add_server wazuh_cluster wazuh-worker2 10.0.0.3:1514 check",
            "reload",
            "del_server wazuh_cluster wazuh-worker2",
            "reload",
            "reload",
        ]
    );
}

#[tokio::test]
async fn runtime_server_changes_skip_the_reload() {
    let api = start().await;
    api.bal.runtime_ok.store(true, Ordering::SeqCst);
    let r = api
        .send(
            "POST",
            &format!("{CONF}/servers?backend=wazuh_reporting&version=5"),
            Some(json!({"name": "w2", "address": "10.0.0.9", "port": 1514, "weight": 10, "ignored": true})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert!(r.header("reload-id").is_none());
    let r = api
        .send(
            "DELETE",
            &format!("{CONF}/servers/master?backend=wazuh_reporting&version=6"),
            None,
        )
        .await;
    assert_eq!(r.status, 204);
    assert_eq!(
        api.bal.take(),
        [
            "add_server wazuh_reporting w2 10.0.0.9:1514 weight 10",
            "del_server wazuh_reporting master",
        ]
    );
    let text = api.text();
    assert!(
        text.contains("backup\n    server w2 10.0.0.9:1514 weight 10\n"),
        "{text}"
    );
    assert!(!text.contains("server master"));
    assert!(text.contains("# the master first"));

    // Keywords the runtime `add server` does not take go through a reload.
    let r = api
        .send(
            "POST",
            &format!("{CONF}/servers?backend=wazuh_reporting&version=7&force_reload=true"),
            Some(json!({"name": "w3", "address": "10.0.0.10", "port": 1514,
                        "resolvers": "dns", "init-addr": "last,libc,none"})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(api.bal.take(), ["reload"]);
    assert!(api
        .text()
        .contains("    server w3 10.0.0.10:1514 resolvers dns init-addr last,libc,none\n"));
}

#[tokio::test]
async fn round_trips_through_get_and_file() {
    let api = start().await;
    let path = |p: &str, v: u64| format!("{CONF}/{p}version={v}&force_reload=true");

    // A GET's data PUT back changes nothing but the version.
    let before = api.text();
    for (get, put) in [
        ("backends/wazuh_reporting", "backends/wazuh_reporting?"),
        ("frontends/wazuh_register", "frontends/wazuh_register?"),
        (
            "servers/worker1?backend=wazuh_reporting",
            "servers/worker1?backend=wazuh_reporting&",
        ),
        (
            "binds/0.0.0.0:1514?frontend=wazuh_register",
            "binds/0.0.0.0:1514?frontend=wazuh_register&",
        ),
        ("global", "global?"),
    ] {
        let v = api.version().await;
        let data = api.get(&format!("{CONF}/{get}")).await.body["data"].clone();
        let r = api.send("PUT", &path(put, v), Some(data.clone())).await;
        assert_eq!(r.status, 200, "{put}: {}", r.body);
        assert_eq!(
            api.get(&format!("{CONF}/{get}")).await.body["data"],
            data,
            "{put}"
        );
    }
    let after = api.text();
    assert_eq!(version_line(&after), "# _version=10");
    assert_eq!(
        &after[after.find('\n').unwrap()..],
        &before[before.find('\n').unwrap()..]
    );

    // Backend: create, replace, delete.
    let r = api
        .send("POST", &path("backends?", 10), Some(json!({"name": "b2", "balance": {"algorithm": "roundrobin"}, "connect_timeout": 3000})))
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let r = api
        .send(
            "PUT",
            &path("backends/b2?", 11),
            Some(json!({"name": "b2", "mode": "tcp", "balance": {"algorithm": "first"}})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let b = api.get(&format!("{CONF}/backends/b2")).await;
    assert_eq!(b.body["data"]["balance"]["algorithm"], "first");
    assert_eq!(
        b.body["data"]["connect_timeout"], 5000,
        "back to the defaults' value"
    );
    assert!(
        api.text().ends_with("\nbackend b2\n    balance first\n"),
        "{}",
        api.text()
    );

    // Server: create, replace, delete.
    let r = api
        .send(
            "POST",
            &path("servers?backend=b2&", 12),
            Some(json!({"name": "s1", "address": "10.1.0.1", "port": 80, "check": "enabled"})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let r = api
        .send("PUT", &path("servers/worker1?backend=wazuh_reporting&", 13),
              Some(json!({"name": "worker1", "address": "10.0.0.2", "port": 1600, "check": "enabled", "weight": 5})))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let s = api
        .get(&format!("{CONF}/servers/worker1?backend=wazuh_reporting"))
        .await;
    assert_eq!(
        s.body["data"],
        json!({"name": "worker1", "address": "10.0.0.2", "port": 1600,
        "check": "enabled", "weight": 5, "backup": "disabled"})
    );
    assert!(
        api.text()
            .contains("    server worker1 10.0.0.2:1600 check weight 5\n"),
        "{}",
        api.text()
    );
    let r = api
        .send("DELETE", &path("servers/s1?backend=b2&", 14), None)
        .await;
    assert_eq!(r.status, 204);
    assert_eq!(
        api.get(&format!("{CONF}/servers?backend=b2")).await.body["data"],
        json!([])
    );

    // Frontend and bind: create, replace, delete.
    let r = api
        .send(
            "POST",
            &path("frontends?", 15),
            Some(json!({"name": "f2", "default_backend": "b2", "maxconn": 100})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let r = api
        .send(
            "POST",
            &path("binds?frontend=f2&", 16),
            Some(json!({"name": "f2_bind", "address": "127.0.0.1", "port": 8080})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let r = api
        .send(
            "PUT",
            &path("binds/f2_bind?frontend=f2&", 17),
            Some(json!({"name": "f2_bind", "address": "127.0.0.1", "port": 8081})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let b = api.get(&format!("{CONF}/binds/f2_bind?frontend=f2")).await;
    assert_eq!(
        b.body["data"],
        json!({"name": "f2_bind", "address": "127.0.0.1", "port": 8081})
    );
    let r = api
        .send(
            "PUT",
            &path("frontends/f2?", 18),
            Some(json!({"name": "f2", "default_backend": "b2", "client_timeout": 2000})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let f = api.get(&format!("{CONF}/frontends/f2")).await;
    assert_eq!(f.body["data"]["client_timeout"], 2000);
    assert!(f.body["data"].get("maxconn").is_none());
    assert!(api.text().contains("\nfrontend f2\n    timeout client 2000\n    default_backend b2\n    bind 127.0.0.1:8081 name f2_bind\n"), "{}", api.text());
    let r = api
        .send("DELETE", &path("binds/f2_bind?frontend=f2&", 19), None)
        .await;
    assert_eq!(r.status, 204);
    let r = api.send("DELETE", &path("frontends/f2?", 20), None).await;
    assert_eq!(r.status, 204);
    let r = api.send("DELETE", &path("backends/b2?", 21), None).await;
    assert_eq!(r.status, 204);
    let text = api.text();
    assert_eq!(version_line(&text), "# _version=22");
    assert!(!text.contains("b2") && !text.contains("f2"), "{text}");
    assert!(
        text.ends_with("backup\n") || text.ends_with("weight 5\n"),
        "{text:?}"
    );
}

#[tokio::test]
async fn version_and_query_errors() {
    let api = start().await;
    let body = json!({"name": "b2"});
    let r = api
        .send(
            "POST",
            &format!("{CONF}/backends?version=4"),
            Some(body.clone()),
        )
        .await;
    assert_eq!(r.status, 409);
    assert!(r.body["message"]
        .as_str()
        .unwrap()
        .contains("version mismatch"));
    let r = api
        .send("POST", &format!("{CONF}/backends"), Some(body.clone()))
        .await;
    assert_eq!(r.status, 400);
    let r = api
        .send(
            "POST",
            &format!("{CONF}/backends?version=5"),
            Some(json!({"name": "wazuh_reporting"})),
        )
        .await;
    assert_eq!(r.status, 409);
    let r = api
        .send(
            "POST",
            &format!("{CONF}/servers?backend=wazuh_reporting&version=5"),
            Some(json!({"name": "master", "address": "10.0.0.1", "port": 1})),
        )
        .await;
    assert_eq!(r.status, 409);
    assert_eq!(api.text(), CFG);
}

#[tokio::test]
async fn bad_requests_leave_the_file_untouched() {
    let api = start().await;
    for (method, path, body, needle) in [
        (
            "POST",
            format!("{CONF}/backends?version=5"),
            "{not json",
            "invalid JSON",
        ),
        (
            "POST",
            format!("{CONF}/backends?version=5"),
            r#"{"mode": "tcp"}"#,
            "name is required",
        ),
        (
            "POST",
            format!("{CONF}/backends?version=5"),
            r#"{"name": "b", "mode": "udp"}"#,
            "mode:",
        ),
        (
            "PUT",
            format!("{CONF}/backends/wazuh_reporting?version=5"),
            r#"{"name": "wazuh_reporting", "balance": {"algorithm": "bogus"}}"#,
            "balance.algorithm",
        ),
        // Known to the API, refused by rampart's parser.
        (
            "PUT",
            format!("{CONF}/backends/wazuh_reporting?version=5"),
            r#"{"name": "wazuh_reporting", "balance": {"algorithm": "uri"}}"#,
            "balance uri",
        ),
        (
            "POST",
            format!("{CONF}/servers?backend=wazuh_reporting&version=5"),
            r#"{"name": "s", "address": "10.0.0.5", "port": 0}"#,
            "port:",
        ),
        (
            "POST",
            format!("{CONF}/servers?backend=wazuh_reporting&version=5"),
            r#"{"name": "s", "address": "10.0.0.5"}"#,
            "port is required",
        ),
        (
            "POST",
            format!("{CONF}/servers?backend=wazuh_reporting&version=5"),
            r#"{"name": "s", "address": "10.0.0.5", "port": 1, "weight": 999}"#,
            "weight",
        ),
        (
            "POST",
            format!("{CONF}/frontends?version=5"),
            r#"{"name": "f", "default_backend": "missing"}"#,
            "missing",
        ),
        (
            "POST",
            format!("{CONF}/frontends?version=5"),
            r#"{"name": "f\nbackend x"}"#,
            "name:",
        ),
        (
            "PUT",
            format!("{CONF}/global?version=5"),
            r#"{"maxconn": "lots"}"#,
            "maxconn:",
        ),
        (
            "DELETE",
            format!("{CONF}/backends/wazuh_reporting?version=5"),
            "",
            "wazuh_reporting",
        ),
    ] {
        let body = (!body.is_empty()).then_some(body);
        let r = call(api.addr, method, &path, Some(GOOD), body).await;
        assert_eq!(r.status, 400, "{path} {body:?}: {}", r.body);
        assert_eq!(r.body["code"], 400);
        let msg = r.body["message"].as_str().unwrap();
        assert!(msg.contains(needle), "{needle} not in {msg}");
        assert_eq!(api.text(), CFG, "{path} {body:?}");
    }
    assert_eq!(api.version().await, 5);
    assert!(api.bal.take().is_empty());
}

#[tokio::test]
async fn unknown_objects_are_404() {
    let api = start().await;
    let server = json!({"name": "x", "address": "10.0.0.1", "port": 1});
    for (method, path, body) in [
        (
            "PUT",
            format!("{CONF}/backends/nope?version=5"),
            Some(json!({"name": "nope"})),
        ),
        ("DELETE", format!("{CONF}/backends/nope?version=5"), None),
        ("DELETE", format!("{CONF}/frontends/nope?version=5"), None),
        (
            "POST",
            format!("{CONF}/servers?backend=nope&version=5"),
            Some(server.clone()),
        ),
        (
            "PUT",
            format!("{CONF}/servers/x?backend=wazuh_reporting&version=5"),
            Some(server),
        ),
        (
            "DELETE",
            format!("{CONF}/servers/x?backend=wazuh_reporting&version=5"),
            None,
        ),
        (
            "DELETE",
            format!("{CONF}/binds/x?frontend=wazuh_register&version=5"),
            None,
        ),
        (
            "POST",
            format!("{CONF}/binds?frontend=nope&version=5"),
            Some(json!({"name": "b", "port": 1})),
        ),
        ("GET", format!("{SVC}/transactions/nope"), None),
        ("PUT", format!("{SVC}/transactions/nope"), None),
        ("DELETE", format!("{SVC}/transactions/nope"), None),
        (
            "POST",
            format!("{CONF}/backends?transaction_id=nope"),
            Some(json!({"name": "b"})),
        ),
        ("GET", format!("{SVC}/reloads/nope"), None),
    ] {
        let r = api.send(method, &path, body).await;
        assert_eq!(r.status, 404, "{method} {path}: {}", r.body);
        assert_eq!(r.body["code"], 404);
    }
    assert_eq!(api.text(), CFG);
}

#[tokio::test]
async fn writes_need_auth() {
    let api = start().await;
    for (method, path) in [
        ("POST", format!("{CONF}/backends?version=5")),
        ("PUT", format!("{CONF}/global?version=5")),
        (
            "DELETE",
            format!("{CONF}/servers/master?backend=wazuh_reporting&version=5"),
        ),
        ("POST", format!("{SVC}/transactions?version=5")),
        ("GET", format!("{SVC}/reloads")),
    ] {
        let r = call(api.addr, method, &path, None, Some(r#"{"name": "b"}"#)).await;
        assert_eq!(r.status, 401, "{method} {path}");
    }
    assert_eq!(api.text(), CFG);
}

#[tokio::test]
async fn deferred_changes_share_one_reload() {
    let api = start().await;
    let r = api
        .send(
            "POST",
            &format!("{CONF}/backends?version=5"),
            Some(json!({"name": "b2"})),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let id = r.header("reload-id").unwrap().to_string();
    let r = api
        .send(
            "POST",
            &format!("{CONF}/backends?version=6"),
            Some(json!({"name": "b3"})),
        )
        .await;
    assert_eq!(r.status, 202);
    assert_eq!(r.header("reload-id"), Some(id.as_str()));
    // Written at once, reloaded later.
    assert!(api.text().contains("backend b3"));
    let done = api.reload_done(&id).await;
    assert_eq!(done["status"], "succeeded");
    assert!(done["reload_timestamp"].as_u64().is_some());
    assert_eq!(api.bal.take(), ["reload"]);
    let list = api.get(&format!("{SVC}/reloads")).await;
    assert_eq!(list.body[0]["id"], id.as_str());
}

/// CFG as it is once restored under `version`.
fn cfg_at(version: u64) -> String {
    CFG.replacen("# _version=5", &format!("# _version={version}"), 1)
}

#[tokio::test]
async fn failing_reload_restores_the_previous_file() {
    let api = start().await;
    api.bal.fail_reload.store(true, Ordering::SeqCst);
    let r = api
        .send(
            "POST",
            &format!("{CONF}/backends?version=5&force_reload=true"),
            Some(json!({"name": "b2"})),
        )
        .await;
    assert_eq!(r.status, 500, "{}", r.body);
    assert!(r.body["message"]
        .as_str()
        .unwrap()
        .contains("engine refused"));
    // Restored under a new version: 6 was the failed change and is never reused.
    assert_eq!(api.text(), cfg_at(7));
    assert_eq!(api.version().await, 7);
    let r = api
        .send(
            "POST",
            &format!("{CONF}/backends?version=6"),
            Some(json!({"name": "b3"})),
        )
        .await;
    assert_eq!(r.status, 409, "{}", r.body);

    // Deferred: the reload is marked failed and the file restored.
    let r = api
        .send(
            "POST",
            &format!("{CONF}/backends?version=7"),
            Some(json!({"name": "b2"})),
        )
        .await;
    assert_eq!(r.status, 202);
    let id = r.header("reload-id").unwrap().to_string();
    let done = api.reload_done(&id).await;
    assert_eq!(done["status"], "failed");
    assert!(done["response"]
        .as_str()
        .unwrap()
        .contains("engine refused"));
    assert_eq!(api.text(), cfg_at(9));
    assert_eq!(api.version().await, 9);
    let r = api.get(&format!("{CONF}/backends/b2")).await;
    assert_eq!(r.status, 404);
    let r = api
        .send(
            "POST",
            &format!("{CONF}/backends?version=8"),
            Some(json!({"name": "b3"})),
        )
        .await;
    assert_eq!(r.status, 409, "{}", r.body);
}

#[tokio::test]
async fn server_changes_join_a_pending_reload() {
    let api = start().await;
    api.bal.runtime_ok.store(true, Ordering::SeqCst);
    api.bal.fail_reload.store(true, Ordering::SeqCst);
    let r = api
        .send(
            "POST",
            &format!("{CONF}/backends?version=5"),
            Some(json!({"name": "b2"})),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let id = r.header("reload-id").unwrap().to_string();
    // Not at runtime: the pending reload may fail and take these out of the file.
    let r = api
        .send(
            "POST",
            &format!("{CONF}/servers?backend=wazuh_reporting&version=6"),
            Some(json!({"name": "w2", "address": "10.0.0.9", "port": 1514})),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(r.header("reload-id"), Some(id.as_str()));
    let r = api
        .send(
            "DELETE",
            &format!("{CONF}/servers/master?backend=wazuh_reporting&version=7"),
            None,
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(r.header("reload-id"), Some(id.as_str()));
    assert_eq!(api.reload_done(&id).await["status"], "failed");
    // The balancer was never changed at runtime, and the file is as before.
    assert_eq!(api.bal.take(), ["reload"]);
    assert_eq!(api.text(), cfg_at(9));
}

/// Writes `text` as the configuration file the way an operator's editor
/// would, behind the API's back.
fn edit_outside(api: &Api, text: &str) {
    std::fs::write(api.file(), text).unwrap();
}

#[tokio::test]
async fn edits_outside_the_api_are_adopted_not_overwritten() {
    let api = start().await;
    let edited = format!("{CFG}\nbackend by_hand\n    server h1 10.0.0.7:80\n");
    edit_outside(&api, &edited);
    // The API's view was version 5; the file on disk is newer now.
    let r = api
        .send(
            "POST",
            &format!("{CONF}/backends?version=5"),
            Some(json!({"name": "b2"})),
        )
        .await;
    assert_eq!(r.status, 409, "{}", r.body);
    assert_eq!(api.version().await, 6);
    assert_eq!(
        api.get(&format!("{CONF}/backends/by_hand")).await.status,
        200
    );
    let r = api
        .send(
            "POST",
            &format!("{CONF}/backends?version=6&force_reload=true"),
            Some(json!({"name": "b2"})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let text = api.text();
    assert_eq!(version_line(&text), "# _version=7");
    assert!(
        text.contains("\nbackend by_hand\n    server h1 10.0.0.7:80\n"),
        "{text}"
    );
    assert!(text.contains("\nbackend b2\n"), "{text}");

    // A broken hand edit is reported and left alone.
    let broken = format!("{text}\nbackend broken\n    balance nonsense\n");
    edit_outside(&api, &broken);
    let r = api
        .send(
            "POST",
            &format!("{CONF}/backends?version=7"),
            Some(json!({"name": "b3"})),
        )
        .await;
    assert_eq!(r.status, 500, "{}", r.body);
    let msg = r.body["message"].as_str().unwrap();
    assert!(msg.contains("changed outside the API"), "{msg}");
    assert!(msg.contains("nothing was written"), "{msg}");
    assert_eq!(api.text(), broken);
    assert_eq!(api.version().await, 7);
}

#[tokio::test]
async fn default_server_settings_make_additions_reload() {
    let api = start().await;
    api.bal.runtime_ok.store(true, Ordering::SeqCst);
    let with_defaults = CFG.replace(
        "    balance leastconn\n",
        "    balance leastconn\n    default-server inter 3s weight 20\n",
    );
    edit_outside(&api, &with_defaults);
    let r = api
        .send(
            "POST",
            &format!("{CONF}/servers?backend=wazuh_reporting&version=6&force_reload=true"),
            Some(json!({"name": "w2", "address": "10.0.0.9", "port": 1514})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    // `add server` would ignore default-server: the file's server comes by reload.
    assert_eq!(api.bal.take(), ["reload"]);
    let s = api
        .get(&format!("{CONF}/servers/w2?backend=wazuh_reporting"))
        .await;
    assert_eq!(s.body["data"]["weight"], 20, "{}", s.body);
}

#[tokio::test]
async fn transactions_commit_once_and_go_stale() {
    use std::os::unix::fs::PermissionsExt;
    let api = start().await;
    let t1 = api
        .send("POST", &format!("{SVC}/transactions?version=5"), None)
        .await;
    assert_eq!(t1.status, 201, "{}", t1.body);
    assert_eq!(t1.body["_version"], 5);
    assert_eq!(t1.body["status"], "in_progress");
    let id1 = t1.body["id"].as_str().unwrap().to_string();
    let t2 = api
        .send("POST", &format!("{SVC}/transactions?version=5"), None)
        .await;
    let id2 = t2.body["id"].as_str().unwrap().to_string();
    assert_ne!(id1, id2);
    let r = api
        .send("POST", &format!("{SVC}/transactions?version=3"), None)
        .await;
    assert_eq!(r.status, 409);

    let mode = |p: PathBuf| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(api.tx_dir()), 0o700);
    assert_eq!(mode(api.tx_dir().join(format!("{id1}.cfg"))), 0o600);

    for (id, name) in [(&id1, "b1"), (&id2, "b2")] {
        let r = api
            .send(
                "POST",
                &format!("{CONF}/backends?transaction_id={id}"),
                Some(json!({"name": name})),
            )
            .await;
        assert_eq!(r.status, 202, "{}", r.body);
    }
    // Only the transaction sees it.
    assert_eq!(api.text(), CFG);
    assert_eq!(api.get(&format!("{CONF}/backends/b1")).await.status, 404);
    let r = api
        .get(&format!("{CONF}/backends/b1?transaction_id={id1}"))
        .await;
    assert_eq!(r.status, 200);
    let list = api
        .get(&format!("{SVC}/transactions?status=in_progress"))
        .await;
    assert_eq!(list.body.as_array().unwrap().len(), 2);

    let r = api
        .send(
            "PUT",
            &format!("{SVC}/transactions/{id1}?force_reload=true"),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["status"], "success");
    assert_eq!(
        api.get(&format!("{SVC}/transactions/{id1}")).await.body["status"],
        "success"
    );
    assert!(api.text().contains("\nbackend b1\n"));
    assert_eq!(version_line(&api.text()), "# _version=6");
    assert_eq!(api.bal.take(), ["reload"]);

    let r = api
        .send("PUT", &format!("{SVC}/transactions/{id2}"), None)
        .await;
    assert_eq!(r.status, 406, "{}", r.body);
    assert!(r.body["message"].as_str().unwrap().contains("outdated"));
    assert!(!api.text().contains("backend b2"));

    let t3 = api
        .send("POST", &format!("{SVC}/transactions?version=6"), None)
        .await;
    let id3 = t3.body["id"].as_str().unwrap().to_string();
    let r = api
        .send("DELETE", &format!("{SVC}/transactions/{id3}"), None)
        .await;
    assert_eq!(r.status, 204);
    assert!(!api.tx_dir().join(format!("{id3}.cfg")).exists());
    assert_eq!(
        api.get(&format!("{SVC}/transactions/{id3}")).await.status,
        404
    );

    // Deferred commit: 202 and a Reload-ID.
    let t4 = api
        .send("POST", &format!("{SVC}/transactions?version=6"), None)
        .await;
    let id4 = t4.body["id"].as_str().unwrap().to_string();
    let r = api
        .send(
            "DELETE",
            &format!("{CONF}/servers/worker1?backend=wazuh_reporting&transaction_id={id4}"),
            None,
        )
        .await;
    assert_eq!(r.status, 202);
    let r = api
        .send("PUT", &format!("{SVC}/transactions/{id4}"), None)
        .await;
    assert_eq!(r.status, 202);
    let reload = r.header("reload-id").unwrap().to_string();
    assert_eq!(api.reload_done(&reload).await["status"], "succeeded");
    assert!(!api.text().contains("worker1"));
}

#[tokio::test]
async fn open_transactions_are_limited() {
    let api = start_with(2).await;
    for _ in 0..2 {
        let r = api
            .send("POST", &format!("{SVC}/transactions?version=5"), None)
            .await;
        assert_eq!(r.status, 201);
    }
    let r = api
        .send("POST", &format!("{SVC}/transactions?version=5"), None)
        .await;
    assert_eq!(r.status, 429, "{}", r.body);
    assert_eq!(r.body["code"], 429);
}
