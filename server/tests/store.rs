//! The store suite: every test below runs once on SQLite (a fresh file per test) and once on
//! PostgreSQL (a fresh database per test) when `NOTAR_TEST_POSTGRES_URL` names a server
//! whose user may create databases. Without that variable the PostgreSQL variants pass with
//! a notice, except under CI (`CI` set), where they fail so the backend cannot go untested.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::sync::Arc;

use bytes::Bytes;
use notar_server::audit::Origin;
use notar_server::store::sql::SqlStore;
use notar_server::store::{
    ChangeCategory, ChangeQuery, NewMeta, Store, StoreError, StoredKey, StoredMeta, StoredProposal,
};
use notar_tuf::{Gun, RoleName, Version};
use rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha256};
use sqlx::{Connection, Executor, PgConnection};
use time::OffsetDateTime;

// --- databases ---------------------------------------------------------------------------

/// A fresh database for one test, and how to reach it again.
struct TestDb {
    store: Arc<SqlStore>,
    url: String,
    /// Keeps the SQLite directory alive for the test.
    _dir: Option<tempfile::TempDir>,
    /// The admin URL and database name to drop afterwards (PostgreSQL).
    postgres: Option<(String, String)>,
}

impl TestDb {
    fn store(&self) -> Arc<dyn Store> {
        self.store.clone()
    }

    /// A second, independent store on the same database (as after a restart).
    async fn reopen(&self) -> Arc<dyn Store> {
        Arc::new(
            SqlStore::connect(&self.url)
                .await
                .expect("reopening the store"),
        )
    }

    async fn finish(self) {
        self.store.close().await;
        if let Some((admin, name)) = self.postgres {
            let mut conn = PgConnection::connect(&admin)
                .await
                .expect("admin connection");
            conn.execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
                .await
                .expect("dropping the test database");
        }
    }
}

async fn sqlite_db() -> TestDb {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("notar.db").display());
    let store = SqlStore::connect(&url).await.expect("opening SQLite");
    TestDb {
        store: Arc::new(store),
        url,
        _dir: Some(dir),
        postgres: None,
    }
}

/// A fresh PostgreSQL database, or `None` (skip) when none is configured outside CI.
async fn postgres_db() -> Option<TestDb> {
    let Ok(admin) = std::env::var("NOTAR_TEST_POSTGRES_URL") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "NOTAR_TEST_POSTGRES_URL is not set; CI must test the PostgreSQL store"
        );
        eprintln!("skipping: set NOTAR_TEST_POSTGRES_URL to test the PostgreSQL store");
        return None;
    };
    let name = format!("notar_test_{:016x}", OsRng.next_u64());
    let mut conn = PgConnection::connect(&admin)
        .await
        .expect("admin connection");
    conn.execute(format!("CREATE DATABASE {name}").as_str())
        .await
        .expect("creating the test database");
    conn.close().await.expect("closing the admin connection");

    // Same server and credentials, other database: swap the path of the admin URL.
    let (base, query) = admin.split_once('?').unwrap_or((&admin, ""));
    let authority_end = base.find("://").map_or(0, |i| i + 3);
    let base = match base[authority_end..].find('/') {
        Some(slash) => &base[..authority_end + slash],
        None => base,
    };
    let url = if query.is_empty() {
        format!("{base}/{name}")
    } else {
        format!("{base}/{name}?{query}")
    };
    let store = SqlStore::connect(&url).await.expect("opening PostgreSQL");
    Some(TestDb {
        store: Arc::new(store),
        url,
        _dir: None,
        postgres: Some((admin, name)),
    })
}

/// Runs each named suite function on both databases: `sqlite::NAME` and `postgres::NAME`.
macro_rules! suite {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let db = super::sqlite_db().await;
                    super::$name(&db).await;
                    db.finish().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let Some(db) = super::postgres_db().await else { return };
                    super::$name(&db).await;
                    db.finish().await;
                }
            )*
        }
    };
}

fn proposal(id: &str, roles: &[&str], created: i64) -> StoredProposal {
    StoredProposal {
        id: id.to_owned(),
        roles: roles.iter().map(|r| role(r)).collect(),
        files: Bytes::from(format!("{{\"files of\": \"{id}\"}}")),
        revision: 0,
        proposed_by: "alice".to_owned(),
        created: at(created),
        expires: at(created + 3_600),
    }
}

async fn proposals_are_replaced_cosigned_dropped_and_kept(db: &TestDb) {
    let store = db.store();
    let g = gun("example.com/proposed");
    let other = gun("example.com/other");
    let nobody = Origin::default();
    let ids = |ps: Vec<StoredProposal>| ps.into_iter().map(|p| p.id).collect::<Vec<_>>();

    store
        .put_proposal_as(&g, &proposal("one", &["targets/releases"], 100), &nobody)
        .await
        .expect("first");
    store
        .put_proposal_as(&g, &proposal("two", &["root"], 101), &nobody)
        .await
        .expect("second, another role");
    store
        .put_proposal_as(
            &other,
            &proposal("elsewhere", &["targets/releases"], 102),
            &nobody,
        )
        .await
        .expect("another repository");
    assert_eq!(
        ids(store.proposals(&g).await.expect("list")),
        ["one", "two"]
    );

    // A newer proposal of a role replaces the one that shared it, and only that one.
    store
        .put_proposal_as(
            &g,
            &proposal("three", &["targets", "targets/releases"], 103),
            &nobody,
        )
        .await
        .expect("replacing");
    assert_eq!(
        ids(store.proposals(&g).await.expect("list")),
        ["two", "three"]
    );
    assert_eq!(
        ids(store.proposals(&other).await.expect("list")),
        ["elsewhere"]
    );

    // A co-signature writes over the revision it read, once.
    let cosigned = Bytes::from_static(b"{\"cosigned\": true}");
    let signer = ["ab".repeat(32)];
    assert!(
        store
            .cosign_proposal_as(&g, "three", 0, &cosigned, &signer, &nobody)
            .await
            .expect("cosign")
    );
    assert!(
        !store
            .cosign_proposal_as(&g, "three", 0, &cosigned, &signer, &nobody)
            .await
            .expect("stale revision")
    );
    let three = store
        .proposals(&g)
        .await
        .expect("list")
        .into_iter()
        .find(|p| p.id == "three")
        .expect("three");
    assert_eq!((three.revision, three.files), (1, cosigned));
    assert_eq!(three.roles, [role("targets"), role("targets/releases")]);
    assert_eq!((three.created, three.expires), (at(103), at(3_703)));

    // Storing a role drops the proposals that carry it, in the same commit.
    store
        .commit(&g, &[meta("targets", 2, 9_000)])
        .await
        .expect("commit");
    assert_eq!(ids(store.proposals(&g).await.expect("list")), ["two"]);

    // Kept across a restart; dropped once, with the reason in the audit trail.
    let store = db.reopen().await;
    assert_eq!(ids(store.proposals(&g).await.expect("list")), ["two"]);
    assert!(
        store
            .drop_proposal_as(&g, "two", "expired", &nobody)
            .await
            .expect("drop")
    );
    assert!(
        !store
            .drop_proposal_as(&g, "two", "expired", &nobody)
            .await
            .expect("drop again")
    );
    assert!(store.proposals(&g).await.expect("list").is_empty());
    let actions: Vec<String> = store
        .audit_of(&g, 10)
        .await
        .expect("audit")
        .into_iter()
        .map(|r| r.action)
        .collect();
    for action in ["propose", "cosign", "drop_proposal"] {
        assert!(
            actions.iter().any(|a| a == action),
            "{action} in {actions:?}"
        );
    }

    // Deleting a repository takes its proposals with it.
    store
        .commit(&other, &[meta("targets", 1, 9_000)])
        .await
        .expect("commit other");
    store
        .put_proposal_as(&other, &proposal("again", &["root"], 104), &nobody)
        .await
        .expect("again");
    assert!(store.delete(&other).await.expect("delete"));
    assert!(store.proposals(&other).await.expect("list").is_empty());
}

suite!(
    proposals_are_replaced_cosigned_dropped_and_kept,
    round_trip,
    current_all_takes_the_newest_of_each_role,
    a_conflicting_commit_writes_nothing,
    racing_commits_of_one_version_have_one_winner,
    changefeed_logs_timestamps_and_pages,
    delete_removes_everything_once,
    expiring_looks_at_the_newest_timestamp,
    the_web_views_queries_read_current_heads_expiring_roles_and_audit,
    first_keys_racing_agree_on_one,
    keys_accumulate_in_order,
    data_survives_reopening,
    health_answers,
);

/// WAL lets readers go on while one writer commits; it is a property of the file.
#[tokio::test]
async fn sqlite_uses_wal() {
    let db = sqlite_db().await;
    db.store()
        .commit(&gun("example.com/app"), &[meta("root", 1, 9)])
        .await
        .expect("commit");
    let mut conn = sqlx::SqliteConnection::connect(&db.url)
        .await
        .expect("second connection");
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&mut conn)
        .await
        .expect("journal_mode");
    assert_eq!(mode, "wal");
    conn.close().await.expect("close");
    db.finish().await;
}

// --- helpers ------------------------------------------------------------------------------

fn gun(name: &str) -> Gun {
    Gun::new(name).expect("gun")
}

fn role(name: &str) -> RoleName {
    RoleName::new(name).expect("role")
}

fn v(n: u64) -> Version {
    Version::new(n).expect("version")
}

/// Whole seconds: the store keeps unix seconds.
fn at(secs: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(secs).expect("time")
}

fn meta(role_name: &str, version: u64, expires: i64) -> NewMeta {
    // Ends in bytes that are not UTF-8, so a round trip through text would show.
    let mut data = format!("{role_name} v{version}").into_bytes();
    data.extend_from_slice(&[0x00, 0xff, 0xfe, 0x80]);
    NewMeta {
        role: role(role_name),
        version: v(version),
        data: Bytes::from(data),
        expires: at(expires),
    }
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

fn key(gun_name: &str, role_name: &str, key_id: &str) -> StoredKey {
    StoredKey {
        gun: gun(gun_name),
        role: role(role_name),
        key_id: key_id.to_owned(),
        encrypted: format!("sealed {key_id}\0\u{1}").into_bytes(),
        created: at(1_700_000_000),
    }
}

fn assert_conflict(result: Result<(), StoreError>) {
    match result {
        Err(StoreError::VersionConflict { .. }) => {}
        other => panic!("expected VersionConflict, got {other:?}"),
    }
}

fn assert_same(stored: &StoredMeta, written: &NewMeta) {
    assert_eq!(stored.role, written.role);
    assert_eq!(stored.version, written.version);
    assert_eq!(stored.data, written.data, "bytes must come back unchanged");
    assert_eq!(stored.sha256, sha256_hex(&written.data));
    assert_eq!(stored.expires, written.expires);
}

// --- the suite ----------------------------------------------------------------------------

async fn round_trip(db: &TestDb) {
    let store = db.store();
    let g = gun("example.com/app");
    let root = meta("root", 1, 2_000_000_000);
    let targets = meta("targets/releases", 1, 2_000_000_000);
    assert!(
        store
            .current(&g, &role("root"))
            .await
            .expect("current")
            .is_none()
    );
    let before = OffsetDateTime::now_utc().unix_timestamp();
    store
        .commit(&g, &[root.clone(), targets.clone()])
        .await
        .expect("commit");

    let current = store.current(&g, &role("root")).await.expect("current");
    let current = current.expect("root is stored");
    assert_same(&current, &root);
    assert!(current.created.unix_timestamp() >= before);
    assert_same(
        &store
            .current(&g, &role("targets/releases"))
            .await
            .expect("current")
            .expect("delegated role is stored"),
        &targets,
    );

    let by_version = store
        .by_version(&g, &role("root"), v(1))
        .await
        .expect("by_version");
    assert_eq!(by_version.as_ref(), Some(&current));
    assert!(
        store
            .by_version(&g, &role("root"), v(2))
            .await
            .expect("by_version")
            .is_none()
    );

    let sum = sha256_hex(&root.data);
    let by_sum = store
        .by_checksum(&g, &role("root"), &sum)
        .await
        .expect("by_checksum");
    assert_eq!(by_sum.as_ref(), Some(&current));
    assert!(
        store
            .by_checksum(&g, &role("targets"), &sum)
            .await
            .expect("by_checksum")
            .is_none(),
        "checksums are per role"
    );
    assert!(
        store
            .by_checksum(&gun("example.com/other"), &role("root"), &sum)
            .await
            .expect("by_checksum")
            .is_none(),
        "checksums are per GUN"
    );

    // The same bytes as two versions: the checksum finds the newest.
    let mut again = root.clone();
    again.version = v(2);
    store.commit(&g, &[again]).await.expect("commit v2");
    let newest = store
        .by_checksum(&g, &role("root"), &sum)
        .await
        .expect("by_checksum")
        .expect("found");
    assert_eq!(newest.version, v(2));
    assert_eq!(
        store
            .current(&g, &role("root"))
            .await
            .expect("current")
            .map(|m| m.version),
        Some(v(2))
    );
}

async fn current_all_takes_the_newest_of_each_role(db: &TestDb) {
    let store = db.store();
    let g = gun("example.com/app");
    let other = gun("example.com/other");
    store
        .commit(
            &g,
            &[
                meta("root", 1, 9),
                meta("targets", 1, 9),
                meta("snapshot", 1, 9),
            ],
        )
        .await
        .expect("commit 1");
    store
        .commit(&g, &[meta("targets", 2, 9), meta("snapshot", 2, 9)])
        .await
        .expect("commit 2");
    store
        .commit(&g, &[meta("targets", 3, 9)])
        .await
        .expect("commit 3");
    store
        .commit(&other, &[meta("root", 7, 9)])
        .await
        .expect("commit other");

    let mut all: Vec<(String, u64)> = store
        .current_all(&g)
        .await
        .expect("current_all")
        .into_iter()
        .map(|m| (m.role.to_string(), m.version.get()))
        .collect();
    all.sort();
    assert_eq!(
        all,
        [
            ("root".into(), 1),
            ("snapshot".into(), 2),
            ("targets".into(), 3)
        ]
    );
    let all = store.current_all(&g).await.expect("current_all");
    let targets = all
        .iter()
        .find(|m| m.role == role("targets"))
        .expect("targets");
    assert_eq!(targets.data, meta("targets", 3, 9).data);
    assert!(
        store
            .current_all(&gun("example.com/none"))
            .await
            .expect("empty")
            .is_empty()
    );
}

async fn a_conflicting_commit_writes_nothing(db: &TestDb) {
    let store = db.store();
    let g = gun("example.com/app");
    store
        .commit(&g, &[meta("targets", 1, 9)])
        .await
        .expect("commit");
    let changes_before = store.changes(None, after(0, 100)).await.expect("changes");

    // Root v1 is new, targets v1 exists: the whole update must fail, root included.
    // (Timestamp v1 is in it too, so a leaked change row would show.)
    let result = store
        .commit(
            &g,
            &[
                meta("root", 1, 9),
                meta("timestamp", 1, 9),
                meta("targets", 1, 9),
            ],
        )
        .await;
    assert_conflict(result);
    assert!(
        store
            .current(&g, &role("root"))
            .await
            .expect("current")
            .is_none()
    );
    assert!(
        store
            .current(&g, &role("timestamp"))
            .await
            .expect("current")
            .is_none()
    );
    assert_eq!(
        store.changes(None, after(0, 100)).await.expect("changes"),
        changes_before
    );
    // Within one update, the same (role, version) twice conflicts too.
    assert_conflict(
        store
            .commit(&g, &[meta("root", 1, 9), meta("root", 1, 9)])
            .await,
    );
    assert!(
        store
            .current(&g, &role("root"))
            .await
            .expect("current")
            .is_none()
    );
    // The store is still usable afterwards.
    store
        .commit(&g, &[meta("root", 1, 9)])
        .await
        .expect("commit after conflict");
}

async fn racing_commits_of_one_version_have_one_winner(db: &TestDb) {
    let g = gun("example.com/race");
    let barrier = Arc::new(tokio::sync::Barrier::new(8));
    let tasks: Vec<_> = (0..8u8)
        .map(|i| {
            let store = db.store();
            let g = g.clone();
            let barrier = barrier.clone();
            tokio::spawn(async move {
                let mut ts = meta("timestamp", 5, 9);
                ts.data = Bytes::from(vec![i; 64]);
                barrier.wait().await;
                store.commit(&g, &[meta("snapshot", 5, 9), ts]).await
            })
        })
        .collect();
    let mut ok = 0;
    for task in tasks {
        match task.await.expect("task") {
            Ok(()) => ok += 1,
            Err(StoreError::VersionConflict { gun }) => assert_eq!(gun, "example.com/race"),
            Err(other) => panic!("expected VersionConflict, got {other:?}"),
        }
    }
    assert_eq!(ok, 1, "exactly one writer wins");
    let store = db.store();
    let ts = store
        .current(&g, &role("timestamp"))
        .await
        .expect("current")
        .expect("the winner's timestamp");
    let changes = store
        .changes(Some(&g), after(0, 100))
        .await
        .expect("changes");
    assert_eq!(changes.len(), 1, "only the winner logs a change");
    assert_eq!(changes[0].sha256, ts.sha256);
}

async fn changefeed_logs_timestamps_and_pages(db: &TestDb) {
    let store = db.store();
    let store = store.as_ref();
    let a = gun("example.com/a");
    let b = gun("example.com/b");
    // Only timestamps log changes.
    store
        .commit(&a, &[meta("root", 1, 9), meta("targets", 1, 9)])
        .await
        .expect("commit");
    assert!(change_ids(store, None, before(None, 10)).await.is_empty());
    // a:1, b:1, a:2, b:2, a:3, b:3
    for version in 1..=3 {
        for g in [&a, &b] {
            store
                .commit(g, &[meta("timestamp", version, 9)])
                .await
                .expect("commit timestamp");
        }
    }

    let all = store.changes(None, after(0, 100)).await.expect("changes");
    let seen: Vec<(&str, u64)> = all.iter().map(|c| (c.gun.as_str(), c.version)).collect();
    assert_eq!(
        seen,
        [
            ("example.com/a", 1),
            ("example.com/b", 1),
            ("example.com/a", 2),
            ("example.com/b", 2),
            ("example.com/a", 3),
            ("example.com/b", 3),
        ]
    );
    assert!(all.windows(2).all(|w| w[0].id < w[1].id));
    assert!(all.iter().all(|c| c.category == ChangeCategory::Update));
    let ts = store
        .by_version(&a, &role("timestamp"), v(2))
        .await
        .expect("by_version")
        .expect("stored");
    assert_eq!(all[2].sha256, ts.sha256);
    let ids: Vec<i64> = all.iter().map(|c| c.id).collect();

    // After: oldest first, exclusive, limited.
    assert_eq!(change_ids(store, None, after(0, 2)).await, ids[..2]);
    assert_eq!(change_ids(store, None, after(ids[1], 2)).await, ids[2..4]);
    assert_eq!(change_ids(store, None, after(ids[4], 10)).await, ids[5..]);
    assert!(change_ids(store, None, after(ids[5], 10)).await.is_empty());
    assert!(change_ids(store, None, after(0, 0)).await.is_empty());
    // Before: the newest `limit` below the bound, still oldest first.
    assert_eq!(change_ids(store, None, before(None, 2)).await, ids[4..]);
    assert_eq!(
        change_ids(store, None, before(Some(ids[4]), 3)).await,
        ids[1..4]
    );
    assert_eq!(
        change_ids(store, None, before(Some(ids[1]), 5)).await,
        ids[..1]
    );
    assert!(
        change_ids(store, None, before(Some(ids[0]), 5))
            .await
            .is_empty()
    );

    // The GUN filter, with both kinds of paging.
    let of_b = store
        .changes(Some(&b), after(0, 100))
        .await
        .expect("changes");
    assert!(of_b.iter().all(|c| c.gun == "example.com/b"));
    let of_b: Vec<i64> = of_b.iter().map(|c| c.id).collect();
    assert_eq!(of_b, [ids[1], ids[3], ids[5]]);
    assert_eq!(
        change_ids(store, Some(&a), after(ids[0], 1)).await,
        [ids[2]]
    );
    assert_eq!(
        change_ids(store, Some(&a), before(Some(ids[4]), 5)).await,
        [ids[0], ids[2]]
    );
    let none = gun("example.com/none");
    assert!(
        change_ids(store, Some(&none), before(None, 5))
            .await
            .is_empty()
    );
}

fn after(after: i64, limit: u32) -> ChangeQuery {
    ChangeQuery::After { after, limit }
}

fn before(before: Option<i64>, limit: u32) -> ChangeQuery {
    ChangeQuery::Before { before, limit }
}

async fn change_ids(store: &dyn Store, gun: Option<&Gun>, query: ChangeQuery) -> Vec<i64> {
    let changes = store.changes(gun, query).await.expect("changes");
    changes.iter().map(|c| c.id).collect()
}

async fn delete_removes_everything_once(db: &TestDb) {
    let store = db.store();
    let g = gun("example.com/app");
    let kept = gun("example.com/kept");
    for x in [&g, &kept] {
        store
            .commit(x, &[meta("root", 1, 9), meta("timestamp", 1, 9)])
            .await
            .expect("commit");
    }
    assert!(
        store
            .add_key(&key("example.com/app", "timestamp", "k1"), false)
            .await
            .expect("add")
    );
    assert!(
        store
            .add_key(&key("example.com/kept", "timestamp", "k2"), false)
            .await
            .expect("add")
    );

    assert!(
        store.delete(&g).await.expect("delete"),
        "first deletion finds data"
    );
    assert!(store.current_all(&g).await.expect("current_all").is_empty());
    assert!(
        store
            .by_version(&g, &role("root"), v(1))
            .await
            .expect("by_version")
            .is_none()
    );
    assert!(
        store
            .keys(&g, &role("timestamp"))
            .await
            .expect("keys")
            .is_empty()
    );
    // Other GUNs are untouched.
    assert_eq!(
        store.current_all(&kept).await.expect("current_all").len(),
        2
    );
    assert_eq!(
        store
            .keys(&kept, &role("timestamp"))
            .await
            .expect("keys")
            .len(),
        1
    );

    let log = store
        .changes(Some(&g), before(None, 10))
        .await
        .expect("changes");
    let last = log.last().expect("a deletion is logged");
    assert_eq!(last.category, ChangeCategory::Deletion);
    assert_eq!((last.version, last.sha256.as_str()), (0, ""));
    assert_eq!(log.len(), 2, "the update before, then the deletion");

    assert!(
        !store.delete(&g).await.expect("delete again"),
        "nothing left to delete"
    );
    let log_after = store
        .changes(Some(&g), before(None, 10))
        .await
        .expect("changes");
    assert_eq!(log_after, log, "an empty deletion logs nothing");

    // The GUN can start over at version 1.
    store
        .commit(&g, &[meta("root", 1, 9)])
        .await
        .expect("commit after delete");
}

async fn expiring_looks_at_the_newest_timestamp(db: &TestDb) {
    let store = db.store();
    let (stale, fresh, renewed, none) = (
        gun("example.com/stale"),
        gun("example.com/fresh"),
        gun("example.com/renewed"),
        gun("example.com/none"),
    );
    store
        .commit(&stale, &[meta("timestamp", 1, 1_000)])
        .await
        .expect("commit");
    store
        .commit(&fresh, &[meta("timestamp", 1, 5_000)])
        .await
        .expect("commit");
    // Expired once, renewed by a newer version.
    store
        .commit(&renewed, &[meta("timestamp", 1, 1_000)])
        .await
        .expect("commit");
    store
        .commit(&renewed, &[meta("timestamp", 2, 5_000)])
        .await
        .expect("commit");
    // Only other roles expire: not the freshness task's business.
    store
        .commit(&none, &[meta("root", 1, 10), meta("snapshot", 1, 10)])
        .await
        .expect("commit");

    assert_eq!(
        store.expiring(at(2_000)).await.expect("expiring"),
        std::slice::from_ref(&stale)
    );
    // Strictly before: expiring exactly at the bound is not yet expiring.
    assert!(
        store
            .expiring(at(1_000))
            .await
            .expect("expiring")
            .is_empty()
    );
    let mut later = store.expiring(at(6_000)).await.expect("expiring");
    later.sort();
    assert_eq!(later, [fresh, renewed, stale]);
}

async fn the_web_views_queries_read_current_heads_expiring_roles_and_audit(db: &TestDb) {
    let store = db.store();
    let (a, b) = (gun("example.com/a"), gun("example.com/b"));
    store
        .commit(
            &a,
            &[
                meta("root", 1, 9_000),
                meta("targets", 1, 1_000),
                meta("timestamp", 1, 10),
            ],
        )
        .await
        .expect("commit");
    // Renewed: only the newest version counts.
    store
        .commit(&a, &[meta("targets", 2, 3_000)])
        .await
        .expect("commit");
    store
        .commit(&b, &[meta("targets", 1, 2_000), meta("snapshot", 1, 10)])
        .await
        .expect("commit");

    // Heads are current_all without the bytes.
    let mut heads: Vec<(String, u64, i64)> = store
        .current_heads(&a)
        .await
        .expect("heads")
        .into_iter()
        .map(|h| {
            (
                h.role.to_string(),
                h.version.get(),
                h.expires.unix_timestamp(),
            )
        })
        .collect();
    heads.sort();
    let mut full: Vec<(String, u64, i64)> = store
        .current_all(&a)
        .await
        .expect("current_all")
        .into_iter()
        .map(|m| {
            (
                m.role.to_string(),
                m.version.get(),
                m.expires.unix_timestamp(),
            )
        })
        .collect();
    full.sort();
    assert_eq!(heads, full);
    assert_eq!(heads.len(), 3);

    // What publishers renew, soonest first; timestamps and snapshots are the server's.
    let soon = store.expiring_roles(at(5_000), 10).await.expect("expiring");
    let soon: Vec<(String, String)> = soon.into_iter().map(|(g, r, _)| (g, r)).collect();
    assert_eq!(
        soon,
        [
            ("example.com/b".to_owned(), "targets".to_owned()),
            ("example.com/a".to_owned(), "targets".to_owned()),
        ]
    );
    assert_eq!(
        store
            .expiring_roles(at(5_000), 1)
            .await
            .expect("limit")
            .len(),
        1
    );

    // A repository's newest audit records first, and only its own.
    let records = store.audit_of(&a, 10).await.expect("audit");
    assert_eq!(records.len(), 2);
    assert!(records[0].id > records[1].id);
    assert!(records.iter().all(|r| r.gun == a.as_str()));
    assert_eq!(store.audit_of(&a, 1).await.expect("audit").len(), 1);
}

async fn first_keys_racing_agree_on_one(db: &TestDb) {
    let g = "example.com/app";
    for attempt in 0..5 {
        let gun_name = format!("{g}{attempt}");
        let barrier = Arc::new(tokio::sync::Barrier::new(2));
        let tasks: Vec<_> = ["first", "second"]
            .into_iter()
            .map(|id| {
                let store = db.store();
                let barrier = barrier.clone();
                let k = key(&gun_name, "timestamp", id);
                tokio::spawn(async move {
                    barrier.wait().await;
                    store.add_key(&k, true).await
                })
            })
            .collect();
        let mut added = Vec::new();
        for task in tasks {
            added.push(task.await.expect("task").expect("add_key"));
        }
        assert_eq!(
            added.iter().filter(|a| **a).count(),
            1,
            "one of the two adds: {added:?}"
        );
        let keys = db
            .store()
            .keys(&gun(&gun_name), &role("timestamp"))
            .await
            .expect("keys");
        assert_eq!(keys.len(), 1);
        let winner = if added[0] { "first" } else { "second" };
        assert_eq!(keys[0], key(&gun_name, "timestamp", winner));
    }
    // A key of another role is independent.
    let store = db.store();
    assert!(
        store
            .add_key(&key("example.com/app0", "snapshot", "s"), true)
            .await
            .expect("add_key")
    );
    assert!(
        !store
            .add_key(&key("example.com/app0", "snapshot", "t"), true)
            .await
            .expect("add_key")
    );
}

async fn keys_accumulate_in_order(db: &TestDb) {
    let store = db.store();
    let g = gun("example.com/app");
    assert!(store.any_key().await.expect("any_key").is_none());
    assert!(
        store
            .keys(&g, &role("snapshot"))
            .await
            .expect("keys")
            .is_empty()
    );

    let k1 = key("example.com/app", "snapshot", "k1");
    let k2 = key("example.com/app", "snapshot", "k2");
    assert!(store.add_key(&k1, true).await.expect("add k1"));
    // Rotation adds a second key unconditionally.
    assert!(store.add_key(&k2, false).await.expect("add k2"));
    // The same key again is nothing new.
    assert!(!store.add_key(&k2, false).await.expect("add k2 again"));
    assert_eq!(
        store.keys(&g, &role("snapshot")).await.expect("keys"),
        [k1.clone(), k2]
    );
    assert!(
        store
            .keys(&g, &role("timestamp"))
            .await
            .expect("keys")
            .is_empty()
    );
    assert_eq!(store.any_key().await.expect("any_key"), Some(k1));
}

async fn data_survives_reopening(db: &TestDb) {
    let g = gun("example.com/app");
    let root = meta("root", 1, 9);
    let ts = meta("timestamp", 1, 9);
    let k = key("example.com/app", "timestamp", "k");
    {
        let store = db.store();
        store.commit(&g, &[root.clone(), ts]).await.expect("commit");
        assert!(store.add_key(&k, true).await.expect("add_key"));
    }
    db.store.close().await;

    // Connecting again re-runs the migrations, which must find nothing to do.
    let store = db.reopen().await;
    assert_same(
        &store
            .current(&g, &role("root"))
            .await
            .expect("current")
            .expect("root survives"),
        &root,
    );
    assert_eq!(store.keys(&g, &role("timestamp")).await.expect("keys"), [k]);
    let changes = store.changes(None, after(0, 10)).await.expect("changes");
    assert_eq!(changes.len(), 1);
    store.health().await.expect("health");
}

async fn health_answers(db: &TestDb) {
    db.store().health().await.expect("health");
}
