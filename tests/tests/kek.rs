//! Managed keys under the key-encryption key: new keys are wrapped (no argon2id per
//! repository), keys stored before the KEK are still used and rewritten wrapped on first
//! use, and a wrong secret is refused without writing a KEK under it. On SQLite and
//! PostgreSQL.
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "tests: a failed step should stop the test with its message"
)]

use notar_server::store::sql::SqlStore;
use notar_server::store::{Store, StoredKey};
use notar_server::{AppState, Config};
use notar_tests::server::{Backend, Publisher, SnapshotKey, TEST_SECRET, TestServer};
use notar_tuf::{Gun, RoleName};
use zeroize::Zeroizing;

/// A timestamp key as servers before the KEK stored it: a key file under the secret.
fn legacy_key(gun: &Gun, secret: &str) -> (StoredKey, String) {
    let key = notar_keys::PrivateKey::generate().unwrap();
    let encrypted = notar_keys::encrypt_key(
        &key,
        notar_keys::KeyRole::Timestamp,
        Some(gun),
        secret,
        notar_keys::KdfParams::for_tests(),
    )
    .unwrap();
    let id = key.key_id().to_string();
    let stored = StoredKey {
        gun: gun.clone(),
        role: RoleName::timestamp(),
        key_id: id.clone(),
        encrypted,
        created: time::OffsetDateTime::now_utc(),
    };
    (stored, id)
}

async fn timestamp_rows(store: &dyn Store, gun: &Gun) -> Vec<StoredKey> {
    store.keys(gun, &RoleName::timestamp()).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_keys_are_wrapped_and_old_ones_rewrapped_on_first_use() {
    for backend in Backend::all().await {
        let server = TestServer::start(backend).await;
        let store = &*server.state.store;

        // A new repository's key is wrapped under the KEK.
        let fresh = Gun::new("localhost:5000/team/fresh").unwrap();
        let mut publisher = Publisher::new(&server, fresh.as_str(), SnapshotKey::Server);
        publisher.init(&["v1"]).await;
        let rows = timestamp_rows(store, &fresh).await;
        assert_eq!(rows.len(), 1);
        assert!(notar_keys::is_wrapped(&rows[0].encrypted));

        // A key from before the KEK serves, signs, and is rewritten wrapped, same key.
        let old = Gun::new("localhost:5000/team/old").unwrap();
        let (stored, id) = legacy_key(&old, TEST_SECRET);
        assert!(store.add_key(&stored, true).await.unwrap());
        let mut publisher = Publisher::new(&server, old.as_str(), SnapshotKey::Server);
        let served = publisher.server_key("timestamp").await;
        assert_eq!(served.key_id().as_str(), id);
        publisher.init(&["v1"]).await;
        let rows = timestamp_rows(store, &old).await;
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].key_id, id);
        assert!(
            notar_keys::is_wrapped(&rows[0].encrypted),
            "rewritten under the KEK"
        );
        let (status, _) = publisher.get("timestamp.json").await;
        assert_eq!(status, reqwest::StatusCode::OK);

        // A wrapped row moved to another repository does not open there.
        let moved = Gun::new("localhost:5000/team/moved").unwrap();
        let mut copy = rows[0].clone();
        copy.gun = moved.clone();
        assert!(store.add_key(&copy, true).await.unwrap());
        let restarted = server.restart().await;
        let probe = Publisher::new(&restarted, moved.as_str(), SnapshotKey::Server);
        let (status, _) = probe.get("timestamp.key").await;
        assert_eq!(status, reqwest::StatusCode::INTERNAL_SERVER_ERROR);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_secret_never_writes_a_kek() {
    for backend in Backend::all().await {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::for_data_dir(dir.path());
        if let Backend::Postgres(url) = &backend {
            config.database = url.clone();
        }
        let open = |secret: &str| {
            let config = config.clone();
            let secret = Zeroizing::new(secret.to_owned());
            async move { AppState::open(config, secret, notar_keys::KdfParams::for_tests()).await }
        };
        // A database from before the KEK: one key file under the secret, no KEK row.
        let store = SqlStore::connect(&config.database).await.unwrap();
        let gun = Gun::new("localhost:5000/team/old").unwrap();
        assert!(
            store
                .add_key(&legacy_key(&gun, TEST_SECRET).0, true)
                .await
                .unwrap()
        );
        assert!(store.kek_salt().await.unwrap().is_none());

        let refused = open("not the secret").await.expect_err("refused");
        assert!(refused.to_string().contains("server secret"), "{refused}");
        assert!(
            store.kek_salt().await.unwrap().is_none(),
            "no KEK made under a wrong secret"
        );

        drop(open(TEST_SECRET).await.expect("the right secret opens"));
        assert!(store.kek_salt().await.unwrap().is_some());
        // Now the KEK's check refuses a wrong secret.
        let refused = open("not the secret").await.expect_err("refused");
        assert!(refused.to_string().contains("server secret"), "{refused}");
    }
}

/// Unlocked managed keys are kept up to a bound, whatever the number of repositories, and
/// one dropped from memory is unwrapped again when it is next needed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unlocked_keys_in_memory_are_bounded() {
    use notar_server::audit::Origin;
    use notar_server::managed_keys::UNLOCKED_MAX;
    use notar_server::path::ManagedRole;

    let server = TestServer::start(Backend::Sqlite).await;
    let keys = &server.state.keys;
    let origin = Origin::server();
    let guns: Vec<Gun> = (0..UNLOCKED_MAX + 50)
        .map(|i| Gun::new(format!("localhost:5000/many/app-{i}")).unwrap())
        .collect();
    let mut first_ids = Vec::new();
    for gun in &guns {
        let public = keys
            .current_public(gun, ManagedRole::Timestamp, &origin)
            .await
            .unwrap();
        first_ids.push(public.key_id());
        assert!(keys.unlocked_count() <= UNLOCKED_MAX);
    }
    assert_eq!(keys.unlocked_count(), UNLOCKED_MAX, "full, not past full");
    // Every key still signs, those dropped from memory included.
    for (gun, id) in guns.iter().zip(&first_ids).take(60) {
        let key = keys
            .signer(gun, ManagedRole::Timestamp, std::slice::from_ref(id))
            .await
            .unwrap()
            .expect("the key is found");
        assert_eq!(key.key_id().as_str(), id.as_str());
    }
    assert!(keys.unlocked_count() <= UNLOCKED_MAX);
}
