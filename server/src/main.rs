//! The `notar-server` binary: settings, logging, bind, serve until SIGINT or SIGTERM.

use std::process::ExitCode;

use clap::Parser;
use notar_server::config::{Args, Config, LogFormat};
use notar_server::serve::{self, ServeOptions, TlsReloader};
use notar_server::{AppState, load_secret};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    let config = match Config::from_args(Args::parse()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("notar-server: error: {e}");
            return ExitCode::from(2);
        }
    };
    init_tracing(config.log_format);
    match serve(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("notar-server: error: {e}");
            ExitCode::from(2)
        }
    }
}

async fn serve(config: Config) -> Result<(), Box<dyn std::error::Error>> {
    notar_server::secure_data_dir(&config).map_err(|e| {
        format!(
            "preparing data directory {}: {e}",
            config.data_dir.display()
        )
    })?;
    let secret = load_secret(&config.data_dir, std::env::var("NOTAR_SERVER_SECRET").ok())?;
    let listen = config.listen;
    let tls = match &config.tls {
        Some((cert, key)) => Some(TlsReloader::load(cert, key)?),
        None => None,
    };
    if !listen.ip().is_loopback() {
        if tls.is_none() && !config.insecure_http {
            return Err(format!(
                "refusing to serve plain HTTP on the non-loopback address {listen}: give --tls-cert and --tls-key, \
                 or --insecure-http if a TLS-terminating proxy is in front"
            )
            .into());
        }
        if tls.is_none() {
            tracing::warn!(%listen, "--insecure-http: serving plain HTTP on a non-loopback address");
        }
        tracing::warn!(
            %listen,
            "listening on a non-loopback address without authentication: anyone who can reach it can publish"
        );
    }
    let options = ServeOptions {
        tls: tls.clone(),
        max_connections: config.max_connections,
        header_timeout: config.header_timeout,
    };
    let state = AppState::open(config.clone(), secret, notar_keys::KdfParams::default()).await?;
    // SQLite made its -wal and -shm files on open; they are kept private too.
    notar_server::secure_data_dir(&config)
        .map_err(|e| format!("securing data directory {}: {e}", config.data_dir.display()))?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| format!("listening on {listen}: {e}"))?;
    if let Some(tls) = tls {
        tokio::spawn(reload_on_sighup(tls));
    }
    let shutdown = shutdown_signal();
    tracing::info!(
        listen = %listener.local_addr()?,
        tls = options.tls.is_some(),
        "notar-server ready"
    );
    serve::run(listener, state, shutdown, options).await?;
    tracing::info!("stopped");
    Ok(())
}

fn init_tracing(format: LogFormat) {
    let filter = EnvFilter::try_from_env("NOTAR_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

/// Reads the TLS certificate and key again on every SIGHUP; a failed reload keeps the
/// certificate in force and logs why.
async fn reload_on_sighup(tls: TlsReloader) {
    let Ok(mut hangups) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
    else {
        tracing::warn!("cannot watch SIGHUP: the TLS certificate will not be reloaded");
        return;
    };
    while hangups.recv().await.is_some() {
        // Reading files is blocking work: off the async runtime.
        let reloader = tls.clone();
        let reloaded = tokio::task::spawn_blocking(move || reloader.reload()).await;
        let Ok(reloaded) = reloaded else {
            tracing::error!("reloading the TLS certificate panicked; the old one stays");
            continue;
        };
        match reloaded {
            Ok(()) => tracing::info!("reloaded the TLS certificate"),
            Err(e) => {
                tracing::error!(error = %e, "reloading the TLS certificate failed; the old one stays")
            }
        }
    }
}

/// A future that resolves on SIGINT or SIGTERM. The handlers are installed when this is
/// called, not when the future is first polled, so a signal sent as soon as the server
/// says it is ready is never lost to the default action.
fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    use tokio::signal::unix::{SignalKind, signal};
    let interrupt = signal(SignalKind::interrupt()).ok();
    let terminate = signal(SignalKind::terminate()).ok();
    async move {
        let wait = |s: Option<tokio::signal::unix::Signal>| async move {
            match s {
                Some(mut s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            () = wait(interrupt) => {}
            () = wait(terminate) => {}
        }
        tracing::info!("shutting down");
    }
}
