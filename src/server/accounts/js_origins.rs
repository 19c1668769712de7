//! Where a source in another account is read from. nats-server's sourcing stream creates a
//! consumer on the origin through the API prefix it imports (`external.api`) and receives
//! its messages through the deliver prefix it imports (`external.deliver`). On one server
//! jetlog reads the origin's log directly, as it does for a source in the same account, but
//! only when the importing account has both imports: the one that makes `<api>.CONSUMER.
//! CREATE.<origin>` a request to the exporter's `$JS.API`, and a stream import of the
//! exporter's `<deliver>.S.…` delivery subjects under the same names.

use std::collections::HashMap;
use std::sync::{Arc, RwLock, Weak};

use super::settings::Import;
use crate::protocol::subject::subject_matches;
use crate::server::jetstream::{JetStream, OriginResolver};

/// Every account's JetStream on this server, by account name.
pub(super) type Directory = Arc<RwLock<HashMap<String, Weak<JetStream>>>>;

/// The resolver of an account with these imports.
pub(super) fn resolver(imports: Vec<Import>, directory: Directory) -> OriginResolver {
    Arc::new(move |api: &str, deliver: &str, origin: &str| {
        let exporter = exporter(&imports, api, deliver, origin)?;
        let directory = directory.read().unwrap_or_else(|p| p.into_inner());
        directory.get(exporter)?.upgrade()
    })
}

/// The account whose `$JS.API` the imports reach under `api` for `origin`, if the deliver
/// subjects come back from it too.
fn exporter<'a>(imports: &'a [Import], api: &str, deliver: &str, origin: &str) -> Option<&'a str> {
    let create_here = format!("{api}.CONSUMER.CREATE.{origin}");
    let create_there = format!("$JS.API.CONSUMER.CREATE.{origin}");
    let service = imports.iter().find(|i| {
        i.service
            && subject_matches(&i.local, &create_here)
            && subject_matches(&i.subject, &create_there)
    })?;
    let prefix = match deliver {
        "" => "$JS",
        prefix => prefix,
    };
    let delivery = format!("{prefix}.S.delivery");
    imports
        .iter()
        .any(|i| {
            !i.service
                && i.account == service.account
                && subject_matches(&i.subject, &delivery)
                && subject_matches(&i.local, &delivery)
        })
        .then_some(service.account.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn import(account: &str, subject: &str, local: &str, service: bool) -> Import {
        Import {
            account: account.into(),
            subject: subject.into(),
            local: local.into(),
            service,
        }
    }

    #[test]
    fn the_api_import_and_the_delivery_import_both_lead_to_the_exporter() {
        let both = vec![
            import("A", "$JS.API.>", "$JS.A.API.>", true),
            import("A", "deliver.b.>", "deliver.b.>", false),
        ];
        assert_eq!(exporter(&both, "$JS.A.API", "deliver.b", "ORD"), Some("A"));
        // Another prefix, no delivery import, or deliveries renamed on the way: nothing.
        assert_eq!(exporter(&both, "$JS.Z.API", "deliver.b", "ORD"), None);
        assert_eq!(exporter(&both[..1], "$JS.A.API", "deliver.b", "ORD"), None);
        let renamed = vec![
            both[0].clone(),
            import("A", "deliver.b.>", "from.a.deliver.b.>", false),
        ];
        assert_eq!(exporter(&renamed, "$JS.A.API", "deliver.b", "ORD"), None);
        // An API import narrowed to other streams does not reach this one.
        let narrow = vec![
            import(
                "A",
                "$JS.API.CONSUMER.CREATE.OTHER.>",
                "$JS.A.API.CONSUMER.CREATE.OTHER.>",
                true,
            ),
            both[1].clone(),
        ];
        assert_eq!(exporter(&narrow, "$JS.A.API", "deliver.b", "ORD"), None);
    }
}
