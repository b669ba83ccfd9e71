//! Splits one configuration line into words the way HAProxy's `parse_line()` does.
//!
//! - `#` starts a comment outside quotes; `\#` is a literal `#`.
//! - Words are separated by unquoted blanks; `\ ` keeps a blank inside a word.
//! - Double quotes ("weak") allow escapes and `$VAR` / `${VAR}` / `${VAR-default}` /
//!   `${VAR[*]}` expansion; single quotes ("strong") keep everything literally.
//! - Escapes (outside single quotes): `\\`, `\ `, `\t`, `\n`, `\r`, `\#`, `\'`, `\"`,
//!   `\xNN`, and `\$` inside double quotes. Any other `\c` stays as written.
//! - Quotes may be glued to text (`a"b c"d` is one word); `""` is an empty word.
//! - The line ends at `\n`, `\r` or NUL, so CRLF files need no special care.
//!
//! Environment variables are only expanded inside double quotes, as in HAProxy
//! (section 2.3 of its manual), so `$` in unquoted passwords stays literal.

use std::fmt;

/// Why a line could not be split; positions are 1-based byte columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LexError {
    UnmatchedQuote(usize),
    UnmatchedBrace(usize),
    BadVarName(usize),
    BadHex(usize),
    BadExpansion(usize),
}

impl fmt::Display for LexError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LexError::UnmatchedQuote(p) => write!(f, "unmatched quote at position {p}"),
            LexError::UnmatchedBrace(p) => {
                write!(
                    f,
                    "unmatched brace in environment variable name at position {p}"
                )
            }
            LexError::BadVarName(p) => write!(
                f,
                "forbidden first char in environment variable name at position {p}"
            ),
            LexError::BadHex(p) => {
                write!(
                    f,
                    "truncated or invalid hexadecimal sequence at position {p}"
                )
            }
            LexError::BadExpansion(p) => {
                write!(
                    f,
                    "truncated or invalid word expansion sequence at position {p}"
                )
            }
        }
    }
}

/// Word accumulator: `cur` is `Some` while a word is open, even an empty one
/// (needed for `""` and for unset variables, which both make an empty word).
#[derive(Default)]
struct Words {
    done: Vec<Vec<u8>>,
    cur: Option<Vec<u8>>,
}

impl Words {
    fn push_byte(&mut self, b: u8) {
        self.cur.get_or_insert_with(Vec::new).push(b);
    }

    fn open(&mut self) {
        self.cur.get_or_insert_with(Vec::new);
    }

    fn close(&mut self) {
        if let Some(w) = self.cur.take() {
            self.done.push(w);
        }
    }

    fn finish(mut self) -> Vec<String> {
        self.close();
        self.done
            .into_iter()
            .map(|w| String::from_utf8_lossy(&w).into_owned())
            .collect()
    }
}

/// C `isspace()`: the separators HAProxy recognises.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

fn hex_val(b: u8) -> Option<u8> {
    (b as char).to_digit(16).and_then(|d| u8::try_from(d).ok())
}

struct Lexer<'a, 'e> {
    line: &'a [u8],
    pos: usize,
    env: &'e dyn Fn(&str) -> Option<String>,
    words: Words,
    squote: bool,
    dquote: bool,
    /// Position of the opening quote still waiting for its closing one.
    quote_at: usize,
    /// True right after an opening quote until something is emitted: `""` must
    /// still produce a (possibly empty) word.
    empty_quote: bool,
}

/// Splits `line` into words; `env` looks variables up (unset = `None`).
pub(crate) fn split_line(
    line: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<String>, LexError> {
    let mut lx = Lexer {
        line: line.as_bytes(),
        pos: 0,
        env,
        words: Words::default(),
        squote: false,
        dquote: false,
        quote_at: 0,
        empty_quote: false,
    };
    lx.run()?;
    Ok(lx.words.finish())
}

impl Lexer<'_, '_> {
    fn peek(&self, ahead: usize) -> u8 {
        self.line.get(self.pos + ahead).copied().unwrap_or(0)
    }

    fn emit(&mut self, b: u8) {
        self.words.push_byte(b);
        self.empty_quote = false;
    }

    fn run(&mut self) -> Result<(), LexError> {
        loop {
            let c = self.peek(0);
            let quoted = self.squote || self.dquote;
            match c {
                0 | b'\n' | b'\r' => break,
                b'#' if !quoted => break,
                b'"' if !self.squote => self.toggle_quote(true),
                b'\'' if !self.dquote => self.toggle_quote(false),
                b'\\' if !self.squote => self.escape()?,
                b'$' if self.dquote => self.variable()?,
                c if is_space(c) && !quoted => {
                    self.words.close();
                    while is_space(self.peek(0)) && !matches!(self.peek(0), b'\n' | b'\r') {
                        self.pos += 1;
                    }
                }
                c => {
                    self.emit(c);
                    self.pos += 1;
                }
            }
        }
        if self.squote || self.dquote {
            return Err(LexError::UnmatchedQuote(self.quote_at + 1));
        }
        Ok(())
    }

    fn toggle_quote(&mut self, double: bool) {
        let inside = if double { self.dquote } else { self.squote };
        if inside {
            if self.empty_quote {
                self.words.open();
            }
        } else {
            self.quote_at = self.pos;
            self.empty_quote = true;
        }
        if double {
            self.dquote = !inside;
        } else {
            self.squote = !inside;
        }
        self.pos += 1;
    }

    /// Handles a backslash (never called inside single quotes).
    fn escape(&mut self) -> Result<(), LexError> {
        let start = self.pos;
        let next = self.peek(1);
        let (byte, consumed) = match next {
            b' ' | b'\\' | b'#' | b'\'' | b'"' => (next, 2),
            b't' => (b'\t', 2),
            b'n' => (b'\n', 2),
            b'r' => (b'\r', 2),
            b'$' if self.dquote => (b'$', 2),
            b'x' => match (hex_val(self.peek(2)), hex_val(self.peek(3))) {
                (Some(h), Some(l)) => ((h << 4) | l, 4),
                _ => return Err(LexError::BadHex(start + 1)),
            },
            // Not an escape sequence: the backslash is kept and the next
            // character is read normally.
            _ => (b'\\', 1),
        };
        self.emit(byte);
        self.pos += consumed;
        Ok(())
    }

    /// Expands `$NAME`, `${NAME}`, `${NAME-default}` or `${NAME[*]}` (inside
    /// double quotes only).
    fn variable(&mut self) -> Result<(), LexError> {
        self.pos += 1;
        let brace_at = (self.peek(0) == b'{').then_some(self.pos);
        if brace_at.is_some() {
            self.pos += 1;
        }
        let name_start = self.pos;
        let first = self.peek(0);
        if !(first.is_ascii_alphabetic() || first == b'_' || first == b'.') {
            return Err(LexError::BadVarName(self.pos + 1));
        }
        if first == b'.' {
            self.pos += 1;
        }
        while self.peek(0).is_ascii_alphanumeric() || self.peek(0) == b'_' {
            self.pos += 1;
        }
        let name = String::from_utf8_lossy(&self.line[name_start..self.pos]).into_owned();
        let mut value = (self.env)(&name);

        let mut word_expand = false;
        if let Some(brace) = brace_at {
            if self.peek(0) == b'[' {
                let at = self.pos;
                if self.peek(1) != b'*' || self.peek(2) != b']' {
                    return Err(LexError::BadExpansion(at + 1));
                }
                word_expand = true;
                self.pos += 3;
            }
            if self.peek(0) == b'-' {
                let dflt_start = self.pos + 1;
                let len = self.line[dflt_start.min(self.line.len())..]
                    .iter()
                    .position(|&b| b == b'}')
                    .ok_or(LexError::UnmatchedBrace(brace + 1))?;
                if value.is_none() {
                    let raw = &self.line[dflt_start..dflt_start + len];
                    value = Some(String::from_utf8_lossy(raw).into_owned());
                }
                self.pos = dflt_start + len;
            }
            if self.peek(0) != b'}' {
                return Err(LexError::UnmatchedBrace(brace + 1));
            }
            self.pos += 1;
        }

        if word_expand {
            // An empty expansion must not turn the surrounding quotes into a word.
            self.empty_quote = false;
        }
        match value {
            Some(v) => self.emit_value(&v, word_expand),
            // An unset variable still counts as a (possibly empty) argument.
            None if !word_expand => self.words.open(),
            None => {}
        }
        Ok(())
    }

    fn emit_value(&mut self, value: &str, word_expand: bool) {
        let mut bytes = value.bytes().peekable();
        while let Some(b) = bytes.next() {
            if word_expand && is_space(b) {
                self.words.close();
                while bytes.peek().is_some_and(|&n| is_space(n)) {
                    bytes.next();
                }
            } else {
                self.emit(b);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn split(line: &str) -> Vec<String> {
        split_line(line, &no_env).unwrap_or_else(|e| panic!("{line:?}: {e}"))
    }

    fn split_env(line: &str) -> Vec<String> {
        let env = |name: &str| match name {
            "HOST" => Some("10.0.0.1".to_string()),
            "LIST" => Some("a  b c".to_string()),
            "EMPTY" => Some(String::new()),
            _ => None,
        };
        split_line(line, &env).unwrap_or_else(|e| panic!("{line:?}: {e}"))
    }

    #[test]
    fn plain_words_and_blanks() {
        assert_eq!(
            split("  server\ts1   1.2.3.4:80 check "),
            ["server", "s1", "1.2.3.4:80", "check"]
        );
        assert!(split("").is_empty());
        assert!(split("   \t ").is_empty());
    }

    #[test]
    fn comments() {
        assert_eq!(split("bind :80 # the port"), ["bind", ":80"]);
        assert_eq!(split("bind :80#x"), ["bind", ":80"]);
        assert!(split("# only a comment").is_empty());
        assert_eq!(split("a \\#b"), ["a", "#b"]);
        assert_eq!(split("a \"#b\" '#c'"), ["a", "#b", "#c"]);
    }

    #[test]
    fn crlf_and_nul_end_the_line() {
        assert_eq!(split("mode tcp\r"), ["mode", "tcp"]);
        assert_eq!(split("mode tcp\r garbage"), ["mode", "tcp"]);
        assert_eq!(split("mode tcp\0 garbage"), ["mode", "tcp"]);
    }

    #[test]
    fn double_quotes_with_escapes() {
        assert_eq!(
            split(r#"x "a b" "c\"d" "e\\f""#),
            ["x", "a b", "c\"d", "e\\f"]
        );
        assert_eq!(split(r#""\t\n\r\x41\x7e""#), ["\t\n\rA~"]);
        assert_eq!(split(r#""a\1""#), ["a\\1"]);
    }

    #[test]
    fn single_quotes_keep_everything() {
        assert_eq!(
            split(r#"'a \" b' '$HOME' '\x41'"#),
            ["a \\\" b", "$HOME", "\\x41"]
        );
    }

    #[test]
    fn glued_quotes_and_empty_words() {
        assert_eq!(split(r#"a"b c"'d e'f"#), ["ab cd ef"]);
        assert_eq!(split(r#"x "" y"#), ["x", "", "y"]);
        assert_eq!(split("x '' y"), ["x", "", "y"]);
        assert_eq!(split(r#"a"""#), ["a"]);
    }

    #[test]
    fn backslash_outside_quotes() {
        assert_eq!(split(r"a\ b c"), ["a b", "c"]);
        assert_eq!(split(r"a\\b"), ["a\\b"]);
        assert_eq!(split(r"\'x\'"), ["'x'"]);
        // `\$` is only an escape inside double quotes.
        assert_eq!(split(r"a\$b"), ["a\\$b"]);
        assert_eq!(split(r"end\"), ["end\\"]);
    }

    #[test]
    fn env_expansion_only_in_double_quotes() {
        assert_eq!(
            split_env(r#"server s "${HOST}:80""#),
            ["server", "s", "10.0.0.1:80"]
        );
        assert_eq!(split_env(r#""$HOST""#), ["10.0.0.1"]);
        assert_eq!(split_env("$HOST"), ["$HOST"]);
        assert_eq!(split_env(r#""\$HOST""#), ["$HOST"]);
        assert_eq!(split_env(r#""${NOPE-1.2.3.4}:1""#), ["1.2.3.4:1"]);
        assert_eq!(split_env(r#""${HOST-1.2.3.4}""#), ["10.0.0.1"]);
    }

    #[test]
    fn unset_variable_is_an_empty_word() {
        assert_eq!(split_env(r#"user "${NOPE}" x"#), ["user", "", "x"]);
        assert_eq!(split_env(r#"user "a${NOPE}b""#), ["user", "ab"]);
        assert_eq!(split_env(r#""${EMPTY}""#), [""]);
    }

    #[test]
    fn word_expansion() {
        assert_eq!(split_env(r#"x "${LIST[*]}" y"#), ["x", "a", "b", "c", "y"]);
        assert_eq!(split_env(r#"x "${NOPE[*]}" y"#), ["x", "y"]);
    }

    #[test]
    fn errors_carry_positions() {
        assert_eq!(
            split_line(r#"a "b"#, &no_env),
            Err(LexError::UnmatchedQuote(3))
        );
        assert_eq!(
            split_line("a 'b", &no_env),
            Err(LexError::UnmatchedQuote(3))
        );
        assert_eq!(
            split_line(r#""${X""#, &no_env),
            Err(LexError::UnmatchedBrace(3))
        );
        assert_eq!(split_line(r#""$1""#, &no_env), Err(LexError::BadVarName(3)));
        assert_eq!(split_line(r"a\xZ1", &no_env), Err(LexError::BadHex(2)));
        assert_eq!(
            split_line(r#""${X[x]}""#, &no_env),
            Err(LexError::BadExpansion(5))
        );
        assert_eq!(
            LexError::UnmatchedQuote(3).to_string(),
            "unmatched quote at position 3"
        );
    }

    #[test]
    fn non_ascii_is_kept() {
        assert_eq!(split("description \"café ü\""), ["description", "café ü"]);
    }
}
