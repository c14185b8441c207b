//! Token authentication: the Docker distribution token scheme, with Notary's scopes.
//!
//! A client without a token gets 401 and a `WWW-Authenticate: Bearer realm=…,service=…,
//! scope=…` challenge; it asks the realm (a token service: the built-in [`crate::issuer`],
//! a registry's auth server, Harbor, GitLab, docker_auth) for a JWT and sends it back as
//! `Authorization: Bearer`. The server trusts the keys of a certificate bundle: a token
//! names its key by `kid` (the libtrust key ID the distribution registry uses) or carries
//! an `x5c` chain to the bundle. [`Need::of`] is the one table of which route needs which
//! scope.

use std::path::Path;
use std::sync::Arc;

use axum::http::{HeaderMap, Method, header};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use notar_tuf::Gun;
use rustls_pki_types::{CertificateDer, UnixTime};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::error::{ApiError, ErrorKind};
use crate::path::Route;

/// Clock skew allowed on `exp`, `nbf` and `iat`, as the distribution registry allows.
pub const LEEWAY_SECS: u64 = 60;
/// Bearer tokens longer than this are refused unread.
const MAX_TOKEN_LEN: usize = 16 * 1024;

/// The algorithms a token may be signed with. HMAC is never accepted: the verifier holds
/// public keys only, and `none` is not an algorithm here at all.
const ALGORITHMS: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// One entry of a token's `access` claim: `{"type","name","actions"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Access {
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    #[serde(default)]
    pub actions: Vec<String>,
}

/// What a request must be allowed to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Need {
    /// Nothing: health, the token endpoint.
    Open,
    /// These actions on a repository (`pull`, `push`, or `*`).
    Repository {
        gun: Gun,
        actions: &'static [&'static str],
    },
    /// `registry:catalog:*`: the ping, the global changefeed and unknown paths.
    Catalog,
}

const PULL: &[&str] = &["pull"];
const PUSH_PULL: &[&str] = &["push", "pull"];
const ADMIN: &[&str] = &["*"];

impl Need {
    /// Notary's table (SPEC §1.2): GET metadata and a repository's changefeed need `pull`;
    /// an update, staging a pending delegation and reading a managed key need `push` and
    /// `pull` (the key is made on first request); rotating a key and deleting a
    /// repository need `*`; the ping, the global changefeed and anything unknown need the
    /// catalog. A method a route does not serve needs what the route's writes need, so a
    /// stranger learns nothing from the 405.
    pub fn of(route: Option<&Route>, method: &Method) -> Need {
        let repository = |gun: &Gun, actions| Need::Repository {
            gun: gun.clone(),
            actions,
        };
        let read = *method == Method::GET || *method == Method::HEAD;
        match route {
            None | Some(Route::Ping | Route::Changefeed(None)) => Need::Catalog,
            Some(Route::Metadata(gun, _)) => repository(gun, if read { PULL } else { PUSH_PULL }),
            Some(Route::Changefeed(Some(gun))) => {
                repository(gun, if read { PULL } else { PUSH_PULL })
            }
            Some(Route::Pending(gun)) => repository(gun, if read { PULL } else { PUSH_PULL }),
            Some(Route::Proposals(gun, _)) => repository(gun, if read { PULL } else { PUSH_PULL }),
            Some(Route::Repository(gun)) => repository(
                gun,
                if *method == Method::DELETE {
                    ADMIN
                } else {
                    PUSH_PULL
                },
            ),
            Some(Route::Key(gun, _)) => repository(gun, if read { PUSH_PULL } else { ADMIN }),
        }
    }

    /// The challenge's scope, `repository:<gun>:<actions>` or `registry:catalog:*`.
    pub fn scope(&self) -> Option<String> {
        match self {
            Need::Open => None,
            Need::Repository { gun, actions } => {
                Some(format!("repository:{gun}:{}", actions.join(",")))
            }
            Need::Catalog => Some("registry:catalog:*".to_owned()),
        }
    }

    /// Whether the `access` claim of a token covers this need. `*` covers every action.
    pub fn allowed_by(&self, access: &[Access]) -> bool {
        let (kind, name, actions): (&str, &str, &[&str]) = match self {
            Need::Open => return true,
            Need::Repository { gun, actions } => ("repository", gun.as_str(), actions),
            Need::Catalog => ("registry", "catalog", ADMIN),
        };
        actions.iter().all(|wanted| {
            access.iter().any(|a| {
                a.kind == kind
                    && a.name == name
                    && a.actions.iter().any(|have| have == wanted || have == "*")
            })
        })
    }

    /// The error detail Notary sends with a 401: one access record per action.
    fn records(&self) -> Value {
        let (kind, name, actions): (&str, &str, &[&str]) = match self {
            Need::Open => return Value::Null,
            Need::Repository { gun, actions } => ("repository", gun.as_str(), actions),
            Need::Catalog => ("registry", "catalog", ADMIN),
        };
        Value::Array(
            actions
                .iter()
                .map(|action| json!({"Type": kind, "Class": "", "Name": name, "Action": action}))
                .collect(),
        )
    }
}

/// The `access` type of a web view grant: `name` is a repository pattern (`team/*`,
/// `**`) whose repositories the holder may look at. No API route accepts it.
pub const VIEW_REPOSITORIES: &str = "notar-view";
/// The `access` type of the web view's server page (name `server`).
pub const VIEW_SERVER: &str = "notar-view-server";

/// The web view grants of `who` under `policy`: a [`VIEW_REPOSITORIES`] entry for each
/// repository pattern it may pull, and [`VIEW_SERVER`] when it holds the catalog.
pub fn view_grants(
    policy: &crate::accounts::Policy,
    who: &crate::accounts::Requester,
) -> Vec<Access> {
    let mut access: Vec<Access> = policy
        .pull_patterns(who)
        .into_iter()
        .map(|pattern| Access {
            kind: VIEW_REPOSITORIES.into(),
            name: pattern,
            actions: vec!["pull".into()],
        })
        .collect();
    if !policy
        .allowed(who, "registry", "catalog", &["*".to_owned()])
        .is_empty()
    {
        access.push(Access {
            kind: VIEW_SERVER.into(),
            name: "server".into(),
            actions: vec!["view".into()],
        });
    }
    access
}

/// Whether `access` lets its holder see repository `gun` in the web view: a token that
/// could pull it, or a view grant whose pattern matches it.
pub fn may_view(access: &[Access], gun: &Gun) -> bool {
    Need::Repository {
        gun: gun.clone(),
        actions: PULL,
    }
    .allowed_by(access)
        || access.iter().any(|a| {
            a.kind == VIEW_REPOSITORIES
                && a.actions.iter().any(|x| x == "pull")
                && crate::accounts::glob(&a.name, gun.as_str())
        })
}

/// Whether `access` opens the web view's server page: the catalog, or its view grant.
pub fn may_view_server(access: &[Access]) -> bool {
    Need::Catalog.allowed_by(access) || access.iter().any(|a| a.kind == VIEW_SERVER)
}

/// Who made a request: the token's subject, `None` when the server runs without
/// authentication.
pub type Actor = Option<String>;

/// The token settings: where clients get tokens, and what a token must say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenSettings {
    /// The token service's URL, sent in challenges.
    pub realm: String,
    /// The audience tokens must name (`aud`), sent in challenges.
    pub service: String,
    /// The issuer tokens must name (`iss`).
    pub issuer: String,
}

/// Why the auth settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("reading the root certificate bundle {path}: {reason}")]
    Bundle { path: String, reason: String },
    #[error("certificate {index} of the root certificate bundle: {reason}")]
    Certificate { index: usize, reason: String },
    #[error("the root certificate bundle holds no certificate")]
    EmptyBundle,
}

/// A key tokens may be signed with, from one bundled certificate.
struct Trusted {
    der: Vec<u8>,
    /// The libtrust key ID of the certificate's public key (what `kid` names).
    kid: String,
    key: DecodingKey,
}

/// Verifies bearer tokens against a certificate bundle.
pub struct TokenVerifier {
    settings: TokenSettings,
    trusted: Vec<Trusted>,
    /// Tokens that verified, by SHA-256, until they expire: a client sends the same
    /// token with every request, and a signature check costs far more than the request.
    verified: std::sync::Mutex<std::collections::HashMap<[u8; 32], Arc<Verified>>>,
}

/// What a verified token says.
#[derive(Debug, PartialEq, Eq)]
pub struct Verified {
    pub subject: String,
    pub access: Vec<Access>,
    /// `exp`, in Unix seconds.
    pub expires: u64,
}

/// Verified tokens remembered at most; the memory is cleared when it is full.
const MAX_REMEMBERED: usize = 10_000;

impl std::fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenVerifier")
            .field("settings", &self.settings)
            .field(
                "key_ids",
                &self.trusted.iter().map(|t| &t.kid).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// The claims Notar reads; unknown claims are ignored.
#[derive(Debug, Deserialize)]
struct Claims {
    exp: u64,
    #[serde(default)]
    sub: String,
    #[serde(default)]
    iat: Option<u64>,
    #[serde(default)]
    access: Vec<Access>,
}

/// Reads every certificate of a PEM bundle.
pub fn read_bundle(path: &Path) -> Result<Vec<CertificateDer<'static>>, AuthError> {
    use rustls_pki_types::pem::PemObject;
    let fail = |reason: String| AuthError::Bundle {
        path: path.display().to_string(),
        reason,
    };
    let text = std::fs::read(path).map_err(|e| fail(e.to_string()))?;
    CertificateDer::pem_slice_iter(&text)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| fail(e.to_string()))
}

/// The key ID libtrust (and so the distribution registry) gives a public key: the first
/// 240 bits of the SHA-256 of its DER SubjectPublicKeyInfo, in base32, in groups of four
/// joined by `:`.
pub fn libtrust_key_id(spki_der: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let digest = Sha256::digest(spki_der);
    let mut chars = Vec::with_capacity(48);
    // 30 bytes are 240 bits: exactly 48 base32 digits, no padding.
    for chunk in digest[..30].chunks(5) {
        let mut bits = chunk.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
        let mut group = [0u8; 8];
        for slot in group.iter_mut().rev() {
            *slot = ALPHABET[usize::try_from(bits & 31).unwrap_or(0)];
            bits >>= 5;
        }
        chars.extend_from_slice(&group);
    }
    chars
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join(":")
}

/// The public key of a certificate as jsonwebtoken wants it, and the libtrust key ID.
fn certificate_key(der: &[u8]) -> Result<(DecodingKey, String), String> {
    use x509_parser::public_key::PublicKey;
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| format!("not an X.509 certificate: {e}"))?;
    let spki = cert.public_key();
    let bits = spki.subject_public_key.data.as_ref();
    let key = match spki.parsed() {
        // The bit string of an RSA key is its PKCS#1 RSAPublicKey; of an EC key, the point.
        Ok(PublicKey::RSA(_)) => DecodingKey::from_rsa_der(bits),
        Ok(PublicKey::EC(_)) => DecodingKey::from_ec_der(bits),
        _ if spki.algorithm.algorithm.to_id_string() == "1.3.101.112" => {
            DecodingKey::from_ed_der(bits)
        }
        _ => return Err("its key is not RSA, ECDSA or Ed25519".into()),
    };
    Ok((key, libtrust_key_id(spki.raw)))
}

/// A refused token: why, for the log and for the client.
#[derive(Debug, PartialEq, Eq)]
pub struct Refusal(pub String);

impl TokenVerifier {
    /// A verifier trusting the keys of `bundle`.
    pub fn new(
        settings: TokenSettings,
        bundle: Vec<CertificateDer<'static>>,
    ) -> Result<Self, AuthError> {
        if bundle.is_empty() {
            return Err(AuthError::EmptyBundle);
        }
        let trusted = bundle
            .into_iter()
            .enumerate()
            .map(|(index, der)| {
                let (key, kid) = certificate_key(&der)
                    .map_err(|reason| AuthError::Certificate { index, reason })?;
                Ok(Trusted {
                    der: der.to_vec(),
                    kid,
                    key,
                })
            })
            .collect::<Result<Vec<_>, AuthError>>()?;
        Ok(TokenVerifier {
            settings,
            trusted,
            verified: std::sync::Mutex::new(std::collections::HashMap::new()),
        })
    }

    pub fn settings(&self) -> &TokenSettings {
        &self.settings
    }

    /// Checks a token's signature, issuer, audience, times and shape, and returns its
    /// subject and access claim. A token that verified before is taken from memory while
    /// it has not expired.
    pub fn verify(&self, token: &str) -> Result<Arc<Verified>, Refusal> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(Refusal("the token is too long".into()));
        }
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let now = jsonwebtoken::get_current_timestamp();
        let lock = || {
            self.verified
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        };
        if let Some(known) = lock().get(&digest)
            && now <= known.expires.saturating_add(LEEWAY_SECS)
        {
            return Ok(Arc::clone(known));
        }
        let verified = Arc::new(self.verify_signed(token)?);
        let mut remembered = lock();
        if remembered.len() >= MAX_REMEMBERED {
            remembered.clear();
        }
        remembered.insert(digest, Arc::clone(&verified));
        Ok(verified)
    }

    /// [`TokenVerifier::verify`] without the memory.
    fn verify_signed(&self, token: &str) -> Result<Verified, Refusal> {
        let refuse = |why: &str| Refusal(why.to_owned());
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| Refusal(format!("the token header does not parse: {e}")))?;
        if !ALGORITHMS.contains(&header.alg) {
            return Err(Refusal(format!(
                "tokens signed with {:?} are not accepted",
                header.alg
            )));
        }
        let chain_key;
        let key = match header.x5c_der() {
            Ok(Some(chain)) => {
                chain_key = self.chain_key(&chain)?;
                &chain_key
            }
            Ok(None) => {
                let kid = header
                    .kid
                    .as_deref()
                    .ok_or_else(|| refuse("the token names no key (no kid, no x5c)"))?;
                &self
                    .trusted
                    .iter()
                    .find(|t| t.kid == kid)
                    .ok_or_else(|| Refusal(format!("the token's key {kid} is not trusted")))?
                    .key
            }
            Err(_) => return Err(refuse("the token's x5c is not base64 DER")),
        };
        let mut validation = Validation::new(header.alg);
        validation.leeway = LEEWAY_SECS;
        validation.set_issuer(&[&self.settings.issuer]);
        validation.set_audience(&[&self.settings.service]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.validate_nbf = true;
        let data = jsonwebtoken::decode::<Claims>(token, key, &validation)
            .map_err(|e| Refusal(format!("the token does not verify: {e}")))?;
        let now = jsonwebtoken::get_current_timestamp();
        if data.claims.iat.is_some_and(|iat| iat > now + LEEWAY_SECS) {
            return Err(refuse("the token was issued in the future"));
        }
        Ok(Verified {
            subject: data.claims.sub,
            access: data.claims.access,
            expires: data.claims.exp,
        })
    }

    /// The key of an `x5c` chain's leaf, when the leaf is a bundled certificate or chains
    /// to one (through the chain's other certificates) and is valid now.
    fn chain_key(&self, chain: &[Vec<u8>]) -> Result<DecodingKey, Refusal> {
        let leaf = chain
            .first()
            .ok_or_else(|| Refusal("the token's x5c is empty".into()))?;
        let bundled = self.trusted.iter().any(|t| &t.der == leaf);
        if bundled {
            let (_, cert) = x509_parser::parse_x509_certificate(leaf)
                .map_err(|_| Refusal("the token's x5c leaf does not parse".into()))?;
            if !cert.validity().is_valid() {
                return Err(Refusal(
                    "the token's certificate is expired or not yet valid".into(),
                ));
            }
        } else {
            let anchors: Vec<_> = self
                .trusted
                .iter()
                .filter_map(|t| {
                    webpki::anchor_from_trusted_cert(&CertificateDer::from(t.der.as_slice()))
                        .ok()
                        .map(|a| a.to_owned())
                })
                .collect();
            let leaf_der = CertificateDer::from(leaf.as_slice());
            let end_entity = webpki::EndEntityCert::try_from(&leaf_der)
                .map_err(|e| Refusal(format!("the token's x5c leaf does not parse: {e:?}")))?;
            let intermediates: Vec<CertificateDer<'_>> = chain[1..]
                .iter()
                .map(|c| CertificateDer::from(c.as_slice()))
                .collect();
            end_entity
                .verify_for_usage(
                    webpki::ALL_VERIFICATION_ALGS,
                    &anchors,
                    &intermediates,
                    UnixTime::now(),
                    webpki::KeyUsage::client_auth(),
                    None,
                    None,
                )
                .map_err(|e| {
                    Refusal(format!(
                        "the token's x5c does not chain to the bundle: {e:?}"
                    ))
                })?;
        }
        certificate_key(leaf).map(|(key, _)| key).map_err(Refusal)
    }

    /// The `WWW-Authenticate` value for `need`, with an RFC 6750 error when a token was
    /// sent.
    pub fn challenge(&self, need: &Need, error: Option<&str>) -> String {
        let mut value = format!(
            "Bearer realm=\"{}\",service=\"{}\"",
            self.settings.realm, self.settings.service
        );
        if let Some(scope) = need.scope() {
            value.push_str(&format!(",scope=\"{scope}\""));
        }
        if let Some(error) = error {
            value.push_str(&format!(",error=\"{error}\""));
        }
        value
    }

    /// Checks the request's bearer token against `need`; the actor on success, 401 with
    /// the challenge otherwise.
    pub fn authorize(&self, headers: &HeaderMap, need: &Need) -> Result<Actor, ApiError> {
        if *need == Need::Open {
            return Ok(None);
        }
        let unauthorized = |error: Option<&str>, message: &str| {
            ApiError::new(ErrorKind::Unauthorized, message)
                .with_detail(need.records())
                .with_header(header::WWW_AUTHENTICATE, &self.challenge(need, error))
        };
        let Some(value) = headers.get(header::AUTHORIZATION) else {
            return Err(unauthorized(None, "authentication required"));
        };
        let token = value
            .to_str()
            .ok()
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .ok_or_else(|| unauthorized(None, "authentication required: send a bearer token"))?;
        let verified = self.verify(token).map_err(|Refusal(why)| {
            tracing::info!(reason = %why, "refused a bearer token");
            unauthorized(Some("invalid_token"), &format!("invalid token: {why}"))
        })?;
        if !need.allowed_by(&verified.access) {
            let scope = need.scope().unwrap_or_default();
            tracing::info!(subject = %verified.subject, scope = %scope, "a token without the scope a request needs");
            return Err(unauthorized(
                Some("insufficient_scope"),
                &format!("the token does not grant {scope}"),
            ));
        }
        Ok(Some(if verified.subject.is_empty() {
            "<anonymous>".to_owned()
        } else {
            verified.subject.clone()
        }))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used, clippy::unwrap_used)]

    use super::*;
    use crate::path::{ManagedRole, MetaRequest};

    fn gun() -> Gun {
        Gun::new("localhost:5000/team/app").unwrap()
    }

    #[test]
    fn the_scope_table_is_notarys() {
        let meta = Route::Metadata(gun(), MetaRequest::Current(notar_tuf::RoleName::targets()));
        let key = Route::Key(gun(), ManagedRole::Timestamp);
        let repo = Route::Repository(gun());
        let cases: [(Option<&Route>, Method, Option<&str>); 8] = [
            (
                Some(&meta),
                Method::GET,
                Some("repository:localhost:5000/team/app:pull"),
            ),
            (
                Some(&repo),
                Method::POST,
                Some("repository:localhost:5000/team/app:push,pull"),
            ),
            (
                Some(&repo),
                Method::DELETE,
                Some("repository:localhost:5000/team/app:*"),
            ),
            (
                Some(&key),
                Method::GET,
                Some("repository:localhost:5000/team/app:push,pull"),
            ),
            (
                Some(&key),
                Method::POST,
                Some("repository:localhost:5000/team/app:*"),
            ),
            (Some(&Route::Ping), Method::GET, Some("registry:catalog:*")),
            (
                Some(&Route::Changefeed(None)),
                Method::GET,
                Some("registry:catalog:*"),
            ),
            (None, Method::GET, Some("registry:catalog:*")),
        ];
        for (route, method, scope) in cases {
            assert_eq!(
                Need::of(route, &method).scope().as_deref(),
                scope,
                "{route:?} {method}"
            );
        }
    }

    #[test]
    fn access_must_name_the_repository_and_every_action() {
        let need = Need::of(Some(&Route::Repository(gun())), &Method::POST);
        let access = |name: &str, actions: &[&str]| Access {
            kind: "repository".into(),
            name: name.into(),
            actions: actions.iter().map(|a| (*a).to_owned()).collect(),
        };
        assert!(need.allowed_by(&[access("localhost:5000/team/app", &["pull", "push"])]));
        assert!(need.allowed_by(&[access("localhost:5000/team/app", &["*"])]));
        assert!(!need.allowed_by(&[access("localhost:5000/team/app", &["pull"])]));
        assert!(!need.allowed_by(&[access("localhost:5000/team/other", &["*"])]));
        assert!(!need.allowed_by(&[Access {
            kind: "registry".into(),
            ..access("localhost:5000/team/app", &["*"])
        }]));
        // Actions split across two entries still add up.
        assert!(need.allowed_by(&[
            access("localhost:5000/team/app", &["pull"]),
            access("localhost:5000/team/app", &["push"]),
        ]));
    }

    #[test]
    fn a_remembered_token_serves_only_until_it_expires() {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let cert = rcgen::CertificateParams::new(Vec::<String>::new())
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let verifier = TokenVerifier::new(
            TokenSettings {
                realm: "https://auth.example/token".into(),
                service: "notar".into(),
                issuer: "notar".into(),
            },
            vec![cert.der().clone()],
        )
        .unwrap();
        let now = jsonwebtoken::get_current_timestamp();
        let remember = |token: &str, expires: u64| {
            let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
            verifier.verified.lock().unwrap().insert(
                digest,
                Arc::new(Verified {
                    subject: "alice".into(),
                    access: Vec::new(),
                    expires,
                }),
            );
        };
        remember("still.fresh.token", now + 30);
        assert_eq!(
            verifier.verify("still.fresh.token").unwrap().subject,
            "alice"
        );
        // Past its expiry and the leeway, a remembered token is checked again, and fails.
        remember("long.expired.token", now - LEEWAY_SECS - 5);
        assert!(verifier.verify("long.expired.token").is_err());
    }

    #[test]
    fn libtrust_key_ids_have_twelve_groups_of_four() {
        let id = libtrust_key_id(b"any key bytes");
        let groups: Vec<&str> = id.split(':').collect();
        assert_eq!(groups.len(), 12, "{id}");
        assert!(groups.iter().all(|g| {
            g.len() == 4
                && g.bytes()
                    .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b))
        }));
    }
}
