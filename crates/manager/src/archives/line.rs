//! One `archives.json` line, Wazuh's archive layout plus the agent's `seq`:
//! `{"timestamp":…,"agent":{"id":"001","name":…},"manager":{"name":…},"cluster":{"name":…,"node":…},"seq":42,"location":…,"full_log":…}`.
//! Pure: formatting and the `(agent, seq)` key that recovery reads back.

use serde::Deserialize;
use time::OffsetDateTime;

use super::ArchivedEvent;

/// The parts of a line fixed for one node, rendered once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineFormat {
    /// `"manager":{"name":N},"cluster":{"name":C,"node":N}`
    middle: Vec<u8>,
}

impl LineFormat {
    pub fn new(cluster: &str, node: &str) -> LineFormat {
        let mut middle = Vec::with_capacity(64 + cluster.len() + 2 * node.len());
        middle.extend_from_slice(b"\"manager\":{\"name\":");
        push_json_str(&mut middle, node);
        middle.extend_from_slice(b"},\"cluster\":{\"name\":");
        push_json_str(&mut middle, cluster);
        middle.extend_from_slice(b",\"node\":");
        push_json_str(&mut middle, node);
        middle.push(b'}');
        LineFormat { middle }
    }

    /// Appends one line, newline included. `timestamp` comes from [`timestamp`]; the log is
    /// written as UTF-8, invalid bytes replaced by U+FFFD.
    pub fn push(
        &self,
        out: &mut Vec<u8>,
        timestamp: &str,
        agent_id: u32,
        agent_name: &str,
        ev: &ArchivedEvent,
    ) {
        out.extend_from_slice(b"{\"timestamp\":");
        push_json_str(out, timestamp);
        out.extend_from_slice(b",\"agent\":{\"id\":");
        push_json_str(out, &agent_id_str(agent_id));
        out.extend_from_slice(b",\"name\":");
        push_json_str(out, agent_name);
        out.extend_from_slice(b"},");
        out.extend_from_slice(&self.middle);
        out.extend_from_slice(b",\"seq\":");
        out.extend_from_slice(ev.seq.to_string().as_bytes());
        out.extend_from_slice(b",\"location\":");
        push_json_str(out, &ev.location);
        out.extend_from_slice(b",\"full_log\":");
        push_json_str(out, &String::from_utf8_lossy(&ev.log));
        out.extend_from_slice(b"}\n");
    }
}

/// Wazuh's agent id: zero-padded to 3 digits, wider ids as they are.
pub fn agent_id_str(id: u32) -> String {
    format!("{id:03}")
}

/// Wazuh's archive timestamp, in UTC: `2026-11-21T10:00:00.123+0000`.
pub fn timestamp(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}+0000",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

fn push_json_str(out: &mut Vec<u8>, s: &str) {
    // Serializing a str into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// `(agent id, seq)` of a line (a trailing newline is allowed), or `None` if it is not an
/// archive line with both. Lines this module wrote take a fast path that stops at `seq`
/// without reading the log (so a line cut after `seq` still gives its key: recovery trims a
/// torn tail before scanning); anything else is parsed as JSON.
pub fn parse_key(line: &[u8]) -> Option<(u32, u64)> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    fast_key(line).or_else(|| json_key(line))
}

/// Walks the fixed prefix of our own layout; any surprise gives up (the JSON path decides).
fn fast_key(line: &[u8]) -> Option<(u32, u64)> {
    let mut c = Cursor { s: line, i: 0 };
    c.lit(b"{\"timestamp\":")?;
    c.string()?;
    c.lit(b",\"agent\":{\"id\":\"")?;
    let id = c.number()?;
    c.lit(b"\",\"name\":")?;
    c.string()?;
    c.lit(b"},\"manager\":{\"name\":")?;
    c.string()?;
    c.lit(b"},\"cluster\":{\"name\":")?;
    c.string()?;
    c.lit(b",\"node\":")?;
    c.string()?;
    c.lit(b"},\"seq\":")?;
    let seq = c.number()?;
    c.lit(b",")?;
    Some((u32::try_from(id).ok()?, seq))
}

struct Cursor<'a> {
    s: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    fn lit(&mut self, want: &[u8]) -> Option<()> {
        let rest = self.s.get(self.i..)?;
        if rest.starts_with(want) {
            self.i += want.len();
            Some(())
        } else {
            None
        }
    }

    /// Skips a JSON string. An unescaped `"` only ever ends a string, so skipping `\x`
    /// pairs is enough to find its end.
    fn string(&mut self) -> Option<()> {
        self.lit(b"\"")?;
        while let Some(&b) = self.s.get(self.i) {
            self.i += 1;
            match b {
                b'"' => return Some(()),
                b'\\' => self.i += 1,
                _ => {}
            }
        }
        None
    }

    fn number(&mut self) -> Option<u64> {
        let start = self.i;
        let mut n: u64 = 0;
        while let Some(&b) = self.s.get(self.i) {
            if !b.is_ascii_digit() {
                break;
            }
            n = n.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
            self.i += 1;
        }
        (self.i > start).then_some(n)
    }
}

#[derive(Deserialize)]
struct KeyLine<'a> {
    #[serde(borrow)]
    agent: KeyAgent<'a>,
    seq: u64,
}

#[derive(Deserialize)]
struct KeyAgent<'a> {
    id: &'a str,
}

fn json_key(line: &[u8]) -> Option<(u32, u64)> {
    let k: KeyLine<'_> = serde_json::from_slice(line).ok()?;
    if k.agent.id.is_empty() || !k.agent.id.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((k.agent.id.parse().ok()?, k.seq))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;
    use time::macros::datetime;

    fn line(id: u32, name: &str, seq: u64, location: &str, log: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        LineFormat::new("wazuh", "worker1").push(
            &mut out,
            &timestamp(datetime!(2026-11-21 10:00:00.123 UTC)),
            id,
            name,
            &ArchivedEvent {
                seq,
                ts_ms: 0,
                location: location.to_string(),
                log: log.to_vec(),
            },
        );
        out
    }

    #[test]
    fn exact_layout() {
        let l = line(1, "web1", 42, "/var/log/syslog", b"Nov 21 sshd[1]: ok");
        assert_eq!(
            String::from_utf8(l).unwrap(),
            "{\"timestamp\":\"2026-11-21T10:00:00.123+0000\",\"agent\":{\"id\":\"001\",\
             \"name\":\"web1\"},\"manager\":{\"name\":\"worker1\"},\"cluster\":{\"name\":\
             \"wazuh\",\"node\":\"worker1\"},\"seq\":42,\"location\":\"/var/log/syslog\",\
             \"full_log\":\"Nov 21 sshd[1]: ok\"}\n"
        );
    }

    #[test]
    fn timestamp_is_utc_with_millis() {
        assert_eq!(
            timestamp(datetime!(2024-01-02 03:04:05.006 +02:00)),
            "2024-01-02T01:04:05.006+0000"
        );
        assert_eq!(
            timestamp(datetime!(2024-12-31 23:59:59.999999 UTC)),
            "2024-12-31T23:59:59.999+0000"
        );
    }

    #[test]
    fn agent_ids_like_wazuh() {
        assert_eq!(agent_id_str(0), "000");
        assert_eq!(agent_id_str(7), "007");
        assert_eq!(agent_id_str(123), "123");
        assert_eq!(agent_id_str(12345), "12345");
    }

    #[test]
    fn escaping_and_invalid_utf8() {
        let log = b"a \"quoted\" \\ back\nnew\tline \xff\xfe end \x01";
        let l = line(4096, "we\"ird\nname", u64::MAX, "C:\\logs\\x.log", log);
        assert_eq!(l.iter().filter(|&&b| b == b'\n').count(), 1, "one line");
        let v: Value = serde_json::from_slice(&l).unwrap();
        assert_eq!(v["agent"]["id"], "4096");
        assert_eq!(v["agent"]["name"], "we\"ird\nname");
        assert_eq!(v["seq"], u64::MAX);
        assert_eq!(v["location"], "C:\\logs\\x.log");
        assert_eq!(
            v["full_log"],
            "a \"quoted\" \\ back\nnew\tline \u{fffd}\u{fffd} end \u{1}"
        );
        assert_eq!(parse_key(&l), Some((4096, u64::MAX)));
    }

    #[test]
    fn key_of_foreign_but_valid_lines() {
        // Other field order or extra fields: the JSON path answers.
        assert_eq!(
            parse_key(br#"{"seq":9,"agent":{"name":"x","id":"012"},"x":[1]}"#),
            Some((12, 9))
        );
        assert_eq!(
            parse_key(br#"{"timestamp":"t","agent":{"id":"001"},"seq":3}"#),
            Some((1, 3))
        );
    }

    #[test]
    fn key_rejects() {
        for bad in [
            &b""[..],
            b"\n",
            b"not json",
            br#"{"agent":{"id":"001"}}"#,
            br#"{"agent":{"id":"abc"},"seq":1}"#,
            br#"{"agent":{"id":"99999999999"},"seq":1}"#,
            br#"{"agent":{"id":"1"},"seq":-1}"#,
        ] {
            assert_eq!(parse_key(bad), None, "{}", String::from_utf8_lossy(bad));
        }
        let l = line(1, "a", 5, "l", b"x");
        assert_eq!(parse_key(&l), Some((1, 5)));
        assert_eq!(parse_key(&l[..20]), None);
    }

    proptest::proptest! {
        #[test]
        fn fast_and_json_paths_agree(
            id: u32,
            seq: u64,
            name in "\\PC{0,12}",
            loc in "\\PC{0,12}",
            log in proptest::collection::vec(proptest::num::u8::ANY, 0..64),
        ) {
            let l = line(id, &name, seq, &loc, &log);
            let body = &l[..l.len() - 1];
            proptest::prop_assert_eq!(fast_key(body), Some((id, seq)));
            proptest::prop_assert_eq!(json_key(body), Some((id, seq)));
            let v: Value = serde_json::from_slice(body).unwrap();
            proptest::prop_assert_eq!(v["agent"]["name"].as_str(), Some(name.as_str()));
            proptest::prop_assert_eq!(v["location"].as_str(), Some(loc.as_str()));
            let full = String::from_utf8_lossy(&log);
            proptest::prop_assert_eq!(v["full_log"].as_str(), Some(full.as_ref()));
        }
    }
}
