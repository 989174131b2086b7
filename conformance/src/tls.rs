//! The suite's TLS client (rustls on ring): trusts one certificate authority (`--ca-cert`, or
//! the development one the suite makes for a server it starts) and offers the ALPN protocols a
//! check asks for.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// A client configuration trusting the authorities in the PEM file `ca` and offering `alpn`.
pub fn client_config(ca: &Path, alpn: &[&[u8]]) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca)
        .map_err(|e| format!("cannot read the CA certificate {}: {e}", ca.display()))?
    {
        let cert = cert.map_err(|e| format!("{}: {e}", ca.display()))?;
        roots
            .add(cert)
            .map_err(|e| format!("{}: not a usable CA certificate: {e}", ca.display()))?;
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// Connects and completes the handshake (within 5 s each), naming the server by its IP.
pub async fn connect(
    address: SocketAddr,
    config: Arc<rustls::ClientConfig>,
) -> Result<TlsStream<TcpStream>, String> {
    handshake(address, crate::wire::tcp(address, None).await?, config).await
}

/// The TLS handshake (within 5 s) on a connected socket, naming the server by its IP.
pub async fn handshake(
    address: SocketAddr,
    tcp: TcpStream,
    config: Arc<rustls::ClientConfig>,
) -> Result<TlsStream<TcpStream>, String> {
    let name = ServerName::IpAddress(address.ip().into());
    tokio::time::timeout(
        Duration::from_secs(5),
        TlsConnector::from(config).connect(name, tcp),
    )
    .await
    .map_err(|_| format!("the TLS handshake with {address} took more than 5 s"))?
    .map_err(|e| format!("the TLS handshake with {address} failed: {e}"))
}

/// The protocol the handshake chose, as text (`none` when ALPN chose nothing).
pub fn negotiated(stream: &TlsStream<TcpStream>) -> String {
    stream
        .get_ref()
        .1
        .alpn_protocol()
        .map_or("none".into(), |p| String::from_utf8_lossy(p).into_owned())
}

/// A development certificate (`dev-cert`) in a directory of its own, removed when dropped: what
/// the suite starts a server with when it runs it over HTTPS.
#[derive(Debug)]
pub struct Certificates {
    /// The directory of the files (a bad file can be put beside them).
    pub dir: PathBuf,
    pub files: dev_cert::DevCert,
}

impl Certificates {
    pub fn make() -> Result<Self, String> {
        static MADE: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = MADE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("conformance-tls-{}-{n}", std::process::id()));
        let files = dev_cert::make(&dir).map_err(|e| format!("cannot make a certificate: {e}"))?;
        Ok(Self { dir, files })
    }

    /// The server's settings for this certificate.
    pub fn env(&self) -> [(&'static str, String); 2] {
        [
            ("TLS_CERT", self.files.cert.display().to_string()),
            ("TLS_KEY", self.files.key.display().to_string()),
        ]
    }
}

impl Drop for Certificates {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Makes rustls on ring the process's default provider, for the HTTP clients that do not get
/// a configuration of ours (reqwest is built without a provider of its own). Idempotent.
pub fn install_ring_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
