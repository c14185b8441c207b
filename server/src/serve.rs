//! Serving connections: plain HTTP on loopback, or TLS (rustls, TLS 1.2 and 1.3, HTTP/1.1
//! and h2 by ALPN), with the limits that keep a server answering under abuse.
//!
//! - At most [`ServeOptions::max_connections`] connections are open at once. The accept
//!   loop takes a permit before it accepts, so connections past the cap wait in the
//!   kernel's backlog while current ones keep being served, and the process never runs
//!   out of file descriptors.
//! - A client must finish the TLS handshake and send a request's headers within
//!   [`ServeOptions::header_timeout`], and an idle keep-alive connection is closed after
//!   the same time: idle and slowloris connections cannot hold the permits.
//! - An h2 connection is asked to close (GOAWAY, streams in flight finish) after
//!   [`ServeOptions::max_connection_age`]: h2 keeps idle connections open as long as the
//!   client answers pings, and a connection must not hold its permit for ever.
//! - Request bodies must arrive within [`ServeOptions::body_timeout`] (in `api::app`).
//! - The certificate and key are read again on [`TlsReloader::reload`] (the binary calls
//!   it on SIGHUP); connections already open keep the certificate they started with.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{self, ServerConfig};

use crate::AppState;

/// The peer address of a request's connection, as a request extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Peer(pub std::net::SocketAddr);

/// What answers a connection's requests: reads of metadata in memory at once
/// ([`crate::api::fast_read`]), everything else through the router, whose handlers learn
/// the peer address (for the audit trail) from a [`Peer`] extension.
#[derive(Clone)]
struct Front {
    state: AppState,
    app: axum::Router,
    peer: std::net::SocketAddr,
}

impl hyper::service::Service<hyper::Request<hyper::body::Incoming>> for Front {
    type Response = axum::response::Response;
    type Error = std::convert::Infallible;
    type Future = futures::future::Either<
        std::future::Ready<Result<Self::Response, Self::Error>>,
        tower::util::Oneshot<axum::Router, hyper::Request<hyper::body::Incoming>>,
    >;

    fn call(&self, mut request: hyper::Request<hyper::body::Incoming>) -> Self::Future {
        if let Some(response) = crate::api::fast_read(&self.state, &request) {
            return futures::future::Either::Left(std::future::ready(Ok(response)));
        }
        request.extensions_mut().insert(Peer(self.peer));
        futures::future::Either::Right(tower::ServiceExt::oneshot(self.app.clone(), request))
    }
}

/// Limits on connections.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// TLS certificate chain and key, reloadable; `None`: plain HTTP.
    pub tls: Option<TlsReloader>,
    /// Connections open at once; keep it below the process's file-descriptor limit.
    pub max_connections: usize,
    /// Time for the TLS handshake and for each request's headers, and the longest idle
    /// keep-alive pause.
    pub header_timeout: Duration,
    /// How long an h2 connection is served before it is asked to close.
    pub max_connection_age: Duration,
}

impl ServeOptions {
    /// Plain HTTP with the default limits.
    pub fn plain() -> Self {
        ServeOptions {
            tls: None,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            max_connection_age: DEFAULT_MAX_CONNECTION_AGE,
        }
    }
}

/// The default age at which an h2 connection is asked to close.
pub const DEFAULT_MAX_CONNECTION_AGE: Duration = Duration::from_secs(300);
/// Streams one h2 connection may have open at once.
const H2_MAX_STREAMS: u32 = 64;
/// The largest header block accepted (both protocols' default is larger).
const MAX_HEADER_BYTES: u32 = 64 * 1024;

/// The default cap on open connections.
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;
/// The default time allowed for a handshake or a request's headers.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("reading the TLS certificate chain {path}: {reason}")]
    Cert { path: PathBuf, reason: String },
    #[error("reading the TLS private key {path}: {reason}")]
    Key { path: PathBuf, reason: String },
    #[error("the TLS certificate and key do not go together: {0}")]
    Config(#[from] rustls::Error),
}

/// The TLS configuration in force, swapped whole on reload.
#[derive(Clone, Debug)]
pub struct TlsReloader {
    cert: PathBuf,
    key: PathBuf,
    current: Arc<RwLock<Arc<ServerConfig>>>,
}

impl TlsReloader {
    /// Reads `cert` (PEM chain, leaf first) and `key` (PEM, PKCS#8, PKCS#1 or SEC1).
    pub fn load(cert: &Path, key: &Path) -> Result<Self, TlsError> {
        let config = read_config(cert, key)?;
        Ok(TlsReloader {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            current: Arc::new(RwLock::new(config)),
        })
    }

    /// Reads the files again. On failure the configuration in force stays, and the error
    /// says why.
    pub fn reload(&self) -> Result<(), TlsError> {
        let config = read_config(&self.cert, &self.key)?;
        match self.current.write() {
            Ok(mut current) => *current = config,
            Err(poisoned) => *poisoned.into_inner() = config,
        }
        Ok(())
    }

    fn acceptor(&self) -> TlsAcceptor {
        let config = match self.current.read() {
            Ok(current) => Arc::clone(&current),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        };
        TlsAcceptor::from(config)
    }
}

fn read_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| TlsError::Cert {
            path: cert.to_path_buf(),
            reason: e.to_string(),
        })?;
    if chain.is_empty() {
        return Err(TlsError::Cert {
            path: cert.to_path_buf(),
            reason: "no PEM certificate in the file".into(),
        });
    }
    // The key's bytes are never part of an error message.
    let private = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Key {
        path: key.to_path_buf(),
        reason: match e {
            rustls::pki_types::pem::Error::NoItemsFound => "no PEM private key in the file".into(),
            rustls::pki_types::pem::Error::Io(io) => io.to_string(),
            _ => "not a PEM private key".into(),
        },
    })?;
    let mut config = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(chain, private)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Serves `listener` until `shutdown` resolves, then lets requests in flight finish. The
/// freshness task runs beside it and stops with it.
pub async fn run(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
    options: ServeOptions,
) -> std::io::Result<()> {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let freshness = tokio::spawn(crate::api::freshness_loop(state.clone(), stop_rx.clone()));
    let watch = tokio::spawn(crate::api::watch_loop(state.clone(), stop_rx));
    let app = crate::api::app(state.clone());
    let permits = Arc::new(Semaphore::new(options.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    // HTTP/1.1 for plain connections and TLS without ALPN, h2 when ALPN chose it: no
    // protocol sniffing, so the header timeout covers a connection from its first byte.
    let mut h1 = http1::Builder::new();
    h1.timer(TokioTimer::new())
        .header_read_timeout(options.header_timeout)
        .keep_alive(true);
    let mut h2 = http2::Builder::new(TokioExecutor::new());
    h2.timer(TokioTimer::new())
        .keep_alive_interval(Some(options.header_timeout))
        .keep_alive_timeout(options.header_timeout)
        .max_concurrent_streams(H2_MAX_STREAMS)
        .max_header_list_size(MAX_HEADER_BYTES);
    // h2 connections are not watched by `graceful`: each closes itself on this signal or
    // at its age limit, and shutdown waits for their permits.
    let (closing_tx, closing_rx) = tokio::sync::watch::channel(false);
    let max_age = options.max_connection_age;
    let (h1, h2) = (Arc::new(h1), Arc::new(h2));
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = Arc::clone(&permits).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors or a connection reset before accept: wait a
                    // moment rather than spin, and keep serving what is open.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Responses go out as they are written: without this, a response written in two
        // parts (h2's HEADERS then DATA, a TLS record then the next) waits for the peer's
        // delayed ACK, some 40 ms on Linux, under Nagle's algorithm.
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY not set");
        }
        let service = Front {
            state: state.clone(),
            app: app.clone(),
            peer,
        };
        let (h1, h2) = (Arc::clone(&h1), Arc::clone(&h2));
        let watcher = graceful.watcher();
        let acceptor = options.tls.as_ref().map(TlsReloader::acceptor);
        let handshake = options.header_timeout;
        let mut closing = closing_rx.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let served = match acceptor {
                Some(acceptor) => {
                    let stream =
                        match tokio::time::timeout(handshake, acceptor.accept(stream)).await {
                            Ok(Ok(stream)) => stream,
                            Ok(Err(e)) => {
                                tracing::debug!(%peer, error = %e, "TLS handshake failed");
                                return;
                            }
                            Err(_) => {
                                tracing::debug!(%peer, "TLS handshake timed out");
                                return;
                            }
                        };
                    if stream.get_ref().1.alpn_protocol() == Some(b"h2") {
                        drop(watcher);
                        let conn = h2.serve_connection(TokioIo::new(stream), service);
                        let mut conn = std::pin::pin!(conn);
                        let age = tokio::time::sleep(max_age);
                        let mut age = std::pin::pin!(age);
                        let mut asked = false;
                        loop {
                            tokio::select! {
                                served = conn.as_mut() => break served.map_err(|e| e.to_string()),
                                () = &mut age, if !asked => {
                                    conn.as_mut().graceful_shutdown();
                                    asked = true;
                                }
                                _ = closing.changed(), if !asked => {
                                    conn.as_mut().graceful_shutdown();
                                    asked = true;
                                }
                            }
                        }
                    } else {
                        let conn = h1.serve_connection(TokioIo::new(stream), service);
                        watcher.watch(conn).await.map_err(|e| e.to_string())
                    }
                }
                None => {
                    let conn = h1.serve_connection(TokioIo::new(stream), service);
                    watcher.watch(conn).await.map_err(|e| e.to_string())
                }
            };
            if let Err(e) = served {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    let _ = closing_tx.send(true);
    graceful.shutdown().await;
    // Every connection task holds a permit until it ends: all of them back means every
    // h2 connection finished too.
    let all = u32::try_from(options.max_connections.max(1)).unwrap_or(u32::MAX);
    let _ = permits.acquire_many(all).await;
    let _ = stop_tx.send(true);
    let _ = freshness.await;
    let _ = watch.await;
    Ok(())
}
