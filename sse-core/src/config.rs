//! Configuration from the environment (contract section 1), with the same settings accepted as
//! command-line flags. A flag wins over its variable; an empty value counts as unset; a bad
//! value stops the process with one line naming the variable, before anything is bound.

use std::net::IpAddr;
use std::time::Duration;

use clap::{CommandFactory, FromArgMatches, Parser};

use crate::framework::Framework;
use crate::hub::HubLimits;
use crate::tls::Tls;

/// The settings every server runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub host: IpAddr,
    pub port: u16,
    /// 0 turns ticks off.
    pub tick_ms: u64,
    pub heartbeat_ms: u64,
    pub retry_ms: u64,
    pub replay_capacity: usize,
    pub max_clients: usize,
    pub client_buffer: usize,
    pub trigger_token: Option<String>,
    pub cors_origin: String,
    pub log_filter: String,
    pub event_log: EventLogSetting,
    /// Prefix of every key in the shared log; instances with the same URL and key are one cluster.
    pub event_log_key: String,
    /// `TLS_CERT` and `TLS_KEY`: serve HTTPS (HTTP/2 and HTTP/1.1) instead of plain HTTP.
    pub tls: Option<Tls>,
}

/// Where events live (`EVENT_LOG`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventLogSetting {
    /// This process alone (the default).
    Memory,
    /// A Redis stream shared by every instance with the same URL and key: `redis://HOST:PORT[/DB]`.
    Redis(String),
}

impl EventLogSetting {
    /// How the banner and errors name it.
    pub fn describe(&self) -> String {
        match self {
            Self::Memory => "memory (this process alone)".to_owned(),
            Self::Redis(url) => url.clone(),
        }
    }
}

impl Config {
    pub fn tick_period(&self) -> Option<Duration> {
        (self.tick_ms > 0).then(|| Duration::from_millis(self.tick_ms))
    }

    pub fn heartbeat(&self) -> Duration {
        Duration::from_millis(self.heartbeat_ms)
    }

    /// `https` with TLS, else `http`.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }

    pub fn hub_limits(&self) -> HubLimits {
        HubLimits {
            replay_capacity: self.replay_capacity,
            max_clients: self.max_clients,
            client_buffer: self.client_buffer,
        }
    }
}

/// A setting that could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub variable: &'static str,
    pub value: String,
    pub expected: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "invalid {}={}: expected {}",
            self.variable,
            crate::error::quoted(&self.value),
            self.expected
        )
    }
}

impl std::error::Error for ConfigError {}

const MAX_MS: u64 = 86_400_000;
const MAX_COUNT: u64 = 1_000_000;

/// The command line. Every flag mirrors an environment variable of the contract; values stay
/// strings here so that [`Config::from_cli`] can validate them and name the variable on error.
#[derive(Debug, Default, Parser)]
#[command(
    version,
    after_help = "Every setting may also be given as its environment variable (shown in brackets); \
                  a flag wins over the variable, and an empty variable counts as unset."
)]
pub struct Cli {
    /// Address to bind [default: 127.0.0.1]
    #[arg(long, env = "HOST", value_name = "IP")]
    pub host: Option<String>,
    /// Port to bind; 0 picks a free one [default: the framework's port]
    #[arg(long, env = "PORT")]
    pub port: Option<String>,
    /// Period of `tick` events in ms, 0 … 86400000; 0 turns ticks off [default: 1000]
    #[arg(long, env = "TICK_MS", value_name = "MS")]
    pub tick_ms: Option<String>,
    /// An idle stream gets a comment at least this often, in ms, 1 … 86400000 [default: 15000]
    #[arg(long, env = "HEARTBEAT_MS", value_name = "MS")]
    pub heartbeat_ms: Option<String>,
    /// Reconnection delay advertised to clients in ms, 0 … 86400000 [default: 3000]
    #[arg(long, env = "RETRY_MS", value_name = "MS")]
    pub retry_ms: Option<String>,
    /// Recent events kept for replay, 1 … 1000000 [default: 1024]
    #[arg(long, env = "REPLAY_CAPACITY", value_name = "N")]
    pub replay_capacity: Option<String>,
    /// Most open event streams at once, 1 … 1000000 [default: 10000]
    #[arg(long, env = "MAX_CLIENTS", value_name = "N")]
    pub max_clients: Option<String>,
    /// Events a slow client may fall behind before its stream is ended, 1 … 1000000 [default: 256]
    #[arg(long, env = "CLIENT_BUFFER", value_name = "N")]
    pub client_buffer: Option<String>,
    /// When set, POST /trigger requires `Authorization: Bearer <token>`
    #[arg(
        long,
        env = "TRIGGER_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub trigger_token: Option<String>,
    /// Value of Access-Control-Allow-Origin [default: *]
    #[arg(long, env = "CORS_ORIGIN", value_name = "ORIGIN")]
    pub cors_origin: Option<String>,
    /// Log filter, tracing's EnvFilter syntax [default: info]
    #[arg(long = "log", env = "RUST_LOG", value_name = "FILTER")]
    pub log_filter: Option<String>,
    /// Where events live: memory (this process alone) or redis://HOST:PORT[/DB], a log shared
    /// by every instance with the same URL and key [default: memory]
    #[arg(long, env = "EVENT_LOG", value_name = "LOG")]
    pub event_log: Option<String>,
    /// Prefix of every key in the shared log, [A-Za-z0-9:_.-]{1,64} [default: sse]
    #[arg(long, env = "EVENT_LOG_KEY", value_name = "KEY")]
    pub event_log_key: Option<String>,
    /// PEM file of the certificate chain; with --tls-key, serve HTTPS (HTTP/2 and HTTP/1.1)
    /// instead of plain HTTP (`scripts/dev-cert.sh` makes one for 127.0.0.1)
    #[arg(long, env = "TLS_CERT", value_name = "FILE")]
    pub tls_cert: Option<String>,
    /// PEM file of the certificate's private key
    #[arg(long, env = "TLS_KEY", value_name = "FILE")]
    pub tls_key: Option<String>,
}

impl Config {
    /// Reads the command line and the environment; on `--help` prints help and exits 0, on a bad
    /// value prints one line and exits 2.
    pub fn load_or_exit(framework: Framework) -> Self {
        let command = Cli::command().name(framework.package).about(format!(
            "The sse-examples contract served with {}: GET /events (Server-Sent Events), \
             POST /trigger, GET /health and the demo page at GET /.",
            framework.name
        ));
        let cli = match Cli::from_arg_matches(&command.get_matches()) {
            Ok(cli) => cli,
            Err(error) => error.exit(),
        };
        Self::from_cli(cli, framework).unwrap_or_else(|error| {
            eprintln!("{}: {error}", framework.package);
            std::process::exit(2)
        })
    }

    /// Validates every setting; the first bad one is the error.
    pub fn from_cli(cli: Cli, framework: Framework) -> Result<Self, ConfigError> {
        Ok(Self {
            host: parse_or(
                "HOST",
                cli.host,
                IpAddr::from([127, 0, 0, 1]),
                "an IP address such as 127.0.0.1, 0.0.0.0 or ::1",
                |v| v.parse().ok(),
            )?,
            port: parse_or(
                "PORT",
                cli.port,
                framework.default_port,
                "a port number from 0 to 65535",
                |v| v.parse().ok(),
            )?,
            tick_ms: number("TICK_MS", cli.tick_ms, 1000, 0, MAX_MS, " (milliseconds)")?,
            heartbeat_ms: number(
                "HEARTBEAT_MS",
                cli.heartbeat_ms,
                15_000,
                1,
                MAX_MS,
                " (milliseconds)",
            )?,
            retry_ms: number("RETRY_MS", cli.retry_ms, 3000, 0, MAX_MS, " (milliseconds)")?,
            replay_capacity: count("REPLAY_CAPACITY", cli.replay_capacity, 1024)?,
            max_clients: count("MAX_CLIENTS", cli.max_clients, 10_000)?,
            client_buffer: count("CLIENT_BUFFER", cli.client_buffer, 256)?,
            trigger_token: non_empty(cli.trigger_token),
            cors_origin: parse_or(
                "CORS_ORIGIN",
                cli.cors_origin,
                "*".to_owned(),
                "* or an origin such as https://example.com (visible ASCII, no line breaks)",
                |v| {
                    v.bytes()
                        .all(|b| b == b'\t' || (b' '..=b'~').contains(&b))
                        .then(|| v.to_owned())
                },
            )?,
            log_filter: parse_or(
                "RUST_LOG",
                cli.log_filter,
                "info".to_owned(),
                "a tracing filter such as info or axum_example=debug,info",
                |v| {
                    tracing_subscriber::EnvFilter::try_new(v)
                        .is_ok()
                        .then(|| v.to_owned())
                },
            )?,
            event_log: parse_or(
                "EVENT_LOG",
                cli.event_log,
                EventLogSetting::Memory,
                "memory or redis://HOST:PORT[/DB]",
                parse_event_log,
            )?,
            event_log_key: parse_or(
                "EVENT_LOG_KEY",
                cli.event_log_key,
                "sse".to_owned(),
                "1 to 64 of A-Z a-z 0-9 : _ . -",
                |v| {
                    (v.len() <= 64
                        && v.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b":_.-".contains(&b)))
                    .then(|| v.to_owned())
                },
            )?,
            tls: Tls::load(non_empty(cli.tls_cert), non_empty(cli.tls_key))?,
        })
    }
}

fn parse_event_log(value: &str) -> Option<EventLogSetting> {
    if value == "memory" {
        return Some(EventLogSetting::Memory);
    }
    let rest = value.strip_prefix("redis://")?;
    // A host is required (redis-rs would take redis:// alone as localhost).
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = host.rsplit('@').next().unwrap_or_default();
    if host.is_empty() || host.starts_with(':') {
        return None;
    }
    redis::Client::open(value)
        .ok()
        .map(|_| EventLogSetting::Redis(value.to_owned()))
}

fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.is_empty())
}

fn parse_or<T>(
    variable: &'static str,
    value: Option<String>,
    default: T,
    expected: &str,
    parse: impl FnOnce(&str) -> Option<T>,
) -> Result<T, ConfigError> {
    match non_empty(value) {
        None => Ok(default),
        Some(value) => parse(&value).ok_or_else(|| ConfigError {
            variable,
            value,
            expected: expected.to_owned(),
        }),
    }
}

/// A decimal integer in `min..=max`, digits only (no sign, no spaces).
fn number(
    variable: &'static str,
    value: Option<String>,
    default: u64,
    min: u64,
    max: u64,
    unit: &str,
) -> Result<u64, ConfigError> {
    let expected = format!("an integer from {min} to {max}{unit}");
    parse_or(variable, value, default, &expected, |v| {
        v.bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| v.parse::<u64>().ok())
            .flatten()
            .filter(|n| (min..=max).contains(n))
    })
}

fn count(
    variable: &'static str,
    value: Option<String>,
    default: usize,
) -> Result<usize, ConfigError> {
    // MAX_COUNT fits any usize this code runs on.
    number(variable, value, default as u64, 1, MAX_COUNT, "").map(|n| n as usize)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) const AXUM: Framework = Framework {
        name: "axum",
        package: "axum-example",
        default_port: 3001,
    };

    #[test]
    fn defaults_follow_the_contract() {
        let config = Config::from_cli(Cli::default(), AXUM).unwrap();
        assert_eq!(
            config,
            Config {
                host: IpAddr::from([127, 0, 0, 1]),
                port: 3001,
                tick_ms: 1000,
                heartbeat_ms: 15_000,
                retry_ms: 3000,
                replay_capacity: 1024,
                max_clients: 10_000,
                client_buffer: 256,
                trigger_token: None,
                cors_origin: "*".into(),
                log_filter: "info".into(),
                event_log: EventLogSetting::Memory,
                event_log_key: "sse".into(),
                tls: None,
            }
        );
    }

    #[test]
    fn empty_values_count_as_unset() {
        let cli = Cli {
            host: Some(String::new()),
            port: Some(String::new()),
            tick_ms: Some(String::new()),
            trigger_token: Some(String::new()),
            ..Cli::default()
        };
        let config = Config::from_cli(cli, AXUM).unwrap();
        assert_eq!(
            (config.port, config.tick_ms, config.trigger_token),
            (3001, 1000, None)
        );
    }

    #[test]
    fn values_are_parsed_and_ranges_are_inclusive() {
        let cli = Cli {
            host: Some("0.0.0.0".into()),
            port: Some("0".into()),
            tick_ms: Some("0".into()),
            heartbeat_ms: Some("86400000".into()),
            replay_capacity: Some("1".into()),
            max_clients: Some("1000000".into()),
            trigger_token: Some("s3cret".into()),
            cors_origin: Some("https://example.com".into()),
            log_filter: Some("warn,axum_example=debug".into()),
            ..Cli::default()
        };
        let config = Config::from_cli(cli, AXUM).unwrap();
        assert_eq!(config.host, IpAddr::from([0, 0, 0, 0]));
        assert_eq!(config.port, 0);
        assert_eq!(config.tick_period(), None);
        assert_eq!(config.heartbeat_ms, 86_400_000);
        assert_eq!((config.replay_capacity, config.max_clients), (1, 1_000_000));
        assert_eq!(config.trigger_token.as_deref(), Some("s3cret"));
    }

    #[test]
    fn bad_values_name_the_variable_the_value_and_what_is_expected() {
        let cases: [(Cli, &str); 8] = [
            (
                Cli {
                    tick_ms: Some("abc".into()),
                    ..Cli::default()
                },
                "TICK_MS",
            ),
            (
                Cli {
                    tick_ms: Some("86400001".into()),
                    ..Cli::default()
                },
                "TICK_MS",
            ),
            (
                Cli {
                    heartbeat_ms: Some("0".into()),
                    ..Cli::default()
                },
                "HEARTBEAT_MS",
            ),
            (
                Cli {
                    retry_ms: Some("+5".into()),
                    ..Cli::default()
                },
                "RETRY_MS",
            ),
            (
                Cli {
                    port: Some("65536".into()),
                    ..Cli::default()
                },
                "PORT",
            ),
            (
                Cli {
                    host: Some("localhost:80".into()),
                    ..Cli::default()
                },
                "HOST",
            ),
            (
                Cli {
                    client_buffer: Some("1000001".into()),
                    ..Cli::default()
                },
                "CLIENT_BUFFER",
            ),
            (
                Cli {
                    cors_origin: Some("a\r\nb".into()),
                    ..Cli::default()
                },
                "CORS_ORIGIN",
            ),
        ];
        for (cli, variable) in cases {
            let error = Config::from_cli(cli, AXUM).unwrap_err();
            assert_eq!(error.variable, variable);
            let line = error.to_string();
            assert!(line.starts_with(&format!("invalid {variable}=")), "{line}");
            assert!(line.contains("expected"), "{line}");
            assert!(!line.contains('\n') && !line.contains('\r'), "{line}");
        }
        let error = Config::from_cli(
            Cli {
                tick_ms: Some("abc".into()),
                ..Cli::default()
            },
            AXUM,
        )
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            r#"invalid TICK_MS="abc": expected an integer from 0 to 86400000 (milliseconds)"#
        );
    }

    #[test]
    fn event_log_is_memory_or_a_redis_url() {
        let parse = |log: &str, key: &str| {
            Config::from_cli(
                Cli {
                    event_log: Some(log.into()),
                    event_log_key: Some(key.into()),
                    ..Cli::default()
                },
                AXUM,
            )
        };
        let config = parse("redis://127.0.0.1:6379/2", "app:events-1").unwrap();
        assert_eq!(
            config.event_log,
            EventLogSetting::Redis("redis://127.0.0.1:6379/2".into())
        );
        assert_eq!(config.event_log_key, "app:events-1");
        assert_eq!(
            parse("memory", "sse").unwrap().event_log,
            EventLogSetting::Memory
        );
        for bad in [
            "redis",
            "redis://",
            "redis://:6379",
            "http://127.0.0.1",
            "Memory",
            "redis://h:99999",
        ] {
            assert_eq!(
                parse(bad, "sse").unwrap_err().variable,
                "EVENT_LOG",
                "{bad}"
            );
        }
        for bad in ["a b", "k\n", &"k".repeat(65), "ключ"] {
            assert_eq!(
                parse("memory", bad).unwrap_err().variable,
                "EVENT_LOG_KEY",
                "{bad}"
            );
        }
    }

    #[test]
    fn bad_log_filter_is_refused() {
        let cli = Cli {
            log_filter: Some("=[".into()),
            ..Cli::default()
        };
        assert_eq!(
            Config::from_cli(cli, AXUM).unwrap_err().variable,
            "RUST_LOG"
        );
    }

    #[test]
    fn cli_parses_flags() {
        let cli = Cli::try_parse_from(["x", "--tick-ms", "250", "--log", "debug"]).unwrap();
        assert_eq!(cli.tick_ms.as_deref(), Some("250"));
        assert_eq!(cli.log_filter.as_deref(), Some("debug"));
    }
}
