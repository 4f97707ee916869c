//! TLS for IMAP (implicit TLS and STARTTLS), with rustls and the web PKI roots.
//!
//! The crypto provider is passed explicitly, so a process where several crates enabled
//! different rustls providers still connects (no process-wide default is needed).

use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

/// Wraps `io` in TLS for `host`, checking the server's certificate and name.
pub async fn connect<IO>(host: &str, io: IO) -> Result<TlsStream<IO>, String>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let roots = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from(host.to_string()).map_err(|e| e.to_string())?;
    TlsConnector::from(Arc::new(config))
        .connect(name, io)
        .await
        .map_err(|e| e.to_string())
}
