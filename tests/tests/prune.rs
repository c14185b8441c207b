//! `prune` keeps what clients need: after old versions go, python-tuf clients holding old
//! state and new clients both update, the repository still verifies from root 1, and the
//! prune is in the audit trail.
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "tests: a failed step should stop the test with its message"
)]

use notar_server::audit::{GENESIS, Origin, verify};
use notar_tests::python;
use notar_tests::server::{Backend, Publisher, SnapshotKey, TestServer, target};
use notar_tuf::{Gun, TargetName};
use reqwest::StatusCode;

const GUN: &str = "localhost:5000/team/pruned";

/// python-tuf's ngclient with `cache` as its state: which of `names` it finds.
async fn ngclient(server: &TestServer, cache: &std::path::Path, names: &[&str]) -> String {
    let mut args = vec![server.tuf_url(GUN), cache.to_str().unwrap().to_owned()];
    args.extend(names.iter().map(|n| (*n).to_owned()));
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        python::run("ngclient_fetch.py", &args)
    })
    .await
    .unwrap()
}

async fn add_tag(publisher: &Publisher, tag: &str) {
    let current =
        notar_tuf::Signed::<notar_tuf::Targets>::from_bytes(publisher.get("targets.json").await.1)
            .unwrap();
    let mut next = current.untrusted().clone();
    next.version = next.version.next();
    next.targets
        .insert(TargetName::new(tag).unwrap(), target(tag.as_bytes()));
    assert_eq!(
        publisher.upload_targets(next).await.status(),
        StatusCode::OK
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_with_old_state_still_update_after_a_prune() {
    for backend in Backend::all().await {
        let server = TestServer::start(backend).await;
        let mut publisher = Publisher::new(&server, GUN, SnapshotKey::Server);
        publisher.init(&["v1"]).await;
        add_tag(&publisher, "v2").await;
        let old_state = tempfile::tempdir().unwrap();
        let seen = ngclient(&server, old_state.path(), &["v2", "v4"]).await;
        assert!(seen.contains("v4 MISSING"), "{seen}");
        add_tag(&publisher, "v3").await;
        add_tag(&publisher, "v4").await;

        let gun = Gun::new(GUN).unwrap();
        let removed = server
            .state
            .store
            .prune(&gun, 1, &Origin::default())
            .await
            .unwrap();
        // targets 1-3, snapshots 1-3, timestamps 1-3 went; root 1 stayed.
        assert_eq!(removed, 9);
        assert_eq!(
            publisher.get("1.targets.json").await.0,
            StatusCode::NOT_FOUND
        );
        assert_eq!(publisher.get("1.root.json").await.0, StatusCode::OK);
        assert_eq!(publisher.get("4.targets.json").await.0, StatusCode::OK);
        add_tag(&publisher, "v5").await;

        // The client that last saw targets v2 updates past the gap; a new one starts fine.
        let seen = ngclient(&server, old_state.path(), &["v4", "v5"]).await;
        assert!(!seen.contains("MISSING"), "{seen}");
        let fresh = tempfile::tempdir().unwrap();
        let seen = ngclient(&server, fresh.path(), &["v1", "v5"]).await;
        assert!(!seen.contains("MISSING"), "{seen}");

        let now = time::OffsetDateTime::now_utc();
        let report = notar_server::check::check_repository(
            std::sync::Arc::clone(&server.state.store),
            &gun,
            now,
            now,
        )
        .await
        .unwrap();
        assert_eq!(report.problem, None);
        let chain = server.state.store.audit_records(0, 1000).await.unwrap();
        assert!(chain.iter().any(|r| r.action == "prune"));
        assert!(verify(&chain, (0, GENESIS.into())).is_ok());
    }
}
