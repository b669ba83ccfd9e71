//! `defaults`, `frontend`, `backend` and `listen` sections: the draft a section
//! fills in, and the dispatch of its keywords.
//!
//! A proxy starts as a copy of the defaults section in force (HAProxy's
//! `init_new_proxy()` + copy from `defproxy`), so inheritance is just `Clone`.

use super::addr::Resolver;
use super::keywords::{proxy_candidates, suggest, PROXY_IGNORED, PROXY_UNSUPPORTED};
use super::logline::{parse_log, LogDirective};
use super::model::ServerSettings;
use super::model::{
    Algorithm, Bind, HashType, Loc, LogOptions, LogTarget, Mode, Redispatch, Server, Timeouts,
};
use super::notes::{too_many_args, uint_arg, Notes};
use super::proxy_kw;
use super::server::{apply_options, build_server, Origin, Site};

/// What kind of section a draft comes from; decides its capabilities.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Defaults,
    Frontend,
    Backend,
    Listen,
}

impl Kind {
    pub fn has_frontend(self) -> bool {
        self != Kind::Backend
    }

    pub fn has_backend(self) -> bool {
        self != Kind::Frontend
    }

    /// The section keyword, as in `unknown keyword 'x' in 'listen' section`.
    pub fn section(self) -> &'static str {
        match self {
            Kind::Defaults => "defaults",
            Kind::Frontend => "frontend",
            Kind::Backend => "backend",
            Kind::Listen => "listen",
        }
    }

    /// How HAProxy names such a proxy in messages (`listen` is a "proxy").
    pub fn type_str(self) -> &'static str {
        match self {
            Kind::Listen => "proxy",
            other => other.section(),
        }
    }
}

/// One `log` line of a proxy, with `log global` kept symbolic until the global
/// section is complete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LogEntry {
    Global,
    Target(LogTarget),
}

/// Everything a proxy or defaults section can set, before validation.
#[derive(Debug, Clone)]
pub(crate) struct ProxyDraft {
    pub kind: Kind,
    pub name: String,
    pub loc: Loc,
    /// Explicit `id N`.
    pub id: Option<u32>,
    pub mode: Mode,
    /// 0 = not set.
    pub maxconn: u32,
    pub timeouts: Timeouts,
    pub retries: u32,
    pub redispatch: Option<Redispatch>,
    pub allbackups: bool,
    pub log_options: LogOptions,
    /// Where `option httplog` was set, for the tcp-mode fallback warning.
    pub httplog_loc: Option<Loc>,
    pub logs: Vec<LogEntry>,
    pub algorithm: Algorithm,
    pub hash_type: HashType,
    pub server_defaults: ServerSettings,
    pub default_backend: Option<(String, Loc)>,
    pub binds: Vec<Bind>,
    /// Servers with `id` 0 unless set explicitly.
    pub servers: Vec<Server>,
}

/// HAProxy's default number of connection retries.
const DEFAULT_RETRIES: u32 = 3;

impl ProxyDraft {
    /// HAProxy's built-in defaults, used before any `defaults` section and by a
    /// `defaults` section without `from`.
    pub fn builtin() -> Self {
        ProxyDraft {
            kind: Kind::Defaults,
            name: String::new(),
            loc: Loc::default(),
            id: None,
            mode: Mode::Tcp,
            maxconn: 0,
            timeouts: Timeouts::default(),
            retries: DEFAULT_RETRIES,
            redispatch: None,
            allbackups: false,
            log_options: LogOptions::default(),
            httplog_loc: None,
            logs: Vec::new(),
            algorithm: Algorithm::RoundRobin,
            hash_type: HashType::MapBased,
            server_defaults: ServerSettings::default(),
            default_backend: None,
            binds: Vec::new(),
            servers: Vec::new(),
        }
    }

    /// A new section inheriting every setting of `self` (a defaults section).
    pub fn derive(&self, kind: Kind, name: &str, loc: &Loc) -> Self {
        let mut px = self.clone();
        px.kind = kind;
        px.name = name.to_string();
        px.loc = loc.clone();
        px.id = None;
        px.binds.clear();
        px.servers.clear();
        if !kind.has_frontend() {
            px.default_backend = None;
        }
        px
    }

    /// Warns and returns false when the proxy lacks the capability a keyword needs.
    pub fn check_cap(&self, kw: &str, frontend: bool, notes: &mut Notes) -> bool {
        let ok = if frontend {
            self.kind.has_frontend()
        } else {
            self.kind.has_backend()
        };
        if !ok {
            notes.warn(format!(
                "'{kw}' ignored because {} '{}' has no {} capability.",
                self.kind.type_str(),
                self.name,
                if frontend { "frontend" } else { "backend" }
            ));
        }
        ok
    }

    /// Alerts when a keyword is used in a `defaults` section that forbids it.
    fn forbid_in_defaults(&self, kw: &str, notes: &mut Notes) -> bool {
        let forbidden = self.kind == Kind::Defaults;
        if forbidden {
            notes.alert(format!("'{kw}' not allowed in 'defaults' section."));
        }
        forbidden
    }
}

/// What a directive handler needs besides the draft.
pub(crate) struct LineCtx<'a> {
    pub loc: &'a Loc,
    pub resolver: &'a Resolver<'a>,
    /// The directive was prefixed with `no`.
    pub negated: bool,
}

/// Applies one directive of a proxy or defaults section.
pub(crate) fn handle(px: &mut ProxyDraft, words: &[String], cx: &LineCtx, notes: &mut Notes) {
    let kw = words[0].as_str();
    match kw {
        "mode" => mode(px, words, notes),
        "bind" => {
            if !px.forbid_in_defaults(kw, notes) && px.check_cap(kw, true, notes) {
                proxy_kw::bind(px, words, cx, notes);
            }
        }
        "default_backend" => default_backend(px, words, cx.loc, notes),
        "balance" => {
            if px.check_cap(kw, false, notes) {
                proxy_kw::balance(px, words, notes);
            }
        }
        "hash-type" => {
            if px.check_cap(kw, false, notes) {
                proxy_kw::hash_type(px, words, notes);
            }
        }
        "server" => server(px, words, cx, notes),
        "default-server" => {
            if px.check_cap(kw, false, notes) {
                apply_options(
                    &mut px.server_defaults,
                    &words[1..],
                    kw,
                    Origin::Default,
                    notes,
                );
            }
        }
        "timeout" => proxy_kw::timeout(px, &words[1..], kw, notes),
        "contimeout" | "clitimeout" | "srvtimeout" => legacy_timeout(px, words, notes),
        "maxconn" => {
            if px.check_cap(kw, true, notes) {
                if let Some(n) = uint_arg::<u32>(words, notes) {
                    px.maxconn = n;
                }
            }
        }
        "retries" => {
            if px.check_cap(kw, false, notes) {
                if let Some(n) = uint_arg::<u32>(words, notes) {
                    px.retries = n;
                }
            }
        }
        "option" => proxy_kw::option(px, words, cx, notes),
        "log" => log(px, words, cx, notes),
        "id" => {
            if !px.forbid_in_defaults(kw, notes) {
                proxy_id(px, words, notes);
            }
        }
        "enabled" => {
            too_many_args(words, 1, notes);
        }
        _ => other_keyword(px, words, notes),
    }
}

fn mode(px: &mut ProxyDraft, words: &[String], notes: &mut Notes) {
    if too_many_args(words, 2, notes) {
        return;
    }
    match words.get(1).map(String::as_str) {
        Some("tcp") => px.mode = Mode::Tcp,
        Some("http") => px.mode = Mode::Http,
        Some(other) => notes.alert(format!("unknown proxy mode '{other}'.")),
        None => notes.alert("'mode' expects 'tcp' or 'http'."),
    }
}

fn default_backend(px: &mut ProxyDraft, words: &[String], loc: &Loc, notes: &mut Notes) {
    if !px.check_cap(&words[0], true, notes) || too_many_args(words, 2, notes) {
        return;
    }
    match words.get(1) {
        Some(name) => px.default_backend = Some((name.clone(), loc.clone())),
        None => notes.alert("'default_backend' expects a backend name."),
    }
}

fn server(px: &mut ProxyDraft, words: &[String], cx: &LineCtx, notes: &mut Notes) {
    if px.forbid_in_defaults("server", notes) || !px.check_cap("server", false, notes) {
        return;
    }
    let Some(name) = words.get(1) else {
        notes.alert("'server' expects <name> and <addr>[:<port>] as arguments.");
        return;
    };
    let site = Site {
        origin: Origin::Config,
        default_port: None,
        resolver: cx.resolver,
        loc: cx.loc,
    };
    if let Some(s) = build_server(name, &words[2..], &px.server_defaults, &site, notes) {
        px.servers.push(s);
    }
}

/// `contimeout`/`clitimeout`/`srvtimeout`: removed in HAProxy 2.1, still read
/// here (with a warning) so that old configurations keep working.
fn legacy_timeout(px: &mut ProxyDraft, words: &[String], notes: &mut Notes) {
    let modern = match words[0].as_str() {
        "contimeout" => "connect",
        "clitimeout" => "client",
        _ => "server",
    };
    notes.warn(format!(
        "the '{}' directive is deprecated (removed in HAProxy 2.1); use 'timeout {modern}'.",
        words[0]
    ));
    let mut rewritten = vec![modern.to_string()];
    rewritten.extend(words[1..].iter().cloned());
    proxy_kw::timeout(px, &rewritten, "timeout", notes);
}

fn log(px: &mut ProxyDraft, words: &[String], cx: &LineCtx, notes: &mut Notes) {
    match parse_log(words, cx.negated, true, cx.loc, cx.resolver) {
        Ok(LogDirective::Global) => px.logs.push(LogEntry::Global),
        Ok(LogDirective::Clear) => px.logs.clear(),
        Ok(LogDirective::Target(t)) => px.logs.push(LogEntry::Target(t)),
        Err(e) => notes.alert(format!("{e}.")),
    }
}

fn proxy_id(px: &mut ProxyDraft, words: &[String], notes: &mut Notes) {
    match uint_arg::<u32>(words, notes) {
        Some(0) => notes.alert("custom id has to be > 0."),
        Some(n) => px.id = Some(n),
        None => {}
    }
}

/// Keywords rampart does not act on: known ones warn (or alert when ignoring
/// them would send traffic elsewhere), unknown ones alert with a suggestion.
fn other_keyword(px: &ProxyDraft, words: &[String], notes: &mut Notes) {
    let kw = words[0].as_str();
    if PROXY_UNSUPPORTED.contains(&kw) {
        notes.alert(format!("'{kw}' is not supported by rampart yet."));
    } else if RULES.contains(&kw) {
        if kw == "use_backend" && px.forbid_in_defaults(kw, notes) {
            return;
        }
        // Running without these would change who gets in or where traffic goes.
        notes.alert(format!(
            "'{kw}' is not supported by rampart yet (ACLs and rules arrive with HTTP support); \
             refusing the configuration rather than running without these rules."
        ));
    } else if PROXY_IGNORED.contains(&kw) {
        notes.warn(ignored_reason(kw));
    } else {
        let hint = suggest(kw, proxy_candidates())
            .map(|s| format!("; did you mean '{s}' maybe ?"))
            .unwrap_or_default();
        notes.alert(format!(
            "unknown keyword '{kw}' in '{}' section{hint}",
            px.kind.section()
        ));
    }
}

/// Rule keywords: not applied yet, so a configuration using them is refused.
const RULES: &[&str] = &[
    "use_backend",
    "acl",
    "tcp-request",
    "tcp-response",
    "http-request",
    "http-response",
    "http-after-response",
    "redirect",
    "use-server",
    "disabled",
];

fn ignored_reason(kw: &str) -> String {
    match kw {
        "stats" => {
            "'stats' in a proxy is ignored by rampart (no stats page; use the stats socket).".into()
        }
        _ => format!("'{kw}' is ignored by rampart."),
    }
}
