//! Pure parsers for the agent-only values; the shared ones come from the manager's
//! `config::values`. Each returns the fix-it message the walker attaches to the element.

use std::time::Duration;

use manager::config::values::suggest;

use super::{CryptoMethod, Protocol};

/// Formats read line by line (`multi-line:N` is matched by prefix).
pub(super) const FILE_FORMATS: &[&str] = &[
    "syslog",
    "json",
    "snort-full",
    "squid",
    "eventlog",
    "eventchannel",
    "audit",
    "mysql_log",
    "postgresql_log",
    "nmapg",
    "iis",
    "djb-multilog",
    "multi-line",
    "multi-line-regex",
];

/// Wazuh formats that are not files; such `<localfile>`s are skipped with a warning.
pub(super) const NON_FILE_FORMATS: &[&str] = &["command", "full_command", "journald", "macos"];

pub(super) fn set<T>(slot: &mut T, v: Option<T>) {
    if let Some(v) = v {
        *slot = v;
    }
}

pub(super) fn or_default(d: Duration, default: Duration) -> Duration {
    if d.is_zero() {
        default
    } else {
        d
    }
}

/// `12s`, or `1.5s` for sub-second values.
pub(super) fn secs(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}s", d.as_secs_f64())
    }
}

/// A comma list (`ubuntu, ubuntu18`); blanks dropped.
pub(super) fn list(v: String) -> Vec<String> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// A manager address: an IP or host name, not one of the placeholders Wazuh's packages ship.
pub(super) fn parse_address(v: &str) -> Result<String, String> {
    if v.is_empty() {
        return Err("must not be empty; set the manager's IP address or host name".to_string());
    }
    if v == "MANAGER_IP" || v == "0.0.0.0" {
        return Err(format!(
            "'{v}' is a placeholder; set the manager's IP address or host name"
        ));
    }
    if v.contains('/') || v.contains(char::is_whitespace) {
        return Err(format!(
            "invalid address '{v}'; expected an IP address or host name"
        ));
    }
    Ok(v.to_string())
}

pub(super) fn parse_protocol(v: &str) -> Result<Protocol, String> {
    match v.to_ascii_lowercase().as_str() {
        "tcp" => Ok(Protocol::Tcp),
        "udp" => Err(
            "rampart agents connect over TCP only; set <protocol>tcp</protocol> \
                      (and tcp in the manager's <remote>)"
                .to_string(),
        ),
        _ => Err(format!("expected tcp, got '{v}'")),
    }
}

pub(super) fn parse_crypto(v: &str) -> Result<CryptoMethod, String> {
    match v {
        "aes" => Ok(CryptoMethod::Aes),
        "blowfish" => Err(
            "rampart supports only AES; set <crypto_method>aes</crypto_method> \
                           (the Wazuh default)"
                .to_string(),
        ),
        _ => Err(format!("expected aes, got '{v}'")),
    }
}

/// Names the manager's enrollment service accepts: letters, digits, `-`, `_`, `.`, ≤128.
pub(super) fn parse_agent_name(v: &str) -> Result<String, String> {
    if v.is_empty() || v.len() > 128 {
        return Err(format!(
            "must be 1 to 128 characters (letters, digits, '-', '_' or '.'), got '{v}'"
        ));
    }
    match v
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        Some(c) => Err(format!(
            "invalid character '{c}' in '{v}'; use only letters, digits, '-', '_' or '.'"
        )),
        None => Ok(v.to_string()),
    }
}

pub(super) fn parse_log_format(v: &str) -> Result<String, String> {
    let known = FILE_FORMATS.contains(&v)
        || NON_FILE_FORMATS.contains(&v)
        || v.strip_prefix("multi-line:")
            .is_some_and(|n| n.trim().parse::<u32>().is_ok_and(|n| n > 0));
    if known {
        return Ok(v.to_string());
    }
    let all: Vec<&str> = FILE_FORMATS
        .iter()
        .chain(NON_FILE_FORMATS)
        .copied()
        .collect();
    let hint = match suggest(v, "", &all) {
        Some(k) => format!("did you mean '{k}'?"),
        None => format!("expected one of {}", all.join(", ")),
    };
    Err(format!("unknown log format '{v}'; {hint}"))
}
