//! keepalived.conf lexing: comments, quotes, braces, line continuations and `include`.
//!
//! The output is a tree of statements; the meaning of keywords is left to `build`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::glob;

/// Includes nest at most this deep, so an include loop ends with an error.
const MAX_INCLUDE_DEPTH: usize = 16;

/// Where a token came from: shown as `file:line` in every message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pos {
    pub file: Arc<str>,
    pub line: usize,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

/// One word of a statement; `quoted` words were written between `"`s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Word {
    pub text: String,
    pub quoted: bool,
}

/// A keyword line with its arguments and, when followed by `{`, its block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Stmt {
    pub pos: Pos,
    pub words: Vec<Word>,
    pub block: Option<Vec<Stmt>>,
}

impl Stmt {
    pub fn keyword(&self) -> &str {
        self.words.first().map(|w| w.text.as_str()).unwrap_or("")
    }
    /// The argument at `i` (the keyword is 0).
    pub fn arg(&self, i: usize) -> Option<&str> {
        self.words.get(i).map(|w| w.text.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Word(Word),
    Open,
    Close,
    Eol,
}

/// Messages gathered while reading; `build` adds its own to the same lists.
#[derive(Debug, Default)]
pub(crate) struct Diag {
    pub errors: Vec<String>,
    pub warnings: Vec<String>,
    /// Unknown keywords: warnings for the daemon, failures for `-t`.
    pub unknown: usize,
}

impl Diag {
    pub fn error(&mut self, pos: &Pos, keyword: &str, msg: impl fmt::Display) {
        self.errors.push(format!("{pos}: {keyword}: {msg}"));
    }
    pub fn warn(&mut self, pos: &Pos, keyword: &str, msg: impl fmt::Display) {
        self.warnings.push(format!("{pos}: {keyword}: {msg}"));
    }
}

/// Source of file contents, so the lexer itself does no I/O decisions.
pub(crate) trait Files {
    fn read(&self, path: &Path) -> std::io::Result<String>;
    fn list_dir(&self, dir: &Path) -> std::io::Result<Vec<String>>;
    fn is_dir(&self, path: &Path) -> bool;
    fn exists(&self, path: &Path) -> bool;
}

pub(crate) struct RealFs;

impl Files for RealFs {
    fn read(&self, path: &Path) -> std::io::Result<String> {
        std::fs::read_to_string(path)
    }
    fn list_dir(&self, dir: &Path) -> std::io::Result<Vec<String>> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            out.push(entry?.file_name().to_string_lossy().into_owned());
        }
        Ok(out)
    }
    fn is_dir(&self, path: &Path) -> bool {
        path.is_dir()
    }
    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }
}

/// Lexes `text` (the contents of `path`) and every file it includes into statements.
pub(crate) fn parse_tree(text: &str, path: &Path, fs: &dyn Files, diag: &mut Diag) -> Vec<Stmt> {
    let mut toks = Vec::new();
    lex_file(text, path, fs, diag, &mut toks, 0);
    let mut cur = Cursor { toks, i: 0 };
    let mut open = 0;
    build_block(&mut cur, diag, &mut open)
}

fn lex_file(
    text: &str,
    path: &Path,
    fs: &dyn Files,
    diag: &mut Diag,
    out: &mut Vec<(Tok, Pos)>,
    depth: usize,
) {
    let file: Arc<str> = Arc::from(path.display().to_string());
    let mut pending = String::new();
    let mut pending_line = 0;
    for (idx, raw) in text.lines().enumerate() {
        let (clean, cont, unterminated) = decomment(raw);
        if pending.is_empty() {
            pending_line = idx + 1;
        }
        let pos = Pos {
            file: file.clone(),
            line: pending_line,
        };
        if unterminated {
            diag.error(&pos, first_word(&clean), "unterminated quote");
        }
        pending.push_str(&clean);
        if cont {
            // A trailing `\` joins the next line, as keepalived does.
            pending.push(' ');
            continue;
        }
        let line = std::mem::take(&mut pending);
        lex_line(&line, &pos, path, fs, diag, out, depth);
    }
    if !pending.is_empty() {
        let pos = Pos {
            file,
            line: pending_line,
        };
        lex_line(&pending, &pos, path, fs, diag, out, depth);
    }
}

fn first_word(s: &str) -> &str {
    s.split_whitespace().next().unwrap_or("")
}

/// Strips a `#`/`!` comment (outside quotes), unescapes `\#`/`\!`, and reports a
/// trailing `\` (continuation) and an odd number of quotes.
fn decomment(raw: &str) -> (String, bool, bool) {
    let mut out = String::with_capacity(raw.len());
    let mut quote = false;
    let mut chars = raw.chars().peekable();
    let mut cont = false;
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                quote = !quote;
                out.push(c);
            }
            '\\' => match chars.peek() {
                None => {
                    cont = true;
                    break;
                }
                Some(&n) if !quote && (n == '#' || n == '!') => {
                    // Kept escaped so the tokenizer keeps it inside a word.
                    out.push(n);
                    chars.next();
                }
                Some(&n) => {
                    out.push(c);
                    out.push(n);
                    chars.next();
                }
            },
            '#' | '!' if !quote => break,
            _ => out.push(c),
        }
    }
    let trimmed = out.trim().to_string();
    (trimmed, cont, quote)
}

fn lex_line(
    line: &str,
    pos: &Pos,
    path: &Path,
    fs: &dyn Files,
    diag: &mut Diag,
    out: &mut Vec<(Tok, Pos)>,
    depth: usize,
) {
    let toks = tokenize(line);
    if let Some(Tok::Word(w)) = toks.first() {
        if w.text == "include" && !w.quoted {
            include(&toks[1..], pos, path, fs, diag, out, depth);
            return;
        }
    }
    if toks.is_empty() {
        return;
    }
    out.extend(toks.into_iter().map(|t| (t, pos.clone())));
    out.push((Tok::Eol, pos.clone()));
}

fn tokenize(line: &str) -> Vec<Tok> {
    let mut toks = Vec::new();
    let mut chars = line.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '{' {
            chars.next();
            toks.push(Tok::Open);
        } else if c == '}' {
            chars.next();
            toks.push(Tok::Close);
        } else if c == '"' {
            chars.next();
            let mut text = String::new();
            for n in chars.by_ref() {
                if n == '"' {
                    break;
                }
                text.push(n);
            }
            toks.push(Tok::Word(Word { text, quoted: true }));
        } else {
            let mut text = String::new();
            while let Some(&n) = chars.peek() {
                if n.is_whitespace() || n == '"' || n == '{' || n == '}' {
                    break;
                }
                text.push(n);
                chars.next();
            }
            toks.push(Tok::Word(Word {
                text,
                quoted: false,
            }));
        }
    }
    toks
}

fn include(
    args: &[Tok],
    pos: &Pos,
    path: &Path,
    fs: &dyn Files,
    diag: &mut Diag,
    out: &mut Vec<(Tok, Pos)>,
    depth: usize,
) {
    let pattern = match args {
        [Tok::Word(w)] => w.text.clone(),
        _ => {
            diag.error(pos, "include", "expects exactly one file name or pattern");
            return;
        }
    };
    if depth >= MAX_INCLUDE_DEPTH {
        diag.error(
            pos,
            "include",
            format!("includes nested deeper than {MAX_INCLUDE_DEPTH} (an include loop?)"),
        );
        return;
    }
    // Relative patterns are relative to the including file's directory (keepalived chdirs there).
    let base = path.parent().unwrap_or_else(|| Path::new("."));
    let full: PathBuf = if Path::new(&pattern).is_absolute() {
        PathBuf::from(&pattern)
    } else {
        base.join(&pattern)
    };
    let files = if glob::has_wildcards(&pattern) {
        let found = glob::expand(&full, fs);
        if found.is_empty() {
            diag.warn(
                pos,
                "include",
                format!("no config files matched '{pattern}'"),
            );
        }
        found
    } else {
        vec![full]
    };
    for file in files {
        if fs.is_dir(&file) {
            continue;
        }
        match fs.read(&file) {
            Ok(text) => lex_file(&text, &file, fs, diag, out, depth + 1),
            Err(e) => diag.error(
                pos,
                "include",
                format!("cannot read {}: {e}", file.display()),
            ),
        }
    }
}

struct Cursor {
    toks: Vec<(Tok, Pos)>,
    i: usize,
}

impl Cursor {
    fn peek(&self, ahead: usize) -> Option<&Tok> {
        self.toks.get(self.i + ahead).map(|(t, _)| t)
    }
    fn next(&mut self) -> Option<(Tok, Pos)> {
        let item = self.toks.get(self.i).cloned();
        self.i += 1;
        item
    }
}

/// Builds statements until the matching `}` (or end of input at the top level).
/// `open` counts the blocks still open.
fn build_block(cur: &mut Cursor, diag: &mut Diag, open: &mut usize) -> Vec<Stmt> {
    let mut items = Vec::new();
    while let Some((tok, pos)) = cur.next() {
        match tok {
            Tok::Eol => {}
            Tok::Close => {
                if *open > 0 {
                    *open -= 1;
                    return items;
                }
                diag.error(&pos, "}", "unbalanced braces: '}' without a matching '{'");
            }
            Tok::Open => {
                diag.error(
                    &pos,
                    "{",
                    "unbalanced braces: '{' without a keyword before it",
                );
                *open += 1;
                let depth = *open;
                let _ = build_block(cur, diag, open);
                *open = (*open).min(depth - 1);
            }
            Tok::Word(first) => {
                let mut words = vec![first];
                while let Some(Tok::Word(_)) = cur.peek(0) {
                    if let Some((Tok::Word(w), _)) = cur.next() {
                        words.push(w);
                    }
                }
                // A block may open on the keyword's line or on a following one.
                let mut ahead = 0;
                while let Some(Tok::Eol) = cur.peek(ahead) {
                    ahead += 1;
                }
                let block = if let Some(Tok::Open) = cur.peek(ahead) {
                    cur.i += ahead + 1;
                    *open += 1;
                    let depth = *open;
                    let inner = build_block(cur, diag, open);
                    if *open >= depth {
                        // Input ended before the block closed.
                        *open = depth - 1;
                        diag.error(
                            &pos,
                            &words[0].text,
                            "unbalanced braces: block opened here is never closed",
                        );
                    }
                    Some(inner)
                } else {
                    None
                };
                items.push(Stmt { pos, words, block });
            }
        }
    }
    items
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_and_escapes() {
        assert_eq!(decomment("  a b # c"), ("a b".into(), false, false));
        assert_eq!(
            decomment("a \"x # y\" ! z"),
            ("a \"x # y\"".into(), false, false)
        );
        assert_eq!(decomment("a \\# b"), ("a # b".into(), false, false));
        assert_eq!(decomment("a b \\"), ("a b".into(), true, false));
        assert_eq!(decomment("a \"b"), ("a \"b".into(), false, true));
    }

    #[test]
    fn braces_split_words() {
        let t = tokenize("vrrp_instance VI_1{ state \"MA STER\"}");
        assert_eq!(t.len(), 6);
        assert_eq!(t[2], Tok::Open);
        assert_eq!(
            t[4],
            Tok::Word(Word {
                text: "MA STER".into(),
                quoted: true
            })
        );
        assert_eq!(t[5], Tok::Close);
    }
}
