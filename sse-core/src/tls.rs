//! HTTPS (contract section 8): `TLS_CERT` and `TLS_KEY` read and checked when the settings are,
//! so that a missing, unreadable or mismatched file stops the process with one line before
//! anything is bound; and the rustls server configuration that offers ALPN `h2` and
//! `http/1.1`. rustls runs on the `ring` provider throughout the workspace.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::ConfigError;

/// The protocols offered in the TLS handshake, preferred first.
pub const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// A certificate chain and its private key, as PEM files (`TLS_CERT`, `TLS_KEY`), checked.
#[derive(Clone, PartialEq, Eq)]
pub struct Tls {
    pub cert_path: PathBuf,
    pub key_path: PathBuf,
    /// The PEM text of the chain, for frameworks that take bytes.
    pub cert_pem: Vec<u8>,
    /// The PEM text of the key, for frameworks that take bytes.
    pub key_pem: Vec<u8>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key itself.
        f.debug_struct("Tls")
            .field("cert_path", &self.cert_path)
            .field("key_path", &self.key_path)
            .finish_non_exhaustive()
    }
}

impl Tls {
    /// Both set: HTTPS with these files; neither: plain HTTP; one alone, or a file that cannot
    /// be read or parsed, or a key that is not the certificate's: the error naming the variable.
    pub fn load(cert: Option<String>, key: Option<String>) -> Result<Option<Self>, ConfigError> {
        let (cert, key) = match (cert, key) {
            (None, None) => return Ok(None),
            (Some(_), None) => return Err(missing("TLS_KEY", "TLS_CERT")),
            (None, Some(_)) => return Err(missing("TLS_CERT", "TLS_KEY")),
            (Some(cert), Some(key)) => (cert, key),
        };
        let bad = |variable: &'static str, value: &str, expected: String| ConfigError {
            variable,
            value: value.to_owned(),
            expected,
        };
        let cert_pem = std::fs::read(&cert).map_err(|error| {
            bad(
                "TLS_CERT",
                &cert,
                format!("a readable PEM file of a certificate chain ({error})"),
            )
        })?;
        let key_pem = std::fs::read(&key).map_err(|error| {
            bad(
                "TLS_KEY",
                &key,
                format!("a readable PEM file of a private key ({error})"),
            )
        })?;
        let tls = Self {
            cert_path: cert.clone().into(),
            key_path: key.clone().into(),
            cert_pem,
            key_pem,
        };
        let chain = tls.chain().map_err(|problem| {
            bad(
                "TLS_CERT",
                &cert,
                format!("a PEM file of a certificate chain ({problem})"),
            )
        })?;
        let private_key = tls.private_key().map_err(|problem| {
            bad(
                "TLS_KEY",
                &key,
                format!("a PEM file of a private key ({problem})"),
            )
        })?;
        build(chain, private_key).map_err(|error| {
            bad(
                "TLS_KEY",
                &key,
                format!("the private key of the certificate in TLS_CERT={cert} ({error})"),
            )
        })?;
        Ok(Some(tls))
    }

    /// The chain, leaf first.
    pub fn chain(&self) -> Result<Vec<CertificateDer<'static>>, String> {
        let chain = CertificateDer::pem_slice_iter(&self.cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| error.to_string())?;
        if chain.is_empty() {
            return Err("no CERTIFICATE section".into());
        }
        Ok(chain)
    }

    pub fn private_key(&self) -> Result<PrivateKeyDer<'static>, String> {
        PrivateKeyDer::from_pem_slice(&self.key_pem).map_err(|error| match error {
            rustls::pki_types::pem::Error::NoItemsFound => "no PRIVATE KEY section".to_owned(),
            error => error.to_string(),
        })
    }

    /// The rustls configuration: these files, ALPN `h2` then `http/1.1`.
    pub fn server_config(&self) -> Arc<rustls::ServerConfig> {
        let chain = self.chain().expect("checked at start");
        let key = self.private_key().expect("checked at start");
        Arc::new(build(chain, key).expect("checked at start"))
    }
}

fn build(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<rustls::ServerConfig, rustls::Error> {
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_single_cert(chain, key)?;
    config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}

/// Makes `ring` the process's rustls provider, for the frameworks that build their rustls
/// configuration themselves from the process default (poem and salvo would otherwise pick
/// aws-lc-rs, and rustls cannot choose when both are compiled in). [`crate::server::start`]
/// calls it before anything else.
pub fn install_ring_provider() {
    // An error only says that one is installed already.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn missing(variable: &'static str, other: &str) -> ConfigError {
    ConfigError {
        variable,
        value: String::new(),
        expected: format!("a PEM file as well, since {other} is set (HTTPS needs both)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(p: &std::path::Path) -> Option<String> {
        Some(p.display().to_string())
    }

    #[test]
    fn a_certificate_and_its_key_serve_h2_and_http1() {
        let dir = std::env::temp_dir().join(format!("sse-core-tls-{}", std::process::id()));
        let made = dev_cert::make(&dir).unwrap();
        let tls = Tls::load(path(&made.cert), path(&made.key))
            .unwrap()
            .unwrap();
        assert_eq!(tls.chain().unwrap().len(), 2);
        assert_eq!(
            tls.server_config().alpn_protocols,
            [b"h2".to_vec(), b"http/1.1".to_vec()]
        );
        assert!(!format!("{tls:?}").contains("PRIVATE"));
        assert_eq!(Tls::load(None, None).unwrap(), None);

        let stray = dir.join("stray.pem");
        std::fs::write(&stray, dev_cert::stray_key()).unwrap();
        let not_pem = dir.join("not.pem");
        std::fs::write(&not_pem, "hello\n").unwrap();
        let missing = dir.join("missing.pem");
        let refused = |cert: &std::path::Path, key: &std::path::Path| {
            Tls::load(path(cert), path(key)).unwrap_err()
        };
        let error = Tls::load(path(&made.cert), None).unwrap_err();
        assert_eq!(error.variable, "TLS_KEY");
        assert_eq!(
            Tls::load(None, path(&made.key)).unwrap_err().variable,
            "TLS_CERT"
        );
        let error = refused(&missing, &made.key);
        assert_eq!(
            (error.variable, error.value.as_str()),
            ("TLS_CERT", missing.to_str().unwrap())
        );
        assert_eq!(refused(&dir, &made.key).variable, "TLS_CERT");
        assert_eq!(refused(&not_pem, &made.key).variable, "TLS_CERT");
        assert!(
            refused(&made.cert, &not_pem)
                .expected
                .contains("no PRIVATE KEY")
        );
        let error = refused(&made.cert, &stray);
        assert_eq!(error.variable, "TLS_KEY");
        assert!(
            error.to_string().contains("private key of the certificate"),
            "{error}"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
