//! The log's settings.

/// `LATCHKEY_LOG_FORMAT` and `LATCHKEY_LOG`.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Logging")]
pub struct LogArgs {
    /// Log format: `text` or `json`.
    #[arg(long, env = "LATCHKEY_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Log filter (tracing `EnvFilter` syntax), e.g. `info` or `latchkey=debug`.
    #[arg(long, env = "LATCHKEY_LOG", default_value = "info")]
    pub log: String,
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
}

impl LogArgs {
    /// Checks the filter's syntax.
    pub fn validate(self) -> Result<LogConfig, String> {
        tracing_subscriber::EnvFilter::try_new(&self.log)
            .map_err(|e| format!("LATCHKEY_LOG {:?} is not a valid filter: {e}", self.log))?;
        Ok(LogConfig {
            format: self.log_format,
            filter: self.log,
        })
    }
}
