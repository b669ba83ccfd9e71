//! Known HAProxy keywords, how rampart treats them, and "did you mean" suggestions.
//!
//! Every keyword HAProxy 2.6–2.8 knows is either honoured, ignored with a
//! warning, or rejected with an alert: never silently dropped. Unknown words get
//! the nearest known keyword as a hint, like HAProxy does.

/// Section keywords rampart parses.
pub(crate) const SECTIONS: &[&str] = &["global", "defaults", "frontend", "backend", "listen"];

/// Other HAProxy sections: their whole body is skipped with one warning.
pub(crate) const IGNORED_SECTIONS: &[&str] = &[
    "userlist",
    "peers",
    "resolvers",
    "mailers",
    "program",
    "http-errors",
    "ring",
    "cache",
    "log-forward",
    "fcgi-app",
    "crt-store",
    "traces",
    "dynamic-update",
];

/// Whether `word` opens a section (one the parser reads or one it skips): a section runs
/// until the next such word at the start of a line.
pub fn is_section_keyword(word: &str) -> bool {
    SECTIONS.contains(&word) || IGNORED_SECTIONS.contains(&word)
}

/// Global keywords rampart honours.
pub(crate) const GLOBAL_HONOURED: &[&str] = &[
    "maxconn",
    "nbthread",
    "daemon",
    "pidfile",
    "chroot",
    "user",
    "group",
    "stats",
    "log",
    "log-tag",
    "setenv",
    "presetenv",
    "unsetenv",
    "resetenv",
    "hard-stop-after",
];

/// Global keywords that only tune HAProxy internals: accepted with a warning.
pub(crate) const GLOBAL_IGNORED: &[&str] = &[
    "51degrees-cache-size",
    "51degrees-data-file",
    "51degrees-property-name-list",
    "51degrees-property-separator",
    "anonkey",
    "busy-polling",
    "ca-base",
    "cluster-secret",
    "cpu-map",
    "crt-base",
    "debug",
    "default-path",
    "description",
    "expose-experimental-directives",
    "external-check",
    "fd-hard-limit",
    "gid",
    "grace",
    "h1-accept-payload-with-any-method",
    "h1-case-adjust",
    "h1-case-adjust-file",
    "h2-workaround-bogus-websocket-clients",
    "insecure-fork-wanted",
    "insecure-setuid-wanted",
    "issuers-chain-path",
    "key-base",
    "load-server-state-from-file",
    "localpeer",
    "log-send-hostname",
    "lua-load",
    "lua-load-per-thread",
    "lua-prepend-path",
    "master-worker",
    "max-spread-checks",
    "maxcompcpuusage",
    "maxcomprate",
    "maxconnrate",
    "maxpipes",
    "maxsessrate",
    "maxsslconn",
    "maxsslrate",
    "maxzlibmem",
    "mworker-max-reloads",
    "nbproc",
    "no-memory-trimming",
    "node",
    "noepoll",
    "noevports",
    "nogetaddrinfo",
    "nokqueue",
    "nopoll",
    "noreuseport",
    "nosplice",
    "numa-cpu-mapping",
    "pp2-never-send-local",
    "quiet",
    "server-state-base",
    "server-state-file",
    "set-dumpable",
    "set-var",
    "spread-checks",
    "ssl-default-bind-ciphers",
    "ssl-default-bind-ciphersuites",
    "ssl-default-bind-options",
    "ssl-default-server-ciphers",
    "ssl-default-server-ciphersuites",
    "ssl-default-server-options",
    "ssl-dh-param-file",
    "ssl-engine",
    "ssl-load-extra-files",
    "ssl-mode-async",
    "ssl-server-verify",
    "strict-limits",
    "thread-group",
    "thread-groups",
    "uid",
    "ulimit-n",
    "unix-bind",
    "wurfl-cache-size",
    "wurfl-data-file",
    "wurfl-information-list",
    "zero-warning",
];

/// Families of global keywords (`tune.bufsize`, `ssl-default-bind-curves`, …)
/// that are ignored with a warning.
pub(crate) const GLOBAL_IGNORED_PREFIXES: &[&str] = &[
    "tune.",
    "ssl-",
    "lua-",
    "httpclient.",
    "profiling.",
    "wurfl-",
    "51degrees-",
    "deviceatlas-",
    "ocsp-update.",
    "h2-",
];

/// Proxy keywords rampart honours (some only partly: see the parser).
pub(crate) const PROXY_HONOURED: &[&str] = &[
    "mode",
    "bind",
    "default_backend",
    "balance",
    "hash-type",
    "server",
    "default-server",
    "timeout",
    "maxconn",
    "retries",
    "option",
    "log",
    "id",
    "enabled",
    "contimeout",
    "clitimeout",
    "srvtimeout",
];

/// Proxy keywords accepted with a warning because rampart does not act on them.
pub(crate) const PROXY_IGNORED: &[&str] = &[
    "acl",
    "backlog",
    "bind-process",
    "capture",
    "clitcpka-cnt",
    "clitcpka-idle",
    "clitcpka-intvl",
    "compression",
    "cookie",
    "declare",
    "description",
    "disabled",
    "dynamic-cookie-key",
    "email-alert",
    "error-log-format",
    "errorfile",
    "errorfiles",
    "errorloc",
    "errorloc302",
    "errorloc303",
    "external-check",
    "filter",
    "force-persist",
    "fullconn",
    "grace",
    "guid",
    "hash-balance-factor",
    "http-after-response",
    "http-check",
    "http-error",
    "http-request",
    "http-response",
    "http-reuse",
    "http-send-name-header",
    "ignore-persist",
    "load-server-state-from-file",
    "log-format",
    "log-format-sd",
    "log-tag",
    "max-keep-alive-queue",
    "max-session-srv-conns",
    "monitor",
    "monitor-uri",
    "persist",
    "rate-limit",
    "redirect",
    "retry-on",
    "server-state-file-name",
    "source",
    "srvtcpka-cnt",
    "srvtcpka-idle",
    "srvtcpka-intvl",
    "stats",
    "stick",
    "stick-table",
    "tcp-check",
    "tcp-request",
    "tcp-response",
    "unique-id-format",
    "unique-id-header",
    "use-fcgi-app",
    "use-server",
    "use_backend",
];

/// Proxy keywords whose absence of support would change which servers get
/// traffic: rejected with an alert rather than ignored.
pub(crate) const PROXY_UNSUPPORTED: &[&str] = &["server-template", "dispatch", "transparent"];

/// `option` names rampart honours.
pub(crate) const OPTIONS_HONOURED: &[&str] = &[
    "tcplog",
    "httplog",
    "httpslog",
    "dontlognull",
    "redispatch",
    "allbackups",
];

/// `option` names that health-check differently than rampart's TCP connect.
pub(crate) const OPTIONS_CHECKS: &[&str] = &[
    "httpchk",
    "ssl-hello-chk",
    "smtpchk",
    "pgsql-check",
    "redis-check",
    "mysql-check",
    "ldap-check",
    "spop-check",
    "tcp-check",
    "external-check",
];

/// Other known `option` names: accepted with a warning.
pub(crate) const OPTIONS_IGNORED: &[&str] = &[
    "abortonclose",
    "accept-invalid-http-request",
    "accept-invalid-http-response",
    "checkcache",
    "clitcpka",
    "contstats",
    "disable-h2-upgrade",
    "dontlog-normal",
    "forwardfor",
    "h1-case-adjust-bogus-client",
    "h1-case-adjust-bogus-server",
    "http-buffer-request",
    "http-drop-request-trailers",
    "http-ignore-probes",
    "http-keep-alive",
    "http-no-delay",
    "http-pretend-keepalive",
    "http-restrict-req-hdr-names",
    "http-server-close",
    "http-use-proxy-header",
    "httpclose",
    "idle-close-on-response",
    "independent-streams",
    "log-health-checks",
    "log-separate-errors",
    "logasap",
    "nolinger",
    "originalto",
    "persist",
    "prefer-last-server",
    "socket-stats",
    "splice-auto",
    "splice-request",
    "splice-response",
    "srvtcpka",
    "tcp-smart-accept",
    "tcp-smart-connect",
    "tcpka",
    "transparent",
];

/// Timeouts rampart honours, with whether they need the frontend (true) or
/// backend (false) capability.
pub(crate) const TIMEOUTS_HONOURED: &[(&str, bool)] = &[
    ("client", true),
    ("client-fin", true),
    ("connect", false),
    ("server", false),
    ("queue", false),
    ("check", false),
    ("tunnel", false),
    ("server-fin", false),
];

/// HTTP-only timeouts: validated, then ignored with a warning.
pub(crate) const TIMEOUTS_IGNORED: &[&str] = &["http-request", "http-keep-alive", "tarpit"];

/// How a bind/server option word is handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Treat {
    /// Accepted with a warning: rampart does not act on it.
    Ignored,
    /// Accepted silently: it disables something rampart never does anyway.
    NoOp,
    /// Rejected with an alert: ignoring it would change what goes on the wire.
    Unsupported,
}

/// Bind options other than `name`: (keyword, number of arguments, treatment).
pub(crate) const BIND_OPTIONS: &[(&str, usize, Treat)] = &[
    ("accept-netscaler-cip", 1, Treat::Ignored),
    ("accept-proxy", 0, Treat::Ignored),
    ("allow-0rtt", 0, Treat::Ignored),
    ("alpn", 1, Treat::Ignored),
    ("backlog", 1, Treat::Ignored),
    ("ca-file", 1, Treat::Ignored),
    ("ca-ignore-err", 1, Treat::Ignored),
    ("ca-sign-file", 1, Treat::Ignored),
    ("ca-sign-pass", 1, Treat::Ignored),
    ("ca-verify-file", 1, Treat::Ignored),
    ("ciphers", 1, Treat::Ignored),
    ("ciphersuites", 1, Treat::Ignored),
    ("client-sigalgs", 1, Treat::Ignored),
    ("crl-file", 1, Treat::Ignored),
    ("crt", 1, Treat::Ignored),
    ("crt-ignore-err", 1, Treat::Ignored),
    ("crt-list", 1, Treat::Ignored),
    ("curves", 1, Treat::Ignored),
    ("defer-accept", 0, Treat::Ignored),
    ("ecdhe", 1, Treat::Ignored),
    ("expose-fd", 1, Treat::Ignored),
    ("force-sslv3", 0, Treat::Ignored),
    ("force-tlsv10", 0, Treat::Ignored),
    ("force-tlsv11", 0, Treat::Ignored),
    ("force-tlsv12", 0, Treat::Ignored),
    ("force-tlsv13", 0, Treat::Ignored),
    ("generate-certificates", 0, Treat::Ignored),
    ("gid", 1, Treat::Ignored),
    ("group", 1, Treat::Ignored),
    ("id", 1, Treat::Ignored),
    ("interface", 1, Treat::Ignored),
    ("level", 1, Treat::Ignored),
    ("maxconn", 1, Treat::Ignored),
    ("mode", 1, Treat::Ignored),
    ("mss", 1, Treat::Ignored),
    ("namespace", 1, Treat::Ignored),
    ("nbconn", 1, Treat::Ignored),
    ("nice", 1, Treat::Ignored),
    ("no-alpn", 0, Treat::NoOp),
    ("no-ca-names", 0, Treat::Ignored),
    ("no-sslv3", 0, Treat::Ignored),
    ("no-tls-tickets", 0, Treat::Ignored),
    ("no-tlsv10", 0, Treat::Ignored),
    ("no-tlsv11", 0, Treat::Ignored),
    ("no-tlsv12", 0, Treat::Ignored),
    ("no-tlsv13", 0, Treat::Ignored),
    ("npn", 1, Treat::Ignored),
    ("prefer-client-ciphers", 0, Treat::Ignored),
    ("process", 1, Treat::Ignored),
    ("proto", 1, Treat::Ignored),
    ("quic-cc-algo", 1, Treat::Ignored),
    ("quic-force-retry", 0, Treat::Ignored),
    ("severity-output", 1, Treat::Ignored),
    ("shards", 1, Treat::Ignored),
    ("sigalgs", 1, Treat::Ignored),
    ("ssl", 0, Treat::Unsupported),
    ("ssl-max-ver", 1, Treat::Ignored),
    ("ssl-min-ver", 1, Treat::Ignored),
    ("strict-sni", 0, Treat::Ignored),
    ("tcp-ut", 1, Treat::Ignored),
    ("tfo", 0, Treat::Ignored),
    ("thread", 1, Treat::Ignored),
    ("tls-ticket-keys", 1, Treat::Ignored),
    ("transparent", 0, Treat::Ignored),
    ("uid", 1, Treat::Ignored),
    ("user", 1, Treat::Ignored),
    ("v4v6", 0, Treat::Ignored),
    ("v6only", 0, Treat::Ignored),
    ("verify", 1, Treat::Ignored),
];

/// Server options parsed by hand in `server.rs` (all honoured, except `source`
/// which takes a variable number of arguments and is ignored with a warning).
pub(crate) const SERVER_HONOURED: &[&str] = &[
    "backup",
    "check",
    "disabled",
    "downinter",
    "enabled",
    "fall",
    "fastinter",
    "id",
    "inter",
    "maxconn",
    "maxqueue",
    "no-backup",
    "no-check",
    "port",
    "rise",
    "weight",
    "source",
];

/// Other server options: (keyword, number of arguments, treatment).
pub(crate) const SERVER_OPTIONS: &[(&str, usize, Treat)] = &[
    ("addr", 1, Treat::Ignored),
    ("agent-addr", 1, Treat::Ignored),
    ("agent-check", 0, Treat::Ignored),
    ("agent-inter", 1, Treat::Ignored),
    ("agent-port", 1, Treat::Ignored),
    ("agent-send", 1, Treat::Ignored),
    ("allow-0rtt", 0, Treat::Ignored),
    ("alpn", 1, Treat::Ignored),
    ("ca-file", 1, Treat::Ignored),
    ("check-alpn", 1, Treat::Ignored),
    ("check-proto", 1, Treat::Ignored),
    ("check-send-proxy", 0, Treat::Ignored),
    ("check-sni", 1, Treat::Ignored),
    ("check-ssl", 0, Treat::Ignored),
    ("check-via-socks4", 0, Treat::Ignored),
    ("ciphers", 1, Treat::Ignored),
    ("ciphersuites", 1, Treat::Ignored),
    ("client-sigalgs", 1, Treat::Ignored),
    ("cookie", 1, Treat::Ignored),
    ("crl-file", 1, Treat::Ignored),
    ("crt", 1, Treat::Ignored),
    ("curves", 1, Treat::Ignored),
    ("error-limit", 1, Treat::Ignored),
    ("force-sslv3", 0, Treat::Ignored),
    ("force-tlsv10", 0, Treat::Ignored),
    ("force-tlsv11", 0, Treat::Ignored),
    ("force-tlsv12", 0, Treat::Ignored),
    ("force-tlsv13", 0, Treat::Ignored),
    ("guid", 1, Treat::Ignored),
    ("hash-key", 1, Treat::Ignored),
    ("init-addr", 1, Treat::Ignored),
    ("log-bufsize", 1, Treat::Ignored),
    ("log-proto", 1, Treat::Ignored),
    ("max-reuse", 1, Treat::Ignored),
    ("minconn", 1, Treat::Ignored),
    ("namespace", 1, Treat::Ignored),
    ("no-agent-check", 0, Treat::NoOp),
    ("no-check-ssl", 0, Treat::NoOp),
    ("no-send-proxy", 0, Treat::NoOp),
    ("no-send-proxy-v2", 0, Treat::NoOp),
    ("no-send-proxy-v2-ssl", 0, Treat::NoOp),
    ("no-send-proxy-v2-ssl-cn", 0, Treat::NoOp),
    ("no-ssl", 0, Treat::NoOp),
    ("no-ssl-reuse", 0, Treat::NoOp),
    ("no-sslv3", 0, Treat::Ignored),
    ("no-tfo", 0, Treat::NoOp),
    ("no-tls-tickets", 0, Treat::Ignored),
    ("no-tlsv10", 0, Treat::Ignored),
    ("no-tlsv11", 0, Treat::Ignored),
    ("no-tlsv12", 0, Treat::Ignored),
    ("no-tlsv13", 0, Treat::Ignored),
    ("no-verifyhost", 0, Treat::Ignored),
    ("non-stick", 0, Treat::Ignored),
    ("npn", 1, Treat::Ignored),
    ("observe", 1, Treat::Ignored),
    ("on-error", 1, Treat::Ignored),
    ("on-marked-down", 1, Treat::Ignored),
    ("on-marked-up", 1, Treat::Ignored),
    ("pool-low-conn", 1, Treat::Ignored),
    ("pool-max-conn", 1, Treat::Ignored),
    ("pool-purge-delay", 1, Treat::Ignored),
    ("proto", 1, Treat::Ignored),
    ("redir", 1, Treat::Ignored),
    ("resolve-net", 1, Treat::Ignored),
    ("resolve-opts", 1, Treat::Ignored),
    ("resolve-prefer", 1, Treat::Ignored),
    ("resolvers", 1, Treat::Ignored),
    ("send-proxy", 0, Treat::Unsupported),
    ("send-proxy-v2", 0, Treat::Unsupported),
    ("send-proxy-v2-ssl", 0, Treat::Unsupported),
    ("send-proxy-v2-ssl-cn", 0, Treat::Unsupported),
    ("shard", 1, Treat::Ignored),
    ("sigalgs", 1, Treat::Ignored),
    ("slowstart", 1, Treat::Ignored),
    ("sni", 1, Treat::Ignored),
    ("socks4", 1, Treat::Unsupported),
    ("ssl", 0, Treat::Unsupported),
    ("ssl-max-ver", 1, Treat::Ignored),
    ("ssl-min-ver", 1, Treat::Ignored),
    ("ssl-reuse", 0, Treat::Ignored),
    ("stick", 0, Treat::Ignored),
    ("tcp-ut", 1, Treat::Ignored),
    ("tfo", 0, Treat::Ignored),
    ("tls-tickets", 0, Treat::Ignored),
    ("track", 1, Treat::Ignored),
    ("verify", 1, Treat::Ignored),
    ("verifyhost", 1, Treat::Ignored),
    ("ws", 1, Treat::Ignored),
];

/// Looks `word` up in an option table.
pub(crate) fn option_entry(
    table: &'static [(&'static str, usize, Treat)],
    word: &str,
) -> Option<(usize, Treat)> {
    table
        .iter()
        .find(|(name, _, _)| *name == word)
        .map(|&(_, nargs, treat)| (nargs, treat))
}

/// Whether `word` is a global keyword ignored with a warning.
pub(crate) fn is_ignored_global(word: &str) -> bool {
    GLOBAL_IGNORED.contains(&word) || GLOBAL_IGNORED_PREFIXES.iter().any(|p| word.starts_with(p))
}

/// The candidate closest to `word`, when it is close enough to be a typo.
///
/// Uses the optimal-string-alignment distance (a transposition costs 1, so
/// `tiemout` → `timeout`), and accepts up to a third of the word's length.
pub(crate) fn suggest<'a, I>(word: &str, candidates: I) -> Option<&'a str>
where
    I: IntoIterator<Item = &'a str>,
{
    let word_len = word.chars().count();
    let limit = (word_len / 3).clamp(1, 3);
    candidates
        .into_iter()
        .filter(|c| *c != word)
        .map(|c| (strsim::osa_distance(word, c), c))
        .filter(|&(d, _)| d <= limit)
        .min_by_key(|&(d, _)| d)
        .map(|(_, c)| c)
}

/// Candidate keywords for an unknown word in a proxy or defaults section.
pub(crate) fn proxy_candidates() -> impl Iterator<Item = &'static str> {
    PROXY_HONOURED
        .iter()
        .chain(PROXY_IGNORED)
        .chain(PROXY_UNSUPPORTED)
        .chain(SECTIONS)
        .chain(IGNORED_SECTIONS)
        .copied()
}

/// Candidate keywords for an unknown word in the global section.
pub(crate) fn global_candidates() -> impl Iterator<Item = &'static str> {
    GLOBAL_HONOURED
        .iter()
        .chain(GLOBAL_IGNORED)
        .chain(SECTIONS)
        .chain(IGNORED_SECTIONS)
        .copied()
}

/// Candidate names for an unknown `option`.
pub(crate) fn option_candidates() -> impl Iterator<Item = &'static str> {
    OPTIONS_HONOURED
        .iter()
        .chain(OPTIONS_CHECKS)
        .chain(OPTIONS_IGNORED)
        .copied()
}

/// Candidate keywords for an unknown word on a `server` line.
pub(crate) fn server_candidates() -> impl Iterator<Item = &'static str> {
    SERVER_HONOURED
        .iter()
        .copied()
        .chain(SERVER_OPTIONS.iter().map(|(k, _, _)| *k))
}

/// Candidate keywords for an unknown word on a `bind` line.
/// Alert for an unknown keyword on a `bind` or `stats socket` line, with a suggestion.
pub(crate) fn unknown_bind_keyword(who: &str, kw: &str, notes: &mut super::notes::Notes) {
    let hint = suggest(kw, bind_candidates())
        .map(|s| format!("; did you mean '{s}' maybe ?"))
        .unwrap_or_default();
    notes.alert(format!("'{who}' unknown keyword '{kw}'{hint}"));
}

pub(crate) fn bind_candidates() -> impl Iterator<Item = &'static str> {
    std::iter::once("name").chain(BIND_OPTIONS.iter().map(|(k, _, _)| *k))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_keywords() {
        assert_eq!(suggest("balanse", proxy_candidates()), Some("balance"));
        assert_eq!(suggest("tiemout", proxy_candidates()), Some("timeout"));
        assert_eq!(suggest("frontnd", proxy_candidates()), Some("frontend"));
        assert_eq!(
            suggest("defualt_backend", proxy_candidates()),
            Some("default_backend")
        );
        assert_eq!(suggest("maxcon", global_candidates()), Some("maxconn"));
        assert_eq!(suggest("chek", server_candidates()), Some("check"));
        assert_eq!(
            suggest("redispach", option_candidates()),
            Some("redispatch")
        );
    }

    #[test]
    fn no_suggestion_when_far() {
        assert_eq!(suggest("zzzzzzzz", proxy_candidates()), None);
        assert_eq!(suggest("x", global_candidates()), None);
        assert_eq!(suggest("", proxy_candidates()), None);
    }

    #[test]
    fn tables_have_no_duplicates_or_overlaps() {
        let mut all: Vec<&str> = proxy_candidates().collect();
        let n = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), n, "proxy keyword tables overlap");

        let mut opts: Vec<&str> = option_candidates().collect();
        let n = opts.len();
        opts.sort_unstable();
        opts.dedup();
        assert_eq!(opts.len(), n, "option tables overlap");

        let mut srv: Vec<&str> = server_candidates().collect();
        let n = srv.len();
        srv.sort_unstable();
        srv.dedup();
        assert_eq!(srv.len(), n, "server tables overlap");

        let mut glob: Vec<&str> = GLOBAL_HONOURED
            .iter()
            .chain(GLOBAL_IGNORED)
            .copied()
            .collect();
        let n = glob.len();
        glob.sort_unstable();
        glob.dedup();
        assert_eq!(glob.len(), n, "global tables overlap");
    }

    #[test]
    fn ignored_globals_include_prefix_families() {
        assert!(is_ignored_global("tune.bufsize"));
        assert!(is_ignored_global("ssl-default-bind-curves"));
        assert!(is_ignored_global("nbproc"));
        assert!(!is_ignored_global("maxconn"));
    }

    #[test]
    fn option_table_lookup() {
        assert_eq!(
            option_entry(BIND_OPTIONS, "ssl"),
            Some((0, Treat::Unsupported))
        );
        assert_eq!(
            option_entry(BIND_OPTIONS, "backlog"),
            Some((1, Treat::Ignored))
        );
        assert_eq!(
            option_entry(SERVER_OPTIONS, "no-ssl"),
            Some((0, Treat::NoOp))
        );
        assert_eq!(option_entry(SERVER_OPTIONS, "check"), None);
    }
}
