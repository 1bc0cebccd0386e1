//! Access tokens: claims, forward-auth, JWKS, and every forgery the contract names.

use crate::support::{TestApp, assert_problem, spawn_app, spawn_app_with};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, jwk::JwkSet};
use latchkey::crypto::{JwtAlg, KeyMaterial};
use reqwest::StatusCode;
use serde_json::{Value, json};
use time::Duration;

fn segments(token: &str) -> (Value, Value) {
    let parts: Vec<&str> = token.split('.').collect();
    let decode =
        |part: &str| serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap();
    (decode(parts[0]), decode(parts[1]))
}

fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

/// The service's own signing key, to forge tokens that are validly signed but otherwise wrong.
async fn real_key(app: &TestApp) -> (String, EncodingKey) {
    let keys = latchkey::service::keys::current(&app.state.store, &app.state.sealer, "EdDSA")
        .await
        .unwrap();
    (
        keys[0].key.kid.clone(),
        EncodingKey::from_ed_der(&keys[0].key.private_der),
    )
}

async fn assert_refused(app: &TestApp, token: &str, what: &str) {
    let verify = app.get("/auth/verify", Some(token)).await;
    assert_eq!(
        verify.status(),
        StatusCode::UNAUTHORIZED,
        "{what} at /auth/verify"
    );
    assert_eq!(verify.headers()["www-authenticate"], "Bearer");
    assert_problem(verify, StatusCode::UNAUTHORIZED, "unauthorized").await;
    assert_eq!(
        app.get("/users/me", Some(token)).await.status(),
        StatusCode::UNAUTHORIZED,
        "{what} at /users/me"
    );
}

#[tokio::test]
async fn verify_answers_200_with_the_user_headers_and_an_empty_body() {
    let app = spawn_app().await;
    let (token, login) = app.logged_in_user("ada@example.com").await;

    let response = app.get("/auth/verify", Some(&token)).await;

    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers().clone();
    assert_eq!(headers["x-user-id"], login["user"]["id"].as_str().unwrap());
    assert_eq!(headers["x-user-email"], "ada@example.com");
    assert_eq!(headers["x-user-role"], "user");
    assert_eq!(headers["x-user-email-verified"], "true");
    assert!(response.bytes().await.unwrap().is_empty());
}

#[tokio::test]
async fn access_tokens_carry_every_contract_claim_and_a_kid() {
    let app = spawn_app_with(&["--jwt-audience", "orders-service"]).await;
    let (token, login) = app.logged_in_user("ada@example.com").await;

    let (header, claims) = segments(&token);

    assert_eq!(header["alg"], "EdDSA");
    assert!(header["kid"].is_string());
    for claim in [
        "iss",
        "sub",
        "aud",
        "iat",
        "nbf",
        "exp",
        "jti",
        "sid",
        "email",
        "email_verified",
        "role",
    ] {
        assert!(!claims[claim].is_null(), "claim {claim} missing: {claims}");
    }
    assert_eq!(claims["sub"], login["user"]["id"]);
    assert_eq!(claims["aud"], "orders-service");
    assert_eq!(claims["iss"], app.url);
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        900
    );
    assert!(claims.get("name").is_none(), "name only when set");
}

#[tokio::test]
async fn a_missing_or_malformed_authorization_header_answers_401() {
    let app = spawn_app().await;
    for header in [
        None,
        Some("Basic YWRhOnB3"),
        Some("Bearer"),
        Some("Bearer not.a.jwt"),
    ] {
        let mut request = app.client.get(format!("{}/auth/verify", app.url));
        if let Some(header) = header {
            request = request.header("authorization", header);
        }
        let response = request.send().await.unwrap();
        assert_eq!(
            response.headers()["www-authenticate"],
            "Bearer",
            "{header:?}"
        );
        assert_problem(response, StatusCode::UNAUTHORIZED, "unauthorized").await;
    }
}

#[tokio::test]
async fn forged_tokens_are_refused_everywhere() {
    let app = spawn_app().await;
    let (token, _) = app.logged_in_user("ada@example.com").await;
    let (header, claims) = segments(&token);
    let (kid, key) = real_key(&app).await;
    let signature = token.rsplit('.').next().unwrap();
    let now = app.state.clock.now().unix_timestamp();

    let alg_none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "at+jwt", "kid": kid})),
        b64(&claims)
    );
    assert_refused(&app, &alg_none, "alg none").await;

    let stripped = format!("{}.{}.", b64(&header), b64(&claims));
    assert_refused(&app, &stripped, "stripped signature").await;

    let mut elevated = claims.clone();
    elevated["role"] = json!("admin");
    let tampered = format!("{}.{}.{signature}", b64(&header), b64(&elevated));
    assert_refused(&app, &tampered, "tampered claims").await;

    // Key confusion: HS256 keyed with the published public key.
    let jwks: Value = app
        .get("/.well-known/jwks.json", None)
        .await
        .json()
        .await
        .unwrap();
    let public = URL_SAFE_NO_PAD
        .decode(jwks["keys"][0]["x"].as_str().unwrap())
        .unwrap();
    // Each forgery is otherwise a well-formed access token, so only its flaw can refuse it.
    let mut hs_header = Header::new(Algorithm::HS256);
    hs_header.typ = Some("at+jwt".into());
    hs_header.kid = Some(kid.clone());
    for secret in [public.clone(), jwks["keys"][0].to_string().into_bytes()] {
        let confused =
            jsonwebtoken::encode(&hs_header, &claims, &EncodingKey::from_secret(&secret)).unwrap();
        assert_refused(&app, &confused, "HS256 with the public key").await;
    }

    let stranger = KeyMaterial::generate(JwtAlg::EdDsa).unwrap();
    let stranger_key = EncodingKey::from_ed_der(&stranger.private_der);
    for (forged_kid, what) in [
        (stranger.kid.as_str(), "unknown kid"),
        (kid.as_str(), "bad signature"),
        ("../../../dev/null", "kid path injection"),
        ("' or '1'='1", "kid SQL injection"),
    ] {
        let mut forged_header = Header::new(Algorithm::EdDSA);
        forged_header.typ = Some("at+jwt".into());
        forged_header.kid = Some(forged_kid.to_owned());
        let forged = jsonwebtoken::encode(&forged_header, &claims, &stranger_key).unwrap();
        assert_refused(&app, &forged, what).await;
    }

    let mut real_header = Header::new(Algorithm::EdDSA);
    real_header.typ = Some("at+jwt".into());
    real_header.kid = Some(kid.clone());
    let sign = |claims: &Value| jsonwebtoken::encode(&real_header, claims, &key).unwrap();
    let mut future = claims.clone();
    future["nbf"] = json!(now + 60);
    assert_refused(&app, &sign(&future), "nbf in the future").await;
    let mut no_exp = claims.clone();
    no_exp.as_object_mut().unwrap().remove("exp");
    assert_refused(&app, &sign(&no_exp), "no exp").await;
    let mut foreign = claims.clone();
    foreign["iss"] = json!("https://evil.example");
    assert_refused(&app, &sign(&foreign), "foreign issuer").await;
    let mut past = claims.clone();
    past["exp"] = json!(now - 2);
    assert_refused(&app, &sign(&past), "past exp").await;

    assert_eq!(
        app.get("/auth/verify", Some(&sign(&claims))).await.status(),
        StatusCode::OK,
        "the control token passes"
    );
}

#[tokio::test]
async fn a_token_is_refused_from_one_second_past_its_expiry_to_the_millisecond() {
    let app = spawn_app().await;
    let (token, _) = app.logged_in_user("ada@example.com").await;
    let exp = segments(&token).1["exp"].as_i64().unwrap();
    let exp = time::OffsetDateTime::from_unix_timestamp(exp).unwrap();

    app.state
        .clock
        .advance(exp + Duration::milliseconds(999) - app.state.clock.now());
    assert_eq!(
        app.get("/auth/verify", Some(&token)).await.status(),
        StatusCode::OK,
        "accepted at exp + 999 ms"
    );

    app.state.clock.advance(Duration::milliseconds(1));
    assert_refused(&app, &token, "expired at exp + 1 s").await;
}

#[tokio::test]
async fn access_tokens_are_typed_at_jwt_and_no_other_type_passes() {
    let app = spawn_app().await;
    let (token, _) = app.logged_in_user("ada@example.com").await;
    let (header, claims) = segments(&token);
    assert_eq!(header["typ"], "at+jwt");
    let (kid, key) = real_key(&app).await;
    let sign = |typ: Option<&str>| {
        let mut header = Header::new(Algorithm::EdDSA);
        header.typ = typ.map(str::to_owned);
        header.kid = Some(kid.clone());
        jsonwebtoken::encode(&header, &claims, &key).unwrap()
    };

    for (typ, what) in [
        (Some("JWT"), "typ JWT"),
        (None, "no typ"),
        (Some("AT+JWT "), "typ almost at+jwt"),
        (Some("id+jwt"), "another token type"),
    ] {
        assert_refused(&app, &sign(typ), what).await;
    }
    assert_eq!(
        app.get("/auth/verify", Some(&sign(Some("at+jwt"))))
            .await
            .status(),
        StatusCode::OK,
        "the control token passes"
    );
}

#[tokio::test]
async fn an_issued_token_verifies_with_only_the_published_jwks() {
    for alg in [("EdDSA", Algorithm::EdDSA), ("ES256", Algorithm::ES256)] {
        let app = spawn_app_with(&["--jwt-alg", alg.0]).await;
        let (token, _) = app.logged_in_user("ada@example.com").await;

        let discovery: Value = app
            .get("/.well-known/openid-configuration", None)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(discovery["issuer"], app.url);
        let jwks_uri = discovery["jwks_uri"].as_str().unwrap();
        let jwks: JwkSet = app
            .client
            .get(jwks_uri)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();

        let kid = jsonwebtoken::decode_header(&token).unwrap().kid.unwrap();
        let jwk = jwks.find(&kid).expect("the signing key is published");
        let mut validation = Validation::new(alg.1);
        validation.set_issuer(&[discovery["issuer"].as_str().unwrap()]);
        let claims = jsonwebtoken::decode::<Value>(
            &token,
            &DecodingKey::from_jwk(jwk).unwrap(),
            &validation,
        )
        .unwrap()
        .claims;
        assert_eq!(claims["email"], "ada@example.com", "{}", alg.0);
    }
}

#[tokio::test]
async fn shared_secret_algorithms_sign_with_the_secret_and_publish_no_key() {
    let secret = "an-hmac-secret-of-at-least-32-bytes!";
    for alg in ["HS256", "HS512"] {
        let app = spawn_app_with(&["--jwt-alg", alg, "--jwt-secret", secret]).await;
        let (token, _) = app.logged_in_user("ada@example.com").await;

        assert_eq!(segments(&token).0["alg"], alg);
        assert_eq!(
            app.get("/auth/verify", Some(&token)).await.status(),
            StatusCode::OK
        );
        let jwks: Value = app
            .get("/.well-known/jwks.json", None)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(jwks, json!({"keys": []}));

        let eddsa = spawn_app().await;
        let (other, _) = eddsa.logged_in_user("ada@example.com").await;
        assert_refused(&app, &other, "another algorithm than configured").await;
    }
}

#[tokio::test]
async fn the_signing_key_survives_a_restart_on_the_same_database() {
    let app = spawn_app().await;
    let (token, _) = app.logged_in_user("ada@example.com").await;

    let again = latchkey::startup::build((*app.state.config).clone(), app.state.clock.clone())
        .await
        .unwrap();

    assert!(again.tokens.verify(&token, app.state.clock.now()).is_ok());
    assert_eq!(
        app.state.store.signing_keys("EdDSA").await.unwrap().len(),
        1
    );
}

#[tokio::test]
async fn a_public_key_planted_in_the_database_verifies_nothing() {
    let app = spawn_app().await;
    let (token, _) = app.logged_in_user("ada@example.com").await;
    let (_, claims) = segments(&token);
    let (kid, _) = real_key(&app).await;
    // Someone who can write the database, but lacks the secret key, swaps in his own public key.
    let stranger = KeyMaterial::generate(JwtAlg::EdDsa).unwrap();
    let url = app.database_url();
    let sql = "update signing_keys set public_jwk = $1 where kid = $2";
    if crate::support::on_postgres() {
        let mut db = <sqlx::PgConnection as sqlx::Connection>::connect(&url)
            .await
            .unwrap();
        sqlx::query(sql)
            .bind(stranger.public_jwk.to_string())
            .bind(&kid)
            .execute(&mut db)
            .await
            .unwrap();
    } else {
        let mut db = <sqlx::SqliteConnection as sqlx::Connection>::connect(&url)
            .await
            .unwrap();
        sqlx::query(sql)
            .bind(stranger.public_jwk.to_string())
            .bind(&kid)
            .execute(&mut db)
            .await
            .unwrap();
    }
    let restarted = spawn_app_with(&[
        "--database-url",
        &url,
        "--secret-key-file",
        &app.dir.path().join("latchkey.key").display().to_string(),
    ])
    .await;

    let mut header = Header::new(Algorithm::EdDSA);
    header.typ = Some("at+jwt".into());
    header.kid = Some(kid.clone());
    let mut admin = claims.clone();
    admin["role"] = json!("admin");
    let forged = jsonwebtoken::encode(
        &header,
        &admin,
        &EncodingKey::from_ed_der(&stranger.private_der),
    )
    .unwrap();
    assert_refused(&restarted, &forged, "a token signed with the planted key").await;
    let login: Value = restarted
        .login("ada@example.com", crate::support::PASSWORD)
        .await
        .json()
        .await
        .unwrap();
    let real = login["access_token"].as_str().unwrap();
    assert_eq!(
        restarted.get("/auth/verify", Some(real)).await.status(),
        StatusCode::OK,
        "tokens of the real key still verify"
    );
    let jwks: Value = restarted
        .get("/.well-known/jwks.json", None)
        .await
        .json()
        .await
        .unwrap();
    assert_ne!(jwks["keys"][0]["x"], stranger.public_jwk["x"]);
}
