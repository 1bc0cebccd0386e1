//! Guessing a reset code: a code dies at its fifth wrong try, four leave it working, and asking
//! for new codes does not buy more guesses.

use super::{NEW_PASSWORD, forgot_password, reset, verified_login};
use crate::support::{PASSWORD, assert_problem, spawn_app_with_mail};
use reqwest::StatusCode;
use serde_json::json;

/// A code that is not `code`.
fn wrong(code: &str) -> &'static str {
    if code == "000000" { "111111" } else { "000000" }
}

#[tokio::test]
async fn a_code_dies_at_its_fifth_wrong_try() {
    let (app, smtp) = spawn_app_with_mail(&[]).await;
    verified_login(&app, &smtp, "ada@example.com").await;
    forgot_password(&app, "ada@example.com").await;
    let code = smtp
        .wait_for_mail_to("ada@example.com", 2)
        .await
        .reset_code();
    let wrong = wrong(&code);

    for _ in 0..5 {
        let response = reset(
            &app,
            json!({"email": "ada@example.com", "code": wrong, "new_password": NEW_PASSWORD}),
        )
        .await;
        assert_problem(response, StatusCode::BAD_REQUEST, "invalid_token").await;
    }
    let right = reset(
        &app,
        json!({"email": "ada@example.com", "code": code, "new_password": NEW_PASSWORD}),
    )
    .await;

    assert_problem(right, StatusCode::BAD_REQUEST, "invalid_token").await;
    assert_eq!(
        app.login("ada@example.com", PASSWORD).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn four_wrong_codes_leave_the_right_one_working() {
    let (app, smtp) = spawn_app_with_mail(&[]).await;
    verified_login(&app, &smtp, "ada@example.com").await;
    forgot_password(&app, "ada@example.com").await;
    let code = smtp
        .wait_for_mail_to("ada@example.com", 2)
        .await
        .reset_code();
    let wrong = wrong(&code);

    for _ in 0..4 {
        reset(
            &app,
            json!({"email": "ada@example.com", "code": wrong, "new_password": NEW_PASSWORD}),
        )
        .await;
    }
    let right = reset(
        &app,
        json!({"email": "ada@example.com", "code": code, "new_password": NEW_PASSWORD}),
    )
    .await;

    assert_eq!(right.status(), StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn new_codes_do_not_buy_unlimited_guesses() {
    let (app, smtp) = spawn_app_with_mail(&["--rate-limit-reset-account", "off"]).await;
    verified_login(&app, &smtp, "ada@example.com").await;
    for round in 0..3 {
        forgot_password(&app, "ada@example.com").await;
        let code = smtp
            .wait_for_mail_to("ada@example.com", 2 + round)
            .await
            .reset_code();
        let wrong = wrong(&code);
        for _ in 0..5 {
            reset(
                &app,
                json!({"email": "ada@example.com", "code": wrong, "new_password": NEW_PASSWORD}),
            )
            .await;
        }
    }
    forgot_password(&app, "ada@example.com").await;
    let fresh = smtp
        .wait_for_mail_to("ada@example.com", 5)
        .await
        .reset_code();

    let right = reset(
        &app,
        json!({"email": "ada@example.com", "code": fresh, "new_password": NEW_PASSWORD}),
    )
    .await;

    assert_problem(right, StatusCode::BAD_REQUEST, "invalid_token").await;
    app.state.clock.advance(time::Duration::minutes(61));
    forgot_password(&app, "ada@example.com").await;
    let later = smtp
        .wait_for_mail_to("ada@example.com", 6)
        .await
        .reset_code();
    assert_eq!(
        reset(
            &app,
            json!({"email": "ada@example.com", "code": later, "new_password": NEW_PASSWORD})
        )
        .await
        .status(),
        StatusCode::NO_CONTENT
    );
}
