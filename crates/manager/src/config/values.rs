//! Pure parsers for the scalar values found in ossec.conf. Each returns the fix-it message
//! that the caller attaches to the element's path and line.

use std::net::IpAddr;
use std::time::Duration;

/// The unit a bare number stands for (Wazuh: seconds, except a few minute-valued options).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Seconds,
    Minutes,
}

/// Wazuh booleans are the words `yes` and `no`, nothing else.
pub fn parse_bool(v: &str) -> Result<bool, String> {
    match v {
        "yes" => Ok(true),
        "no" => Ok(false),
        _ => Err(format!("expected yes or no, got '{v}'")),
    }
}

/// A TCP port restricted to the unprivileged range, as the brief asks for cluster, auth, remote.
pub fn parse_port(v: &str) -> Result<u16, String> {
    parse_port_in(v, 1024)
}

/// A TCP port of at least `min`.
pub fn parse_port_in(v: &str, min: u16) -> Result<u16, String> {
    match v.parse::<u16>() {
        Ok(p) if p >= min => Ok(p),
        _ => Err(format!(
            "port must be a number between {min} and 65535, got '{v}'"
        )),
    }
}

/// An unsigned integer in `[min, max]`.
pub fn parse_u32_in(v: &str, min: u32, max: u32) -> Result<u32, String> {
    match v.parse::<u32>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(format!(
            "must be a number between {min} and {max}, got '{v}'"
        )),
    }
}

/// An IPv4 or IPv6 address literal (no hostnames: these are bind addresses).
pub fn parse_ip(v: &str) -> Result<IpAddr, String> {
    v.parse::<IpAddr>()
        .map_err(|_| format!("expected an IP address such as 0.0.0.0 or ::, got '{v}'"))
}

/// Wazuh time values: a bare number in `unit`, or a number with suffix s/m/h/d/w
/// (plus `ms`, which rampart accepts so tests and benchmarks can run fast).
pub fn parse_time(v: &str, unit: Unit) -> Result<Duration, String> {
    let bad = || {
        let bare = match unit {
            Unit::Seconds => "seconds",
            Unit::Minutes => "minutes",
        };
        format!(
            "invalid time value '{v}'; use a number of {bare} or a number with a suffix \
             s, m, h or d (e.g. 60, 10m, 1h)"
        )
    };
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (digits, suffix) = v.split_at(split);
    if digits.is_empty() {
        return Err(bad());
    }
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let secs_per = |mult: u64| n.checked_mul(mult).map(Duration::from_secs);
    let d = match suffix {
        "" => match unit {
            Unit::Seconds => secs_per(1),
            Unit::Minutes => secs_per(60),
        },
        "ms" => Some(Duration::from_millis(n)),
        "s" => secs_per(1),
        "m" => secs_per(60),
        "h" => secs_per(3600),
        "d" => secs_per(86_400),
        "w" => secs_per(604_800),
        _ => None,
    };
    d.ok_or_else(bad)
}

/// Cluster and node names: `[A-Za-z0-9_-]+`.
pub fn parse_name(v: &str) -> Result<String, String> {
    if v.is_empty() {
        return Err("must not be empty; use letters, digits, '_' or '-'".to_string());
    }
    match v
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'))
    {
        Some(c) => Err(format!(
            "invalid character '{c}' in '{v}'; use only letters, digits, '_' or '-'"
        )),
        None => Ok(v.to_string()),
    }
}

/// The cluster key: exactly 32 ASCII alphanumerics (Wazuh derives the Fernet key from it).
pub fn parse_key(v: &str) -> Result<String, String> {
    const FIX: &str = "generate one with: openssl rand -hex 16";
    let n = v.chars().count();
    if n != 32 {
        return Err(format!(
            "must be exactly 32 alphanumeric characters, got {n}; {FIX}"
        ));
    }
    if let Some(c) = v.chars().find(|c| !c.is_ascii_alphanumeric()) {
        return Err(format!(
            "must be exactly 32 alphanumeric characters, found '{c}'; {FIX}"
        ));
    }
    Ok(v.to_string())
}

/// A ratio in `(0, 1]` (the helper's imbalance tolerance).
pub fn parse_ratio(v: &str) -> Result<f64, String> {
    match v.parse::<f64>() {
        Ok(t) if t > 0.0 && t <= 1.0 => Ok(t),
        _ => Err(format!(
            "must be a number greater than 0 and at most 1 (e.g. 0.1), got '{v}'"
        )),
    }
}

/// A non-zero time value.
pub fn parse_positive_time(v: &str) -> Result<Duration, String> {
    let d = parse_time(v, Unit::Seconds)?;
    if d.is_zero() {
        return Err(format!("must be greater than zero, got '{v}'"));
    }
    Ok(d)
}

/// A time value of at least `min`.
pub fn parse_time_min(v: &str, unit: Unit, min: Duration) -> Result<Duration, String> {
    let d = parse_time(v, unit)?;
    if d < min {
        return Err(format!(
            "must be at least {}s, got '{v}'",
            min.as_secs_f64()
        ));
    }
    Ok(d)
}

/// remoted's `<protocol>`: `tcp`, `udp` or both, comma separated; normalised to lowercase.
pub fn parse_protocol(v: &str) -> Result<String, String> {
    let parts: Vec<String> = v
        .split(',')
        .map(|p| p.trim().to_ascii_lowercase())
        .collect();
    if parts.iter().all(|p| p == "tcp" || p == "udp") {
        Ok(parts.join(","))
    } else {
        Err(format!("expected tcp, udp or tcp,udp, got '{v}'"))
    }
}

/// Edit distance counting an adjacent transposition as one edit (optimal string alignment),
/// so `prot` is one edit from `port`. Names are short; the O(n*m) table is fine.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let w = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * w];
    for i in 0..=a.len() {
        d[i * w] = i;
    }
    for (j, cell) in d.iter_mut().enumerate().take(w) {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[(i - 1) * w + j] + 1)
                .min(d[i * w + j - 1] + 1)
                .min(d[(i - 1) * w + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[(i - 2) * w + j - 2] + 1);
            }
            d[i * w + j] = v;
        }
    }
    d[a.len() * w + b.len()]
}

/// The known element an unknown one most likely meant, if any is close.
///
/// Besides plain edit distance, a name made of a (misspelt) section prefix plus a known
/// element (`clustr_name` in `<cluster>`) suggests that element (`name`).
pub fn suggest<'a>(unknown: &str, section: &str, known: &[&'a str]) -> Option<&'a str> {
    if let Some((prefix, rest)) = unknown.split_once('_') {
        if edit_distance(prefix, section) <= 2 {
            if let Some(k) = known.iter().find(|k| edit_distance(rest, k) <= 1) {
                return Some(k);
            }
        }
    }
    let limit = (unknown.chars().count() / 3).clamp(2, 3);
    known
        .iter()
        .map(|k| (edit_distance(unknown, k), *k))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// The message for an element `name` that `<parent>` (path like `client/server`) does not
/// know, with a suggestion among `known`.
pub fn unknown_element(name: &str, parent: &str, section: &str, known: &[&str]) -> String {
    let leaf = parent.rsplit('/').next().unwrap_or(parent);
    let hint = match suggest(name, section, known) {
        Some(k) => format!("did you mean <{k}>?"),
        None => "remove it or check the spelling".to_string(),
    };
    format!("unknown element <{name}> in <{leaf}>; {hint}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        assert_eq!(parse_time("60", Unit::Seconds), Ok(Duration::from_secs(60)));
        assert_eq!(
            parse_time("10m", Unit::Seconds),
            Ok(Duration::from_secs(600))
        );
        assert_eq!(
            parse_time("1h", Unit::Seconds),
            Ok(Duration::from_secs(3600))
        );
        assert_eq!(
            parse_time("2d", Unit::Seconds),
            Ok(Duration::from_secs(172_800))
        );
        assert_eq!(
            parse_time("250ms", Unit::Seconds),
            Ok(Duration::from_millis(250))
        );
        assert_eq!(
            parse_time("240", Unit::Minutes),
            Ok(Duration::from_secs(14_400))
        );
        for bad in ["", "h", "1x", "-1", "1.5s", "1 h", "99999999999999999999"] {
            assert!(parse_time(bad, Unit::Seconds).is_err(), "{bad}");
        }
    }

    #[test]
    fn keys_names_ports() {
        assert!(parse_key("c98b62a9b6169ac5f67dae55ae4a9088").is_ok());
        let e = parse_key("c98b62a9b6169ac5f67dae55ae4a90").unwrap_err();
        assert!(
            e.contains("got 30") && e.contains("openssl rand -hex 16"),
            "{e}"
        );
        assert!(parse_key("c98b62a9b6169ac5f67dae55ae4a908!").is_err());
        assert!(parse_name("master-node_1").is_ok());
        assert!(parse_name("bad name").is_err());
        assert!(parse_name("").is_err());
        assert_eq!(parse_port("1516"), Ok(1516));
        assert!(parse_port("1023").is_err());
        assert!(parse_port("65536").is_err());
        assert_eq!(parse_protocol("TCP, udp"), Ok("tcp,udp".to_string()));
        assert!(parse_protocol("sctp").is_err());
        assert!(parse_ratio("0").is_err());
        assert_eq!(parse_ratio("1"), Ok(1.0));
    }

    #[test]
    fn suggestions() {
        let known = ["name", "node_name", "node_type", "key", "port"];
        assert_eq!(suggest("clustr_name", "cluster", &known), Some("name"));
        assert_eq!(suggest("nodename", "cluster", &known), Some("node_name"));
        assert_eq!(suggest("prot", "cluster", &known), Some("port"));
        assert_eq!(suggest("completely_else", "cluster", &known), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("prot", "port"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(suggest("nod", "nodes", &["node"]), Some("node"));
    }
}
