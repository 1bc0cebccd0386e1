//! Issue 12's holes, each shown closed: budgets keyed by validated subjects, logins that race a
//! disable, forgot/resend doing the same work for every address, conceal mode at login,
//! pre-hijacking, password checks counted when they start (per account and network, with a
//! daily cap that never locks the owner out), reset-code spraying, and the admin guard rails.

use crate::support::{
    PASSWORD, Serve, TestApp, assert_problem, free_port, fresh_database, quiet_state, register_in,
    spawn_app, spawn_app_with, spawn_app_with_mail, until_ready,
};
use latchkey::service::accounts::Origin;
use latchkey::service::{mail_requests, recovery};
use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};
use std::time::Duration;

const WRONG: &str = "not the right password";

/// Settings that let a test speak from any client network (through a trusted proxy), with the
/// login budgets off so that only the password-check accounting answers.
const BEHIND_PROXY: [&str; 6] = [
    "--trusted-proxies",
    "127.0.0.1/32",
    "--rate-limit-login-account",
    "off",
    "--rate-limit-login-ip",
    "off",
];

async fn post_from(app: &TestApp, ip: &str, path: &str, body: &Value) -> Response {
    app.client
        .post(format!("{}{path}", app.url))
        .header("x-forwarded-for", ip)
        .json(body)
        .send()
        .await
        .unwrap()
}

async fn login_from(app: &TestApp, ip: &str, email: &str, password: &str) -> Response {
    post_from(
        app,
        ip,
        "/auth/login",
        &json!({"email": email, "password": password}),
    )
    .await
}

async fn failure_reasons(app: &TestApp) -> Vec<String> {
    app.events_of_type("USER_LOGIN_FAILED")
        .await
        .iter()
        .map(|e| e["data"]["reason"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn invalid_or_huge_emails_touch_no_account_budget() {
    let app = spawn_app().await;
    let huge = "\u{FDFA}".repeat(20_000);
    for email in [huge.as_str(), "not an address", "x@"] {
        for path in ["/auth/register", "/auth/login", "/auth/forgot-password"] {
            app.post(path, &json!({"email": email, "password": PASSWORD}))
                .await;
        }
    }
    // Only the client address's budgets (one per action) exist: junk names no account.
    assert!(
        app.state.limiter.budgets_in_memory() <= 3,
        "{} budgets",
        app.state.limiter.budgets_in_memory()
    );
    let huge_filter = "\u{FDFA}".repeat(3_000);
    let admin = app.admin_token().await;
    assert_problem(
        app.get(&format!("/users?email={huge_filter}"), Some(&admin))
            .await,
        StatusCode::BAD_REQUEST,
        "validation_failed",
    )
    .await;
}

#[tokio::test]
async fn a_login_checked_before_a_disable_or_role_change_opens_no_session() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    for change in [json!({"disabled": true}), json!({"role": "admin"})] {
        let email = format!("{}@example.com", uuid::Uuid::now_v7().simple());
        let id = app.create_verified_user(&email, PASSWORD).await;
        let credentials = app.state.store.credentials(id).await.unwrap().unwrap();
        let hash = credentials.password_hash.clone().unwrap();
        // The password was checked; then the admin acts; then the login commits.
        let changed = app
            .send(Method::PATCH, &format!("/users/{id}"), &admin, &change)
            .await;
        assert_eq!(changed.status(), StatusCode::OK);
        let now = app.state.clock.now();
        let session = latchkey::store::NewSession {
            id: uuid::Uuid::now_v7(),
            user_id: id,
            refresh_token_hash: "h".repeat(43),
            user_agent: None,
            ip: None,
            created_at: now,
            expires_at: now + time::Duration::days(1),
            assurance: latchkey::domain::Assurance::password(now),
            grant: None,
        };
        let event = latchkey::domain::Event::refresh_token_reused(id, session.id, now);
        let expects = latchkey::store::LoginExpects {
            password_hash: Some(&hash),
            role: "user",
            email_verified: true,
            attempt: None,
        };
        let recorded = app
            .state
            .store
            .record_login(&session, &expects, None, &event)
            .await
            .unwrap();
        assert!(recorded.is_none(), "{change}");
        assert!(
            app.state
                .store
                .live_sessions(id, now)
                .await
                .unwrap()
                .is_empty()
        );
    }
}

#[tokio::test]
async fn parallel_logins_racing_a_disable_leave_no_live_token() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let id = app.create_verified_user("ada@example.com", PASSWORD).await;
    let logins = (0..15).map(|_| app.login("ada@example.com", PASSWORD));
    let disable = async {
        tokio::time::sleep(Duration::from_millis(80)).await;
        app.send(
            Method::PATCH,
            &format!("/users/{id}"),
            &admin,
            &json!({"disabled": true}),
        )
        .await
    };
    let (answers, disabled) = tokio::join!(futures::future::join_all(logins), disable);
    assert_eq!(disabled.status(), StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    for answer in answers {
        if answer.status() != StatusCode::OK {
            continue;
        }
        let body: Value = answer.json().await.unwrap();
        let token = body["access_token"].as_str().unwrap();
        assert_eq!(
            app.get("/auth/verify", Some(token)).await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    let now = app.state.clock.now();
    assert!(
        app.state
            .store
            .live_sessions(id, now)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn forgot_and_resend_do_the_same_database_work_for_every_address() {
    // No server, no mail worker: only the calls below write.
    let (state, _dir) = quiet_state(&[]).await;
    let origin = Origin::SelfService(latchkey::service::ClientInfo::default());
    register_in(&state, "ada@example.com", PASSWORD, origin)
        .await
        .unwrap();
    for known in ["ada@example.com", "nobody@example.com"] {
        let before = state.store.write_transactions();
        recovery::forgot_password(&state, known).await.unwrap();
        let forgot = state.store.write_transactions() - before;
        let before = state.store.write_transactions();
        recovery::resend_confirmation(&state, known).await.unwrap();
        let resend = state.store.write_transactions() - before;
        assert_eq!((forgot, resend), (1, 1), "{known}");
    }
    // After the answers, the requests are worked off: only the known address gets mail.
    assert_eq!(
        mail_requests::process_mail_requests(&state).await.unwrap(),
        4
    );
    let queued = state
        .store
        .claim_mail(state.clock.now(), time::Duration::minutes(1), 10)
        .await
        .unwrap();
    assert_eq!(queued.len(), 3, "confirmation, reset, confirmation again");
}

#[tokio::test]
async fn in_conceal_mode_logging_in_to_an_unverified_account_answers_like_a_wrong_password() {
    let app = spawn_app_with(&["--conceal-existing-accounts", "true"]).await;
    app.register("ada@example.com", PASSWORD).await;

    let right = app.login("ada@example.com", PASSWORD).await;
    let wrong = app.login("ada@example.com", WRONG).await;

    assert_eq!(right.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        right.json::<Value>().await.unwrap(),
        wrong.json::<Value>().await.unwrap()
    );
}

#[tokio::test]
async fn a_victim_clicking_an_attackers_confirmation_mail_confirms_nothing() {
    let (app, smtp) = spawn_app_with_mail(&[]).await;
    app.register("victim@example.com", "the attackers own password")
        .await;
    let token = smtp
        .wait_for_mail_to("victim@example.com", 1)
        .await
        .confirm_token();

    assert_problem(
        app.post("/auth/confirm-email", &json!({"token": token}))
            .await,
        StatusCode::BAD_REQUEST,
        "validation_failed",
    )
    .await;
    assert_problem(
        app.post(
            "/auth/confirm-email",
            &json!({"token": token, "password": PASSWORD}),
        )
        .await,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    )
    .await;
    assert_problem(
        app.login("victim@example.com", "the attackers own password")
            .await,
        StatusCode::FORBIDDEN,
        "email_not_verified",
    )
    .await;

    // A week later the squatted address is free again.
    app.state
        .clock
        .advance(time::Duration::days(7) + time::Duration::minutes(1));
    let purged = latchkey::service::accounts::purge_unverified(&app.state)
        .await
        .unwrap();
    assert_eq!(purged, 1);
    assert_eq!(
        app.register("victim@example.com", PASSWORD).await.status(),
        StatusCode::CREATED
    );
    let deleted = app.events_of_type("USER_DELETED").await;
    assert_eq!(deleted[0]["data"]["reason"], "unverified_expired");
}

#[tokio::test]
async fn parallel_guesses_get_no_more_tries_than_sequential_ones() {
    let app = spawn_app_with(&BEHIND_PROXY).await;
    app.create_verified_user("ada@example.com", PASSWORD).await;
    for _ in 0..9 {
        login_from(&app, "198.51.100.7", "ada@example.com", WRONG).await;
    }
    let guesses = (0..15).map(|_| login_from(&app, "198.51.100.7", "ada@example.com", WRONG));
    for answer in futures::future::join_all(guesses).await {
        assert_eq!(answer.status(), StatusCode::UNAUTHORIZED);
    }
    let reasons = failure_reasons(&app).await;
    let checked = reasons.iter().filter(|r| *r == "invalid_password").count();
    assert_eq!(
        checked, 10,
        "the tenth failure is free, the rest wait: {reasons:?}"
    );
}

#[tokio::test]
async fn a_guesser_slows_only_his_own_network_never_the_owner() {
    let app = spawn_app_with(&BEHIND_PROXY).await;
    app.create_verified_user("ada@example.com", PASSWORD).await;
    for _ in 0..30 {
        login_from(&app, "203.0.113.9", "ada@example.com", WRONG).await;
    }
    // Even the right password from the guesser's network waits...
    assert_eq!(
        login_from(&app, "203.0.113.9", "ada@example.com", PASSWORD)
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    // ... while the owner, elsewhere, signs in at once; IPv6 neighbours of one /64 are one network.
    assert_eq!(
        login_from(&app, "192.0.2.44", "ada@example.com", PASSWORD)
            .await
            .status(),
        StatusCode::OK
    );
}

/// 100 wrong passwords for `email`, each from its own IPv6 /64 (so no network slows down).
async fn fail_a_day(app: &TestApp, email: &str, round: u32) {
    for n in 0..100 {
        let ip = format!("2001:db8:{round:x}:{n:x}::1");
        login_from(app, &ip, email, WRONG).await;
    }
}

#[tokio::test]
async fn the_daily_cap_suspends_password_sign_in_and_mails_the_owner_a_way_in() {
    let (app, smtp) = spawn_app_with_mail(&BEHIND_PROXY).await;
    app.create_verified_user("ada@example.com", PASSWORD).await;
    fail_a_day(&app, "ada@example.com", 1).await;
    // The 101st try: refused like a wrong password, even the right one, from anywhere.
    assert_problem(
        login_from(&app, "192.0.2.44", "ada@example.com", PASSWORD).await,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    )
    .await;
    let mail = smtp.wait_for_mail_to("ada@example.com", 1).await;
    assert!(mail.contains("suspended"), "{mail}");
    // The attacker asking for reset mails replaces the code, but cannot cancel the owner's link.
    app.post(
        "/auth/forgot-password",
        &json!({"email": "ada@example.com"}),
    )
    .await;
    smtp.wait_for_mail_to("ada@example.com", 2).await;
    let link = mail.reset_token();
    let reset = app
        .post(
            "/auth/reset-password",
            &json!({"token": link, "new_password": "a brand new passphrase"}),
        )
        .await;
    assert_eq!(reset.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        app.login("ada@example.com", "a brand new passphrase")
            .await
            .status(),
        StatusCode::OK
    );
    // A second suspension the same day is mailed too: the reset re-armed the notice.
    fail_a_day(&app, "ada@example.com", 2).await;
    login_from(&app, "192.0.2.44", "ada@example.com", WRONG).await;
    // After the suspension, the attacker's reset mail and the "password changed" notice.
    let again = smtp.wait_for_mail_to("ada@example.com", 4).await;
    assert!(again.contains("suspended"), "{again}");
}

#[tokio::test]
async fn the_suspension_notice_also_signs_the_owner_in_without_a_password() {
    let (app, smtp) = spawn_app_with_mail(&BEHIND_PROXY).await;
    app.create_verified_user("ada@example.com", PASSWORD).await;
    fail_a_day(&app, "ada@example.com", 1).await;
    login_from(&app, "192.0.2.44", "ada@example.com", WRONG).await;
    let mail = smtp.wait_for_mail_to("ada@example.com", 1).await;
    assert!(mail.contains("sign in without a password"), "{mail}");
    // Password sign-in is suspended; the mailed link still lets the owner in.
    let signed_in = app
        .post(
            "/auth/email-login/verify",
            &json!({"token": mail.login_token()}),
        )
        .await;
    assert_eq!(signed_in.status(), StatusCode::OK);
    // Its reset link is a separate way in, still live.
    let reset = app
        .post(
            "/auth/reset-password",
            &json!({"token": mail.reset_token(), "new_password": "a brand new passphrase"}),
        )
        .await;
    assert_eq!(reset.status(), StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn a_spent_login_budget_of_one_network_does_not_keep_the_owner_out() {
    let mut args = BEHIND_PROXY.to_vec();
    args.truncate(2);
    args.extend(["--rate-limit-login-account", "3/1m"]);
    let app = spawn_app_with(&args).await;
    app.create_verified_user("ada@example.com", PASSWORD).await;
    for _ in 0..5 {
        login_from(&app, "203.0.113.9", "ada@example.com", WRONG).await;
    }
    assert_problem(
        login_from(&app, "203.0.113.9", "ada@example.com", PASSWORD).await,
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
    )
    .await;
    assert_eq!(
        login_from(&app, "192.0.2.44", "ada@example.com", PASSWORD)
            .await
            .status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn two_admins_removing_each_other_at_once_leave_one() {
    let app = spawn_app().await;
    for _ in 0..5 {
        let (first, second) = (app.admin_token().await, app.admin_token().await);
        let id_of = |token: String| {
            let app = &app;
            async move {
                let me: Value = app
                    .get("/users/me", Some(&token))
                    .await
                    .json()
                    .await
                    .unwrap();
                (token, me["id"].as_str().unwrap().to_owned())
            }
        };
        let ((first, first_id), (second, second_id)) = tokio::join!(id_of(first), id_of(second));
        // Every other admin steps down first, so these two are the last.
        let admins: Value = app
            .get("/users?role=admin&limit=200", Some(&first))
            .await
            .json()
            .await
            .unwrap();
        for other in admins["users"].as_array().unwrap() {
            let id = other["id"].as_str().unwrap();
            if id != first_id && id != second_id {
                let gone = app
                    .send(
                        Method::DELETE,
                        &format!("/users/{id}"),
                        &first,
                        &json!(null),
                    )
                    .await;
                assert_eq!(gone.status(), StatusCode::NO_CONTENT);
            }
        }
        let demote = json!({"role": "user"});
        let (second_path, first_path) =
            (format!("/users/{second_id}"), format!("/users/{first_id}"));
        let (a, b) = tokio::join!(
            app.send(Method::PATCH, &second_path, &first, &demote),
            app.send(Method::PATCH, &first_path, &second, &demote),
        );
        // One wins; the other is refused: 409 `last_admin`, or 403 when it came after the
        // winner had already taken its admin role away.
        let statuses = [a.status(), b.status()];
        assert!(
            statuses.contains(&StatusCode::OK) && !statuses.iter().all(|s| *s == StatusCode::OK),
            "{statuses:?}"
        );
        let survivor = if a.status() == StatusCode::OK {
            &first
        } else {
            &second
        };
        let left: Value = app
            .get("/users?role=admin", Some(survivor))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(left["users"].as_array().unwrap().len(), 1);
    }
}

#[tokio::test]
async fn a_stolen_token_is_no_faster_a_password_oracle_than_the_login() {
    let app = spawn_app_with(&BEHIND_PROXY).await;
    let (token, _) = app.logged_in_user("ada@example.com").await;
    let change = |current: &str| json!({"current_password": current, "new_password": "a brand new passphrase"});
    // Twelve wrong guesses: past the ten free failures, the next try must wait a few seconds.
    for _ in 0..6 {
        let answer = app
            .send(Method::PUT, "/users/me/password", &token, &change(WRONG))
            .await;
        assert_eq!(answer.status(), StatusCode::FORBIDDEN);
        let answer = app
            .send(
                Method::DELETE,
                "/users/me",
                &token,
                &json!({"password": WRONG}),
            )
            .await;
        assert_eq!(answer.status(), StatusCode::FORBIDDEN);
    }
    // Slowed down now: even the right password is refused until the wait is over.
    assert_problem(
        app.send(Method::PUT, "/users/me/password", &token, &change(PASSWORD))
            .await,
        StatusCode::FORBIDDEN,
        "invalid_current_password",
    )
    .await;
    app.state.clock.advance(time::Duration::seconds(10));
    assert_eq!(
        app.send(Method::PUT, "/users/me/password", &token, &change(PASSWORD))
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
}

#[tokio::test]
async fn wrong_reset_codes_are_budgeted_per_network_across_accounts() {
    let mut args = BEHIND_PROXY.to_vec();
    args.extend(["--rate-limit-reset-code-ip", "3/1h"]);
    let app = spawn_app_with(&args).await;
    for n in 0..3 {
        let answer = post_from(
            &app,
            "198.51.100.7",
            "/auth/reset-password",
            &json!({"email": format!("user{n}@example.com"), "code": "123456", "new_password": "a brand new passphrase"}),
        )
        .await;
        assert_eq!(answer.status(), StatusCode::BAD_REQUEST);
    }
    let sprayed = post_from(
        &app,
        "198.51.100.7",
        "/auth/reset-password",
        &json!({"email": "user9@example.com", "code": "123456", "new_password": "a brand new passphrase"}),
    )
    .await;
    assert_problem(sprayed, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
}

#[tokio::test]
async fn conceal_mode_notices_reach_an_owner_at_most_once_an_hour() {
    let (app, smtp) = spawn_app_with_mail(&["--conceal-existing-accounts", "true"]).await;
    app.create_verified_user("ada@example.com", PASSWORD).await;
    for _ in 0..3 {
        app.register("ada@example.com", "someone elses password")
            .await;
    }
    smtp.wait_for_mails(1).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(smtp.mails().len(), 1);
    app.state.clock.advance(time::Duration::minutes(61));
    app.register("ada@example.com", "someone elses password")
        .await;
    assert_eq!(smtp.wait_for_mails(2).await.len(), 2);
}

#[tokio::test]
async fn the_confirmation_form_shares_the_budget_of_its_json_twin() {
    let app = spawn_app_with(&["--rate-limit-confirm-ip", "2/1m"]).await;
    for _ in 0..2 {
        app.post("/auth/confirm-email", &json!({"token": "x"}))
            .await;
    }
    let form = app
        .client
        .post(format!("{}/confirm-email", app.url))
        .form(&[("token", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(form.headers().contains_key("retry-after"));
}

#[tokio::test]
async fn no_admin_call_can_remove_the_last_enabled_verified_admin() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let me: Value = app
        .get("/users/me", Some(&admin))
        .await
        .json()
        .await
        .unwrap();
    let id = me["id"].as_str().unwrap();
    for change in [
        json!({"role": "user"}),
        json!({"disabled": true}),
        json!({"email_verified": false}),
    ] {
        assert_problem(
            app.send(Method::PATCH, &format!("/users/{id}"), &admin, &change)
                .await,
            StatusCode::CONFLICT,
            "last_admin",
        )
        .await;
    }
    assert_problem(
        app.send(
            Method::DELETE,
            &format!("/users/{id}"),
            &admin,
            &json!(null),
        )
        .await,
        StatusCode::CONFLICT,
        "last_admin",
    )
    .await;
    // With a second admin, the first may step down.
    let second = app.admin_token().await;
    assert_eq!(
        app.send(
            Method::PATCH,
            &format!("/users/{id}"),
            &second,
            &json!({"role": "user"})
        )
        .await
        .status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn unverifying_an_address_ends_its_sessions() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let (token, body) = app.logged_in_user("ada@example.com").await;
    let id = body["user"]["id"].as_str().unwrap();
    let answer = app
        .send(
            Method::PATCH,
            &format!("/users/{id}"),
            &admin,
            &json!({"email_verified": false}),
        )
        .await;
    assert_eq!(answer.status(), StatusCode::OK);
    assert_eq!(
        app.get("/auth/verify", Some(&token)).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

/// Resident memory of a process, in KiB, from `/proc`.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[tokio::test]
async fn hostile_nfkc_expanding_emails_leave_memory_where_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let database_url = fresh_database(&dir).await;
    let port = free_port().await;
    let process = Serve::on(port)
        .env("LATCHKEY_DATABASE_URL", &database_url)
        .env("LATCHKEY_SECRET_KEY_FILE", dir.path().join("latchkey.key"))
        // Every request must reach the budgets and the store, not stop at a per-address 429.
        .env("LATCHKEY_RATE_LIMIT_REGISTER_IP", "off")
        .env("LATCHKEY_RATE_LIMIT_LOGIN_IP", "off")
        .env("LATCHKEY_RATE_LIMIT_FORGOT_IP", "off")
        .spawn();
    let pid = process.0.id();
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    until_ready(&client, &base).await;
    // 63 KB of U+FDFA, which NFKC expands eighteen-fold; each request a different one.
    let hostile = |n: usize| format!("{n}{}", "\u{FDFA}".repeat(21_000));
    let send = |path: &'static str, n: usize| {
        client
            .post(format!("{base}{path}"))
            .json(&json!({"email": hostile(n), "password": PASSWORD}))
            .send()
    };
    // A first round warms the allocator; the second must not grow the process.
    for n in 0..20 {
        send("/auth/register", n).await.unwrap();
    }
    let before = rss_kib(pid);
    for n in 0..200 {
        let path = ["/auth/register", "/auth/login", "/auth/forgot-password"][n % 3];
        let answer = send(path, 1_000 + n).await.unwrap();
        assert!(
            answer.status().is_client_error(),
            "{path}: {}",
            answer.status()
        );
    }
    let after = rss_kib(pid);
    assert!(
        after < before + 4 * 1024,
        "RSS grew from {before} KiB to {after} KiB"
    );
}

#[tokio::test]
async fn a_mail_request_whose_worker_died_is_worked_off_by_the_next() {
    let (state, _dir) = quiet_state(&[]).await;
    let origin = Origin::Cli {
        role: state.config.roles.default_role().clone(),
        email_verified: true,
    };
    register_in(&state, "ada@example.com", PASSWORD, origin)
        .await
        .unwrap();
    recovery::forgot_password(&state, "ada@example.com")
        .await
        .unwrap();
    // A worker claims the request and dies before mailing.
    let claimed = state
        .store
        .claim_mail_request(state.clock.now(), time::Duration::minutes(1))
        .await
        .unwrap();
    assert!(claimed.is_some());
    assert_eq!(
        mail_requests::process_mail_requests(&state).await.unwrap(),
        0
    );

    state.clock.advance(time::Duration::seconds(61));
    assert_eq!(
        mail_requests::process_mail_requests(&state).await.unwrap(),
        1
    );
    let queued = state
        .store
        .claim_mail(state.clock.now(), time::Duration::minutes(1), 10)
        .await
        .unwrap();
    assert_eq!(queued.len(), 1, "the reset mail, once");
    assert_eq!(
        mail_requests::process_mail_requests(&state).await.unwrap(),
        0
    );
}

#[tokio::test]
async fn a_login_with_the_right_password_forgets_its_networks_failures() {
    let app = spawn_app_with(&BEHIND_PROXY).await;
    app.create_verified_user("ada@example.com", PASSWORD).await;
    for _ in 0..9 {
        login_from(&app, "198.51.100.7", "ada@example.com", WRONG).await;
    }
    assert_eq!(
        login_from(&app, "198.51.100.7", "ada@example.com", PASSWORD)
            .await
            .status(),
        StatusCode::OK
    );
    for _ in 0..10 {
        login_from(&app, "198.51.100.7", "ada@example.com", WRONG).await;
    }
    let reasons = failure_reasons(&app).await;
    assert!(
        reasons.iter().all(|r| r == "invalid_password"),
        "ten free failures again after the success: {reasons:?}"
    );
}

#[tokio::test]
async fn in_conceal_mode_a_taken_and_a_free_address_cost_one_write_transaction_alike() {
    let (state, _dir) = quiet_state(&["--conceal-existing-accounts", "true"]).await;
    let register = |email: &'static str| {
        let origin = Origin::SelfService(latchkey::service::ClientInfo::default());
        register_in(&state, email, PASSWORD, origin)
    };
    let mut writes = Vec::new();
    for email in ["ada@example.com", "ada@example.com"] {
        let before = state.store.write_transactions();
        register(email).await.unwrap();
        writes.push(state.store.write_transactions() - before);
    }
    assert_eq!(writes, [1, 1], "free, then taken");
    // After the answers: the owner (who had the address before the second try) is told once.
    state.clock.advance(time::Duration::seconds(1));
    mail_requests::process_mail_requests(&state).await.unwrap();
    let queued = state
        .store
        .claim_mail(state.clock.now(), time::Duration::minutes(1), 10)
        .await
        .unwrap();
    assert_eq!(queued.len(), 2, "the confirmation mail and one notice");
}
