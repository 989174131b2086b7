//! The server under test, as the checks see it: its address, what `/health` says about its
//! settings, and helpers for the requests most checks make.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::spawn::Launcher;
use crate::wire::{Protocol, RawStream, Transport};

/// How to reach a server and what to expect of it.
#[derive(Debug, Clone)]
pub struct Target {
    /// `http://host:port` or `https://…`, without a trailing slash.
    pub base: String,
    pub address: SocketAddr,
    /// Plain HTTP/1.1, or HTTPS with HTTP/1.1 or HTTP/2.
    pub transport: Transport,
    /// The bearer token, for servers that require one.
    pub token: Option<String>,
    /// The expected `Access-Control-Allow-Origin`.
    pub origin: String,
    /// When the suite can start more processes of the same server (for the checks that stop
    /// one, or start one with bad settings).
    pub launcher: Option<Launcher>,
}

impl Target {
    /// A server the suite started with its own settings ([`crate::spawn::SUITE_ENV`]).
    pub fn spawned(server: &crate::spawn::Server, launcher: Launcher) -> Self {
        Self {
            base: format!("{}://{}", launcher.transport.scheme(), server.address()),
            address: server.address(),
            transport: launcher.transport.clone(),
            token: Some(crate::spawn::SUITE_TOKEN.to_owned()),
            origin: crate::spawn::SUITE_ORIGIN.to_owned(),
            launcher: Some(launcher),
        }
    }

    /// Parses `http://host:port` or `https://host:port` (a path is ignored); the host must
    /// resolve. An `https://` URL needs the authority to trust and the protocol to speak.
    pub fn from_url(
        url: &str,
        token: Option<String>,
        origin: String,
        tls: Option<(&std::path::Path, Protocol)>,
    ) -> Result<Self, String> {
        let parsed = reqwest::Url::parse(url).map_err(|e| format!("{url:?} is not a URL: {e}"))?;
        let transport = match (parsed.scheme(), tls) {
            ("http", _) => Transport::Plain,
            ("https", Some((ca, protocol))) => Transport::tls(ca, protocol)?,
            ("https", None) => {
                return Err(format!(
                    "{url:?}: an https:// URL needs --ca-cert FILE, the authority to trust (for the development certificate: target/dev-cert/ca.pem)"
                ));
            }
            (scheme, _) => {
                return Err(format!(
                    "{url:?}: only http:// and https:// URLs are supported, not {scheme}://"
                ));
            }
        };
        let host = parsed
            .host_str()
            .ok_or_else(|| format!("{url:?} has no host"))?;
        let port = parsed.port_or_known_default().unwrap_or(80);
        let address =
            std::net::ToSocketAddrs::to_socket_addrs(&(host.trim_matches(['[', ']']), port))
                .ok()
                .and_then(|mut addresses| addresses.next())
                .ok_or_else(|| format!("cannot resolve {host}"))?;
        Ok(Self {
            base: format!("{}://{address}", transport.scheme()),
            address,
            transport,
            token,
            origin,
            launcher: None,
        })
    }
}

/// The settings a server reports in `/health`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    pub tick_ms: u64,
    pub heartbeat_ms: u64,
    pub retry_ms: u64,
    pub replay_capacity: u64,
    pub max_clients: u64,
    pub client_buffer: u64,
    pub auth: bool,
}

/// A `/health` answer.
#[derive(Debug, Clone)]
pub struct Health {
    pub framework: String,
    /// The id this process chose at start, unique within its cluster.
    pub instance: String,
    /// `memory` or `redis`.
    pub log_backend: String,
    pub log_connected: bool,
    pub clients: u64,
    pub last_id: u64,
    pub config: ServerConfig,
    pub raw: Value,
}

impl Health {
    pub fn parse(body: &str) -> Result<Self, String> {
        let raw: Value = serde_json::from_str(body)
            .map_err(|e| format!("/health is not JSON ({e}): {body:?}"))?;
        let number = |value: &Value, key: &str| {
            value
                .get(key)
                .and_then(Value::as_u64)
                .ok_or_else(|| format!("/health has no integer {key:?}: {body}"))
        };
        let config = raw
            .get("config")
            .ok_or_else(|| format!("/health has no \"config\": {body}"))?;
        Ok(Self {
            framework: raw
                .get("framework")
                .and_then(Value::as_str)
                .filter(|name| !name.is_empty())
                .ok_or_else(|| format!("/health has no \"framework\" name: {body}"))?
                .to_owned(),
            instance: raw
                .get("instance")
                .and_then(Value::as_str)
                .filter(|name| !name.is_empty())
                .ok_or_else(|| format!("/health has no \"instance\" (contract 5): {body}"))?
                .to_owned(),
            log_backend: raw
                .pointer("/log/backend")
                .and_then(Value::as_str)
                .filter(|backend| ["memory", "redis"].contains(backend))
                .ok_or_else(|| {
                    format!(
                        "/health has no \"log\":{{\"backend\": \"memory\" or \"redis\"}}: {body}"
                    )
                })?
                .to_owned(),
            log_connected: raw
                .pointer("/log/connected")
                .and_then(Value::as_bool)
                .ok_or_else(|| format!("/health has no boolean log.connected: {body}"))?,
            clients: number(&raw, "clients")?,
            last_id: number(&raw, "last_id")?,
            config: ServerConfig {
                tick_ms: number(config, "tick_ms")?,
                heartbeat_ms: number(config, "heartbeat_ms")?,
                retry_ms: number(config, "retry_ms")?,
                replay_capacity: number(config, "replay_capacity")?,
                max_clients: number(config, "max_clients")?,
                client_buffer: number(config, "client_buffer")?,
                auth: config
                    .get("auth")
                    .and_then(Value::as_bool)
                    .ok_or_else(|| format!("/health has no boolean config.auth: {body}"))?,
            },
            raw,
        })
    }
}

/// An HTTP answer read in full.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn json(&self) -> Option<Value> {
        serde_json::from_str(&self.body).ok()
    }

    pub fn describe(&self) -> String {
        let body: String = self.body.chars().take(300).collect();
        format!("{} {body:?}", self.status)
    }
}

/// What every check gets.
pub struct Ctx {
    pub target: Target,
    pub http: reqwest::Client,
    /// `/health` as read before the checks began.
    pub health: Health,
    /// What the TLS handshake chose by ALPN (`None` over plain HTTP).
    pub negotiated: Option<String>,
}

impl Ctx {
    pub async fn connect(target: Target) -> Result<Self, String> {
        let builder = http_client_for(&target.transport).timeout(Duration::from_secs(20));
        let (builder, negotiated) = match &target.transport {
            // A fresh connection per request: servers close connections after refusing a body
            // they did not read, and a pooled connection closed that way would fail the next
            // request. Over HTTP/2 a refused body ends its stream, not the connection: one
            // connection carries every request, as a browser's would.
            Transport::Plain => (builder.pool_max_idle_per_host(0), None),
            Transport::Tls(tls) => {
                // The protocol is the one asked for, or the handshake fails.
                let probe = crate::tls::connect(target.address, Arc::clone(&tls.config)).await?;
                let negotiated = crate::tls::negotiated(&probe);
                let builder = match tls.protocol {
                    Protocol::Http1 => builder.pool_max_idle_per_host(0),
                    Protocol::Http2 => builder,
                };
                (builder, Some(negotiated))
            }
        };
        let http = builder
            .build()
            .map_err(|e| format!("cannot build an HTTP client: {e}"))?;
        let answer = send(http.get(format!("{}/health", target.base))).await?;
        if answer.status != 200 {
            return Err(format!("GET /health answered {}", answer.describe()));
        }
        let health = Health::parse(&answer.body)?;
        Ok(Self {
            target,
            http,
            health,
            negotiated,
        })
    }

    pub fn config(&self) -> &ServerConfig {
        &self.health.config
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.target.base)
    }

    /// `/health` now.
    pub async fn health_now(&self) -> Result<Health, String> {
        let answer = send(self.http.get(self.url("/health"))).await?;
        Health::parse(&answer.body)
    }

    /// Polls `/health` until `clients` satisfies `want`, for at most `timeout`; returns the last count.
    pub async fn wait_for_clients(
        &self,
        timeout: Duration,
        want: impl Fn(u64) -> bool,
    ) -> Result<u64, String> {
        let deadline = Instant::now() + timeout;
        loop {
            let clients = self.health_now().await?.clients;
            if want(clients) || Instant::now() >= deadline {
                return Ok(clients);
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// `POST /trigger` with a JSON body and the token (when known).
    pub async fn trigger(&self, body: &Value) -> Result<Answer, String> {
        self.trigger_with(body.to_string(), &[]).await
    }

    /// `POST /trigger` with this body (as bytes), the token, and more headers.
    pub async fn trigger_with(
        &self,
        body: String,
        headers: &[(&str, &str)],
    ) -> Result<Answer, String> {
        let mut request = self
            .http
            .post(self.url("/trigger"))
            .header("content-type", "application/json")
            .body(body);
        if let Some(token) = &self.target.token {
            request = request.bearer_auth(token);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        send(request).await
    }

    /// Publishes an event and returns its id; anything but 202 with an id is an error.
    pub async fn publish(&self, event: Option<&str>, data: Value) -> Result<u64, String> {
        let body = match event {
            Some(name) => serde_json::json!({ "event": name, "data": data }),
            None => serde_json::json!({ "data": data }),
        };
        let answer = self.trigger(&body).await?;
        if answer.status != 202 {
            return Err(format!(
                "POST /trigger {body} answered {}",
                answer.describe()
            ));
        }
        answer
            .json()
            .and_then(|v| v.get("id").and_then(Value::as_u64))
            .ok_or_else(|| {
                format!(
                    "POST /trigger answered 202 without an integer id: {:?}",
                    answer.body
                )
            })
    }

    /// Opens `GET path` over raw TCP and checks that it is an event stream.
    pub async fn open_stream(
        &self,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<RawStream, String> {
        let stream = self.get_stream(path, headers).await?;
        if stream.head.status != 200 {
            return Err(format!("GET {path} answered {}", stream.head.describe()));
        }
        Ok(stream)
    }

    /// Opens `GET path` over the raw wire, whatever the answer.
    pub async fn get_stream(
        &self,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<RawStream, String> {
        RawStream::get(&self.target.transport, self.target.address, path, headers).await
    }

    /// Whether the suite speaks HTTP/2 to this server.
    pub fn over_h2(&self) -> bool {
        self.target.transport.protocol() == Protocol::Http2
    }

    /// Whether the suite can start processes of this server (checks that stop one need it).
    pub fn launcher(&self) -> Option<&Launcher> {
        self.target.launcher.as_ref()
    }
}

/// The suite's HTTP client builder: no proxy, and rustls on ring for HTTPS (reqwest is built
/// without a TLS provider of its own).
pub fn http_client() -> reqwest::ClientBuilder {
    crate::tls::install_ring_provider();
    reqwest::Client::builder().no_proxy()
}

/// [`http_client`] speaking `transport`: over TLS trusting its authority, HTTP/1.1 or HTTP/2
/// alone as it says.
pub fn http_client_for(transport: &Transport) -> reqwest::ClientBuilder {
    let builder = http_client();
    match transport {
        Transport::Plain => builder,
        Transport::Tls(tls) => {
            let builder = builder.tls_backend_preconfigured((*tls.config).clone());
            match tls.protocol {
                Protocol::Http1 => builder.http1_only(),
                Protocol::Http2 => builder.http2_prior_knowledge(),
            }
        }
    }
}

/// Sends a request and reads the whole answer.
pub async fn send(request: reqwest::RequestBuilder) -> Result<Answer, String> {
    let response = request
        .send()
        .await
        .map_err(|e| format!("request failed: {e}"))?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response
        .text()
        .await
        .map_err(|e| format!("reading the body failed: {e}"))?;
    Ok(Answer {
        status,
        headers,
        body,
    })
}
