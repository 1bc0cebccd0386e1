//! `latchkey users import` with real bcrypt and argon2 hashes, re-hashing at login, and
//! `latchkey keys rotate` with the clock moved past expiry.

use crate::support::{PASSWORD, TestApp, latchkey_command, spawn_app};
use argon2::{Algorithm, Argon2, Params, PasswordHasher, Version};
use latchkey::domain::Email;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::process::Command;

pub(crate) fn latchkey(app: &TestApp) -> Command {
    let mut command = latchkey_command();
    command.env("LATCHKEY_DATABASE_URL", app.database_url());
    command.env(
        "LATCHKEY_SECRET_KEY_FILE",
        app.dir.path().join("latchkey.key"),
    );
    command
}

async fn stored_hash(app: &TestApp, email: &str) -> String {
    let credentials = app
        .state
        .store
        .credentials_by_email(&Email::parse(email).unwrap())
        .await
        .unwrap()
        .unwrap();
    credentials.password_hash.unwrap()
}

#[tokio::test]
async fn an_import_takes_bcrypt_and_argon2_users_reports_bad_lines_and_is_idempotent() {
    let app = spawn_app().await;
    let bcrypt_hash = bcrypt::hash(PASSWORD, 4).unwrap();
    let outdated = Argon2::new(
        Algorithm::Argon2id,
        Version::V0x13,
        Params::new(8192, 1, 1, None).unwrap(),
    )
    .hash_password(PASSWORD.as_bytes())
    .unwrap()
    .to_string();
    let lines = [
        json!({"email": "Node@Example.com", "password_hash": bcrypt_hash, "name": "From Node", "email_verified": true, "created_at": "2020-01-02T03:04:05Z"}),
        json!({"email": "java@example.com", "password_hash": bcrypt_hash.replacen("$2b$", "$2y$", 1), "role": "admin", "email_verified": true}),
        json!({"email": "old-argon@example.com", "password_hash": outdated, "email_verified": true, "metadata": {"plan": "pro"}}),
        json!({"email": "not an email", "password_hash": bcrypt_hash}),
        json!({"email": "md5@example.com", "password_hash": "5f4dcc3b5aa765d61d8327deb882cf99"}),
        json!({"email": "slow@example.com", "password_hash": bcrypt_hash.replacen("$04$", "$31$", 1)}),
        json!({"email": "extra@example.com", "password_hash": bcrypt_hash, "is_admin": true}),
        json!({"email": "node@example.com", "password_hash": bcrypt_hash}),
    ];
    let mut file = lines
        .iter()
        .map(Value::to_string)
        .collect::<Vec<_>>()
        .join("\n");
    file.push_str("\n{not json\n");
    let path = app.dir.path().join("users.jsonl");
    std::fs::write(&path, file).unwrap();

    let first = latchkey(&app)
        .args(["users", "import"])
        .arg(&path)
        .output()
        .unwrap();

    let (stdout, stderr) = (
        String::from_utf8_lossy(&first.stdout),
        String::from_utf8_lossy(&first.stderr),
    );
    assert!(
        !first.status.success(),
        "refused lines make the command fail"
    );
    assert!(
        stdout.contains("imported 3, skipped 1 (already present), failed 5"),
        "{stdout}"
    );
    for line in [4, 5, 6, 7, 9] {
        assert!(
            stderr.contains(&format!("line {line}: ")),
            "line {line} reported: {stderr}"
        );
    }
    assert!(!stderr.contains(&bcrypt_hash), "hashes are never printed");

    let again = latchkey(&app)
        .args(["users", "import"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&again.stdout).contains("imported 0, skipped 4"),
        "{}",
        String::from_utf8_lossy(&again.stdout)
    );
    assert_eq!(app.events_of_type("USER_REGISTERED").await.len(), 3);
    let node = app
        .state
        .store
        .credentials_by_email(&Email::parse("node@example.com").unwrap())
        .await
        .unwrap()
        .unwrap()
        .user;
    assert_eq!(node.created_at.year(), 2020);
    assert_eq!(node.name.unwrap().as_str(), "From Node");
}

#[tokio::test]
async fn an_imported_bcrypt_or_outdated_argon2_user_logs_in_and_is_rehashed_to_current_argon2id() {
    let app = spawn_app().await;
    let outdated = Argon2::new(
        Algorithm::Argon2id,
        Version::V0x13,
        Params::new(8192, 1, 1, None).unwrap(),
    )
    .hash_password(PASSWORD.as_bytes())
    .unwrap()
    .to_string();
    let file = [
        json!({"email": "node@example.com", "password_hash": bcrypt::hash(PASSWORD, 4).unwrap(), "email_verified": true}),
        json!({"email": "old@example.com", "password_hash": outdated, "email_verified": true}),
    ]
    .iter()
    .map(Value::to_string)
    .collect::<Vec<_>>()
    .join("\n");
    let path = app.dir.path().join("users.jsonl");
    std::fs::write(&path, file).unwrap();
    assert!(
        latchkey(&app)
            .args(["users", "import"])
            .arg(&path)
            .output()
            .unwrap()
            .status
            .success()
    );

    for email in ["node@example.com", "old@example.com"] {
        assert_eq!(
            app.login(email, "not the password at all").await.status(),
            StatusCode::UNAUTHORIZED
        );
        assert!(
            !stored_hash(&app, email)
                .await
                .starts_with("$argon2id$v=19$m=19456"),
            "a failed login changes nothing"
        );

        assert_eq!(
            app.login(email, PASSWORD).await.status(),
            StatusCode::OK,
            "{email}"
        );

        let rehashed = stored_hash(&app, email).await;
        assert!(
            rehashed.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{email}: {rehashed}"
        );
        assert_eq!(app.login(email, PASSWORD).await.status(), StatusCode::OK);
    }
}

#[tokio::test]
async fn an_imported_bcrypt_hash_takes_its_72_byte_password_and_nothing_longer() {
    let app = spawn_app().await;
    // 72 bytes, some of them in two-byte characters: bcrypt reads bytes, not characters.
    let password = format!(
        "{}{}",
        "é".repeat(10),
        "correct horse battery staple ".repeat(2)
    )
    .chars()
    .take(62)
    .collect::<String>();
    assert_eq!(password.len(), 72, "{password:?}");
    let line = json!({"email": "node@example.com", "password_hash": bcrypt::hash(&password, 4).unwrap(), "email_verified": true});
    let path = app.dir.path().join("users.jsonl");
    std::fs::write(&path, line.to_string()).unwrap();
    assert!(
        latchkey(&app)
            .args(["users", "import"])
            .arg(&path)
            .output()
            .unwrap()
            .status
            .success()
    );

    for longer in [
        format!("{password}!"),
        format!("{password} and then some more"),
    ] {
        assert_eq!(
            app.login("node@example.com", &longer).await.status(),
            StatusCode::UNAUTHORIZED,
            "{} bytes",
            longer.len()
        );
    }
    assert!(
        stored_hash(&app, "node@example.com")
            .await
            .starts_with("$2b$"),
        "a refused login changes nothing"
    );
    assert_eq!(
        app.login("node@example.com", &password).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_rotated_key_signs_after_its_publication_and_the_old_one_leaves_once_its_tokens_expired()
{
    let app = spawn_app().await;
    let (old_token, _) = app.logged_in_user("ada@example.com").await;
    let kid = |token: &str| jsonwebtoken::decode_header(token).unwrap().kid.unwrap();
    let old_kid = kid(&old_token);

    let rotated = latchkey(&app).args(["keys", "rotate"]).output().unwrap();
    assert!(
        rotated.status.success(),
        "{}",
        String::from_utf8_lossy(&rotated.stderr)
    );
    latchkey::service::keys::reload(&app.state).await.unwrap();

    let jwks: Value = app
        .get("/.well-known/jwks.json", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        jwks["keys"].as_array().unwrap().len(),
        2,
        "the new key is published first"
    );
    async fn login(app: &TestApp) -> String {
        let body: Value = app
            .login("ada@example.com", PASSWORD)
            .await
            .json()
            .await
            .unwrap();
        body["access_token"].as_str().unwrap().to_owned()
    }
    assert_eq!(kid(&login(&app).await), old_kid, "but does not sign yet");

    app.state.clock.advance(time::Duration::seconds(40));
    latchkey::service::keys::reload(&app.state).await.unwrap();
    let new_token = login(&app).await;
    assert_ne!(kid(&new_token), old_kid, "the new key signs");
    assert_eq!(
        app.get("/auth/verify", Some(&old_token)).await.status(),
        StatusCode::OK,
        "old tokens still verify"
    );

    app.state
        .clock
        .advance(time::Duration::minutes(15) + time::Duration::seconds(2));
    latchkey::service::keys::reload(&app.state).await.unwrap();
    let jwks: Value = app
        .get("/.well-known/jwks.json", None)
        .await
        .json()
        .await
        .unwrap();
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(
        kids,
        [kid(&new_token).as_str()],
        "the old key left the JWKS"
    );
    assert_eq!(
        app.get("/auth/verify", Some(&login(&app).await))
            .await
            .status(),
        StatusCode::OK
    );
}

#[test]
fn rotating_a_shared_secret_is_refused_with_a_clear_line() {
    let output = Command::new(env!("CARGO_BIN_EXE_latchkey"))
        .args([
            "keys",
            "rotate",
            "--database-url",
            "sqlite::memory:",
            "--jwt-alg",
            "HS256",
            "--jwt-secret",
            "an-hmac-secret-of-at-least-32-bytes!",
        ])
        .env(
            "LATCHKEY_SECRET_KEY",
            "a-secret-key-of-at-least-thirty-two-bytes",
        )
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("rotate that secret instead"));
}
