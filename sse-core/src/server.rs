//! Process plumbing every example shares: [`start`] (settings, logging, binding with the
//! contract's errors, the startup banner, the tick clock and a shutdown future that ends every
//! event stream), the request head and body timeouts, and waiting for SIGINT/SIGTERM.

use std::future::Future;
use std::io::IsTerminal;
use std::net::{SocketAddr, TcpListener};
use std::pin::Pin;
use std::time::Duration;

use crate::app::App;
use crate::config::Config;
use crate::error::ApiError;
use crate::framework::Framework;
use crate::log::redis::{START_TIMEOUT, StartError};

/// How long a client may take to send a request head (request line and headers), so that a
/// client trickling its headers (slowloris) or sending none holds a connection for at most this
/// long. Generous for any real client; every example but rocket (which has no such setting)
/// sets its framework's head timeout to it.
pub const REQUEST_HEAD_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a `POST /trigger` body may take to arrive in full after its head, so that a body
/// that stalls (or a `Content-Length` larger than what is sent) cannot hold a connection and a
/// handler forever: it gets 408 instead. A trigger body is at most 64 KiB.
pub const REQUEST_BODY_TIMEOUT: Duration = Duration::from_secs(5);

/// Reads a request body within [`REQUEST_BODY_TIMEOUT`], for frameworks that have no body
/// timeout of their own: a body that has not arrived in full by then gets 408.
pub async fn read_body_in_time<T>(
    read: impl Future<Output = Result<T, ApiError>>,
) -> Result<T, ApiError> {
    tokio::time::timeout(REQUEST_BODY_TIMEOUT, read)
        .await
        .unwrap_or_else(|_| Err(ApiError::request_timeout(REQUEST_BODY_TIMEOUT)))
}

/// A server ready to serve: what [`start`] hands to the framework.
pub struct Started {
    pub app: App,
    /// Bound and non-blocking.
    pub listener: TcpListener,
    /// Completes on SIGINT or SIGTERM (handlers already installed), once every event stream has
    /// been ended ([`App::stop`]): a framework's graceful shutdown waits for open responses,
    /// and an event stream never ends by itself. Hand it to the framework as its shutdown signal.
    pub stopping: Stopping,
}

/// See [`Started::stopping`].
pub type Stopping = Pin<Box<dyn Future<Output = ()> + Send>>;

/// What [`Startup::unbound`] hands to a framework that binds its own socket: it binds
/// `app.config`'s `HOST:PORT` and calls [`announce`] once it listens.
pub struct Unbound {
    pub app: App,
    pub stopping: Stopping,
}

/// Everything before serving, in the contract's order: settings (a bad one exits 2), logging,
/// the event log (the shared one unreachable for 10 s exits 1; made with another
/// `REPLAY_CAPACITY`, exits 2), binding (a port in use exits 1), signal handlers, the
/// `listening on` banner, and the tick clock. Call it inside the framework's tokio runtime.
pub async fn start(framework: Framework) -> Started {
    Startup::new(framework).bound().await
}

/// [`start`] with room for a framework's needs: settings adjusted before use, or a framework
/// that binds its socket itself.
pub struct Startup {
    framework: Framework,
    adjust: Box<dyn FnOnce(&mut Config) + Send>,
}

impl Startup {
    pub fn new(framework: Framework) -> Self {
        Self {
            framework,
            adjust: Box::new(|_| {}),
        }
    }

    /// Changes the settings after they are read and validated (Rocket quiets its own logs).
    pub fn adjust(mut self, adjust: impl FnOnce(&mut Config) + Send + 'static) -> Self {
        self.adjust = Box::new(adjust);
        self
    }

    /// Binds `HOST:PORT` and announces: [`start`].
    pub async fn bound(self) -> Started {
        let framework = self.framework;
        let (app, config) = self.prepare().await;
        let listener = bind_or_exit(&config, framework);
        let stopping = stopping(&app);
        announce(
            &app,
            listener
                .local_addr()
                .expect("a bound listener has an address"),
        );
        app.start_ticker();
        Started {
            app,
            listener,
            stopping,
        }
    }

    /// For a framework that binds its own socket (Rocket): checks that `HOST:PORT` is free (a
    /// port in use exits 1 with the contract's line) but leaves binding and announcing to it.
    pub async fn unbound(self) -> Unbound {
        let framework = self.framework;
        let (app, config) = self.prepare().await;
        drop(bind_or_exit(&config, framework));
        let stopping = stopping(&app);
        app.start_ticker();
        Unbound { app, stopping }
    }

    async fn prepare(self) -> (App, Config) {
        crate::tls::install_ring_provider();
        let mut config = Config::load_or_exit(self.framework);
        (self.adjust)(&mut config);
        init_logging(&config);
        let app = connect_or_exit(self.framework, config.clone()).await;
        (app, config)
    }
}

/// Opens the event log the settings name; the shared log unreachable within 10 s exits 1, one
/// made with another `REPLAY_CAPACITY` exits 2, each with one line.
pub async fn connect_or_exit(framework: Framework, config: Config) -> App {
    let log = config.event_log.describe();
    let key = config.event_log_key.clone();
    match App::connect(framework, config).await {
        Ok(app) => app,
        Err(StartError::Unreachable(error)) => {
            eprintln!(
                "{}: cannot reach the event log EVENT_LOG={log} within {} s: {error}",
                framework.package,
                START_TIMEOUT.as_secs()
            );
            std::process::exit(1)
        }
        Err(StartError::Capacity { log: found, ours }) => {
            eprintln!(
                "{}: the event log EVENT_LOG={log} (EVENT_LOG_KEY={key}) was created with \
                 REPLAY_CAPACITY={found}, this instance has REPLAY_CAPACITY={ours}; every \
                 instance of a cluster needs the same",
                framework.package
            );
            std::process::exit(2)
        }
    }
}

/// Installs the signal handlers now and returns the future that ends every stream on the first
/// SIGINT or SIGTERM.
pub fn stopping(app: &App) -> Stopping {
    let app = app.clone();
    let signal = shutdown_signal();
    Box::pin(async move {
        signal.await;
        app.stop();
    })
}

/// Logs to stdout with the configured filter (already validated by [`Config`]). A log line that
/// cannot be written (the reader of a piped stdout went away) is dropped: tracing's default
/// would report it on stderr, and a broken stderr makes that report panic — in whichever task
/// logged, the signal handler included, so the server would never shut down.
pub fn init_logging(config: &Config) {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(&config.log_filter))
        .with_ansi(std::io::stdout().is_terminal())
        .with_target(false)
        .log_internal_errors(false)
        .init();
}

/// Connections the kernel queues for a listener before the server accepts them. Rust's std
/// listens with 128, which a burst of connects (a reconnect storm, a flood) overflows: the
/// kernel then drops SYNs and every client behind them, `/health` probes included, waits
/// for a 1 s retransmit. The kernel caps it at `net.core.somaxconn`.
pub const LISTEN_BACKLOG: u32 = 4096;

/// Binds `HOST:PORT`; a port in use (or any other bind failure) prints one line and exits 1.
/// The listener is non-blocking, ready to hand to any async runtime. Call it inside a tokio
/// runtime.
pub fn bind_or_exit(config: &Config, framework: Framework) -> TcpListener {
    let address = SocketAddr::new(config.host, config.port);
    let listener = (|| {
        let socket = if address.is_ipv4() {
            tokio::net::TcpSocket::new_v4()
        } else {
            tokio::net::TcpSocket::new_v6()
        }?;
        // As std's `TcpListener::bind` does: a restarted server can bind at once.
        socket.set_reuseaddr(true)?;
        socket.bind(address)?;
        socket.listen(LISTEN_BACKLOG)?.into_std()
    })();
    listener.unwrap_or_else(|error| {
        let package = framework.package;
        if error.kind() == std::io::ErrorKind::AddrInUse {
            eprintln!(
                "{package}: port {} on {} is already in use; set PORT to choose another",
                config.port, config.host
            );
        } else {
            eprintln!("{package}: cannot listen on {address}: {error}");
        }
        std::process::exit(1)
    })
}

/// The startup banner: the contract's `listening on` line, then where to look next.
pub fn announce(app: &App, address: SocketAddr) {
    let url = format!("{}://{address}", app.config.scheme());
    tracing::info!("{} example listening on {url}", app.framework.name);
    tracing::info!(
        "event log: {} (instance {})",
        app.config.event_log.describe(),
        app.instance
    );
    tracing::info!("demo page:  {url}/");
    if let Some(tls) = &app.config.tls {
        tracing::info!(
            "TLS:        {} and {} (HTTP/2 and HTTP/1.1); with `cargo run -p dev-cert`'s certificate, add --cacert target/dev-cert/ca.pem to curl",
            tls.cert_path.display(),
            tls.key_path.display()
        );
    }
    tracing::info!("stream:     curl -N {url}/events");
    tracing::info!(
        "publish:    curl -X POST {url}/trigger -H 'content-type: application/json' -d '{{\"event\":\"greeting\",\"data\":\"hello\"}}'"
    );
    tracing::info!("health:     curl {url}/health");
}

/// Completes on the first SIGINT or SIGTERM. The handlers are installed when this is called,
/// not when the future is first polled: call it before announcing that the server is ready,
/// so that a signal sent right after the `listening on` line is not lost (or fatal).
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate()).expect("SIGTERM handler installs");
    let mut interrupt = signal(SignalKind::interrupt()).expect("SIGINT handler installs");
    async move {
        let name = tokio::select! {
            _ = terminate.recv() => "SIGTERM",
            _ = interrupt.recv() => "SIGINT",
        };
        tracing::info!("{name} received");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_body_that_never_arrives_gets_408_and_closes() {
        let error = read_body_in_time(std::future::pending::<Result<(), ApiError>>())
            .await
            .unwrap_err();
        assert_eq!(error.status, 408);
        assert!(error.headers.contains(&("connection", "close".to_owned())));
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_in_time_passes_through() {
        assert_eq!(read_body_in_time(async { Ok(7) }).await, Ok(7));
    }
}
