//! The XML walk over the agent's ossec.conf. Merging follows Wazuh 4.x's readers: scalar
//! options of later blocks overwrite earlier ones field by field, while `<server>`s (Wazuh's
//! `Read_Client_Server` appends to `server_count`, never reset between `<client>` blocks),
//! `<localfile>`s and `<label>`s accumulate.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use manager::config::parse::{document, elements, wrap, Walk};
use manager::config::values::{self, Unit};
use roxmltree::Node;

use super::values::{
    list, or_default, parse_address, parse_agent_name, parse_crypto, parse_protocol, secs, set,
};
use super::{AgentConf, Client, ClientBuffer, ConfigErrors, Enrollment, LocalFile, Server};

const CLIENT_KNOWN: &[&str] = &[
    "server",
    "config-profile",
    "notify_time",
    "time-reconnect",
    "force_reconnect_interval",
    "ip_update_interval",
    "auto_restart",
    "crypto_method",
    "enrollment",
    "disable-active-response",
    "local_ip",
    "server-ip",
    "server-hostname",
    "port",
    "protocol",
];

const SERVER_KNOWN: &[&str] = &[
    "address",
    "port",
    "protocol",
    "max_retries",
    "retry_interval",
    "interface_index",
];

const ENROLLMENT_KNOWN: &[&str] = &[
    "enabled",
    "manager_address",
    "port",
    "interface_index",
    "agent_name",
    "groups",
    "agent_address",
    "ssl_cipher",
    "server_ca_path",
    "agent_certificate_path",
    "agent_key_path",
    "authorization_pass_path",
    "auto_method",
    "delay_after_enrollment",
    "use_source_ip",
];

/// Wazuh's documented upper bound for `<max_retries>`.
const MAX_RETRIES_MAX: u32 = 1_000_000_000;

const DEFAULT_NOTIFY: Duration = Duration::from_secs(20);
const DEFAULT_RECONNECT: Duration = Duration::from_secs(60);

/// Everything merged so far plus where things were, for the checks made after merging.
struct State {
    client: Client,
    enrollment: Enrollment,
    buffer: ClientBuffer,
    localfiles: Vec<LocalFile>,
    labels: BTreeMap<String, String>,
    client_line: Option<u32>,
    notify_line: Option<u32>,
    reconnect_line: Option<u32>,
}

pub(super) fn parse(text: &str, path: &Path, home: &Path) -> Result<AgentConf, ConfigErrors> {
    let wrapped = wrap(text);
    let doc = document(&wrapped, path)?;
    let mut w = Walker {
        core: Walk::new(path, &doc),
        home,
    };
    let mut st = State {
        client: Client::default(),
        enrollment: Enrollment::defaults(home),
        buffer: ClientBuffer::default(),
        localfiles: Vec::new(),
        labels: BTreeMap::new(),
        client_line: None,
        notify_line: None,
        reconnect_line: None,
    };
    let mut blocks = 0;
    for block in elements(doc.root_element()).filter(|b| b.has_tag_name("ossec_config")) {
        blocks += 1;
        for section in elements(block) {
            match section.tag_name().name() {
                "client" => w.client(section, &mut st),
                "client_buffer" => w.buffer(section, &mut st.buffer),
                "localfile" => w.localfile(section, &mut st.localfiles),
                "labels" => w.labels(section, &mut st.labels),
                // Wazuh reads <enrollment> only inside <client>; say so rather than drop it.
                "enrollment" => w.error(
                    section,
                    "enrollment",
                    "<enrollment> belongs inside <client>; move it into the <client> block",
                ),
                _ => {} // syscheck, rootcheck, wodle, sca, logging...: not ours
            }
        }
    }
    if blocks == 0 {
        // Alone: every other check would only repeat it.
        w.error_at(
            1,
            "",
            "no <ossec_config> block found; wrap the settings in <ossec_config>...</ossec_config>",
        );
        return Err(ConfigErrors(w.core.errors));
    }
    w.finish(&mut st);
    let Walk {
        mut errors,
        mut warnings,
        ..
    } = w.core;
    if !errors.is_empty() {
        errors.sort_by_key(|e| e.line);
        return Err(ConfigErrors(errors));
    }
    warnings.sort_by_key(|e| e.line);
    Ok(AgentConf {
        path: path.to_path_buf(),
        client: st.client,
        enrollment: st.enrollment,
        buffer: st.buffer,
        localfiles: st.localfiles,
        labels: st.labels,
        warnings: warnings.iter().map(ToString::to_string).collect(),
    })
}

pub(super) struct Walker<'a, 'i> {
    core: Walk<'a, 'i>,
    home: &'a Path,
}

impl<'a, 'i> std::ops::Deref for Walker<'a, 'i> {
    type Target = Walk<'a, 'i>;
    fn deref(&self) -> &Walk<'a, 'i> {
        &self.core
    }
}

impl std::ops::DerefMut for Walker<'_, '_> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.core
    }
}

impl Walker<'_, '_> {
    /// A path; relative ones are relative to the home, where Wazuh's daemons run.
    pub(super) fn path(&mut self, n: Node, element: &str) -> Option<PathBuf> {
        let home = self.home;
        self.value(n, element, |v| {
            if v.is_empty() {
                return Err("must not be empty; set a file path".to_string());
            }
            let p = Path::new(v);
            Ok(if p.is_absolute() {
                p.to_path_buf()
            } else {
                home.join(p)
            })
        })
    }

    fn client(&mut self, n: Node, st: &mut State) {
        st.client_line = Some(self.line(n));
        // Deprecated <server-ip>/<server-hostname> take this block's <port> (Wazuh applies
        // the block-level port to them once the block is read).
        let mut legacy: Vec<usize> = Vec::new();
        let mut legacy_port = 1514;
        for e in elements(n) {
            let name = e.tag_name().name();
            let el = format!("client/{name}");
            let c = &mut st.client;
            match name {
                "server" => self.server(e, c),
                "config-profile" => set(&mut c.config_profile, self.text(e, &el).map(list)),
                "notify_time" => {
                    let v = self.value(e, &el, |v| values::parse_time(v, Unit::Seconds));
                    // 0 means "the default" in Wazuh.
                    set(&mut c.notify_time, v.map(|d| or_default(d, DEFAULT_NOTIFY)));
                    st.notify_line = Some(self.line(e));
                }
                "time-reconnect" => {
                    let v = self.value(e, &el, |v| values::parse_time(v, Unit::Seconds));
                    set(
                        &mut c.time_reconnect,
                        v.map(|d| or_default(d, DEFAULT_RECONNECT)),
                    );
                    st.reconnect_line = Some(self.line(e));
                }
                "force_reconnect_interval" => {
                    let v = self.value(e, &el, |v| values::parse_time(v, Unit::Seconds));
                    set(
                        &mut c.force_reconnect_interval,
                        v.map(|d| (!d.is_zero()).then_some(d)),
                    );
                }
                "ip_update_interval" => {
                    let _ = self.value(e, &el, |v| values::parse_time(v, Unit::Seconds));
                }
                "auto_restart" => set(&mut c.auto_restart, self.value(e, &el, values::parse_bool)),
                "crypto_method" => set(&mut c.crypto_method, self.value(e, &el, parse_crypto)),
                "enrollment" => self.enrollment(e, &mut st.enrollment),
                "disable-active-response" => {
                    let _ = self.value(e, &el, values::parse_bool);
                }
                "local_ip" => self.warn(e, &el, "has no effect (as in Wazuh); remove it"),
                "server-ip" | "server-hostname" => {
                    let parse = if name == "server-ip" {
                        |v: &str| values::parse_ip(v).map(|_| v.to_string())
                    } else {
                        parse_address
                    };
                    if let Some(addr) = self.value(e, &el, parse) {
                        legacy.push(c.servers.len());
                        c.servers.push(Server::new(addr));
                    }
                    self.deprecated(e, name);
                }
                "port" => {
                    set(
                        &mut legacy_port,
                        self.value(e, &el, |v| values::parse_port_in(v, 1)),
                    );
                    self.deprecated(e, name);
                }
                "protocol" => {
                    let _ = self.value(e, &el, parse_protocol);
                    self.deprecated(e, name);
                }
                _ => self.unknown(e, "client", "client", CLIENT_KNOWN),
            }
        }
        for i in legacy {
            if let Some(s) = st.client.servers.get_mut(i) {
                s.port = legacy_port;
            }
        }
    }

    fn deprecated(&mut self, n: Node, name: &str) {
        let what = if name == "server-ip" || name == "server-hostname" {
            "address"
        } else {
            name
        };
        let msg = format!("deprecated; use <server><{what}> instead");
        self.warn(n, &format!("client/{name}"), msg);
    }

    fn server(&mut self, n: Node, c: &mut Client) {
        let mut s = Server::new("");
        let mut has_address = false;
        for e in elements(n) {
            let name = e.tag_name().name();
            let el = format!("client/server/{name}");
            match name {
                "address" => {
                    has_address = true;
                    set(&mut s.address, self.value(e, &el, parse_address));
                }
                "port" => set(
                    &mut s.port,
                    self.value(e, &el, |v| values::parse_port_in(v, 1)),
                ),
                "protocol" => set(&mut s.protocol, self.value(e, &el, parse_protocol)),
                "max_retries" => set(
                    &mut s.max_retries,
                    self.value(e, &el, |v| values::parse_u32_in(v, 1, MAX_RETRIES_MAX)),
                ),
                "retry_interval" => set(
                    &mut s.retry_interval,
                    self.value(e, &el, |v| {
                        values::parse_time_min(v, Unit::Seconds, Duration::from_secs(1))
                    }),
                ),
                // Only meaningful for link-local IPv6; checked, not used.
                "interface_index" => {
                    let _ = self.value(e, &el, |v| values::parse_u32_in(v, 1, u32::MAX));
                }
                _ => self.unknown(e, "client/server", "server", SERVER_KNOWN),
            }
        }
        if !has_address {
            self.error(
                n,
                "client/server/address",
                "missing <address>; add <address> with the manager's IP address or host name",
            );
        }
        // Kept even when broken so the "no server" check does not pile onto this error.
        c.servers.push(s);
    }

    fn enrollment(&mut self, n: Node, en: &mut Enrollment) {
        for e in elements(n) {
            let name = e.tag_name().name();
            let el = format!("client/enrollment/{name}");
            match name {
                "enabled" => set(&mut en.enabled, self.value(e, &el, values::parse_bool)),
                "manager_address" => set(
                    &mut en.manager_address,
                    self.value(e, &el, parse_address).map(Some),
                ),
                "port" => set(
                    &mut en.port,
                    self.value(e, &el, |v| values::parse_port_in(v, 1)),
                ),
                "agent_name" => set(
                    &mut en.agent_name,
                    self.value(e, &el, parse_agent_name).map(Some),
                ),
                "groups" => set(&mut en.groups, self.text(e, &el).map(list)),
                "agent_address" => set(
                    &mut en.agent_address,
                    self.value(e, &el, |v| values::parse_ip(v).map(|_| Some(v.to_string()))),
                ),
                "authorization_pass_path" => {
                    set(&mut en.authorization_pass_path, self.path(e, &el))
                }
                "server_ca_path" => set(&mut en.server_ca_path, self.path(e, &el).map(Some)),
                "delay_after_enrollment" => set(
                    &mut en.delay_after_enrollment,
                    self.value(e, &el, values::parse_positive_time),
                ),
                "auto_method" | "use_source_ip" => {
                    let _ = self.value(e, &el, values::parse_bool);
                }
                "interface_index" => {
                    let _ = self.value(e, &el, |v| values::parse_u32_in(v, 1, u32::MAX));
                }
                // Accepted, not used: rustls picks ciphers; agent certificates are not sent.
                "ssl_cipher" | "agent_certificate_path" | "agent_key_path" => {
                    let _ = self.text(e, &el);
                }
                _ => self.unknown(e, "client/enrollment", "enrollment", ENROLLMENT_KNOWN),
            }
        }
    }

    /// Checks that need the merged result.
    fn finish(&mut self, st: &mut State) {
        let c = &mut st.client;
        if c.servers.is_empty() {
            self.error_at(
                st.client_line.unwrap_or(1),
                "client/server",
                "no <client><server> configured; add <client><server><address>…</address>\
                 </server></client> with the manager's address",
            );
        }
        if c.time_reconnect <= c.notify_time {
            let forced = c.notify_time.saturating_mul(3);
            let msg = format!(
                "{} is not larger than <notify_time> ({}); forced to {}",
                secs(c.time_reconnect),
                secs(c.notify_time),
                secs(forced)
            );
            c.time_reconnect = forced;
            let line = st
                .reconnect_line
                .or(st.notify_line)
                .or(st.client_line)
                .unwrap_or(1);
            self.warn_at(line, "client/time-reconnect", msg);
        }
    }
}
