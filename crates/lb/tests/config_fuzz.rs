//! Property tests: the parser never panics, whatever the input, and whatever it
//! accepts satisfies the model's invariants.
//!
//! No test here can reach DNS: random text goes through `parse_str` only when it
//! cannot contain a section keyword (without a section no address is ever parsed),
//! and structured mutations use `parse_sources_with` with an offline resolver.

use std::cell::Cell;
use std::collections::HashSet;
use std::net::IpAddr;

use lb::config::{check_report, parse_sources_with, parse_str, Config, ConfigError, Severity};
use proptest::prelude::*;

const SECTION_WORDS: &[&str] = &["global", "defaults", "frontend", "backend", "listen"];

/// Words random configuration lines are made of: keywords of every section,
/// plausible and broken values, quoting and escaping forms. Addresses are IP
/// literals; any other word landing in an address slot goes to the offline
/// resolver.
const VOCABULARY: &[&str] = &[
    "global",
    "defaults",
    "frontend",
    "backend",
    "listen",
    "userlist",
    "from",
    "no",
    "fe",
    "be",
    "default",
    "mode",
    "tcp",
    "http",
    "bind",
    "server",
    "default-server",
    "default_backend",
    "use_backend",
    "balance",
    "roundrobin",
    "static-rr",
    "leastconn",
    "first",
    "source",
    "random",
    "hash-type",
    "consistent",
    "map-based",
    "djb2",
    "timeout",
    "connect",
    "client",
    "queue",
    "check",
    "tunnel",
    "client-fin",
    "server-fin",
    "http-request",
    "contimeout",
    "maxconn",
    "retries",
    "option",
    "redispatch",
    "tcplog",
    "httplog",
    "dontlognull",
    "allbackups",
    "tcpka",
    "httpchk",
    "log",
    "len",
    "format",
    "rfc5424",
    "raw",
    "local0",
    "local7",
    "info",
    "debug",
    "emerg",
    "stats",
    "socket",
    "level",
    "admin",
    "expose-fd",
    "listeners",
    "enable",
    "uri",
    "id",
    "name",
    "ssl",
    "crt",
    "v4v6",
    "backlog",
    "inter",
    "fastinter",
    "downinter",
    "rise",
    "fall",
    "port",
    "weight",
    "maxqueue",
    "backup",
    "disabled",
    "enabled",
    "no-check",
    "send-proxy",
    "slowstart",
    "usesrc",
    "nbthread",
    "daemon",
    "pidfile",
    "chroot",
    "user",
    "group",
    "log-tag",
    "setenv",
    "presetenv",
    "unsetenv",
    "resetenv",
    "tune.bufsize",
    "nbproc",
    "acl",
    "tcp-request",
    "server-template",
    "0",
    "1",
    "2",
    "3",
    "-1",
    "256",
    "257",
    "4294967296",
    "10s",
    "5000",
    "1m",
    "1h",
    "1d",
    "30d",
    "500us",
    "10x",
    "127.0.0.1",
    "127.0.0.1:80",
    "127.0.0.2:1515",
    "[::1]:8080",
    "[::1]",
    ":80",
    "*:81",
    ":8000-8002",
    ":::443",
    "ipv6@:444",
    "10.0.0.1:+1",
    "1.2.3.4:0",
    ":0",
    "udp@127.0.0.1:514",
    "/dev/log",
    "stdout",
    "stderr",
    "fd@3",
    "unix@/run/x",
    "/run/admin.sock",
    "660",
    "999",
    "\"quoted word\"",
    "'single quoted'",
    "a\\ b",
    "#",
    "\\#",
    "\"${HOME}\"",
    "\"${RAMPART_UNSET-127.0.0.1:9}\"",
    "\"${X[*]}\"",
    "\"$\"",
    "\"",
    "'",
    "\"\"",
    "\\x4",
    "\\x41",
    "bad/name",
    "é",
    "\t",
];

fn offline(_: &str) -> Vec<IpAddr> {
    Vec::new()
}

fn line_strategy() -> impl Strategy<Value = String> {
    (
        prop::sample::select(vec!["", "  ", "\t"]),
        prop::collection::vec(prop::sample::select(VOCABULARY), 1..7),
        prop::sample::select(vec!["", "\r", " # comment"]),
    )
        .prop_map(|(indent, words, end)| format!("{indent}{}{end}", words.join(" ")))
}

/// A mutation of a line-based document.
#[derive(Debug, Clone)]
enum Edit {
    Delete(usize),
    Duplicate(usize),
    Insert(usize, String),
    Replace(usize, String),
    Truncate(usize, usize),
    SwapWords(usize),
}

fn edit_strategy() -> impl Strategy<Value = Edit> {
    let at = any::<usize>();
    prop_oneof![
        at.prop_map(Edit::Delete),
        at.prop_map(Edit::Duplicate),
        (at, line_strategy()).prop_map(|(i, l)| Edit::Insert(i, l)),
        (at, line_strategy()).prop_map(|(i, l)| Edit::Replace(i, l)),
        (at, any::<usize>()).prop_map(|(i, j)| Edit::Truncate(i, j)),
        at.prop_map(Edit::SwapWords),
    ]
}

fn apply(lines: &mut Vec<String>, edit: &Edit) {
    let n = lines.len().max(1);
    match edit {
        Edit::Delete(i) if !lines.is_empty() => {
            lines.remove(i % n);
        }
        Edit::Duplicate(i) if !lines.is_empty() => {
            let l = lines[i % n].clone();
            lines.insert(i % n, l);
        }
        Edit::Insert(i, l) => lines.insert(i % (lines.len() + 1), l.clone()),
        Edit::Replace(i, l) if !lines.is_empty() => lines[i % n] = l.clone(),
        Edit::Truncate(i, j) if !lines.is_empty() => {
            let line = &mut lines[i % n];
            let cut = line
                .char_indices()
                .map(|(k, _)| k)
                .nth(j % (line.chars().count() + 1));
            line.truncate(cut.unwrap_or(line.len()));
        }
        Edit::SwapWords(i) if !lines.is_empty() => {
            let mut words: Vec<&str> = lines[i % n].split(' ').collect();
            words.reverse();
            lines[i % n] = words.join(" ");
        }
        _ => {}
    }
}

const SEEDS: &[&str] = &[
    include_str!("fixtures/wazuh.cfg"),
    include_str!("fixtures/haproxy-keepalived.cfg"),
    "global\n  stats socket /run/a.sock level admin mode 600 expose-fd listeners\n  log stdout format raw local0\n  setenv P 81\ndefaults base\n  mode tcp\n  default-server inter 3s rise 3 check\n  timeout connect 1s\n  timeout client 1s\n  timeout server 1s\nlisten l from base\n  bind \"127.0.0.1:${P}\" name n\n  balance source\n  hash-type consistent\n  server a 127.0.0.1:1 id 4 weight 10\n  server b [::1]:2 backup\nfrontend f\n  bind :8000-8002,[::]:90\n  default_backend l\n",
];

/// What any accepted configuration must satisfy.
fn check_invariants(cfg: &Config) -> Result<(), TestCaseError> {
    let backends: HashSet<&str> = cfg.backends.iter().map(|b| b.name.as_str()).collect();
    for fe in &cfg.frontends {
        // A frontend without bind is accepted with a warning, as in HAProxy.
        prop_assert!(fe.id > 0);
        if let Some(be) = &fe.default_backend {
            prop_assert!(
                backends.contains(be.as_str()),
                "dangling default_backend {be}"
            );
        }
        for b in &fe.binds {
            prop_assert!(b.addr.port() > 0);
        }
    }
    for be in &cfg.backends {
        prop_assert!(be.id > 0);
        let mut ids = HashSet::new();
        for s in &be.servers {
            prop_assert!(s.id > 0 && ids.insert(s.id), "bad server id in {}", be.name);
            prop_assert!(s.settings.weight <= 256 && s.settings.rise > 0 && s.settings.fall > 0);
            prop_assert!(s.addr.port() > 0 && !s.settings.inter.is_zero());
        }
    }
    prop_assert!(cfg.warnings.iter().all(|w| w.severity == Severity::Warning));
    Ok(())
}

fn check_error(err: &ConfigError) -> Result<(), TestCaseError> {
    prop_assert!(err
        .diagnostics
        .iter()
        .any(|d| d.severity == Severity::Alert));
    // Every message of an in-memory parse points at a line.
    prop_assert!(err
        .diagnostics
        .iter()
        .all(|d| d.loc.as_ref().is_some_and(|l| l.line > 0)));
    Ok(())
}

fn check_result(result: &Result<Config, ConfigError>) -> Result<(), TestCaseError> {
    let (report, code) = check_report(result, &[]);
    match result {
        Ok(cfg) => {
            prop_assert_eq!(code, 0);
            prop_assert!(report.ends_with("Configuration file is valid\n"));
            check_invariants(cfg)
        }
        Err(err) => {
            prop_assert_eq!(code, 1);
            prop_assert!(
                report.ends_with("[ALERT] config : Fatal errors found in configuration.\n")
            );
            check_error(err)
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    /// Arbitrary Unicode text through the public entry point.
    #[test]
    fn parse_str_never_panics_on_arbitrary_text(text in "(?s).{0,600}") {
        // Without a section keyword no directive (hence no address) is read.
        prop_assume!(!SECTION_WORDS.iter().any(|w| text.contains(w)));
        check_result(&parse_str("fuzz.cfg", &text))?;
    }

    /// Text made of the lexer's special characters. Letters are limited to a-f,
    /// which cannot spell a section keyword, so DNS is never reached.
    #[test]
    fn parse_str_never_panics_on_syntax_soup(text in "[ \t\r\n\"'\\\\#${}\\[\\]:@*,.0-9a-f-]{0,400}") {
        check_result(&parse_str("fuzz.cfg", &text))?;
    }

    /// Random keyword lines, with real sections, resolved offline.
    #[test]
    fn random_keyword_lines_never_panic(lines in prop::collection::vec(line_strategy(), 0..40)) {
        let text = lines.join("\n");
        check_result(&parse_sources_with(&[("fuzz.cfg".into(), text)], &offline))?;
    }

    /// Structured mutations of real configurations, split over two files.
    #[test]
    fn mutated_fixtures_never_panic(
        seed in 0..SEEDS.len(),
        edits in prop::collection::vec(edit_strategy(), 0..6),
        split in any::<usize>(),
    ) {
        let mut lines: Vec<String> = SEEDS[seed].lines().map(String::from).collect();
        for e in &edits {
            apply(&mut lines, e);
        }
        // Files are split where a section starts, as real -f files would be.
        let cuts: Vec<usize> = (0..=lines.len())
            .filter(|&i| match lines.get(i) {
                None => true,
                Some(l) => SECTION_WORDS.iter().any(|w| l.starts_with(w)),
            })
            .collect();
        let cut = cuts[split % cuts.len()];
        let sources = [
            ("a.cfg".to_string(), lines[..cut].join("\n")),
            ("b.cfg".to_string(), lines[cut..].join("\n")),
        ];
        let lookups = Cell::new(0usize);
        let counting = |_: &str| {
            lookups.set(lookups.get() + 1);
            Vec::new()
        };
        let result = parse_sources_with(&sources, &counting);
        check_result(&result)?;
        // The unmodified seeds hold only IP literals: nothing to resolve, and
        // in one file they are valid.
        if edits.is_empty() {
            prop_assert_eq!(lookups.get(), 0);
            let whole = parse_sources_with(&[("seed.cfg".into(), SEEDS[seed].into())], &counting);
            prop_assert!(whole.is_ok(), "seed {} must parse: {:?}", seed, whole.err());
        }
    }
}
