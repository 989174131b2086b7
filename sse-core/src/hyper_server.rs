//! Serving with hyper's own connection builders, for the frameworks whose `serve` gives hyper
//! no timer and no TLS — axum (`axum::serve`) and warp (`warp::serve`): without a timer hyper
//! has no request-head timeout, and a client trickling its headers holds its connection
//! forever. Their routers are tower services, so the same loop serves both: plain HTTP/1.1, or
//! with `TLS_CERT`/`TLS_KEY` HTTPS through tokio-rustls, HTTP/2 or HTTP/1.1 as ALPN chose.

use std::error::Error;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::TlsAcceptor;

use crate::REQUEST_HEAD_TIMEOUT;
use crate::server::Started;
use crate::tls::Tls;

type BoxError = Box<dyn Error + Send + Sync>;

/// Accepts connections until [`Started::stopping`] completes (every event stream has then been
/// ended), serving each with `service` — HTTP/1.1 with a request-head timeout of
/// [`REQUEST_HEAD_TIMEOUT`], or with `TLS_CERT`/`TLS_KEY` HTTPS, HTTP/2 when the client chose
/// `h2` — then waits for the open connections, at most until [`crate::App::shutdown_deadline`].
pub async fn serve<S, B>(started: Started, service: S)
where
    S: tower_service::Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let tls = started.app.config.tls.as_ref().map(Tls::server_config);
    serve_with(started, service, tls).await
}

/// [`serve`] with this TLS configuration (`None`: plain HTTP/1.1) instead of the settings'.
pub async fn serve_with<S, B>(started: Started, service: S, tls: Option<Arc<rustls::ServerConfig>>)
where
    S: tower_service::Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let Started {
        app,
        listener,
        mut stopping,
    } = started;
    let listener = tokio::net::TcpListener::from_std(listener).expect("listener joins the runtime");
    let tls = tls.map(TlsAcceptor::from);
    let connections = GracefulShutdown::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    // An event is a small write: sent at once, not held back for the ACK of
                    // the one before (Nagle's algorithm, which costs TLS handshakes 40 ms a
                    // round against a client's delayed ACK).
                    let _ = stream.set_nodelay(true);
                    let service = TowerToHyperService::new(service.clone());
                    match &tls {
                        None => {
                            let connection = http1_builder()
                                .serve_connection(TokioIo::new(stream), service);
                            tokio::spawn(connections.watch(connection));
                        }
                        Some(tls) => {
                            let tls = tls.clone();
                            let watcher = connections.watcher();
                            tokio::spawn(async move {
                                // The handshake has the head's time limit; a client that fails
                                // it (plain HTTP to this port, say) is simply closed.
                                let Ok(Ok(stream)) =
                                    tokio::time::timeout(REQUEST_HEAD_TIMEOUT, tls.accept(stream))
                                        .await
                                else {
                                    return;
                                };
                                let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
                                serve_tls(stream, h2, service, watcher).await;
                            });
                        }
                    }
                }
                // Out of file descriptors, say: wait a little before accepting again.
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            },
            () = &mut stopping => break,
        }
    }
    drop(listener);
    tokio::select! {
        () = connections.shutdown() => {}
        () = app.shutdown_deadline() => {}
    }
}

/// The HTTP/1.1 builder: a timer, so that a request head has [`REQUEST_HEAD_TIMEOUT`].
fn http1_builder() -> http1::Builder {
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(REQUEST_HEAD_TIMEOUT);
    http
}

async fn serve_tls<I, S, B>(
    stream: I,
    h2: bool,
    service: TowerToHyperService<S>,
    watcher: hyper_util::server::graceful::Watcher,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: tower_service::Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let io = TokioIo::new(stream);
    // An error ends only this connection (the client went away, or broke the protocol).
    if h2 {
        let mut http = http2::Builder::new(TokioExecutor::new());
        http.timer(TokioTimer::new());
        let _ = watcher.watch(http.serve_connection(io, service)).await;
    } else {
        let _ = watcher
            .watch(http1_builder().serve_connection(io, service))
            .await;
    }
}
