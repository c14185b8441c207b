//! The web view under `/ui/`: who signed what, and what expires when, for people.
//!
//! Server-rendered HTML ([`pages`], maud), no JavaScript, read-only: no page offers a
//! write. It obeys the API's scopes. Without authentication everyone sees everything, as
//! everyone may pull. With token authentication a viewer is
//!
//! - a bearer token (`Authorization: Bearer`, or the `notar_view` cookie that logging in
//!   sets): it shows the repositories it could pull ([`crate::auth::may_view`]) and the
//!   server page when it holds the catalog;
//! - nobody: what the built-in issuer's policy lets anonymous users pull, and nothing
//!   when tokens come from elsewhere.
//!
//! Logging in goes through the built-in issuer: the password is checked as for a token,
//! and the session token it issues ([`crate::issuer::Issuer::view_session`]) holds the
//! account's pull patterns and opens no API route. It lives in an HttpOnly, SameSite=Strict
//! cookie (Secure under TLS). A repository the viewer may not see is answered exactly as one
//! that does not exist. Pages carry a Content-Security-Policy that allows only the view's
//! own stylesheet.

mod data;
mod pages;

pub use data::Memo;

use axum::Router;
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use notar_tuf::Gun;
use serde::Deserialize;
use time::OffsetDateTime;
use zeroize::Zeroizing;

use crate::AppState;
use crate::accounts::Requester;
use crate::auth::{Access, may_view, may_view_server};
use crate::error::ApiError;

/// The session cookie.
const COOKIE: &str = "notar_view";
/// Repositories listed per page.
pub const PAGE_SIZE: usize = 50;
/// Roles expiring within this many days are marked.
pub const SOON_DAYS: i64 = 30;

/// The web view's routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/ui", get(|| async { Redirect::permanent("/ui/") }))
        .route("/ui/", get(list))
        .route("/ui/r/{*gun}", get(repository))
        .route("/ui/server", get(server))
        .route("/ui/login", get(login_form).post(login))
        .route("/ui/logout", axum::routing::post(logout))
        .route("/ui/style.css", get(style))
}

/// Who is looking.
#[derive(Debug)]
pub enum Viewer {
    /// The server runs without authentication.
    Everyone,
    /// No token: what anonymous users may pull.
    Anonymous(Vec<Access>),
    /// A verified token.
    Token {
        subject: String,
        access: Vec<Access>,
    },
}

impl Viewer {
    pub fn sees(&self, gun: &Gun) -> bool {
        match self {
            Viewer::Everyone => true,
            Viewer::Anonymous(access) | Viewer::Token { access, .. } => may_view(access, gun),
        }
    }

    pub fn sees_server(&self) -> bool {
        match self {
            Viewer::Everyone => true,
            Viewer::Anonymous(access) | Viewer::Token { access, .. } => may_view_server(access),
        }
    }

    /// The name shown in the header; `None` for nobody in particular.
    pub fn name(&self) -> Option<&str> {
        match self {
            Viewer::Token { subject, .. } if !subject.is_empty() => Some(subject),
            Viewer::Token { .. } => Some("<anonymous token>"),
            _ => None,
        }
    }
}

/// What the header of every page needs to know.
#[derive(Debug)]
pub struct Chrome {
    pub viewer_name: Option<String>,
    /// Authentication is on (so logging in means something).
    pub auth: bool,
    /// The built-in issuer serves (so a password can be typed here).
    pub issuer: bool,
    /// A token was sent that did not verify (expired session, forged cookie).
    pub stale_session: bool,
    pub server_page: bool,
}

fn cookie_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim())
        .filter(|v| !v.is_empty())
}

fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .map(str::trim)
}

/// The viewer of a request, and whether it sent a token that no longer verifies.
async fn viewer(state: &AppState, headers: &HeaderMap) -> Result<(Viewer, bool), ApiError> {
    let Some(verifier) = &state.auth else {
        return Ok((Viewer::Everyone, false));
    };
    let sent = bearer_token(headers).or_else(|| cookie_token(headers));
    if let Some(token) = sent {
        match verifier.verify(token) {
            Ok(verified) => {
                return Ok((
                    Viewer::Token {
                        subject: verified.subject.clone(),
                        access: verified.access.clone(),
                    },
                    false,
                ));
            }
            Err(crate::auth::Refusal(why)) => {
                tracing::info!(reason = %why, "the web view refused a token");
            }
        }
    }
    let anonymous = match &state.issuer {
        Some(issuer) => issuer.view_access(&Requester::Anonymous).await?,
        None => Vec::new(),
    };
    Ok((Viewer::Anonymous(anonymous), sent.is_some()))
}

/// The viewer of a request and the header its pages show; a failure is already a page.
async fn look(state: &AppState, headers: &HeaderMap) -> Result<(Viewer, Chrome), Response> {
    let (viewer, stale) = viewer(state, headers)
        .await
        .map_err(|e| error_page(&chrome(state, &Viewer::Everyone, false), e))?;
    let chrome = chrome(state, &viewer, stale);
    Ok((viewer, chrome))
}

fn chrome(state: &AppState, viewer: &Viewer, stale_session: bool) -> Chrome {
    Chrome {
        viewer_name: viewer.name().map(str::to_owned),
        auth: state.auth.is_some(),
        issuer: state.issuer.is_some(),
        stale_session,
        server_page: viewer.sees_server(),
    }
}

/// A page: HTML, never cached (what it shows depends on who asks), never framed, and
/// allowed nothing but its own stylesheet.
fn page(status: StatusCode, html: String) -> Response {
    let mut response = (status, html).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

/// An error as a page; a server error says no more than the API would.
fn error_page(chrome: &Chrome, error: ApiError) -> Response {
    let status = error.status.unwrap_or_else(|| error.kind.status());
    let message = if status.is_server_error() {
        tracing::error!(error = %error.message, "a web view page failed");
        "The server could not read its store. Try again.".to_owned()
    } else {
        error.message
    };
    page(status, pages::error(chrome, status, &message))
}

#[derive(Debug, Default, Deserialize)]
struct ListQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    page: Option<usize>,
}

/// A row of the repository list.
#[derive(Debug)]
pub struct ListRow {
    pub gun: Gun,
    pub targets_version: Option<u64>,
    pub updated: Option<OffsetDateTime>,
    /// The earliest expiry among roots, targets and delegations.
    pub next_expiry: Option<OffsetDateTime>,
}

async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<ListQuery>,
) -> Result<Response, Response> {
    let (viewer, chrome) = look(&state, &headers).await?;
    let failed = |e: crate::store::StoreError| error_page(&chrome, e.into());
    let guns = state.store.guns().await.map_err(failed)?;
    let needle = query.q.trim().to_lowercase();
    let shown: Vec<Gun> = guns
        .into_iter()
        .filter(|g| viewer.sees(g))
        .filter(|g| needle.is_empty() || g.as_str().to_lowercase().contains(&needle))
        .collect();
    let pages = shown.len().div_ceil(PAGE_SIZE).max(1);
    let page_no = query.page.unwrap_or(1).clamp(1, pages);
    let mut rows = Vec::new();
    for gun in shown.iter().skip((page_no - 1) * PAGE_SIZE).take(PAGE_SIZE) {
        let current = state.store.current_heads(gun).await.map_err(failed)?;
        let of = |role: &str| current.iter().find(|m| m.role.as_str() == role);
        rows.push(ListRow {
            gun: gun.clone(),
            targets_version: of("targets").map(|m| m.version.get()),
            updated: of("timestamp").map(|m| m.created),
            next_expiry: current
                .iter()
                .filter(|m| !matches!(m.role.as_str(), "timestamp" | "snapshot"))
                .map(|m| m.expires)
                .min(),
        });
    }
    let html = pages::list(&chrome, &query.q, &rows, shown.len(), page_no, pages);
    Ok(page(StatusCode::OK, html))
}

async fn repository(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Response, Response> {
    let (viewer, chrome) = look(&state, &headers).await?;
    let missing = || ApiError::not_found(format!("no repository {name} to show"));
    // Unknown and hidden look the same.
    let gun = match Gun::new(&name) {
        Ok(gun) if viewer.sees(&gun) => gun,
        _ => return Err(error_page(&chrome, missing())),
    };
    match data::repository(&state, &gun).await {
        Ok(Some(data)) => {
            let started = std::time::Instant::now();
            let html = pages::repository(&chrome, &data);
            tracing::debug!(
                %gun,
                render_ms = started.elapsed().as_secs_f64() * 1e3,
                bytes = html.len(),
                "the web view rendered a repository"
            );
            Ok(page(StatusCode::OK, html))
        }
        Ok(None) => Err(error_page(&chrome, missing())),
        Err(e) => Err(error_page(&chrome, e)),
    }
}

/// The server page's figures.
#[derive(Debug)]
pub struct ServerData {
    /// The earliest expiry of what the server signs (timestamps, snapshots).
    pub server_horizon: Option<OffsetDateTime>,
    /// The earliest expiry of what publishers sign.
    pub client_horizon: Option<OffsetDateTime>,
    /// (GUN, role, expiry) of what expires within [`SOON_DAYS`], visible to the viewer.
    pub attention: Vec<(String, String, OffsetDateTime)>,
    /// (setting, value), secrets left out.
    pub settings: Vec<(&'static str, String)>,
}

async fn server(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, Response> {
    let (viewer, chrome) = look(&state, &headers).await?;
    if !viewer.sees_server() {
        return Err(error_page(
            &chrome,
            ApiError::not_found("the server page needs the catalog scope (registry:catalog:*)"),
        ));
    }
    let now = OffsetDateTime::now_utc();
    let read = async {
        let (server_horizon, client_horizon) = state.store.expiry_horizon().await?;
        let soon = now + time::Duration::days(SOON_DAYS);
        let attention = state.store.expiring_roles(soon, 500).await?;
        Ok::<_, crate::store::StoreError>((server_horizon, client_horizon, attention))
    };
    let (server_horizon, client_horizon, attention) =
        read.await.map_err(|e| error_page(&chrome, e.into()))?;
    let attention = attention
        .into_iter()
        .filter(|(gun, _, _)| Gun::new(gun).is_ok_and(|g| viewer.sees(&g)))
        .collect();
    let data = ServerData {
        server_horizon,
        client_horizon,
        attention,
        settings: settings(&state),
    };
    Ok(page(StatusCode::OK, pages::server(&chrome, &data, now)))
}

/// A database URL without its password (and without query options, which may hold one).
pub fn redact_database(url: &str) -> String {
    let base = url.split('?').next().unwrap_or(url);
    match base.split_once("://") {
        Some((scheme, rest)) => match rest.rsplit_once('@') {
            Some((userinfo, host)) => {
                let user = userinfo.split(':').next().unwrap_or("");
                let hidden = if userinfo.contains(':') { ":…" } else { "" };
                format!("{scheme}://{user}{hidden}@{host}")
            }
            None => format!("{scheme}://{rest}"),
        },
        None => base.to_owned(),
    }
}

/// The settings the server page shows. The server secret, the issuer key and database
/// passwords are never among them.
fn settings(state: &AppState) -> Vec<(&'static str, String)> {
    let c = &state.config;
    let on_off = |b: bool| if b { "on" } else { "off" }.to_owned();
    let mut out = vec![
        ("version", env!("CARGO_PKG_VERSION").to_owned()),
        ("listen", c.listen.to_string()),
        (
            "TLS",
            c.tls.as_ref().map_or("off".to_owned(), |(cert, _)| {
                format!("on ({})", cert.display())
            }),
        ),
        ("database", redact_database(&c.database)),
        ("data directory", c.data_dir.display().to_string()),
        (
            "authentication",
            if c.auth.is_some() { "token" } else { "none" }.to_owned(),
        ),
    ];
    if let Some(auth) = &c.auth {
        out.push(("token realm", auth.token.realm.clone()));
        out.push(("token service", auth.token.service.clone()));
        out.push(("token issuer", auth.token.issuer.clone()));
        out.push(("built-in issuer", on_off(auth.issuer.is_some())));
    }
    out.extend([
        ("timestamp lifetime", format!("{}", c.lifetimes.timestamp)),
        ("snapshot lifetime", format!("{}", c.lifetimes.snapshot)),
        ("refresh interval", format!("{:?}", c.refresh_interval)),
        (
            "largest request",
            format!("{} bytes", c.limits.max_request_bytes),
        ),
        ("largest file", format!("{} bytes", c.limits.max_file_bytes)),
        ("cache lag", format!("{:?}", c.cache_ttl)),
        ("cache budget", format!("{} bytes", c.cache_bytes)),
        ("uploads at once", c.max_uploads.to_string()),
        ("connections at once", c.max_connections.to_string()),
        (
            "metrics",
            c.metrics_listen
                .map_or("on the main listener".to_owned(), |a| a.to_string()),
        ),
    ]);
    out
}

async fn login_form(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, Response> {
    let (_, chrome) = look(&state, &headers).await?;
    Ok(page(StatusCode::OK, pages::login(&chrome, None)))
}

#[derive(Deserialize)]
struct LoginForm {
    #[serde(default)]
    user: String,
    #[serde(default)]
    password: String,
}

impl std::fmt::Debug for LoginForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginForm")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

async fn login(State(state): State<AppState>, Form(mut form): Form<LoginForm>) -> Response {
    let password = Zeroizing::new(std::mem::take(&mut form.password));
    let chrome = chrome(&state, &Viewer::Anonymous(Vec::new()), false);
    let (Some(issuer), Some(verifier)) = (&state.issuer, &state.auth) else {
        return page(
            StatusCode::NOT_FOUND,
            pages::login(
                &chrome,
                Some(
                    "This server has no built-in token issuer: there is no password to type here.",
                ),
            ),
        );
    };
    let service = verifier.settings().service.clone();
    match issuer
        .view_session(&service, form.user.trim(), password)
        .await
    {
        Ok(token) => {
            let secure = if state.config.tls.is_some() {
                "; Secure"
            } else {
                ""
            };
            let cookie = format!(
                "{COOKIE}={token}; Path=/ui; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
                crate::issuer::VIEW_SESSION_SECS
            );
            let mut response = Redirect::to("/ui/").into_response();
            if let Ok(value) = HeaderValue::from_str(&cookie) {
                response.headers_mut().insert(header::SET_COOKIE, value);
            }
            response
        }
        Err(e) if e.kind == crate::error::ErrorKind::Unauthorized => page(
            StatusCode::UNAUTHORIZED,
            pages::login(&chrome, Some("Wrong user name or password.")),
        ),
        Err(e) => error_page(&chrome, e),
    }
}

async fn logout() -> Response {
    let mut response = Redirect::to("/ui/").into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("notar_view=; Path=/ui; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    response
}

async fn style() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        pages::STYLE,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_passwords_are_never_shown() {
        assert_eq!(
            redact_database("postgres://notar:s3cret@db:5432/notar?sslmode=require&password=x"),
            "postgres://notar:…@db:5432/notar"
        );
        assert_eq!(
            redact_database("postgres://notar@db/notar"),
            "postgres://notar@db/notar"
        );
        assert_eq!(
            redact_database("sqlite:///var/lib/notar/notar.db?mode=rwc"),
            "sqlite:///var/lib/notar/notar.db"
        );
        assert!(!redact_database("postgres://u:p@ss@h/db").contains("p@ss"));
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; notar_view=abc.def.ghi; b=2"),
        );
        assert_eq!(cookie_token(&headers), Some("abc.def.ghi"));
        headers.insert(header::COOKIE, HeaderValue::from_static("notar_view="));
        assert_eq!(cookie_token(&headers), None);
    }
}
