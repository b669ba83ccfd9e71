//! HAProxy configuration parsing: every supported directive, inheritance,
//! multi-file loading, diagnostics with exact locations, and `-c` reports.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use lb::config::{
    check_report, load_files, parse_server_spec, parse_sources_with, parse_str, Algorithm, Config,
    ConfigError, HashType, Level, LogAddr, LogFormat, Mode, Redispatch, Severity,
};

/// Tests never touch DNS: a name reaching the resolver is a test bug.
fn no_dns(host: &str) -> Vec<IpAddr> {
    panic!("unexpected DNS lookup of '{host}'");
}

fn parse(text: &str) -> Result<Config, ConfigError> {
    parse_sources_with(&[("t.cfg".to_string(), text.to_string())], &no_dns)
}

fn ok(text: &str) -> Config {
    parse(text).unwrap_or_else(|e| panic!("unexpected failure:\n{e}"))
}

/// All diagnostics of a failed parse, rendered as HAProxy prints them.
fn fail(text: &str) -> Vec<String> {
    match parse(text) {
        Ok(c) => panic!("expected failure, got {c:#?}"),
        Err(e) => e.diagnostics.iter().map(ToString::to_string).collect(),
    }
}

fn warnings(cfg: &Config) -> Vec<String> {
    cfg.warnings.iter().map(ToString::to_string).collect()
}

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn contains(lines: &[String], needle: &str) -> bool {
    lines.iter().any(|l| l.contains(needle))
}

/// A minimal valid TCP setup with all timeouts, to which tests append lines.
const BASE: &str =
    "defaults\n  mode tcp\n  timeout connect 5s\n  timeout client 30s\n  timeout server 30s\n";

// ---------------------------------------------------------------- fixtures

#[test]
fn wazuh_fixture_parses() {
    let cfg = ok(include_str!("fixtures/wazuh.cfg"));
    // Only the privilege directives rampart does not apply are mentioned.
    let w = warnings(&cfg);
    assert_eq!(w.len(), 3, "{w:?}");
    for (i, (line, kw)) in [(2, "chroot"), (5, "user"), (6, "group")]
        .iter()
        .enumerate()
    {
        let want = format!(
            "[WARNING] config : parsing [t.cfg:{line}] : '{kw}' is accepted but not applied"
        );
        assert!(w[i].starts_with(&want), "{want} vs {}", w[i]);
    }

    let g = &cfg.global;
    assert_eq!(g.chroot, Some(PathBuf::from("/var/lib/haproxy")));
    assert_eq!(g.pidfile, Some(PathBuf::from("/var/run/haproxy.pid")));
    assert_eq!(g.maxconn, 4000);
    assert_eq!(
        (g.user.as_deref(), g.group.as_deref()),
        (Some("haproxy"), Some("haproxy"))
    );
    assert_eq!(g.stats_sockets.len(), 1);
    assert_eq!(
        g.stats_sockets[0].path,
        PathBuf::from("/var/lib/haproxy/stats")
    );
    assert_eq!(g.stats_sockets[0].level, Level::Admin);
    assert_eq!(g.stats_sockets[0].loc.line, 7);
    assert_eq!(g.logs.len(), 1);
    assert_eq!(g.logs[0].addr, LogAddr::Udp(sa("127.0.0.1:514")));
    assert_eq!((g.logs[0].facility, g.logs[0].max_level), (18, 6));

    let names: Vec<_> = cfg
        .frontends
        .iter()
        .map(|f| (f.name.as_str(), f.id))
        .collect();
    assert_eq!(names, [("wazuh_register", 1), ("wazuh_reporting_front", 3)]);
    let names: Vec<_> = cfg
        .backends
        .iter()
        .map(|b| (b.name.as_str(), b.id))
        .collect();
    assert_eq!(names, [("wazuh_register", 2), ("wazuh_reporting", 4)]);

    let fe = cfg.frontend("wazuh_register").unwrap();
    assert_eq!(fe.mode, Mode::Tcp);
    assert_eq!(fe.binds.len(), 1);
    assert_eq!(fe.binds[0].addr, sa("0.0.0.0:1515"));
    assert_eq!(fe.binds[0].name, None);
    assert_eq!(fe.default_backend.as_deref(), Some("wazuh_register"));
    // Inherited from defaults.
    assert_eq!(fe.maxconn, 4000);
    assert_eq!(fe.timeouts.client, Some(Duration::from_secs(60)));
    assert!(fe.log_options.tcplog && fe.log_options.dontlognull && !fe.log_options.httplog);
    assert_eq!(fe.logs, g.logs);
    assert!(!fe.from_listen);

    let fe2 = cfg.frontend("wazuh_reporting_front").unwrap();
    assert_eq!(fe2.binds[0].addr, sa("0.0.0.0:1514"));
    assert_eq!(
        fe2.binds[0].name.as_deref(),
        Some("wazuh_reporting_front_bind")
    );
    assert_eq!(fe2.binds[0].loc.line, 39);

    let be = cfg.backend("wazuh_register").unwrap();
    assert_eq!((be.mode, be.algorithm), (Mode::Tcp, Algorithm::LeastConn));
    assert_eq!(be.retries, 3);
    assert_eq!(be.redispatch, Some(Redispatch { interval: -1 }));
    assert_eq!(be.timeouts.connect, Some(Duration::from_secs(10)));
    assert_eq!(be.timeouts.server, Some(Duration::from_secs(60)));
    assert_eq!(be.timeouts.queue, Some(Duration::from_secs(60)));
    assert_eq!(be.timeouts.check, Some(Duration::from_secs(10)));
    let servers: Vec<_> = be
        .servers
        .iter()
        .map(|s| (s.name.as_str(), s.id, s.addr, s.settings.check))
        .collect();
    assert_eq!(
        servers,
        [
            ("master", 1, sa("127.0.0.1:1515"), true),
            ("worker1", 2, sa("127.0.0.2:1515"), true),
            ("workern", 3, sa("127.0.0.3:1515"), true),
        ]
    );
    let s = &be.servers[0];
    assert_eq!(
        (
            s.settings.inter,
            s.settings.rise,
            s.settings.fall,
            s.settings.weight
        ),
        (Duration::from_secs(2), 2, 3, 1)
    );
    assert_eq!((s.host.as_str(), s.loc.line), ("127.0.0.1", 32));

    let be2 = cfg.backend("wazuh_reporting").unwrap();
    let names: Vec<_> = be2.servers.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["master", "worker1", "worker2"]);
}

#[test]
fn keepalived_fixture_parses() {
    let cfg = ok(include_str!("fixtures/haproxy-keepalived.cfg"));
    let w: Vec<String> = warnings(&cfg)
        .into_iter()
        .filter(|w| !w.contains("is accepted but not applied"))
        .collect();
    assert_eq!(
        warnings(&cfg).len(),
        w.len() + 3,
        "chroot, user and group are warned"
    );
    assert_eq!(
        w,
        [
            "[WARNING] config : parsing [t.cfg:21] : proxy 'www' uses 'mode http': rampart serves it as TCP passthrough until HTTP support lands (no per-request balancing, no httplog fields)",
            "[WARNING] config : parsing [t.cfg:25] : proxy 'my_backend' uses 'mode http': rampart serves it as TCP passthrough until HTTP support lands (no per-request balancing, no httplog fields)",
        ]
    );
    let g = &cfg.global;
    assert!(g.daemon);
    assert_eq!(g.stats_timeout, Duration::from_secs(30));
    let sock = &g.stats_sockets[0];
    assert_eq!(sock.path, PathBuf::from("/run/haproxy/admin.sock"));
    assert_eq!((sock.mode, sock.level), (Some(0o660), Level::Admin));
    let logs: Vec<_> = g
        .logs
        .iter()
        .map(|l| (&l.addr, l.facility, l.max_level))
        .collect();
    let dev_log = LogAddr::Unix("/dev/log".into());
    assert_eq!(logs, [(&dev_log, 16, 7), (&dev_log, 17, 5)]);

    let fe = cfg.frontend("www").unwrap();
    assert_eq!(fe.mode, Mode::Http);
    assert_eq!(fe.binds[0].addr, sa("0.0.0.0:80"));
    assert_eq!(fe.default_backend.as_deref(), Some("my_backend"));
    assert_eq!(fe.timeouts.client, Some(Duration::from_millis(50_000)));
    assert!(fe.log_options.httplog && fe.log_options.dontlognull);
    assert_eq!(fe.logs.len(), 2);
    assert_eq!(fe.maxconn, 0);

    let be = cfg.backend("my_backend").unwrap();
    assert_eq!((be.mode, be.algorithm), (Mode::Http, Algorithm::RoundRobin));
    assert_eq!(be.timeouts.connect, Some(Duration::from_millis(5000)));
    // HAProxy: without `timeout queue`, the connect timeout applies.
    assert_eq!(be.timeouts.queue, Some(Duration::from_millis(5000)));
    let addrs: Vec<_> = be
        .servers
        .iter()
        .map(|s| (s.name.as_str(), s.addr))
        .collect();
    assert_eq!(
        addrs,
        [
            ("server1", sa("192.168.1.101:80")),
            ("server2", sa("192.168.1.102:80"))
        ]
    );
}

#[test]
fn fixtures_load_from_disk_with_file_names() {
    let path = fixture("wazuh.cfg");
    let cfg = load_files(std::slice::from_ref(&path)).unwrap();
    assert_eq!(cfg.backends.len(), 2);
    assert_eq!(
        &*cfg.backends[0].servers[0].loc.file,
        path.display().to_string()
    );
    let (report, code) = check_report(&Ok(cfg), &[path]);
    assert_eq!(code, 0);
    assert!(
        report.ends_with("\nConfiguration file is valid\n"),
        "{report}"
    );
}

#[test]
fn wazuh_doc_snippets() {
    let backend = "backend wazuh_register\n   mode tcp\n   balance leastconn\n   server master_node 127.0.0.1:1515 check\n";
    let frontend =
        "frontend wazuh_register\n   mode tcp\n   bind :1515\n   default_backend wazuh_register\n";

    // The backend alone is valid (only a timeout warning).
    let cfg = ok(backend);
    assert_eq!(cfg.backends[0].servers[0].name, "master_node");
    assert_eq!(cfg.backends[0].algorithm, Algorithm::LeastConn);
    assert!(contains(
        &warnings(&cfg),
        "missing timeouts for backend 'wazuh_register'."
    ));

    // The frontend alone points at a backend that does not exist.
    let errs = fail(frontend);
    assert!(errs.contains(&"[ALERT] config : parsing [t.cfg:4] : Proxy 'wazuh_register': unable to find required default_backend: 'wazuh_register'.".to_string()), "{errs:#?}");

    // Both, as two -f files in either order.
    for order in [[frontend, backend], [backend, frontend]] {
        let sources: Vec<_> = order
            .iter()
            .enumerate()
            .map(|(i, t)| (format!("f{i}.cfg"), t.to_string()))
            .collect();
        let cfg = parse_sources_with(&sources, &no_dns).unwrap();
        assert_eq!(
            cfg.frontends[0].default_backend.as_deref(),
            Some("wazuh_register")
        );
    }
}

// ---------------------------------------------------------------- lexing

#[test]
fn quotes_escapes_comments_and_crlf() {
    let text = "global\r\n  pidfile \"/run/my dir/h.pid\" # comment\r\n  user 'ha proxy'\r\n  group ha\\ group\r\n  log-tag tag\\#1 #real comment\r\n";
    let g = ok(text).global;
    assert_eq!(g.pidfile, Some(PathBuf::from("/run/my dir/h.pid")));
    assert_eq!(g.user.as_deref(), Some("ha proxy"));
    assert_eq!(g.group.as_deref(), Some("ha group"));
    assert_eq!(g.log_tag, "tag#1");
}

#[test]
fn environment_variables_expand_in_double_quotes() {
    std::env::set_var("RAMPART_CFG_TEST_ADDR", "127.0.0.9");
    let cfg = ok(&format!(
        "{BASE}global\n  setenv PORT 7000\n  presetenv PORT 9999\n  user \"${{UNSET_RAMPART_VAR-nobody}}\"\n  group '$PORT'\nbackend b\n  server s \"${{RAMPART_CFG_TEST_ADDR}}:$PORT\"\n"
    ));
    assert_eq!(cfg.backends[0].servers[0].addr, sa("127.0.0.9:7000"));
    assert_eq!(cfg.global.user.as_deref(), Some("nobody"));
    assert_eq!(cfg.global.group.as_deref(), Some("$PORT"));
}

#[test]
fn unset_variable_gives_empty_argument_alert() {
    let errs = fail("global\n  user \"${RAMPART_SURELY_UNSET_VAR}\" x\n");
    assert_eq!(
        errs,
        ["[ALERT] config : parsing [t.cfg:2] : argument number 1 is empty and marks the end of the argument list (an unset environment variable?)."]
    );
}

#[test]
fn lexer_errors_are_located() {
    let errs = fail("global\n  user \"abc\n  group 'x\n");
    assert_eq!(
        errs,
        [
            "[ALERT] config : parsing [t.cfg:2] : unmatched quote at position 8",
            "[ALERT] config : parsing [t.cfg:3] : unmatched quote at position 9",
        ]
    );
}

// ---------------------------------------------------------------- global

#[test]
fn global_directives() {
    let cfg = ok("global\n  maxconn 100\n  nbthread 4\n  daemon\n  log-tag rampart\n  stats timeout 1m\n  stats socket /run/a.sock\n  stats socket unix@/run/b.sock level user mode 600 expose-fd listeners\n  stats socket /run/c.sock level operator\n  log stdout format raw daemon\n  log stderr local7 err\n  log udp@[::1]:1514 len 4096 format rfc5424 local0 info notice\n");
    let g = &cfg.global;
    assert_eq!((g.maxconn, g.nbthread, g.daemon), (100, Some(4), true));
    assert_eq!(g.log_tag, "rampart");
    assert_eq!(g.stats_timeout, Duration::from_secs(60));
    let socks: Vec<_> = g
        .stats_sockets
        .iter()
        .map(|s| {
            (
                s.path.to_str().unwrap(),
                s.level,
                s.mode,
                s.expose_fd_listeners,
            )
        })
        .collect();
    assert_eq!(
        socks,
        [
            // HAProxy's default level is "operator".
            ("/run/a.sock", Level::Operator, None, false),
            ("/run/b.sock", Level::User, Some(0o600), true),
            ("/run/c.sock", Level::Operator, None, false),
        ]
    );
    assert_eq!(
        (&g.logs[0].addr, g.logs[0].format, g.logs[0].facility),
        (&LogAddr::Stdout, LogFormat::Raw, 3)
    );
    assert_eq!(
        (&g.logs[1].addr, g.logs[1].facility, g.logs[1].max_level),
        (&LogAddr::Stderr, 23, 3)
    );
    let l = &g.logs[2];
    assert_eq!(l.addr, LogAddr::Udp(sa("[::1]:1514")));
    assert_eq!(
        (l.max_len, l.format, l.facility, l.max_level, l.min_level),
        (4096, LogFormat::Rfc5424, 16, 6, 5)
    );
    assert!(cfg.warnings.is_empty());
}

#[test]
fn global_defaults_are_haproxy_ones() {
    let g = ok("global\n").global;
    assert_eq!((g.maxconn, g.nbthread, g.daemon), (0, None, false));
    assert_eq!(g.stats_timeout, Duration::from_secs(10));
    assert_eq!(g.log_tag, "haproxy");
}

#[test]
fn global_internals_are_ignored_with_warnings() {
    let cfg = ok("global\n  tune.bufsize 32768\n  ssl-default-bind-ciphers ECDHE\n  nbproc 2\n  cpu-map auto:1/1-4 0-3\n  master-worker\n  hard-stop-after 30s\n  lua-load /x.lua\n  setenv A b\n  ulimit-n 1000\n  stats maxconn 10\n");
    assert_eq!(
        warnings(&cfg),
        [
            "[WARNING] config : parsing [t.cfg:2] : 'tune.bufsize' is ignored by rampart.",
            "[WARNING] config : parsing [t.cfg:3] : 'ssl-default-bind-ciphers' is ignored by rampart.",
            "[WARNING] config : parsing [t.cfg:4] : 'nbproc' is ignored by rampart.",
            "[WARNING] config : parsing [t.cfg:5] : 'cpu-map' is ignored by rampart.",
            "[WARNING] config : parsing [t.cfg:6] : 'master-worker' is ignored by rampart.",
            "[WARNING] config : parsing [t.cfg:8] : 'lua-load' is ignored by rampart.",
            "[WARNING] config : parsing [t.cfg:10] : 'ulimit-n' is ignored by rampart.",
            "[WARNING] config : parsing [t.cfg:11] : 'stats maxconn' is ignored by rampart.",
        ]
    );
    assert_eq!(
        cfg.global.hard_stop_after,
        Some(std::time::Duration::from_secs(30))
    );
}

#[test]
fn global_errors() {
    let errs = fail("global\n  maxcon 10\n  nbthread 0\n  maxconn lots\n  stats socket 127.0.0.1:9999\n  stats socket /x level root\n  stats socket /x mode 999\n  stats timeout 0\n  log 1.2.3.4 local99\n  log global\n  daemon now\n  stats socket /x ssl crt /c.pem\n");
    assert_eq!(
        errs,
        [
            "[ALERT] config : parsing [t.cfg:2] : unknown keyword 'maxcon' in 'global' section; did you mean 'maxconn' maybe ?",
            "[ALERT] config : parsing [t.cfg:3] : 'nbthread' must be between 1 and 4096 (was 0).",
            "[ALERT] config : parsing [t.cfg:4] : 'maxconn' expects an integer argument: 'lots' is not a valid unsigned integer.",
            "[ALERT] config : parsing [t.cfg:5] : 'stats socket 127.0.0.1:9999' : only absolute Unix socket paths are supported by rampart.",
            "[ALERT] config : parsing [t.cfg:6] : 'level' only supports 'user', 'operator', and 'admin'.",
            "[ALERT] config : parsing [t.cfg:7] : 'stats socket /x' : 'mode' expects an octal file mode, got '999'.",
            "[ALERT] config : parsing [t.cfg:8] : 'stats timeout' expects a positive value.",
            "[ALERT] config : parsing [t.cfg:9] : unknown log facility 'local99'.",
            "[ALERT] config : parsing [t.cfg:10] : 'log global' is only allowed in defaults, frontend, backend and listen sections.",
            "[ALERT] config : parsing [t.cfg:11] : 'daemon' cannot handle unexpected argument 'now'.",
            "[ALERT] config : parsing [t.cfg:12] : 'stats socket /x' : 'ssl' is not yet supported by rampart.",
            "[WARNING] config : parsing [t.cfg:12] : 'stats socket /x' : 'crt' is ignored by rampart.",
        ]
    );
}

// ---------------------------------------------------------------- bind

#[test]
fn bind_address_forms() {
    let cfg = ok(&format!(
        "{BASE}frontend f\n  bind :80\n  bind *:81 name web\n  bind [::]:443\n  bind ipv6@:444\n  bind 127.0.0.1:8000-8002,10.0.0.1:9000\n  bind :::8443 v4v6\n  default_backend b\nbackend b\n"
    ));
    let fe = &cfg.frontends[0];
    let addrs: Vec<_> = fe
        .binds
        .iter()
        .map(|b| (b.addr, b.name.as_deref(), b.loc.line))
        .collect();
    assert_eq!(
        addrs,
        [
            (sa("0.0.0.0:80"), None, 7),
            (sa("0.0.0.0:81"), Some("web"), 8),
            (sa("[::]:443"), None, 9),
            (sa("[::]:444"), None, 10),
            (sa("127.0.0.1:8000"), None, 11),
            (sa("127.0.0.1:8001"), None, 11),
            (sa("127.0.0.1:8002"), None, 11),
            (sa("10.0.0.1:9000"), None, 11),
            (sa("[::]:8443"), None, 12),
        ]
    );
    assert_eq!(
        warnings(&cfg),
        ["[WARNING] config : parsing [t.cfg:12] : 'bind :::8443' : 'v4v6' is ignored by rampart."]
    );
}

#[test]
fn bind_options_warn_or_alert() {
    let cfg = ok(&format!(
        "{BASE}frontend f\n  bind :80 transparent defer-accept accept-proxy maxconn 10 backlog 64 name x\n  default_backend b\nbackend b\n"
    ));
    let w = warnings(&cfg);
    for kw in [
        "transparent",
        "defer-accept",
        "accept-proxy",
        "maxconn",
        "backlog",
    ] {
        assert!(
            contains(&w, &format!("'bind :80' : '{kw}' is ignored by rampart.")),
            "{kw}: {w:#?}"
        );
    }
    assert_eq!(cfg.frontends[0].binds[0].name.as_deref(), Some("x"));

    let errs = fail(&format!("{BASE}frontend f\n  bind :443 ssl crt /etc/x.pem\n  bind :80 nme x\n  bind /run/x.sock\n  bind 1.2.3.4\n  bind :80 backlog\n  default_backend b\nbackend b\n"));
    assert!(contains(&errs, "[t.cfg:7] : 'bind :443' : 'ssl' is not yet supported by rampart (TLS termination comes with HTTP support)."), "{errs:#?}");
    assert!(contains(
        &errs,
        "[t.cfg:8] : 'bind :80' unknown keyword 'nme'; did you mean 'name' maybe ?"
    ));
    assert!(contains(&errs, "[t.cfg:9] : 'bind /run/x.sock' : '/run/x.sock': Unix socket listeners are not supported by rampart."));
    assert!(contains(
        &errs,
        "[t.cfg:10] : 'bind 1.2.3.4' : missing port specification in '1.2.3.4'."
    ));
    assert!(contains(
        &errs,
        "[t.cfg:11] : 'bind :80' : missing argument for 'backlog'."
    ));
}

// ---------------------------------------------------------------- proxies

#[test]
fn proxy_keywords() {
    let cfg = ok(&format!(
        "{BASE}frontend f\n  mode tcp\n  bind :80\n  maxconn 500\n  timeout client-fin 3s\n  default_backend b\nbackend b\n  balance static-rr\n  hash-type consistent\n  retries 5\n  option redispatch 2\n  option allbackups\n  timeout queue 7s\n  timeout check 2s\n  timeout tunnel 1h\n  timeout server-fin 4s\n  server s 10.0.0.1:22\n"
    ));
    let fe = &cfg.frontends[0];
    assert_eq!(fe.maxconn, 500);
    assert_eq!(fe.timeouts.client_fin, Some(Duration::from_secs(3)));
    let be = &cfg.backends[0];
    assert_eq!(
        (be.algorithm, be.hash_type, be.retries),
        (Algorithm::StaticRr, HashType::Consistent, 5)
    );
    assert_eq!(be.redispatch, Some(Redispatch { interval: 2 }));
    assert!(be.allbackups);
    let t = be.timeouts;
    assert_eq!(t.queue, Some(Duration::from_secs(7)));
    assert_eq!(t.check, Some(Duration::from_secs(2)));
    assert_eq!(t.tunnel, Some(Duration::from_secs(3600)));
    assert_eq!(t.server_fin, Some(Duration::from_secs(4)));
    assert!(cfg.warnings.is_empty(), "{:#?}", cfg.warnings);
}

#[test]
fn every_balance_algorithm() {
    for (word, algo) in [
        ("roundrobin", Algorithm::RoundRobin),
        ("static-rr", Algorithm::StaticRr),
        ("leastconn", Algorithm::LeastConn),
        ("first", Algorithm::First),
        ("source", Algorithm::Source),
    ] {
        let cfg = ok(&format!("{BASE}backend b\n  balance {word}\n"));
        assert_eq!(cfg.backends[0].algorithm, algo);
    }
    for word in [
        "random",
        "uri",
        "url_param userid",
        "hdr(host)",
        "rdp-cookie",
        "hash req.hdr(host)",
    ] {
        let errs = fail(&format!("{BASE}backend b\n  balance {word}\n"));
        let first = word.split(' ').next().unwrap_or(word);
        assert_eq!(
            errs,
            [format!("[ALERT] config : parsing [t.cfg:7] : 'balance {first}' is not supported by rampart yet (supported: roundrobin, static-rr, leastconn, first, source).")]
        );
    }
    assert!(contains(
        &fail(&format!("{BASE}backend b\n  balance fastest\n")),
        "'balance' only supports"
    ));
}

#[test]
fn hash_type_forms() {
    let cfg = ok(&format!(
        "{BASE}backend b\n  balance source\n  hash-type map-based sdbm\n"
    ));
    assert_eq!(cfg.backends[0].hash_type, HashType::MapBased);
    let cfg = ok(&format!(
        "{BASE}backend b\n  hash-type consistent djb2 avalanche\n"
    ));
    assert_eq!(cfg.backends[0].hash_type, HashType::Consistent);
    assert_eq!(
        warnings(&cfg),
        [
            "[WARNING] config : parsing [t.cfg:7] : 'hash-type' function 'djb2' is ignored by rampart.",
            "[WARNING] config : parsing [t.cfg:7] : 'hash-type' function 'avalanche' is ignored by rampart.",
        ]
    );
    assert!(contains(
        &fail(&format!("{BASE}backend b\n  hash-type ring\n")),
        "'hash-type' expects 'map-based' or 'consistent'"
    ));
}

#[test]
fn server_keywords_and_default_server() {
    let cfg = ok(&format!(
        "{BASE}  default-server inter 3s rise 3\nbackend b\n  default-server fall 4 weight 10 check\n  server a 10.0.0.1:80\n  server b 10.0.0.2:80 inter 1s fastinter 100ms downinter 5s rise 1 fall 1 port 9000 weight 0 maxconn 50 maxqueue 5 backup disabled no-check\n  server c [2001:db8::1]:443 enabled\n  default-server weight 20\n  server d 10.0.0.4:80\n"
    ));
    let be = &cfg.backends[0];
    let a = &be.servers[0];
    assert_eq!(
        (
            a.settings.inter,
            a.settings.rise,
            a.settings.fall,
            a.settings.weight,
            a.settings.check
        ),
        (Duration::from_secs(3), 3, 4, 10, true)
    );
    let b = &be.servers[1];
    assert_eq!(
        (b.settings.inter, b.settings.fastinter, b.settings.downinter),
        (
            Duration::from_secs(1),
            Some(Duration::from_millis(100)),
            Some(Duration::from_secs(5))
        )
    );
    assert_eq!(
        (
            b.settings.rise,
            b.settings.fall,
            b.settings.check_port,
            b.settings.weight
        ),
        (1, 1, Some(9000), 0)
    );
    assert_eq!(
        (
            b.settings.maxconn,
            b.settings.maxqueue,
            b.settings.backup,
            b.settings.disabled,
            b.settings.check
        ),
        (50, 5, true, true, false)
    );
    let c = &be.servers[2];
    assert_eq!(
        (c.addr, c.host.as_str(), c.settings.disabled),
        (sa("[2001:db8::1]:443"), "2001:db8::1", false)
    );
    // A later default-server only affects later servers.
    assert_eq!((c.settings.weight, be.servers[3].settings.weight), (10, 20));
    let ids: Vec<u32> = be.servers.iter().map(|s| s.id).collect();
    assert_eq!(ids, [1, 2, 3, 4]);
}

#[test]
fn server_errors_name_the_server() {
    let errs = fail(&format!(
        "{BASE}backend b\n  server a 10.0.0.1:80 weight 300\n  server b 10.0.0.1:80 rise 0\n  server c 10.0.0.1\n  server d 10.0.0.1:80 chek\n  server e 10.0.0.1:80 inter soon\n  server f 10.0.0.1:80 ssl\n  server g 10.0.0.1:80 slowstart 10s\n"
    ));
    assert_eq!(
        errs,
        [
            "[ALERT] config : parsing [t.cfg:7] : 'server a' : weight of server a is not within 0 and 256 (300).",
            "[ALERT] config : parsing [t.cfg:8] : 'server b' : 'rise' has to be > 0.",
            "[ALERT] config : parsing [t.cfg:9] : missing port for server 'c' (address '10.0.0.1'): rampart cannot reuse the client's destination port.",
            "[ALERT] config : parsing [t.cfg:10] : 'server d' : unknown keyword 'chek'; did you mean 'check' maybe ?",
            "[ALERT] config : parsing [t.cfg:11] : 'server e' : invalid value for 'inter': unexpected character 's' in time value 'soon'.",
            "[ALERT] config : parsing [t.cfg:12] : 'server f' : 'ssl' is not yet supported by rampart (TLS to servers comes with HTTP support).",
            "[WARNING] config : parsing [t.cfg:13] : 'server g' : 'slowstart' is ignored by rampart.",
        ]
    );
}

#[test]
fn dns_names_are_resolved_or_reported() {
    let resolver = |host: &str| match host {
        "db.internal" => vec!["10.9.8.7".parse().unwrap()],
        _ => Vec::new(),
    };
    let text =
        format!("{BASE}backend b\n  server db db.internal:5432\n  server local localhost:5432\n");
    let cfg = parse_sources_with(&[("t.cfg".into(), text)], &resolver).unwrap();
    let s = &cfg.backends[0].servers;
    assert_eq!(
        (s[0].host.as_str(), s[0].addr),
        ("db.internal", sa("10.9.8.7:5432"))
    );
    assert_eq!(
        (s[1].host.as_str(), s[1].addr),
        ("localhost", sa("127.0.0.1:5432"))
    );

    let text = format!("{BASE}backend b\n  server db nowhere.invalid:5432\n");
    let err = parse_sources_with(&[("t.cfg".into(), text)], &resolver).unwrap_err();
    assert_eq!(
        err.to_string(),
        "[ALERT] config : parsing [t.cfg:7] : 'server db' : could not resolve address 'nowhere.invalid'."
    );
}

#[test]
fn timeouts_units_and_errors() {
    let cfg = ok("defaults\n  timeout connect 100\n  timeout client 2s\n  timeout server 3m\n  timeout queue 1h\n  timeout check 1d\n  timeout tunnel 1500us\nbackend b\n");
    let t = cfg.backends[0].timeouts;
    assert_eq!(t.connect, Some(Duration::from_millis(100)));
    assert_eq!(t.client, Some(Duration::from_secs(2)));
    assert_eq!(t.server, Some(Duration::from_secs(180)));
    assert_eq!(t.queue, Some(Duration::from_secs(3600)));
    assert_eq!(t.check, Some(Duration::from_secs(86_400)));
    assert_eq!(t.tunnel, Some(Duration::from_micros(1500)));

    let errs = fail("defaults\n  timeout connect 10x\n  timeout client\n  timeout sever 1s\n  timeout server 1s 2s\n  timeout queue 30d\n");
    assert_eq!(
        errs,
        [
            "[ALERT] config : parsing [t.cfg:2] : 'timeout connect' : invalid unit 'x' in time value '10x' (expected us, ms, s, m, h or d).",
            "[ALERT] config : parsing [t.cfg:3] : 'timeout client' expects an integer value (in milliseconds).",
            "[ALERT] config : parsing [t.cfg:4] : 'timeout' supports 'client', 'server', 'connect', 'check', 'queue', 'http-keep-alive', 'http-request', 'tunnel', 'tarpit', 'client-fin' and 'server-fin' (got 'sever').",
            "[ALERT] config : parsing [t.cfg:5] : 'timeout server' : unexpected extra argument '2s' after value '1s'.",
            "[ALERT] config : parsing [t.cfg:6] : 'timeout queue' : timer overflow in '30d' (maximum value is 2147483647 ms or ~24.8 days).",
        ]
    );
}

#[test]
fn legacy_and_http_timeouts_warn() {
    let cfg = ok("defaults\n  contimeout 5s\n  clitimeout 10s\n  srvtimeout 20s\n  timeout http-request 5s\n  timeout http-keep-alive 1s\nbackend b\n");
    let t = cfg.backends[0].timeouts;
    assert_eq!(
        (t.connect, t.client, t.server),
        (
            Some(Duration::from_secs(5)),
            Some(Duration::from_secs(10)),
            Some(Duration::from_secs(20))
        )
    );
    assert_eq!(
        warnings(&cfg),
        [
            "[WARNING] config : parsing [t.cfg:2] : the 'contimeout' directive is deprecated (removed in HAProxy 2.1); use 'timeout connect'.",
            "[WARNING] config : parsing [t.cfg:3] : the 'clitimeout' directive is deprecated (removed in HAProxy 2.1); use 'timeout client'.",
            "[WARNING] config : parsing [t.cfg:4] : the 'srvtimeout' directive is deprecated (removed in HAProxy 2.1); use 'timeout server'.",
            "[WARNING] config : parsing [t.cfg:5] : 'timeout http-request' is ignored by rampart (no HTTP processing yet).",
            "[WARNING] config : parsing [t.cfg:6] : 'timeout http-keep-alive' is ignored by rampart (no HTTP processing yet).",
        ]
    );
}

#[test]
fn zero_timeout_means_unset() {
    let cfg = ok("defaults\n  timeout connect 5s\n  timeout server 0\nbackend b\n");
    assert_eq!(cfg.backends[0].timeouts.server, None);
}

#[test]
fn capability_warnings() {
    let cfg = ok(&format!(
        "{BASE}frontend f\n  bind :80\n  default_backend b\n  timeout server 1s\n  balance leastconn\n  retries 2\n  option redispatch\nbackend b\n  timeout client 1s\n  maxconn 10\n  option dontlognull\n"
    ));
    assert_eq!(
        warnings(&cfg),
        [
            "[WARNING] config : parsing [t.cfg:9] : 'timeout server' ignored because frontend 'f' has no backend capability.",
            "[WARNING] config : parsing [t.cfg:10] : 'balance' ignored because frontend 'f' has no backend capability.",
            "[WARNING] config : parsing [t.cfg:11] : 'retries' ignored because frontend 'f' has no backend capability.",
            "[WARNING] config : parsing [t.cfg:12] : 'option redispatch' ignored because frontend 'f' has no backend capability.",
            "[WARNING] config : parsing [t.cfg:14] : 'timeout client' ignored because backend 'b' has no frontend capability.",
            "[WARNING] config : parsing [t.cfg:15] : 'maxconn' ignored because backend 'b' has no frontend capability.",
            "[WARNING] config : parsing [t.cfg:16] : 'option dontlognull' ignored because backend 'b' has no frontend capability.",
        ]
    );
}

#[test]
fn options_honoured_and_negated() {
    let cfg = ok(&format!(
        "{BASE}  option redispatch\n  option allbackups\n  option dontlognull\n  option tcplog\nfrontend f\n  bind :80\n  no option dontlognull\n  no option tcplog\n  default_backend b\nbackend b\n  no option redispatch\n  no option allbackups\nbackend c\n  option redispatch 0\n"
    ));
    let fe = &cfg.frontends[0];
    assert!(!fe.log_options.dontlognull && !fe.log_options.tcplog);
    let b = cfg.backend("b").unwrap();
    assert_eq!((b.redispatch, b.allbackups), (None, false));
    assert!(b.log_options.tcplog);
    assert_eq!(cfg.backend("c").unwrap().redispatch, None);
}

#[test]
fn tcplog_and_httplog_replace_each_other() {
    let cfg = ok(&format!(
        "{BASE}  option httplog\n  option tcplog\nbackend b\n"
    ));
    let o = cfg.backends[0].log_options;
    assert!(o.tcplog && !o.httplog);
}

#[test]
fn httplog_in_tcp_mode_falls_back_to_tcplog() {
    let cfg = ok(&format!(
        "{BASE}  option httplog\nfrontend f\n  bind :80\n  default_backend b\nbackend b\n"
    ));
    let o = cfg.frontends[0].log_options;
    assert!(o.tcplog && !o.httplog);
    assert_eq!(
        warnings(&cfg),
        [
            "[WARNING] config : parsing [t.cfg:6] : 'option httplog' not usable with frontend 'f' (needs 'mode http'). Falling back to 'option tcplog'.",
            "[WARNING] config : parsing [t.cfg:6] : 'option httplog' not usable with backend 'b' (needs 'mode http'). Falling back to 'option tcplog'.",
        ]
    );
}

#[test]
fn known_options_warn_unknown_alert() {
    let cfg = ok(&format!("{BASE}backend b\n  option tcpka\n  option httpchk GET /health\n  option splice-auto\n  option forwardfor except 127.0.0.1\n  no option abortonclose\n"));
    assert_eq!(
        warnings(&cfg),
        [
            "[WARNING] config : parsing [t.cfg:7] : 'option tcpka' is ignored by rampart.",
            "[WARNING] config : parsing [t.cfg:8] : 'option httpchk' is ignored by rampart: health checks stay plain TCP connects.",
            "[WARNING] config : parsing [t.cfg:9] : 'option splice-auto' is ignored by rampart.",
            "[WARNING] config : parsing [t.cfg:10] : 'option forwardfor' is ignored by rampart.",
        ]
    );
    assert_eq!(
        fail(&format!("{BASE}backend b\n  option redispach\n")),
        ["[ALERT] config : parsing [t.cfg:7] : unknown option 'redispach'; did you mean 'redispatch' maybe ?"]
    );
}

#[test]
fn ignored_proxy_keywords_warn() {
    let cfg = ok(&format!(
        "{BASE}frontend f\n  bind :80\n  stats enable\n  stats uri /stats\n  stats auth admin:pw\n  description hello\n  default_backend b\nbackend b\n"
    ));
    assert_eq!(
        warnings(&cfg),
        [
            "[WARNING] config : parsing [t.cfg:8] : 'stats' in a proxy is ignored by rampart (no stats page; use the stats socket).",
            "[WARNING] config : parsing [t.cfg:9] : 'stats' in a proxy is ignored by rampart (no stats page; use the stats socket).",
            "[WARNING] config : parsing [t.cfg:10] : 'stats' in a proxy is ignored by rampart (no stats page; use the stats socket).",
            "[WARNING] config : parsing [t.cfg:11] : 'description' is ignored by rampart.",
        ]
    );
}

#[test]
fn rules_not_yet_applied_are_refused_not_ignored() {
    let alerts = fail(&format!(
        "{BASE}frontend f\n  bind :80\n  acl local src 127.0.0.1\n  use_backend b if local\n  tcp-request connection reject if !local\n  default_backend b\nbackend b\n"
    ));
    for (line, kw) in [(8, "acl"), (9, "use_backend"), (10, "tcp-request")] {
        let want = format!(
            "[ALERT] config : parsing [t.cfg:{line}] : '{kw}' is not supported by rampart yet"
        );
        assert!(
            alerts.iter().any(|a| a.starts_with(&want)),
            "{want} in {alerts:?}"
        );
    }
}

#[test]
fn proxy_logs_global_and_no_log() {
    let cfg = ok(&format!(
        "global\n  log 10.0.0.1 local0\n  log 10.0.0.2:600 local1 err\n{BASE}  log global\nfrontend f\n  bind :80\n  log 10.0.0.3 local2\n  default_backend b\nbackend b\n  no log\n  log stdout local3\nbackend c\n  no log\n"
    ));
    let addrs =
        |logs: &[lb::config::LogTarget]| logs.iter().map(|l| l.addr.clone()).collect::<Vec<_>>();
    let udp = |s: &str| LogAddr::Udp(sa(s));
    assert_eq!(
        addrs(&cfg.frontends[0].logs),
        [
            udp("10.0.0.1:514"),
            udp("10.0.0.2:600"),
            udp("10.0.0.3:514")
        ]
    );
    assert_eq!(addrs(&cfg.backend("b").unwrap().logs), [LogAddr::Stdout]);
    assert!(cfg.backend("c").unwrap().logs.is_empty());
    // `log global` sees the global targets even when global comes later.
    let cfg = ok("defaults\n  log global\nbackend b\nglobal\n  log stderr local0\n");
    assert_eq!(addrs(&cfg.backends[0].logs), [LogAddr::Stderr]);
}

#[test]
fn unknown_keyword_suggestion_text() {
    let errs = fail("backend b\n  mode tcp\n  balanse roundrobin\n");
    assert_eq!(
        errs,
        ["[ALERT] config : parsing [t.cfg:3] : unknown keyword 'balanse' in 'backend' section; did you mean 'balance' maybe ?"]
    );
    let errs = fail("listen l\n  bind :80\n  xyzzy\n");
    assert!(
        contains(
            &errs,
            "[t.cfg:3] : unknown keyword 'xyzzy' in 'listen' section"
        ),
        "{errs:#?}"
    );
    assert!(!contains(&errs, "did you mean"));
    let errs = fail("frontnd f\n");
    assert_eq!(
        errs,
        ["[ALERT] config : parsing [t.cfg:1] : unknown keyword 'frontnd' out of section."]
    );
    let errs = fail("backend b\nfrontnd f\n");
    assert_eq!(errs, ["[ALERT] config : parsing [t.cfg:2] : unknown keyword 'frontnd' in 'backend' section; did you mean 'frontend' maybe ?"]);
}

#[test]
fn unsupported_proxy_keywords_alert() {
    let errs = fail(&format!(
        "{BASE}backend b\n  server-template web 1-3 10.0.0.1:80\n"
    ));
    assert_eq!(errs, ["[ALERT] config : parsing [t.cfg:7] : 'server-template' is not supported by rampart yet."]);
}

#[test]
fn other_sections_are_skipped_with_a_warning() {
    let cfg = ok(&format!("userlist admins\n  user admin password x\nresolvers dns\n  nameserver ns1 1.1.1.1:53\n{BASE}backend b\n"));
    assert_eq!(
        warnings(&cfg),
        [
            "[WARNING] config : parsing [t.cfg:1] : 'userlist' section is ignored by rampart.",
            "[WARNING] config : parsing [t.cfg:3] : 'resolvers' section is ignored by rampart.",
        ]
    );
}

// ---------------------------------------------------------------- defaults

#[test]
fn anonymous_defaults_apply_until_the_next_defaults() {
    let cfg = ok("defaults\n  mode http\n  maxconn 100\n  retries 7\n  balance leastconn\n  timeout connect 1s\n  timeout client 1s\n  timeout server 1s\n  option redispatch\nfrontend f1\n  bind :80\n  default_backend b1\nbackend b1\ndefaults\n  timeout client 2s\nfrontend f2\n  bind :81\n  default_backend b2\nbackend b2\n");
    let (f1, f2) = (cfg.frontend("f1").unwrap(), cfg.frontend("f2").unwrap());
    let (b1, b2) = (cfg.backend("b1").unwrap(), cfg.backend("b2").unwrap());
    assert_eq!(
        (f1.mode, f1.maxconn, b1.retries, b1.algorithm),
        (Mode::Http, 100, 7, Algorithm::LeastConn)
    );
    assert!(b1.redispatch.is_some());
    // The second defaults section starts from HAProxy's built-in defaults.
    assert_eq!(
        (f2.mode, f2.maxconn, b2.retries, b2.algorithm),
        (Mode::Tcp, 0, 3, Algorithm::RoundRobin)
    );
    assert_eq!(
        (f2.timeouts.client, b2.timeouts.connect, b2.redispatch),
        (Some(Duration::from_secs(2)), None, None)
    );
}

#[test]
fn named_defaults_and_from() {
    let cfg = ok("defaults base\n  mode tcp\n  retries 9\n  timeout connect 1s\ndefaults child from base\n  retries 4\ndefaults other\n  retries 1\nbackend b1 from base\nbackend b2 from child\nbackend b3\nfrontend f from child\n  bind :80\n  default_backend b2\n");
    let r = |n: &str| cfg.backend(n).unwrap().retries;
    assert_eq!((r("b1"), r("b2"), r("b3")), (9, 4, 1));
    assert_eq!(
        cfg.backend("b2").unwrap().timeouts.connect,
        Some(Duration::from_secs(1))
    );
    assert_eq!(cfg.frontend("f").unwrap().mode, Mode::Tcp);

    let errs = fail("defaults a\nbackend b from nope\ndefaults x\ndefaults x\nbackend c from x\n");
    assert_eq!(
        errs,
        [
            "[ALERT] config : parsing [t.cfg:2] : defaults section 'nope' not found for backend 'b'.",
            "[ALERT] config : parsing [t.cfg:5] : ambiguous defaults section name 'x' referenced by backend 'c' exists at least at t.cfg:3 and t.cfg:4.",
        ]
    );
}

#[test]
fn defaults_inherit_default_server_and_logs() {
    let cfg = ok("global\n  log stdout local0\ndefaults\n  default-server check inter 10s\n  log global\nbackend b\n  server s 10.0.0.1:1\n");
    let be = &cfg.backends[0];
    assert!(be.servers[0].settings.check);
    assert_eq!(be.servers[0].settings.inter, Duration::from_secs(10));
    assert_eq!(be.logs.len(), 1);
}

#[test]
fn directives_not_allowed_in_defaults() {
    let errs = fail("defaults\n  bind :80\n  server s 10.0.0.1:80\n  id 3\n  use_backend x\n");
    assert_eq!(
        errs,
        [
            "[ALERT] config : parsing [t.cfg:2] : 'bind' not allowed in 'defaults' section.",
            "[ALERT] config : parsing [t.cfg:3] : 'server' not allowed in 'defaults' section.",
            "[ALERT] config : parsing [t.cfg:4] : 'id' not allowed in 'defaults' section.",
            "[ALERT] config : parsing [t.cfg:5] : 'use_backend' not allowed in 'defaults' section.",
        ]
    );
}

#[test]
fn default_backend_may_come_from_defaults() {
    let cfg = ok(&format!(
        "{BASE}  default_backend b\nfrontend f\n  bind :80\nbackend b\n"
    ));
    assert_eq!(cfg.frontends[0].default_backend.as_deref(), Some("b"));
}

// ---------------------------------------------------------------- listen & ids

#[test]
fn listen_is_a_frontend_and_a_backend() {
    let cfg = ok(&format!(
        "{BASE}frontend f\n  bind :80\n  default_backend l\nlisten l\n  bind :81\n  balance first\n  server s 10.0.0.1:80\nbackend b\n"
    ));
    let fe = cfg.frontend("l").unwrap();
    let be = cfg.backend("l").unwrap();
    assert!(fe.from_listen && be.from_listen);
    assert_eq!((fe.id, be.id), (2, 2));
    assert_eq!(fe.default_backend.as_deref(), Some("l"));
    assert_eq!(fe.binds[0].addr, sa("0.0.0.0:81"));
    assert_eq!(be.algorithm, Algorithm::First);
    assert_eq!(be.servers[0].name, "s");
    assert_eq!(
        (cfg.frontend("f").unwrap().id, cfg.backend("b").unwrap().id),
        (1, 3)
    );
}

#[test]
fn listen_with_default_backend_elsewhere() {
    let cfg = ok(&format!(
        "{BASE}listen l\n  bind :81\n  default_backend b\n  server s 10.0.0.1:80\nbackend b\n"
    ));
    assert_eq!(
        cfg.frontend("l").unwrap().default_backend.as_deref(),
        Some("b")
    );
    assert!(contains(
        &warnings(&cfg),
        "the 'default_backend' rule always has precedence over the servers"
    ));
    let errs = fail(&format!(
        "{BASE}listen l\n  bind :81\n  default_backend l\n"
    ));
    assert!(contains(
        &errs,
        "Proxy 'l': loop detected for default_backend: 'l'."
    ));
}

#[test]
fn explicit_and_automatic_ids() {
    let cfg = ok(&format!(
        "{BASE}backend a\n  id 2\n  server s1 10.0.0.1:1 id 5\n  server s2 10.0.0.1:2\n  server s3 10.0.0.1:3\nbackend b\nbackend c\n  id 10\nbackend d\n"
    ));
    let ids: Vec<_> = cfg
        .backends
        .iter()
        .map(|b| (b.name.as_str(), b.id))
        .collect();
    // Like HAProxy, the counter moves on after every proxy (explicit ids
    // included) and skips ids already taken: d gets 5, not 4.
    assert_eq!(ids, [("a", 2), ("b", 3), ("c", 10), ("d", 5)]);
    let sids: Vec<u32> = cfg.backends[0].servers.iter().map(|s| s.id).collect();
    assert_eq!(sids, [5, 2, 3]);

    let errs = fail(&format!("{BASE}backend a\n  id 3\nbackend b\n  id 3\n  server x 10.0.0.1:1 id 1\n  server y 10.0.0.1:1 id 1\n  server z 10.0.0.1:1 id 0\n"));
    assert_eq!(
        errs,
        [
            "[ALERT] config : parsing [t.cfg:12] : 'server z' : 'id' has to be > 0.",
            "[ALERT] config : parsing [t.cfg:8] : backend 'b' reuses same custom id as backend 'a' (declared at t.cfg:6).",
            "[ALERT] config : parsing [t.cfg:11] : server 'b/y' reuses same custom id as server 'b/x' (declared at t.cfg:10).",
        ]
    );
}

// ---------------------------------------------------------------- validation

#[test]
fn validation_alerts_and_warnings() {
    let errs = fail(
        "frontend f\n  bind :80\n  default_backend missing\nfrontend f\n  bind :81\nbackend b\n  server s 10.0.0.1:1\n  server s 10.0.0.2:1\nfrontend nobind\n  default_backend b\nbackend b\n",
    );
    assert_eq!(
        errs,
        [
            "[ALERT] config : parsing [t.cfg:4] : frontend 'f' has the same name as frontend 'f' declared at t.cfg:1.",
            "[ALERT] config : parsing [t.cfg:11] : backend 'b' has the same name as backend 'b' declared at t.cfg:6.",
            "[WARNING] config : parsing [t.cfg:1] : missing timeouts for frontend 'f'. | While not properly invalid, you will certainly encounter various problems with such a configuration. | To fix this, please ensure that all following timeouts are set to a non-zero value: 'client', 'connect', 'server'.",
            "[ALERT] config : parsing [t.cfg:3] : Proxy 'f': unable to find required default_backend: 'missing'.",
            "[WARNING] config : parsing [t.cfg:4] : missing timeouts for frontend 'f'. | While not properly invalid, you will certainly encounter various problems with such a configuration. | To fix this, please ensure that all following timeouts are set to a non-zero value: 'client', 'connect', 'server'.",
            "[WARNING] config : parsing [t.cfg:4] : frontend 'f' has no 'default_backend': rampart will close its connections ('use_backend' rules are not supported yet).",
            "[WARNING] config : parsing [t.cfg:6] : missing timeouts for backend 'b'. | While not properly invalid, you will certainly encounter various problems with such a configuration. | To fix this, please ensure that all following timeouts are set to a non-zero value: 'client', 'connect', 'server'.",
            "[ALERT] config : parsing [t.cfg:8] : backend 'b', another server named 's' was already defined at line 7, please use distinct names.",
            "[WARNING] config : parsing [t.cfg:9] : missing timeouts for frontend 'nobind'. | While not properly invalid, you will certainly encounter various problems with such a configuration. | To fix this, please ensure that all following timeouts are set to a non-zero value: 'client', 'connect', 'server'.",
            "[WARNING] config : parsing [t.cfg:9] : frontend 'nobind' has no 'bind' directive. Please declare it as a backend if this was intended.",
        ]
    );
}

#[test]
fn backend_without_servers_is_fine_and_tcp_tunnel_counts() {
    let cfg = ok("defaults\n  timeout connect 1s\n  timeout tunnel 1h\nbackend empty\nbackend b\n  server s 10.0.0.1:1\n");
    assert!(cfg.warnings.is_empty(), "{:#?}", cfg.warnings);
    assert!(cfg.backend("empty").unwrap().servers.is_empty());
}

#[test]
fn mode_mismatch_between_frontend_and_backend() {
    let errs = fail(&format!(
        "{BASE}frontend f\n  mode http\n  bind :80\n  default_backend b\nbackend b\n"
    ));
    assert!(contains(&errs, "[t.cfg:9] : http frontend 'f' (t.cfg:6) tries to use incompatible tcp backend 'b' (t.cfg:10) as its default backend (see 'mode')."), "{errs:#?}");
    // TCP to HTTP is allowed, as in HAProxy.
    let cfg = ok(&format!(
        "{BASE}frontend f\n  bind :80\n  default_backend b\nbackend b\n  mode http\n"
    ));
    assert_eq!(cfg.backends[0].mode, Mode::Http);
}

#[test]
fn http_mode_warns_once_per_proxy() {
    let cfg = ok(&format!("{BASE}  mode http\nlisten web\n  bind :80\n"));
    assert_eq!(
        warnings(&cfg),
        ["[WARNING] config : parsing [t.cfg:7] : proxy 'web' uses 'mode http': rampart serves it as TCP passthrough until HTTP support lands (no per-request balancing, no httplog fields)"]
    );
}

#[test]
fn proxy_header_errors() {
    let errs = fail("frontend\nbackend b:x/y\nfrontend f 1.2.3.4:80\nno mode tcp\n");
    assert_eq!(
        errs,
        [
            "[ALERT] config : parsing [t.cfg:1] : 'frontend' expects an <id> argument",
            "[ALERT] config : parsing [t.cfg:2] : character '/' is not permitted in 'backend' name 'b:x/y'.",
            "[ALERT] config : parsing [t.cfg:3] : please use the 'bind' keyword for listening addresses.",
            "[ALERT] config : parsing [t.cfg:4] : negation is only supported for 'option' and 'log' (got 'no mode').",
            "[WARNING] config : parsing [t.cfg:3] : missing timeouts for frontend 'f'. | While not properly invalid, you will certainly encounter various problems with such a configuration. | To fix this, please ensure that all following timeouts are set to a non-zero value: 'client', 'connect', 'server'.",
            "[WARNING] config : parsing [t.cfg:3] : frontend 'f' has no 'default_backend': rampart will close its connections ('use_backend' rules are not supported yet).",
            "[WARNING] config : parsing [t.cfg:3] : frontend 'f' has no 'bind' directive. Please declare it as a backend if this was intended.",
        ]
    );
}

#[test]
fn dot_directives() {
    let errs =
        fail(".notice hello\n.warning careful here\n.alert stop\n.if defined(X)\n.endif\n.bogus\n");
    assert_eq!(
        errs,
        [
            "[WARNING] config : parsing [t.cfg:2] : careful here",
            "[ALERT] config : parsing [t.cfg:3] : stop",
            "[ALERT] config : parsing [t.cfg:4] : conditional blocks ('.if') are not supported by rampart yet.",
            "[ALERT] config : parsing [t.cfg:5] : conditional blocks ('.endif') are not supported by rampart yet.",
            "[ALERT] config : parsing [t.cfg:6] : unknown directive '.bogus'.",
        ]
    );
}

#[test]
fn all_alerts_are_reported_in_one_run() {
    let errs = fail("global\n  bogus1\nbackend b\n  bogus2\n  server s 10.0.0.1\n  bogus3\n");
    let alerts: Vec<_> = errs.iter().filter(|l| l.starts_with("[ALERT]")).collect();
    assert_eq!(alerts.len(), 4, "{errs:#?}");
    for line in [2, 4, 5, 6] {
        assert!(
            contains(&errs, &format!("[t.cfg:{line}] :")),
            "line {line}: {errs:#?}"
        );
    }
}

// ---------------------------------------------------------------- files

#[test]
fn multiple_files_in_order() {
    let dir = std::env::temp_dir().join(format!("rampart-cfg-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let a = dir.join("a.cfg");
    let b = dir.join("b.cfg");
    std::fs::write(&a, "global\n  maxconn 10\ndefaults\n  mode tcp\n  retries 6\n  timeout connect 1s\n  timeout client 1s\n  timeout server 1s\n").unwrap();
    std::fs::write(
        &b,
        "frontend f\n  bind :80\n  default_backend b\nbackend b\n  server s 10.0.0.1:1\n",
    )
    .unwrap();

    let cfg = load_files(&[a.clone(), b.clone()]).unwrap();
    assert_eq!(cfg.global.maxconn, 10);
    // Defaults carry over from one file to the next.
    assert_eq!(cfg.backends[0].retries, 6);
    assert_eq!(
        &*cfg.backends[0].servers[0].loc.file,
        b.display().to_string()
    );
    assert_eq!(cfg.backends[0].servers[0].loc.line, 5);

    // The section does not: a directive at the top of the next file is out of section.
    let c = dir.join("c.cfg");
    std::fs::write(&c, "  retries 2\n").unwrap();
    let err = load_files(&[b.clone(), c.clone()]).unwrap_err();
    assert!(
        err.to_string().contains(&format!(
            "[{}:1] : unknown keyword 'retries' out of section.",
            c.display()
        )),
        "{err}"
    );

    // A directory loads its *.cfg files in alphabetical order.
    let cfg = load_files(std::slice::from_ref(&dir)).unwrap_err();
    assert!(cfg.to_string().contains("out of section"));
    std::fs::remove_file(&c).unwrap();
    let cfg = load_files(std::slice::from_ref(&dir)).unwrap();
    assert_eq!(cfg.backends[0].retries, 6);

    // An unreadable file is an alert naming it; the others are still checked.
    let missing = dir.join("missing.cfg");
    let result = load_files(&[missing.clone(), a.clone()]);
    let (report, code) = check_report(&result, &[missing.clone(), a]);
    assert_eq!(code, 1);
    assert!(
        report.starts_with(&format!(
            "[ALERT] config : Could not open configuration file {} : ",
            missing.display()
        )),
        "{report}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

// ---------------------------------------------------------------- reports

#[test]
fn check_report_valid() {
    let files = [PathBuf::from("t.cfg")];
    let result = parse(&format!("{BASE}backend b\n  option tcpka\n"));
    let (report, code) = check_report(&result, &files);
    assert_eq!(code, 0);
    assert_eq!(
        report,
        "[WARNING] config : parsing [t.cfg:7] : 'option tcpka' is ignored by rampart.\nConfiguration file is valid\n"
    );
}

#[test]
fn check_report_invalid() {
    let files = [PathBuf::from("t.cfg"), PathBuf::from("other.cfg")];
    let result = parse(&format!(
        "{BASE}backend b\n  option tcpka\n  balanse leastconn\n"
    ));
    let (report, code) = check_report(&result, &files);
    assert_eq!(code, 1);
    assert_eq!(
        report,
        "[WARNING] config : parsing [t.cfg:7] : 'option tcpka' is ignored by rampart.\n\
         [ALERT] config : parsing [t.cfg:8] : unknown keyword 'balanse' in 'backend' section; did you mean 'balance' maybe ?\n\
         [ALERT] config : Error(s) found in configuration file : t.cfg\n\
         [ALERT] config : Fatal errors found in configuration.\n"
    );
}

#[test]
fn config_error_display_is_one_line_per_diagnostic() {
    let err = parse("global\n  a1\n  a2\n").unwrap_err();
    assert_eq!(err.diagnostics.len(), 2);
    assert!(err
        .diagnostics
        .iter()
        .all(|d| d.severity == Severity::Alert));
    assert_eq!(err.to_string().lines().count(), 2);
    let _: &dyn std::error::Error = &err;
}

#[test]
fn parse_str_uses_the_public_entry_point() {
    let cfg = parse_str(
        "main.cfg",
        &format!("{BASE}backend b\n  server s 10.0.0.1:80\n"),
    )
    .unwrap();
    assert_eq!(&*cfg.backends[0].loc.file, "main.cfg");
}

// ---------------------------------------------------------------- runtime API

#[test]
fn server_spec_for_add_server() {
    let s = parse_server_spec(
        "new",
        &[
            "10.0.0.7:8080",
            "check",
            "weight",
            "20",
            "inter",
            "500ms",
            "backup",
        ],
        None,
    )
    .unwrap();
    assert_eq!(
        (s.name.as_str(), s.id, s.addr),
        ("new", 0, sa("10.0.0.7:8080"))
    );
    assert_eq!(
        (
            s.settings.check,
            s.settings.weight,
            s.settings.inter,
            s.settings.backup
        ),
        (true, 20, Duration::from_millis(500), true)
    );
    // HAProxy built-in defaults, not any default-server.
    assert_eq!((s.settings.rise, s.settings.fall), (2, 3));

    let s = parse_server_spec("p", &["10.0.0.8"], Some(443)).unwrap();
    assert_eq!(s.addr, sa("10.0.0.8:443"));

    assert_eq!(
        parse_server_spec("p", &["10.0.0.8"], None).unwrap_err(),
        "missing port for server 'p' (address '10.0.0.8'): rampart cannot reuse the client's destination port."
    );
    assert_eq!(
        parse_server_spec("p", &["10.0.0.8:1", "weight", "999"], None).unwrap_err(),
        "'server p' : weight of server p is not within 0 and 256 (999)."
    );
    assert_eq!(
        parse_server_spec("p", &["10.0.0.8:1", "slowstart", "1s"], None).unwrap_err(),
        "'slowstart' is not supported by rampart for dynamic servers."
    );
    assert!(parse_server_spec("p", &[], None).is_err());
    assert!(parse_server_spec("bad/name", &["10.0.0.8:1"], None).is_err());
}
