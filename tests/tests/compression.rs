//! Metadata over gzip and zstd: asked for with `Accept-Encoding`, compressed once per
//! version, with `Vary` and an ETag per representation; small documents go as they are.
//! python-tuf (gzip and zstd) and tough (gzip) ask for it and verify what they get (TUF
//! hashes cover the identity bytes).
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "tests: a failed step should stop the test with its message"
)]

use std::io::Read;

use notar_tests::python;
use notar_tests::server::{Backend, Publisher, SnapshotKey, TestServer};
use reqwest::StatusCode;
use reqwest::header::{ACCEPT_ENCODING, CONTENT_ENCODING, ETAG, IF_NONE_MATCH, VARY};
use sha2::{Digest, Sha256};

const GUN: &str = "registry.example/team/big";

fn tags() -> Vec<String> {
    (0..60).map(|i| format!("bulk-{i:02}")).collect()
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .expect("gzip");
    out
}

async fn publish(server: &TestServer) -> Publisher {
    let mut publisher = Publisher::new(server, GUN, SnapshotKey::Server);
    let tags = tags();
    let names: Vec<&str> = tags.iter().map(String::as_str).collect();
    publisher.init(&names).await;
    publisher
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_metadata_goes_gzip_when_asked_and_small_goes_as_it_is() {
    let server = TestServer::start(Backend::Sqlite).await;
    let publisher = publish(&server).await;
    // A client that does not decode, to see the wire.
    let raw = reqwest::Client::builder().no_gzip().build().unwrap();
    let get = |file: &str, headers: &[(reqwest::header::HeaderName, &str)]| {
        let mut request = raw.get(publisher.url(file));
        for (name, value) in headers {
            request = request.header(name, *value);
        }
        request.send()
    };

    let identity = get("targets.json", &[]).await.unwrap();
    assert_eq!(identity.status(), StatusCode::OK);
    assert!(identity.headers().get(CONTENT_ENCODING).is_none());
    assert_eq!(identity.headers()[VARY], "accept-encoding");
    let identity_tag = identity.headers()[ETAG].to_str().unwrap().to_owned();
    let plain = identity.bytes().await.unwrap().to_vec();
    assert!(plain.len() > 5_000, "{} bytes", plain.len());
    assert_eq!(
        identity_tag,
        format!("\"{}\"", hex::encode(Sha256::digest(&plain)))
    );

    for file in ["targets.json", "1.targets.json"] {
        let before = server.state.metrics.compressed.get();
        let zipped = get(file, &[(ACCEPT_ENCODING, "gzip, deflate, br")])
            .await
            .unwrap();
        assert_eq!(zipped.status(), StatusCode::OK);
        assert_eq!(zipped.headers()[CONTENT_ENCODING], "gzip", "{file}");
        assert_eq!(zipped.headers()[VARY], "accept-encoding");
        let tag = zipped.headers()[ETAG].to_str().unwrap().to_owned();
        assert_ne!(tag, identity_tag, "an ETag per representation");
        let body = zipped.bytes().await.unwrap();
        assert!(
            body.len() * 2 <= plain.len(),
            "{file}: {} of {} bytes",
            body.len(),
            plain.len()
        );
        assert_eq!(gunzip(&body), plain, "{file}: the same bytes, compressed");
        assert_eq!(server.state.metrics.compressed.get(), before + 1);
        // Either representation's validator says the content is unchanged.
        for validator in [&tag, &identity_tag] {
            let unchanged = get(
                file,
                &[
                    (ACCEPT_ENCODING, "gzip"),
                    (IF_NONE_MATCH, validator.as_str()),
                ],
            )
            .await
            .unwrap();
            assert_eq!(unchanged.status(), StatusCode::NOT_MODIFIED, "{file}");
        }
    }

    // zstd when asked: the same bytes, smaller than gzip, its own ETag.
    let gzip_size = get("targets.json", &[(ACCEPT_ENCODING, "gzip")])
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap()
        .len();
    let zstd = get("targets.json", &[(ACCEPT_ENCODING, "zstd")])
        .await
        .unwrap();
    assert_eq!(zstd.headers()[CONTENT_ENCODING], "zstd");
    assert_eq!(zstd.headers()[VARY], "accept-encoding");
    let zstd_tag = zstd.headers()[ETAG].to_str().unwrap().to_owned();
    assert_eq!(
        zstd_tag,
        format!("{}.zst\"", identity_tag.trim_end_matches('"'))
    );
    let body = zstd.bytes().await.unwrap();
    assert_eq!(zstd::decode_all(&body[..]).unwrap(), plain);
    assert!(
        body.len() < gzip_size,
        "zstd {} vs gzip {gzip_size}",
        body.len()
    );
    let unchanged = get(
        "targets.json",
        &[
            (ACCEPT_ENCODING, "zstd"),
            (IF_NONE_MATCH, zstd_tag.as_str()),
        ],
    )
    .await
    .unwrap();
    assert_eq!(unchanged.status(), StatusCode::NOT_MODIFIED);

    // Which coding, by q-value: the highest; zstd on a tie; identity when none is taken.
    for (asked, sent) in [
        ("gzip;q=0", None),
        ("br", None),
        ("identity", None),
        ("*;q=0", None),
        ("gzip;q=0, zstd;q=0", None),
        ("gzip;q=0, *", Some("zstd")),
        ("*", Some("zstd")),
        ("gzip, zstd", Some("zstd")),
        ("gzip;q=1, zstd;q=0.5", Some("gzip")),
        ("zstd;q=0, *", Some("gzip")),
        ("GZIP", Some("gzip")),
    ] {
        let response = get("targets.json", &[(ACCEPT_ENCODING, asked)])
            .await
            .unwrap();
        let coding = response
            .headers()
            .get(CONTENT_ENCODING)
            .map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(coding.as_deref(), sent, "{asked}");
    }

    // The timestamp is small: never compressed.
    let timestamp = get("timestamp.json", &[(ACCEPT_ENCODING, "gzip, zstd")])
        .await
        .unwrap();
    assert!(timestamp.headers().get(CONTENT_ENCODING).is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_tuf_and_tough_verify_through_compression() {
    for backend in Backend::all().await {
        let server = TestServer::start(backend).await;
        let publisher = publish(&server).await;

        // python-tuf, asking for gzip and then zstd (its urllib3 fetcher asks for
        // neither by default; urllib3 decodes both, zstd through backports.zstd).
        for coding in ["gzip", "zstd"] {
            let before = server.state.metrics.compressed.get();
            let cache = tempfile::tempdir().unwrap();
            let args = [
                server.tuf_url(GUN),
                cache.path().to_str().unwrap().to_owned(),
                "bulk-07".to_owned(),
                "bulk-59".to_owned(),
                "missing".to_owned(),
            ];
            let out = tokio::task::spawn_blocking(move || {
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                python::run_with_env(
                    "ngclient_fetch.py",
                    &args,
                    &[("NGCLIENT_ACCEPT_ENCODING", coding)],
                )
            })
            .await
            .unwrap();
            let lines: Vec<&str> = out.lines().collect();
            assert_eq!(lines.len(), 3, "{coding}: {out}");
            assert!(lines[0].starts_with("bulk-07 ") && !lines[0].ends_with("MISSING"));
            assert!(lines[1].starts_with("bulk-59 ") && !lines[1].ends_with("MISSING"));
            assert_eq!(lines[2], "missing MISSING");
            assert!(
                server.state.metrics.compressed.get() > before,
                "python-tuf got targets.json {coding}-encoded"
            );
        }

        // tough (reqwest with gzip).
        let before = server.state.metrics.compressed.get();
        let root = publisher.get("1.root.json").await.1;
        let metadata = url::Url::parse(&server.tuf_url(GUN)).unwrap();
        let targets = url::Url::parse("http://127.0.0.1:9/targets/").unwrap();
        let repo = tough::RepositoryLoader::new(&root, metadata, targets)
            .transport(tough::HttpTransport::default())
            .load()
            .await
            .expect("tough loads the repository through gzip");
        assert_eq!(repo.all_targets().count(), 60);
        assert!(
            server.state.metrics.compressed.get() > before,
            "tough got targets.json gzip-encoded"
        );
    }
}

/// Reads answered from memory skip the router (`api::fast_read`); a `no-cache` read takes
/// the router and the store. Both must say the same thing, header for header.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_from_memory_answers_as_the_router_does() {
    let server = TestServer::start(Backend::Sqlite).await;
    let publisher = publish(&server).await;
    let raw = reqwest::Client::builder().no_gzip().build().unwrap();
    let identity_tag = raw
        .get(publisher.url("targets.json"))
        .send()
        .await
        .unwrap()
        .headers()[ETAG]
        .to_str()
        .unwrap()
        .to_owned();
    for file in [
        "timestamp.json",
        "targets.json",
        "1.targets.json",
        "2.snapshot.json",
    ] {
        for headers in [
            vec![],
            vec![(ACCEPT_ENCODING, "gzip")],
            vec![(ACCEPT_ENCODING, "zstd, gzip")],
            vec![(IF_NONE_MATCH, identity_tag.as_str())],
        ] {
            let mut answers = Vec::new();
            for fresh in [false, true] {
                // Twice, so that the first (a miss) has filled the cache.
                for _ in 0..2 {
                    let mut request = raw.get(publisher.url(file));
                    for (name, value) in &headers {
                        request = request.header(name, *value);
                    }
                    if fresh {
                        request = request.header("cache-control", "no-cache");
                    }
                    let response = request.send().await.unwrap();
                    let status = response.status();
                    let mut seen: Vec<(String, String)> = response
                        .headers()
                        .iter()
                        .filter(|(name, _)| *name != "date")
                        .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_owned()))
                        .collect();
                    seen.sort();
                    answers.push((status, seen, response.bytes().await.unwrap()));
                }
            }
            let memory = &answers[1];
            let router = &answers[3];
            assert_eq!(memory, router, "{file} {headers:?}");
        }
    }
    let hits = server
        .state
        .metrics
        .cache
        .get_or_create(&notar_server::metrics::CacheLabels { result: "hit" })
        .get();
    assert!(hits > 0, "some reads came from memory");
}
