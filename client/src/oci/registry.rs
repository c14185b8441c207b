//! An OCI registry, spoken to per the OCI distribution specification with hand-written
//! requests on the workspace's reqwest: resolve a tag to its manifest digest and size,
//! fetch manifests and blobs by digest with a size cap while hashing, and upload blobs and
//! manifests. Manifests are kept as raw bytes: the signed digest covers those bytes.
//!
//! Auth challenges are answered as Docker answers them ([`crate::auth`]).
//! Registries on `localhost`, `127.0.0.1` and `[::1]`, and hosts given with
//! `--insecure-registry`, are reached over plain HTTP; all others over HTTPS.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use notar_tuf::Gun;
use reqwest::header::{ACCEPT, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, LOCATION};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::Error;
use crate::oci::auth::{Authenticator, SendError};
use crate::oci::digest::{Hasher, OciDigest};
use crate::oci::manifest::MANIFEST_ACCEPT;

/// The cap on a manifest fetched by digest without a signed length.
pub const MAX_MANIFEST_BYTES: u64 = 4 * 1024 * 1024;

/// Blobs up to this size go up in one request; larger ones in chunks of this size, read
/// from disk one at a time, so memory stays flat whatever the size of a layer.
pub const CHUNK_BYTES: u64 = 8 * 1024 * 1024;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
const READ_TIMEOUT: Duration = Duration::from_secs(120);
const MAX_ERROR_BYTES: usize = 16 * 1024;

/// How an upload began: the registry mounted the blob from another repository, or opened
/// an upload session at this URL.
#[derive(Debug)]
pub enum Upload {
    Mounted,
    Session(String),
}

/// One repository on one registry.
#[derive(Clone, Debug)]
pub struct Registry {
    http: reqwest::Client,
    /// `http(s)://host[:port]`.
    base: String,
    /// The registry host as in the GUN, for messages and credentials.
    host: String,
    /// The repository path inside the registry (`team/app`).
    repository: String,
    /// Answers the registry's auth challenges, keeping its tokens.
    auth: Arc<Authenticator>,
}

impl Registry {
    /// The registry and repository a GUN names: the first component is the host.
    pub fn for_gun(gun: &Gun, insecure: &[String]) -> Result<Self, Error> {
        let text = gun.to_string();
        let (host, repository) = text
            .split_once('/')
            .ok_or_else(|| Error::Usage(format!("{gun} names no registry host")))?;
        let host = if host == "docker.io" {
            "registry-1.docker.io"
        } else {
            host
        };
        let bare = host.rsplit_once(':').map_or(host, |(h, port)| {
            if port.bytes().all(|b| b.is_ascii_digit()) {
                h
            } else {
                host
            }
        });
        let plain = matches!(bare, "localhost" | "127.0.0.1" | "[::1]")
            || insecure.iter().any(|h| h == host || h == bare);
        let scheme = if plain { "http" } else { "https" };
        let http = reqwest::Client::builder()
            .user_agent(concat!("notar/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(READ_TIMEOUT)
            .build()
            .map_err(|source| Error::Http {
                action: "setting up the HTTP client".into(),
                url: host.to_owned(),
                source,
            })?;
        Ok(Registry {
            http,
            base: format!("{scheme}://{host}"),
            host: host.to_owned(),
            repository: repository.to_owned(),
            auth: Arc::new(Authenticator::default()),
        })
    }

    /// The registry host, as the GUN names it.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The repository path inside the registry.
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// `host/repository`, for messages.
    pub fn name(&self) -> String {
        format!("{}/{}", self.host, self.repository)
    }

    fn url(&self, tail: &str) -> String {
        format!("{}/v2/{}/{tail}", self.base, self.repository)
    }

    /// Sends a request, answering the registry's auth challenges.
    async fn send(
        &self,
        action: &str,
        url: &str,
        build: impl Fn(&reqwest::Client) -> RequestBuilder,
    ) -> Result<Response, Error> {
        let scope = format!("repository:{}:pull,push", self.repository);
        self.auth
            .send(&self.http, url, &[&self.host], &scope, || build(&self.http))
            .await
            .map_err(|e| match e {
                SendError::Transport { url, source } => Error::Http {
                    action: format!("{action} (registry {})", self.host),
                    url,
                    source,
                },
                SendError::Refused { scope, reason } => self.refused(
                    action,
                    401,
                    &format!("not authorised for {scope}: {reason}"),
                ),
            })
    }

    fn refused(&self, action: &str, status: u16, reason: &str) -> Error {
        Error::Registry {
            action: format!("{action} ({})", self.name()),
            status: Some(status),
            reason: reason.to_owned(),
        }
    }

    /// The digest and size of the manifest a tag names now.
    pub async fn resolve_tag(&self, tag: &str) -> Result<(OciDigest, u64), Error> {
        match self.lookup_tag(tag).await? {
            Some(found) => Ok(found),
            None => Err(self.refused(
                &format!("resolving tag {tag}"),
                404,
                "MANIFEST_UNKNOWN: the registry has no such tag",
            )),
        }
    }

    /// The digest and size of the manifest a tag names now; `None` if the registry has no
    /// such tag.
    pub async fn lookup_tag(&self, tag: &str) -> Result<Option<(OciDigest, u64)>, Error> {
        let action = format!("resolving tag {tag}");
        let url = self.url(&format!("manifests/{tag}"));
        let response = self
            .send(&action, &url, |c| {
                c.head(&url).header(ACCEPT, MANIFEST_ACCEPT)
            })
            .await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !response.status().is_success() {
            return Err(refused_by(self, &action, response).await);
        }
        let digest = response
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .map(OciDigest::parse)
            .transpose()?;
        let size = response
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if let (Some(digest), Some(size)) = (digest, size) {
            return Ok(Some((digest, size)));
        }
        // No digest header: read the manifest and hash it.
        let (bytes, _) = self.get_manifest(tag, MAX_MANIFEST_BYTES).await?;
        Ok(Some((OciDigest::of(&bytes), bytes.len() as u64)))
    }

    /// The manifest `reference` (a digest or a tag) names, refused once it exceeds `limit`
    /// bytes, without reading further. Returns the raw bytes and the media type.
    pub async fn get_manifest(
        &self,
        reference: &str,
        limit: u64,
    ) -> Result<(Vec<u8>, Option<String>), Error> {
        let action = format!("fetching manifest {reference}");
        let url = self.url(&format!("manifests/{reference}"));
        let mut response = self
            .send(&action, &url, |c| {
                c.get(&url).header(ACCEPT, MANIFEST_ACCEPT)
            })
            .await?;
        if !response.status().is_success() {
            return Err(refused_by(self, &action, response).await);
        }
        let media_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let too_large = |what: String| Error::Content {
            what: format!("manifest {reference} of {}", self.name()),
            reason: format!("{what}, more than the {limit} bytes signed"),
        };
        if let Some(length) = response.content_length()
            && length > limit
        {
            return Err(too_large(format!("the registry announces {length} bytes")));
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|source| Error::Http {
            action: action.clone(),
            url: url.clone(),
            source,
        })? {
            if (bytes.len() + chunk.len()) as u64 > limit {
                return Err(too_large("the registry sent".into()));
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok((bytes, media_type))
    }

    /// Streams blob `digest` into `path`, hashing as it goes; fails, removing `path`, unless
    /// exactly `size` bytes with that digest arrive.
    pub async fn get_blob(
        &self,
        digest: &OciDigest,
        size: u64,
        path: &Path,
        progress: impl Fn(u64),
    ) -> Result<(), Error> {
        let result = self.get_blob_inner(digest, size, path, progress).await;
        if result.is_err() {
            let _ = tokio::fs::remove_file(path).await;
        }
        result
    }

    async fn get_blob_inner(
        &self,
        digest: &OciDigest,
        size: u64,
        path: &Path,
        progress: impl Fn(u64),
    ) -> Result<(), Error> {
        let action = format!("fetching blob {digest}");
        let url = self.url(&format!("blobs/{digest}"));
        let mut response = self.send(&action, &url, |c| c.get(&url)).await?;
        if !response.status().is_success() {
            return Err(refused_by(self, &action, response).await);
        }
        let mismatch = |reason: String| Error::Content {
            what: format!("blob {digest} of {}", self.name()),
            reason,
        };
        let mut file = tokio::fs::File::create(path)
            .await
            .map_err(Error::io("creating", path))?;
        let mut hasher = Hasher::default();
        let mut received = 0u64;
        while let Some(chunk) = response.chunk().await.map_err(|source| Error::Http {
            action: action.clone(),
            url: url.clone(),
            source,
        })? {
            received += chunk.len() as u64;
            if received > size {
                return Err(mismatch(format!(
                    "more than the {size} bytes the manifest names"
                )));
            }
            hasher.update(&chunk);
            file.write_all(&chunk)
                .await
                .map_err(Error::io("writing", path))?;
            progress(chunk.len() as u64);
        }
        if received != size {
            return Err(mismatch(format!(
                "{received} bytes, the manifest names {size}"
            )));
        }
        let got = hasher.finish();
        if &got != digest {
            return Err(mismatch(format!("the content has digest {got}")));
        }
        file.sync_all().await.map_err(Error::io("syncing", path))?;
        Ok(())
    }

    /// Whether the registry has blob `digest`.
    pub async fn has_blob(&self, digest: &OciDigest) -> Result<bool, Error> {
        let action = format!("checking blob {digest}");
        let url = self.url(&format!("blobs/{digest}"));
        let response = self.send(&action, &url, |c| c.head(&url)).await?;
        match response.status() {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(refused_by(self, &action, response).await),
        }
    }

    /// Starts a blob upload: with `mount`, asks the registry to mount `digest` from the
    /// repository `from` on the same registry (no bytes move); it answers with a session
    /// instead when it cannot.
    pub async fn start_upload(&self, mount: Option<(&OciDigest, &str)>) -> Result<Upload, Error> {
        let action = match mount {
            Some((digest, from)) => format!("mounting blob {digest} from {from}"),
            None => "starting a blob upload".to_owned(),
        };
        let mut url = reqwest::Url::parse(&self.url("blobs/uploads/"))
            .map_err(|e| self.refused(&action, 0, &format!("bad URL: {e}")))?;
        if let Some((digest, from)) = mount {
            url.query_pairs_mut()
                .append_pair("mount", digest.as_str())
                .append_pair("from", from);
        }
        let url = url.to_string();
        let response = self
            .send(&action, &url, |c| c.post(&url).header(CONTENT_LENGTH, 0))
            .await?;
        match response.status() {
            StatusCode::CREATED if mount.is_some() => Ok(Upload::Mounted),
            s if s.is_success() => Ok(Upload::Session(self.location(&action, &response)?)),
            _ => Err(refused_by(self, &action, response).await),
        }
    }

    /// The absolute URL of a response's `Location`.
    fn location(&self, action: &str, response: &Response) -> Result<String, Error> {
        let status = response.status().as_u16();
        let location = response
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| self.refused(action, status, "no Location for the upload session"))?;
        reqwest::Url::parse(&self.base)
            .and_then(|base| base.join(location))
            .map(|u| u.to_string())
            .map_err(|e| self.refused(action, status, &format!("bad upload Location: {e}")))
    }

    /// Uploads `bytes` as blob `digest` in one request (a session, then a monolithic PUT).
    pub async fn put_blob(&self, digest: &OciDigest, bytes: Bytes) -> Result<(), Error> {
        let Upload::Session(session) = self.start_upload(None).await? else {
            return Ok(());
        };
        self.finish_upload(digest, &session, bytes).await
    }

    /// Closes the upload session at `session` with the last `bytes` (maybe none), naming
    /// the digest the registry must find.
    async fn finish_upload(
        &self,
        digest: &OciDigest,
        session: &str,
        bytes: Bytes,
    ) -> Result<(), Error> {
        let action = format!("uploading blob {digest}");
        let mut put = reqwest::Url::parse(session)
            .map_err(|e| self.refused(&action, 202, &format!("bad upload Location: {e}")))?;
        put.query_pairs_mut().append_pair("digest", digest.as_str());
        let put = put.to_string();
        let response = self
            .send(&action, &put, |c| {
                c.put(&put)
                    .header(CONTENT_TYPE, "application/octet-stream")
                    .header(CONTENT_LENGTH, bytes.len())
                    .body(bytes.clone())
            })
            .await?;
        if !response.status().is_success() {
            return Err(refused_by(self, &action, response).await);
        }
        Ok(())
    }

    /// Streams the file at `path` into the upload `session` as blob `digest` of `size`
    /// bytes: in one request up to [`CHUNK_BYTES`], else in chunks of that size (one in
    /// memory at a time), hashing as it reads. The upload is closed only if exactly `size`
    /// bytes with that digest were read, so a changed file never becomes a blob.
    pub async fn stream_blob(
        &self,
        digest: &OciDigest,
        size: u64,
        path: &Path,
        session: String,
        progress: impl Fn(u64),
    ) -> Result<(), Error> {
        let action = format!("uploading blob {digest}");
        let mut file = tokio::fs::File::open(path)
            .await
            .map_err(Error::io("reading", path))?;
        let mut hasher = Hasher::default();
        let mut session = session;
        let mut sent = 0u64;
        let mismatch = |reason: String| {
            Error::Usage(format!("{}: {reason}; nothing was stored", path.display()))
        };
        loop {
            let mut chunk = Vec::with_capacity(CHUNK_BYTES.min(size - sent) as usize);
            (&mut file)
                .take(CHUNK_BYTES)
                .read_to_end(&mut chunk)
                .await
                .map_err(Error::io("reading", path))?;
            let n = chunk.len() as u64;
            if sent + n > size {
                return Err(mismatch(format!(
                    "more than the {size} bytes its descriptor says"
                )));
            }
            hasher.update(&chunk);
            let chunk = Bytes::from(chunk);
            let last = sent + n == size;
            if last {
                let got = hasher.clone().finish();
                if &got != digest {
                    self.cancel_upload(&session).await;
                    return Err(mismatch(format!(
                        "the content has digest {got}, not {digest}"
                    )));
                }
                if sent == 0 {
                    // Small enough for one request.
                    self.finish_upload(digest, &session, chunk).await?;
                    progress(n);
                    return Ok(());
                }
            }
            if n == 0 {
                self.cancel_upload(&session).await;
                return Err(mismatch(format!(
                    "{sent} bytes, its descriptor says {size}"
                )));
            }
            let end = sent + n - 1;
            let url = session.clone();
            let response = self
                .send(&action, &url, |c| {
                    c.patch(&url)
                        .header(CONTENT_TYPE, "application/octet-stream")
                        .header(CONTENT_RANGE, format!("{sent}-{end}"))
                        .header(CONTENT_LENGTH, n)
                        .body(chunk.clone())
                })
                .await?;
            if !response.status().is_success() {
                return Err(refused_by(self, &action, response).await);
            }
            session = self.location(&action, &response)?;
            sent += n;
            progress(n);
            if last {
                return self.finish_upload(digest, &session, Bytes::new()).await;
            }
        }
    }

    /// Abandons an upload session (best effort: the registry expires it anyway).
    pub async fn cancel_upload(&self, session: &str) {
        let url = session.to_owned();
        let _ = self
            .send("cancelling an upload", &url, |c| c.delete(&url))
            .await;
    }

    /// Stores a manifest under `reference` (a tag or its digest).
    pub async fn put_manifest(
        &self,
        reference: &str,
        media_type: &str,
        bytes: Bytes,
    ) -> Result<(), Error> {
        let action = format!("uploading manifest {reference}");
        let url = self.url(&format!("manifests/{reference}"));
        let response = self
            .send(&action, &url, |c| {
                c.request(Method::PUT, &url)
                    .header(CONTENT_TYPE, media_type)
                    .body(bytes.clone())
            })
            .await?;
        if !response.status().is_success() {
            return Err(refused_by(self, &action, response).await);
        }
        Ok(())
    }
}

async fn refused_by(registry: &Registry, action: &str, response: Response) -> Error {
    let status = response.status().as_u16();
    let body = response
        .bytes()
        .await
        .map(|b| b.to_vec())
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&body[..body.len().min(MAX_ERROR_BYTES)]);
    // The distribution error envelope: {"errors":[{"code","message"}]}.
    let reason = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| {
            let first = v.get("errors")?.get(0)?.clone();
            Some(format!(
                "{}: {}",
                first.get("code")?.as_str()?,
                first.get("message").and_then(|m| m.as_str()).unwrap_or("")
            ))
        })
        .unwrap_or_else(|| text.trim().chars().take(200).collect());
    registry.refused(action, status, &reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A registry that streams an endless chunked manifest (no Content-Length): the client
    /// must stop at the cap instead of reading it all.
    #[tokio::test]
    async fn an_oversized_stream_stops_at_the_cap() {
        use tokio::io::AsyncReadExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.expect("accept");
            let mut request = [0u8; 4096];
            let _ = socket.read(&mut request).await;
            let _ = socket
                .write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
                .await;
            let mut sent = 0u64;
            let chunk = format!("400\r\n{}\r\n", "x".repeat(0x400));
            // Up to 64 MiB, far more than the cap; the client hangs up long before.
            while sent < 64 << 20 {
                if socket.write_all(chunk.as_bytes()).await.is_err() {
                    break;
                }
                sent += 0x400;
            }
            sent
        });
        let gun = Gun::new(format!("127.0.0.1:{port}/app")).expect("valid");
        let registry = Registry::for_gun(&gun, &[]).expect("registry");
        let err = registry
            .get_manifest(&format!("sha256:{}", "a".repeat(64)), 4096)
            .await
            .expect_err("refused");
        assert!(
            err.to_string()
                .contains("the registry sent, more than the 4096 bytes signed"),
            "{err}"
        );
        assert!(matches!(err, Error::Content { .. }));
        drop(registry);
        let sent = server.await.expect("server task");
        assert!(sent < 64 << 20, "the client read everything");
    }

    /// Docker's token flow: a 401 with a Bearer challenge, a token request carrying the
    /// basic credentials, then the request again with the token.
    #[tokio::test]
    async fn bearer_challenge_is_answered_with_a_token() {
        use tokio::io::AsyncReadExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let digest = format!("sha256:{}", "b".repeat(64));
        let answer_digest = digest.clone();
        let server = tokio::spawn(async move {
            let mut seen = Vec::new();
            for _ in 0..3 {
                let (mut socket, _) = listener.accept().await.expect("accept");
                let mut buf = vec![0u8; 8192];
                let n = socket.read(&mut buf).await.expect("read");
                let request = String::from_utf8_lossy(&buf[..n]).to_lowercase();
                let response = if request.starts_with("get /token?") {
                    let body = r#"{"token":"t0k3n"}"#;
                    format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    )
                } else if request.contains("authorization: bearer t0k3n") {
                    format!(
                        "HTTP/1.1 200 OK\r\ndocker-content-digest: {answer_digest}\r\ncontent-length: 321\r\nconnection: close\r\n\r\n"
                    )
                } else {
                    format!(
                        "HTTP/1.1 401 Unauthorized\r\nwww-authenticate: Bearer realm=\"http://127.0.0.1:{port}/token\",service=\"reg\",scope=\"repository:app:pull\"\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                    )
                };
                socket.write_all(response.as_bytes()).await.expect("write");
                seen.push(request);
            }
            seen
        });
        let gun = Gun::new(format!("127.0.0.1:{port}/app")).expect("valid");
        let mut registry = Registry::for_gun(&gun, &[]).expect("registry");
        registry.auth = Arc::new(Authenticator::with_credentials(
            crate::oci::auth::Credentials::new("user", "pass"),
        ));
        let (got, size) = registry.resolve_tag("v1").await.expect("resolved");
        assert_eq!((got.as_str(), size), (digest.as_str(), 321));
        // The token it keeps and the credentials never show in Debug output.
        let debug = format!("{registry:?}");
        assert!(debug.contains("Registry"), "{debug}");
        for secret in ["t0k3n", "pass\"", "dXNlcjpwYXNz"] {
            assert!(!debug.contains(secret), "{secret} in {debug}");
        }
        let seen = server.await.expect("server task");
        assert!(
            seen[0].starts_with("head /v2/app/manifests/v1"),
            "{}",
            seen[0]
        );
        assert!(
            seen[1].starts_with("get /token?scope=repository%3aapp%3apull&service=reg"),
            "{}",
            seen[1]
        );
        // base64("user:pass")
        assert!(
            seen[1].contains("authorization: basic dxnlcjpwyxnz"),
            "{}",
            seen[1]
        );
        assert!(
            seen[2].contains("authorization: bearer t0k3n"),
            "{}",
            seen[2]
        );
    }

    #[test]
    fn loopback_is_plain_http_others_need_a_flag() {
        let gun = |g: &str| Gun::new(g).expect("valid");
        let r = Registry::for_gun(&gun("127.0.0.1:5000/team/app"), &[]).expect("registry");
        assert_eq!(r.base, "http://127.0.0.1:5000");
        assert_eq!(r.repository, "team/app");
        let r = Registry::for_gun(&gun("reg.example/app"), &[]).expect("registry");
        assert_eq!(r.base, "https://reg.example");
        let r =
            Registry::for_gun(&gun("reg.example/app"), &["reg.example".into()]).expect("registry");
        assert_eq!(r.base, "http://reg.example");
    }
}
