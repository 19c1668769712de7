//! The character level of the format: comments, keys and scalar values, with line and column.
//!
//! Token rules follow nats-server's `conf/lex.go`: a bare word ends at white space, a new
//! line, `;`, `,`, `]` or `}`; a word made of digits is an integer, with an optional size suffix
//! (`k`, `mb`, `gib`, …) when the suffix ends the word; digits with one `.` are a float, with more
//! dots (an address such as `127.0.0.1:4222`) a string; any other word that starts with digits
//! (`30s`) is a string. Double-quoted strings take the escapes `\t \n \r \" \\ \xHH`;
//! single-quoted strings are raw; `(` starts a block string that ends at a `)` alone on a line.

use std::path::PathBuf;
use std::sync::Arc;

use super::units::size_multiplier;
use super::{ConfError, Position};

/// A scalar as the lexer reads it; the parser resolves variables.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Scalar {
    /// `quoted` is false for a bare word, whose text is also its literal.
    String {
        text: String,
        quoted: bool,
    },
    Integer {
        value: i64,
        literal: String,
    },
    Float {
        value: f64,
        literal: String,
    },
    Bool {
        value: bool,
        literal: String,
    },
    /// `$NAME`, without the dollar.
    Variable(String),
}

/// A position in one file's text. Columns count characters, not bytes, as editors do.
#[derive(Clone)]
pub(super) struct Cursor<'a> {
    text: &'a str,
    offset: usize,
    line: usize,
    column: usize,
    file: Arc<PathBuf>,
}

fn ends_bare_word(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | ';' | ',' | ']' | '}')
}

impl<'a> Cursor<'a> {
    pub(super) fn new(text: &'a str, file: Arc<PathBuf>) -> Self {
        Self {
            text,
            offset: 0,
            line: 1,
            column: 1,
            file,
        }
    }

    pub(super) fn file(&self) -> &Arc<PathBuf> {
        &self.file
    }

    pub(super) fn position(&self) -> Position {
        Position {
            file: self.file.clone(),
            line: self.line,
            column: self.column,
        }
    }

    pub(super) fn error_at(&self, at: Position, message: impl Into<String>) -> ConfError {
        let _ = self;
        ConfError::Syntax {
            at,
            message: message.into(),
        }
    }

    pub(super) fn error(&self, message: impl Into<String>) -> ConfError {
        self.error_at(self.position(), message)
    }

    pub(super) fn peek(&self) -> Option<char> {
        self.text[self.offset..].chars().next()
    }

    fn peek_second(&self) -> Option<char> {
        self.text[self.offset..].chars().nth(1)
    }

    pub(super) fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.offset += c.len_utf8();
        if c == '\n' {
            self.line += 1;
            self.column = 1;
        } else {
            self.column += 1;
        }
        Some(c)
    }

    pub(super) fn at_comment(&self) -> bool {
        self.peek() == Some('#') || (self.peek() == Some('/') && self.peek_second() == Some('/'))
    }

    /// Skips spaces and tabs, but not new lines, which end values.
    pub(super) fn skip_inline_space(&mut self) {
        while matches!(self.peek(), Some(' ' | '\t')) {
            self.bump();
        }
    }

    /// Skips a comment up to (not including) the end of its line.
    pub(super) fn skip_comment(&mut self) {
        while !matches!(self.peek(), None | Some('\n' | '\r')) {
            self.bump();
        }
    }

    /// Skips white space, new lines and comments between entries or array elements.
    pub(super) fn skip_blank(&mut self) {
        loop {
            match self.peek() {
                Some(c) if c.is_whitespace() => {
                    self.bump();
                }
                Some(_) if self.at_comment() => self.skip_comment(),
                _ => return,
            }
        }
    }

    /// Reads a key: quoted, or bare up to white space or a separator. Returns it and whether
    /// it was quoted (a quoted `include` is an ordinary key).
    pub(super) fn read_key(&mut self) -> Result<(String, bool), ConfError> {
        if let Some(quote @ ('"' | '\'')) = self.peek() {
            let start = self.position();
            self.bump();
            let mut key = String::new();
            loop {
                match self.bump() {
                    Some(c) if c == quote => return Ok((key, true)),
                    Some(c) => key.push(c),
                    None => return Err(self.error_at(start, "unterminated quoted key")),
                }
            }
        }
        let mut key = String::new();
        while let Some(c) = self.peek() {
            if c.is_whitespace() || matches!(c, '=' | ':') {
                break;
            }
            if matches!(c, '{' | '}' | '[' | ']' | ',' | ';') {
                return Err(self.error(format!("unexpected '{c}' in a key")));
            }
            key.push(c);
            self.bump();
        }
        if key.is_empty() {
            return Err(self.error("expected a key"));
        }
        Ok((key, false))
    }

    /// Reads a scalar value (the cursor is at its first character, which is not a bracket).
    pub(super) fn read_scalar(&mut self) -> Result<Scalar, ConfError> {
        match self.peek() {
            Some('"') => self.read_double_quoted(),
            Some('\'') => self.read_single_quoted(),
            Some(c) if c.is_ascii_digit() || c == '-' => self.read_number_or_word(),
            _ => self.read_word(String::new()),
        }
    }

    fn read_double_quoted(&mut self) -> Result<Scalar, ConfError> {
        let start = self.position();
        self.bump();
        let mut text = String::new();
        loop {
            match self.bump() {
                Some('"') => return Ok(Scalar::String { text, quoted: true }),
                Some('\\') => text.push(self.read_escape()?),
                Some(c) => text.push(c),
                None => return Err(self.error_at(start, "unterminated string")),
            }
        }
    }

    fn read_single_quoted(&mut self) -> Result<Scalar, ConfError> {
        let start = self.position();
        self.bump();
        let mut text = String::new();
        loop {
            match self.bump() {
                Some('\'') => return Ok(Scalar::String { text, quoted: true }),
                Some(c) => text.push(c),
                None => return Err(self.error_at(start, "unterminated string")),
            }
        }
    }

    /// Reads what follows a backslash.
    fn read_escape(&mut self) -> Result<char, ConfError> {
        let at = self.position();
        match self.bump() {
            Some('t') => Ok('\t'),
            Some('n') => Ok('\n'),
            Some('r') => Ok('\r'),
            Some('"') => Ok('"'),
            Some('\\') => Ok('\\'),
            Some('x') => {
                let hex: String = [self.bump(), self.bump()].into_iter().flatten().collect();
                match u8::from_str_radix(&hex, 16) {
                    Ok(byte) if byte.is_ascii() && hex.len() == 2 => Ok(char::from(byte)),
                    _ => Err(self.error_at(
                        at,
                        format!("expected two hexadecimal digits of an ASCII byte after \\x, found {hex:?}"),
                    )),
                }
            }
            other => Err(self.error_at(
                at,
                format!(
                    "invalid escape {:?}: only \\xHH, \\t, \\n, \\r, \\\" and \\\\ are allowed",
                    other.map(String::from).unwrap_or_default()
                ),
            )),
        }
    }

    /// Reads a bare word (after `prefix`, already consumed) up to its end: a boolean, a
    /// variable reference or a string.
    fn read_word(&mut self, mut text: String) -> Result<Scalar, ConfError> {
        let mut escaped = false;
        while let Some(c) = self.peek() {
            if ends_bare_word(c) {
                break;
            }
            self.bump();
            if c == '\\' {
                text.push(self.read_escape()?);
                escaped = true;
            } else {
                text.push(c);
            }
        }
        if escaped {
            return Ok(Scalar::String {
                text,
                quoted: false,
            });
        }
        let lower = text.to_ascii_lowercase();
        if let Some(value) = match lower.as_str() {
            "true" | "yes" | "on" => Some(true),
            "false" | "no" | "off" => Some(false),
            _ => None,
        } {
            return Ok(Scalar::Bool {
                value,
                literal: text,
            });
        }
        // A bcrypt hash (`$2a$…`) is a password, not a variable (nats-server `bcryptPrefix`).
        match text.strip_prefix('$') {
            Some(name) if !name.starts_with("2a$") => {
                if name.is_empty() {
                    return Err(self.error("expected a variable name after '$'"));
                }
                Ok(Scalar::Variable(name.to_string()))
            }
            _ => Ok(Scalar::String {
                text,
                quoted: false,
            }),
        }
    }

    /// Reads a word that starts with a digit or `-`: an integer (with a size suffix), a float,
    /// or, when it turns out to be neither, a string such as `30s` or `127.0.0.1:4222`.
    fn read_number_or_word(&mut self) -> Result<Scalar, ConfError> {
        let start = self.position();
        let mut text = String::new();
        if self.peek() == Some('-') {
            text.push('-');
            self.bump();
            if !self.peek().is_some_and(|c| c.is_ascii_digit()) {
                return Err(self.error("expected a digit after '-'"));
            }
        }
        while let Some(c) = self.peek().filter(char::is_ascii_digit) {
            text.push(c);
            self.bump();
        }
        let digits_end = text.len();
        let mut dots = 0;
        while self.peek() == Some('.') && self.peek_second().is_some_and(|c| c.is_ascii_digit()) {
            dots += 1;
            text.push('.');
            self.bump();
            while let Some(c) = self.peek().filter(|c| c.is_ascii_digit() || *c == ':') {
                text.push(c);
                self.bump();
            }
        }
        while let Some(c) = self.peek().filter(|c| c.is_ascii_alphabetic()) {
            text.push(c);
            self.bump();
        }
        if !self.peek().is_none_or(ends_bare_word) {
            return self.read_word(text);
        }
        let (number, suffix) = text.split_at(digits_end);
        if dots == 0 {
            let value: i64 = number.parse().map_err(|_| {
                self.error_at(start.clone(), format!("integer {text} is out of range"))
            })?;
            if suffix.is_empty() {
                return Ok(Scalar::Integer {
                    value,
                    literal: text,
                });
            }
            if let Some(multiplier) = size_multiplier(suffix) {
                let value = value
                    .checked_mul(multiplier)
                    .ok_or_else(|| self.error_at(start, format!("size {text} is out of range")))?;
                return Ok(Scalar::Integer {
                    value,
                    literal: text,
                });
            }
        } else if dots == 1 && !text.contains(':') && !text.ends_with(|c: char| c.is_alphabetic()) {
            if let Ok(value) = text.parse() {
                return Ok(Scalar::Float {
                    value,
                    literal: text,
                });
            }
        }
        Ok(Scalar::String {
            text,
            quoted: false,
        })
    }

    /// Reads a block string: after `(`, everything up to a `)` alone on its own line.
    pub(super) fn read_block_string(&mut self) -> Result<String, ConfError> {
        let start = self.position();
        self.bump();
        let body_start = self.offset;
        loop {
            match self.bump() {
                None => {
                    return Err(self.error_at(
                        start,
                        "unterminated block string: expected ')' alone on a line",
                    ))
                }
                Some('\n') if self.peek() == Some(')') => {
                    let body_end = self.offset - 1;
                    let after = self.text[self.offset + 1..].chars().next();
                    if matches!(after, None | Some('\n' | '\r')) {
                        let body = self.text[body_start..body_end].to_string();
                        self.bump();
                        return Ok(body);
                    }
                }
                Some(_) => {}
            }
        }
    }
}
