//! Turns the YAML tree into a [`DataplaneConf`], checking what dataplaneapi
//! would reject and warning about keys it would not know.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::crypt::{is_md5_crypt, looks_like_crypt};
use crate::error::{at, ConfError};
use crate::model::*;
use crate::node::{Node, Value};

/// Keys dataplaneapi (v2) knows in one section; a `None` child means
/// "accept anything below it": we do not model those sections.
struct Known(&'static [(&'static str, Option<&'static Known>)]);

const TOP: Known = Known(&[
    ("config_version", None),
    ("name", None),
    ("mode", None),
    ("status", None),
    ("dataplaneapi", Some(&DATAPLANEAPI)),
    ("haproxy", Some(&HAPROXY)),
    ("cluster", None),
    ("service_discovery", None),
    ("log", None),
    ("log_targets", None),
    ("syslog", None),
    ("deprecated_bootstrap_key", None),
]);

const DATAPLANEAPI: Known = Known(&[
    ("host", None),
    ("port", None),
    ("scheme", None),
    ("api_base_path", None),
    ("cleanup_timeout", None),
    ("graceful_timeout", None),
    ("max_header_size", None),
    ("socket_path", None),
    ("debug_socket_path", None),
    ("read_timeout", None),
    ("write_timeout", None),
    ("keep_alive", None),
    ("show_system_info", None),
    ("disable_inotify", None),
    ("pid_file", None),
    ("uid", None),
    ("gid", None),
    ("user", None),
    ("userlist", None),
    ("resources", None),
    ("advertised", None),
    ("transaction", Some(&TRANSACTION)),
    ("tls", Some(&TLS)),
]);

const TRANSACTION: Known = Known(&[
    ("transaction_dir", None),
    ("backups_number", None),
    ("backups_dir", None),
    ("max_open_transactions", None),
]);

const TLS: Known = Known(&[
    ("tls_host", None),
    ("tls_port", None),
    ("tls_certificate", None),
    ("tls_key", None),
    ("tls_ca", None),
    ("tls_listen_limit", None),
    ("tls_keep_alive", None),
    ("tls_read_timeout", None),
    ("tls_write_timeout", None),
]);

const HAPROXY: Known = Known(&[
    ("config_file", None),
    ("haproxy_bin", None),
    ("master_runtime", None),
    ("fid", None),
    ("master_worker_mode", None),
    ("node_ids_file", None),
    ("delayed_start_max_wait", None),
    ("reload", Some(&RELOAD)),
]);

const RELOAD: Known = Known(&[
    ("reload_delay", None),
    ("reload_cmd", None),
    ("restart_cmd", None),
    ("status_cmd", None),
    ("service_name", None),
    ("reload_retention", None),
    ("reload_strategy", None),
    ("validate_cmd", None),
    ("validate_config_file", None),
]);

const USER: &[&str] = &["name", "password", "insecure"];

struct Ctx<'a> {
    path: &'a Path,
    warnings: Vec<String>,
}

impl Ctx<'_> {
    fn invalid(&self, key: &str, line: u64, message: impl Into<String>) -> ConfError {
        ConfError::Invalid {
            path: self.path.to_path_buf(),
            line: (line > 0).then_some(line),
            key: key.to_owned(),
            message: message.into(),
        }
    }

    fn warn(&mut self, line: u64, message: String) {
        let where_ = at(self.path, (line > 0).then_some(line));
        self.warnings.push(format!("{where_}: {message}"));
    }

    fn check_keys(&mut self, node: &Node, prefix: &str, known: &Known) {
        let Value::Map(entries) = &node.value else {
            return;
        };
        for (key, child) in entries {
            let full = join(prefix, key);
            match known.0.iter().find(|(k, _)| k == key) {
                Some((_, Some(sub))) => self.check_keys(child, &full, sub),
                Some((_, None)) => {}
                None => self.warn(
                    child.line,
                    format!("{full}: unknown key, not used by dataplaneapi; ignored"),
                ),
            }
        }
    }

    /// The mapping at `key` under `parent`, if present; an error if it is
    /// something else than a mapping (an empty value counts as absent).
    fn section<'n>(
        &self,
        parent: Option<&'n Node>,
        prefix: &str,
        key: &str,
    ) -> Result<Option<&'n Node>, ConfError> {
        match parent.and_then(|p| p.get(key)) {
            None => Ok(None),
            Some(n) => match &n.value {
                Value::Map(_) => Ok(Some(n)),
                Value::Null => Ok(None),
                other => Err(self.invalid(
                    &join(prefix, key),
                    n.line,
                    format!("expected a mapping, got {}", other.kind()),
                )),
            },
        }
    }
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_owned()
    } else {
        format!("{prefix}.{key}")
    }
}

/// A scalar rendered as text: YAML reads `5555` or `true` as non-strings,
/// but a path, command or password may legitimately look like one.
fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::Str(s) => Some(s.clone()),
        Value::Int(i) => Some(i.to_string()),
        Value::Float(f) => Some(f.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn get_string(
    ctx: &Ctx,
    sec: Option<&Node>,
    prefix: &str,
    key: &str,
) -> Result<Option<String>, ConfError> {
    let Some(n) = sec.and_then(|s| s.get(key)) else {
        return Ok(None);
    };
    if n.value == Value::Null {
        return Ok(None);
    }
    match scalar_text(&n.value) {
        Some(s) => Ok(Some(s)),
        None => Err(ctx.invalid(
            &join(prefix, key),
            n.line,
            format!("expected a string, got {}", n.value.kind()),
        )),
    }
}

fn get_path(
    ctx: &Ctx,
    sec: Option<&Node>,
    prefix: &str,
    key: &str,
) -> Result<Option<PathBuf>, ConfError> {
    match get_string(ctx, sec, prefix, key)? {
        Some(s) if s.trim().is_empty() => {
            let line = sec.and_then(|s| s.get(key)).map_or(0, |n| n.line);
            Err(ctx.invalid(&join(prefix, key), line, "must not be empty"))
        }
        other => Ok(other.map(PathBuf::from)),
    }
}

/// An integer in `lo..=hi`; strings of digits are accepted because quoting
/// numbers is common in hand-written YAML.
fn get_int(
    ctx: &Ctx,
    sec: Option<&Node>,
    prefix: &str,
    key: &str,
    lo: i128,
    hi: i128,
) -> Result<Option<i128>, ConfError> {
    let Some(n) = sec.and_then(|s| s.get(key)) else {
        return Ok(None);
    };
    let full = join(prefix, key);
    let v = match &n.value {
        Value::Null => return Ok(None),
        Value::Int(i) => *i,
        Value::Str(s) => s
            .trim()
            .parse::<i128>()
            .map_err(|_| ctx.invalid(&full, n.line, format!("expected an integer, got `{s}`")))?,
        other => {
            return Err(ctx.invalid(
                &full,
                n.line,
                format!("expected an integer, got {}", other.kind()),
            ))
        }
    };
    if !(lo..=hi).contains(&v) {
        return Err(ctx.invalid(&full, n.line, format!("must be {lo}–{hi}, got {v}")));
    }
    Ok(Some(v))
}

fn get_port(
    ctx: &Ctx,
    sec: Option<&Node>,
    prefix: &str,
    key: &str,
) -> Result<Option<u16>, ConfError> {
    // The range check guarantees the conversion succeeds.
    Ok(get_int(ctx, sec, prefix, key, 1, 65535)?.and_then(|p| u16::try_from(p).ok()))
}

fn get_bool(ctx: &Ctx, sec: &Node, prefix: &str, key: &str) -> Result<Option<bool>, ConfError> {
    let Some(n) = sec.get(key) else {
        return Ok(None);
    };
    match &n.value {
        Value::Null => Ok(None),
        Value::Bool(b) => Ok(Some(*b)),
        other => Err(ctx.invalid(
            &join(prefix, key),
            n.line,
            format!("expected true or false, got {}", other.kind()),
        )),
    }
}

fn schemes(ctx: &Ctx, api: Option<&Node>) -> Result<(Vec<Scheme>, u64), ConfError> {
    let Some(n) = api.and_then(|a| a.get("scheme")) else {
        return Ok((vec![Scheme::Http], 0));
    };
    let items: Vec<&Node> = match &n.value {
        Value::Null => return Ok((vec![Scheme::Http], n.line)),
        Value::Seq(items) => items.iter().collect(),
        _ => vec![n],
    };
    let mut out = Vec::new();
    for item in items {
        let scheme = match &item.value {
            Value::Str(s) if s.eq_ignore_ascii_case("http") => Scheme::Http,
            Value::Str(s) if s.eq_ignore_ascii_case("https") => Scheme::Https,
            other => {
                let got = scalar_text(other)
                    .map_or_else(|| other.kind().to_owned(), |s| format!("`{s}`"));
                return Err(ctx.invalid(
                    "dataplaneapi.scheme",
                    item.line,
                    format!("expected http or https, got {got}"),
                ));
            }
        };
        if !out.contains(&scheme) {
            out.push(scheme);
        }
    }
    if out.is_empty() {
        out.push(Scheme::Http);
    }
    Ok((out, n.line))
}

fn tls(
    ctx: &mut Ctx,
    api: Option<&Node>,
    https: bool,
    scheme_line: u64,
) -> Result<Option<Tls>, ConfError> {
    const P: &str = "dataplaneapi.tls";
    let sec = ctx.section(api, "dataplaneapi", "tls")?;
    let port = get_port(ctx, sec, P, "tls_port")?;
    let cert = get_path(ctx, sec, P, "tls_certificate")?;
    let key = get_path(ctx, sec, P, "tls_key")?;
    let ca = get_path(ctx, sec, P, "tls_ca")?;
    let Some(sec) = sec else {
        return if https {
            Err(ctx.invalid(
                P,
                scheme_line,
                "scheme https needs a tls section with tls_port, tls_certificate and tls_key",
            ))
        } else {
            Ok(None)
        };
    };
    match (port, cert, key) {
        (Some(tls_port), Some(tls_certificate), Some(tls_key)) => Ok(Some(Tls {
            tls_port,
            tls_certificate,
            tls_key,
            tls_ca: ca,
        })),
        (port, cert, _) => {
            let missing = if port.is_none() {
                "tls_port"
            } else if cert.is_none() {
                "tls_certificate"
            } else {
                "tls_key"
            };
            if https {
                Err(ctx.invalid(
                    &join(P, missing),
                    sec.line,
                    "required when scheme includes https",
                ))
            } else {
                ctx.warn(
                    sec.line,
                    format!("{P}: incomplete ({missing} missing) and scheme has no https; ignored"),
                );
                Ok(None)
            }
        }
    }
}

fn users(ctx: &mut Ctx, api: Option<&Node>) -> Result<Vec<User>, ConfError> {
    const P: &str = "dataplaneapi.user";
    let node = api.and_then(|a| a.get("user"));
    let line = node.or(api).map_or(0, |n| n.line);
    let items = match node.map(|n| &n.value) {
        Some(Value::Seq(items)) => items.as_slice(),
        None | Some(Value::Null) => &[],
        Some(other) => {
            return Err(ctx.invalid(
                P,
                line,
                format!("expected a list of users, got {}", other.kind()),
            ))
        }
    };
    if items.is_empty() {
        return Err(ctx.invalid(P, line, "at least one user is required"));
    }
    let mut out: Vec<User> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let prefix = format!("{P}[{i}]");
        let Value::Map(entries) = &item.value else {
            return Err(ctx.invalid(
                &prefix,
                item.line,
                format!("expected a mapping, got {}", item.value.kind()),
            ));
        };
        for (k, v) in entries {
            if !USER.contains(&k.as_str()) {
                ctx.warn(
                    v.line,
                    format!("{prefix}.{k}: unknown key, not used by dataplaneapi; ignored"),
                );
            }
        }
        let name = get_string(ctx, Some(item), &prefix, "name")?.filter(|n| !n.trim().is_empty());
        let Some(name) = name else {
            return Err(ctx.invalid(
                &join(&prefix, "name"),
                item.line,
                "a non-empty user name is required",
            ));
        };
        if out.iter().any(|u| u.name == name) {
            return Err(ctx.invalid(
                &join(&prefix, "name"),
                item.line,
                format!("user `{name}` is defined twice"),
            ));
        }
        let insecure = get_bool(ctx, item, &prefix, "insecure")?.unwrap_or(false);
        let pw_key = join(&prefix, "password");
        let pw_line = item.get("password").map_or(item.line, |n| n.line);
        let pw = get_string(ctx, Some(item), &prefix, "password")?.unwrap_or_default();
        let password = if insecure {
            if pw.is_empty() {
                return Err(ctx.invalid(
                    &pw_key,
                    pw_line,
                    "must not be empty for an insecure (plain) password",
                ));
            }
            Password::Plain(pw)
        } else {
            if is_md5_crypt(&pw) {
                return Err(ctx.invalid(
                    &pw_key,
                    pw_line,
                    format!(
                        "user `{name}`: MD5-crypt ($1$) hashes are not supported; \
                         use a $6$, $5$ or bcrypt hash (e.g. `openssl passwd -6`)"
                    ),
                ));
            }
            if !looks_like_crypt(&pw) {
                return Err(ctx.invalid(
                    &pw_key,
                    pw_line,
                    "not a crypt hash ($5$, $6$ or $2y$); set `insecure: true` for a plain password",
                ));
            }
            Password::Hashed(pw)
        };
        out.push(User { name, password });
    }
    Ok(out)
}

/// Builds and validates the configuration from a parsed document.
pub(crate) fn build(
    root: &Node,
    path: &Path,
    warnings: Vec<String>,
) -> Result<DataplaneConf, ConfError> {
    let mut ctx = Ctx { path, warnings };
    match &root.value {
        Value::Map(_) => {}
        Value::Null => {
            return Err(ctx.invalid(
                "dataplaneapi",
                0,
                "the file is empty; a dataplaneapi section with at least one user is required",
            ))
        }
        other => {
            return Err(ctx.invalid(
                "(document)",
                root.line,
                format!("expected a mapping, got {}", other.kind()),
            ))
        }
    }
    ctx.check_keys(root, "", &TOP);

    let api = ctx.section(Some(root), "", "dataplaneapi")?;
    let host =
        get_string(&ctx, api, "dataplaneapi", "host")?.unwrap_or_else(|| DEFAULT_HOST.to_owned());
    if host.trim().is_empty() || host.contains(char::is_whitespace) {
        let line = api.and_then(|a| a.get("host")).map_or(0, |n| n.line);
        return Err(ctx.invalid(
            "dataplaneapi.host",
            line,
            format!("`{host}` is not an address or host name"),
        ));
    }
    let port = get_port(&ctx, api, "dataplaneapi", "port")?.unwrap_or(DEFAULT_PORT);
    let (schemes, scheme_line) = schemes(&ctx, api)?;
    let https = schemes.contains(&Scheme::Https);
    let tls = tls(
        &mut ctx,
        api,
        https,
        scheme_line.max(api.map_or(0, |a| a.line)),
    )?;
    let users = users(&mut ctx, api)?;

    const T: &str = "dataplaneapi.transaction";
    let tr = ctx.section(api, "dataplaneapi", "transaction")?;
    let transaction_dir = get_path(&ctx, tr, T, "transaction_dir")?
        .unwrap_or_else(|| PathBuf::from(DEFAULT_TRANSACTION_DIR));
    let max_open_transactions = get_int(
        &ctx,
        tr,
        T,
        "max_open_transactions",
        1,
        i128::from(u32::MAX),
    )?
    .and_then(|v| u32::try_from(v).ok())
    .unwrap_or(DEFAULT_MAX_OPEN_TRANSACTIONS);

    let hp = ctx.section(Some(root), "", "haproxy")?;
    let config_file = get_path(&ctx, hp, "haproxy", "config_file")?
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG_FILE));
    let haproxy_bin = get_path(&ctx, hp, "haproxy", "haproxy_bin")?;
    const R: &str = "haproxy.reload";
    let rl = ctx.section(hp, "haproxy", "reload")?;
    let reload_delay = get_int(&ctx, rl, R, "reload_delay", 0, 86_400)?
        .and_then(|v| u64::try_from(v).ok())
        .map_or(DEFAULT_RELOAD_DELAY, Duration::from_secs);
    let reload_cmd = get_string(&ctx, rl, R, "reload_cmd")?.filter(|c| !c.trim().is_empty());
    let restart_cmd = get_string(&ctx, rl, R, "restart_cmd")?.filter(|c| !c.trim().is_empty());

    Ok(DataplaneConf {
        path: path.to_path_buf(),
        host,
        port,
        schemes,
        tls,
        users,
        transaction_dir,
        max_open_transactions,
        config_file,
        haproxy_bin,
        reload_delay,
        reload_cmd,
        restart_cmd,
        warnings: ctx.warnings,
    })
}
