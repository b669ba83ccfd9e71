//! The `log` directive: `log ADDR [len N] [format F] FACILITY [LEVEL [MINLEVEL]]`,
//! `log global` and `no log`.

use super::addr::{parse_log_addr, Resolver};
use super::model::{Facility, Loc, LogFormat, LogLevel, LogTarget};
use super::units::parse_size;

/// Syslog facilities by number, as HAProxy names them.
const FACILITIES: [&str; 24] = [
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "auth2",
    "ftp", "ntp", "audit", "alert", "cron2", "local0", "local1", "local2", "local3", "local4",
    "local5", "local6", "local7",
];

/// Syslog severities by number.
const LEVELS: [&str; 8] = [
    "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug",
];

/// HAProxy's default maximum syslog line length.
const DEFAULT_MAX_LEN: usize = 1024;

/// What a `log` line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LogDirective {
    /// `log global`: use the global section's targets (expanded at the end).
    Global,
    /// `no log`: forget inherited targets.
    Clear,
    Target(LogTarget),
}

fn facility(name: &str) -> Option<Facility> {
    FACILITIES
        .iter()
        .position(|f| *f == name)
        .and_then(|i| Facility::try_from(i).ok())
}

fn level(name: &str) -> Option<LogLevel> {
    LEVELS
        .iter()
        .position(|l| *l == name)
        .and_then(|i| LogLevel::try_from(i).ok())
}

fn format(name: &str) -> Result<LogFormat, String> {
    match name {
        "rfc3164" => Ok(LogFormat::Rfc3164),
        "rfc5424" => Ok(LogFormat::Rfc5424),
        "raw" => Ok(LogFormat::Raw),
        "short" => Ok(LogFormat::Short),
        "local" | "iso" | "priority" | "timed" => Err(format!(
            "log format '{name}' is not supported by rampart yet"
        )),
        _ => Err(format!("unknown log format '{name}'")),
    }
}

fn max_len(value: Option<&String>) -> Result<usize, String> {
    let value = value.ok_or("'len' expects a length")?;
    match parse_size(value) {
        Ok(n) if (80..=65535).contains(&n) => usize::try_from(n).map_err(|e| e.to_string()),
        _ => Err(format!(
            "invalid log length '{value}', must be between 80 and 65535"
        )),
    }
}

/// Parses a `log` line (`words[0] == "log"`). `in_proxy` allows `log global`.
pub(crate) fn parse_log(
    words: &[String],
    negated: bool,
    in_proxy: bool,
    loc: &Loc,
    resolver: &Resolver<'_>,
) -> Result<LogDirective, String> {
    if negated {
        return Ok(LogDirective::Clear);
    }
    let arg = |i: usize| words.get(i).map(String::as_str);
    if arg(1) == Some("global") {
        if !in_proxy {
            return Err(
                "'log global' is only allowed in defaults, frontend, backend and listen sections"
                    .into(),
            );
        }
        return match arg(2) {
            Some(extra) => Err(format!(
                "'log global' cannot handle unexpected argument '{extra}'"
            )),
            None => Ok(LogDirective::Global),
        };
    }
    let (Some(addr), Some(_)) = (arg(1), arg(2)) else {
        let or_global = if in_proxy { " or global" } else { "" };
        return Err(format!(
            "'log' expects <address> and <facility>{or_global} as arguments"
        ));
    };

    let mut i = 2;
    let mut target_len = DEFAULT_MAX_LEN;
    let mut target_format = LogFormat::default();
    if arg(i) == Some("len") {
        target_len = max_len(words.get(i + 1))?;
        i += 2;
    }
    if arg(i) == Some("format") {
        target_format = format(arg(i + 1).ok_or("'format' expects a log format")?)?;
        i += 2;
    }
    if arg(i) == Some("sample") {
        return Err(
            "'log ... sample' (load-balanced logging) is not supported by rampart yet".into(),
        );
    }
    let fac_name = arg(i).ok_or("missing log facility")?;
    let fac = facility(fac_name).ok_or_else(|| format!("unknown log facility '{fac_name}'"))?;
    let max_level = match arg(i + 1) {
        Some(l) => level(l).ok_or_else(|| format!("unknown optional log level '{l}'"))?,
        None => 7,
    };
    let min_level = match arg(i + 2) {
        Some(l) => level(l).ok_or_else(|| format!("unknown optional minimum log level '{l}'"))?,
        None => 0,
    };
    if let Some(extra) = arg(i + 3) {
        return Err(format!("cannot handle unexpected argument '{extra}'"));
    }
    Ok(LogDirective::Target(LogTarget {
        addr: parse_log_addr(addr, resolver)?,
        format: target_format,
        facility: fac,
        max_level,
        min_level,
        max_len: target_len,
        loc: loc.clone(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::model::LogAddr;
    use std::net::IpAddr;

    fn no_dns(host: &str) -> Vec<IpAddr> {
        panic!("unexpected DNS lookup for {host}");
    }

    fn parse(line: &str) -> Result<LogDirective, String> {
        let words: Vec<String> = line.split_whitespace().map(String::from).collect();
        parse_log(&words, false, true, &Loc::default(), &no_dns)
    }

    fn target(line: &str) -> LogTarget {
        match parse(line) {
            Ok(LogDirective::Target(t)) => t,
            other => panic!("{line}: {other:?}"),
        }
    }

    #[test]
    fn full_form() {
        let t = target("log 10.0.0.1:1514 len 2048 format rfc5424 local3 notice err");
        assert_eq!(t.addr, LogAddr::Udp("10.0.0.1:1514".parse().unwrap()));
        assert_eq!(
            (t.max_len, t.format, t.facility, t.max_level, t.min_level),
            (2048, LogFormat::Rfc5424, 19, 5, 3)
        );
    }

    #[test]
    fn short_form_defaults() {
        let t = target("log /dev/log local0");
        assert_eq!(t.addr, LogAddr::Unix("/dev/log".into()));
        assert_eq!(
            (t.max_len, t.format, t.facility, t.max_level, t.min_level),
            (1024, LogFormat::Rfc3164, 16, 7, 0)
        );
        assert_eq!(
            target("log stdout format raw daemon").format,
            LogFormat::Raw
        );
        assert_eq!(target("log stderr format short kern").facility, 0);
        assert_eq!(target("log 127.0.0.1 len 4k user").max_len, 4096);
    }

    #[test]
    fn global_and_clear() {
        assert_eq!(parse("log global"), Ok(LogDirective::Global));
        let words = vec!["log".to_string()];
        assert_eq!(
            parse_log(&words, true, true, &Loc::default(), &no_dns),
            Ok(LogDirective::Clear)
        );
        let words: Vec<String> = ["log", "global"].map(String::from).to_vec();
        assert!(parse_log(&words, false, false, &Loc::default(), &no_dns).is_err());
    }

    #[test]
    fn errors() {
        for (line, expect) in [
            ("log", "expects <address> and <facility> or global"),
            ("log 1.2.3.4", "expects <address>"),
            ("log 1.2.3.4 local9", "unknown log facility 'local9'"),
            (
                "log 1.2.3.4 local0 loud",
                "unknown optional log level 'loud'",
            ),
            ("log 1.2.3.4 local0 info quiet", "minimum log level 'quiet'"),
            (
                "log 1.2.3.4 local0 info err extra",
                "unexpected argument 'extra'",
            ),
            ("log 1.2.3.4 len 10 local0", "invalid log length '10'"),
            (
                "log 1.2.3.4 format json local0",
                "unknown log format 'json'",
            ),
            ("log 1.2.3.4 format iso local0", "not supported by rampart"),
            ("log 1.2.3.4 sample 1:2 local0", "sample"),
            ("log tcp@1.2.3.4:514 local0", "only UDP"),
            ("log global x", "unexpected argument 'x'"),
        ] {
            let err = parse(line).expect_err(line);
            assert!(err.contains(expect), "{line}: {err}");
        }
    }
}
