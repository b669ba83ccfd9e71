//! The `global` section.

use std::collections::HashMap;
use std::path::PathBuf;

use super::keywords::{
    global_candidates, is_ignored_global, option_entry, suggest, unknown_bind_keyword, Treat,
    BIND_OPTIONS,
};
use super::logline::{parse_log, LogDirective};
use super::model::{Global, Level, StatsSocket};
use super::notes::{too_many_args, uint_arg, Notes};
use super::proxy::LineCtx;
use super::units::parse_time;

/// HAProxy's thread limit (MAX_THREADS on 64-bit builds).
const MAX_THREADS: usize = 4096;

/// Variables set by `setenv`/`presetenv`/`unsetenv`/`resetenv`, layered over the
/// process environment without modifying it (parsing must stay side-effect free).
#[derive(Debug, Default)]
pub(crate) struct EnvOverlay {
    vars: HashMap<String, Option<String>>,
}

impl EnvOverlay {
    pub fn get(&self, name: &str) -> Option<String> {
        match self.vars.get(name) {
            Some(v) => v.clone(),
            None => std::env::var_os(name).map(|v| v.to_string_lossy().into_owned()),
        }
    }
}

/// Applies one directive of the `global` section.
pub(crate) fn handle(
    g: &mut Global,
    env: &mut EnvOverlay,
    words: &[String],
    cx: &LineCtx,
    notes: &mut Notes,
) {
    let kw = words[0].as_str();
    match kw {
        "maxconn" => {
            if let Some(n) = uint_arg::<u32>(words, notes) {
                g.maxconn = n;
            }
        }
        "nbthread" => match uint_arg::<usize>(words, notes) {
            Some(n) if (1..=MAX_THREADS).contains(&n) => g.nbthread = Some(n),
            Some(n) => notes.alert(format!(
                "'nbthread' must be between 1 and {MAX_THREADS} (was {n})."
            )),
            None => {}
        },
        "daemon" => {
            if !too_many_args(words, 1, notes) {
                g.daemon = true;
            }
        }
        "pidfile" => g.pidfile = string_arg(words, notes).map(PathBuf::from),
        "chroot" => {
            g.chroot = string_arg(words, notes).map(PathBuf::from);
            not_applied(words, notes);
        }
        "user" => {
            g.user = string_arg(words, notes);
            not_applied(words, notes);
        }
        "group" => {
            g.group = string_arg(words, notes);
            not_applied(words, notes);
        }
        "log-tag" => {
            if let Some(tag) = string_arg(words, notes) {
                g.log_tag = tag;
            }
        }
        "log" => match parse_log(words, cx.negated, false, cx.loc, cx.resolver) {
            Ok(LogDirective::Target(t)) => g.logs.push(t),
            Ok(LogDirective::Clear) => g.logs.clear(),
            Ok(LogDirective::Global) => {}
            Err(e) => notes.alert(format!("{e}.")),
        },
        "hard-stop-after" => match words.get(1).map(|w| crate::config::units::parse_time(w)) {
            Some(Ok(t)) => g.hard_stop_after = Some(t),
            Some(Err(e)) => notes.alert(format!("'hard-stop-after': {e}.")),
            None => notes.alert("'hard-stop-after' expects <time> as argument."),
        },
        "stats" => stats(g, words, cx, notes),
        "setenv" | "presetenv" => setenv(env, words, kw == "presetenv", notes),
        "unsetenv" => {
            for name in &words[1..] {
                env.vars.insert(name.clone(), None);
            }
        }
        "resetenv" => resetenv(env, &words[1..]),
        _ if is_ignored_global(kw) => notes.warn(format!("'{kw}' is ignored by rampart.")),
        _ => {
            let hint = suggest(kw, global_candidates())
                .map(|s| format!("; did you mean '{s}' maybe ?"))
                .unwrap_or_default();
            notes.alert(format!("unknown keyword '{kw}' in 'global' section{hint}"));
        }
    }
}

fn string_arg(words: &[String], notes: &mut Notes) -> Option<String> {
    let Some(value) = words.get(1) else {
        notes.alert(format!("'{}' expects an argument.", words[0]));
        return None;
    };
    (!too_many_args(words, 2, notes)).then(|| value.clone())
}

fn setenv(env: &mut EnvOverlay, words: &[String], only_if_unset: bool, notes: &mut Notes) {
    let (Some(name), Some(value)) = (words.get(1), words.get(2)) else {
        notes.alert(format!("'{}' expects a name and a value.", words[0]));
        return;
    };
    if too_many_args(words, 3, notes) || (only_if_unset && env.get(name).is_some()) {
        return;
    }
    env.vars.insert(name.clone(), Some(value.clone()));
}

/// `resetenv [NAME…]`: forget every variable except the listed ones.
fn resetenv(env: &mut EnvOverlay, keep: &[String]) {
    let names: Vec<String> = std::env::vars_os()
        .map(|(k, _)| k.to_string_lossy().into_owned())
        .chain(env.vars.keys().cloned())
        .collect();
    for name in names {
        if !keep.contains(&name) {
            env.vars.insert(name, None);
        }
    }
}

fn stats(g: &mut Global, words: &[String], cx: &LineCtx, notes: &mut Notes) {
    match words.get(1).map(String::as_str) {
        Some("socket") => {
            if let Some(sock) = stats_socket(&words[2..], cx, notes) {
                g.stats_sockets.push(sock);
            }
        }
        Some("timeout") => {
            let Some(value) = words.get(2) else {
                notes.alert("'stats timeout' expects a time value.");
                return;
            };
            if too_many_args(words, 3, notes) {
                return;
            }
            match parse_time(value) {
                Ok(t) if !t.is_zero() => g.stats_timeout = t,
                Ok(_) => notes.alert("'stats timeout' expects a positive value."),
                Err(e) => notes.alert(format!("'stats timeout' : {e}.")),
            }
        }
        Some(sub @ ("maxconn" | "bind-process")) => {
            notes.warn(format!("'stats {sub}' is ignored by rampart."));
        }
        _ => notes.alert(
            "'stats' only supports 'socket', 'maxconn', 'bind-process' and 'timeout' in 'global' section.",
        ),
    }
}

/// `stats socket PATH [level L] [mode M] [expose-fd listeners] [bind options]`;
/// `words` starts at PATH.
fn stats_socket(words: &[String], cx: &LineCtx, notes: &mut Notes) -> Option<StatsSocket> {
    let Some(spec) = words.first() else {
        notes.alert("'stats socket' expects a path.");
        return None;
    };
    let path = spec.strip_prefix("unix@").unwrap_or(spec);
    if !path.starts_with('/') {
        notes.alert(format!(
            "'stats socket {spec}' : only absolute Unix socket paths are supported by rampart."
        ));
        return None;
    }
    let mut sock = StatsSocket {
        path: PathBuf::from(path),
        // HAProxy's default level for stats sockets.
        level: Level::Operator,
        mode: None,
        expose_fd_listeners: false,
        loc: cx.loc.clone(),
    };
    let who = format!("stats socket {spec}");
    let mut i = 1;
    while let Some(kw) = words.get(i) {
        let arg = words.get(i + 1).map(String::as_str);
        i += 1 + stats_socket_option(&mut sock, kw, arg, &who, notes)?;
    }
    (!notes.has_alert()).then_some(sock)
}

/// Applies one stats socket option; returns how many arguments it used.
fn stats_socket_option(
    sock: &mut StatsSocket,
    kw: &str,
    arg: Option<&str>,
    who: &str,
    notes: &mut Notes,
) -> Option<usize> {
    let nargs = match kw {
        "level" | "mode" | "expose-fd" | "name" => 1,
        _ => match option_entry(BIND_OPTIONS, kw) {
            Some((n, _)) => n,
            None => {
                unknown_bind_keyword(who, kw, notes);
                return None;
            }
        },
    };
    let value = match (nargs, arg) {
        (0, _) => "",
        (_, Some(v)) => v,
        (_, None) => {
            notes.alert(format!("'{who}' : missing argument for '{kw}'."));
            return None;
        }
    };
    match kw {
        "level" => match value {
            "user" => sock.level = Level::User,
            "operator" => sock.level = Level::Operator,
            "admin" => sock.level = Level::Admin,
            _ => notes.alert("'level' only supports 'user', 'operator', and 'admin'."),
        },
        "mode" => match u32::from_str_radix(value, 8) {
            Ok(m) if m <= 0o7777 => sock.mode = Some(m),
            _ => notes.alert(format!(
                "'{who}' : 'mode' expects an octal file mode, got '{value}'."
            )),
        },
        "expose-fd" if value == "listeners" => sock.expose_fd_listeners = true,
        "expose-fd" => notes.alert("'expose-fd' only supports 'listeners'."),
        _ => match option_entry(BIND_OPTIONS, kw).map(|(_, t)| t) {
            Some(Treat::NoOp) => {}
            Some(Treat::Unsupported) => {
                notes.alert(format!("'{who}' : '{kw}' is not yet supported by rampart."))
            }
            _ => notes.warn(format!("'{who}' : '{kw}' is ignored by rampart.")),
        },
    }
    Some(nargs)
}

/// rampart re-reads its files and may bind new ports on reload from the same process,
/// so it keeps the rights it was started with instead of chrooting or switching users.
fn not_applied(words: &[String], notes: &mut Notes) {
    notes.warn(format!(
        "'{}' is accepted but not applied: rampart keeps its start-up rights to re-read its files \
         and bind new ports on reload; run it as an unprivileged user with CAP_NET_BIND_SERVICE instead.",
        words[0]
    ));
}
