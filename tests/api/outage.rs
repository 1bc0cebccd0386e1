//! The database going away (cut off, or dropped) and coming back: 503 `unavailable` meanwhile,
//! recovery without a restart. PostgreSQL only (a SQLite file does not go away); a TCP proxy
//! plays the network.

use crate::support::{PASSWORD, Peer, Proxy, available, eventually, spawn_app, spawn_app_with};
use reqwest::StatusCode;
use sqlx::Connection;
use std::time::Duration;

#[tokio::test]
async fn while_the_database_is_away_requests_answer_503_and_the_service_recovers_on_its_own() {
    if !available("the outage tests", &[Peer::Postgres]).await {
        return;
    }
    let direct = spawn_app().await;
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
    let login: serde_json::Value = login.json().await.unwrap();
    assert_eq!(login["code"], "unavailable");
    assert!(
        login["detail"].as_str().unwrap().contains("database"),
        "{login}"
    );
    assert_eq!(
        app.get("/healthz", None).await.status(),
        StatusCode::OK,
        "the process still serves"
    );

    proxy.restore();

    eventually("recovery", Duration::from_secs(15), async || {
        app.get("/readyz", None).await.status() == StatusCode::OK
    })
    .await;
    assert_eq!(
        app.login("ada@example.com", PASSWORD).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_dropped_database_answers_503_unavailable_never_500() {
    if !available("the outage tests", &[Peer::Postgres]).await {
        return;
    }
    let app = spawn_app().await;
    let (token, _) = app.logged_in_user("ada@example.com").await;
    let database_url = app.database_url();
    let (server, name) = database_url.rsplit_once('/').unwrap();
    let mut admin = sqlx::postgres::PgConnection::connect(&format!("{server}/postgres"))
        .await
        .unwrap();

    sqlx::query(sqlx::AssertSqlSafe(format!(
        "drop database {name} with (force)"
    )))
    .execute(&mut admin)
    .await
    .unwrap();

    // The first request after the drop may meet a connection killed with it; every one after
    // that meets a database that is not there.
    for attempt in 0..3 {
        let login = app.login("ada@example.com", PASSWORD).await;
        assert_eq!(
            login.status(),
            StatusCode::SERVICE_UNAVAILABLE,
            "login {attempt}"
        );
        assert!(login.headers().get("retry-after").is_some());
        assert_eq!(
            login.json::<serde_json::Value>().await.unwrap()["code"],
            "unavailable"
        );
        let me = app.get("/users/me", Some(&token)).await;
        assert_eq!(me.status(), StatusCode::SERVICE_UNAVAILABLE, "me {attempt}");
        let ready = app.get("/readyz", None).await;
        assert_eq!(
            ready.status(),
            StatusCode::SERVICE_UNAVAILABLE,
            "readyz {attempt}"
        );
    }
}
