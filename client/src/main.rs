//! The `notar` binary: parses the command line, sets up tracing on stderr, runs the command
//! on a single-threaded runtime, and turns the outcome into stderr lines and an exit code.

use std::process::ExitCode;

use clap::Parser;
use notar::Error;
use notar::cli::Cli;
use notar::error::{EXIT_ERROR, render};
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.verbose);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("notar: error: starting the async runtime: {e}");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    match runtime.block_on(notar::cli::run(cli)) {
        Ok(()) | Err(Error::BrokenPipe) => ExitCode::SUCCESS,
        Err(e @ Error::Reported { .. }) => ExitCode::from(e.exit_code()),
        Err(e) => {
            eprint!("{}", render(&e));
            ExitCode::from(e.exit_code())
        }
    }
}

/// `-v` info, `-vv` debug, `-vvv` trace; `NOTAR_LOG` (an `EnvFilter` directive) overrides.
fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "notar=info,notar_tuf=info,notar_keys=info,warn",
        2 => "notar=debug,notar_tuf=debug,notar_keys=debug,info",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_env("NOTAR_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .without_time()
        .try_init();
}
