//! `/docs`: the API reference as one page rendered from the OpenAPI document, with the main
//! flows, usable offline (no script, nothing fetched), and `/`, which sends a visitor there.

use crate::state::AppState;
use axum::extract::State;
use axum::http::header;
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde_json::Value;

/// `GET /`: the reference is where a visitor should land.
pub(super) async fn index(State(app): State<AppState>) -> Redirect {
    Redirect::to(&format!("{}/docs", app.config.server.base_path))
}

/// `GET /docs`.
pub(super) async fn page(State(app): State<AppState>) -> Response {
    let base = &app.config.server.base_path;
    let spec = serde_json::to_value(super::openapi(&app.config)).unwrap_or_default();
    let product = escape(&app.config.mail.product_name);
    let mut body = format!(
        "<h1>{product} API</h1><p>The machine-readable document is <a href=\"{}/openapi.json\">openapi.json</a> \
         (OpenAPI {}). Errors are <code>application/problem+json</code> (RFC 9457) with a stable <code>code</code>; \
         bodies are JSON and unknown fields are refused.</p>",
        escape(base),
        escape(spec["openapi"].as_str().unwrap_or_default())
    );
    body.push_str(&flows(&escape(base)));
    body.push_str("<h2 id=\"operations\">Operations</h2>");
    for (path, item) in spec["paths"].as_object().into_iter().flatten() {
        for (method, operation) in item.as_object().into_iter().flatten() {
            body.push_str(&operation_section(&spec, method, path, operation));
        }
    }
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>API – {product}</title></head>\
         <body>{body}</body></html>"
    );
    let mut response = Html(html).into_response();
    response.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        header::HeaderValue::from_static("default-src 'none'"),
    );
    response
}

/// The flows a client implements first, as a sequence of the operations below.
fn flows(base: &str) -> String {
    format!(
        "<h2 id=\"flows\">Main flows</h2>\
         <h3>Register, confirm, log in, refresh</h3><ol>\
         <li><code>POST {base}/auth/register</code> <code>{{\"email\": \"ada@example.com\", \"password\": \"a long passphrase\"}}</code> → 201 with the user; a confirmation link is mailed.</li>\
         <li>The link opens a page that confirms with a button, or the client sends <code>POST {base}/auth/confirm-email</code> <code>{{\"token\": \"…\"}}</code>.</li>\
         <li><code>POST {base}/auth/login</code> <code>{{\"email\": …, \"password\": …}}</code> → 200 with <code>access_token</code> (a short-lived JWT for <code>Authorization: Bearer</code>), <code>refresh_token</code> and the user; with a second factor enrolled, 403 <code>mfa_required</code> with an <code>mfa_token</code> for <code>POST {base}/auth/mfa/verify</code>.</li>\
         <li>Before the access token expires: <code>POST {base}/auth/refresh</code> <code>{{\"refresh_token\": \"…\"}}</code> → a new pair; the old refresh token is spent, and presenting it again later revokes the session.</li>\
         <li><code>POST {base}/auth/logout</code> ends the session.</li></ol>\
         <h3>Behind an API gateway</h3><p>For each request to a protected service the gateway sends a \
         sub-request <code>GET {base}/auth/verify</code> with the client's <code>Authorization</code> header. \
         On 200 it forwards the request with the answer's <code>X-User-Id</code>, <code>X-User-Email</code>, \
         <code>X-User-Role</code>, <code>X-User-Email-Verified</code>, <code>X-User-Acr</code> and \
         <code>X-User-Auth-Time</code> headers, after removing every <code>X-User-*</code> header the client sent; \
         on 401 it answers 401. <code>?acr=aal2</code> or <code>?max_age=300</code> on the check demand a second \
         factor or a recent sign-in (RFC 9470 step-up). The signing keys are at \
         <code>{base}/.well-known/jwks.json</code> for services that verify tokens themselves.</p>"
    )
}

fn operation_section(spec: &Value, method: &str, path: &str, operation: &Value) -> String {
    let description = operation["description"]
        .as_str()
        .or(operation["summary"].as_str())
        .unwrap_or_default();
    let request = operation["requestBody"]["content"]["application/json"]["schema"]
        .as_object()
        .map(|schema| {
            format!(
                "<h4>Request body</h4>{}",
                fields(spec, &Value::Object(schema.clone()))
            )
        })
        .unwrap_or_default();
    let statuses: String = operation["responses"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(status, response)| {
            format!(
                "<li><code>{}</code> {}</li>",
                escape(status),
                escape(response["description"].as_str().unwrap_or_default())
            )
        })
        .collect();
    format!(
        "<section><h3><code>{} {}</code></h3><p>{}</p>{request}<h4>Answers</h4><ul>{statuses}</ul></section>",
        escape(&method.to_uppercase()),
        escape(path),
        escape(description),
    )
}

/// The fields of `schema` (a `$ref` is followed once): name, type, required, description.
fn fields(spec: &Value, schema: &Value) -> String {
    let schema = match schema["$ref"].as_str() {
        Some(reference) => {
            let name = reference.rsplit('/').next().unwrap_or_default();
            &spec["components"]["schemas"][name]
        }
        None => schema,
    };
    let required: Vec<&str> = schema["required"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let rows: String = schema["properties"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(name, property)| {
            let kind = property["type"]
                .as_str()
                .map(str::to_owned)
                .or_else(|| {
                    property["type"].as_array().map(|t| {
                        t.iter()
                            .filter_map(Value::as_str)
                            .collect::<Vec<_>>()
                            .join(" or ")
                    })
                })
                .unwrap_or_else(|| "object".to_owned());
            format!(
                "<li><code>{}</code> ({}{}) {}</li>",
                escape(name),
                escape(&kind),
                if required.contains(&name.as_str()) {
                    ", required"
                } else {
                    ""
                },
                escape(property["description"].as_str().unwrap_or_default())
            )
        })
        .collect();
    format!("<ul>{rows}</ul>")
}

/// Escapes text for HTML.
fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            _ => escaped.push(c),
        }
    }
    escaped
}
