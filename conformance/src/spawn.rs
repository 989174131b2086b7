//! Starting server binaries as real processes on a free port of 127.0.0.1, and stopping them
//! again by their own PID.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::wire::{Protocol, Transport};

/// The settings the suite runs a spawned server with: small enough that every check can run
/// (heartbeats and ticks that come quickly, a small replay buffer, client limit and lag limit).
pub const SUITE_ENV: &[(&str, &str)] = &[
    ("HOST", "127.0.0.1"),
    ("PORT", "0"),
    ("TICK_MS", "500"),
    ("HEARTBEAT_MS", "300"),
    ("RETRY_MS", "1500"),
    ("REPLAY_CAPACITY", "128"),
    ("MAX_CLIENTS", "32"),
    ("CLIENT_BUFFER", "16"),
    ("TRIGGER_TOKEN", SUITE_TOKEN),
    ("CORS_ORIGIN", SUITE_ORIGIN),
    ("RUST_LOG", "info"),
];
pub const SUITE_TOKEN: &str = "conformance-token";
pub const SUITE_ORIGIN: &str = "https://demo.example";

/// How long a server may take from start to its `listening on` line.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// A server binary and the environment to start it with.
#[derive(Debug, Clone)]
pub struct Launcher {
    pub binary: PathBuf,
    pub env: Vec<(String, String)>,
    /// How the suite talks to the processes it starts (over TLS: their certificate's authority).
    pub transport: Transport,
}

impl Launcher {
    pub fn new(binary: PathBuf) -> Self {
        let env = SUITE_ENV
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Self {
            binary,
            env,
            transport: Transport::Plain,
        }
    }

    /// The same launcher starting every process with HTTPS, on a certificate made for it, and
    /// the suite speaking `protocol` to them.
    pub fn with_tls(mut self, protocol: Protocol) -> Result<Self, String> {
        let transport = Transport::with_new_certificate(protocol)?;
        if let Transport::Tls(tls) = &transport
            && let Some(certificates) = &tls.certificates
        {
            for (name, value) in certificates.env() {
                self = self.with_env(name, &value);
            }
        }
        self.transport = transport;
        Ok(self)
    }

    /// The same launcher with one more variable set for every process it starts.
    pub fn with_env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.to_owned(), value.to_owned()));
        self
    }

    /// The command with the suite's environment, `overrides` on top, and nothing inherited
    /// that could change the server's settings.
    fn command(&self, overrides: &[(&str, &str)]) -> Command {
        let mut command = Command::new(&self.binary);
        for name in SUITE_ENV
            .iter()
            .map(|(name, _)| *name)
            .chain(["TLS_CERT", "TLS_KEY"])
        {
            command.env_remove(name);
        }
        command.envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        command.envs(overrides.iter().copied());
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        command
    }

    /// Starts the server and waits for its `listening on http://…` line.
    pub async fn start(&self, overrides: &[(&str, &str)]) -> Result<Server, String> {
        let mut child = self
            .command(overrides)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", self.binary.display()))?;
        let output = Arc::new(Mutex::new(String::new()));
        let (address_tx, address_rx) = tokio::sync::oneshot::channel();
        collect(child.stdout.take(), Arc::clone(&output), Some(address_tx));
        collect(child.stderr.take(), Arc::clone(&output), None);
        let mut server = Server {
            child,
            address: None,
            output,
        };
        match tokio::time::timeout(STARTUP_TIMEOUT, address_rx).await {
            Ok(Ok(address)) => {
                server.address = Some(address);
                Ok(server)
            }
            _ => {
                let status = server.stop(Duration::from_millis(100)).await;
                Err(format!(
                    "{} printed no `listening on http://HOST:PORT` line within {} s (exit: {status:?}); output: {}",
                    self.binary.display(),
                    STARTUP_TIMEOUT.as_secs(),
                    server.output()
                ))
            }
        }
    }

    /// Runs the server to completion (for settings it must refuse): exit status and output.
    pub async fn run_to_exit(
        &self,
        overrides: &[(&str, &str)],
        timeout: Duration,
    ) -> Result<(ExitStatus, String), String> {
        let mut command = self.command(overrides);
        let child = command
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", self.binary.display()))?;
        let pid = child.id();
        match tokio::time::timeout(timeout, child.wait_with_output()).await {
            Ok(Ok(output)) => {
                let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
                text.push_str(&String::from_utf8_lossy(&output.stderr));
                Ok((output.status, text))
            }
            Ok(Err(e)) => Err(format!("waiting for the process failed: {e}")),
            // kill_on_drop has already stopped it (wait_with_output owned the child).
            Err(_) => Err(format!(
                "the process (pid {pid:?}) did not exit within {} s",
                timeout.as_secs()
            )),
        }
    }
}

/// Copies a child's output into `output`, and reports the address of its `listening on` line.
fn collect(
    pipe: Option<impl tokio::io::AsyncRead + Unpin + Send + 'static>,
    output: Arc<Mutex<String>>,
    mut address: Option<tokio::sync::oneshot::Sender<SocketAddr>>,
) {
    let Some(pipe) = pipe else { return };
    tokio::spawn(async move {
        let mut lines = BufReader::new(pipe).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            // Kept before the address is reported, so that the line is in the output by then.
            {
                let mut output = output.lock().unwrap_or_else(|p| p.into_inner());
                if output.len() < 64 * 1024 {
                    output.push_str(&line);
                    output.push('\n');
                }
            }
            if let Some(found) = listening_address(&line)
                && let Some(tx) = address.take()
            {
                let _ = tx.send(found);
            }
        }
    });
}

/// The address in a line containing `listening on http://HOST:PORT` (or `https://`).
pub fn listening_address(line: &str) -> Option<SocketAddr> {
    let rest = line.split_once("listening on ")?.1;
    let rest = rest
        .strip_prefix("http://")
        .or_else(|| rest.strip_prefix("https://"))?;
    let address = rest.split(|c: char| c.is_whitespace() || c == '/').next()?;
    address.parse().ok()
}

/// A running server process; dropping it kills the process.
pub struct Server {
    child: Child,
    address: Option<SocketAddr>,
    output: Arc<Mutex<String>>,
}

impl Server {
    pub fn address(&self) -> SocketAddr {
        self.address.expect("a started server has an address")
    }

    pub fn base(&self) -> String {
        format!("http://{}", self.address())
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Everything it printed so far (capped).
    pub fn output(&self) -> String {
        self.output
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Sends SIGTERM to this process (by its own PID).
    pub fn terminate(&self) -> Result<(), String> {
        let pid = self.pid().ok_or("the process has already exited")?;
        let pid = nix::unistd::Pid::from_raw(i32::try_from(pid).map_err(|_| "pid out of range")?);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM)
            .map_err(|e| format!("kill -TERM {pid}: {e}"))
    }

    /// Waits at most `timeout` for the process to exit on its own.
    pub async fn wait(&mut self, timeout: Duration) -> Option<ExitStatus> {
        tokio::time::timeout(timeout, self.child.wait())
            .await
            .ok()?
            .ok()
    }

    /// SIGTERM, then SIGKILL after `grace`; returns the exit status.
    pub async fn stop(&mut self, grace: Duration) -> Option<ExitStatus> {
        if let Ok(Some(status)) = self.child.try_wait() {
            return Some(status);
        }
        let _ = self.terminate();
        if let Some(status) = self.wait(grace).await {
            return Some(status);
        }
        let _ = self.child.start_kill();
        self.wait(Duration::from_secs(5)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_address_in_a_log_line() {
        let line = "2026-11-21T01:06:08Z  INFO axum example listening on http://127.0.0.1:3901";
        assert_eq!(
            listening_address(line),
            Some("127.0.0.1:3901".parse().unwrap())
        );
        assert_eq!(
            listening_address("listening on http://[::1]:80/ now"),
            Some("[::1]:80".parse().unwrap())
        );
        assert_eq!(listening_address("listening on 127.0.0.1:1"), None);
    }
}
