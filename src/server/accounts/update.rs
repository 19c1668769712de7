//! An account JWT pushed while the server runs (`$SYS.REQ.CLAIMS.UPDATE`): a new account is
//! created, a known one takes its new settings (limits, JetStream switched on, exports and
//! imports rewired across all accounts). Switching JetStream off for an account that has it is
//! refused: its streams would be cut off while clients use them.

use std::sync::Arc;

use super::settings::{self, AccountSettings};
use super::{Account, Accounts, Registry};

impl Accounts {
    /// Applies an account's new settings; the message says what happened.
    pub fn apply(&self, settings: AccountSettings) -> Result<&'static str, String> {
        let mut registry = self.registry.write().unwrap_or_else(|p| p.into_inner());
        let name = settings.name.clone();
        let existing = registry.by_name.get(&name).cloned();
        let message = match existing {
            None => {
                let entry = self
                    .plan
                    .create(&settings, &self.system, &mut registry.js_disabled)?;
                registry.by_name.insert(name.clone(), entry);
                "jwt updated"
            }
            Some(account) => {
                self.change(&mut registry, &account, &settings)?;
                "jwt updated"
            }
        };
        match registry.settings.iter_mut().find(|a| a.name == name) {
            Some(slot) => *slot = settings,
            None => registry.settings.push(settings),
        }
        self.rewire(&mut registry)?;
        Ok(message)
    }

    /// A known account's JetStream follows its new settings.
    fn change(
        &self,
        registry: &mut Registry,
        account: &Arc<Account>,
        settings: &AccountSettings,
    ) -> Result<(), String> {
        let wanted = settings
            .jetstream
            .clone()
            .filter(|_| self.plan.enabled && account.name != self.system);
        match (&account.jetstream, wanted) {
            (Some(js), Some(limits)) => js.set_account_limits(limits),
            (Some(_), None) => {
                return Err(format!(
                    "account {}: JetStream cannot be switched off while the server runs (its streams are in use); restart with the new JWT",
                    account.name
                ))
            }
            (None, Some(limits)) => {
                let js = self.plan.start(&account.name, &account.router, limits)?;
                if let Some(responder) = registry.js_disabled.remove(&account.name) {
                    responder.remove();
                }
                let replaced = Arc::new(Account {
                    name: account.name.clone(),
                    router: account.router.clone(),
                    jetstream: Some(js),
                });
                registry.by_name.insert(account.name.clone(), replaced);
            }
            (None, None) => {}
        }
        Ok(())
    }

    /// Takes every import out and wires them again from the settings, leaving out those that
    /// are no longer valid (an export withdrawn, an account unknown).
    fn rewire(&self, registry: &mut Registry) -> Result<(), String> {
        for wired in registry.imports.drain(..) {
            wired.remove();
        }
        let mut valid = registry.settings.clone();
        for why in settings::retain_valid_imports(&mut valid) {
            tracing::warn!("import left out: {why}");
        }
        registry.imports = super::wiring::wire_all(&registry.by_name, &valid, &self.system)?;
        Ok(())
    }
}
