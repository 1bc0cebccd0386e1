//! The peers some tests need (PostgreSQL, Redis, NATS, nginx), and waiting for things to happen.
//!
//! A test whose peer is missing is skipped, except in CI (`CI` set), where that fails it. The
//! PostgreSQL "peer" is the PostgreSQL pass of `scripts/test`: outside it such a test is skipped
//! without asserting, in CI too (CI runs that pass as well).

use super::app::on_postgres;
use reqwest::StatusCode;
use std::fmt;
use std::time::{Duration, Instant};

/// Where the suite finds NATS.
pub(crate) const NATS: &str = "127.0.0.1:4222";
/// Where the suite finds Redis.
pub(crate) const REDIS: &str = "127.0.0.1:6379";
/// The nginx binary the cluster test runs.
pub(crate) const NGINX: &str = "/usr/sbin/nginx";

/// Something outside the process under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Peer {
    /// The suite runs on PostgreSQL (`LATCHKEY_TEST_DATABASE=postgres`).
    Postgres,
    Redis,
    Nats,
    Nginx,
}

impl Peer {
    async fn here(self) -> bool {
        match self {
            Peer::Postgres => on_postgres(),
            Peer::Redis => tokio::net::TcpStream::connect(REDIS).await.is_ok(),
            Peer::Nats => tokio::net::TcpStream::connect(NATS).await.is_ok(),
            Peer::Nginx => std::path::Path::new(NGINX).exists(),
        }
    }
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Peer::Postgres => write!(f, "the PostgreSQL pass"),
            Peer::Redis => write!(f, "Redis at {REDIS}"),
            Peer::Nats => write!(f, "NATS at {NATS}"),
            Peer::Nginx => write!(f, "nginx at {NGINX}"),
        }
    }
}

/// Whether every one of `peers` is here, so that `test` can run. Outside the PostgreSQL pass a
/// test that needs it is skipped (false) without asserting. Any other missing peer skips the
/// test, with a message; when `CI` is set it fails the test instead.
pub(crate) async fn available(test: &str, peers: &[Peer]) -> bool {
    if peers.contains(&Peer::Postgres) && !on_postgres() {
        return false; // runs in the PostgreSQL pass of scripts/test
    }
    let mut missing = Vec::new();
    for &peer in peers {
        if !peer.here().await {
            missing.push(peer.to_string());
        }
    }
    let missing = missing.join(", ");
    assert!(
        missing.is_empty() || std::env::var_os("CI").is_none(),
        "CI must run {test}: not reachable: {missing}"
    );
    if !missing.is_empty() {
        eprintln!("skipping {test}: not reachable: {missing}");
    }
    missing.is_empty()
}

/// Checks every `every` until `check` holds; fails the test if it has not within `within`.
async fn poll(what: &str, within: Duration, every: Duration, mut check: impl AsyncFnMut() -> bool) {
    let started = Instant::now();
    while !check().await {
        assert!(
            started.elapsed() < within,
            "{what} did not happen within {within:?}"
        );
        tokio::time::sleep(every).await;
    }
}

/// Waits until `check` holds (checking every 20 ms); fails the test if it has not within `within`.
pub(crate) async fn eventually(what: &str, within: Duration, check: impl AsyncFnMut() -> bool) {
    poll(what, within, Duration::from_millis(20), check).await;
}

/// Waits (at most 30 s) until a GET of `url` answers 200.
pub(crate) async fn wait_until_ok(client: &reqwest::Client, url: &str) {
    poll(
        &format!("{url} answering 200"),
        Duration::from_secs(30),
        Duration::from_millis(50),
        async || {
            client
                .get(url)
                .send()
                .await
                .is_ok_and(|r| r.status() == StatusCode::OK)
        },
    )
    .await;
}

/// Waits (at most 30 s) until the service at `base` says it is ready (`/readyz` answers 200).
pub(crate) async fn until_ready(client: &reqwest::Client, base: &str) {
    wait_until_ok(client, &format!("{base}/readyz")).await;
}

/// The program `name` on `PATH`, for `test`; `None` (the test is skipped, with a message) when it
/// is not installed, except in CI, where that fails the test: `.ci/run` installs it.
pub(crate) fn tool(name: &str, test: &str) -> Option<std::path::PathBuf> {
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    });
    assert!(
        found.is_some() || std::env::var_os("CI").is_none(),
        "CI must run {test}: {name} is not installed"
    );
    if found.is_none() {
        eprintln!("skipping {test}: {name} is not installed");
    }
    found
}
