//! notar-bench-publish: publishes a repository with N targets to a running notar-server and
//! reports how long the server takes to accept each targets update. Used by `bench/http.sh`.
//!
//! Usage: `notar-bench-publish --server URL --gun GUN --targets N [--publishes R]`
//!    or: `notar-bench-publish --server URL --gun PREFIX --targets N --repos M [--concurrency C]`
//!
//! With `--repos`, it fills the server instead: M repositories `PREFIX-0` … `PREFIX-(M-1)`,
//! each published once (root, targets with N targets; the server signs snapshot and
//! timestamp), C at a time (default 8), and prints `repos=M seconds=… per_second=…`.
//!
//! Publishes root v1 and targets v1 (N targets, snapshot signed by the server), then R more
//! versions of targets, each with N targets of which one is new, so every upload changes
//! content. The publisher signs before the clock starts: each measurement is one upload's
//! HTTP round trip, which covers the server's validation, its signing of snapshot and
//! timestamp, and the store transaction.
//!
//! Prints one line on stdout:
//! `targets=N publishes=R init_ms=… median_ms=… p90_ms=… min_ms=… max_ms=…`.
//! Exit codes: 0 done; 1 the server refused an upload; 2 bad arguments or other errors.

use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use notar_tests::repo::test_key;
use notar_tests::server::{Publisher, SnapshotKey};
use notar_tuf::Signed;

const USAGE: &str = "usage: notar-bench-publish --server URL --gun GUN --targets N \
                     [--publishes R | --repos M [--concurrency C]]";

#[derive(Debug)]
struct Args {
    /// Base URL of the server, `http://127.0.0.1:PORT`.
    server: String,
    /// The repository to publish; should not exist yet (init publishes root v1).
    gun: String,
    /// Targets in every version of targets.
    targets: usize,
    /// Timed updates after the first publish.
    publishes: usize,
    /// Fill mode: how many repositories to publish (named `<gun>-<i>`).
    repos: Option<usize>,
    /// Fill mode: publishes in flight at once.
    concurrency: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut server = None;
    let mut gun = None;
    let mut targets = None;
    let mut publishes = 20;
    let mut repos = None;
    let mut concurrency = 8;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        let count = |v: String| v.parse::<usize>().map_err(|e| format!("{flag} {v}: {e}"));
        match flag.as_str() {
            "--server" => server = Some(value()?.trim_end_matches('/').to_owned()),
            "--gun" => gun = Some(value()?),
            "--targets" => targets = Some(count(value()?)?),
            "--publishes" => publishes = count(value()?)?,
            "--repos" => repos = Some(count(value()?)?),
            "--concurrency" => concurrency = count(value()?)?.max(1),
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    match (server, gun, targets) {
        (Some(server), Some(gun), Some(targets)) if targets > 0 => Ok(Args {
            server,
            gun,
            targets,
            publishes,
            repos,
            concurrency,
        }),
        _ => Err("--server, --gun and --targets (at least 1) are required".to_owned()),
    }
}

/// Why a run stopped.
#[derive(Debug)]
enum Failure {
    /// The server answered an upload with an error status.
    Refused(String),
    /// Anything else: signing, the connection.
    Other(String),
}

/// Tag names of targets version `version`: `tag-0` … `tag-(N-2)` and `build-<version>`.
fn tags(count: usize, version: u64) -> Vec<String> {
    (0..count - 1)
        .map(|i| format!("tag-{i}"))
        .chain([format!("build-{version}")])
        .collect()
}

/// Uploads `files` and returns how long the server took to accept them.
async fn timed_upload(
    publisher: &Publisher,
    files: Vec<(String, Vec<u8>)>,
) -> Result<Duration, Failure> {
    let start = Instant::now();
    let response = publisher.upload(files).await;
    let status = response.status();
    let body = response
        .text()
        .await
        .map_err(|e| Failure::Other(format!("reading the response: {e}")))?;
    let took = start.elapsed();
    if status.is_success() {
        Ok(took)
    } else {
        Err(Failure::Refused(format!("{status}: {body}")))
    }
}

/// Targets `version` holding `count` targets, as an upload.
fn targets_upload(publisher: &Publisher, count: usize, version: u64) -> Vec<(String, Vec<u8>)> {
    let names = tags(count, version);
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let signed = publisher.sign_targets(publisher.make_targets(version, &names));
    vec![("targets".to_owned(), signed.as_bytes().to_vec())]
}

/// Publishes root v1 and targets v1 of `gun`; returns the publisher and the upload's time.
async fn first_publish(
    http: &reqwest::Client,
    args: &Args,
    gun: &str,
) -> Result<(Publisher, Duration), Failure> {
    let mut publisher = Publisher {
        http: http.clone(),
        server: args.server.clone(),
        gun: gun.to_owned(),
        root_key: test_key(11),
        targets_key: test_key(12),
        snapshot_key: test_key(13),
        snapshot: SnapshotKey::Server,
        timestamp_public: None,
        snapshot_public: None,
    };
    let root = publisher.make_root(1).await;
    let root = Signed::sign(root, &[&publisher.root_key])
        .map_err(|e| Failure::Other(format!("signing root: {e}")))?;
    let mut init = vec![("root".to_owned(), root.as_bytes().to_vec())];
    init.extend(targets_upload(&publisher, args.targets, 1));
    let took = timed_upload(&publisher, init).await?;
    Ok((publisher, took))
}

async fn bench(args: &Args) -> Result<(Duration, Vec<Duration>), Failure> {
    let (publisher, init) = first_publish(&reqwest::Client::new(), args, &args.gun).await?;

    let mut updates = Vec::with_capacity(args.publishes);
    for version in (2..).take(args.publishes) {
        let files = targets_upload(&publisher, args.targets, version);
        updates.push(timed_upload(&publisher, files).await?);
    }
    Ok((init, updates))
}

/// Fill mode: publishes `repos` repositories, `concurrency` at a time; returns the time.
async fn fill(args: &Args, repos: usize) -> Result<Duration, Failure> {
    use futures::StreamExt;
    let http = reqwest::Client::new();
    let start = Instant::now();
    let mut publishes = futures::stream::iter(0..repos)
        .map(|i| {
            let http = &http;
            async move {
                first_publish(http, args, &format!("{}-{i}", args.gun))
                    .await
                    .map(drop)
            }
        })
        .buffer_unordered(args.concurrency);
    while let Some(done) = publishes.next().await {
        done?;
    }
    Ok(start.elapsed())
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

/// The value at quantile `q` (nearest rank) of sorted `values`.
fn quantile(sorted: &[Duration], q: f64) -> Duration {
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("notar-bench-publish: error: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    if let Some(repos) = args.repos {
        let line = match fill(&args, repos).await {
            Ok(took) => format!(
                "repos={repos} seconds={:.2} per_second={:.0}",
                took.as_secs_f64(),
                repos as f64 / took.as_secs_f64()
            ),
            Err(Failure::Refused(e) | Failure::Other(e)) => {
                eprintln!("notar-bench-publish: error: {e}");
                return ExitCode::from(1);
            }
        };
        return print_line(&line);
    }
    let (init, mut updates) = match bench(&args).await {
        Ok(result) => result,
        Err(Failure::Refused(e)) => {
            eprintln!("notar-bench-publish: error: the server refused an upload: {e}");
            return ExitCode::from(1);
        }
        Err(Failure::Other(e)) => {
            eprintln!("notar-bench-publish: error: {e}");
            return ExitCode::from(2);
        }
    };
    updates.sort();
    let mut line = format!(
        "targets={} publishes={} init_ms={}",
        args.targets,
        updates.len(),
        ms(init)
    );
    if !updates.is_empty() {
        line += &format!(
            " median_ms={} p90_ms={} min_ms={} max_ms={}",
            ms(quantile(&updates, 0.5)),
            ms(quantile(&updates, 0.9)),
            ms(updates[0]),
            ms(updates[updates.len() - 1]),
        );
    }
    print_line(&line)
}

fn print_line(line: &str) -> ExitCode {
    match writeln!(std::io::stdout().lock(), "{line}") {
        Ok(()) => ExitCode::SUCCESS,
        // A closed stdout (broken pipe) is not worth an error.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("notar-bench-publish: error: writing the result: {e}");
            ExitCode::from(2)
        }
    }
}
