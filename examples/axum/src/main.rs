//! The axum-example process: settings, binding, the tick clock, and a graceful shutdown that
//! open streams cannot hold hostage. The routes are in `lib.rs`.

use axum_example::routes;
use sse_core::hyper_server::serve;
use sse_core::server::start;

#[tokio::main]
async fn main() {
    let started = start(sse_core::this_framework!()).await;
    let router = routes(started.app.clone());
    // Served with hyper's own connection builder (as axum's serve-with-hyper example does)
    // rather than `axum::serve`, which gives hyper no timer and so no request-head timeout.
    serve(started, router).await;
}
