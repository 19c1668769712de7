//! natscli's contexts (ADR-21): named connection settings in
//! `$XDG_CONFIG_HOME/nats/context/<name>.json` (`~/.config` by default), the selected one's
//! name in `nats/context.txt`. jetlog reads and writes the same files, so a user's existing
//! contexts work, and `jetlog context` manages them as `nats context` does.
//!
//! A context fills in what the command line (or the `NATS_*` variables) left unset. A context
//! that sets something jetlog's commands cannot honour (an `nsc` URL, a JetStream domain or
//! prefix, an inbox prefix, a user JWT, a Windows certificate store) is refused by name, never
//! half used.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context as _, Result};
use clap::{Args, Subcommand};
use serde::{Deserialize, Serialize};

use super::connect::CommonArgs;
use super::output;
use super::stream::confirm;

/// One context file. Every key is written, as natscli writes them (none is omitted when
/// empty), so a user editing the file sees them all.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct NatsContext {
    pub description: String,
    pub url: String,
    pub token: String,
    pub user: String,
    pub password: String,
    pub creds: String,
    pub nkey: String,
    pub cert: String,
    pub key: String,
    pub ca: String,
    pub nsc: String,
    pub jetstream_domain: String,
    pub jetstream_api_prefix: String,
    pub jetstream_event_prefix: String,
    pub inbox_prefix: String,
    pub user_jwt: String,
    pub tls_first: bool,
    pub windows_cert_store: String,
    pub windows_cert_match_by: String,
    pub windows_cert_match: String,
    pub windows_ca_certs_match: String,
}

impl NatsContext {
    /// The first key set to something jetlog's commands do not support.
    fn unsupported(&self) -> Option<&'static str> {
        [
            ("nsc", &self.nsc),
            ("jetstream_domain", &self.jetstream_domain),
            ("jetstream_api_prefix", &self.jetstream_api_prefix),
            ("jetstream_event_prefix", &self.jetstream_event_prefix),
            ("inbox_prefix", &self.inbox_prefix),
            ("user_jwt", &self.user_jwt),
            ("windows_cert_store", &self.windows_cert_store),
            ("windows_cert_match_by", &self.windows_cert_match_by),
            ("windows_cert_match", &self.windows_cert_match),
            ("windows_ca_certs_match", &self.windows_ca_certs_match),
        ]
        .into_iter()
        .find(|(_, value)| !value.is_empty())
        .map(|(key, _)| key)
    }
}

/// `jetlog context …`.
#[derive(Debug, Args)]
pub struct ContextArgs {
    #[command(subcommand)]
    action: ContextAction,
    #[command(flatten)]
    common: CommonArgs,
}

#[derive(Debug, Subcommand)]
enum ContextAction {
    /// Save a context from the connection flags given (-s, --user, --creds, --tlsca, …).
    #[command(visible_alias = "create")]
    Add {
        name: String,
        #[arg(long, default_value = "")]
        description: String,
        /// Make it the selected context as well.
        #[arg(long)]
        select: bool,
    },
    /// List the contexts; the selected one is marked.
    #[command(visible_alias = "list")]
    Ls,
    /// Make a context the one used when none is named.
    Select { name: String },
    /// Show a context's settings (a password or token as `*****`).
    #[command(visible_alias = "show")]
    Info { name: Option<String> },
    /// Delete a context.
    #[command(visible_alias = "delete")]
    Rm {
        name: String,
        /// Do not ask for confirmation.
        #[arg(short = 'f', long)]
        force: bool,
    },
}

/// `$XDG_CONFIG_HOME/nats`, else `~/.config/nats`.
fn nats_dir() -> Result<PathBuf> {
    let base = match std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => {
            let home = std::env::var_os("HOME").ok_or_else(|| anyhow!("HOME is not set"))?;
            PathBuf::from(home).join(".config")
        }
    };
    Ok(base.join("nats"))
}

fn context_path(dir: &Path, name: &str) -> Result<PathBuf> {
    let valid = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !name.starts_with('.');
    if !valid {
        bail!("invalid context name {name:?}: letters, digits, '-', '_' and '.' only");
    }
    Ok(dir.join("context").join(format!("{name}.json")))
}

fn selected(dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(dir.join("context.txt")).ok()?;
    let name = text.trim();
    (!name.is_empty()).then(|| name.to_string())
}

fn load(dir: &Path, name: &str) -> Result<NatsContext> {
    let path = context_path(dir, name)?;
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("unknown context {name:?} ({})", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("context {name:?} is not valid JSON"))
}

/// The connection flags with what the named context (`--context`), or else the selected
/// one, fills in where neither a flag nor a variable gave a value.
pub fn resolve(common: &CommonArgs) -> Result<CommonArgs> {
    let dir = nats_dir()?;
    let name = match (&common.context, selected(&dir)) {
        (Some(name), _) => name.clone(),
        (None, Some(name)) => name,
        (None, None) => return Ok(common.clone()),
    };
    let context = load(&dir, &name)?;
    if let Some(key) = context.unsupported() {
        bail!("context {name:?} sets {key}, which jetlog's commands do not support");
    }
    let text = |value: &str| (!value.is_empty()).then(|| value.to_string());
    let path = |value: &str| (!value.is_empty()).then(|| PathBuf::from(value));
    let mut out = common.clone();
    out.server = out.server.or_else(|| text(&context.url));
    let no_auth_flag = out.user.is_none() && out.password.is_none() && out.token.is_none();
    if no_auth_flag {
        out.user = text(&context.user);
        out.password = text(&context.password);
        out.token = text(&context.token);
    }
    out.creds = out.creds.or_else(|| path(&context.creds));
    out.nkey = out.nkey.or_else(|| path(&context.nkey));
    out.tlscert = out.tlscert.or_else(|| path(&context.cert));
    out.tlskey = out.tlskey.or_else(|| path(&context.key));
    out.tlsca = out.tlsca.or_else(|| path(&context.ca));
    out.tlsfirst |= context.tls_first;
    Ok(out)
}

/// Runs `jetlog context …`.
pub async fn run(args: ContextArgs) -> Result<()> {
    let dir = nats_dir()?;
    let common = &args.common;
    match args.action {
        ContextAction::Add {
            name,
            description,
            select,
        } => {
            let path = context_path(&dir, &name)?;
            let shown = |p: &Option<PathBuf>| {
                p.as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default()
            };
            let context = NatsContext {
                description,
                url: common.server.clone().unwrap_or_default(),
                token: common.token.clone().unwrap_or_default(),
                user: common.user.clone().unwrap_or_default(),
                password: common.password.clone().unwrap_or_default(),
                creds: shown(&common.creds),
                nkey: shown(&common.nkey),
                cert: shown(&common.tlscert),
                key: shown(&common.tlskey),
                ca: shown(&common.tlsca),
                tls_first: common.tlsfirst,
                ..NatsContext::default()
            };
            write(&path, &serde_json::to_vec_pretty(&context)?)?;
            if select {
                write(&dir.join("context.txt"), name.as_bytes())?;
            }
            output::line(format!("context {name} saved in {}", path.display()))
        }
        ContextAction::Ls => list(&dir, common.json),
        ContextAction::Select { name } => {
            load(&dir, &name)?;
            write(&dir.join("context.txt"), name.as_bytes())?;
            output::line(format!("context {name} selected"))
        }
        ContextAction::Info { name } => {
            let name = name
                .or_else(|| selected(&dir))
                .ok_or_else(|| anyhow!("no context named and none selected"))?;
            let mut context = load(&dir, &name)?;
            for secret in [&mut context.password, &mut context.token] {
                if !secret.is_empty() {
                    *secret = "*****".to_string();
                }
            }
            if common.json {
                return output::json_pretty(&context);
            }
            let mut rows = vec![("Name", name.clone())];
            let value = serde_json::to_value(&context)?;
            let fields: Vec<(String, String)> = value
                .as_object()
                .map(|map| {
                    map.iter()
                        .filter(|(_, v)| !matches!(v, serde_json::Value::String(s) if s.is_empty()))
                        .filter(|(_, v)| !matches!(v, serde_json::Value::Bool(false)))
                        .map(|(k, v)| (k.clone(), v.as_str().map_or(v.to_string(), str::to_string)))
                        .collect()
                })
                .unwrap_or_default();
            rows.extend(fields.iter().map(|(k, v)| (k.as_str(), v.clone())));
            output::print_table(&output::properties(rows))
        }
        ContextAction::Rm { name, force } => {
            let path = context_path(&dir, &name)?;
            load(&dir, &name)?;
            confirm(&format!("delete context {name}"), force)?;
            std::fs::remove_file(&path)
                .with_context(|| format!("cannot delete {}", path.display()))?;
            if selected(&dir).as_deref() == Some(name.as_str()) {
                let _ = std::fs::remove_file(dir.join("context.txt"));
            }
            output::line(format!("context {name} deleted"))
        }
    }
}

fn list(dir: &Path, json: bool) -> Result<()> {
    let current = selected(dir);
    let mut names: Vec<String> = std::fs::read_dir(dir.join("context"))
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    name.strip_suffix(".json").map(str::to_string)
                })
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    if json {
        return output::json_pretty(&names);
    }
    if names.is_empty() {
        return output::line("no contexts defined");
    }
    let mut table = output::table(&["Name", "Description"]);
    for name in names {
        let description = load(dir, &name)
            .map(|c| c.description)
            .unwrap_or_else(|e| format!("(unreadable: {e})"));
        let marked = match current.as_deref() == Some(name.as_str()) {
            true => format!("{name}*"),
            false => name,
        };
        table.add_row(vec![marked, description]);
    }
    output::print_table(&table)
}

/// Writes a file whole, creating its directory.
fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    std::fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))
}
