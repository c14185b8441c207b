//! Parallel CI jobs signing their own tags into one repository, through three servers
//! sharing one PostgreSQL: every `trust sign` that loses the race refreshes, re-applies its
//! tag and tries again, so all of them land.

#![allow(clippy::expect_used, reason = "a failed setup step fails the test")]

use std::time::Duration;

use notar_tests::server::{Backend, TestServer};

mod common;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_parallel_signs_through_three_servers_all_land() {
    let Some(Backend::Postgres(url)) = Backend::postgres().await else {
        return;
    };
    let mut servers = Vec::new();
    for _ in 0..3 {
        servers.push(TestServer::start(Backend::Postgres(url.clone())).await);
    }
    let gun = "localhost:5000/team/parallel";
    let work = tempfile::tempdir().expect("temp dir");
    let first = work.path().join("trust-0");
    let env = |server: &str, trust: &str| {
        vec![
            ("NOTAR_SERVER".to_owned(), server.to_owned()),
            ("NOTAR_TRUST_DIR".to_owned(), trust.to_owned()),
            ("NOTAR_KDF".to_owned(), "test".to_owned()),
            (
                "NOTAR_ROOT_PASSPHRASE".to_owned(),
                "root passphrase".to_owned(),
            ),
            (
                "NOTAR_TARGETS_PASSPHRASE".to_owned(),
                "targets passphrase".to_owned(),
            ),
        ]
    };
    let sign = |tag: &str, n: u8| {
        let digest = format!("sha256:{}", format!("{n:02x}").repeat(32));
        vec![
            "trust".to_owned(),
            "sign".to_owned(),
            format!("{gun}:{tag}"),
            "--digest".to_owned(),
            digest,
            "--size".to_owned(),
            "100".to_owned(),
        ]
    };
    let run = |args: Vec<String>, env: Vec<(String, String)>| async move {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        common::run_notar(&args, &env, Duration::from_secs(180)).await
    };
    run(
        sign("base", 0),
        env(&servers[0].url, first.to_str().expect("utf-8")),
    )
    .await
    .ok();

    // Each job has its own copy of the trust directory, as CI runners do.
    let mut jobs = Vec::new();
    for job in 1..=8u8 {
        let dir = work.path().join(format!("trust-{job}"));
        common::copy_trust_dir(&first, &dir);
        let server = servers[usize::from(job) % 3].url.clone();
        let dir = dir.to_str().expect("utf-8").to_owned();
        let args = sign(&format!("job-{job}"), job);
        let env = env(&server, &dir);
        jobs.push(tokio::spawn(run(args, env)));
    }
    let mut retried = 0;
    for job in jobs {
        let out = job.await.expect("job").ok();
        retried += usize::from(out.stderr.contains("stored first"));
    }
    eprintln!("{retried} of 8 signs lost a race at least once and retried");

    // Any one server may serve its cached timestamp for up to the cache TTL (2 s) after a
    // write through another: every reader sees the last version within it.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let inspected = run(
        vec!["trust".into(), "inspect".into(), gun.into()],
        env(&servers[2].url, first.to_str().expect("utf-8")),
    )
    .await
    .ok()
    .json();
    let mut tags: Vec<String> = inspected[0]["SignedTags"]
        .as_array()
        .expect("tags")
        .iter()
        .map(|t| t["SignedTag"].as_str().expect("tag").to_owned())
        .collect();
    tags.sort();
    let mut expected: Vec<String> = (1..=8).map(|j| format!("job-{j}")).collect();
    expected.push("base".into());
    expected.sort();
    assert_eq!(tags, expected);
}
