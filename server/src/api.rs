//! The HTTP API: one router, one handler for everything under `/v2/`, dispatching on the
//! parsed path and the method.

use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use bytes::{Bytes, BytesMut};
use notar_tuf::notary::Dialect;
use notar_tuf::{Gun, RoleName, RoleType};
use serde::Deserialize;
use serde_json::{Value, json};
use tower_http::trace::TraceLayer;

use crate::AppState;
use crate::audit::Origin;
use crate::auth::Need;
use crate::cache::{ChangeWatch, Slot, WATCH_WINDOW};
use crate::error::{ApiError, ErrorKind};
use crate::path::{self, MetaRequest, Route};
use crate::store::{ChangeQuery, StoredMeta};
use crate::update;

/// Immutable responses (by version, by checksum) may be cached for a year.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// Current metadata changes: cache briefly, then ask again.
const CURRENT: &str = "public, max-age=10, must-revalidate";

/// The router: health, metrics (unless they have a listener of their own), the token
/// endpoint, and everything under `/v2/`.
pub fn app(state: AppState) -> Router {
    let limit = state.config.limits.max_request_bytes;
    let router = if state.config.metrics_listen.is_some() {
        Router::new()
    } else {
        Router::new().route("/metrics", get(metrics))
    };
    let router = if state.config.ui {
        router.merge(crate::ui::routes())
    } else {
        router
    };
    router
        .route("/_notary_server/health", get(health))
        .route("/livez", get(live))
        .route("/readyz", get(health))
        .route("/auth/token", get(token))
        .route("/v2/", any(v2))
        .route("/v2/{*rest}", any(v2))
        .layer(DefaultBodyLimit::max(limit))
        // A body that stops arriving ends the request (slow-body abuse).
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
            state.config.header_timeout,
        ))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// The router of a metrics-only listener (`--metrics-listen`): metrics and health, in
/// plain HTTP for the monitoring next to the server.
pub fn metrics_app(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/livez", get(live))
        .route("/readyz", get(health))
        .with_state(state)
}

async fn metrics(State(state): State<AppState>) -> Response {
    let now = time::OffsetDateTime::now_utc();
    let horizons = match state.store.expiry_horizon().await {
        Ok((server, client)) => (
            server.map(|t| (t - now).whole_seconds()),
            client.map(|t| (t - now).whole_seconds()),
        ),
        Err(e) => return ApiError::new(ErrorKind::Unavailable, e.to_string()).into_response(),
    };
    let text = state
        .metrics
        .render(state.store.pool_use(), horizons, state.cache.usage());
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
        )],
        text,
    )
        .into_response()
}

/// Liveness: the process answers. Readiness (`/readyz`, the health check) asks the store.
async fn live() -> Response {
    axum::Json(json!({ "live": true })).into_response()
}

/// Readiness: the store answers, and the newest server-held key unlocks under this
/// server's secret (a server whose secret differs from the one that sealed it could not
/// sign). 503 otherwise; the body names the failing part, the log says why.
async fn health(State(state): State<AppState>) -> Response {
    let store = state.store.health().await.map_err(|e| e.to_string());
    let keys = match &store {
        Ok(()) => state.keys.ready().await.map_err(|e| e.message),
        Err(_) => Err("not checked: the store is down".to_owned()),
    };
    let mut body = serde_json::Map::new();
    for (part, result) in [("store", &store), ("keys", &keys)] {
        if let Err(why) = result {
            tracing::warn!(part, %why, "not ready");
        }
        let word = if result.is_ok() { "ok" } else { "failed" };
        body.insert(part.to_owned(), json!(word));
    }
    let status = if store.is_ok() && keys.is_ok() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(Value::Object(body))).into_response()
}

/// The built-in issuer's token endpoint; 404 when the issuer is off.
async fn token(State(state): State<AppState>, request: Request) -> Response {
    let Some(issuer) = &state.issuer else {
        return ApiError::not_found("this server issues no tokens").into_response();
    };
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    match issuer
        .token(request.uri().query().unwrap_or(""), authorization)
        .await
    {
        Ok(body) => (
            [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
            axum::Json(body),
        )
            .into_response(),
        Err(e) => e.into_response(),
    }
}

async fn v2(State(state): State<AppState>, request: Request) -> Response {
    let started = std::time::Instant::now();
    let operation = operation(request.uri().path(), request.method());
    let response = match dispatch(&state, request).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    };
    state
        .metrics
        .request(operation, response.status().as_u16(), started.elapsed());
    response
}

/// The metrics label of a request.
fn operation(path: &str, method: &Method) -> &'static str {
    let read = *method == Method::GET || *method == Method::HEAD;
    match path::parse(path) {
        Ok(Route::Ping) => "ping",
        Ok(Route::Metadata(..)) if read => "get_metadata",
        Ok(Route::Repository(_)) if *method == Method::POST => "update",
        Ok(Route::Repository(_)) if *method == Method::DELETE => "delete",
        Ok(Route::Key(..)) if read => "get_key",
        Ok(Route::Key(..)) if *method == Method::POST => "rotate_key",
        Ok(Route::Pending(_)) if read => "get_pending",
        Ok(Route::Pending(_)) => "stage_pending",
        Ok(Route::Proposals(..)) if read => "get_proposals",
        Ok(Route::Proposals(_, None)) => "propose",
        Ok(Route::Proposals(_, Some(_))) => "cosign",
        Ok(Route::Changefeed(_)) => "changefeed",
        Ok(_) => "other",
        Err(_) => "unknown_path",
    }
}

async fn dispatch(state: &AppState, request: Request) -> Result<Response, ApiError> {
    let parsed = path::parse(request.uri().path());
    let method = request.method().clone();
    // Authorization comes before anything else, a parse error included: a stranger
    // learns nothing about which paths exist.
    let actor = match &state.auth {
        Some(verifier) => {
            verifier.authorize(request.headers(), &Need::of(parsed.as_ref().ok(), &method))?
        }
        None => None,
    };
    let origin = Origin {
        actor,
        remote: request
            .extensions()
            .get::<crate::serve::Peer>()
            .map(|p| p.0.to_string()),
    };
    let actor = origin.actor.as_deref();
    let route = parsed?;
    match (route, method) {
        (Route::Ping, Method::GET) => Ok(axum::Json(json!({})).into_response()),
        (Route::Metadata(gun, want), Method::GET | Method::HEAD) => {
            get_metadata(state, &gun, want, request.headers()).await
        }
        (Route::Repository(gun), Method::POST) => {
            let (uploads, _permit) = read_upload(state, request).await?;
            let applied = update::apply_update(state, &gun, uploads, &origin).await;
            state
                .metrics
                .upload(applied.as_ref().err().map(|e| e.kind.code()));
            match applied? {
                // notary-server answers an update with an empty 200.
                Dialect::Notary => Ok(StatusCode::OK.into_response()),
                Dialect::Tuf => Ok(axum::Json(json!({})).into_response()),
            }
        }
        (Route::Repository(gun), Method::DELETE) => {
            if !state.store.delete_as(&gun, &origin).await? {
                return Err(ApiError::not_found(format!("{gun} has no trust data")));
            }
            state.cache.invalidate(&gun);
            tracing::info!(gun = %gun, actor = actor.unwrap_or("-"), "deleted trust data");
            Ok(axum::Json(json!({})).into_response())
        }
        (Route::Key(gun, role), Method::GET) => {
            let dialect = key_dialect(state, &gun, request.headers()).await?;
            let key = state.keys.current_public(&gun, role, &origin).await?;
            Ok(axum::Json(in_dialect(dialect, &key)?).into_response())
        }
        (Route::Key(gun, role), Method::POST) => {
            let dialect = key_dialect(state, &gun, request.headers()).await?;
            let key = state.keys.rotate(&gun, role, &origin).await?;
            tracing::info!(gun = %gun, role = ?role, key_id = %key.key_id(), actor = actor.unwrap_or("-"), "rotated a server-managed key");
            Ok(axum::Json(in_dialect(dialect, &key)?).into_response())
        }
        (Route::Pending(gun), Method::POST) => {
            let (uploads, _permit) = read_upload(state, request).await?;
            let waiting = update::stage_pending(state, &gun, uploads, &origin).await?;
            tracing::info!(gun = %gun, actor = actor.unwrap_or("-"), "staged a pending delegation");
            let roles: Vec<&str> = waiting.iter().map(RoleName::as_str).collect();
            Ok((
                StatusCode::ACCEPTED,
                axum::Json(json!({ "waiting_for": roles })),
            )
                .into_response())
        }
        (Route::Pending(gun), Method::GET) => {
            // Each entry carries the targets as the exact text the owner signed: a signer
            // uploads those bytes unchanged with its first role.
            let mut entries = Vec::new();
            for (role, targets) in state.store.pending(&gun).await? {
                let text = String::from_utf8(targets.to_vec())
                    .map_err(|_| ApiError::internal("stored pending targets are not UTF-8"))?;
                entries.push(json!({ "role": role.as_str(), "targets": text }));
            }
            Ok(axum::Json(json!({ "pending": entries })).into_response())
        }
        (Route::Proposals(gun, None), Method::GET) => {
            Ok(axum::Json(crate::proposals::list(state, &gun).await?).into_response())
        }
        (Route::Proposals(gun, None), Method::POST) => {
            let (uploads, _permit) = read_upload(state, request).await?;
            let outcome = crate::proposals::propose(state, &gun, uploads, &origin).await?;
            Ok(proposal_outcome(outcome))
        }
        (Route::Proposals(gun, Some(id)), Method::POST) => {
            let limit = state.config.limits.max_request_bytes;
            let body = axum::body::to_bytes(request.into_body(), limit)
                .await
                .map_err(|_| {
                    ApiError::new(
                        ErrorKind::TooLarge,
                        format!("a co-signature is at most {limit} bytes"),
                    )
                })?;
            let outcome = crate::proposals::cosign(state, &gun, &id, &body, &origin).await?;
            Ok(proposal_outcome(outcome))
        }
        (Route::Changefeed(gun), Method::GET) => {
            let Query(params) = Query::<ChangefeedParams>::try_from_uri(request.uri())
                .map_err(|e| ApiError::malformed(format!("changefeed query: {e}")))?;
            changefeed(state, gun.as_ref(), params).await
        }
        _ => Err(ApiError::new(
            ErrorKind::MethodNotAllowed,
            "method not allowed on this path",
        )),
    }
}

/// 200 `{"published": true}` when a proposal met every threshold and is now current;
/// 202 `{"published": false, "proposal": id}` while it waits for signatures.
fn proposal_outcome(outcome: crate::proposals::Outcome) -> Response {
    match outcome {
        crate::proposals::Outcome::Published => {
            axum::Json(json!({ "published": true })).into_response()
        }
        crate::proposals::Outcome::Waiting(id) => (
            StatusCode::ACCEPTED,
            axum::Json(json!({ "published": false, "proposal": id })),
        )
            .into_response(),
    }
}

/// The media type with which a client asks for server-managed keys as TUF 1.0 key objects
/// for a repository that has no root yet (the notar client always sends it).
pub const TUF_KEY_MEDIA_TYPE: &str = "application/vnd.notar.tuf-key+json";

/// How to write a server-managed key for `gun`: in the dialect its root fixed; before the
/// first root, as TUF 1.0 if the client asks for it ([`TUF_KEY_MEDIA_TYPE`]) and otherwise
/// as Notary writes keys, since the stock `notary` and `docker trust` clients ask for this
/// key before they make a root and cannot say which dialect they speak.
async fn key_dialect(
    state: &AppState,
    gun: &Gun,
    headers: &HeaderMap,
) -> Result<Dialect, ApiError> {
    if let Some(root) = state.store.current(gun, &RoleName::root()).await? {
        return Dialect::of_bytes(&root.data)
            .map_err(|e| ApiError::internal(format!("stored root of {gun}: {e}")));
    }
    let asks_tuf = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains(TUF_KEY_MEDIA_TYPE));
    Ok(if asks_tuf {
        Dialect::Tuf
    } else {
        Dialect::Notary
    })
}

fn in_dialect(
    dialect: Dialect,
    key: &notar_tuf::PublicKey,
) -> Result<notar_tuf::PublicKey, ApiError> {
    dialect
        .key(key)
        .map_err(|e| ApiError::internal(format!("writing a managed key in {dialect}: {e}")))
}

async fn get_metadata(
    state: &AppState,
    gun: &Gun,
    want: MetaRequest,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let cache_control = match &want {
        MetaRequest::Current(_) => CURRENT,
        MetaRequest::Version(..) | MetaRequest::Checksum(..) => IMMUTABLE,
    };
    let entry = read_metadata(state, gun, &want, wants_fresh(headers))
        .await?
        .ok_or_else(|| {
            ApiError::not_found(match &want {
                MetaRequest::Current(role) => format!("{gun} has no {role}"),
                MetaRequest::Version(role, version) => {
                    format!("{gun} has no version {version} of {role}")
                }
                MetaRequest::Checksum(role, sha256) => {
                    format!("{gun} has no {role} with sha256 {sha256}")
                }
            })
        })?;
    Ok(respond(state, &entry, cache_control, headers))
}

/// The metadata a GET names, as the API serves it: from memory when there, current
/// timestamps re-signed before they expire; `fresh` skips the memory for current metadata.
async fn read_metadata(
    state: &AppState,
    gun: &Gun,
    want: &MetaRequest,
    fresh: bool,
) -> Result<Option<std::sync::Arc<crate::cache::Entry>>, ApiError> {
    match want {
        MetaRequest::Current(role) => current(state, gun, role, fresh).await,
        MetaRequest::Version(role, version) => {
            let slot = Slot::Version(role.clone(), version.get());
            immutable(state, gun, slot, || {
                state.store.by_version(gun, role, *version)
            })
            .await
        }
        MetaRequest::Checksum(role, sha256) => {
            let slot = Slot::Checksum(role.clone(), sha256.to_ascii_lowercase());
            immutable(state, gun, slot, || {
                state.store.by_checksum(gun, role, sha256)
            })
            .await
        }
    }
}

/// The answer to a read of `entry`: the representation the request takes, or 304 when a
/// validator names it.
fn respond(
    state: &AppState,
    entry: &crate::cache::Entry,
    cache_control: &'static str,
    headers: &HeaderMap,
) -> Response {
    // Each representation has its own ETag; a validator of any names the same content.
    let coding = Coding::choose(headers, entry);
    let tag = |coding: Coding| match coding.suffix() {
        "" => entry.etag.clone(),
        suffix => HeaderValue::from_str(&format!("\"{}{suffix}\"", entry.sha256))
            .unwrap_or_else(|_| entry.etag.clone()),
    };
    let unchanged = headers.contains_key(header::IF_NONE_MATCH)
        && [Coding::Identity, Coding::Gzip, Coding::Zstd]
            .into_iter()
            .any(|c| tag(c).to_str().is_ok_and(|t| if_none_match(headers, t)));
    let mut response = if unchanged {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let body = match coding {
            Coding::Identity => entry.data.clone(),
            Coding::Gzip => entry.gzip.clone().unwrap_or_default(),
            Coding::Zstd => entry.zstd.clone().unwrap_or_default(),
        };
        (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            body,
        )
            .into_response()
    };
    let h = response.headers_mut();
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(cache_control),
    );
    h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    if let Some(name) = coding.name() {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static(name));
        if !unchanged {
            state.metrics.compressed.inc();
        }
    }
    h.insert(header::ETAG, tag(coding));
    response
}

/// Reads answered without the router: a GET of metadata already in memory (and not about
/// to expire), on a server without token auth. The same answer as [`get_metadata`] gives,
/// and the same metrics, without the router's, the layers' and an async handler's cost on
/// the request every client makes most. `None`: the request takes the ordinary way.
pub fn fast_read<B>(state: &AppState, request: &hyper::Request<B>) -> Option<Response> {
    if state.auth.is_some() || request.method() != Method::GET {
        return None;
    }
    let started = std::time::Instant::now();
    let Ok(Route::Metadata(gun, want)) = path::parse(request.uri().path()) else {
        return None;
    };
    let headers = request.headers();
    let (slot, cache_control) = match want {
        MetaRequest::Current(role) => {
            if wants_fresh(headers) {
                return None;
            }
            (Slot::Current(role), CURRENT)
        }
        MetaRequest::Version(role, version) => (Slot::Version(role, version.get()), IMMUTABLE),
        MetaRequest::Checksum(role, sha256) => {
            (Slot::Checksum(role, sha256.to_ascii_lowercase()), IMMUTABLE)
        }
    };
    let entry = state.cache.get(&gun, &slot)?;
    if let Slot::Current(role) = &slot
        && due_for_signing(state, role, &entry)
    {
        // The ordinary way re-signs first.
        return None;
    }
    let response = respond(state, &entry, cache_control, headers);
    state.metrics.memory_read(
        response.status().as_u16(),
        !slot.immutable(),
        started.elapsed(),
    );
    tracing::debug!(
        path = request.uri().path(),
        status = response.status().as_u16(),
        "answered from memory"
    );
    Some(response)
}

/// A version that never changes, from memory or else from the store (then kept).
async fn immutable<F, Fut>(
    state: &AppState,
    gun: &Gun,
    slot: Slot,
    load: F,
) -> Result<Option<std::sync::Arc<crate::cache::Entry>>, ApiError>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<Option<StoredMeta>, crate::store::StoreError>>,
{
    if let Some(entry) = state.cache.get(gun, &slot) {
        return Ok(Some(entry));
    }
    let seen = state.cache.generation(gun);
    match load().await? {
        Some(meta) => Ok(Some(keep(state, gun, slot, meta, seen).await?)),
        None => Ok(None),
    }
}

/// Documents at least this long are compressed on the blocking pool, not on a runtime
/// thread (gzip of a megabyte takes milliseconds).
const COMPRESS_OFF_RUNTIME: usize = 64 * 1024;

/// Puts `meta` in the cache (see [`crate::cache::MetaCache::put`]) and returns its entry.
async fn keep(
    state: &AppState,
    gun: &Gun,
    slot: Slot,
    meta: StoredMeta,
    seen: u64,
) -> Result<std::sync::Arc<crate::cache::Entry>, ApiError> {
    if meta.data.len() < COMPRESS_OFF_RUNTIME {
        return Ok(state.cache.put(gun, slot, &meta, seen));
    }
    let (state, gun) = (state.clone(), gun.clone());
    tokio::task::spawn_blocking(move || state.cache.put(&gun, slot, &meta, seen))
        .await
        .map_err(|e| ApiError::internal(format!("compressing metadata: {e}")))
}

/// A representation of a document.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Coding {
    Identity,
    Gzip,
    Zstd,
}

impl Coding {
    /// The coding to send: of those the entry has and `Accept-Encoding` takes (q above 0,
    /// by name or by `*`), the one with the highest q, zstd on a tie (smaller, and faster
    /// to decode); identity when none is taken.
    fn choose(headers: &HeaderMap, entry: &crate::cache::Entry) -> Coding {
        let (mut gzip, mut zstd, mut star) = (None, None, None);
        for item in headers
            .get_all(header::ACCEPT_ENCODING)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
        {
            let mut parts = item.split(';');
            let coding = parts.next().unwrap_or_default().trim();
            let q = parts
                .filter_map(|p| p.trim().strip_prefix("q="))
                .filter_map(|q| q.trim().parse::<f32>().ok())
                .next()
                .unwrap_or(1.0);
            if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
                gzip = Some(q);
            } else if coding.eq_ignore_ascii_case("zstd") {
                zstd = Some(q);
            } else if coding == "*" {
                star = Some(q);
            }
        }
        let weight = |named: Option<f32>, have: bool| {
            named.or(star).filter(|q| have && *q > 0.0).unwrap_or(0.0)
        };
        let zstd = weight(zstd, entry.zstd.is_some());
        let gzip = weight(gzip, entry.gzip.is_some());
        if zstd > 0.0 && zstd >= gzip {
            Coding::Zstd
        } else if gzip > 0.0 {
            Coding::Gzip
        } else {
            Coding::Identity
        }
    }

    /// The `Content-Encoding` value, none for identity.
    fn name(self) -> Option<&'static str> {
        match self {
            Coding::Identity => None,
            Coding::Gzip => Some("gzip"),
            Coding::Zstd => Some("zstd"),
        }
    }

    /// What this representation's ETag adds to the identity one's sha256.
    fn suffix(self) -> &'static str {
        match self {
            Coding::Identity => "",
            Coding::Gzip => ".gz",
            Coding::Zstd => ".zst",
        }
    }
}

/// Whether the request asks past caches (`Cache-Control: no-cache`, or `Pragma: no-cache`).
fn wants_fresh(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::CACHE_CONTROL)
        .iter()
        .chain(headers.get_all(header::PRAGMA).iter())
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|d| d.trim().eq_ignore_ascii_case("no-cache"))
}

fn if_none_match(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|candidate| {
            let candidate = candidate.trim();
            candidate == "*" || candidate.trim_start_matches("W/") == etag
        })
}

/// Whether `entry`, the current version of `role`, is a timestamp or snapshot so close to
/// expiry that the server re-signs it before serving.
fn due_for_signing(state: &AppState, role: &RoleName, entry: &crate::cache::Entry) -> bool {
    let lifetime = match role.top_level() {
        Some(RoleType::Timestamp) => state.config.lifetimes.timestamp,
        Some(RoleType::Snapshot) => state.config.lifetimes.snapshot,
        _ => return false,
    };
    entry.expires - time::OffsetDateTime::now_utc() < crate::config::Lifetimes::margin(lifetime)
}

/// The current version of `role`, from memory when fresh. A timestamp (or server snapshot)
/// close to expiry is re-signed first, so that nobody is served metadata about to expire.
async fn current(
    state: &AppState,
    gun: &Gun,
    role: &RoleName,
    fresh: bool,
) -> Result<Option<std::sync::Arc<crate::cache::Entry>>, ApiError> {
    // A client that must see the newest state (it just lost a race) says `no-cache`: the
    // memory cache may lag writes made through another server by up to its TTL.
    let cached = if fresh {
        None
    } else {
        state.cache.get(gun, &Slot::Current(role.clone()))
    };
    state.metrics.cache_lookup(cached.is_some());
    let entry = match cached {
        Some(entry) => entry,
        None => {
            let seen = state.cache.generation(gun);
            match state.store.current(gun, role).await? {
                Some(meta) => keep(state, gun, Slot::Current(role.clone()), meta, seen).await?,
                None => return Ok(None),
            }
        }
    };
    if !due_for_signing(state, role, &entry) {
        return Ok(Some(entry));
    }
    if let Err(e) = update::refresh(state, gun).await {
        // What is stored is still what the repository says (a client judges its expiry);
        // a read never fails for want of a re-signature. A repository imported without its
        // server-held keys, for one, is served until its owner moves them here.
        tracing::warn!(gun = %gun, error = %e, "could not re-sign before expiry; serving the stored version");
        return Ok(Some(entry));
    }
    let seen = state.cache.generation(gun);
    match state.store.current(gun, role).await? {
        Some(meta) => Ok(Some(
            keep(state, gun, Slot::Current(role.clone()), meta, seen).await?,
        )),
        None => Ok(None),
    }
}

/// The whole of an upload's body must arrive within this time, however it trickles.
const UPLOAD_DEADLINE: Duration = Duration::from_secs(60);

/// An upload's files, read whole under [`UPLOAD_DEADLINE`], and then a permit to
/// validate and write them: that costs signatures and a transaction, so only
/// `--max-uploads` run at once, and a body still arriving holds no permit.
async fn read_upload<'a>(
    state: &'a AppState,
    request: Request,
) -> Result<(Vec<(RoleName, Bytes)>, tokio::sync::SemaphorePermit<'a>), ApiError> {
    let uploads = tokio::time::timeout(UPLOAD_DEADLINE, read_uploads(state, request))
        .await
        .map_err(|_| {
            ApiError::malformed(format!(
                "the update did not arrive within {} s",
                UPLOAD_DEADLINE.as_secs()
            ))
        })??;
    let permit = state
        .uploads
        .acquire()
        .await
        .map_err(|_| ApiError::internal("the upload limit was closed"))?;
    Ok((uploads, permit))
}

/// Reads the multipart body: field `files`, one part per role, the filename naming it.
async fn read_uploads(
    state: &AppState,
    request: Request,
) -> Result<Vec<(RoleName, Bytes)>, ApiError> {
    let limits = state.config.limits;
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limits.max_request_bytes) {
        return Err(ApiError::too_large(format!(
            "the update is larger than {} bytes",
            limits.max_request_bytes
        )));
    }
    let mut multipart = Multipart::from_request(request, &())
        .await
        .map_err(|e| ApiError::malformed(format!("expected a multipart/form-data body: {e}")))?;
    let mut uploads = Vec::new();
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(e) => return Err(multipart_error(e, limits.max_request_bytes)),
        };
        if field.name() != Some("files") {
            return Err(ApiError::malformed(format!(
                "unexpected form field {:?}: metadata goes in the field \"files\"",
                field.name().unwrap_or("")
            )));
        }
        let filename = field.file_name().unwrap_or("").to_owned();
        if filename.is_empty() {
            return Err(ApiError::malformed(
                "a part has no filename: the filename names the role",
            ));
        }
        // Some clients percent-encode delegated role names (`targets%2Freleases`).
        let filename = percent_encoding::percent_decode_str(&filename)
            .decode_utf8()
            .map_err(|_| ApiError::invalid_name("a part's filename is not UTF-8"))?;
        let role = RoleName::new(filename.strip_suffix(".json").unwrap_or(&filename))
            .map_err(|e| ApiError::invalid_name(e.to_string()))?;
        let mut field = field;
        let mut data = BytesMut::new();
        loop {
            match field.chunk().await {
                Ok(Some(chunk)) => {
                    if data.len() + chunk.len() > limits.max_file_bytes {
                        return Err(ApiError::too_large(format!(
                            "{role} is larger than {} bytes",
                            limits.max_file_bytes
                        )));
                    }
                    data.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(e) => return Err(multipart_error(e, limits.max_request_bytes)),
            }
        }
        uploads.push((role, data.freeze()));
    }
    Ok(uploads)
}

fn multipart_error(e: axum::extract::multipart::MultipartError, limit: usize) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::too_large(format!("the update is larger than {limit} bytes"))
    } else {
        ApiError::malformed(format!("reading the multipart body: {}", e.body_text()))
    }
}

#[derive(Debug, Deserialize)]
struct ChangefeedParams {
    #[serde(default)]
    change_id: Option<String>,
    #[serde(default)]
    records: Option<i64>,
}

/// The change log, in Notary's shape: `change_id` is the last ID the client saw (0: none),
/// `records` how many to return; negative `records` reads backwards from `change_id` (from
/// the newest when it is 0).
async fn changefeed(
    state: &AppState,
    gun: Option<&Gun>,
    params: ChangefeedParams,
) -> Result<Response, ApiError> {
    let change_id =
        match params.change_id.as_deref() {
            None | Some("") => 0,
            Some(s) => s.parse::<i64>().ok().filter(|v| *v >= 0).ok_or_else(|| {
                ApiError::malformed(format!("change_id {s:?} is not a change ID"))
            })?,
        };
    let records = params.records.unwrap_or(100);
    let limit = u32::try_from(records.unsigned_abs().min(1000)).unwrap_or(1000);
    let query = if records < 0 {
        ChangeQuery::Before {
            before: (change_id > 0).then_some(change_id),
            limit,
        }
    } else {
        ChangeQuery::After {
            after: change_id,
            limit,
        }
    };
    let changes = state.store.changes(gun, query).await?;
    let records: Vec<_> = changes
        .iter()
        .map(|c| {
            json!({
                "ID": c.id.to_string(),
                "CreatedAt": c.created.format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
                "GUN": c.gun,
                "Version": c.version,
                "SHA256": c.sha256,
                "Category": c.category.as_str(),
                "Actor": c.actor,
            })
        })
        .collect();
    Ok(axum::Json(json!({ "count": records.len(), "records": records })).into_response())
}

/// Re-signs timestamps and server-held snapshots before they expire, so that a repository
/// nobody touches stays valid. Runs every `refresh_interval` until `stop` turns true.
pub async fn freshness_loop(state: AppState, mut stop: tokio::sync::watch::Receiver<bool>) {
    let interval: Duration = state.config.refresh_interval;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.changed() => return,
        }
        // Only timestamps are watched: re-signing one also re-signs a server-held snapshot
        // that is due (see update::refresh).
        let margin = crate::config::Lifetimes::margin(state.config.lifetimes.timestamp);
        let horizon = time::OffsetDateTime::now_utc() + margin;
        let guns = match state.store.expiring(horizon).await {
            Ok(guns) => guns,
            Err(e) => {
                tracing::warn!(error = %e, "freshness: listing expiring repositories");
                continue;
            }
        };
        // Every server sharing the database sees the same list; a short claim leaves each
        // repository to one of them. Should that one die, another takes over when the
        // claim runs out, long before the timestamp does (the claim is a small part of the
        // margin).
        let quarter: time::Duration = margin / 4;
        let claim = quarter.clamp(time::Duration::seconds(1), time::Duration::minutes(5));
        let until = time::OffsetDateTime::now_utc() + claim;
        for gun in guns {
            match state.store.claim_refresh(&gun, until).await {
                Ok(true) => {}
                Ok(false) => continue,
                Err(e) => {
                    tracing::warn!(gun = %gun, error = %e, "freshness: claiming a repository");
                    continue;
                }
            }
            if let Err(e) = update::refresh(&state, &gun).await {
                tracing::warn!(gun = %gun, error = %e, "freshness: re-signing failed");
            }
        }
    }
}

/// Keeps the cache in step with writes made through other servers sharing the database:
/// every half TTL it reads the change log past what it has seen, drops the entries of the
/// repositories that changed, and confirms the cache (see [`crate::cache`]). A look that
/// fails confirms nothing, so current entries then age out after the TTL as they would
/// without this loop.
pub async fn watch_loop(state: AppState, mut stop: tokio::sync::watch::Receiver<bool>) {
    let ttl = state.cache.ttl();
    if ttl.is_zero() {
        return;
    }
    let every = (ttl / 2).clamp(Duration::from_millis(20), Duration::from_secs(5));
    let mut watch = ChangeWatch::new(WATCH_WINDOW);
    loop {
        let started = std::time::Instant::now();
        match look_at_changes(&state, &mut watch, started).await {
            Ok(()) => state.cache.confirm(started),
            Err(e) => tracing::warn!(error = %e, "cache: reading the change log"),
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.changed() => return,
        }
    }
}

/// One look at the change log for [`watch_loop`].
async fn look_at_changes(
    state: &AppState,
    watch: &mut ChangeWatch,
    started: std::time::Instant,
) -> Result<(), crate::store::StoreError> {
    const PAGE: u32 = 5000;
    if watch.floor().is_none() {
        let newest = state
            .store
            .changes(
                None,
                ChangeQuery::Before {
                    before: None,
                    limit: 1000,
                },
            )
            .await?;
        let ids: Vec<i64> = newest.iter().map(|c| c.id).collect();
        watch.start(&ids, started);
    }
    let mut after = watch.floor().unwrap_or(0);
    let mut read = Vec::new();
    loop {
        let page = state
            .store
            .changes(None, ChangeQuery::After { after, limit: PAGE })
            .await?;
        let full = page.len() == PAGE as usize;
        if let Some(last) = page.last() {
            after = last.id;
        }
        read.extend(page.into_iter().map(|c| (c.id, c.gun)));
        if !full {
            break;
        }
    }
    for gun in watch.take(&read, started) {
        match Gun::new(gun) {
            Ok(gun) => state.cache.invalidate(&gun),
            Err(e) => tracing::debug!(gun, error = %e, "cache: a change names no valid GUN"),
        }
    }
    Ok(())
}
