//! The log's and the traces' settings.

/// `LATCHKEY_LOG_FORMAT`, `LATCHKEY_LOG` and `LATCHKEY_OTLP_ENDPOINT`.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Logging and traces")]
pub struct LogArgs {
    /// Log format: `text` or `json`.
    #[arg(long, env = "LATCHKEY_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Log filter (tracing `EnvFilter` syntax), e.g. `info` or `latchkey=debug`.
    #[arg(long, env = "LATCHKEY_LOG", default_value = "info")]
    pub log: String,
    /// Base URL of an OpenTelemetry collector's OTLP/HTTP receiver, e.g.
    /// `http://127.0.0.1:4318`: each request's span is sent to `<url>/v1/traces` (protobuf).
    /// Unset: no traces.
    #[arg(long, env = "LATCHKEY_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The validated log settings.
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// Log format.
    pub format: LogFormat,
    /// Log filter.
    pub filter: String,
    /// Where spans are exported (the traces URL itself, `/v1/traces` included), if anywhere.
    pub otlp_traces_url: Option<url::Url>,
}

impl LogConfig {
    /// Text logs at `filter`, no traces: for tests and tools.
    pub fn text(filter: &str) -> LogConfig {
        LogConfig {
            format: LogFormat::Text,
            filter: filter.to_owned(),
            otlp_traces_url: None,
        }
    }
}

impl LogArgs {
    /// Checks the filter's syntax and the collector's URL.
    pub fn validate(self) -> Result<LogConfig, String> {
        tracing_subscriber::EnvFilter::try_new(&self.log)
            .map_err(|e| format!("LATCHKEY_LOG {:?} is not a valid filter: {e}", self.log))?;
        let otlp_traces_url = self.otlp_endpoint.as_deref().map(traces_url).transpose()?;
        Ok(LogConfig {
            format: self.log_format,
            filter: self.log,
            otlp_traces_url,
        })
    }
}

/// `<base>/v1/traces`, as OTLP/HTTP names the path under a collector's base URL (the rule of
/// `OTEL_EXPORTER_OTLP_ENDPOINT`).
fn traces_url(endpoint: &str) -> Result<url::Url, String> {
    let invalid = |why: &str| format!("LATCHKEY_OTLP_ENDPOINT {endpoint:?} {why}");
    let mut url = url::Url::parse(endpoint).map_err(|e| invalid(&format!("is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(invalid("must be an http or https URL"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid("must not carry a query or fragment"));
    }
    let path = format!("{}/v1/traces", url.path().trim_end_matches('/'));
    url.set_path(&path);
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::traces_url;

    #[test]
    fn the_traces_path_goes_under_the_collectors_base_url() {
        for (endpoint, expected) in [
            ("http://127.0.0.1:4318", "http://127.0.0.1:4318/v1/traces"),
            ("http://collector:4318/", "http://collector:4318/v1/traces"),
            (
                "https://otel.example/otlp/",
                "https://otel.example/otlp/v1/traces",
            ),
        ] {
            assert_eq!(traces_url(endpoint).unwrap().as_str(), expected);
        }
        for bad in [
            "collector:4318",
            "ftp://collector",
            "http://c:4318/?x=1",
            "not a url",
        ] {
            let error = traces_url(bad).unwrap_err();
            assert!(error.starts_with("LATCHKEY_OTLP_ENDPOINT"), "{error}");
        }
    }
}
