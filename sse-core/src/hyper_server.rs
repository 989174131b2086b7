//! Serving with hyper's own HTTP/1 connection builder, for the frameworks whose `serve` gives
//! hyper no timer — axum (`axum::serve`) and warp (`warp::serve`): without a timer hyper has no
//! request-head timeout, and a client trickling its headers holds its connection forever.
//! Their routers are tower services, so the same loop serves both.

use std::error::Error;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;

use crate::REQUEST_HEAD_TIMEOUT;
use crate::server::Started;

type BoxError = Box<dyn Error + Send + Sync>;

/// Accepts connections until [`Started::stopping`] completes (every event stream has then been
/// ended), serving each with `service` and a request-head timeout of [`REQUEST_HEAD_TIMEOUT`];
/// then waits for the open connections, at most until [`crate::App::shutdown_deadline`].
pub async fn serve_http1<S, B>(started: Started, service: S)
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
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(REQUEST_HEAD_TIMEOUT);
    let connections = GracefulShutdown::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let service = TowerToHyperService::new(service.clone());
                    let connection = http.serve_connection(TokioIo::new(stream), service);
                    tokio::spawn(connections.watch(connection));
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
