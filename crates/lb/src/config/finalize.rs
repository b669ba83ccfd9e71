//! Turns proxy drafts into the validated model: ids, `log global` expansion,
//! `default_backend` resolution and HAProxy's end-of-parse checks.

use std::collections::{HashMap, HashSet};

use super::model::{Backend, Diagnostic, Frontend, Global, Loc, LogTarget, Mode, Server, Severity};
use super::proxy::{Kind, LogEntry, ProxyDraft};

/// Collects diagnostics attached to a location.
struct Out<'a>(&'a mut Vec<Diagnostic>);

impl Out<'_> {
    fn push(&mut self, severity: Severity, loc: &Loc, message: String) {
        self.0.push(Diagnostic {
            severity,
            loc: Some(loc.clone()),
            message,
        });
    }

    fn warn(&mut self, loc: &Loc, message: String) {
        self.push(Severity::Warning, loc, message);
    }

    fn alert(&mut self, loc: &Loc, message: String) {
        self.push(Severity::Alert, loc, message);
    }
}

/// Builds frontends and backends (in declaration order) from `drafts`.
pub(crate) fn finalize(
    global: &Global,
    drafts: Vec<ProxyDraft>,
    diags: &mut Vec<Diagnostic>,
) -> (Vec<Frontend>, Vec<Backend>) {
    let mut out = Out(diags);
    let ids = assign_ids(drafts.iter().map(|d| (d.id, describe(d), &d.loc)), &mut out);
    let backend_modes: HashMap<&str, (Mode, &ProxyDraft)> = drafts
        .iter()
        .filter(|d| d.kind.has_backend())
        .map(|d| (d.name.as_str(), (d.mode, d)))
        .collect();

    let mut frontends = Vec::new();
    let mut backends = Vec::new();
    for (draft, &id) in drafts.iter().zip(&ids) {
        let logs = expand_logs(&draft.logs, global);
        let log_options = check_proxy(draft, &mut out);
        if draft.kind.has_frontend() {
            let default_backend = resolve_default_backend(draft, &backend_modes, &mut out);
            if draft.binds.is_empty() {
                // A warning in HAProxy too: the Data Plane API creates a frontend before its binds.
                out.warn(
                    &draft.loc,
                    format!(
                        "{} has no 'bind' directive. Please declare it as a backend if this was intended.",
                        describe(draft)
                    ),
                );
            }
            frontends.push(Frontend {
                name: draft.name.clone(),
                id,
                mode: draft.mode,
                binds: draft.binds.clone(),
                default_backend,
                maxconn: draft.maxconn,
                timeouts: draft.timeouts,
                log_options,
                logs: logs.clone(),
                from_listen: draft.kind == Kind::Listen,
                loc: draft.loc.clone(),
            });
        }
        if draft.kind.has_backend() {
            let mut timeouts = draft.timeouts;
            // HAProxy: an unset queue timeout falls back to the connect timeout.
            timeouts.queue = timeouts.queue.or(timeouts.connect);
            backends.push(Backend {
                name: draft.name.clone(),
                id,
                mode: draft.mode,
                algorithm: draft.algorithm,
                hash_type: draft.hash_type,
                servers: finalize_servers(draft, &mut out),
                timeouts,
                retries: draft.retries,
                redispatch: draft.redispatch,
                allbackups: draft.allbackups,
                log_options,
                logs,
                from_listen: draft.kind == Kind::Listen,
                loc: draft.loc.clone(),
            });
        }
    }
    (frontends, backends)
}

/// `frontend 'x'`, `backend 'x'` or `proxy 'x'` (listen), as HAProxy says it.
fn describe(d: &ProxyDraft) -> String {
    format!("{} '{}'", d.kind.type_str(), d.name)
}

/// Numbers items like HAProxy: explicit ids first, then the first free id from
/// a counter that advances for every item, explicit or not.
fn assign_ids<'a, I>(items: I, out: &mut Out) -> Vec<u32>
where
    I: Iterator<Item = (Option<u32>, String, &'a Loc)>,
{
    let items: Vec<_> = items.collect();
    let mut used: HashMap<u32, (&str, &Loc)> = HashMap::new();
    for (id, name, loc) in &items {
        let Some(id) = *id else { continue };
        match used.get(&id) {
            Some((other, other_loc)) => out.alert(
                loc,
                format!("{name} reuses same custom id as {other} (declared at {other_loc})."),
            ),
            None => {
                used.insert(id, (name.as_str(), *loc));
            }
        }
    }
    let mut taken: HashSet<u32> = used.keys().copied().collect();
    let mut next = 1u32;
    let mut ids = Vec::with_capacity(items.len());
    for (id, _, _) in &items {
        let assigned = match *id {
            Some(explicit) => explicit,
            None => {
                while taken.contains(&next) {
                    next = next.saturating_add(1);
                }
                taken.insert(next);
                next
            }
        };
        ids.push(assigned);
        next = next.saturating_add(1);
    }
    ids
}

fn expand_logs(entries: &[LogEntry], global: &Global) -> Vec<LogTarget> {
    entries
        .iter()
        .flat_map(|e| match e {
            LogEntry::Global => global.logs.clone(),
            LogEntry::Target(t) => vec![t.clone()],
        })
        .collect()
}

/// HAProxy's per-proxy end-of-parse checks; returns the effective log options.
fn check_proxy(d: &ProxyDraft, out: &mut Out) -> super::model::LogOptions {
    let mut log_options = d.log_options;
    match d.mode {
        Mode::Http => out.warn(
            &d.loc,
            format!(
                "proxy '{}' uses 'mode http': rampart serves it as TCP passthrough until HTTP support lands (no per-request balancing, no httplog fields)",
                d.name
            ),
        ),
        Mode::Tcp if log_options.httplog => {
            log_options.httplog = false;
            log_options.tcplog = true;
            out.warn(
                d.httplog_loc.as_ref().unwrap_or(&d.loc),
                format!(
                    "'option httplog' not usable with {} (needs 'mode http'). Falling back to 'option tcplog'.",
                    describe(d)
                ),
            );
        }
        Mode::Tcp => {}
    }
    if missing_timeouts(d) {
        out.warn(
            &d.loc,
            format!(
                "missing timeouts for {}. | While not properly invalid, you will certainly encounter various problems with such a configuration. | To fix this, please ensure that all following timeouts are set to a non-zero value: 'client', 'connect', 'server'.",
                describe(d)
            ),
        );
    }
    log_options
}

/// HAProxy's condition: a frontend needs `timeout client`; a backend with
/// servers needs `timeout connect` and `timeout server` (or, in TCP mode,
/// `timeout tunnel`).
fn missing_timeouts(d: &ProxyDraft) -> bool {
    let t = &d.timeouts;
    let fe = d.kind.has_frontend() && t.client.is_none();
    let be = d.kind.has_backend()
        && !d.servers.is_empty()
        && (t.connect.is_none()
            || (t.server.is_none() && (d.mode == Mode::Http || t.tunnel.is_none())));
    fe || be
}

/// The backend a frontend sends its connections to, validated.
fn resolve_default_backend(
    d: &ProxyDraft,
    backends: &HashMap<&str, (Mode, &ProxyDraft)>,
    out: &mut Out,
) -> Option<String> {
    let Some((target, loc)) = &d.default_backend else {
        if d.kind == Kind::Listen {
            return Some(d.name.clone());
        }
        out.warn(
            &d.loc,
            format!(
                "{} has no 'default_backend': rampart will close its connections ('use_backend' rules are not supported yet).",
                describe(d)
            ),
        );
        return None;
    };
    let Some(&(mode, be)) = backends.get(target.as_str()) else {
        out.alert(
            loc,
            format!(
                "Proxy '{}': unable to find required default_backend: '{target}'.",
                d.name
            ),
        );
        return None;
    };
    if std::ptr::eq(be, d) || (d.kind == Kind::Listen && *target == d.name) {
        out.alert(
            loc,
            format!(
                "Proxy '{}': loop detected for default_backend: '{target}'.",
                d.name
            ),
        );
        return None;
    }
    // A TCP frontend may hand over to an HTTP backend, not the reverse.
    if mode != d.mode && !(d.mode == Mode::Tcp && mode == Mode::Http) {
        out.alert(
            loc,
            format!(
                "{} {} ({}) tries to use incompatible {} {} ({}) as its default backend (see 'mode').",
                d.mode.as_str(),
                describe(d),
                d.loc,
                mode.as_str(),
                describe(be),
                be.loc
            ),
        );
        return None;
    }
    if d.kind == Kind::Listen && !d.servers.is_empty() {
        out.warn(
            loc,
            format!(
                "In proxy '{}', the 'default_backend' rule always has precedence over the servers, which will never be used.",
                d.name
            ),
        );
    }
    Some(target.clone())
}

/// Checks server names and numbers the servers of a backend.
fn finalize_servers(d: &ProxyDraft, out: &mut Out) -> Vec<Server> {
    let mut seen: HashMap<&str, &Loc> = HashMap::new();
    for s in &d.servers {
        // Like HAProxy, servers with an explicit id may share a name.
        if s.id != 0 {
            continue;
        }
        if let Some(first) = seen.get(s.name.as_str()) {
            out.alert(
                &s.loc,
                format!(
                    "{}, another server named '{}' was already defined at line {}, please use distinct names.",
                    describe(d),
                    s.name,
                    first.line
                ),
            );
        } else {
            seen.insert(&s.name, &s.loc);
        }
    }
    let ids = assign_ids(
        d.servers.iter().map(|s| {
            (
                (s.id != 0).then_some(s.id),
                format!("server '{}/{}'", d.name, s.name),
                &s.loc,
            )
        }),
        out,
    );
    d.servers
        .iter()
        .zip(ids)
        .map(|(s, id)| Server { id, ..s.clone() })
        .collect()
}
