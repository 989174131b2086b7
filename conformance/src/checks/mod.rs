//! One named check per rule of the contract. A check passes, fails with what it saw, or is
//! skipped (with what it needs) when the server's settings, as `/health` reports them, do not
//! allow it to run.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use crate::parser::{Block, Event, LineKind};
use crate::target::Ctx;
use crate::wire::{RawStream, TimedBlock};

pub(crate) mod expect;
mod http;
pub(crate) mod idempotency;
mod metrics;
mod payload;
mod process;
mod replay;
pub(crate) mod stream;
pub(crate) mod ticks;
mod transport;
mod trigger;

/// What a check concluded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Pass,
    /// Why it could not run: what it needs.
    Skip(String),
    /// What was wrong, with what was seen.
    Fail(String),
}

/// A check's result: `Err` is a failure, so that `?` and [`ensure!`] read naturally.
pub type Checked = Result<Outcome, String>;

type CheckFuture<'a> = Pin<Box<dyn Future<Output = Checked> + Send + 'a>>;

/// A named rule of the contract and the code that checks it.
pub struct Check {
    pub name: &'static str,
    /// The contract section it checks.
    pub section: &'static str,
    pub summary: &'static str,
    /// It can run only against a server on a shared event log (it skips on the memory log).
    pub shared_log: bool,
    /// It starts HTTPS processes of the server with certificates of its own, whatever the suite
    /// speaks to the server under test; it runs once, in a plain-HTTP run.
    pub own_tls_server: bool,
    run: for<'a> fn(&'a Ctx) -> CheckFuture<'a>,
}

/// The longest a single check may take.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(90);

impl Check {
    pub async fn run(&self, ctx: &Ctx) -> Outcome {
        match tokio::time::timeout(CHECK_TIMEOUT, (self.run)(ctx)).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(failure)) => Outcome::Fail(failure),
            Err(_) => Outcome::Fail(format!(
                "did not finish within {} s",
                CHECK_TIMEOUT.as_secs()
            )),
        }
    }
}

macro_rules! check {
    ($name:literal, $section:literal, $summary:literal, $run:path) => {
        Check {
            name: $name,
            section: $section,
            summary: $summary,
            shared_log: false,
            own_tls_server: false,
            run: |ctx| Box::pin($run(ctx)),
        }
    };
    ($name:literal, $section:literal, $summary:literal, $run:path, own_tls_server) => {
        Check {
            own_tls_server: true,
            ..check!($name, $section, $summary, $run)
        }
    };
    ($name:literal, $section:literal, $summary:literal, $run:path, shared_log) => {
        Check {
            shared_log: true,
            ..check!($name, $section, $summary, $run)
        }
    };
}

/// Fails the check with a formatted message unless the condition holds.
macro_rules! ensure {
    ($condition:expr, $($message:tt)+) => {
        if !$condition {
            return Err(format!($($message)+));
        }
    };
}
pub(crate) use ensure;

/// Every check, in the order they run.
pub fn all() -> Vec<Check> {
    vec![
        check!(
            "events-head",
            "2.1",
            "GET /events answers 200 at once with the stream's headers",
            stream::events_head
        ),
        check!(
            "events-methods",
            "2.1",
            "other methods on /events, /health and /metrics get 405 with Allow",
            stream::events_methods
        ),
        check!(
            "retry-first",
            "2.2",
            "the first block holds only `retry: RETRY_MS`",
            stream::retry_first
        ),
        check!(
            "event-fields",
            "2.2",
            "events carry only id, event and data fields, LF line ends",
            stream::event_fields
        ),
        check!(
            "tick-shape",
            "2.3",
            "tick data is {\"tick\":K,\"time\":\"…Z\"} with K counting up",
            ticks::tick_shape
        ),
        check!(
            "tick-cadence",
            "2.3",
            "ticks come every TICK_MS",
            ticks::tick_cadence
        ),
        check!(
            "tick-shared",
            "2.3",
            "every client sees the same tick with the same id",
            ticks::tick_shared
        ),
        check!(
            "ids-consecutive",
            "2.2",
            "ids have no gap or duplicate with concurrent publishers",
            ticks::ids_consecutive
        ),
        check!(
            "payload-json",
            "2.3",
            "non-string data arrives as one line of JSON",
            payload::payload_json
        ),
        check!(
            "payload-multiline",
            "2.3",
            "LF, CRLF and lone CR split a string into data lines",
            payload::payload_multiline
        ),
        check!(
            "payload-unicode",
            "2.3",
            "unicode text arrives unchanged",
            payload::payload_unicode
        ),
        check!(
            "payload-empty",
            "2.3",
            "an empty string arrives as an event with empty data",
            payload::payload_empty
        ),
        check!(
            "payload-default-name",
            "4",
            "a trigger without event publishes a `message` event",
            payload::payload_default_name
        ),
        check!(
            "injection",
            "2.3",
            "names and data cannot inject fields, comments or events",
            payload::injection
        ),
        check!(
            "trigger-400",
            "4",
            "bad bodies and event names get 400 with a JSON error",
            trigger::trigger_400
        ),
        check!(
            "trigger-405",
            "4",
            "other methods on /trigger get 405 with Allow: POST",
            trigger::trigger_405
        ),
        check!(
            "trigger-413",
            "4",
            "bodies over 64 KiB get 413, 64 KiB is accepted",
            trigger::trigger_413
        ),
        check!(
            "trigger-415",
            "4",
            "a Content-Type other than application/json gets 415",
            trigger::trigger_415
        ),
        check!(
            "trigger-401",
            "4",
            "with TRIGGER_TOKEN, a missing or wrong token gets 401",
            trigger::trigger_401
        ),
        check!(
            "trigger-error-order",
            "4",
            "several faults: 405, 401, 415, 413, 400 in that order",
            trigger::trigger_error_order
        ),
        check!(
            "trigger-error-order-keys",
            "4",
            "an Idempotency-Key's 400 and 422 come after 401, 415 and 413, and a bad body's 400 before 422",
            trigger::trigger_error_order_keys
        ),
        check!(
            "trigger-clients",
            "4",
            "a 202's clients is the number of streams open",
            trigger::trigger_clients
        ),
        check!(
            "trigger-answer",
            "4",
            "a 202 is exactly {id, event, clients}, its id and event those the stream gets",
            trigger::trigger_answer
        ),
        check!(
            "idempotency",
            "4",
            "an Idempotency-Key retry publishes once; another body 422, a bad key 400",
            idempotency::idempotency
        ),
        check!(
            "idempotency-edges",
            "4",
            "keys of 1 and 64 characters; bodies compared as bytes; a refused first request leaves the key free",
            idempotency::idempotency_edges
        ),
        check!(
            "trigger-rejected-publishes-nothing",
            "4",
            "a rejected trigger publishes nothing",
            trigger::rejected_publishes_nothing
        ),
        check!(
            "trigger-rejected-keeps-ids",
            "4",
            "a rejected trigger uses up no id: every refusal leaves the ids consecutive",
            trigger::rejected_keeps_ids
        ),
        check!(
            "cors-preflight",
            "5",
            "OPTIONS answers 204 with the path's CORS headers",
            http::cors_preflight
        ),
        check!(
            "cors-every-response",
            "5",
            "every response carries Access-Control-Allow-Origin",
            http::cors_every_response
        ),
        check!(
            "cors-allow-headers",
            "5",
            "a preflight allows every request header of the contract, Idempotency-Key too",
            http::cors_allow_headers
        ),
        check!(
            "cors-refusals",
            "5",
            "413, 415, 422, 405 and the MAX_CLIENTS 503 carry the CORS header; the 503 is a JSON error",
            http::cors_refusals
        ),
        check!(
            "health",
            "5",
            "GET /health reports status, clients, last_id and config",
            http::health
        ),
        check!(
            "metrics",
            "5",
            "GET /metrics is a valid Prometheus exposition of the contract's metrics, agreeing with /health",
            metrics::metrics
        ),
        check!(
            "metrics-labels",
            "5",
            "no label value of /metrics comes from a request",
            metrics::metrics_labels
        ),
        check!(
            "metrics-counts",
            "5",
            "/metrics counts streams, replays, triggers, ticks, refusals, lag cut-offs and stream lifetimes",
            metrics::metrics_counts
        ),
        check!(
            "metrics-refusals",
            "5",
            "/metrics: a retry is an answer but no publication, 413 and 422 counted, a 405 and a garbage Last-Event-ID not",
            metrics::metrics_refusals
        ),
        check!(
            "not-found",
            "5",
            "unknown paths get 404 with a JSON error",
            http::not_found
        ),
        check!(
            "not-found-methods",
            "5",
            "unknown paths get 404 for POST, PUT, DELETE and OPTIONS too",
            http::not_found_methods
        ),
        check!(
            "demo-page",
            "5",
            "GET / serves the demo page as HTML",
            http::demo_page
        ),
        check!(
            "demo-page-gzip",
            "8",
            "GET / is gzip-compressed to a client that accepts gzip, and only then",
            transport::demo_page_gzip
        ),
        check!(
            "events-not-compressed",
            "8",
            "/events has no Content-Encoding even when gzip and br are accepted; events leave at once",
            transport::events_not_compressed
        ),
        check!(
            "tls-alpn-h2",
            "8",
            "with TLS_CERT and TLS_KEY: HTTPS, ALPN h2 preferred, http/1.1 still served",
            transport::tls_alpn_h2,
            own_tls_server
        ),
        check!(
            "tls-config-errors",
            "1",
            "TLS_CERT or TLS_KEY alone, unreadable, not PEM or not a pair: status 2, one line",
            transport::tls_config_errors,
            own_tls_server
        ),
        check!(
            "h2-many-streams",
            "8",
            "100 event streams on one HTTP/2 connection all live; each RST_STREAM frees its stream",
            transport::h2_many_streams,
            own_tls_server
        ),
        check!(
            "h2-no-connection-headers",
            "8",
            "no Connection, Keep-Alive, Transfer-Encoding… on any answer over HTTP/2",
            transport::h2_no_connection_headers,
            own_tls_server
        ),
        check!(
            "h2-shutdown",
            "8",
            "SIGTERM with 50 streams on one HTTP/2 connection: each ends with END_STREAM, exit 0",
            transport::h2_shutdown,
            own_tls_server
        ),
        check!(
            "h2-shutdown-goaway",
            "8",
            "SIGTERM with streams on an HTTP/2 connection: a GOAWAY before the connection closes",
            transport::h2_shutdown_goaway,
            own_tls_server
        ),
        check!(
            "tls-refuses-plain-http",
            "8",
            "plain HTTP to the HTTPS port is closed unanswered; everyone else is served",
            transport::tls_refuses_plain_http,
            own_tls_server
        ),
        check!(
            "replay-header",
            "3",
            "Last-Event-ID replays every buffered event after it",
            replay::replay_header
        ),
        check!(
            "replay-query",
            "3",
            "?lastEventId replays too; the header wins over it",
            replay::replay_query
        ),
        check!(
            "replay-content",
            "3",
            "replayed events have the names and data live ones had; a resumed stream begins with retry",
            replay::replay_content
        ),
        check!(
            "replay-race",
            "3",
            "replay joins the live stream without gap or duplicate under load",
            replay::replay_race
        ),
        check!(
            "gap-too-old",
            "3",
            "a resume point older than the buffer gets a gap event",
            replay::gap_too_old
        ),
        check!(
            "replay-boundary",
            "3",
            "from the oldest held less one: no gap; one earlier: a gap",
            replay::replay_boundary
        ),
        check!(
            "gap-too-new",
            "3",
            "a resume point newer than the last id gets a gap event",
            replay::gap_too_new
        ),
        check!(
            "gap-too-new-boundary",
            "3",
            "resuming from the newest id plus one, or from u64::MAX, gets a gap",
            replay::gap_too_new_boundary
        ),
        check!(
            "garbage-last-event-id",
            "3",
            "a Last-Event-ID that is not a decimal u64 is ignored",
            replay::garbage_last_event_id
        ),
        check!(
            "heartbeat",
            "2.2",
            "an idle stream gets a comment at least every HEARTBEAT_MS",
            stream::heartbeat
        ),
        check!(
            "disconnect-cleanup",
            "2.4",
            "a client that goes away leaves the count in time",
            stream::disconnect_cleanup
        ),
        check!(
            "lag-cutoff",
            "2.4",
            "a client that stops reading is cut off, then resumes by replay",
            stream::lag_cutoff
        ),
        check!(
            "max-clients",
            "2.4",
            "beyond MAX_CLIENTS, /events gets 503 with Retry-After",
            stream::max_clients
        ),
        check!(
            "max-clients-keeps-streams",
            "2.4",
            "refusing a stream at MAX_CLIENTS leaves every open one open and live",
            stream::max_clients_keeps_streams
        ),
        check!(
            "shutdown",
            "1",
            "SIGTERM ends every open stream cleanly and exits 0 within 2 s",
            process::shutdown
        ),
        check!(
            "config-errors",
            "1",
            "bad settings stop the process with one line and status 2",
            process::config_errors
        ),
        check!(
            "config-edges",
            "1",
            "each range's ends are accepted and reported; empty settings are the defaults",
            process::config_edges
        ),
        check!(
            "fresh-start",
            "2.2",
            "a new server: last_id 0, a gap with oldest_id null, ids and K from 1, no ticks at TICK_MS=0",
            process::fresh_start
        ),
        check!(
            "port-in-use",
            "1",
            "a port in use stops the process with one line and status 1",
            process::port_in_use
        ),
        check!(
            "log-unreachable",
            "1",
            "a shared log unreachable at start: status 1 within 10 s, one line with the URL",
            process::log_unreachable
        ),
        check!(
            "log-capacity",
            "7",
            "a shared log made with another REPLAY_CAPACITY: status 2, one line with both",
            process::log_capacity,
            shared_log
        ),
    ]
}

pub fn pass() -> Checked {
    Ok(Outcome::Pass)
}

pub fn skip(needs: impl Into<String>) -> Checked {
    Ok(Outcome::Skip(needs.into()))
}

/// The events (dispatched blocks) among `blocks`.
pub fn events(blocks: &[TimedBlock]) -> Vec<&Event> {
    blocks
        .iter()
        .filter_map(|timed| timed.block.event.as_ref())
        .collect()
}

/// An event's `id` as a number (None for events without one, such as `gap`).
pub fn id_of(event: &Event) -> Option<u64> {
    event.id.as_deref().and_then(|id| id.parse().ok())
}

/// Whether a block dispatched an event with an id of at least `id`.
pub fn reaches(block: &Block, id: u64) -> bool {
    block
        .event
        .as_ref()
        .and_then(id_of)
        .is_some_and(|seen| seen >= id)
}

/// Reads until an event with id ≥ `id` arrives; fails when it does not within `timeout`.
pub async fn read_through(
    stream: &mut RawStream,
    id: u64,
    timeout: Duration,
) -> Result<Vec<TimedBlock>, String> {
    let (blocks, found) = stream
        .read_until(timeout, |block| reaches(block, id))
        .await?;
    ensure!(
        found,
        "event id {id} did not arrive within {} ms; the stream gave {}",
        timeout.as_millis(),
        stream.body_sample()
    );
    Ok(blocks)
}

/// Fails unless `ids` are exactly `first`, `first`+1, … .
pub fn ensure_consecutive(ids: &[u64], first: u64, context: &str) -> Result<(), String> {
    for (offset, id) in ids.iter().enumerate() {
        let expected = first + offset as u64;
        ensure!(
            *id == expected,
            "{context}: expected id {expected} at position {offset}, got {id} (ids seen: {})",
            abbreviate(ids)
        );
    }
    Ok(())
}

/// A long list of ids, shortened for a message.
pub fn abbreviate(ids: &[u64]) -> String {
    if ids.len() <= 12 {
        return format!("{ids:?}");
    }
    format!(
        "{:?} … {:?} ({} in all)",
        &ids[..6],
        &ids[ids.len() - 6..],
        ids.len()
    )
}

/// Whether a block is a comment block: one or more comment lines, nothing else.
pub fn is_comment_block(block: &Block) -> bool {
    !block.lines.is_empty()
        && block
            .lines
            .iter()
            .all(|line| matches!(line.kind, LineKind::Comment(_)))
}

/// A unique event name for a check, so that its events are told apart from everything else —
/// also from those of an earlier run of the suite against the same server (whose keys and
/// events it may still hold): each run of the suite has a number of its own in its names.
pub fn marker(check: &str) -> String {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    static RUN: OnceLock<String> = OnceLock::new();
    let run = RUN.get_or_init(|| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        format!("{:x}", (now.as_micros() as u64) & 0xffff_ffff)
    });
    format!(
        "conformance.{check}.{run}.{}",
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// How long after a client goes away the server may take to notice (the next write).
pub fn notice_bound(ctx: &Ctx) -> Duration {
    let config = ctx.config();
    let next_write = match config.tick_ms {
        0 => config.heartbeat_ms,
        tick => tick.min(config.heartbeat_ms),
    };
    Duration::from_millis(next_write) + Duration::from_millis(1500)
}

/// Waits (up to the notice bound) for streams of earlier checks to leave the count, and
/// returns the count to measure against.
pub async fn settled_clients(ctx: &Ctx) -> Result<u64, String> {
    ctx.wait_for_clients(notice_bound(ctx), |clients| clients == 0)
        .await
}
