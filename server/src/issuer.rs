//! The built-in token issuer: `GET /auth/token?service=…&scope=…` with optional HTTP Basic
//! credentials, as the distribution registry's clients (docker, notary, notar) ask for
//! tokens.
//!
//! It signs ES256 JWTs with one P-256 key, sealed under the server secret in the store (so
//! every server sharing a database issues alike), named by its libtrust key ID in `kid`
//! so that Debian's `docker-registry` (distribution 2.8) and any Notary-style verifier
//! accept the tokens with the issuer's certificate in their bundle. A token grants the
//! scopes asked for, cut down to what [`crate::accounts::Policy`] allows the requester.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::http::header;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use notar_keys::KdfParams;
use rustls_pki_types::CertificateDer;
use serde::Serialize;
use serde_json::{Value, json};
use zeroize::Zeroizing;

use crate::accounts::{Accounts, Policy, Requester};
use crate::auth::{Access, libtrust_key_id};
use crate::error::{ApiError, ErrorKind};
use crate::store::{SealedIssuerKey, Store, StoreError};

/// What the sealed issuer key is sealed for.
const PURPOSE: &str = "notar token issuer key";
/// Scopes in one token request, at most.
const MAX_SCOPES: usize = 16;
/// How long a web view session lasts, in seconds.
pub const VIEW_SESSION_SECS: u64 = 3600;
/// Password checks (argon2id) running at once; more wait.
const CHECKS_AT_ONCE: usize = 2;

/// The issuer's settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssuerSettings {
    /// `iss` of the tokens.
    pub issuer: String,
    /// Services (audiences) tokens are issued for: this server's, and registries'.
    pub services: Vec<String>,
    pub accounts: PathBuf,
    pub policy: PathBuf,
    pub lifetime: Duration,
}

/// Why the issuer cannot start.
#[derive(Debug, thiserror::Error)]
pub enum IssuerError {
    #[error("the issuer key in the database: {0}")]
    Store(#[from] StoreError),
    #[error("the issuer key: {0}")]
    Key(String),
}

/// The token issuer.
pub struct Issuer {
    settings: IssuerSettings,
    key: EncodingKey,
    kid: String,
    certificate_der: CertificateDer<'static>,
    certificate_pem: String,
    checks: tokio::sync::Semaphore,
}

impl std::fmt::Debug for Issuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issuer")
            .field("settings", &self.settings)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// A fresh P-256 key and its self-signed certificate (ten years: the bundles that trust it
/// are configuration).
fn make_key() -> Result<(Zeroizing<Vec<u8>>, String), IssuerError> {
    let fail = |e: rcgen::Error| IssuerError::Key(e.to_string());
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(fail)?;
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(fail)?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "notar token issuer");
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(3650);
    let cert = params.self_signed(&key).map_err(fail)?;
    Ok((Zeroizing::new(key.serialize_der()), cert.pem()))
}

impl Issuer {
    /// Unseals the issuer key from the store, making and storing one on first start.
    pub async fn open(
        store: &dyn Store,
        secret: Arc<Zeroizing<String>>,
        kdf: KdfParams,
        settings: IssuerSettings,
    ) -> Result<Self, IssuerError> {
        let sealed = match store.issuer_key().await? {
            Some(sealed) => sealed,
            None => {
                let seal_secret = Arc::clone(&secret);
                let made = tokio::task::spawn_blocking(move || {
                    let (pkcs8, certificate) = make_key()?;
                    let sealed = notar_keys::sealed::seal(&pkcs8, PURPOSE, &seal_secret, kdf)
                        .map_err(|e| IssuerError::Key(e.to_string()))?;
                    Ok::<_, IssuerError>(SealedIssuerKey {
                        sealed,
                        certificate,
                    })
                })
                .await
                .map_err(|e| IssuerError::Key(e.to_string()))??;
                if store.add_issuer_key(&made).await? {
                    tracing::info!("made the token issuer's key");
                    made
                } else {
                    // Another server sharing the database made its key first.
                    store
                        .issuer_key()
                        .await?
                        .ok_or_else(|| IssuerError::Key("the issuer key vanished".into()))?
                }
            }
        };
        let SealedIssuerKey {
            sealed,
            certificate,
        } = sealed;
        let pkcs8 = tokio::task::spawn_blocking(move || {
            notar_keys::sealed::open(&sealed, PURPOSE, &secret)
        })
        .await
        .map_err(|e| IssuerError::Key(e.to_string()))?
        .map_err(|e| IssuerError::Key(e.to_string()))?;
        use rustls_pki_types::pem::PemObject;
        let certificate_der = CertificateDer::from_pem_slice(certificate.as_bytes())
            .map_err(|e| IssuerError::Key(format!("its certificate: {e}")))?;
        let (_, parsed) = x509_parser::parse_x509_certificate(&certificate_der)
            .map_err(|e| IssuerError::Key(format!("its certificate: {e}")))?;
        let kid = libtrust_key_id(parsed.public_key().raw);
        Ok(Issuer {
            key: EncodingKey::from_ec_der(&pkcs8),
            kid,
            certificate_der,
            certificate_pem: certificate,
            settings,
            checks: tokio::sync::Semaphore::new(CHECKS_AT_ONCE),
        })
    }

    /// The certificate to put in the bundles of servers and registries.
    pub fn certificate_pem(&self) -> &str {
        &self.certificate_pem
    }

    pub fn certificate_der(&self) -> CertificateDer<'static> {
        self.certificate_der.clone()
    }

    /// The issuer's libtrust key ID (`kid` of its tokens).
    pub fn key_id(&self) -> &str {
        &self.kid
    }

    /// Answers one token request: `query` is the raw query string, `authorization` the
    /// request's `Authorization` header.
    pub async fn token(&self, query: &str, authorization: Option<&str>) -> Result<Value, ApiError> {
        let params = query_pairs(query);
        let service = params
            .iter()
            .find(|(k, _)| k == "service")
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        if !self.settings.services.contains(&service) {
            return Err(ApiError::new(
                ErrorKind::Denied,
                format!(
                    "this issuer does not issue tokens for service {service:?}; it serves {:?}",
                    self.settings.services
                ),
            ));
        }
        let mut scopes = Vec::new();
        for (_, value) in params.iter().filter(|(k, _)| k == "scope") {
            for scope in value.split(' ').filter(|s| !s.is_empty()) {
                scopes.push(parse_scope(scope)?);
            }
        }
        if scopes.len() > MAX_SCOPES {
            return Err(ApiError::new(
                ErrorKind::Denied,
                format!("at most {MAX_SCOPES} scopes in one token request"),
            ));
        }
        let requester = match authorization {
            None => Requester::Anonymous,
            Some(value) => self.check_basic(value).await?,
        };
        let policy = read_blocking({
            let path = self.settings.policy.clone();
            move || Policy::load(&path)
        })
        .await?;
        let access: Vec<Access> = scopes
            .into_iter()
            .map(|asked| Access {
                actions: policy.allowed(&requester, &asked.kind, &asked.name, &asked.actions),
                ..asked
            })
            .filter(|a| !a.actions.is_empty())
            .collect();
        let subject = match &requester {
            Requester::Anonymous => String::new(),
            Requester::User { name, .. } => name.clone(),
        };
        let lifetime = self.settings.lifetime.as_secs();
        let token = self.sign(&subject, &service, &access, lifetime)?;
        tracing::info!(
            subject = %subject,
            service = %service,
            granted = ?access.iter().map(|a| format!("{}:{}:{}", a.kind, a.name, a.actions.join(","))).collect::<Vec<_>>(),
            "issued a token"
        );
        let issued_at = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        Ok(json!({
            "token": token,
            "access_token": token,
            "expires_in": lifetime,
            "issued_at": issued_at,
        }))
    }

    /// A token for this server's own service, signed with the issuer key.
    fn sign(
        &self,
        subject: &str,
        service: &str,
        access: &[Access],
        lifetime: u64,
    ) -> Result<String, ApiError> {
        let now = jsonwebtoken::get_current_timestamp();
        let claims = TokenClaims {
            iss: &self.settings.issuer,
            sub: subject,
            aud: service,
            exp: now + lifetime,
            nbf: now.saturating_sub(1),
            iat: now,
            jti: hex::encode(random_id()),
            access,
        };
        let mut header = Header::new(Algorithm::ES256);
        header.typ = Some("JWT".into());
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, &claims, &self.key)
            .map_err(|e| ApiError::internal(format!("signing a token: {e}")))
    }

    /// Logs a person into the web view: checks the password and returns a session token
    /// for `service` (this server's), lasting [`VIEW_SESSION_SECS`], that grants what the
    /// policy lets the account pull, as patterns ([`crate::auth::view_grants`]). Such a
    /// token opens no API route.
    pub async fn view_session(
        &self,
        service: &str,
        user: &str,
        password: Zeroizing<String>,
    ) -> Result<String, ApiError> {
        let requester = self.check_password(user.to_owned(), password).await?;
        let access = self.view_access(&requester).await?;
        let token = self.sign(user, service, &access, VIEW_SESSION_SECS)?;
        tracing::info!(subject = %user, "opened a web view session");
        Ok(token)
    }

    /// What `requester` may see in the web view under the current policy.
    pub async fn view_access(&self, requester: &Requester) -> Result<Vec<Access>, ApiError> {
        let policy = read_blocking({
            let path = self.settings.policy.clone();
            move || Policy::load(&path)
        })
        .await?;
        Ok(crate::auth::view_grants(&policy, requester))
    }

    /// Checks HTTP Basic credentials against the accounts file.
    async fn check_basic(&self, value: &str) -> Result<Requester, ApiError> {
        let refused = || {
            ApiError::new(ErrorKind::Unauthorized, "wrong user name or password")
                .with_header(header::WWW_AUTHENTICATE, "Basic realm=\"notar\"")
        };
        let encoded = value
            .strip_prefix("Basic ")
            .or_else(|| value.strip_prefix("basic "))
            .ok_or_else(refused)?;
        let decoded = Zeroizing::new(
            base64::engine::general_purpose::STANDARD
                .decode(encoded.trim())
                .map_err(|_| refused())?,
        );
        let text = std::str::from_utf8(&decoded).map_err(|_| refused())?;
        let (user, password) = text.split_once(':').ok_or_else(refused)?;
        self.check_password(user.to_owned(), Zeroizing::new(password.to_owned()))
            .await
    }

    /// Checks a user name and password against the accounts file (argon2id, a few at once).
    async fn check_password(
        &self,
        user: String,
        password: Zeroizing<String>,
    ) -> Result<Requester, ApiError> {
        let refused = || {
            ApiError::new(ErrorKind::Unauthorized, "wrong user name or password")
                .with_header(header::WWW_AUTHENTICATE, "Basic realm=\"notar\"")
        };
        let _permit = self
            .checks
            .acquire()
            .await
            .map_err(|_| ApiError::internal("the password check limit was closed"))?;
        let path = self.settings.accounts.clone();
        let checked_user = user.clone();
        let groups = read_blocking(move || {
            let accounts = Accounts::load(&path)?;
            Ok(accounts.check(&checked_user, &password))
        })
        .await?;
        match groups {
            Some(groups) => Ok(Requester::User { name: user, groups }),
            None => {
                tracing::warn!(user = %user, "a token request with a wrong password or an unknown user");
                Err(refused())
            }
        }
    }
}

fn random_id() -> [u8; 16] {
    use rand_core::RngCore;
    let mut out = [0u8; 16];
    rand_core::OsRng.fill_bytes(&mut out);
    out
}

#[derive(Serialize)]
struct TokenClaims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    exp: u64,
    nbf: u64,
    iat: u64,
    jti: String,
    access: &'a [Access],
}

/// Runs file reading and argon2id off the async runtime; a broken file is a 500 (logged,
/// not shown).
async fn read_blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, crate::accounts::AccountsError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ApiError::internal(format!("issuer task: {e}")))?
        .map_err(|e| ApiError::internal(e.to_string()))
}

/// `type:name:actions`; the name may hold colons (`localhost:5000/app`), so the type ends
/// at the first colon and the actions start after the last.
fn parse_scope(scope: &str) -> Result<Access, ApiError> {
    let bad = || ApiError::new(ErrorKind::Denied, format!("malformed scope {scope:?}"));
    let (kind, rest) = scope.split_once(':').ok_or_else(bad)?;
    let (name, actions) = rest.rsplit_once(':').ok_or_else(bad)?;
    if kind.is_empty() || name.is_empty() {
        return Err(bad());
    }
    Ok(Access {
        kind: kind.to_owned(),
        name: name.to_owned(),
        actions: actions
            .split(',')
            .filter(|a| !a.is_empty())
            .map(str::to_owned)
            .collect(),
    })
}

/// The decoded pairs of a query string (`+` is a space), repeated keys kept.
fn query_pairs(query: &str) -> Vec<(String, String)> {
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(&s.replace('+', " "))
            .decode_utf8_lossy()
            .into_owned()
    };
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k), decode(v))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used, clippy::unwrap_used)]

    use super::*;

    #[test]
    fn scopes_with_ports_in_their_names_parse() {
        let a = parse_scope("repository:localhost:5000/team/app:pull,push").unwrap();
        assert_eq!(
            (a.kind.as_str(), a.name.as_str()),
            ("repository", "localhost:5000/team/app")
        );
        assert_eq!(a.actions, vec!["pull", "push"]);
        let c = parse_scope("registry:catalog:*").unwrap();
        assert_eq!(
            (c.name.as_str(), c.actions.as_slice()),
            ("catalog", &["*".to_owned()][..])
        );
        assert!(parse_scope("repository").is_err());
        assert!(parse_scope(":x:pull").is_err());
    }

    #[test]
    fn queries_decode_and_keep_repeated_keys() {
        let pairs = query_pairs("service=notar&scope=repository%3Aa%2Fb%3Apull&scope=x+y");
        assert_eq!(pairs.len(), 3);
        assert_eq!(pairs[1].1, "repository:a/b:pull");
        assert_eq!(pairs[2].1, "x y");
    }
}
