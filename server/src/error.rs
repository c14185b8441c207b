//! The server's one error type and the one place that maps it to HTTP.
//!
//! Bodies use the envelope `{"errors":[{"code","message","detail"}]}`. A 5xx body never
//! carries internal text: the cause is logged with the request's fields instead.

use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::store::StoreError;

/// What went wrong, as the client needs to know it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// 404 `METADATA_NOT_FOUND`: no such GUN, role, version or checksum.
    NotFound,
    /// 400 `INVALID_NAME`: a GUN, role name, version or checksum that breaks its grammar.
    InvalidName,
    /// 400 `MALFORMED_UPLOAD`: not multipart, no files, unparseable metadata.
    MalformedUpload,
    /// 400 `INVALID_UPDATE`: well-formed metadata that breaks a rule (signatures,
    /// thresholds, expiry, delegation, snapshot consistency).
    InvalidUpdate,
    /// 409 `VERSION`: not the next version, or another update won a race.
    Version,
    /// 413 `TOO_LARGE`: the request or one file is over its limit.
    TooLarge,
    /// 405 `METHOD_NOT_ALLOWED`.
    MethodNotAllowed,
    /// 401 `UNAUTHORIZED`: no token, a token that does not verify, or one without the
    /// scope the route needs; carries the Bearer challenge.
    Unauthorized,
    /// 400 `DENIED`: the token endpoint refused (bad credentials are 401 instead).
    Denied,
    /// 429 `TOO_MANY_REQUESTS`: a rate limit (key rotations per repository).
    TooManyRequests,
    /// 503 `UNAVAILABLE`: the store does not answer (health).
    Unavailable,
    /// 500 `UNKNOWN`: a bug or an unexpected failure; details are only logged.
    Internal,
}

impl ErrorKind {
    pub fn status(self) -> StatusCode {
        match self {
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::InvalidName | ErrorKind::MalformedUpload | ErrorKind::InvalidUpdate => {
                StatusCode::BAD_REQUEST
            }
            ErrorKind::Version => StatusCode::CONFLICT,
            ErrorKind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorKind::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ErrorKind::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorKind::Denied => StatusCode::BAD_REQUEST,
            ErrorKind::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "METADATA_NOT_FOUND",
            ErrorKind::InvalidName => "INVALID_NAME",
            ErrorKind::MalformedUpload => "MALFORMED_UPLOAD",
            ErrorKind::InvalidUpdate => "INVALID_UPDATE",
            ErrorKind::Version => "VERSION",
            ErrorKind::TooLarge => "TOO_LARGE",
            ErrorKind::MethodNotAllowed => "METHOD_NOT_ALLOWED",
            ErrorKind::Unauthorized => "UNAUTHORIZED",
            ErrorKind::Denied => "DENIED",
            ErrorKind::TooManyRequests => "TOO_MANY_REQUESTS",
            ErrorKind::Unavailable => "UNAVAILABLE",
            ErrorKind::Internal => "UNKNOWN",
        }
    }
}

/// An error on its way to the client.
#[derive(Debug)]
pub struct ApiError {
    pub kind: ErrorKind,
    /// For 4xx: shown to the client. For 5xx: logged only.
    pub message: String,
    /// Structured detail for 4xx (which role, which rule); never set for 5xx.
    pub detail: Option<Value>,
    /// Response headers the error needs (`WWW-Authenticate`, `Retry-After`).
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// A status other than the kind's, where a dialect's clients expect one.
    pub status: Option<StatusCode>,
}

impl ApiError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ApiError {
            kind,
            message: message.into(),
            detail: None,
            headers: Vec::new(),
            status: None,
        }
    }

    /// The error as notary-server answers it, for an update of a Notary repository: `VERSION`
    /// is a 400, and a rejected update carries its reason as a validation error the stock
    /// clients decode (`{"Name":"ErrBadRoot","Error":{"Msg":…}}`), so that they print it.
    /// Those clients read 1 KiB of an error body at most, which carries the message twice
    /// (as `message` and as `Msg`): the message is cut so that each copy, as JSON, takes at
    /// most [`NOTARY_MESSAGE_JSON`] bytes.
    pub fn as_notary(mut self) -> Self {
        if self.kind == ErrorKind::Version {
            self.status = Some(StatusCode::BAD_REQUEST);
        }
        if !matches!(
            self.kind,
            ErrorKind::Version | ErrorKind::InvalidUpdate | ErrorKind::MalformedUpload
        ) {
            return self;
        }
        let role = self
            .detail
            .as_ref()
            .and_then(|d| d.get("role"))
            .and_then(Value::as_str)
            .unwrap_or("");
        let missing = self
            .detail
            .as_ref()
            .and_then(|d| d.get("missing"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        cut_to_json_len(&mut self.message, NOTARY_MESSAGE_JSON);
        if let Some(missing) = missing {
            // Notary's "Metadata hierarchy is incomplete": a role the update needed.
            self.detail = Some(json!({
                "Name": "ErrBadHierarchy",
                "Error": { "Missing": missing, "Msg": self.message },
            }));
            return self;
        }
        let name = match role {
            "root" => "ErrBadRoot",
            "snapshot" => "ErrBadSnapshot",
            r if r == "targets" || r.starts_with("targets/") => "ErrBadTargets",
            _ => "ErrValidation",
        };
        self.detail = Some(json!({ "Name": name, "Error": { "Msg": self.message } }));
        self
    }

    /// Adds a response header; a value that is not a valid header is dropped.
    pub fn with_header(mut self, name: HeaderName, value: &str) -> Self {
        if let Ok(value) = HeaderValue::from_str(value) {
            self.headers.push((name, value));
        }
        self
    }

    pub fn with_detail(mut self, detail: Value) -> Self {
        self.detail = Some(detail);
        self
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }

    pub fn invalid_name(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidName, message)
    }

    pub fn malformed(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::MalformedUpload, message)
    }

    /// A rule of upload validation was broken; `role` names the offending file.
    pub fn invalid_update(role: &str, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidUpdate, message).with_detail(json!({ "role": role }))
    }

    pub fn version(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Version, message)
    }

    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::TooLarge, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }
}

/// The most bytes one copy of a Notary error's message takes as a JSON string: two copies
/// and the envelope stay under the stock client's 1 KiB read.
const NOTARY_MESSAGE_JSON: usize = 400;

/// Cuts `message` (at a character boundary, marked with `…`) until its JSON form, escapes
/// included, is at most `max` bytes.
fn cut_to_json_len(message: &mut String, max: usize) {
    let json_len = |m: &str| serde_json::to_string(m).map_or(usize::MAX, |j| j.len());
    if json_len(message) <= max {
        return;
    }
    let mut end = message.len().min(max);
    loop {
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        let cut = format!("{}…", &message[..end]);
        if json_len(&cut) <= max || end == 0 {
            *message = cut;
            return;
        }
        end = end.saturating_sub(16);
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.kind.code(), self.message)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::VersionConflict { gun } => ApiError::version(format!(
                "another update of {gun} was stored first; fetch the new state and retry"
            )),
            other => ApiError::internal(other.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status.unwrap_or_else(|| self.kind.status());
        let (message, detail) = if status.is_server_error() {
            tracing::error!(code = self.kind.code(), error = %self.message, "request failed");
            let public = match self.kind {
                ErrorKind::Unavailable => "the store is unavailable",
                _ => "internal server error",
            };
            (public.to_owned(), Value::Null)
        } else {
            (self.message, self.detail.unwrap_or(Value::Null))
        };
        let body = json!({
            "errors": [{ "code": self.kind.code(), "message": message, "detail": detail }]
        });
        let mut response = (status, axum::Json(body)).into_response();
        response.headers_mut().extend(self.headers);
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body_of(error: ApiError) -> (StatusCode, serde_json::Value) {
        let response = error.into_response();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .expect("body");
        (status, serde_json::from_slice(&bytes).expect("JSON body"))
    }

    #[tokio::test]
    async fn notary_errors_fit_the_stock_clients_1_kib_read() {
        // A long reason with multi-byte characters at the cut and quotes JSON escapes.
        let reason = "targets/é \"x\" ".repeat(200);
        let error = ApiError::invalid_update("targets", reason.clone()).as_notary();
        let response = error.into_response();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .expect("body");
        assert!(bytes.len() < 1024, "{} bytes", bytes.len());
        let body: serde_json::Value = serde_json::from_slice(&bytes).expect("JSON");
        let detail = &body["errors"][0]["detail"];
        assert_eq!(detail["Name"], "ErrBadTargets");
        let msg = detail["Error"]["Msg"].as_str().expect("Msg");
        assert!(msg.ends_with('…') && reason.starts_with(msg.trim_end_matches('…')));

        let (status, body) = body_of(ApiError::version("not newer").as_notary()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "Notary's VERSION is a 400");
        assert_eq!(body["errors"][0]["code"], "VERSION");
    }

    #[tokio::test]
    async fn server_errors_hide_their_cause() {
        let (status, body) = body_of(ApiError::internal(
            "database: connection to 10.0.0.5 refused; password authentication failed",
        ))
        .await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            body,
            json!({"errors": [{"code": "UNKNOWN", "message": "internal server error", "detail": null}]})
        );
        let (status, body) = body_of(ApiError::from(StoreError::Corrupt(
            "row 7 in tuf_files".into(),
        )))
        .await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!body.to_string().contains("tuf_files"));
    }

    #[tokio::test]
    async fn client_errors_carry_message_and_detail() {
        let (status, body) = body_of(ApiError::invalid_update("targets", "targets expired")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["errors"][0]["code"], "INVALID_UPDATE");
        assert_eq!(body["errors"][0]["message"], "targets expired");
        assert_eq!(body["errors"][0]["detail"]["role"], "targets");
        let (status, body) = body_of(ApiError::from(StoreError::VersionConflict {
            gun: "a/b".into(),
        }))
        .await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert_eq!(body["errors"][0]["code"], "VERSION");
    }
}
