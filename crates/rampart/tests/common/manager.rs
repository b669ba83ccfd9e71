//! Manager nodes as processes on 127.0.0.1: homes, ossec.conf, control commands, waits.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{free_port, Dir, Proc, BIN};

pub const KEY: &str = "c98b62a9b6169ac5f67dae55ae4a9088";

/// One node's settings; ports are free ones on 127.0.0.1.
pub struct NodeSpec {
    pub name: String,
    pub master: bool,
    pub key: String,
    pub cluster: String,
    pub cluster_port: u16,
    pub master_port: u16,
    pub auth_port: u16,
    pub remote_port: u16,
    pub password: Option<String>,
    /// Extra elements inside `<cluster>` (e.g. a `<haproxy_helper>` block).
    pub cluster_extra: String,
}

impl NodeSpec {
    pub fn master(name: &str) -> NodeSpec {
        let port = free_port();
        NodeSpec {
            name: name.into(),
            master: true,
            key: KEY.into(),
            cluster: "wazuh".into(),
            cluster_port: port,
            master_port: port,
            auth_port: free_port(),
            remote_port: free_port(),
            password: None,
            cluster_extra: String::new(),
        }
    }

    pub fn worker(name: &str, master: &NodeSpec) -> NodeSpec {
        NodeSpec {
            name: name.into(),
            master: false,
            key: master.key.clone(),
            cluster: master.cluster.clone(),
            cluster_port: master.cluster_port,
            master_port: master.cluster_port,
            auth_port: free_port(),
            remote_port: free_port(),
            password: None,
            cluster_extra: String::new(),
        }
    }

    pub fn ossec_conf(&self) -> String {
        let ty = if self.master { "master" } else { "worker" };
        let use_pw = if self.password.is_some() { "yes" } else { "no" };
        format!(
            r#"<ossec_config>
  <global>
    <jsonout_output>yes</jsonout_output>
  </global>
  <remote>
    <connection>secure</connection>
    <port>{remote}</port>
    <protocol>tcp</protocol>
    <local_ip>127.0.0.1</local_ip>
  </remote>
  <auth>
    <disabled>no</disabled>
    <port>{auth}</port>
    <local_ip>127.0.0.1</local_ip>
    <use_source_ip>no</use_source_ip>
    <purge>yes</purge>
    <use_password>{use_pw}</use_password>
    <ssl_verify_host>no</ssl_verify_host>
    <ssl_auto_negotiate>no</ssl_auto_negotiate>
  </auth>
  <cluster>
    <name>{cluster}</name>
    <node_name>{name}</node_name>
    <key>{key}</key>
    <node_type>{ty}</node_type>
    <port>{port}</port>
    <bind_addr>127.0.0.1</bind_addr>
    <nodes>
      <node>127.0.0.1</node>
    </nodes>
    <hidden>no</hidden>
    <disabled>no</disabled>
    <intervals>
      <keep_alive>1s</keep_alive>
      <worker_timeout>5s</worker_timeout>
      <agent_info>1s</agent_info>
      <integrity>1s</integrity>
      <master_integrity>1s</master_integrity>
      <reconnect>2s</reconnect>
      <request_timeout>10s</request_timeout>
      <in_doubt_wait>30s</in_doubt_wait>
    </intervals>
{extra}
  </cluster>
</ossec_config>
"#,
            remote = self.remote_port,
            auth = self.auth_port,
            cluster = self.cluster,
            name = self.name,
            key = self.key,
            port = self.master_port,
            extra = self.cluster_extra,
        )
    }
}

/// A node's home directory and, while running, its process.
pub struct Node {
    pub spec: NodeSpec,
    pub dir: Dir,
    pub proc: Option<Proc>,
}

impl Node {
    pub fn new(spec: NodeSpec) -> Node {
        let dir = Dir::new(&format!("mgr-{}", spec.name));
        let etc = dir.0.join("etc");
        std::fs::create_dir_all(&etc).expect("etc");
        std::fs::write(etc.join("ossec.conf"), spec.ossec_conf()).expect("ossec.conf");
        if let Some(pw) = &spec.password {
            std::fs::write(etc.join("authd.pass"), format!("{pw}\n")).expect("authd.pass");
        }
        Node {
            spec,
            dir,
            proc: None,
        }
    }

    pub fn home(&self) -> &Path {
        &self.dir.0
    }

    pub fn start(&mut self) {
        let err = std::fs::File::create(self.home().join("stderr.log")).expect("stderr log");
        let child = Command::new(BIN)
            .args(["manager", "-d", "--home"])
            .arg(self.home())
            .env("RAMPART_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .expect("spawn manager");
        self.proc = Some(Proc(child));
        let sock = self.home().join("queue/cluster/c-internal.sock");
        let home = self.home().to_path_buf();
        wait_for(
            &format!("{} control socket", self.spec.name),
            Duration::from_secs(20),
            || sock.exists() && run(&home, &["cluster", "status"]).0,
        );
    }

    /// kill -9: nothing gets a chance to flush.
    pub fn kill9(&mut self) {
        if let Some(mut p) = self.proc.take() {
            let _ = p.0.kill();
            let _ = p.0.wait();
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.home().join("logs/cluster.log")).unwrap_or_default()
    }

    pub fn etc(&self) -> PathBuf {
        self.home().join("etc")
    }

    pub fn auth_addr(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::from(([127, 0, 0, 1], self.spec.auth_port))
    }

    /// `rampart <args…> --home HOME` → (success, stdout)
    pub fn ctl(&self, args: &[&str]) -> (bool, String) {
        run(self.home(), args)
    }

    /// Agent ids the node's registry lists.
    pub fn agent_ids(&self) -> Vec<u32> {
        first_column(&self.ctl(&["agents", "list"]))
            .iter()
            .filter_map(|c| c.parse().ok())
            .collect()
    }

    /// Node names `rampart cluster nodes` lists through this node.
    pub fn cluster_nodes(&self) -> Vec<String> {
        first_column(&self.ctl(&["cluster", "nodes"]))
    }
}

/// The first cell of each row of a table a successful command printed.
fn first_column((ok, out): &(bool, String)) -> Vec<String> {
    if !ok {
        return Vec::new();
    }
    out.lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next().map(String::from))
        .collect()
}

pub fn run(home: &Path, args: &[&str]) -> (bool, String) {
    let (sub, rest) = args.split_first().expect("a subcommand");
    let out = Command::new(BIN)
        .arg(sub)
        .arg("--home")
        .arg(home)
        .args(rest)
        .stdin(Stdio::null())
        .output()
        .expect("run rampart");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
    )
}

/// Poll `cond` until it holds; panic with `what` after `limit`.
pub fn wait_for(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while start.elapsed() < limit {
        if cond() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out after {limit:?} waiting for {what}");
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}
