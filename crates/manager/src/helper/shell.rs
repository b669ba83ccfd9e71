//! The helper's loop on the master: wait for the Data Plane API, then every `frequency`
//! observe → `plan` → run the actions in order. An API error ends the cycle with a warning
//! (the next cycle starts over from a fresh observation); nothing here stops the master.
//!
//! The loop talks to two sides through small traits, so the action → call mapping is tested
//! with fakes: the load balancer (`LoadBalancer`, the Data Plane API client) and the cluster
//! (`ClusterSide`: nodes, agents, reconnections, sleeping, cluster.log).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

use crate::clusterlog::Level as LogLevel;
use crate::config::HaproxyHelper;
use crate::node::{Master, Node};

use super::client::{AdminState, DpaClient, HelperError, ServerConf, ServerStats};
use super::observe;
use super::plan::{
    plan, Action, BackendServer, ClusterNode, HelperState, Level, Observed, LOG_TAG,
};

/// cluster.log task of the loop and of the planner's messages.
const MAIN: &str = "Main";
/// cluster.log task of the changes made through the API.
const PROXY: &str = "Proxy";

/// The Data Plane API calls the loop makes.
pub(crate) trait LoadBalancer {
    async fn backends(&self) -> Result<Vec<String>, HelperError>;
    async fn add_backend(&self, name: &str) -> Result<(), HelperError>;
    async fn frontends(&self) -> Result<Vec<(String, Option<String>)>, HelperError>;
    async fn add_frontend(&self, name: &str, port: u16, backend: &str) -> Result<(), HelperError>;
    async fn servers(&self, backend: &str) -> Result<Vec<ServerConf>, HelperError>;
    async fn server_stats(
        &self,
        backend: &str,
        server: &str,
    ) -> Result<Option<ServerStats>, HelperError>;
    async fn add_server(
        &self,
        backend: &str,
        name: &str,
        address: &str,
        port: u16,
    ) -> Result<(), HelperError>;
    async fn replace_server(
        &self,
        backend: &str,
        name: &str,
        address: &str,
        port: u16,
    ) -> Result<(), HelperError>;
    async fn remove_server(&self, backend: &str, name: &str) -> Result<(), HelperError>;
    async fn set_admin_state(
        &self,
        backend: &str,
        server: &str,
        state: AdminState,
    ) -> Result<(), HelperError>;
}

impl LoadBalancer for DpaClient {
    async fn backends(&self) -> Result<Vec<String>, HelperError> {
        DpaClient::backends(self).await
    }
    async fn add_backend(&self, name: &str) -> Result<(), HelperError> {
        DpaClient::add_backend(self, name).await
    }
    async fn frontends(&self) -> Result<Vec<(String, Option<String>)>, HelperError> {
        DpaClient::frontends(self).await
    }
    async fn add_frontend(&self, name: &str, port: u16, backend: &str) -> Result<(), HelperError> {
        DpaClient::add_frontend(self, name, port, backend).await
    }
    async fn servers(&self, backend: &str) -> Result<Vec<ServerConf>, HelperError> {
        DpaClient::servers(self, backend).await
    }
    async fn server_stats(
        &self,
        backend: &str,
        server: &str,
    ) -> Result<Option<ServerStats>, HelperError> {
        DpaClient::server_stats(self, backend, server).await
    }
    async fn add_server(
        &self,
        backend: &str,
        name: &str,
        address: &str,
        port: u16,
    ) -> Result<(), HelperError> {
        DpaClient::add_server(self, backend, name, address, port).await
    }
    async fn replace_server(
        &self,
        backend: &str,
        name: &str,
        address: &str,
        port: u16,
    ) -> Result<(), HelperError> {
        DpaClient::replace_server(self, backend, name, address, port).await
    }
    async fn remove_server(&self, backend: &str, name: &str) -> Result<(), HelperError> {
        DpaClient::remove_server(self, backend, name).await
    }
    async fn set_admin_state(
        &self,
        backend: &str,
        server: &str,
        state: AdminState,
    ) -> Result<(), HelperError> {
        DpaClient::set_admin_state(self, backend, server, state).await
    }
}

/// What the loop needs from the cluster.
pub(crate) trait ClusterSide {
    /// Connected nodes with their reporting address, and the names of those without one.
    fn nodes(&self) -> (Vec<ClusterNode>, Vec<String>);
    /// Connected agents per node.
    fn agents_by_node(&self) -> BTreeMap<String, Vec<u32>>;
    /// The agents' connection port (the frontend's port when one is created).
    fn agent_port(&self) -> u16;
    /// Asks `node`'s agents in `agents` to reconnect; how many were connected.
    async fn reconnect(&self, node: &str, agents: &[u32]) -> usize;
    async fn sleep(&self, d: Duration);
    fn log(&self, level: LogLevel, task: &str, msg: String);
}

/// The master as the loop sees it.
struct MasterSide {
    node: Arc<Node>,
    master: Arc<Master>,
}

impl ClusterSide for MasterSide {
    fn nodes(&self) -> (Vec<ClusterNode>, Vec<String>) {
        let infos = self.master.nodes(&self.node);
        observe::cluster_nodes(&infos, observe::master_reporting(&self.node.conf))
    }

    fn agents_by_node(&self) -> BTreeMap<String, Vec<u32>> {
        observe::agents_by_node(&self.node.registry.list())
    }

    fn agent_port(&self) -> u16 {
        self.node.conf.remote.port
    }

    async fn reconnect(&self, node: &str, agents: &[u32]) -> usize {
        if node == self.node.conf.cluster.node_name {
            self.node
                .remoted
                .reconnect(agents, "asked by the HAProxy helper to rebalance")
        } else {
            self.master.reconnect_on(&self.node, node, agents).await
        }
    }

    async fn sleep(&self, d: Duration) {
        tokio::time::sleep(d).await;
    }

    fn log(&self, level: LogLevel, task: &str, msg: String) {
        self.node.log.log(level, LOG_TAG, task, msg);
    }
}

/// Starts the helper on the master when `<haproxy_helper>` is configured and not disabled.
/// The task runs until the runtime stops (the node has no other shutdown signal); the handle
/// lets a caller abort it.
pub fn spawn(node: Arc<Node>, master: Arc<Master>) -> Option<JoinHandle<()>> {
    let cfg = node.conf.cluster.helper.clone().filter(|h| !h.disabled)?;
    Some(tokio::spawn(run(MasterSide { node, master }, cfg)))
}

async fn run(side: MasterSide, cfg: HaproxyHelper) {
    let client = match DpaClient::new(&cfg) {
        Ok(c) => c,
        Err(e) => {
            side.log(
                LogLevel::Error,
                MAIN,
                format!("The HAProxy helper cannot start: {e}"),
            );
            return;
        }
    };
    let every = cfg.frequency.max(Duration::from_secs(1));
    side.log(
        LogLevel::Info,
        MAIN,
        format!(
            "Starting the HAProxy helper: Data Plane API at {}, backend '{}', every {}s",
            client.base_url(),
            cfg.backend,
            every.as_secs()
        ),
    );
    wait_for_api(&side, &client, every).await;
    let start = Instant::now();
    let mut state = HelperState::new();
    loop {
        let now_s = start.elapsed().as_secs();
        if let Err(e) = cycle(&client, &side, &cfg, &mut state, now_s).await {
            side.log(
                LogLevel::Warning,
                MAIN,
                format!("Cycle stopped: {e}; retrying in {}s", every.as_secs()),
            );
        }
        side.sleep(every).await;
    }
}

/// Health and runtime info, retried every `every` until both answer.
async fn wait_for_api<C: ClusterSide>(side: &C, client: &DpaClient, every: Duration) {
    loop {
        let probe = async {
            client.health().await?;
            client.runtime_info().await
        };
        match probe.await {
            Ok(info) => {
                let pid = info.pid.map(|p| format!(", pid {p}")).unwrap_or_default();
                side.log(
                    LogLevel::Info,
                    MAIN,
                    format!("Connected to HAProxy {}{pid}", info.version),
                );
                return;
            }
            Err(e) => side.log(
                LogLevel::Warning,
                MAIN,
                format!("{e}; retrying in {}s", every.as_secs()),
            ),
        }
        side.sleep(every).await;
    }
}

/// One cycle: observe, plan, run.
pub(crate) async fn cycle<L: LoadBalancer, C: ClusterSide>(
    lb: &L,
    side: &C,
    cfg: &HaproxyHelper,
    state: &mut HelperState,
    now_s: u64,
) -> Result<(), HelperError> {
    let backend_exists = lb.backends().await?.contains(&cfg.backend);
    let servers = if backend_exists {
        observe_backend(lb, &cfg.backend).await?
    } else {
        Vec::new()
    };
    let (nodes, unknown) = side.nodes();
    if !unknown.is_empty() {
        side.log(
            LogLevel::Debug,
            MAIN,
            format!(
                "No reporting address known for node(s) {}; left out of the backend",
                unknown.join(", ")
            ),
        );
    }
    let agents = side.agents_by_node();
    let obs = Observed {
        now_s,
        agent_port: side.agent_port(),
        nodes: &nodes,
        backend_exists,
        servers: &servers,
        agents_by_node: &agents,
    };
    let before = state.clone();
    let actions = plan(cfg, state, &obs);
    let done = execute(lb, side, &cfg.backend, actions).await;
    if done.is_err() {
        state.cycle_failed(&before);
    }
    done
}

/// The backend's servers with their runtime stats.
pub(crate) async fn observe_backend<L: LoadBalancer>(
    lb: &L,
    backend: &str,
) -> Result<Vec<BackendServer>, HelperError> {
    let confs = lb.servers(backend).await?;
    let mut stats = BTreeMap::new();
    for c in &confs {
        stats.insert(c.name.clone(), lb.server_stats(backend, &c.name).await?);
    }
    Ok(observe::backend_servers(&confs, &stats))
}

/// Runs the actions in order; the first API error ends the run.
pub(crate) async fn execute<L: LoadBalancer, C: ClusterSide>(
    lb: &L,
    side: &C,
    backend: &str,
    actions: Vec<Action>,
) -> Result<(), HelperError> {
    for action in actions {
        match action {
            Action::CreateBackend { name } => {
                lb.add_backend(&name).await?;
                side.log(
                    LogLevel::Info,
                    PROXY,
                    format!("Created backend '{name}' (mode tcp, balance leastconn)"),
                );
            }
            Action::CreateFrontend {
                name,
                port,
                backend: to,
            } => {
                if lb.frontends().await?.iter().any(|(f, _)| *f == name) {
                    side.log(
                        LogLevel::Info,
                        PROXY,
                        format!("Frontend '{name}' already exists; kept as it is"),
                    );
                } else {
                    lb.add_frontend(&name, port, &to).await?;
                    side.log(
                        LogLevel::Info,
                        PROXY,
                        format!("Created frontend '{name}' on port {port} to backend '{to}'"),
                    );
                }
            }
            Action::AddServer {
                name,
                address,
                port,
            } => {
                lb.add_server(backend, &name, &address, port).await?;
                side.log(
                    LogLevel::Info,
                    PROXY,
                    format!("Added server '{name}' ({address}:{port}) to backend '{backend}'"),
                );
            }
            Action::ReplaceServer {
                name,
                address,
                port,
            } => {
                lb.replace_server(backend, &name, &address, port).await?;
                side.log(
                    LogLevel::Info,
                    PROXY,
                    format!("Replaced server '{name}' of backend '{backend}' by {address}:{port}"),
                );
            }
            Action::RemoveServer { name } => {
                lb.remove_server(backend, &name).await?;
                side.log(
                    LogLevel::Info,
                    PROXY,
                    format!("Removed server '{name}' from backend '{backend}'"),
                );
            }
            Action::SetDrain { name, drain } => {
                let state = if drain {
                    AdminState::Drain
                } else {
                    AdminState::Ready
                };
                lb.set_admin_state(backend, &name, state).await?;
                side.log(
                    LogLevel::Info,
                    PROXY,
                    format!(
                        "Set server '{name}' of backend '{backend}' to {}",
                        state.as_str().to_uppercase()
                    ),
                );
            }
            Action::Reconnect { node, agents } => {
                let n = side.reconnect(&node, &agents).await;
                side.log(
                    LogLevel::Info,
                    MAIN,
                    format!(
                        "Asked {} agent(s) of node {node} to reconnect ({n} connected there)",
                        agents.len()
                    ),
                );
            }
            Action::Wait { seconds, reason } => {
                side.log(
                    LogLevel::Debug,
                    MAIN,
                    format!("Waiting {seconds}s: {reason}"),
                );
                side.sleep(Duration::from_secs(seconds)).await;
            }
            Action::Log { level, message } => {
                let level = match level {
                    Level::Debug => LogLevel::Debug,
                    Level::Info => LogLevel::Info,
                    Level::Warning => LogLevel::Warning,
                };
                side.log(level, MAIN, message);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use reqwest::Method;

    use super::*;

    /// Records every call; fails the call whose description starts with `fail_on`.
    #[derive(Default)]
    struct FakeLb {
        calls: Mutex<Vec<String>>,
        backends: Vec<String>,
        frontends: Vec<String>,
        servers: Vec<ServerConf>,
        stats: BTreeMap<String, ServerStats>,
        fail_on: Option<&'static str>,
    }

    impl FakeLb {
        fn call(&self, c: String) -> Result<(), HelperError> {
            let fail = self.fail_on.is_some_and(|f| c.starts_with(f));
            self.calls.lock().unwrap().push(c);
            if fail {
                return Err(HelperError::Api {
                    method: Method::POST,
                    path: "/x".into(),
                    status: 500,
                    message: "boom".into(),
                });
            }
            Ok(())
        }
        fn calls(&self) -> Vec<String> {
            self.calls.lock().unwrap().clone()
        }
    }

    impl LoadBalancer for FakeLb {
        async fn backends(&self) -> Result<Vec<String>, HelperError> {
            self.call("backends".into())?;
            Ok(self.backends.clone())
        }
        async fn add_backend(&self, name: &str) -> Result<(), HelperError> {
            self.call(format!("add_backend {name}"))
        }
        async fn frontends(&self) -> Result<Vec<(String, Option<String>)>, HelperError> {
            self.call("frontends".into())?;
            Ok(self.frontends.iter().map(|f| (f.clone(), None)).collect())
        }
        async fn add_frontend(
            &self,
            name: &str,
            port: u16,
            backend: &str,
        ) -> Result<(), HelperError> {
            self.call(format!("add_frontend {name} {port} {backend}"))
        }
        async fn servers(&self, backend: &str) -> Result<Vec<ServerConf>, HelperError> {
            self.call(format!("servers {backend}"))?;
            Ok(self.servers.clone())
        }
        async fn server_stats(
            &self,
            backend: &str,
            server: &str,
        ) -> Result<Option<ServerStats>, HelperError> {
            self.call(format!("stats {backend} {server}"))?;
            Ok(self.stats.get(server).cloned())
        }
        async fn add_server(
            &self,
            backend: &str,
            name: &str,
            address: &str,
            port: u16,
        ) -> Result<(), HelperError> {
            self.call(format!("add_server {backend} {name} {address}:{port}"))
        }
        async fn replace_server(
            &self,
            backend: &str,
            name: &str,
            address: &str,
            port: u16,
        ) -> Result<(), HelperError> {
            self.call(format!("replace_server {backend} {name} {address}:{port}"))
        }
        async fn remove_server(&self, backend: &str, name: &str) -> Result<(), HelperError> {
            self.call(format!("remove_server {backend} {name}"))
        }
        async fn set_admin_state(
            &self,
            backend: &str,
            server: &str,
            state: AdminState,
        ) -> Result<(), HelperError> {
            self.call(format!("admin {backend} {server} {}", state.as_str()))
        }
    }

    #[derive(Default)]
    struct FakeCluster {
        nodes: Vec<ClusterNode>,
        agents: BTreeMap<String, Vec<u32>>,
        events: Mutex<Vec<String>>,
        logs: Mutex<Vec<(LogLevel, String, String)>>,
    }

    impl FakeCluster {
        fn events(&self) -> Vec<String> {
            self.events.lock().unwrap().clone()
        }
        fn logs(&self) -> Vec<(LogLevel, String, String)> {
            self.logs.lock().unwrap().clone()
        }
        fn logged(&self, level: LogLevel, part: &str) -> bool {
            self.logs()
                .iter()
                .any(|(l, _, m)| *l == level && m.contains(part))
        }
    }

    impl ClusterSide for FakeCluster {
        fn nodes(&self) -> (Vec<ClusterNode>, Vec<String>) {
            (self.nodes.clone(), vec!["w9".into()])
        }
        fn agents_by_node(&self) -> BTreeMap<String, Vec<u32>> {
            self.agents.clone()
        }
        fn agent_port(&self) -> u16 {
            1514
        }
        async fn reconnect(&self, node: &str, agents: &[u32]) -> usize {
            self.events
                .lock()
                .unwrap()
                .push(format!("reconnect {node} {agents:?}"));
            agents.len()
        }
        async fn sleep(&self, d: Duration) {
            self.events
                .lock()
                .unwrap()
                .push(format!("sleep {}", d.as_secs()));
        }
        fn log(&self, level: LogLevel, task: &str, msg: String) {
            self.logs.lock().unwrap().push((level, task.into(), msg));
        }
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn every_action_maps_to_its_call_and_is_logged() {
        let lb = FakeLb::default();
        let side = FakeCluster::default();
        let actions = vec![
            Action::Log {
                level: Level::Warning,
                message: "planner says".into(),
            },
            Action::CreateBackend { name: "be".into() },
            Action::CreateFrontend {
                name: "be_front".into(),
                port: 1514,
                backend: "be".into(),
            },
            Action::AddServer {
                name: "w1".into(),
                address: "10.0.0.1".into(),
                port: 1514,
            },
            Action::ReplaceServer {
                name: "w2".into(),
                address: "10.0.0.2".into(),
                port: 1515,
            },
            Action::RemoveServer { name: "w3".into() },
            Action::SetDrain {
                name: "w1".into(),
                drain: true,
            },
            Action::Reconnect {
                node: "w1".into(),
                agents: vec![5, 4],
            },
            Action::Wait {
                seconds: 7,
                reason: "chunk".into(),
            },
            Action::SetDrain {
                name: "w1".into(),
                drain: false,
            },
        ];
        block_on(execute(&lb, &side, "be", actions)).unwrap();
        assert_eq!(
            lb.calls(),
            vec![
                "add_backend be",
                "frontends",
                "add_frontend be_front 1514 be",
                "add_server be w1 10.0.0.1:1514",
                "replace_server be w2 10.0.0.2:1515",
                "remove_server be w3",
                "admin be w1 drain",
                "admin be w1 ready",
            ]
        );
        assert_eq!(side.events(), vec!["reconnect w1 [5, 4]", "sleep 7"]);
        assert!(side.logged(LogLevel::Warning, "planner says"));
        assert!(side.logged(LogLevel::Info, "Created backend 'be'"));
        assert!(side.logged(LogLevel::Info, "Created frontend 'be_front' on port 1514"));
        assert!(side.logged(LogLevel::Info, "Added server 'w1' (10.0.0.1:1514)"));
        assert!(side.logged(LogLevel::Info, "Replaced server 'w2'"));
        assert!(side.logged(LogLevel::Info, "Removed server 'w3'"));
        assert!(side.logged(LogLevel::Info, "'w1' of backend 'be' to DRAIN"));
        assert!(side.logged(LogLevel::Info, "'w1' of backend 'be' to READY"));
        assert!(side.logged(LogLevel::Info, "Asked 2 agent(s) of node w1"));
        assert!(side.logged(LogLevel::Debug, "Waiting 7s: chunk"));
        // One line per action.
        assert_eq!(side.logs().len(), 10);
    }

    #[test]
    fn an_existing_frontend_is_kept() {
        let lb = FakeLb {
            frontends: vec!["be_front".into()],
            ..FakeLb::default()
        };
        let side = FakeCluster::default();
        let actions = vec![Action::CreateFrontend {
            name: "be_front".into(),
            port: 1514,
            backend: "be".into(),
        }];
        block_on(execute(&lb, &side, "be", actions)).unwrap();
        assert_eq!(lb.calls(), vec!["frontends"]);
        assert!(side.logged(LogLevel::Info, "already exists"));
    }

    #[test]
    fn an_api_error_stops_the_run() {
        let lb = FakeLb {
            fail_on: Some("add_server"),
            ..FakeLb::default()
        };
        let side = FakeCluster::default();
        let actions = vec![
            Action::AddServer {
                name: "w1".into(),
                address: "a".into(),
                port: 1,
            },
            Action::Reconnect {
                node: "w1".into(),
                agents: vec![1],
            },
            Action::RemoveServer { name: "w2".into() },
        ];
        let e = block_on(execute(&lb, &side, "be", actions)).unwrap_err();
        assert!(e.to_string().contains("boom"));
        assert_eq!(lb.calls(), vec!["add_server be w1 a:1"]);
        assert!(side.events().is_empty());
    }

    fn node(name: &str, addr: &str) -> ClusterNode {
        ClusterNode {
            name: name.into(),
            address: addr.into(),
            port: 1514,
        }
    }

    #[test]
    fn a_missing_backend_is_created_with_its_frontend_and_servers() {
        let cfg = HaproxyHelper {
            backend: "be".into(),
            ..HaproxyHelper::default()
        };
        let lb = FakeLb {
            backends: vec!["other".into()],
            ..FakeLb::default()
        };
        let side = FakeCluster {
            nodes: vec![node("master", "10.0.0.1"), node("w1", "10.0.0.2")],
            ..FakeCluster::default()
        };
        let mut st = HelperState::new();
        block_on(cycle(&lb, &side, &cfg, &mut st, 0)).unwrap();
        assert_eq!(
            lb.calls(),
            vec![
                "backends",
                "add_backend be",
                "frontends",
                "add_frontend be_front 1514 be",
                "add_server be master 10.0.0.1:1514",
                "add_server be w1 10.0.0.2:1514",
            ]
        );
        assert!(side.logged(LogLevel::Debug, "No reporting address known for node(s) w9"));
        assert!(st.change_pending());
    }

    #[test]
    fn a_cycle_cut_short_leaves_its_balancing_owed() {
        let cfg = HaproxyHelper {
            backend: "be".into(),
            ..HaproxyHelper::default()
        };
        let st = |scur| ServerStats {
            scur,
            status: "UP".into(),
            lastchg: Some(10),
        };
        let conf = |n: &str| ServerConf {
            name: n.into(),
            address: n.into(),
            port: Some(1514),
        };
        let lb = FakeLb {
            backends: vec!["be".into()],
            servers: vec![conf("w1"), conf("w2")],
            stats: BTreeMap::from([("w1".to_string(), st(4)), ("w2".to_string(), st(0))]),
            fail_on: Some("admin"),
            ..FakeLb::default()
        };
        let side = FakeCluster {
            nodes: vec![node("w1", "w1"), node("w2", "w2")],
            agents: BTreeMap::from([("w1".to_string(), vec![1, 2, 3, 4])]),
            ..FakeCluster::default()
        };
        let mut state = HelperState::new();
        assert!(block_on(cycle(&lb, &side, &cfg, &mut state, 0)).is_err());
        // Nothing ran, so no stability wait is pending: the next cycle balances again.
        assert!(side.events().is_empty());
        assert_eq!(state.quiet_until_s(), 0);
    }

    #[test]
    fn an_unbalanced_backend_reconnects_from_the_loaded_node() {
        let cfg = HaproxyHelper {
            backend: "be".into(),
            agent_chunk_size: 2,
            ..HaproxyHelper::default()
        };
        let st = |scur| ServerStats {
            scur,
            status: "UP".into(),
            lastchg: Some(10),
        };
        let conf = |n: &str, a: &str| ServerConf {
            name: n.into(),
            address: a.into(),
            port: Some(1514),
        };
        let lb = FakeLb {
            backends: vec!["be".into()],
            servers: vec![conf("w1", "10.0.0.2"), conf("w2", "10.0.0.3")],
            stats: BTreeMap::from([("w1".to_string(), st(4)), ("w2".to_string(), st(0))]),
            ..FakeLb::default()
        };
        let side = FakeCluster {
            nodes: vec![node("w1", "10.0.0.2"), node("w2", "10.0.0.3")],
            agents: BTreeMap::from([("w1".to_string(), vec![1, 2, 3, 4])]),
            ..FakeCluster::default()
        };
        let mut state = HelperState::new();
        block_on(cycle(&lb, &side, &cfg, &mut state, 0)).unwrap();
        // The loaded node is drained while its agents move, then made ready again.
        assert_eq!(
            lb.calls(),
            vec![
                "backends",
                "servers be",
                "stats be w1",
                "stats be w2",
                "admin be w1 drain",
                "admin be w1 ready"
            ]
        );
        let ev = side.events();
        assert_eq!(ev[0], "reconnect w1 [4, 3]");
        assert!(ev.iter().any(|e| e.starts_with("sleep")));
    }
}
