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
    let cases: [(&[(&str, &str)], &str); 4] = [
        (
            &[("LATCHKEY_LISTEN", "127.0.0.1:9464")],
            "LATCHKEY_METRICS_LISTEN",
        ),
        (
            &[
                ("LATCHKEY_JWT_ALG", "HS256"),
                ("LATCHKEY_JWT_SECRET", "too-short-secret"),
            ],
            "LATCHKEY_JWT_SECRET",
        ),
        (
            &[("LATCHKEY_PASSWORD_MIN_LENGTH", "4")],
            "LATCHKEY_PASSWORD_MIN_LENGTH",
        ),
        // Every address but loopback is reached by a name latchkey cannot guess.
        (&[("LATCHKEY_LISTEN", "0.0.0.0:0")], "LATCHKEY_PUBLIC_URL"),
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

#[test]
fn a_usage_error_prints_clap_s_whole_message() {
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);
    let cases: [Case; 5] = [
        (&["users", "add"], &[], "--email <EMAIL>"),
        (
            &["serve"],
            &[("LATCHKEY_LISTEN", "not-an-address")],
            "--listen",
        ),
        (
            &["serve"],
            &[("LATCHKEY_METRICS_LISTEN", "9464")],
            "--metrics-listen",
        ),
        (
            &["serve"],
            &[("LATCHKEY_BODY_TIMEOUT", "forever")],
            "--body-timeout",
        ),
        (
            &["serve"],
            &[("LATCHKEY_ACCESS_TOKEN_TTL", "ten minutes")],
            "--access-token-ttl",
        ),
    ];
    for (args, env, mentions) in cases {
        let output = latchkey()
            .args(args)
            .envs(env.iter().copied())
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(mentions), "{stderr}");
        assert!(stderr.contains("--help"), "the hint is kept: {stderr}");
        assert!(
            !stderr.contains('\x1b'),
            "no colour off a terminal: {stderr}"
        );
    }
    let missing = latchkey().args(["users", "add"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(stderr.contains("Usage: latchkey users add"), "{stderr}");
}

#[test]
fn version_names_the_commit() {
    let output = latchkey().arg("--version").output().unwrap();
    assert!(output.status.success());
    let version = String::from_utf8_lossy(&output.stdout);
    assert!(
        version.starts_with(&format!("latchkey {}", env!("CARGO_PKG_VERSION"))),
        "{version}"
    );
    let head = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output();
    match head {
        Ok(head) if head.status.success() => {
            let head = String::from_utf8_lossy(&head.stdout);
            assert!(
                version.contains(&format!("(commit {})", head.trim())),
                "{version}"
            );
        }
        // An export without git history: the build says so rather than guessing.
        _ => assert!(version.contains("(commit "), "{version}"),
    }
}

#[test]
fn a_reader_that_goes_away_ends_the_output_without_a_panic() {
    let mut child = latchkey()
        .arg("openapi")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // `latchkey openapi | head -c 10`: the spec is larger than a pipe's buffer, so the writer
    // is still writing when its reader closes.
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0_u8; 10];
    std::io::Read::read_exact(&mut stdout, &mut first).unwrap();
    drop(stdout);
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn commands_on_an_existing_database_refuse_to_create_one_unless_asked() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["users", "add", "--email", "ada@example.com"][..],
        &["users", "import", "users.jsonl"],
        &["keys", "rotate"],
    ] {
        let mut child = latchkey()
            .args(args)
            .current_dir(dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        writeln!(child.stdin.take().unwrap(), "{PASSWORD}").unwrap();
        let output = child.wait_with_output().unwrap();
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
        assert!(
            stderr.contains("latchkey.db") && stderr.contains("--create"),
            "{stderr}"
        );
        assert!(
            !dir.path().join("latchkey.db").exists(),
            "{args:?} created a database"
        );
    }

    let mut child = latchkey()
        .args(["users", "add", "--create", "--email", "ada@example.com"])
        .current_dir(dir.path())
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
    assert!(dir.path().join("latchkey.db").exists());
}

/// On a terminal the password is asked for twice and never echoed. The terminal is a real
/// pseudo-terminal, driven by Python's `pty` module.
#[test]
fn on_a_terminal_the_password_is_prompted_for_without_echo() {
    let Some(python) = crate::support::tool("python3", "the terminal prompt test") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let driver = r#"
import os, pty, sys, termios, time
pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.argv[1], [sys.argv[1], "users", "add", "--create", "--email", "ada@example.com"])
seen = b""
def until(marker):
    global seen
    while marker not in seen:
        chunk = os.read(fd, 1024)
        if not chunk:
            sys.exit("the prompt never came: %r" % seen)
        seen += chunk
def echo_off():
    # The prompt is written before echo is turned off: type only once it is.
    for _ in range(500):
        if not termios.tcgetattr(fd)[3] & termios.ECHO:
            return
        time.sleep(0.01)
    sys.exit("echo stayed on")
until(b"Password for ada@example.com: ")
echo_off()
os.write(fd, sys.argv[2].encode() + b"\n")
until(b"Repeat it: ")
echo_off()
os.write(fd, sys.argv[2].encode() + b"\n")
while True:
    try:
        chunk = os.read(fd, 1024)
    except OSError:
        break
    if not chunk:
        break
    seen += chunk
_, status = os.waitpid(pid, 0)
sys.stdout.write(seen.decode(errors="replace"))
sys.exit(os.waitstatus_to_exitcode(status))
"#;
    let output = std::process::Command::new(python)
        .args(["-c", driver, env!("CARGO_BIN_EXE_latchkey"), PASSWORD])
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .output()
        .unwrap();
    let terminal = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{terminal}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(terminal.contains("ada@example.com"), "{terminal}");
    assert!(
        !terminal.contains(PASSWORD),
        "the password was echoed: {terminal}"
    );
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
        // Text logs to a pipe or file carry no colour escapes.
        assert!(!line.contains('\x1b'), "{line:?}");
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

#[test]
fn settings_come_from_a_config_file_that_variables_and_flags_override() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("latchkey.toml");
    std::fs::write(&config, "LATCHKEY_PASSWORD_MIN_LENGTH = 4\n").unwrap();
    // The file's value is used, and validated like the variable's.
    let from_file = latchkey()
        .args(["serve", "--config"])
        .arg(&config)
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&from_file.stderr);
    assert!(!from_file.status.success());
    assert!(stderr.contains("LATCHKEY_PASSWORD_MIN_LENGTH"), "{stderr}");
    // A variable overrides the file: the bad value is gone and only the next mistake shows.
    let overridden = latchkey()
        .args(["serve", "--listen", "0.0.0.0:0"])
        .env("LATCHKEY_CONFIG", &config)
        .env("LATCHKEY_PASSWORD_MIN_LENGTH", "12")
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&overridden.stderr);
    assert!(stderr.contains("LATCHKEY_PUBLIC_URL"), "{stderr}");
    // An unknown key is a mistake, said with the key's name.
    std::fs::write(&config, "LATCHKEY_LISTN = \"127.0.0.1:1\"\n").unwrap();
    let unknown = latchkey()
        .args(["serve", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&unknown.stderr);
    assert!(!unknown.status.success());
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("LATCHKEY_LISTN"), "{stderr}");
}

#[test]
fn a_secret_may_come_from_a_file_and_never_shows_in_help() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("jwt-secret");
    std::fs::write(&secret, "too-short-secret\n").unwrap();
    let output = latchkey()
        .arg("serve")
        .env("LATCHKEY_JWT_ALG", "HS256")
        .env("LATCHKEY_JWT_SECRET_FILE", &secret)
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    // The file's secret was read (and found too short), and is not printed.
    assert!(
        stderr.contains("LATCHKEY_JWT_SECRET must be at least 32 bytes"),
        "{stderr}"
    );
    assert!(!stderr.contains("too-short-secret"), "{stderr}");
    let both = latchkey()
        .arg("serve")
        .env(
            "LATCHKEY_JWT_SECRET",
            "an-hmac-secret-of-at-least-32-bytes!",
        )
        .env("LATCHKEY_JWT_SECRET_FILE", &secret)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&both.stderr);
    assert!(!both.status.success());
    assert!(
        stderr.contains("not both") && !stderr.contains("hmac"),
        "{stderr}"
    );
    let help = latchkey()
        .args(["serve", "--help"])
        .env("LATCHKEY_JWT_SECRET_FILE", &secret)
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&help.stdout).contains("too-short-secret"));
}

#[test]
fn a_key_file_named_by_a_variable_beats_the_secret_key_of_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("latchkey.toml");
    std::fs::write(
        &config,
        "LATCHKEY_SECRET_KEY = \"a secret key of the config file, 32+ bytes\"\n",
    )
    .unwrap();
    let key_file = dir.path().join("from-the-environment.key");
    let rotated = latchkey()
        .args(["keys", "rotate", "--create", "--config"])
        .arg(&config)
        .env("LATCHKEY_SECRET_KEY_FILE", &key_file)
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        rotated.status.success(),
        "{}",
        String::from_utf8_lossy(&rotated.stderr)
    );
    assert!(
        key_file.exists(),
        "the variable's key file is the secret key, not the file's LATCHKEY_SECRET_KEY"
    );
    // Without the variable, the file's secret key is used and no key file is made.
    let other = tempfile::tempdir().unwrap();
    let from_file = latchkey()
        .args(["keys", "rotate", "--create", "--config"])
        .arg(&config)
        .current_dir(other.path())
        .output()
        .unwrap();
    assert!(from_file.status.success());
    assert!(!other.path().join("latchkey.key").exists());
}
