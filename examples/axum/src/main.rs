//! The axum-example process: settings, binding, the tick clock, and a graceful shutdown that
//! open streams cannot hold hostage. The routes are in `lib.rs`.

use axum_example::{FRAMEWORK, router};
use sse_core::server::{Started, start};

#[tokio::main]
async fn main() {
    let Started {
        app,
        listener,
        signal,
    } = start(FRAMEWORK);
    let listener = tokio::net::TcpListener::from_std(listener).expect("listener joins the runtime");

    // Ending every stream when the signal arrives is what lets axum's graceful shutdown finish:
    // it waits for open responses, and an event stream never ends by itself.
    let serve = axum::serve(listener, router(app.clone())).with_graceful_shutdown({
        let app = app.clone();
        async move {
            signal.await;
            app.shutdown();
        }
    });
    tokio::select! {
        result = serve => result.expect("server error"),
        () = app.shutdown_deadline() => {}
    }
}
