//! HAProxy-syntax configuration: parsing into the validated [`model`].
//!
//! The entry points read HAProxy 2.6–2.8 configuration files and either return
//! a [`Config`] (with its warnings) or every alert found, HAProxy-style.
pub mod model;
pub use model::*;

mod addr;
mod finalize;
mod global;
mod keywords;
mod lexer;
mod logline;
mod notes;
mod parser;
mod proxy;
mod proxy_kw;
mod server;
mod units;

pub use addr::{system_resolver, Resolver};
pub use keywords::is_section_keyword;

use std::fmt;
use std::path::{Path, PathBuf};

use notes::Notes;
use parser::Parser;
use server::{build_server, Origin, Site};

/// A configuration that cannot be used: every alert, with the warnings seen
/// along the way, in the order they were found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub diagnostics: Vec<Diagnostic>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.diagnostics.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// Reads and parses files as one configuration, in order, like
/// `haproxy -f a -f b`. A directory stands for its `*.cfg` files in
/// alphabetical order, as in HAProxy.
pub fn load_files(paths: &[PathBuf]) -> Result<Config, ConfigError> {
    let mut parser = Parser::new(&system_resolver);
    for path in paths {
        for file in expand_dir(path) {
            match std::fs::read(&file) {
                Ok(bytes) => {
                    let name = file.display().to_string();
                    parser.parse_source(&name, &String::from_utf8_lossy(&bytes));
                }
                Err(e) => parser.alert_unlocated(format!(
                    "Could not open configuration file {} : {e}",
                    file.display()
                )),
            }
        }
    }
    parser.finish()
}

/// The `*.cfg` files of a directory (sorted), or the path itself.
fn expand_dir(path: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(path) else {
        return vec![path.to_path_buf()];
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "cfg") && p.is_file())
        .collect();
    files.sort();
    files
}

/// Parses `(file name, text)` pairs as one configuration, in order.
pub fn parse_sources(sources: &[(String, String)]) -> Result<Config, ConfigError> {
    parse_sources_with(sources, &system_resolver)
}

/// Like [`parse_sources`], resolving host names with `resolver` instead of the
/// system's DNS (tests, or callers that must not block on DNS).
pub fn parse_sources_with(
    sources: &[(String, String)],
    resolver: &Resolver<'_>,
) -> Result<Config, ConfigError> {
    let mut parser = Parser::new(resolver);
    for (name, text) in sources {
        parser.parse_source(name, text);
    }
    parser.finish()
}

/// Parses one configuration text; `file` names it in messages.
pub fn parse_str(file: &str, text: &str) -> Result<Config, ConfigError> {
    parse_sources(&[(file.to_string(), text.to_string())])
}

/// For the runtime API `add server B/S ADDR[:PORT] [args]`: parses ADDR and the
/// server keywords (same keywords as a `server` line, HAProxy built-in defaults,
/// not `default-server`). The id is 0 unless `id N` is given. Keywords rampart
/// would only ignore are refused, since nobody would see a warning.
pub fn parse_server_spec(
    name: &str,
    words: &[&str],
    default_port: Option<u16>,
) -> Result<Server, String> {
    let words: Vec<String> = words.iter().map(|w| (*w).to_string()).collect();
    let mut notes = Notes::default();
    let loc = Loc::default();
    let site = Site {
        origin: Origin::Runtime,
        default_port,
        resolver: &system_resolver,
        loc: &loc,
    };
    let server = build_server(name, &words, &ServerSettings::default(), &site, &mut notes);
    match server {
        Some(s) if !notes.has_alert() => Ok(s),
        _ => Err(notes
            .first_message()
            .unwrap_or("invalid server specification")
            .to_string()),
    }
}

/// Formats diagnostics then HAProxy's verdict, for `rampart lb -c`.
///
/// Valid: warnings, then `Configuration file is valid`, exit code 0.
/// Invalid: every diagnostic, one `Error(s) found in configuration file : F`
/// line per file with alerts, then `Fatal errors found in configuration.`, 1.
pub fn check_report(result: &Result<Config, ConfigError>, files: &[PathBuf]) -> (String, i32) {
    let mut text = String::new();
    match result {
        Ok(config) => {
            for w in &config.warnings {
                text.push_str(&format!("{w}\n"));
            }
            text.push_str("Configuration file is valid\n");
            (text, 0)
        }
        Err(err) => {
            for d in &err.diagnostics {
                text.push_str(&format!("{d}\n"));
            }
            for file in files {
                let name = file.display().to_string();
                let has_alert = err.diagnostics.iter().any(|d| {
                    d.severity == Severity::Alert
                        && d.loc.as_ref().is_some_and(|l| *l.file == *name)
                });
                if has_alert {
                    text.push_str(&format!(
                        "[ALERT] config : Error(s) found in configuration file : {name}\n"
                    ));
                }
            }
            text.push_str("[ALERT] config : Fatal errors found in configuration.\n");
            (text, 1)
        }
    }
}
