//! Operations endpoints, request ids, the base path and the OpenAPI document.

use crate::support::{
    PASSWORD, Process, assert_problem, eventually, free_port, spawn_app, spawn_app_with, tool,
};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;

#[tokio::test]
async fn healthz_and_readyz_answer_200() {
    let app = spawn_app().await;

    assert_eq!(app.get("/healthz", None).await.status(), StatusCode::OK);
    let ready = app.get("/readyz", None).await;
    assert_eq!(ready.status(), StatusCode::OK);
    assert_eq!(ready.json::<Value>().await.unwrap()["status"], "ready");
}

#[tokio::test]
async fn request_ids_are_echoed_when_well_formed_and_minted_otherwise() {
    let app = spawn_app().await;
    let with_id = |id: &str| {
        app.client
            .get(format!("{}/healthz", app.url))
            .header("x-request-id", id)
            .send()
    };

    let echoed = with_id("trace-123_abc.DEF").await.unwrap();
    assert_eq!(echoed.headers()["x-request-id"], "trace-123_abc.DEF");

    let mut minted = std::collections::HashSet::new();
    for bad in ["has space", "semi;colon", &"x".repeat(129)] {
        let answer = with_id(bad).await.unwrap();
        let id = answer.headers()["x-request-id"].to_str().unwrap();
        let parsed = uuid::Uuid::parse_str(id);
        assert!(
            parsed.is_ok_and(|u| u.get_version_num() == 4),
            "{bad:?} replaced by a UUID, got {id}"
        );
        minted.insert(id.to_owned());
    }
    assert_eq!(minted.len(), 3, "each minted id is new: {minted:?}");
    let error = app.get("/nowhere", None).await;
    assert!(
        error.headers().get("x-request-id").is_some(),
        "errors carry one too"
    );
}

/// The routes that spend a rate-limit budget say so (429) in the document, and no others do:
/// the answer and its documentation come from the one declaration.
#[tokio::test]
async fn exactly_the_rate_limited_operations_document_429() {
    let app = spawn_app().await;
    let spec: Value = app.get("/openapi.json", None).await.json().await.unwrap();
    let limited = [
        "/auth/register",
        "/auth/login",
        "/auth/refresh",
        "/auth/confirm-email",
        "/auth/resend-confirmation",
        "/auth/forgot-password",
        "/auth/reset-password",
        "/auth/email-login",
        "/auth/email-login/verify",
        "/auth/accept-invitation",
        "/auth/confirm-email-change",
        "/auth/revert-email-change",
        "/users/me/email",
        "/auth/mfa/verify",
        "/auth/mfa/webauthn/options",
        "/auth/passkey/options",
        "/auth/passkey/login",
        "/auth/reauthenticate",
    ];
    let mut documented = Vec::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            if operation["responses"].get("429").is_some() {
                documented.push(path.clone());
                assert_eq!(method, "post", "{method} {path}");
            }
        }
    }
    documented.sort();
    let mut expected: Vec<String> = limited.iter().map(|p| (*p).to_owned()).collect();
    expected.sort();
    assert_eq!(documented, expected);
}

#[tokio::test]
async fn the_openapi_document_covers_every_endpoint() {
    let app = spawn_app().await;

    let spec: Value = app.get("/openapi.json", None).await.json().await.unwrap();

    assert!(spec["openapi"].as_str().unwrap().starts_with("3.1"));
    let expected = [
        ("/auth/register", "post"),
        ("/auth/login", "post"),
        ("/auth/verify", "get"),
        ("/auth/refresh", "post"),
        ("/auth/logout", "post"),
        ("/auth/confirm-email", "post"),
        ("/auth/resend-confirmation", "post"),
        ("/auth/forgot-password", "post"),
        ("/auth/reset-password", "post"),
        ("/users/me", "get"),
        ("/users/me", "patch"),
        ("/users/me", "delete"),
        ("/users/me/password", "put"),
        ("/users/me/sessions", "get"),
        ("/users/me/sessions", "delete"),
        ("/users/me/sessions/{id}", "delete"),
        ("/auth/email-login", "post"),
        ("/auth/email-login/verify", "post"),
        ("/auth/accept-invitation", "post"),
        ("/users/invitations", "post"),
        ("/users", "get"),
        ("/users", "post"),
        ("/users/{id}", "get"),
        ("/users/{id}", "patch"),
        ("/users/{id}", "delete"),
        ("/.well-known/jwks.json", "get"),
        ("/.well-known/openid-configuration", "get"),
        ("/healthz", "get"),
        ("/readyz", "get"),
        ("/openapi.json", "get"),
    ];
    for (path, method) in expected {
        let operation = &spec["paths"][path][method];
        assert!(operation.is_object(), "{method} {path} missing");
        assert!(
            operation["description"].is_string() || operation["summary"].is_string(),
            "{method} {path} undocumented"
        );
    }
    let schemas = &spec["components"]["schemas"];
    for schema in [
        "RegisterRequest",
        "LoginRequest",
        "UserView",
        "TokenPairView",
        "Problem",
        "UpdateMeRequest",
        "ChangePasswordRequest",
    ] {
        assert!(schemas[schema].is_object(), "schema {schema} missing");
    }
    assert!(
        spec["paths"]["/auth/login"]["post"]["responses"]["401"].is_object(),
        "error responses are documented"
    );
}

#[tokio::test]
async fn the_base_path_prefixes_every_route() {
    let app = spawn_app_with(&["--base-path", "/api"]).await;
    assert!(app.url.ends_with("/api"));

    let registered = app.register("ada@example.com", PASSWORD).await;
    assert_eq!(registered.status(), StatusCode::CREATED);
    assert!(
        registered.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with("/api/users/")
    );
    assert_eq!(app.get("/healthz", None).await.status(), StatusCode::OK);
    let discovery: Value = app
        .get("/.well-known/openid-configuration", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        discovery["jwks_uri"],
        format!("{}/.well-known/jwks.json", app.url)
    );
    assert_eq!(discovery["issuer"], app.url);

    let spec: Value = app.get("/openapi.json", None).await.json().await.unwrap();
    assert!(
        spec["paths"]["/api/auth/register"]["post"].is_object(),
        "paths carry the base path"
    );
    let root = app.url.trim_end_matches("/api");
    let unprefixed = app
        .client
        .get(format!("{root}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(unprefixed.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        unprefixed.headers()["content-type"],
        "application/problem+json"
    );
}

#[tokio::test]
async fn metrics_are_prometheus_text_and_count_requests_and_hashes() {
    let app = spawn_app().await;
    app.register("ada@example.com", PASSWORD).await;
    app.get("/healthz", None).await;
    let operations = app.operations_url.as_deref().expect("operations listener");

    let response = app
        .client
        .get(format!("{operations}/metrics"))
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = response.text().await.unwrap();
    assert!(
        text.contains(
            "latchkey_http_request_duration_seconds_count{route=\"/auth/register\",method=\"POST\",status=\"201\"} "
        ),
        "{text}"
    );
    assert!(
        text.contains("# TYPE latchkey_http_request_duration_seconds histogram"),
        "{text}"
    );
    assert!(text.contains("latchkey_password_hashes_total"), "{text}");
    assert!(
        text.contains(&format!(
            "latchkey_build_info{{version=\"{}\",commit=\"",
            env!("CARGO_PKG_VERSION")
        )),
        "{text}"
    );
    assert!(text.contains("process_resident_memory_bytes"), "{text}");
}

/// The operations listener's `/metrics` text.
async fn metrics_text(app: &crate::support::TestApp) -> String {
    let operations = app.operations_url.as_deref().expect("operations listener");
    app.client
        .get(format!("{operations}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test]
async fn made_up_paths_and_methods_do_not_mint_metric_series() {
    let app = spawn_app().await;
    for n in 0..5 {
        app.get(&format!("/no/such/path/{n}"), None).await;
        app.client
            .request(
                reqwest::Method::from_bytes(format!("BREW{n}").as_bytes()).unwrap(),
                format!("{}/healthz", app.url),
            )
            .send()
            .await
            .unwrap();
    }
    let text = metrics_text(&app).await;
    assert!(!text.contains("/no/such/path"), "{text}");
    assert!(!text.contains("BREW"), "{text}");
    assert!(text.contains("route=\"unmatched\""), "{text}");
}

/// The exposition as Prometheus itself judges it: `promtool check metrics` finds nothing to
/// lint, and a real Prometheus scrapes the operations listener and answers queries on it.
#[tokio::test]
async fn a_real_prometheus_scrapes_the_operations_listener() {
    let test = "the Prometheus test";
    let (Some(promtool), Some(prometheus)) = (tool("promtool", test), tool("prometheus", test))
    else {
        return;
    };
    let app = spawn_app().await;
    app.register("ada@example.com", PASSWORD).await;
    let operations = app.operations_url.clone().expect("operations listener");
    let text = metrics_text(&app).await;
    let mut check = std::process::Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut check.stdin.take().unwrap(), text.as_bytes()).unwrap();
    let checked = check.wait_with_output().unwrap();
    let findings = format!(
        "{}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );
    assert!(
        checked.status.success() && findings.trim().is_empty(),
        "promtool: {findings}"
    );

    let dir = tempfile::tempdir().unwrap();
    let target = operations.trim_start_matches("http://");
    std::fs::write(
        dir.path().join("prometheus.yml"),
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: latchkey\n    static_configs:\n      - targets: ['{target}']\n"
        ),
    )
    .unwrap();
    let port = free_port().await;
    let _prometheus = Process(
        std::process::Command::new(prometheus)
            .arg(format!(
                "--config.file={}",
                dir.path().join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let query = async |promql: &str| -> Vec<serde_json::Value> {
        let answer = app
            .client
            .post(format!("http://127.0.0.1:{port}/api/v1/query"))
            .form(&[("query", promql)])
            .send()
            .await;
        match answer {
            Ok(answer) => answer
                .json::<serde_json::Value>()
                .await
                .ok()
                .and_then(|body| body["data"]["result"].as_array().cloned())
                .unwrap_or_default(),
            Err(_) => Vec::new(),
        }
    };
    eventually(
        "Prometheus scraping latchkey",
        Duration::from_secs(30),
        async || !query("up{job=\"latchkey\"} == 1").await.is_empty(),
    )
    .await;
    let build = query("latchkey_build_info").await;
    assert_eq!(
        build[0]["metric"]["version"],
        env!("CARGO_PKG_VERSION"),
        "{build:?}"
    );
    let registrations = query(
        "latchkey_http_request_duration_seconds_count{route=\"/auth/register\",status=\"201\"}",
    )
    .await;
    // The recorder is the process's, shared with the other tests: at least this one counted.
    let count: f64 = registrations[0]["value"][1]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(count >= 1.0, "{registrations:?}");
    let quantile = query(
        "histogram_quantile(0.99, sum by (le, route) (latchkey_http_request_duration_seconds_bucket{route=\"/auth/register\"}))",
    )
    .await;
    let p99: f64 = quantile[0]["value"][1].as_str().unwrap().parse().unwrap();
    assert!(p99 > 0.0 && p99 <= 30.0, "{quantile:?}");
}

#[tokio::test]
async fn metrics_are_served_on_the_operations_listener_never_on_the_public_one() {
    let app = spawn_app_with(&["--base-path", "/api"]).await;
    let operations = app.operations_url.clone().expect("operations listener");
    let root = app.url.trim_end_matches("/api").to_owned();

    for public in [format!("{}/metrics", app.url), format!("{root}/metrics")] {
        let response = app.client.get(&public).send().await.unwrap();
        assert_problem(response, StatusCode::NOT_FOUND, "not_found").await;
    }
    for (path, status) in [
        ("/metrics", StatusCode::OK),
        ("/healthz", StatusCode::OK),
        ("/readyz", StatusCode::OK),
        ("/auth/login", StatusCode::NOT_FOUND),
        ("/api/metrics", StatusCode::NOT_FOUND),
    ] {
        let response = app
            .client
            .get(format!("{operations}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            status,
            "{path} on the operations listener"
        );
    }

    app.stop().await;
    assert!(
        reqwest::get(format!("{operations}/healthz")).await.is_err(),
        "the operations listener stops with the service"
    );
}

#[tokio::test]
async fn the_docs_page_shows_every_operation_without_fetching_anything() {
    let app = spawn_app_with(&["--base-path", "/api"]).await;

    let response = app.get("/docs", None).await;

    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-security-policy"],
        "default-src 'none'"
    );
    let html = response.text().await.unwrap();
    for operation in [
        "POST /api/auth/login",
        "GET /api/users/me/sessions",
        "POST /api/auth/reset-password",
        "GET /api/users",
    ] {
        assert!(html.contains(operation), "{operation} missing");
    }
    assert!(!html.contains("<script") && !html.contains("http://") && !html.contains("https://"));
    // The main flows, and each operation's request fields.
    assert!(html.contains("Main flows") && html.contains("Behind an API gateway"));
    assert!(
        html.contains("<code>refresh_token</code> (string, required)"),
        "request fields are listed"
    );
    let root = app.get("", None).await;
    assert_eq!(root.url().path(), "/api/docs", "/ points to the reference");
    assert_eq!(root.status(), StatusCode::OK);
    let spec: Value = app.get("/openapi.json", None).await.json().await.unwrap();
    for excluded in ["/docs", "/metrics", "/confirm-email", "/reset-password"] {
        assert!(
            spec["paths"][excluded].is_null(),
            "{excluded} is not a JSON endpoint"
        );
    }
}

#[tokio::test]
async fn a_request_past_its_deadline_answers_503_and_writes_nothing() {
    let app = spawn_app_with(&["--request-timeout", "10ms", "--argon2-iterations", "20"]).await;

    let response = app.register("ada@example.com", PASSWORD).await;

    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(response.headers().get("retry-after").is_some());
    assert!(
        response.headers().get("x-request-id").is_some(),
        "the deadline's answer goes through the request context"
    );
    assert_eq!(
        response.json::<Value>().await.unwrap()["code"],
        "unavailable"
    );
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(app.events().await.is_empty(), "nothing half-written");
}

#[test]
fn the_document_closes_request_schemas_names_401_and_503_and_has_unique_ids() {
    let output = crate::support::latchkey_command()
        .arg("openapi")
        .output()
        .unwrap();
    let spec: Value = serde_json::from_slice(&output.stdout).unwrap();
    let mut ids = std::collections::HashSet::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let id = operation["operationId"].as_str().unwrap();
            let responses = &operation["responses"];
            if operation["security"]
                .as_array()
                .is_some_and(|s| !s.is_empty())
            {
                assert!(
                    responses["401"].is_object(),
                    "{method} {path} documents no 401"
                );
            }
            if path != "/healthz" {
                assert!(
                    responses["503"].is_object(),
                    "{method} {path} documents no 503"
                );
            }
            assert!(
                ids.insert(id.to_owned()),
                "{id} ({method} {path}) is not unique"
            );
            let Some(reference) =
                operation["requestBody"]["content"]["application/json"]["schema"]["$ref"].as_str()
            else {
                continue;
            };
            let name = reference.rsplit('/').next().unwrap();
            let schema = &spec["components"]["schemas"][name];
            // Closed, as the server refuses unknown fields: one object, or variants each closed.
            assert!(schema["allOf"].is_null(), "{name} is still a composition");
            match schema["oneOf"].as_array() {
                Some(variants) => {
                    for variant in variants {
                        assert_eq!(variant["additionalProperties"], false, "{name}");
                    }
                }
                None => assert_eq!(schema["additionalProperties"], false, "{name}"),
            }
            // A body without required fields may be left out (it reads as `{}`).
            let needs_fields = schema["required"].as_array().is_some_and(|r| !r.is_empty())
                || schema["minProperties"].as_u64().is_some_and(|n| n > 0)
                || schema["oneOf"].is_array();
            assert_eq!(
                operation["requestBody"]["required"].as_bool(),
                Some(needs_fields),
                "{method} {path}"
            );
        }
    }
}

#[tokio::test]
async fn the_served_document_states_the_contracts_constraints_and_the_configured_ones() {
    let app = spawn_app_with(&[
        "--password-min-length",
        "16",
        "--roles",
        "user,admin,auditor",
    ])
    .await;
    let spec: Value = app.get("/openapi.json", None).await.json().await.unwrap();
    let schemas = &spec["components"]["schemas"];
    let property = |schema: &str, field: &str| schemas[schema]["properties"][field].clone();
    let resolved = |value: Value| -> Value {
        let reference = value["$ref"]
            .as_str()
            .or_else(|| value["oneOf"][0]["$ref"].as_str())
            .unwrap_or_else(|| panic!("no reference in {value}"));
        schemas[reference.rsplit('/').next().unwrap()].clone()
    };

    let email = resolved(property("RegisterRequest", "email"));
    assert_eq!(email["maxLength"], 254);
    assert_eq!(email["format"], "email");
    for (schema, field) in [
        ("RegisterRequest", "password"),
        ("ChangePasswordRequest", "new_password"),
        ("CreateUserRequest", "password"),
    ] {
        let password = resolved(property(schema, field));
        assert_eq!(
            password["minLength"], 16,
            "{schema}.{field}: the configured minimum"
        );
        assert_eq!(password["maxLength"], 128, "{schema}.{field}");
    }
    let name = resolved(property("UpdateMeRequest", "name"));
    assert_eq!(
        (name["minLength"].clone(), name["maxLength"].clone()),
        (json!(1), json!(200))
    );
    assert!(name["pattern"].is_string());
    let phone = resolved(property("CreateUserRequest", "phone"));
    assert_eq!(phone["pattern"], "^\\+[0-9]{8,15}$");
    for schema in ["CreateUserRequest", "UpdateUserRequest"] {
        assert_eq!(
            property(schema, "role")["enum"],
            json!(["user", "admin", "auditor", null]),
            "{schema}: the configured roles"
        );
    }
    // Exactly one factor: with the token, two fields; alone, one.
    assert_eq!(schemas["MfaVerifyRequest"]["maxProperties"], 2);
    assert_eq!(schemas["MfaVerifyRequest"]["minProperties"], 2);
    assert_eq!(schemas["ReauthenticateRequest"]["maxProperties"], 1);
    let reset: Vec<Value> = schemas["ResetPasswordRequest"]["oneOf"]
        .as_array()
        .unwrap()
        .iter()
        .map(|variant| variant["required"].clone())
        .collect();
    assert_eq!(
        reset,
        vec![
            json!(["token", "new_password"]),
            json!(["email", "code", "new_password"])
        ]
    );
    let users = &spec["paths"]["/users"]["get"]["parameters"];
    let limit = users
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "limit")
        .unwrap();
    assert_eq!(
        (
            limit["schema"]["minimum"].clone(),
            limit["schema"]["maximum"].clone()
        ),
        (json!(1), json!(200))
    );
}
