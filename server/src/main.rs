//! The `notar-server` binary: settings, logging, bind, serve until SIGINT or SIGTERM.

use std::process::ExitCode;

use clap::Parser;
use notar_server::config::{Args, Config, LogFormat};
use notar_server::{AppState, load_secret, run};
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
    std::fs::create_dir_all(&config.data_dir)
        .map_err(|e| format!("creating data directory {}: {e}", config.data_dir.display()))?;
    let secret = load_secret(&config.data_dir, std::env::var("NOTAR_SERVER_SECRET").ok())?;
    let listen = config.listen;
    let state = AppState::open(config, secret, notar_keys::KdfParams::default()).await?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| format!("listening on {listen}: {e}"))?;
    if !listen.ip().is_loopback() {
        tracing::warn!(
            %listen,
            "listening on a non-loopback address without authentication: anyone who can reach it can publish"
        );
    }
    tracing::info!(listen = %listener.local_addr()?, "notar-server ready");
    run(listener, state, shutdown_signal()).await?;
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

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
    tracing::info!("shutting down");
}
