//! Assurance in tokens (`auth_time`, `amr`, `acr`, kept across refresh) and step-up at the
//! gateway: `/auth/verify?acr=…&max_age=…` answers the RFC 9470 challenge.

use crate::support::{assert_problem, spawn_app};
use reqwest::StatusCode;
use serde_json::{Value, json};
use time::Duration;

fn claims(token: &str) -> Value {
    jsonwebtoken::dangerous::insecure_decode::<Value>(token)
        .unwrap()
        .claims
}

#[tokio::test]
async fn tokens_say_how_and_when_the_user_signed_in_and_a_refresh_keeps_it() {
    let app = spawn_app().await;
    let (token, login) = app.logged_in_user("ada@example.com").await;
    let first = claims(&token);
    let signed_in = app.state.clock.now().unix_timestamp();
    assert_eq!(first["auth_time"], signed_in);
    assert_eq!(first["amr"], json!(["pwd"]));
    assert_eq!(first["acr"], "aal1");

    app.state.clock.advance(Duration::minutes(5));
    let refreshed: Value = app
        .post(
            "/auth/refresh",
            &json!({"refresh_token": login["refresh_token"]}),
        )
        .await
        .json()
        .await
        .unwrap();
    let again = claims(refreshed["access_token"].as_str().unwrap());
    assert!(again["iat"].as_i64().unwrap() > first["iat"].as_i64().unwrap());
    assert_eq!(again["auth_time"], signed_in, "a refresh is not a sign-in");
    assert_eq!(
        (&again["amr"], &again["acr"]),
        (&first["amr"], &first["acr"])
    );
}

#[tokio::test]
async fn verify_names_the_assurance_and_refuses_a_weaker_or_older_one_with_the_challenge() {
    let app = spawn_app().await;
    let (token, _) = app.logged_in_user("ada@example.com").await;
    let signed_in = app.state.clock.now().unix_timestamp();

    let plain = app.get("/auth/verify", Some(&token)).await;
    assert_eq!(plain.status(), StatusCode::OK);
    assert_eq!(plain.headers()["x-user-acr"], "aal1");
    assert_eq!(
        plain.headers()["x-user-auth-time"],
        signed_in.to_string().as_str()
    );
    let aal1 = app.get("/auth/verify?acr=aal1", Some(&token)).await;
    assert_eq!(aal1.status(), StatusCode::OK);

    let stronger = app.get("/auth/verify?acr=aal2", Some(&token)).await;
    assert_eq!(
        stronger.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .replace(
                ", error_description=\"A stronger or more recent authentication is required\"",
                ""
            ),
        "Bearer error=\"insufficient_user_authentication\", acr_values=\"aal2\""
    );
    assert_problem(
        stronger,
        StatusCode::UNAUTHORIZED,
        "insufficient_user_authentication",
    )
    .await;

    app.state.clock.advance(Duration::seconds(301));
    let fresh_enough = app.get("/auth/verify?max_age=600", Some(&token)).await;
    assert_eq!(fresh_enough.status(), StatusCode::OK);
    let too_old = app
        .get("/auth/verify?acr=aal1&max_age=300", Some(&token))
        .await;
    let challenge = too_old.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        challenge.starts_with("Bearer error=\"insufficient_user_authentication\"")
            && challenge.contains("acr_values=\"aal1\"")
            && challenge.ends_with(", max_age=300"),
        "{challenge}"
    );
    assert_eq!(too_old.status(), StatusCode::UNAUTHORIZED);

    // A gateway's own parameters are left alone; malformed demands are the operator's mistake.
    let other = app.get("/auth/verify?route=billing", Some(&token)).await;
    assert_eq!(other.status(), StatusCode::OK);
    for bad in [
        "acr=aal3",
        "max_age=-1",
        "max_age=soon",
        "acr=aal1&acr=aal2",
    ] {
        let response = app.get(&format!("/auth/verify?{bad}"), Some(&token)).await;
        assert_problem(response, StatusCode::BAD_REQUEST, "validation_failed").await;
    }
    // No token is still plain 401, whatever the demand.
    let anonymous = app.get("/auth/verify?acr=aal2", None).await;
    assert_eq!(anonymous.headers()["www-authenticate"], "Bearer");
    assert_problem(anonymous, StatusCode::UNAUTHORIZED, "unauthorized").await;
}
