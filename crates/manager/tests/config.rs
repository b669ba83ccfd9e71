//! ossec.conf parsing and validation: fixtures, defaults, merging, every error.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use manager::config::{
    self, Auth, Cluster, ConfigError, Force, HelperProtocol, Intervals, NodeType, OssecConf, Remote,
};

const KEY: &str = "c98b62a9b6169ac5f67dae55ae4a9088";

fn fixture(name: &str) -> (String, PathBuf) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/config")
        .join(name);
    let text = std::fs::read_to_string(&path).expect("fixture");
    (text, path)
}

fn parse_fixture(name: &str) -> OssecConf {
    let (text, path) = fixture(name);
    match config::parse_str(&text, &path) {
        Ok(c) => c,
        Err(e) => panic!("{name} should parse:\n{e}"),
    }
}

fn ok(text: &str) -> OssecConf {
    match config::parse_str(text, Path::new("/var/ossec/etc/ossec.conf")) {
        Ok(c) => c,
        Err(e) => panic!("should parse:\n{e}\n---\n{text}"),
    }
}

fn errs(text: &str) -> Vec<ConfigError> {
    match config::parse_str(text, Path::new("/var/ossec/etc/ossec.conf")) {
        Ok(c) => panic!("should fail, got {c:?}\n---\n{text}"),
        Err(e) => e.0,
    }
}

/// Exactly one error, on `line`, whose rendering names `element` and contains `fragment`.
#[track_caller]
fn one_error(text: &str, line: u32, element: &str, fragment: &str) -> String {
    let errors = errs(text);
    assert_eq!(errors.len(), 1, "expected one error, got {errors:#?}");
    let e = &errors[0];
    let shown = e.to_string();
    assert_eq!(e.line, line, "{shown}");
    assert!(
        shown.starts_with(&format!("/var/ossec/etc/ossec.conf:{line}: {element}: ")),
        "{shown}"
    );
    assert!(shown.contains(fragment), "{shown} lacks {fragment:?}");
    shown
}

/// An enabled master cluster; `extra` starts on line 5.
fn cluster_with(extra: &str) -> String {
    format!(
        "<ossec_config>\n  <cluster>\n    <node_name>n1</node_name>\n    <key>{KEY}</key>\n{extra}\n  </cluster>\n</ossec_config>\n"
    )
}

/// An enabled helper block; `extra` starts on line 9.
fn helper_with(extra: &str) -> String {
    cluster_with(&format!(
        "    <haproxy_helper>\n      <haproxy_address>127.0.0.1</haproxy_address>\n      <haproxy_user>u</haproxy_user>\n      <haproxy_password>p</haproxy_password>\n{extra}\n    </haproxy_helper>"
    ))
}

/// `<section>` whose `extra` starts on line 3.
fn section_with(section: &str, extra: &str) -> String {
    format!("<ossec_config>\n  <{section}>\n{extra}\n  </{section}>\n</ossec_config>\n")
}

#[test]
fn wazuh_documentation_master_block() {
    let c = parse_fixture("master.conf");
    assert!(c.path.ends_with("master.conf"));
    let cl = &c.cluster;
    assert_eq!(cl.name, "wazuh");
    assert_eq!(cl.node_name, "master-node");
    assert_eq!(cl.key, KEY);
    assert_eq!(cl.node_type, NodeType::Master);
    assert_eq!(cl.node_type.to_string(), "master");
    assert_eq!(cl.port, 1516);
    assert_eq!(cl.bind_addr, IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    assert_eq!(cl.nodes, vec!["WAZUH-MASTER-ADDRESS".to_string()]);
    assert!(!cl.hidden && !cl.disabled);
    assert_eq!(cl.intervals, Intervals::default());
    let h = cl.helper.as_ref().expect("helper block present");
    assert!(!h.disabled);
    assert_eq!(h.address, "HAPROXY_ADDRESS");
    assert_eq!(h.user, "DATAPLANE_USER");
    assert_eq!(h.password, "DATAPLANE_PASSWORD");
    // Defaults of everything the block leaves out.
    assert_eq!(h.port, 5555);
    assert_eq!(h.protocol, HelperProtocol::Http);
    assert_eq!(h.backend, "wazuh_reporting");
    assert_eq!(h.resolver, None);
    assert_eq!(h.haproxy_cert, None);
    assert!(h.excluded_nodes.is_empty());
    assert_eq!(h.frequency, Duration::from_secs(60));
    assert_eq!(h.agent_chunk_size, 300);
    assert_eq!(h.agent_reconnection_time, Duration::from_secs(5));
    assert_eq!(h.agent_reconnection_stability_time, Duration::from_secs(60));
    assert_eq!(h.imbalance_tolerance, 0.1);
    assert_eq!(
        h.remove_disconnected_node_after,
        Duration::from_secs(240 * 60)
    );
    // No <auth>/<remote>: Wazuh defaults.
    assert_eq!(c.auth, Auth::default());
    assert_eq!(c.remote, Remote::default());
}

#[test]
fn worker_fixture_with_auth_remote_and_two_blocks() {
    let c = parse_fixture("worker.conf");
    let cl = &c.cluster;
    assert_eq!(cl.node_type, NodeType::Worker);
    assert_eq!(cl.node_type.to_string(), "worker");
    assert_eq!(cl.node_name, "worker-01");
    assert_eq!(cl.nodes, vec!["192.168.56.10".to_string()]);
    assert_eq!(cl.helper, None);

    let a = &c.auth;
    assert!(!a.disabled);
    assert_eq!(a.port, 1515);
    assert!(!a.use_source_ip && !a.use_password && !a.ssl_verify_host && !a.ssl_auto_negotiate);
    assert!(a.purge);
    assert_eq!(a.local_ip, None);
    // Stored as written: relative to the home.
    assert_eq!(
        a.ssl_manager_cert,
        Some(PathBuf::from("etc/sslmanager.cert"))
    );
    assert_eq!(a.ssl_manager_key, Some(PathBuf::from("etc/sslmanager.key")));
    assert_eq!(a.ssl_agent_ca, None);
    // <force> comes from the second <ossec_config>, merged over the first block's <auth>.
    assert_eq!(
        a.force,
        Force {
            enabled: true,
            key_mismatch: true,
            disconnected_time: Some(Duration::from_secs(3600)),
            after_registration_time: Duration::from_secs(3600),
        }
    );

    // The syslog <remote> (port 514, udp) is not ours.
    assert_eq!(
        c.remote,
        Remote {
            connection: "secure".into(),
            port: 1514,
            protocol: "tcp".into(),
            local_ip: None,
            queue_size: 131_072,
        }
    );
}

#[test]
fn https_helper_fixture() {
    let c = parse_fixture("master-https.conf");
    let h = c.cluster.helper.expect("helper");
    assert_eq!(h.protocol, HelperProtocol::Https);
    assert_eq!(h.protocol.to_string(), "https");
    assert_eq!(h.port, 6443);
    assert_eq!(h.address, "haproxy.example.internal");
    assert_eq!(
        h.haproxy_cert,
        Some(PathBuf::from("/etc/haproxy/dataplane-ca.pem"))
    );
    assert_eq!(
        h.client_cert,
        Some(PathBuf::from("/etc/haproxy/wazuh-client.pem"))
    );
    assert_eq!(
        h.client_cert_key,
        Some(PathBuf::from("/etc/haproxy/wazuh-client.key"))
    );
    assert_eq!(h.resolver.as_deref(), Some("dns_resolver"));
    assert_eq!(h.excluded_nodes, vec!["worker-03".to_string()]);
    assert_eq!(h.frequency, Duration::from_secs(120));
    assert_eq!(h.agent_chunk_size, 500);
    assert_eq!(h.agent_reconnection_time, Duration::from_secs(10));
    assert_eq!(
        h.agent_reconnection_stability_time,
        Duration::from_secs(120)
    );
    assert_eq!(h.imbalance_tolerance, 0.25);
    // A bare number here is minutes, as in Wazuh.
    assert_eq!(
        h.remove_disconnected_node_after,
        Duration::from_secs(30 * 60)
    );
}

#[test]
fn stock_disabled_cluster_with_empty_key_is_fine() {
    let c = parse_fixture("standalone.conf");
    assert!(c.cluster.disabled);
    assert_eq!(c.cluster.key, "");
    assert_eq!(c.cluster.nodes, vec!["NODE_IP".to_string()]);
}

#[test]
fn no_cluster_section_means_standalone_defaults() {
    let c = ok("<ossec_config>\n  <global><logall>no</logall></global>\n</ossec_config>\n");
    assert_eq!(
        c.cluster,
        Cluster {
            disabled: true,
            ..Cluster::default()
        }
    );
    assert_eq!(c.cluster.name, "wazuh");
    assert_eq!(c.cluster.node_name, "node01");
    assert_eq!(c.cluster.node_type, NodeType::Master);
    assert_eq!(c.cluster.port, 1516);
    assert_eq!(c.cluster.helper, None);
    assert_eq!(c.auth.port, 1515);
    assert!(!c.auth.disabled);
    assert_eq!(c.auth.force, Force::default());
    assert!(c.auth.force.enabled && c.auth.force.key_mismatch);
    assert_eq!(c.remote.port, 1514);
    assert_eq!(c.remote.protocol, "tcp");
    assert_eq!(c.remote.queue_size, 131_072);
    let i = c.cluster.intervals;
    assert_eq!(i.keep_alive, Duration::from_secs(60));
    assert_eq!(i.worker_timeout, Duration::from_secs(120));
    assert_eq!(i.agent_info, Duration::from_secs(10));
    assert_eq!(i.integrity, Duration::from_secs(9));
    assert_eq!(i.master_integrity, Duration::from_secs(8));
    assert_eq!(i.reconnect, Duration::from_secs(10));
    assert_eq!(i.request_timeout, Duration::from_secs(20));
}

#[test]
fn later_blocks_win_field_by_field() {
    let text = format!(
        "<ossec_config>
  <cluster>
    <name>first</name>
    <node_name>n1</node_name>
    <key>{KEY}</key>
    <port>1600</port>
    <nodes><node>10.0.0.1</node><node>10.0.0.2</node></nodes>
  </cluster>
  <remote><port>1600</port><local_ip>10.0.0.5</local_ip></remote>
</ossec_config>
<ossec_config>
  <cluster>
    <name>second</name>
    <node_type>worker</node_type>
    <nodes><node>10.0.0.9</node></nodes>
  </cluster>
  <remote><protocol>TCP,UDP</protocol><port>1601</port></remote>
</ossec_config>
"
    );
    let c = ok(&text);
    assert_eq!(c.cluster.name, "second");
    assert_eq!(c.cluster.node_name, "n1");
    assert_eq!(c.cluster.port, 1600);
    assert_eq!(c.cluster.node_type, NodeType::Worker);
    assert_eq!(c.cluster.nodes, vec!["10.0.0.9".to_string()]);
    assert_eq!(c.remote.port, 1601);
    assert_eq!(c.remote.protocol, "tcp,udp");
    assert_eq!(c.remote.local_ip, Some("10.0.0.5".parse().unwrap()));
}

#[test]
fn intervals_extension() {
    let c = ok(&cluster_with(
        "    <intervals>
      <keep_alive>2s</keep_alive>
      <worker_timeout>5</worker_timeout>
      <agent_info>250ms</agent_info>
      <integrity>300ms</integrity>
      <master_integrity>1m</master_integrity>
      <reconnect>1h</reconnect>
      <request_timeout>1d</request_timeout>
      <in_doubt_wait>45s</in_doubt_wait>
    </intervals>",
    ));
    assert_eq!(
        c.cluster.intervals,
        Intervals {
            keep_alive: Duration::from_secs(2),
            worker_timeout: Duration::from_secs(5),
            agent_info: Duration::from_millis(250),
            integrity: Duration::from_millis(300),
            master_integrity: Duration::from_secs(60),
            reconnect: Duration::from_secs(3600),
            request_timeout: Duration::from_secs(86_400),
            in_doubt_wait: Duration::from_secs(45),
        }
    );
    // Only some set: the rest keep their defaults.
    let c = ok(&cluster_with(
        "    <intervals><integrity>1s</integrity></intervals>",
    ));
    assert_eq!(c.cluster.intervals.integrity, Duration::from_secs(1));
    assert_eq!(c.cluster.intervals.keep_alive, Duration::from_secs(60));
}

#[test]
fn force_parsing() {
    let c = ok(&section_with(
        "auth",
        "    <force>
      <enabled>no</enabled>
      <key_mismatch>no</key_mismatch>
      <disconnected_time enabled=\"no\">1h</disconnected_time>
      <after_registration_time>30m</after_registration_time>
    </force>",
    ));
    assert_eq!(
        c.auth.force,
        Force {
            enabled: false,
            key_mismatch: false,
            disconnected_time: None,
            after_registration_time: Duration::from_secs(1800),
        }
    );
    // No attribute means enabled; a bare number is seconds.
    let c = ok(&section_with(
        "auth",
        "    <force><disconnected_time>90</disconnected_time></force>",
    ));
    assert_eq!(
        c.auth.force.disconnected_time,
        Some(Duration::from_secs(90))
    );
    assert!(c.auth.force.enabled);
    assert_eq!(
        c.auth.force.after_registration_time,
        Duration::from_secs(3600)
    );

    one_error(
        &section_with(
            "auth",
            "    <force><disconnected_time enabled=\"maybe\">1h</disconnected_time></force>",
        ),
        3,
        "<auth><force><disconnected_time>",
        "attribute enabled: expected yes or no, got 'maybe'",
    );
    one_error(
        &section_with(
            "auth",
            "    <force><disconnected_time enabled=\"yes\">soon</disconnected_time></force>",
        ),
        3,
        "<auth><force><disconnected_time>",
        "invalid time value 'soon'",
    );
    one_error(
        &section_with("auth", "    <force><enable>yes</enable></force>"),
        3,
        "<auth><force><enable>",
        "unknown element <enable> in <force>; did you mean <enabled>?",
    );
}

#[test]
fn auth_accepts_documented_elements_it_ignores() {
    let c = ok(&section_with(
        "auth",
        "    <disabled>no</disabled>
    <remote_enrollment>yes</remote_enrollment>
    <port>1515</port>
    <ipv6>no</ipv6>
    <local_ip>127.0.0.1</local_ip>
    <use_source_ip>yes</use_source_ip>
    <purge>yes</purge>
    <use_password>yes</use_password>
    <limit_maxagents>yes</limit_maxagents>
    <ciphers>HIGH:!ADH:!EXP:!MD5:!RC4:!3DES:!CAMELLIA:@STRENGTH</ciphers>
    <ssl_agent_ca>etc/rootCA.pem</ssl_agent_ca>
    <ssl_verify_host>yes</ssl_verify_host>
    <ssl_manager_cert>/abs/sslmanager.cert</ssl_manager_cert>
    <ssl_manager_key>etc/sslmanager.key</ssl_manager_key>
    <ssl_auto_negotiate>yes</ssl_auto_negotiate>
    <key_request>
      <enabled>no</enabled>
      <exec_path>/usr/bin/python3 /home/script.py</exec_path>
      <socket>/var/run/key.sock</socket>
      <timeout>60</timeout>
    </key_request>
    <agents><allow_higher_versions>no</allow_higher_versions></agents>",
    ));
    let a = c.auth;
    assert!(a.use_source_ip && a.purge && a.use_password && a.ssl_verify_host);
    assert!(a.ssl_auto_negotiate);
    assert_eq!(a.local_ip, Some("127.0.0.1".parse().unwrap()));
    assert_eq!(a.ssl_agent_ca, Some(PathBuf::from("etc/rootCA.pem")));
    assert_eq!(
        a.ssl_manager_cert,
        Some(PathBuf::from("/abs/sslmanager.cert"))
    );
}

#[test]
fn only_the_secure_remote_is_used() {
    let c = ok("<ossec_config>
  <remote>
    <connection>syslog</connection>
    <port>514</port>
    <protocol>udp</protocol>
    <allowed-ips>10.0.0.0/8</allowed-ips>
  </remote>
  <remote>
    <port>2514</port>
    <local_ip>::1</local_ip>
    <queue_size>1000</queue_size>
    <rids_closing_time>5m</rids_closing_time>
  </remote>
</ossec_config>
");
    assert_eq!(c.remote.connection, "secure");
    assert_eq!(c.remote.port, 2514);
    assert_eq!(c.remote.protocol, "tcp");
    assert_eq!(c.remote.local_ip, Some("::1".parse().unwrap()));
    assert_eq!(c.remote.queue_size, 1000);
}

#[test]
fn key_errors() {
    let shown = one_error(
        &cluster_with("    <key>c98b62a9b6169ac5f67dae55ae4a90</key>"),
        5,
        "<cluster><key>",
        "must be exactly 32 alphanumeric characters, got 30; generate one with: openssl rand -hex 16",
    );
    assert!(shown.contains("got 30"));
    one_error(
        &cluster_with("    <key>c98b62a9b6169ac5f67dae55ae4a908!</key>"),
        5,
        "<cluster><key>",
        "openssl rand -hex 16",
    );
    // Enabled cluster without a key: reported on the <cluster> line.
    one_error(
        "<ossec_config>\n  <cluster>\n    <node_name>n1</node_name>\n  </cluster>\n</ossec_config>\n",
        2,
        "<cluster><key>",
        "openssl rand -hex 16",
    );
    // Empty key while enabled: reported on the <key> line.
    one_error(
        &cluster_with("    <key></key>"),
        5,
        "<cluster><key>",
        "required",
    );
    // A malformed key is an error even while disabled.
    one_error(
        &cluster_with("    <disabled>yes</disabled>\n    <key>short</key>"),
        6,
        "<cluster><key>",
        "got 5",
    );
}

#[test]
fn cluster_value_errors() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "<port>80</port>",
            "<cluster><port>",
            "between 1024 and 65535, got '80'",
        ),
        (
            "<port>70000</port>",
            "<cluster><port>",
            "between 1024 and 65535",
        ),
        ("<port>x</port>", "<cluster><port>", "got 'x'"),
        (
            "<name>my cluster</name>",
            "<cluster><name>",
            "invalid character ' '",
        ),
        ("<name></name>", "<cluster><name>", "must not be empty"),
        (
            "<node_name>node.1</node_name>",
            "<cluster><node_name>",
            "invalid character '.'",
        ),
        (
            "<node_type>boss</node_type>",
            "<cluster><node_type>",
            "expected master or worker",
        ),
        (
            "<bind_addr>localhost</bind_addr>",
            "<cluster><bind_addr>",
            "expected an IP address",
        ),
        (
            "<hidden>true</hidden>",
            "<cluster><hidden>",
            "expected yes or no, got 'true'",
        ),
        (
            "<disabled>1</disabled>",
            "<cluster><disabled>",
            "expected yes or no",
        ),
        (
            "<nodes><node></node></nodes>",
            "<cluster><nodes><node>",
            "address",
        ),
        (
            "<nodes><nodes>a</nodes></nodes>",
            "<cluster><nodes><nodes>",
            "unknown element <nodes> in <nodes>; did you mean <node>?",
        ),
        (
            "<port><value>1516</value></port>",
            "<cluster><port>",
            "expected a plain value, found element <value>",
        ),
        (
            "<intervals><keep_alive>fast</keep_alive></intervals>",
            "<cluster><intervals><keep_alive>",
            "invalid time value 'fast'",
        ),
        (
            "<intervals><reconnect>0</reconnect></intervals>",
            "<cluster><intervals><reconnect>",
            "greater than zero",
        ),
        (
            "<intervals><keepalive>1s</keepalive></intervals>",
            "<cluster><intervals><keepalive>",
            "did you mean <keep_alive>?",
        ),
        (
            "<intervals><integrity>1.5s</integrity></intervals>",
            "<cluster><intervals><integrity>",
            "s, m, h or d",
        ),
    ];
    for (snippet, element, fragment) in cases {
        one_error(
            &cluster_with(&format!("    {snippet}")),
            5,
            element,
            fragment,
        );
    }
}

#[test]
fn worker_needs_a_master_address() {
    one_error(
        &cluster_with("    <node_type>worker</node_type>"),
        2,
        "<cluster><nodes>",
        "<nodes><node>MASTER_ADDRESS</node></nodes>",
    );
    // Legacy "client" is a worker too.
    let c = ok(&cluster_with(
        "    <node_type>client</node_type>\n    <nodes><node>m</node></nodes>",
    ));
    assert_eq!(c.cluster.node_type, NodeType::Worker);
    // Disabled: no check.
    ok(&cluster_with(
        "    <node_type>worker</node_type>\n    <disabled>yes</disabled>",
    ));
}

#[test]
fn helper_errors() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "<frequency>5</frequency>",
            "<cluster><haproxy_helper><frequency>",
            "at least 10s",
        ),
        (
            "<agent_chunk_size>50</agent_chunk_size>",
            "<cluster><haproxy_helper><agent_chunk_size>",
            "between 100 and",
        ),
        (
            "<agent_reconnection_stability_time>5s</agent_reconnection_stability_time>",
            "<cluster><haproxy_helper><agent_reconnection_stability_time>",
            "at least 10s",
        ),
        (
            "<agent_reconnection_time>soon</agent_reconnection_time>",
            "<cluster><haproxy_helper><agent_reconnection_time>",
            "invalid time value",
        ),
        (
            "<imbalance_tolerance>0</imbalance_tolerance>",
            "<cluster><haproxy_helper><imbalance_tolerance>",
            "greater than 0 and at most 1",
        ),
        (
            "<imbalance_tolerance>1.5</imbalance_tolerance>",
            "<cluster><haproxy_helper><imbalance_tolerance>",
            "at most 1",
        ),
        (
            "<remove_disconnected_node_after>never</remove_disconnected_node_after>",
            "<cluster><haproxy_helper><remove_disconnected_node_after>",
            "number of minutes",
        ),
        (
            "<haproxy_protocol>ftp</haproxy_protocol>",
            "<cluster><haproxy_helper><haproxy_protocol>",
            "expected http or https",
        ),
        (
            "<haproxy_port>0</haproxy_port>",
            "<cluster><haproxy_helper><haproxy_port>",
            "between 1 and 65535",
        ),
        (
            "<haproxy_disabled>off</haproxy_disabled>",
            "<cluster><haproxy_helper><haproxy_disabled>",
            "expected yes or no",
        ),
        (
            "<haproxy_backend>a b</haproxy_backend>",
            "<cluster><haproxy_helper><haproxy_backend>",
            "backend name",
        ),
        (
            "<excluded_nodes><node>bad node</node></excluded_nodes>",
            "<cluster><haproxy_helper><excluded_nodes><node>",
            "invalid character",
        ),
        (
            "<haproxy_adress>x</haproxy_adress>",
            "<cluster><haproxy_helper><haproxy_adress>",
            "unknown element <haproxy_adress> in <haproxy_helper>; did you mean <haproxy_address>?",
        ),
    ];
    for (snippet, element, fragment) in cases {
        one_error(
            &helper_with(&format!("      {snippet}")),
            9,
            element,
            fragment,
        );
    }
    // client_cert without its key: reported on the <haproxy_helper> line.
    one_error(
        &helper_with("      <client_cert>/c.pem</client_cert>"),
        5,
        "<cluster><haproxy_helper><client_cert>",
        "set both or neither",
    );
}

#[test]
fn enabled_helper_needs_address_user_password() {
    let text = cluster_with("    <haproxy_helper>\n    </haproxy_helper>");
    let errors = errs(&text);
    let shown: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
    assert_eq!(errors.len(), 3, "{shown:#?}");
    for name in ["haproxy_address", "haproxy_user", "haproxy_password"] {
        assert!(
            shown.iter().any(|s| s.contains(&format!(
                ":5: <cluster><haproxy_helper><{name}>: required when the HAProxy helper is enabled"
            ))),
            "{shown:#?}"
        );
    }
    // Disabled helper: present but nothing required.
    let c = ok(&cluster_with(
        "    <haproxy_helper><haproxy_disabled>yes</haproxy_disabled></haproxy_helper>",
    ));
    assert!(c.cluster.helper.expect("some").disabled);
}

#[test]
fn auth_and_remote_errors() {
    let cases: &[(&str, &str, &str, &str)] = &[
        (
            "auth",
            "<port>1000</port>",
            "<auth><port>",
            "between 1024 and 65535",
        ),
        (
            "auth",
            "<purge>si</purge>",
            "<auth><purge>",
            "expected yes or no, got 'si'",
        ),
        (
            "auth",
            "<use_password>y</use_password>",
            "<auth><use_password>",
            "expected yes or no",
        ),
        (
            "auth",
            "<use_source_ip>n</use_source_ip>",
            "<auth><use_source_ip>",
            "expected yes or no",
        ),
        (
            "auth",
            "<ssl_verify_host>1</ssl_verify_host>",
            "<auth><ssl_verify_host>",
            "expected yes or no",
        ),
        (
            "auth",
            "<ipv6>maybe</ipv6>",
            "<auth><ipv6>",
            "expected yes or no",
        ),
        (
            "auth",
            "<local_ip>any</local_ip>",
            "<auth><local_ip>",
            "expected an IP address",
        ),
        (
            "auth",
            "<use_pasword>yes</use_pasword>",
            "<auth><use_pasword>",
            "unknown element <use_pasword> in <auth>; did you mean <use_password>?",
        ),
        (
            "auth",
            "<force><after_registration_time>x</after_registration_time></force>",
            "<auth><force><after_registration_time>",
            "invalid time value",
        ),
        (
            "auth",
            "<force><enabled>x</enabled></force>",
            "<auth><force><enabled>",
            "expected yes or no",
        ),
        (
            "remote",
            "<port>514</port>",
            "<remote><port>",
            "between 1024 and 65535",
        ),
        (
            "remote",
            "<protocol>sctp</protocol>",
            "<remote><protocol>",
            "expected tcp, udp or tcp,udp",
        ),
        (
            "remote",
            "<queue_size>0</queue_size>",
            "<remote><queue_size>",
            "between 1 and 262144",
        ),
        (
            "remote",
            "<local_ip>eth0</local_ip>",
            "<remote><local_ip>",
            "expected an IP address",
        ),
        (
            "remote",
            "<connection>tls</connection>",
            "<remote><connection>",
            "expected secure or syslog",
        ),
        (
            "remote",
            "<prot>1514</prot>",
            "<remote><prot>",
            "unknown element <prot> in <remote>; did you mean <port>?",
        ),
    ];
    for (section, snippet, element, fragment) in cases {
        one_error(
            &section_with(section, &format!("    {snippet}")),
            3,
            element,
            fragment,
        );
    }
}

#[test]
fn unknown_cluster_elements_with_suggestions() {
    one_error(
        &cluster_with("    <clustr_name>x</clustr_name>"),
        5,
        "<cluster><clustr_name>",
        "unknown element <clustr_name> in <cluster>; did you mean <name>?",
    );
    one_error(
        &cluster_with("    <nodetype>master</nodetype>"),
        5,
        "<cluster><nodetype>",
        "did you mean <node_type>?",
    );
    let shown = one_error(
        &cluster_with("    <log_format>json</log_format>"),
        5,
        "<cluster><log_format>",
        "unknown element <log_format> in <cluster>",
    );
    assert!(!shown.contains("did you mean"), "{shown}");
}

#[test]
fn all_errors_are_collected_in_line_order() {
    let text = "<ossec_config>
  <cluster>
    <name>bad name</name>
    <key>abc</key>
    <port>1</port>
    <hiden>no</hiden>
  </cluster>
  <auth><port>2</port></auth>
</ossec_config>
";
    let err = config::parse_str(text, Path::new("etc/ossec.conf")).unwrap_err();
    let lines: Vec<u32> = err.0.iter().map(|e| e.line).collect();
    assert_eq!(lines, vec![3, 4, 5, 6, 8]);
    let rendered = err.to_string();
    let rendered: Vec<&str> = rendered.lines().collect();
    assert_eq!(rendered.len(), 5);
    assert!(rendered[0].starts_with("etc/ossec.conf:3: <cluster><name>: "));
    assert!(rendered[1].starts_with("etc/ossec.conf:4: <cluster><key>: "));
    assert!(rendered[3].contains("did you mean <hidden>?"));
    assert!(rendered[4].starts_with("etc/ossec.conf:8: <auth><port>: "));
    assert_eq!(err.0[1].element, "cluster/key");
}

#[test]
fn xml_problems() {
    // A declaration is allowed and does not shift lines.
    let text = format!(
        "<?xml version=\"1.0\"?>\n<ossec_config>\n  <cluster>\n    <key>{KEY}</key>\n    <port>1</port>\n  </cluster>\n</ossec_config>\n"
    );
    one_error(&text, 5, "<cluster><port>", "between 1024");
    // Broken markup: the line of the problem, no element.
    let errors =
        errs("<ossec_config>\n  <cluster>\n    <port>1516</prt>\n  </cluster>\n</ossec_config>\n");
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].line, 3);
    assert!(errors[0]
        .to_string()
        .starts_with("/var/ossec/etc/ossec.conf:3: invalid XML"));
    // Unclosed block: the wrapper's name does not leak into the message.
    let errors = errs("<ossec_config>\n  <cluster>\n");
    assert!(!errors[0].message.contains("rampart_root"), "{}", errors[0]);
    // No <ossec_config> at all.
    let errors = errs("<cluster></cluster>\n");
    assert!(errors[0].message.contains("no <ossec_config> block"));
}

#[test]
fn load_reads_home_etc_ossec_conf() {
    let dir = tempfile::tempdir().unwrap();
    let (text, _) = fixture("master.conf");
    std::fs::create_dir_all(dir.path().join("etc")).unwrap();
    std::fs::write(dir.path().join("etc/ossec.conf"), text).unwrap();
    let c = config::load(dir.path()).unwrap();
    assert_eq!(c.path, dir.path().join("etc/ossec.conf"));
    assert_eq!(c.cluster.node_name, "master-node");

    let missing = tempfile::tempdir().unwrap();
    let err = config::load(missing.path()).unwrap_err();
    assert_eq!(err.0.len(), 1);
    assert_eq!(err.0[0].line, 0);
    assert!(
        err.to_string().contains("etc/ossec.conf:0: cannot read"),
        "{err}"
    );
}
