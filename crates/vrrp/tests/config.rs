//! keepalived.conf reader: the seed configurations, includes, every error kind, `-t` output.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use vrrp::config::{
    check_report, is_unknown_keyword, load, parse_str, Auth, ConfError, InitialState, Tracked, Vip,
    VrrpConf,
};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn parse(text: &str) -> Result<VrrpConf, ConfError> {
    parse_str(text, Path::new("/etc/keepalived/keepalived.conf"))
}

fn errors(text: &str) -> Vec<String> {
    match parse(text) {
        Ok(c) => panic!("expected errors, got {c:?}"),
        Err(e) => e.errors,
    }
}

/// A minimal valid instance body, to which each test adds or removes lines.
const BASE: &str = "vrrp_instance VI_1 {\n    interface eth0\n    virtual_router_id 51\n";

fn check_seed(name: &str, router_id: &str, state: InitialState, prio: u8, src: &str, peer: &str) {
    let conf = load(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(conf.global.router_id.as_deref(), Some(router_id));
    assert_eq!(conf.global.vrrp_version, 2);
    assert_eq!(conf.global.garp_master_delay, Duration::from_secs(5));
    assert_eq!(conf.scripts.len(), 1);
    let s = &conf.scripts[0];
    assert_eq!(s.name, "chk_haproxy");
    assert_eq!(s.script, "killall -0 haproxy");
    assert_eq!(s.interval, Duration::from_secs(2));
    assert_eq!(s.weight, 2);
    assert_eq!((s.rise, s.fall, s.timeout), (1, 1, None));
    assert_eq!(conf.instances.len(), 1);
    let i = &conf.instances[0];
    assert_eq!(i.name, "VI_1");
    assert_eq!(i.initial_state, state);
    assert_eq!(i.interface, "eth0");
    assert_eq!(i.vrid, 51);
    assert_eq!(i.priority, prio);
    assert_eq!(i.advert_int, Duration::from_secs(1));
    assert_eq!(i.version, 2);
    let Some(Auth::Pass(p)) = &i.auth else {
        panic!("no PASS auth")
    };
    // keepalived keeps the first 8 bytes of "YourPassword".
    assert_eq!(p.as_bytes(), b"YourPass");
    assert_eq!(&p.padded(), b"YourPass");
    assert!(!format!("{i:?}").contains("YourPass"), "password in Debug");
    assert_eq!(i.unicast_src_ip, Some(ip(src)));
    assert_eq!(i.unicast_peers, vec![ip(peer)]);
    assert_eq!(
        i.vips,
        vec![Vip {
            addr: ip("192.168.1.100"),
            prefix: 32,
            dev: None,
            label: None
        }]
    );
    assert_eq!(
        i.track_scripts,
        vec![Tracked {
            name: "chk_haproxy".into(),
            weight: None
        }]
    );
    assert!(!i.nopreempt);
    assert_eq!(conf.warnings.len(), 1, "{:?}", conf.warnings);
    assert!(conf.warnings[0].contains("auth_pass: truncating"));
    assert!(!conf.warnings[0].contains("YourPass"));
    let (text, code) = check_report(&Ok(conf));
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("configuration valid: 1 vrrp_instance(s), 1 vrrp_script(s)"));
}

#[test]
fn seed_master_loads() {
    check_seed(
        "seed-master.conf",
        "haproxy2",
        InitialState::Master,
        101,
        "172.16.0.2",
        "172.16.0.3",
    );
}

#[test]
fn seed_backup_loads() {
    check_seed(
        "seed-backup.conf",
        "haproxy4",
        InitialState::Backup,
        100,
        "172.16.0.3",
        "172.16.0.2",
    );
}

#[test]
fn seed_warning_names_file_and_line() {
    let conf = load(&fixture("seed-master.conf")).unwrap();
    let want = format!("{}:24: auth_pass:", fixture("seed-master.conf").display());
    assert!(conf.warnings[0].starts_with(&want), "{:?}", conf.warnings);
}

#[test]
fn advert_int_fractions_in_vrrpv3() {
    let conf = parse(&format!("{BASE}    version 3\n    advert_int 0.1\n}}\n")).unwrap();
    assert_eq!(conf.instances[0].advert_int, Duration::from_millis(100));
    assert_eq!(conf.instances[0].version, 3);
    assert!(conf.warnings.is_empty(), "{:?}", conf.warnings);

    let conf = parse(&format!(
        "global_defs {{\n vrrp_version 3\n}}\n{BASE}    advert_int 0.25\n}}\n"
    ))
    .unwrap();
    assert_eq!(conf.instances[0].advert_int, Duration::from_millis(250));
}

#[test]
fn advert_int_rounding_like_keepalived() {
    // VRRPv2 carries whole seconds: keepalived rounds (to at least 1 s) and warns.
    let conf = parse(&format!("{BASE}    advert_int 0.1\n}}\n")).unwrap();
    assert_eq!(conf.instances[0].advert_int, Duration::from_secs(1));
    assert!(
        conf.warnings[0].contains(":4: advert_int:"),
        "{:?}",
        conf.warnings
    );
    let conf = parse(&format!("{BASE}    advert_int 2.6\n}}\n")).unwrap();
    assert_eq!(conf.instances[0].advert_int, Duration::from_secs(3));
    // VRRPv3 carries centiseconds.
    let conf = parse(&format!("{BASE}    version 3\n    advert_int 0.123\n}}\n")).unwrap();
    assert_eq!(conf.instances[0].advert_int, Duration::from_millis(120));
    assert_eq!(conf.warnings.len(), 1);
}

#[test]
fn include_glob_and_relative_path() {
    let dir = tempfile::tempdir().unwrap();
    let conf_d = dir.path().join("conf.d");
    std::fs::create_dir(&conf_d).unwrap();
    std::fs::write(
        dir.path().join("keepalived.conf"),
        "global_defs {\n router_id lb1\n}\ninclude scripts.conf\ninclude conf.d/*.conf\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("scripts.conf"),
        "vrrp_script chk {\n script /bin/true\n}\n",
    )
    .unwrap();
    // Included files include relative to their own directory.
    std::fs::write(
        conf_d.join("b.conf"),
        "vrrp_instance VI_B {\n interface eth0\n virtual_router_id 2\n include vips.inc\n}\n",
    )
    .unwrap();
    std::fs::write(
        conf_d.join("vips.inc"),
        "virtual_ipaddress {\n 10.0.0.2/24 dev eth0 label eth0:vip\n}\n",
    )
    .unwrap();
    std::fs::write(
        conf_d.join("a.conf"),
        "vrrp_instance VI_A {\n interface eth0\n virtual_router_id 1\n track_script {\n  chk weight -10\n }\n}\n",
    )
    .unwrap();
    std::fs::write(conf_d.join("ignored.bak"), "garbage {").unwrap();

    let conf = load(&dir.path().join("keepalived.conf")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(conf.global.router_id.as_deref(), Some("lb1"));
    assert_eq!(conf.scripts[0].script, "/bin/true");
    let names: Vec<_> = conf.instances.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, ["VI_A", "VI_B"], "glob results are sorted");
    assert_eq!(conf.instances[0].track_scripts[0].weight, Some(-10));
    assert_eq!(
        conf.instances[1].vips,
        vec![Vip {
            addr: ip("10.0.0.2"),
            prefix: 24,
            dev: Some("eth0".into()),
            label: Some("eth0:vip".into())
        }]
    );

    // Errors inside included files name those files.
    std::fs::write(
        conf_d.join("c.conf"),
        "vrrp_instance VI_C {\n interface eth0\n virtual_router_id 0\n}\n",
    )
    .unwrap();
    let err = load(&dir.path().join("keepalived.conf")).unwrap_err();
    let want = format!("{}:3: virtual_router_id:", conf_d.join("c.conf").display());
    assert!(
        err.errors.iter().any(|e| e.starts_with(&want)),
        "{:?}",
        err.errors
    );
}

#[test]
fn include_missing_file_is_an_error_unmatched_glob_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let main = dir.path().join("k.conf");
    std::fs::write(&main, format!("include none/*.conf\n{BASE}}}\n")).unwrap();
    let conf = load(&main).unwrap();
    assert!(conf.warnings[0].contains(":1: include: no config files matched"));
    std::fs::write(&main, format!("include missing.conf\n{BASE}}}\n")).unwrap();
    let err = load(&main).unwrap_err();
    assert!(
        err.errors[0].contains("k.conf:1: include: cannot read"),
        "{:?}",
        err.errors
    );
}

#[test]
fn include_loop_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let main = dir.path().join("loop.conf");
    std::fs::write(&main, "include loop.conf\n").unwrap();
    let err = load(&main).unwrap_err();
    assert!(
        err.errors.iter().any(|e| e.contains("nested deeper")),
        "{:?}",
        err.errors
    );
}

#[test]
fn missing_interface() {
    let e = errors("vrrp_instance VI_1 {\n virtual_router_id 5\n}\n");
    assert_eq!(e.len(), 1);
    assert!(
        e[0].starts_with("/etc/keepalived/keepalived.conf:1: vrrp_instance: (VI_1) no interface"),
        "{e:?}"
    );
}

#[test]
fn missing_vrid() {
    let e = errors("vrrp_instance VI_1 {\n interface eth0\n}\n");
    assert!(
        e[0].contains(":1: vrrp_instance: (VI_1) no virtual_router_id"),
        "{e:?}"
    );
}

#[test]
fn vrid_out_of_range() {
    for bad in ["0", "256", "x"] {
        let e = errors(&format!(
            "vrrp_instance VI_1 {{\n interface eth0\n virtual_router_id {bad}\n}}\n"
        ));
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].ends_with(&format!(
                ":3: virtual_router_id: VRID '{bad}' not valid - must be between 1 & 255"
            )),
            "{e:?}"
        );
    }
}

#[test]
fn priority_out_of_range() {
    let e = errors(&format!("{BASE}    priority 0\n}}\n"));
    assert!(
        e[0].contains(":4: priority: priority '0' not valid"),
        "{e:?}"
    );
    let e = errors(&format!("{BASE}    priority 256\n}}\n"));
    assert!(e[0].contains(":4: priority:"), "{e:?}");
}

#[test]
fn unknown_track_script() {
    let e = errors(&format!(
        "{BASE}    track_script {{\n        nope\n    }}\n}}\n"
    ));
    assert!(
        e[0].contains(":5: track_script: (VI_1) track script 'nope' not found"),
        "{e:?}"
    );
}

#[test]
fn bad_virtual_ipaddress() {
    let e = errors(&format!(
        "{BASE}    virtual_ipaddress {{\n        192.168.1.300\n        10.0.0.1/40\n        10.0.0.2 bogus x\n    }}\n}}\n"
    ));
    assert_eq!(e.len(), 3, "{e:?}");
    assert!(e[0].contains(":5: virtual_ipaddress: '192.168.1.300' is not an IP address"));
    assert!(e[1].contains(":6: virtual_ipaddress:"));
    assert!(e[2].contains(":7: virtual_ipaddress: unknown option 'bogus'"));
}

#[test]
fn unbalanced_braces() {
    let e = errors(&format!(
        "{BASE}    virtual_ipaddress {{\n        10.0.0.1\n}}\n"
    ));
    assert!(
        e.iter()
            .any(|x| x.contains(":1: vrrp_instance: unbalanced braces")),
        "{e:?}"
    );
    let e = errors(&format!("{BASE}}}\n}}\n"));
    assert!(e[0].contains(":5: }: unbalanced braces"), "{e:?}");
}

#[test]
fn unknown_keyword_is_reported_with_its_block() {
    let conf = parse(&format!(
        "global_defs {{\n  routr_id x\n}}\n{BASE}    priorty 100\n}}\nvrrp_instanse X {{\n}}\n"
    ))
    .unwrap();
    let w = &conf.warnings;
    assert_eq!(w.len(), 3, "{w:?}");
    assert!(
        w[0].ends_with(":2: routr_id: unknown keyword in global_defs"),
        "{w:?}"
    );
    assert!(
        w[1].ends_with(":7: priorty: unknown keyword in vrrp_instance VI_1"),
        "{w:?}"
    );
    assert!(
        w[2].ends_with(":9: vrrp_instanse: unknown keyword in top level"),
        "{w:?}"
    );
    assert!(w.iter().all(|x| is_unknown_keyword(x)));
    // The daemon would run, but `-t` fails as keepalived -t does.
    let (text, code) = check_report(&Ok(conf));
    assert_eq!(code, 1);
    assert!(text.contains("warning: /etc/keepalived/keepalived.conf:2: routr_id: unknown keyword"));
    assert!(text.contains("configuration invalid: 3 unknown keyword(s)"));
}

#[test]
fn all_errors_reported_together() {
    let text = "vrrp_instance A {\n virtual_router_id 0\n priority 0\n virtual_ipaddress {\n  1.2.3\n }\n track_script {\n  ghost\n }\n}\n\
                vrrp_instance B {\n interface eth1\n virtual_router_id 7\n authentication {\n  auth_type AH\n }\n}\n";
    let err = parse(text).unwrap_err();
    let e = &err.errors;
    let has = |needle: &str| e.iter().any(|x| x.contains(needle));
    assert!(has(":2: virtual_router_id: VRID '0'"), "{e:?}");
    assert!(has(":3: priority:"), "{e:?}");
    assert!(has(":5: virtual_ipaddress: '1.2.3'"), "{e:?}");
    assert!(has(":1: vrrp_instance: (A) no interface"), "{e:?}");
    assert!(
        has(":8: track_script: (A) track script 'ghost' not found"),
        "{e:?}"
    );
    assert!(
        has(":15: auth_type: AH authentication is not supported"),
        "{e:?}"
    );
    assert_eq!(e.len(), 6, "{e:?}");
    assert_eq!(err.to_string().lines().count(), 6);
}

#[test]
fn check_report_for_errors() {
    let res = parse("vrrp_instance A {\n virtual_router_id 300\n}\n");
    let (text, code) = check_report(&res);
    assert_eq!(code, 1);
    assert!(
        text.contains("error: /etc/keepalived/keepalived.conf:2: virtual_router_id: VRID '300'"),
        "{text}"
    );
    assert!(
        text.contains("error: /etc/keepalived/keepalived.conf:1: vrrp_instance: (A) no interface"),
        "{text}"
    );
    assert!(
        text.ends_with("/etc/keepalived/keepalived.conf: configuration invalid: 2 error(s)\n"),
        "{text}"
    );
}

#[test]
fn check_report_valid_with_warnings() {
    let res = parse(&format!(
        "global_defs {{\n  notification_email {{\n    a@b\n  }}\n}}\n{BASE}}}\n"
    ));
    let (text, code) = check_report(&res);
    assert_eq!(code, 0, "{text}");
    assert_eq!(
        text,
        "warning: /etc/keepalived/keepalived.conf:2: notification_email: accepted in global_defs but ignored by rampart vrrp\n\
         /etc/keepalived/keepalived.conf: configuration valid: 1 vrrp_instance(s), 0 vrrp_script(s), 1 warning(s)\n"
    );
    let (text, code) = check_report(&load(Path::new("/nonexistent/keepalived.conf")));
    assert_eq!(code, 1);
    assert!(
        text.contains("error: /nonexistent/keepalived.conf: cannot read"),
        "{text}"
    );
}

#[test]
fn keepalived_defaults_and_corrections() {
    let conf = parse(&format!(
        "{BASE}    state MASTER\n    priority 150\n    nopreempt\n    preempt_delay 5\n}}\n\
         vrrp_instance V4 {{\n interface eth0\n virtual_router_id 54\n state MASTER\n}}\n\
         vrrp_instance V2 {{\n interface eth0\n virtual_router_id 52\n priority 255\n state BACKUP\n}}\n\
         vrrp_instance V3 {{\n interface eth0\n virtual_router_id 53\n version 3\n authentication {{\n  auth_type PASS\n  auth_pass secret\n }}\n}}\n"
    ))
    .unwrap();
    let [a, d, b, c] = &conf.instances[..] else {
        panic!("{conf:?}")
    };
    // No priority with state MASTER: the address owner (255), as keepalived derives it.
    assert_eq!(d.priority, 255);
    assert_eq!(a.priority, 150);
    assert!(!a.nopreempt);
    assert_eq!(a.preempt_delay, Duration::ZERO);
    assert_eq!(b.initial_state, InitialState::Backup);
    assert_eq!(c.auth, None);
    let w = conf.warnings.join("\n");
    assert!(
        w.contains("nopreempt will not work with initial state MASTER"),
        "{w}"
    );
    assert!(
        w.contains("preempt_delay will not work with initial state MASTER"),
        "{w}"
    );
    assert!(
        w.contains("(V2) priority 255 (address owner) with state BACKUP"),
        "{w}"
    );
    assert!(w.contains("(V3) VRRPv3 has no authentication"), "{w}");
}

#[test]
fn duplicate_vrid_and_family_mismatch() {
    let e = errors(&format!(
        "{BASE}}}\nvrrp_instance VI_2 {{\n interface eth0\n virtual_router_id 51\n}}\n\
         vrrp_instance VI_3 {{\n interface eth1\n virtual_router_id 9\n unicast_src_ip 10.0.0.1\n unicast_peer {{\n  fe80::1\n }}\n}}\n"
    ));
    assert!(e.iter().any(|x| x.contains(":5: virtual_router_id: (VI_2) virtual_router_id 51 on eth0 is already used by vrrp_instance VI_1")), "{e:?}");
    assert!(
        e.iter()
            .any(|x| x.contains(":14: unicast_peer: (VI_3) fe80::1 must be of the same family")),
        "{e:?}"
    );
}

#[test]
fn lexer_quotes_comments_and_continuations() {
    let conf = parse(
        "! keepalived style comment\nvrrp_script s{\n script \"/usr/bin/check --name 'a b' # not a comment\" ! comment\n interval 0.5\n timeout 3\n \
         weight -20\n rise 2\n fall 3\n user nobody nogroup\n}\n\
         vrrp_instance VI_1\n{\n interface eth0\n virtual_router_id \\\n  51\n notify_master /bin/notify \"a b\" c\n track_script { s weight 5 }\n}\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let s = &conf.scripts[0];
    assert_eq!(s.script, "/usr/bin/check --name 'a b' # not a comment");
    assert_eq!(s.interval, Duration::from_millis(500));
    assert_eq!(s.timeout, Some(Duration::from_secs(3)));
    assert_eq!((s.weight, s.rise, s.fall), (-20, 2, 3));
    assert_eq!(s.user, Some(("nobody".into(), Some("nogroup".into()))));
    let i = &conf.instances[0];
    assert_eq!(i.vrid, 51);
    assert_eq!(i.notify_master.as_deref(), Some("/bin/notify \"a b\" c"));
    assert_eq!(i.track_scripts[0].weight, Some(5));
}

#[test]
fn global_defs_values() {
    let conf = parse(&format!(
        "global_defs {{\n enable_script_security\n script_user keepalived_script\n vrrp_garp_master_delay 2\n vrrp_garp_master_repeat 3\n vrrp_version 3\n}}\n{BASE}}}\n"
    ))
    .unwrap();
    let g = &conf.global;
    assert!(g.enable_script_security);
    assert_eq!(g.script_user, Some(("keepalived_script".into(), None)));
    assert_eq!(g.garp_master_delay, Duration::from_secs(2));
    assert_eq!(g.garp_master_repeat, 3);
    assert_eq!(conf.instances[0].version, 3);
    let e = errors(&format!("global_defs {{\n vrrp_version 4\n}}\n{BASE}}}\n"));
    assert!(e[0].contains(":2: vrrp_version:"), "{e:?}");
}
