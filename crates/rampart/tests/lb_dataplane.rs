//! `rampart lb --dataplane`: changes made through the Data Plane API reach the running
//! balancer (at runtime or through the in-process reload), and a change the balancer's parser
//! refuses leaves both the file and the running configuration as they were.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::manager::wait_for;
use common::{free_port, origin, Dir, Proc, BIN};
use serde_json::{json, Value};

// "admin:s3cret"
const AUTH: &str = "Basic YWRtaW46czNjcmV0";
const CONF: &str = "/v2/services/haproxy/configuration";

struct Api {
    port: u16,
}

impl Api {
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).expect("connect API");
        s.set_read_timeout(Some(Duration::from_secs(10))).ok();
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {AUTH}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        s.write_all(req.as_bytes()).expect("request");
        let mut raw = String::new();
        s.read_to_string(&mut raw).expect("response");
        let (head, body) = raw.split_once("\r\n\r\n").expect("http response");
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .expect("status");
        (status, serde_json::from_str(body).unwrap_or(Value::Null))
    }

    fn version(&self) -> u64 {
        self.call("GET", &format!("{CONF}/version"), None)
            .1
            .as_u64()
            .expect("version")
    }
}

/// The first line an origin greets with, through the balancer.
fn greeting(port: u16) -> String {
    let s = TcpStream::connect(("127.0.0.1", port)).expect("connect lb");
    s.set_read_timeout(Some(Duration::from_secs(5))).ok();
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).expect("greeting");
    line.trim().to_string()
}

#[test]
fn api_changes_reach_the_running_balancer_and_bad_ones_change_nothing() {
    let dir = Dir::new("lb-dataplane");
    let (front, api_port) = (free_port(), free_port());
    let one = origin("one");
    let two = origin("two");
    let cfg_path = dir.0.join("haproxy.cfg");
    std::fs::write(
        &cfg_path,
        format!(
            "# the operator's comment\nglobal\n    maxconn 500\n\ndefaults\n    mode tcp\n    \
             timeout connect 2s\n    timeout client 10s\n    timeout server 10s\n\n\
             frontend fe\n    bind 127.0.0.1:{front}\n    default_backend be\n\n\
             backend be\n    balance roundrobin\n    server one {one}\n"
        ),
    )
    .expect("cfg");
    let yml = dir.0.join("dataplaneapi.yml");
    std::fs::write(
        &yml,
        format!(
            "dataplaneapi:\n  host: 127.0.0.1\n  port: {api_port}\n  transaction:\n    \
             transaction_dir: {}\n  user:\n    - name: admin\n      insecure: true\n      \
             password: s3cret\n",
            dir.0.join("tx").display()
        ),
    )
    .expect("yml");
    let _lb = Proc(
        Command::new(BIN)
            .args(["lb", "-f"])
            .arg(&cfg_path)
            .arg("--dataplane")
            .arg(&yml)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn lb"),
    );
    let api = Api { port: api_port };
    wait_for("the API", Duration::from_secs(10), || {
        TcpStream::connect(("127.0.0.1", api_port)).is_ok()
    });
    assert_eq!(greeting(front), "one");

    // A server the parser refuses: 400, file and running backend untouched.
    let before = std::fs::read(&cfg_path).expect("read cfg");
    let v = api.version();
    let (status, body) = api.call(
        "POST",
        &format!("{CONF}/servers?backend=be&version={v}&force_reload=true"),
        Some(json!({"name": "bad", "address": "127.0.0.1", "port": 0})),
    );
    assert_eq!(status, 400, "{body}");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
    assert_eq!(std::fs::read(&cfg_path).expect("read cfg"), before);
    assert_eq!(api.version(), v);
    let (_, running) = api.call(
        "GET",
        "/v2/services/haproxy/runtime/servers?backend=be",
        None,
    );
    assert_eq!(running.as_array().map(Vec::len), Some(1), "{running}");

    // A new server is live at once, without a reload.
    let (status, body) = api.call(
        "POST",
        &format!("{CONF}/servers?backend=be&version={v}&force_reload=true"),
        Some(json!({"name": "two", "address": "127.0.0.1", "port": two.port()})),
    );
    assert_eq!(status, 201, "{body}");
    let text = std::fs::read_to_string(&cfg_path).expect("read cfg");
    assert!(
        text.starts_with(&format!("# _version={}\n", v + 1)),
        "{text}"
    );
    assert!(text.contains("# the operator's comment"), "{text}");
    let seen: std::collections::BTreeSet<String> = (0..6).map(|_| greeting(front)).collect();
    assert_eq!(seen, ["one", "two"].map(String::from).into());

    // Draining at runtime sends new connections elsewhere.
    let (status, body) = api.call(
        "PUT",
        "/v2/services/haproxy/runtime/servers/one?backend=be",
        Some(json!({"admin_state": "drain"})),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["admin_state"], "drain");
    assert!((0..4).all(|_| greeting(front) == "two"));

    // A backend change goes through the reload and keeps the runtime state of the servers.
    let v = api.version();
    let (status, body) = api.call(
        "PUT",
        &format!("{CONF}/backends/be?version={v}&force_reload=true"),
        Some(json!({"name": "be", "mode": "tcp", "balance": {"algorithm": "leastconn"}})),
    );
    assert_eq!(status, 200, "{body}");
    let (_, be) = api.call("GET", &format!("{CONF}/backends/be"), None);
    assert_eq!(be["data"]["balance"]["algorithm"], "leastconn", "{be}");
    let (_, stats) = api.call(
        "GET",
        "/v2/services/haproxy/stats/native?type=backend&name=be",
        None,
    );
    assert_eq!(
        stats[0]["stats"][0]["stats"]["algo"], "leastconn",
        "{stats}"
    );
    let (_, one_rt) = api.call(
        "GET",
        "/v2/services/haproxy/runtime/servers/one?backend=be",
        None,
    );
    assert_eq!(one_rt["admin_state"], "drain", "{one_rt}");

    // Removing a server takes it out of the running backend.
    let v = api.version();
    let (status, _) = api.call(
        "DELETE",
        &format!("{CONF}/servers/two?backend=be&version={v}&force_reload=true"),
        None,
    );
    assert_eq!(status, 204);
    let (_, running) = api.call(
        "GET",
        "/v2/services/haproxy/runtime/servers?backend=be",
        None,
    );
    let names: Vec<&str> = running
        .as_array()
        .map(|a| a.iter().filter_map(|s| s["name"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(names, vec!["one"], "{running}");
}
