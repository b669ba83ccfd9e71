//! One repair pass for a common copy-paste mistake: keys of a block-sequence
//! item indented deeper than the item's first key (as in Wazuh's published
//! dataplaneapi.yml). Strict YAML rejects that; operators expect it to work.

/// A key that was moved left to line up with its item's first key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Realigned {
    /// 1-based line of the first misaligned key of the item.
    pub line: usize,
    pub key: String,
    pub first_key: String,
    pub extra: usize,
}

/// Returns the repaired text and one entry per repaired list item, or `None`
/// when nothing looked misaligned.
pub(crate) fn align_item_keys(text: &str) -> Option<(String, Vec<Realigned>)> {
    let lines: Vec<&str> = text.split('\n').collect();
    let mut out: Vec<String> = Vec::with_capacity(lines.len());
    let mut fixes = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        out.push(line.to_owned());
        i += 1;
        let Some((dash_col, key_col, first_key, opens_block)) = item_head(line) else {
            continue;
        };
        // Inside a nested block opened by an empty `key:` value, deeper lines
        // are that value's content, not misaligned siblings.
        let mut nested = opens_block;
        let mut fix: Option<Realigned> = None;
        while i < lines.len() {
            let cur = lines[i];
            let trimmed = cur.trim_start_matches(' ');
            if trimmed.is_empty() || trimmed.starts_with('#') {
                out.push(cur.to_owned());
                i += 1;
                continue;
            }
            let indent = cur.len() - trimmed.len();
            if indent <= dash_col {
                break;
            }
            if indent == key_col {
                nested = key_value(trimmed).is_some_and(|(_, empty)| empty);
            } else if indent > key_col && !nested {
                if let Some((key, empty)) = key_value(trimmed) {
                    fix.get_or_insert_with(|| Realigned {
                        line: i + 1,
                        key: key.to_owned(),
                        first_key: first_key.clone(),
                        extra: indent - key_col,
                    });
                    out.push(format!("{}{trimmed}", " ".repeat(key_col)));
                    i += 1;
                    nested = empty;
                    continue;
                }
            }
            out.push(cur.to_owned());
            i += 1;
        }
        fixes.extend(fix);
    }
    if fixes.is_empty() {
        None
    } else {
        Some((out.join("\n"), fixes))
    }
}

/// For `<spaces>-<spaces>key: value`, returns the dash column, the key
/// column, the key, and whether the value is empty (a nested block follows).
fn item_head(line: &str) -> Option<(usize, usize, String, bool)> {
    let trimmed = line.trim_start_matches(' ');
    let dash_col = line.len() - trimmed.len();
    let after_dash = trimmed.strip_prefix('-')?;
    let content = after_dash.trim_start_matches(' ');
    if content.len() == after_dash.len() {
        return None; // `-x` is a scalar, not an item
    }
    let key_col = line.len() - content.len();
    let (key, empty) = key_value(content)?;
    Some((dash_col, key_col, key.to_owned(), empty))
}

/// Recognises a plain `key: value` or `key:` line (no quoting, flow or
/// sequence syntax, which this repair does not try to understand).
fn key_value(s: &str) -> Option<(&str, bool)> {
    let (key, rest) = s.split_once(':')?;
    let key_ok = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.');
    if !key_ok || key.starts_with('-') {
        return None;
    }
    if !(rest.is_empty() || rest.starts_with(' ')) {
        return None;
    }
    let value = rest.trim();
    Some((key, value.is_empty() || value.starts_with('#')))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligns_deeper_keys_of_an_item() {
        let text = "u:\n- insecure: true\n   password: x\n   name: y\nz: 1\n";
        let (fixed, fixes) = align_item_keys(text).unwrap();
        assert_eq!(
            fixed,
            "u:\n- insecure: true\n  password: x\n  name: y\nz: 1\n"
        );
        assert_eq!(
            fixes,
            vec![Realigned {
                line: 3,
                key: "password".into(),
                first_key: "insecure".into(),
                extra: 1
            }]
        );
    }

    #[test]
    fn leaves_nested_blocks_alone() {
        let text = "u:\n- name: a\n  opts:\n    k: v\n";
        assert_eq!(align_item_keys(text), None);
    }

    #[test]
    fn ignores_non_key_lines() {
        let text = "u:\n- name: a\n     continued text\n";
        assert_eq!(align_item_keys(text), None);
    }
}
