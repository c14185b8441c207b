//! The built-in token issuer: accounts, passwords, the policy, and tokens the server's
//! own verifier accepts.
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "tests: a failed step should stop the test with its message"
)]

use std::time::Duration;

use base64::Engine;
use notar_tests::server::{Backend, TestServer, issuer_auth, write_issuer_files};
use reqwest::StatusCode;
use serde_json::Value;

const GUN: &str = "localhost:5000/team/app";
const PUBLIC: &str = "localhost:5000/public/base";

async fn start() -> TestServer {
    let dir = tempfile::tempdir().unwrap().keep();
    write_issuer_files(
        &dir,
        &[("alice", "alice pw", &["team"]), ("bob", "bob pw", &[])],
        Some(
            r#"
[[grant]]
to = ["group:team"]
repositories = ["localhost:5000/team/*"]
actions = ["pull", "push"]

[[grant]]
to = ["anonymous", "authenticated"]
repositories = ["localhost:5000/public/*"]
actions = ["pull"]
"#,
        ),
    );
    TestServer::start_with(Backend::Sqlite, |config| {
        let mut auth = issuer_auth(&dir, "http://127.0.0.1/auth/token".into());
        if let Some(issuer) = auth.issuer.as_mut() {
            issuer.lifetime = Duration::from_secs(120);
        }
        config.auth = Some(auth);
    })
    .await
}

/// Asks the issuer for `scope`, with `user:password` when given.
async fn token(
    server: &TestServer,
    credentials: Option<(&str, &str)>,
    service: &str,
    scope: &str,
) -> (StatusCode, Value, Option<String>) {
    let mut url = url::Url::parse(&format!("{}/auth/token", server.url)).unwrap();
    url.query_pairs_mut()
        .append_pair("service", service)
        .append_pair("scope", scope);
    let mut request = reqwest::Client::new().get(url.as_str());
    if let Some((user, password)) = credentials {
        request = request.basic_auth(user, Some(password));
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, response.json().await.unwrap(), challenge)
}

fn claims(token: &str) -> Value {
    let body = token.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(body)
            .unwrap(),
    )
    .unwrap()
}

async fn get_key(server: &TestServer, gun: &str, token: &str) -> StatusCode {
    reqwest::Client::new()
        .get(format!("{}/v2/{gun}/_trust/tuf/timestamp.key", server.url))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn tokens_grant_what_was_asked_and_allowed_and_nothing_more() {
    let server = start().await;
    let scope = format!("repository:{GUN}:pull,push,*");
    let (status, body, _) = token(&server, Some(("alice", "alice pw")), "notar", &scope).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let alice = body["token"].as_str().unwrap().to_owned();
    let c = claims(&alice);
    assert_eq!(c["sub"], "alice");
    assert_eq!(c["aud"], "notar");
    assert_eq!(c["iss"], "notar");
    assert_eq!(c["exp"].as_u64().unwrap() - c["iat"].as_u64().unwrap(), 120);
    assert_eq!(body["expires_in"], 120);
    // `*` was asked for and not granted.
    assert_eq!(
        c["access"],
        serde_json::json!([{ "type": "repository", "name": GUN, "actions": ["pull", "push"] }])
    );
    assert_eq!(get_key(&server, GUN, &alice).await, StatusCode::OK);
    let delete = reqwest::Client::new()
        .delete(format!("{}/v2/{GUN}/_trust/tuf/", server.url))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap();
    assert_eq!(delete.status(), StatusCode::UNAUTHORIZED, "push is not *");

    // Bob has an account but no grant on the team's repositories.
    let (status, body, _) = token(&server, Some(("bob", "bob pw")), "notar", &scope).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        claims(body["token"].as_str().unwrap())["access"],
        serde_json::json!([])
    );
    assert_eq!(
        get_key(&server, GUN, body["token"].as_str().unwrap()).await,
        StatusCode::UNAUTHORIZED
    );

    // Anonymous pull of a public repository, and nothing else.
    let (status, body, _) = token(
        &server,
        None,
        "notar",
        &format!("repository:{PUBLIC}:pull,push"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let anonymous = claims(body["token"].as_str().unwrap());
    assert_eq!(anonymous["sub"], "");
    assert_eq!(
        anonymous["access"],
        serde_json::json!([{ "type": "repository", "name": PUBLIC, "actions": ["pull"] }])
    );
    let (_, body, _) = token(&server, None, "notar", &scope).await;
    assert_eq!(
        claims(body["token"].as_str().unwrap())["access"],
        serde_json::json!([])
    );
}

#[tokio::test]
async fn wrong_passwords_unknown_users_and_unknown_services_get_no_token() {
    let server = start().await;
    let scope = format!("repository:{GUN}:pull");
    for credentials in [
        ("alice", "Alice pw"),
        ("alice", ""),
        ("mallory", "alice pw"),
    ] {
        let (status, body, challenge) = token(&server, Some(credentials), "notar", &scope).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{credentials:?}: {body}");
        assert_eq!(body["errors"][0]["code"], "UNAUTHORIZED");
        assert!(body.get("token").is_none());
        assert_eq!(challenge.as_deref(), Some("Basic realm=\"notar\""));
        assert!(!body.to_string().contains("alice pw"));
    }
    let (status, body, _) = token(
        &server,
        Some(("alice", "alice pw")),
        "registry.elsewhere",
        &scope,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["errors"][0]["code"], "DENIED");
    let (status, _, _) = token(&server, Some(("alice", "alice pw")), "notar", "nonsense").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // More scopes than one token may carry (16).
    let many: Vec<String> = (0..17).map(|i| format!("repository:x/{i}:pull")).collect();
    let (status, body, _) = token(
        &server,
        Some(("alice", "alice pw")),
        "notar",
        &many.join(" "),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

#[tokio::test]
async fn the_issuer_key_survives_a_restart_and_is_sealed_in_the_store() {
    let server = start().await;
    let issuer = server.state.issuer.as_ref().unwrap();
    let kid = issuer.key_id().to_owned();
    let pem = issuer.certificate_pem().to_owned();
    let sealed = server.state.store.issuer_key().await.unwrap().unwrap();
    assert_eq!(sealed.certificate, pem);
    let text = String::from_utf8(sealed.sealed.clone()).unwrap();
    assert!(text.starts_with("{\"format\":\"notar-sealed\""), "{text}");
    assert!(!text.contains("PRIVATE KEY"));
    let (_, body, _) = token(
        &server,
        Some(("alice", "alice pw")),
        "notar",
        &format!("repository:{GUN}:pull,push"),
    )
    .await;
    let before = body["token"].as_str().unwrap().to_owned();

    let server = server.restart().await;
    assert_eq!(server.state.issuer.as_ref().unwrap().key_id(), kid);
    // A token from before the restart still verifies.
    assert_eq!(get_key(&server, GUN, &before).await, StatusCode::OK);
}
