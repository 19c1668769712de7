//! TLS on the client port, with rustls: the certificates a `tls {}` block or the `--tls*`
//! flags name are read once at start (a file that cannot be read or parsed stops the server
//! before it listens), and each connection is upgraded either after the plaintext INFO (the
//! NATS default: INFO says `tls_required`, the client starts the handshake) or before
//! anything is sent (`handshake_first`, the clients' "TLS first").

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpStream;
use tokio_rustls::rustls;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// nats-server's default for how long a TLS handshake may take (`tls { timeout }`, seconds).
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_millis(2000);

/// What the server was told about TLS.
#[derive(Debug, Clone, PartialEq)]
pub struct TlsConfig {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    /// The CA that client certificates must chain to (with `verify`).
    pub ca_file: Option<PathBuf>,
    /// Require and verify a client certificate.
    pub verify: bool,
    /// How long a handshake may take before the connection is dropped.
    pub timeout: Duration,
    /// Handshake before INFO (the client must use "TLS first" too).
    pub handshake_first: bool,
    /// Plaintext clients are served beside TLS ones (`allow_non_tls`): INFO says
    /// `tls_available`, and the client's first byte tells which it speaks.
    pub allow_non_tls: bool,
    /// `verify_and_map`: the client certificate names the user (e-mail, DNS name, URI or
    /// subject, matched against the users' names); implies `verify`.
    pub verify_and_map: bool,
    /// `pinned_certs`: the hex SHA-256 of the client certificates' SubjectPublicKeyInfo that
    /// may connect (lower case); empty lets every verified client in.
    pub pinned_certs: Vec<String>,
}

impl TlsConfig {
    /// TLS with this certificate and key and nats-server's defaults for everything else.
    pub fn new(cert_file: PathBuf, key_file: PathBuf) -> Self {
        Self {
            cert_file,
            key_file,
            ca_file: None,
            verify: false,
            timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            handshake_first: false,
            allow_non_tls: false,
            verify_and_map: false,
            pinned_certs: Vec::new(),
        }
    }
}

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read certificate file {path}: {reason}")]
    Certificates { path: PathBuf, reason: String },
    #[error("cannot read private key file {path}: {reason}")]
    Key { path: PathBuf, reason: String },
    #[error("cannot read CA file {path}: {reason}")]
    Ca { path: PathBuf, reason: String },
    #[error(
        "TLS verify needs a CA file to verify client certificates against (ca_file, --tlscacert)"
    )]
    VerifyWithoutCa,
    #[error("invalid TLS configuration: {0}")]
    Config(String),
}

/// A server's TLS, ready to accept connections. The acceptor can be replaced while the server
/// runs (`reload`): connections already made keep the session they have, new ones get the
/// new certificates.
pub struct Tls {
    pub config: TlsConfig,
    acceptor: RwLock<TlsAcceptor>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").field("config", &self.config).finish()
    }
}

fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| e.to_string())?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    if certs.is_empty() {
        return Err("no PEM certificate in it".into());
    }
    Ok(certs)
}

/// The server's certificate chain and private key, as the files name them.
fn certificate_and_key(
    config: &TlsConfig,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
    let certs = read_certificates(&config.cert_file).map_err(|reason| TlsError::Certificates {
        path: config.cert_file.clone(),
        reason,
    })?;
    let key = PrivateKeyDer::from_pem_file(&config.key_file).map_err(|e| TlsError::Key {
        path: config.key_file.clone(),
        reason: e.to_string(),
    })?;
    Ok((certs, key))
}

/// The certificates of the CA file, which peers' certificates must chain to.
fn ca_roots(config: &TlsConfig) -> Result<rustls::RootCertStore, TlsError> {
    let ca_file = config.ca_file.as_ref().ok_or(TlsError::VerifyWithoutCa)?;
    let ca_error = |reason: String| TlsError::Ca {
        path: ca_file.clone(),
        reason,
    };
    let mut roots = rustls::RootCertStore::empty();
    for cert in read_certificates(ca_file).map_err(ca_error)? {
        roots.add(cert).map_err(|e| ca_error(e.to_string()))?;
    }
    Ok(roots)
}

impl Tls {
    /// Reads the certificates and key and builds the acceptor.
    pub fn load(config: TlsConfig) -> Result<Self, TlsError> {
        let acceptor = Self::acceptor(&config)?;
        Ok(Self {
            config,
            acceptor: RwLock::new(acceptor),
        })
    }

    /// Reads the same files again (certificates are usually rotated in place) and, if they
    /// are good, serves new connections with them; if not, the certificates in force stay.
    pub fn reload(&self) -> Result<(), TlsError> {
        let acceptor = Self::acceptor(&self.config)?;
        *self.acceptor.write().unwrap_or_else(|p| p.into_inner()) = acceptor;
        Ok(())
    }

    fn acceptor(config: &TlsConfig) -> Result<TlsAcceptor, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let (certs, key) = certificate_and_key(config)?;
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?;
        let builder = if config.verify {
            let roots = ca_roots(config)?;
            let verifier =
                rustls::server::WebPkiClientVerifier::builder_with_provider(roots.into(), provider)
                    .build()
                    .map_err(|e| TlsError::Config(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        } else {
            builder.with_no_client_auth()
        };
        let server = builder
            .with_single_cert(certs, key)
            .map_err(|e| TlsError::Config(format!("certificate and key do not fit: {e}")))?;
        Ok(TlsAcceptor::from(Arc::new(server)))
    }

    /// Runs the server side of a handshake, bounded by the configured timeout.
    pub async fn accept(&self, socket: TcpStream) -> Result<TlsStream<TcpStream>, String> {
        let acceptor = self
            .acceptor
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        match tokio::time::timeout(self.config.timeout, acceptor.accept(socket)).await {
            Ok(Ok(stream)) if self.is_pinned(&stream) => Ok(stream),
            // nats-server's ErrCertNotPinned.
            Ok(Ok(_)) => Err("certificate not pinned".to_string()),
            Ok(Err(err)) => Err(err.to_string()),
            Err(_) => Err("timeout".to_string()),
        }
    }

    /// Whether the client's certificate is one of the pinned ones (always, with none pinned).
    fn is_pinned(&self, stream: &TlsStream<TcpStream>) -> bool {
        if self.config.pinned_certs.is_empty() {
            return true;
        }
        let leaf = stream
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|chain| chain.first());
        leaf.and_then(|cert| spki_sha256_hex(cert))
            .is_some_and(|id| self.config.pinned_certs.contains(&id))
    }
}

impl Tls {
    /// Runs the client side of a handshake towards `host` (a name or an IP the peer's
    /// certificate must hold), presenting this server's own certificate and trusting the CA
    /// file: the dialling side of a route's mutual TLS. Bounded by the configured timeout.
    pub async fn connect(
        &self,
        socket: TcpStream,
        host: &str,
    ) -> Result<tokio_rustls::client::TlsStream<TcpStream>, String> {
        let connector = self.connector().map_err(|e| e.to_string())?;
        let name = rustls_pki_types::ServerName::try_from(host.to_string())
            .map_err(|e| format!("invalid server name {host:?}: {e}"))?;
        match tokio::time::timeout(self.config.timeout, connector.connect(name, socket)).await {
            Ok(Ok(stream)) => Ok(stream),
            Ok(Err(err)) => Err(err.to_string()),
            Err(_) => Err("timeout".to_string()),
        }
    }

    fn connector(&self) -> Result<tokio_rustls::TlsConnector, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let roots = ca_roots(&self.config)?;
        let (certs, key) = certificate_and_key(&self.config)?;
        let client = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_root_certificates(roots)
            .with_client_auth_cert(certs, key)
            .map_err(|e| TlsError::Config(format!("certificate and key do not fit: {e}")))?;
        Ok(tokio_rustls::TlsConnector::from(Arc::new(client)))
    }
}

/// The names a TLS client's certificate offers for `verify_and_map` (none when mapping is
/// off or there is no certificate).
pub fn mapped_identities(tls: &Tls, stream: &TlsStream<TcpStream>) -> Vec<String> {
    if !tls.config.verify_and_map {
        return Vec::new();
    }
    stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .map(|cert| super::cert_identity::identities(cert))
        .unwrap_or_default()
}

/// The hex SHA-256 of a certificate's SubjectPublicKeyInfo, as `pinned_certs` lists them.
pub fn spki_sha256_hex(cert_der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der).ok()?;
    let digest = ring::digest::digest(&ring::digest::SHA256, cert.public_key().raw);
    Some(digest.as_ref().iter().map(|b| format!("{b:02x}")).collect())
}

/// Whether `text` looks like a pinned certificate id: 64 hex digits.
pub fn is_pin(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit())
}
