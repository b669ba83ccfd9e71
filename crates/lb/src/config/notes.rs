//! Messages produced while reading one directive, before they get a location.

use super::model::{Diagnostic, Loc, Severity};
use super::units::parse_uint;

/// Warnings and alerts of one directive, in the order they were found.
#[derive(Debug, Default)]
pub(crate) struct Notes(Vec<(Severity, String)>);

impl Notes {
    pub fn warn(&mut self, message: impl Into<String>) {
        self.0.push((Severity::Warning, message.into()));
    }

    pub fn alert(&mut self, message: impl Into<String>) {
        self.0.push((Severity::Alert, message.into()));
    }

    pub fn has_alert(&self) -> bool {
        self.0.iter().any(|(s, _)| *s == Severity::Alert)
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The first message, used when a single error string is wanted.
    pub fn first_message(&self) -> Option<&str> {
        self.0.first().map(|(_, m)| m.as_str())
    }

    /// Attaches `loc` to every message.
    pub fn drain_into(&mut self, loc: &Loc, out: &mut Vec<Diagnostic>) {
        out.extend(self.0.drain(..).map(|(severity, message)| Diagnostic {
            severity,
            loc: Some(loc.clone()),
            message,
        }));
    }
}

/// Characters HAProxy accepts in proxy and server names (`invalid_char()`).
pub(crate) fn invalid_name_char(name: &str) -> Option<char> {
    name.chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':')))
}

/// Alerts about arguments past the `max` expected words (keyword included).
pub(crate) fn too_many_args(words: &[String], max: usize, notes: &mut Notes) -> bool {
    match words.get(max) {
        Some(extra) => {
            notes.alert(format!(
                "'{}' cannot handle unexpected argument '{extra}'.",
                words[0]
            ));
            true
        }
        None => false,
    }
}

/// The single integer argument of a directive (`maxconn 100`), or an alert.
pub(crate) fn uint_arg<T: std::str::FromStr>(words: &[String], notes: &mut Notes) -> Option<T> {
    let kw = &words[0];
    let Some(value) = words.get(1) else {
        notes.alert(format!("'{kw}' expects an integer argument."));
        return None;
    };
    if too_many_args(words, 2, notes) {
        return None;
    }
    parse_uint(value)
        .map_err(|e| notes.alert(format!("'{kw}' expects an integer argument: {e}.")))
        .ok()
}
