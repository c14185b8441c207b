//! The operations drill: three `notar-server` processes share one PostgreSQL. Eight CI
//! jobs sign their own tags through different servers while readers read through the
//! others, and one server is killed with SIGKILL while its jobs are publishing.
//!
//! What must hold: every job lands every tag (a job whose server died fails over to
//! another, as behind a load balancer); no version of any role is skipped or written
//! twice; every reader sees each new timestamp within the cache TTL; the repository's
//! whole chain still verifies (`notar-server check`).

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "tests: a failed step should stop the test with its message"
)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use notar_server::store::Store as _;
use notar_server::store::sql::SqlStore;
use notar_tests::process::spawn_ready;
use notar_tests::server::Backend;
use serde_json::Value;

mod common;

const GUN: &str = "localhost:5000/team/drill";
const SECRET: &str = "drill secret shared by the three servers";
/// The servers' memory-cache TTL: the longest a reader may see an older timestamp.
const CACHE_TTL: Duration = Duration::from_secs(2);

/// `notar-server`, built beside `notar` by `cargo test --workspace`.
fn server_binary() -> PathBuf {
    let path = Path::new(common::BIN).with_file_name("notar-server");
    assert!(
        path.exists(),
        "{} is missing: build it first (cargo build -p notar-server)",
        path.display()
    );
    path
}

/// One `notar-server` process on the shared database, killed when dropped.
struct ServerProcess {
    child: Child,
    url: String,
}

impl ServerProcess {
    fn start(database: &str, data_dir: &Path) -> Self {
        let (child, addr) = spawn_ready(
            Command::new(server_binary())
                .args([
                    "--listen",
                    "127.0.0.1:0",
                    "--database",
                    database,
                    "--data-dir",
                ])
                .arg(data_dir)
                .args(["--cache-ttl-ms", &CACHE_TTL.as_millis().to_string()])
                .env("NOTAR_SERVER_SECRET", SECRET)
                .env("NOTAR_LOG", "info"),
        );
        Self {
            child,
            url: format!("http://{addr}"),
        }
    }

    /// SIGKILL: no shutdown, no flush, whatever it was doing.
    fn kill_9(&mut self) {
        self.child.kill().expect("kill -9");
        self.child.wait().expect("reaped");
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn env(server: &str, trust: &Path) -> Vec<(String, String)> {
    [
        ("NOTAR_SERVER", server),
        ("NOTAR_TRUST_DIR", trust.to_str().expect("utf-8")),
        ("NOTAR_KDF", "test"),
        ("NOTAR_ROOT_PASSPHRASE", "root passphrase"),
        ("NOTAR_TARGETS_PASSPHRASE", "targets passphrase"),
    ]
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .to_vec()
}

async fn sign(server: &str, trust: &Path, tag: &str, n: u8) -> common::Run {
    let reference = format!("{GUN}:{tag}");
    let digest = format!("sha256:{}", format!("{n:02x}").repeat(32));
    let env = env(server, trust);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    common::run_notar(
        &[
            "trust", "sign", &reference, "--digest", &digest, "--size", "100",
        ],
        &env,
        Duration::from_secs(180),
    )
    .await
}

/// The version in a timestamp document.
fn timestamp_version(body: &[u8]) -> Option<u64> {
    let doc: Value = serde_json::from_slice(body).ok()?;
    doc["signed"]["version"].as_u64()
}

/// What one reader saw of one server: (when, version) pairs through the cache, and the
/// same through `Cache-Control: no-cache`, the database's truth at that moment.
#[derive(Default)]
struct Sightings {
    cached: Vec<(Instant, u64)>,
    truth: Vec<(Instant, u64)>,
}

/// Reads the timestamp through `server` every 50 ms until `stop`, both ways.
async fn read_until(server: String, stop: Arc<AtomicBool>) -> Sightings {
    let client = reqwest::Client::new();
    let url = format!("{server}/v2/{GUN}/_trust/tuf/timestamp.json");
    let mut seen = Sightings::default();
    while !stop.load(Ordering::Relaxed) {
        for fresh in [false, true] {
            let mut request = client.get(&url);
            if fresh {
                request = request.header("cache-control", "no-cache");
            }
            let Ok(response) = request.send().await else {
                continue;
            };
            if !response.status().is_success() {
                continue;
            }
            let at = Instant::now();
            if let Some(v) = timestamp_version(&response.bytes().await.unwrap_or_default()) {
                let list = if fresh {
                    &mut seen.truth
                } else {
                    &mut seen.cached
                };
                list.push((at, v));
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_servers_eight_jobs_one_killed() {
    let Some(Backend::Postgres(database)) = Backend::postgres().await else {
        return;
    };
    let work = tempfile::tempdir().expect("temp dir");
    let mut servers: Vec<ServerProcess> = (0..3)
        .map(|i| {
            let dir = work.path().join(format!("server-{i}"));
            std::fs::create_dir(&dir).expect("data dir");
            ServerProcess::start(&database, &dir)
        })
        .collect();
    let urls: Vec<String> = servers.iter().map(|s| s.url.clone()).collect();

    let first = work.path().join("trust-0");
    sign(&urls[0], &first, "base", 0).await.ok();

    // Readers on servers 0 and 1 (server 2 is the one that dies).
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = urls[..2]
        .iter()
        .map(|url| tokio::spawn(read_until(url.clone(), stop.clone())))
        .collect();

    // Eight jobs, each with its own copy of the trust directory, sign three tags each
    // through server job % 3. A sign that fails because its server is gone moves to the
    // next server, as a load balancer would send it; any other failure fails the test.
    let mut jobs = Vec::new();
    for job in 1..=8u8 {
        let dir = work.path().join(format!("trust-{job}"));
        common::copy_trust_dir(&first, &dir);
        let urls = urls.clone();
        jobs.push(tokio::spawn(async move {
            let mut server = usize::from(job) % 3;
            let mut failovers = 0;
            for round in 0..3u8 {
                let tag = format!("job-{job}-{round}");
                loop {
                    let run = sign(&urls[server], &dir, &tag, job * 16 + round).await;
                    if run.code == 0 {
                        break;
                    }
                    // Only the killed server may fail a job, once, and only by being gone.
                    assert!(
                        server == 2 && failovers == 0 && run.stderr.contains(&urls[2]),
                        "job {job} failed on server {server} (failovers {failovers}):\n{}",
                        run.stderr
                    );
                    assert!(
                        run.stderr.contains("error sending request"),
                        "job {job}: not a connection failure:\n{}",
                        run.stderr
                    );
                    if run
                        .stderr
                        .contains("connection closed before message completed")
                    {
                        eprintln!("job {job} was publishing through server 2 when it died");
                    }
                    failovers += 1;
                    server = 0;
                }
            }
            failovers
        }));
    }

    // SIGKILL server 2 once its jobs have started landing tags.
    let store = SqlStore::connect(&database).await.expect("store");
    let started = Instant::now();
    loop {
        let records = store.audit_records(0, 10_000).await.expect("audit");
        let updates = records.iter().filter(|r| r.action == "update").count();
        if updates >= 4 || started.elapsed() > Duration::from_secs(60) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    servers[2].kill_9();
    let killed_at = Instant::now();

    let mut failovers = 0;
    for job in jobs {
        failovers += job.await.expect("job");
    }
    let finished = Instant::now();
    eprintln!(
        "all 24 tags landed in {:?}; server 2 killed {:?} in; {failovers} signs failed over",
        finished - started,
        killed_at - started
    );
    // Let the readers see the last version through their caches.
    tokio::time::sleep(CACHE_TTL + Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    // A sighting in the database later than this had no time left to reach the cache.
    let covered = Instant::now() - CACHE_TTL - Duration::from_millis(500);

    // Every reader saw every version within the TTL of the database holding it.
    for (i, reader) in readers.into_iter().enumerate() {
        let seen = reader.await.expect("reader");
        assert!(!seen.cached.is_empty() && !seen.truth.is_empty());
        for window in seen.cached.windows(2) {
            assert!(
                window[1].1 >= window[0].1,
                "server {i} went back from timestamp {} to {}",
                window[0].1,
                window[1].1
            );
        }
        for &(at, version) in seen.truth.iter().filter(|(at, _)| *at <= covered) {
            let caught_up = seen
                .cached
                .iter()
                .find(|&&(when, v)| when >= at && v >= version)
                .map(|&(when, _)| when - at);
            match caught_up {
                Some(lag) => assert!(
                    lag <= CACHE_TTL + Duration::from_millis(500),
                    "server {i}: timestamp {version} took {lag:?} to reach its cache"
                ),
                None => panic!("server {i} never served timestamp {version} from its cache"),
            }
        }
    }

    // Nothing lost: all 25 tags, read through a surviving server.
    let env0 = env(&urls[1], &first);
    let env0: Vec<(&str, &str)> = env0.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let inspected = common::run_notar(&["trust", "inspect", GUN], &env0, Duration::from_secs(60))
        .await
        .ok()
        .json();
    let tags: Vec<&str> = inspected[0]["SignedTags"]
        .as_array()
        .expect("tags")
        .iter()
        .map(|t| t["SignedTag"].as_str().expect("tag"))
        .collect();
    assert_eq!(tags.len(), 25, "{tags:?}");

    // Versions are contiguous for every role: none skipped, none written twice.
    let mut versions: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for record in store.audit_records(0, 10_000).await.expect("audit") {
        if record.gun != GUN {
            continue;
        }
        let details: Value = serde_json::from_str(&record.details).expect("details");
        for file in details.as_array().expect("array") {
            if let (Some(role), Some(v)) = (file["role"].as_str(), file["version"].as_u64()) {
                versions.entry(role.to_owned()).or_default().push(v);
            }
        }
    }
    for (role, mut list) in versions {
        list.sort_unstable();
        let expected: Vec<u64> = (1..=list.len() as u64).collect();
        assert_eq!(list, expected, "{role} versions");
    }

    // The chain verifies, and the audit trail is whole.
    let data_dir = work.path().join("server-0");
    let data_dir = data_dir.to_str().expect("utf-8");
    for command in [vec!["check"], vec!["audit", "verify"]] {
        let mut args = vec!["--database", database.as_str(), "--data-dir", data_dir];
        args.extend(command);
        let run = common::run_bin(
            &server_binary(),
            &args,
            &[("NOTAR_SERVER_SECRET", SECRET)],
            Duration::from_secs(60),
        )
        .await;
        assert_eq!(
            run.code, 0,
            "notar-server {args:?}:\n{}{}",
            run.stdout, run.stderr
        );
    }
}
