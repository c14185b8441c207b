//! Talking to the trust server: downloads with a size cap (the [`Fetch`] the TUF workflow
//! uses), the public keys of the server-managed roles, and atomic multipart uploads.
//!
//! URLs follow the Notary scheme: `<server>/v2/<gun>/_trust/tuf/<file>`.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use notar_tuf::client::{Fetch, FetchError};
use notar_tuf::{Gun, PublicKey, RoleName};
use serde::Deserialize;

use crate::Error;
use crate::error::one_line;
use crate::oci::auth::{Authenticator, Credentials, SendError};

/// How long to wait for a connection, and for each read once connected.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
const READ_TIMEOUT: Duration = Duration::from_secs(60);
/// Public key objects are a few hundred bytes.
const MAX_KEY_BYTES: u64 = 64 * 1024;
/// Pending delegations of one repository, listed: several signed targets at most.
const MAX_PENDING_BYTES: u64 = 64 * 1024 * 1024;
/// Error bodies are read for their message, up to this much.
const MAX_ERROR_BYTES: u64 = 64 * 1024;

/// The trust server of one command run.
#[derive(Clone, Debug)]
pub struct Server {
    client: Client,
    /// `http(s)://host[:port][/prefix]`, without a trailing `/`.
    base: String,
}

/// The HTTP client and the authenticator every request to the server shares.
#[derive(Clone, Debug)]
struct Client {
    http: reqwest::Client,
    auth: Arc<Authenticator>,
    /// `host[:port]` of the server, whose credentials answer its challenges first.
    authority: String,
    /// Set after a lost race: reads ask past the server's memory cache from then on.
    fresh: Arc<std::sync::atomic::AtomicBool>,
}

impl Client {
    /// Sends a request for `gun`, answering the server's token challenges with the
    /// credentials of the server's host, or else of the GUN's registry (one login serves
    /// both when they share a token service).
    async fn send(
        &self,
        gun: &Gun,
        url: &str,
        actions: &str,
        build: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, SendError> {
        let gun_text = gun.to_string();
        let registry = gun_text.split('/').next().unwrap_or_default();
        let scope = format!("repository:{gun}:{actions}");
        self.auth
            .send(
                &self.http,
                url,
                &[&self.authority, registry],
                &scope,
                || build(&self.http),
            )
            .await
    }
}

/// A [`SendError`] of `action` as the client's error.
fn send_error(action: &str, e: SendError) -> Error {
    match e {
        SendError::Transport { url, source } => Error::Http {
            action: action.to_owned(),
            url,
            source: source.without_url(),
        },
        SendError::Refused { scope, reason } => Error::Unauthorized {
            action: action.to_owned(),
            scope,
            reason,
        },
    }
}

impl Server {
    /// Checks the URL and builds the HTTP client, trusting the system roots only.
    pub fn new(url: &str) -> Result<Self, Error> {
        Self::with_ca(url, None, None)
    }

    /// Checks the URL and builds the HTTP client. A trust server is reached over HTTPS
    /// except on loopback. Its certificate may be signed by a system root, by the CA in
    /// `ca_cert` (`--ca-cert`, `NOTAR_CA_CERT`), or by Docker's per-server CA,
    /// `<home>/.docker/tls/<host:port>/ca.crt`.
    pub fn with_ca(url: &str, ca_cert: Option<&Path>, home: Option<&Path>) -> Result<Self, Error> {
        let parsed = reqwest::Url::parse(url)
            .map_err(|e| Error::Usage(format!("invalid server URL {url:?}: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
            return Err(Error::Usage(format!(
                "invalid server URL {url:?}: expected http://host[:port] or https://host[:port]"
            )));
        }
        if parsed.query().is_some() || parsed.fragment().is_some() {
            return Err(Error::Usage(format!(
                "invalid server URL {url:?}: no query or fragment, please"
            )));
        }
        let host = parsed.host_str().unwrap_or_default();
        if parsed.scheme() == "http" && !crate::oci::auth::is_loopback_host(host) {
            return Err(Error::Usage(format!(
                "the trust server {url} is not on loopback: reach it over HTTPS (https://{})",
                parsed.authority()
            )));
        }
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("notar/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(READ_TIMEOUT);
        let docker_ca = home.map(|h| {
            let port = parsed.port_or_known_default().unwrap_or(443);
            h.join(".docker/tls")
                .join(format!("{host}:{port}"))
                .join("ca.crt")
        });
        let docker_ca = docker_ca.filter(|p| p.is_file());
        for path in ca_cert.into_iter().chain(docker_ca.as_deref()) {
            for cert in read_ca(path)? {
                builder = builder.add_root_certificate(cert);
            }
        }
        let http = builder.build().map_err(|source| Error::Http {
            action: "setting up the HTTP client".into(),
            url: url.to_owned(),
            source,
        })?;
        Ok(Server {
            client: Client {
                http,
                auth: Arc::new(Authenticator::default()),
                authority: parsed.authority().to_owned(),
                fresh: Arc::default(),
            },
            base: url.trim_end_matches('/').to_owned(),
        })
    }

    /// From now on, reads ask the server past its memory cache (`Cache-Control:
    /// no-cache`): after losing a race, the next state must be the newest, even when the
    /// winner wrote through another server sharing the database.
    pub fn insist_on_fresh_reads(&self) {
        self.client
            .fresh
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// `host[:port]` of the server, as credentials are filed under it.
    pub fn authority(&self) -> &str {
        &self.client.authority
    }

    /// Checks `credentials` as `docker login` does: the `/v2/` ping's challenge is
    /// answered with them (a token from the realm, or Basic), and the token service or
    /// the server must accept them. `Ok(false)` when the server asks for no credentials.
    pub async fn login(&self, credentials: &Credentials) -> Result<bool, Error> {
        let url = format!("{}/v2/", self.base);
        let action = format!("logging in to {}", self.client.authority);
        let http = &self.client.http;
        let transport = |source: reqwest::Error| Error::Http {
            action: action.clone(),
            url: url.clone(),
            source: source.without_url(),
        };
        let ping = http.get(&url).send().await.map_err(transport)?;
        if ping.status() != reqwest::StatusCode::UNAUTHORIZED {
            return Ok(false);
        }
        let challenge = ping
            .headers()
            .get(reqwest::header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let refused = |scope: String, reason: String| Error::Unauthorized {
            action: action.clone(),
            scope,
            reason,
        };
        if challenge.to_ascii_lowercase().starts_with("basic") {
            let response = http
                .get(&url)
                .header(reqwest::header::AUTHORIZATION, credentials.basic())
                .send()
                .await
                .map_err(transport)?;
            if response.status() == reqwest::StatusCode::UNAUTHORIZED {
                return Err(refused(
                    "login".into(),
                    format!("the server refused user {}", credentials.user),
                ));
            }
            return Ok(true);
        }
        Authenticator::with_credentials(credentials.clone())
            .token_for(http, &challenge, "")
            .await
            .map_err(|e| match e {
                SendError::Transport { url, source } => Error::Http {
                    action: action.clone(),
                    url,
                    source: source.without_url(),
                },
                SendError::Refused { reason, .. } => refused("login".into(), reason),
            })?;
        Ok(true)
    }

    /// The server URL as given (without a trailing `/`), for messages.
    pub fn url(&self) -> &str {
        &self.base
    }

    /// The metadata base URL of `gun`, ending in `/`.
    pub fn tuf_url(&self, gun: &Gun) -> String {
        format!("{}/v2/{gun}/_trust/tuf/", self.base)
    }

    /// A [`Fetch`] for the metadata of `gun`.
    pub fn fetcher(&self, gun: &Gun) -> HttpFetch {
        HttpFetch {
            client: self.client.clone(),
            gun: gun.clone(),
            base: self.tuf_url(gun),
        }
    }

    /// The public key the server signs `role` (`timestamp` or `snapshot`) of `gun` with;
    /// the server makes it on first request.
    pub async fn managed_key(&self, gun: &Gun, role: &str) -> Result<PublicKey, Error> {
        let url = format!("{}{role}.key", self.tuf_url(gun));
        let action = format!("fetching the server's {role} key for {gun}");
        let bytes = get_limited(&self.client, gun, "push,pull", &url, MAX_KEY_BYTES)
            .await
            .map_err(|e| Error::Protocol {
                action: action.clone(),
                reason: e.to_string(),
            })?
            .ok_or_else(|| Error::Protocol {
                action: action.clone(),
                reason: format!("{url} is not found"),
            })?;
        serde_json::from_slice(&bytes).map_err(|e| Error::Protocol {
            action,
            reason: format!("not a TUF key object: {e}"),
        })
    }

    /// Asks the server for a new key for its managed `role` (`timestamp` or `snapshot`) of
    /// `gun`; the server signs with it once a root lists it. Returns the new public key.
    pub async fn rotate_managed_key(&self, gun: &Gun, role: &str) -> Result<PublicKey, Error> {
        let url = format!("{}{role}.key", self.tuf_url(gun));
        let action = format!("rotating the server's {role} key for {gun}");
        let response = self
            .client
            .send(gun, &url, "*", |http| {
                http.post(&url).header(reqwest::header::ACCEPT, ACCEPT)
            })
            .await
            .map_err(|e| send_error(&action, e))?;
        if !response.status().is_success() {
            return Err(server_error(action, response).await);
        }
        let bytes = response.bytes().await.map_err(|source| Error::Http {
            action: action.clone(),
            url: url.clone(),
            source: source.without_url(),
        })?;
        if bytes.len() as u64 > MAX_KEY_BYTES {
            return Err(Error::Protocol {
                action,
                reason: format!("the key is larger than {MAX_KEY_BYTES} bytes"),
            });
        }
        serde_json::from_slice(&bytes).map_err(|e| Error::Protocol {
            action,
            reason: format!("not a TUF key object: {e}"),
        })
    }

    /// Uploads `files` (role, exact bytes) for `gun` in one multipart request: the server
    /// stores all of them or none.
    pub async fn upload(&self, gun: &Gun, files: Vec<(RoleName, Vec<u8>)>) -> Result<(), Error> {
        self.post_files(gun, self.tuf_url(gun), "uploading", files)
            .await
    }

    /// Stages the owner's next targets, which delegate a role without metadata yet, as a
    /// pending delegation: the server publishes it with the signer's first signature.
    pub async fn upload_pending(&self, gun: &Gun, targets: Vec<u8>) -> Result<(), Error> {
        let url = format!("{}/v2/{gun}/_trust/pending/", self.base);
        self.post_files(
            gun,
            url,
            "staging a pending delegation:",
            vec![(RoleName::targets(), targets)],
        )
        .await
    }

    /// The pending delegations of `gun`: (waiting role, the owner's signed targets), the
    /// targets unverified (the caller checks them against root).
    pub async fn pending(&self, gun: &Gun) -> Result<Vec<(RoleName, Vec<u8>)>, Error> {
        #[derive(Deserialize)]
        struct Listing {
            pending: Vec<Entry>,
        }
        #[derive(Deserialize)]
        struct Entry {
            role: String,
            targets: String,
        }
        let url = format!("{}/v2/{gun}/_trust/pending/", self.base);
        let action = format!("reading the pending delegations of {gun}");
        let bytes = get_limited(&self.client, gun, "pull", &url, MAX_PENDING_BYTES)
            .await
            .map_err(|e| Error::Protocol {
                action: action.clone(),
                reason: e.to_string(),
            })?
            .unwrap_or_else(|| b"{\"pending\":[]}".to_vec());
        let listing: Listing = serde_json::from_slice(&bytes).map_err(|e| Error::Protocol {
            action: action.clone(),
            reason: format!("not a pending listing: {e}"),
        })?;
        listing
            .pending
            .into_iter()
            .map(|e| {
                let role = RoleName::new(e.role).map_err(|err| Error::Protocol {
                    action: action.clone(),
                    reason: err.to_string(),
                })?;
                Ok((role, e.targets.into_bytes()))
            })
            .collect()
    }

    async fn post_files(
        &self,
        gun: &Gun,
        url: String,
        verb: &str,
        files: Vec<(RoleName, Vec<u8>)>,
    ) -> Result<(), Error> {
        let roles: Vec<String> = files.iter().map(|(r, _)| r.to_string()).collect();
        let action = format!("{verb} {} for {gun}", roles.join(" and "));
        tracing::debug!(gun = %gun, roles = ?roles, "uploading");
        // A form is sent once; each answer to a challenge sends a new one.
        let form = || {
            files
                .iter()
                .fold(reqwest::multipart::Form::new(), |form, (role, bytes)| {
                    form.part(
                        "files",
                        reqwest::multipart::Part::bytes(bytes.clone()).file_name(role.to_string()),
                    )
                })
        };
        let response = self
            .client
            .send(gun, &url, "push,pull", |http| {
                http.post(&url).multipart(form())
            })
            .await
            .map_err(|e| send_error(&action, e))?;
        if response.status().is_success() {
            return Ok(());
        }
        Err(server_error(action, response).await)
    }
}

/// The certificates of a PEM CA file.
fn read_ca(path: &Path) -> Result<Vec<reqwest::Certificate>, Error> {
    let pem = std::fs::read(path).map_err(Error::io("reading the CA certificate", path))?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem)
        .map_err(|e| Error::Usage(format!("{}: not a PEM CA certificate: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(Error::Usage(format!(
            "{}: no PEM certificate in the file",
            path.display()
        )));
    }
    Ok(certs)
}

/// The error envelope `{"errors":[{"code","message","detail"}]}`.
#[derive(Deserialize)]
struct Envelope {
    errors: Vec<EnvelopeError>,
}

#[derive(Deserialize)]
struct EnvelopeError {
    code: Option<String>,
    message: Option<String>,
}

async fn server_error(action: String, mut response: reqwest::Response) -> Error {
    let status = response.status().as_u16();
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        if (body.len() + chunk.len()) as u64 > MAX_ERROR_BYTES {
            break;
        }
        body.extend_from_slice(&chunk);
    }
    let (code, message) = match serde_json::from_slice::<Envelope>(&body) {
        Ok(envelope) => envelope
            .errors
            .into_iter()
            .next()
            .map(|e| (e.code, e.message.unwrap_or_default()))
            .unwrap_or_default(),
        Err(_) => (
            None,
            String::from_utf8_lossy(&body)
                .trim()
                .chars()
                .take(200)
                .collect(),
        ),
    };
    Error::Server {
        action,
        status,
        code,
        message,
    }
}

/// Downloads the metadata of one repository over HTTP.
#[derive(Clone, Debug)]
pub struct HttpFetch {
    client: Client,
    gun: Gun,
    /// The metadata base URL, ending in `/`.
    base: String,
}

impl Fetch for HttpFetch {
    fn fetch(
        &self,
        name: &str,
        max_len: u64,
    ) -> impl Future<Output = Result<Option<Vec<u8>>, FetchError>> + Send {
        let url = format!("{}{name}", self.base);
        async move { get_limited(&self.client, &self.gun, "pull", &url, max_len).await }
    }
}

/// GETs `url`: `Ok(None)` on 404; never holds more than `max_len` bytes of the body, whatever
/// `Content-Length` says, because the body is read chunk by chunk and the count checked first.
/// What this client reads: TUF 1.0 keys (`notar-server`'s media type for them) and JSON.
const ACCEPT: &str = "application/vnd.notar.tuf-key+json, application/json";

async fn get_limited(
    client: &Client,
    gun: &Gun,
    actions: &str,
    url: &str,
    max_len: u64,
) -> Result<Option<Vec<u8>>, FetchError> {
    tracing::debug!(url, max_len, "GET");
    let transport = |e: reqwest::Error| {
        let text = one_line(&e.without_url());
        let hint = if text.contains("certificate") || text.contains("UnknownIssuer") {
            "; the server's TLS certificate is not trusted here: give its CA with --ca-cert or \
             NOTAR_CA_CERT (or ~/.docker/tls/<host:port>/ca.crt)"
        } else {
            ""
        };
        FetchError::Transport(format!("GET {url}: {text}{hint}"))
    };
    let mut response = client
        .send(gun, url, actions, |http| {
            // Server-managed keys come as TUF 1.0 key objects only when asked for (a server
            // answers stock Notary clients in their own form); metadata ignores the header.
            let request = http.get(url).header(reqwest::header::ACCEPT, ACCEPT);
            if client.fresh.load(std::sync::atomic::Ordering::Relaxed) {
                request.header(reqwest::header::CACHE_CONTROL, "no-cache")
            } else {
                request
            }
        })
        .await
        .map_err(|e| match e {
            SendError::Transport { source, .. } => transport(source),
            SendError::Refused { scope, reason } => FetchError::Transport(format!(
                "GET {url}: the trust server did not authorise {scope}: {reason}"
            )),
        })?;
    let status = response.status();
    if status == reqwest::StatusCode::NOT_FOUND {
        return Ok(None);
    }
    if !status.is_success() {
        let Error::Server { code, message, .. } = server_error(String::new(), response).await
        else {
            return Err(FetchError::Transport(format!("GET {url}: HTTP {status}")));
        };
        let detail = match code {
            Some(code) => format!(" ({code}: {message})"),
            None if !message.is_empty() => format!(" ({message})"),
            None => String::new(),
        };
        return Err(FetchError::Transport(format!(
            "GET {url}: HTTP {status}{detail}"
        )));
    }
    if response.content_length().is_some_and(|n| n > max_len) {
        return Err(FetchError::TooLarge { limit: max_len });
    }
    let capacity = response.content_length().unwrap_or(0).min(max_len);
    let mut body = Vec::with_capacity(usize::try_from(capacity).unwrap_or(0));
    while let Some(chunk) = response.chunk().await.map_err(transport)? {
        if (body.len() as u64).saturating_add(chunk.len() as u64) > max_len {
            return Err(FetchError::TooLarge { limit: max_len });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(body))
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// A one-trick HTTP server: `/big` streams 10,000 bytes in chunks without a length,
    /// `/lying` declares 10 bytes and sends 10,000, `/declared` declares 10,000, `/small`
    /// sends 100 bytes, anything else is 404.
    async fn serve() -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut request = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match socket.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&buf[..n]),
                        }
                    }
                    let text = String::from_utf8_lossy(&request);
                    let path = text.split_whitespace().nth(1).unwrap_or("/").to_owned();
                    let body = vec![b'x'; 10_000];
                    let head = match path.as_str() {
                        "/tuf/big" => "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n".to_owned(),
                        "/tuf/lying" => "HTTP/1.1 200 OK\r\nContent-Length: 10\r\nConnection: close\r\n\r\n".to_owned(),
                        "/tuf/declared" => "HTTP/1.1 200 OK\r\nContent-Length: 10000\r\nConnection: close\r\n\r\n".to_owned(),
                        "/tuf/small" => "HTTP/1.1 200 OK\r\nContent-Length: 100\r\nConnection: close\r\n\r\n".to_owned(),
                        _ => "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_owned(),
                    };
                    let _ = socket.write_all(head.as_bytes()).await;
                    match path.as_str() {
                        "/tuf/big" => {
                            for chunk in body.chunks(1000) {
                                let frame = format!("{:x}\r\n", chunk.len());
                                let _ = socket.write_all(frame.as_bytes()).await;
                                let _ = socket.write_all(chunk).await;
                                let _ = socket.write_all(b"\r\n").await;
                            }
                            let _ = socket.write_all(b"0\r\n\r\n").await;
                        }
                        "/tuf/lying" | "/tuf/declared" => {
                            let _ = socket.write_all(&body).await;
                        }
                        "/tuf/small" => {
                            let _ = socket.write_all(&body[..100]).await;
                        }
                        _ => {}
                    }
                });
            }
        });
        format!("http://{addr}/tuf/")
    }

    fn fetcher(base: String) -> HttpFetch {
        HttpFetch {
            client: Server::new(base.trim_end_matches('/'))
                .expect("server")
                .client,
            gun: Gun::new("localhost:5000/app").expect("GUN"),
            base,
        }
    }

    #[tokio::test]
    async fn downloads_stop_at_the_limit() {
        let fetch = fetcher(serve().await);
        for name in ["big", "declared"] {
            let err = fetch.fetch(name, 5_000).await.expect_err(name);
            assert!(
                matches!(err, FetchError::TooLarge { limit: 5_000 }),
                "{name}: {err:?}"
            );
        }
        assert_eq!(
            fetch
                .fetch("big", 10_000)
                .await
                .expect("fits")
                .map(|b| b.len()),
            Some(10_000)
        );
        // A body longer than its Content-Length is cut at the declared length by HTTP.
        let lying = fetch.fetch("lying", 5_000).await.expect("declared 10");
        assert!(lying.is_some_and(|b| b.len() <= 10));
        assert_eq!(
            fetch
                .fetch("small", 100)
                .await
                .expect("fits")
                .map(|b| b.len()),
            Some(100)
        );
        assert!(fetch.fetch("missing", 100).await.expect("404").is_none());
    }
}
