//! The simulator's TLS identity: a CA and a server certificate for `localhost` and `127.0.0.1`
//! generated into a directory (with `ca.pem` for clients to trust), or a given certificate and key.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::SimError;

/// File name of the CA certificate a client trusts.
pub const CA_FILE: &str = "ca.pem";
/// File name of the server certificate (chain: server then CA).
pub const SERVER_CERT_FILE: &str = "server.pem";
/// File name of the server's private key.
pub const SERVER_KEY_FILE: &str = "server.key";

/// Where the server's certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertificateSource {
    /// A directory holding (or receiving) `ca.pem`, `server.pem` and `server.key`: files already
    /// there are reused, so clients keep trusting the same CA across simulator restarts;
    /// missing ones are generated.
    Directory(PathBuf),
    /// An existing PEM certificate chain and PEM private key.
    Files {
        /// Server certificate first, then intermediates.
        cert_chain: PathBuf,
        /// The server's private key (PKCS#8, PKCS#1 or SEC1).
        private_key: PathBuf,
    },
}

/// The certificates written by [`generate_certificates`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedCertificates {
    /// The CA certificate clients should trust.
    pub ca_cert: PathBuf,
    /// The server certificate chain.
    pub server_cert: PathBuf,
    /// The server key.
    pub server_key: PathBuf,
}

/// Generates a fresh CA and a server certificate for `localhost` and `127.0.0.1` into `dir`
/// (created if missing), overwriting earlier files.
pub fn generate_certificates(dir: &Path) -> Result<GeneratedCertificates, SimError> {
    std::fs::create_dir_all(dir).map_err(|source| SimError::CertificateIo {
        path: dir.to_path_buf(),
        source,
    })?;
    let tls = |what: &str, e: rcgen::Error| SimError::Tls(format!("{what}: {e}"));

    let mut ca_params =
        CertificateParams::new(Vec::<String>::new()).map_err(|e| tls("CA parameters", e))?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "palm-oil-bot simulator CA");
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca_params.not_before = rcgen::date_time_ymd(2024, 1, 1);
    ca_params.not_after = rcgen::date_time_ymd(2049, 12, 31);
    let ca_key = KeyPair::generate().map_err(|e| tls("CA key", e))?;
    let ca_cert = ca_params
        .self_signed(&ca_key)
        .map_err(|e| tls("CA certificate", e))?;
    let issuer = Issuer::new(ca_params, ca_key);

    let mut server_params =
        CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .map_err(|e| tls("server parameters", e))?;
    server_params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    server_params.use_authority_key_identifier_extension = true;
    server_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    server_params.not_before = rcgen::date_time_ymd(2024, 1, 1);
    server_params.not_after = rcgen::date_time_ymd(2049, 12, 31);
    let server_key = KeyPair::generate().map_err(|e| tls("server key", e))?;
    let server_cert = server_params
        .signed_by(&server_key, &issuer)
        .map_err(|e| tls("server certificate", e))?;

    let files = GeneratedCertificates {
        ca_cert: dir.join(CA_FILE),
        server_cert: dir.join(SERVER_CERT_FILE),
        server_key: dir.join(SERVER_KEY_FILE),
    };
    write(&files.server_key, &server_key.serialize_pem(), true)?;
    write(
        &files.server_cert,
        &format!("{}{}", server_cert.pem(), ca_cert.pem()),
        false,
    )?;
    // The CA last: its presence tells a later start that the directory is complete.
    write(&files.ca_cert, &ca_cert.pem(), false)?;
    Ok(files)
}

/// The server's certificate chain and key, and the CA file clients should trust (if known).
#[derive(Debug)]
pub(crate) struct ServerIdentity {
    pub(crate) ca_cert: Option<PathBuf>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl ServerIdentity {
    /// Loads (and, for a directory, first generates if needed) the identity.
    pub(crate) fn prepare(source: &CertificateSource) -> Result<ServerIdentity, SimError> {
        match source {
            CertificateSource::Directory(dir) => {
                let complete = [CA_FILE, SERVER_CERT_FILE, SERVER_KEY_FILE]
                    .iter()
                    .all(|f| dir.join(f).is_file());
                let files = if complete {
                    GeneratedCertificates {
                        ca_cert: dir.join(CA_FILE),
                        server_cert: dir.join(SERVER_CERT_FILE),
                        server_key: dir.join(SERVER_KEY_FILE),
                    }
                } else {
                    generate_certificates(dir)?
                };
                let mut identity = ServerIdentity::load(&files.server_cert, &files.server_key)?;
                identity.ca_cert = Some(files.ca_cert);
                Ok(identity)
            }
            CertificateSource::Files {
                cert_chain,
                private_key,
            } => ServerIdentity::load(cert_chain, private_key),
        }
    }

    fn load(cert_chain: &Path, private_key: &Path) -> Result<ServerIdentity, SimError> {
        let pem_error = |path: &Path, e: rustls_pki_types::pem::Error| match e {
            rustls_pki_types::pem::Error::Io(source) => SimError::CertificateIo {
                path: path.to_path_buf(),
                source,
            },
            other => SimError::Tls(format!("{}: {other}", path.display())),
        };
        let chain = CertificateDer::pem_file_iter(cert_chain)
            .map_err(|e| pem_error(cert_chain, e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| pem_error(cert_chain, e))?;
        if chain.is_empty() {
            return Err(SimError::Tls(format!(
                "{}: no certificate in the file",
                cert_chain.display()
            )));
        }
        let key =
            PrivateKeyDer::from_pem_file(private_key).map_err(|e| pem_error(private_key, e))?;
        Ok(ServerIdentity {
            ca_cert: None,
            chain,
            key,
        })
    }

    /// A rustls server configuration with the ring provider chosen explicitly (never a global).
    pub(crate) fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, SimError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| SimError::Tls(format!("protocol versions: {e}")))?
            .with_no_client_auth()
            .with_single_cert(self.chain.clone(), self.key.clone_key())
            .map_err(|e| {
                SimError::Tls(format!(
                    "certificate and key do not form a usable identity: {e}"
                ))
            })?;
        Ok(Arc::new(config))
    }
}

/// Writes a PEM file; keys are readable by the owner only.
fn write(path: &Path, contents: &str, secret: bool) -> Result<(), SimError> {
    let io = |source| SimError::CertificateIo {
        path: path.to_path_buf(),
        source,
    };
    std::fs::write(path, contents).map_err(io)?;
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
    }
    #[cfg(not(unix))]
    let _ = secret;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_once_then_reuses_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        let source = CertificateSource::Directory(dir.path().join("certs"));
        let first = ServerIdentity::prepare(&source).unwrap();
        let ca_path = first.ca_cert.clone().unwrap();
        let ca = std::fs::read_to_string(&ca_path).unwrap();
        assert!(ca.starts_with("-----BEGIN CERTIFICATE-----"));
        assert_eq!(first.chain.len(), 2, "server certificate then CA");
        first.server_config().unwrap();
        let second = ServerIdentity::prepare(&source).unwrap();
        assert_eq!(
            std::fs::read_to_string(&ca_path).unwrap(),
            ca,
            "CA kept across restarts"
        );
        assert_eq!(second.chain, first.chain);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("certs").join(SERVER_KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "key not readable by others");
        }
    }

    #[test]
    fn loads_given_files_and_reports_bad_ones() {
        let dir = tempfile::tempdir().unwrap();
        let files = generate_certificates(dir.path()).unwrap();
        let source = CertificateSource::Files {
            cert_chain: files.server_cert.clone(),
            private_key: files.server_key.clone(),
        };
        let identity = ServerIdentity::prepare(&source).unwrap();
        assert!(identity.ca_cert.is_none());
        identity.server_config().unwrap();

        let missing = CertificateSource::Files {
            cert_chain: dir.path().join("nope.pem"),
            private_key: files.server_key.clone(),
        };
        assert!(matches!(
            ServerIdentity::prepare(&missing).unwrap_err(),
            SimError::CertificateIo { .. }
        ));
        let swapped = CertificateSource::Files {
            cert_chain: files.server_key.clone(),
            private_key: files.server_cert,
        };
        let err = ServerIdentity::prepare(&swapped).unwrap_err();
        assert!(matches!(err, SimError::Tls(_)), "{err}");
    }
}
