//! TLS for the API (rustls with aws-lc-rs, the provider lettre and reqwest already use): the
//! configured PEM certificate and key, and a listener that hands axum finished TLS streams.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::server::TlsStream;

use crate::config::ServerSettings;

/// A client gets this long to finish its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("server.{set} is set but server.{missing} is not: TLS needs both")]
    Half {
        set: &'static str,
        missing: &'static str,
    },
    #[error("server.{field} ({path}): {message}")]
    Pem {
        field: &'static str,
        path: PathBuf,
        message: String,
    },
    #[error("server.tls_cert and server.tls_key do not make a usable TLS setup: {0}")]
    Config(#[from] rustls::Error),
}

/// The acceptor for the configured certificate, or `None` when TLS is not configured.
pub fn acceptor(settings: &ServerSettings) -> Result<Option<TlsAcceptor>, TlsError> {
    let (cert, key) = (&settings.tls_cert, &settings.tls_key);
    match (cert.as_os_str().is_empty(), key.as_os_str().is_empty()) {
        (true, true) => return Ok(None),
        (false, true) => {
            return Err(TlsError::Half {
                set: "tls_cert",
                missing: "tls_key",
            });
        }
        (true, false) => {
            return Err(TlsError::Half {
                set: "tls_key",
                missing: "tls_cert",
            });
        }
        (false, false) => {}
    }
    let pem = |field, path: &Path, message: String| TlsError::Pem {
        field,
        path: path.to_path_buf(),
        message,
    };
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| pem("tls_cert", cert, e.to_string()))?;
    if certs.is_empty() {
        return Err(pem("tls_cert", cert, "no certificate in the file".into()));
    }
    let private =
        PrivateKeyDer::from_pem_file(key).map_err(|e| pem("tls_key", key, e.to_string()))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, private)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Some(TlsAcceptor::from(Arc::new(config))))
}

/// Accepts TCP connections and completes each handshake in a task of its own, so a slow or
/// broken client never holds up the others; axum serves the streams that come out.
pub struct TlsListener {
    streams: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    addr: SocketAddr,
}

impl TlsListener {
    pub fn new(listener: TcpListener, acceptor: TlsAcceptor, addr: SocketAddr) -> Self {
        let (tx, streams) = mpsc::channel(64);
        tokio::spawn(accept_loop(listener, acceptor, tx));
        Self { streams, addr }
    }
}

/// Runs until the listener is dropped (the server stopped).
async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    tx: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
) {
    loop {
        let accepted = tokio::select! {
            () = tx.closed() => return,
            accepted = listener.accept() => accepted,
        };
        let (tcp, peer) = match accepted {
            Ok(conn) => conn,
            Err(error) => {
                // Out of file descriptors and the like: wait rather than spin.
                tracing::warn!(%error, "accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let (acceptor, tx) = (acceptor.clone(), tx.clone());
        tokio::spawn(async move {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => {
                    let _ = tx.send((stream, peer)).await;
                }
                Ok(Err(error)) => tracing::debug!(%peer, %error, "TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        });
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.streams.recv().await {
            Some(conn) => conn,
            // The accept loop only ends when this listener is dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.addr)
    }
}
