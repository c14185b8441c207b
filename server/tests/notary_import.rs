//! Migrating a real notary-server (Debian's `notary-server` 0.7 on PostgreSQL, and with
//! notary-signer on MariaDB too, filled by the stock `notary` CLI) with
//! `notar-server import --from postgres://…` (or `mysql://…`): every version byte for
//! byte, so the stock client's cached trust data stays valid against notar-server; the old
//! clients keep listing, and publish again once the timestamp key is moved here. A damaged
//! row stops the import before anything is written and is named.
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "tests: a failed step should stop the test with its message"
)]

#[allow(dead_code, reason = "not every test uses every helper")]
mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use notar_tests::notary_cli::{self, Notary};
use notar_tests::server::Backend;

/// Notary's server schema (`tuf_files`, `changefeed`), as its PostgreSQL migrations make it.
const NOTARY_SCHEMA: &str = r#"
CREATE TABLE tuf_files (
  id serial PRIMARY KEY,
  created_at timestamp NULL DEFAULT NULL,
  updated_at timestamp NULL DEFAULT NULL,
  deleted_at timestamp NULL DEFAULT NULL,
  gun varchar(255) NOT NULL,
  role varchar(255) NOT NULL,
  version integer NOT NULL,
  data bytea NOT NULL,
  sha256 char(64) DEFAULT NULL,
  UNIQUE (gun, role, version)
);
CREATE INDEX tuf_files_sha256_idx ON tuf_files(sha256);
CREATE TABLE change_category (category VARCHAR(20) PRIMARY KEY);
INSERT INTO change_category VALUES ('update'), ('deletion');
CREATE TABLE changefeed (
  id serial PRIMARY KEY,
  created_at timestamp DEFAULT CURRENT_TIMESTAMP,
  gun varchar(255) NOT NULL,
  version integer NOT NULL,
  sha256 CHAR(64) DEFAULT NULL,
  category VARCHAR(20) NOT NULL DEFAULT 'update' REFERENCES change_category
);
CREATE INDEX idx_changefeed_gun ON changefeed (gun);
"#;

const GUN: &str = "example.com/migrated/app";
const OTHER: &str = "example.com/migrated/other";

/// notary-server or notary-signer, listening on `port`; killed on drop.
struct Daemon {
    child: Child,
    port: u16,
    /// Its log, quoted when it does not come up.
    log: std::path::PathBuf,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Daemon {
    /// Starts `program -config <dir>/<program>.json` with `config`, on `port`, logging to
    /// `<dir>/<program>.log`.
    fn spawn(
        dir: &Path,
        program: &str,
        port: u16,
        config: serde_json::Value,
        env: &[(&str, &str)],
    ) -> Daemon {
        let path = dir.join(format!("{program}.json"));
        std::fs::write(&path, config.to_string()).expect("config");
        let log = dir.join(format!("{program}.log"));
        let child = Command::new(program)
            .arg("-config")
            .arg(&path)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(std::fs::File::create(&log).expect("log")))
            .spawn()
            .unwrap_or_else(|e| panic!("{program} starts: {e}"));
        Daemon { child, port, log }
    }

    fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// Waits until `ready` answers true; panics with the log after ten seconds.
    async fn wait_until<F: std::future::Future<Output = bool>>(
        self,
        ready: impl Fn() -> F,
    ) -> Self {
        for _ in 0..200 {
            if ready().await {
                return self;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "{} did not come up: {}",
            self.log.display(),
            std::fs::read_to_string(&self.log).unwrap_or_default()
        );
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// notary-server's or notary-signer's `storage` setting for a PostgreSQL database.
fn postgres_storage(db_url: &str) -> serde_json::Value {
    serde_json::json!({ "backend": "postgres", "db_url": format!("{db_url}?sslmode=disable") })
}

async fn start_notary_server(
    dir: &Path,
    storage: serde_json::Value,
    trust_service: serde_json::Value,
    pki: (&Path, &Path, &Path),
) -> Daemon {
    let (ca, cert, key) = pki;
    let port = free_port();
    let config = serde_json::json!({
        "server": {
            "http_addr": format!("127.0.0.1:{port}"),
            "tls_cert_file": cert,
            "tls_key_file": key,
        },
        "trust_service": trust_service,
        "storage": storage,
        "logging": { "level": "info" },
    });
    let server = Daemon::spawn(dir, "notary-server", port, config, &[]);
    let client = reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(&std::fs::read(ca).expect("CA")).expect("CA"),
        )
        .build()
        .expect("client");
    let health = format!("{}/_notary_server/health", server.url());
    server
        .wait_until(|| async {
            client
                .get(&health)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
        })
        .await
}

fn import(data_dir: &Path, from: &str) -> std::process::Output {
    import_with(data_dir, &["--from", from], &[])
}

fn import_with(data_dir: &Path, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    Command::new(common::BIN)
        .arg("--data-dir")
        .arg(data_dir)
        .arg("import")
        .args(args)
        .envs(env.iter().copied())
        .env("NOTAR_SERVER_SECRET", "import test secret")
        .output()
        .expect("notar-server import runs")
}

/// notary-signer's schema (`private_keys`), as its PostgreSQL migration makes it.
const SIGNER_SCHEMA: &str = r#"
CREATE TABLE private_keys (
  id serial PRIMARY KEY,
  created_at timestamp NULL DEFAULT NULL,
  updated_at timestamp NULL DEFAULT NULL,
  deleted_at timestamp NULL DEFAULT NULL,
  key_id varchar(255) NOT NULL,
  encryption_alg varchar(255) NOT NULL,
  keywrap_alg varchar(255) NOT NULL,
  algorithm varchar(50) NOT NULL,
  passphrase_alias varchar(50) NOT NULL,
  public bytea NOT NULL,
  private bytea NOT NULL,
  gun varchar(255) NOT NULL,
  role varchar(255) NOT NULL,
  last_used timestamp NULL DEFAULT NULL,
  CONSTRAINT key_id UNIQUE (key_id),
  CONSTRAINT key_id_2 UNIQUE (key_id, algorithm)
);
"#;

async fn database_with(schema: &str) -> Option<String> {
    let Some(Backend::Postgres(db_url)) = Backend::postgres().await else {
        return None;
    };
    use sqlx::Connection;
    let mut db = sqlx::PgConnection::connect(&db_url).await.expect("connect");
    sqlx::raw_sql(schema)
        .execute(&mut db)
        .await
        .expect("schema");
    Some(db_url)
}

/// notary-signer on `storage` over gRPC with mutual TLS.
async fn start_signer(
    dir: &Path,
    mut storage: serde_json::Value,
    pki: (&Path, &Path, &Path),
) -> Daemon {
    storage["default_alias"] = "importalias".into();
    let (ca, cert, key) = pki;
    let port = free_port();
    let config = serde_json::json!({
        "server": {
            "grpc_addr": format!("127.0.0.1:{port}"),
            "tls_cert_file": cert,
            "tls_key_file": key,
            "client_ca_file": ca,
        },
        "storage": storage,
        "logging": { "level": "info" },
    });
    let env = [("NOTARY_SIGNER_IMPORTALIAS", SIGNER_PASSPHRASE)];
    Daemon::spawn(dir, "notary-signer", port, config, &env)
        .wait_until(|| async { std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() })
        .await
}

const SIGNER_PASSPHRASE: &str = "signer alias passphrase";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notary_server_on_postgres_is_imported_and_its_clients_keep_working() {
    if !notary_cli::available() {
        eprintln!("skipped: the stock notary CLI is not installed");
        return;
    }
    let Some(db_url) = database_with(NOTARY_SCHEMA).await else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path();
    let pki = notar_tests::tls::TestPki::new("migration");
    let (ca, cert, key) = pki.write(path);
    std::fs::write(path.join("v1.txt"), "hello\n").expect("write");

    // The old world: notary-server on PostgreSQL, repositories made by the stock client.
    let notary_server = start_notary_server(
        path,
        postgres_storage(&db_url),
        serde_json::json!({ "type": "local" }),
        (&ca, &cert, &key),
    )
    .await;
    let owner = Notary::new(&notary_server.url(), &path.join("trust"), &ca);
    let v1 = path.join("v1.txt");
    let v1 = v1.to_str().expect("utf-8");
    owner.run(&["init", GUN]).await.expect_code(0);
    owner.run(&["add", GUN, "v1", v1]).await.expect_code(0);
    owner.run(&["publish", GUN]).await.expect_code(0);
    owner
        .run(&["add", GUN, "v2", v1, "-p"])
        .await
        .expect_code(0);
    owner
        .run(&["key", "rotate", GUN, "targets"])
        .await
        .expect_code(0);
    owner.run(&["init", OTHER, "-p"]).await.expect_code(0);
    let before = owner.run(&["list", GUN]).await.expect_code(0).stdout;
    drop(notary_server);

    // A damaged row: the import stops, names it, and writes nothing.
    let data_dir = path.join("notar");
    {
        use sqlx::Connection;
        let mut db = sqlx::PgConnection::connect(&db_url).await.expect("connect");
        let original: Vec<u8> = sqlx::query_scalar("SELECT data FROM tuf_files WHERE id = 3")
            .fetch_one(&mut db)
            .await
            .expect("row 3");
        sqlx::query("UPDATE tuf_files SET data = $1 WHERE id = 3")
            .bind(&b"{\"signed\":"[..])
            .execute(&mut db)
            .await
            .expect("damage");
        let refused = import(&data_dir, &db_url);
        assert_eq!(refused.status.code(), Some(2));
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(
            stderr.contains("tuf_files row 3: the sha256 column"),
            "{stderr}"
        );
        // Undone, the same data directory takes the whole import, which it would refuse
        // had the failed run written any repository.
        sqlx::query("UPDATE tuf_files SET data = $1 WHERE id = 3")
            .bind(&original)
            .execute(&mut db)
            .await
            .expect("undo");
    }

    let started = std::time::Instant::now();
    let imported = import(&data_dir, &db_url);
    let elapsed = started.elapsed();
    let stdout = String::from_utf8_lossy(&imported.stdout);
    assert!(
        imported.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&imported.stderr)
    );
    let files = count(&db_url, "SELECT COUNT(*) FROM tuf_files").await;
    let changes = count(&db_url, "SELECT COUNT(*) FROM changefeed").await;
    assert!(
        stdout.starts_with(&format!(
            "Imported 2 repositories (2 in the Notary dialect): {files} metadata files, {changes} changes"
        )),
        "{stdout}"
    );
    eprintln!("imported 2 repositories, {files} files, {changes} changes in {elapsed:?}");
    let again = import(&data_dir, &db_url);
    assert_eq!(again.status.code(), Some(2), "a second import is refused");
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("has trust data on this server already")
    );

    // The new world: notar-server on what was imported. Its timestamps live eight weeks,
    // so the imported 14-day timestamp is due for re-signing at once; the server cannot
    // (it has no key yet) and serves the stored one, which is still valid.
    let (mut server, addr) = start_notar(
        path,
        &data_dir,
        (&cert, &key),
        &["--timestamp-lifetime", "4838400"],
    );
    let url = format!("https://{addr}");
    let owner = Notary::new(&url, &path.join("trust"), &ca);
    // The owner's cache came from notary-server: the same bytes, so it simply goes on.
    assert_eq!(
        owner.run(&["list", GUN]).await.expect_code(0).stdout,
        before
    );
    let reader = owner.with_trust_dir(&path.join("reader"));
    assert_eq!(
        reader.run(&["list", GUN]).await.expect_code(0).stdout,
        before
    );

    // Publishing needs the timestamp key, which stayed with the old server's signer…
    let refused = owner
        .run(&["add", GUN, "v3", v1, "-p"])
        .await
        .expect_code(1);
    assert!(
        refused
            .stdout
            .contains("the server holds no timestamp key that root lists"),
        "{}",
        refused.stdout
    );
    owner.run(&["reset", GUN, "--all"]).await.expect_code(0);
    // …until the owner moves it here; then the old client publishes and rotates again.
    owner
        .run(&["key", "rotate", GUN, "timestamp", "-r"])
        .await
        .expect_code(0);
    owner
        .run(&["add", GUN, "v3", v1, "-p"])
        .await
        .expect_code(0);
    owner
        .run(&["key", "rotate", GUN, "targets"])
        .await
        .expect_code(0);
    let listed = reader.run(&["list", GUN]).await.expect_code(0).stdout;
    assert!(listed.contains("v3 "), "{listed}");
    assert!(listed.contains("v1 ") && listed.contains("v2 "), "{listed}");
    let _ = server.kill();
    let _ = server.wait();
}

/// notar-server over TLS on what `data_dir` holds, with `extra` settings.
fn start_notar(
    dir: &Path,
    data_dir: &Path,
    (cert, key): (&Path, &Path),
    extra: &[&str],
) -> (Child, String) {
    let mut args = vec![
        "--listen",
        "127.0.0.1:0",
        "--tls-cert",
        cert.to_str().expect("utf-8"),
        "--tls-key",
        key.to_str().expect("utf-8"),
        "--data-dir",
        data_dir.to_str().expect("utf-8"),
    ];
    args.extend_from_slice(extra);
    common::start(dir, &[], &args, "import test secret")
}

async fn count(db_url: &str, query: &str) -> i64 {
    use sqlx::Connection;
    let mut db = sqlx::PgConnection::connect(db_url).await.expect("connect");
    sqlx::query_scalar::<_, i64>(query)
        .fetch_one(&mut db)
        .await
        .expect("count")
}

/// With notary-signer's database and passphrase, the server-held keys come along: the old
/// clients publish to notar-server at once, the server signing timestamps (and a held
/// snapshot) with the very ECDSA keys notary-signer made. A wrong passphrase stops the
/// import, naming the key's row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notary_signer_keys_are_imported_and_repositories_keep_updating() {
    if !notary_cli::available() {
        return;
    }
    let Some(server_db) = database_with(NOTARY_SCHEMA).await else {
        return;
    };
    let signer_db = database_with(SIGNER_SCHEMA)
        .await
        .expect("a second database");
    signer_keys_flow(
        (postgres_storage(&server_db), &server_db),
        (postgres_storage(&signer_db), &signer_db),
    )
    .await;
}

/// The same migration from MySQL (Debian's MariaDB): notary-server and notary-signer on it,
/// then `import --from mysql://… --signer-from mysql://…`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notary_server_and_signer_on_mysql_are_imported() {
    if !notary_cli::available() {
        return;
    }
    let Some(mariadb) = MariaDb::start().await else {
        return;
    };
    let server_db = mariadb.database("notaryserver", MYSQL_SERVER_SCHEMA);
    let signer_db = mariadb.database("notarysigner", MYSQL_SIGNER_SCHEMA);
    signer_keys_flow(
        (mariadb.storage("notaryserver"), &server_db),
        (mariadb.storage("notarysigner"), &signer_db),
    )
    .await;
}

/// Notary on the databases `server` and `signer` (each: the daemons' `storage` setting, and
/// the URL notar-server imports from), two repositories made there, then imported with the
/// signer's keys; the old client publishes to notar-server at once.
async fn signer_keys_flow(
    (server_storage, server_db): (serde_json::Value, &str),
    (signer_storage, signer_db): (serde_json::Value, &str),
) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path();
    let pki = notar_tests::tls::TestPki::new("signer");
    let (ca, cert, key) = pki.write(path);
    std::fs::write(path.join("v1.txt"), "hello\n").expect("write");
    let v1 = path.join("v1.txt");
    let v1 = v1.to_str().expect("utf-8");

    let signer = start_signer(path, signer_storage, (&ca, &cert, &key)).await;
    let notary_server = start_notary_server(
        path,
        server_storage,
        serde_json::json!({
            "type": "remote",
            "hostname": "127.0.0.1",
            "port": signer.port.to_string(),
            "key_algorithm": "ecdsa",
            "tls_ca_file": ca,
            "tls_client_cert": cert,
            "tls_client_key": key,
        }),
        (&ca, &cert, &key),
    )
    .await;
    let owner = Notary::new(&notary_server.url(), &path.join("trust"), &ca);
    // One repository with a client-held snapshot, one with the server holding it.
    owner.run(&["init", GUN]).await.expect_code(0);
    owner
        .run(&["add", GUN, "v1", v1, "-p"])
        .await
        .expect_code(0);
    owner.run(&["init", OTHER]).await.expect_code(0);
    owner
        .run(&["key", "rotate", OTHER, "snapshot", "-r"])
        .await
        .expect_code(0);
    owner
        .run(&["add", OTHER, "v1", v1, "-p"])
        .await
        .expect_code(0);
    drop(notary_server);
    drop(signer);
    let algorithms: Vec<String> =
        sqlx_strings(signer_db, "SELECT DISTINCT algorithm FROM private_keys").await;
    assert_eq!(algorithms, ["ecdsa"], "notary-signer made ECDSA keys");

    let data_dir = path.join("notar");
    let wrong = import_with(
        &data_dir,
        &["--from", server_db, "--signer-from", signer_db],
        &[("NOTARY_SIGNER_IMPORTALIAS", "not the passphrase")],
    );
    assert_eq!(wrong.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&wrong.stderr);
    assert!(
        stderr.contains("private_keys row") && stderr.contains("the passphrase does not open it"),
        "{stderr}"
    );
    let imported = import_with(
        &data_dir,
        &["--from", server_db, "--signer-from", signer_db],
        &[("NOTARY_SIGNER_IMPORTALIAS", SIGNER_PASSPHRASE)],
    );
    let stdout = String::from_utf8_lossy(&imported.stdout);
    assert!(
        imported.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&imported.stderr)
    );
    assert!(
        stdout.contains(", 3 server-held keys,"),
        "two timestamp keys and one snapshot key: {stdout}"
    );

    let (mut server, addr) = start_notar(path, &data_dir, (&cert, &key), &[]);
    let owner = Notary::new(&format!("https://{addr}"), &path.join("trust"), &ca);
    let reader = owner.with_trust_dir(&path.join("reader"));
    for gun in [GUN, OTHER] {
        owner
            .run(&["add", gun, "v2", v1, "-p"])
            .await
            .expect_code(0);
        let listed = reader.run(&["list", gun]).await.expect_code(0).stdout;
        assert!(
            listed.contains("v1 ") && listed.contains("v2 "),
            "{gun}: {listed}"
        );
    }
    let timestamp: serde_json::Value = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(pki.ca_pem.as_bytes()).expect("CA"))
        .build()
        .expect("client")
        .get(format!(
            "https://{addr}/v2/{OTHER}/_trust/tuf/timestamp.json"
        ))
        .send()
        .await
        .expect("GET")
        .json()
        .await
        .expect("JSON");
    assert_eq!(
        timestamp["signatures"][0]["method"], "ecdsa",
        "signed by notary-signer's ECDSA key, now held here"
    );
    let _ = server.kill();
    let _ = server.wait();
}

async fn sqlx_strings(db_url: &str, query: &str) -> Vec<String> {
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    let mut db = sqlx::AnyConnection::connect(db_url).await.expect("connect");
    sqlx::query_scalar::<_, String>(query)
        .fetch_all(&mut db)
        .await
        .expect("query")
}

/// Notary's server schema on MySQL, as its MySQL migrations leave it.
const MYSQL_SERVER_SCHEMA: &str = r#"
CREATE TABLE tuf_files (
  id int(11) NOT NULL AUTO_INCREMENT,
  created_at timestamp NULL DEFAULT NULL,
  updated_at timestamp NULL DEFAULT NULL,
  deleted_at timestamp NULL DEFAULT NULL,
  gun varchar(255) NOT NULL,
  role varchar(255) NOT NULL,
  version int(11) NOT NULL,
  data longblob NOT NULL,
  sha256 char(64) DEFAULT NULL,
  PRIMARY KEY (id),
  UNIQUE KEY gun (gun, role, version),
  INDEX sha256 (sha256)
) ENGINE=InnoDB DEFAULT CHARSET=utf8;
CREATE TABLE change_category (category varchar(20) NOT NULL, PRIMARY KEY (category))
  ENGINE=InnoDB DEFAULT CHARSET=utf8;
INSERT INTO change_category VALUES ('update'), ('deletion');
CREATE TABLE changefeed (
  id int(11) NOT NULL AUTO_INCREMENT,
  created_at timestamp DEFAULT CURRENT_TIMESTAMP,
  gun varchar(255) NOT NULL,
  version int(11) NOT NULL,
  sha256 char(64) DEFAULT NULL,
  category varchar(20) NOT NULL DEFAULT 'update',
  PRIMARY KEY (id),
  FOREIGN KEY (category) REFERENCES change_category (category),
  INDEX idx_changefeed_gun (gun)
) ENGINE=InnoDB DEFAULT CHARSET=utf8;
"#;

/// notary-signer's schema on MySQL.
const MYSQL_SIGNER_SCHEMA: &str = r#"
CREATE TABLE private_keys (
  id int(11) NOT NULL AUTO_INCREMENT,
  created_at timestamp NULL DEFAULT NULL,
  updated_at timestamp NULL DEFAULT NULL,
  deleted_at timestamp NULL DEFAULT NULL,
  key_id varchar(255) NOT NULL,
  encryption_alg varchar(255) NOT NULL,
  keywrap_alg varchar(255) NOT NULL,
  algorithm varchar(50) NOT NULL,
  passphrase_alias varchar(50) NOT NULL,
  public blob NOT NULL,
  private blob NOT NULL,
  gun varchar(255) NOT NULL,
  role varchar(255) NOT NULL,
  last_used datetime NULL DEFAULT NULL,
  PRIMARY KEY (id),
  UNIQUE KEY key_id (key_id),
  UNIQUE KEY key_id_2 (key_id, algorithm)
) ENGINE=InnoDB DEFAULT CHARSET=utf8;
"#;

/// A throw-away MariaDB server (Debian's `mariadb-server`) on a loopback port, with a user
/// `notary`; killed on drop.
struct MariaDb {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Drop for MariaDb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const MARIADB_PASSWORD: &str = "notary-test";

impl MariaDb {
    /// `None` (skipped) when MariaDB is not installed; in CI that is a failure.
    async fn start() -> Option<MariaDb> {
        let server = ["/usr/sbin/mariadbd", "/usr/bin/mariadbd"]
            .into_iter()
            .find(|p| Path::new(p).exists());
        let Some(server) = server else {
            assert!(
                std::env::var_os("CI").is_none(),
                "MariaDB (mariadb-server) must be installed in CI"
            );
            eprintln!("skipped: MariaDB is not installed");
            return None;
        };
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().join("data");
        let installed = Command::new("mariadb-install-db")
            .args(["--no-defaults", "--user=root", "--skip-test-db"])
            .arg("--auth-root-authentication-method=normal")
            .arg(format!("--datadir={}", data.display()))
            .output()
            .expect("mariadb-install-db runs");
        assert!(
            installed.status.success(),
            "mariadb-install-db: {}",
            String::from_utf8_lossy(&installed.stderr)
        );
        let port = free_port();
        let socket = dir.path().join("sock");
        let child = Command::new(server)
            .args(["--no-defaults", "--user=root", "--bind-address=127.0.0.1"])
            .arg("--skip-name-resolve")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--socket={}", socket.display()))
            .arg(format!("--port={port}"))
            .arg(format!(
                "--log-error={}",
                dir.path().join("error.log").display()
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mariadbd starts");
        let db = MariaDb { child, port, dir };
        for _ in 0..200 {
            if socket.exists() && std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                db.sql(&format!(
                    "CREATE USER notary@'%' IDENTIFIED BY '{MARIADB_PASSWORD}'; \
                     GRANT ALL ON *.* TO notary@'%';"
                ));
                return Some(db);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "MariaDB did not come up: {}",
            std::fs::read_to_string(db.dir.path().join("error.log")).unwrap_or_default()
        );
    }

    /// Runs `sql` as root over the socket.
    fn sql(&self, sql: &str) {
        use std::io::Write;
        let mut client = Command::new("mariadb")
            .args(["--no-defaults", "-u", "root"])
            .arg(format!(
                "--socket={}",
                self.dir.path().join("sock").display()
            ))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("mariadb client runs");
        client
            .stdin
            .take()
            .expect("stdin")
            .write_all(sql.as_bytes())
            .expect("write SQL");
        let out = client.wait_with_output().expect("mariadb client ends");
        assert!(
            out.status.success(),
            "{sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Creates database `name` with `schema`; returns its URL for notar-server.
    fn database(&self, name: &str, schema: &str) -> String {
        self.sql(&format!("CREATE DATABASE {name}; USE {name}; {schema}"));
        format!(
            "mysql://notary:{MARIADB_PASSWORD}@127.0.0.1:{}/{name}",
            self.port
        )
    }

    /// The `storage` setting of notary-server and notary-signer for database `name`.
    fn storage(&self, name: &str) -> serde_json::Value {
        serde_json::json!({
            "backend": "mysql",
            "db_url": format!(
                "notary:{MARIADB_PASSWORD}@tcp(127.0.0.1:{})/{name}?parseTime=True",
                self.port
            ),
        })
    }
}
