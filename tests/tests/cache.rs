//! Servers sharing one database: what one writes, the other serves within its cache TTL,
//! learnt from the change log, while its warm entries keep being served from memory past
//! the TTL (no database read per request, however many repositories).
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "tests: a failed step should stop the test with its message"
)]

use std::time::{Duration, Instant};

use notar_tests::server::{Backend, Publisher, SnapshotKey, TestServer};
use notar_tuf::{Signed, Timestamp};
use reqwest::StatusCode;

const GUN: &str = "registry.example/team/shared";
const TTL: Duration = Duration::from_millis(400);

fn hits(server: &TestServer) -> u64 {
    let labels = notar_server::metrics::CacheLabels { result: "hit" };
    server.state.metrics.cache.get_or_create(&labels).get()
}

fn timestamp_version(body: &[u8]) -> u64 {
    Signed::<Timestamp>::from_bytes(body)
        .expect("a timestamp")
        .untrusted()
        .version
        .get()
}

/// Reads `file` from `server` until `done` says yes, for at most `limit`; returns the last
/// status and body and how long it took.
async fn until(
    publisher: &Publisher,
    file: &str,
    limit: Duration,
    done: impl Fn(StatusCode, &[u8]) -> bool,
) -> (StatusCode, Vec<u8>, Duration) {
    let started = Instant::now();
    loop {
        let (status, body) = publisher.get(file).await;
        if done(status, &body) || started.elapsed() > limit {
            return (status, body, started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_through_one_server_is_served_by_the_other_within_the_ttl() {
    for backend in Backend::all().await {
        let a = TestServer::start_with(backend, |c| c.cache_ttl = TTL).await;
        let b = a.beside().await;
        let mut via_a = Publisher::new(&a, GUN, SnapshotKey::Server);
        via_a.init(&["v1"]).await;
        let (status, first) = via_a.get("timestamp.json").await;
        assert_eq!(status, StatusCode::OK);
        let version = timestamp_version(&first);

        // Past the TTL, A still answers from memory: its look at the change log vouches
        // for the entry.
        // (The look that shows A its own write drops the entry once more: one read.)
        tokio::time::sleep(TTL * 3).await;
        assert_eq!(via_a.get("timestamp.json").await.1, first);
        tokio::time::sleep(TTL * 2).await;
        let before = hits(&a);
        for _ in 0..5 {
            assert_eq!(via_a.get("timestamp.json").await.1, first);
        }
        assert_eq!(hits(&a), before + 5, "served from memory past the TTL");

        // A write through B: A serves it within the TTL (plus a poll's slack).
        let mut via_b = Publisher::new(&b, GUN, SnapshotKey::Server);
        via_b.timestamp_public = via_a.timestamp_public.clone();
        let response = via_b
            .upload_targets(via_b.make_targets(2, &["v1", "v2"]))
            .await;
        assert!(response.status().is_success(), "{}", response.status());
        let (status, body, took) = until(&via_a, "timestamp.json", TTL * 5, |s, b| {
            s == StatusCode::OK && timestamp_version(b) > version
        })
        .await;
        assert_eq!(status, StatusCode::OK);
        assert!(timestamp_version(&body) > version, "A never saw B's write");
        assert!(took <= TTL * 2, "A saw B's write after {took:?}");
        assert_eq!(body, via_b.get("timestamp.json").await.1, "the same bytes");

        // A deletion through B: A stops serving within the TTL.
        assert!(via_b.delete().await.is_success());
        let (status, _, took) = until(&via_a, "timestamp.json", TTL * 5, |s, _| {
            s == StatusCode::NOT_FOUND
        })
        .await;
        assert_eq!(
            status,
            StatusCode::NOT_FOUND,
            "A still serves a deleted repository"
        );
        assert!(took <= TTL * 2, "A saw the deletion after {took:?}");
    }
}
