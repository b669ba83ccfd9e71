//! The XML walk: wraps the file under one root (ossec.conf may hold several top-level
//! `<ossec_config>` blocks), applies each block in order onto the defaults and collects every
//! problem with its line.

use std::path::{Path, PathBuf};

use roxmltree::{Document, Node};

use super::values::{self, Unit};
use super::{
    Auth, Cluster, ConfigError, ConfigErrors, HaproxyHelper, HelperProtocol, NodeType, OssecConf,
    Remote,
};

/// Synthetic root; it is put on the first line so line numbers stay those of the file.
const ROOT: &str = "rampart_root";

const CLUSTER_KNOWN: &[&str] = &[
    "name",
    "node_name",
    "key",
    "node_type",
    "port",
    "bind_addr",
    "nodes",
    "hidden",
    "disabled",
    "haproxy_helper",
    "intervals",
];

const HELPER_KNOWN: &[&str] = &[
    "haproxy_disabled",
    "haproxy_address",
    "haproxy_port",
    "haproxy_protocol",
    "haproxy_user",
    "haproxy_password",
    "haproxy_backend",
    "haproxy_resolver",
    "haproxy_cert",
    "client_cert",
    "client_cert_key",
    "excluded_nodes",
    "frequency",
    "agent_chunk_size",
    "agent_reconnection_time",
    "agent_reconnection_stability_time",
    "imbalance_tolerance",
    "remove_disconnected_node_after",
];

const INTERVALS_KNOWN: &[&str] = &[
    "keep_alive",
    "worker_timeout",
    "agent_info",
    "integrity",
    "master_integrity",
    "reconnect",
    "request_timeout",
    "in_doubt_wait",
];

/// Every element Wazuh documents for `<auth>` (some are accepted and ignored), plus
/// rampart's `<local_ip>`.
const AUTH_KNOWN: &[&str] = &[
    "disabled",
    "remote_enrollment",
    "port",
    "local_ip",
    "ipv6",
    "use_source_ip",
    "force",
    "purge",
    "use_password",
    "limit_maxagents",
    "ciphers",
    "ssl_verify_host",
    "ssl_manager_cert",
    "ssl_manager_key",
    "ssl_agent_ca",
    "ssl_auto_negotiate",
    "key_request",
    "agents",
    "force_insert",
    "force_time",
];

const FORCE_KNOWN: &[&str] = &[
    "enabled",
    "key_mismatch",
    "disconnected_time",
    "after_registration_time",
];

/// Every element Wazuh documents for `<remote>` (secure and syslog).
const REMOTE_KNOWN: &[&str] = &[
    "connection",
    "port",
    "protocol",
    "allowed-ips",
    "denied-ips",
    "local_ip",
    "ipv6",
    "queue_size",
    "rids_closing_time",
    "connection_overtake_time",
    "agents",
];

/// remoted's accepted `<queue_size>` range.
const QUEUE_SIZE_MAX: u32 = 262_144;

/// Parses text [`wrap`]ped under the synthetic root; an XML error names the file and line
/// (and never the synthetic root).
pub fn document<'a>(wrapped: &'a str, path: &Path) -> Result<Document<'a>, ConfigErrors> {
    Document::parse(wrapped).map_err(|e| {
        let msg = e
            .to_string()
            .replace(&format!("'{ROOT}'"), "end of file")
            .replace(ROOT, "end of file");
        ConfigErrors(vec![ConfigError {
            file: path.to_path_buf(),
            line: e.pos().row,
            element: String::new(),
            message: format!("invalid XML: {msg}; fix the markup"),
        }])
    })
}

pub(super) fn parse(text: &str, path: &Path) -> Result<OssecConf, ConfigErrors> {
    let wrapped = wrap(text);
    let doc = document(&wrapped, path)?;
    let mut w = Walker {
        core: Walk::new(path, &doc),
    };
    let mut cluster = ClusterState::default();
    let mut auth = Auth::default();
    let mut remote = Remote::default();
    let mut blocks = 0;
    for block in elements(doc.root_element()).filter(|b| b.has_tag_name("ossec_config")) {
        blocks += 1;
        for section in elements(block) {
            match section.tag_name().name() {
                "cluster" => w.cluster(section, &mut cluster),
                "auth" => w.auth(section, &mut auth),
                "remote" => w.remote(section, &mut remote),
                _ => {} // global, alerts, syscheck, ruleset...: not ours
            }
        }
    }
    if blocks == 0 {
        w.errors.push(ConfigError {
            file: path.to_path_buf(),
            line: 1,
            element: String::new(),
            message: "no <ossec_config> block found; wrap the settings in \
                      <ossec_config>...</ossec_config>"
                .to_string(),
        });
    }
    w.finish_cluster(&mut cluster);
    let mut errors = w.core.errors;
    if errors.is_empty() {
        Ok(OssecConf {
            path: path.to_path_buf(),
            cluster: cluster.c,
            auth,
            remote,
        })
    } else {
        errors.sort_by_key(|e| e.line);
        Err(ConfigErrors(errors))
    }
}

/// Puts the text under one root without shifting lines; an `<?xml ...?>` declaration (only
/// legal at the very start) is blanked out, keeping its newlines.
pub fn wrap(text: &str) -> String {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let start = text.len() - text.trim_start().len();
    let mut body = text.to_string();
    if text[start..].starts_with("<?xml") {
        if let Some(end) = text[start..].find("?>") {
            let blank: String = text[start..start + end + 2]
                .chars()
                .map(|c| if c == '\n' { '\n' } else { ' ' })
                .collect();
            body.replace_range(start..start + end + 2, &blank);
        }
    }
    format!("<{ROOT}>{body}\n</{ROOT}>")
}

pub fn elements<'a, 'i>(n: Node<'a, 'i>) -> impl Iterator<Item = Node<'a, 'i>> {
    n.children().filter(|c| c.is_element())
}

/// The merged `<cluster>` plus where things were, for the checks made after merging.
#[derive(Default)]
struct ClusterState {
    c: Cluster,
    /// Line of the last `<cluster>` block; `None` when there is none.
    line: Option<u32>,
    key_line: Option<u32>,
    helper_line: u32,
}

/// The XML walk's bookkeeping shared by every ossec.conf reader (the manager's, the
/// agent's): lines, errors and warnings with their element paths, leaf values.
pub struct Walk<'a, 'i> {
    pub file: &'a Path,
    pub doc: &'a Document<'i>,
    pub errors: Vec<ConfigError>,
    pub warnings: Vec<ConfigError>,
}

impl<'a, 'i> Walk<'a, 'i> {
    pub fn new(file: &'a Path, doc: &'a Document<'i>) -> Walk<'a, 'i> {
        Walk {
            file,
            doc,
            errors: Vec::new(),
            warnings: Vec::new(),
        }
    }

    pub fn line(&self, n: Node) -> u32 {
        self.doc.text_pos_at(n.range().start).row
    }

    pub fn problem(&self, line: u32, element: &str, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: self.file.to_path_buf(),
            line,
            element: element.to_string(),
            message: message.into(),
        }
    }

    pub fn error_at(&mut self, line: u32, element: &str, message: impl Into<String>) {
        let e = self.problem(line, element, message);
        self.errors.push(e);
    }

    pub fn error(&mut self, n: Node, element: &str, message: impl Into<String>) {
        let line = self.line(n);
        self.error_at(line, element, message);
    }

    pub fn warn_at(&mut self, line: u32, element: &str, message: impl Into<String>) {
        let w = self.problem(line, element, message);
        self.warnings.push(w);
    }

    pub fn warn(&mut self, n: Node, element: &str, message: impl Into<String>) {
        let line = self.line(n);
        self.warn_at(line, element, message);
    }

    /// The trimmed text of a leaf element.
    pub fn text(&mut self, n: Node, element: &str) -> Option<String> {
        if let Some(child) = elements(n).next() {
            let msg = format!(
                "expected a plain value, found element <{}>; remove it",
                child.tag_name().name()
            );
            self.error(child, element, msg);
            return None;
        }
        let text: String = n.children().filter_map(|c| c.text()).collect();
        Some(text.trim().to_string())
    }

    /// The element's value run through `parse`; errors are recorded, not returned.
    pub fn value<T>(
        &mut self,
        n: Node,
        element: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        let text = self.text(n, element)?;
        match parse(&text) {
            Ok(v) => Some(v),
            Err(msg) => {
                self.error(n, element, msg);
                None
            }
        }
    }

    /// An element `<parent>` does not know, with a suggestion among `known`.
    pub fn unknown(&mut self, n: Node, parent: &str, section: &str, known: &[&str]) {
        let name = n.tag_name().name();
        let msg = values::unknown_element(name, parent, section, known);
        self.error(n, &format!("{parent}/{name}"), msg);
    }
}

struct Walker<'a, 'i> {
    core: Walk<'a, 'i>,
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
    /// A path value; empty means "not configured".
    fn path(&mut self, n: Node, element: &str) -> Option<Option<PathBuf>> {
        let text = self.text(n, element)?;
        Some((!text.is_empty()).then(|| PathBuf::from(text)))
    }

    fn cluster(&mut self, n: Node, st: &mut ClusterState) {
        st.line = Some(self.line(n));
        for e in elements(n) {
            let name = e.tag_name().name();
            let el = format!("cluster/{name}");
            let c = &mut st.c;
            match name {
                "name" => set(&mut c.name, self.value(e, &el, values::parse_name)),
                "node_name" => set(&mut c.node_name, self.value(e, &el, values::parse_name)),
                "key" => {
                    if let Some(text) = self.text(e, &el) {
                        if !text.is_empty() {
                            if let Err(msg) = values::parse_key(&text) {
                                self.error(e, &el, msg);
                            }
                        }
                        // Kept even when invalid so the "missing key" check does not repeat it.
                        c.key = text;
                        st.key_line = Some(self.line(e));
                    }
                }
                "node_type" => set(&mut c.node_type, self.value(e, &el, parse_node_type)),
                "port" => set(&mut c.port, self.value(e, &el, values::parse_port)),
                "bind_addr" => set(&mut c.bind_addr, self.value(e, &el, values::parse_ip)),
                "nodes" => {
                    if let Some(nodes) = self.node_list(e, &el, false) {
                        c.nodes = nodes;
                    }
                }
                "hidden" => set(&mut c.hidden, self.value(e, &el, values::parse_bool)),
                "disabled" => set(&mut c.disabled, self.value(e, &el, values::parse_bool)),
                "haproxy_helper" => {
                    let helper = c.helper.get_or_insert_with(HaproxyHelper::default);
                    self.helper(e, helper);
                    st.helper_line = self.line(e);
                }
                "intervals" => self.intervals(e, c),
                _ => self.unknown(e, "cluster", "cluster", CLUSTER_KNOWN),
            }
        }
    }

    /// `<nodes>` / `<excluded_nodes>`: a list of `<node>`; names are checked when `names`.
    fn node_list(&mut self, n: Node, parent: &str, names: bool) -> Option<Vec<String>> {
        let mut out = Vec::new();
        let mut ok = true;
        for e in elements(n) {
            if !e.has_tag_name("node") {
                self.unknown(e, parent, "", &["node"]);
                ok = false;
                continue;
            }
            let el = format!("{parent}/node");
            let v = if names {
                self.value(e, &el, values::parse_name)
            } else {
                self.value(e, &el, |v| {
                    if v.is_empty() || v.contains(char::is_whitespace) {
                        Err(format!(
                            "expected the address (IP or host name) of the master node, got '{v}'"
                        ))
                    } else {
                        Ok(v.to_string())
                    }
                })
            };
            match v {
                Some(v) => out.push(v),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    fn helper(&mut self, n: Node, h: &mut HaproxyHelper) {
        for e in elements(n) {
            let name = e.tag_name().name();
            let el = format!("cluster/haproxy_helper/{name}");
            match name {
                "haproxy_disabled" => set(&mut h.disabled, self.value(e, &el, values::parse_bool)),
                "haproxy_address" => set(&mut h.address, self.text(e, &el)),
                "haproxy_port" => {
                    set(&mut h.port, self.value(e, &el, |v| values::parse_port_in(v, 1)))
                }
                "haproxy_protocol" => set(&mut h.protocol, self.value(e, &el, parse_helper_proto)),
                "haproxy_user" => set(&mut h.user, self.text(e, &el)),
                "haproxy_password" => set(&mut h.password, self.text(e, &el)),
                "haproxy_backend" => set(
                    &mut h.backend,
                    self.value(e, &el, |v| {
                        if v.is_empty() || v.contains(char::is_whitespace) {
                            Err(format!(
                                "expected the HAProxy backend name (e.g. wazuh_reporting), got '{v}'"
                            ))
                        } else {
                            Ok(v.to_string())
                        }
                    }),
                ),
                "haproxy_resolver" => {
                    set(&mut h.resolver, self.text(e, &el).map(|t| (!t.is_empty()).then_some(t)))
                }
                "haproxy_cert" => set(&mut h.haproxy_cert, self.path(e, &el)),
                "client_cert" => set(&mut h.client_cert, self.path(e, &el)),
                "client_cert_key" => set(&mut h.client_cert_key, self.path(e, &el)),
                "excluded_nodes" => set(&mut h.excluded_nodes, self.node_list(e, &el, true)),
                "frequency" => set(
                    &mut h.frequency,
                    self.value(e, &el, |v| values::parse_time_min(v, Unit::Seconds, secs(10))),
                ),
                "agent_chunk_size" => set(
                    &mut h.agent_chunk_size,
                    self.value(e, &el, |v| values::parse_u32_in(v, 100, u32::MAX)),
                ),
                "agent_reconnection_time" => set(
                    &mut h.agent_reconnection_time,
                    self.value(e, &el, |v| values::parse_time(v, Unit::Seconds)),
                ),
                "agent_reconnection_stability_time" => set(
                    &mut h.agent_reconnection_stability_time,
                    self.value(e, &el, |v| values::parse_time_min(v, Unit::Seconds, secs(10))),
                ),
                "imbalance_tolerance" => {
                    set(&mut h.imbalance_tolerance, self.value(e, &el, values::parse_ratio))
                }
                // Wazuh counts this one in minutes when no unit is given.
                "remove_disconnected_node_after" => set(
                    &mut h.remove_disconnected_node_after,
                    self.value(e, &el, |v| values::parse_time(v, Unit::Minutes)),
                ),
                _ => self.unknown(e, "cluster/haproxy_helper", "haproxy", HELPER_KNOWN),
            }
        }
    }

    fn intervals(&mut self, n: Node, c: &mut Cluster) {
        let iv = &mut c.intervals;
        for e in elements(n) {
            let name = e.tag_name().name();
            let el = format!("cluster/intervals/{name}");
            let slot = match name {
                "keep_alive" => &mut iv.keep_alive,
                "worker_timeout" => &mut iv.worker_timeout,
                "agent_info" => &mut iv.agent_info,
                "integrity" => &mut iv.integrity,
                "master_integrity" => &mut iv.master_integrity,
                "reconnect" => &mut iv.reconnect,
                "request_timeout" => &mut iv.request_timeout,
                "in_doubt_wait" => &mut iv.in_doubt_wait,
                _ => {
                    self.unknown(e, "cluster/intervals", "intervals", INTERVALS_KNOWN);
                    continue;
                }
            };
            set(slot, self.value(e, &el, values::parse_positive_time));
        }
    }

    /// Checks that need the merged result.
    fn finish_cluster(&mut self, st: &mut ClusterState) {
        let Some(line) = st.line else {
            // No <cluster> at all: a standalone manager.
            st.c.disabled = true;
            return;
        };
        let c = &st.c;
        if c.disabled {
            return;
        }
        if c.key.is_empty() {
            self.error_at(
                st.key_line.unwrap_or(line),
                "cluster/key",
                "the cluster key is required when the cluster is enabled; set <key> to 32 \
                 alphanumeric characters (generate one with: openssl rand -hex 16) or set \
                 <disabled>yes</disabled>",
            );
        }
        if c.node_type == NodeType::Worker && c.nodes.is_empty() {
            self.error_at(
                line,
                "cluster/nodes",
                "a worker needs the master's address: add <nodes><node>MASTER_ADDRESS</node></nodes>",
            );
        }
        let Some(h) = &c.helper else { return };
        if h.disabled {
            return;
        }
        let hl = st.helper_line;
        let required = [
            (
                "haproxy_address",
                h.address.is_empty(),
                "the Data Plane API address",
            ),
            ("haproxy_user", h.user.is_empty(), "the Data Plane API user"),
            (
                "haproxy_password",
                h.password.is_empty(),
                "the Data Plane API password",
            ),
        ];
        for (name, missing, what) in required {
            if missing {
                self.error_at(
                    hl,
                    &format!("cluster/haproxy_helper/{name}"),
                    format!(
                        "required when the HAProxy helper is enabled; set <{name}> to {what} \
                         or set <haproxy_disabled>yes</haproxy_disabled>"
                    ),
                );
            }
        }
        if h.client_cert.is_some() != h.client_cert_key.is_some() {
            self.error_at(
                hl,
                "cluster/haproxy_helper/client_cert",
                "<client_cert> and <client_cert_key> go together; set both or neither",
            );
        }
    }

    fn auth(&mut self, n: Node, a: &mut Auth) {
        for e in elements(n) {
            let name = e.tag_name().name();
            let el = format!("auth/{name}");
            match name {
                "disabled" => set(&mut a.disabled, self.value(e, &el, values::parse_bool)),
                "port" => set(&mut a.port, self.value(e, &el, values::parse_port)),
                "local_ip" => set(
                    &mut a.local_ip,
                    self.value(e, &el, values::parse_ip).map(Some),
                ),
                "use_password" => set(&mut a.use_password, self.value(e, &el, values::parse_bool)),
                "use_source_ip" => {
                    set(&mut a.use_source_ip, self.value(e, &el, values::parse_bool))
                }
                "purge" => set(&mut a.purge, self.value(e, &el, values::parse_bool)),
                "force" => self.force(e, a),
                "ssl_manager_cert" => set(&mut a.ssl_manager_cert, self.path(e, &el)),
                "ssl_manager_key" => set(&mut a.ssl_manager_key, self.path(e, &el)),
                "ssl_agent_ca" => set(&mut a.ssl_agent_ca, self.path(e, &el)),
                "ssl_verify_host" => set(
                    &mut a.ssl_verify_host,
                    self.value(e, &el, values::parse_bool),
                ),
                "ssl_auto_negotiate" => set(
                    &mut a.ssl_auto_negotiate,
                    self.value(e, &el, values::parse_bool),
                ),
                // Documented yes/no options we do not act on: still checked.
                "remote_enrollment" | "ipv6" | "limit_maxagents" | "force_insert" => {
                    let _ = self.value(e, &el, values::parse_bool);
                }
                // Accepted and ignored (ciphers are rustls's choice; blocks we do not support).
                "ciphers" | "key_request" | "agents" | "force_time" => {}
                _ => self.unknown(e, "auth", "auth", AUTH_KNOWN),
            }
        }
    }

    fn force(&mut self, n: Node, a: &mut Auth) {
        let f = &mut a.force;
        for e in elements(n) {
            let name = e.tag_name().name();
            let el = format!("auth/force/{name}");
            match name {
                "enabled" => set(&mut f.enabled, self.value(e, &el, values::parse_bool)),
                "key_mismatch" => set(&mut f.key_mismatch, self.value(e, &el, values::parse_bool)),
                "disconnected_time" => {
                    let enabled = match e.attribute("enabled") {
                        None => Some(true),
                        Some(v) => match values::parse_bool(v.trim()) {
                            Ok(b) => Some(b),
                            Err(msg) => {
                                self.error(e, &el, format!("attribute enabled: {msg}"));
                                None
                            }
                        },
                    };
                    match enabled {
                        Some(true) => set(
                            &mut f.disconnected_time,
                            self.value(e, &el, |v| values::parse_time(v, Unit::Seconds))
                                .map(Some),
                        ),
                        Some(false) => f.disconnected_time = None,
                        None => {}
                    }
                }
                "after_registration_time" => set(
                    &mut f.after_registration_time,
                    self.value(e, &el, |v| values::parse_time(v, Unit::Seconds)),
                ),
                _ => self.unknown(e, "auth/force", "force", FORCE_KNOWN),
            }
        }
    }

    /// Only the secure `<remote>` is ours; syslog ones are checked for unknown elements only.
    fn remote(&mut self, n: Node, r: &mut Remote) {
        let connection = elements(n)
            .filter(|e| e.has_tag_name("connection"))
            .last()
            .map(|e| e.text().unwrap_or("").trim().to_string())
            .unwrap_or_else(|| "secure".to_string());
        let secure = connection == "secure";
        for e in elements(n) {
            let name = e.tag_name().name();
            let el = format!("remote/{name}");
            match (name, secure) {
                ("connection", _) => {
                    if connection != "secure" && connection != "syslog" {
                        self.error(
                            e,
                            &el,
                            format!("expected secure or syslog, got '{connection}'"),
                        );
                    }
                }
                ("port", true) => set(&mut r.port, self.value(e, &el, values::parse_port)),
                ("protocol", true) => {
                    set(&mut r.protocol, self.value(e, &el, values::parse_protocol))
                }
                ("local_ip", true) => set(
                    &mut r.local_ip,
                    self.value(e, &el, values::parse_ip).map(Some),
                ),
                ("queue_size", true) => set(
                    &mut r.queue_size,
                    self.value(e, &el, |v| values::parse_u32_in(v, 1, QUEUE_SIZE_MAX)),
                ),
                ("ipv6", true) => {
                    let _ = self.value(e, &el, values::parse_bool);
                }
                _ if REMOTE_KNOWN.contains(&name) => {}
                _ => self.unknown(e, "remote", "remote", REMOTE_KNOWN),
            }
        }
    }
}

fn set<T>(slot: &mut T, v: Option<T>) {
    if let Some(v) = v {
        *slot = v;
    }
}

fn secs(n: u64) -> std::time::Duration {
    std::time::Duration::from_secs(n)
}

fn parse_node_type(v: &str) -> Result<NodeType, String> {
    match v {
        "master" => Ok(NodeType::Master),
        // Wazuh still accepts the old name "client" for a worker.
        "worker" | "client" => Ok(NodeType::Worker),
        _ => Err(format!("expected master or worker, got '{v}'")),
    }
}

fn parse_helper_proto(v: &str) -> Result<HelperProtocol, String> {
    match v.to_ascii_lowercase().as_str() {
        "http" => Ok(HelperProtocol::Http),
        "https" => Ok(HelperProtocol::Https),
        _ => Err(format!("expected http or https, got '{v}'")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_keeps_lines_and_drops_declaration() {
        let w = wrap("\u{feff}<?xml version=\"1.0\"?>\n<ossec_config/>");
        assert!(w.starts_with("<rampart_root>"));
        assert!(!w.contains("<?xml"));
        let doc = Document::parse(&w).unwrap();
        let block = elements(doc.root_element()).next().unwrap();
        assert_eq!(doc.text_pos_at(block.range().start).row, 2);
    }
}
