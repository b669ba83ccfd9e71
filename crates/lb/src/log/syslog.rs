//! Syslog framing of one message for one target, as HAProxy's `build_log_header` and
//! `__do_send_log` lay it out. Pure: time, offset, pid and hostname are parameters.

use std::io::Write as _;
use std::time::SystemTime;

use time::UtcOffset;

use super::tcplog::{to_offset, MONTHS};
use crate::config::model::{LogFormat, LogLevel, LogTarget};

/// Line length HAProxy uses when `len` is not given (RFC 3164's limit).
pub const DEFAULT_MAX_LEN: usize = 1024;

pub const EMERG: LogLevel = 0;
pub const ALERT: LogLevel = 1;
pub const CRIT: LogLevel = 2;
pub const ERR: LogLevel = 3;
pub const WARNING: LogLevel = 4;
pub const NOTICE: LogLevel = 5;
/// Traffic logs are emitted at this level.
pub const INFO: LogLevel = 6;
pub const DEBUG: LogLevel = 7;

/// The process-wide parts of a syslog header.
#[derive(Debug, Clone, Copy)]
pub struct Origin<'a> {
    /// `log-tag`, "haproxy" by default. Empty omits the `tag[pid]: ` part (rfc3164).
    pub tag: &'a str,
    pub pid: u32,
    /// Only rfc5424 carries it; empty prints the NILVALUE `-`.
    pub hostname: &'a str,
    /// Offset applied to timestamps.
    pub offset: UtcOffset,
}

/// Whether `target` wants a message of `level`: its level argument is the least severe
/// one sent (numerically the highest).
pub fn accepts(target: &LogTarget, level: LogLevel) -> bool {
    level <= target.max_level
}

/// The level a message is sent with: HAProxy caps messages more severe than the
/// target's `minlevel` to it (`MAX(level, minlvl)`), so `emerg` does not reach every
/// terminal. Clamped to `debug` so the PRI stays within its facility.
pub fn effective_level(target: &LogTarget, level: LogLevel) -> LogLevel {
    level.max(target.min_level).min(DEBUG)
}

/// One datagram/line for `target`: header per `target.format`, the message (trailing
/// LF/NUL removed), truncated so the whole thing including the final `\n` fits
/// `target.max_len` (0 means the default 1024). The caller filters with [`accepts`].
///
/// `Rfc3164` is written as HAProxy's default `local` format, i.e. without the hostname,
/// since the model does not tell an explicit `format rfc3164` from the default.
pub fn frame(
    target: &LogTarget,
    origin: &Origin<'_>,
    level: LogLevel,
    now: SystemTime,
    msg: &str,
) -> Vec<u8> {
    let max_len = if target.max_len == 0 {
        DEFAULT_MAX_LEN
    } else {
        target.max_len
    };
    let level = effective_level(target, level);
    // Facility is masked to its 5 bits so a bad value cannot yield a malformed PRI.
    let pri = u32::from(target.facility & 0x1f) * 8 + u32::from(level);
    let mut out = Vec::with_capacity(64 + msg.len());
    // Writes to a Vec cannot fail.
    match target.format {
        LogFormat::Rfc3164 => {
            let d = to_offset(now, origin.offset);
            let month = MONTHS[usize::from(u8::from(d.month())) - 1];
            let _ = write!(
                out,
                "<{pri}>{month} {:2} {:02}:{:02}:{:02} ",
                d.day(),
                d.hour(),
                d.minute(),
                d.second()
            );
            if !origin.tag.is_empty() {
                let _ = write!(out, "{}[{}]: ", origin.tag, origin.pid);
            }
        }
        LogFormat::Rfc5424 => {
            let d = to_offset(now, origin.offset);
            let (oh, om, _) = d.offset().as_hms();
            let sign = if d.offset().is_negative() { '-' } else { '+' };
            let _ = write!(
                out,
                "<{pri}>1 {:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}{sign}{:02}:{:02} {} {} {} - - ",
                d.year(),
                u8::from(d.month()),
                d.day(),
                d.hour(),
                d.minute(),
                d.second(),
                d.microsecond(),
                oh.unsigned_abs(),
                om.unsigned_abs(),
                nil_if_empty(origin.hostname),
                nil_if_empty(origin.tag),
                origin.pid
            );
        }
        // `short` ignores the facility: systemd reads `<level>` only.
        LogFormat::Short => {
            let _ = write!(out, "<{level}>");
        }
        LogFormat::Raw => {}
    }
    out.extend_from_slice(msg.trim_end_matches(['\n', '\0']).as_bytes());
    // Header and message together are cut to leave room for the newline, as HAProxy does.
    out.truncate(max_len.saturating_sub(1));
    out.push(b'\n');
    out
}

fn nil_if_empty(s: &str) -> &str {
    if s.is_empty() {
        "-"
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::model::{Loc, LogAddr};
    use std::time::{Duration, UNIX_EPOCH};

    const LOCAL0: u8 = 16;
    const LOCAL2: u8 = 18;

    fn target(format: LogFormat, facility: u8) -> LogTarget {
        LogTarget {
            addr: LogAddr::Stdout,
            format,
            facility,
            max_level: DEBUG,
            min_level: EMERG,
            max_len: DEFAULT_MAX_LEN,
            loc: Loc::default(),
        }
    }

    fn origin() -> Origin<'static> {
        Origin {
            tag: "haproxy",
            pid: 14387,
            hostname: "lb1",
            offset: UtcOffset::UTC,
        }
    }

    /// 2009-02-06 12:12:56.443210 UTC
    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_micros(1_233_922_376_443_210)
    }

    fn text(v: Vec<u8>) -> String {
        String::from_utf8(v).expect("framing emits UTF-8 for UTF-8 input")
    }

    #[test]
    fn rfc3164_is_haproxy_local_format() {
        let t = target(LogFormat::Rfc3164, LOCAL2);
        assert_eq!(
            text(frame(&t, &origin(), INFO, now(), "hello")),
            "<150>Feb  6 12:12:56 haproxy[14387]: hello\n"
        );
        let mut o = origin();
        o.tag = "";
        assert_eq!(
            text(frame(&t, &o, INFO, now(), "hello\n")),
            "<150>Feb  6 12:12:56 hello\n"
        );
    }

    #[test]
    fn rfc3164_two_digit_day_and_offset() {
        let t = target(LogFormat::Rfc3164, LOCAL0);
        let mut o = origin();
        o.offset = UtcOffset::from_hms(-5, 0, 0).expect("valid offset");
        // 2024-03-15 02:03:04 UTC is 14 Mar 21:03:04 at -05:00.
        let at = UNIX_EPOCH + Duration::from_secs(1_710_468_184);
        assert_eq!(
            text(frame(&t, &o, ERR, at, "x")),
            "<131>Mar 14 21:03:04 haproxy[14387]: x\n"
        );
    }

    #[test]
    fn rfc5424() {
        let t = target(LogFormat::Rfc5424, LOCAL0);
        assert_eq!(
            text(frame(&t, &origin(), NOTICE, now(), "up")),
            "<133>1 2009-02-06T12:12:56.443210+00:00 lb1 haproxy 14387 - - up\n"
        );
        let mut o = origin();
        o.hostname = "";
        o.offset = UtcOffset::from_hms(-3, -30, 0).expect("valid offset");
        assert_eq!(
            text(frame(&t, &o, NOTICE, now(), "up")),
            "<133>1 2009-02-06T08:42:56.443210-03:30 - haproxy 14387 - - up\n"
        );
    }

    #[test]
    fn raw_and_short() {
        let raw = target(LogFormat::Raw, LOCAL0);
        assert_eq!(text(frame(&raw, &origin(), INFO, now(), "m")), "m\n");
        // `short` carries the level only, the facility is ignored.
        let short = target(LogFormat::Short, LOCAL2);
        assert_eq!(
            text(frame(&short, &origin(), WARNING, now(), "m")),
            "<4>m\n"
        );
    }

    #[test]
    fn pri_values() {
        let t = target(LogFormat::Short, 0);
        assert_eq!(text(frame(&t, &origin(), EMERG, now(), "")), "<0>\n");
        let t = target(LogFormat::Rfc3164, 23); // local7
        let line = text(frame(&t, &origin(), DEBUG, now(), ""));
        assert_eq!(line, "<191>Feb  6 12:12:56 haproxy[14387]: \n");
    }

    #[test]
    fn truncation_keeps_newline_within_len() {
        let mut t = target(LogFormat::Raw, LOCAL0);
        t.max_len = 80;
        let long = "a".repeat(200);
        let out = frame(&t, &origin(), INFO, now(), &long);
        assert_eq!(out.len(), 80);
        assert_eq!(text(out), format!("{}\n", "a".repeat(79)));

        // The header counts towards the limit too.
        let mut t = target(LogFormat::Rfc3164, LOCAL2);
        t.max_len = 30;
        assert_eq!(
            text(frame(&t, &origin(), INFO, now(), "message")),
            "<150>Feb  6 12:12:56 haproxy[\n"
        );

        // 0 means the default length.
        let mut t = target(LogFormat::Raw, LOCAL0);
        t.max_len = 0;
        assert_eq!(
            frame(&t, &origin(), INFO, now(), &"b".repeat(2000)).len(),
            1024
        );
    }

    #[test]
    fn level_filter_and_minlevel_cap() {
        let mut t = target(LogFormat::Short, LOCAL0);
        t.max_level = NOTICE;
        assert!(accepts(&t, EMERG));
        assert!(accepts(&t, NOTICE));
        assert!(!accepts(&t, INFO));
        assert!(!accepts(&t, DEBUG));

        // `log ... local0 notice notice`: an alert goes out as notice.
        t.min_level = NOTICE;
        assert_eq!(effective_level(&t, ALERT), NOTICE);
        assert_eq!(effective_level(&t, NOTICE), NOTICE);
        assert_eq!(
            text(frame(&t, &origin(), ALERT, now(), "down")),
            "<5>down\n"
        );
        assert_eq!(text(frame(&t, &origin(), CRIT, now(), "x")), "<5>x\n");
    }
}
