//! The hosted pages behind the mailed links: a GET shows a page and never spends a token; the
//! forms post form-encoded and say what happened.

use super::{NEW_PASSWORD, confirm, forgot_password, reset, verified_login};
use crate::support::{PASSWORD, spawn_app_with_mail};
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn a_get_of_a_mailed_link_shows_a_page_and_never_spends_the_token() {
    let (app, smtp) = spawn_app_with_mail(&[]).await;
    app.register("ada@example.com", PASSWORD).await;
    let mail = smtp.wait_for_mail_to("ada@example.com", 1).await;
    let link = mail.confirm_link();

    for _ in 0..2 {
        let page = app.client.get(&link).send().await.unwrap();
        assert_eq!(page.status(), StatusCode::OK);
        let csp = page.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            csp.contains("default-src 'none'") && !csp.contains("unsafe"),
            "{csp}"
        );
        assert_eq!(page.headers()["referrer-policy"], "no-referrer");
        let html = page.text().await.unwrap();
        assert!(
            html.contains("<form method=\"post\"")
                && html.contains("name=\"viewport\"")
                && !html.contains("<script")
        );
    }

    assert_eq!(
        confirm(&app, &mail.confirm_token()).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn the_pages_post_form_encoded_and_say_what_happened() {
    let (app, smtp) = spawn_app_with_mail(&[]).await;
    app.register("ada@example.com", PASSWORD).await;
    let token = smtp
        .wait_for_mail_to("ada@example.com", 1)
        .await
        .confirm_token();
    let post_form = |path: &str, form: Vec<(&str, String)>| {
        app.client
            .post(format!("{}{path}", app.url))
            .form(&form)
            .send()
    };

    let page = app
        .client
        .get(format!("{}/confirm-email?token={token}", app.url))
        .send()
        .await
        .unwrap();
    assert!(
        page.text().await.unwrap().contains("name=\"password\""),
        "the first confirmation of a self-registered account asks for its password"
    );
    let without_password = post_form("/confirm-email", vec![("token", token.clone())])
        .await
        .unwrap();
    assert_eq!(without_password.status(), StatusCode::BAD_REQUEST);
    let wrong_password = post_form(
        "/confirm-email",
        vec![
            ("token", token.clone()),
            ("password", "not the password at all".to_owned()),
        ],
    )
    .await
    .unwrap();
    assert_eq!(wrong_password.status(), StatusCode::UNAUTHORIZED);
    let confirmed = post_form(
        "/confirm-email",
        vec![("token", token.clone()), ("password", PASSWORD.to_owned())],
    )
    .await
    .unwrap();
    assert_eq!(confirmed.status(), StatusCode::OK);
    assert!(confirmed.text().await.unwrap().contains("is confirmed"));
    let again = post_form("/confirm-email", vec![("token", token)])
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::BAD_REQUEST);
    assert!(
        again
            .text()
            .await
            .unwrap()
            .contains("does not work any more")
    );

    forgot_password(&app, "ada@example.com").await;
    let reset_token = smtp
        .wait_for_mail_to("ada@example.com", 2)
        .await
        .reset_token();
    let weak = post_form(
        "/reset-password",
        vec![
            ("token", reset_token.clone()),
            ("new_password", "short".into()),
        ],
    )
    .await
    .unwrap();
    assert_eq!(weak.status(), StatusCode::BAD_REQUEST);
    assert!(
        weak.text()
            .await
            .unwrap()
            .contains("at least 12 characters")
    );
    let done = post_form(
        "/reset-password",
        vec![
            ("token", reset_token),
            ("new_password", NEW_PASSWORD.into()),
        ],
    )
    .await
    .unwrap();
    assert!(done.text().await.unwrap().contains("has been changed"));
    assert_eq!(
        app.login("ada@example.com", NEW_PASSWORD).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_get_of_the_reset_page_never_spends_the_token() {
    let (app, smtp) = spawn_app_with_mail(&[]).await;
    verified_login(&app, &smtp, "ada@example.com").await;
    forgot_password(&app, "ada@example.com").await;
    let mail = smtp.wait_for_mail_to("ada@example.com", 2).await;

    for _ in 0..2 {
        let page = app.client.get(mail.reset_link()).send().await.unwrap();
        assert_eq!(page.status(), StatusCode::OK);
        assert!(page.text().await.unwrap().contains("type=\"password\""));
    }

    assert_eq!(
        reset(
            &app,
            json!({"token": mail.reset_token(), "new_password": NEW_PASSWORD})
        )
        .await
        .status(),
        StatusCode::NO_CONTENT
    );
}
