//! The suite's TLS client (rustls on ring): trusts one certificate authority (`--ca-cert`, or
//! the development one the suite makes for a server it starts) and offers the ALPN protocols a
//! check asks for.

use std::net::SocketAddr;
use std::path::Path;
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
    let tcp = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(address))
        .await
        .map_err(|_| format!("connecting to {address} took more than 5 s"))?
        .map_err(|e| format!("cannot connect to {address}: {e}"))?;
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
