//! Statement tree → `VrrpConf`: keyword handlers, then keepalived's completion checks.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use super::lexer::{Diag, Pos, Stmt, Word};
use super::values::{addr_prefix, seconds, signed, unsigned};
use super::{
    Auth, AuthPass, GlobalDefs, InitialState, Instance, Tracked, Vip, VrrpConf, VrrpScript,
};

/// Top-level blocks keepalived knows that `rampart vrrp` does not run.
const IGNORED_TOP: &[&str] = &[
    "vrrp_sync_group",
    "static_ipaddress",
    "static_routes",
    "static_rules",
    "virtual_server",
    "virtual_server_group",
    "track_file",
    "vrrp_track_file",
    "vrrp_track_process",
    "track_process",
    "linkbeat_interfaces",
    "bfd_instance",
    "garp_group",
    "net_namespace",
    "net_namespace_ipvs",
    "instance",
    "use_pid_dir",
    "child_wait_time",
    "$",
];

/// global_defs keywords keepalived accepts that have no effect here.
const IGNORED_GLOBAL: &[&str] = &[
    "notification_email",
    "notification_email_from",
    "smtp_server",
    "smtp_helo_name",
    "smtp_connect_timeout",
    "smtp_alert",
    "smtp_alert_vrrp",
    "smtp_alert_checker",
    "enable_traps",
    "enable_snmp_vrrp",
    "enable_snmp_keepalived",
    "enable_snmp_rfc",
    "enable_snmp_rfcv2",
    "enable_snmp_rfcv3",
    "enable_snmp_checker",
    "snmp_socket",
    "enable_dbus",
    "dynamic_interfaces",
    "no_email_faults",
    "vrrp_mcast_group4",
    "vrrp_mcast_group6",
    "vrrp_garp_master_refresh",
    "vrrp_garp_master_refresh_repeat",
    "vrrp_garp_lower_prio_delay",
    "vrrp_garp_lower_prio_repeat",
    "vrrp_garp_interval",
    "vrrp_gna_interval",
    "vrrp_min_garp",
    "vrrp_lower_prio_no_advert",
    "vrrp_higher_prio_send_advert",
    "vrrp_skip_check_adv_addr",
    "vrrp_check_unicast_src",
    "vrrp_strict",
    "vrrp_iptables",
    "vrrp_ipsets",
    "vrrp_nftables",
    "vrrp_priority",
    "vrrp_no_swap",
    "vrrp_rt_priority",
    "vrrp_rlimit_rtime",
    "vrrp_startup_delay",
    "vrrp_notify_fifo",
    "vrrp_notify_fifo_script",
    "vrrp_notify_priority_changes",
    "vrrp_rx_bufs_policy",
    "vrrp_rx_bufs_multiplier",
    "vrrp_netlink_cmd_rcv_bufs",
    "vrrp_netlink_monitor_rcv_bufs",
    "vrrp_down_timer_adverts",
    "notify_fifo",
    "notify_fifo_script",
    "checker_priority",
    "checker_no_swap",
    "max_auto_priority",
    "min_auto_priority_delay",
    "lvs_id",
    "lvs_timeouts",
    "lvs_flush",
    "lvs_sync_daemon",
    "default_interface",
    "script_security",
    "process_names",
    "process_name",
    "vrrp_process_name",
    "checker_process_name",
    "bfd_process_name",
    "linkbeat_use_polling",
    "umask",
    "random_seed",
    "instance",
    "net_namespace",
    "namespace_with_ipsets",
    "local_name",
    "reload_check_config",
    "reload_time_file",
    "tmp_config_directory",
    "data_use_instance",
    "vrrp_version_match",
    "disable_local_igmp",
];

/// vrrp_instance keywords keepalived accepts that `rampart vrrp` does not implement.
const IGNORED_INSTANCE: &[&str] = &[
    "mcast_src_ip",
    "mcast_dst_ip",
    "dont_track_primary",
    "smtp_alert",
    "virtual_ipaddress_excluded",
    "virtual_routes",
    "virtual_rules",
    "garp_master_refresh",
    "garp_master_refresh_repeat",
    "garp_lower_prio_delay",
    "garp_lower_prio_repeat",
    "garp_extra_if",
    "lower_prio_no_advert",
    "higher_prio_send_advert",
    "use_vmac",
    "vmac_xmit_base",
    "use_ipvlan",
    "native_ipv6",
    "accept",
    "no_accept",
    "strict_mode",
    "debug",
    "notify_deleted",
    "notify_priority_changes",
    "skip_check_adv_addr",
    "track_file",
    "track_process",
    "track_bfd",
    "track_src_ip",
    "unicast_ttl",
    "check_unicast_src",
    "unicast_fault_no_peer",
    "unicast_checksum_compat",
    "linkbeat_use_polling",
    "promote_secondaries",
    "kernel_rx_buf_size",
    "down_timer_adverts",
    "owner_ignore_adverts",
    "vrrp_timer_expired_backup",
    "lvs_sync_daemon_interface",
    "old_unicast_checksum",
    "no_virtual_ipaddress",
];

const VRRP_PRIO_OWNER: u8 = 255;
const VRRP_PRIO_DFL: u8 = 100;

pub(crate) fn build(tree: &[Stmt], path: &Path, d: &mut Diag) -> VrrpConf {
    let mut global = GlobalDefs::default();
    let mut scripts: Vec<VrrpScript> = Vec::new();
    let mut drafts: Vec<Draft> = Vec::new();
    for s in tree {
        let kw = s.keyword();
        match kw {
            "global_defs" => {
                if let Some(block) = need_block(s, d) {
                    global_defs(block, &mut global, d);
                }
            }
            "vrrp_script" => {
                let Some(name) = block_name(s, d) else {
                    continue;
                };
                let Some(block) = need_block(s, d) else {
                    continue;
                };
                if scripts.iter().any(|x| x.name == name) {
                    d.error(&s.pos, kw, format!("duplicate vrrp_script '{name}'"));
                    continue;
                }
                if let Some(sc) = vrrp_script(name, &s.pos, block, d) {
                    scripts.push(sc);
                }
            }
            "vrrp_instance" => {
                let Some(name) = block_name(s, d) else {
                    continue;
                };
                let Some(block) = need_block(s, d) else {
                    continue;
                };
                if drafts.iter().any(|x| x.name == name) {
                    d.error(&s.pos, kw, format!("duplicate vrrp_instance '{name}'"));
                    continue;
                }
                drafts.push(vrrp_instance(name, &s.pos, block, d));
            }
            _ if IGNORED_TOP.contains(&kw) => ignored(s, "configuration", d),
            _ => unknown(s, "top level", d),
        }
    }
    let mut placed = Vec::new();
    for draft in drafts {
        let pos = draft.pos.clone();
        if let Some(i) = complete(draft, &global, &scripts, d) {
            placed.push((i, pos));
        }
    }
    unique_vrids(&placed, d);
    let instances = placed.into_iter().map(|(i, _)| i).collect();
    VrrpConf {
        path: path.to_path_buf(),
        global,
        scripts,
        instances,
        warnings: d.warnings.clone(),
    }
}

fn ignored(s: &Stmt, block: &str, d: &mut Diag) {
    d.warn(
        &s.pos,
        s.keyword(),
        format!("accepted in {block} but ignored by rampart vrrp"),
    );
}

fn unknown(s: &Stmt, block: &str, d: &mut Diag) {
    d.unknown += 1;
    d.warn(&s.pos, s.keyword(), format!("unknown keyword in {block}"));
}

fn need_block<'a>(s: &'a Stmt, d: &mut Diag) -> Option<&'a [Stmt]> {
    match &s.block {
        Some(b) => Some(b),
        None => {
            d.error(&s.pos, s.keyword(), "expects a '{' block");
            None
        }
    }
}

fn no_block(s: &Stmt, d: &mut Diag) -> bool {
    if s.block.is_some() {
        d.error(&s.pos, s.keyword(), "does not take a '{' block");
        return false;
    }
    true
}

fn block_name(s: &Stmt, d: &mut Diag) -> Option<String> {
    match s.words.len() {
        2 => Some(s.words[1].text.clone()),
        1 => {
            d.error(&s.pos, s.keyword(), "missing name");
            None
        }
        _ => {
            d.error(&s.pos, s.keyword(), "expects a single name");
            None
        }
    }
}

/// The single argument of a `keyword VALUE` line.
fn one_arg<'a>(s: &'a Stmt, d: &mut Diag) -> Option<&'a str> {
    if !no_block(s, d) {
        return None;
    }
    match s.words.len() {
        1 => {
            d.error(&s.pos, s.keyword(), "missing value");
            None
        }
        2 => Some(&s.words[1].text),
        _ => {
            d.warn(&s.pos, s.keyword(), "extra arguments ignored");
            Some(&s.words[1].text)
        }
    }
}

fn flag(s: &Stmt, d: &mut Diag) -> bool {
    if !no_block(s, d) {
        return false;
    }
    if s.words.len() > 1 {
        d.warn(&s.pos, s.keyword(), "arguments ignored");
    }
    true
}

/// A command line from the words after the keyword; words that need quotes get them back.
fn command(s: &Stmt, d: &mut Diag) -> Option<String> {
    if !no_block(s, d) {
        return None;
    }
    let args: &[Word] = &s.words[1..];
    if args.is_empty() || args.iter().all(|w| w.text.is_empty()) {
        d.error(&s.pos, s.keyword(), "missing command");
        return None;
    }
    if args.len() == 1 {
        return Some(args[0].text.clone());
    }
    let parts: Vec<String> = args
        .iter()
        .map(|w| {
            if w.text.is_empty() || w.text.contains(char::is_whitespace) {
                format!("\"{}\"", w.text)
            } else {
                w.text.clone()
            }
        })
        .collect();
    Some(parts.join(" "))
}

fn user_group(s: &Stmt, d: &mut Diag) -> Option<(String, Option<String>)> {
    if !no_block(s, d) {
        return None;
    }
    match s.words.len() {
        2 => Some((s.words[1].text.clone(), None)),
        3 => Some((s.words[1].text.clone(), Some(s.words[2].text.clone()))),
        1 => {
            d.error(&s.pos, s.keyword(), "missing user name");
            None
        }
        _ => {
            d.error(&s.pos, s.keyword(), "expects USER [GROUP]");
            None
        }
    }
}

/// Runs `parse` on the single argument, reporting its error at the statement.
fn value<T>(s: &Stmt, d: &mut Diag, parse: impl FnOnce(&str) -> Result<T, String>) -> Option<T> {
    let arg = one_arg(s, d)?;
    match parse(arg) {
        Ok(v) => Some(v),
        Err(e) => {
            d.error(&s.pos, s.keyword(), e);
            None
        }
    }
}

fn global_defs(block: &[Stmt], g: &mut GlobalDefs, d: &mut Diag) {
    for s in block {
        let kw = s.keyword();
        match kw {
            "router_id" => g.router_id = one_arg(s, d).map(str::to_string),
            "enable_script_security" => g.enable_script_security = flag(s, d),
            "script_user" => {
                if let Some(u) = user_group(s, d) {
                    g.script_user = Some(u);
                }
            }
            "vrrp_garp_master_delay" => {
                if let Some(v) = value(s, d, |a| unsigned(a, 0, u64::from(u32::MAX))) {
                    g.garp_master_delay = Duration::from_secs(v);
                }
            }
            "vrrp_garp_master_repeat" => {
                if let Some(v) = value(s, d, |a| unsigned(a, 0, u64::from(u32::MAX))) {
                    g.garp_master_repeat = at_least_one(v, s, d);
                }
            }
            "vrrp_version" => {
                if let Some(v) = value(s, d, |a| unsigned(a, 2, 3)) {
                    g.vrrp_version = v as u8;
                }
            }
            _ if IGNORED_GLOBAL.contains(&kw) => ignored(s, "global_defs", d),
            _ => unknown(s, "global_defs", d),
        }
    }
}

/// keepalived turns a repeat count of 0 into 1 with a warning (pre-2.0.7 compatibility).
fn at_least_one(v: u64, s: &Stmt, d: &mut Diag) -> u32 {
    if v == 0 {
        d.warn(&s.pos, s.keyword(), "must be greater than 0, setting to 1");
        1
    } else {
        v as u32
    }
}

fn vrrp_script(name: String, pos: &Pos, block: &[Stmt], d: &mut Diag) -> Option<VrrpScript> {
    let mut sc = VrrpScript {
        name,
        script: String::new(),
        interval: Duration::from_secs(1),
        timeout: None,
        weight: 0,
        rise: 1,
        fall: 1,
        user: None,
    };
    // Script times have millisecond resolution in keepalived.
    let max_ms = u64::from(u32::MAX / 1_000_000) * 1_000_000;
    for s in block {
        let kw = s.keyword();
        match kw {
            "script" => {
                if let Some(c) = command(s, d) {
                    sc.script = c;
                }
            }
            "interval" | "timeout" => {
                if let Some(v) = value(s, d, |a| seconds(a, 3, 0, max_ms)) {
                    let v = if v.is_zero() {
                        d.warn(&s.pos, kw, "must be greater than 0, setting to 1");
                        Duration::from_secs(1)
                    } else {
                        v
                    };
                    if kw == "interval" {
                        sc.interval = v;
                    } else {
                        sc.timeout = Some(v);
                    }
                }
            }
            "weight" => {
                if !no_block(s, d) {
                    continue;
                }
                match s.arg(1).map(|a| signed(a, -253, 253)) {
                    None => d.error(&s.pos, kw, "missing value"),
                    Some(Err(e)) => d.error(&s.pos, kw, e),
                    Some(Ok(w)) => sc.weight = w as i32,
                }
                if let Some(opt) = s.arg(2) {
                    d.error(
                        &s.pos,
                        kw,
                        format!("option '{opt}' is not supported by rampart vrrp"),
                    );
                }
            }
            "rise" | "fall" => {
                if let Some(v) = value(s, d, |a| unsigned(a, 1, i32::MAX as u64)) {
                    if kw == "rise" {
                        sc.rise = v as u32;
                    } else {
                        sc.fall = v as u32;
                    }
                }
            }
            "user" => sc.user = user_group(s, d).or(sc.user.take()),
            "init_fail" => ignored(s, "vrrp_script", d),
            _ => unknown(s, &format!("vrrp_script {}", sc.name), d),
        }
    }
    if sc.script.is_empty() {
        d.error(
            pos,
            "vrrp_script",
            format!("({}) no script specified", sc.name),
        );
        return None;
    }
    Some(sc)
}

/// An instance as written, before defaults and cross-checks.
struct Draft {
    name: String,
    pos: Pos,
    state: Option<InitialState>,
    interface: Option<String>,
    vrid: Option<u8>,
    vrid_bad: bool,
    priority: Option<u8>,
    advert_int: Option<(Duration, Pos)>,
    version: Option<u8>,
    auth_type: Option<Pos>,
    auth_pass: Option<Vec<u8>>,
    unicast_src_ip: Option<(IpAddr, Pos)>,
    unicast_peers: Vec<(IpAddr, Pos)>,
    vips: Vec<(Vip, Pos)>,
    track_scripts: Vec<(Tracked, Pos)>,
    track_interfaces: Vec<Tracked>,
    nopreempt: bool,
    preempt_delay: Duration,
    garp_master_delay: Option<Duration>,
    garp_master_repeat: Option<u32>,
    notify: [Option<String>; 5],
}

const NOTIFY: [&str; 5] = [
    "notify_master",
    "notify_backup",
    "notify_fault",
    "notify_stop",
    "notify",
];

fn vrrp_instance(name: String, pos: &Pos, block: &[Stmt], d: &mut Diag) -> Draft {
    let mut v = Draft {
        name,
        pos: pos.clone(),
        state: None,
        interface: None,
        vrid: None,
        vrid_bad: false,
        priority: None,
        advert_int: None,
        version: None,
        auth_type: None,
        auth_pass: None,
        unicast_src_ip: None,
        unicast_peers: Vec::new(),
        vips: Vec::new(),
        track_scripts: Vec::new(),
        track_interfaces: Vec::new(),
        nopreempt: false,
        preempt_delay: Duration::ZERO,
        garp_master_delay: None,
        garp_master_repeat: None,
        notify: Default::default(),
    };
    let here = format!("vrrp_instance {}", v.name);
    for s in block {
        let kw = s.keyword();
        match kw {
            "state" => match one_arg(s, d) {
                Some("MASTER") => v.state = Some(InitialState::Master),
                Some("BACKUP") => {
                    if v.state == Some(InitialState::Master) {
                        d.warn(
                            &s.pos,
                            kw,
                            "state previously set as MASTER - ignoring BACKUP",
                        );
                    } else {
                        v.state = Some(InitialState::Backup);
                    }
                }
                Some(other) => d.error(
                    &s.pos,
                    kw,
                    format!("unknown state '{other}' (MASTER or BACKUP)"),
                ),
                None => {}
            },
            "interface" => {
                if let Some(a) = one_arg(s, d) {
                    // IFNAMSIZ is 16 including the terminating NUL.
                    if a.len() >= 16 {
                        d.error(&s.pos, kw, format!("interface name '{a}' too long"));
                    } else {
                        v.interface = Some(a.to_string());
                    }
                }
            }
            "virtual_router_id" => match value(s, d, |a| {
                unsigned(a, 1, 255)
                    .map_err(|_| format!("VRID '{a}' not valid - must be between 1 & 255"))
            }) {
                Some(id) => v.vrid = Some(id as u8),
                None => v.vrid_bad = true,
            },
            "priority" => {
                if let Some(p) = value(s, d, |a| {
                    unsigned(a, 1, 255)
                        .map_err(|_| format!("priority '{a}' not valid - must be between 1 & 255"))
                }) {
                    v.priority = Some(p as u8);
                }
            }
            "advert_int" => {
                // keepalived reads microseconds; 0.01 s to 255 s.
                if let Some(a) = value(s, d, |a| seconds(a, 6, 10_000, 255_000_000)) {
                    v.advert_int = Some((a, s.pos.clone()));
                }
            }
            "version" => {
                if let Some(x) = value(s, d, |a| unsigned(a, 2, 3)) {
                    v.version = Some(x as u8);
                }
            }
            "authentication" => {
                if let Some(b) = need_block(s, d) {
                    authentication(b, &mut v, d);
                }
            }
            "unicast_src_ip" => {
                if let Some(a) = value(s, d, |a| {
                    a.parse::<IpAddr>()
                        .map_err(|_| format!("'{a}' is not an IP address"))
                }) {
                    v.unicast_src_ip = Some((a, s.pos.clone()));
                }
            }
            "unicast_peer" => {
                if let Some(b) = need_block(s, d) {
                    unicast_peers(b, &mut v, d);
                }
            }
            "virtual_ipaddress" => {
                if let Some(b) = need_block(s, d) {
                    for line in b {
                        if let Some(vip) = vip_line(line, d) {
                            v.vips.push((vip, line.pos.clone()));
                        }
                    }
                }
            }
            "track_script" => {
                if let Some(b) = need_block(s, d) {
                    for line in b {
                        if let Some(t) = tracked(line, "track_script", d) {
                            if v.track_scripts.iter().any(|(x, _)| x.name == t.name) {
                                d.warn(&line.pos, &t.name, "duplicate track_script - ignoring");
                            } else {
                                v.track_scripts.push((t, line.pos.clone()));
                            }
                        }
                    }
                }
            }
            "track_interface" => {
                if let Some(b) = need_block(s, d) {
                    for line in b {
                        if let Some(t) = tracked(line, "track_interface", d) {
                            if v.track_interfaces.iter().any(|x| x.name == t.name) {
                                d.warn(&line.pos, &t.name, "duplicate track_interface - ignoring");
                            } else {
                                v.track_interfaces.push(t);
                            }
                        }
                    }
                }
            }
            "nopreempt" => v.nopreempt = flag(s, d),
            "preempt" => {
                if flag(s, d) {
                    v.nopreempt = false;
                }
            }
            "preempt_delay" => {
                if let Some(x) = value(s, d, |a| seconds(a, 6, 0, 1_000_000_000)) {
                    v.preempt_delay = x;
                }
            }
            "garp_master_delay" => {
                if let Some(x) = value(s, d, |a| unsigned(a, 0, u64::from(u32::MAX))) {
                    v.garp_master_delay = Some(Duration::from_secs(x));
                }
            }
            "garp_master_repeat" => {
                if let Some(x) = value(s, d, |a| unsigned(a, 0, u64::from(u32::MAX))) {
                    v.garp_master_repeat = Some(at_least_one(x, s, d));
                }
            }
            _ if NOTIFY.contains(&kw) => {
                if let Some(c) = command(s, d) {
                    let i = NOTIFY.iter().position(|n| *n == kw).unwrap_or(0);
                    v.notify[i] = Some(c);
                }
            }
            _ if IGNORED_INSTANCE.contains(&kw) => ignored(s, &here, d),
            _ => unknown(s, &here, d),
        }
    }
    v
}

fn authentication(block: &[Stmt], v: &mut Draft, d: &mut Diag) {
    for s in block {
        let kw = s.keyword();
        match kw {
            "auth_type" => match one_arg(s, d) {
                Some("PASS") => v.auth_type = Some(s.pos.clone()),
                Some("AH") => d.error(
                    &s.pos,
                    kw,
                    "AH authentication is not supported by rampart vrrp (use PASS or none)",
                ),
                Some(other) => {
                    d.error(&s.pos, kw, format!("unknown authentication type '{other}'"))
                }
                None => {}
            },
            "auth_pass" => {
                if let Some(p) = one_arg(s, d) {
                    let mut bytes = p.as_bytes().to_vec();
                    if bytes.len() > 8 {
                        // The password itself is never echoed.
                        d.warn(&s.pos, kw, "truncating auth_pass to 8 characters");
                        bytes.truncate(8);
                    }
                    v.auth_pass = Some(bytes);
                }
            }
            _ => unknown(s, &format!("authentication of vrrp_instance {}", v.name), d),
        }
    }
}

fn unicast_peers(block: &[Stmt], v: &mut Draft, d: &mut Diag) {
    for s in block {
        if !no_block(s, d) {
            continue;
        }
        let a = s.keyword();
        match a.parse::<IpAddr>() {
            Ok(ip) => {
                if s.words.len() > 1 {
                    d.warn(
                        &s.pos,
                        a,
                        "peer options (min_ttl/max_ttl) ignored by rampart vrrp",
                    );
                }
                if v.unicast_peers.iter().any(|(p, _)| *p == ip) {
                    d.warn(&s.pos, a, "duplicate unicast_peer - ignoring");
                } else {
                    v.unicast_peers.push((ip, s.pos.clone()));
                }
            }
            Err(_) => d.error(
                &s.pos,
                "unicast_peer",
                format!("'{a}' is not an IP address"),
            ),
        }
    }
}

/// `ADDR[/PREFIX] [dev IF] [label L] [other ip-address options]`.
fn vip_line(s: &Stmt, d: &mut Diag) -> Option<Vip> {
    if !no_block(s, d) {
        return None;
    }
    let (addr, prefix) = match addr_prefix(s.keyword()) {
        Ok(v) => v,
        Err(e) => {
            d.error(&s.pos, "virtual_ipaddress", e);
            return None;
        }
    };
    let mut vip = Vip {
        addr,
        prefix,
        dev: None,
        label: None,
    };
    let mut i = 1;
    let mut ok = true;
    while let Some(opt) = s.arg(i) {
        let val = s.arg(i + 1);
        match opt {
            "dev" | "label" | "brd" | "broadcast" | "scope" | "peer" | "preferred_lft"
            | "track_group" => {
                let Some(val) = val else {
                    d.error(
                        &s.pos,
                        "virtual_ipaddress",
                        format!("'{opt}' needs a value"),
                    );
                    ok = false;
                    break;
                };
                match opt {
                    "dev" => vip.dev = Some(val.to_string()),
                    "label" => vip.label = Some(val.to_string()),
                    _ => d.warn(
                        &s.pos,
                        "virtual_ipaddress",
                        format!("option '{opt}' ignored by rampart vrrp"),
                    ),
                }
                i += 2;
            }
            "no_track" | "home" | "-nodad" | "nodad" | "noprefixroute" | "autojoin" => {
                d.warn(
                    &s.pos,
                    "virtual_ipaddress",
                    format!("option '{opt}' ignored by rampart vrrp"),
                );
                i += 1;
            }
            _ => {
                d.error(
                    &s.pos,
                    "virtual_ipaddress",
                    format!("unknown option '{opt}'"),
                );
                ok = false;
                break;
            }
        }
    }
    ok.then_some(vip)
}

/// `NAME [weight N]` in track_script / track_interface.
fn tracked(s: &Stmt, what: &str, d: &mut Diag) -> Option<Tracked> {
    if !no_block(s, d) {
        return None;
    }
    let name = s.keyword().to_string();
    let weight = match s.arg(1) {
        None => None,
        Some("weight") => match s.arg(2).map(|a| signed(a, -253, 253)) {
            None => {
                d.error(&s.pos, what, format!("weight without value for '{name}'"));
                return None;
            }
            Some(Err(e)) => {
                d.error(&s.pos, what, format!("'{name}': weight {e}"));
                return None;
            }
            Some(Ok(w)) => {
                if let Some(opt) = s.arg(3) {
                    d.error(
                        &s.pos,
                        what,
                        format!("'{name}': option '{opt}' is not supported by rampart vrrp"),
                    );
                    return None;
                }
                Some(w as i32)
            }
        },
        Some(opt) => {
            d.error(&s.pos, what, format!("'{name}': unknown option '{opt}'"));
            return None;
        }
    };
    Some(Tracked { name, weight })
}

/// keepalived's instance completion: defaults, derived values and consistency checks.
fn complete(v: Draft, g: &GlobalDefs, scripts: &[VrrpScript], d: &mut Diag) -> Option<Instance> {
    let kw = "vrrp_instance";
    let name = v.name.clone();
    let mut ok = true;
    let interface = match v.interface {
        Some(i) => i,
        None => {
            d.error(&v.pos, kw, format!("({name}) no interface specified"));
            ok = false;
            String::new()
        }
    };
    let vrid = match v.vrid {
        Some(id) => id,
        None => {
            if !v.vrid_bad {
                d.error(
                    &v.pos,
                    kw,
                    format!("({name}) no virtual_router_id specified"),
                );
            }
            ok = false;
            0
        }
    };
    for (t, pos) in &v.track_scripts {
        if !scripts.iter().any(|s| s.name == t.name) {
            d.error(
                pos,
                "track_script",
                format!("({name}) track script '{}' not found", t.name),
            );
            ok = false;
        }
    }

    // The instance's family comes from its addresses; all must agree.
    let family_v6 = v
        .vips
        .first()
        .map(|(x, _)| x.addr.is_ipv6())
        .or(v.unicast_src_ip.as_ref().map(|(a, _)| a.is_ipv6()))
        .or(v.unicast_peers.first().map(|(a, _)| a.is_ipv6()));
    if let Some(v6) = family_v6 {
        for (vip, pos) in &v.vips {
            if vip.addr.is_ipv6() != v6 {
                d.error(
                    pos,
                    "virtual_ipaddress",
                    format!(
                        "({name}) {} is not of the instance's address family",
                        vip.addr
                    ),
                );
                ok = false;
            }
        }
        if let Some((src, pos)) = &v.unicast_src_ip {
            if src.is_ipv6() != v6 {
                d.error(
                    pos,
                    "unicast_src_ip",
                    format!("({name}) {src} must be of the same family as the instance"),
                );
                ok = false;
            }
        }
        for (peer, pos) in &v.unicast_peers {
            if peer.is_ipv6() != v6 {
                d.error(
                    pos,
                    "unicast_peer",
                    format!("({name}) {peer} must be of the same family as unicast_src_ip and the addresses"),
                );
                ok = false;
            }
        }
    }

    // Unset priority follows the state (MASTER owns the address); unset state follows priority.
    let priority = v.priority.unwrap_or(match v.state {
        Some(InitialState::Master) => VRRP_PRIO_OWNER,
        _ => VRRP_PRIO_DFL,
    });
    let initial_state = v.state.unwrap_or(if priority == VRRP_PRIO_OWNER {
        InitialState::Master
    } else {
        InitialState::Backup
    });
    if priority == VRRP_PRIO_OWNER && initial_state == InitialState::Backup {
        d.warn(
            &v.pos,
            kw,
            format!("({name}) priority 255 (address owner) with state BACKUP: it will become MASTER at once"),
        );
    }

    let version = v.version.unwrap_or(if family_v6 == Some(true) {
        3
    } else {
        g.vrrp_version
    });
    if version == 2 && family_v6 == Some(true) {
        d.error(
            &v.pos,
            kw,
            format!("({name}) VRRPv2 cannot carry IPv6 addresses; use version 3"),
        );
        ok = false;
    }

    let mut auth = match (&v.auth_type, v.auth_pass) {
        (Some(_), Some(p)) if !p.is_empty() => Some(Auth::Pass(AuthPass(p))),
        (Some(pos), _) => {
            d.warn(
                pos,
                "auth_type",
                format!("({name}) no auth_pass given - authentication disabled"),
            );
            None
        }
        (None, Some(_)) => {
            d.warn(
                &v.pos,
                "auth_pass",
                format!("({name}) auth_pass without auth_type - ignored"),
            );
            None
        }
        (None, None) => None,
    };
    if version == 3 && auth.is_some() {
        d.warn(
            &v.pos,
            "authentication",
            format!("({name}) VRRPv3 has no authentication - ignoring it"),
        );
        auth = None;
    }

    let mut nopreempt = v.nopreempt;
    let mut preempt_delay = v.preempt_delay;
    if priority == VRRP_PRIO_OWNER && nopreempt {
        d.warn(
            &v.pos,
            "nopreempt",
            format!("({name}) nopreempt is incompatible with priority 255 - resetting nopreempt"),
        );
        nopreempt = false;
    }
    if initial_state == InitialState::Master {
        if nopreempt {
            d.warn(
                &v.pos,
                "nopreempt",
                format!("({name}) nopreempt will not work with initial state MASTER - clearing"),
            );
            nopreempt = false;
        }
        if !preempt_delay.is_zero() {
            d.warn(
                &v.pos,
                "preempt_delay",
                format!(
                    "({name}) preempt_delay will not work with initial state MASTER - clearing"
                ),
            );
            preempt_delay = Duration::ZERO;
        }
    }

    let advert_int = advert(v.advert_int, version, &name, d);
    let [notify_master, notify_backup, notify_fault, notify_stop, notify] = v.notify;
    if !ok {
        return None;
    }
    Some(Instance {
        name,
        initial_state,
        interface,
        vrid,
        priority,
        advert_int,
        version,
        auth,
        unicast_src_ip: v.unicast_src_ip.map(|(a, _)| a),
        unicast_peers: v.unicast_peers.into_iter().map(|(a, _)| a).collect(),
        vips: v.vips.into_iter().map(|(x, _)| x).collect(),
        track_scripts: v.track_scripts.into_iter().map(|(t, _)| t).collect(),
        track_interfaces: v.track_interfaces,
        nopreempt,
        preempt_delay,
        garp_master_delay: v.garp_master_delay,
        garp_master_repeat: v.garp_master_repeat,
        notify_master,
        notify_backup,
        notify_fault,
        notify_stop,
        notify,
    })
}

/// VRRPv2 carries whole seconds (< 256), VRRPv3 centiseconds (< 40.96 s): keepalived rounds.
fn advert(given: Option<(Duration, Pos)>, version: u8, name: &str, d: &mut Diag) -> Duration {
    let Some((adv, pos)) = given else {
        return Duration::from_secs(1);
    };
    let us = adv.as_micros() as u64;
    let (unit, max) = if version == 2 {
        (1_000_000u64, 255_000_000u64)
    } else {
        (10_000, 40_950_000)
    };
    if us > max {
        d.warn(
            &pos,
            "advert_int",
            format!(
                "({name}) VRRPv{version} advertisement interval out of range, setting to {}s",
                max as f64 / 1e6
            ),
        );
        return Duration::from_micros(max);
    }
    if us.is_multiple_of(unit) {
        return adv;
    }
    let rounded = ((us + unit / 2) / unit * unit).max(unit);
    let what = if version == 2 {
        "whole seconds"
    } else {
        "units of 10ms"
    };
    d.warn(
        &pos,
        "advert_int",
        format!(
            "({name}) VRRPv{version} advertisement interval must be in {what} - rounding to {}s",
            rounded as f64 / 1e6
        ),
    );
    Duration::from_micros(rounded)
}

/// One router per (interface, VRID, family), as keepalived requires.
fn unique_vrids(instances: &[(Instance, Pos)], d: &mut Diag) {
    let mut seen: HashMap<(&str, u8, bool), &str> = HashMap::new();
    for (i, pos) in instances {
        let v6 = i
            .vips
            .first()
            .map(|x| x.addr.is_ipv6())
            .or(i.unicast_src_ip.map(|a| a.is_ipv6()))
            .unwrap_or(false);
        if let Some(other) = seen.insert((i.interface.as_str(), i.vrid, v6), &i.name) {
            d.error(
                pos,
                "virtual_router_id",
                format!(
                    "({}) virtual_router_id {} on {} is already used by vrrp_instance {other}",
                    i.name, i.vrid, i.interface
                ),
            );
        }
    }
}
