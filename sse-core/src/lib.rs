//! What every sse-examples server shares, so that each example holds only its framework's glue:
//!
//! - [`framework`]: which example is running, as its `Cargo.toml` describes it;
//! - [`config`]: the settings from the environment (and flags), with the contract's errors;
//! - [`log`]: the event log — ids, replay and idempotency keys — in memory or shared in Redis;
//! - [`fanout`]: this process's open streams, the per-client lag limit, shutdown;
//! - [`hub`]: the two joined: publish, and subscribe-with-replay joined to the live stream by id;
//! - [`encode`]: the `text/event-stream` wire format and payload encoding;
//! - [`request`]: trigger validation, authorization, `Last-Event-ID` handling;
//! - [`metrics`]: this process's counters and gauges, rendered for `GET /metrics`;
//! - [`app`]: the contract's answers built from those, the tick clock and shutdown;
//! - [`stream`]: the `/events` body as bytes, for frameworks that stream raw bytes;
//! - [`compress`]: the demo page gzip-compressed, for frameworks without (usable) compression;
//! - [`server`]: `start` (settings, logging, binding, signals, the startup banner, the ticker);
//! - [`hyper_server`]: `serve`, hyper's connection loops (HTTP/1.1 with a head timeout; TLS), for
//!   the frameworks whose own `serve` sets none (axum, warp);
//! - [`tls`]: `TLS_CERT`/`TLS_KEY` checked at start, and the rustls configuration (ALPN h2);
//! - [`error`]: the JSON error answers.
//!
//! The contract itself is `CONTRACT.md` at the workspace root.

/// Awaits a future in a test for at most a minute of the test's clock: a hang fails the test
/// instead of running forever (as a mutant that breaks shutdown would make it).
#[cfg(test)]
macro_rules! within {
    ($future:expr) => {
        tokio::time::timeout(std::time::Duration::from_secs(60), $future)
            .await
            .expect("nothing came within 60 s")
    };
}

use std::sync::LazyLock;

pub mod app;
pub mod compress;
pub mod config;
pub mod encode;
pub mod error;
pub mod fanout;
pub mod framework;
pub mod hub;
pub mod hyper_server;
pub mod log;
pub mod metrics;
pub mod request;
pub mod server;
pub mod stream;
pub mod tls;

pub use app::{Accepted, App, SHUTDOWN_GRACE, TriggerHead};
pub use config::{Config, EventLogSetting};
pub use encode::{EventName, HEARTBEAT, payload_text, retry_block};
pub use error::{ApiError, ERROR_CONTENT_TYPE};
pub use fanout::{Event, Subscription};
pub use framework::Framework;
pub use hub::{Hub, HubLimits};
pub use metrics::METRICS_CONTENT_TYPE;
pub use request::MAX_TRIGGER_BODY;
pub use server::{REQUEST_BODY_TIMEOUT, REQUEST_HEAD_TIMEOUT, read_body_in_time};
pub use stream::EventStreamBody;

/// The contract's headers for an event stream (CORS comes from each framework's own layer).
pub const EVENT_STREAM_HEADERS: [(&str, &str); 3] = [
    ("content-type", "text/event-stream"),
    ("cache-control", "no-cache"),
    ("x-accel-buffering", "no"),
];

/// The request headers a CORS preflight allows (section 5), as one header value.
pub const CORS_ALLOW_HEADERS: &str = "content-type, authorization, last-event-id, idempotency-key";

/// How long a browser may cache a preflight answer (`Access-Control-Max-Age`), in seconds.
pub const CORS_MAX_AGE_SECS: u32 = 86_400;

/// The demo page served at `GET /`: `web-demo/index.html` with the list of frameworks it loads
/// from `frameworks.js` (beside it on disk) written into the page.
pub static DEMO_PAGE: LazyLock<String> = LazyLock::new(|| {
    const PAGE: &str = include_str!("../../web-demo/index.html");
    const LIST: &str = include_str!("../../web-demo/frameworks.js");
    const TAG: &str = r#"<script src="frameworks.js"></script>"#;
    assert!(
        PAGE.contains(TAG),
        "web-demo/index.html loads frameworks.js"
    );
    PAGE.replacen(TAG, &format!("<script>\n{LIST}</script>"), 1)
});
