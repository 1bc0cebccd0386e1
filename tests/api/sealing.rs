//! Secrets at rest: signing keys and queued mail sealed under the secret key, owner-only files,
//! a wrong key refused at start-up, and databases of an earlier version sealed in place.

use crate::support::{
    Mail, PASSWORD, TestApp, latchkey_command as latchkey, on_postgres, spawn_app, spawn_app_with,
    wait_for_eml,
};
use latchkey::mail::MailBody;
use latchkey::service::keys;
use latchkey::store::StoredBody;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::Connection;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(10);

/// The test's database opened directly, as by someone holding a copy of it.
enum Raw {
    Sqlite(sqlx::SqliteConnection),
    Postgres(sqlx::PgConnection),
}

macro_rules! on_raw {
    ($raw:expr, $conn:ident => $body:expr) => {
        match $raw {
            Raw::Sqlite($conn) => $body,
            Raw::Postgres($conn) => $body,
        }
    };
}

impl Raw {
    async fn open(url: &str) -> Raw {
        if on_postgres() {
            Raw::Postgres(sqlx::PgConnection::connect(url).await.unwrap())
        } else {
            Raw::Sqlite(sqlx::SqliteConnection::connect(url).await.unwrap())
        }
    }

    async fn blobs(&mut self, sql: &'static str) -> Vec<Option<Vec<u8>>> {
        on_raw!(self, c => sqlx::query_scalar(sql).fetch_all(c).await.unwrap())
    }

    async fn texts(&mut self, sql: &'static str) -> Vec<Option<String>> {
        on_raw!(self, c => sqlx::query_scalar(sql).fetch_all(c).await.unwrap())
    }

    /// `sql` counts rows, with `flag` bound as `$1`.
    async fn count(&mut self, sql: &'static str, flag: bool) -> i64 {
        on_raw!(self, c => sqlx::query_scalar(sql).bind(flag).fetch_one(c).await.unwrap())
    }

    /// Writes a signing key's private half back in clear with the marker unset, as an earlier
    /// version stored it.
    async fn unseal_key(&mut self, kid: &str, der: &[u8]) {
        let sql = "update signing_keys set private_der = $1, sealed = $2 where kid = $3";
        on_raw!(self, c => sqlx::query(sql).bind(der).bind(false).bind(kid).execute(c).await.map(drop).unwrap());
    }

    /// Queues a mail with clear bodies, as an earlier version did.
    async fn queue_clear_mail(&mut self, id: uuid::Uuid, text: &str, at: i64) {
        let sql = "insert into mail_queue (id, recipient, subject, text_body, html_body, next_attempt_at, created_at, updated_at)
                   values ($1, 'ada@example.com', 'Reset your password', $2, $3, $4, $5, $6)";
        let html = format!("<p>{text}</p>");
        on_raw!(self, c => sqlx::query(sql)
            .bind(id.to_string())
            .bind(text)
            .bind(&html)
            .bind(at)
            .bind(at)
            .bind(at)
            .execute(c)
            .await
            .map(drop)
            .unwrap());
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn sqlite_path(app: &TestApp) -> Option<PathBuf> {
    app.database_url()
        .strip_prefix("sqlite://")
        .map(PathBuf::from)
}

/// The permission bits, in octal as `ls` and `chmod` show them.
#[cfg(unix)]
fn mode(path: &Path) -> String {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode();
    format!("{:o}", mode & 0o777)
}

/// Forgot-password's mail is queued after the answer, by the request worker: waits for it.
async fn wait_for_queued_mail(app: &TestApp) {
    let started = Instant::now();
    let mut raw = Raw::open(&app.database_url()).await;
    while raw
        .count("select count(*) from mail_queue where $1", true)
        .await
        == 0
    {
        assert!(started.elapsed() < WAIT, "the reset mail was never queued");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_copy_of_the_database_holds_no_clear_private_key_link_token_or_code() {
    // Nothing listens on port 1: the reset mail stays queued, as it would while SMTP is down.
    let app = spawn_app_with(&["--smtp-url", "smtp://127.0.0.1:1"]).await;
    app.create_verified_user("ada@example.com", PASSWORD).await;
    let forgot = app
        .post(
            "/auth/forgot-password",
            &json!({"email": "ada@example.com"}),
        )
        .await;
    assert_eq!(forgot.status(), StatusCode::ACCEPTED);
    wait_for_queued_mail(&app).await;
    let mut raw = Raw::open(&app.database_url()).await;
    let opened = keys::current(&app.state.store, &app.state.sealer, "EdDSA")
        .await
        .unwrap();
    let der = opened[0].key.private_der.clone();

    let stored_keys = raw.blobs("select private_der from signing_keys").await;
    assert_eq!(stored_keys.len(), 1);
    let stored_key = stored_keys[0].clone().unwrap();
    assert!(!contains(&stored_key, &der), "the private key is sealed");
    assert_eq!(
        raw.count("select count(*) from signing_keys where sealed = $1", true)
            .await,
        1
    );

    let ids = raw.texts("select id from mail_queue").await;
    let sealed = raw.blobs("select sealed_body from mail_queue").await;
    assert_eq!(sealed.len(), 1, "the reset mail is queued");
    assert_eq!(
        raw.texts("select coalesce(text_body, html_body) from mail_queue")
            .await,
        [None],
        "no clear body"
    );
    let sealed = sealed[0].clone().expect("a sealed body");
    let id = ids[0].as_deref().unwrap().parse().unwrap();
    // The row is the reset mail: it opens, with the key only, to a link and a code.
    let body = MailBody::open(&StoredBody::Sealed(sealed.clone()), &app.state.sealer, id).unwrap();
    let mail = Mail::from(body.text.clone());
    let (token, code) = (mail.reset_token(), mail.reset_code());
    for secret in [token.as_bytes(), code.as_bytes(), b"token="] {
        assert!(!contains(&sealed, secret));
    }

    // On SQLite the copy is the files themselves: no page of them holds a secret.
    if let Some(path) = sqlite_path(&app) {
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.extend(std::fs::read(format!("{}-wal", path.display())).unwrap_or_default());
        for secret in [der.as_slice(), token.as_bytes(), b"reset-password?token="] {
            assert!(!contains(&bytes, secret));
        }
    }
}

#[cfg(unix)]
#[tokio::test]
async fn the_database_its_wal_and_shm_the_key_file_and_eml_files_are_owner_only() {
    let mail_dir = tempfile::tempdir().unwrap();
    let app = spawn_app_with(&["--mail-dir", &mail_dir.path().display().to_string()]).await;
    app.register("ada@example.com", PASSWORD).await;

    let eml = wait_for_eml(mail_dir.path()).await;
    assert_eq!(mode(&eml), "600", ".eml file");
    assert_eq!(
        mode(&app.dir.path().join("latchkey.key")),
        "600",
        "key file"
    );
    if let Some(path) = sqlite_path(&app) {
        for suffix in ["", "-wal", "-shm"] {
            let file = PathBuf::from(format!("{}{suffix}", path.display()));
            assert_eq!(mode(&file), "600", "{}", file.display());
        }
    }
}

#[cfg(unix)]
#[tokio::test]
async fn a_key_file_and_database_readable_by_others_are_tightened_at_start() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("loose.key");
    std::fs::write(&key_file, "ab".repeat(32)).unwrap();
    let db = dir.path().join("loose.db");
    std::fs::write(&db, "").unwrap();
    for file in [&key_file, &db] {
        std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let key_arg = key_file.display().to_string();
    let mut args = vec!["--secret-key-file", key_arg.as_str()];
    let db_url = format!("sqlite://{}", db.display());
    if !on_postgres() {
        args.extend(["--database-url", db_url.as_str()]);
    }

    let app = spawn_app_with(&args).await;

    assert_eq!(mode(&key_file), "600", "key file");
    if !on_postgres() {
        for suffix in ["", "-wal", "-shm"] {
            let file = PathBuf::from(format!("{}{suffix}", db.display()));
            assert_eq!(mode(&file), "600", "{}", file.display());
        }
    }
    drop(app);
}

#[tokio::test]
async fn a_restart_with_another_secret_key_stops_with_one_line() {
    // HS256 and no mail: nothing but the canary is sealed, and it alone must catch the key.
    let hs256 = [
        "--jwt-alg",
        "HS256",
        "--jwt-secret",
        "an-hmac-secret-of-at-least-32-bytes!",
    ];
    let app = spawn_app_with(&hs256).await;
    let database_url = app.database_url();
    let dir = app.stop().await;
    let other_key_file = dir.path().join("other.key");
    latchkey::files::create_private(&other_key_file, "cd".repeat(32).as_bytes()).unwrap();
    let other = "another-secret-key-of-at-least-32-bytes";

    for (env, names) in [
        (
            ("LATCHKEY_SECRET_KEY", other.to_owned()),
            "LATCHKEY_SECRET_KEY",
        ),
        (
            (
                "LATCHKEY_SECRET_KEY_FILE",
                other_key_file.display().to_string(),
            ),
            "other.key",
        ),
    ] {
        let output = latchkey()
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(hs256)
            .env("LATCHKEY_DATABASE_URL", &database_url)
            // Info lines (sqlx notices on PostgreSQL) are not the failure's line.
            .env("LATCHKEY_LOG", "warn")
            .env(env.0, &env.1)
            .output()
            .unwrap();

        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
        assert!(stderr.contains(names), "{stderr}");
        assert!(
            stderr.contains("not the key this database was sealed with"),
            "{stderr}"
        );
        assert!(!stderr.contains(other) && !stderr.contains("cdcdcdcd"));
    }

    // The right key still starts.
    let key_file = dir.path().join("latchkey.key").display().to_string();
    let mut args = vec![
        "--database-url",
        database_url.as_str(),
        "--secret-key-file",
        key_file.as_str(),
    ];
    args.extend(hs256);
    spawn_app_with(&args).await;
}

#[tokio::test]
async fn a_database_of_an_earlier_version_is_sealed_at_start_and_its_tokens_still_verify() {
    // One issuer for both instances: by default it names the listen address, which changes.
    let issuer = ["--jwt-issuer", "https://auth.example.com"];
    let app = spawn_app_with(&issuer).await;
    let (token, _) = app.logged_in_user("ada@example.com").await;
    let key = keys::current(&app.state.store, &app.state.sealer, "EdDSA")
        .await
        .unwrap()
        .remove(0)
        .key;
    let now = app.state.clock.now();
    let database_url = app.database_url();
    let dir = app.stop().await;

    let mut raw = Raw::open(&database_url).await;
    raw.unseal_key(&key.kid, &key.private_der).await;
    let mail_id = uuid::Uuid::now_v7();
    let text = "reset here: http://localhost/reset-password?token=clear-token-of-old-version";
    let at = i64::try_from(now.unix_timestamp_nanos() / 1_000).unwrap();
    raw.queue_clear_mail(mail_id, text, at).await;
    drop(raw);

    let mail_dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("latchkey.key").display().to_string();
    let restarted = spawn_app_with(&[
        "--database-url",
        &database_url,
        "--secret-key-file",
        &key_file,
        "--mail-dir",
        &mail_dir.path().display().to_string(),
        issuer[0],
        issuer[1],
    ])
    .await;

    let mut raw = Raw::open(&database_url).await;
    assert_eq!(
        raw.count("select count(*) from signing_keys where sealed = $1", false)
            .await,
        0
    );
    let stored = raw.blobs("select private_der from signing_keys").await;
    assert!(!contains(stored[0].as_deref().unwrap(), &key.private_der));
    assert_eq!(
        raw.texts("select coalesce(text_body, html_body) from mail_queue")
            .await,
        [None],
        "the clear bodies are gone"
    );
    for sealed in raw.blobs("select sealed_body from mail_queue").await {
        assert!(!contains(&sealed.unwrap_or_default(), b"clear-token"));
    }
    let verify = restarted.get("/auth/verify", Some(&token)).await;
    assert_eq!(
        verify.status(),
        StatusCode::OK,
        "signed before, verified after"
    );
    let eml = std::fs::read_to_string(wait_for_eml(mail_dir.path()).await).unwrap();
    assert!(
        eml.contains("clear-token-of-old-version"),
        "the mail opens and goes out"
    );
}

#[tokio::test]
async fn keys_rotate_adds_a_sealed_key_that_every_instance_publishes() {
    let app = spawn_app().await;
    let key_file = app.dir.path().join("latchkey.key");

    let mut command = latchkey();
    command
        .args(["keys", "rotate"])
        .env("LATCHKEY_DATABASE_URL", app.database_url())
        .env("LATCHKEY_SECRET_KEY_FILE", &key_file);
    let output = output_beside(command).await;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let mut raw = Raw::open(&app.database_url()).await;
    assert_eq!(
        raw.count("select count(*) from signing_keys where sealed = $1", true)
            .await,
        2
    );
    let opened = keys::current(&app.state.store, &app.state.sealer, "EdDSA")
        .await
        .unwrap();
    assert_eq!(opened.len(), 2, "both open with the server's key");
    let started = Instant::now();
    loop {
        let jwks: Value = app
            .get("/.well-known/jwks.json", None)
            .await
            .json()
            .await
            .unwrap();
        if jwks["keys"].as_array().is_some_and(|keys| keys.len() == 2) {
            break;
        }
        assert!(started.elapsed() < WAIT, "the new key was never published");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let mut command = latchkey();
    command
        .args(["keys", "rotate"])
        .env("LATCHKEY_DATABASE_URL", app.database_url())
        .env(
            "LATCHKEY_SECRET_KEY",
            "another-secret-key-of-at-least-32-bytes",
        );
    let wrong = output_beside(command).await;
    assert!(!wrong.status.success(), "a wrong key adds no key");
    assert_eq!(
        raw.count("select count(*) from signing_keys where sealed = $1", true)
            .await,
        2
    );
}

/// Runs `command` to its end off the test's runtime, which keeps serving the app running in
/// this process meanwhile: blocking it could leave one of the app's SQLite write transactions
/// open while the command waits for the same lock.
async fn output_beside(mut command: Command) -> std::process::Output {
    tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap()
}

/// `latchkey keys rotate-secret` on `database_url`, from the key file `current` to `new`.
fn rotate_secret(database_url: &str, current: &Path, new: &Path) -> std::process::Output {
    latchkey()
        .args(["keys", "rotate-secret", "--new-secret-key-file"])
        .arg(new)
        .env("LATCHKEY_DATABASE_URL", database_url)
        .env("LATCHKEY_SECRET_KEY_FILE", current)
        // Info lines (sqlx notices on PostgreSQL) are not the failure's line.
        .env("LATCHKEY_LOG", "warn")
        .output()
        .unwrap()
}

/// What `latchkey serve` on `database_url` with the key file `key` says as it stops; it must stop
/// at once (it is killed, and the test fails, if it serves).
fn serve_stops(database_url: &str, key: &Path) -> String {
    let mut child = latchkey()
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "off",
        ])
        .env("LATCHKEY_DATABASE_URL", database_url)
        .env("LATCHKEY_SECRET_KEY_FILE", key)
        .env("LATCHKEY_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > WAIT {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("serve started");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = child.wait_with_output().unwrap();
    assert!(!output.status.success());
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Every sealed value in the database: the canary, the signing keys, the queued mail bodies.
async fn sealed_values(database_url: &str) -> Vec<Option<Vec<u8>>> {
    let mut raw = Raw::open(database_url).await;
    let mut values = raw.blobs("select canary from sealing").await;
    values.extend(
        raw.blobs("select private_der from signing_keys order by kid")
            .await,
    );
    values.extend(
        raw.blobs("select sealed_body from mail_queue order by id")
            .await,
    );
    values
}

#[tokio::test]
async fn rotating_the_secret_key_reseals_everything_so_that_only_the_new_key_starts() {
    // One issuer for both instances; SMTP down, so the reset mail stays queued.
    let issuer = ["--jwt-issuer", "https://auth.example.com"];
    let app = spawn_app_with(&["--smtp-url", "smtp://127.0.0.1:1", issuer[0], issuer[1]]).await;
    let (token, _) = app.logged_in_user("ada@example.com").await;
    let forgot = app
        .post(
            "/auth/forgot-password",
            &json!({"email": "ada@example.com"}),
        )
        .await;
    assert_eq!(forgot.status(), StatusCode::ACCEPTED);
    wait_for_queued_mail(&app).await;
    let database_url = app.database_url();
    let dir = app.stop().await;
    let (old_key, new_key) = (dir.path().join("latchkey.key"), dir.path().join("new.key"));
    let before = sealed_values(&database_url).await;
    assert_eq!(before.len(), 3, "canary, signing key, queued mail");

    let output = rotate_secret(&database_url, &old_key, &new_key);

    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    assert!(output.status.success(), "{stderr}");
    assert!(
        stdout.contains("1 signing key(s), 1 queued mail(s) and 0 TOTP secret(s)"),
        "{stdout}"
    );
    assert!(stdout.contains("reset codes already mailed"), "{stdout}");
    #[cfg(unix)]
    assert_eq!(mode(&new_key), "600", "the new key file");
    for key in [&old_key, &new_key] {
        let key = std::fs::read_to_string(key).unwrap();
        assert!(!stdout.contains(key.trim()) && !stderr.contains(key.trim()));
    }
    let after = sealed_values(&database_url).await;
    assert_eq!(after.len(), before.len());
    for (old, new) in before.iter().zip(&after) {
        assert_ne!(old, new, "every sealed value is sealed anew");
    }

    let stderr = serve_stops(&database_url, &old_key);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("not the key this database was sealed with"),
        "{stderr}"
    );

    let mail_dir = tempfile::tempdir().unwrap();
    let restarted = spawn_app_with(&[
        "--database-url",
        &database_url,
        "--secret-key-file",
        &new_key.display().to_string(),
        "--mail-dir",
        &mail_dir.path().display().to_string(),
        issuer[0],
        issuer[1],
    ])
    .await;
    let verify = restarted.get("/auth/verify", Some(&token)).await;
    assert_eq!(
        verify.status(),
        StatusCode::OK,
        "signed before, verified after"
    );
    // Past the failed try's backoff (and any claim left by the stopped instance).
    restarted.state.clock.advance(time::Duration::minutes(5));
    let eml = std::fs::read_to_string(wait_for_eml(mail_dir.path()).await).unwrap();
    assert!(
        eml.contains("/reset-password?token="),
        "the queued mail opens and goes out"
    );

    let rotate = |key: &Path| {
        let mut command = latchkey();
        command
            .args(["keys", "rotate"])
            .env("LATCHKEY_DATABASE_URL", &database_url)
            .env("LATCHKEY_SECRET_KEY_FILE", key);
        output_beside(command)
    };
    let output = rotate(&new_key).await;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        !rotate(&old_key).await.status.success(),
        "the old key adds no key"
    );
    let opened = keys::current(&restarted.state.store, &restarted.state.sealer, "EdDSA")
        .await
        .unwrap();
    assert_eq!(opened.len(), 2, "both open with the new key");
}

#[tokio::test]
async fn rotating_the_secret_key_without_the_current_key_changes_nothing() {
    let app = spawn_app_with(&["--smtp-url", "smtp://127.0.0.1:1"]).await;
    app.create_verified_user("ada@example.com", PASSWORD).await;
    let forgot = app
        .post(
            "/auth/forgot-password",
            &json!({"email": "ada@example.com"}),
        )
        .await;
    assert_eq!(forgot.status(), StatusCode::ACCEPTED);
    wait_for_queued_mail(&app).await;
    let database_url = app.database_url();
    let dir = app.stop().await;
    let before = sealed_values(&database_url).await;
    let key = dir.path().join("latchkey.key");
    let wrong = dir.path().join("wrong.key");
    latchkey::files::create_private(&wrong, "cd".repeat(32).as_bytes()).unwrap();
    let missing = dir.path().join("missing.key");
    let new_key = dir.path().join("new.key");

    for (current, new, says) in [
        (
            &wrong,
            &new_key,
            "not the key this database was sealed with",
        ),
        (&missing, &new_key, "does not exist"),
        (&key, &key, "the current one"),
    ] {
        let output = rotate_secret(&database_url, current, new);

        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
        assert!(stderr.contains(says), "{stderr}");
        assert!(!stderr.contains("cdcdcdcd"));
        assert!(!new_key.exists() && !missing.exists(), "no key file made");
        assert_eq!(sealed_values(&database_url).await, before, "{says}");
    }

    // The current key still starts.
    spawn_app_with(&[
        "--database-url",
        &database_url,
        "--secret-key-file",
        &key.display().to_string(),
    ])
    .await;
}
