//! Shell-style patterns for `include` (`*`, `?`, `[...]`), one path component at a time.

use std::path::{Component, Path, PathBuf};

use super::lexer::Files;

pub(crate) fn has_wildcards(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// Files matching `pattern`, sorted as glob(3) sorts them; hidden names only match a leading `.`.
pub(crate) fn expand(pattern: &Path, fs: &dyn Files) -> Vec<PathBuf> {
    let mut current = vec![PathBuf::new()];
    for comp in pattern.components() {
        let part = match comp {
            Component::Normal(p) => p.to_string_lossy().into_owned(),
            other => {
                for c in &mut current {
                    c.push(other.as_os_str());
                }
                continue;
            }
        };
        if !has_wildcards(&part) {
            for c in &mut current {
                c.push(&part);
            }
            continue;
        }
        let mut next = Vec::new();
        for dir in &current {
            let listed = if dir.as_os_str().is_empty() {
                fs.list_dir(Path::new("."))
            } else {
                fs.list_dir(dir)
            };
            let Ok(mut names) = listed else { continue };
            names.sort();
            for name in names {
                if name.starts_with('.') && !part.starts_with('.') {
                    continue;
                }
                if matches(part.as_bytes(), name.as_bytes()) {
                    next.push(dir.join(&name));
                }
            }
        }
        current = next;
    }
    current.retain(|p| fs.exists(p));
    current
}

/// fnmatch(3) without flags: `*`, `?`, and bracket sets with ranges and `!`/`^` negation.
pub(crate) fn matches(pat: &[u8], name: &[u8]) -> bool {
    match pat.first() {
        None => name.is_empty(),
        Some(b'*') => (0..=name.len()).any(|i| matches(&pat[1..], &name[i..])),
        Some(b'?') => !name.is_empty() && matches(&pat[1..], &name[1..]),
        Some(b'[') => match (bracket(&pat[1..]), name.first()) {
            (Some((set_len, negate)), Some(&c)) => {
                let set = &pat[1..1 + set_len];
                let set = if negate { &set[1..] } else { set };
                in_set(set, c) != negate && matches(&pat[2 + set_len..], &name[1..])
            }
            (Some(_), None) => false,
            // No closing `]`: the `[` is literal.
            (None, _) => name.first() == Some(&b'[') && matches(&pat[1..], &name[1..]),
        },
        Some(&c) => name.first() == Some(&c) && matches(&pat[1..], &name[1..]),
    }
}

/// Length of a bracket set's body (before its `]`) and whether it is negated.
fn bracket(body: &[u8]) -> Option<(usize, bool)> {
    let negate = matches!(body.first(), Some(b'!') | Some(b'^'));
    let start = usize::from(negate);
    // A `]` right after `[` or `[!` is a member, not the end.
    let search_from = start + 1;
    let end = body.get(search_from..)?.iter().position(|&b| b == b']')? + search_from;
    Some((end, negate))
}

fn in_set(set: &[u8], c: u8) -> bool {
    let mut i = 0;
    while i < set.len() {
        if i + 2 < set.len() && set[i + 1] == b'-' {
            if set[i] <= c && c <= set[i + 2] {
                return true;
            }
            i += 3;
        } else {
            if set[i] == c {
                return true;
            }
            i += 1;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn patterns() {
        assert!(matches(b"*.conf", b"a.conf"));
        assert!(!matches(b"*.conf", b"a.conf.bak"));
        assert!(matches(b"vi_?.conf", b"vi_1.conf"));
        assert!(matches(b"[a-c]x", b"bx"));
        assert!(!matches(b"[!a-c]x", b"bx"));
        assert!(matches(b"[]]", b"]"));
        assert!(matches(b"[x", b"[x"));
    }
}
