//! The web view in a real browser: Debian's headless Chromium, driven over WebDriver,
//! against a real notar-server with its built-in issuer, holding repositories that the
//! real `notar` binary signed.
//!
//! It clicks from the list to a repository and checks what the page shows against
//! `notar trust inspect`; it logs in and out through the issuer, by keyboard; it checks
//! that anonymous viewers see only what anonymous users may pull, that an account or a
//! token without scope sees nothing, and that a hidden repository looks like a missing
//! one. Screenshots go to `$CARGO_TARGET_TMPDIR/web-view/`.

#![expect(clippy::expect_used, reason = "a failed setup step fails the test")]

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use notar_tests::server::{Backend, TEST_SECRET, TestServer, issuer_auth, write_issuer_files};
use notar_tests::webdriver::Browser;
use serde_json::Value;

mod common;
use common::Run;

const TEAM: &str = "example.com/team/app";
const PUBLIC: &str = "example.com/public/tool";
const ALICE_PASSWORD: &str = "alice's long password";
const BOB_PASSWORD: &str = "bob's long password";

/// Anonymous users may pull `example.com/public/*`; alice may do everything; bob has an
/// account and no grant.
const POLICY: &str = r#"
[[grant]]
to = ["alice"]
repositories = ["**"]
actions = ["*"]
catalog = true

[[grant]]
to = ["anonymous"]
repositories = ["example.com/public/*"]
actions = ["pull"]
"#;

struct World {
    server: TestServer,
    trust_dir: tempfile::TempDir,
    _data: tempfile::TempDir,
}

impl World {
    async fn start() -> Self {
        let data = tempfile::tempdir().expect("temp dir");
        write_issuer_files(
            data.path(),
            &[("alice", ALICE_PASSWORD, &[]), ("bob", BOB_PASSWORD, &[])],
            Some(POLICY),
        );
        let issuer_dir = data.path().to_path_buf();
        let server = TestServer::start_bound(Backend::Sqlite, |config, addr| {
            config.auth = Some(issuer_auth(
                &issuer_dir,
                format!("http://{addr}/auth/token"),
            ));
        })
        .await;
        World {
            server,
            trust_dir: tempfile::tempdir().expect("temp dir"),
            _data: data,
        }
    }

    /// `notar` as alice, with her trust directory.
    async fn notar(&self, args: &[&str]) -> Run {
        let auth =
            base64::engine::general_purpose::STANDARD.encode(format!("alice:{ALICE_PASSWORD}"));
        let env = [
            ("NOTAR_SERVER", self.server.url.as_str()),
            (
                "NOTAR_TRUST_DIR",
                self.trust_dir.path().to_str().expect("utf-8"),
            ),
            ("NOTAR_KDF", "test"),
            ("NOTAR_ROOT_PASSPHRASE", "root passphrase"),
            ("NOTAR_TARGETS_PASSPHRASE", "targets passphrase"),
            ("NOTAR_DELEGATION_PASSPHRASE", "delegation passphrase"),
            ("NOTAR_AUTH", auth.as_str()),
        ];
        common::run_notar(args, &env, Duration::from_secs(120)).await
    }

    async fn sign(&self, reference: &str, manifest: &[u8]) {
        let args = common::sign_args(reference, manifest);
        self.notar(&args.iter().map(String::as_str).collect::<Vec<_>>())
            .await
            .ok();
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.url)
    }
}

fn screenshots() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("web-view");
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    dir
}

/// The text of every cell matching `css` in each row matching `rows`.
async fn column(browser: &Browser, rows: &str, css: &str) -> Vec<String> {
    let mut out = Vec::new();
    for row in browser.find_all(rows).await {
        for cell in browser.find_in(&row, css).await {
            out.push(browser.text(&cell).await);
        }
    }
    out
}

async fn log_in(browser: &Browser, world: &World, user: &str, password: &str) {
    browser.goto(&world.url("/ui/login")).await;
    // By keyboard: the user field, Tab to the password, Enter submits.
    let field = browser.find("#user").await;
    browser.click(&field).await;
    browser.type_into(&field, user).await;
    browser.press("\u{E004}").await;
    let focused = browser.focused().await;
    assert_eq!(
        browser.attribute(&focused, "id").await.as_deref(),
        Some("password"),
        "Tab goes from the user name to the password"
    );
    browser.type_into(&focused, password).await;
    browser.loading(browser.press("\u{E007}")).await;
}

async fn log_out(browser: &Browser) {
    let button = browser
        .find("header form[action='/ui/logout'] button")
        .await;
    browser.loading(browser.click(&button)).await;
}

#[tokio::test]
async fn people_see_who_signed_what_as_inspect_does_and_only_what_they_may_pull() {
    if !notar_tests::webdriver::available() {
        return;
    }
    let world = World::start().await;
    world
        .sign(&format!("{TEAM}:v1"), b"team manifest one")
        .await;
    world
        .sign(&format!("{TEAM}:v2"), b"team manifest two")
        .await;
    // A signer with its own key, who then signs v3.
    let keys = world.trust_dir.path().join("signer-keys");
    std::fs::create_dir_all(&keys).expect("key dir");
    let made = world
        .notar(&[
            "--json",
            "trust",
            "key",
            "generate",
            "ci",
            "--dir",
            keys.to_str().expect("utf-8"),
        ])
        .await
        .ok()
        .json();
    let ci_pub = keys.join("ci.pub");
    world
        .notar(&[
            "trust",
            "signer",
            "add",
            "ci",
            TEAM,
            "--key",
            ci_pub.to_str().expect("utf-8"),
        ])
        .await
        .ok();
    world
        .sign(&format!("{TEAM}:v3"), b"team manifest three")
        .await;
    // v1 moves to a new digest: it is signed anew.
    world
        .sign(&format!("{TEAM}:v1"), b"team manifest one, rebuilt")
        .await;
    world.sign(&format!("{PUBLIC}:1.0"), b"public tool").await;
    let inspect = world.notar(&["trust", "inspect", TEAM]).await.ok().json();
    let inspected = &inspect[0];
    let ci_key = made["key_id"].as_str().expect("key_id");

    let browser = Browser::start().await;
    let shots = screenshots();

    // Anonymous: the public repository only; the team's looks like a missing one.
    browser.goto(&world.url("/ui/")).await;
    assert_eq!(browser.title().await, "Repositories · Notar");
    let listed = column(&browser, "#repositories tbody tr", "td:first-child").await;
    assert_eq!(
        listed,
        vec![PUBLIC.to_owned()],
        "anonymous sees what anonymous may pull"
    );
    // The first Tab reaches the skip link.
    browser.press("\u{E004}").await;
    let first = browser.focused().await;
    assert_eq!(browser.text(&first).await, "Skip to content");
    browser
        .screenshot(&shots.join("1-anonymous-list.png"))
        .await;
    browser.goto(&world.url(&format!("/ui/r/{TEAM}"))).await;
    let hidden = browser.text(&browser.find("main").await).await;
    browser
        .goto(&world.url("/ui/r/example.com/team/none"))
        .await;
    let missing = browser.text(&browser.find("main").await).await;
    assert_eq!(
        hidden.replace(TEAM, "<gun>"),
        missing.replace("example.com/team/none", "<gun>"),
        "a hidden repository reads as a missing one"
    );
    assert!(!browser.source().await.contains("v1"));

    // bob has an account and no grant: he sees nothing, not even the server page.
    log_in(&browser, &world, "bob", BOB_PASSWORD).await;
    assert!(
        browser.current_url().await.ends_with("/ui/"),
        "{}",
        browser.current_url().await
    );
    assert!(
        browser
            .text(&browser.find("header .who").await)
            .await
            .contains("Signed in as bob")
    );
    assert_eq!(
        browser.text(&browser.find("#empty").await).await,
        "There are no repositories you may see."
    );
    assert!(browser.find_all("a[href='/ui/server']").await.is_empty());
    browser
        .screenshot(&shots.join("2-bob-sees-nothing.png"))
        .await;
    browser.goto(&world.url(&format!("/ui/r/{PUBLIC}"))).await;
    assert_eq!(browser.text(&browser.find("h1").await).await, "Not Found");
    log_out(&browser).await;

    // A wrong password is refused with the form again.
    log_in(&browser, &world, "alice", "not her password").await;
    assert_eq!(
        browser.text(&browser.find("p.problem").await).await,
        "Wrong user name or password."
    );

    // alice sees both and clicks through to the team's repository.
    log_in(&browser, &world, "alice", ALICE_PASSWORD).await;
    let listed = column(&browser, "#repositories tbody tr", "td:first-child").await;
    assert_eq!(listed, vec![PUBLIC.to_owned(), TEAM.to_owned()]);
    browser.screenshot(&shots.join("3-alice-list.png")).await;
    let link = browser
        .find(&format!("#repositories a[href='/ui/r/{TEAM}']"))
        .await;
    browser.loading(browser.click(&link)).await;
    assert!(
        browser
            .current_url()
            .await
            .ends_with(&format!("/ui/r/{TEAM}"))
    );
    assert_eq!(browser.text(&browser.find("h1").await).await, TEAM);

    // The tags, their digests and signers are inspect's.
    let mut shown = Vec::new();
    for row in browser.find_all("#tags tbody tr").await {
        let tag = browser.attribute(&row, "data-tag").await.expect("data-tag");
        let digest = browser
            .text(&browser.find_in(&row, "td.digest").await[0])
            .await;
        let signers = browser
            .text(&browser.find_in(&row, "td.signers").await[0])
            .await;
        shown.push((tag, digest, signers));
    }
    let expected: Vec<(String, String, String)> = inspected["SignedTags"]
        .as_array()
        .expect("SignedTags")
        .iter()
        .map(|t| {
            let signers: Vec<&str> = t["Signers"]
                .as_array()
                .expect("Signers")
                .iter()
                .filter_map(Value::as_str)
                .collect();
            (
                t["SignedTag"].as_str().expect("tag").to_owned(),
                t["Digest"].as_str().expect("digest").to_owned(),
                signers.join(", "),
            )
        })
        .collect();
    assert_eq!(shown, expected, "the page shows the tags as inspect does");
    assert!(
        shown
            .iter()
            .any(|(tag, _, signers)| tag == "v3" && signers == "ci"),
        "{shown:?}"
    );
    // Signers and administrative keys, as inspect lists them.
    let signer_keys = column(&browser, "#signers tbody tr[data-signer='ci']", "code").await;
    assert_eq!(signer_keys, vec![ci_key.to_owned()]);
    for (admin, name) in [(0, "Root"), (1, "Repository")] {
        let keys = column(
            &browser,
            &format!("#admin-keys tr[data-admin='{name}']"),
            "code",
        )
        .await;
        let expected: Vec<String> = inspected["AdministrativeKeys"][admin]["Keys"]
            .as_array()
            .expect("keys")
            .iter()
            .map(|k| k["ID"].as_str().expect("ID").to_owned())
            .collect();
        assert_eq!(keys, expected, "{name} keys");
    }
    // v1 was signed anew, through targets/releases, after v3 was.
    let signed_in = |tag: &str| {
        let tag = tag.to_owned();
        let browser = &browser;
        async move {
            let row = browser
                .find(&format!("#tags tr[data-tag='{tag}'] td:last-child"))
                .await;
            browser.text(&row).await
        }
    };
    let (v1, v3) = (signed_in("v1").await, signed_in("v3").await);
    let version = |text: &str| -> u64 {
        text.rsplit("(v")
            .next()
            .and_then(|v| v.trim_end_matches(')').parse().ok())
            .unwrap_or_else(|| panic!("no version in {text:?}"))
    };
    let table = browser.text(&browser.find("#tags").await).await;
    assert!(version(&v1) > version(&v3), "v1 {v1:?}, v3 {v3:?}\n{table}");
    // Every role, the root history and the audit trail, alice's writes in it.
    let roles = column(&browser, "#roles tbody tr", "th").await;
    for role in ["root", "targets", "snapshot", "timestamp", "targets/ci"] {
        assert!(roles.iter().any(|r| r == role), "{role} in {roles:?}");
    }
    assert_eq!(
        column(&browser, "#roots tbody tr", "td:last-child").await,
        vec!["first root"]
    );
    let actors = column(&browser, "#audit tbody tr", "td:nth-child(3)").await;
    assert!(actors.iter().any(|a| a == "alice"), "{actors:?}");
    browser.screenshot(&shots.join("4-repository.png")).await;

    // The server page: settings without secrets.
    let server = browser.find("a[href='/ui/server']").await;
    browser.loading(browser.click(&server)).await;
    assert_eq!(browser.text(&browser.find("h1").await).await, "Server");
    let settings = column(&browser, "#settings tbody tr", "th").await;
    assert!(settings.iter().any(|s| s == "database"), "{settings:?}");
    let source = browser.source().await;
    assert!(
        !source.contains(TEST_SECRET),
        "the server secret is never shown"
    );
    assert!(!source.contains(ALICE_PASSWORD));
    browser.screenshot(&shots.join("5-server.png")).await;

    // Search narrows the list.
    browser.goto(&world.url("/ui/?q=PUBLIC")).await;
    let listed = column(&browser, "#repositories tbody tr", "td:first-child").await;
    assert_eq!(listed, vec![PUBLIC.to_owned()]);
    log_out(&browser).await;
    assert!(
        browser
            .text(&browser.find("header .who").await)
            .await
            .contains("Not signed in")
    );
    browser.close().await;

    // Without a browser: a token without scope sees nothing, a forged session is refused,
    // and no page is cached, framed or allowed a script.
    let http = reqwest::Client::new();
    let token: Value = http
        .get(world.url("/auth/token?service=notar"))
        .send()
        .await
        .expect("token")
        .json()
        .await
        .expect("token JSON");
    let token = token["token"].as_str().expect("token");
    let page = http
        .get(world.url("/ui/"))
        .bearer_auth(token)
        .send()
        .await
        .expect("list");
    let headers = page.headers().clone();
    let body = page.text().await.expect("body");
    assert!(
        body.contains("There are no repositories you may see."),
        "{body}"
    );
    assert_eq!(headers["cache-control"], "no-store");
    assert!(
        headers["content-security-policy"]
            .to_str()
            .expect("CSP")
            .starts_with("default-src 'none'")
    );
    let forged = http
        .get(world.url("/ui/"))
        .header("cookie", "notar_view=eyJhbGciOiJub25lIn0.e30.")
        .send()
        .await
        .expect("list")
        .text()
        .await
        .expect("body");
    assert!(forged.contains("Your session has ended"), "{forged}");
    assert!(forged.contains(PUBLIC) && !forged.contains(TEAM));
    let hidden = http
        .get(world.url(&format!("/ui/r/{TEAM}")))
        .send()
        .await
        .expect("hidden");
    assert_eq!(hidden.status(), 404);
}
