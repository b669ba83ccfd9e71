//! Single-line edits inside a section: `server` lines of backends, `bind`
//! lines of frontends.

use super::{join, last_directive, split, words, Section, INDENT};

/// The `server NAME …` line of `sec`.
pub fn server_line(text: &str, sec: &Section, name: &str) -> Option<usize> {
    let lines = split(text);
    (sec.header + 1..sec.end).find(|&i| {
        let w = words(&lines[i]);
        w.first() == Some(&"server") && w.get(1) == Some(&name)
    })
}

/// The `bind` line of `sec` named `name`: by its `name NAME` option, or for
/// an unnamed bind by `address:port` (`bind :80` is `0.0.0.0:80`).
pub fn bind_line(text: &str, sec: &Section, name: &str) -> Option<usize> {
    let lines = split(text);
    (sec.header + 1..sec.end).find(|&i| {
        let w = words(&lines[i]);
        if w.first() != Some(&"bind") {
            return false;
        }
        match w.iter().skip(2).position(|x| *x == "name") {
            Some(p) => w.get(p + 3) == Some(&name),
            None => w
                .get(1)
                .is_some_and(|spec| spec.split(',').any(|a| auto_name(a) == name)),
        }
    })
}

fn auto_name(addr: &str) -> String {
    let addr = addr.strip_prefix("ipv4@").unwrap_or(addr);
    if let Some(port) = addr.strip_prefix("*:") {
        return format!("0.0.0.0:{port}");
    }
    if addr.starts_with(':') {
        return format!("0.0.0.0{addr}");
    }
    addr.to_string()
}

/// Inserts `line` (indented) after the last line of `sec` starting with
/// `keyword`, or after the section's last directive when there is none.
pub fn insert_line(text: &str, sec: &Section, keyword: &str, line: &str) -> String {
    let mut lines = split(text);
    let at = (sec.header + 1..sec.end)
        .rev()
        .find(|&i| words(&lines[i]).first() == Some(&keyword))
        .unwrap_or_else(|| last_directive(&lines, sec));
    let indent = if at > sec.header {
        indent_of(&lines[at])
    } else {
        INDENT.to_string()
    };
    lines.insert(at + 1, format!("{indent}{line}"));
    join(&lines)
}

fn indent_of(line: &str) -> String {
    let indent: String = line.chars().take_while(|c| c.is_whitespace()).collect();
    if indent.is_empty() {
        INDENT.to_string()
    } else {
        indent
    }
}

/// Replaces line `index` by `line`, keeping its indentation and a trailing comment.
pub fn replace_line(text: &str, index: usize, line: &str) -> String {
    let mut lines = split(text);
    if let Some(old) = lines.get_mut(index) {
        let comment = old.find('#').map(|p| old[p..].to_string());
        let mut new = format!("{}{line}", indent_of(old));
        if let Some(c) = comment {
            new.push(' ');
            new.push_str(&c);
        }
        *old = new;
    }
    join(&lines)
}

/// Removes line `index`.
pub fn delete_line(text: &str, index: usize) -> String {
    let mut lines = split(text);
    if index < lines.len() {
        lines.remove(index);
    }
    join(&lines)
}

#[cfg(test)]
mod tests {
    use super::super::find_section;
    use super::*;

    const CFG: &str = "frontend f\n  bind :80\n  bind 10.0.0.1:81 name api # keep\n  default_backend b\n\nbackend b\n  # servers\n  server s1 10.0.0.1:1514 check\n  server s2 10.0.0.2:1514\n  timeout server 5s\n\nbackend e\n  balance first\n\n# end\n";

    fn sec(kind: &str, name: &str) -> Section {
        find_section(CFG, &[kind], Some(name)).unwrap()
    }

    #[test]
    fn finds_servers_and_binds() {
        assert_eq!(server_line(CFG, &sec("backend", "b"), "s2"), Some(8));
        assert_eq!(server_line(CFG, &sec("backend", "b"), "s3"), None);
        assert_eq!(server_line(CFG, &sec("backend", "e"), "s1"), None);
        let f = sec("frontend", "f");
        assert_eq!(bind_line(CFG, &f, "0.0.0.0:80"), Some(1));
        assert_eq!(bind_line(CFG, &f, "api"), Some(2));
        assert_eq!(bind_line(CFG, &f, "10.0.0.1:81"), None);
    }

    #[test]
    fn inserts_after_last_server_or_at_section_end() {
        let t = insert_line(
            CFG,
            &sec("backend", "b"),
            "server",
            "server s3 10.0.0.3:1514",
        );
        assert!(
            t.contains("  server s2 10.0.0.2:1514\n  server s3 10.0.0.3:1514\n  timeout server 5s")
        );
        let t = insert_line(
            CFG,
            &sec("backend", "e"),
            "server",
            "server s1 10.0.0.3:1514",
        );
        assert!(
            t.ends_with("  balance first\n  server s1 10.0.0.3:1514\n\n# end\n"),
            "{t}"
        );
        let t = insert_line(
            "backend x\n",
            &find_section("backend x\n", &["backend"], Some("x")).unwrap(),
            "server",
            "server a 1.1.1.1:1",
        );
        assert_eq!(t, "backend x\n    server a 1.1.1.1:1\n");
    }

    #[test]
    fn replaces_and_deletes_lines() {
        let t = replace_line(CFG, 2, "bind 10.0.0.1:82 name api");
        assert!(t.contains("\n  bind 10.0.0.1:82 name api # keep\n"));
        let t = delete_line(CFG, 8);
        assert!(t.contains("check\n  timeout server 5s"));
    }
}
