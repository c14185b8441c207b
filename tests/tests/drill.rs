//! Three servers on one PostgreSQL keep one repository fresh: each re-signing is done by
//! one of them, not by all three.
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "tests: a failed step should stop the test with its message"
)]

use std::time::Duration;

use notar_server::metrics::RoleLabels;
use notar_tests::server::{Backend, Publisher, SnapshotKey, TestServer};

fn timestamps_signed(server: &TestServer) -> u64 {
    server
        .state
        .metrics
        .signatures
        .get(&RoleLabels { role: "timestamp" })
        .map_or(0, |c| c.get())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_servers_re_sign_each_timestamp_once() {
    let Some(Backend::Postgres(url)) = Backend::postgres().await else {
        return;
    };
    let mut servers = Vec::new();
    for _ in 0..3 {
        servers.push(
            TestServer::start_with(Backend::Postgres(url.clone()), |config| {
                // Due for re-signing 2 s before it expires; every server looks each second.
                config.lifetimes.timestamp = time::Duration::seconds(8);
                config.refresh_interval = Duration::from_secs(1);
            })
            .await,
        );
    }
    let mut publisher = Publisher::new(&servers[0], "example.com/fresh", SnapshotKey::Server);
    publisher.init(&["v1"]).await;
    tokio::time::sleep(Duration::from_secs(15)).await;

    let resigned = servers[0]
        .state
        .store
        .audit_records(0, 1000)
        .await
        .unwrap()
        .iter()
        .filter(|r| r.action == "resign")
        .count() as u64;
    assert!(resigned >= 1, "nothing was re-signed in 15 s");
    let signed: u64 = servers.iter().map(timestamps_signed).sum();
    // One timestamp for the publish, and one per re-signing: no server signed one that
    // another had already stored.
    assert_eq!(
        signed,
        1 + resigned,
        "{resigned} re-signings, {signed} timestamps signed"
    );
    let (status, _) = publisher.get("timestamp.json").await;
    assert_eq!(status, reqwest::StatusCode::OK);
}

/// A read with `Cache-Control: no-cache` through one server sees a write made through
/// another at once, whatever the memory cache holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_cache_reads_see_writes_made_through_another_server() {
    let Some(Backend::Postgres(url)) = Backend::postgres().await else {
        return;
    };
    let slow = |config: &mut notar_server::Config| config.cache_ttl = Duration::from_secs(60);
    let writer = TestServer::start_with(Backend::Postgres(url.clone()), slow).await;
    let reader = TestServer::start_with(Backend::Postgres(url), slow).await;
    let mut publisher = Publisher::new(&writer, "example.com/cached", SnapshotKey::Server);
    let (_, targets) = publisher.init(&["v1"]).await;
    let through_reader = Publisher::new(&reader, "example.com/cached", SnapshotKey::Server);
    let first = through_reader.get("timestamp.json").await.1;
    let mut next = targets.untrusted().clone();
    next.version = next.version.next();
    assert_eq!(
        publisher.upload_targets(next).await.status(),
        reqwest::StatusCode::OK
    );
    // The reader's cache still holds the first timestamp for a minute...
    assert_eq!(through_reader.get("timestamp.json").await.1, first);
    // ...unless the client asks past it.
    let fresh = reqwest::Client::new()
        .get(through_reader.url("timestamp.json"))
        .header("cache-control", "no-cache")
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_ne!(fresh.to_vec(), first);
    assert_eq!(fresh.to_vec(), publisher.get("timestamp.json").await.1);
}
