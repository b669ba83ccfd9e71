//! Traffic log lines, byte-for-byte as HAProxy writes them (configuration manual §8.2.1
//! "Default log format" and §8.2.2 "TCP log format"). Pure: the caller supplies the
//! UTC offset so output does not depend on the machine's time zone.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::SystemTime;

use time::{OffsetDateTime, UtcOffset};

use crate::config::model::Mode;

/// What HAProxy prints in place of a server name when none was reached.
pub const NOSRV: &str = "<NOSRV>";

pub(crate) const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Everything a tcplog line reports about one finished session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionLog {
    pub client: SocketAddr,
    pub accept_time: SystemTime,
    pub frontend: String,
    /// Backend name, or the frontend's name when no backend was selected (as HAProxy does).
    pub backend: String,
    /// `None` prints `<NOSRV>`.
    pub server: Option<String>,
    /// Queue wait; `None` prints `-1`.
    pub tw_ms: Option<u64>,
    /// Connect time; `None` prints `-1`.
    pub tc_ms: Option<u64>,
    /// Total session time.
    pub tt_ms: u64,
    /// Bytes sent server -> client (`%B`).
    pub bytes_read: u64,
    /// Termination state, e.g. `*b"--"`, `*b"cD"`, `*b"sC"`, `*b"SC"`, `*b"sQ"`.
    pub termination: [u8; 2],
    pub actconn: u32,
    pub feconn: u32,
    pub beconn: u32,
    pub srv_conn: u32,
    pub retries: u32,
    /// Prints `+` before the retry count.
    pub redispatched: bool,
    pub srv_queue: u32,
    pub backend_queue: u32,
}

/// `t` converted to `offset`, falling back to UTC if the shift leaves time's range
/// (only for absurd clocks; never worth a panic in a log path).
pub(crate) fn to_offset(t: SystemTime, offset: UtcOffset) -> OffsetDateTime {
    let utc = OffsetDateTime::from(t);
    utc.checked_to_offset(offset).unwrap_or(utc)
}

/// HAProxy's `%t`: `06/Feb/2009:12:12:51.443` in the given offset.
pub fn format_accept_date(t: SystemTime, offset: UtcOffset) -> String {
    let mut s = String::with_capacity(24);
    push_accept_date(&mut s, t, offset);
    s
}

fn push_accept_date(s: &mut String, t: SystemTime, offset: UtcOffset) {
    let d = to_offset(t, offset);
    let month = MONTHS[usize::from(u8::from(d.month())) - 1];
    // Writing to a String cannot fail.
    let _ = write!(
        s,
        "{:02}/{}/{:04}:{:02}:{:02}:{:02}.{:03}",
        d.day(),
        month,
        d.year(),
        d.hour(),
        d.minute(),
        d.second(),
        d.millisecond()
    );
}

/// HAProxy prints addresses with inet_ntop and no brackets, so IPv6 is `::1:8080`.
fn push_addr(s: &mut String, a: SocketAddr) {
    let _ = write!(s, "{}:{}", a.ip(), a.port());
}

fn push_timer(s: &mut String, v: Option<u64>) {
    match v {
        Some(ms) => {
            let _ = write!(s, "{ms}");
        }
        None => s.push_str("-1"),
    }
}

/// The `option tcplog` line:
/// `%ci:%cp [%t] %ft %b/%s %Tw/%Tc/%Tt %B %ts %ac/%fc/%bc/%sc/%rc %sq/%bq`.
pub fn format_tcplog(l: &SessionLog, offset: UtcOffset) -> String {
    let mut s = String::with_capacity(128);
    push_addr(&mut s, l.client);
    s.push_str(" [");
    push_accept_date(&mut s, l.accept_time, offset);
    s.push_str("] ");
    s.push_str(&l.frontend);
    s.push(' ');
    s.push_str(&l.backend);
    s.push('/');
    s.push_str(l.server.as_deref().unwrap_or(NOSRV));
    s.push(' ');
    push_timer(&mut s, l.tw_ms);
    s.push('/');
    push_timer(&mut s, l.tc_ms);
    let _ = write!(s, "/{} {} ", l.tt_ms, l.bytes_read);
    for b in l.termination {
        // Keep the line one token per field even if a caller passes garbage.
        s.push(if b.is_ascii_graphic() {
            char::from(b)
        } else {
            '?'
        });
    }
    let _ = write!(
        s,
        " {}/{}/{}/{}/{}{} {}/{}",
        l.actconn,
        l.feconn,
        l.beconn,
        l.srv_conn,
        if l.redispatched { "+" } else { "" },
        l.retries,
        l.srv_queue,
        l.backend_queue
    );
    s
}

/// The line HAProxy emits at accept time when neither tcplog nor httplog is set:
/// `Connect from 10.0.1.2:33312 to 10.0.3.31:8012 (www/HTTP)`. `dst` is the address
/// the client connected to (the listener's local address).
pub fn format_connect(l: &SessionLog, dst: SocketAddr, mode: Mode) -> String {
    let mut s = String::with_capacity(80);
    s.push_str("Connect from ");
    push_addr(&mut s, l.client);
    s.push_str(" to ");
    push_addr(&mut s, dst);
    let mode = match mode {
        Mode::Tcp => "TCP",
        Mode::Http => "HTTP",
    };
    let _ = write!(s, " ({}/{mode})", l.frontend);
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    /// 2009-02-06 12:12:51.443 UTC, the accept date of the manual's example.
    fn doc_time() -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(1_233_922_371_443)
    }

    fn doc_example() -> SessionLog {
        SessionLog {
            client: "10.0.1.2:33313".parse().expect("literal"),
            accept_time: doc_time(),
            frontend: "fnt".into(),
            backend: "bck".into(),
            server: Some("srv1".into()),
            tw_ms: Some(0),
            tc_ms: Some(0),
            tt_ms: 5007,
            bytes_read: 212,
            termination: *b"--",
            actconn: 0,
            feconn: 0,
            beconn: 0,
            srv_conn: 0,
            retries: 3,
            redispatched: false,
            srv_queue: 0,
            backend_queue: 0,
        }
    }

    #[test]
    fn documented_example() {
        assert_eq!(
            format_tcplog(&doc_example(), UtcOffset::UTC),
            "10.0.1.2:33313 [06/Feb/2009:12:12:51.443] fnt bck/srv1 0/0/5007 212 -- 0/0/0/0/3 0/0"
        );
    }

    #[test]
    fn nosrv_unset_timers_redispatch() {
        let mut l = doc_example();
        l.server = None;
        l.backend = "fnt".into();
        l.tw_ms = None;
        l.tc_ms = None;
        l.tt_ms = 12;
        l.bytes_read = 0;
        l.termination = *b"SC";
        l.actconn = 7;
        l.feconn = 6;
        l.beconn = 5;
        l.srv_conn = 4;
        l.retries = 2;
        l.redispatched = true;
        l.srv_queue = 1;
        l.backend_queue = 9;
        assert_eq!(
            format_tcplog(&l, UtcOffset::UTC),
            "10.0.1.2:33313 [06/Feb/2009:12:12:51.443] fnt fnt/<NOSRV> -1/-1/12 0 SC 7/6/5/4/+2 1/9"
        );
    }

    #[test]
    fn ipv6_client_and_offset() {
        let mut l = doc_example();
        l.client = "[::1]:40000".parse().expect("literal");
        let plus2 = UtcOffset::from_hms(2, 0, 0).expect("valid offset");
        assert_eq!(
            format_tcplog(&l, plus2),
            "::1:40000 [06/Feb/2009:14:12:51.443] fnt bck/srv1 0/0/5007 212 -- 0/0/0/0/3 0/0"
        );
    }

    #[test]
    fn accept_date_pads_fields() {
        // 2024-03-05 04:03:02.007 UTC
        let t = UNIX_EPOCH + Duration::from_millis(1_709_611_382_007);
        assert_eq!(
            format_accept_date(t, UtcOffset::UTC),
            "05/Mar/2024:04:03:02.007"
        );
    }

    #[test]
    fn default_connect_line() {
        let mut l = doc_example();
        l.client = "10.0.1.2:33312".parse().expect("literal");
        l.frontend = "www".into();
        let dst = "10.0.3.31:8012".parse().expect("literal");
        assert_eq!(
            format_connect(&l, dst, Mode::Http),
            "Connect from 10.0.1.2:33312 to 10.0.3.31:8012 (www/HTTP)"
        );
        assert_eq!(
            format_connect(&l, dst, Mode::Tcp),
            "Connect from 10.0.1.2:33312 to 10.0.3.31:8012 (www/TCP)"
        );
    }
}
