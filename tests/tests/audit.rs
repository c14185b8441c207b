//! The audit trail on both databases: every write is a record with its actor and remote
//! address, the hash chain names the first record edited or removed, and a changefeed
//! reader paging by `change_id` under concurrent writers through several servers never
//! skips a change.
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "tests: a failed step should stop the test with its message"
)]

use notar_server::audit::{AuditRecord, GENESIS, verify};
use notar_tests::server::{Backend, Publisher, SnapshotKey, TestServer};
use notar_tuf::{Signed, TargetName, Targets};
use reqwest::StatusCode;

async fn records(server: &TestServer) -> Vec<AuditRecord> {
    server.state.store.audit_records(0, 10_000).await.unwrap()
}

/// Runs `sql` on the server's database, as an attacker with database access would.
async fn tamper(server: &TestServer, sql: &str) {
    sqlx::any::install_default_drivers();
    let url = server.state.config.database.clone();
    let pool = sqlx::AnyPool::connect(&url).await.unwrap();
    sqlx::query(sql).execute(&pool).await.unwrap();
    pool.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_write_is_a_chained_record_and_tampering_is_found() {
    for backend in Backend::all().await {
        let server = TestServer::start(backend).await;
        let mut publisher = Publisher::new(&server, "localhost:5000/team/app", SnapshotKey::Server);
        let (_, targets) = publisher.init(&["v1"]).await;
        let mut next = targets.untrusted().clone();
        next.version = next.version.next();
        next.targets.insert(
            TargetName::new("v2").unwrap(),
            notar_tests::server::target(b"two"),
        );
        let signed = publisher.sign_targets(next);
        let response = publisher
            .upload(vec![("targets".into(), signed.as_bytes().to_vec())])
            .await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(publisher.delete().await, StatusCode::OK);

        let all = records(&server).await;
        let actions: Vec<&str> = all.iter().map(|r| r.action.as_str()).collect();
        // Two managed keys (timestamp, snapshot), the first publish, the update, the
        // deletion.
        assert_eq!(
            actions,
            ["key", "key", "update", "update", "delete"],
            "{all:#?}"
        );
        assert!(all.iter().all(|r| r.gun == "localhost:5000/team/app"));
        assert!(
            all.iter().all(|r| r
                .remote
                .as_deref()
                .is_some_and(|a| a.starts_with("127.0.0.1:"))),
            "{all:#?}"
        );
        let update: serde_json::Value = serde_json::from_str(&all[3].details).unwrap();
        let roles: Vec<&str> = update
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["role"].as_str().unwrap())
            .collect();
        assert_eq!(roles, ["snapshot", "targets", "timestamp"]);
        assert_eq!(update[1]["version"], 2);
        assert_eq!(all[0].prev_hash, GENESIS);
        assert_eq!(verify(&all, (0, GENESIS.into())).unwrap().0, 5);

        // Edited: record 3 says someone else did it.
        tamper(
            &server,
            "UPDATE audit_log SET actor = 'mallory' WHERE id = 3",
        )
        .await;
        let broken = verify(&records(&server).await, (0, GENESIS.into())).unwrap_err();
        assert_eq!(broken.id, 3, "{broken}");
        assert!(broken.reason.contains("edited"), "{broken}");
        tamper(&server, "UPDATE audit_log SET actor = NULL WHERE id = 3").await;
        assert!(verify(&records(&server).await, (0, GENESIS.into())).is_ok());
        // Removed: record 2 is gone; record 3 is where the chain breaks.
        tamper(&server, "DELETE FROM audit_log WHERE id = 2").await;
        let broken = verify(&records(&server).await, (0, GENESIS.into())).unwrap_err();
        assert_eq!(broken.id, 3, "{broken}");
        assert!(broken.reason.contains("removed"), "{broken}");
    }
}

/// Eight writers publish through three servers sharing one PostgreSQL while a reader pages
/// the changefeed of a fourth by `change_id`: every change that commits is seen.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_changefeed_reader_never_misses_a_change_that_commits_late() {
    let Some(Backend::Postgres(url)) = Backend::postgres().await else {
        return;
    };
    let mut servers = Vec::new();
    for _ in 0..3 {
        servers.push(TestServer::start(Backend::Postgres(url.clone())).await);
    }
    let reader_url = servers[0].url.clone();
    let mut publishers = Vec::new();
    for writer in 0..8 {
        let server = &servers[writer % 3];
        let mut publisher = Publisher::new(
            server,
            &format!("example.com/feed-{writer}"),
            SnapshotKey::Server,
        );
        publisher.init(&["v0"]).await;
        publishers.push(publisher);
    }
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let done = std::sync::Arc::clone(&done);
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut last: i64 = 0;
            let mut seen = std::collections::BTreeSet::new();
            loop {
                let finished = done.load(std::sync::atomic::Ordering::Acquire);
                let page: serde_json::Value = http
                    .get(format!(
                        "{reader_url}/v2/_trust/changefeed?change_id={last}&records=1000"
                    ))
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                for record in page["records"].as_array().unwrap() {
                    let id: i64 = record["ID"].as_str().unwrap().parse().unwrap();
                    seen.insert(id);
                    last = last.max(id);
                }
                if finished && page["count"] == 0 {
                    return seen;
                }
            }
        })
    };
    let mut writers = Vec::new();
    for publisher in publishers {
        writers.push(tokio::spawn(async move {
            for round in 1..=6u64 {
                let current =
                    Signed::<Targets>::from_bytes(publisher.get("targets.json").await.1).unwrap();
                let mut next = current.untrusted().clone();
                next.version = next.version.next();
                next.targets.insert(
                    TargetName::new(format!("v{round}")).unwrap(),
                    notar_tests::server::target(format!("{round}").as_bytes()),
                );
                let response = publisher.upload_targets(next).await;
                assert_eq!(response.status(), StatusCode::OK);
            }
        }));
    }
    for writer in writers {
        writer.await.unwrap();
    }
    done.store(true, std::sync::atomic::Ordering::Release);
    let seen = reader.await.unwrap();
    let all = servers[1]
        .state
        .store
        .changes(
            None,
            notar_server::store::ChangeQuery::After {
                after: 0,
                limit: 1000,
            },
        )
        .await
        .unwrap();
    assert_eq!(all.len(), 8 * 7, "one change per timestamp written");
    let missed: Vec<i64> = all
        .iter()
        .map(|c| c.id)
        .filter(|id| !seen.contains(id))
        .collect();
    assert!(missed.is_empty(), "the reader skipped changes {missed:?}");
    // And the audit chain written by three servers at once is one chain.
    let chain = servers[2]
        .state
        .store
        .audit_records(0, 10_000)
        .await
        .unwrap();
    assert_eq!(
        verify(&chain, (0, GENESIS.into())).unwrap().0,
        i64::try_from(chain.len()).unwrap()
    );
}
