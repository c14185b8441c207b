//! `notar-server check`'s verifier: a sound repository verifies, roles a publisher must
//! renew soon are listed, and stored metadata that was altered is named.
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "tests: a failed step should stop the test with its message"
)]

use notar_server::check::check_repository;
use notar_tests::server::{Backend, Publisher, SnapshotKey, TestServer};
use notar_tuf::{Expiry, Gun, RoleName};
use reqwest::StatusCode;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_verifies_every_chain_and_lists_what_expires_soon() {
    for backend in Backend::all().await {
        let server = TestServer::start(backend).await;
        let gun = "localhost:5000/team/checked";
        let mut publisher = Publisher::new(&server, gun, SnapshotKey::Server);
        let (_, targets) = publisher.init(&["v1"]).await;
        // Targets v2 expires in 10 days.
        let mut next = targets.untrusted().clone();
        next.version = next.version.next();
        next.expires = Expiry::after(time::OffsetDateTime::now_utc(), time::Duration::days(10));
        let response = publisher.upload_targets(next).await;
        assert_eq!(response.status(), StatusCode::OK);

        let store = std::sync::Arc::clone(&server.state.store);
        let gun = Gun::new(gun).unwrap();
        let now = time::OffsetDateTime::now_utc();
        let report = check_repository(
            std::sync::Arc::clone(&store),
            &gun,
            now,
            now + time::Duration::days(30),
        )
        .await
        .unwrap();
        assert_eq!(report.problem, None);
        let roles: Vec<&RoleName> = report.expiring.iter().map(|(r, _)| r).collect();
        assert_eq!(
            roles,
            [&RoleName::targets()],
            "only what the publisher renews"
        );
        let report = check_repository(
            std::sync::Arc::clone(&store),
            &gun,
            now,
            now + time::Duration::days(5),
        )
        .await
        .unwrap();
        assert!(report.expiring.is_empty());

        // Someone with database access swaps a tag's digest in the current targets.
        sqlx::any::install_default_drivers();
        let pool = sqlx::AnyPool::connect(&server.state.config.database)
            .await
            .unwrap();
        let current: Vec<u8> = sqlx::query_scalar(
            "SELECT data FROM tuf_files WHERE gun = $1 AND role = 'targets' AND version = 2",
        )
        .bind(gun.as_str())
        .fetch_one(&pool)
        .await
        .unwrap();
        let text = String::from_utf8(current).unwrap();
        let digest = text.split("\"sha256\":\"").nth(1).unwrap()[..64].to_owned();
        let forged = text.replace(&digest, &"f".repeat(64));
        sqlx::query(
            "UPDATE tuf_files SET data = $1 WHERE gun = $2 AND role = 'targets' AND version = 2",
        )
        .bind(forged.into_bytes())
        .bind(gun.as_str())
        .execute(&pool)
        .await
        .unwrap();
        pool.close().await;
        let report = check_repository(store, &gun, now, now + time::Duration::days(30))
            .await
            .unwrap();
        let problem = report.problem.expect("the forged targets does not verify");
        assert!(problem.contains("targets"), "{problem}");
    }
}
