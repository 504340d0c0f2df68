//! TLS for the HTTP front end: the certificate and key from PEM files, served through a resolver that can swap
//! them while the server runs.
//!
//! [`Certificates`] is what the TLS listener asks for a certificate on every handshake. [`reload`] reads the
//! files again (on SIGHUP, or when [`reload_if_changed`] sees that their modification time or size changed, as a
//! certbot renewal does): a new pair that does not parse, or whose key does not belong to its certificate, is
//! refused with an error and the pair before stays in service, so a broken renewal never takes the server down.
//! Connections already open keep the certificate they were made with.
//!
//! [`reload`]: Certificates::reload
//! [`reload_if_changed`]: Certificates::reload_if_changed

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::SystemTime;

use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Why a certificate and key cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file cannot be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file holds no usable PEM certificate or key.
    #[error("{path}: {why}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
    },
    /// The key and the certificate do not go together, or rustls refuses them.
    #[error("{0}")]
    Rustls(String),
}

/// What identifies one version of a file without reading it: modification time and length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
}

fn stamp(path: &Path) -> Option<Stamp> {
    let meta = std::fs::metadata(path).ok()?;
    Some(Stamp { modified: meta.modified().ok(), len: meta.len() })
}

/// The certificate chain and private key served by the TLS listener, reloadable while it runs.
pub struct Certificates {
    cert_path: PathBuf,
    key_path: PathBuf,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
    /// The stamps of the files as last read (whether or not that read succeeded), so a broken pair is reported
    /// once, not every second, and a fix is picked up as soon as it is written.
    seen: Mutex<(Option<Stamp>, Option<Stamp>)>,
}

impl fmt::Debug for Certificates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Certificates").field("cert", &self.cert_path).field("key", &self.key_path).finish()
    }
}

impl Certificates {
    /// Reads the PEM certificate chain (leaf first) at `cert` and the PEM private key (PKCS#8, PKCS#1 or SEC1) at
    /// `key`, and checks that they belong together.
    pub fn load(cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Result<Self, TlsError> {
        let (cert_path, key_path) = (cert.into(), key.into());
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let seen = (stamp(&cert_path), stamp(&key_path));
        let pair = read_pair(&cert_path, &key_path, &provider)?;
        Ok(Self { cert_path, key_path, provider, current: RwLock::new(Arc::new(pair)), seen: Mutex::new(seen) })
    }

    /// The files this was loaded from: certificate, key.
    pub fn paths(&self) -> (&Path, &Path) {
        (&self.cert_path, &self.key_path)
    }

    /// Reads both files again and serves the new pair from the next handshake on. On an error the pair before
    /// stays in service.
    pub fn reload(&self) -> Result<(), TlsError> {
        *self.seen.lock().unwrap_or_else(PoisonError::into_inner) = (stamp(&self.cert_path), stamp(&self.key_path));
        let pair = read_pair(&self.cert_path, &self.key_path, &self.provider)?;
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(pair);
        Ok(())
    }

    /// [`reload`](Self::reload)s if either file changed since it was last read; `Ok(true)` when a new pair is in
    /// service.
    pub fn reload_if_changed(&self) -> Result<bool, TlsError> {
        let now = (stamp(&self.cert_path), stamp(&self.key_path));
        if *self.seen.lock().unwrap_or_else(PoisonError::into_inner) == now {
            return Ok(false);
        }
        self.reload().map(|()| true)
    }

    /// A rustls server configuration that takes its certificate from `self` at every handshake. actix-web adds
    /// the ALPN protocols (`h2`, then `http/1.1`).
    pub fn server_config(self: &Arc<Self>) -> Result<ServerConfig, TlsError> {
        let config = ServerConfig::builder_with_provider(Arc::clone(&self.provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Rustls(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(self) as Arc<dyn ResolvesServerCert>);
        Ok(config)
    }
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner)))
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read { path: path.to_owned(), source })
}

fn read_pair(cert_path: &Path, key_path: &Path, provider: &CryptoProvider) -> Result<CertifiedKey, TlsError> {
    let pem = |path: &Path, why: String| TlsError::Pem { path: path.to_owned(), why };
    let chain = CertificateDer::pem_slice_iter(&read(cert_path)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem(cert_path, format!("not a PEM certificate chain: {e}")))?;
    if chain.is_empty() {
        return Err(pem(cert_path, "no CERTIFICATE in the file".into()));
    }
    let key = PrivateKeyDer::from_pem_slice(&read(key_path)?)
        .map_err(|e| pem(key_path, format!("no usable PEM private key: {e}")))?;
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| TlsError::Rustls(format!("{}: {e}", key_path.display())))?;
    let pair = CertifiedKey::new(chain, signing);
    pair.keys_match().map_err(|e| {
        TlsError::Rustls(format!("{} does not belong to {}: {e}", key_path.display(), cert_path.display()))
    })?;
    Ok(pair)
}
