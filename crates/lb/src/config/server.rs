//! `server` and `default-server` lines, shared with the runtime `add server`.

use std::time::Duration;

use super::addr::{parse_server_addr, Resolver};
use super::keywords::{option_entry, server_candidates, suggest, Treat, SERVER_OPTIONS};
use super::model::{Loc, Server, ServerSettings};
use super::notes::{invalid_name_char, Notes};
use super::units::{parse_time, parse_uint};

/// HAProxy's largest user weight.
const MAX_WEIGHT: u32 = 256;

/// Which kind of line the options come from; it changes what is allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    /// A `server` line in the configuration.
    Config,
    /// A `default-server` line: no `id`.
    Default,
    /// The runtime `add server` command: options rampart ignores are refused,
    /// since nobody would read a warning.
    Runtime,
}

/// Reads the option words of a server line into `tpl`.
///
/// `who` prefixes messages (`server s1`, `default-server`). Returns the explicit
/// `id` if one was given. Stops at the first word it cannot interpret, since the
/// number of arguments to skip is then unknown.
pub(crate) fn apply_options(
    tpl: &mut ServerSettings,
    words: &[String],
    who: &str,
    origin: Origin,
    notes: &mut Notes,
) -> Option<u32> {
    let mut reader = OptionReader {
        tpl,
        who,
        origin,
        notes,
        id: None,
    };
    let mut i = 0;
    while let Some(kw) = words.get(i) {
        let arg = words.get(i + 1).map(String::as_str);
        let rest = words.get(i + 2..).unwrap_or(&[]);
        match reader.apply(kw, arg, rest) {
            Some(consumed) => i += 1 + consumed,
            None => break,
        }
    }
    reader.id
}

/// State while reading the options of one line.
struct OptionReader<'a> {
    tpl: &'a mut ServerSettings,
    who: &'a str,
    origin: Origin,
    notes: &'a mut Notes,
    id: Option<u32>,
}

impl OptionReader<'_> {
    /// Applies one keyword; returns how many arguments it consumed, or `None`
    /// to stop reading the line.
    fn apply(&mut self, kw: &str, arg: Option<&str>, rest: &[String]) -> Option<usize> {
        let (who, notes) = (self.who, &mut *self.notes);
        let tpl = &mut *self.tpl;
        match kw {
            "check" | "no-check" => tpl.check = kw == "check",
            "backup" | "no-backup" => tpl.backup = kw == "backup",
            "disabled" | "enabled" => tpl.disabled = kw == "disabled",
            "inter" | "fastinter" | "downinter" => {
                let t = parse_interval(kw, need_arg(kw, arg, who, notes)?, who, notes)?;
                match kw {
                    "inter" => tpl.inter = t,
                    "fastinter" => tpl.fastinter = Some(t),
                    _ => tpl.downinter = Some(t),
                }
                return Some(1);
            }
            "rise" | "fall" => {
                let n = parse_positive(kw, need_arg(kw, arg, who, notes)?, who, notes)?;
                if kw == "rise" {
                    tpl.rise = n
                } else {
                    tpl.fall = n
                }
                return Some(1);
            }
            "port" => {
                let value = need_arg(kw, arg, who, notes)?;
                match parse_uint::<u16>(value) {
                    Ok(p) if p > 0 => tpl.check_port = Some(p),
                    _ => return bad_value(kw, value, "a port between 1 and 65535", who, notes),
                }
                return Some(1);
            }
            "weight" => {
                tpl.weight = parse_weight(need_arg(kw, arg, who, notes)?, who, notes)?;
                return Some(1);
            }
            "maxconn" | "maxqueue" => {
                let value = need_arg(kw, arg, who, notes)?;
                let Ok(n) = parse_uint::<u32>(value) else {
                    return bad_value(kw, value, "an unsigned integer", who, notes);
                };
                if kw == "maxconn" {
                    tpl.maxconn = n
                } else {
                    tpl.maxqueue = n
                }
                return Some(1);
            }
            "id" => return self.explicit_id(arg),
            "source" => return source(arg, rest, who, self.origin, notes),
            _ => return table_option(kw, who, self.origin, notes),
        }
        Some(0)
    }

    fn explicit_id(&mut self, arg: Option<&str>) -> Option<usize> {
        let value = need_arg("id", arg, self.who, self.notes)?;
        if self.origin == Origin::Default {
            self.notes.alert(format!(
                "'{}' : 'id' is not supported on 'default-server' lines.",
                self.who
            ));
        } else {
            self.id = Some(parse_positive("id", value, self.who, self.notes)?);
        }
        Some(1)
    }
}

fn parse_weight(value: &str, who: &str, notes: &mut Notes) -> Option<u32> {
    match parse_uint::<u32>(value) {
        Ok(w) if w <= MAX_WEIGHT => Some(w),
        _ => {
            let name = who.strip_prefix("server ").unwrap_or(who);
            notes.alert(format!(
                "'{who}' : weight of server {name} is not within 0 and {MAX_WEIGHT} ({value})."
            ));
            None
        }
    }
}

fn need_arg<'a>(kw: &str, arg: Option<&'a str>, who: &str, notes: &mut Notes) -> Option<&'a str> {
    if arg.is_none() {
        notes.alert(format!("'{who}' : '{kw}' expects an argument."));
    }
    arg
}

fn bad_value<T>(kw: &str, value: &str, expected: &str, who: &str, notes: &mut Notes) -> Option<T> {
    notes.alert(format!(
        "'{who}' : '{kw}' expects {expected}, got '{value}'."
    ));
    None
}

fn parse_interval(kw: &str, value: &str, who: &str, notes: &mut Notes) -> Option<Duration> {
    match parse_time(value) {
        Ok(t) if !t.is_zero() => Some(t),
        Ok(_) => bad_value(kw, value, "a time greater than 0", who, notes),
        Err(e) => {
            notes.alert(format!("'{who}' : invalid value for '{kw}': {e}."));
            None
        }
    }
}

fn parse_positive(kw: &str, value: &str, who: &str, notes: &mut Notes) -> Option<u32> {
    match parse_uint::<u32>(value) {
        Ok(0) => {
            notes.alert(format!("'{who}' : '{kw}' has to be > 0."));
            None
        }
        Ok(n) => Some(n),
        Err(_) => bad_value(kw, value, "a positive integer", who, notes),
    }
}

/// `source ADDR [usesrc ADDR] [interface NAME]`: ignored, but its arguments
/// must be skipped correctly to read the options after it.
fn source(
    arg: Option<&str>,
    rest: &[String],
    who: &str,
    origin: Origin,
    notes: &mut Notes,
) -> Option<usize> {
    need_arg("source", arg, who, notes)?;
    ignored("source", who, origin, notes)?;
    let mut consumed = 1;
    let mut i = 0;
    while let Some(word) = rest.get(i) {
        if !matches!(word.as_str(), "usesrc" | "interface") || rest.get(i + 1).is_none() {
            break;
        }
        consumed += 2;
        i += 2;
    }
    Some(consumed)
}

/// Reports an option rampart accepts but does not act on.
fn ignored(kw: &str, who: &str, origin: Origin, notes: &mut Notes) -> Option<()> {
    if origin == Origin::Runtime {
        notes.alert(format!(
            "'{kw}' is not supported by rampart for dynamic servers."
        ));
        return None;
    }
    notes.warn(format!("'{who}' : '{kw}' is ignored by rampart."));
    Some(())
}

fn table_option(kw: &str, who: &str, origin: Origin, notes: &mut Notes) -> Option<usize> {
    // `set-proxy-v2-tlv-fmt(<id>) <fmt>` carries its parameter in the keyword.
    let entry = if kw.starts_with("set-proxy-v2-tlv-fmt(") {
        Some((1, Treat::Ignored))
    } else {
        option_entry(SERVER_OPTIONS, kw)
    };
    match entry {
        Some((nargs, Treat::NoOp)) => Some(nargs),
        Some((nargs, Treat::Ignored)) => ignored(kw, who, origin, notes).map(|()| nargs),
        Some((nargs, Treat::Unsupported)) => {
            notes.alert(format!(
                "'{who}' : '{kw}' is not yet supported by rampart{}.",
                why_unsupported(kw)
            ));
            Some(nargs)
        }
        None => {
            let hint = suggest(kw, server_candidates())
                .map(|s| format!("; did you mean '{s}' maybe ?"))
                .unwrap_or_default();
            notes.alert(format!("'{who}' : unknown keyword '{kw}'{hint}"));
            None
        }
    }
}

fn why_unsupported(kw: &str) -> &'static str {
    match kw {
        "ssl" => " (TLS to servers comes with HTTP support)",
        k if k.starts_with("send-proxy") => " (the server would expect a PROXY protocol header)",
        "socks4" => " (connections would not go through the SOCKS proxy)",
        _ => "",
    }
}

/// Where a server line comes from and how to finish it.
pub(crate) struct Site<'a> {
    pub origin: Origin,
    /// Fills a missing port (the runtime API may pass one; configuration lines do not).
    pub default_port: Option<u16>,
    pub resolver: &'a Resolver<'a>,
    pub loc: &'a Loc,
}

/// Builds a server from `server NAME ADDR[:PORT] [options]`; `words` starts
/// with the address.
pub(crate) fn build_server(
    name: &str,
    words: &[String],
    tpl: &ServerSettings,
    site: &Site,
    notes: &mut Notes,
) -> Option<Server> {
    let who = format!("server {name}");
    if let Some(c) = invalid_name_char(name) {
        notes.alert(format!(
            "character '{c}' is not permitted in server name '{name}'."
        ));
        return None;
    }
    let Some(addr_word) = words.first() else {
        notes.alert(format!(
            "'{who}' expects <name> and <addr>[:<port>] as arguments."
        ));
        return None;
    };
    let mut tpl = tpl.clone();
    let id = apply_options(&mut tpl, &words[1..], &who, site.origin, notes);
    if notes.has_alert() {
        return None;
    }
    let addr = match parse_server_addr(addr_word, site.resolver) {
        Ok(a) => a,
        Err(e) => {
            notes.alert(format!("'{who}' : {e}."));
            return None;
        }
    };
    let Some(port) = addr.port.or(site.default_port) else {
        notes.alert(format!(
            "missing port for server '{name}' (address '{addr_word}'): rampart cannot reuse the client's destination port."
        ));
        return None;
    };
    Some(Server {
        name: name.to_string(),
        id: id.unwrap_or(0),
        host: addr.host,
        addr: std::net::SocketAddr::new(addr.ip, port),
        settings: tpl,
        loc: site.loc.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    fn no_dns(host: &str) -> Vec<IpAddr> {
        panic!("unexpected DNS lookup for {host}");
    }

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    fn build(line: &str) -> (Option<Server>, Notes) {
        let mut notes = Notes::default();
        let w = words(line);
        let loc = Loc::default();
        let site = Site {
            origin: Origin::Config,
            default_port: None,
            resolver: &no_dns,
            loc: &loc,
        };
        let s = build_server(
            &w[0],
            &w[1..],
            &ServerSettings::default(),
            &site,
            &mut notes,
        );
        (s, notes)
    }

    #[test]
    fn defaults_are_haproxy_builtins() {
        let (s, notes) = build("s1 10.0.0.1:80");
        let s = s.unwrap();
        assert!(notes.is_empty());
        assert_eq!(
            (
                s.settings.inter,
                s.settings.rise,
                s.settings.fall,
                s.settings.weight
            ),
            (Duration::from_secs(2), 2, 3, 1)
        );
        assert!(!s.settings.check && !s.settings.backup && !s.settings.disabled);
    }

    #[test]
    fn all_honoured_options() {
        let (s, notes) = build(
            "s1 10.0.0.1:80 check inter 5s fastinter 500 downinter 1m rise 4 fall 5 port 8080 weight 256 maxconn 100 maxqueue 10 backup disabled id 7",
        );
        assert!(notes.is_empty(), "{notes:?}");
        let s = s.unwrap();
        assert!(s.settings.check && s.settings.backup && s.settings.disabled);
        assert_eq!(s.settings.inter, Duration::from_secs(5));
        assert_eq!(s.settings.fastinter, Some(Duration::from_millis(500)));
        assert_eq!(s.settings.downinter, Some(Duration::from_secs(60)));
        assert_eq!(
            (
                s.settings.rise,
                s.settings.fall,
                s.settings.check_port,
                s.settings.weight
            ),
            (4, 5, Some(8080), 256)
        );
        assert_eq!(
            (s.settings.maxconn, s.settings.maxqueue, s.id),
            (100, 10, 7)
        );
    }

    #[test]
    fn negations_undo_template() {
        let mut tpl = ServerSettings::default();
        let mut notes = Notes::default();
        apply_options(
            &mut tpl,
            &words("check backup disabled"),
            "default-server",
            Origin::Default,
            &mut notes,
        );
        apply_options(
            &mut tpl,
            &words("no-check no-backup enabled"),
            "server s",
            Origin::Config,
            &mut notes,
        );
        assert_eq!(tpl, ServerSettings::default());
        assert!(notes.is_empty());
    }

    #[test]
    fn bad_values_are_alerts() {
        for (line, expect) in [
            (
                "s 1.1.1.1:1 weight 257",
                "weight of server s is not within 0 and 256 (257)",
            ),
            ("s 1.1.1.1:1 rise 0", "'rise' has to be > 0"),
            ("s 1.1.1.1:1 fall 0", "'fall' has to be > 0"),
            (
                "s 1.1.1.1:1 inter 0",
                "'inter' expects a time greater than 0",
            ),
            ("s 1.1.1.1:1 inter 5x", "invalid value for 'inter'"),
            ("s 1.1.1.1:1 port 0", "'port' expects a port"),
            (
                "s 1.1.1.1:1 maxconn -1",
                "'maxconn' expects an unsigned integer",
            ),
            ("s 1.1.1.1:1 inter", "'inter' expects an argument"),
            (
                "s 1.1.1.1:1 chek",
                "unknown keyword 'chek'; did you mean 'check' maybe ?",
            ),
            ("s 1.1.1.1:1 ssl", "'ssl' is not yet supported"),
            ("s 1.1.1.1:1 send-proxy", "PROXY protocol"),
            ("s 1.1.1.1", "missing port for server 's'"),
            ("s", "expects <name> and <addr>"),
            ("s/x 1.1.1.1:1", "character '/' is not permitted"),
        ] {
            let (s, notes) = build(line);
            assert!(s.is_none(), "{line}");
            let msg = notes.first_message().unwrap_or_default().to_string();
            assert!(msg.contains(expect), "{line}: {msg}");
        }
    }

    #[test]
    fn ignored_options_warn_and_skip_their_arguments() {
        let (s, notes) = build(
            "s 1.1.1.1:1 slowstart 10s source 10.0.0.1 usesrc clientip check resolvers dns no-ssl",
        );
        let s = s.unwrap();
        assert!(s.settings.check);
        assert!(!notes.has_alert());
        assert_eq!(
            notes.first_message(),
            Some("'server s' : 'slowstart' is ignored by rampart.")
        );
    }

    #[test]
    fn runtime_refuses_ignored_options() {
        let mut notes = Notes::default();
        let mut tpl = ServerSettings::default();
        apply_options(
            &mut tpl,
            &words("check slowstart 1s"),
            "server s",
            Origin::Runtime,
            &mut notes,
        );
        assert!(notes.has_alert());
        assert!(tpl.check);
    }

    #[test]
    fn default_port_fills_missing_port() {
        let mut notes = Notes::default();
        let loc = Loc::default();
        let site = Site {
            origin: Origin::Runtime,
            default_port: Some(443),
            resolver: &no_dns,
            loc: &loc,
        };
        let s = build_server(
            "s",
            &words("10.0.0.2"),
            &ServerSettings::default(),
            &site,
            &mut notes,
        );
        assert_eq!(s.unwrap().addr, "10.0.0.2:443".parse().unwrap());
    }
}
