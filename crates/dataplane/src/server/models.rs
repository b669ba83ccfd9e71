//! JSON shapes of haproxytech/dataplaneapi-specification's models: built from
//! rampart's HAProxy config model for reads, read from request bodies for
//! writes, and rendered back to haproxy.cfg directives. Unset optional fields
//! are left out, as the Data Plane API does. Times are milliseconds.
//!
//! Each model renders its directives per key (`timeout connect`, `balance`…);
//! a write changes only the keys whose rendering differs from the current
//! object's, so a GET's `data` PUT back leaves the file as it was.

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value};

use lb::config::{
    Backend as LbBackend, Bind as LbBind, Frontend as LbFrontend, Global as LbGlobal,
    Server as LbServer,
};

use super::ApiError;

/// Directive lines per key; an empty list means "not set".
pub type Directives = Vec<(String, Vec<String>)>;

/// The keys of `new` whose lines differ from `old`'s.
pub fn diff(old: &Directives, new: &Directives) -> Directives {
    new.iter()
        .filter(|(k, lines)| old.iter().find(|(o, _)| o == k).map(|(_, l)| l) != Some(lines))
        .cloned()
        .collect()
}

/// Every line of `d`, in order, for a new section.
pub fn flatten(d: &Directives) -> Vec<String> {
    d.iter().flat_map(|(_, l)| l.iter().cloned()).collect()
}

/// A request body as a JSON object; anything else is a 400.
pub fn body_object(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(o)) => Ok(o),
        Ok(_) => Err(ApiError::BadRequest("body must be a JSON object".into())),
        Err(e) => Err(ApiError::BadRequest(format!("invalid JSON body: {e}"))),
    }
}

/// Typed access to a JSON object's fields with errors naming the field.
pub(crate) struct Fields<'a> {
    obj: &'a Map<String, Value>,
    prefix: &'a str,
}

impl<'a> Fields<'a> {
    pub fn new(obj: &'a Map<String, Value>) -> Self {
        Fields { obj, prefix: "" }
    }

    fn bad(&self, key: &str, why: impl std::fmt::Display) -> ApiError {
        ApiError::BadRequest(format!("{}{key}: {why}", self.prefix))
    }

    pub fn opt<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, ApiError> {
        match self.obj.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => T::deserialize(v).map(Some).map_err(|e| self.bad(key, e)),
        }
    }

    /// A configuration word: non-empty, no whitespace, quote or `#`, which
    /// would change how the line reads.
    pub fn word(&self, key: &str) -> Result<Option<String>, ApiError> {
        let Some(s) = self.opt::<String>(key)? else {
            return Ok(None);
        };
        if s.is_empty()
            || s.chars().any(|c| {
                c.is_whitespace() || c.is_control() || matches!(c, '#' | '"' | '\'' | '\\')
            })
        {
            return Err(self.bad(key, format!("invalid value '{s}'")));
        }
        Ok(Some(s))
    }

    pub fn req_word(&self, key: &str) -> Result<String, ApiError> {
        self.word(key)?
            .ok_or_else(|| ApiError::BadRequest(format!("{}{key} is required", self.prefix)))
    }

    /// A name as the specification's pattern `^[A-Za-z0-9-_.:]+$` allows.
    pub fn name(&self) -> Result<String, ApiError> {
        let name = self.req_word("name")?;
        if !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
        {
            return Err(self.bad("name", format!("invalid name '{name}'")));
        }
        Ok(name)
    }

    pub fn one_of(
        &self,
        key: &str,
        allowed: &[&'static str],
    ) -> Result<Option<&'static str>, ApiError> {
        let Some(s) = self.opt::<String>(key)? else {
            return Ok(None);
        };
        match allowed.iter().find(|a| **a == s) {
            Some(a) => Ok(Some(a)),
            None => Err(self.bad(key, format!("'{s}' is not one of {}", allowed.join(", ")))),
        }
    }

    pub fn port(&self, key: &str) -> Result<Option<u16>, ApiError> {
        match self.opt::<u64>(key)? {
            None => Ok(None),
            Some(p @ 1..=65535) => Ok(Some(p as u16)),
            Some(p) => Err(self.bad(key, format!("{p} is not between 1 and 65535"))),
        }
    }

    pub fn nested(&self, key: &str) -> Result<Option<Fields<'a>>, ApiError> {
        match self.obj.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Object(o)) => Ok(Some(Fields {
                obj: o,
                prefix: self.prefix,
            })),
            Some(_) => Err(self.bad(key, "expected an object")),
        }
    }
}

const MODES: &[&str] = &["tcp", "http"];
const ENABLED: &[&str] = &["enabled", "disabled"];
/// The specification's algorithms; rampart's parser refuses the ones it lacks.
const ALGORITHMS: &[&str] = &[
    "roundrobin",
    "static-rr",
    "leastconn",
    "first",
    "source",
    "uri",
    "url_param",
    "hdr",
    "random",
    "rdp-cookie",
    "hash",
];

fn enabled(on: bool) -> &'static str {
    if on {
        "enabled"
    } else {
        "disabled"
    }
}

/// 0 means unlimited in rampart's model, which the API expresses by absence.
fn limit(n: u32) -> Option<u32> {
    (n != 0).then_some(n)
}

fn ms(d: Option<std::time::Duration>) -> Option<u64> {
    d.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn key(k: &str, lines: Vec<String>) -> (String, Vec<String>) {
    (k.to_string(), lines)
}

fn one(k: &str, value: Option<impl std::fmt::Display>) -> (String, Vec<String>) {
    key(k, value.map(|v| format!("{k} {v}")).into_iter().collect())
}

#[derive(Debug, Clone, Serialize)]
pub struct Frontend {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maxconn: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_backend: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_timeout: Option<u64>,
}

impl Frontend {
    pub fn from_json(obj: &Map<String, Value>) -> Result<Self, ApiError> {
        let f = Fields::new(obj);
        Ok(Frontend {
            name: f.name()?,
            mode: f.one_of("mode", MODES)?,
            maxconn: f.opt("maxconn")?,
            default_backend: f.word("default_backend")?,
            client_timeout: f.opt("client_timeout")?,
        })
    }

    pub fn directives(&self) -> Directives {
        vec![
            one("mode", self.mode),
            one("maxconn", self.maxconn),
            one("default_backend", self.default_backend.as_ref()),
            one("timeout client", self.client_timeout),
        ]
    }
}

impl From<&LbFrontend> for Frontend {
    fn from(f: &LbFrontend) -> Self {
        Frontend {
            name: f.name.clone(),
            mode: Some(f.mode.as_str()),
            maxconn: limit(f.maxconn),
            default_backend: f.default_backend.clone(),
            client_timeout: ms(f.timeouts.client),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Balance {
    pub algorithm: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub struct Backend {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub balance: Option<Balance>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connect_timeout: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_timeout: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub check_timeout: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue_timeout: Option<u64>,
}

impl Backend {
    pub fn from_json(obj: &Map<String, Value>) -> Result<Self, ApiError> {
        let f = Fields::new(obj);
        let balance = match f.nested("balance")? {
            None => None,
            Some(b) => {
                let b = Fields {
                    obj: b.obj,
                    prefix: "balance.",
                };
                let algorithm = b
                    .one_of("algorithm", ALGORITHMS)?
                    .ok_or_else(|| ApiError::BadRequest("balance.algorithm is required".into()))?;
                Some(Balance { algorithm })
            }
        };
        Ok(Backend {
            name: f.name()?,
            mode: f.one_of("mode", MODES)?,
            balance,
            connect_timeout: f.opt("connect_timeout")?,
            server_timeout: f.opt("server_timeout")?,
            check_timeout: f.opt("check_timeout")?,
            queue_timeout: f.opt("queue_timeout")?,
        })
    }

    pub fn directives(&self) -> Directives {
        vec![
            one("mode", self.mode),
            one("balance", self.balance.as_ref().map(|b| b.algorithm)),
            one("timeout connect", self.connect_timeout),
            one("timeout server", self.server_timeout),
            one("timeout check", self.check_timeout),
            one("timeout queue", self.queue_timeout),
        ]
    }
}

impl From<&LbBackend> for Backend {
    fn from(b: &LbBackend) -> Self {
        Backend {
            name: b.name.clone(),
            mode: Some(b.mode.as_str()),
            balance: Some(Balance {
                algorithm: b.algorithm.as_str(),
            }),
            connect_timeout: ms(b.timeouts.connect),
            server_timeout: ms(b.timeouts.server),
            check_timeout: ms(b.timeouts.check),
            queue_timeout: ms(b.timeouts.queue),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Server {
    pub name: String,
    pub address: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub check: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maxconn: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backup: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inter: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rise: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fall: Option<u32>,
    /// Passed through to the line; rampart's model does not keep them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolvers: Option<String>,
    #[serde(rename = "init-addr", skip_serializing_if = "Option::is_none")]
    pub init_addr: Option<String>,
}

/// One option of a `server` line: the words that set it, how many arguments
/// they take, its rendering, and what restores HAProxy's built-in default.
struct ServerOpt {
    keywords: &'static [&'static str],
    nargs: usize,
    words: Vec<String>,
    reset: Vec<String>,
}

fn flag(
    on: Option<&str>,
    kw: &'static str,
    no: &'static str,
    kws: &'static [&'static str],
) -> ServerOpt {
    ServerOpt {
        keywords: kws,
        nargs: 0,
        words: match on {
            Some("enabled") => vec![kw.to_string()],
            _ => Vec::new(),
        },
        reset: vec![no.to_string()],
    }
}

fn valued(
    kw: &'static str,
    kws: &'static [&'static str],
    v: Option<String>,
    default: Option<&str>,
) -> ServerOpt {
    ServerOpt {
        keywords: kws,
        nargs: 1,
        words: v.map(|v| vec![kw.to_string(), v]).unwrap_or_default(),
        reset: default
            .map(|d| vec![kw.to_string(), d.to_string()])
            .unwrap_or_default(),
    }
}

impl Server {
    pub fn from_json(obj: &Map<String, Value>) -> Result<Self, ApiError> {
        let f = Fields::new(obj);
        let name = f.req_word("name")?;
        if name.contains('/') {
            return Err(ApiError::BadRequest(format!("name: invalid name '{name}'")));
        }
        Ok(Server {
            name,
            address: f.req_word("address")?,
            port: Some(
                f.port("port")?
                    .ok_or_else(|| ApiError::BadRequest("port is required".into()))?,
            ),
            check: f.one_of("check", ENABLED)?,
            weight: f.opt("weight")?,
            maxconn: f.opt("maxconn")?,
            backup: f.one_of("backup", ENABLED)?,
            inter: f.opt("inter")?,
            rise: f.opt("rise")?,
            fall: f.opt("fall")?,
            resolvers: f.word("resolvers")?,
            init_addr: f.word("init-addr")?,
        })
    }

    fn addr(&self) -> String {
        let host = if self.address.contains(':') && !self.address.starts_with('[') {
            format!("[{}]", self.address)
        } else {
            self.address.clone()
        };
        match self.port {
            Some(p) => format!("{host}:{p}"),
            None => host,
        }
    }

    fn options(&self) -> Vec<ServerOpt> {
        let s = |v: Option<u32>| v.map(|v| v.to_string());
        vec![
            flag(self.check, "check", "no-check", &["check", "no-check"]),
            valued("weight", &["weight"], s(self.weight), Some("1")),
            valued("maxconn", &["maxconn"], s(self.maxconn), Some("0")),
            flag(self.backup, "backup", "no-backup", &["backup", "no-backup"]),
            valued(
                "inter",
                &["inter"],
                self.inter.map(|v| v.to_string()),
                Some("2000"),
            ),
            valued("rise", &["rise"], s(self.rise), Some("2")),
            valued("fall", &["fall"], s(self.fall), Some("3")),
            valued("resolvers", &["resolvers"], self.resolvers.clone(), None),
            valued("init-addr", &["init-addr"], self.init_addr.clone(), None),
        ]
    }

    /// The words of a new `server` line after the name.
    pub fn args(&self) -> Vec<String> {
        std::iter::once(self.addr())
            .chain(self.options().into_iter().flat_map(|o| o.words))
            .collect()
    }

    pub fn line(&self) -> String {
        format!("server {} {}", self.name, self.args().join(" "))
    }

    /// The existing line `old_words` (`server NAME ADDR opts…`) changed where
    /// `self` differs from `old`: unknown options stay, changed ones are
    /// rewritten at the end.
    pub fn updated_line(&self, old: &Server, old_words: &[&str]) -> String {
        let mut opts: Vec<String> = old_words.iter().skip(3).map(|w| (*w).to_string()).collect();
        // Options left unset in the request but set before go back to HAProxy's defaults.
        for (new, was) in self.options().into_iter().zip(old.options()) {
            if new.words == was.words {
                continue;
            }
            let mut kept = Vec::new();
            let mut removed = false;
            let mut i = 0;
            while i < opts.len() {
                if new.keywords.contains(&opts[i].as_str()) {
                    removed = true;
                    i += 1 + new.nargs;
                } else {
                    kept.push(opts[i].clone());
                    i += 1;
                }
            }
            opts = kept;
            if !new.words.is_empty() {
                opts.extend(new.words);
            } else if !removed && was.words != new.reset {
                // The old value came from `default-server`: override it.
                opts.extend(new.reset);
            }
        }
        let addr = if self.address == old.address && self.port == old.port {
            old_words
                .get(2)
                .map_or_else(|| self.addr(), |w| (*w).to_string())
        } else {
            self.addr()
        };
        let mut line = format!("server {} {addr}", self.name);
        for o in opts {
            line.push(' ');
            line.push_str(&o);
        }
        line
    }
}

impl From<&LbServer> for Server {
    fn from(s: &LbServer) -> Self {
        let st = &s.settings;
        let dflt = lb::config::ServerSettings::default();
        Server {
            name: s.name.clone(),
            address: s.host.clone(),
            port: Some(s.addr.port()),
            check: Some(enabled(st.check)),
            weight: Some(st.weight),
            maxconn: limit(st.maxconn),
            backup: Some(enabled(st.backup)),
            inter: (st.inter != dflt.inter).then(|| ms(Some(st.inter)).unwrap_or(0)),
            rise: (st.rise != dflt.rise).then_some(st.rise),
            fall: (st.fall != dflt.fall).then_some(st.fall),
            resolvers: None,
            init_addr: None,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Bind {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
}

impl Bind {
    pub fn from_json(obj: &Map<String, Value>) -> Result<Self, ApiError> {
        let f = Fields::new(obj);
        Ok(Bind {
            name: f.req_word("name")?,
            address: f.word("address")?,
            port: Some(
                f.port("port")?
                    .ok_or_else(|| ApiError::BadRequest("port is required".into()))?,
            ),
        })
    }

    /// `[address]:port`; no address (or `*`) listens on all addresses.
    pub fn spec(&self) -> String {
        let host = match self.address.as_deref() {
            None | Some("*") => String::new(),
            Some(a) if a.contains(':') && !a.starts_with('[') => format!("[{a}]"),
            Some(a) => a.to_string(),
        };
        format!("{host}:{}", self.port.unwrap_or(0))
    }

    fn same_address(&self, other: &Bind) -> bool {
        let norm = |a: Option<&str>| match a {
            None | Some("*" | "0.0.0.0") => "0.0.0.0".to_string(),
            Some(a) => a.trim_start_matches('[').trim_end_matches(']').to_string(),
        };
        norm(self.address.as_deref()) == norm(other.address.as_deref()) && self.port == other.port
    }

    pub fn line(&self) -> String {
        format!("bind {} name {}", self.spec(), self.name)
    }

    /// The existing line `old_words` (`bind SPEC opts…`) changed where `self`
    /// differs from `old`; other options stay.
    pub fn updated_line(&self, old: &Bind, old_words: &[&str]) -> String {
        let spec = if self.same_address(old) {
            old_words
                .get(1)
                .map_or_else(|| self.spec(), |w| (*w).to_string())
        } else {
            self.spec()
        };
        let mut opts: Vec<String> = old_words.iter().skip(2).map(|w| (*w).to_string()).collect();
        if self.name != old.name {
            match opts.iter().position(|w| w == "name") {
                Some(p) if p + 1 < opts.len() => opts[p + 1] = self.name.clone(),
                _ => opts.extend(["name".to_string(), self.name.clone()]),
            }
        }
        std::iter::once(format!("bind {spec}"))
            .chain(opts)
            .collect::<Vec<_>>()
            .join(" ")
    }
}

impl From<&LbBind> for Bind {
    fn from(b: &LbBind) -> Self {
        Bind {
            name: bind_name(b),
            address: Some(b.addr.ip().to_string()),
            port: Some(b.addr.port()),
        }
    }
}

/// Unnamed binds are named `address:port`, as the Data Plane API names them.
pub fn bind_name(b: &LbBind) -> String {
    b.name.clone().unwrap_or_else(|| b.addr.to_string())
}

/// One `stats socket` line (`runtime_apis` item).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuntimeApi {
    pub address: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub level: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    #[serde(rename = "exposeFdListeners", skip_serializing_if = "Option::is_none")]
    pub expose_fd_listeners: Option<bool>,
}

impl RuntimeApi {
    fn line(&self) -> String {
        let mut l = format!("stats socket {}", self.address);
        if let Some(level) = self.level {
            l.push_str(&format!(" level {level}"));
        }
        if let Some(mode) = &self.mode {
            l.push_str(&format!(" mode {mode}"));
        }
        if self.expose_fd_listeners == Some(true) {
            l.push_str(" expose-fd listeners");
        }
        l
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Global {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub daemon: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maxconn: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nbthread: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pidfile: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chroot: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hard_stop_after: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stats_timeout: Option<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub runtime_apis: Vec<RuntimeApi>,
}

impl Global {
    pub fn from_json(obj: &Map<String, Value>) -> Result<Self, ApiError> {
        let f = Fields::new(obj);
        let mut runtime_apis = Vec::new();
        if let Some(list) = f.opt::<Vec<Value>>("runtime_apis")? {
            for (i, item) in list.iter().enumerate() {
                let Value::Object(o) = item else {
                    return Err(ApiError::BadRequest(format!(
                        "runtime_apis[{i}]: expected an object"
                    )));
                };
                let prefix = format!("runtime_apis[{i}].");
                let r = Fields {
                    obj: o,
                    prefix: &prefix,
                };
                let mode = r.word("mode")?;
                if let Some(m) = &mode {
                    if !m.chars().all(|c| c.is_digit(8)) {
                        return Err(ApiError::BadRequest(format!(
                            "{prefix}mode: '{m}' is not an octal file mode"
                        )));
                    }
                }
                runtime_apis.push(RuntimeApi {
                    address: r.req_word("address")?,
                    level: r.one_of("level", &["user", "operator", "admin"])?,
                    mode,
                    expose_fd_listeners: r.opt("exposeFdListeners")?,
                });
            }
        }
        Ok(Global {
            daemon: f.one_of("daemon", ENABLED)?,
            maxconn: f.opt("maxconn")?,
            nbthread: f.opt("nbthread")?,
            pidfile: f.word("pidfile")?,
            chroot: f.word("chroot")?,
            user: f.word("user")?,
            group: f.word("group")?,
            hard_stop_after: f.opt("hard_stop_after")?,
            stats_timeout: f.opt("stats_timeout")?,
            runtime_apis,
        })
    }

    pub fn directives(&self) -> Directives {
        vec![
            key(
                "daemon",
                (self.daemon == Some("enabled"))
                    .then(|| "daemon".to_string())
                    .into_iter()
                    .collect(),
            ),
            one("maxconn", self.maxconn),
            one("nbthread", self.nbthread),
            one("pidfile", self.pidfile.as_ref()),
            one("chroot", self.chroot.as_ref()),
            one("user", self.user.as_ref()),
            one("group", self.group.as_ref()),
            one("hard-stop-after", self.hard_stop_after),
            one("stats timeout", self.stats_timeout),
            key(
                "stats socket",
                self.runtime_apis.iter().map(RuntimeApi::line).collect(),
            ),
        ]
    }
}

impl From<&LbGlobal> for Global {
    fn from(g: &LbGlobal) -> Self {
        let path = |p: &Option<std::path::PathBuf>| p.as_ref().map(|p| p.display().to_string());
        Global {
            daemon: Some(enabled(g.daemon)),
            maxconn: limit(g.maxconn),
            nbthread: g.nbthread,
            pidfile: path(&g.pidfile),
            chroot: path(&g.chroot),
            user: g.user.clone(),
            group: g.group.clone(),
            hard_stop_after: ms(g.hard_stop_after),
            stats_timeout: (g.stats_timeout != LbGlobal::default().stats_timeout)
                .then(|| ms(Some(g.stats_timeout)).unwrap_or(0)),
            runtime_apis: g
                .stats_sockets
                .iter()
                .map(|s| RuntimeApi {
                    address: s.path.display().to_string(),
                    level: Some(s.level.as_str()),
                    mode: s.mode.map(|m| format!("{m:o}")),
                    expose_fd_listeners: s.expose_fd_listeners.then_some(true),
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(o) => o,
            _ => Map::new(),
        }
    }

    #[test]
    fn errors_name_the_field() {
        let e = Backend::from_json(&obj(json!({"name": "b", "balance": {"algorithm": "nope"}})))
            .unwrap_err();
        assert!(e.to_string().starts_with("balance.algorithm:"), "{e}");
        let e = Frontend::from_json(&obj(json!({"name": "f", "maxconn": "x"}))).unwrap_err();
        assert!(e.to_string().starts_with("maxconn:"), "{e}");
        let e =
            Server::from_json(&obj(json!({"name": "s", "address": "a", "port": 0}))).unwrap_err();
        assert!(e.to_string().starts_with("port:"), "{e}");
        let e = Server::from_json(&obj(json!({"address": "a", "port": 1}))).unwrap_err();
        assert_eq!(e.to_string(), "name is required");
        let e = Frontend::from_json(&obj(json!({"name": "f\nbackend x"}))).unwrap_err();
        assert!(e.to_string().starts_with("name:"), "{e}");
    }

    #[test]
    fn server_lines() {
        let s = Server::from_json(&obj(
            json!({"name": "s", "address": "10.0.0.1", "port": 1514,
            "check": "enabled", "resolvers": "dns", "init-addr": "last,libc,none", "unknown": 1}),
        ))
        .unwrap();
        assert_eq!(
            s.line(),
            "server s 10.0.0.1:1514 check resolvers dns init-addr last,libc,none"
        );
        let old = Server::from_json(&obj(
            json!({"name": "s", "address": "10.0.0.1", "port": 1514,
            "check": "enabled", "weight": 1, "backup": "disabled"}),
        ))
        .unwrap();
        let words = ["server", "s", "10.0.0.1:1514", "check", "slowstart", "10s"];
        let mut new = old.clone();
        assert_eq!(
            new.updated_line(&old, &words),
            "server s 10.0.0.1:1514 check slowstart 10s"
        );
        new.check = Some("disabled");
        new.weight = Some(20);
        assert_eq!(
            new.updated_line(&old, &words),
            "server s 10.0.0.1:1514 slowstart 10s weight 20"
        );
        // Inherited check (default-server) is overridden.
        let words = ["server", "s", "10.0.0.1:1514"];
        new.weight = old.weight;
        assert_eq!(
            new.updated_line(&old, &words),
            "server s 10.0.0.1:1514 no-check"
        );
    }

    #[test]
    fn bind_lines() {
        let b = Bind::from_json(&obj(json!({"name": "f_bind", "port": 1514}))).unwrap();
        assert_eq!(b.line(), "bind :1514 name f_bind");
        let old = Bind {
            name: "0.0.0.0:80".into(),
            address: Some("0.0.0.0".into()),
            port: Some(80),
        };
        assert_eq!(
            old.clone().updated_line(&old, &["bind", ":80", "v4v6"]),
            "bind :80 v4v6"
        );
        let mut new = old.clone();
        new.port = Some(81);
        new.name = "web".into();
        assert_eq!(
            new.updated_line(&old, &["bind", ":80"]),
            "bind 0.0.0.0:81 name web"
        );
    }

    #[test]
    fn diff_keeps_equal_keys() {
        let old = Frontend {
            name: "f".into(),
            mode: Some("tcp"),
            maxconn: None,
            default_backend: Some("b".into()),
            client_timeout: Some(1000),
        };
        let mut new = old.clone();
        assert!(diff(&old.directives(), &new.directives()).is_empty());
        new.maxconn = Some(10);
        new.client_timeout = None;
        assert_eq!(
            diff(&old.directives(), &new.directives()),
            vec![
                key("maxconn", vec!["maxconn 10".into()]),
                key("timeout client", vec![])
            ]
        );
    }
}
