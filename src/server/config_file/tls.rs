//! The `tls {}` block: the server's certificate and key, client verification, pinned
//! certificates; the keys of nats-server jetlog cannot honour are refused by name.

use std::path::PathBuf;

use super::values::{boolean, invalid, map, seconds, string, unsupported};
use super::{ConfigFileError, Mapper};
use crate::conf::{Entry, Value};
use crate::server::tls::TlsConfig;

/// Keys of nats-server's `tls {}` block that jetlog cannot honour yet, and why.
const UNSUPPORTED_TLS: &[(&str, &str)] = &[
    (
        "verify_cert_and_check_known_urls",
        "that check belongs to clusters, which are not implemented",
    ),
    (
        "cipher_suites",
        "choosing cipher suites is not implemented (rustls' safe defaults apply)",
    ),
    (
        "curve_preferences",
        "choosing curves is not implemented (rustls' safe defaults apply)",
    ),
    (
        "min_version",
        "choosing the TLS version is not implemented (TLS 1.2 and 1.3 apply)",
    ),
    ("insecure", "skipping verification is not implemented"),
    (
        "cert_store",
        "the Windows certificate store does not exist here",
    ),
    (
        "cert_match",
        "the Windows certificate store does not exist here",
    ),
    (
        "cert_match_by",
        "the Windows certificate store does not exist here",
    ),
    (
        "ca_certs_match",
        "the Windows certificate store does not exist here",
    ),
    ("certs", "several certificates (SNI) are not implemented"),
    ("ocsp_peer", "OCSP is not implemented"),
    (
        "connection_rate_limit",
        "handshake rate limits are not implemented",
    ),
];

impl Mapper<'_> {
    /// `tls {}`: the server's certificate and key, and client verification.
    pub(super) fn tls(&mut self, entry: &Entry) -> Result<TlsConfig, ConfigFileError> {
        let block = map(entry)?;
        let mut tls = TlsConfig::new(PathBuf::new(), PathBuf::new());
        for inner in block.effective() {
            match inner.key.as_str() {
                "cert_file" => tls.cert_file = string(inner)?.into(),
                "key_file" => tls.key_file = string(inner)?.into(),
                "ca_file" => tls.ca_file = Some(string(inner)?.into()),
                "verify" => tls.verify = boolean(inner)?,
                "verify_and_map" => tls.verify_and_map = boolean(inner)?,
                "timeout" => tls.timeout = seconds(inner)?,
                "handshake_first" | "first" | "immediate" => tls.handshake_first = boolean(inner)?,
                "pinned_certs" => tls.pinned_certs = pins(inner)?,
                key => match UNSUPPORTED_TLS.iter().find(|(k, _)| *k == key) {
                    Some((_, why)) => return Err(unsupported(inner, why)),
                    None => self.other(inner, key, "tls.")?,
                },
            }
        }
        if tls.cert_file.as_os_str().is_empty() || tls.key_file.as_os_str().is_empty() {
            return Err(invalid(entry, "TLS needs cert_file and key_file"));
        }
        // verify_and_map implies verify, as in nats-server.
        tls.verify |= tls.verify_and_map;
        if tls.verify && tls.ca_file.is_none() {
            return Err(invalid(
                entry,
                "verify needs a ca_file to verify client certificates against",
            ));
        }
        if !tls.pinned_certs.is_empty() && !tls.verify {
            return Err(invalid(
                entry,
                "pinned_certs needs verify: true (clients must present a certificate)",
            ));
        }
        if tls.timeout.is_zero() {
            return Err(invalid(entry, "the handshake timeout must be above 0"));
        }
        Ok(tls)
    }
}

/// `pinned_certs`: hex SHA-256 of DER SubjectPublicKeyInfo, lower-cased as compared.
fn pins(entry: &Entry) -> Result<Vec<String>, ConfigFileError> {
    let Value::Array(items) = &entry.item.value else {
        return Err(invalid(
            entry,
            "expected a list of hex-encoded sha256 of DER encoded SubjectPublicKeyInfo",
        ));
    };
    let mut pins = Vec::with_capacity(items.len());
    for item in items {
        let Value::String(text) = &item.value else {
            return Err(invalid(entry, "each pinned certificate is a hex string"));
        };
        let pin = text.to_ascii_lowercase();
        if !crate::server::tls::is_pin(&pin) {
            return Err(invalid(
                entry,
                format!(
                    "{pin} does not look like hex-encoded sha256 of DER encoded SubjectPublicKeyInfo"
                ),
            ));
        }
        pins.push(pin);
    }
    Ok(pins)
}
