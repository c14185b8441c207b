//! The `notar-server` binary facing a network: TLS (HTTP/1.1 and h2 by ALPN, reload on
//! SIGHUP), no plain HTTP off loopback, private files, and connection abuse (idle and
//! slowloris connections closed by the header timeout, a connection cap below the
//! descriptor limit).
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "tests: a failed step should stop the test with its message"
)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod common;
use common::BIN;

/// A child server that is killed when the test ends, however it ends.
struct Server {
    child: Child,
    addr: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the binary (through `prefix`, e.g. `prlimit`) in `dir`, waits for "ready".
fn start(dir: &Path, prefix: &[&str], args: &[&str]) -> Server {
    let (child, addr) = common::start(dir, prefix, args, "network test secret");
    Server { child, addr }
}

/// A CA and a certificate it signed for 127.0.0.1 and localhost, as PEM.
struct Pki {
    ca_pem: String,
    cert_pem: String,
    key_pem: String,
}

fn pki(name: &str) -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, format!("{name} test CA"));
    let ca = ca.self_signed(&ca_key).expect("CA");
    let key = KeyPair::generate().expect("key");
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
        .expect("leaf params")
        .signed_by(&key, &ca, &ca_key)
        .expect("leaf");
    Pki {
        ca_pem: ca.pem(),
        cert_pem: leaf.pem(),
        key_pem: key.serialize_pem(),
    }
}

fn write_pki(dir: &Path, pki: &Pki) {
    std::fs::write(dir.join("cert.pem"), &pki.cert_pem).expect("cert");
    std::fs::write(dir.join("key.pem"), &pki.key_pem).expect("key");
}

fn client(ca_pem: Option<&str>) -> reqwest::Client {
    let mut builder = reqwest::Client::builder().timeout(Duration::from_secs(10));
    if let Some(pem) = ca_pem {
        builder = builder
            .add_root_certificate(reqwest::Certificate::from_pem(pem.as_bytes()).expect("CA"));
    }
    builder.build().expect("client")
}

fn signal(server: &Server, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &server.child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
}

/// The ALPN protocol the server picks when offered `protocols`.
async fn negotiated(addr: &str, ca_pem: &str, protocols: &[&[u8]]) -> Option<Vec<u8>> {
    let tls = connect_tls(addr, ca_pem, protocols).await;
    tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec)
}

/// A TLS connection to `addr` trusting `ca_pem`, offering `protocols` by ALPN.
async fn connect_tls(
    addr: &str,
    ca_pem: &str,
    protocols: &[&[u8]],
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    use tokio_rustls::rustls::pki_types::ServerName;
    use tokio_rustls::rustls::{ClientConfig, RootCertStore};
    let mut roots = RootCertStore::empty();
    for cert in rustls_pemfile_certs(ca_pem) {
        roots.add(cert).expect("root");
    }
    let mut config = ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = protocols.iter().map(|p| p.to_vec()).collect();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let name = ServerName::try_from("127.0.0.1").expect("name");
    connector.connect(name, tcp).await.expect("handshake")
}

fn rustls_pemfile_certs(
    pem: &str,
) -> Vec<tokio_rustls::rustls::pki_types::CertificateDer<'static>> {
    use tokio_rustls::rustls::pki_types::CertificateDer;
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .expect("PEM")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_speaks_http1_and_h2_and_reloads_its_certificate_on_sighup() {
    let dir = tempfile::tempdir().expect("temp dir");
    let first = pki("first");
    write_pki(dir.path(), &first);
    let server = start(
        dir.path(),
        &[],
        &[
            "--listen",
            "127.0.0.1:0",
            "--tls-cert",
            "cert.pem",
            "--tls-key",
            "key.pem",
        ],
    );
    let url = format!("https://{}/v2/", server.addr);

    let trusted = client(Some(&first.ca_pem));
    let ping = trusted.get(&url).send().await.expect("GET over TLS");
    assert_eq!(ping.status(), 200);
    assert_eq!(ping.text().await.expect("body"), "{}");
    // Without the CA, the client refuses the certificate.
    let refused = client(None).get(&url).send().await.expect_err("unknown CA");
    let chain = format!("{refused:?}");
    assert!(
        chain.contains("UnknownIssuer") || chain.contains("certificate"),
        "{chain}"
    );
    // ALPN: h2 when offered, HTTP/1.1 otherwise.
    assert_eq!(
        negotiated(&server.addr, &first.ca_pem, &[b"h2", b"http/1.1"])
            .await
            .as_deref(),
        Some(&b"h2"[..])
    );
    assert_eq!(
        negotiated(&server.addr, &first.ca_pem, &[b"http/1.1"])
            .await
            .as_deref(),
        Some(&b"http/1.1"[..])
    );
    // Plain HTTP to a TLS port gets no answer.
    let mut plain = TcpStream::connect(&server.addr).expect("connect");
    plain
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    write!(plain, "GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n").expect("write");
    let mut buf = Vec::new();
    let _ = plain.read_to_end(&mut buf);
    assert!(!buf.starts_with(b"HTTP/1.1 200"));

    // A broken certificate file: the reload fails and the old certificate stays.
    std::fs::write(dir.path().join("cert.pem"), "not a certificate").expect("write");
    signal(&server, "HUP");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        trusted
            .get(&url)
            .send()
            .await
            .expect("still served")
            .status(),
        200
    );
    let fresh = client(Some(&first.ca_pem));
    assert_eq!(
        fresh
            .get(&url)
            .send()
            .await
            .expect("old cert stays")
            .status(),
        200
    );

    // A new certificate from another CA: new connections get it after SIGHUP, while the
    // connection already open keeps working.
    let second = pki("second");
    write_pki(dir.path(), &second);
    signal(&server, "HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let attempt = client(Some(&second.ca_pem)).get(&url).send().await;
        if attempt.is_ok_and(|r| r.status() == 200) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the new certificate is served after SIGHUP"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        client(Some(&first.ca_pem)).get(&url).send().await.is_err(),
        "new connections no longer get the old certificate"
    );
    assert_eq!(
        trusted
            .get(&url)
            .send()
            .await
            .expect("open connection")
            .status(),
        200,
        "the connection opened before the reload is still served"
    );
}

#[test]
fn plain_http_off_loopback_needs_insecure_http_and_files_are_private() {
    let dir = tempfile::tempdir().expect("temp dir");
    let stderr = common::refused_start(
        dir.path(),
        &["--listen", "0.0.0.0:0"],
        "network test secret",
    );
    assert!(
        stderr.contains("refusing to serve plain HTTP on the non-loopback address 0.0.0.0:0"),
        "{stderr}"
    );
    // --insecure-http is not enough: off loopback, authentication must be chosen too.
    let stderr = common::refused_start(
        dir.path(),
        &["--listen", "0.0.0.0:0", "--insecure-http"],
        "network test secret",
    );
    assert!(
        stderr.contains("refusing to serve 0.0.0.0:0 without authentication"),
        "{stderr}"
    );
    // With --insecure-http and an explicit --auth-type none it starts, and says so.
    let server = start(
        dir.path(),
        &[],
        &[
            "--listen",
            "0.0.0.0:0",
            "--insecure-http",
            "--auth-type",
            "none",
        ],
    );
    assert!(server.addr.starts_with("0.0.0.0:"), "{}", server.addr);
    drop(server);
    // The built-in issuer on a non-loopback address starts (its realm must be given).
    let stderr = common::refused_start(
        dir.path(),
        &["--listen", "0.0.0.0:0", "--insecure-http", "--issuer"],
        "network test secret",
    );
    assert!(stderr.contains("token auth needs a realm"), "{stderr}");
    let server = start(
        dir.path(),
        &[],
        &[
            "--listen",
            "0.0.0.0:0",
            "--insecure-http",
            "--issuer",
            "--auth-realm",
            "https://trust.example/auth/token",
        ],
    );
    assert!(server.addr.starts_with("0.0.0.0:"), "{}", server.addr);
    assert!(dir.path().join("notar-data/issuer.crt").is_file());
    drop(server);

    // Whatever the umask: the data directory 0700, the database and secret 0600.
    let data = dir.path().join("umask");
    std::fs::create_dir_all(&data).expect("mkdir");
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let mut child = Command::new("sh")
        .args([
            "-c",
            &format!("umask 000; exec {BIN} --listen 127.0.0.1:0 --data-dir umask"),
        ])
        .current_dir(dir.path())
        .env_remove("NOTAR_SERVER_SECRET")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starts");
    let stderr = child.stderr.take().expect("stderr");
    let ready = BufReader::new(stderr)
        .lines()
        .map_while(Result::ok)
        .any(|l| l.contains("notar-server ready"));
    assert!(ready);
    let mode = |p: &Path| std::fs::metadata(p).expect("exists").permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join("notar.db")), 0o600);
    assert_eq!(mode(&data.join("server.secret")), 0o600);
    for wal in ["notar.db-wal", "notar.db-shm"] {
        if data.join(wal).exists() {
            assert_eq!(mode(&data.join(wal)), 0o600, "{wal}");
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Whether the server closed `stream` (a read returns end of file or a reset).
fn closed(stream: &mut TcpStream) -> bool {
    stream
        .set_read_timeout(Some(Duration::from_millis(50)))
        .expect("timeout");
    let mut buf = [0u8; 64];
    match stream.read(&mut buf) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

fn ping(addr: &str) -> Duration {
    let started = Instant::now();
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    write!(
        stream,
        "GET /v2/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .expect("write");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    started.elapsed()
}

#[test]
fn idle_and_slowloris_connections_are_closed_and_the_cap_holds_under_a_low_descriptor_limit() {
    // This test holds thousands of sockets itself: raise its own descriptor limit (root
    // may; elsewhere the default limit is usually enough).
    let _ = Command::new("prlimit")
        .args([
            "--pid",
            &std::process::id().to_string(),
            "--nofile=16384:16384",
        ])
        .status();
    let dir = tempfile::tempdir().expect("temp dir");
    // 2,000 idle and 200 slowloris connections against a server whose header timeout is
    // one second: all closed, and the server answers normal requests meanwhile.
    let server = start(
        dir.path(),
        &[],
        &[
            "--listen",
            "127.0.0.1:0",
            "--header-timeout",
            "1",
            "--max-connections",
            "4000",
        ],
    );
    let mut idle: Vec<TcpStream> = (0..2000)
        .map(|_| TcpStream::connect(&server.addr).expect("connect"))
        .collect();
    let mut slow: Vec<TcpStream> = (0..200)
        .map(|_| {
            let mut s = TcpStream::connect(&server.addr).expect("connect");
            s.write_all(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n")
                .expect("write");
            s
        })
        .collect();
    assert!(
        ping(&server.addr) < Duration::from_secs(1),
        "served during the flood"
    );
    // A keep-alive connection that goes quiet after a request is closed too.
    let mut quiet = TcpStream::connect(&server.addr).expect("connect");
    write!(quiet, "GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n").expect("write");
    let mut first = [0u8; 15];
    quiet.read_exact(&mut first).expect("response");
    assert_eq!(&first, b"HTTP/1.1 200 OK");
    // Slowloris: one more header byte every 200 ms, never the end of the headers.
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(2500) {
        for s in &mut slow {
            let _ = s.write_all(b"X");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let mut rest = Vec::new();
    let _ = quiet.set_read_timeout(Some(Duration::from_millis(50)));
    let _ = quiet.read_to_end(&mut rest);
    assert!(
        closed(&mut quiet),
        "an idle keep-alive connection is closed"
    );
    let open_idle = idle.iter_mut().map(closed).filter(|c| !c).count();
    let open_slow = slow.iter_mut().map(closed).filter(|c| !c).count();
    assert_eq!(
        (open_idle, open_slow),
        (0, 0),
        "idle and slowloris connections closed"
    );
    drop(idle);
    drop(slow);
    drop(server);

    // A descriptor limit of 256 and a cap of 200: a flood of 1,000 connections never makes
    // the server run out of descriptors, a keep-alive client is served throughout, and a
    // new request is answered within a second once the flood is over.
    let server = start(
        dir.path(),
        &["prlimit", "--nofile=256:256", "--"],
        &[
            "--listen",
            "127.0.0.1:0",
            "--header-timeout",
            "1",
            "--max-connections",
            "200",
        ],
    );
    let mut kept = TcpStream::connect(&server.addr).expect("connect");
    kept.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut reader = BufReader::new(kept.try_clone().expect("clone"));
    let mut request = |kept: &mut TcpStream| {
        let started = Instant::now();
        write!(kept, "GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n").expect("write");
        let mut status = String::new();
        reader.read_line(&mut status).expect("status line");
        assert!(status.starts_with("HTTP/1.1 200"), "{status:?}");
        let mut line = String::new();
        let mut length = 0;
        loop {
            line.clear();
            reader.read_line(&mut line).expect("header");
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().expect("length");
            }
            if line == "\r\n" {
                break;
            }
        }
        let mut body = vec![0u8; length];
        reader.read_exact(&mut body).expect("body");
        started.elapsed()
    };
    // The kept connection is in use before the flood starts, and stays in use while a
    // thread opens 1,000 more (past the cap they wait in the kernel's queue, and past that
    // the kernel makes the flooder wait).
    request(&mut kept);
    let addr = server.addr.clone();
    let flooder = std::thread::spawn(move || {
        (0..1000)
            .filter_map(|_| TcpStream::connect(&addr).ok())
            .collect::<Vec<_>>()
    });
    for _ in 0..15 {
        assert!(
            request(&mut kept) < Duration::from_secs(1),
            "the kept connection is served"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let flood = flooder.join().expect("flood");
    assert!(flood.len() > 300, "the flood connected: {}", flood.len());
    drop(flood);
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        ping(&server.addr) < Duration::from_secs(1),
        "answers after the flood"
    );
}

/// An h2 client that answers every ping (so keep-alive never closes it) is still asked to
/// go away at the connection's age limit, and the connection then closes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_connections_are_closed_at_their_age_limit() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().expect("temp dir");
    let tls = pki("aged");
    write_pki(dir.path(), &tls);
    let reloader = notar_server::serve::TlsReloader::load(
        &dir.path().join("cert.pem"),
        &dir.path().join("key.pem"),
    )
    .expect("TLS loads");
    let state = notar_server::AppState::open(
        notar_server::Config::for_data_dir(dir.path()),
        zeroize::Zeroizing::new("aged secret".to_owned()),
        notar_keys::KdfParams::for_tests(),
    )
    .await
    .expect("state");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let options = notar_server::serve::ServeOptions {
        tls: Some(reloader),
        // Pings far apart: only the age can end the connection within the test.
        header_timeout: Duration::from_secs(60),
        max_connection_age: Duration::from_secs(1),
        ..notar_server::serve::ServeOptions::plain()
    };
    let server = tokio::spawn(notar_server::serve::run(
        listener,
        state,
        async move {
            let _ = stopped.await;
        },
        options,
    ));
    let mut stream = connect_tls(&addr, &tls.ca_pem, &[b"h2"]).await;
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    // The client preface and an empty SETTINGS frame, then silence.
    stream
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .await
        .expect("preface");
    let started = Instant::now();
    let mut pending = Vec::new();
    let mut kinds = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = match tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => break,
            Ok(Ok(n)) => n,
            Err(_) => panic!("the h2 connection was still open 10 s after its 1 s age"),
        };
        pending.extend_from_slice(&buf[..n]);
        // Whole frames: 9-byte header (length 24 bits, type, flags, stream), then payload.
        while pending.len() >= 9 {
            let len = usize::from(pending[0]) << 16
                | usize::from(pending[1]) << 8
                | usize::from(pending[2]);
            if pending.len() < 9 + len {
                break;
            }
            let frame: Vec<u8> = pending.drain(..9 + len).collect();
            let (kind, flags) = (frame[3], frame[4]);
            kinds.push(kind);
            let ack = match (kind, flags & 1) {
                // SETTINGS: acknowledged with an empty SETTINGS ACK.
                (4, 0) => Some(vec![0, 0, 0, 4, 1, 0, 0, 0, 0]),
                // PING: echoed with the ACK flag, as a live client does.
                (6, 0) => {
                    let mut reply = frame.clone();
                    reply[4] = 1;
                    Some(reply)
                }
                _ => None,
            };
            if let Some(ack) = ack {
                let _ = stream.write_all(&ack).await;
            }
        }
    }
    let lived = started.elapsed();
    assert!(
        lived >= Duration::from_millis(800),
        "closed too early: {lived:?}"
    );
    assert!(kinds.contains(&7), "no GOAWAY among frame types {kinds:?}");
    stop.send(()).expect("stop");
    server.await.expect("joins").expect("stops");
}
