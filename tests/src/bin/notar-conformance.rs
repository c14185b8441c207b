//! notar-conformance: the TUF client workflow of notar-tuf behind the client-under-test CLI
//! of the TUF conformance suite, so the workflow can be run against that suite.
//!
//! ```text
//! notar-conformance --metadata-dir DIR init TRUSTED_ROOT_FILE
//! notar-conformance --metadata-url URL --metadata-dir DIR refresh
//! notar-conformance --metadata-url URL --metadata-dir DIR --target-name NAME [--target-name NAME …]
//!                   --target-dir TDIR --target-base-url TURL download
//! ```
//!
//! Options come before the subcommand. Exit codes: 0 success; 1 any failure (including bad
//! arguments). Diagnostics go to stderr; nothing is printed on stdout.
//!
//! - `init` copies the root into `DIR/root.json`, with no checks and no network.
//! - `refresh` runs the workflow (root chain, timestamp, snapshot, top-level targets)
//!   against `URL<version>.<role>.json` and `URLtimestamp.json`.
//! - `download` refreshes, finds each target through the delegations, and writes it into
//!   `TDIR` unless a file with the right length and hashes is already there. A target is
//!   fetched from `TURL<dir>/<sha256>.<basename>` when root sets consistent snapshots
//!   (`TURL<path>` otherwise), limited to its signed length, and checked against its length
//!   and every hash before it is written (temp file + rename). Its file name in `TDIR` is the
//!   target path percent-encoded like a role name (`dir%2Ffile.txt`), as python-tuf does: one
//!   flat directory, no path from the repository ever becomes a directory, and a target
//!   downloaded again lands on the same name.
//!
//! `DIR`'s top level holds only the current trusted metadata — `root.json`,
//! `timestamp.json`, `snapshot.json`, `targets.json` and `<role>.json` with the role
//! percent-encoded — as the exact bytes served; it is rewritten after every update, failed or
//! not. Temporary files live in the subfolder `DIR/tmp/`.

use std::collections::BTreeSet;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use notar_tuf::RoleName;
use notar_tuf::client::{
    Fetch, FetchError, Limits, UpdateError, Updater, encode_role, verify_target,
};
use percent_encoding::{AsciiSet, CONTROLS, percent_decode_str, utf8_percent_encode};
use time::OffsetDateTime;
use url::Url;

/// Characters escaped in one segment of a target's URL path: what a URL path cannot carry
/// literally, plus `%` (a target name is a name, not an already-encoded URL).
const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b'\\')
    .add(b'^')
    .add(b'|');

#[derive(Debug, Parser)]
#[command(
    name = "notar-conformance",
    about = "notar-tuf's client workflow behind the TUF conformance suite's client CLI"
)]
struct Cli {
    /// Where the trusted metadata is kept.
    #[arg(long, value_name = "DIR")]
    metadata_dir: PathBuf,
    /// Base URL of the repository's metadata.
    #[arg(long, value_name = "URL")]
    metadata_url: Option<String>,
    /// A target path to download (repeatable).
    #[arg(long = "target-name", value_name = "NAME")]
    target_names: Vec<String>,
    /// Where downloaded targets are written.
    #[arg(long, value_name = "DIR")]
    target_dir: Option<PathBuf>,
    /// Base URL of the repository's targets.
    #[arg(long, value_name = "URL")]
    target_base_url: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Copy TRUSTED_ROOT into the metadata directory (no checks, no network).
    Init {
        #[arg(value_name = "TRUSTED_ROOT")]
        trusted_root: PathBuf,
    },
    /// Update the trusted metadata from the repository.
    Refresh,
    /// Refresh, then download and verify each --target-name into --target-dir.
    Download,
}

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error("{0}")]
    Usage(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Update(#[from] UpdateError),
    #[error("target {0}: no role trusted for this path lists it")]
    TargetNotFound(String),
    #[error("downloading target {target}: {source}")]
    TargetFetch {
        target: String,
        #[source]
        source: FetchError,
    },
    #[error("downloading target {0}: not found on the server")]
    TargetMissing(String),
}

fn io_failure(what: impl Into<String>) -> impl FnOnce(io::Error) -> Failure {
    let what = what.into();
    move |source| Failure::Io { what, source }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("notar-conformance: error: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            report(&e);
            ExitCode::FAILURE
        }
    }
}

fn report(err: &Failure) {
    let top = err.to_string();
    let mut stderr = io::stderr().lock();
    let _ = writeln!(stderr, "notar-conformance: error: {top}");
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        let line = cause.to_string();
        // Most messages already end with their cause; print only what is new.
        if !top.contains(&line) {
            let _ = writeln!(stderr, "caused by: {line}");
        }
        source = cause.source();
    }
}

async fn run(cli: Cli) -> Result<(), Failure> {
    match &cli.command {
        Command::Init { trusted_root } => init(&cli.metadata_dir, trusted_root),
        Command::Refresh => {
            let mut updater = open(&cli)?;
            update(&mut updater, &cli.metadata_dir).await
        }
        Command::Download => download(&cli).await,
    }
}

fn init(dir: &Path, trusted_root: &Path) -> Result<(), Failure> {
    let root = fs::read(trusted_root).map_err(io_failure(format!(
        "reading the trusted root {}",
        trusted_root.display()
    )))?;
    fs::create_dir_all(dir).map_err(io_failure(format!("creating {}", dir.display())))?;
    write_atomically(dir, &dir.join("tmp"), "root.json", &root)
}

/// The metadata URL with the trailing `/` that file names are appended to.
fn base_url(url: &str) -> Result<String, Failure> {
    let base = if url.ends_with('/') {
        url.to_owned()
    } else {
        format!("{url}/")
    };
    Url::parse(&base).map_err(|e| Failure::Usage(format!("bad URL {url:?}: {e}")))?;
    Ok(base)
}

/// An updater on the trusted root in `DIR`, offered every other metadata file kept there.
fn open(cli: &Cli) -> Result<Updater<HttpFetch>, Failure> {
    let url = cli
        .metadata_url
        .as_deref()
        .ok_or_else(|| Failure::Usage("--metadata-url is required".into()))?;
    let fetch = HttpFetch {
        http: http_client()?,
        base: base_url(url)?,
    };
    let dir = &cli.metadata_dir;
    let root = fs::read(dir.join("root.json")).map_err(io_failure(format!(
        "reading {} (run init first)",
        dir.join("root.json").display()
    )))?;
    // The time the update starts, read once (specification §5.1). OffsetDateTime::now_utc
    // reads std's SystemTime, which on Linux calls the C library's clock_gettime through
    // glibc's dynamic symbol, so libfaketime (LD_PRELOAD) shifts it as the suite expects.
    let now = OffsetDateTime::now_utc();
    let mut updater = Updater::new(root, fetch, now, Limits::default())?;
    for (name, role) in kept_roles(dir)? {
        let path = dir.join(&name);
        let bytes = fs::read(&path).map_err(io_failure(format!("reading {}", path.display())))?;
        if let Err(e) = updater.load_trusted(&role, bytes) {
            // No longer verifiable (the root changed under it): not a rollback reference.
            eprintln!("notar-conformance: dropping kept {name}: {e}");
        }
    }
    Ok(updater)
}

/// The metadata files in `dir` other than root, with the role each stands for.
fn kept_roles(dir: &Path) -> Result<Vec<(String, RoleName)>, Failure> {
    let mut roles = Vec::new();
    let entries = fs::read_dir(dir).map_err(io_failure(format!("listing {}", dir.display())))?;
    for entry in entries {
        let entry = entry.map_err(io_failure(format!("listing {}", dir.display())))?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        let Some(stem) = name.strip_suffix(".json") else {
            continue;
        };
        if name == "root.json" || !entry.path().is_file() {
            continue;
        }
        let decoded = percent_decode_str(stem).decode_utf8_lossy().into_owned();
        match RoleName::new(decoded) {
            Ok(role) => roles.push((name, role)),
            Err(e) => eprintln!("notar-conformance: ignoring {name}: {e}"),
        }
    }
    roles.sort();
    Ok(roles)
}

/// Refreshes and persists what is trusted afterwards, whether the refresh succeeded or not.
async fn update(updater: &mut Updater<HttpFetch>, dir: &Path) -> Result<(), Failure> {
    let result = updater.refresh().await;
    persist(dir, updater)?;
    Ok(result?)
}

async fn download(cli: &Cli) -> Result<(), Failure> {
    let target_dir = cli
        .target_dir
        .as_deref()
        .ok_or_else(|| Failure::Usage("--target-dir is required".into()))?;
    let target_base = base_url(
        cli.target_base_url
            .as_deref()
            .ok_or_else(|| Failure::Usage("--target-base-url is required".into()))?,
    )?;
    if cli.target_names.is_empty() {
        return Err(Failure::Usage(
            "at least one --target-name is required".into(),
        ));
    }
    let mut updater = open(cli)?;
    update(&mut updater, &cli.metadata_dir).await?;
    fs::create_dir_all(target_dir)
        .map_err(io_failure(format!("creating {}", target_dir.display())))?;
    for name in &cli.target_names {
        let found = updater.find_target(name).await;
        // The search may have loaded delegated roles: keep them, whatever happened.
        persist(&cli.metadata_dir, &updater)?;
        let found = found?.ok_or_else(|| Failure::TargetNotFound(name.clone()))?;
        let consistent = updater.root().consistent_snapshot.unwrap_or(false);
        fetch_target(
            updater.fetcher(),
            &target_base,
            consistent,
            name,
            &found.target,
            target_dir,
        )
        .await?;
    }
    Ok(())
}

async fn fetch_target(
    fetch: &HttpFetch,
    base: &str,
    consistent: bool,
    name: &str,
    target: &notar_tuf::TargetFile,
    target_dir: &Path,
) -> Result<(), Failure> {
    let file_name = encode_role(name);
    let path = target_dir.join(&file_name);
    if let Ok(existing) = fs::read(&path)
        && verify_target(name, target, &existing).is_ok()
    {
        return Ok(());
    }
    let url = target_url(base, name, target, consistent)?;
    let bytes = fetch
        .get(url, target.length)
        .await
        .map_err(|source| Failure::TargetFetch {
            target: name.to_owned(),
            source,
        })?
        .ok_or_else(|| Failure::TargetMissing(name.to_owned()))?;
    verify_target(name, target, &bytes)?;
    let tmp = target_dir.to_path_buf();
    write_atomically(target_dir, &tmp, &file_name, &bytes)
}

/// `<base><dir>/<hash>.<basename>` with consistent snapshots (the sha256 if the target has
/// one, else its first hash), `<base><path>` without; each segment percent-encoded.
fn target_url(
    base: &str,
    name: &str,
    target: &notar_tuf::TargetFile,
    consistent: bool,
) -> Result<Url, Failure> {
    let path = if consistent {
        let hash = target
            .hashes
            .get("sha256")
            .or_else(|| target.hashes.values().next())
            .ok_or_else(|| Failure::TargetNotFound(name.to_owned()))?;
        match name.rsplit_once('/') {
            Some((dir, basename)) => format!("{dir}/{hash}.{basename}"),
            None => format!("{hash}.{name}"),
        }
    } else {
        name.to_owned()
    };
    let encoded: Vec<String> = path
        .split('/')
        .map(|segment| utf8_percent_encode(segment, SEGMENT).to_string())
        .collect();
    let url = format!("{base}{}", encoded.join("/"));
    Url::parse(&url).map_err(|e| Failure::Usage(format!("bad target URL {url:?}: {e}")))
}

/// Writes every trusted file into `dir` (only files whose bytes changed) and removes the
/// top-level metadata files the updater no longer trusts.
fn persist<F: Fetch>(dir: &Path, updater: &Updater<F>) -> Result<(), Failure> {
    let files = updater.trusted_files();
    let tmp = dir.join("tmp");
    let mut keep = BTreeSet::new();
    for (name, bytes) in &files {
        keep.insert(name.as_str());
        if fs::read(dir.join(name)).is_ok_and(|old| old == *bytes) {
            continue;
        }
        write_atomically(dir, &tmp, name, bytes)?;
    }
    let entries = fs::read_dir(dir).map_err(io_failure(format!("listing {}", dir.display())))?;
    for entry in entries {
        let entry = entry.map_err(io_failure(format!("listing {}", dir.display())))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.ends_with(".json") && entry.path().is_file() && !keep.contains(name) {
            fs::remove_file(entry.path())
                .map_err(io_failure(format!("removing {}", entry.path().display())))?;
        }
    }
    Ok(())
}

/// Writes `dir/name` by way of a temporary file in `tmp_dir` (same file system), synced
/// before the rename, so no reader ever sees a partial file.
fn write_atomically(dir: &Path, tmp_dir: &Path, name: &str, bytes: &[u8]) -> Result<(), Failure> {
    let dest = dir.join(name);
    let what = format!("writing {}", dest.display());
    fs::create_dir_all(tmp_dir).map_err(io_failure(what.clone()))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".notar-")
        .tempfile_in(tmp_dir)
        .map_err(io_failure(what.clone()))?;
    tmp.write_all(bytes).map_err(io_failure(what.clone()))?;
    tmp.as_file().sync_all().map_err(io_failure(what.clone()))?;
    tmp.persist(&dest)
        .map_err(|e| io_failure(what.clone())(e.error))?;
    if let Ok(d) = fs::File::open(dir) {
        // Makes the rename itself durable; not every platform can sync a directory.
        let _ = d.sync_all();
    }
    Ok(())
}

fn http_client() -> Result<reqwest::Client, Failure> {
    reqwest::Client::builder()
        // The suite serves on loopback; a proxy from the environment would only get in the way.
        .no_proxy()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(60))
        .build()
        .map_err(|e| Failure::Usage(format!("building the HTTP client: {e}")))
}

/// Fetches metadata over HTTP, relative to the metadata base URL.
#[derive(Clone, Debug)]
struct HttpFetch {
    http: reqwest::Client,
    /// The metadata URL, ending in `/`.
    base: String,
}

impl HttpFetch {
    /// GETs `url`, reading at most `max_len` bytes of body. 404 and 403 mean "not there"
    /// (what static hosting answers for a missing file).
    async fn get(&self, url: Url, max_len: u64) -> Result<Option<Vec<u8>>, FetchError> {
        let transport = |e: reqwest::Error| FetchError::Transport(e.to_string());
        let mut response = self.http.get(url).send().await.map_err(transport)?;
        let status = response.status();
        if status == reqwest::StatusCode::NOT_FOUND || status == reqwest::StatusCode::FORBIDDEN {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(FetchError::Transport(format!("HTTP status {status}")));
        }
        if response.content_length().is_some_and(|n| n > max_len) {
            return Err(FetchError::TooLarge { limit: max_len });
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(transport)? {
            if (body.len() + chunk.len()) as u64 > max_len {
                return Err(FetchError::TooLarge { limit: max_len });
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Some(body))
    }
}

impl Fetch for HttpFetch {
    fn fetch(
        &self,
        name: &str,
        max_len: u64,
    ) -> impl Future<Output = Result<Option<Vec<u8>>, FetchError>> + Send {
        let url = Url::parse(&format!("{}{name}", self.base));
        let this = self.clone();
        async move {
            let url = url.map_err(|e| FetchError::Transport(format!("bad URL: {e}")))?;
            this.get(url, max_len).await
        }
    }
}
