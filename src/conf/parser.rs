//! The structure of the format: entries, blocks, arrays, includes and variables.
//!
//! Blocks being read form a stack of scopes, so `$NAME` can look through every enclosing block
//! for an earlier `NAME` (innermost first), then the environment, as nats-server's
//! `lookupVariable` does. An included file is read with scopes of its own (it cannot see the
//! includer's variables, as in nats-server) and its entries are spliced into the block that
//! holds the `include`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::lexer::{Cursor, Scalar};
use super::{
    read_limited, ConfError, Document, Entry, Item, Map, Position, Value, MAX_FILE_BYTES,
    MAX_INCLUDE_DEPTH, MAX_NESTING_DEPTH,
};

/// How deeply environment variables may refer to further variables (`A=$B`), so `A=$A`
/// ends in an error instead of endless recursion.
const MAX_ENVIRONMENT_DEPTH: usize = 8;

/// Reads and parses a configuration file and the files it includes.
pub fn parse_file(path: &Path) -> Result<Document, ConfError> {
    let mut parser = Parser::default();
    let text = read_file(path)?;
    parser.includes.push(canonical(path));
    parser.parse_root(&text, path)?;
    Ok(parser.finish())
}

/// Parses configuration text; `file` names it in errors and anchors relative includes.
pub fn parse_str(text: &str, file: &Path) -> Result<Document, ConfError> {
    let mut parser = Parser::default();
    parser.parse_root(text, file)?;
    Ok(parser.finish())
}

fn read_file(path: &Path) -> Result<String, ConfError> {
    let text = read_limited(path).map_err(|source| ConfError::Read {
        file: path.to_path_buf(),
        source,
    })?;
    if text.len() as u64 > MAX_FILE_BYTES {
        return Err(ConfError::TooLarge {
            file: path.to_path_buf(),
        });
    }
    Ok(text)
}

fn canonical(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

/// Whether nothing but white space and comments follows the character at the cursor.
fn only_blank_after_next(cursor: &Cursor) -> bool {
    let mut ahead = cursor.clone();
    ahead.bump();
    ahead.skip_blank();
    ahead.peek().is_none()
}

#[derive(Default)]
struct Parser {
    /// Blocks being read, outermost first; the last is where entries go.
    scopes: Vec<Map>,
    /// Canonical paths of the files being read, to refuse an include cycle.
    includes: Vec<PathBuf>,
    used_variables: Vec<String>,
    /// Blocks and arrays open right now, bounded by `MAX_NESTING_DEPTH`.
    nesting: usize,
    environment_depth: usize,
}

impl Parser {
    fn finish(mut self) -> Document {
        Document {
            root: self.scopes.pop().unwrap_or_default(),
            used_variables: self.used_variables,
        }
    }

    fn parse_root(&mut self, text: &str, file: &Path) -> Result<(), ConfError> {
        let mut cursor = Cursor::new(text, Arc::new(file.to_path_buf()));
        self.scopes.push(Map::default());
        cursor.skip_blank();
        // nats-server accepts a whole file wrapped in braces, as JSON would be.
        if cursor.peek() == Some('{') {
            let open = cursor.position();
            cursor.bump();
            self.parse_entries(&mut cursor, Some(open))?;
            cursor.skip_blank();
            if cursor.peek().is_some() {
                return Err(cursor.error("unexpected text after the closing '}'"));
            }
            return Ok(());
        }
        self.parse_entries(&mut cursor, None)
    }

    /// Reads entries into the innermost scope until the end of the file, or until the `}`
    /// that closes the block opened at `open`.
    fn parse_entries(
        &mut self,
        cursor: &mut Cursor,
        open: Option<Position>,
    ) -> Result<(), ConfError> {
        loop {
            cursor.skip_blank();
            match cursor.peek() {
                None => {
                    return match open {
                        Some(at) => Err(cursor.error_at(at, "block is never closed: expected '}'")),
                        None => Ok(()),
                    }
                }
                Some('}') if open.is_some() => {
                    cursor.bump();
                    return Ok(());
                }
                Some('}' | ']') if open.is_none() && only_blank_after_next(cursor) => {
                    // nats-server's lexer reads one stray closer at the very end of a file
                    // as a key without a value and drops it, so files that have one (a
                    // leftover of an edit) work there and must work here.
                    return Ok(());
                }
                Some(c @ ('}' | ']' | ',' | ';')) => {
                    return Err(cursor.error(format!("unexpected '{c}'")))
                }
                Some(c @ ('=' | ':')) => {
                    return Err(
                        cursor.error(format!("unexpected key separator '{c}' without a key"))
                    )
                }
                Some(_) => {}
            }
            let key = self.parse_entry(cursor)?;
            cursor.skip_inline_space();
            match cursor.peek() {
                None | Some('\n' | '\r') => {}
                Some(';' | ',') => {
                    cursor.bump();
                }
                Some('}') if open.is_some() => {}
                // At the top level nats-server also ends a value with a `}` on its line
                // (`jetstream { ... }}`), and drops the brace.
                Some('}') => {
                    cursor.bump();
                }
                Some(_) if cursor.at_comment() => {}
                Some(c) => {
                    return Err(cursor.error(format!(
                        "expected a new line, ';' or ',' after the value of {key:?}, found '{c}'"
                    )))
                }
            }
        }
    }

    /// Reads one `key value` (or an include) into the innermost scope; returns the key.
    fn parse_entry(&mut self, cursor: &mut Cursor) -> Result<String, ConfError> {
        let key_position = cursor.position();
        let (key, quoted) = cursor.read_key()?;
        if !quoted
            && key.eq_ignore_ascii_case("include")
            && matches!(cursor.peek(), Some(' ' | '\t'))
        {
            self.include(cursor, key_position)?;
            return Ok(key);
        }
        cursor.skip_inline_space();
        if matches!(cursor.peek(), Some('=' | ':')) {
            cursor.bump();
            cursor.skip_inline_space();
        } else {
            // Without a separator nats-server looks for the value past new lines, so a block
            // may open on the line after its key (`websocket` then `{`). A comment there is
            // still an error, as it is there.
            while matches!(cursor.peek(), Some(c) if c.is_whitespace()) {
                cursor.bump();
            }
        }
        let item = self.parse_value(cursor, &key)?;
        self.current().entries.push(Entry {
            key: key.clone(),
            key_position,
            item,
        });
        Ok(key)
    }

    fn current(&mut self) -> &mut Map {
        if self.scopes.is_empty() {
            self.scopes.push(Map::default());
        }
        let last = self.scopes.len() - 1;
        &mut self.scopes[last]
    }

    fn parse_value(&mut self, cursor: &mut Cursor, key: &str) -> Result<Item, ConfError> {
        let position = cursor.position();
        let item = |value, literal| Item {
            value,
            position: position.clone(),
            literal,
        };
        match cursor.peek() {
            None | Some('\n' | '\r') => Err(cursor.error(format!("expected a value for {key:?}"))),
            Some(_) if cursor.at_comment() => {
                Err(cursor.error(format!("expected a value for {key:?}")))
            }
            Some('{') => {
                self.enter(cursor)?;
                cursor.bump();
                self.scopes.push(Map::default());
                let result = self.parse_entries(cursor, Some(position.clone()));
                let map = self.scopes.pop().unwrap_or_default();
                self.nesting -= 1;
                result?;
                Ok(item(Value::Map(map), None))
            }
            Some('[') => {
                self.enter(cursor)?;
                let result = self.parse_array(cursor, key);
                self.nesting -= 1;
                Ok(item(Value::Array(result?), None))
            }
            Some('(') => Ok(item(Value::String(cursor.read_block_string()?), None)),
            Some(_) => match cursor.read_scalar()? {
                Scalar::String { text, quoted } => {
                    let literal = (!quoted).then(|| text.clone());
                    Ok(item(Value::String(text), literal))
                }
                Scalar::Integer { value, literal } => {
                    Ok(item(Value::Integer(value), Some(literal)))
                }
                Scalar::Float { value, literal } => Ok(item(Value::Float(value), Some(literal))),
                Scalar::Bool { value, literal } => Ok(item(Value::Bool(value), Some(literal))),
                Scalar::Variable(name) => self.resolve(&name, position),
            },
        }
    }

    fn enter(&mut self, cursor: &Cursor) -> Result<(), ConfError> {
        if self.nesting >= MAX_NESTING_DEPTH {
            return Err(cursor.error(format!(
                "blocks and arrays nest deeper than {MAX_NESTING_DEPTH}"
            )));
        }
        self.nesting += 1;
        Ok(())
    }

    fn parse_array(&mut self, cursor: &mut Cursor, key: &str) -> Result<Vec<Item>, ConfError> {
        let open = cursor.position();
        cursor.bump();
        let mut items = Vec::new();
        loop {
            cursor.skip_blank();
            match cursor.peek() {
                None => return Err(cursor.error_at(open, "array is never closed: expected ']'")),
                Some(']') => {
                    cursor.bump();
                    return Ok(items);
                }
                Some(',') => return Err(cursor.error("unexpected ',' in an array")),
                Some(_) => {}
            }
            items.push(self.parse_value(cursor, key)?);
            cursor.skip_inline_space();
            match cursor.peek() {
                Some(',') => {
                    cursor.bump();
                }
                Some(']' | '\n' | '\r') | None => {}
                Some(_) if cursor.at_comment() => {}
                Some(c) => {
                    return Err(
                        cursor.error(format!("expected ',' or ']' in an array, found '{c}'"))
                    )
                }
            }
        }
    }

    /// `$NAME`: the last `NAME` of the innermost enclosing block that has one, else the
    /// environment variable, read as a value of this format. The value takes the reference's
    /// position, so errors about it point where it is used.
    fn resolve(&mut self, name: &str, at: Position) -> Result<Item, ConfError> {
        let found = self.scopes.iter().rev().find_map(|scope| scope.get(name));
        if let Some(entry) = found {
            let mut item = entry.item.clone();
            item.position = at;
            if !self.used_variables.iter().any(|v| v == name) {
                self.used_variables.push(name.to_string());
            }
            return Ok(item);
        }
        let Ok(text) = std::env::var(name) else {
            return Err(ConfError::UndefinedVariable {
                at,
                name: name.to_string(),
            });
        };
        if self.environment_depth >= MAX_ENVIRONMENT_DEPTH {
            return Err(ConfError::Syntax {
                at,
                message: format!("environment variable {name} refers to variables too deeply"),
            });
        }
        let mut inner = Parser {
            environment_depth: self.environment_depth + 1,
            ..Parser::default()
        };
        let source = PathBuf::from(format!("${name}"));
        inner
            .parse_root(&format!("value: {text}"), &source)
            .map_err(|err| ConfError::Syntax {
                at: at.clone(),
                message: format!("environment variable {name}: {err}"),
            })?;
        let document = inner.finish();
        let mut item = document
            .root
            .get("value")
            .map(|entry| entry.item.clone())
            .ok_or_else(|| ConfError::Syntax {
                at: at.clone(),
                message: format!("environment variable {name} holds no value"),
            })?;
        item.position = at;
        Ok(item)
    }

    /// `include PATH`: parses the file (relative to this one's directory) with scopes of its
    /// own and splices its entries into the current block.
    fn include(&mut self, cursor: &mut Cursor, at: Position) -> Result<(), ConfError> {
        cursor.skip_inline_space();
        let relative = match cursor.peek() {
            Some('"' | '\'') => match cursor.read_scalar()? {
                Scalar::String { text, .. } => text,
                _ => return Err(cursor.error("expected the path of the file to include")),
            },
            Some(c) if c == '\n' || c == '\r' => {
                return Err(cursor.error("expected the path of the file to include"))
            }
            None => return Err(cursor.error("expected the path of the file to include")),
            Some(_) => {
                let mut path = String::new();
                while let Some(c) = cursor
                    .peek()
                    .filter(|c| !c.is_whitespace() && *c != ';' && *c != '}')
                {
                    path.push(c);
                    cursor.bump();
                }
                path
            }
        };
        let base = cursor
            .file()
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let path = base.join(&relative);
        let key = canonical(&path);
        if self.includes.contains(&key) {
            return Err(ConfError::IncludeCycle { at, path });
        }
        if self.includes.len() >= MAX_INCLUDE_DEPTH {
            return Err(ConfError::IncludeTooDeep { at });
        }
        let text = read_limited(&path).map_err(|source| ConfError::Include {
            at: at.clone(),
            path: path.clone(),
            source,
        })?;
        if text.len() as u64 > MAX_FILE_BYTES {
            return Err(ConfError::TooLarge { file: path });
        }
        let outer_scopes = std::mem::take(&mut self.scopes);
        let outer_nesting = std::mem::replace(&mut self.nesting, 0);
        self.includes.push(key);
        let result = self.parse_root(&text, &path);
        self.includes.pop();
        self.nesting = outer_nesting;
        let included = std::mem::replace(&mut self.scopes, outer_scopes);
        result?;
        for map in included {
            self.current().entries.extend(map.entries);
        }
        Ok(())
    }
}
