//! The axum-example process: settings, binding, the tick clock, and a graceful shutdown that
//! open streams cannot hold hostage. The routes are in `lib.rs`.

use axum::serve::Listener;
use axum_example::{FRAMEWORK, router};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use sse_core::REQUEST_HEAD_TIMEOUT;
use sse_core::server::{Started, start};

#[tokio::main]
async fn main() {
    let Started {
        app,
        listener,
        mut signal,
    } = start(FRAMEWORK);
    let mut listener =
        tokio::net::TcpListener::from_std(listener).expect("listener joins the runtime");
    let router = router(app.clone());

    // Served with hyper's own connection builder, as axum's "serve-with-hyper" example does,
    // because `axum::serve` gives hyper no timer and so no request-head timeout (a client
    // trickling its headers would hold its connection forever); the loop is `axum::serve`'s.
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(REQUEST_HEAD_TIMEOUT);
    let connections = GracefulShutdown::new();
    loop {
        tokio::select! {
            // axum's `Listener` retries failed accepts (too many open files) itself.
            (stream, _) = Listener::accept(&mut listener) => {
                let service = TowerToHyperService::new(router.clone());
                let connection = http.serve_connection(TokioIo::new(stream), service);
                tokio::spawn(connections.watch(connection));
            }
            () = &mut signal => break,
        }
    }
    drop(listener);
    // Ending every stream is what lets the graceful shutdown finish: it waits for open
    // responses, and an event stream never ends by itself.
    app.shutdown();
    tokio::select! {
        () = connections.shutdown() => {}
        () = app.shutdown_deadline() => {}
    }
}
