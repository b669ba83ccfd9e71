//! Reads configuration text line by line: splits words, tracks the current
//! section and the defaults in force, and hands directives to their section.
//!
//! Like HAProxy, the section state restarts with each file while defaults carry
//! over, and parsing continues after an alert so that one run reports them all.

use std::sync::Arc;

use super::addr::Resolver;
use super::finalize::finalize;
use super::global::{self, EnvOverlay};
use super::keywords::{IGNORED_SECTIONS, SECTIONS};
use super::lexer::split_line;
use super::model::{Config, Diagnostic, Global, Loc, Severity};
use super::notes::{invalid_name_char, Notes};
use super::proxy::{self, Kind, LineCtx, ProxyDraft};
use super::ConfigError;

/// Where directives currently go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Section {
    /// Start of a file: only section headers are valid.
    None,
    Global,
    Defaults(usize),
    Proxy(usize),
    /// A section rampart skips (already warned about), or a broken header.
    Skipped,
}

pub(crate) struct Parser<'r> {
    resolver: &'r Resolver<'r>,
    diags: Vec<Diagnostic>,
    global: Global,
    env: EnvOverlay,
    /// Every defaults section, in order (named ones can be referenced by `from`).
    defaults: Vec<ProxyDraft>,
    /// The defaults section in force for the next proxy.
    last_defaults: Option<usize>,
    proxies: Vec<ProxyDraft>,
    section: Section,
    /// Section name for `${.SECTION}`.
    section_label: String,
}

impl<'r> Parser<'r> {
    pub fn new(resolver: &'r Resolver<'r>) -> Self {
        Parser {
            resolver,
            diags: Vec::new(),
            global: Global::default(),
            env: EnvOverlay::default(),
            defaults: Vec::new(),
            last_defaults: None,
            proxies: Vec::new(),
            section: Section::None,
            section_label: String::new(),
        }
    }

    /// Records a message that has no line (e.g. an unreadable file).
    pub fn alert_unlocated(&mut self, message: String) {
        self.diags.push(Diagnostic {
            severity: Severity::Alert,
            loc: None,
            message,
        });
    }

    /// Parses one file's text; `file` names it in messages.
    pub fn parse_source(&mut self, file: &str, text: &str) {
        let file: Arc<str> = Arc::from(file);
        self.section = Section::None;
        self.section_label.clear();
        for (index, raw) in text.split('\n').enumerate() {
            let loc = Loc {
                file: file.clone(),
                line: index + 1,
            };
            self.line(&loc, raw);
        }
    }

    /// Validates everything read so far into a configuration.
    pub fn finish(mut self) -> Result<Config, ConfigError> {
        let proxies = std::mem::take(&mut self.proxies);
        let (frontends, backends) = finalize(&self.global, proxies, &mut self.diags);
        if self.diags.iter().any(|d| d.severity == Severity::Alert) {
            return Err(ConfigError {
                diagnostics: self.diags,
            });
        }
        Ok(Config {
            global: self.global,
            frontends,
            backends,
            warnings: self.diags,
        })
    }

    fn env_lookup(&self, name: &str, loc: &Loc) -> Option<String> {
        match name {
            ".LINE" => Some(loc.line.to_string()),
            ".FILE" => Some(loc.file.to_string()),
            ".SECTION" => Some(self.section_label.clone()),
            _ => self.env.get(name),
        }
    }

    fn alert(&mut self, loc: &Loc, message: String) {
        self.diags.push(Diagnostic {
            severity: Severity::Alert,
            loc: Some(loc.clone()),
            message,
        });
    }

    fn line(&mut self, loc: &Loc, raw: &str) {
        let words = match split_line(raw, &|name| self.env_lookup(name, loc)) {
            Ok(w) => w,
            Err(e) => return self.alert(loc, e.to_string()),
        };
        if words.is_empty() {
            return;
        }
        if let Some(i) = words.iter().position(String::is_empty) {
            return self.alert(
                loc,
                format!("argument number {i} is empty and marks the end of the argument list (an unset environment variable?)."),
            );
        }
        let negated = words[0] == "no" && words.len() > 1;
        let words = if negated { &words[1..] } else { &words[..] };
        let kw = words[0].as_str();
        if negated && !matches!(kw, "option" | "log") {
            return self.alert(
                loc,
                format!("negation is only supported for 'option' and 'log' (got 'no {kw}')."),
            );
        }
        if kw.starts_with('.') {
            return self.dot_directive(words, loc);
        }
        if SECTIONS.contains(&kw) {
            return self.open_section(words, loc);
        }
        if IGNORED_SECTIONS.contains(&kw) {
            self.diags.push(Diagnostic {
                severity: Severity::Warning,
                loc: Some(loc.clone()),
                message: format!("'{kw}' section is ignored by rampart."),
            });
            self.section = Section::Skipped;
            return;
        }
        self.directive(words, negated, loc);
    }

    /// HAProxy's `.warning`/`.alert`/`.notice`/`.diag` messages and `.if`
    /// blocks, which may appear anywhere.
    fn dot_directive(&mut self, words: &[String], loc: &Loc) {
        let text = words[1..].join(" ");
        let (severity, message) = match words[0].as_str() {
            ".warning" => (Severity::Warning, text),
            ".alert" => (Severity::Alert, text),
            // Informational output, not a diagnostic about the configuration.
            ".notice" | ".diag" => return,
            ".if" | ".elif" | ".else" | ".endif" => (
                Severity::Alert,
                format!(
                    "conditional blocks ('{}') are not supported by rampart yet.",
                    words[0]
                ),
            ),
            other => (Severity::Alert, format!("unknown directive '{other}'.")),
        };
        self.diags.push(Diagnostic {
            severity,
            loc: Some(loc.clone()),
            message,
        });
    }

    fn directive(&mut self, words: &[String], negated: bool, loc: &Loc) {
        let cx = LineCtx {
            loc,
            resolver: self.resolver,
            negated,
        };
        let mut notes = Notes::default();
        match self.section {
            Section::None => notes.alert(format!("unknown keyword '{}' out of section.", words[0])),
            Section::Global => {
                global::handle(&mut self.global, &mut self.env, words, &cx, &mut notes)
            }
            Section::Defaults(i) => proxy::handle(&mut self.defaults[i], words, &cx, &mut notes),
            Section::Proxy(i) => proxy::handle(&mut self.proxies[i], words, &cx, &mut notes),
            Section::Skipped => {}
        }
        notes.drain_into(loc, &mut self.diags);
    }

    fn open_section(&mut self, words: &[String], loc: &Loc) {
        self.section_label = words.get(1).unwrap_or(&words[0]).clone();
        let mut notes = Notes::default();
        self.section = match words[0].as_str() {
            "global" => Section::Global,
            "defaults" => self.open_defaults(words, loc, &mut notes),
            "frontend" => self.open_proxy(Kind::Frontend, words, loc, &mut notes),
            "backend" => self.open_proxy(Kind::Backend, words, loc, &mut notes),
            _ => self.open_proxy(Kind::Listen, words, loc, &mut notes),
        };
        notes.drain_into(loc, &mut self.diags);
    }

    /// `defaults [NAME] [from PARENT]`: starts from scratch or from PARENT, and
    /// becomes the defaults of the proxies that follow.
    fn open_defaults(&mut self, words: &[String], loc: &Loc, notes: &mut Notes) -> Section {
        let args: Vec<&str> = words[1..].iter().map(String::as_str).collect();
        let (name, from) = match args.as_slice() {
            [] => ("", None),
            ["from", parent] => ("", Some(*parent)),
            [name] => (*name, None),
            [name, "from", parent] => (*name, Some(*parent)),
            _ => {
                notes.alert("'defaults' expects [<name>] [from <defaults>] as arguments.");
                return Section::Skipped;
            }
        };
        if let Some(c) = invalid_name_char(name) {
            notes.alert(format!(
                "character '{c}' is not permitted in 'defaults' name '{name}'."
            ));
        }
        let base = match from {
            Some(parent) => self.named_defaults(parent, "defaults", name, notes),
            None => ProxyDraft::builtin(),
        };
        self.defaults.push(base.derive(Kind::Defaults, name, loc));
        let index = self.defaults.len() - 1;
        self.last_defaults = Some(index);
        Section::Defaults(index)
    }

    /// `frontend|backend|listen NAME [from DEFAULTS]`.
    fn open_proxy(
        &mut self,
        kind: Kind,
        words: &[String],
        loc: &Loc,
        notes: &mut Notes,
    ) -> Section {
        let section = kind.section();
        let Some(name) = words.get(1) else {
            notes.alert(format!("'{section}' expects an <id> argument"));
            return Section::Skipped;
        };
        if let Some(c) = invalid_name_char(name) {
            notes.alert(format!(
                "character '{c}' is not permitted in '{section}' name '{name}'."
            ));
        }
        self.check_duplicate(kind, name, notes);
        let from = match (words.get(2).map(String::as_str), words.get(3), words.get(4)) {
            (None, _, _) => None,
            (Some("from"), Some(parent), None) => Some(parent.as_str()),
            (Some(extra), _, _) => {
                notes.alert(if kind.has_frontend() {
                    "please use the 'bind' keyword for listening addresses.".to_string()
                } else {
                    format!("'{section} {name}' cannot handle unexpected argument '{extra}'.")
                });
                None
            }
        };
        let base = match from {
            Some(parent) => self.named_defaults(parent, section, name, notes),
            None => self.current_defaults(),
        };
        self.proxies.push(base.derive(kind, name, loc));
        Section::Proxy(self.proxies.len() - 1)
    }

    fn current_defaults(&self) -> ProxyDraft {
        self.last_defaults
            .and_then(|i| self.defaults.get(i))
            .cloned()
            .unwrap_or_else(ProxyDraft::builtin)
    }

    /// The named defaults section `parent`, for `from parent`.
    fn named_defaults(
        &self,
        parent: &str,
        section: &str,
        name: &str,
        notes: &mut Notes,
    ) -> ProxyDraft {
        let found: Vec<&ProxyDraft> = self
            .defaults
            .iter()
            .filter(|d| !d.name.is_empty() && d.name == parent)
            .collect();
        match found.as_slice() {
            [] => {
                notes.alert(format!(
                    "defaults section '{parent}' not found for {section} '{name}'."
                ));
                self.current_defaults()
            }
            [only] => (*only).clone(),
            [first, second, ..] => {
                notes.alert(format!(
                    "ambiguous defaults section name '{parent}' referenced by {section} '{name}' exists at least at {} and {}.",
                    first.loc, second.loc
                ));
                (*first).clone()
            }
        }
    }

    /// Frontend names must be unique among frontends and listens, backend names
    /// among backends and listens.
    fn check_duplicate(&self, kind: Kind, name: &str, notes: &mut Notes) {
        let clash = self.proxies.iter().find(|p| {
            p.name == name
                && ((kind.has_frontend() && p.kind.has_frontend())
                    || (kind.has_backend() && p.kind.has_backend()))
        });
        if let Some(p) = clash {
            notes.alert(format!(
                "{} '{name}' has the same name as {} '{}' declared at {}.",
                kind.section(),
                p.kind.type_str(),
                p.name,
                p.loc
            ));
        }
    }
}
