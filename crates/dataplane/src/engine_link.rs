//! The running `rampart lb` engine behind the API: reloads, runtime server changes and
//! statistics go through the same code paths as the runtime socket's commands, so the API
//! and `socat … /run/haproxy.sock` never disagree.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use lb::config::Level;
use lb::daemon::StartHook;
use lb::engine::Engine;
use lb::runtime_api::commands::{self, Command};
use serde_json::{Map, Value};

use crate::model::DataplaneConf;
use crate::server::balancer::{
    AdminState, Balancer, BoxFuture, OperationalState, RuntimeServer, StatRow,
};
use crate::server::{ApiState, Listeners};

pub struct EngineLink {
    engine: Arc<Engine>,
}

impl EngineLink {
    pub fn new(engine: Arc<Engine>) -> Self {
        EngineLink { engine }
    }

    /// Runs a runtime-socket command at admin level; the socket's replies for success are
    /// empty or fixed sentences, anything else is the error text.
    fn run(&self, cmd: Command, ok: &[&str]) -> Result<(), String> {
        let reply = commands::execute(&self.engine, &cmd, Level::Admin);
        let reply = reply.trim();
        if reply.is_empty() || ok.contains(&reply) {
            Ok(())
        } else {
            Err(reply.to_string())
        }
    }
}

fn lb_state(s: AdminState) -> commands::AdminState {
    match s {
        AdminState::Ready => commands::AdminState::Ready,
        AdminState::Drain => commands::AdminState::Drain,
        AdminState::Maint => commands::AdminState::Maint,
    }
}

impl Balancer for EngineLink {
    fn reload(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            self.engine
                .reload()
                .await
                .map(|_warnings| ())
                .map_err(|e| e.to_string())
        })
    }

    fn add_server(&self, backend: &str, name: &str, args: &[String]) -> Result<(), String> {
        let add = Command::AddServer {
            backend: backend.into(),
            server: name.into(),
            args: args.to_vec(),
        };
        self.run(add, &["New server registered."])?;
        // A dynamic server starts in maintenance (as HAProxy's); a configured one does not.
        if let Err(e) = self.set_admin_state(backend, name, AdminState::Ready) {
            // Not left behind half-added: the caller's reload builds it from the file.
            let del = Command::DelServer {
                backend: backend.into(),
                server: name.into(),
            };
            let _ = self.run(del, &["Server deleted."]);
            return Err(e);
        }
        Ok(())
    }

    fn del_server(&self, backend: &str, name: &str) -> Result<(), String> {
        let gen = self.engine.current();
        let srv = gen
            .backend(backend)
            .and_then(|be| be.server(name))
            .ok_or_else(|| format!("no server {backend}/{name}"))?;
        // `del server` refuses a server with sessions (agents keep theirs open); find out
        // before touching its state, so it is not left in maintenance while the caller's
        // reload is deferred or fails.
        if srv.cur.load(Ordering::SeqCst) > 0 || srv.queued() > 0 {
            return Err(format!("server {backend}/{name} still has sessions"));
        }
        let before = if srv.in_maint() {
            AdminState::Maint
        } else if srv.draining() {
            AdminState::Drain
        } else {
            AdminState::Ready
        };
        self.set_admin_state(backend, name, AdminState::Maint)?;
        let del = Command::DelServer {
            backend: backend.into(),
            server: name.into(),
        };
        self.run(del, &["Server deleted."]).inspect_err(|_| {
            // A session arrived in between: the server keeps serving as it did.
            let _ = self.set_admin_state(backend, name, before);
        })
    }

    fn runtime_servers(&self, backend: &str) -> Option<Vec<RuntimeServer>> {
        let gen = self.engine.current();
        let be = gen.backend(backend)?;
        let stopping = self.engine.is_stopping();
        let list = be
            .servers()
            .iter()
            .map(|s| RuntimeServer {
                name: s.name().to_string(),
                id: s.cfg.id.to_string(),
                address: s.addr().ip().to_string(),
                port: s.addr().port(),
                admin_state: if s.in_maint() {
                    AdminState::Maint
                } else if s.draining() {
                    AdminState::Drain
                } else {
                    AdminState::Ready
                },
                operational_state: if stopping {
                    OperationalState::Stopping
                } else if s.is_up() {
                    OperationalState::Up
                } else {
                    OperationalState::Down
                },
            })
            .collect();
        Some(list)
    }

    fn set_admin_state(&self, backend: &str, name: &str, state: AdminState) -> Result<(), String> {
        let cmd = Command::SetState {
            backend: backend.into(),
            server: name.into(),
            state: lb_state(state),
        };
        self.run(cmd, &[])
    }

    fn info(&self) -> Vec<(String, Value)> {
        lb::stats::info_fields(&self.engine)
            .into_iter()
            .filter_map(|f| {
                let name = info_name(f.name)?;
                let value = if f.ty == "str" {
                    Value::String(f.value)
                } else {
                    f.value.parse::<u64>().map(Value::from).ok()?
                };
                Some((name.to_string(), value))
            })
            .collect()
    }

    fn stats(&self) -> Vec<StatRow> {
        stat_rows(&lb::stats::show_stat(&self.engine))
    }
}

/// `show info` field → the Data Plane API's `process_info_item` name.
fn info_name(field: &str) -> Option<&'static str> {
    Some(match field {
        "Version" => "version",
        "Nbthread" => "nbthread",
        "Nbproc" => "processes",
        "Process_num" => "process_num",
        "Pid" => "pid",
        "Uptime_sec" => "uptime",
        "Ulimit-n" => "ulimit_n",
        "Maxsock" => "max_sock",
        "Maxconn" => "max_conn",
        "Hard_maxconn" => "hard_max_conn",
        "CurrConns" => "curr_conns",
        "CumConns" => "cum_conns",
        "Stopping" => "stopping",
        "Jobs" => "jobs",
        "Listeners" => "listeners",
        "DroppedLogs" => "dropped_logs",
        "TotalBytesOut" => "total_bytes_out",
        _ => return None,
    })
}

/// Text-valued stats of the `native_stat` model; every other known field is an integer.
const TEXT_STATS: &[&str] = &[
    "status",
    "check_status",
    "hanafail",
    "agent_status",
    "check_desc",
    "agent_desc",
    "addr",
    "cookie",
    "mode",
    "algo",
];

/// Turns `show stat` CSV into rows: empty fields are left out, numbers become integers.
fn stat_rows(csv: &str) -> Vec<StatRow> {
    let mut lines = csv.lines();
    let Some(header) = lines.next() else {
        return Vec::new();
    };
    let names: Vec<&str> = header.trim_start_matches("# ").split(',').collect();
    let col = |n: &str| names.iter().position(|c| *c == n);
    let (Some(px), Some(sv), Some(ty)) = (col("pxname"), col("svname"), col("type")) else {
        return Vec::new();
    };
    lines
        .filter(|l| !l.is_empty())
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(',').collect();
            let kind = match *fields.get(ty)? {
                "0" => "frontend",
                "1" => "backend",
                "2" => "server",
                _ => return None,
            };
            let mut stats = Map::new();
            for (name, value) in names.iter().zip(&fields) {
                if value.is_empty() || ["pxname", "svname", "type", "-", ""].contains(name) {
                    continue;
                }
                let v = if TEXT_STATS.contains(name) {
                    Value::String((*value).to_string())
                } else {
                    match value.parse::<i64>() {
                        Ok(n) => Value::from(n),
                        Err(_) => continue,
                    }
                };
                stats.insert((*name).to_string(), v);
            }
            let (name, parent) = if kind == "server" {
                (
                    fields.get(sv)?.to_string(),
                    Some(fields.get(px)?.to_string()),
                )
            } else {
                (fields.get(px)?.to_string(), None)
            };
            Some(StatRow {
                kind,
                name,
                parent,
                stats,
            })
        })
        .collect()
}

/// The hook `rampart lb --dataplane` runs once its engine listens: builds the API state from
/// `conf.config_file` (the balancer's own file) and serves the API with the engine behind it.
pub fn start_hook(conf: DataplaneConf) -> StartHook {
    StartHook(Arc::new(move |engine: Arc<Engine>| {
        let conf = conf.clone();
        Box::pin(async move {
            let state = ApiState::load(conf.clone())
                .map_err(|e| format!("Data Plane API: {e}"))?
                .with_balancer(Arc::new(EngineLink::new(engine)));
            let listeners = Listeners::bind(&conf)
                .await
                .map_err(|e| format!("Data Plane API: {e}"))?;
            for (scheme, addr) in [
                ("http", listeners.http_addr()),
                ("https", listeners.https_addr()),
            ] {
                if let Some(a) = addr {
                    tracing::info!("Data Plane API listening on {scheme}://{a}");
                }
            }
            tokio::spawn(async move {
                if let Err(e) = listeners.run(Arc::new(state)).await {
                    tracing::error!("Data Plane API stopped: {e}");
                }
            });
            Ok(())
        })
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_rows_become_typed_stats() {
        let csv = "# pxname,svname,scur,status,lastchg,type,check_status,\n\
                   fe,FRONTEND,3,OPEN,,0,,\n\
                   be,w1,2,UP,17,2,L4OK,\n\
                   be,BACKEND,2,UP,17,1,,\n";
        let rows = stat_rows(csv);
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].kind, "frontend");
        assert_eq!(rows[0].name, "fe");
        assert!(!rows[0].stats.contains_key("lastchg"));
        let s = &rows[1];
        assert_eq!(
            (s.kind, s.name.as_str(), s.parent.as_deref()),
            ("server", "w1", Some("be"))
        );
        assert_eq!(s.stats["scur"], Value::from(2));
        assert_eq!(s.stats["status"], Value::from("UP"));
        assert_eq!(s.stats["lastchg"], Value::from(17));
        assert_eq!(s.stats["check_status"], Value::from("L4OK"));
        assert!(!s.stats.contains_key("type"));
        assert_eq!(rows[2].kind, "backend");
        assert_eq!(rows[2].parent, None);
    }

    async fn engine_with(text: &str) -> (tempfile::TempDir, EngineLink) {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("haproxy.cfg");
        std::fs::write(&file, text).unwrap();
        let config = lb::config::parse_str("haproxy.cfg", text).unwrap();
        let engine = Engine::start(vec![file], config, Default::default())
            .await
            .unwrap();
        (dir, EngineLink::new(engine))
    }

    fn admin_of(link: &EngineLink, name: &str) -> Option<AdminState> {
        link.runtime_servers("be")?
            .into_iter()
            .find(|s| s.name == name)
            .map(|s| s.admin_state)
    }

    #[tokio::test]
    async fn busy_server_is_not_deleted_nor_left_in_maint() {
        let (_dir, link) = engine_with(
            "defaults\n    mode tcp\n    timeout connect 1s\n    timeout client 1s\n    \
             timeout server 1s\nbackend be\n    balance roundrobin\n    \
             server s1 127.0.0.1:9 weight 5\n",
        )
        .await;
        let srv = link
            .engine
            .current()
            .backend("be")
            .unwrap()
            .server("s1")
            .unwrap();
        srv.cur.fetch_add(1, Ordering::SeqCst);
        assert!(link.del_server("be", "s1").is_err());
        assert_eq!(admin_of(&link, "s1"), Some(AdminState::Ready));
        srv.cur.fetch_sub(1, Ordering::SeqCst);
        link.del_server("be", "s1").unwrap();
        assert_eq!(admin_of(&link, "s1"), None);

        link.add_server("be", "s2", &["127.0.0.1:10".into()])
            .unwrap();
        assert_eq!(admin_of(&link, "s2"), Some(AdminState::Ready));
        assert!(link.del_server("be", "nope").is_err());
    }

    #[test]
    fn garbage_gives_no_rows() {
        assert!(stat_rows("").is_empty());
        assert!(stat_rows("# a,b\n1,2\n").is_empty());
    }
}
