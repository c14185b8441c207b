//! One account, one login, for the registry and the trust server: Debian's
//! `docker-registry` with `auth: token` trusts notar-server's built-in issuer, `notar
//! login` keeps the credentials where `docker login` does, and `notar push` then uploads
//! to the registry and signs on the trust server with them.

#![expect(clippy::expect_used, reason = "a failed setup step fails the test")]

use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use notar_tests::registry::{RegistryTokenAuth, TestImage, TestRegistry, digest};
use notar_tests::server::{Backend, TestServer, issuer_auth, write_issuer_files};
use tokio::io::AsyncWriteExt;

mod common;
use common::Run;

const PASSWORD: &str = "alice's long password";
const REGISTRY_SERVICE: &str = "test-registry";

struct World {
    server: TestServer,
    registry: TestRegistry,
    home: tempfile::TempDir,
    _data: tempfile::TempDir,
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

impl World {
    /// A trust server with the built-in issuer and the account `alice` (default policy:
    /// accounts may do everything), and a registry trusting the issuer.
    async fn start() -> Self {
        let data = tempfile::tempdir().expect("temp dir");
        write_issuer_files(data.path(), &[("alice", PASSWORD, &[])], None);
        let issuer_dir = data.path().to_path_buf();
        let server = TestServer::start_bound(Backend::Sqlite, |config, addr| {
            let mut auth = issuer_auth(&issuer_dir, format!("http://{addr}/auth/token"));
            if let Some(issuer) = auth.issuer.as_mut() {
                issuer.services.push(REGISTRY_SERVICE.into());
            }
            config.auth = Some(auth);
        })
        .await;
        let bundle = data.path().join("issuer.crt");
        std::fs::write(
            &bundle,
            server
                .state
                .issuer
                .as_ref()
                .expect("issuer")
                .certificate_pem(),
        )
        .expect("bundle");
        let registry = TestRegistry::start_token(&RegistryTokenAuth {
            realm: format!("{}/auth/token", server.url),
            service: REGISTRY_SERVICE.into(),
            issuer: "notar".into(),
            bundle,
        })
        .await;
        World {
            server,
            registry,
            home: tempfile::tempdir().expect("temp dir"),
            _data: data,
        }
    }

    fn env(&self) -> Vec<(&str, &str)> {
        vec![
            ("NOTAR_SERVER", self.server.url.as_str()),
            ("NOTAR_KDF", "test"),
            ("NOTAR_ROOT_PASSPHRASE", "root passphrase"),
            ("NOTAR_TARGETS_PASSPHRASE", "targets passphrase"),
            ("HOME", path_str(self.home.path())),
        ]
    }

    async fn run(&self, args: &[&str], extra: &[(&str, &str)]) -> Run {
        let mut env = self.env();
        env.extend_from_slice(extra);
        common::run_notar(args, &env, Duration::from_secs(120)).await
    }

    /// `notar login <host> -u <user> --password-stdin` with `password` on stdin.
    async fn login(&self, host: &str, user: &str, password: &str) -> Run {
        self.login_with(host, user, password, &[]).await
    }

    async fn login_with(
        &self,
        host: &str,
        user: &str,
        password: &str,
        extra: &[(&str, &str)],
    ) -> Run {
        let mut env = self.env();
        env.extend_from_slice(extra);
        let mut command = common::command(
            Path::new(common::BIN),
            &["login", host, "-u", user, "--password-stdin"],
            &env,
        );
        command.stdin(std::process::Stdio::piped());
        let mut child = command.spawn().expect("notar login starts");
        let mut stdin = child.stdin.take().expect("stdin");
        stdin
            .write_all(format!("{password}\n").as_bytes())
            .await
            .expect("password written");
        drop(stdin);
        let output = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
            .await
            .expect("login finishes")
            .expect("login runs");
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    async fn push(&self, image: &TestImage, reference: &str, extra: &[(&str, &str)]) -> Run {
        let layout = self
            .home
            .path()
            .join(format!("layout-{}", digest(&image.manifest)));
        image.write_layout(&layout, reference.rsplit(':').next().expect("tag"));
        self.run(&["push", path_str(&layout), reference], extra)
            .await
    }
}

#[tokio::test]
async fn one_login_pushes_to_the_registry_and_signs_on_the_trust_server() {
    let w = World::start().await;
    let gun = format!("{}/team/app", w.registry.host);
    let image = TestImage::single("linux", "amd64", 2, 10_000);

    // Without credentials: refused, with the scope named, and nothing signed.
    let refused = w
        .push(&image, &format!("{gun}:v1"), &[])
        .await
        .expect_code(2);
    assert!(
        refused
            .stderr
            .contains("not authorised for repository:team/app:"),
        "{}",
        refused.stderr
    );
    let wrong = w
        .login(&w.registry.host, "alice", "not the password")
        .await
        .expect_code(2);
    assert!(
        wrong.stderr.contains("refused user alice"),
        "{}",
        wrong.stderr
    );
    assert!(!w.home.path().join(".docker/config.json").exists());

    // One login, to the registry.
    let login = w.login(&w.registry.host, "alice", PASSWORD).await.ok();
    assert!(login.stdout.contains("Login Succeeded"), "{}", login.stdout);
    let config_path = w.home.path().join(".docker/config.json");
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&config_path).expect("config")).expect("JSON");
    let expected = base64::engine::general_purpose::STANDARD.encode(format!("alice:{PASSWORD}"));
    assert_eq!(config["auths"][&w.registry.host]["auth"], expected.as_str());
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&config_path)
        .expect("meta")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    // Push (registry) and sign (trust server) with it; then a verified pull.
    w.push(&image, &format!("{gun}:v1"), &[]).await.ok();
    let out = w.home.path().join("out");
    let pulled = w
        .run(
            &[
                "pull",
                &format!("{gun}:v1"),
                "--output",
                path_str(&out),
                "--json",
            ],
            &[],
        )
        .await
        .ok()
        .json();
    assert_eq!(pulled["digest"], digest(&image.manifest));
    assert_eq!(pulled["verified"], true);

    // Traced to the last line (-vvv: every crate, hyper and reqwest included), the pull
    // shows neither the password, nor the basic credentials, nor a token (JWTs start
    // with "eyJ").
    let traced = w
        .run(
            &[
                "pull",
                &format!("{gun}:v1"),
                "--output",
                path_str(&w.home.path().join("traced")),
                "-vvv",
            ],
            &[],
        )
        .await
        .ok();
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("alice:{PASSWORD}"));
    assert!(traced.stderr.lines().count() > 20, "{}", traced.stderr);
    for secret in [PASSWORD, basic.as_str(), "eyJ"] {
        assert!(
            !traced.stderr.contains(secret),
            "{secret} in the trace: {}",
            traced.stderr
        );
    }

    // The trust server recorded who signed.
    let changes = w
        .server
        .state
        .store
        .changes(
            Some(&notar_tuf::Gun::new(&gun).expect("GUN")),
            notar_server::store::ChangeQuery::After {
                after: 0,
                limit: 10,
            },
        )
        .await
        .expect("changes");
    assert_eq!(changes[0].actor.as_deref(), Some("alice"));

    // Logged out, the trust data is closed again; NOTAR_AUTH opens it for CI.
    w.run(&["logout", &w.registry.host], &[]).await.ok();
    let closed = w.run(&["trust", "inspect", &gun], &[]).await.expect_code(2);
    assert!(
        closed
            .stderr
            .contains(&format!("did not authorise repository:{gun}:pull")),
        "{}",
        closed.stderr
    );
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("alice:{PASSWORD}"));
    let inspected = w
        .run(&["trust", "inspect", &gun], &[("NOTAR_AUTH", &auth)])
        .await
        .ok()
        .json();
    assert_eq!(inspected[0]["SignedTags"][0]["SignedTag"], "v1");
}

/// A credential helper in the Docker config (`credsStore`) keeps the login, and answers
/// for it: no password lands in config.json.
#[tokio::test]
async fn a_credential_helper_keeps_the_login() {
    let w = World::start().await;
    let bin = w.home.path().join("bin");
    std::fs::create_dir_all(&bin).expect("bin dir");
    let store = w.home.path().join("helper-store.json");
    let helper = bin.join("docker-credential-notartest");
    std::fs::write(
        &helper,
        format!(
            "#!/bin/sh\nstore={}\ncase \"$1\" in\n  store) cat > \"$store\" ;;\n  get) read host; if [ -f \"$store\" ]; then cat \"$store\"; else echo 'credentials not found in native keychain'; exit 1; fi ;;\n  erase) rm -f \"$store\" ;;\nesac\n",
            store.display()
        ),
    )
    .expect("helper");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let docker = w.home.path().join(".docker");
    std::fs::create_dir_all(&docker).expect("docker dir");
    std::fs::write(docker.join("config.json"), r#"{"credsStore":"notartest"}"#).expect("config");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let env = [("PATH", path.as_str())];

    w.login_with(&w.registry.host, "alice", PASSWORD, &env)
        .await
        .ok();
    let kept: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&store).expect("the helper stored")).expect("JSON");
    assert_eq!(kept["Username"], "alice");
    assert_eq!(kept["Secret"], PASSWORD);
    let config = std::fs::read_to_string(docker.join("config.json")).expect("config");
    assert!(!config.contains("auths"), "{config}");

    let gun = format!("{}/team/helped", w.registry.host);
    let image = TestImage::single("linux", "amd64", 1, 1000);
    w.push(&image, &format!("{gun}:v1"), &env).await.ok();
    w.run(&["logout", &w.registry.host], &env).await.ok();
    assert!(!store.exists(), "logout erased the helper's entry");
    w.run(&["trust", "inspect", &gun], &env)
        .await
        .expect_code(2);
}
