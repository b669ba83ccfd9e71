//! keepalived.conf (the subset `rampart vrrp` runs) → a validated model.
//!
//! The lexer follows keepalived 2.2: `#`/`!` comments outside quotes, `{`/`}` as their own
//! tokens, `"quoted strings"`, trailing `\` continuations, and `include` with shell patterns
//! relative to the including file's directory. Every problem is collected, each as
//! `file:line: keyword: message`.

mod build;
mod glob;
mod lexer;
mod values;

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The whole configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct VrrpConf {
    pub path: PathBuf,
    pub global: GlobalDefs,
    pub scripts: Vec<VrrpScript>,
    pub instances: Vec<Instance>,
    /// Accepted-but-ignored keywords, unknown keywords and values keepalived corrects.
    pub warnings: Vec<String>,
}

/// `global_defs`.
#[derive(Debug, Clone, PartialEq)]
pub struct GlobalDefs {
    pub router_id: Option<String>,
    pub enable_script_security: bool,
    /// `script_user USER [GROUP]`.
    pub script_user: Option<(String, Option<String>)>,
    /// `vrrp_garp_master_delay`, whole seconds.
    pub garp_master_delay: Duration,
    pub garp_master_repeat: u32,
    pub vrrp_version: u8,
}

impl Default for GlobalDefs {
    fn default() -> Self {
        GlobalDefs {
            router_id: None,
            enable_script_security: false,
            script_user: None,
            garp_master_delay: Duration::from_secs(5),
            garp_master_repeat: 5,
            vrrp_version: 2,
        }
    }
}

/// `vrrp_script NAME { … }`.
#[derive(Debug, Clone, PartialEq)]
pub struct VrrpScript {
    pub name: String,
    /// The command line, arguments separated by spaces (arguments with spaces re-quoted).
    pub script: String,
    pub interval: Duration,
    pub timeout: Option<Duration>,
    pub weight: i32,
    pub rise: u32,
    pub fall: u32,
    pub user: Option<(String, Option<String>)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitialState {
    Master,
    Backup,
}

/// VRRPv2 simple password authentication; AH is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    Pass(AuthPass),
}

/// An `auth_pass` (at most 8 bytes). Its `Debug` never shows the password.
#[derive(Clone, PartialEq, Eq)]
pub struct AuthPass(Vec<u8>);

impl AuthPass {
    /// The password bytes, at most 8.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
    /// The 8-byte authentication data of a VRRPv2 packet (zero padded).
    pub fn padded(&self) -> [u8; 8] {
        let mut out = [0u8; 8];
        out[..self.0.len()].copy_from_slice(&self.0);
        out
    }
}

impl fmt::Debug for AuthPass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AuthPass(<redacted>)")
    }
}

/// One `virtual_ipaddress` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vip {
    pub addr: IpAddr,
    pub prefix: u8,
    pub dev: Option<String>,
    pub label: Option<String>,
}

/// A `track_script` / `track_interface` entry; `weight` overrides the script's own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tracked {
    pub name: String,
    pub weight: Option<i32>,
}

/// `vrrp_instance NAME { … }`.
#[derive(Debug, Clone, PartialEq)]
pub struct Instance {
    pub name: String,
    pub initial_state: InitialState,
    pub interface: String,
    pub vrid: u8,
    pub priority: u8,
    /// Whole seconds for VRRPv2, centiseconds for VRRPv3 (keepalived rounds to these).
    pub advert_int: Duration,
    pub version: u8,
    pub auth: Option<Auth>,
    pub unicast_src_ip: Option<IpAddr>,
    pub unicast_peers: Vec<IpAddr>,
    pub vips: Vec<Vip>,
    pub track_scripts: Vec<Tracked>,
    pub track_interfaces: Vec<Tracked>,
    pub nopreempt: bool,
    pub preempt_delay: Duration,
    pub garp_master_delay: Option<Duration>,
    pub garp_master_repeat: Option<u32>,
    pub notify_master: Option<String>,
    pub notify_backup: Option<String>,
    pub notify_fault: Option<String>,
    pub notify_stop: Option<String>,
    pub notify: Option<String>,
}

/// Every error found in a configuration, with the warnings gathered alongside.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .errors.join("\n"))]
pub struct ConfError {
    pub path: PathBuf,
    /// Each `file:line: keyword: message` (I/O failures name the file only).
    pub errors: Vec<String>,
    pub warnings: Vec<String>,
}

/// Reads and validates `path` and the files it includes.
pub fn load(path: &Path) -> Result<VrrpConf, ConfError> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse_str(&text, path),
        Err(e) => Err(ConfError {
            path: path.to_path_buf(),
            errors: vec![format!("{}: cannot read: {e}", path.display())],
            warnings: Vec::new(),
        }),
    }
}

/// Parses `text` as if read from `path` (includes are resolved relative to `path`).
pub fn parse_str(text: &str, path: &Path) -> Result<VrrpConf, ConfError> {
    let mut diag = lexer::Diag::default();
    let tree = lexer::parse_tree(text, path, &lexer::RealFs, &mut diag);
    let conf = build::build(&tree, path, &mut diag);
    if diag.errors.is_empty() {
        Ok(conf)
    } else {
        Err(ConfError {
            path: path.to_path_buf(),
            errors: diag.errors,
            warnings: diag.warnings,
        })
    }
}

/// Marks the warnings that make `rampart vrrp -t` fail, as keepalived `-t` fails on them.
const UNKNOWN_MARK: &str = ": unknown keyword";

/// Whether a warning is about an unknown keyword.
pub fn is_unknown_keyword(warning: &str) -> bool {
    warning.contains(UNKNOWN_MARK)
}

/// The text `rampart vrrp -t` prints and its exit code: 0 when valid, 1 when there are
/// errors or unknown keywords (keepalived `-t` fails on those too). Warnings are printed.
pub fn check_report(result: &Result<VrrpConf, ConfError>) -> (String, i32) {
    let mut out = String::new();
    match result {
        Ok(conf) => {
            for w in &conf.warnings {
                out.push_str(&format!("warning: {w}\n"));
            }
            let unknown = conf
                .warnings
                .iter()
                .filter(|w| is_unknown_keyword(w))
                .count();
            if unknown > 0 {
                out.push_str(&format!(
                    "{}: configuration invalid: {unknown} unknown keyword(s)\n",
                    conf.path.display()
                ));
                (out, 1)
            } else {
                out.push_str(&format!(
                    "{}: configuration valid: {} vrrp_instance(s), {} vrrp_script(s), {} warning(s)\n",
                    conf.path.display(),
                    conf.instances.len(),
                    conf.scripts.len(),
                    conf.warnings.len()
                ));
                (out, 0)
            }
        }
        Err(e) => {
            for err in &e.errors {
                out.push_str(&format!("error: {err}\n"));
            }
            for w in &e.warnings {
                out.push_str(&format!("warning: {w}\n"));
            }
            out.push_str(&format!(
                "{}: configuration invalid: {} error(s)\n",
                e.path.display(),
                e.errors.len()
            ));
            (out, 1)
        }
    }
}
