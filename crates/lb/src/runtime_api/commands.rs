//! Runtime API commands, HAProxy's words and replies. Parsing is pure
//! ([`split_commands`], [`parse`]); [`execute`] applies a command to the engine.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::checker::{announce, servers_left, servers_online};
use crate::config::{self, Level};
use crate::engine::Engine;
use crate::health::Transition;
use crate::state::{admin, BackendRt, ServerRt};
use crate::stats;

/// What a command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Help,
    Prompt,
    Quit,
    ShowInfo {
        json: bool,
    },
    ShowStat,
    ShowServersState {
        backend: Option<String>,
    },
    ShowBackend,
    ShowSess,
    ShowCliLevel,
    ShowVersion,
    SetState {
        backend: String,
        server: String,
        state: AdminState,
    },
    SetHealth {
        backend: String,
        server: String,
        up: bool,
    },
    SetWeight {
        backend: String,
        server: String,
        weight: String,
    },
    GetWeight {
        backend: String,
        server: String,
    },
    SetAddr {
        backend: String,
        server: String,
        ip: String,
        port: Option<String>,
    },
    AddServer {
        backend: String,
        server: String,
        args: Vec<String>,
    },
    DelServer {
        backend: String,
        server: String,
    },
    Reload,
    GetSocks,
    Unknown(String),
    Usage(&'static str),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminState {
    Ready,
    Drain,
    Maint,
}

/// Replies rampart's runtime API gives to `help`, in HAProxy's layout.
pub const HELP: &str = "The following commands are valid at this level:
  add server <bk>/<srv>                   : create a new server
  del server <bk>/<srv>                   : remove a server (in maintenance, without sessions)
  disable server (DEPRECATED)             : disable a server for maintenance (use 'set server' instead)
  enable server  (DEPRECATED)             : enable a disabled server (use 'set server' instead)
  get weight <bk>/<srv>                   : report a server's current weight
  help [<command>]                        : list matching or all commands
  prompt                                  : toggle interactive mode with prompt
  quit                                    : disconnect
  reload                                  : re-read the configuration files and apply them
  set server <bk>/<srv> [opts]            : change a server's state, weight, health or address
  set weight <bk>/<srv>  (DEPRECATED)     : change a server's weight (use 'set server' instead)
  show backend                            : list backends in the current running config
  show cli level                          : display the level of the current CLI session
  show info [json]                        : report information about the running process
  show servers state [<backend>]          : dump volatile server information (all or for a single backend)
  show sess                               : report the list of current sessions
  show stat                               : report counters for each proxy and server
  show version                            : show version of the current process
";

/// Splits a line on unescaped `;` into commands (`\;` keeps a literal semicolon).
pub fn split_commands(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&';') => {
                cur.push(';');
                chars.next();
            }
            ';' => out.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    out.push(cur);
    out.into_iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

fn split_target(t: &str) -> Option<(String, String)> {
    let (b, s) = t.split_once('/')?;
    if b.is_empty() || s.is_empty() {
        return None;
    }
    Some((b.to_string(), s.to_string()))
}

pub fn parse(cmd: &str) -> Command {
    let w: Vec<&str> = cmd.split_whitespace().collect();
    let target = |i: usize| w.get(i).and_then(|t| split_target(t));
    match w.as_slice() {
        ["help", ..] => Command::Help,
        ["prompt", ..] => Command::Prompt,
        ["quit"] => Command::Quit,
        ["show", "info", rest @ ..] => Command::ShowInfo {
            json: rest.contains(&"json"),
        },
        ["show", "stat", ..] => Command::ShowStat,
        ["show", "servers", "state"] => Command::ShowServersState { backend: None },
        ["show", "servers", "state", b] => Command::ShowServersState {
            backend: Some(b.to_string()),
        },
        ["show", "backend"] => Command::ShowBackend,
        ["show", "sess", ..] => Command::ShowSess,
        ["show", "cli", "level"] => Command::ShowCliLevel,
        ["show", "version"] => Command::ShowVersion,
        ["reload"] => Command::Reload,
        ["_getsocks"] => Command::GetSocks,
        ["set", "server", _, rest @ ..] => {
            let Some((backend, server)) = target(2) else {
                return Command::Usage("Require 'backend/server'.\n");
            };
            match rest {
                ["state", s] => match *s {
                    "ready" => Command::SetState {
                        backend,
                        server,
                        state: AdminState::Ready,
                    },
                    "drain" => Command::SetState {
                        backend,
                        server,
                        state: AdminState::Drain,
                    },
                    "maint" => Command::SetState {
                        backend,
                        server,
                        state: AdminState::Maint,
                    },
                    _ => Command::Usage(
                        "'set server <srv> state' expects 'ready', 'drain' and 'maint'.\n",
                    ),
                },
                ["health", h] => match *h {
                    "up" => Command::SetHealth {
                        backend,
                        server,
                        up: true,
                    },
                    "down" | "stopping" => Command::SetHealth {
                        backend,
                        server,
                        up: false,
                    },
                    _ => Command::Usage(
                        "'set server <srv> health' expects 'up', 'stopping', or 'down'.\n",
                    ),
                },
                ["weight", v] => Command::SetWeight {
                    backend,
                    server,
                    weight: v.to_string(),
                },
                ["addr", ip] => Command::SetAddr {
                    backend,
                    server,
                    ip: ip.to_string(),
                    port: None,
                },
                ["addr", ip, "port", p] => Command::SetAddr {
                    backend,
                    server,
                    ip: ip.to_string(),
                    port: Some(p.to_string()),
                },
                _ => Command::Usage(
                    "'set server <srv>' only supports 'state', 'health', 'weight' and 'addr'.\n",
                ),
            }
        }
        ["set", "weight", _, v] => match target(2) {
            Some((backend, server)) => Command::SetWeight {
                backend,
                server,
                weight: v.to_string(),
            },
            None => Command::Usage("Require 'backend/server'.\n"),
        },
        ["get", "weight", _] => match target(2) {
            Some((backend, server)) => Command::GetWeight { backend, server },
            None => Command::Usage("Require 'backend/server'.\n"),
        },
        ["enable", "server", _] => match target(2) {
            Some((backend, server)) => Command::SetState {
                backend,
                server,
                state: AdminState::Ready,
            },
            None => Command::Usage("Require 'backend/server'.\n"),
        },
        ["disable", "server", _] => match target(2) {
            Some((backend, server)) => Command::SetState {
                backend,
                server,
                state: AdminState::Maint,
            },
            None => Command::Usage("Require 'backend/server'.\n"),
        },
        ["add", "server", _, args @ ..] => match target(2) {
            Some((backend, server)) if !args.is_empty() => Command::AddServer {
                backend,
                server,
                args: args.iter().map(|s| s.to_string()).collect(),
            },
            Some(_) => Command::Usage("'add server' expects an address.\n"),
            None => Command::Usage("Require 'backend/server'.\n"),
        },
        ["del", "server", _] => match target(2) {
            Some((backend, server)) => Command::DelServer { backend, server },
            None => Command::Usage("Require 'backend/server'.\n"),
        },
        _ => Command::Unknown(cmd.to_string()),
    }
}

/// The level a command needs.
pub fn required_level(c: &Command) -> Level {
    match c {
        Command::SetState { .. }
        | Command::SetHealth { .. }
        | Command::SetWeight { .. }
        | Command::SetAddr { .. }
        | Command::AddServer { .. }
        | Command::DelServer { .. }
        | Command::Reload
        | Command::GetSocks => Level::Admin,
        Command::ShowSess => Level::Operator,
        _ => Level::User,
    }
}

/// Parses `W` or `W%` (of the configured weight) within HAProxy's 0..=256.
pub fn parse_weight(v: &str, initial: u32) -> Result<u32, String> {
    let (num, pct) = match v.strip_suffix('%') {
        Some(n) => (n, true),
        None => (v, false),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| "Require <weight> or <weight%>.\n".to_string())?;
    let w = if pct {
        n.checked_mul(u64::from(initial))
            .map_or(u64::MAX, |x| x / 100)
    } else {
        n
    };
    if w > 256 {
        return Err(if pct {
            "Relative weight too large.\n".into()
        } else {
            "Absolute weight can only be between 0 and 256 inclusive.\n".into()
        });
    }
    Ok(w as u32)
}

fn find(engine: &Engine, b: &str, s: &str) -> Result<(Arc<BackendRt>, Arc<ServerRt>), String> {
    let gen = engine.current();
    let be = gen.backend(b).ok_or("No such backend.\n")?.clone();
    let srv = be.server(s).ok_or("No such server.\n")?;
    Ok((be, srv))
}

/// Runs one command; `Reload` and `GetSocks` are handled by the socket shell. Replies
/// carry no closing blank line: the shell ends every command's output with one, as
/// HAProxy does.
pub fn execute(engine: &Arc<Engine>, cmd: &Command, level: Level) -> String {
    if level < required_level(cmd) {
        return "Permission denied\n".into();
    }
    let r = match cmd {
        Command::Help | Command::Unknown(_) => Ok(match cmd {
            Command::Unknown(_) => format!("Unknown command, but maybe one of the following ones is a better match:\n{}", &HELP[HELP.find('\n').map_or(0, |i| i + 1)..]),
            _ => HELP.to_string(),
        }),
        Command::Usage(u) => Err(u.to_string()),
        Command::ShowInfo { json } => Ok(stats::show_info(engine, *json)),
        Command::ShowStat => Ok(stats::show_stat(engine)),
        Command::ShowServersState { backend } => stats::show_servers_state(engine, backend.as_deref()),
        Command::ShowBackend => {
            let mut s = String::from("# name\n");
            for b in &engine.current().backends {
                s.push_str(b.name());
                s.push('\n');
            }
            Ok(s)
        }
        Command::ShowSess => Ok(show_sess(engine)),
        Command::ShowCliLevel => Ok(format!("{}\n", level.as_str())),
        Command::ShowVersion => Ok(format!("{}\n", env!("CARGO_PKG_VERSION"))),
        Command::SetState { backend, server, state } => {
            find(engine, backend, server).map(|(be, s)| set_state(&be, &s, *state))
        }
        Command::SetHealth { backend, server, up } => {
            find(engine, backend, server).map(|(be, s)| force_health(&be, &s, *up))
        }
        Command::SetWeight { backend, server, weight } => find(engine, backend, server).and_then(|(be, s)| {
            let initial = s.cfg.settings.weight;
            let w = parse_weight(weight, initial)?;
            if !be.cfg.algorithm.is_dynamic(be.cfg.hash_type) && w != 0 && w != initial {
                return Err("Backend is using a static LB algorithm and only accepts weights '0%' and '100%'.\n".into());
            }
            s.set_weight(w);
            be.dispatch();
            Ok(String::new())
        }),
        Command::GetWeight { backend, server } => find(engine, backend, server).map(|(_, s)| format!("{} (initial {})\n", s.weight(), s.cfg.settings.weight)),
        Command::SetAddr { backend, server, ip, port } => find(engine, backend, server).and_then(|(_, s)| set_addr(&s, ip, port.as_deref())),
        Command::AddServer { backend, server, args } => add_server(engine, backend, server, args),
        Command::DelServer { backend, server } => del_server(engine, backend, server),
        Command::Prompt | Command::Quit | Command::Reload | Command::GetSocks => Ok(String::new()),
    };
    r.unwrap_or_else(|e| e)
}

fn set_state(be: &Arc<BackendRt>, s: &Arc<ServerRt>, state: AdminState) -> String {
    let was_maint = s.in_maint();
    let was_drain = s.draining();
    let (b, n) = (be.name(), s.name());
    let line = match state {
        AdminState::Ready => {
            s.set_admin(0, admin::FMAINT | admin::CMAINT | admin::FDRAIN);
            if was_maint && s.cfg.settings.check {
                s.reset_health();
            }
            be.dispatch();
            if was_maint {
                Some((
                    format!("Server {b}/{n} is UP/READY (leaving forced maintenance)."),
                    Transition::WentUp,
                ))
            } else if was_drain {
                Some((
                    format!("Server {b}/{n} is UP (leaving forced drain)."),
                    Transition::WentUp,
                ))
            } else {
                None
            }
        }
        AdminState::Drain => {
            s.set_admin(admin::FDRAIN, admin::FMAINT | admin::CMAINT);
            let requeued = be.redistribute(s);
            (!was_drain).then(|| {
                let (act, bck) = be.usable_counts();
                (format!("Server {b}/{n} enters drain state. {act} active and {bck} backup servers online. {requeued} sessions requeued, {} total in queue.", be.queued()), Transition::None)
            })
        }
        AdminState::Maint => {
            let was_down = !s.is_up();
            s.set_admin(admin::FMAINT, admin::FDRAIN);
            let requeued = be.redistribute(s);
            (!was_maint).then(|| {
                if was_down {
                    return (
                        format!("Server {b}/{n} was DOWN and now enters maintenance."),
                        Transition::None,
                    );
                }
                (
                    format!(
                        "Server {b}/{n} is going DOWN for maintenance. {}",
                        servers_left(be, s, requeued)
                    ),
                    Transition::WentDown,
                )
            })
        }
    };
    be.mark_changed();
    if let Some((line, t)) = line {
        announce(be, &line, t);
    }
    String::new()
}

/// `set server … health`: HAProxy's "changed from CLI" lines.
fn force_health(be: &Arc<BackendRt>, s: &Arc<ServerRt>, up: bool) -> String {
    let t = s.force_health(up);
    let (b, n) = (be.name(), s.name());
    let line = match t {
        Transition::None => return String::new(),
        Transition::WentUp => {
            be.dispatch();
            format!(
                "Server {b}/{n} is UP, changed from CLI. {}",
                servers_online(be)
            )
        }
        Transition::WentDown => {
            let requeued = be.redistribute(s);
            format!(
                "Server {b}/{n} is DOWN, changed from CLI. {}",
                servers_left(be, s, requeued)
            )
        }
    };
    be.mark_changed();
    announce(be, &line, t);
    String::new()
}

/// HAProxy's reply names what changed and what did not.
fn set_addr(s: &ServerRt, ip: &str, port: Option<&str>) -> Result<String, String> {
    let ip: IpAddr = ip.parse().map_err(|_| format!("Invalid addr '{ip}'."))?;
    let old = s.addr();
    let new_port = match port {
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or(format!("Invalid port '{p}'."))?,
        None => old.port(),
    };
    s.set_addr(SocketAddr::new(ip, new_port));
    let addr_part = if ip != old.ip() {
        format!("IP changed from '{}' to '{ip}'", old.ip())
    } else {
        "no need to change the addr".to_string()
    };
    let port_part = if new_port != old.port() {
        format!("port changed from '{}' to '{new_port}'", old.port())
    } else {
        "no need to change the port".to_string()
    };
    let msg = format!("{addr_part}, {port_part} by 'stats socket command'");
    tracing::info!("{}/{}: {msg}", s.backend_name, s.name());
    Ok(msg + "\n")
}

fn add_server(
    engine: &Arc<Engine>,
    backend: &str,
    server: &str,
    args: &[String],
) -> Result<String, String> {
    let gen = engine.current();
    let be = gen.backend(backend).ok_or("No such backend.\n")?;
    if !be.cfg.algorithm.is_dynamic(be.cfg.hash_type) {
        return Err(
            "Backend must use a dynamic load balancing to support dynamic servers.\n".into(),
        );
    }
    if be.server(server).is_some() {
        return Err("Already exists a server with the same name in backend.\n".into());
    }
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut cfg = config::parse_server_spec(server, &words, None).map_err(|e| format!("{e}\n"))?;
    cfg.id = be.next_server_id();
    let srv = ServerRt::new(cfg, backend);
    // As HAProxy does, a dynamic server starts in maintenance until enabled.
    srv.set_admin(admin::FMAINT, 0);
    be.add_server(srv.clone()).map_err(|e| format!("{e}\n"))?;
    crate::checker::ensure(engine, &srv);
    tracing::info!(
        "New server {}/{} registered at {}",
        backend,
        server,
        srv.addr()
    );
    Ok("New server registered.\n".into())
}

fn del_server(engine: &Engine, backend: &str, server: &str) -> Result<String, String> {
    let (be, s) = find(engine, backend, server)?;
    if !s.in_maint() {
        return Err("Only servers in maintenance mode can be deleted.\n".into());
    }
    if s.cur.load(Ordering::SeqCst) > 0 || s.queued() > 0 {
        return Err("Server still has connections attached to it, cannot remove it.\n".into());
    }
    be.remove_server(server);
    tracing::info!("Server {}/{} deleted", backend, server);
    Ok("Server deleted.\n".into())
}

fn show_sess(engine: &Engine) -> String {
    let mut out = String::new();
    for e in engine.sessions.snapshot() {
        let (be, srv) = match e.server() {
            Some(s) => (s.backend_name.as_str(), s.name()),
            None => ("<NONE>", "<none>"),
        };
        let proto = if e.client.is_ipv4() { "tcpv4" } else { "tcpv6" };
        out.push_str(&format!(
            "0x{:x}: proto={proto} src={} fe={} be={be} srv={srv} age={}s\n",
            e.id,
            e.client,
            e.frontend.cfg.name,
            e.started.elapsed().as_secs()
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn semicolons_split_commands_unless_escaped() {
        assert_eq!(
            split_commands("show info; show stat"),
            vec!["show info", "show stat"]
        );
        assert_eq!(split_commands("a\\;b ; c;;"), vec!["a;b", "c"]);
        assert!(split_commands("  ").is_empty());
    }

    #[test]
    fn parses_haproxy_commands() {
        assert_eq!(
            parse("set server be/s1 state drain"),
            Command::SetState {
                backend: "be".into(),
                server: "s1".into(),
                state: AdminState::Drain
            }
        );
        assert_eq!(
            parse("disable server be/s1"),
            Command::SetState {
                backend: "be".into(),
                server: "s1".into(),
                state: AdminState::Maint
            }
        );
        assert_eq!(
            parse("set server be/s1 addr 10.0.0.1 port 80"),
            Command::SetAddr {
                backend: "be".into(),
                server: "s1".into(),
                ip: "10.0.0.1".into(),
                port: Some("80".into())
            }
        );
        assert_eq!(
            parse("show servers state be"),
            Command::ShowServersState {
                backend: Some("be".into())
            }
        );
        assert!(matches!(
            parse("set server nobackend state ready"),
            Command::Usage(_)
        ));
        assert!(matches!(
            parse("set server be/s state sleepy"),
            Command::Usage(_)
        ));
        assert!(matches!(parse("frobnicate"), Command::Unknown(_)));
        assert_eq!(
            parse("add server be/s9 127.0.0.1:80 check weight 5"),
            Command::AddServer {
                backend: "be".into(),
                server: "s9".into(),
                args: vec![
                    "127.0.0.1:80".into(),
                    "check".into(),
                    "weight".into(),
                    "5".into()
                ]
            }
        );
    }

    #[test]
    fn weights_absolute_and_relative() {
        assert_eq!(parse_weight("5", 2), Ok(5));
        assert_eq!(parse_weight("50%", 10), Ok(5));
        assert!(parse_weight("300", 1).is_err());
        assert!(parse_weight("x", 1).is_err());
        assert!(parse_weight("1000%", 100).is_err());
    }

    #[test]
    fn levels_guard_writes() {
        assert_eq!(required_level(&parse("show stat")), Level::User);
        assert_eq!(required_level(&parse("disable server b/s")), Level::Admin);
        assert_eq!(required_level(&parse("reload")), Level::Admin);
    }
}
