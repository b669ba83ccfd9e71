//! Entry points for `rampart manager`, `rampart cluster` and `rampart agents`: runtimes,
//! exit codes and the tables operators read.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use crate::node::control::{self, Request};
use crate::node::{self, RunOptions};

pub enum ClusterAction {
    Nodes,
    Status,
    Sync,
}

pub enum AgentsAction {
    List,
    Show(String),
    Delete(String),
    Group(String, String),
    Reconnect(Vec<String>),
}

/// `rampart manager --home DIR [--check]`.
pub fn manager_main(home: PathBuf, check: bool, debug: u8) -> i32 {
    if check {
        return match node::check(&home) {
            Ok(c) => {
                println!(
                    "Configuration file {} is valid ({} node '{}' of cluster '{}').",
                    home.join("etc/ossec.conf").display(),
                    c.cluster.node_type,
                    c.cluster.node_name,
                    c.cluster.name
                );
                0
            }
            Err(e) => {
                eprintln!("{e}");
                1
            }
        };
    }
    // The local UTC offset can only be read while the process has one thread.
    crate::clusterlog::init_local_offset();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .worker_threads(2)
        .thread_name("manager")
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return 1;
        }
    };
    match rt.block_on(node::run(RunOptions { home, debug })) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("rampart manager: {e:#}");
            1
        }
    }
}

fn client(home: &Path, req: Request, timeout: Duration) -> Result<Value, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(control::call(home, &req, timeout))
}

fn finish(r: Result<(), String>) -> i32 {
    match r {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("Error: {e}");
            1
        }
    }
}

fn s(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        Value::Array(a) if a.is_empty() => "-".into(),
        Value::Array(a) => a.iter().map(s).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

fn when(v: &Value) -> String {
    v.as_i64()
        .and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok())
        .and_then(|t| {
            t.format(time::macros::format_description!(
                "[year]/[month]/[day] [hour]:[minute]:[second]"
            ))
            .ok()
        })
        .unwrap_or_else(|| "-".into())
}

/// Left-aligned columns sized to their widest cell.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut width: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if let Some(w) = width.get_mut(i) {
                *w = (*w).max(c.len());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                out.push_str(c);
            } else {
                out.push_str(&format!("{:<w$}  ", c, w = width[i]));
            }
        }
        out.trim_end().to_string() + "\n"
    };
    let mut out = line(header.to_vec());
    for r in rows {
        out.push_str(&line(r.iter().map(String::as_str).collect()));
    }
    out
}

pub fn cluster_main(home: PathBuf, action: ClusterAction) -> i32 {
    finish((|| {
        match action {
            ClusterAction::Nodes => {
                let v = client(&home, Request::Nodes, Duration::from_secs(30))?;
                let rows: Vec<Vec<String>> = v
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .map(|n| {
                                vec![
                                    s(&n["name"]),
                                    s(&n["node_type"]),
                                    s(&n["version"]),
                                    s(&n["address"]),
                                    when(&n["last_keepalive"]),
                                ]
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                print!(
                    "{}",
                    table(
                        &["NAME", "TYPE", "VERSION", "ADDRESS", "LAST KEEP-ALIVE"],
                        &rows
                    )
                );
            }
            ClusterAction::Status => {
                let v = client(&home, Request::Status, Duration::from_secs(30))?;
                println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            }
            ClusterAction::Sync => {
                let v = client(&home, Request::Sync, Duration::from_secs(3600))?;
                println!("{v}");
            }
        }
        Ok(())
    })())
}

fn parse_id(s: &str) -> Result<u32, String> {
    s.trim()
        .parse::<u32>()
        .map_err(|_| format!("'{s}' is not an agent id (for example 001)"))
}

pub fn agents_main(home: PathBuf, action: AgentsAction) -> i32 {
    finish((|| {
        let t = Duration::from_secs(60);
        match action {
            AgentsAction::List => {
                let v = client(&home, Request::Agents, t)?;
                let rows: Vec<Vec<String>> = v
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .map(|x| {
                                vec![
                                    format!("{:03}", x["id"].as_u64().unwrap_or(0)),
                                    s(&x["name"]),
                                    s(&x["ip"]),
                                    s(&x["status"]),
                                    s(&x["groups"]),
                                    s(&x["node"]),
                                    s(&x["version"]),
                                ]
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                print!(
                    "{}",
                    table(
                        &["ID", "NAME", "IP", "STATUS", "GROUPS", "NODE", "VERSION"],
                        &rows
                    )
                );
            }
            AgentsAction::Show(id) => {
                let v = client(&home, Request::Agent { id: parse_id(&id)? }, t)?;
                println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            }
            AgentsAction::Delete(id) => {
                let id = parse_id(&id)?;
                client(&home, Request::Delete { id }, t)?;
                println!("Agent {id:03} deleted.");
            }
            AgentsAction::Group(id, group) => {
                let id = parse_id(&id)?;
                client(
                    &home,
                    Request::Group {
                        id,
                        group: group.clone(),
                    },
                    t,
                )?;
                println!("Agent {id:03} assigned to group(s) {group}.");
            }
            AgentsAction::Reconnect(ids) => {
                let ids = ids
                    .iter()
                    .map(|i| parse_id(i))
                    .collect::<Result<Vec<_>, _>>()?;
                let v = client(&home, Request::Reconnect { ids }, t)?;
                println!(
                    "Asked {} connected agent(s) to reconnect.",
                    v["reconnected"].as_u64().unwrap_or(0)
                );
            }
        }
        Ok(())
    })())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns() {
        let t = table(&["A", "BB"], &[vec!["xxx".into(), "y".into()]]);
        assert_eq!(t, "A    BB\nxxx  y\n");
    }

    #[test]
    fn ids() {
        assert_eq!(parse_id("007"), Ok(7));
        assert!(parse_id("x").is_err());
    }
}
