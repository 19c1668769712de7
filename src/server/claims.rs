//! Account JWTs pushed to a running server in operator mode (`nsc push`, `nats auth account
//! push`): `$SYS.REQ.CLAIMS.UPDATE` and `$SYS.REQ.ACCOUNT.<account>.CLAIMS.UPDATE` carry the
//! JWT; it is verified against the trusted operators, applied to the account (created,
//! limits changed, imports rewired), and kept in the resolver's directory so a restart finds
//! it. `$SYS.REQ.ACCOUNT.<account>.CLAIMS.LOOKUP` answers with the stored JWT. Only system
//! account users can reach these subjects.

use serde_json::json;

use super::operator::ResolverConfig;
use super::ServerState;

/// The subjects served in the system account.
pub const SUBJECTS: &[&str] = &[
    "$SYS.REQ.CLAIMS.UPDATE",
    "$SYS.REQ.ACCOUNT.*.CLAIMS.UPDATE",
    "$SYS.REQ.ACCOUNT.*.CLAIMS.LOOKUP",
];

pub fn is_claims_request(subject: &str) -> bool {
    subject == "$SYS.REQ.CLAIMS.UPDATE"
        || (subject.starts_with("$SYS.REQ.ACCOUNT.")
            && (subject.ends_with(".CLAIMS.UPDATE") || subject.ends_with(".CLAIMS.LOOKUP")))
}

/// The account a subject names (`$SYS.REQ.ACCOUNT.<account>.CLAIMS.…`), if it names one.
fn named_account(subject: &str) -> Option<&str> {
    let rest = subject.strip_prefix("$SYS.REQ.ACCOUNT.")?;
    rest.split('.').next()
}

impl ServerState {
    /// Answers an update or a lookup in nats-server's envelope.
    pub(super) fn claims_request(&self, subject: &str, body: &[u8]) -> Vec<u8> {
        let server = serde_json::to_value(self.server_block()).unwrap_or_default();
        let reply = match subject.ends_with(".LOOKUP") {
            true => return self.lookup(named_account(subject).unwrap_or_default()),
            false => self.update(named_account(subject), body),
        };
        let value = match reply {
            Ok((account, message)) => json!({
                "server": server,
                "data": { "account": account, "code": 200, "message": message },
            }),
            Err((account, code, description)) => json!({
                "server": server,
                "error": { "account": account, "code": code, "description": description },
            }),
        };
        serde_json::to_vec(&value).unwrap_or_default()
    }

    fn lookup(&self, account: &str) -> Vec<u8> {
        let stored = match self.operator.as_ref().map(|o| &o.resolver) {
            Some(ResolverConfig::Dir { dir, .. }) if super::jwt::is_key(account, 'A') => {
                std::fs::read_to_string(dir.join(format!("{account}.jwt"))).ok()
            }
            _ => None,
        };
        stored
            .map(|s| s.trim().as_bytes().to_vec())
            .unwrap_or_default()
    }

    /// Verifies, applies and stores an account JWT: (account, message) or (account, code,
    /// why not).
    fn update(
        &self,
        named: Option<&str>,
        body: &[u8],
    ) -> Result<(String, &'static str), (String, u16, String)> {
        let token = String::from_utf8_lossy(body).trim().to_string();
        let Some(operator) = &self.operator else {
            return Err((String::new(), 500, "not in operator mode".into()));
        };
        let ResolverConfig::Dir { dir, .. } = &operator.resolver else {
            return Err((
                String::new(),
                500,
                "account updates need the directory resolver (resolver { type: full, dir })".into(),
            ));
        };
        let (settings, auth) = operator
            .account(&token)
            .map_err(|e| (String::new(), 400, e))?;
        let name = settings.name.clone();
        if named.is_some_and(|n| n != name) {
            return Err((
                name,
                400,
                "the subject names another account than the JWT".into(),
            ));
        }
        let message = self
            .accounts
            .apply(settings)
            .map_err(|e| (name.clone(), 500, e))?;
        operator.set_account(&name, auth);
        store(dir, &name, &token).map_err(|e| (name.clone(), 500, e))?;
        tracing::info!("account {name}: JWT updated");
        Ok((name, message))
    }
}

/// Writes `<dir>/<account>.jwt` whole: a temporary file, synced, then renamed over the old.
fn store(dir: &std::path::Path, account: &str, token: &str) -> Result<(), String> {
    use std::io::Write;
    let path = dir.join(format!("{account}.jwt"));
    let temp = dir.join(format!(".{account}.jwt.tmp"));
    let write = || -> std::io::Result<()> {
        let mut file = std::fs::File::create(&temp)?;
        file.write_all(token.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&temp, &path)?;
        std::fs::File::open(dir)?.sync_all()
    };
    write().map_err(|e| format!("cannot store {}: {e}", path.display()))
}
