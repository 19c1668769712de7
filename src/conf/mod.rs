//! nats-server's configuration file format, read into a tree of positioned values.
//!
//! The format (nats-server `conf/lex.go`, `conf/parse.go`) is a relaxed JSON: `key: value`,
//! `key = value` and `key value` all assign; `#` and `//` start comments; `{}` nests a block,
//! `[]` an array; strings may be quoted or bare; `64MB` is a size, `true`/`yes`/`on` are
//! booleans; `include other.conf` splices another file in; `$NAME` refers to an earlier key of an
//! enclosing block, else to the environment. This module knows the format only: what the keys
//! mean to the server is decided by the caller (`server::config_file`). Every value carries the
//! file, line and column it came from, so a caller can name them in its own errors.

mod lexer;
mod parser;
mod units;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use parser::{parse_file, parse_str};
pub use units::parse_duration;

/// Largest configuration file read, so a wrong path (a device, a log) cannot exhaust memory.
pub const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;
/// How deeply files may include each other; a cycle is caught before this, by path.
pub const MAX_INCLUDE_DEPTH: usize = 16;
/// How deeply blocks and arrays may nest; the parser recurses once per level.
pub const MAX_NESTING_DEPTH: usize = 64;

/// Where a key or value starts: a file and a 1-based line and column (in characters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    /// Shared by every position of one file, since a file has thousands of them.
    pub file: Arc<PathBuf>,
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
    }
}

/// A value as written in the file.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    String(String),
    /// Sizes are already multiplied out: `64MB` is 67108864.
    Integer(i64),
    Float(f64),
    Bool(bool),
    Map(Map),
    Array(Vec<Item>),
}

impl Value {
    /// The kind of value, for error messages ("expected a duration, found a block").
    pub fn kind(&self) -> &'static str {
        match self {
            Self::String(_) => "a string",
            Self::Integer(_) => "an integer",
            Self::Float(_) => "a number with a fraction",
            Self::Bool(_) => "a boolean",
            Self::Map(_) => "a block",
            Self::Array(_) => "an array",
        }
    }
}

/// A value with where it was written and, for unquoted scalars, the text as written.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub value: Value,
    pub position: Position,
    /// The source text of an unquoted number or word. It lets a caller read `2m` as two minutes
    /// where the format itself reads two million (nats-server's `m` size suffix).
    pub literal: Option<String>,
}

/// One `key: value` of a block, with the key's own position (where errors about it point).
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub key: String,
    pub key_position: Position,
    pub item: Item,
}

/// A block's entries in file order. A key given twice keeps both; lookups take the last, as
/// nats-server's map assignment does.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Map {
    pub entries: Vec<Entry>,
}

impl Map {
    /// The last entry with this key.
    pub fn get(&self, key: &str) -> Option<&Entry> {
        self.entries.iter().rev().find(|e| e.key == key)
    }

    /// The entries to act on: the last one of each key, in the order of first appearance.
    pub fn effective(&self) -> impl Iterator<Item = &Entry> {
        self.entries
            .iter()
            .enumerate()
            .filter(|(i, e)| !self.entries[i + 1..].iter().any(|later| later.key == e.key))
            .map(|(_, e)| e)
    }
}

/// A parsed file with its includes spliced in.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Document {
    pub root: Map,
    /// Keys that some `$NAME` referred to. nats-server does not report such keys as unknown,
    /// since defining a variable is the only way to write one.
    pub used_variables: Vec<String>,
}

/// What can be wrong with a configuration file. Every variant names the file, and all but the
/// unreadable file name a line and column too.
#[derive(Debug, thiserror::Error)]
pub enum ConfError {
    #[error("{file}: cannot read the configuration file: {source}", file = file.display())]
    Read {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}: the configuration file is larger than {MAX_FILE_BYTES} bytes", file = file.display())]
    TooLarge { file: PathBuf },
    #[error("{at}: {message}")]
    Syntax { at: Position, message: String },
    #[error(
        "{at}: variable ${name} is defined neither earlier in the file nor in the environment"
    )]
    UndefinedVariable { at: Position, name: String },
    #[error("{at}: include cycle: {} is already being read", path.display())]
    IncludeCycle { at: Position, path: PathBuf },
    #[error("{at}: includes nest deeper than {MAX_INCLUDE_DEPTH} files")]
    IncludeTooDeep { at: Position },
    #[error("{at}: cannot read included file {}: {source}", path.display())]
    Include {
        at: Position,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl ConfError {
    /// Where the error is, when it is at a place in a file.
    pub fn position(&self) -> Option<&Position> {
        match self {
            Self::Read { .. } | Self::TooLarge { .. } => None,
            Self::Syntax { at, .. }
            | Self::UndefinedVariable { at, .. }
            | Self::IncludeCycle { at, .. }
            | Self::IncludeTooDeep { at }
            | Self::Include { at, .. } => Some(at),
        }
    }
}

/// Reads a file whole, refusing one larger than `MAX_FILE_BYTES`.
fn read_limited(path: &Path) -> Result<String, std::io::Error> {
    use std::io::Read;
    let file = std::fs::File::open(path)?;
    let mut text = String::new();
    file.take(MAX_FILE_BYTES + 1).read_to_string(&mut text)?;
    Ok(text)
}

#[cfg(test)]
mod tests;
