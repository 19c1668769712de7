//! Operator mode: accounts and users are not listed in the configuration but issued as JWTs.
//! The configuration names the trusted operator(s) and a resolver that holds the account
//! JWTs (`MEMORY` with `resolver_preload`, or a directory); a user connects with its own JWT
//! and proves it holds the user's key by signing the connection's nonce (a `.creds` file has
//! both). Every JWT is checked up the chain: user by its account (or one of the account's
//! signing keys), account by the operator (or one of its signing keys).

mod account_claims;
mod users;

pub use account_claims::AccountAuth;
pub use users::UserGrant;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use super::accounts::settings::AccountSettings;
use super::jwt::{self, AccountClaims, OperatorClaims};

/// Where account JWTs come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResolverConfig {
    /// `resolver: MEMORY` with the JWTs of `resolver_preload`.
    Memory { preload: Vec<String> },
    /// `resolver { type: full, dir, allow_delete }`: one `<account>.jwt` file per account,
    /// updated through `$SYS.REQ.CLAIMS.UPDATE`.
    Dir { dir: PathBuf, allow_delete: bool },
}

/// `operator` (JWTs, already read from their files) and `resolver`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorConfig {
    pub operators: Vec<String>,
    pub resolver: ResolverConfig,
}

/// The trusted operators and what users of each account are checked against.
#[derive(Debug)]
pub struct Operator {
    /// Keys that may issue accounts: each operator's own and its signing keys.
    trusted: Vec<String>,
    /// The system account an operator names, if any.
    pub system_account: Option<String>,
    pub resolver: ResolverConfig,
    accounts: RwLock<HashMap<String, AccountAuth>>,
}

impl Operator {
    /// Verifies the operators' JWTs (each self-signed, or by one of its signing keys).
    pub fn trust(config: &OperatorConfig) -> Result<Self, String> {
        let mut trusted = Vec::new();
        let mut system_account = None;
        for token in &config.operators {
            let claims =
                jwt::decode::<OperatorClaims>(token).map_err(|e| format!("operator JWT: {e}"))?;
            if claims.iss != claims.sub && !claims.nats.signing_keys.contains(&claims.iss) {
                return Err(format!(
                    "operator JWT: issuer {} is neither the operator nor one of its signing keys",
                    claims.iss
                ));
            }
            trusted.push(claims.sub.clone());
            trusted.extend(claims.nats.signing_keys.iter().cloned());
            if !claims.nats.system_account.is_empty() {
                system_account = Some(claims.nats.system_account.clone());
            }
        }
        if trusted.is_empty() {
            return Err("operator mode needs at least one operator JWT".into());
        }
        Ok(Self {
            trusted,
            system_account,
            resolver: config.resolver.clone(),
            accounts: RwLock::new(HashMap::new()),
        })
    }

    /// Verifies an account JWT against the trusted operators and reads it.
    pub fn account(&self, token: &str) -> Result<(AccountSettings, AccountAuth), String> {
        let claims = jwt::decode::<AccountClaims>(token).map_err(|e| e.to_string())?;
        if !self.trusted.contains(&claims.iss) {
            return Err(jwt::JwtError::Untrusted(claims.iss).to_string());
        }
        account_claims::settings_of(&claims).map_err(|e| format!("account {}: {e}", claims.sub))
    }

    /// The account JWTs the resolver holds now.
    pub fn stored_accounts(&self) -> Result<Vec<String>, String> {
        match &self.resolver {
            ResolverConfig::Memory { preload } => Ok(preload.clone()),
            ResolverConfig::Dir { dir, .. } => read_dir(dir),
        }
    }

    /// Remembers the user checks of an account (on start, and on an update).
    pub fn set_account(&self, name: &str, auth: AccountAuth) {
        let mut accounts = self.accounts.write().unwrap_or_else(|p| p.into_inner());
        accounts.insert(name.to_string(), auth);
    }

    fn account_auth(&self, name: &str) -> Option<AccountAuth> {
        let accounts = self.accounts.read().unwrap_or_else(|p| p.into_inner());
        accounts.get(name).cloned()
    }
}

/// Every `*.jwt` file of the resolver's directory (created when missing).
fn read_dir(dir: &Path) -> Result<Vec<String>, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("resolver dir {}: {e}", dir.display()))?;
    let entries =
        std::fs::read_dir(dir).map_err(|e| format!("resolver dir {}: {e}", dir.display()))?;
    let mut tokens = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "jwt") {
            let text =
                std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            tokens.push(text.trim().to_string());
        }
    }
    tokens.sort();
    Ok(tokens)
}
