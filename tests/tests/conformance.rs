//! A conformance suite of our own, modelled on the TUF specification's client workflow and on
//! the TUF conformance suite: the real `notar-conformance` binary is driven through `init`,
//! `refresh` and `download` against a simulated repository on loopback HTTP that each test
//! changes between runs. Every refusal is checked for its exit code (1), for a message naming
//! the role and the check, and for the metadata directory holding exactly the trusted files,
//! byte for byte as served.
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "tests: a failed step should stop the test with its message"
)]

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use notar_tests::simrepo::{SimRepo, delegation, in_days, sim_key};
use notar_tuf::{RoleType, Signer, Version};
use tempfile::TempDir;
use tokio::process::Command;

/// A client: a metadata directory and a target directory, driven through the binary.
struct Client {
    dir: TempDir,
}

#[derive(Debug)]
struct Outcome {
    code: i32,
    stderr: String,
}

#[track_caller]
fn assert_ok(outcome: &Outcome) {
    assert_eq!(outcome.code, 0, "expected success: {}", outcome.stderr);
}

/// Exit code 1 and a message containing every one of `needles`.
#[track_caller]
fn assert_refused(outcome: &Outcome, needles: &[&str]) {
    assert_eq!(outcome.code, 1, "expected refusal: {}", outcome.stderr);
    for needle in needles {
        assert!(
            outcome.stderr.contains(needle),
            "message lacks {needle:?}: {}",
            outcome.stderr
        );
    }
}

/// Regular files directly in `dir` (subfolders are not looked into).
fn files_in(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return BTreeMap::new();
    };
    entries
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().unwrap().is_file())
        .map(|e| {
            (
                e.file_name().into_string().unwrap(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

impl Client {
    fn new() -> Client {
        Client {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    fn metadata_dir(&self) -> PathBuf {
        self.dir.path().join("metadata")
    }

    fn target_dir(&self) -> PathBuf {
        self.dir.path().join("targets")
    }

    async fn run(&self, args: Vec<OsString>) -> Outcome {
        self.run_shifted(None, args).await
    }

    /// Runs the binary, under `faketime -f +<days>d` (libfaketime) when `days` is given.
    async fn run_shifted(&self, days: Option<u32>, args: Vec<OsString>) -> Outcome {
        let bin = env!("CARGO_BIN_EXE_notar-conformance");
        let mut command = match days {
            Some(days) => {
                let mut c = Command::new("faketime");
                c.arg("-f").arg(format!("+{days}d")).arg(bin);
                c
            }
            None => Command::new(bin),
        };
        let child = command
            .args(args)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output();
        let out = tokio::time::timeout(Duration::from_secs(120), child)
            .await
            .expect("notar-conformance finished in time")
            .expect("run notar-conformance");
        assert!(out.stdout.is_empty(), "nothing on stdout");
        Outcome {
            code: out.status.code().expect("exited"),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    async fn init(&self, root: &[u8]) -> Outcome {
        let root_file = self.dir.path().join("initial_root.json");
        std::fs::write(&root_file, root).unwrap();
        std::fs::create_dir_all(self.metadata_dir()).unwrap();
        self.run(vec![
            "--metadata-dir".into(),
            self.metadata_dir().into(),
            "init".into(),
            root_file.into(),
        ])
        .await
    }

    async fn refresh(&self, repo: &SimRepo) -> Outcome {
        self.refresh_shifted(repo, None).await
    }

    async fn refresh_shifted(&self, repo: &SimRepo, days: Option<u32>) -> Outcome {
        let args = vec![
            "--metadata-url".into(),
            repo.metadata_url().into(),
            "--metadata-dir".into(),
            self.metadata_dir().into(),
            "refresh".into(),
        ];
        self.run_shifted(days, args).await
    }

    async fn download(&self, repo: &SimRepo, names: &[&str]) -> Outcome {
        let mut args: Vec<OsString> = vec![
            "--metadata-url".into(),
            repo.metadata_url().into(),
            "--metadata-dir".into(),
            self.metadata_dir().into(),
        ];
        for name in names {
            args.push("--target-name".into());
            args.push((*name).into());
        }
        args.extend([
            "--target-dir".into(),
            self.target_dir().into(),
            "--target-base-url".into(),
            repo.targets_url().into(),
            "download".into(),
        ]);
        self.run(args).await
    }

    /// The top level of the metadata directory.
    fn trusted(&self) -> BTreeMap<String, Vec<u8>> {
        files_in(&self.metadata_dir())
    }

    fn version(&self, file: &str) -> u64 {
        let json: serde_json::Value = serde_json::from_slice(&self.trusted()[file]).expect("JSON");
        json["signed"]["version"].as_u64().expect("version")
    }

    /// Everything in the target directory, hidden files included.
    fn downloaded(&self) -> BTreeMap<String, Vec<u8>> {
        files_in(&self.target_dir())
    }
}

/// The metadata directory holds exactly these files with exactly these bytes.
#[track_caller]
fn assert_trusted(client: &Client, expected: &[(&str, Vec<u8>)]) {
    let expected: BTreeMap<String, Vec<u8>> = expected
        .iter()
        .map(|(name, bytes)| ((*name).to_owned(), bytes.clone()))
        .collect();
    let actual = client.trusted();
    assert_eq!(
        actual.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>(),
        "files in the metadata directory"
    );
    for (name, bytes) in &expected {
        assert!(actual[name] == *bytes, "{name} is not the expected bytes");
    }
}

/// A client initialised with the repository's first root and refreshed once.
async fn refreshed_client(repo: &SimRepo) -> Client {
    let client = Client::new();
    assert_ok(&client.init(&repo.root_v1()).await);
    assert_ok(&client.refresh(repo).await);
    repo.take_requests();
    client
}

fn metadata_requests(requests: &[String]) -> Vec<&str> {
    requests
        .iter()
        .filter_map(|r| r.strip_prefix("metadata/"))
        .collect()
}

fn target_requests(requests: &[String]) -> Vec<&str> {
    requests
        .iter()
        .filter_map(|r| r.strip_prefix("targets/"))
        .collect()
}

// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn happy_path_refresh_download_and_cached_download() {
    let mut repo = SimRepo::start().await;
    repo.add_target("targets", "dir/sub/file 2.txt", b"content of file 2");
    let client = Client::new();
    assert_ok(&client.init(&repo.root_v1()).await);
    assert!(repo.take_requests().is_empty(), "init makes no request");
    assert_trusted(&client, &[("root.json", repo.root_v1())]);

    assert_ok(&client.refresh(&repo).await);
    assert_eq!(
        repo.take_requests(),
        [
            "metadata/2.root.json",
            "metadata/timestamp.json",
            "metadata/1.snapshot.json",
            "metadata/1.targets.json"
        ]
    );
    assert_trusted(
        &client,
        &[
            ("root.json", repo.root_v1()),
            ("timestamp.json", repo.metadata("timestamp.json")),
            ("snapshot.json", repo.metadata("1.snapshot.json")),
            ("targets.json", repo.metadata("1.targets.json")),
        ],
    );
    assert!(client.downloaded().is_empty());

    assert_ok(
        &client
            .download(&repo, &["file1.txt", "dir/sub/file 2.txt"])
            .await,
    );
    let requests = repo.take_requests();
    assert_eq!(
        metadata_requests(&requests),
        ["2.root.json", "timestamp.json"],
        "nothing new to fetch"
    );
    assert_eq!(
        target_requests(&requests),
        [
            SimRepo::target_path("file1.txt", b"content of file1"),
            SimRepo::target_path("dir/sub/file%202.txt", b"content of file 2"),
        ]
    );
    assert_eq!(
        client.downloaded(),
        BTreeMap::from([
            ("file1.txt".to_owned(), b"content of file1".to_vec()),
            (
                "dir%2Fsub%2Ffile%202.txt".to_owned(),
                b"content of file 2".to_vec()
            ),
        ])
    );

    // Already there with the right hashes: not downloaded again.
    assert_ok(&client.download(&repo, &["file1.txt"]).await);
    assert!(target_requests(&repo.take_requests()).is_empty());

    let refused = client.download(&repo, &["missing.txt"]).await;
    assert_refused(&refused, &["missing.txt"]);
    assert!(target_requests(&repo.take_requests()).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_initial_root_fails_refresh_without_a_request() {
    let repo = SimRepo::start().await;
    let client = Client::new();
    let mut root = repo.root_v1();
    let at = root.len() - 30;
    root[at] ^= 0x01;
    assert_ok(&client.init(&root).await);
    let refused = client.refresh(&repo).await;
    assert_refused(&refused, &["root"]);
    assert!(repo.take_requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn root_rotation_chain_and_a_broken_link() {
    let mut repo = SimRepo::start().await;
    let client = refreshed_client(&repo).await;
    repo.rotate(RoleType::Root, vec![sim_key(11)], 1);
    let v3 = repo.rotate(RoleType::Root, vec![sim_key(12), sim_key(13)], 2);
    assert_ok(&client.refresh(&repo).await);
    assert_eq!(client.trusted()["root.json"], v3);
    let requests = repo.take_requests();
    assert_eq!(
        metadata_requests(&requests)[..4],
        [
            "2.root.json",
            "3.root.json",
            "4.root.json",
            "timestamp.json"
        ]
    );

    // Version 4 signed only by its own new key: the old root's threshold is not met.
    let before = client.trusted();
    repo.rotate(RoleType::Root, vec![sim_key(14)], 1);
    repo.sign_root(&[]); // version 4 again, by key 14 alone
    let refused = client.refresh(&repo).await;
    assert_refused(&refused, &["root", "previous root", "threshold 2"]);
    assert_eq!(client.trusted(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_root_after_the_chain_is_kept_and_stops_the_update() {
    let mut repo = SimRepo::start().await;
    let client = refreshed_client(&repo).await;
    let before = client.trusted();
    repo.root.expires = in_days(-1);
    let v2 = repo.rotate(RoleType::Root, vec![sim_key(11)], 1);
    repo.bump_targets("targets");
    repo.publish();
    let refused = client.refresh(&repo).await;
    assert_refused(&refused, &["root", "expired"]);
    let mut expected = before;
    expected.insert("root.json".into(), v2);
    assert_eq!(client.trusted(), expected);
    assert!(!metadata_requests(&repo.take_requests()).contains(&"timestamp.json"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_rotation_of_each_top_level_role() {
    let mut repo = SimRepo::start().await;
    let client = refreshed_client(&repo).await;
    for (role, seed) in [
        (RoleType::Timestamp, 24),
        (RoleType::Snapshot, 23),
        (RoleType::Targets, 22),
    ] {
        // New key in root; metadata still signed by the old key: refused.
        let old = repo.keys[role.as_str()].clone();
        repo.rotate(role, vec![sim_key(seed)], 1);
        repo.keys.insert(role.to_string(), old);
        let resign = |repo: &mut SimRepo| match role {
            RoleType::Timestamp => repo.bump_timestamp(),
            RoleType::Snapshot => repo.publish(),
            _ => {
                repo.bump_targets("targets");
                repo.publish();
            }
        };
        resign(&mut repo);
        let refused = client.refresh(&repo).await;
        assert_refused(
            &refused,
            &[role.as_str(), "0 valid signature(s), threshold 1"],
        );
        // The copy signed by the old key is no longer trusted, so no longer kept.
        let file = format!("{role}.json");
        assert!(!client.trusted().contains_key(&file), "{file} dropped");

        repo.keys.insert(role.to_string(), vec![sim_key(seed)]);
        resign(&mut repo);
        assert_ok(&client.refresh(&repo).await);
        let served = match role {
            RoleType::Timestamp => repo.metadata("timestamp.json"),
            RoleType::Snapshot => repo.snapshot_bytes.clone(),
            _ => repo.signed_targets["targets"].1.clone(),
        };
        assert_eq!(client.trusted()[&file], served, "{role}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timestamp_and_snapshot_key_rotation_recover_from_a_fast_forward() {
    let mut repo = SimRepo::start().await;
    repo.snapshot.version = Version::new(99).unwrap();
    repo.publish(); // snapshot 100
    repo.timestamp.version = Version::new(50).unwrap();
    repo.sign_timestamp();
    let client = refreshed_client(&repo).await;
    assert_eq!(client.version("timestamp.json"), 50);
    assert_eq!(client.version("snapshot.json"), 100);

    // Back to 1 without a new key: a rollback.
    repo.timestamp.version = Version::ONE;
    repo.sign_timestamp();
    let refused = client.refresh(&repo).await;
    assert_refused(&refused, &["timestamp", "rollback", "50"]);
    assert_eq!(client.version("timestamp.json"), 50);

    // New timestamp and snapshot keys: version 1 of each is taken.
    repo.rotate(RoleType::Timestamp, vec![sim_key(24)], 1);
    repo.rotate(RoleType::Snapshot, vec![sim_key(23)], 1);
    repo.snapshot.version = Version::ONE;
    repo.sign_snapshot();
    repo.sign_timestamp();
    assert_ok(&client.refresh(&repo).await);
    assert_eq!(client.version("timestamp.json"), 1);
    assert_eq!(client.version("snapshot.json"), 1);
    assert_eq!(
        client.trusted()["timestamp.json"],
        repo.metadata("timestamp.json")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_rotation_of_a_delegated_role() {
    let mut repo = SimRepo::start().await;
    repo.delegate(
        "targets",
        delegation("team/a", &sim_key(30), &["a/*"], false),
        &sim_key(30),
    );
    repo.add_target("team/a", "a/one", b"one");
    repo.publish();
    let client = refreshed_client(&repo).await;
    assert_ok(&client.download(&repo, &["a/one"]).await);

    // targets now trusts key 31 for team/a; team/a is still signed by key 30.
    let d = repo
        .targets
        .get_mut("targets")
        .unwrap()
        .delegations
        .as_mut()
        .unwrap();
    let key31 = sim_key(31).public_key();
    d.keys.clear();
    d.keys.insert(key31.key_id(), key31.clone());
    d.roles[0].keyids = vec![key31.key_id()];
    repo.bump_targets("targets");
    repo.add_target("team/a", "a/two", b"two");
    repo.bump_targets("team/a");
    repo.publish();
    let refused = client.download(&repo, &["a/two"]).await;
    assert_refused(&refused, &["team/a", "0 valid signature(s)"]);

    repo.keys.insert("team/a".into(), vec![sim_key(31)]);
    repo.bump_targets("team/a");
    repo.publish();
    assert_ok(&client.download(&repo, &["a/two"]).await);
    assert_eq!(
        client.trusted()["team%2Fa.json"],
        repo.signed_targets["team/a"].1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolled_back_timestamp_is_refused() {
    let mut repo = SimRepo::start().await;
    let old = repo.metadata("timestamp.json");
    repo.bump_timestamp();
    let client = refreshed_client(&repo).await;
    let before = client.trusted();
    repo.put_metadata("timestamp.json", old);
    let refused = client.refresh(&repo).await;
    assert_refused(
        &refused,
        &["timestamp", "rollback", "version 1", "version 2"],
    );
    assert_eq!(client.trusted(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolled_back_snapshot_is_refused() {
    let mut repo = SimRepo::start().await;
    repo.publish(); // snapshot 2
    let client = refreshed_client(&repo).await;
    let before = client.trusted();
    repo.snapshot.version = Version::ONE;
    repo.sign_snapshot();
    repo.bump_timestamp(); // timestamp 3 pins snapshot 1
    let refused = client.refresh(&repo).await;
    assert_refused(&refused, &["timestamp (snapshot version)", "rollback"]);
    assert_eq!(client.trusted(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolled_back_targets_are_refused() {
    for hashes in [false, true] {
        let mut repo = SimRepo::start().await;
        repo.hashes = hashes;
        repo.bump_targets("targets"); // 2
        repo.publish();
        let client = refreshed_client(&repo).await;
        let before = client.trusted();
        repo.targets.get_mut("targets").unwrap().version = Version::ONE;
        repo.sign_targets("targets");
        repo.publish();
        let refused = client.refresh(&repo).await;
        assert_refused(&refused, &["snapshot (targets.json)", "rollback"]);
        let after = client.trusted();
        for file in ["root.json", "snapshot.json", "targets.json"] {
            assert_eq!(after[file], before[file], "{file} (hashes: {hashes})");
        }
        assert_eq!(
            client.version("timestamp.json"),
            3,
            "the new timestamp was fine"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn freeze_expired_timestamp_snapshot_or_targets() {
    // Timestamp.
    let mut repo = SimRepo::start().await;
    let client = refreshed_client(&repo).await;
    let before = client.trusted();
    repo.timestamp.expires = in_days(-1);
    repo.bump_timestamp();
    assert_refused(&client.refresh(&repo).await, &["timestamp", "expired"]);
    assert_eq!(client.trusted(), before);

    // Snapshot: the new timestamp is taken, the expired snapshot is not.
    let mut repo = SimRepo::start().await;
    let client = refreshed_client(&repo).await;
    let before = client.trusted();
    repo.snapshot.expires = in_days(-1);
    repo.publish();
    assert_refused(&client.refresh(&repo).await, &["snapshot", "expired"]);
    assert_eq!(client.trusted()["snapshot.json"], before["snapshot.json"]);
    assert_eq!(client.version("timestamp.json"), 2);

    // Targets.
    let mut repo = SimRepo::start().await;
    let client = refreshed_client(&repo).await;
    let before = client.trusted();
    repo.targets.get_mut("targets").unwrap().expires = in_days(-1);
    repo.bump_targets("targets");
    repo.publish();
    assert_refused(&client.refresh(&repo).await, &["targets", "expired"]);
    assert_eq!(client.trusted()["targets.json"], before["targets.json"]);
    assert_eq!(client.version("snapshot.json"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mix_and_match_is_refused() {
    // A validly signed snapshot of the pinned version, but not the bytes timestamp pins.
    let mut repo = SimRepo::start().await;
    repo.hashes = true;
    repo.publish();
    let client = refreshed_client(&repo).await;
    let before = client.trusted();
    repo.publish(); // snapshot 3, pinned by hash
    repo.snapshot.expires = in_days(200);
    let pinned = repo.snapshot_bytes.clone();
    repo.sign_snapshot(); // other bytes served as 3.snapshot.json
    assert_ne!(repo.metadata("3.snapshot.json"), pinned);
    let refused = client.refresh(&repo).await;
    assert_refused(&refused, &["snapshot", "hash does not match"]);
    assert_eq!(client.trusted()["snapshot.json"], before["snapshot.json"]);

    // Targets of another version than snapshot pins.
    let mut repo = SimRepo::start().await;
    let client = refreshed_client(&repo).await;
    let v1 = repo.metadata("1.targets.json");
    repo.bump_targets("targets");
    repo.publish();
    repo.put_metadata("2.targets.json", v1.clone());
    let refused = client.refresh(&repo).await;
    assert_refused(
        &refused,
        &["targets", "version 1 where version 2 was pinned"],
    );
    assert_eq!(client.trusted()["targets.json"], v1);
    assert_eq!(client.version("snapshot.json"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_byte_or_an_unknown_key_is_refused() {
    let mut repo = SimRepo::start().await;
    let client = refreshed_client(&repo).await;
    let before = client.trusted();
    repo.bump_targets("targets");
    repo.publish();
    let tampered = String::from_utf8(repo.metadata("2.targets.json"))
        .unwrap()
        .replace("file1.txt", "file1.txT");
    repo.put_metadata("2.targets.json", tampered.into_bytes());
    let refused = client.refresh(&repo).await;
    assert_refused(&refused, &["targets", "0 valid signature(s), threshold 1"]);
    assert_eq!(client.trusted()["targets.json"], before["targets.json"]);

    repo.keys.insert("timestamp".into(), vec![sim_key(99)]);
    repo.bump_timestamp();
    let kept = client.trusted();
    let refused = client.refresh(&repo).await;
    assert_refused(
        &refused,
        &["timestamp", "0 valid signature(s), threshold 1"],
    );
    assert_eq!(client.trusted(), kept);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_metadata_is_refused() {
    let repo = SimRepo::start().await;
    let client = refreshed_client(&repo).await;
    let before = client.trusted();
    repo.put_metadata("timestamp.json", vec![b' '; 20_000]);
    let refused = client.refresh(&repo).await;
    assert_refused(&refused, &["timestamp", "more than 16384 bytes"]);
    assert_eq!(client.trusted(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delegations_with_terminating_roles_and_path_patterns() {
    let mut repo = SimRepo::start().await;
    // targets ─┬─ team/a  (releases/*, terminating) ── c (releases/rc*)
    //          └─ b       (*)
    repo.delegate(
        "targets",
        delegation("team/a", &sim_key(30), &["releases/*"], true),
        &sim_key(30),
    );
    repo.delegate(
        "targets",
        delegation("b", &sim_key(31), &["*"], false),
        &sim_key(31),
    );
    repo.delegate(
        "team/a",
        delegation("c", &sim_key(32), &["releases/rc*"], false),
        &sim_key(32),
    );
    repo.add_target("team/a", "releases/v1", b"v1 by a");
    repo.add_target("team/a", "docs/readme", b"outside a's paths");
    repo.add_target("c", "releases/rc1", b"rc1 by c");
    repo.add_target("b", "releases/v2", b"v2 by b, behind a terminating role");
    repo.add_target("b", "other.txt", b"other by b");
    repo.publish();
    let client = refreshed_client(&repo).await;
    let top_level = client.trusted();

    assert_ok(&client.download(&repo, &["releases/v1"]).await);
    let requests = repo.take_requests();
    assert_eq!(
        metadata_requests(&requests),
        ["2.root.json", "timestamp.json", "1.team%2Fa.json"],
        "only the role the search reaches is fetched"
    );
    assert_eq!(client.downloaded()["releases%2Fv1"], b"v1 by a".to_vec());

    // Through team/a (kept from the last run, not fetched again) to c.
    assert_ok(&client.download(&repo, &["releases/rc1"]).await);
    assert_eq!(
        metadata_requests(&repo.take_requests()),
        ["2.root.json", "timestamp.json", "1.c.json"]
    );

    // team/a is terminating for releases/*: b is never asked.
    let refused = client.download(&repo, &["releases/v2"]).await;
    assert_refused(&refused, &["releases/v2"]);
    let requests = repo.take_requests();
    assert!(!metadata_requests(&requests).contains(&"1.b.json"));
    assert!(target_requests(&requests).is_empty());

    // team/a lists docs/readme, but is not trusted for it; b's `*` does not cross `/`.
    let refused = client.download(&repo, &["docs/readme"]).await;
    assert_refused(&refused, &["docs/readme"]);
    let requests = repo.take_requests();
    assert_eq!(
        metadata_requests(&requests),
        ["2.root.json", "timestamp.json"]
    );
    assert!(target_requests(&requests).is_empty());

    assert_ok(&client.download(&repo, &["other.txt"]).await);
    assert_eq!(
        metadata_requests(&repo.take_requests()),
        ["2.root.json", "timestamp.json", "1.b.json"]
    );

    // Top level: the four top-level roles unchanged and each delegated role reached.
    let mut expected: Vec<(&str, Vec<u8>)> = [
        "root.json",
        "timestamp.json",
        "snapshot.json",
        "targets.json",
    ]
    .into_iter()
    .map(|name| (name, top_level[name].clone()))
    .collect();
    expected.extend([
        ("team%2Fa.json", repo.metadata("1.team%2Fa.json")),
        ("c.json", repo.metadata("1.c.json")),
        ("b.json", repo.metadata("1.b.json")),
    ]);
    assert_trusted(&client, &expected);
    assert_eq!(client.downloaded().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_target_content_is_refused_and_never_written() {
    let mut repo = SimRepo::start().await;
    repo.add_target("targets", "t.bin", b"good t");
    repo.add_target("targets", "u.bin", b"good u");
    let client = refreshed_client(&repo).await;
    assert_ok(&client.download(&repo, &["t.bin"]).await);
    let good = client.downloaded();
    assert_eq!(target_requests(&repo.take_requests()).len(), 1);
    assert_eq!(
        good,
        BTreeMap::from([("t.bin".to_owned(), b"good t".to_vec())])
    );

    // The repository substitutes both files (same length, other bytes).
    repo.put_target_file(
        &SimRepo::target_path("t.bin", b"good t"),
        b"evil t".to_vec(),
    );
    repo.put_target_file(
        &SimRepo::target_path("u.bin", b"good u"),
        b"evil u".to_vec(),
    );
    // t.bin is already there with the right hashes: kept, not fetched.
    assert_ok(&client.download(&repo, &["t.bin"]).await);
    assert!(target_requests(&repo.take_requests()).is_empty());
    let refused = client.download(&repo, &["u.bin"]).await;
    assert_refused(&refused, &["target u.bin", "sha256 does not match"]);
    assert_eq!(client.downloaded(), good);

    // Longer than signed: refused while reading.
    repo.put_target_file(
        &SimRepo::target_path("u.bin", b"good u"),
        b"good u and more".to_vec(),
    );
    let refused = client.download(&repo, &["u.bin"]).await;
    assert_refused(&refused, &["target u.bin", "more than 6 bytes"]);
    assert_eq!(client.downloaded(), good);

    // A damaged local copy is replaced by a verified download.
    std::fs::write(client.target_dir().join("t.bin"), b"damage").unwrap();
    repo.put_target_file(
        &SimRepo::target_path("t.bin", b"good t"),
        b"good t".to_vec(),
    );
    assert_ok(&client.download(&repo, &["t.bin"]).await);
    assert_eq!(client.downloaded(), good);
}

/// The conformance suite shifts the clock with libfaketime: the binary must read the time
/// through the C library. Needs `faketime` (Debian package `faketime`); without it the test
/// says so and passes, unless `CI` is set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_follows_the_c_library_clock() {
    let have_faketime = std::process::Command::new("faketime")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !have_faketime {
        assert!(
            std::env::var_os("CI").is_none(),
            "faketime must be installed in CI"
        );
        eprintln!("skipping: faketime is not installed");
        return;
    }
    let mut repo = SimRepo::start().await;
    repo.timestamp.expires = in_days(7);
    repo.sign_timestamp();
    let client = refreshed_client(&repo).await;
    let before = client.trusted();

    // Eight days on, the kept timestamp has expired and nothing newer is served.
    let refused = client.refresh_shifted(&repo, Some(8)).await;
    assert_refused(&refused, &["timestamp", "expired"]);
    assert_eq!(client.trusted(), before);

    // An expired kept timestamp still guards against rollback and is replaced by a fresh one.
    repo.timestamp.expires = in_days(21);
    repo.bump_targets("targets");
    repo.publish();
    assert_ok(&client.refresh_shifted(&repo, Some(18)).await);
    assert_eq!(client.version("timestamp.json"), 2);
    assert_eq!(client.version("targets.json"), 2);
}
