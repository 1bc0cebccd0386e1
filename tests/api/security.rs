//! The attack suite: hostile clients over HTTP, and no attack may get a 5xx. Attacks that belong
//! to one area are tested beside it: JWT forgeries in `tokens`, refresh reuse and races in
//! `sessions`, JSON edge cases and long passwords in `bad_input`, mass assignment in `users` and
//! `auth`, IDOR in `admin` and `sessions`, host-header poisoning in `mail`, spoofed forwarding
//! headers in `sessions` and `ratelimit`, brute force in `auth` and `mail`, slow and greedy
//! connections in `connections`. The README lists them.

use crate::support::{PASSWORD, TestApp, spawn_app_with, spawn_app_with_mail};
use latchkey::domain::Email;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// Strings aimed at SQL, LIKE patterns, templates, headers and parsers.
fn hostile_strings() -> Vec<String> {
    let mut strings: Vec<String> = [
        "' OR '1'='1",
        "ada@example.com' --",
        "o'brien+%_@example.com",
        "'; DROP TABLE users; --",
        "\" OR \"\"=\"",
        "1; SELECT pg_sleep(5)",
        "' UNION SELECT password_hash, email FROM users --",
        "%",
        "_",
        "%%@%%",
        "\\",
        "\\%",
        "\0",
        "ada\0@example.com",
        "\u{202e}moc.elpmaxe@ada",
        "ａｄａ＠ｅｘａｍｐｌｅ．ｃｏｍ",
        "{{7*7}}",
        "${jndi:ldap://127.0.0.1/a}",
        "<script>alert(1)</script>",
        "../../../../etc/passwd",
        "ada@example.com\r\nBcc: eve@example.com",
        "null",
        "-1",
        "99999999999999999999999999",
        "NaN",
        "🦀🦀🦀",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    strings.push("x".repeat(10_000));
    strings
}

async fn assert_clean_answer(response: reqwest::Response, attack: &str) -> (StatusCode, String) {
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap_or_default().to_owned());
    let body = response.text().await.unwrap_or_default();
    assert!(
        !status.is_server_error(),
        "{attack} answered {status}: {body}"
    );
    if status.is_client_error() {
        assert_eq!(
            content_type.as_deref(),
            Some("application/problem+json"),
            "{attack}"
        );
    }
    (status, body)
}

#[tokio::test]
async fn hostile_strings_in_every_field_query_path_and_header_never_get_a_server_error() {
    // One address sends everything, and the victim is tried with every string: without these
    // budgets off, later strings would only ever meet a 429 and never reach the store.
    let app = spawn_app_with(&[
        "--rate-limit-login-account",
        "off",
        "--rate-limit-register-account",
        "off",
        "--rate-limit-resend-account",
        "off",
        "--rate-limit-forgot-account",
        "off",
        "--rate-limit-reset-account",
        "off",
    ])
    .await;
    let admin = app.admin_token().await;
    let (user, _) = app.logged_in_user("victim@example.com").await;
    let base = reqwest::Url::parse(&app.url).unwrap();
    let before = victim_credentials(&app).await;
    let mut stored = 0;
    for (n, hostile) in hostile_strings().iter().enumerate() {
        let h = hostile.as_str();
        let probe = format!("probe{n}@example.com");
        // One hostile field per request, the others valid, so each reaches as far as it can.
        let bodies = [
            ("/auth/register", json!({"email": h, "password": PASSWORD})),
            ("/auth/register", json!({"email": probe, "password": h})),
            (
                "/auth/register",
                json!({"email": probe, "password": PASSWORD, "name": h, "metadata": {h: h}}),
            ),
            ("/auth/login", json!({"email": h, "password": PASSWORD})),
            (
                "/auth/login",
                json!({"email": "victim@example.com", "password": h}),
            ),
            ("/auth/refresh", json!({"refresh_token": h})),
            ("/auth/logout", json!({"refresh_token": h})),
            ("/auth/confirm-email", json!({"token": h})),
            ("/auth/resend-confirmation", json!({"email": h})),
            ("/auth/forgot-password", json!({"email": h})),
            (
                "/auth/reset-password",
                json!({"token": h, "new_password": PASSWORD}),
            ),
            (
                "/auth/reset-password",
                json!({"email": h, "code": h, "new_password": h}),
            ),
        ];
        for (path, body) in bodies {
            let (status, _) =
                assert_clean_answer(app.post(path, &body).await, &format!("POST {path} {h:?}"))
                    .await;
            assert_ne!(status, StatusCode::TOO_MANY_REQUESTS, "{path} {h:?}");
        }

        for patch in [json!({"name": h}), json!({"metadata": {h: h}})] {
            let (status, _) = assert_clean_answer(
                app.send(Method::PATCH, "/users/me", &user, &patch).await,
                &format!("PATCH /users/me {patch}"),
            )
            .await;
            if status == StatusCode::OK {
                let me: Value = app
                    .get("/users/me", Some(&user))
                    .await
                    .json()
                    .await
                    .unwrap();
                let field = if patch.get("name").is_some() {
                    "name"
                } else {
                    "metadata"
                };
                assert_eq!(me[field], patch[field], "stored literally");
                stored += 1;
            }
        }

        for field in ["email", "role", "cursor", "verified", "disabled", "limit"] {
            let mut url = base.join("users").unwrap();
            url.query_pairs_mut().append_pair(field, h);
            let response = app
                .client
                .get(url)
                .bearer_auth(&admin)
                .send()
                .await
                .unwrap();
            let (status, body) =
                assert_clean_answer(response, &format!("GET /users?{field}={h:?}")).await;
            if status == StatusCode::OK && field == "email" {
                let page: Value = serde_json::from_str(&body).unwrap();
                for listed in page["users"].as_array().unwrap() {
                    let email = listed["email"].as_str().unwrap();
                    let term = Email::normalise_fragment(h).unwrap();
                    assert!(email.contains(&term), "{h:?} matched {email}");
                }
            }
        }

        for (method, prefix, token) in [
            (Method::GET, "users", &admin),
            (Method::PATCH, "users", &admin),
            (Method::DELETE, "users", &admin),
            (Method::DELETE, "users/me/sessions", &user),
        ] {
            let mut url = base.clone();
            url.path_segments_mut()
                .unwrap()
                .pop_if_empty()
                .extend(prefix.split('/'))
                .push(h);
            let response = app
                .client
                .request(method.clone(), url)
                .bearer_auth(token)
                .json(&json!({}))
                .send()
                .await
                .unwrap();
            assert_clean_answer(response, &format!("{method} /{prefix}/{h:?}")).await;
        }

        if reqwest::header::HeaderValue::from_str(h).is_ok() {
            for path in ["/auth/verify", "/users/me"] {
                let response = app
                    .client
                    .get(format!("{}{path}", app.url))
                    .header("authorization", format!("Bearer {h}"))
                    .send()
                    .await
                    .unwrap();
                let (status, _) =
                    assert_clean_answer(response, &format!("{path} Bearer {h:?}")).await;
                assert_eq!(status, StatusCode::UNAUTHORIZED);
            }
            let response = app
                .client
                .post(format!("{}/auth/login", app.url))
                .header("x-forwarded-for", h)
                .header("host", h)
                .json(&json!({"email": "victim@example.com", "password": "wrong password here"}))
                .send()
                .await
                .unwrap();
            assert_clean_answer(response, &format!("forwarded-for/host {h:?}")).await;
        }
    }

    assert!(
        stored >= 30,
        "only {stored} hostile values were stored and read back"
    );
    // Nothing above reached the data: the victim's password and email are as they were, and
    // no account appeared besides the admin, the victim and a literal probe.
    let after = victim_credentials(&app).await;
    assert_eq!(after.password_hash, before.password_hash);
    assert_eq!(after.user.email, before.user.email);
    let listed: Value = app
        .get("/users?limit=200", Some(&admin))
        .await
        .json()
        .await
        .unwrap();
    let emails: Vec<&str> = listed["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["email"].as_str().unwrap())
        .collect();
    // Hostile strings that are valid addresses (fullwidth, quotes, wildcards) registered as
    // themselves, normalised; nothing else appeared.
    let valid_hostile: Vec<String> = hostile_strings()
        .iter()
        .filter_map(|h| Email::parse(h).ok().map(|e| e.as_str().to_owned()))
        .collect();
    for email in &emails {
        assert!(
            email.starts_with("admin-")
                || email.starts_with("probe")
                || *email == "victim@example.com"
                || valid_hostile.iter().any(|v| v == email),
            "{email} appeared"
        );
    }
}

async fn victim_credentials(app: &TestApp) -> latchkey::store::Credentials {
    let email = Email::parse("victim@example.com").unwrap();
    app.state
        .store
        .credentials_by_email(&email)
        .await
        .unwrap()
        .expect("the victim exists")
}

#[tokio::test]
async fn unicode_and_case_variants_of_a_taken_email_are_the_same_account() {
    let app = spawn_app_with(&["--require-email-verification", "false"]).await;
    assert_eq!(
        app.register("zoë@example.com", PASSWORD).await.status(),
        StatusCode::CREATED
    );
    for variant in [
        "ZOË@EXAMPLE.COM",
        "zoe\u{308}@example.com",
        "ZOE\u{308}@Example.Com",
        "ｚｏë@ｅｘａｍｐｌｅ.ｃｏｍ",
        "  zoë@example.com  ",
    ] {
        let response = app.register(variant, PASSWORD).await;
        let problem: Value = response.json().await.unwrap();
        assert_eq!(problem["code"], "email_taken", "{variant:?}");
        assert_eq!(
            app.login(variant, PASSWORD).await.status(),
            StatusCode::OK,
            "{variant:?} logs in to the one account"
        );
    }
}

/// Status, body and hashing operations of the same anonymous POST for two emails.
async fn observe_both(
    app: &TestApp,
    path: &str,
    emails: [&str; 2],
    body: impl Fn(&str) -> Value,
) -> [(StatusCode, Value, u64); 2] {
    let mut seen = Vec::new();
    for email in emails {
        let before = app.state.hasher.operations();
        let response = app.post(path, &body(email)).await;
        let status = response.status();
        let text = response.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        seen.push((status, body, app.state.hasher.operations() - before));
    }
    seen.try_into().unwrap()
}

fn shape(body: &Value) -> Vec<(String, &'static str)> {
    let kind = |v: &Value| match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    body.as_object()
        .map(|o| o.iter().map(|(k, v)| (k.clone(), kind(v))).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn a_taken_email_and_a_free_one_get_the_same_status_body_and_hashing_work() {
    let (app, _smtp) = spawn_app_with_mail(&["--conceal-existing-accounts", "true"]).await;
    app.create_verified_user("ada@example.com", PASSWORD).await;
    app.register("una@example.com", PASSWORD).await;

    let password = |email: &str| json!({"email": email, "password": "another good passphrase"});
    let emails = ["ada@example.com", "bob@example.com"];
    let [taken, free] = observe_both(&app, "/auth/register", emails, password).await;
    assert_eq!(
        (taken.0, shape(&taken.1), taken.2),
        (free.0, shape(&free.1), free.2)
    );
    assert_eq!(taken.1["email_verified"], free.1["email_verified"]);

    let emails = ["una@example.com", "nobody@example.com"];
    for path in ["/auth/forgot-password", "/auth/resend-confirmation"] {
        let [known, unknown] = observe_both(&app, path, emails, |e| json!({"email": e})).await;
        assert_eq!(known, unknown, "{path}");
        assert_eq!(known.0, StatusCode::ACCEPTED);
    }

    let emails = ["ada@example.com", "nobody@example.com"];
    let [wrong, unknown] = observe_both(&app, "/auth/login", emails, password).await;
    assert_eq!(wrong, unknown);
    assert_eq!((wrong.0, wrong.2), (StatusCode::UNAUTHORIZED, 1));
}

#[tokio::test]
async fn every_answer_forbids_content_sniffing() {
    let app = spawn_app_with(&["--request-timeout", "50ms", "--argon2-iterations", "20"]).await;
    let operations = app.operations_url.clone().expect("operations listener");
    let url = |path: &str| format!("{}{path}", app.url);
    let answers = [
        ("a JSON answer", app.client.get(url("/healthz"))),
        ("an HTML page", app.client.get(url("/reset-password"))),
        ("the docs page", app.client.get(url("/docs"))),
        ("a 404", app.client.get(url("/nowhere"))),
        ("a 405", app.client.put(url("/auth/login"))),
        ("a 401", app.client.get(url("/auth/verify"))),
        (
            "a 415",
            app.client.post(url("/auth/login")).body("email=ada"),
        ),
        (
            "a 503 from the request deadline",
            app.client
                .post(url("/auth/register"))
                .json(&json!({"email": "ada@example.com", "password": PASSWORD})),
        ),
        (
            "the metrics",
            app.client.get(format!("{operations}/metrics")),
        ),
        (
            "a 404 on the operations listener",
            app.client.get(format!("{operations}/nowhere")),
        ),
    ];
    let mut statuses = Vec::new();
    for (what, request) in answers {
        let response = request.send().await.unwrap();
        statuses.push(response.status());
        assert_eq!(
            response
                .headers()
                .get("x-content-type-options")
                .map(|v| v.to_str().unwrap()),
            Some("nosniff"),
            "{what} ({})",
            response.status()
        );
    }
    assert!(
        statuses.contains(&StatusCode::SERVICE_UNAVAILABLE),
        "the deadline case really answered 503: {statuses:?}"
    );
}
