//! The agent's ossec.conf: fixtures, defaults, every validation error with file, line and
//! element, Wazuh's time-reconnect correction and the merging of several blocks.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use agent::config::{
    self, AgentConf, Client, ClientBuffer, ConfigError, CryptoMethod, Enrollment, LocalFile,
    Protocol, Server,
};

const FILE: &str = "/etc/ossec.conf";
const HOME: &str = "/var/ossec";

fn parse(text: &str) -> AgentConf {
    match config::parse_str(text, Path::new(FILE), Path::new(HOME)) {
        Ok(c) => c,
        Err(e) => panic!("unexpected errors:\n{e}"),
    }
}

fn errors(text: &str) -> Vec<ConfigError> {
    match config::parse_str(text, Path::new(FILE), Path::new(HOME)) {
        Ok(c) => panic!("expected errors, parsed {c:?}"),
        Err(e) => e.0,
    }
}

/// The single error of `text`, checked for file, line and element.
fn one_error(text: &str, line: u32, element: &str) -> ConfigError {
    let errs = errors(text);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    let e = errs.into_iter().next().unwrap();
    assert_eq!(e.file, PathBuf::from(FILE));
    assert_eq!((e.line, e.element.as_str()), (line, element), "{e}");
    e
}

/// A one-server config with `extra` inside `<client>` (extra starts on line 3).
fn client_with(extra: &str) -> String {
    format!(
        "<ossec_config>\n<client>\n{extra}\n<server><address>10.0.0.1</address></server>\n\
         </client>\n</ossec_config>\n"
    )
}

fn server_with(inner: &str) -> String {
    format!("<ossec_config>\n<client>\n<server>\n{inner}\n</server>\n</client>\n</ossec_config>\n")
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[test]
fn failover_fixture_loads_from_home() {
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir(home.path().join("etc")).unwrap();
    let path = home.path().join("etc/ossec.conf");
    std::fs::copy("tests/fixtures/failover.conf", &path).unwrap();
    let c = config::load(home.path()).unwrap();
    let server = |a: &str| Server {
        address: a.to_string(),
        port: 1514,
        protocol: Protocol::Tcp,
        max_retries: 5,
        retry_interval: secs(10),
    };
    let want = AgentConf {
        path,
        client: Client {
            servers: vec![server("172.0.0.4"), server("172.0.0.5")],
            config_profile: vec!["ubuntu".into(), "ubuntu18".into(), "ubuntu18.04".into()],
            notify_time: secs(10),
            time_reconnect: secs(60),
            auto_restart: true,
            crypto_method: CryptoMethod::Aes,
            force_reconnect_interval: None,
        },
        enrollment: Enrollment::defaults(home.path()),
        buffer: ClientBuffer::default(),
        localfiles: Vec::new(),
        labels: BTreeMap::new(),
        warnings: Vec::new(),
    };
    assert_eq!(c, want);
    assert_eq!(c.enrollment_address(), "172.0.0.4");
}

#[test]
fn agent_fixture_parses_to_the_model_and_ignores_other_sections() {
    let text = std::fs::read_to_string("tests/fixtures/agent.conf").unwrap();
    let c = parse(&text);
    let labels: BTreeMap<String, String> = [
        ("aws.instance-id", "i-052a1838c"),
        ("installation", "January 1st, 2024"),
        ("network.ip", "10.0.3.7"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let want = AgentConf {
        path: PathBuf::from(FILE),
        client: Client {
            servers: vec![Server {
                address: "LB".into(),
                port: 1514,
                protocol: Protocol::Tcp,
                max_retries: 3,
                retry_interval: secs(5),
            }],
            config_profile: vec!["ubuntu".into(), "ubuntu22".into(), "ubuntu22.04".into()],
            notify_time: secs(20),
            time_reconnect: secs(120),
            auto_restart: false,
            crypto_method: CryptoMethod::Aes,
            force_reconnect_interval: Some(secs(3600)),
        },
        enrollment: Enrollment {
            enabled: true,
            manager_address: Some("LB".into()),
            port: 1515,
            agent_name: Some("web-01.example".into()),
            groups: vec!["default".into(), "web".into(), "linux".into()],
            agent_address: Some("10.0.3.7".into()),
            authorization_pass_path: PathBuf::from("/var/ossec/etc/authd.pass"),
            server_ca_path: Some(PathBuf::from("/var/ossec/etc/rootCA.pem")),
            delay_after_enrollment: secs(30),
        },
        buffer: ClientBuffer {
            disabled: false,
            queue_size: 200_000,
            events_per_second: 1000,
        },
        localfiles: vec![
            LocalFile {
                location: "/var/log/auth.log".into(),
                log_format: "syslog".into(),
                only_future_events: true,
                line: 116,
            },
            LocalFile {
                location: "/var/log/shop/orders.json".into(),
                log_format: "json".into(),
                only_future_events: false,
                line: 121,
            },
            LocalFile {
                location: "/var/ossec/logs/active-responses.log".into(),
                log_format: "syslog".into(),
                only_future_events: true,
                line: 150,
            },
        ],
        labels,
        // The command <localfile> on line 110 is skipped, as rampart reads files only.
        warnings: vec![format!(
            "{FILE}:110: <localfile>: rampart reads files only; this 'command' source is skipped"
        )],
    };
    assert_eq!(c, want);
    assert_eq!(c.enrollment_address(), "LB");
}

#[test]
fn defaults_are_wazuhs() {
    let c = parse(&client_with(""));
    assert_eq!(c.client.servers, vec![Server::new("10.0.0.1")]);
    let s = &c.client.servers[0];
    assert_eq!(
        (s.port, s.protocol, s.max_retries, s.retry_interval),
        (1514, Protocol::Tcp, 5, secs(10))
    );
    assert_eq!(
        c.client,
        Client {
            servers: c.client.servers.clone(),
            ..Client::default()
        }
    );
    assert_eq!(c.client.notify_time, secs(20));
    assert_eq!(c.client.time_reconnect, secs(60));
    assert!(c.client.auto_restart);
    let en = &c.enrollment;
    assert!(en.enabled);
    assert_eq!(en.port, 1515);
    assert_eq!(
        (en.manager_address.as_deref(), en.agent_name.as_deref()),
        (None, None)
    );
    assert_eq!(
        en.authorization_pass_path,
        PathBuf::from("/var/ossec/etc/authd.pass")
    );
    assert_eq!(en.delay_after_enrollment, secs(20));
    assert_eq!(
        c.buffer,
        ClientBuffer {
            disabled: false,
            queue_size: 5000,
            events_per_second: 500
        }
    );
    assert!(c.localfiles.is_empty() && c.labels.is_empty() && c.warnings.is_empty());
    assert_eq!(c.enrollment_address(), "10.0.0.1");
}

#[test]
fn udp_is_refused_naming_the_element() {
    let e = one_error(
        &server_with("<address>m</address>\n<protocol>udp</protocol>"),
        5,
        "client/server/protocol",
    );
    assert!(e.message.contains("TCP only"), "{e}");
    let shown = e.to_string();
    assert!(
        shown.starts_with("/etc/ossec.conf:5: <client><server><protocol>: "),
        "{shown}"
    );
}

#[test]
fn blowfish_is_refused() {
    let e = one_error(
        &client_with("<crypto_method>blowfish</crypto_method>"),
        3,
        "client/crypto_method",
    );
    assert!(e.message.contains("only AES"), "{e}");
}

#[test]
fn port_zero_and_out_of_range_are_refused() {
    let e = one_error(
        &server_with("<address>m</address>\n<port>0</port>"),
        5,
        "client/server/port",
    );
    assert!(e.message.contains("between 1 and 65535"), "{e}");
    one_error(
        &server_with("<address>m</address>\n<port>65536</port>"),
        5,
        "client/server/port",
    );
    let e = one_error(
        "<ossec_config>\n<client>\n<server><address>m</address></server>\n<enrollment>\n\
         <port>0</port>\n</enrollment>\n</client>\n</ossec_config>",
        5,
        "client/enrollment/port",
    );
    assert!(e.message.contains("got '0'"), "{e}");
}

#[test]
fn missing_empty_or_placeholder_address_is_refused() {
    let e = one_error(
        &server_with("<port>1514</port>"),
        3,
        "client/server/address",
    );
    assert!(e.message.contains("missing <address>"), "{e}");
    let e = one_error(
        &server_with("<address> </address>"),
        4,
        "client/server/address",
    );
    assert!(e.message.contains("must not be empty"), "{e}");
    let e = one_error(
        &server_with("<address>MANAGER_IP</address>"),
        4,
        "client/server/address",
    );
    assert!(e.message.contains("placeholder"), "{e}");
}

#[test]
fn bad_yes_no_is_refused() {
    let e = one_error(
        &client_with("<auto_restart>true</auto_restart>"),
        3,
        "client/auto_restart",
    );
    assert_eq!(e.message, "expected yes or no, got 'true'");
    let text = format!(
        "{}<ossec_config>\n<localfile>\n<location>/x</location>\n<log_format>syslog</log_format>\n\
         <only-future-events>on</only-future-events>\n</localfile>\n</ossec_config>",
        client_with("")
    );
    one_error(&text, 11, "localfile/only-future-events");
}

#[test]
fn unknown_elements_get_a_suggestion() {
    let cases = [
        (server_with("<address>m</address>\n<prot>1514</prot>"), 5, "client/server/prot", "<port>"),
        (client_with("<notify_tiem>10</notify_tiem>"), 3, "client/notify_tiem", "<notify_time>"),
        (
            client_with("<enrollment>\n<manager_adress>m</manager_adress>\n</enrollment>"),
            4,
            "client/enrollment/manager_adress",
            "<manager_address>",
        ),
        (
            format!("{}<ossec_config><client_buffer>\n<queue_sise>9</queue_sise>\n</client_buffer></ossec_config>", client_with("")),
            8,
            "client_buffer/queue_sise",
            "<queue_size>",
        ),
        (
            format!("{}<ossec_config><localfile>\n<locaton>/x</locaton>\n<log_format>syslog</log_format></localfile></ossec_config>", client_with("")),
            8,
            "localfile/locaton",
            "<location>",
        ),
    ];
    for (text, line, element, hint) in cases {
        let e = one_error(&text, line, element);
        assert!(
            e.message.contains(&format!("did you mean {hint}?")),
            "{element}: {e}"
        );
    }
    let e = one_error(&client_with("<zzzzzz>1</zzzzzz>"), 3, "client/zzzzzz");
    assert!(e.message.contains("remove it or check the spelling"), "{e}");
}

#[test]
fn several_errors_are_reported_together_in_line_order() {
    let text = "<ossec_config>\n\
                <client>\n\
                <server>\n\
                <address>m</address>\n\
                <protocol>udp</protocol>\n\
                <port>0</port>\n\
                </server>\n\
                <crypto_method>blowfish</crypto_method>\n\
                <auto_restart>maybe</auto_restart>\n\
                <notify_time>soon</notify_time>\n\
                </client>\n\
                <client_buffer><queue_size>0</queue_size></client_buffer>\n\
                <labels><label>no key</label></labels>\n\
                </ossec_config>\n";
    let errs = errors(text);
    let got: Vec<(u32, &str)> = errs.iter().map(|e| (e.line, e.element.as_str())).collect();
    assert_eq!(
        got,
        vec![
            (5, "client/server/protocol"),
            (6, "client/server/port"),
            (8, "client/crypto_method"),
            (9, "client/auto_restart"),
            (10, "client/notify_time"),
            (12, "client_buffer/queue_size"),
            (13, "labels/label"),
        ]
    );
    assert!(errs.iter().all(|e| e.file == Path::new(FILE)));
    let shown = config::ConfigErrors(errs).to_string();
    assert_eq!(shown.lines().count(), 7, "{shown}");
}

#[test]
fn time_reconnect_not_above_notify_time_is_forced_with_a_warning() {
    let c = parse(&client_with(
        "<notify_time>30</notify_time>\n<time-reconnect>20</time-reconnect>",
    ));
    assert_eq!(c.client.notify_time, secs(30));
    assert_eq!(c.client.time_reconnect, secs(90));
    assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
    let w = &c.warnings[0];
    assert!(
        w.starts_with("/etc/ossec.conf:4: <client><time-reconnect>: "),
        "{w}"
    );
    assert!(w.ends_with("forced to 90s"), "{w}");

    // Equal counts as "not larger"; without <time-reconnect> the warning points at notify_time.
    let c = parse(&client_with("<notify_time>60</notify_time>"));
    assert_eq!(c.client.time_reconnect, secs(180));
    assert!(
        c.warnings[0].starts_with("/etc/ossec.conf:3: <client><time-reconnect>: ")
            && c.warnings[0].ends_with("forced to 180s"),
        "{:?}",
        c.warnings
    );

    // 0 means the default, as in Wazuh.
    let c = parse(&client_with(
        "<notify_time>0</notify_time>\n<time-reconnect>0</time-reconnect>",
    ));
    assert_eq!(
        (c.client.notify_time, c.client.time_reconnect),
        (secs(20), secs(60))
    );
    assert!(c.warnings.is_empty());
}

#[test]
fn blocks_merge_field_by_field_and_servers_append() {
    let text = "<ossec_config>\n\
                <client>\n\
                <server><address>a</address><port>1601</port></server>\n\
                <notify_time>30</notify_time>\n\
                <auto_restart>no</auto_restart>\n\
                <enrollment><agent_name>first</agent_name><port>1600</port></enrollment>\n\
                </client>\n\
                <client_buffer><queue_size>100</queue_size></client_buffer>\n\
                <localfile><location>/a.log</location><log_format>syslog</log_format></localfile>\n\
                <labels><label key=\"k1\">v1</label><label key=\"k2\">old</label></labels>\n\
                </ossec_config>\n\
                <ossec_config>\n\
                <client>\n\
                <server><address>b</address></server>\n\
                <notify_time>40</notify_time>\n\
                <enrollment><agent_name>second</agent_name></enrollment>\n\
                </client>\n\
                <client_buffer><events_per_second>0</events_per_second></client_buffer>\n\
                <localfile><location>/b.log</location><log_format>json</log_format></localfile>\n\
                <labels><label key=\"k2\">new</label></labels>\n\
                </ossec_config>\n";
    let c = parse(text);
    // Wazuh's Read_Client_Server appends to the agent's server list and never resets it
    // between <client> blocks, so the second block adds a failover server.
    let addrs: Vec<(&str, u16)> = c
        .client
        .servers
        .iter()
        .map(|s| (s.address.as_str(), s.port))
        .collect();
    assert_eq!(addrs, vec![("a", 1601), ("b", 1514)]);
    assert_eq!(c.client.notify_time, secs(40));
    assert!(!c.client.auto_restart, "kept from the first block");
    assert_eq!(c.enrollment.agent_name.as_deref(), Some("second"));
    assert_eq!(c.enrollment.port, 1600, "kept from the first block");
    assert_eq!(
        c.buffer,
        ClientBuffer {
            disabled: false,
            queue_size: 100,
            events_per_second: 0
        }
    );
    let locs: Vec<&Path> = c.localfiles.iter().map(|l| l.location.as_path()).collect();
    assert_eq!(locs, vec![Path::new("/a.log"), Path::new("/b.log")]);
    assert_eq!(c.labels.get("k1").map(String::as_str), Some("v1"));
    assert_eq!(c.labels.get("k2").map(String::as_str), Some("new"));
}

#[test]
fn no_client_is_an_error() {
    let e = one_error(
        "<ossec_config>\n<syscheck><disabled>no</disabled></syscheck>\n</ossec_config>",
        1,
        "client/server",
    );
    assert!(
        e.message.starts_with("no <client><server> configured"),
        "{e}"
    );
    let e = one_error(
        "<ossec_config>\n<client>\n<notify_time>10</notify_time>\n</client>\n</ossec_config>",
        2,
        "client/server",
    );
    assert!(
        e.message.starts_with("no <client><server> configured"),
        "{e}"
    );
}

#[test]
fn file_level_problems() {
    let e = one_error("<ossec_config>\n<client>\n</ossec_config>", 3, "");
    assert!(e.message.starts_with("invalid XML"), "{e}");
    let e = one_error("<client/>", 1, "");
    assert!(e.message.contains("no <ossec_config> block"), "{e}");
    let home = tempfile::tempdir().unwrap();
    let errs = config::load(home.path()).unwrap_err().0;
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].line, 0);
    assert_eq!(errs[0].file, home.path().join("etc/ossec.conf"));
    assert!(errs[0].message.contains("cannot read"), "{}", errs[0]);
}

#[test]
fn enrollment_outside_client_is_pointed_inside() {
    let text = format!(
        "{}<ossec_config>\n<enrollment><enabled>no</enabled></enrollment>\n</ossec_config>",
        client_with("")
    );
    let e = one_error(&text, 8, "enrollment");
    assert!(e.message.contains("inside <client>"), "{e}");
}

#[test]
fn enrollment_paths_are_anchored_at_home() {
    let c = parse(&client_with(
        "<enrollment>\n<authorization_pass_path>/etc/pass</authorization_pass_path>\n\
         <server_ca_path>etc/ca.pem</server_ca_path>\n<enabled>no</enabled>\n\
         <agent_certificate_path>etc/a.cert</agent_certificate_path>\n</enrollment>",
    ));
    assert_eq!(
        c.enrollment.authorization_pass_path,
        PathBuf::from("/etc/pass")
    );
    assert_eq!(
        c.enrollment.server_ca_path,
        Some(PathBuf::from("/var/ossec/etc/ca.pem"))
    );
    assert!(!c.enrollment.enabled);
    one_error(
        &client_with("<enrollment>\n<agent_name>bad name</agent_name>\n</enrollment>"),
        4,
        "client/enrollment/agent_name",
    );
    one_error(
        &client_with("<enrollment>\n<agent_address>host</agent_address>\n</enrollment>"),
        4,
        "client/enrollment/agent_address",
    );
}

#[test]
fn legacy_server_ip_takes_the_block_port_with_a_warning() {
    let c = parse(
        "<ossec_config>\n<client>\n<server-ip>10.1.1.1</server-ip>\n<port>1600</port>\n\
         </client>\n</ossec_config>",
    );
    assert_eq!(c.client.servers.len(), 1);
    assert_eq!(
        (
            c.client.servers[0].address.as_str(),
            c.client.servers[0].port
        ),
        ("10.1.1.1", 1600)
    );
    assert_eq!(c.warnings.len(), 2, "{:?}", c.warnings);
    assert!(c.warnings[0].contains(":3: <client><server-ip>: deprecated"));
}

#[test]
fn localfile_checks() {
    let lf = |inner: &str| {
        format!(
            "{}<ossec_config>\n<localfile>\n{inner}\n</localfile>\n</ossec_config>",
            client_with("")
        )
    };
    let e = one_error(&lf("<location>/x</location>"), 8, "localfile/log_format");
    assert!(e.message.contains("missing <log_format>"), "{e}");
    let e = one_error(
        &lf("<log_format>syslog</log_format>"),
        8,
        "localfile/location",
    );
    assert!(e.message.contains("missing <location>"), "{e}");
    let e = one_error(
        &lf("<location>/x</location>\n<log_format>syslogg</log_format>"),
        10,
        "localfile/log_format",
    );
    assert!(e.message.contains("did you mean 'syslog'?"), "{e}");
    let c = parse(&lf(
        "<location>/x</location>\n<log_format>multi-line: 3</log_format>",
    ));
    assert_eq!(c.localfiles[0].log_format, "multi-line: 3");

    // The same file twice would send each line twice: the second is skipped with a warning.
    let text = format!(
        "{}<ossec_config>\n\
         <localfile><location>/x</location><log_format>syslog</log_format></localfile>\n\
         <localfile><location>/x</location><log_format>json</log_format></localfile>\n\
         <localfile><location>/var/log/*.log</location><log_format>syslog</log_format></localfile>\n\
         </ossec_config>",
        client_with("")
    );
    let c = parse(&text);
    assert_eq!(c.localfiles.len(), 2);
    assert_eq!(c.localfiles[0].line, 8);
    assert_eq!(c.warnings.len(), 2, "{:?}", c.warnings);
    assert!(c.warnings[0]
        .contains(":9: <localfile><location>: '/x' is already read by the <localfile> on line 8"));
    assert!(c.warnings[1].contains(":10: ") && c.warnings[1].contains("literal path"));
}

#[test]
fn server_options_are_checked() {
    let c = parse(&server_with(
        "<address>m.example</address>\n<max_retries>1</max_retries>\n\
         <retry_interval>1m</retry_interval>\n<interface_index>2</interface_index>",
    ));
    let s = &c.client.servers[0];
    assert_eq!((s.max_retries, s.retry_interval), (1, secs(60)));
    one_error(
        &server_with("<address>m</address>\n<max_retries>0</max_retries>"),
        5,
        "client/server/max_retries",
    );
    one_error(
        &server_with("<address>m</address>\n<retry_interval>0</retry_interval>"),
        5,
        "client/server/retry_interval",
    );
    let c = parse(&client_with(
        "<force_reconnect_interval>0</force_reconnect_interval>",
    ));
    assert_eq!(c.client.force_reconnect_interval, None);
}
