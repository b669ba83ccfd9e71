//! Proxy keywords with sub-syntax: `bind`, `balance`, `hash-type`, `timeout`
//! and `option`.

use std::time::Duration;

use super::addr::parse_bind_addrs;
use super::keywords::{
    option_candidates, option_entry, suggest, unknown_bind_keyword, Treat, BIND_OPTIONS,
    OPTIONS_CHECKS, OPTIONS_IGNORED, TIMEOUTS_HONOURED, TIMEOUTS_IGNORED,
};
use super::model::{Algorithm, Bind, HashType, Redispatch, Timeouts};
use super::notes::{too_many_args, Notes};
use super::proxy::{LineCtx, ProxyDraft};
use super::units::{parse_int, parse_time};

/// `bind ADDR[,ADDR…] [options]`.
pub(crate) fn bind(px: &mut ProxyDraft, words: &[String], cx: &LineCtx, notes: &mut Notes) {
    let Some(spec) = words.get(1) else {
        notes.alert(
            "'bind' expects {<path>|[addr1]:port1[-end1]}{,[addr]:port[-end]}... as arguments.",
        );
        return;
    };
    let addrs = match parse_bind_addrs(spec, cx.resolver) {
        Ok(a) => a,
        Err(e) => {
            notes.alert(format!("'bind {spec}' : {e}."));
            return;
        }
    };
    let who = format!("bind {spec}");
    let Some(name) = bind_options(&words[2..], &who, notes) else {
        return;
    };
    px.binds.extend(addrs.into_iter().map(|addr| Bind {
        addr,
        name: name.clone(),
        loc: cx.loc.clone(),
    }));
}

/// Reads bind options; returns the `name` (outer `None` on error).
fn bind_options(words: &[String], who: &str, notes: &mut Notes) -> Option<Option<String>> {
    let mut name = None;
    let mut i = 0;
    while let Some(kw) = words.get(i) {
        let nargs = if kw == "name" {
            1
        } else {
            match option_entry(BIND_OPTIONS, kw) {
                Some((n, treat)) => {
                    bind_option_note(kw, treat, who, notes);
                    n
                }
                None => {
                    unknown_bind_keyword(who, kw, notes);
                    return None;
                }
            }
        };
        if words.len() < i + 1 + nargs {
            notes.alert(format!("'{who}' : missing argument for '{kw}'."));
            return None;
        }
        if kw == "name" {
            name = words.get(i + 1).cloned();
        }
        i += 1 + nargs;
    }
    (!notes.has_alert()).then_some(name)
}

fn bind_option_note(kw: &str, treat: Treat, who: &str, notes: &mut Notes) {
    match treat {
        Treat::NoOp => {}
        Treat::Ignored => notes.warn(format!("'{who}' : '{kw}' is ignored by rampart.")),
        Treat::Unsupported => notes.alert(format!(
            "'{who}' : '{kw}' is not yet supported by rampart (TLS termination comes with HTTP support)."
        )),
    }
}

/// Algorithms HAProxy has and rampart does not implement yet.
const UNSUPPORTED_ALGORITHMS: &[&str] =
    &["random", "uri", "url_param", "hdr", "rdp-cookie", "hash"];

/// `balance ALGORITHM`.
pub(crate) fn balance(px: &mut ProxyDraft, words: &[String], notes: &mut Notes) {
    let Some(algo) = words.get(1) else {
        notes.alert("'balance' expects an algorithm.");
        return;
    };
    let algorithm = match algo.as_str() {
        "roundrobin" => Algorithm::RoundRobin,
        "static-rr" => Algorithm::StaticRr,
        "leastconn" => Algorithm::LeastConn,
        "first" => Algorithm::First,
        "source" => Algorithm::Source,
        other => {
            let base = other.split('(').next().unwrap_or(other);
            if UNSUPPORTED_ALGORITHMS.contains(&base) {
                notes.alert(format!(
                    "'balance {other}' is not supported by rampart yet (supported: roundrobin, static-rr, leastconn, first, source)."
                ));
            } else {
                notes.alert(
                    "'balance' only supports 'roundrobin', 'static-rr', 'leastconn', 'source', 'uri', 'url_param', 'hash', 'hdr(name)', 'rdp-cookie(name)', 'random' and 'first' options.",
                );
            }
            return;
        }
    };
    if !too_many_args(words, 2, notes) {
        px.algorithm = algorithm;
    }
}

/// `hash-type map-based|consistent [function] [avalanche]`.
pub(crate) fn hash_type(px: &mut ProxyDraft, words: &[String], notes: &mut Notes) {
    let hash_type = match words.get(1).map(String::as_str) {
        Some("map-based") => HashType::MapBased,
        Some("consistent") => HashType::Consistent,
        _ => {
            notes.alert("'hash-type' expects 'map-based' or 'consistent' as method, optionally followed by a function and 'avalanche'.");
            return;
        }
    };
    for word in words.iter().skip(2) {
        match word.as_str() {
            "sdbm" => {}
            "djb2" | "wt6" | "crc32" | "none" | "avalanche" => notes.warn(format!(
                "'hash-type' function '{word}' is ignored by rampart."
            )),
            other => {
                notes.alert(format!(
                    "'hash-type' : unknown function or modifier '{other}'."
                ));
                return;
            }
        }
    }
    px.hash_type = hash_type;
}

/// `timeout NAME VALUE`; `words` starts at NAME, `kw` is the directive name.
pub(crate) fn timeout(px: &mut ProxyDraft, words: &[String], kw: &str, notes: &mut Notes) {
    let Some(name) = words.first() else {
        notes.alert(format!("'{kw}' expects a timeout name and a value."));
        return;
    };
    let honoured = TIMEOUTS_HONOURED.iter().find(|(n, _)| n == name);
    if honoured.is_none() && !TIMEOUTS_IGNORED.contains(&name.as_str()) {
        notes.alert(format!(
            "'timeout' supports 'client', 'server', 'connect', 'check', 'queue', 'http-keep-alive', 'http-request', 'tunnel', 'tarpit', 'client-fin' and 'server-fin' (got '{name}')."
        ));
        return;
    }
    let Some(value) = words.get(1) else {
        notes.alert(format!(
            "'timeout {name}' expects an integer value (in milliseconds)."
        ));
        return;
    };
    if let Some(extra) = words.get(2) {
        notes.alert(format!(
            "'timeout {name}' : unexpected extra argument '{extra}' after value '{value}'."
        ));
        return;
    }
    let t = match parse_time(value) {
        Ok(t) => t,
        Err(e) => {
            notes.alert(format!("'timeout {name}' : {e}."));
            return;
        }
    };
    let Some(&(_, frontend)) = honoured else {
        notes.warn(format!(
            "'timeout {name}' is ignored by rampart (no HTTP processing yet)."
        ));
        return;
    };
    if px.check_cap(&format!("timeout {name}"), frontend, notes) {
        // 0 means "no timeout" in HAProxy, like leaving it unset.
        set_timeout(&mut px.timeouts, name, (!t.is_zero()).then_some(t));
    }
}

fn set_timeout(t: &mut Timeouts, name: &str, value: Option<Duration>) {
    let slot = match name {
        "client" => &mut t.client,
        "client-fin" => &mut t.client_fin,
        "connect" => &mut t.connect,
        "server" => &mut t.server,
        "queue" => &mut t.queue,
        "check" => &mut t.check,
        "tunnel" => &mut t.tunnel,
        _ => &mut t.server_fin,
    };
    *slot = value;
}

/// `[no] option NAME [args]`.
pub(crate) fn option(px: &mut ProxyDraft, words: &[String], cx: &LineCtx, notes: &mut Notes) {
    let Some(name) = words.get(1) else {
        notes.alert("'option' expects an option name.");
        return;
    };
    let on = !cx.negated;
    let full = format!("option {name}");
    match name.as_str() {
        "tcplog" => {
            if !too_many_args(words, 2, notes) {
                set_log_format(px, on, false, cx);
            }
        }
        "httplog" | "httpslog" => {
            let clf_ok = name == "httplog" && words.get(2).is_some_and(|w| w == "clf");
            let max = if clf_ok { 3 } else { 2 };
            if !too_many_args(words, max, notes) {
                set_log_format(px, on, true, cx);
            }
        }
        "dontlognull" => {
            if px.check_cap(&full, true, notes) && !too_many_args(words, 2, notes) {
                px.log_options.dontlognull = on;
            }
        }
        "allbackups" => {
            if px.check_cap(&full, false, notes) && !too_many_args(words, 2, notes) {
                px.allbackups = on;
            }
        }
        "redispatch" => {
            if px.check_cap(&full, false, notes) {
                redispatch(px, words, on, notes);
            }
        }
        _ => other_option(name, on, notes),
    }
}

/// `option tcplog` and `option httplog` replace each other's log format.
fn set_log_format(px: &mut ProxyDraft, on: bool, http: bool, cx: &LineCtx) {
    let opts = &mut px.log_options;
    if !on {
        if http {
            opts.httplog = false
        } else {
            opts.tcplog = false
        }
        return;
    }
    opts.httplog = http;
    opts.tcplog = !http;
    px.httplog_loc = http.then(|| cx.loc.clone());
}

/// `option redispatch [interval]`: 0 disables, as `no option redispatch` does.
fn redispatch(px: &mut ProxyDraft, words: &[String], on: bool, notes: &mut Notes) {
    if !on {
        px.redispatch = None;
        return;
    }
    if too_many_args(words, 3, notes) {
        return;
    }
    let interval = match words.get(2) {
        None => -1,
        Some(v) => match parse_int(v).ok().and_then(|n| i32::try_from(n).ok()) {
            Some(n) => n,
            None => {
                notes.alert(format!(
                    "'option redispatch' expects an integer interval, got '{v}'."
                ));
                return;
            }
        },
    };
    px.redispatch = (interval != 0).then_some(Redispatch { interval });
}

fn other_option(name: &str, on: bool, notes: &mut Notes) {
    let known = OPTIONS_CHECKS.contains(&name) || OPTIONS_IGNORED.contains(&name);
    if !known {
        let hint = suggest(name, option_candidates())
            .map(|s| format!("; did you mean '{s}' maybe ?"))
            .unwrap_or_default();
        notes.alert(format!("unknown option '{name}'{hint}"));
        return;
    }
    // `no option X` for something rampart never does is already the truth.
    if !on {
        return;
    }
    if OPTIONS_CHECKS.contains(&name) {
        notes.warn(format!(
            "'option {name}' is ignored by rampart: health checks stay plain TCP connects."
        ));
    } else {
        notes.warn(format!("'option {name}' is ignored by rampart."));
    }
}
