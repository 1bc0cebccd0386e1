//! OAuth clients: registered by admins through `/oauth/clients` and `latchkey clients`, with
//! exact redirect URIs and a secret shown once.

use crate::support::{TestApp, assert_problem, latchkey_command as latchkey, spawn_app};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn register(app: &TestApp, admin: &str, body: Value) -> reqwest::Response {
    app.send(Method::POST, "/oauth/clients", admin, &body).await
}

#[tokio::test]
async fn an_admin_registers_a_confidential_client_whose_secret_is_shown_once() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let created = register(
        &app,
        &admin,
        json!({
            "name": "Dashboard",
            "redirect_uris": ["https://dash.example.com/callback", "http://127.0.0.1:8400/cb"],
            "scopes": ["profile", "email", "orders:read"],
            "first_party": true,
        }),
    )
    .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let location = created.headers()["location"].to_str().unwrap().to_owned();
    let client: Value = created.json().await.unwrap();
    let id = client["client_id"].as_str().unwrap().to_owned();
    assert_eq!(location, format!("/oauth/clients/{id}"));
    assert_eq!(client["confidential"], true);
    assert_eq!(client["first_party"], true);
    assert_eq!(
        client["scopes"],
        json!(["openid", "profile", "email", "orders:read"])
    );
    let secret = client["client_secret"].as_str().unwrap().to_owned();
    assert!(secret.len() >= 32);

    // Never again: not in the client, the list or the event.
    let shown: Value = app.get(&location, Some(&admin)).await.json().await.unwrap();
    assert!(shown.get("client_secret").is_none(), "{shown}");
    assert_eq!(shown["redirect_uris"], client["redirect_uris"]);
    let list: Value = app
        .get("/oauth/clients", Some(&admin))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["clients"][0]["client_id"], id.as_str());
    assert!(!list.to_string().contains(&secret));
    let events = app.events_of_type("OAUTH_CLIENT_CREATED").await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["data"]["client_id"], id.as_str());
    assert!(!events[0].to_string().contains(&secret));

    let public = register(
        &app,
        &admin,
        json!({"name": "Mobile", "confidential": false, "redirect_uris": ["com.example.app:/oauth"]}),
    )
    .await;
    assert_eq!(public.status(), StatusCode::CREATED);
    let public: Value = public.json().await.unwrap();
    assert_eq!(public["client_secret"], Value::Null);
    assert_eq!(public["scopes"], json!(["openid"]));
}

#[tokio::test]
async fn redirect_uris_must_be_exact_and_safe() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    for uris in [
        json!([]),
        json!(["https://*.example.com/cb"]),
        json!(["https://app.example.com/cb#x"]),
        json!(["http://app.example.com/cb"]),
        json!(["javascript:alert(1)"]),
        json!(["/relative"]),
    ] {
        let refused = register(&app, &admin, json!({"name": "App", "redirect_uris": uris})).await;
        let problem = assert_problem(refused, StatusCode::BAD_REQUEST, "validation_failed").await;
        assert_eq!(problem["errors"][0]["field"], "redirect_uris", "{uris}");
    }
    let refused = register(
        &app,
        &admin,
        json!({"name": "App", "redirect_uris": ["https://a.example/cb"], "scopes": ["a b"], "extra": 1}),
    )
    .await;
    assert_problem(refused, StatusCode::BAD_REQUEST, "validation_failed").await;
    assert!(app.events_of_type("OAUTH_CLIENT_CREATED").await.is_empty());
}

#[tokio::test]
async fn only_admins_manage_clients_which_change_and_go() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let (user, _) = app.logged_in_user("ada@example.com").await;
    let body = json!({"name": "App", "redirect_uris": ["https://a.example/cb"]});
    assert_problem(
        register(&app, &user, body.clone()).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    assert_problem(
        app.get("/oauth/clients", Some(&user)).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    let client: Value = register(&app, &admin, body).await.json().await.unwrap();
    let path = format!("/oauth/clients/{}", client["client_id"].as_str().unwrap());

    let changed = app
        .send(
            Method::PATCH,
            &path,
            &admin,
            &json!({"name": "Renamed", "post_logout_redirect_uris": ["https://a.example/bye"]}),
        )
        .await;
    assert_eq!(changed.status(), StatusCode::OK);
    let changed: Value = changed.json().await.unwrap();
    assert_eq!(changed["name"], "Renamed");
    assert_eq!(changed["redirect_uris"], json!(["https://a.example/cb"]));
    assert_eq!(
        changed["post_logout_redirect_uris"],
        json!(["https://a.example/bye"])
    );
    assert_problem(
        app.send(
            Method::PATCH,
            &path,
            &admin,
            &json!({"confidential": false}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "validation_failed",
    )
    .await;

    assert_eq!(
        app.send(Method::DELETE, &path, &admin, &json!({}))
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    for method in [Method::GET, Method::PATCH, Method::DELETE] {
        assert_problem(
            app.send(method, &path, &admin, &json!({"name": "x"})).await,
            StatusCode::NOT_FOUND,
            "not_found",
        )
        .await;
    }
}

#[tokio::test]
async fn latchkey_clients_adds_lists_and_removes_while_a_server_runs() {
    let app = spawn_app().await;
    let run = |args: &[&str]| {
        latchkey()
            .args(args)
            .env("LATCHKEY_DATABASE_URL", app.database_url())
            .env(
                "LATCHKEY_SECRET_KEY_FILE",
                app.dir.path().join("latchkey.key"),
            )
            .output()
            .unwrap()
    };
    let added = run(&[
        "clients",
        "add",
        "--name",
        "Partner",
        "--redirect-uri",
        "https://partner.example/cb",
        "--scope",
        "email",
    ]);
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    let out = String::from_utf8_lossy(&added.stdout).into_owned();
    let id = out
        .lines()
        .find_map(|line| line.strip_prefix("client_id "))
        .unwrap()
        .to_owned();
    assert!(out.contains("client_secret "), "{out}");
    let admin = app.admin_token().await;
    let shown: Value = app
        .get(&format!("/oauth/clients/{id}"), Some(&admin))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(shown["name"], "Partner");
    assert_eq!(shown["scopes"], json!(["openid", "email"]));
    let events = app.events_of_type("OAUTH_CLIENT_CREATED").await;
    assert_eq!(events[0]["data"]["by"], Value::Null);

    let refused = run(&[
        "clients",
        "add",
        "--name",
        "Bad",
        "--redirect-uri",
        "http://evil.example/cb",
    ]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("redirect_uris"));

    let listed = run(&["clients", "list"]);
    assert!(String::from_utf8_lossy(&listed.stdout).contains(&id));
    assert!(run(&["clients", "remove", &id]).status.success());
    assert!(!run(&["clients", "remove", &id]).status.success());
    assert!(String::from_utf8_lossy(&run(&["clients", "list"]).stdout).is_empty());
}
