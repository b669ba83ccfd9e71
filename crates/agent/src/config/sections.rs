//! `<client_buffer>`, `<localfile>` and `<labels>`: the sections beside `<client>`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use manager::config::parse::elements;
use manager::config::values;
use roxmltree::Node;

use super::parse::Walker;
use super::values::{parse_log_format, set, NON_FILE_FORMATS};
use super::{ClientBuffer, LocalFile};

const BUFFER_KNOWN: &[&str] = &["disabled", "queue_size", "events_per_second"];

const LOCALFILE_KNOWN: &[&str] = &[
    "location",
    "command",
    "log_format",
    "only-future-events",
    "frequency",
    "alias",
    "target",
    "label",
    "ignore_binaries",
    "age",
    "exclude",
    "query",
    "out_format",
    "reconnect_time",
    "multiline_regex",
    "filter",
];

/// rampart's spool is on disk, so it allows far more than Wazuh's 100000.
const QUEUE_SIZE_MAX: u64 = 10_000_000;
const EPS_MAX: u32 = 1_000_000;

impl Walker<'_, '_> {
    pub(super) fn buffer(&mut self, n: Node, b: &mut ClientBuffer) {
        for e in elements(n) {
            let name = e.tag_name().name();
            let el = format!("client_buffer/{name}");
            match name {
                "disabled" => set(&mut b.disabled, self.value(e, &el, values::parse_bool)),
                "queue_size" => set(
                    &mut b.queue_size,
                    self.value(e, &el, |v| match v.parse::<u64>() {
                        Ok(q) if (1..=QUEUE_SIZE_MAX).contains(&q) => Ok(q),
                        _ => Err(format!(
                            "must be a number of events between 1 and {QUEUE_SIZE_MAX}, got '{v}'"
                        )),
                    }),
                ),
                "events_per_second" => set(
                    &mut b.events_per_second,
                    self.value(e, &el, |v| values::parse_u32_in(v, 0, EPS_MAX)),
                ),
                _ => self.unknown(e, "client_buffer", "client_buffer", BUFFER_KNOWN),
            }
        }
    }

    pub(super) fn localfile(&mut self, n: Node, out: &mut Vec<LocalFile>) {
        let line = self.line(n);
        let mut location: Option<PathBuf> = None;
        let mut format: Option<String> = None;
        let mut command = false;
        let mut future = true;
        let mut ok = true;
        for e in elements(n) {
            let name = e.tag_name().name();
            let el = format!("localfile/{name}");
            match name {
                "location" => match self.value(e, &el, |v| {
                    if v.is_empty() {
                        Err("must not be empty; set the path of the log file".to_string())
                    } else {
                        Ok(PathBuf::from(v))
                    }
                }) {
                    Some(p) => location = Some(p),
                    None => ok = false,
                },
                "log_format" => match self.value(e, &el, parse_log_format) {
                    Some(f) => format = Some(f),
                    None => ok = false,
                },
                "only-future-events" => set(&mut future, self.value(e, &el, values::parse_bool)),
                "command" => command = true,
                _ if LOCALFILE_KNOWN.contains(&name) => {}
                _ => {
                    self.unknown(e, "localfile", "localfile", LOCALFILE_KNOWN);
                    ok = false;
                }
            }
        }
        if format.is_none() && ok {
            // Wazuh refuses a <localfile> without a format too.
            self.error_at(
                line,
                "localfile/log_format",
                "missing <log_format>; add one such as <log_format>syslog</log_format>",
            );
            return;
        }
        let Some(format) = format else { return };
        if command || NON_FILE_FORMATS.contains(&format.as_str()) {
            self.warn_at(
                line,
                "localfile",
                format!("rampart reads files only; this '{format}' source is skipped"),
            );
            return;
        }
        let Some(location) = location else {
            if ok {
                self.error_at(
                    line,
                    "localfile/location",
                    "missing <location>; add the path of the log file",
                );
            }
            return;
        };
        if location.to_string_lossy().contains(['*', '?', '[', '%']) {
            self.warn_at(
                line,
                "localfile/location",
                format!(
                    "'{}' looks like a wildcard or date pattern; rampart reads it as a literal path",
                    location.display()
                ),
            );
        }
        if let Some(first) = out.iter().find(|l| l.location == location) {
            let msg = format!(
                "'{}' is already read by the <localfile> on line {}; this one is skipped",
                location.display(),
                first.line
            );
            self.warn_at(line, "localfile/location", msg);
            return;
        }
        out.push(LocalFile {
            location,
            log_format: format,
            only_future_events: future,
            line,
        });
    }

    pub(super) fn labels(&mut self, n: Node, labels: &mut BTreeMap<String, String>) {
        for e in elements(n) {
            if !e.has_tag_name("label") {
                self.unknown(e, "labels", "labels", &["label"]);
                continue;
            }
            let key = e.attribute("key").map(str::trim).unwrap_or("");
            if key.is_empty() {
                self.error(
                    e,
                    "labels/label",
                    "missing key attribute; write <label key=\"name\">value</label>",
                );
                continue;
            }
            let key = key.to_string();
            if let Some(v) = self.text(e, "labels/label") {
                labels.insert(key, v);
            }
        }
    }
}
