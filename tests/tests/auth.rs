//! Token authentication against a real server: every route × every kind of token, and the
//! repository takeover an anonymous client could once do.
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "tests: a failed step should stop the test with its message"
)]

use notar_server::config::AuthConfig;
use notar_server::store::ChangeQuery;
use notar_tests::server::{Backend, Publisher, SnapshotKey, TestServer};
use notar_tests::tokens::{Signer, TokenSigners, TokenSpec};
use notar_tuf::{Gun, RoleName};
use reqwest::{Method, StatusCode};
use serde_json::json;

const GUN: &str = "localhost:5000/team/app";
/// A GUN with no trust data: deleting it, when allowed, changes nothing.
const EMPTY_GUN: &str = "localhost:5000/team/empty";
const ISSUER: &str = "test-issuer";
const SERVICE: &str = "notar-test";

/// Everything a refused request must leave as it was.
async fn observable(server: &TestServer) -> (Vec<(String, Vec<u8>)>, Vec<String>, usize) {
    let store = &server.state.store;
    let mut files = Vec::new();
    for gun in [GUN, EMPTY_GUN] {
        let gun = Gun::new(gun).unwrap();
        for meta in store.current_all(&gun).await.unwrap() {
            files.push((format!("{gun} {}", meta.role), meta.data.to_vec()));
        }
    }
    let mut keys = Vec::new();
    for gun in [GUN, EMPTY_GUN] {
        let gun = Gun::new(gun).unwrap();
        for role in [RoleName::timestamp(), RoleName::snapshot()] {
            for key in store.keys(&gun, &role).await.unwrap() {
                keys.push(key.key_id);
            }
        }
    }
    let changes = store
        .changes(
            None,
            ChangeQuery::After {
                after: 0,
                limit: 1000,
            },
        )
        .await
        .unwrap()
        .len();
    (files, keys, changes)
}

/// A route of the matrix: method, path, and the scope it needs.
struct Route {
    method: Method,
    path: String,
    /// Actions needed on `gun`, or `None` for the catalog.
    needs: Option<(&'static str, &'static [&'static str])>,
    /// A multipart body (a malformed upload: refused at 400 once authorised).
    multipart: bool,
}

fn routes() -> Vec<Route> {
    let tuf = |gun: &str, file: &str| format!("/v2/{gun}/_trust/tuf/{file}");
    let route = |method, path: String, needs, multipart| Route {
        method,
        path,
        needs,
        multipart,
    };
    const PULL: &[&str] = &["pull"];
    const PUSH: &[&str] = &["push", "pull"];
    const ADMIN: &[&str] = &["*"];
    vec![
        route(Method::GET, "/v2/".into(), None, false),
        route(Method::GET, tuf(GUN, "root.json"), Some((GUN, PULL)), false),
        route(
            Method::HEAD,
            tuf(GUN, "timestamp.json"),
            Some((GUN, PULL)),
            false,
        ),
        route(
            Method::GET,
            tuf(GUN, "1.root.json"),
            Some((GUN, PULL)),
            false,
        ),
        route(
            Method::GET,
            tuf(GUN, &format!("targets.{}.json", "0".repeat(64))),
            Some((GUN, PULL)),
            false,
        ),
        route(Method::POST, tuf(GUN, ""), Some((GUN, PUSH)), true),
        route(
            Method::DELETE,
            tuf(EMPTY_GUN, ""),
            Some((EMPTY_GUN, ADMIN)),
            false,
        ),
        route(
            Method::GET,
            tuf(GUN, "timestamp.key"),
            Some((GUN, PUSH)),
            false,
        ),
        route(
            Method::GET,
            tuf(EMPTY_GUN, "snapshot.key"),
            Some((EMPTY_GUN, PUSH)),
            false,
        ),
        route(
            Method::POST,
            tuf(EMPTY_GUN, "timestamp.key"),
            Some((EMPTY_GUN, ADMIN)),
            false,
        ),
        route(
            Method::GET,
            format!("/v2/{GUN}/_trust/changefeed"),
            Some((GUN, PULL)),
            false,
        ),
        route(Method::GET, "/v2/_trust/changefeed".into(), None, false),
        route(
            Method::GET,
            format!("/v2/{GUN}/_trust/pending/"),
            Some((GUN, PULL)),
            false,
        ),
        route(
            Method::POST,
            format!("/v2/{GUN}/_trust/pending/"),
            Some((GUN, PUSH)),
            true,
        ),
        route(Method::GET, "/v2/no/such/path".into(), None, false),
    ]
}

/// Makes a kind's token for a route.
type Mint = Box<dyn Fn(&TokenSigners, &Route) -> Option<String>>;

/// A token kind of the matrix, and whether it grants `route`.
struct Kind {
    name: &'static str,
    /// The token for a route, or `None` for no Authorization header.
    token: Mint,
    /// Whether a request with it gets past authorization.
    passes: fn(&Route) -> bool,
}

fn spec_for(route: &Route, actions: &[&str]) -> TokenSpec {
    match route.needs {
        Some((gun, _)) => TokenSpec::grant(ISSUER, SERVICE, gun, actions),
        // A catalog route: the catalog for `*`; for less, the repository (not enough).
        None if actions != ["*"] => TokenSpec::grant(ISSUER, SERVICE, GUN, actions),
        None => {
            let mut spec = TokenSpec::grant(ISSUER, SERVICE, "catalog", &["*"]);
            spec.access = json!([{ "type": "registry", "name": "catalog", "actions": ["*"] }]);
            spec
        }
    }
}

fn needs_only(route: &Route, allowed: &[&str]) -> bool {
    match route.needs {
        Some((_, needs)) => needs
            .iter()
            .all(|n| allowed.contains(n) || allowed.contains(&"*")),
        None => false,
    }
}

fn kinds() -> Vec<Kind> {
    // A `*` token changed by `change`: refused unless `passes`.
    let changed = |name: &'static str, passes: bool, change: fn(&mut TokenSpec)| Kind {
        name,
        token: Box::new(move |signers: &TokenSigners, route: &Route| {
            let mut spec = spec_for(route, &["*"]);
            change(&mut spec);
            Some(signers.mint(&spec))
        }),
        passes: if passes { |_| true } else { |_| false },
    };
    let broken = |name, change| changed(name, false, change);
    vec![
        Kind {
            name: "no token",
            token: Box::new(|_, _| None),
            passes: |_| false,
        },
        Kind {
            name: "pull",
            token: Box::new(|s, r| Some(s.mint(&spec_for(r, &["pull"])))),
            passes: |r| needs_only(r, &["pull"]),
        },
        Kind {
            name: "push+pull",
            token: Box::new(|s, r| Some(s.mint(&spec_for(r, &["push", "pull"])))),
            passes: |r| needs_only(r, &["push", "pull"]),
        },
        Kind {
            name: "*",
            token: Box::new(|s, r| Some(s.mint(&spec_for(r, &["*"])))),
            passes: |_| true,
        },
        changed("RS256 *", true, |s| s.key = Signer::Rs256),
        changed("x5c chain *", true, |s| s.key = Signer::Chain),
        Kind {
            name: "another GUN's *",
            token: Box::new(|s, _| {
                Some(s.mint(&TokenSpec::grant(
                    ISSUER,
                    SERVICE,
                    "localhost:5000/else/where",
                    &["*"],
                )))
            }),
            passes: |_| false,
        },
        broken("expired", |s| s.expires_in = -3600),
        broken("not yet valid", |s| s.not_before_in = 3600),
        broken("wrong issuer", |s| s.issuer = "someone-else".into()),
        broken("wrong audience", |s| s.audience = "registry.example".into()),
        broken("bad signature", |s| s.tamper = true),
        broken("alg none", |s| s.key = Signer::None),
        broken("HS256 keyed with the public key", |s| {
            s.key = Signer::HmacWithPublicKey
        }),
        broken("unknown kid", |s| s.key = Signer::UnknownKid),
    ]
}

async fn start(signers: &TokenSigners) -> (TestServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let bundle = signers.write_bundle(dir.path());
    let server = TestServer::start_with(Backend::Sqlite, |config| {
        config.auth = Some(AuthConfig {
            token: notar_server::auth::TokenSettings {
                realm: "https://auth.example/token".into(),
                service: SERVICE.into(),
                issuer: ISSUER.into(),
            },
            root_certs: Some(bundle),
            issuer: None,
        });
    })
    .await;
    (server, dir)
}

#[tokio::test]
async fn every_route_refuses_every_token_that_does_not_grant_its_scope() {
    let signers = TokenSigners::new();
    let (server, _dir) = start(&signers).await;
    let owner = signers.mint(&TokenSpec::grant(ISSUER, SERVICE, GUN, &["*"]));
    let mut publisher = Publisher::new(&server, GUN, SnapshotKey::Server).with_token(&owner);
    publisher.init(&["v1"]).await;

    let http = reqwest::Client::new();
    let mut cells = 0;
    for route in routes() {
        for kind in kinds() {
            let before = observable(&server).await;
            let mut request = http.request(
                route.method.clone(),
                format!("{}{}", server.url, route.path),
            );
            if let Some(token) = (kind.token)(&signers, &route) {
                request = request.bearer_auth(token);
            }
            if route.multipart {
                request = request.multipart(reqwest::multipart::Form::new().part(
                    "files",
                    reqwest::multipart::Part::bytes(b"{not json".to_vec()).file_name("targets"),
                ));
            }
            let response = request.send().await.unwrap();
            let status = response.status();
            let challenge = response
                .headers()
                .get("www-authenticate")
                .map(|v| v.to_str().unwrap().to_owned());
            let body = response.text().await.unwrap();
            let cell = format!(
                "{} {} with {}: {status} {body}",
                route.method, route.path, kind.name
            );
            if (kind.passes)(&route) {
                assert_ne!(status, StatusCode::UNAUTHORIZED, "{cell}");
                assert!(challenge.is_none(), "{cell}");
            } else {
                assert_eq!(status, StatusCode::UNAUTHORIZED, "{cell}");
                let challenge = challenge.unwrap_or_else(|| panic!("no challenge: {cell}"));
                assert!(
                    challenge.starts_with(&format!(
                        "Bearer realm=\"https://auth.example/token\",service=\"{SERVICE}\",scope=\""
                    )),
                    "{cell}: {challenge}"
                );
                let scope = match route.needs {
                    Some((gun, actions)) => format!("repository:{gun}:{}", actions.join(",")),
                    None => "registry:catalog:*".to_owned(),
                };
                assert!(
                    challenge.contains(&format!("scope=\"{scope}\"")),
                    "{cell}: {challenge}"
                );
                if route.method != Method::HEAD {
                    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
                    assert_eq!(body["errors"][0]["code"], "UNAUTHORIZED", "{cell}");
                    assert!(body["errors"][0]["detail"].is_array(), "{cell}");
                }
                assert_eq!(
                    observable(&server).await,
                    before,
                    "changed by a refusal: {cell}"
                );
            }
            cells += 1;
        }
    }
    let routes_n = routes().len();
    let kinds_n = kinds().len();
    assert_eq!(cells, routes_n * kinds_n);
    eprintln!("auth matrix: {routes_n} routes x {kinds_n} tokens = {cells} cells");

    // The owner's writes carry the owner as actor.
    let changes = server
        .state
        .store
        .changes(
            Some(&Gun::new(GUN).unwrap()),
            ChangeQuery::After {
                after: 0,
                limit: 10,
            },
        )
        .await
        .unwrap();
    assert_eq!(changes[0].actor.as_deref(), Some("alice"));
}

#[tokio::test]
async fn an_anonymous_client_cannot_take_a_repository_over() {
    let signers = TokenSigners::new();
    let (server, _dir) = start(&signers).await;
    let owner = signers.mint(&TokenSpec::grant(ISSUER, SERVICE, GUN, &["*"]));
    let mut publisher = Publisher::new(&server, GUN, SnapshotKey::Server).with_token(&owner);
    publisher.init(&["v1"]).await;
    let before = observable(&server).await;

    // The attack as it was: DELETE, then a root of the attacker's own.
    let http = reqwest::Client::new();
    let delete = http
        .delete(format!("{}/v2/{GUN}/_trust/tuf/", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(delete.status(), StatusCode::UNAUTHORIZED);
    let mut attacker = Publisher::new(&server, GUN, SnapshotKey::Client);
    attacker.root_key = notar_tests::repo::test_key(66);
    attacker.targets_key = notar_tests::repo::test_key(67);
    let key = http
        .get(attacker.url("timestamp.key"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        key.status(),
        StatusCode::UNAUTHORIZED,
        "a GET of a key needs push"
    );
    let pull_only = signers.mint(&TokenSpec::grant(ISSUER, SERVICE, GUN, &["pull"]));
    let delete = http
        .delete(format!("{}/v2/{GUN}/_trust/tuf/", server.url))
        .bearer_auth(&pull_only)
        .send()
        .await
        .unwrap();
    assert_eq!(
        delete.status(),
        StatusCode::UNAUTHORIZED,
        "pull does not delete"
    );
    assert_eq!(
        observable(&server).await,
        before,
        "the owner's repository is intact"
    );

    // The owner still publishes.
    let targets = publisher.sign_targets(publisher.make_targets(2, &["v1", "v2"]));
    let response = publisher
        .upload(vec![("targets".into(), targets.as_bytes().to_vec())])
        .await;
    assert!(
        response.status().is_success(),
        "{}",
        response.text().await.unwrap()
    );
}

#[tokio::test]
async fn managed_key_rotations_are_limited_per_repository() {
    let signers = TokenSigners::new();
    let (server, _dir) = start(&signers).await;
    let admin = signers.mint(&TokenSpec::grant(ISSUER, SERVICE, EMPTY_GUN, &["*"]));
    let http = reqwest::Client::new();
    let url = format!("{}/v2/{EMPTY_GUN}/_trust/tuf/timestamp.key", server.url);
    // Asked for twice, the key is one key.
    let first = http
        .get(&url)
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let again = http
        .get(&url)
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(first, again);
    let mut statuses = Vec::new();
    for _ in 0..notar_server::managed_keys::ROTATIONS_PER_HOUR {
        statuses.push(
            http.post(&url)
                .bearer_auth(&admin)
                .send()
                .await
                .unwrap()
                .status(),
        );
    }
    let allowed = notar_server::managed_keys::ROTATIONS_PER_HOUR - 1;
    assert!(
        statuses[..allowed].iter().all(StatusCode::is_success),
        "{statuses:?}"
    );
    assert_eq!(
        statuses[allowed],
        StatusCode::TOO_MANY_REQUESTS,
        "{statuses:?}"
    );
    let keys = server
        .state
        .store
        .keys(&Gun::new(EMPTY_GUN).unwrap(), &RoleName::timestamp())
        .await
        .unwrap();
    assert_eq!(keys.len(), notar_server::managed_keys::ROTATIONS_PER_HOUR);
}
