//! Addresses as HAProxy writes them: `[family@]host[:port[-end]]`, comma lists on
//! `bind`, Unix paths for logs, and name resolution at parse time.
//!
//! Like HAProxy's `str2sa_range()`, the port is whatever follows the last `:`
//! that is not inside `[...]`, so `:::80` is `[::]:80` and `[::1]` has no port.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

use super::model::LogAddr;

/// Resolves a host name to its addresses (empty when it does not resolve).
///
/// Only called for names that look like DNS host names: IP literals, `*`,
/// `localhost` and malformed names never reach it, so parsing random text can
/// never stall on DNS.
pub type Resolver<'a> = dyn Fn(&str) -> Vec<IpAddr> + 'a;

/// The resolver used by default: the system's `getaddrinfo()` via std.
pub fn system_resolver(host: &str) -> Vec<IpAddr> {
    (host, 0u16)
        .to_socket_addrs()
        .map(|addrs| addrs.map(|a| a.ip()).collect())
        .unwrap_or_default()
}

/// The address family forced by a `family@` prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Any,
    V4,
    V6,
}

/// What the `family@` prefix of an address says about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A TCP-style IP address (`ipv4@`, `ipv6@`, `tcp@`, … or no prefix).
    Stream(Family),
    /// A UDP address (`udp@`, `udp4@`, `udp6@`), only meaningful for logs.
    Dgram(Family),
    /// A Unix socket path (`unix@`, `uxst@`, `uxdg@`, or an absolute path).
    Unix,
    /// `fd@N`.
    Fd,
    /// Families rampart does not implement (`abns@`, `sockpair@`, `quic4@`, …).
    Other,
}

fn split_prefix(spec: &str) -> Result<(Kind, &str), String> {
    let Some((prefix, rest)) = spec.split_once('@') else {
        let kind = if spec.starts_with('/') {
            Kind::Unix
        } else {
            Kind::Stream(Family::Any)
        };
        return Ok((kind, spec));
    };
    let kind = match prefix {
        "ipv4" | "tcp4" => Kind::Stream(Family::V4),
        "ipv6" | "tcp6" => Kind::Stream(Family::V6),
        "tcp" => Kind::Stream(Family::Any),
        "udp" => Kind::Dgram(Family::Any),
        "udp4" => Kind::Dgram(Family::V4),
        "udp6" => Kind::Dgram(Family::V6),
        "unix" | "uxst" | "uxdg" => Kind::Unix,
        "fd" => Kind::Fd,
        "abns" | "abnsz" | "sockpair" | "quic4" | "quic6" | "mptcp" | "mptcp4" | "mptcp6"
        | "rhttp" | "ring" => Kind::Other,
        _ => return Err(format!("unknown address family '{prefix}' in '{spec}'")),
    };
    Ok((kind, rest))
}

/// Splits `host[:port]` at the last `:` that is not inside brackets.
fn split_host_port(s: &str) -> (&str, Option<&str>) {
    match s.rfind([':', ']']) {
        Some(i) if s.as_bytes()[i] == b':' => (&s[..i], Some(&s[i + 1..])),
        _ => (s, None),
    }
}

/// A port specification after the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Port {
    None,
    Range(u16, u16),
    /// `+N` / `-N`: relative to the client's destination port.
    Offset,
}

fn parse_port_number(text: &str, spec: &str) -> Result<u16, String> {
    text.parse::<u16>()
        .map_err(|_| format!("invalid port '{text}' in '{spec}'"))
}

fn parse_port(text: Option<&str>, spec: &str) -> Result<Port, String> {
    let Some(text) = text.filter(|t| !t.is_empty()) else {
        return Ok(Port::None);
    };
    match text.as_bytes()[0] {
        b'0'..=b'9' => {
            let (lo, hi) = text.split_once('-').unwrap_or((text, text));
            let (lo, hi) = (parse_port_number(lo, spec)?, parse_port_number(hi, spec)?);
            if lo > hi {
                return Err(format!("invalid port range '{lo}-{hi}' in '{spec}'"));
            }
            Ok(Port::Range(lo, hi))
        }
        b'+' | b'-' => Ok(Port::Offset),
        _ => Err(format!(
            "invalid character '{}' in port number '{text}' in '{spec}'",
            text.chars().next().unwrap_or('?')
        )),
    }
}

/// Whether `name` is syntactically a DNS host name (labels of letters, digits,
/// `-` and `_`), the only thing worth handing to the resolver.
fn looks_like_hostname(name: &str) -> bool {
    name.len() <= 253
        && name.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

fn family_matches(ip: &IpAddr, family: Family) -> bool {
    match family {
        Family::Any => true,
        Family::V4 => ip.is_ipv4(),
        Family::V6 => ip.is_ipv6(),
    }
}

/// Turns a host (IP literal, `[v6]`, `*`/empty, or name) into an address.
fn resolve_host(host: &str, family: Family, resolver: &Resolver<'_>) -> Result<IpAddr, String> {
    let wildcard = match family {
        Family::V6 => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        _ => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
    };
    if host.is_empty() || host == "*" {
        return Ok(wildcard);
    }
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let wrong_family = || format!("address '{host}' does not match the requested address family");
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return if family_matches(&ip, family) {
            Ok(ip)
        } else {
            Err(wrong_family())
        };
    }
    if bare.eq_ignore_ascii_case("localhost") {
        return Ok(match family {
            Family::V6 => IpAddr::V6(Ipv6Addr::LOCALHOST),
            _ => IpAddr::V4(Ipv4Addr::LOCALHOST),
        });
    }
    if !looks_like_hostname(bare) {
        return Err(format!("invalid address '{host}'"));
    }
    resolver(bare)
        .into_iter()
        .find(|ip| family_matches(ip, family))
        .ok_or_else(|| format!("could not resolve address '{bare}'"))
}

/// Parses a `bind` address list (`:80`, `*:8000-8003`, `[::]:443,1.2.3.4:80`)
/// into every socket address it designates.
pub(crate) fn parse_bind_addrs(
    spec: &str,
    resolver: &Resolver<'_>,
) -> Result<Vec<SocketAddr>, String> {
    let mut out = Vec::new();
    for item in spec.split(',') {
        let (kind, rest) = split_prefix(item)?;
        let family = match kind {
            Kind::Stream(f) => f,
            Kind::Unix => {
                return Err(format!(
                    "'{item}': Unix socket listeners are not supported by rampart"
                ))
            }
            Kind::Fd => {
                return Err(format!(
                    "'{item}': inherited file descriptors are not supported by rampart"
                ))
            }
            Kind::Dgram(_) | Kind::Other => {
                return Err(format!(
                    "'{item}': this address family is not supported by rampart"
                ))
            }
        };
        let (host, port) = split_host_port(rest);
        let (lo, hi) = match parse_port(port, item)? {
            Port::Range(lo, hi) if lo > 0 => (lo, hi),
            Port::Range(..) => return Err(format!("invalid port '0' in '{item}'")),
            Port::None => return Err(format!("missing port specification in '{item}'")),
            Port::Offset => return Err(format!("port offset not permitted here in '{item}'")),
        };
        let ip = resolve_host(host, family, resolver)?;
        out.extend((lo..=hi).map(|p| SocketAddr::new(ip, p)));
    }
    Ok(out)
}

/// A parsed `server` address: the host as written, its address, and the port
/// if one was given (`None` also for port 0, as HAProxy treats it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ServerAddr {
    pub host: String,
    pub ip: IpAddr,
    pub port: Option<u16>,
}

/// Parses a server address (`10.0.0.1:80`, `[::1]:80`, `db.local:5432`, `ipv4@x`).
pub(crate) fn parse_server_addr(spec: &str, resolver: &Resolver<'_>) -> Result<ServerAddr, String> {
    let (kind, rest) = split_prefix(spec)?;
    let Kind::Stream(family) = kind else {
        return Err(format!(
            "'{spec}': only IPv4/IPv6 server addresses are supported by rampart"
        ));
    };
    let (host, port) = split_host_port(rest);
    let port = match parse_port(port, spec)? {
        Port::None | Port::Range(0, 0) => None,
        Port::Range(lo, hi) if lo == hi => Some(lo),
        Port::Range(..) => return Err(format!("port range not permitted here in '{spec}'")),
        Port::Offset => {
            return Err(format!(
                "'{spec}': port offsets (+N/-N) are not supported by rampart"
            ))
        }
    };
    if host.is_empty() || host == "*" {
        return Err(format!("'{spec}': a server needs an address"));
    }
    let ip = resolve_host(host, family, resolver)?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
        .to_string();
    Ok(ServerAddr { host, ip, port })
}

fn is_tcp_prefixed(spec: &str) -> bool {
    spec.split_once('@')
        .is_some_and(|(prefix, _)| prefix.starts_with("tcp"))
}

/// Default syslog port, as in HAProxy.
const SYSLOG_PORT: u16 = 514;

/// Parses a `log` target address (`127.0.0.1`, `udp@h:p`, `/dev/log`, `stdout`).
pub(crate) fn parse_log_addr(spec: &str, resolver: &Resolver<'_>) -> Result<LogAddr, String> {
    match spec {
        "stdout" | "fd@1" => return Ok(LogAddr::Stdout),
        "stderr" | "fd@2" => return Ok(LogAddr::Stderr),
        _ => {}
    }
    let (kind, rest) = split_prefix(spec)?;
    let family = match kind {
        Kind::Unix if rest.is_empty() => return Err(format!("missing socket path in '{spec}'")),
        Kind::Unix => return Ok(LogAddr::Unix(PathBuf::from(rest))),
        // TCP log targets need HAProxy's ring buffers: not implemented.
        Kind::Stream(f) if !is_tcp_prefixed(spec) => f,
        Kind::Dgram(f) => f,
        Kind::Fd => return Err(format!("'{spec}': only fd@1 (stdout) and fd@2 (stderr) are supported")),
        Kind::Stream(_) | Kind::Other => {
            return Err(format!(
                "'{spec}': only UDP, Unix socket, stdout and stderr log targets are supported by rampart"
            ))
        }
    };
    let (host, port) = split_host_port(rest);
    let port = match parse_port(port, spec)? {
        Port::None | Port::Range(0, 0) => SYSLOG_PORT,
        Port::Range(lo, hi) if lo == hi => lo,
        _ => return Err(format!("invalid port in log address '{spec}'")),
    };
    if host.is_empty() {
        return Err(format!("missing address in '{spec}'"));
    }
    Ok(LogAddr::Udp(SocketAddr::new(
        resolve_host(host, family, resolver)?,
        port,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    fn no_dns(host: &str) -> Vec<IpAddr> {
        panic!("unexpected DNS lookup for {host}");
    }

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn bind_forms() {
        assert_eq!(parse_bind_addrs(":80", &no_dns), Ok(vec![sa("0.0.0.0:80")]));
        assert_eq!(
            parse_bind_addrs("*:80", &no_dns),
            Ok(vec![sa("0.0.0.0:80")])
        );
        assert_eq!(
            parse_bind_addrs("[::]:443", &no_dns),
            Ok(vec![sa("[::]:443")])
        );
        assert_eq!(
            parse_bind_addrs(":::443", &no_dns),
            Ok(vec![sa("[::]:443")])
        );
        assert_eq!(
            parse_bind_addrs("ipv6@:443", &no_dns),
            Ok(vec![sa("[::]:443")])
        );
        assert_eq!(
            parse_bind_addrs("ipv4@127.0.0.1:9", &no_dns),
            Ok(vec![sa("127.0.0.1:9")])
        );
        assert_eq!(
            parse_bind_addrs("10.0.0.1:8000-8002,:9000", &no_dns),
            Ok(vec![
                sa("10.0.0.1:8000"),
                sa("10.0.0.1:8001"),
                sa("10.0.0.1:8002"),
                sa("0.0.0.0:9000")
            ])
        );
    }

    #[test]
    fn bind_errors() {
        assert!(parse_bind_addrs("10.0.0.1", &no_dns)
            .unwrap_err()
            .contains("missing port"));
        assert!(parse_bind_addrs(":0", &no_dns).is_err());
        assert!(parse_bind_addrs(":70000", &no_dns).is_err());
        assert!(parse_bind_addrs(":90-80", &no_dns)
            .unwrap_err()
            .contains("invalid port range"));
        assert!(parse_bind_addrs(":+1", &no_dns).is_err());
        assert!(parse_bind_addrs("/run/x.sock", &no_dns)
            .unwrap_err()
            .contains("Unix"));
        assert!(parse_bind_addrs("fd@3", &no_dns).is_err());
        assert!(parse_bind_addrs("abns@x", &no_dns).is_err());
        assert!(parse_bind_addrs("bogus@1.2.3.4:1", &no_dns)
            .unwrap_err()
            .contains("unknown address family"));
        assert!(parse_bind_addrs("ipv4@[::1]:80", &no_dns).is_err());
        assert!(parse_bind_addrs(":8x", &no_dns)
            .unwrap_err()
            .contains("invalid"));
    }

    #[test]
    fn server_forms() {
        let s = parse_server_addr("192.168.1.101:80", &no_dns);
        assert_eq!(
            s,
            Ok(ServerAddr {
                host: "192.168.1.101".into(),
                ip: "192.168.1.101".parse().unwrap(),
                port: Some(80)
            })
        );
        let s = parse_server_addr("[::1]:8080", &no_dns).unwrap();
        assert_eq!(
            (s.host.as_str(), s.ip, s.port),
            ("::1", "::1".parse().unwrap(), Some(8080))
        );
        assert_eq!(parse_server_addr("[::1]", &no_dns).unwrap().port, None);
        assert_eq!(parse_server_addr("10.0.0.1", &no_dns).unwrap().port, None);
        assert_eq!(parse_server_addr("10.0.0.1:0", &no_dns).unwrap().port, None);
        let s = parse_server_addr("localhost:22", &no_dns).unwrap();
        assert_eq!(
            (s.host.as_str(), s.ip),
            ("localhost", IpAddr::V4(Ipv4Addr::LOCALHOST))
        );
    }

    #[test]
    fn server_errors() {
        assert!(parse_server_addr("10.0.0.1:80-81", &no_dns).is_err());
        assert!(parse_server_addr("10.0.0.1:+10", &no_dns)
            .unwrap_err()
            .contains("offsets"));
        assert!(parse_server_addr(":80", &no_dns).is_err());
        assert!(parse_server_addr("/tmp/sock", &no_dns).is_err());
        assert!(parse_server_addr("bad host!:80", &no_dns)
            .unwrap_err()
            .contains("invalid address"));
    }

    #[test]
    fn names_go_through_the_resolver() {
        let asked = RefCell::new(Vec::new());
        let resolver = |h: &str| {
            asked.borrow_mut().push(h.to_string());
            if h == "db.example" {
                vec!["2001:db8::1".parse().unwrap(), "10.1.2.3".parse().unwrap()]
            } else {
                Vec::new()
            }
        };
        let s = parse_server_addr("db.example:5432", &resolver).unwrap();
        assert_eq!(
            (s.host.as_str(), s.ip),
            ("db.example", "2001:db8::1".parse().unwrap())
        );
        let s = parse_server_addr("ipv4@db.example:5432", &resolver).unwrap();
        assert_eq!(s.ip, "10.1.2.3".parse::<IpAddr>().unwrap());
        let err = parse_server_addr("nope.example:1", &resolver).unwrap_err();
        assert_eq!(err, "could not resolve address 'nope.example'");
        assert_eq!(
            *asked.borrow(),
            ["db.example", "db.example", "nope.example"]
        );
    }

    #[test]
    fn log_targets() {
        assert_eq!(
            parse_log_addr("127.0.0.1", &no_dns),
            Ok(LogAddr::Udp(sa("127.0.0.1:514")))
        );
        assert_eq!(
            parse_log_addr("udp@10.0.0.1:1514", &no_dns),
            Ok(LogAddr::Udp(sa("10.0.0.1:1514")))
        );
        assert_eq!(
            parse_log_addr("[::1]:600", &no_dns),
            Ok(LogAddr::Udp(sa("[::1]:600")))
        );
        assert_eq!(
            parse_log_addr("/dev/log", &no_dns),
            Ok(LogAddr::Unix("/dev/log".into()))
        );
        assert_eq!(
            parse_log_addr("unix@/dev/log", &no_dns),
            Ok(LogAddr::Unix("/dev/log".into()))
        );
        assert_eq!(parse_log_addr("stdout", &no_dns), Ok(LogAddr::Stdout));
        assert_eq!(parse_log_addr("fd@2", &no_dns), Ok(LogAddr::Stderr));
        assert!(parse_log_addr("tcp@10.0.0.1:514", &no_dns).is_err());
        assert!(parse_log_addr("tcp4@10.0.0.1:514", &no_dns).is_err());
        let tcp_named = |_: &str| vec![IpAddr::V4(Ipv4Addr::new(10, 0, 0, 9))];
        assert_eq!(
            parse_log_addr("tcplogger", &tcp_named),
            Ok(LogAddr::Udp(sa("10.0.0.9:514")))
        );
        assert!(parse_log_addr("ring@buf", &no_dns).is_err());
        assert!(parse_log_addr("fd@5", &no_dns).is_err());
    }

    #[test]
    fn hostname_shape() {
        assert!(looks_like_hostname("wazuh-master.example.com"));
        assert!(looks_like_hostname("my_service"));
        assert!(!looks_like_hostname("a..b"));
        assert!(!looks_like_hostname("-a"));
        assert!(!looks_like_hostname("a b"));
        assert!(!looks_like_hostname(&"a".repeat(64)));
    }
}
