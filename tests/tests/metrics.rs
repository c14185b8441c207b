//! `/metrics`: requests, uploads by outcome, signatures, cache lookups, the pool, and the
//! expiry horizons, after real traffic; liveness and readiness apart.
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "tests: a failed step should stop the test with its message"
)]

use notar_tests::server::{Backend, Publisher, SnapshotKey, TestServer};
use reqwest::StatusCode;

/// The value of the sample whose line starts with `prefix` (name and labels).
fn sample(text: &str, prefix: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no sample {prefix} in\n{text}"))
        .rsplit(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_traffic_and_show_the_expiry_horizon() {
    let server = TestServer::start(Backend::Sqlite).await;
    let http = reqwest::Client::new();
    let empty = http
        .get(format!("{}/metrics", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(empty.status(), StatusCode::OK);
    let text = empty.text().await.unwrap();
    assert_eq!(
        sample(&text, "notar_server_server_signed_expiry_horizon_seconds"),
        -1.0
    );

    let mut publisher = Publisher::new(&server, "localhost:5000/team/app", SnapshotKey::Server);
    publisher.init(&["v1"]).await;
    for _ in 0..3 {
        assert_eq!(publisher.get("timestamp.json").await.0, StatusCode::OK);
    }
    let refused = publisher
        .upload(vec![("targets".into(), b"{\"signed\":{}}".to_vec())])
        .await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);

    let text = http
        .get(format!("{}/metrics", server.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        sample(
            &text,
            "notar_server_http_requests_total{operation=\"get_metadata\",status=\"200\"}"
        ),
        3.0
    );
    assert_eq!(
        sample(
            &text,
            "notar_server_uploads_total{outcome=\"accepted\",code=\"\"}"
        ),
        1.0
    );
    assert_eq!(
        sample(
            &text,
            "notar_server_uploads_total{outcome=\"refused\",code=\"MALFORMED_UPLOAD\"}"
        ),
        1.0
    );
    assert_eq!(
        sample(&text, "notar_server_signatures_total{role=\"timestamp\"}"),
        1.0
    );
    assert_eq!(
        sample(&text, "notar_server_signatures_total{role=\"snapshot\"}"),
        1.0
    );
    assert!(sample(&text, "notar_server_cache_lookups_total{result=\"hit\"}") >= 2.0);
    assert!(sample(&text, "notar_server_db_pool_connections") >= 1.0);
    assert!(text.contains("notar_server_http_request_duration_seconds_bucket{"));
    // The server signs timestamps for a day; the publisher's roles last far longer.
    let server_horizon = sample(&text, "notar_server_server_signed_expiry_horizon_seconds");
    assert!(
        (86_000.0..=86_400.0).contains(&server_horizon),
        "{server_horizon}"
    );
    let client_horizon = sample(&text, "notar_server_client_signed_expiry_horizon_seconds");
    assert!(client_horizon > 86_400.0 * 300.0, "{client_horizon}");

    for path in ["/livez", "/readyz"] {
        let status = http
            .get(format!("{}{path}", server.url))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, StatusCode::OK, "{path}");
    }
}

/// Readiness asks the keys too: a key another server sealed under a different secret (the
/// same database, the wrong `server.secret`) makes this server not ready, while it stays
/// live. Nothing about the key or the secret is in the body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_fails_when_the_newest_key_does_not_unlock() {
    use notar_server::store::StoredKey;

    let server = TestServer::start(Backend::Sqlite).await;
    let http = reqwest::Client::new();
    let ready = |path: &'static str| {
        let http = http.clone();
        let url = format!("{}{path}", server.url);
        async move {
            let response = http.get(url).send().await.unwrap();
            (response.status(), response.text().await.unwrap())
        }
    };
    let mut publisher = Publisher::new(&server, "localhost:5000/team/ready", SnapshotKey::Server);
    publisher.init(&["v1"]).await;
    let (status, body) = ready("/readyz").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, r#"{"keys":"ok","store":"ok"}"#);

    let foreign = notar_keys::PrivateKey::generate().unwrap();
    let encrypted = notar_keys::encrypt_key(
        &foreign,
        notar_keys::KeyRole::Timestamp,
        None,
        "another server's secret",
        notar_keys::KdfParams::for_tests(),
    )
    .unwrap();
    let gun = notar_tuf::Gun::new("localhost:5000/team/other").unwrap();
    let stored = StoredKey {
        gun,
        role: notar_tuf::RoleName::timestamp(),
        key_id: foreign.key_id().to_string(),
        encrypted,
        created: time::OffsetDateTime::now_utc(),
    };
    assert!(server.state.store.add_key(&stored, true).await.unwrap());

    let (status, body) = ready("/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body, r#"{"keys":"failed","store":"ok"}"#);
    assert!(!body.contains("secret"), "{body}");
    let (status, _) = ready("/livez").await;
    assert_eq!(status, StatusCode::OK);
}
