//! The binary: `serve`, `migrate`, `users add`, `openapi`, and how bad settings stop it.

use crate::support::{PASSWORD, Process, latchkey_command as latchkey, spawn_app};
use reqwest::StatusCode;
use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;

#[tokio::test]
async fn users_add_reads_the_password_from_stdin_while_a_server_runs_on_the_database() {
    let app = spawn_app().await;
    let mut child = latchkey()
        .args([
            "users",
            "add",
            "--email",
            "Root@Example.com",
            "--role",
            "admin",
            "--verified",
            "--name",
            "Root",
        ])
        .env("LATCHKEY_DATABASE_URL", app.database_url())
        // Every instance needs the server's key: the database is sealed under it.
        .env(
            "LATCHKEY_SECRET_KEY_FILE",
            app.dir.path().join("latchkey.key"),
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{PASSWORD}").unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("root@example.com"));

    let login = app.login("root@example.com", PASSWORD).await;
    assert_eq!(login.status(), StatusCode::OK);
    let body: serde_json::Value = login.json().await.unwrap();
    assert_eq!(
        (body["user"]["role"].as_str(), body["user"]["name"].as_str()),
        (Some("admin"), Some("Root"))
    );
    assert_eq!(body["user"]["email_verified"], true);
    let registered = app.events_of_type("USER_REGISTERED").await;
    assert_eq!(registered[0]["data"]["origin"], "cli");
}

#[tokio::test]
async fn users_add_applies_the_password_policy_and_refuses_unknown_roles() {
    let app = spawn_app().await;
    for (role, password) in [("user", "password1234"), ("superuser", PASSWORD)] {
        let mut child = latchkey()
            .args(["users", "add", "--email", "ada@example.com", "--role", role])
            .env("LATCHKEY_DATABASE_URL", app.database_url())
            .env(
                "LATCHKEY_SECRET_KEY_FILE",
                app.dir.path().join("latchkey.key"),
            )
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
        let output = child.wait_with_output().unwrap();
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!stderr.contains(password), "never echoes the password");
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    }
}

#[test]
fn a_bad_setting_stops_the_process_with_one_clear_line() {
    let cases: [(&[(&str, &str)], &str); 7] = [
        (&[("LATCHKEY_LISTEN", "not-an-address")], "--listen"),
        (&[("LATCHKEY_METRICS_LISTEN", "9464")], "--metrics-listen"),
        (
            &[("LATCHKEY_LISTEN", "127.0.0.1:9464")],
            "LATCHKEY_METRICS_LISTEN",
        ),
        (&[("LATCHKEY_BODY_TIMEOUT", "forever")], "--body-timeout"),
        (
            &[
                ("LATCHKEY_JWT_ALG", "HS256"),
                ("LATCHKEY_JWT_SECRET", "too-short-secret"),
            ],
            "LATCHKEY_JWT_SECRET",
        ),
        (
            &[("LATCHKEY_ACCESS_TOKEN_TTL", "ten minutes")],
            "--access-token-ttl",
        ),
        (
            &[("LATCHKEY_PASSWORD_MIN_LENGTH", "4")],
            "LATCHKEY_PASSWORD_MIN_LENGTH",
        ),
    ];
    for (env, mentions) in cases {
        let output = latchkey()
            .arg("serve")
            .envs(env.iter().copied())
            .output()
            .unwrap();
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
        assert!(stderr.contains(mentions), "{stderr}");
        assert!(
            !stderr.contains("too-short-secret"),
            "secrets are never printed"
        );
    }
}

#[tokio::test]
async fn a_taken_operations_address_stops_start_up_with_one_line() {
    let taken = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();

    let output = latchkey()
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            &address,
        ])
        .current_dir(dir.path())
        .output()
        .unwrap();

    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains(&address), "{stderr}");
}

#[tokio::test]
async fn without_smtp_start_up_warns_once_that_mails_go_to_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = latchkey()
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "off",
        ])
        .current_dir(dir.path())
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .map(Process)
        .unwrap();
    let (lines, logged) = std::sync::mpsc::channel();
    let stderr = BufReader::new(child.0.stderr.take().unwrap());
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            let _ = lines.send(line);
        }
    });
    let next_line = || {
        logged
            .recv_timeout(std::time::Duration::from_secs(30))
            .expect("a log line")
    };
    let mut log = Vec::new();
    let url = loop {
        let line = next_line();
        log.push(line.clone());
        if let Some(at) = line.find("http://") {
            break line[at..].split_whitespace().next().unwrap().to_owned();
        }
    };

    // Two mails: the warning is about the setting, not repeated for each mail.
    let client = reqwest::Client::new();
    for email in ["ada@example.com", "grace@example.com"] {
        let registered = client
            .post(format!("{url}/auth/register"))
            .json(&serde_json::json!({"email": email, "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(registered.status(), StatusCode::CREATED);
    }
    let mut mails = 0;
    while mails < 2 {
        let line = next_line();
        if line.contains("no SMTP server configured") {
            mails += 1;
        }
        log.push(line);
    }
    drop(child);
    let log = log.join("\n");

    let warnings: Vec<&str> = log
        .lines()
        .filter(|line| line.contains("WARN") && line.contains("LATCHKEY_SMTP_URL"))
        .collect();
    assert_eq!(warnings.len(), 1, "{log}");
    assert!(
        warnings[0].contains("links and codes") && warnings[0].contains("log"),
        "{log}"
    );
}

#[test]
fn serve_help_lists_every_setting_with_its_variable_and_default() {
    let output = latchkey()
        .args(["serve", "--help"])
        .env("LATCHKEY_JWT_SECRET", "a-secret-that-must-not-be-printed!!")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&output.stdout);

    assert!(output.status.success());
    for variable in [
        "LATCHKEY_LISTEN",
        "LATCHKEY_DATABASE_URL",
        "LATCHKEY_PUBLIC_URL",
        "LATCHKEY_BASE_PATH",
        "LATCHKEY_JWT_ALG",
        "LATCHKEY_JWT_SECRET",
        "LATCHKEY_ACCESS_TOKEN_TTL",
        "LATCHKEY_REQUIRE_EMAIL_VERIFICATION",
        "LATCHKEY_ARGON2_MEMORY_KIB",
        "LATCHKEY_LOG_FORMAT",
    ] {
        assert!(help.contains(variable), "{variable} missing from --help");
    }
    assert!(
        help.contains("127.0.0.1:8080")
            && help.contains("sqlite://latchkey.db")
            && help.contains("19456")
    );
    assert!(!help.contains("a-secret-that-must-not-be-printed"));
}

#[test]
fn openapi_prints_the_specification() {
    let output = latchkey().arg("openapi").output().unwrap();

    assert!(output.status.success());
    let spec: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert!(spec["paths"]["/auth/login"].is_object());
}

#[tokio::test]
async fn serve_on_a_fresh_directory_creates_the_database_and_logs_its_url() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = latchkey()
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "127.0.0.1:0",
        ])
        .current_dir(dir.path())
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let url = loop {
        let line = lines.next().expect("the server logs its URL").unwrap();
        if let Some(at) = line.find("http://") {
            break line[at..].split_whitespace().next().unwrap().to_owned();
        }
    };

    let ready = reqwest::get(format!("{url}/readyz")).await.unwrap();
    let jwks: serde_json::Value = reqwest::get(format!("{url}/.well-known/jwks.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    child.kill().unwrap();
    child.wait().unwrap();

    assert_eq!(ready.status(), StatusCode::OK);
    assert!(dir.path().join("latchkey.db").exists());
    assert_eq!(jwks["keys"][0]["crv"], "Ed25519");
}

#[test]
fn migrate_creates_and_upgrades_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("fresh.db").display());
    for _ in 0..2 {
        let output = latchkey()
            .args(["migrate", "--database-url", &url])
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    assert!(dir.path().join("fresh.db").exists());
}

#[tokio::test]
async fn json_logs_are_one_object_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = latchkey()
        .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json"])
        .args(["--metrics-listen", "127.0.0.1:0"])
        .current_dir(dir.path())
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let listening = loop {
        let line = lines.next().expect("a log line").unwrap();
        let object: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|_| panic!("not JSON: {line}"));
        if object["message"]
            .as_str()
            .is_some_and(|m| m.contains("listening"))
        {
            break object;
        }
    };
    child.kill().unwrap();
    child.wait().unwrap();

    assert_eq!(listening["level"], "INFO");
    assert!(listening["timestamp"].is_string());
}
