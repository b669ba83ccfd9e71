//! Pure text editing of haproxy.cfg: every line the operator wrote survives
//! unless an edit targets it, so comments, unknown keywords and order are kept.
//!
//! The text is handled as its `\n`-separated lines; joining them back gives the
//! original bytes exactly.

mod lines;

pub use lines::{bind_line, delete_line, insert_line, replace_line, server_line};

/// Indentation of the lines this module writes.
pub const INDENT: &str = "    ";

/// One section: its header line and where it ends (exclusive), as line indexes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    pub kind: String,
    pub name: Option<String>,
    pub header: usize,
    pub end: usize,
}

/// The words of a directive: comment cut off, split on whitespace.
pub fn words(line: &str) -> Vec<&str> {
    let code = line.split('#').next().unwrap_or("");
    code.split_whitespace().collect()
}

/// What identifies a directive among its section's lines: `timeout client`,
/// `option redispatch`, `stats socket`, otherwise the keyword (`no` is skipped).
pub fn line_key(line: &str) -> Option<String> {
    let w = words(line);
    let w = match w.first() {
        Some(&"no") if w.len() > 1 => &w[1..],
        Some(_) => &w[..],
        None => return None,
    };
    match (w[0], w.get(1)) {
        ("timeout" | "option" | "stats", Some(sub)) => Some(format!("{} {sub}", w[0])),
        (kw, _) => Some(kw.to_string()),
    }
}

pub(crate) fn split(text: &str) -> Vec<String> {
    text.split('\n').map(str::to_string).collect()
}

pub(crate) fn join(lines: &[String]) -> String {
    lines.join("\n")
}

/// Every section of `text`, in order.
pub fn sections(text: &str) -> Vec<Section> {
    let lines = split(text);
    let mut out: Vec<Section> = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let w = words(line);
        let Some(kw) = w.first() else { continue };
        if lb::config::is_section_keyword(kw) {
            if let Some(last) = out.last_mut() {
                last.end = i;
            }
            out.push(Section {
                kind: (*kw).to_string(),
                name: w.get(1).map(|n| (*n).to_string()),
                header: i,
                end: lines.len(),
            });
        }
    }
    out
}

/// The first section of one of `kinds` named `name`.
pub fn find_section(text: &str, kinds: &[&str], name: Option<&str>) -> Option<Section> {
    sections(text)
        .into_iter()
        .find(|s| kinds.contains(&s.kind.as_str()) && s.name.as_deref() == name)
}

/// Index of the section's last directive (its header when it has none).
pub(crate) fn last_directive(lines: &[String], sec: &Section) -> usize {
    (sec.header..sec.end)
        .rev()
        .find(|&i| !words(&lines[i]).is_empty())
        .unwrap_or(sec.header)
}

fn is_version_line(line: &str) -> bool {
    line.trim()
        .strip_prefix('#')
        .is_some_and(|r| r.trim_start().starts_with("_version="))
}

/// Sets the `# _version=N` first line, replacing an existing one.
pub fn set_version(text: &str, version: u64) -> String {
    let line = format!("# _version={version}");
    match text.split_once('\n') {
        Some((first, rest)) if is_version_line(first) => format!("{line}\n{rest}"),
        None if is_version_line(text) => line,
        _ => format!("{line}\n{text}"),
    }
}

/// The text without its version line, to compare two versions' contents.
pub fn without_version(text: &str) -> &str {
    match text.split_once('\n') {
        Some((first, rest)) if is_version_line(first) => rest,
        None if is_version_line(text) => "",
        _ => text,
    }
}

fn section_lines(header: &str, body: &[String]) -> Vec<String> {
    std::iter::once(header.to_string())
        .chain(body.iter().map(|l| format!("{INDENT}{l}")))
        .collect()
}

/// Appends a section (`header` then `body`, indented) at the end, after a blank line.
pub fn append_section(text: &str, header: &str, body: &[String]) -> String {
    let mut lines = split(text);
    // A text ending in '\n' has an empty last element: drop it, re-add at the end.
    if lines.last().is_some_and(String::is_empty) {
        lines.pop();
    }
    if lines.last().is_some_and(|l| !l.trim().is_empty()) {
        lines.push(String::new());
    }
    lines.extend(section_lines(header, body));
    lines.push(String::new());
    join(&lines)
}

/// Inserts a section before the first section (after the version line and
/// any leading comments), followed by a blank line.
pub fn prepend_section(text: &str, header: &str, body: &[String]) -> String {
    let Some(first) = sections(text).into_iter().next() else {
        return append_section(text, header, body);
    };
    let mut lines = split(text);
    let mut new = section_lines(header, body);
    new.push(String::new());
    lines.splice(first.header..first.header, new);
    join(&lines)
}

/// Replaces, in one section, the lines of each key with the given lines: the
/// first line of a key is replaced in place (keeping its indentation), its
/// other lines are removed, and keys the section lacks go right after the
/// header. An empty list removes the key. Other lines are untouched.
pub fn replace_keys(text: &str, sec: &Section, changes: &[(String, Vec<String>)]) -> String {
    let lines = split(text);
    let key_of = |i: usize| line_key(&lines[i]);
    let present: Vec<&String> = changes
        .iter()
        .map(|(k, _)| k)
        .filter(|k| (sec.header + 1..sec.end).any(|i| key_of(i).as_ref() == Some(*k)))
        .collect();
    let mut out: Vec<String> = lines[..=sec.header].to_vec();
    for (key, new) in changes {
        if !present.contains(&key) {
            out.extend(new.iter().map(|l| format!("{INDENT}{l}")));
        }
    }
    let mut done: Vec<&String> = Vec::new();
    for (i, line) in lines.iter().enumerate().take(sec.end).skip(sec.header + 1) {
        let change = key_of(i).and_then(|k| changes.iter().find(|(c, _)| *c == k));
        match change {
            None => out.push(line.clone()),
            Some((key, new)) => {
                if !done.contains(&key) {
                    done.push(key);
                    let indent: String = line.chars().take_while(|c| c.is_whitespace()).collect();
                    let indent = if indent.is_empty() {
                        INDENT.to_string()
                    } else {
                        indent
                    };
                    out.extend(new.iter().map(|l| format!("{indent}{l}")));
                }
            }
        }
    }
    out.extend(lines[sec.end..].iter().cloned());
    join(&out)
}

/// Removes a section: its header through its last directive. Comments and
/// blank lines after that belong to what follows and stay; a doubled blank
/// line left behind is collapsed.
pub fn delete_section(text: &str, sec: &Section) -> String {
    let mut lines = split(text);
    let last = last_directive(&lines, sec);
    lines.drain(sec.header..=last);
    let at = sec.header;
    let blank = |l: &String| l.trim().is_empty();
    if at < lines.len() && blank(&lines[at]) && (at == 0 || blank(&lines[at - 1])) {
        lines.remove(at);
    }
    join(&lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CFG: &str = "# _version=3\n# operator notes\nglobal\n    maxconn 100 # inline\n\ndefaults\n  mode tcp\n  timeout connect 5s\n\n# the public side\nfrontend f1\n    bind :80\n    default_backend b1\n\nbackend b1\n    balance leastconn\n    unknown-kw x\n    server s1 10.0.0.1:80 check\n";

    fn sec(kind: &str, name: Option<&str>) -> Section {
        find_section(CFG, &[kind], name).unwrap()
    }

    #[test]
    fn splits_into_sections() {
        let s = sections(CFG);
        let kinds: Vec<_> = s
            .iter()
            .map(|s| (s.kind.as_str(), s.name.clone()))
            .collect();
        assert_eq!(
            kinds,
            [
                ("global", None),
                ("defaults", None),
                ("frontend", Some("f1".into())),
                ("backend", Some("b1".into()))
            ]
        );
        assert_eq!((s[0].header, s[0].end), (2, 5));
        assert_eq!(s[3].end, CFG.split('\n').count());
        assert_eq!(join(&split(CFG)), CFG);
    }

    #[test]
    fn keys() {
        assert_eq!(
            line_key("  timeout client 5s").as_deref(),
            Some("timeout client")
        );
        assert_eq!(
            line_key("no option redispatch").as_deref(),
            Some("option redispatch")
        );
        assert_eq!(
            line_key("stats socket /x level admin").as_deref(),
            Some("stats socket")
        );
        assert_eq!(line_key("  maxconn 5 # c").as_deref(), Some("maxconn"));
        assert_eq!(line_key("   # only a comment"), None);
    }

    #[test]
    fn version_line() {
        assert!(set_version(CFG, 4).starts_with("# _version=4\n# operator notes\n"));
        assert_eq!(set_version("global\n", 1), "# _version=1\nglobal\n");
        assert_eq!(without_version(CFG), &CFG["# _version=3\n".len()..]);
        assert_eq!(without_version("global\n"), "global\n");
    }

    #[test]
    fn append_and_prepend() {
        let t = append_section(CFG, "backend b2", &["mode tcp".into()]);
        assert!(t.starts_with(CFG));
        assert!(t.ends_with("check\n\nbackend b2\n    mode tcp\n"));
        let t = append_section("global", "backend b", &[]);
        assert_eq!(t, "global\n\nbackend b\n");
        let t = prepend_section(
            "# _version=1\n# c\nbackend b\n",
            "global",
            &["daemon".into()],
        );
        assert_eq!(t, "# _version=1\n# c\nglobal\n    daemon\n\nbackend b\n");
    }

    #[test]
    fn replace_keeps_other_lines() {
        let changes = vec![
            (
                "balance".to_string(),
                vec!["balance roundrobin".to_string()],
            ),
            ("mode".to_string(), vec!["mode tcp".to_string()]),
            ("unknown-kw".to_string(), vec![]),
        ];
        let t = replace_keys(CFG, &sec("backend", Some("b1")), &changes);
        assert!(t.ends_with(
            "backend b1\n    mode tcp\n    balance roundrobin\n    server s1 10.0.0.1:80 check\n"
        ));
        // Indentation of a replaced line is kept.
        let d = sec("defaults", None);
        let t = replace_keys(
            CFG,
            &d,
            &[(
                "timeout connect".into(),
                vec!["timeout connect 1000".into()],
            )],
        );
        assert!(t.contains("  mode tcp\n  timeout connect 1000\n"));
        assert!(t.contains("# operator notes") && t.contains("# the public side"));
    }

    #[test]
    fn delete_keeps_following_comments() {
        let t = delete_section(CFG, &sec("defaults", None));
        assert!(
            t.contains("    maxconn 100 # inline\n\n# the public side\nfrontend f1"),
            "{t}"
        );
        let t = delete_section(CFG, &sec("backend", Some("b1")));
        assert!(t.ends_with("    default_backend b1\n"), "{t:?}");
        let t = delete_section(
            "backend a\n\nbackend b\n    mode tcp\n\nbackend c\n",
            &find_section(
                "backend a\n\nbackend b\n    mode tcp\n\nbackend c\n",
                &["backend"],
                Some("b"),
            )
            .unwrap(),
        );
        assert_eq!(t, "backend a\n\nbackend c\n");
    }
}
