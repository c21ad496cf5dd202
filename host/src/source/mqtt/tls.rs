//! TLS for `mqtts://`: the broker's CA (or the system's roots), and an optional client
//! certificate and key (AWS IoT's mutual TLS). Every problem names the file it is about.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};

/// The PEM files of a TLS connection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsFiles {
    /// CA certificates that sign the broker's certificate; `None` for the system's roots.
    pub ca_file: Option<std::path::PathBuf>,
    /// Client certificate chain and private key, for mutual TLS.
    pub client: Option<(std::path::PathBuf, std::path::PathBuf)>,
}

/// A TLS file that cannot be used, and why.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct TlsError {
    /// The file.
    pub path: String,
    /// What is wrong with it.
    pub message: String,
}

fn err(path: &Path, message: impl Into<String>) -> TlsError {
    TlsError {
        path: path.display().to_string(),
        message: message.into(),
    }
}

fn certificates(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    std::fs::metadata(path).map_err(|e| err(path, format!("cannot read the {what}: {e}")))?;
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| err(path, format!("cannot read the {what}: {e}")))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(path, format!("not a PEM {what}: {e}")))?;
    if certs.is_empty() {
        return Err(err(path, format!("holds no PEM certificate (expected the {what})")));
    }
    Ok(certs)
}

/// Build the rustls configuration, reading and checking every file.
pub fn client_config(files: &TlsFiles) -> Result<Arc<ClientConfig>, TlsError> {
    let mut roots = RootCertStore::empty();
    match &files.ca_file {
        Some(ca) => {
            for cert in certificates(ca, "CA certificate")? {
                roots
                    .add(cert)
                    .map_err(|e| err(ca, format!("not a usable CA certificate: {e}")))?;
            }
        }
        None => {
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| err(Path::new("-"), e.to_string()))?
        .with_root_certificates(roots);
    let config = match &files.client {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let chain = certificates(cert, "client certificate")?;
            std::fs::metadata(key).map_err(|e| err(key, format!("cannot read the client key: {e}")))?;
            let key_der = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| err(key, format!("not a PEM private key (PKCS#8, PKCS#1 or SEC1): {e}")))?;
            builder
                .with_client_auth_cert(chain, key_der)
                .map_err(|e| err(key, format!("does not fit the client certificate: {e}")))?
        }
    };
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_material_names_the_file() {
        let tmp = tempfile::tempdir().expect("tmp");
        let missing = tmp.path().join("nope.pem");
        let e = client_config(&TlsFiles {
            ca_file: Some(missing.clone()),
            client: None,
        })
        .expect_err("missing file");
        assert!(e.to_string().starts_with(&missing.display().to_string()), "{e}");

        let junk = tmp.path().join("junk.pem");
        std::fs::write(&junk, "this is not a certificate\n").expect("write");
        let e = client_config(&TlsFiles {
            ca_file: Some(junk.clone()),
            client: None,
        })
        .expect_err("junk");
        assert!(e.to_string().contains("junk.pem"), "{e}");
        assert!(e.to_string().contains("no PEM certificate"), "{e}");
    }
}
