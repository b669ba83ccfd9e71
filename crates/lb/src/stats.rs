//! Rendering of the runtime API's reports in HAProxy's exact shapes: `show stat` CSV
//! (same column names and positions; columns rampart does not track stay empty),
//! `show info` and `show servers state`.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::SystemTime;

use crate::engine::{Engine, FrontendRt};
use crate::health::CheckResult;
use crate::state::{admin, BackendRt, Counters, ServerRt};

/// HAProxy 2.6's `show stat` header, column for column.
pub const STAT_HEADER: &str = "# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,weight,act,bck,chkfail,chkdown,lastchg,downtime,qlimit,pid,iid,sid,throttle,lbtot,tracked,type,rate,rate_lim,rate_max,check_status,check_code,check_duration,hrsp_1xx,hrsp_2xx,hrsp_3xx,hrsp_4xx,hrsp_5xx,hrsp_other,hanafail,req_rate,req_rate_max,req_tot,cli_abrt,srv_abrt,comp_in,comp_out,comp_byp,comp_rsp,lastsess,last_chk,last_agt,qtime,ctime,rtime,ttime,agent_status,agent_code,agent_duration,check_desc,agent_desc,check_rise,check_fall,check_health,agent_rise,agent_fall,agent_health,addr,cookie,mode,algo,conn_rate,conn_rate_max,conn_tot,intercepted,dcon,dses,wrew,connect,reuse,cache_lookups,cache_hits,srv_icur,src_ilim,qtime_max,ctime_max,rtime_max,ttime_max,eint,idle_conn_cur,safe_conn_cur,used_conn_cur,need_conn_est,uweight,agg_server_status,agg_server_check_status,agg_check_status,-,ssl_sess,ssl_reused_sess,ssl_failed_handshake,h2_headers_rcvd,h2_data_rcvd,h2_settings_rcvd,h2_rst_stream_rcvd,h2_goaway_rcvd,h2_detected_conn_protocol_errors,h2_detected_strm_protocol_errors,h2_rst_stream_resp,h2_goaway_resp,h2_open_connections,h2_backend_open_streams,h2_total_connections,h2_backend_total_streams,h1_open_connections,h1_open_streams,h1_total_connections,h1_total_streams,h1_bytes_in,h1_bytes_out,h1_spliced_bytes_in,h1_spliced_bytes_out,";

fn columns() -> Vec<&'static str> {
    STAT_HEADER
        .trim_start_matches("# ")
        .split(',')
        .filter(|c| !c.is_empty())
        .collect()
}

/// One CSV row being filled by column name.
struct Row {
    names: &'static [&'static str],
    cells: Vec<String>,
}

impl Row {
    fn new(names: &'static [&'static str]) -> Row {
        Row {
            names,
            cells: vec![String::new(); names.len()],
        }
    }

    fn set(&mut self, col: &str, v: impl ToString) -> &mut Row {
        if let Some(i) = self.names.iter().position(|n| *n == col) {
            self.cells[i] = v.to_string();
        }
        self
    }

    fn line(&self) -> String {
        let mut s = self.cells.join(",");
        s.push_str(",\n");
        s
    }
}

fn names() -> &'static [&'static str] {
    static NAMES: std::sync::OnceLock<Vec<&'static str>> = std::sync::OnceLock::new();
    NAMES.get_or_init(columns)
}

fn ld(a: &AtomicU64) -> u64 {
    a.load(Ordering::Relaxed)
}

fn ld32(a: &AtomicU32) -> u32 {
    a.load(Ordering::Relaxed)
}

/// Status column of a server row.
pub fn server_status(s: &ServerRt) -> String {
    if s.in_maint() {
        return "MAINT".into();
    }
    let health = s.health();
    let base = if s.cfg.settings.check {
        health.status_text()
    } else if s.is_up() {
        "no check".into()
    } else {
        "DOWN".into()
    };
    if s.draining() && s.is_up() {
        return "DRAIN".into();
    }
    base
}

pub fn show_stat(engine: &Engine) -> String {
    let gen = engine.current();
    let pid = std::process::id();
    let mut out = String::from(STAT_HEADER);
    out.push('\n');
    // HAProxy lists proxies in declaration order: a frontend row, then servers and the
    // backend row of the backend with the same id (listen), or of each backend.
    let mut ids: Vec<(u32, Option<&FrontendRt>, Option<&BackendRt>)> = Vec::new();
    for fe in &gen.frontends {
        ids.push((fe.cfg.id, Some(fe), None));
    }
    for be in &gen.backends {
        match ids.iter_mut().find(|(id, _, _)| *id == be.cfg.id) {
            Some(slot) => slot.2 = Some(be),
            None => ids.push((be.cfg.id, None, Some(be))),
        }
    }
    ids.sort_by_key(|(id, _, _)| *id);
    for (_, fe, be) in ids {
        if let Some(fe) = fe {
            out.push_str(&frontend_row(engine, fe, pid).line());
        }
        if let Some(be) = be {
            for s in be.servers().iter() {
                out.push_str(&server_row(be, s, pid).line());
            }
            out.push_str(&backend_row(be, pid).line());
        }
    }
    out
}

fn frontend_row(engine: &Engine, fe: &FrontendRt, pid: u32) -> Row {
    let c = &fe.counters;
    let slim = if fe.cfg.maxconn == 0 {
        engine.global_maxconn() as u64
    } else {
        u64::from(fe.cfg.maxconn)
    };
    let mut r = Row::new(names());
    r.set("pxname", &fe.cfg.name)
        .set("svname", "FRONTEND")
        .set("scur", ld32(&fe.cur))
        .set("smax", ld32(&c.smax))
        .set("slim", slim)
        .set("stot", ld(&c.stot))
        .set("bin", ld(&c.bytes_in))
        .set("bout", ld(&c.bytes_out))
        .set("dreq", ld(&c.dreq))
        .set("dresp", 0)
        .set("ereq", 0)
        .set("status", if engine.is_stopping() { "STOP" } else { "OPEN" })
        .set("pid", 1)
        .set("iid", fe.cfg.id)
        .set("sid", 0)
        .set("type", 0)
        .set("rate", 0)
        .set("rate_lim", 0)
        .set("rate_max", 0)
        .set("mode", fe.cfg.mode.as_str())
        .set("conn_tot", ld(&c.stot));
    let _ = pid;
    r
}

fn server_row(be: &BackendRt, s: &ServerRt, _pid: u32) -> Row {
    let c = &s.counters;
    let mut r = Row::new(names());
    let check = s.last_check();
    r.set("pxname", be.name())
        .set("svname", s.name())
        .set("qcur", s.queued())
        .set("qmax", ld32(&c.qmax))
        .set("scur", ld32(&s.cur))
        .set("smax", ld32(&c.smax))
        .set("stot", ld(&c.stot))
        .set("bin", ld(&c.bytes_in))
        .set("bout", ld(&c.bytes_out))
        .set("dresp", 0)
        .set("econ", ld(&c.econ))
        .set("eresp", ld(&c.eresp))
        .set("wretr", ld(&c.wretr))
        .set("wredis", ld(&c.wredis))
        .set("status", server_status(s))
        .set("weight", s.weight())
        .set("act", u8::from(!s.cfg.settings.backup))
        .set("bck", u8::from(s.cfg.settings.backup))
        .set("lastchg", s.since_last_change().as_secs())
        .set("sid", s.cfg.id)
        .set("lbtot", ld(&c.lbtot))
        .set("type", 2)
        .set("addr", s.addr())
        .set("uweight", s.weight());
    backend_side(&mut r, be, c);
    if s.cfg.settings.maxconn > 0 {
        r.set("slim", s.cfg.settings.maxconn);
    }
    if s.cfg.settings.maxqueue > 0 {
        r.set("qlimit", s.cfg.settings.maxqueue);
    }
    if s.cfg.settings.check {
        let h = s.health();
        r.set("chkfail", ld(&s.chkfail))
            .set("chkdown", ld(&s.chkdown))
            .set("downtime", s.downtime().as_secs())
            .set("check_rise", h.params().rise)
            .set("check_fall", h.params().fall)
            .set("check_health", h.counter());
        if let Some(lc) = check {
            r.set("check_status", lc.result.status_code())
                .set("check_duration", lc.duration.as_millis())
                .set("check_desc", lc.result.reason());
        }
    }
    r
}

fn backend_row(be: &BackendRt, _pid: u32) -> Row {
    let c = &be.counters;
    let servers = be.servers();
    let (act, bck) = be.usable_counts();
    let weight: u32 = servers
        .iter()
        .filter(|s| s.usable() && (s.cfg.settings.backup == (act == 0)))
        .map(|s| s.weight())
        .sum();
    let sum = |f: fn(&Counters) -> &AtomicU64| -> u64 {
        servers.iter().map(|s| ld(f(&s.counters))).sum()
    };
    let mut r = Row::new(names());
    r.set("pxname", be.name())
        .set("svname", "BACKEND")
        .set("qcur", be.queued())
        .set("qmax", ld32(&c.qmax))
        .set("scur", ld32(&be.cur))
        .set("smax", ld32(&c.smax))
        .set("slim", "")
        .set("stot", ld(&c.stot))
        .set("bin", ld(&c.bytes_in))
        .set("bout", ld(&c.bytes_out))
        .set("dreq", 0)
        .set("dresp", 0)
        .set("econ", ld(&c.econ))
        .set("eresp", 0)
        .set("wretr", ld(&c.wretr))
        .set("wredis", ld(&c.wredis))
        .set("status", if act + bck > 0 { "UP" } else { "DOWN" })
        .set("weight", weight)
        .set("act", act)
        .set("bck", bck)
        .set(
            "chkdown",
            servers.iter().map(|s| ld(&s.chkdown)).sum::<u64>(),
        )
        .set("lastchg", be.since_last_change().as_secs())
        .set("sid", 0)
        .set("lbtot", sum(|c| &c.lbtot))
        .set("type", 1)
        .set("algo", be.cfg.algorithm.as_str());
    backend_side(&mut r, be, c);
    r
}

/// Columns a server row and its backend row fill alike.
fn backend_side(r: &mut Row, be: &BackendRt, c: &Counters) {
    r.set("pid", 1)
        .set("iid", be.cfg.id)
        .set("rate", 0)
        .set("rate_max", 0)
        .set("cli_abrt", ld(&c.cli_abrt))
        .set("srv_abrt", ld(&c.srv_abrt))
        .set("lastsess", -1)
        .set("qtime", 0)
        .set("ctime", 0)
        .set("rtime", 0)
        .set("ttime", 0)
        .set("mode", be.cfg.mode.as_str());
}

/// `show servers state`: format version 1, as HAProxy writes its server-state file.
pub fn show_servers_state(engine: &Engine, only: Option<&str>) -> Result<String, String> {
    let gen = engine.current();
    if let Some(name) = only {
        if gen.backend(name).is_none() {
            return Err("Can't find backend.\n".into());
        }
    }
    let mut out = String::from("1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port\n");
    for be in gen
        .backends
        .iter()
        .filter(|b| only.is_none_or(|n| b.name() == n))
    {
        for s in be.servers().iter() {
            // HAProxy's codes: op_state 0 stopped (also in maintenance), 2 running;
            // check_status 6 L4OK, 7 L4TOUT, 8 L4CON; check_result 2 failed, 3 passed;
            // check_state 6 enabled, 14 enabled but paused (maintenance).
            let op = if s.is_up() && !s.in_maint() { 2 } else { 0 };
            let h = s.health();
            let (status, result, state) = match (s.cfg.settings.check, s.last_check()) {
                (false, _) => (1, 0, 0),
                (true, last) => {
                    let state = if s.in_maint() { 14 } else { 6 };
                    match last.map(|lc| lc.result) {
                        None => (0, 0, state),
                        Some(CheckResult::L4Ok) => (6, 3, state),
                        Some(CheckResult::L4Tout) => (7, 2, state),
                        Some(CheckResult::L4Con(_)) => (8, 2, state),
                    }
                }
            };
            let addr = s.addr();
            let _ = writeln!(
                out,
                "{} {} {} {} {} {} {} {} {} {} {} {} {} {} 0 0 0 - {} - 0 {} - - 0",
                be.cfg.id,
                be.name(),
                s.cfg.id,
                s.name(),
                addr.ip(),
                op,
                s.admin() & (admin::MAINT_ANY | admin::FDRAIN),
                s.weight(),
                s.cfg.settings.weight,
                s.since_last_change().as_secs(),
                status,
                result,
                h.counter(),
                state,
                addr.port(),
                s.cfg.settings.check_port.unwrap_or(0),
            );
        }
    }
    Ok(out)
}

pub struct InfoField {
    pub name: &'static str,
    pub value: String,
    /// "str", "u32" or "u64", as `show info json` types it.
    pub ty: &'static str,
}

pub fn info_fields(engine: &Engine) -> Vec<InfoField> {
    let up = engine.started.elapsed().as_secs();
    let nofile = crate::engine::raise_nofile();
    let maxconn = engine.global_maxconn();
    let gen = engine.current();
    let bytes_out: u64 = gen
        .frontends
        .iter()
        .map(|f| ld(&f.counters.bytes_out))
        .sum();
    let start = engine
        .started_wall
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let threads = engine.nbthread();
    let f = |name, value: String, ty| InfoField { name, value, ty };
    vec![
        f("Name", "rampart".into(), "str"),
        f("Version", env!("CARGO_PKG_VERSION").into(), "str"),
        f("Release_date", "".into(), "str"),
        f("Nbthread", threads.to_string(), "u32"),
        f("Nbproc", "1".into(), "u32"),
        f("Process_num", "1".into(), "u32"),
        f("Pid", std::process::id().to_string(), "u32"),
        f(
            "Uptime",
            format!(
                "{}d {}h{:02}m{:02}s",
                up / 86400,
                (up / 3600) % 24,
                (up / 60) % 60,
                up % 60
            ),
            "str",
        ),
        f("Uptime_sec", up.to_string(), "u32"),
        f("Ulimit-n", nofile.to_string(), "u32"),
        f("Maxsock", nofile.to_string(), "u32"),
        f("Maxconn", maxconn.to_string(), "u32"),
        f("Hard_maxconn", maxconn.to_string(), "u32"),
        f("CurrConns", engine.sessions.active().to_string(), "u32"),
        f("CumConns", ld(&engine.cum_conns).to_string(), "u32"),
        f(
            "Stopping",
            u8::from(engine.is_stopping()).to_string(),
            "u32",
        ),
        f("Jobs", engine.sessions.active().to_string(), "u32"),
        f("Listeners", engine.listener_count().to_string(), "u32"),
        f(
            "DroppedLogs",
            engine.logger.load().dropped().to_string(),
            "u32",
        ),
        f("TotalBytesOut", bytes_out.to_string(), "u64"),
        f("Start_time_sec", start.to_string(), "u32"),
    ]
}

pub fn show_info(engine: &Engine, json: bool) -> String {
    let fields = info_fields(engine);
    if !json {
        let mut out = String::new();
        for f in fields {
            let _ = writeln!(out, "{}: {}", f.name, f.value);
        }
        return out;
    }
    let items: Vec<String> = fields
        .iter()
        .enumerate()
        .map(|(pos, f)| {
            let value = if f.ty == "str" { format!("\"{}\"", json_escape(&f.value)) } else { f.value.clone() };
            format!(
                "{{\"field\":{{\"pos\":{pos},\"name\":\"{}\"}},\"processNum\":1,\"value\":{{\"type\":\"{}\",\"value\":{value}}}}}",
                f.name, f.ty
            )
        })
        .collect();
    format!("[{}]\n", items.join(","))
}

pub fn json_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_columns_keep_haproxy_positions() {
        let cols = columns();
        let at = |i: usize| cols[i];
        assert_eq!(at(0), "pxname");
        assert_eq!(at(4), "scur");
        assert_eq!(at(17), "status");
        assert_eq!(at(32), "type");
        assert_eq!(at(36), "check_status");
        assert_eq!(at(49), "cli_abrt");
        assert_eq!(at(58), "qtime");
        assert_eq!(at(73), "addr");
        assert_eq!(at(76), "algo");
    }

    #[test]
    fn row_is_as_wide_as_header() {
        let mut r = Row::new(names());
        r.set("pxname", "p")
            .set("algo", "leastconn")
            .set("no-such-column", 1);
        let line = r.line();
        assert_eq!(line.matches(',').count(), names().len());
        assert!(line.starts_with("p,"));
    }

    #[test]
    fn json_strings_are_escaped() {
        assert_eq!(json_escape("a\"b\\c\n"), "a\\\"b\\\\c\\u000a");
    }
}
