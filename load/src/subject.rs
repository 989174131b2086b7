//! The server being measured: a real process of an example binary, started with the settings a
//! scenario needs, watched through `/proc` and `/health`, and stopped by its own PID.

use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use conformance::spawn::{Launcher, SUITE_TOKEN, Server};
use conformance::target::Health;
use conformance::wire::{Protocol, Transport};

use crate::procfs::Sample;
use crate::publish::Publisher;

/// Settings every load scenario starts from: no ticks (every event is one the load published),
/// room for 19,000 streams, quiet logs but for the banner (a log line per connection would be
/// measured too).
pub const LOAD_ENV: &[(&str, &str)] = &[
    ("TICK_MS", "0"),
    ("HEARTBEAT_MS", "15000"),
    ("REPLAY_CAPACITY", "1024"),
    ("MAX_CLIENTS", "20000"),
    ("CLIENT_BUFFER", "256"),
    ("RUST_LOG", "warn,sse_core=info"),
];

pub struct Subject {
    server: Server,
    pub pid: u32,
    pub address: SocketAddr,
    /// Plain HTTP/1.1, or HTTPS on a certificate made for it.
    pub transport: Transport,
    pub base: String,
    pub publisher: Publisher,
    http: reqwest::Client,
}

impl Subject {
    /// Starts `binary` with [`LOAD_ENV`] and then `overrides` on top.
    pub async fn start(binary: &Path, overrides: &[(&str, &str)]) -> Result<Self, String> {
        Self::start_with(Launcher::new(binary.to_path_buf()), overrides).await
    }

    /// [`Subject::start`] over HTTPS (a certificate made for it), spoken to with `protocol`.
    pub async fn start_tls(
        binary: &Path,
        overrides: &[(&str, &str)],
        protocol: Protocol,
    ) -> Result<Self, String> {
        Self::start_with(
            Launcher::new(binary.to_path_buf()).with_tls(protocol)?,
            overrides,
        )
        .await
    }

    async fn start_with(launcher: Launcher, overrides: &[(&str, &str)]) -> Result<Self, String> {
        let mut env: Vec<(&str, &str)> = LOAD_ENV.to_vec();
        env.extend_from_slice(overrides);
        let server = launcher.start(&env).await?;
        let pid = server.pid().ok_or("the server exited at once")?;
        let transport = launcher.transport.clone();
        let base = format!("{}://{}", transport.scheme(), server.address());
        let http = conformance::target::http_client_for(&transport)
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| format!("cannot build an HTTP client: {e}"))?;
        Ok(Self {
            pid,
            address: server.address(),
            publisher: Publisher::new(&base, Some(SUITE_TOKEN), &transport),
            transport,
            base,
            server,
            http,
        })
    }

    pub fn sample(&self) -> Result<Sample, String> {
        Sample::read(self.pid)
    }

    pub async fn health(&self) -> Result<Health, String> {
        let response = self
            .http
            .get(format!("{}/health", self.base))
            .send()
            .await
            .map_err(|e| format!("GET /health failed: {e}"))?;
        let body = response
            .text()
            .await
            .map_err(|e| format!("GET /health body: {e}"))?;
        Health::parse(&body)
    }

    /// Polls `/health` until `clients` satisfies `want`; returns how long that took, or, when
    /// `timeout` ran out, the last count (`u64::MAX` if `/health` never answered).
    pub async fn wait_clients(
        &self,
        timeout: Duration,
        want: impl Fn(u64) -> bool,
    ) -> Result<Duration, u64> {
        let began = Instant::now();
        let mut last = u64::MAX;
        while began.elapsed() < timeout {
            if let Ok(health) = self.health().await {
                last = health.clients;
                if want(last) {
                    return Ok(began.elapsed());
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Err(last)
    }

    pub fn output(&self) -> String {
        self.server.output()
    }

    pub fn terminate(&self) -> Result<(), String> {
        self.server.terminate()
    }

    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        self.server.wait(timeout).await
    }

    /// SIGTERM, SIGKILL after 5 s.
    pub async fn stop(mut self) -> Option<ExitStatus> {
        self.server.stop(Duration::from_secs(5)).await
    }
}

/// The framework name an example binary reports, from its package name (`axum-example` → `axum`).
pub fn framework_of(binary: &Path) -> String {
    let name = binary
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    name.strip_suffix("-example").unwrap_or(&name).to_owned()
}
