//! Credentials and auth challenges, for registries and trust servers alike.
//!
//! Credentials are found as Docker finds them, after `NOTAR_AUTH` (base64 `user:password`,
//! like Notary's `NOTARY_AUTH`, for CI): in `$DOCKER_CONFIG/config.json` (or
//! `~/.docker/config.json`), a `credHelpers` entry for the host, then `credsStore`, then
//! `auths`. A 401 with `WWW-Authenticate: Bearer realm=…,service=…,scope=…` is answered by
//! a token from the realm (with the credentials as HTTP Basic); `Basic` by the credentials
//! themselves. Tokens are kept per scope until they expire.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use reqwest::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use reqwest::{RequestBuilder, Response, StatusCode};
use serde_json::Value;
use zeroize::Zeroizing;

/// A user name and password (or identity token). The password never shows in `Debug`.
#[derive(Clone)]
pub struct Credentials {
    pub user: String,
    password: Zeroizing<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

impl Credentials {
    pub fn new(user: impl Into<String>, password: impl Into<String>) -> Self {
        Credentials {
            user: user.into(),
            password: Zeroizing::new(password.into()),
        }
    }

    pub fn password(&self) -> &str {
        &self.password
    }

    /// `Basic <base64 user:password>`.
    pub fn basic(&self) -> String {
        let pair = Zeroizing::new(format!("{}:{}", self.user, self.password()));
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair.as_bytes())
        )
    }

    /// `user:password` in base64, as `NOTAR_AUTH` and `auths.<host>.auth` hold it.
    fn from_base64(text: &str) -> Option<Self> {
        let decoded = Zeroizing::new(
            base64::engine::general_purpose::STANDARD
                .decode(text.trim())
                .ok()?,
        );
        let text = std::str::from_utf8(&decoded).ok()?;
        let (user, password) = text.split_once(':')?;
        Some(Credentials::new(user, password))
    }
}

/// Whether a URL's host (`localhost`, an IP, `[::1]`) is this machine: the one place
/// plain HTTP is allowed.
pub fn is_loopback_host(host: &str) -> bool {
    host == "localhost"
        || host
            .trim_matches(|c| c == '[' || c == ']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The Docker config directory: `$DOCKER_CONFIG`, or `~/.docker`.
pub fn docker_config_dir() -> Option<PathBuf> {
    std::env::var_os("DOCKER_CONFIG")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker")))
}

/// The Docker config, or an empty object when there is none.
pub fn read_docker_config() -> Value {
    docker_config_dir()
        .and_then(|dir| std::fs::read(dir.join("config.json")).ok())
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_else(|| Value::Object(Default::default()))
}

/// Whether `key` (an `auths` or `credHelpers` key: a host, or a URL) names `host`.
fn names_host(key: &str, host: &str) -> bool {
    let key = key
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let key = key.split('/').next().unwrap_or(key);
    key == host
        || (host == "registry-1.docker.io"
            && matches!(
                key,
                "index.docker.io" | "docker.io" | "registry-1.docker.io"
            ))
}

/// Credentials for the first of `hosts` that has any, after `NOTAR_AUTH`.
pub fn lookup(hosts: &[&str]) -> Option<Credentials> {
    if let Some(auth) = std::env::var("NOTAR_AUTH").ok().filter(|a| !a.is_empty()) {
        return Credentials::from_base64(&auth);
    }
    let config = read_docker_config();
    hosts
        .iter()
        .find_map(|host| credentials_from_config(&config, host))
}

/// The helper that keeps `host`'s credentials (`credHelpers`, then `credsStore`), if any.
pub fn helper_for(config: &Value, host: &str) -> Option<String> {
    config
        .get("credHelpers")
        .and_then(Value::as_object)
        .and_then(|helpers| {
            helpers
                .iter()
                .find(|(key, _)| names_host(key, host))
                .and_then(|(_, v)| v.as_str())
        })
        .or_else(|| config.get("credsStore").and_then(Value::as_str))
        .filter(|name| !name.is_empty())
        .map(str::to_owned)
}

/// Credentials for `host` in a parsed Docker config: its helper first, then `auths`.
pub fn credentials_from_config(config: &Value, host: &str) -> Option<Credentials> {
    if let Some(helper) = helper_for(config, host)
        && let Some(found) = helper_get(&helper, host)
    {
        return Some(found);
    }
    let auths = config.get("auths")?.as_object()?;
    let entry = auths
        .iter()
        .find(|(key, _)| names_host(key, host))
        .map(|(_, v)| v)?;
    if let Some(auth) = entry.get("auth").and_then(Value::as_str) {
        return Credentials::from_base64(auth);
    }
    if let Some(token) = entry.get("identitytoken").and_then(Value::as_str) {
        return Some(Credentials::new("<token>", token));
    }
    let user = entry.get("username")?.as_str()?;
    let password = entry.get("password")?.as_str()?;
    Some(Credentials::new(user, password))
}

/// Runs `docker-credential-<helper> <verb>` with `input` on stdin; its stdout on success.
pub fn run_helper(helper: &str, verb: &str, input: &[u8]) -> Result<Vec<u8>, String> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let program = format!("docker-credential-{helper}");
    let mut child = Command::new(&program)
        .arg(verb)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("running {program}: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(input)
            .map_err(|e| format!("writing to {program}: {e}"))?;
    }
    let output = child
        .wait_with_output()
        .map_err(|e| format!("running {program}: {e}"))?;
    if output.status.success() {
        Ok(output.stdout)
    } else {
        // Helpers print "credentials not found in native keychain" and the like.
        let said = String::from_utf8_lossy(&output.stdout);
        let said = if said.trim().is_empty() {
            String::from_utf8_lossy(&output.stderr)
        } else {
            said
        };
        Err(format!(
            "{program} {verb}: {}",
            said.trim().chars().take(200).collect::<String>()
        ))
    }
}

/// `get` from a credential helper; `None` when it has nothing for `host` or fails.
fn helper_get(helper: &str, host: &str) -> Option<Credentials> {
    let out = match run_helper(helper, "get", host.as_bytes()) {
        Ok(out) => out,
        Err(why) => {
            tracing::debug!(helper, host, reason = %why, "credential helper had nothing");
            return None;
        }
    };
    let value: Value = serde_json::from_slice(&out).ok()?;
    let user = value.get("Username")?.as_str()?;
    let secret = value.get("Secret")?.as_str()?;
    // Docker's convention: user "<token>" means the secret is an identity token.
    Some(Credentials::new(user, secret))
}

/// `k="v", k2="v2"` of a `WWW-Authenticate` challenge.
pub fn parse_challenge(params: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = params.trim();
    while let Some((key, after)) = rest.split_once('=') {
        let key = key
            .trim()
            .trim_start_matches(',')
            .trim()
            .to_ascii_lowercase();
        let (value, tail) = if let Some(quoted) = after.strip_prefix('"') {
            match quoted.split_once('"') {
                Some((v, t)) => (v, t),
                None => (quoted, ""),
            }
        } else {
            after.split_once(',').unwrap_or((after, ""))
        };
        out.push((key, value.to_owned()));
        rest = tail.trim_start_matches([',', ' ']);
    }
    out
}

/// Why a request could not be authorised.
#[derive(Debug)]
pub enum SendError {
    /// The request (or the token request) failed before an answer.
    Transport { url: String, source: reqwest::Error },
    /// Still 401 after a fresh token, or no way to get one; `scope` is what was refused.
    Refused { scope: String, reason: String },
}

/// A token and when to stop using it.
struct Cached {
    authorization: String,
    until: Instant,
}

/// Answers the auth challenges of one server, keeping tokens per scope. Its `Debug` shows
/// who it answers as and which scopes it holds tokens for, never a token.
#[derive(Default)]
pub struct Authenticator {
    /// Credentials given outright (tests, `login`); otherwise looked up per request.
    fixed: Option<Credentials>,
    tokens: Mutex<HashMap<String, Cached>>,
    /// The Authorization value earned last: sent first with the next request.
    last: Mutex<Option<String>>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scopes: Vec<String> = self
            .tokens
            .lock()
            .map(|t| t.keys().cloned().collect())
            .unwrap_or_default();
        f.debug_struct("Authenticator")
            .field("fixed", &self.fixed)
            .field("token_scopes", &scopes)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Cached {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cached").finish_non_exhaustive()
    }
}

/// Tokens are dropped this long before they expire, so none expires in flight.
const TOKEN_MARGIN: Duration = Duration::from_secs(10);
/// A token answer without `expires_in` lasts this long (the distribution spec's default).
const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(60);

impl Authenticator {
    /// An authenticator that always uses `credentials`.
    pub fn with_credentials(credentials: Credentials) -> Self {
        Authenticator {
            fixed: Some(credentials),
            ..Default::default()
        }
    }

    fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
        m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Sends the request `build` makes, answering up to two challenges: the first with a
    /// kept token when there is one, the second with a fresh one. `hosts` name whose
    /// credentials to use; `default_scope` serves a challenge without a scope.
    pub async fn send(
        &self,
        http: &reqwest::Client,
        url: &str,
        hosts: &[&str],
        default_scope: &str,
        build: impl Fn() -> RequestBuilder,
    ) -> Result<Response, SendError> {
        let mut fresh = false;
        for attempt in 0..3 {
            let mut request = build();
            if let Some(value) = Self::lock(&self.last).clone() {
                request = request.header(AUTHORIZATION, value);
            }
            let response = request
                .send()
                .await
                .map_err(|source| SendError::Transport {
                    url: url.to_owned(),
                    source,
                })?;
            if response.status() != StatusCode::UNAUTHORIZED {
                return Ok(response);
            }
            let challenge = response
                .headers()
                .get(WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            let scope =
                challenge_param(&challenge, "scope").unwrap_or_else(|| default_scope.to_owned());
            if attempt == 2 || (attempt == 1 && fresh) {
                return Err(SendError::Refused {
                    scope,
                    reason: refusal_reason(response).await,
                });
            }
            // A kept token that was refused is not used again.
            let (value, was_fresh) = self
                .answer(http, &challenge, &scope, hosts, attempt > 0)
                .await?;
            fresh = was_fresh;
            *Self::lock(&self.last) = Some(value);
        }
        Err(SendError::Refused {
            scope: default_scope.to_owned(),
            reason: "too many challenges".into(),
        })
    }

    /// A fresh token for a Bearer `challenge` and `scope` (empty: none, as a login asks).
    pub async fn token_for(
        &self,
        http: &reqwest::Client,
        challenge: &str,
        scope: &str,
    ) -> Result<String, SendError> {
        self.answer(http, challenge, scope, &[], true)
            .await
            .map(|(value, _)| value)
    }

    /// The Authorization value for a challenge, and whether it was fetched just now.
    async fn answer(
        &self,
        http: &reqwest::Client,
        challenge: &str,
        scope: &str,
        hosts: &[&str],
        skip_cache: bool,
    ) -> Result<(String, bool), SendError> {
        let refused = |reason: String| SendError::Refused {
            scope: scope.to_owned(),
            reason,
        };
        let credentials = || self.fixed.clone().or_else(|| lookup(hosts));
        let (kind, params) = challenge.split_once(' ').unwrap_or((challenge, ""));
        if kind.eq_ignore_ascii_case("basic") {
            let credentials = credentials().ok_or_else(|| {
                refused(format!(
                    "the server asks for a user name and password, and there are none for {}: \
                     run notar login {} (or set NOTAR_AUTH)",
                    hosts.first().copied().unwrap_or("it"),
                    hosts.first().copied().unwrap_or("<host>")
                ))
            })?;
            return Ok((credentials.basic(), true));
        }
        if !kind.eq_ignore_ascii_case("bearer") {
            return Err(refused(format!("unsupported auth challenge {challenge:?}")));
        }
        let params = parse_challenge(params);
        let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        let realm =
            get("realm").ok_or_else(|| refused("a bearer challenge without realm".into()))?;
        let service = get("service").unwrap_or_default();
        let key = format!("{realm} {service} {scope}");
        if !skip_cache {
            let tokens = Self::lock(&self.tokens);
            if let Some(cached) = tokens.get(&key).filter(|c| c.until > Instant::now()) {
                return Ok((cached.authorization.clone(), false));
            }
        }
        let mut url = reqwest::Url::parse(&realm)
            .map_err(|e| refused(format!("the token realm {realm:?} is not a URL: {e}")))?;
        if url.scheme() != "https" && !url.host_str().is_some_and(is_loopback_host) {
            return Err(refused(format!(
                "the token realm {realm} is not HTTPS: credentials are not sent there"
            )));
        }
        if !scope.is_empty() {
            url.query_pairs_mut().append_pair("scope", scope);
        }
        if !service.is_empty() {
            url.query_pairs_mut().append_pair("service", &service);
        }
        let mut request = http.get(url);
        let credentials = credentials();
        if let Some(credentials) = &credentials {
            request = request.header(AUTHORIZATION, credentials.basic());
        }
        let response = request
            .send()
            .await
            .map_err(|source| SendError::Transport {
                url: realm.clone(),
                source,
            })?;
        let status = response.status();
        if !status.is_success() {
            let said = refusal_reason(response).await;
            let who = credentials
                .as_ref()
                .map_or("anonymous requests".to_owned(), |c| {
                    format!("user {}", c.user)
                });
            return Err(refused(format!(
                "the token service {realm} refused {who} ({status}: {said})"
            )));
        }
        #[derive(serde::Deserialize)]
        struct Token {
            token: Option<String>,
            access_token: Option<String>,
            expires_in: Option<u64>,
        }
        let token: Token = response
            .json()
            .await
            .map_err(|source| SendError::Transport {
                url: realm.clone(),
                source,
            })?;
        let lifetime = token
            .expires_in
            .map_or(DEFAULT_TOKEN_LIFETIME, Duration::from_secs);
        let value = token
            .token
            .or(token.access_token)
            .map(|t| format!("Bearer {t}"))
            .ok_or_else(|| refused("the token answer holds no token".into()))?;
        Self::lock(&self.tokens).insert(
            key,
            Cached {
                authorization: value.clone(),
                until: Instant::now() + lifetime.saturating_sub(TOKEN_MARGIN),
            },
        );
        Ok((value, true))
    }
}

fn challenge_param(challenge: &str, name: &str) -> Option<String> {
    let (_, params) = challenge.split_once(' ')?;
    parse_challenge(params)
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty())
}

/// The first error message of a refusal's body, for the user.
async fn refusal_reason(response: Response) -> String {
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|v| {
            v.get("errors")?
                .get(0)?
                .get("message")?
                .as_str()
                .map(str::to_owned)
        })
        .unwrap_or_else(|| {
            let short: String = text.trim().chars().take(200).collect();
            if short.is_empty() {
                status.to_string()
            } else {
                short
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_parse() {
        let p = parse_challenge(
            r#"realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:a/b:pull""#,
        );
        assert_eq!(
            p,
            vec![
                ("realm".into(), "https://auth.docker.io/token".into()),
                ("service".into(), "registry.docker.io".into()),
                ("scope".into(), "repository:a/b:pull".into()),
            ]
        );
    }

    #[test]
    fn docker_config_credentials() {
        let config: Value = serde_json::from_str(
            r#"{"auths":{"https://reg.example:5000":{"auth":"dXNlcjpwYTpzcw=="},"other":{"username":"u","password":"p"}}}"#,
        )
        .expect("JSON");
        let found = credentials_from_config(&config, "reg.example:5000").expect("found");
        assert_eq!((found.user.as_str(), found.password()), ("user", "pa:ss"));
        let found = credentials_from_config(&config, "other").expect("found");
        assert_eq!((found.user.as_str(), found.password()), ("u", "p"));
        assert!(credentials_from_config(&config, "nowhere").is_none());
    }

    /// Credentials never go to a token realm over plain HTTP off loopback: refused before
    /// any request is made.
    #[tokio::test]
    async fn credentials_are_not_sent_to_a_plain_http_realm() {
        let auth = Authenticator::with_credentials(Credentials::new("alice", "secret"));
        let http = reqwest::Client::new();
        let challenge = r#"Bearer realm="http://auth.example/token",service="reg""#;
        match auth.token_for(&http, challenge, "repository:a:pull").await {
            Err(SendError::Refused { reason, .. }) => {
                assert!(reason.contains("not HTTPS"), "{reason}");
                assert!(!reason.contains("secret"), "{reason}");
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
        assert!(is_loopback_host("127.0.0.1") && is_loopback_host("[::1]"));
        assert!(is_loopback_host("localhost") && !is_loopback_host("auth.example"));
    }

    #[test]
    fn debug_never_shows_the_password() {
        let c = Credentials::new("alice", "hunter2-secret");
        assert!(!format!("{c:?}").contains("hunter2"));
        assert_eq!(c.basic(), "Basic YWxpY2U6aHVudGVyMi1zZWNyZXQ=");
    }
}
