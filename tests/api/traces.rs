//! Traces: request spans reach a real OTLP/HTTP receiver, decoded with the official protobuf
//! definitions, continuing the caller's W3C trace and carrying the request id.

use crate::support::{Serve, free_port, until_ready};
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value::Value};
use opentelemetry_proto::tonic::trace::v1::{
    Span, span::SpanKind, status::StatusCode as SpanStatus,
};
use prost::Message;
use std::process::Command;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

const CALLER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

/// An OTLP/HTTP receiver on loopback: every export request, decoded, goes to the channel along
/// with the service's resource attributes.
async fn receiver() -> (String, mpsc::UnboundedReceiver<ExportTraceServiceRequest>) {
    let (sender, received) = mpsc::unbounded_channel();
    let app = axum::Router::new().route(
        "/otlp/v1/traces",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let sender = sender.clone();
            async move {
                assert_eq!(headers["content-type"], "application/x-protobuf");
                let request = ExportTraceServiceRequest::decode(body).expect("an OTLP export");
                let _ = sender.send(request);
                (StatusCode::OK, [("content-type", "application/x-protobuf")])
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{address}/otlp"), received)
}

fn attribute<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a Value> {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref()?.value.as_ref())
}

fn string_attribute<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a str> {
    match attribute(attributes, key) {
        Some(Value::StringValue(value)) => Some(value),
        _ => None,
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[tokio::test]
async fn request_spans_reach_an_otlp_receiver_in_the_callers_trace_with_the_request_id() {
    let (endpoint, mut exports) = receiver().await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port().await;
    // Logs at warn: traces must not depend on the log's level.
    let child = Serve::on(port)
        .env("LATCHKEY_SECRET_KEY_FILE", "k.key")
        .env("LATCHKEY_OTLP_ENDPOINT", &endpoint)
        .current_dir(dir.path())
        .spawn();
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    until_ready(&client, &base).await;

    let traced = client
        .get(format!("{base}/auth/verify"))
        .header("traceparent", format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01"))
        .header("x-request-id", "traced-request-1")
        .send()
        .await
        .unwrap();
    assert_eq!(traced.status(), reqwest::StatusCode::UNAUTHORIZED);
    let caller = format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01");
    // A caller that says "not sampled" is traced all the same: nobody keeps requests out.
    let unsampled = format!("00-{CALLER_TRACE}-{CALLER_SPAN}-00");
    let oversized_state = format!("vendor={}", "x".repeat(600));
    for (request_id, traceparent, tracestate) in [
        ("untraced-request", None, None),
        ("malformed-traceparent", Some("00-not-a-trace-id-01"), None),
        ("unsampled-caller", Some(unsampled.as_str()), None),
        (
            "oversized-tracestate",
            Some(caller.as_str()),
            Some(oversized_state.as_str()),
        ),
    ] {
        let mut request = client
            .get(format!("{base}/.well-known/jwks.json"))
            .header("x-request-id", request_id);
        if let Some(traceparent) = traceparent {
            request = request.header("traceparent", traceparent);
        }
        if let Some(tracestate) = tracestate {
            request = request.header("tracestate", tracestate);
        }
        assert_eq!(
            request.send().await.unwrap().status(),
            reqwest::StatusCode::OK
        );
    }

    // SIGTERM: the spans still buffered are sent before the process exits.
    let status = Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let mut child = child;
    let started = Instant::now();
    while child.0.try_wait().unwrap().is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "still running after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let mut spans: Vec<Span> = Vec::new();
    while let Ok(export) = exports.try_recv() {
        for resource_spans in export.resource_spans {
            let resource = resource_spans.resource.expect("a resource");
            assert_eq!(
                string_attribute(&resource.attributes, "service.name"),
                Some("latchkey")
            );
            assert_eq!(
                string_attribute(&resource.attributes, "service.version"),
                Some(env!("CARGO_PKG_VERSION"))
            );
            spans.extend(resource_spans.scope_spans.into_iter().flat_map(|s| s.spans));
        }
    }
    let by_request_id = |id: &str| {
        spans
            .iter()
            .find(|span| string_attribute(&span.attributes, "request_id") == Some(id))
            .unwrap_or_else(|| panic!("no span for request {id} among {} exported", spans.len()))
    };

    let traced = by_request_id("traced-request-1");
    assert_eq!(
        hex(&traced.trace_id),
        CALLER_TRACE,
        "the caller's trace continues"
    );
    assert_eq!(
        hex(&traced.parent_span_id),
        CALLER_SPAN,
        "the caller's span is the parent"
    );
    assert_ne!(hex(&traced.span_id), CALLER_SPAN);
    assert_eq!(traced.name, "GET /auth/verify");
    assert_eq!(traced.kind, SpanKind::Server as i32);
    assert_eq!(
        string_attribute(&traced.attributes, "http.route"),
        Some("/auth/verify")
    );
    assert_eq!(
        string_attribute(&traced.attributes, "http.request.method"),
        Some("GET")
    );
    assert_eq!(
        attribute(&traced.attributes, "http.response.status_code"),
        Some(&Value::IntValue(401))
    );
    assert_ne!(
        traced.status.as_ref().map(|status| status.code),
        Some(SpanStatus::Error as i32),
        "a 4xx is the client's error, not the server's"
    );
    assert!(traced.end_time_unix_nano >= traced.start_time_unix_nano);

    let unsampled = by_request_id("unsampled-caller");
    assert_eq!(hex(&unsampled.trace_id), CALLER_TRACE);
    assert_eq!(hex(&unsampled.parent_span_id), CALLER_SPAN);

    for id in [
        "untraced-request",
        "malformed-traceparent",
        "oversized-tracestate",
    ] {
        let fresh = by_request_id(id);
        assert!(
            fresh.parent_span_id.is_empty(),
            "{id}: a new trace has no parent"
        );
        assert_ne!(hex(&fresh.trace_id), CALLER_TRACE, "{id}");
        assert_eq!(fresh.trace_id.len(), 16, "{id}");
        assert_eq!(fresh.name, "GET /.well-known/jwks.json");
    }
    let untraced = by_request_id("untraced-request");
    let malformed = by_request_id("malformed-traceparent");
    assert_ne!(
        untraced.trace_id, malformed.trace_id,
        "each new trace has its own id"
    );
}
