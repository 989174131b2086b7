//! A development certificate in one call: a certificate authority of its own and a server
//! certificate for `127.0.0.1`, `::1` and `localhost` signed by it, written as PEM files. A
//! client that trusts `ca.pem` (the conformance suite's `--ca-cert`, `curl --cacert`, a
//! browser's authorities) then verifies the server as it would in production.

use std::io;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// The names the server certificate is valid for.
pub const NAMES: [&str; 3] = ["127.0.0.1", "::1", "localhost"];

/// How long the certificates are valid, from a day before they are made.
pub const VALID_DAYS: i64 = 90;

/// The files [`make`] writes.
#[derive(Debug, Clone)]
pub struct DevCert {
    /// The authority's certificate: what a client trusts.
    pub ca: PathBuf,
    /// The server's certificate chain: `TLS_CERT`.
    pub cert: PathBuf,
    /// The server's private key: `TLS_KEY`.
    pub key: PathBuf,
}

/// Writes `ca.pem`, `cert.pem` and `key.pem` into `dir` (made if needed), replacing any there.
pub fn make(dir: &Path) -> io::Result<DevCert> {
    let fail = |error: rcgen::Error| io::Error::other(error.to_string());
    let today = time::OffsetDateTime::now_utc();
    let (not_before, not_after) = (
        today - time::Duration::days(1),
        today + time::Duration::days(VALID_DAYS),
    );

    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(fail)?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "sse-examples development CA");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    (ca.not_before, ca.not_after) = (not_before, not_after);
    let ca_key = KeyPair::generate().map_err(fail)?;
    let ca_cert = ca.self_signed(&ca_key).map_err(fail)?;
    let issuer = Issuer::new(ca, ca_key);

    let mut server = CertificateParams::new(NAMES.map(String::from).to_vec()).map_err(fail)?;
    server
        .distinguished_name
        .push(DnType::CommonName, "sse-examples development server");
    server.use_authority_key_identifier_extension = true;
    server.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    (server.not_before, server.not_after) = (not_before, not_after);
    let server_key = KeyPair::generate().map_err(fail)?;
    let server_cert = server.signed_by(&server_key, &issuer).map_err(fail)?;

    std::fs::create_dir_all(dir)?;
    let files = DevCert {
        ca: dir.join("ca.pem"),
        cert: dir.join("cert.pem"),
        key: dir.join("key.pem"),
    };
    std::fs::write(&files.ca, ca_cert.pem())?;
    // The chain a server sends: its certificate, then the authority's.
    std::fs::write(&files.cert, server_cert.pem() + &ca_cert.pem())?;
    std::fs::write(&files.key, server_key.serialize_pem())?;
    Ok(files)
}

/// A private key of no certificate, PEM: for showing that a mismatched `TLS_KEY` is refused.
pub fn stray_key() -> String {
    KeyPair::generate()
        .expect("a key pair can be made")
        .serialize_pem()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn makes_three_pem_files() {
        let dir = std::env::temp_dir().join(format!("dev-cert-test-{}", std::process::id()));
        let made = make(&dir).unwrap();
        let read = |path: &Path| std::fs::read_to_string(path).unwrap();
        assert_eq!(read(&made.ca).matches("BEGIN CERTIFICATE").count(), 1);
        assert_eq!(read(&made.cert).matches("BEGIN CERTIFICATE").count(), 2);
        assert!(read(&made.key).contains("BEGIN PRIVATE KEY"));
        assert!(stray_key().contains("BEGIN PRIVATE KEY"));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
