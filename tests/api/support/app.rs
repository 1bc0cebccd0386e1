//! `spawn_app()`: a fresh database (a SQLite file in a temp dir, or a PostgreSQL database), the
//! real router on 127.0.0.1:0, a manual clock, and helpers that speak the contract.

use clap::Parser;
use latchkey::clock::Clock;
use latchkey::config::Settings;
use latchkey::service::accounts::{self, AccountFields, NewAccount, Origin};
use latchkey::state::AppState;
use latchkey::{domain::ValidationErrors, startup, telemetry};
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};
use sqlx::Connection;
use tempfile::TempDir;
use tokio::net::TcpListener;

/// A password that passes the default policy.
pub(crate) const PASSWORD: &str = "correct horse battery staple";

#[derive(Parser)]
struct TestCli {
    #[command(flatten)]
    settings: Settings,
}

/// A running service and what tests need to poke at it.
pub(crate) struct TestApp {
    /// `http://127.0.0.1:PORT` plus the base path.
    pub(crate) url: String,
    /// `http://127.0.0.1:PORT` of the operations listener (metrics, health), unless it is off.
    pub(crate) operations_url: Option<String>,
    /// The state the server runs with (store, hasher, clock).
    pub(crate) state: AppState,
    /// HTTP client.
    pub(crate) client: reqwest::Client,
    /// Holds the test's files (SQLite database, key file) for its lifetime.
    pub(crate) dir: TempDir,
    database_url: String,
    stop: Option<(
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<anyhow::Result<()>>,
    )>,
}

pub(crate) async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

/// Starts the service with extra command-line settings, e.g. `["--base-path", "/api"]`; `{port}`
/// in a setting is the port the service listens on (`--public-url http://localhost:{port}`).
pub(crate) async fn spawn_app_with(args: &[&str]) -> TestApp {
    if std::env::var_os("TEST_LOG").is_some() {
        telemetry::init(&latchkey::config::LogConfig::text("debug")).expect("logging");
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    let database_url = match args.iter().position(|a| *a == "--database-url") {
        Some(at) => args[at + 1].to_owned(),
        None => fresh_database(&dir).await,
    };
    let listen = address.to_string();
    let port = address.port().to_string();
    let args: Vec<String> = args.iter().map(|a| a.replace("{port}", &port)).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let args = args.as_slice();
    let key_file = dir.path().join("latchkey.key").display().to_string();
    let mut argv = vec!["latchkey", "--listen", &listen];
    // A test may point at another instance's database and key (a restart); else fresh ones.
    // The operations listener takes any free port: tests run side by side.
    let any_port = "127.0.0.1:0".to_owned();
    for (flag, default) in [
        ("--database-url", &database_url),
        ("--secret-key-file", &key_file),
        ("--metrics-listen", &any_port),
    ] {
        if !args.contains(&flag) {
            argv.extend([flag, default.as_str()]);
        }
    }
    argv.extend_from_slice(args);
    let config = TestCli::parse_from(argv)
        .settings
        .into_config()
        .expect("valid test settings");
    let url = format!("http://{address}{}", config.server.base_path);
    let operations = match config.server.metrics_listen {
        Some(address) => Some(TcpListener::bind(address).await.expect("bind operations")),
        None => None,
    };
    let operations_url = operations
        .as_ref()
        .map(|listener| format!("http://{}", listener.local_addr().expect("address")));
    let state = latchkey::startup::build(config, Clock::manual(Clock::System.now()))
        .await
        .expect("state");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(startup::run(
        listener,
        operations,
        state.clone(),
        async move {
            let _ = stopped.await;
        },
    ));
    TestApp {
        url,
        operations_url,
        state,
        client: reqwest::Client::new(),
        dir,
        database_url,
        stop: Some((stop, server)),
    }
}

/// The service's state on a fresh database, with no server and no background workers: for
/// tests that count the work of one call with nothing else running.
pub(crate) async fn quiet_state(args: &[&str]) -> (AppState, TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let database_url = fresh_database(&dir).await;
    let key_file = dir.path().join("latchkey.key").display().to_string();
    let mut argv = vec![
        "latchkey",
        "--database-url",
        &database_url,
        "--secret-key-file",
        &key_file,
    ];
    argv.extend_from_slice(args);
    let config = TestCli::parse_from(argv)
        .settings
        .into_config()
        .expect("valid test settings");
    let state = latchkey::startup::build(config, Clock::manual(Clock::System.now()))
        .await
        .expect("state");
    (state, dir)
}

/// Registers `email` with `password` through the service, as `origin` would (HTTP, CLI, admin).
pub(crate) async fn register_in(
    state: &AppState,
    email: &str,
    password: &str,
    origin: Origin,
) -> Result<accounts::Registered, accounts::RegisterError> {
    let mut errors = ValidationErrors::default();
    let account = NewAccount::parse(
        &state.config.password_policy,
        AccountFields {
            email: Some(email.into()),
            password: Some(password.into()),
            ..AccountFields::default()
        },
        true,
        &mut errors,
    )
    .expect("valid account");
    accounts::register(state, account, origin).await
}

/// Which backend the suite runs on: SQLite, or PostgreSQL with `LATCHKEY_TEST_DATABASE=postgres`.
pub(crate) fn on_postgres() -> bool {
    std::env::var("LATCHKEY_TEST_DATABASE").is_ok_and(|backend| backend == "postgres")
}

/// A fresh, empty database for one test: a SQLite file in the test's directory, or a new
/// PostgreSQL database (`scripts/test` drops this run's databases when it ends).
pub(crate) async fn fresh_database(dir: &TempDir) -> String {
    if !on_postgres() {
        return format!("sqlite://{}", dir.path().join("latchkey.db").display());
    }
    let server = std::env::var("LATCHKEY_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_owned());
    let prefix =
        std::env::var("LATCHKEY_TEST_DB_PREFIX").unwrap_or_else(|_| "latchkey_test_".to_owned());
    let name = format!("{prefix}{}", uuid::Uuid::now_v7().simple());
    let mut admin = sqlx::postgres::PgConnection::connect(&format!("{server}/test"))
        .await
        .expect("PostgreSQL must be reachable for LATCHKEY_TEST_DATABASE=postgres");
    sqlx::query(sqlx::AssertSqlSafe(format!("create database {name}")))
        .execute(&mut admin)
        .await
        .expect("create database");
    format!("{server}/{name}")
}

impl TestApp {
    /// Shuts the server down (as on SIGTERM) and waits until it and its workers have stopped;
    /// gives back the database directory so another instance can start on it.
    pub(crate) async fn stop(mut self) -> TempDir {
        if let Some((stop, server)) = self.stop.take() {
            let _ = stop.send(());
            server
                .await
                .expect("server task")
                .expect("server stopped cleanly");
        }
        self.dir
    }

    pub(crate) fn database_url(&self) -> String {
        self.database_url.clone()
    }

    pub(crate) async fn post(&self, path: &str, body: &Value) -> Response {
        self.client
            .post(format!("{}{path}", self.url))
            .json(body)
            .send()
            .await
            .expect("request")
    }

    pub(crate) async fn post_raw(
        &self,
        path: &str,
        content_type: Option<&str>,
        body: impl Into<reqwest::Body>,
    ) -> Response {
        let mut request = self.client.post(format!("{}{path}", self.url)).body(body);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        request.send().await.expect("request")
    }

    pub(crate) async fn get(&self, path: &str, token: Option<&str>) -> Response {
        let mut request = self.client.get(format!("{}{path}", self.url));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.expect("request")
    }

    pub(crate) async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: &Value,
    ) -> Response {
        self.client
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .expect("request")
    }

    pub(crate) async fn register(&self, email: &str, password: &str) -> Response {
        self.post(
            "/auth/register",
            &json!({"email": email, "password": password}),
        )
        .await
    }

    pub(crate) async fn login(&self, email: &str, password: &str) -> Response {
        self.post(
            "/auth/login",
            &json!({"email": email, "password": password}),
        )
        .await
    }

    /// Creates an account through the same service path as `users add --verified`.
    pub(crate) async fn create_verified_user(&self, email: &str, password: &str) -> uuid::Uuid {
        let origin = Origin::Cli {
            role: self.state.config.roles.default_role().clone(),
            email_verified: true,
        };
        match register_in(&self.state, email, password, origin)
            .await
            .expect("created")
        {
            accounts::Registered::Created(user) => user.id,
            accounts::Registered::LoggedIn(pair) => pair.user.id,
        }
    }

    /// A verified user, logged in: (access token, login body).
    pub(crate) async fn logged_in_user(&self, email: &str) -> (String, Value) {
        self.create_verified_user(email, PASSWORD).await;
        let response = self.login(email, PASSWORD).await;
        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = response.json().await.expect("json");
        (
            body["access_token"].as_str().expect("token").to_owned(),
            body,
        )
    }

    /// Every event in the outbox, oldest first.
    pub(crate) async fn events(&self) -> Vec<Value> {
        self.state.store.events(10_000).await.expect("events")
    }

    pub(crate) async fn events_of_type(&self, kind: &str) -> Vec<Value> {
        self.events()
            .await
            .into_iter()
            .filter(|e| e["type"] == kind)
            .collect()
    }
}

/// Asserts a problem+json answer with this status and code, and gives its body.
pub(crate) async fn assert_problem(response: Response, status: StatusCode, code: &str) -> Value {
    assert_eq!(response.status(), status, "status");
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(content_type.as_deref(), Some("application/problem+json"));
    let body: Value = response.json().await.expect("problem body");
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["status"], status.as_u16());
    assert_eq!(body["type"], "about:blank");
    assert!(body["title"].is_string() && body["detail"].is_string());
    body
}

/// The `field`s named in a validation problem.
pub(crate) fn error_fields(problem: &Value) -> Vec<String> {
    problem["errors"]
        .as_array()
        .map_or_else(Vec::new, |errors| {
            errors
                .iter()
                .map(|e| e["field"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
}

/// A service that delivers mail to a fresh test SMTP server.
pub(crate) async fn spawn_app_with_mail(args: &[&str]) -> (TestApp, super::smtp::SmtpServer) {
    let smtp = super::smtp::SmtpServer::start().await;
    let url = smtp.url();
    let mut all = vec!["--smtp-url", url.as_str()];
    all.extend_from_slice(args);
    (spawn_app_with(&all).await, smtp)
}

impl TestApp {
    /// A verified admin (through the `users add --role admin --verified` path), logged in.
    pub(crate) async fn admin_token(&self) -> String {
        let mut errors = ValidationErrors::default();
        let email = format!("admin-{}@example.com", uuid::Uuid::now_v7().simple());
        let account = NewAccount::parse(
            &self.state.config.password_policy,
            AccountFields {
                email: Some(email.clone()),
                password: Some(PASSWORD.into()),
                ..AccountFields::default()
            },
            true,
            &mut errors,
        )
        .expect("valid admin");
        let origin = Origin::Cli {
            role: self.state.config.roles.admin().clone(),
            email_verified: true,
        };
        accounts::register(&self.state, account, origin)
            .await
            .expect("admin created");
        let body: Value = self
            .login(&email, PASSWORD)
            .await
            .json()
            .await
            .expect("json");
        body["access_token"].as_str().expect("token").to_owned()
    }
}
