//! The Wazuh enrollment (authd, TLS 1515) text protocol, as pure functions.
//!
//! Request: `[OSSEC PASS: <pw> ]OSSEC A:'<name>'[ V:'<ver>'][ G:'<g1,g2>'][ IP:'<ip|src>'][ K:'<hash>']`
//! and a newline; reply `OSSEC K:'<id> <name> <ip> <key>'` or `ERROR: <msg>`.
//!
//! Parsing follows authd's `w_auth_parse_data`: the optional fields are recognised only in that
//! order, and whatever follows the last recognised field is ignored (so a field out of order is
//! ignored too, exactly as authd does). Validation follows `OS_IsValidName`,
//! `w_validate_group_name` and `OS_IsValidIP`; error texts are authd's.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

/// Longest request accepted (bytes, newline included).
pub const MAX_REQUEST: usize = 4096;
/// authd's `MAX_GROUPS_PER_MULTIGROUP`.
pub const MAX_GROUPS: usize = 128;
/// authd's `MAX_GROUP_NAME`.
pub const MAX_GROUP_NAME: usize = 255;
/// `OS_IsValidName` bounds.
pub const MIN_NAME: usize = 2;
pub const MAX_NAME: usize = 128;
/// Longest version authd scans (`%2048[^']`).
const MAX_VERSION: usize = 2048;
/// authd scans `IPSIZE` (INET6_ADDRSTRLEN) chars for the IP.
const MAX_IP: usize = 46;
/// authd scans a 40-char SHA-1; we accept longer so a full key fits too.
const MAX_KEY_HASH: usize = 128;
/// Characters authd allows in a group name (`,` only separates multigroups).
const GROUP_CHARS: &str = ".:;_-=+!@()";
const PROHIBITED: &str = "characters '\\/:*?\"<>|,' are prohibited";

/// An error to send back as `ERROR: <Display>`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthdError {
    #[error("Invalid request for new agent")]
    InvalidRequest,
    #[error("Request too long")]
    TooLong,
    #[error("Invalid password")]
    InvalidPassword,
    #[error("Invalid agent name: {0}")]
    InvalidName(String),
    /// `version`, `group`, `IP` or `key`.
    #[error("Unterminated {0} field")]
    Unterminated(&'static str),
    /// The text after "Invalid group name: " (the name, cut to 255, and why).
    #[error("Invalid group name: {0}")]
    InvalidGroupName(String),
    #[error("Maximum multigroup reached: Limit is {MAX_GROUPS}")]
    TooManyGroups,
    /// A well-formed group that does not exist (the caller checks `etc/shared/<group>`).
    #[error("Invalid group: {0}")]
    InvalidGroup(String),
    #[error("Invalid IP: {0}")]
    InvalidIp(String),
    #[error("Agent version must be lower or equal to manager version")]
    IncompatibleVersion,
}

/// What the agent asks for with `IP:'…'`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IpRequest {
    /// `src`: register with the connection's source address.
    Src,
    Addr(IpAddr),
    /// An address with a CIDR prefix (authd accepts and stores it as given).
    Net {
        addr: IpAddr,
        prefix: u8,
    },
    /// `any`, which authd also accepts.
    Any,
}

impl IpRequest {
    /// The `ip` to register: `src` becomes the peer address (IPv4-mapped IPv6 unwrapped).
    pub fn registry_ip(&self, peer: IpAddr) -> String {
        match self {
            IpRequest::Src => unmap(peer).to_string(),
            other => other.to_string(),
        }
    }
}

impl fmt::Display for IpRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IpRequest::Src => f.write_str("src"),
            IpRequest::Any => f.write_str("any"),
            IpRequest::Addr(a) => write!(f, "{a}"),
            IpRequest::Net { addr, prefix } => write!(f, "{addr}/{prefix}"),
        }
    }
}

/// The registry ip for a request: its `IP:` field if any, else the peer address with
/// `use_source_ip`, else `any` (authd's rule).
pub fn resolve_ip(ip: Option<&IpRequest>, peer: IpAddr, use_source_ip: bool) -> String {
    match ip {
        Some(r) => r.registry_ip(peer),
        None if use_source_ip => unmap(peer).to_string(),
        None => "any".to_string(),
    }
}

fn unmap(a: IpAddr) -> IpAddr {
    match a {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(a, IpAddr::V4),
        v4 => v4,
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnrollRequest {
    pub password: Option<String>,
    pub name: String,
    pub version: Option<String>,
    /// Deduplicated, in request order; empty when no `G:` field.
    pub groups: Vec<String>,
    pub ip: Option<IpRequest>,
    pub key_hash: Option<String>,
}

/// The key line handed to the agent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyReply {
    pub id: u32,
    pub name: String,
    pub ip: String,
    pub key: String,
}

/// Parses one request. Never panics; rejects input over `MAX_REQUEST`.
///
/// The password is everything between `OSSEC PASS: ` and the first ` OSSEC A:'` (a password
/// containing that text cannot be expressed); check it with `check_password`.
pub fn parse_request(line: &str) -> Result<EnrollRequest, AuthdError> {
    if line.len() > MAX_REQUEST {
        return Err(AuthdError::TooLong);
    }
    let mut rest = line;
    let mut password = None;
    if let Some(r) = rest.strip_prefix("OSSEC PASS: ") {
        let at = r.find(" OSSEC A:'").ok_or(AuthdError::InvalidRequest)?;
        password = Some(r[..at].to_string());
        rest = &r[at + 1..];
    }
    let r = rest
        .strip_prefix("OSSEC A:'")
        .ok_or(AuthdError::InvalidRequest)?;
    let end = r.find('\'').ok_or(AuthdError::InvalidRequest)?;
    let name = &r[..end];
    rest = &r[end + 1..];
    if !valid_name(name) {
        return Err(AuthdError::InvalidName(name.to_string()));
    }

    let version = field(&mut rest, " V:", "version", MAX_VERSION)?.map(str::to_string);

    let groups = match field(&mut rest, " G:", "group", MAX_REQUEST)? {
        Some(g) => parse_groups(g)?,
        None => Vec::new(),
    };

    let ip = match field(&mut rest, " IP:", "IP", MAX_IP)? {
        Some(v) if v.contains(' ') => return Err(AuthdError::Unterminated("IP")),
        Some("src") => Some(IpRequest::Src),
        Some(v) => Some(parse_ip(v).ok_or_else(|| AuthdError::InvalidIp(v.to_string()))?),
        None => None,
    };

    let key_hash = field(&mut rest, " K:", "key", MAX_KEY_HASH)?.map(str::to_string);

    Ok(EnrollRequest {
        password,
        name: name.to_string(),
        version,
        groups,
        ip,
        key_hash,
    })
}

/// Takes ` X:'value'` off the front of `rest` when it starts with `token`.
fn field<'a>(
    rest: &mut &'a str,
    token: &str,
    what: &'static str,
    max: usize,
) -> Result<Option<&'a str>, AuthdError> {
    let Some(r) = rest.strip_prefix(token) else {
        return Ok(None);
    };
    let r = r.strip_prefix('\'').ok_or(AuthdError::Unterminated(what))?;
    let end = r.find('\'').ok_or(AuthdError::Unterminated(what))?;
    if end > max {
        return Err(AuthdError::Unterminated(what));
    }
    *rest = &r[end + 1..];
    Ok(Some(&r[..end]))
}

/// `OS_IsValidName`: 2..=128 chars of `[A-Za-z0-9._-]`.
pub fn valid_name(name: &str) -> bool {
    (MIN_NAME..=MAX_NAME).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// `w_validate_group_name` on the whole `G:` value, then dedup and the multigroup limit.
/// `.` and `..` are refused too: group names become directories under `etc/shared/`.
pub fn parse_groups(value: &str) -> Result<Vec<String>, AuthdError> {
    let bad = |why: &str| AuthdError::InvalidGroupName(format!("{}... {why}", cut255(value)));
    if value.is_empty() {
        return Err(AuthdError::InvalidGroupName("Empty Group".into()));
    }
    let multi = value.contains(',');
    if !multi && value.len() > MAX_GROUP_NAME {
        return Err(bad("group is too large"));
    }
    if multi {
        for g in value.split(',').filter(|g| !g.is_empty()) {
            if g.contains(' ') {
                return Err(bad("white spaces are not allowed"));
            }
            if g.len() > MAX_GROUP_NAME {
                return Err(AuthdError::InvalidGroupName(format!(
                    "{}... group is too large",
                    cut255(g)
                )));
            }
        }
        if value.contains(",,") {
            return Err(bad("consecutive ',' are not allowed"));
        }
    }
    if value.bytes().all(|b| b == b',') {
        return Err(bad(PROHIBITED));
    }
    if value.starts_with(',') || value.ends_with(',') {
        return Err(bad("cannot start or end with ','"));
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || GROUP_CHARS.contains(c) || c == ',';
    if !value.chars().all(allowed) {
        return Err(bad(PROHIBITED));
    }
    let mut out: Vec<String> = Vec::new();
    for g in value.split(',') {
        if g == "." || g == ".." {
            return Err(AuthdError::InvalidGroup(g.to_string()));
        }
        if !out.iter().any(|o| o == g) {
            out.push(g.to_string());
        }
    }
    if out.len() > MAX_GROUPS {
        return Err(AuthdError::TooManyGroups);
    }
    Ok(out)
}

/// First 255 bytes (authd's `%.255s`), on a char boundary.
fn cut255(s: &str) -> &str {
    let mut end = s.len().min(MAX_GROUP_NAME);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// `OS_IsValidIP` for an `IP:` value other than `src`: `any`, an IPv4/IPv6 address, optionally
/// `/prefix` (IPv4 also `/netmask`). IPv4-mapped IPv6 is unwrapped like authd does.
pub fn parse_ip(v: &str) -> Option<IpRequest> {
    if v == "any" {
        return Some(IpRequest::Any);
    }
    let (addr, mask) = match v.split_once('/') {
        Some((a, m)) => (a, Some(m)),
        None => (v, None),
    };
    let addr = unmap(addr.parse::<IpAddr>().ok()?);
    let Some(mask) = mask else {
        return Some(IpRequest::Addr(addr));
    };
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let prefix = if mask.len() <= 3 && !mask.is_empty() && mask.bytes().all(|b| b.is_ascii_digit())
    {
        mask.parse::<u8>().ok().filter(|p| *p <= max)?
    } else if addr.is_ipv4() {
        netmask_prefix(mask.parse::<Ipv4Addr>().ok()?)?
    } else {
        return None;
    };
    Some(IpRequest::Net { addr, prefix })
}

/// `255.255.0.0` -> 16; `None` for a non-contiguous mask.
fn netmask_prefix(m: Ipv4Addr) -> Option<u8> {
    let bits = u32::from(m);
    let ones = bits.leading_ones();
    (bits.checked_shl(ones).unwrap_or(0) == 0).then_some(ones as u8)
}

/// authd's password rule: with a password configured the request must carry exactly it; without
/// one, a request that carries a password is malformed (authd sees no `OSSEC A:` at the start).
pub fn check_password(req: &EnrollRequest, expected: Option<&str>) -> Result<(), AuthdError> {
    match (expected, req.password.as_deref()) {
        (Some(want), Some(got)) if want == got => Ok(()),
        (Some(_), _) => Err(AuthdError::InvalidPassword),
        (None, Some(_)) => Err(AuthdError::InvalidRequest),
        (None, None) => Ok(()),
    }
}

/// Whether an agent of version `agent` may enroll with a manager of version `manager`
/// (`allow_higher_versions` off): compares `[Wazuh ]v?X.Y.Z` numerically; unparsable passes.
pub fn version_allowed(agent: &str, manager: &str) -> bool {
    match (version_triple(agent), version_triple(manager)) {
        (Some(a), Some(m)) => a <= m,
        _ => true,
    }
}

fn version_triple(v: &str) -> Option<[u32; 3]> {
    let v = v.trim();
    let v = v.strip_prefix("Wazuh ").unwrap_or(v);
    let v = v.strip_prefix('v').unwrap_or(v);
    let mut out = [0u32; 3];
    let mut parts = v.split('.');
    for slot in &mut out {
        let p = parts.next()?;
        let digits: String = p.chars().take_while(char::is_ascii_digit).collect();
        *slot = digits.parse().ok()?;
    }
    Some(out)
}

/// The request line an agent sends (newline included).
pub fn format_request(r: &EnrollRequest) -> String {
    let mut s = String::new();
    if let Some(pw) = &r.password {
        s.push_str("OSSEC PASS: ");
        s.push_str(pw);
        s.push(' ');
    }
    s.push_str("OSSEC A:'");
    s.push_str(&r.name);
    s.push('\'');
    if let Some(v) = &r.version {
        s.push_str(&format!(" V:'{v}'"));
    }
    if !r.groups.is_empty() {
        s.push_str(&format!(" G:'{}'", r.groups.join(",")));
    }
    if let Some(ip) = &r.ip {
        s.push_str(&format!(" IP:'{ip}'"));
    }
    if let Some(k) = &r.key_hash {
        s.push_str(&format!(" K:'{k}'"));
    }
    s.push('\n');
    s
}

/// `OSSEC K:'001 name any KEY'\n` (id zero-padded to 3 digits, wider when larger).
pub fn format_key(id: u32, name: &str, ip: &str, key: &str) -> String {
    format!("OSSEC K:'{id:03} {name} {ip} {key}'\n")
}

/// `ERROR: msg\n`.
pub fn format_error(msg: &str) -> String {
    format!("ERROR: {msg}\n")
}

/// Parses the manager's reply; `Err(msg)` for `ERROR: msg` and for anything malformed.
pub fn parse_reply(line: &str) -> Result<KeyReply, String> {
    let line = line.trim_end_matches(['\r', '\n']);
    if let Some(rest) = line.strip_prefix("ERROR") {
        let msg = rest.strip_prefix(':').unwrap_or(rest).trim_start();
        return Err(msg.to_string());
    }
    let malformed = || format!("Invalid reply from manager: {}", cut255(line));
    let body = line
        .strip_prefix("OSSEC K:'")
        .and_then(|b| b.strip_suffix('\''))
        .ok_or_else(malformed)?;
    let mut parts = body.split(' ');
    let (Some(id), Some(name), Some(ip), Some(key), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(malformed());
    };
    // Digits only (authd ids are up to 8; ours are any u32).
    if id.is_empty() || id.len() > 10 || !id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(malformed());
    }
    if name.is_empty() || ip.is_empty() || key.is_empty() {
        return Err(malformed());
    }
    Ok(KeyReply {
        id: id.parse().map_err(|_| malformed())?,
        name: name.to_string(),
        ip: ip.to_string(),
        key: key.to_string(),
    })
}

/// A new agent key: 64 lowercase hex chars (32 bytes) from the OS RNG.
pub fn new_key() -> String {
    use rand::{RngCore, TryRngCore};
    let mut bytes = [0u8; 32];
    if rand::rngs::OsRng.try_fill_bytes(&mut bytes).is_err() {
        // The thread RNG is a CSPRNG seeded from the OS; only used if the OS source errors.
        rand::rng().fill_bytes(&mut bytes);
    }
    let mut s = String::with_capacity(64);
    for b in bytes {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(name: &str) -> EnrollRequest {
        EnrollRequest {
            password: None,
            name: name.into(),
            version: None,
            groups: vec![],
            ip: None,
            key_hash: None,
        }
    }

    #[test]
    fn parses_a_full_agent_request() {
        let r = parse_request(
            "OSSEC PASS: s3cr et OSSEC A:'web-01' V:'v4.14.0' G:'default,linux' IP:'src' K:'abc'\n",
        );
        let want = EnrollRequest {
            password: Some("s3cr et".into()),
            version: Some("v4.14.0".into()),
            groups: vec!["default".into(), "linux".into()],
            ip: Some(IpRequest::Src),
            key_hash: Some("abc".into()),
            ..req("web-01")
        };
        assert_eq!(r, Ok(want));
    }

    #[test]
    fn minimal_request_without_newline() {
        assert_eq!(parse_request("OSSEC A:'ab'"), Ok(req("ab")));
    }

    #[test]
    fn errors_use_authd_texts() {
        let e = |l: &str| parse_request(l).map_err(|e| e.to_string()).err();
        assert_eq!(e("hello").as_deref(), Some("Invalid request for new agent"));
        assert_eq!(
            e("OSSEC A:'noquote").as_deref(),
            Some("Invalid request for new agent")
        );
        assert_eq!(e("OSSEC A:'a'").as_deref(), Some("Invalid agent name: a"));
        assert_eq!(
            e("OSSEC A:'a b'").as_deref(),
            Some("Invalid agent name: a b")
        );
        assert_eq!(
            e("OSSEC A:'ab' V:'x").as_deref(),
            Some("Unterminated version field")
        );
        assert_eq!(
            e("OSSEC A:'ab' G:'a,,b'").as_deref(),
            Some("Invalid group name: a,,b... consecutive ',' are not allowed")
        );
        assert_eq!(
            e("OSSEC A:'ab' G:''").as_deref(),
            Some("Invalid group name: Empty Group")
        );
        assert_eq!(
            e("OSSEC A:'ab' G:'a/b'").as_deref(),
            Some("Invalid group name: a/b... characters '\\/:*?\"<>|,' are prohibited")
        );
        assert_eq!(
            e("OSSEC A:'ab' G:'..'").as_deref(),
            Some("Invalid group: ..")
        );
        assert_eq!(
            e("OSSEC A:'ab' IP:'1.2.3.999'").as_deref(),
            Some("Invalid IP: 1.2.3.999")
        );
        assert_eq!(
            e("OSSEC A:'ab' IP:'1.2 3'").as_deref(),
            Some("Unterminated IP field")
        );
        assert_eq!(
            e(&"x".repeat(MAX_REQUEST + 1)).as_deref(),
            Some("Request too long")
        );
    }

    #[test]
    fn name_limits() {
        assert!(valid_name("ab"));
        assert!(valid_name(&"a".repeat(128)));
        assert!(!valid_name(&"a".repeat(129)));
        assert!(!valid_name("héllo"));
    }

    #[test]
    fn groups_dedup_and_limit() {
        assert_eq!(
            parse_groups("a,b,a"),
            Ok(vec!["a".to_string(), "b".to_string()])
        );
        let many: Vec<String> = (0..129).map(|i| format!("g{i}")).collect();
        assert_eq!(
            parse_groups(&many.join(",")),
            Err(AuthdError::TooManyGroups)
        );
        assert_eq!(
            parse_groups(&many[..128].join(",")).map(|g| g.len()),
            Ok(128)
        );
        assert!(parse_groups(&"g".repeat(256)).is_err());
        assert!(parse_groups(&"g".repeat(255)).is_ok());
        assert!(parse_groups(",a").is_err());
    }

    #[test]
    fn ip_forms() {
        assert_eq!(parse_ip("any"), Some(IpRequest::Any));
        assert_eq!(
            parse_ip("10.0.0.1"),
            Some(IpRequest::Addr(
                "10.0.0.1"
                    .parse()
                    .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
            ))
        );
        assert_eq!(
            parse_ip("10.0.0.0/8").map(|i| i.to_string()).as_deref(),
            Some("10.0.0.0/8")
        );
        assert_eq!(
            parse_ip("10.0.0.0/255.255.0.0")
                .map(|i| i.to_string())
                .as_deref(),
            Some("10.0.0.0/16")
        );
        assert_eq!(parse_ip("10.0.0.0/255.0.255.0"), None);
        assert_eq!(parse_ip("10.0.0.0/33"), None);
        assert_eq!(
            parse_ip("fd00::1/64").map(|i| i.to_string()).as_deref(),
            Some("fd00::1/64")
        );
        assert_eq!(
            parse_ip("::ffff:1.2.3.4").map(|i| i.to_string()).as_deref(),
            Some("1.2.3.4")
        );
        assert_eq!(parse_ip("src1"), None);
        let peer: IpAddr = "::ffff:10.1.1.1"
            .parse()
            .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        assert_eq!(resolve_ip(Some(&IpRequest::Src), peer, false), "10.1.1.1");
        assert_eq!(resolve_ip(None, peer, false), "any");
        assert_eq!(resolve_ip(None, peer, true), "10.1.1.1");
    }

    #[test]
    fn password_rules() {
        let with = |p: Option<&str>| EnrollRequest {
            password: p.map(str::to_string),
            ..req("ab")
        };
        assert_eq!(check_password(&with(Some("pw")), Some("pw")), Ok(()));
        assert_eq!(
            check_password(&with(Some("px")), Some("pw")),
            Err(AuthdError::InvalidPassword)
        );
        assert_eq!(
            check_password(&with(None), Some("pw")),
            Err(AuthdError::InvalidPassword)
        );
        assert_eq!(
            check_password(&with(Some("pw")), None),
            Err(AuthdError::InvalidRequest)
        );
        assert_eq!(check_password(&with(None), None), Ok(()));
    }

    #[test]
    fn versions() {
        assert!(version_allowed("v4.14.0", "v4.14.0"));
        assert!(version_allowed("Wazuh v4.9.2", "v4.14.0"));
        assert!(!version_allowed("v4.15.0", "v4.14.0"));
        assert!(version_allowed("garbage", "v4.14.0"));
    }

    #[test]
    fn replies() {
        assert_eq!(format_key(1, "ab", "any", "k"), "OSSEC K:'001 ab any k'\n");
        assert_eq!(
            format_key(12345, "ab", "any", "k"),
            "OSSEC K:'12345 ab any k'\n"
        );
        assert_eq!(
            parse_reply("ERROR: Duplicate agent name: ab\n"),
            Err("Duplicate agent name: ab".into())
        );
        assert_eq!(format_error("x"), "ERROR: x\n");
        assert!(parse_reply("OSSEC K:'001 ab any'").is_err());
        assert!(parse_reply("nonsense").is_err());
        let k = new_key();
        assert_eq!(k.len(), 64);
        assert!(k
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
        assert_ne!(k, new_key());
    }
}
