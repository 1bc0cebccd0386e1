//! The hosted pages in a real browser: headless Chromium driven over WebDriver (chromedriver),
//! from the link in a received mail to the success page (no JavaScript), and the sign-in pages'
//! second factors with chromedriver's virtual authenticator (the WebDriver WebAuthn extension).

use crate::mfa::{base32_decode, totp_code};
use crate::support::{PASSWORD, free_port, spawn_app, spawn_app_with, spawn_app_with_mail};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(15);
const NEW_PASSWORD: &str = "a brand new passphrase";

/// A headless Chromium session behind chromedriver; both end when this is dropped.
struct Browser {
    driver: Child,
    session: String,
    client: reqwest::Client,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// `None` (the test is skipped) when chromedriver is missing, except in CI, where it must be.
    async fn start() -> Option<Browser> {
        let chromedriver = ["/usr/bin/chromedriver", "/usr/local/bin/chromedriver"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists());
        let Some(chromedriver) = chromedriver else {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must run the browser test: install chromium and chromium-driver"
            );
            eprintln!(
                "skipping the browser test: chromedriver is not installed (apt-get install chromium chromium-driver)"
            );
            return None;
        };
        let port = free_port().await;
        let driver = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let profile = tempfile::tempdir().unwrap();
        let client = reqwest::Client::new();
        let base = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        while client.get(format!("{base}/status")).send().await.is_err() {
            assert!(started.elapsed() < WAIT, "chromedriver did not come up");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // As on every machine here: headless, no sandbox (root), and no background traffic.
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=390,844",
        ];
        let mut args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        args.push(format!("--user-data-dir={}", profile.path().display()));
        let capabilities = json!({"capabilities": {"alwaysMatch": {"browserName": "chrome",
            "goog:chromeOptions": {"binary": "/usr/bin/chromium", "args": args}}}});
        let created: Value = client
            .post(format!("{base}/session"))
            .json(&capabilities)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let session = created["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {created}"))
            .to_owned();
        Some(Browser {
            driver,
            session: format!("{base}/session/{session}"),
            client,
            _profile: profile,
        })
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let mut request = self
            .client
            .request(method.clone(), format!("{}{path}", self.session));
        if method != reqwest::Method::GET {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let value: Value = response.json().await.unwrap();
        assert!(
            value["value"].get("error").is_none(),
            "webdriver {path}: {value}"
        );
        value["value"].clone()
    }

    async fn open(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", json!({"url": url}))
            .await;
    }

    async fn element(&self, css: &str) -> String {
        let found = self
            .call(
                reqwest::Method::POST,
                "/element",
                json!({"using": "css selector", "value": css}),
            )
            .await;
        found
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .expect("element id")
            .to_owned()
    }

    async fn click(&self, css: &str) {
        let element = self.element(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{element}/click"),
            json!({}),
        )
        .await;
    }

    async fn type_into(&self, css: &str, text: &str) {
        let element = self.element(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{element}/value"),
            json!({"text": text}),
        )
        .await;
    }

    /// Runs `script` in the page and gives its result.
    async fn script(&self, script: &str) -> Value {
        self.call(
            reqwest::Method::POST,
            "/execute/sync",
            json!({"script": script, "args": []}),
        )
        .await
    }

    /// Runs `script` in the page, which calls its last argument with the result.
    async fn script_async(&self, script: &str) -> Value {
        self.call(
            reqwest::Method::POST,
            "/execute/async",
            json!({"script": script, "args": []}),
        )
        .await
    }

    /// The text of the first element matching `css`.
    async fn text(&self, css: &str) -> String {
        let element = self.element(css).await;
        let text = self
            .call(
                reqwest::Method::GET,
                &format!("/element/{element}/text"),
                json!(null),
            )
            .await;
        text.as_str().unwrap_or_default().to_owned()
    }

    /// Waits until the page (which may still be loading after a click) shows `expected`.
    async fn wait_for_text(&self, expected: &str) {
        let started = Instant::now();
        let mut last = String::new();
        while started.elapsed() < WAIT {
            let found: Value = self
                .client
                .post(format!("{}/element", self.session))
                .json(&json!({"using": "css selector", "value": "body"}))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if let Some(body) = found["value"]
                .as_object()
                .and_then(|o| o.values().next())
                .and_then(Value::as_str)
            {
                let text: Value = self
                    .client
                    .get(format!("{}/element/{body}/text", self.session))
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                last = text["value"].as_str().unwrap_or_default().to_owned();
                if last.contains(expected) {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the page never showed {expected:?}; last seen: {last}");
    }

    /// Saves a PNG of the page when `LATCHKEY_SCREENSHOTS` names a directory (for a person to look at).
    async fn screenshot(&self, name: &str) {
        let Some(dir) = std::env::var_os("LATCHKEY_SCREENSHOTS") else {
            return;
        };
        let png = self
            .call(reqwest::Method::GET, "/screenshot", json!(null))
            .await;
        let bytes = base64::Engine::decode(
            &base64::engine::general_purpose::STANDARD,
            png.as_str().unwrap(),
        )
        .unwrap();
        std::fs::write(
            std::path::Path::new(&dir).join(format!("{name}.png")),
            bytes,
        )
        .unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        // Chromium leaves chromedriver's process group, so it would outlive the driver: end the
        // processes that use this test's own profile directory, and only those.
        let profile = format!("--user-data-dir={}", self._profile.path().display());
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            if cmdline
                .split(|b| *b == 0)
                .any(|arg| arg == profile.as_bytes())
            {
                let _ = Command::new("kill").arg(pid.to_string()).status();
            }
        }
    }
}

#[tokio::test]
async fn a_person_confirms_the_email_and_resets_the_password_in_a_browser() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let (app, smtp) = spawn_app_with_mail(&[]).await;
    app.register("ada@example.com", PASSWORD).await;
    let welcome = smtp.wait_for_mail_to("ada@example.com", 1).await;

    browser.open(&welcome.confirm_link()).await;
    browser.wait_for_text("Confirm your email address").await;
    browser.screenshot("confirm").await;
    // A self-registered account's first confirmation asks for its password (pre-hijacking).
    browser.type_into("#password", PASSWORD).await;
    browser.click("button[type=submit]").await;
    browser
        .wait_for_text("Your email address is confirmed")
        .await;
    browser.screenshot("confirmed").await;
    assert_eq!(
        app.login("ada@example.com", PASSWORD).await.status(),
        StatusCode::OK
    );

    app.post(
        "/auth/forgot-password",
        &json!({"email": "ada@example.com"}),
    )
    .await;
    let reset = smtp.wait_for_mail_to("ada@example.com", 2).await;
    browser.open(&reset.reset_link()).await;
    browser.wait_for_text("Choose a new password").await;
    browser.screenshot("reset").await;
    browser.type_into("#new_password", NEW_PASSWORD).await;
    browser.click("button[type=submit]").await;

    browser
        .wait_for_text("Your password has been changed")
        .await;
    browser.screenshot("reset-done").await;
    assert_eq!(
        app.login("ada@example.com", NEW_PASSWORD).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        app.login("ada@example.com", PASSWORD).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn a_person_signs_in_with_the_mailed_link_by_pressing_its_button() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let (app, smtp) = spawn_app_with_mail(&[]).await;
    app.register("ada@example.com", PASSWORD).await;
    let welcome = smtp.wait_for_mail_to("ada@example.com", 1).await;
    crate::mail::confirm_for_tests(&app, &welcome.confirm_token()).await;
    app.post("/auth/email-login", &json!({"email": "ada@example.com"}))
        .await;
    let mail = smtp.wait_for_mail_to("ada@example.com", 2).await;
    let link = format!("{}/email-login?token={}", app.url, mail.login_token());

    // Opening the page (as a mail scanner would) spends nothing; only the button does.
    browser.open(&link).await;
    browser.wait_for_text("Sign in").await;
    assert_eq!(app.events_of_type("USER_LOGIN").await.len(), 0);
    browser.screenshot("email-login").await;
    browser.click("#email-link button").await;
    browser.wait_for_text("Signed in as ada@example.com").await;
    browser.screenshot("email-login-done").await;
    let logins = app.events_of_type("USER_LOGIN").await;
    assert_eq!(logins.len(), 1);
    // The page's token is spent: opening the link again says so, with no button.
    browser.open(&link).await;
    browser
        .wait_for_text("This link does not work any more")
        .await;
}

#[tokio::test]
async fn a_person_confirms_a_new_address_and_the_old_one_undoes_it_in_a_browser() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let (app, smtp) = spawn_app_with_mail(&[]).await;
    let (token, _) = app.logged_in_user("ada@example.com").await;
    let asked = app
        .send(
            reqwest::Method::POST,
            "/users/me/email",
            &token,
            &json!({"new_email": "ada@example.org"}),
        )
        .await;
    assert_eq!(asked.status(), StatusCode::ACCEPTED);
    let confirmation = smtp.wait_for_mail_to("ada@example.org", 1).await;
    let notice = smtp.wait_for_mail_to("ada@example.com", 1).await;

    // Opening either page (as a mail scanner would) spends nothing; only its button does.
    let revert = format!(
        "{}/revert-email-change?token={}",
        app.url,
        notice.revert_token()
    );
    browser.open(&revert).await;
    browser.wait_for_text("Undo the email change").await;
    let confirm = format!(
        "{}/confirm-email-change?token={}",
        app.url,
        confirmation.email_change_token()
    );
    browser.open(&confirm).await;
    browser
        .wait_for_text("Confirm your new email address")
        .await;
    browser.screenshot("email-change").await;
    assert_eq!(app.events_of_type("EMAIL_CHANGED").await.len(), 0);
    browser.click("button[type=submit]").await;
    browser.wait_for_text("Your email address is changed").await;
    assert_eq!(app.events_of_type("EMAIL_CHANGED").await.len(), 1);

    browser.open(&revert).await;
    browser.wait_for_text("ada@example.org").await;
    browser.click("button[type=submit]").await;
    browser.wait_for_text("The change is undone").await;
    browser.screenshot("email-change-undone").await;
    assert_eq!(app.events_of_type("EMAIL_CHANGE_REVERTED").await.len(), 1);
    assert_eq!(
        app.get("/users/me", Some(&token)).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn a_person_enrols_totp_and_a_passkey_then_signs_in_with_each_in_a_browser() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    // A platform authenticator that holds discoverable credentials and verifies its user.
    browser
        .call(
            reqwest::Method::POST,
            "/webauthn/authenticator",
            json!({"protocol": "ctap2", "transport": "internal", "hasResidentKey": true,
                "hasUserVerification": true, "isUserConsenting": true, "isUserVerified": true}),
        )
        .await;
    let app = spawn_app().await;
    app.create_verified_user("ada@example.com", PASSWORD).await;
    // An IP address is no WebAuthn origin: the browser visits the loopback by name.
    let port = reqwest::Url::parse(&app.url).unwrap().port().unwrap();
    let site = format!("http://localhost:{port}");

    browser.open(&format!("{site}/login")).await;
    browser.wait_for_text("Sign in with a passkey").await;
    browser.type_into("#email", "ada@example.com").await;
    browser.type_into("#password", PASSWORD).await;
    browser.click("#password-form button[type=submit]").await;
    browser.wait_for_text("Signed in as ada@example.com").await;

    browser.open(&format!("{site}/account/security")).await;
    browser.wait_for_text("Not set up.").await;
    browser.click("#totp-start").await;
    browser.wait_for_text("Scan the code").await;
    let secret = base32_decode(&browser.text("#totp-secret").await);
    let started = Instant::now();
    while browser
        .script("return document.getElementById('totp-qr').naturalWidth")
        .await
        .as_u64()
        .unwrap_or(0)
        == 0
    {
        assert!(started.elapsed() < WAIT, "the QR code never rendered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    browser.screenshot("security-totp").await;
    let now = app.state.clock.now().unix_timestamp();
    browser
        .type_into("#totp-code", &totp_code(&secret, now))
        .await;
    browser.click("#totp-confirm button[type=submit]").await;
    browser.wait_for_text("Authenticator app set up.").await;
    assert_eq!(
        browser
            .script("return document.querySelectorAll('#codes-list li').length")
            .await,
        10,
        "the recovery codes are shown once"
    );
    browser.click("#passkey-add").await;
    browser.wait_for_text("Passkey added.").await;
    browser.screenshot("security-passkey").await;

    // The password alone no longer signs in: the page asks for the code.
    browser.script("sessionStorage.clear()").await;
    browser.open(&format!("{site}/login")).await;
    browser.wait_for_text("Sign in with a passkey").await;
    browser.type_into("#email", "ada@example.com").await;
    browser.type_into("#password", PASSWORD).await;
    browser.click("#password-form button[type=submit]").await;
    browser.wait_for_text("Enter the code").await;
    app.state.clock.advance(time::Duration::seconds(30));
    let now = app.state.clock.now().unix_timestamp();
    browser.type_into("#code", &totp_code(&secret, now)).await;
    browser.click("#second-factor button[type=submit]").await;
    browser.wait_for_text("Signed in as ada@example.com").await;

    // And the passkey alone signs in: no email, no password.
    browser.script("sessionStorage.clear()").await;
    browser.open(&format!("{site}/login")).await;
    browser.wait_for_text("Sign in with a passkey").await;
    browser.click("#passkey-login").await;
    browser.wait_for_text("Signed in as ada@example.com").await;
    let token = browser
        .script("return sessionStorage.getItem('latchkey.access')")
        .await;
    let claims = jsonwebtoken::dangerous::insecure_decode::<Value>(token.as_str().unwrap())
        .unwrap()
        .claims;
    // A user-verified passkey is two factors in one (possession and the device's PIN or biometric).
    assert_eq!(claims["amr"], json!(["hwk", "mfa"]), "{claims}");
    assert_eq!(claims["acr"], "aal2");

    // An app's OAuth sign-in takes the passkey as the second factor, or as the whole sign-in.
    let callback = format!("http://127.0.0.1:{}/callback", callback_server().await);
    let admin = app.admin_token().await;
    let created: Value = app
        .send(
            reqwest::Method::POST,
            "/oauth/clients",
            &admin,
            &json!({"name": "Dashboard", "first_party": true, "redirect_uris": [callback],
                    "scopes": ["openid"]}),
        )
        .await
        .json()
        .await
        .unwrap();
    let id = created["client_id"].as_str().unwrap();
    let secret = created["client_secret"].as_str().unwrap();
    let verifier = "v".repeat(64);
    let challenge = latchkey::crypto::random::sha256_b64(verifier.as_bytes());
    let authorize = format!(
        "{site}/oauth/authorize?response_type=code&client_id={id}&redirect_uri={callback}&scope=openid&code_challenge={challenge}&code_challenge_method=S256&prompt=login"
    );
    let signed_in_by = async |how: &str| {
        browser.wait_for_text("back at the app").await;
        let landed = browser
            .call(reqwest::Method::GET, "/url", json!(null))
            .await;
        let landed = reqwest::Url::parse(landed.as_str().unwrap()).unwrap();
        let code = landed
            .query_pairs()
            .find(|(k, _)| k == "code")
            .map(|(_, v)| v.into_owned())
            .unwrap_or_else(|| panic!("{how}: no code in {landed}"));
        let tokens: Value = app
            .client
            .post(format!("{}/oauth/token", app.url))
            .basic_auth(id, Some(secret))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code.as_str()),
                ("redirect_uri", callback.as_str()),
                ("code_verifier", verifier.as_str()),
            ])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let token = tokens["id_token"]
            .as_str()
            .unwrap_or_else(|| panic!("{how}: {tokens}"));
        jsonwebtoken::dangerous::insecure_decode::<Value>(token)
            .unwrap()
            .claims
    };
    browser.open(&authorize).await;
    browser.wait_for_text("Sign in to Dashboard").await;
    browser.type_into("#email", "ada@example.com").await;
    browser.type_into("#password", PASSWORD).await;
    browser.click("form button[type=submit]").await;
    browser.wait_for_text("Use a passkey instead").await;
    browser.click("#oauth-mfa-passkey").await;
    let claims = signed_in_by("password, then passkey").await;
    assert_eq!(claims["acr"], "aal2", "{claims}");
    assert!(
        claims["amr"].as_array().unwrap().contains(&json!("hwk")),
        "{claims}"
    );

    browser.open(&authorize).await;
    browser.wait_for_text("Sign in with a passkey").await;
    browser.click("#oauth-passkey").await;
    let claims = signed_in_by("passkey alone").await;
    assert_eq!(claims["acr"], "aal2", "{claims}");
    assert_eq!(claims["amr"], json!(["hwk", "mfa"]), "{claims}");
}

/// A browser app on another origin signs in, refreshes and signs out with the refresh token in
/// an HttpOnly cookie its scripts never see (cookie mode, CORS for that origin).
#[tokio::test]
async fn a_browser_app_on_another_origin_keeps_the_refresh_token_in_a_cookie() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    // The app's page: any document served from another port is another origin.
    let page = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let page_port = page.local_addr().unwrap().port();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut stream, _)) = page.accept().await {
            let mut request = [0_u8; 4096];
            let _ = stream.read(&mut request).await;
            let body = "<!doctype html><title>app</title><p>the app</p>";
            let answer = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(answer.as_bytes()).await;
        }
    });
    let origin = format!("http://localhost:{page_port}");
    let app = spawn_app_with(&[
        "--public-url",
        "http://localhost:{port}",
        "--cors-origins",
        &origin,
        "--refresh-cookie",
        "true",
        "--require-email-verification",
        "false",
    ])
    .await;
    app.register("ada@example.com", PASSWORD).await;
    let port = app.url.rsplit(':').next().unwrap().to_owned();

    browser.open(&format!("{origin}/")).await;
    let script = format!(
        r#"const done = arguments[arguments.length - 1];
        const base = "http://localhost:{port}";
        (async () => {{
          const login = await fetch(base + "/auth/login", {{
            method: "POST", credentials: "include",
            headers: {{"content-type": "application/json"}},
            body: JSON.stringify({{email: "ada@example.com", password: "{PASSWORD}"}})
          }});
          const first = await login.json();
          const refresh = await fetch(base + "/auth/refresh", {{method: "POST", credentials: "include"}});
          const second = await refresh.json();
          const logout = await fetch(base + "/auth/logout", {{method: "POST", credentials: "include"}});
          const after = await fetch(base + "/auth/refresh", {{method: "POST", credentials: "include"}});
          done({{
            login: login.status, refresh: refresh.status, logout: logout.status, after: after.status,
            rotated: !!second.access_token && second.refresh_token !== first.refresh_token,
            visible: document.cookie
          }});
        }})().catch(error => done({{error: String(error)}}));"#
    );
    let outcome = browser.script_async(&script).await;
    assert_eq!(outcome["login"], 200, "{outcome}");
    assert_eq!(
        outcome["refresh"], 200,
        "the cookie alone refreshed: {outcome}"
    );
    assert_eq!(outcome["rotated"], true, "{outcome}");
    assert_eq!(outcome["logout"], 204, "{outcome}");
    assert_eq!(
        outcome["after"], 400,
        "logout cleared the cookie: {outcome}"
    );
    assert_eq!(
        outcome["visible"], "",
        "scripts never see the cookie: {outcome}"
    );
}

/// The Python of the test tools' environment, with authlib; `None` (skipped) when it is missing,
/// except in CI.
fn authlib_python() -> Option<std::path::PathBuf> {
    let python = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/py/bin/python");
    let ready = python.exists()
        && Command::new(&python)
            .args(["-c", "import authlib, requests"])
            .status()
            .is_ok_and(|status| status.success());
    if !ready {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must run the authlib test: .ci/run installs authlib into target/py"
        );
        eprintln!(
            "skipping the authlib test: python3 -m venv target/py && target/py/bin/pip install authlib requests"
        );
        return None;
    }
    Some(python)
}

/// A callback the browser lands on: any request gets a page that says so.
async fn callback_server() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut buffer = [0u8; 4096];
            let _ = stream.read(&mut buffer).await;
            let body = "<html><body>back at the app</body></html>";
            let answer = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(answer.as_bytes()).await;
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authlib_signs_a_user_in_through_chromium_with_a_second_factor_and_consent() {
    let Some(python) = authlib_python() else {
        return;
    };
    let Some(browser) = Browser::start().await else {
        return;
    };
    let app = spawn_app_with(&["--public-url", "http://127.0.0.1:{port}"]).await;
    let (_, _, recovery_codes) = crate::mfa::user_with_totp(&app, "ada@example.com").await;
    let redirect = format!("http://127.0.0.1:{}/callback", callback_server().await);
    let admin = app.admin_token().await;
    let created: Value = app
        .send(
            reqwest::Method::POST,
            "/oauth/clients",
            &admin,
            &json!({"name": "Dashboard", "redirect_uris": [redirect],
                    "scopes": ["openid", "email", "profile", "offline_access"]}),
        )
        .await
        .json()
        .await
        .unwrap();
    let state_file = app.dir.path().join("rp.json");
    let rp = |args: Vec<String>| {
        let output = Command::new(&python)
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/oidc_rp.py"))
            .args(args)
            .env("OIDC_ISSUER", &app.url)
            .env("OIDC_CLIENT_ID", created["client_id"].as_str().unwrap())
            .env(
                "OIDC_CLIENT_SECRET",
                created["client_secret"].as_str().unwrap(),
            )
            .env("OIDC_REDIRECT_URI", &redirect)
            .output()
            .expect("python runs");
        assert!(
            output.status.success(),
            "authlib: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap().trim().to_owned()
    };
    let state = state_file.display().to_string();
    let url = tokio::task::block_in_place(|| rp(vec!["start".into(), state.clone()]));

    browser.open(&url).await;
    browser.wait_for_text("Sign in to Dashboard").await;
    browser.type_into("#email", "ada@example.com").await;
    browser.type_into("#password", PASSWORD).await;
    browser.click("button[type=submit]").await;
    browser.wait_for_text("recovery code").await;
    browser.type_into("#code", &recovery_codes[0]).await;
    browser.click("button[type=submit]").await;
    browser.wait_for_text("Allow Dashboard?").await;
    browser.screenshot("oauth-consent").await;
    browser.click("button[value=consent]").await;
    browser.wait_for_text("back at the app").await;
    let landed = browser
        .call(reqwest::Method::GET, "/url", json!(null))
        .await;
    let landed = landed.as_str().unwrap().to_owned();
    assert!(landed.starts_with(&redirect), "{landed}");

    let answer =
        tokio::task::block_in_place(|| rp(vec!["finish".into(), state.clone(), landed.clone()]));
    let answer: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(answer["claims"]["acr"], "aal2", "{answer}");
    assert_eq!(answer["claims"]["email"], "ada@example.com");
    assert!(
        answer["claims"]["amr"]
            .as_array()
            .unwrap()
            .contains(&json!("otp"))
    );
    assert_eq!(answer["userinfo"]["email"], "ada@example.com");
}
