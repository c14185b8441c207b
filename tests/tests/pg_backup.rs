//! PostgreSQL is backed up with its own tools: a `pg_dump` of a serving database,
//! restored with `pg_restore` into an empty one, serves the same bytes and keeps its audit
//! chain.
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "tests: a failed step should stop the test with its message"
)]

use notar_server::audit::{GENESIS, verify};
use notar_tests::server::{Backend, Publisher, SnapshotKey, TestServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pg_dump_restores_into_a_working_server() {
    let Some(Backend::Postgres(source)) = Backend::postgres().await else {
        return;
    };
    let server = TestServer::start(Backend::Postgres(source.clone())).await;
    let mut publisher = Publisher::new(&server, "example.com/dumped", SnapshotKey::Server);
    publisher.init(&["v1"]).await;
    let root = publisher.get("root.json").await.1;
    let timestamp = publisher.get("timestamp.json").await.1;

    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("notar.dump");
    let dumped = std::process::Command::new("pg_dump")
        .args(["--format=custom", "--file"])
        .arg(&dump)
        .arg(&source)
        .status()
        .expect("pg_dump runs");
    assert!(dumped.success());

    let Some(Backend::Postgres(target)) = Backend::postgres().await else {
        unreachable!("PostgreSQL answered a moment ago");
    };
    let restored = std::process::Command::new("pg_restore")
        .args(["--no-owner", "--dbname", &target])
        .arg(&dump)
        .status()
        .expect("pg_restore runs");
    assert!(restored.success());

    let copy = TestServer::start(Backend::Postgres(target)).await;
    let reader = Publisher::new(&copy, "example.com/dumped", SnapshotKey::Server);
    assert_eq!(reader.get("root.json").await.1, root);
    assert_eq!(reader.get("timestamp.json").await.1, timestamp);
    let chain = copy.state.store.audit_records(0, 1000).await.unwrap();
    assert_eq!(
        verify(&chain, (0, GENESIS.into())).unwrap().0,
        i64::try_from(chain.len()).unwrap()
    );
    assert!(!chain.is_empty());
}
