//! TLS to the broker: rustls with the ring provider, TLS 1.3 or 1.2, the webpki roots plus an
//! optional private CA. SNI and hostname verification are always on; there is no switch to turn
//! verification off.

use std::sync::Arc;

use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::BrokerError;
use crate::config::ExtraCa;

/// Builds the client TLS configuration with an explicit ring provider (no process-wide default).
pub(crate) fn client_config(
    extra_ca: Option<&ExtraCa>,
) -> Result<Arc<rustls::ClientConfig>, BrokerError> {
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(ca) = extra_ca {
        let certs = read_ca(ca)?;
        if certs.is_empty() {
            return Err(BrokerError::Config(format!(
                "extra CA {} holds no PEM certificate",
                describe(ca)
            )));
        }
        for cert in certs {
            roots.add(cert).map_err(|e| {
                BrokerError::Config(format!("extra CA {} is not usable: {e}", describe(ca)))
            })?;
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
    .map_err(|e| BrokerError::Config(format!("TLS setup: {e}")))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Arc::new(config))
}

fn describe(ca: &ExtraCa) -> String {
    match ca {
        ExtraCa::PemFile(path) => path.display().to_string(),
        ExtraCa::Pem(_) => "(PEM text)".to_owned(),
    }
}

fn read_ca(ca: &ExtraCa) -> Result<Vec<CertificateDer<'static>>, BrokerError> {
    let bad = |e: rustls_pki_types::pem::Error| {
        BrokerError::Config(format!("cannot read extra CA {}: {e}", describe(ca)))
    };
    match ca {
        ExtraCa::PemFile(path) => CertificateDer::pem_file_iter(path)
            .map_err(bad)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(bad),
        ExtraCa::Pem(text) => CertificateDer::pem_slice_iter(text)
            .collect::<Result<Vec<_>, _>>()
            .map_err(bad),
    }
}

/// Opens TCP and completes the TLS handshake with `host` as SNI and verified name.
pub(crate) async fn connect(
    config: Arc<rustls::ClientConfig>,
    host: &str,
    port: u16,
) -> Result<TlsStream<TcpStream>, BrokerError> {
    let name = ServerName::try_from(host.to_owned()).map_err(|e| {
        BrokerError::Config(format!("host {host:?} is not a valid server name: {e}"))
    })?;
    let tcp = TcpStream::connect((host, port))
        .await
        .map_err(|e| BrokerError::io(format!("connecting to {host}:{port}"), &e))?;
    // Quotes and orders are small frames: send them at once rather than batching.
    tcp.set_nodelay(true)
        .map_err(|e| BrokerError::io("setting TCP_NODELAY", &e))?;
    TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(|e| handshake_error(host, &e))
}

/// Tells an untrusted certificate apart from other handshake failures.
fn handshake_error(host: &str, err: &std::io::Error) -> BrokerError {
    match err
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>())
    {
        Some(rustls::Error::InvalidCertificate(reason)) => BrokerError::UntrustedCertificate {
            host: host.to_owned(),
            reason: format!("{reason:?}"),
        },
        Some(other) => BrokerError::Tls {
            host: host.to_owned(),
            reason: other.to_string(),
        },
        None => BrokerError::io(format!("TLS handshake with {host}"), err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_with_webpki_roots_only() {
        assert!(client_config(None).is_ok());
    }

    #[test]
    fn refuses_an_unreadable_or_empty_extra_ca() {
        let err = client_config(Some(&ExtraCa::PemFile("/nonexistent/ca.pem".into()))).unwrap_err();
        assert!(matches!(err, BrokerError::Config(_)), "{err}");
        assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
        let err = client_config(Some(&ExtraCa::Pem(b"not a pem".to_vec()))).unwrap_err();
        assert!(err.to_string().contains("no PEM certificate"), "{err}");
    }

    #[test]
    fn accepts_a_generated_ca() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = params.self_signed(&key).unwrap();
        let pem = ca.pem().into_bytes();
        assert!(client_config(Some(&ExtraCa::Pem(pem))).is_ok());
    }
}
