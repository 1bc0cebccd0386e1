//! Administration: the admin API, its authorisation, and what disabling or a role change does.

use crate::support::{PASSWORD, TestApp, assert_problem, error_fields, spawn_app};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn call(
    app: &TestApp,
    method: Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> reqwest::Response {
    let mut request = app
        .client
        .request(method, format!("{}{path}", app.url))
        .bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.unwrap()
}

async fn list(app: &TestApp, token: &str, query: &str) -> Value {
    let response = call(app, Method::GET, &format!("/users{query}"), token, None).await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

fn emails(page: &Value) -> Vec<String> {
    page["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["email"].as_str().unwrap().to_owned())
        .collect()
}

async fn user_id(app: &TestApp, email: &str) -> String {
    app.create_verified_user(email, PASSWORD).await.to_string()
}

#[tokio::test]
async fn non_admins_get_403_on_every_admin_endpoint_and_anonymous_callers_401() {
    let app = spawn_app().await;
    let (token, login) = app.logged_in_user("ada@example.com").await;
    let own = format!("/users/{}", login["user"]["id"].as_str().unwrap());
    let cases = [
        (Method::GET, "/users".to_owned(), None),
        (
            Method::POST,
            "/users".to_owned(),
            Some(json!({"email": "x@example.com"})),
        ),
        (Method::GET, own.clone(), None),
        (Method::PATCH, own.clone(), Some(json!({"role": "admin"}))),
        (Method::DELETE, own.clone(), None),
        (Method::GET, "/users/not-a-uuid".to_owned(), None),
        (Method::GET, "/users?limit=0".to_owned(), None),
        (Method::POST, "/users".to_owned(), Some(json!({}))),
    ];
    for (method, path, body) in cases {
        assert_problem(
            call(&app, method.clone(), &path, &token, body.clone()).await,
            StatusCode::FORBIDDEN,
            "forbidden",
        )
        .await;
        let mut anonymous = app.client.request(method, format!("{}{path}", app.url));
        if let Some(body) = body {
            anonymous = anonymous.json(&body);
        }
        assert_problem(
            anonymous.send().await.unwrap(),
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        )
        .await;
    }
    let me: Value = app
        .get("/users/me", Some(&token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["role"], "user", "nothing changed");
}

/// The admin check comes before the body is read: a non-admin's broken, oversized or
/// mistyped body is answered 403 like any other, so no parse error tells them anything.
#[tokio::test]
async fn a_non_admins_body_is_not_read_before_the_403() {
    let app = spawn_app().await;
    let (token, login) = app.logged_in_user("ada@example.com").await;
    let own = format!(
        "{}/users/{}",
        app.url,
        login["user"]["id"].as_str().unwrap()
    );
    let bodies: [(&str, Vec<u8>); 3] = [
        ("application/json", b"{not json".to_vec()),
        ("text/plain", b"role=admin".to_vec()),
        ("application/json", vec![b' '; 128 * 1024]),
    ];
    for (content_type, body) in bodies {
        for (method, url) in [
            (Method::PATCH, own.clone()),
            (Method::POST, format!("{}/users", app.url)),
        ] {
            let response = app
                .client
                .request(method, &url)
                .bearer_auth(&token)
                .header("content-type", content_type)
                .body(body.clone())
                .send()
                .await
                .unwrap();
            assert_problem(response, StatusCode::FORBIDDEN, "forbidden").await;
        }
    }
}

#[tokio::test]
async fn admins_create_get_change_and_delete_users() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;

    let created = call(&app, Method::POST, "/users", &admin,
        Some(json!({"email": "Grace@Example.com", "password": PASSWORD, "name": "Grace", "role": "admin", "email_verified": true}))).await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let location = created.headers()["location"].to_str().unwrap().to_owned();
    let user: Value = created.json().await.unwrap();
    assert_eq!(location, format!("/users/{}", user["id"].as_str().unwrap()));
    assert_eq!(
        (
            user["email"].as_str(),
            user["role"].as_str(),
            user["email_verified"].as_bool()
        ),
        (Some("grace@example.com"), Some("admin"), Some(true))
    );
    let fetched: Value = call(&app, Method::GET, &location, &admin, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(fetched, user);
    assert_eq!(
        app.login("grace@example.com", PASSWORD).await.status(),
        StatusCode::OK
    );
    let changed: Value = call(
        &app,
        Method::PATCH,
        &location,
        &admin,
        Some(json!({"name": null, "phone": "+447700900123", "metadata": {"team": "ops"}})),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(
        (changed["name"].is_null(), changed["phone"].as_str()),
        (true, Some("+447700900123"))
    );
    assert_eq!(changed["metadata"], json!({"team": "ops"}));

    assert_eq!(
        call(&app, Method::DELETE, &location, &admin, None)
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    assert_problem(
        call(&app, Method::GET, &location, &admin, None).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    assert_problem(
        call(&app, Method::DELETE, &location, &admin, None).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    assert_eq!(
        app.login("grace@example.com", PASSWORD).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let deleted = app.events_of_type("USER_DELETED").await;
    assert!(
        deleted[0]["data"]["by"].is_string(),
        "the acting admin is named"
    );
}

#[tokio::test]
async fn admin_requests_are_validated() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let id = user_id(&app, "ada@example.com").await;

    let taken = call(
        &app,
        Method::POST,
        "/users",
        &admin,
        Some(json!({"email": "ADA@example.com"})),
    )
    .await;
    assert_problem(taken, StatusCode::CONFLICT, "email_taken").await;
    let bad = call(
        &app,
        Method::POST,
        "/users",
        &admin,
        Some(json!({"email": "nope", "role": "superuser", "password": "short"})),
    )
    .await;
    let problem = assert_problem(bad, StatusCode::BAD_REQUEST, "validation_failed").await;
    let mut fields = error_fields(&problem);
    fields.sort();
    assert_eq!(fields, ["email", "password", "role"]);
    let patch = call(
        &app,
        Method::PATCH,
        &format!("/users/{id}"),
        &admin,
        Some(json!({"role": "root", "password_hash": "x"})),
    )
    .await;
    let problem = assert_problem(patch, StatusCode::BAD_REQUEST, "validation_failed").await;
    assert_eq!(error_fields(&problem).len(), 2);
    assert_problem(
        call(&app, Method::GET, "/users/12345", &admin, None).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    assert_problem(
        call(
            &app,
            Method::PATCH,
            &format!("/users/{}", uuid::Uuid::now_v7()),
            &admin,
            Some(json!({"name": "x"})),
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
}

#[tokio::test]
async fn disabling_revokes_every_session_and_login_then_says_account_disabled() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let (token, login) = app.logged_in_user("ada@example.com").await;
    let path = format!("/users/{}", login["user"]["id"].as_str().unwrap());

    let disabled: Value = call(
        &app,
        Method::PATCH,
        &path,
        &admin,
        Some(json!({"disabled": true})),
    )
    .await
    .json()
    .await
    .unwrap();

    assert_eq!(disabled["disabled"], true);
    assert_eq!(
        app.get("/auth/verify", Some(&token)).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.post(
            "/auth/refresh",
            &json!({"refresh_token": login["refresh_token"]})
        )
        .await
        .status(),
        StatusCode::UNAUTHORIZED
    );
    assert_problem(
        app.login("ada@example.com", "a wrong password!!").await,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    )
    .await;
    assert_problem(
        app.login("ada@example.com", PASSWORD).await,
        StatusCode::FORBIDDEN,
        "account_disabled",
    )
    .await;
    assert_eq!(app.events_of_type("USER_DISABLED").await.len(), 1);

    call(
        &app,
        Method::PATCH,
        &path,
        &admin,
        Some(json!({"disabled": false})),
    )
    .await;
    assert_eq!(
        app.login("ada@example.com", PASSWORD).await.status(),
        StatusCode::OK
    );
    assert_eq!(app.events_of_type("USER_ENABLED").await.len(), 1);
}

#[tokio::test]
async fn a_role_change_revokes_every_session_and_the_new_role_is_in_new_tokens() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let (token, login) = app.logged_in_user("ada@example.com").await;
    let path = format!("/users/{}", login["user"]["id"].as_str().unwrap());

    call(
        &app,
        Method::PATCH,
        &path,
        &admin,
        Some(json!({"role": "admin"})),
    )
    .await;

    assert_eq!(
        app.get("/auth/verify", Some(&token)).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let fresh: Value = app
        .login("ada@example.com", PASSWORD)
        .await
        .json()
        .await
        .unwrap();
    let verify = app
        .get(
            "/auth/verify",
            Some(fresh["access_token"].as_str().unwrap()),
        )
        .await;
    assert_eq!(verify.headers()["x-user-role"], "admin");
    let changed = app.events_of_type("ROLE_CHANGED").await;
    assert_eq!(
        (
            changed[0]["data"]["from"].as_str(),
            changed[0]["data"]["to"].as_str()
        ),
        (Some("user"), Some("admin"))
    );
    assert!(changed[0]["data"]["by"].is_string());
}

#[tokio::test]
async fn a_demoted_admin_loses_admin_rights_at_once() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let second = app.admin_token().await;
    let second_id = jsonwebtoken::dangerous::insecure_decode::<Value>(&second)
        .unwrap()
        .claims["sub"]
        .as_str()
        .unwrap()
        .to_owned();

    call(
        &app,
        Method::PATCH,
        &format!("/users/{second_id}"),
        &admin,
        Some(json!({"role": "user"})),
    )
    .await;

    assert_eq!(
        call(&app, Method::GET, "/users", &second, None)
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn the_list_pages_newest_first_and_a_walk_during_inserts_neither_skips_nor_repeats() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    for i in 0..7 {
        user_id(&app, &format!("user{i}@example.com")).await;
        app.state.clock.advance(time::Duration::seconds(1));
    }

    let first = list(&app, &admin, "?limit=3&email=user").await;
    assert_eq!(
        emails(&first),
        [
            "user6@example.com",
            "user5@example.com",
            "user4@example.com"
        ]
    );
    // Users arriving mid-walk are newer than the cursor: they do not disturb the walk.
    user_id(&app, "user7@example.com").await;
    let mut seen = emails(&first);
    let mut cursor = first["next_cursor"].as_str().unwrap().to_owned();
    loop {
        let page = list(
            &app,
            &admin,
            &format!("?limit=3&email=user&cursor={cursor}"),
        )
        .await;
        seen.extend(emails(&page));
        match page["next_cursor"].as_str() {
            Some(next) => cursor = next.to_owned(),
            None => break,
        }
    }
    let expected: Vec<String> = (0..7)
        .rev()
        .map(|i| format!("user{i}@example.com"))
        .collect();
    assert_eq!(seen, expected);
}

#[tokio::test]
async fn the_list_filters_by_email_substring_literally_and_by_role_and_flags() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    user_id(&app, "a_b@example.com").await;
    user_id(&app, "axb@example.com").await;
    user_id(&app, "per%cent@example.com").await;
    app.register("pending@example.com", PASSWORD).await;

    assert_eq!(
        emails(&list(&app, &admin, "?email=A_B").await),
        ["a_b@example.com"]
    );
    assert_eq!(
        emails(&list(&app, &admin, "?email=%25").await),
        ["per%cent@example.com"]
    );
    assert_eq!(
        emails(&list(&app, &admin, "?verified=false").await),
        ["pending@example.com"]
    );
    assert_eq!(
        list(&app, &admin, "?role=admin").await["users"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        list(&app, &admin, "?disabled=true").await["users"],
        json!([])
    );
    assert!(list(&app, &admin, "").await["next_cursor"].is_null());
    assert_eq!(
        list(&app, &admin, "?role=root").await["users"],
        json!([]),
        "an unknown role matches no one"
    );
    for bad in [
        "?limit=0",
        "?limit=201",
        "?limit=ten",
        "?verified=yes",
        "?cursor=garbage",
        "?sort=email",
        "?limit=1&limit=2",
    ] {
        let response = call(&app, Method::GET, &format!("/users{bad}"), &admin, None).await;
        assert_problem(response, StatusCode::BAD_REQUEST, "validation_failed").await;
    }
}

#[tokio::test]
async fn a_user_cannot_read_or_change_another_user_through_any_endpoint() {
    let app = spawn_app().await;
    let (eve, _) = app.logged_in_user("eve@example.com").await;
    let (_, ada) = app.logged_in_user("ada@example.com").await;
    let ada_id = ada["user"]["id"].as_str().unwrap();

    for (method, path) in [
        (Method::GET, format!("/users/{ada_id}")),
        (Method::PATCH, format!("/users/{ada_id}")),
        (Method::DELETE, format!("/users/{ada_id}")),
    ] {
        let response = call(&app, method, &path, &eve, Some(json!({"name": "pwned"}))).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
    }
    let me: Value = app.get("/users/me", Some(&eve)).await.json().await.unwrap();
    assert_eq!(
        me["email"], "eve@example.com",
        "/users/me is always the caller"
    );
    let ada_now: Value = app
        .get("/users/me", Some(ada["access_token"].as_str().unwrap()))
        .await
        .json()
        .await
        .unwrap();
    assert!(ada_now["name"].is_null());
}
