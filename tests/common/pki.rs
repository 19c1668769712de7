//! Certificates for TLS tests, made with rcgen in a temporary directory: a CA, a server
//! certificate for 127.0.0.1 and localhost, a client certificate, and a second CA that signed
//! neither. No key material is committed.

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

/// A CA, a server certificate for 127.0.0.1 and localhost, and a client certificate, as PEM
/// files in one directory.
pub struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let (ca_pem, issuer) = ca("jetlog test CA");
        std::fs::write(dir.path().join("ca.pem"), ca_pem).unwrap();
        let (other_ca, other_issuer) = ca("some other CA");
        std::fs::write(dir.path().join("other-ca.pem"), other_ca).unwrap();
        // What a certificate rotation puts in place: the same names, another CA.
        leaf(
            dir.path(),
            "rotated",
            &["127.0.0.1", "localhost"],
            &other_issuer,
        );
        leaf(dir.path(), "server", &["127.0.0.1", "localhost"], &issuer);
        leaf(dir.path(), "client", &["client.example"], &issuer);
        // Certificates a client must refuse: expired, for another host, and self-signed.
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::new(vec!["127.0.0.1".to_string()]).expect("params");
        params.not_before = rcgen::date_time_ymd(2000, 1, 1);
        params.not_after = rcgen::date_time_ymd(2001, 1, 1);
        let cert = params.signed_by(&key, &issuer).expect("signed");
        std::fs::write(dir.path().join("expired-cert.pem"), cert.pem()).unwrap();
        std::fs::write(dir.path().join("expired-key.pem"), key.serialize_pem()).unwrap();
        leaf(dir.path(), "elsewhere", &["example.com"], &issuer);
        // Client certificates for verify_and_map: one naming an e-mail address, one naming
        // nobody but its subject.
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        let email = rcgen::string::Ia5String::try_from("alice@example.com").expect("ia5");
        params.subject_alt_names = vec![rcgen::SanType::Rfc822Name(email)];
        let cert = params.signed_by(&key, &issuer).expect("signed");
        std::fs::write(dir.path().join("alice-cert.pem"), cert.pem()).unwrap();
        std::fs::write(dir.path().join("alice-key.pem"), key.serialize_pem()).unwrap();
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, "bob");
        params
            .distinguished_name
            .push(DnType::OrganizationName, "Acme");
        let cert = params.signed_by(&key, &issuer).expect("signed");
        std::fs::write(dir.path().join("bob-cert.pem"), cert.pem()).unwrap();
        std::fs::write(dir.path().join("bob-key.pem"), key.serialize_pem()).unwrap();
        let key = KeyPair::generate().expect("key");
        let params = CertificateParams::new(vec!["127.0.0.1".to_string()]).expect("params");
        let cert = params.self_signed(&key).expect("self-signed");
        std::fs::write(dir.path().join("selfsigned-cert.pem"), cert.pem()).unwrap();
        std::fs::write(dir.path().join("selfsigned-key.pem"), key.serialize_pem()).unwrap();
        Self { dir }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn arg(&self, name: &str) -> String {
        self.path(name).to_str().expect("utf8 path").to_string()
    }
}

fn ca(name: &str) -> (String, Issuer<'static, KeyPair>) {
    let key = KeyPair::generate().expect("key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    let cert = params.self_signed(&key).expect("self-signed");
    (cert.pem(), Issuer::new(params, key))
}

fn leaf(dir: &Path, name: &str, names: &[&str], issuer: &Issuer<'_, KeyPair>) {
    let key = KeyPair::generate().expect("key");
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let params = CertificateParams::new(names).expect("params");
    let cert = params.signed_by(&key, issuer).expect("signed");
    std::fs::write(dir.join(format!("{name}-cert.pem")), cert.pem()).unwrap();
    std::fs::write(dir.join(format!("{name}-key.pem")), key.serialize_pem()).unwrap();
}
