//! The database going away and coming back: 503 `unavailable` meanwhile, recovery without a
//! restart. PostgreSQL only (a SQLite file does not go away); a TCP proxy plays the network.

use crate::helpers::{PASSWORD, Proxy, on_postgres, spawn_app_with};
use reqwest::StatusCode;
use std::time::{Duration, Instant};

#[tokio::test]
async fn while_the_database_is_away_requests_answer_503_and_the_service_recovers_on_its_own() {
    if !on_postgres() {
        return; // runs in the PostgreSQL pass of scripts/test
    }
    let direct = crate::helpers::spawn_app().await;
    let database_url = direct.database_url();
    let (scheme_and_user, rest) = database_url.split_once('@').unwrap();
    let (host_port, database) = rest.split_once('/').unwrap();
    let proxy = Proxy::start(host_port.to_owned()).await;
    let proxied = format!("{scheme_and_user}@127.0.0.1:{}/{database}", proxy.port);
    // A second instance on the same database: it needs the same secret key.
    let key_file = direct.dir.path().join("latchkey.key").display().to_string();
    let app = spawn_app_with(&["--database-url", &proxied, "--secret-key-file", &key_file]).await;
    app.create_verified_user("ada@example.com", PASSWORD).await;
    assert_eq!(
        app.login("ada@example.com", PASSWORD).await.status(),
        StatusCode::OK
    );

    proxy.cut();

    let ready = app.get("/readyz", None).await;
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(ready.headers().get("retry-after").is_some());
    let login = app.login("ada@example.com", PASSWORD).await;
    assert_eq!(login.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        login.json::<serde_json::Value>().await.unwrap()["code"],
        "unavailable"
    );
    assert_eq!(
        app.get("/healthz", None).await.status(),
        StatusCode::OK,
        "the process still serves"
    );

    proxy.restore();

    let started = Instant::now();
    while app.get("/readyz", None).await.status() != StatusCode::OK {
        assert!(started.elapsed() < Duration::from_secs(15), "no recovery");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        app.login("ada@example.com", PASSWORD).await.status(),
        StatusCode::OK
    );
}
