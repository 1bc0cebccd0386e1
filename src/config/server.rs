//! The listeners' settings: addresses, the public URL, proxies, timeouts, connections.

use super::parse_duration;
use std::net::{IpAddr, SocketAddr};
use time::Duration;

/// `LATCHKEY_LISTEN`, `LATCHKEY_PUBLIC_URL`, `LATCHKEY_*_TIMEOUT` and the like.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Listeners")]
pub struct ServerArgs {
    /// Address to listen on.
    #[arg(long, env = "LATCHKEY_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Address of the operations listener (`/metrics`, `/healthz`, `/readyz`), or `off`;
    /// `/metrics` is never served on the public listener.
    #[arg(long, env = "LATCHKEY_METRICS_LISTEN", default_value = "127.0.0.1:9464", value_parser = OptionalAddress::parse)]
    pub metrics_listen: OptionalAddress,
    /// Externally visible base URL, including any base path [default: http://{LISTEN}{BASE_PATH}].
    #[arg(long, env = "LATCHKEY_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Prefix for every path, e.g. `/api`.
    #[arg(long, env = "LATCHKEY_BASE_PATH", default_value = "")]
    pub base_path: String,
    /// CIDRs of proxies whose `X-Forwarded-For` is believed, comma-separated (default: none).
    #[arg(long, env = "LATCHKEY_TRUSTED_PROXIES", value_delimiter = ',', value_parser = Cidr::parse)]
    pub trusted_proxies: Vec<Cidr>,
    /// Longest a request may take before it is answered 503 (its transaction rolls back).
    #[arg(long, env = "LATCHKEY_REQUEST_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub request_timeout: Duration,
    /// Longest a client may stall: to send a request's headers (idle keep-alive included), or
    /// with an answer left unread.
    #[arg(long, env = "LATCHKEY_HEADER_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub header_timeout: Duration,
    /// Longest a request's body may take to arrive once its headers have; a slower one is
    /// answered 408 and its connection closed.
    #[arg(long, env = "LATCHKEY_BODY_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub body_timeout: Duration,
    /// Client connections served at once; more wait in the accept queue.
    #[arg(long, env = "LATCHKEY_MAX_CONNECTIONS", default_value_t = 4096)]
    pub max_connections: usize,
    /// On SIGTERM, how long `/readyz` answers 503 while the listeners still serve, so a load
    /// balancer stops sending before they close.
    #[arg(long, env = "LATCHKEY_SHUTDOWN_DELAY", default_value = "1s", value_parser = parse_duration)]
    pub shutdown_delay: Duration,
    /// Origins of browser apps allowed to call the API, with credentials, comma-separated
    /// (`https://app.example.com`); default none.
    #[arg(long, env = "LATCHKEY_CORS_ORIGINS", value_delimiter = ',', value_parser = parse_origin)]
    pub cors_origins: Vec<String>,
}

/// An origin as a browser serialises it (`https://app.example.com`: lower case, no default
/// port, punycode host), so that it compares equal to the `Origin` header; nothing after it.
fn parse_origin(raw: &str) -> Result<String, String> {
    let refused =
        || format!("{raw:?} is not an origin like https://app.example.com (no path, no wildcard)");
    let url = url::Url::parse(raw.trim()).map_err(|_| refused())?;
    let bare = matches!(url.scheme(), "http" | "https")
        && url.path() == "/"
        && url.query().is_none()
        && url.fragment().is_none()
        && url.username().is_empty()
        && url.password().is_none()
        && !raw.trim().trim_end_matches('/').ends_with(['?', '#']);
    if bare {
        Ok(url.origin().ascii_serialization())
    } else {
        Err(refused())
    }
}

/// The validated listener settings.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Listen address.
    pub listen: SocketAddr,
    /// The operations listener's address (metrics, health), if it is on.
    pub metrics_listen: Option<SocketAddr>,
    /// Public base URL without a trailing slash, including the base path.
    pub public_url: String,
    /// Path prefix, empty or `/something` without a trailing slash.
    pub base_path: String,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<Cidr>,
    /// Longest a request may take.
    pub request_timeout: Duration,
    /// Longest a client may stall: sending request headers, or leaving an answer unread.
    pub header_timeout: Duration,
    /// Longest a request's body may take to arrive after its headers.
    pub body_timeout: Duration,
    /// Client connections served at once.
    pub max_connections: usize,
    /// Browser origins allowed to call the API with credentials.
    pub cors_origins: Vec<String>,
    /// How long `/readyz` says 503 before the listeners close on shutdown.
    pub shutdown_delay: Duration,
}

impl ServerArgs {
    /// Normalises the base path, derives the public URL and checks the timeouts and limits.
    pub fn validate(self) -> Result<ServerConfig, String> {
        let base_path = normalise_base_path(&self.base_path)?;
        let public_url = match self.public_url {
            Some(url) => {
                let url = url.trim_end_matches('/').to_owned();
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err("LATCHKEY_PUBLIC_URL must start with http:// or https://".into());
                }
                url
            }
            // Derived only where it cannot be wrong: on any other address clients reach the
            // service by a name latchkey cannot know, and a `0.0.0.0` issuer and mailed links
            // would be useless to them.
            None if self.listen.ip().is_loopback() => {
                format!("http://{}{base_path}", self.listen)
            }
            None => {
                return Err(format!(
                    "LATCHKEY_LISTEN {} is not a loopback address: set LATCHKEY_PUBLIC_URL to the URL clients use (the token issuer and the base of every mailed link)",
                    self.listen
                ));
            }
        };
        if self.header_timeout < Duration::milliseconds(100)
            || !(1..=1_000_000).contains(&self.max_connections)
        {
            return Err("LATCHKEY_HEADER_TIMEOUT must be at least 100ms and LATCHKEY_MAX_CONNECTIONS between 1 and 1000000".into());
        }
        if self.shutdown_delay < Duration::ZERO || self.shutdown_delay > Duration::minutes(5) {
            return Err("LATCHKEY_SHUTDOWN_DELAY must be between 0s and 5m".into());
        }
        if self.body_timeout < Duration::milliseconds(100) {
            return Err("LATCHKEY_BODY_TIMEOUT must be at least 100ms".into());
        }
        if let Some(metrics) = self.metrics_listen.0
            && metrics.port() != 0
            && metrics == self.listen
        {
            return Err("LATCHKEY_METRICS_LISTEN must differ from LATCHKEY_LISTEN: metrics are never served on the public listener".into());
        }
        Ok(ServerConfig {
            listen: self.listen,
            metrics_listen: self.metrics_listen.0,
            public_url,
            base_path,
            trusted_proxies: self.trusted_proxies,
            request_timeout: self.request_timeout,
            header_timeout: self.header_timeout,
            body_timeout: self.body_timeout,
            max_connections: self.max_connections,
            cors_origins: self.cors_origins,
            shutdown_delay: self.shutdown_delay,
        })
    }
}

/// A listen address, or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OptionalAddress(pub Option<SocketAddr>);

impl OptionalAddress {
    /// Parses `host:port`, or `off`.
    pub fn parse(raw: &str) -> Result<OptionalAddress, String> {
        if raw.trim().eq_ignore_ascii_case("off") {
            return Ok(OptionalAddress(None));
        }
        raw.trim()
            .parse()
            .map(|address| OptionalAddress(Some(address)))
            .map_err(|_| format!("{raw:?} is not an address like 127.0.0.1:9464, nor `off`"))
    }
}

/// An IP network, e.g. `10.0.0.0/8` or `::1/128` (a bare address is a single host).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr(ipnet::IpNet);

impl Cidr {
    /// Parses `address[/prefix]`.
    pub fn parse(raw: &str) -> Result<Cidr, String> {
        let raw = raw.trim();
        if raw.contains('/') {
            raw.parse::<ipnet::IpNet>()
                .map(Cidr)
                .map_err(|_| format!("{raw:?} is not an IP network like 10.0.0.0/8"))
        } else {
            raw.parse::<IpAddr>()
                .map(|host| Cidr(ipnet::IpNet::from(host)))
                .map_err(|_| format!("{raw:?} is not an IP network like 10.0.0.0/8"))
        }
    }

    /// Whether `ip` is inside the network (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.contains(&ip.to_canonical())
    }
}

/// Trims a trailing slash; refuses anything but `/segment[/segment…]` of URL-safe characters.
pub fn normalise_base_path(raw: &str) -> Result<String, String> {
    let trimmed = raw.trim_end_matches('/');
    if trimmed.is_empty() {
        return Ok(String::new());
    }
    let valid = trimmed.starts_with('/')
        && trimmed[1..].split('/').all(|segment| {
            !segment.is_empty()
                && segment
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
        });
    if valid {
        Ok(trimmed.to_owned())
    } else {
        Err(format!("LATCHKEY_BASE_PATH {raw:?} must look like /api"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_paths_are_normalised_or_refused() {
        assert_eq!(normalise_base_path("").unwrap(), "");
        assert_eq!(normalise_base_path("/api/").unwrap(), "/api");
        assert!(normalise_base_path("api").is_err());
        assert!(normalise_base_path("/a b").is_err());
    }

    #[test]
    fn networks_contain_their_addresses_and_no_others() {
        let private = Cidr::parse("10.0.0.0/8").unwrap();
        assert!(private.contains("10.1.2.3".parse().unwrap()));
        assert!(!private.contains("11.0.0.1".parse().unwrap()));
        assert!(private.contains("::ffff:10.0.0.1".parse().unwrap()));
        let host = Cidr::parse("::1").unwrap();
        assert!(host.contains("::1".parse().unwrap()) && !host.contains("::2".parse().unwrap()));
        assert!(
            Cidr::parse("0.0.0.0/0")
                .unwrap()
                .contains("8.8.8.8".parse().unwrap())
        );
        assert!(Cidr::parse("10.0.0.0/33").is_err() && Cidr::parse("ten").is_err());
    }

    #[test]
    fn an_optional_address_is_an_address_or_off() {
        assert_eq!(
            OptionalAddress::parse("127.0.0.1:9464").unwrap(),
            OptionalAddress(Some("127.0.0.1:9464".parse().unwrap()))
        );
        assert_eq!(
            OptionalAddress::parse("off").unwrap(),
            OptionalAddress(None)
        );
        assert!(OptionalAddress::parse("9464").is_err());
    }
}
