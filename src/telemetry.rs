//! Logging (`tracing` to stderr, as text or JSON lines, filtered by `LATCHKEY_LOG`), request
//! spans exported over OTLP when `LATCHKEY_OTLP_ENDPOINT` is set, and the Prometheus metrics
//! recorder behind `GET /metrics`.

use crate::config::{LogConfig, LogFormat};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::trace::SdkTracerProvider;
use std::io::IsTerminal;
use std::sync::OnceLock;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// The span exporter, once traces are on; kept to flush it at shutdown.
static TRACES: OnceLock<SdkTracerProvider> = OnceLock::new();

/// Installs the global subscriber; a second call (tests) is a no-op. Fails only when traces are
/// asked for and their exporter cannot be built.
pub fn init(config: &LogConfig) -> anyhow::Result<()> {
    let filter = EnvFilter::try_new(&config.filter).unwrap_or_else(|_| EnvFilter::new("info"));
    // Colour escapes only where a person reads them: a file or a log collector gets plain text.
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let lines = tracing_subscriber::fmt::layer()
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let lines = match config.format {
        LogFormat::Text => lines.boxed(),
        LogFormat::Json => lines
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .boxed(),
    };
    let provider = match &config.otlp_traces_url {
        Some(url) => Some(tracer_provider(url)?),
        None => None,
    };
    // Spans go to the collector whatever the log's level: `LATCHKEY_LOG=warn` keeps the log
    // quiet without switching traces off.
    let spans = provider.as_ref().map(|provider| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("latchkey"))
            .with_filter(
                tracing_subscriber::filter::Targets::new()
                    .with_target("latchkey", tracing::Level::INFO),
            )
    });
    let installed = tracing_subscriber::registry()
        .with(lines.with_filter(filter))
        .with(spans)
        .try_init()
        .is_ok();
    if let (true, Some(provider)) = (installed, provider) {
        let _ = TRACES.set(provider);
    }
    Ok(())
}

/// Whether request spans are exported (and so carry the OpenTelemetry fields and parent).
pub fn traces_enabled() -> bool {
    TRACES.get().is_some()
}

/// Makes `span` a child of the caller's span when the request names one in a valid W3C
/// `traceparent` (and `tracestate`); a missing, malformed or oversized header starts a new trace.
pub fn continue_trace(span: &tracing::Span, headers: &axum::http::HeaderMap) {
    use opentelemetry::propagation::TextMapPropagator as _;
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    // W3C asks that 512 characters of `tracestate` be carried; more is a client's attempt to
    // make every span it causes large.
    const MAX_HEADER: usize = 512;
    let oversized = ["traceparent", "tracestate"].iter().any(|name| {
        headers
            .get_all(*name)
            .iter()
            .map(|value| value.len())
            .sum::<usize>()
            > MAX_HEADER
    });
    if oversized {
        return;
    }
    let parent = opentelemetry_sdk::propagation::TraceContextPropagator::new()
        .extract(&HeaderExtractor(headers));
    let _ = span.set_parent(parent);
}

/// Reads propagation headers for the OpenTelemetry propagator.
struct HeaderExtractor<'a>(&'a axum::http::HeaderMap);

impl opentelemetry::propagation::Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(axum::http::HeaderName::as_str).collect()
    }
}

/// Sends the spans still buffered; called once the server has stopped.
pub fn flush_traces() {
    if let Some(provider) = TRACES.get()
        && let Err(error) = provider.shutdown()
    {
        tracing::warn!("the last spans could not be exported: {error}");
    }
}

/// A batching exporter to `url`, on the SDK's own thread: a collector that is down or slow
/// costs dropped spans, never a request's time.
fn tracer_provider(url: &url::Url) -> anyhow::Result<SdkTracerProvider> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .with_endpoint(url.as_str())
        .with_timeout(std::time::Duration::from_secs(10))
        .build()
        .map_err(|e| anyhow::anyhow!("cannot set up the OTLP exporter for {url}: {e}"))?;
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name("latchkey")
        .with_attribute(opentelemetry::KeyValue::new(
            "service.version",
            crate::VERSION,
        ))
        .build();
    // Every request is traced, whatever sampling flag a caller's `traceparent` carries: a
    // client must not be able to keep its own requests out of the traces.
    Ok(SdkTracerProvider::builder()
        .with_sampler(opentelemetry_sdk::trace::Sampler::AlwaysOn)
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build())
}

/// The process-wide Prometheus recorder, installed on first use, with every family described
/// (`# HELP`) and request latency as a histogram.
pub fn metrics() -> &'static metrics_exporter_prometheus::PrometheusHandle {
    static HANDLE: std::sync::OnceLock<metrics_exporter_prometheus::PrometheusHandle> =
        std::sync::OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new()
            .set_buckets_for_metric(
                metrics_exporter_prometheus::Matcher::Full(REQUEST_DURATION.to_owned()),
                LATENCY_BUCKETS,
            )
            .and_then(|builder| {
                builder.set_buckets_for_metric(
                    metrics_exporter_prometheus::Matcher::Full(HASH_DURATION.to_owned()),
                    LATENCY_BUCKETS,
                )
            })
            // The buckets are constants, never empty: building cannot fail.
            .expect("latency buckets are set")
            .build_recorder();
        let handle = recorder.handle();
        // Only this function installs a recorder, once; a failure would mean metrics are off.
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("a metrics recorder was already installed; /metrics may be empty");
        }
        describe();
        handle
    })
}

/// The text of `/metrics`: the process figures are read at each scrape, as Prometheus expects.
pub fn render_metrics() -> String {
    static PROCESS: std::sync::LazyLock<metrics_process::Collector> =
        std::sync::LazyLock::new(|| {
            let collector = metrics_process::Collector::default();
            collector.describe();
            collector
        });
    let handle = metrics();
    PROCESS.collect();
    handle.render()
}

/// Request latency by route template, method and status.
pub const REQUEST_DURATION: &str = "latchkey_http_request_duration_seconds";
/// Time a password hash or verification took on the hashing pool.
pub const HASH_DURATION: &str = "latchkey_password_hash_duration_seconds";

/// From half a millisecond (a cached token check) to the request deadline.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Every family latchkey records, with its help text; `latchkey_build_info` is set here, once.
fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_histogram!(
        REQUEST_DURATION,
        Unit::Seconds,
        "HTTP requests by route template, method and status, and how long they took to answer."
    );
    describe_histogram!(
        HASH_DURATION,
        Unit::Seconds,
        "Password hashes and verifications on the hashing pool, and how long each took."
    );
    describe_counter!(
        "latchkey_password_hashes_total",
        "Password hashes and verifications run on the hashing pool."
    );
    describe_counter!(
        "latchkey_password_hashes_shed_total",
        "Password hashes refused with 503 because the hashing queue was full."
    );
    describe_counter!(
        "latchkey_rate_limited_total",
        "Requests refused with 429, by rate-limited action."
    );
    describe_counter!("latchkey_mail_sent_total", "Mails handed to the transport.");
    describe_counter!(
        "latchkey_mail_retries_total",
        "Mail deliveries that failed and were rescheduled."
    );
    describe_counter!(
        "latchkey_mail_given_up_total",
        "Mails dropped after failing for longer than LATCHKEY_MAIL_MAX_AGE."
    );
    describe_counter!(
        "latchkey_events_published_total",
        "Outbox events published to NATS JetStream."
    );
    describe_counter!(
        "latchkey_refresh_token_reuse_total",
        "Refresh tokens presented again after rotation, each of which revoked its session."
    );
    describe_gauge!(
        "latchkey_verify_cache_tokens",
        "Access tokens remembered as verified (LATCHKEY_VERIFY_CACHE_MB), updated every second."
    );
    describe_gauge!(
        "latchkey_verify_cache_bytes",
        Unit::Bytes,
        "The estimated memory of the verified-token cache, updated every second."
    );
    describe_gauge!(
        "latchkey_build_info",
        "Always 1; the labels name the running version and commit."
    );
    metrics::gauge!("latchkey_build_info", "version" => crate::VERSION, "commit" => crate::COMMIT)
        .set(1.0);
}
