//! The stream itself: its head, its first block, its fields, heartbeats, and what happens to
//! clients that leave, lag or are too many (contract 2.1, 2.2, 2.4).

use std::time::{Duration, Instant};

use serde_json::json;

use super::expect::{
    ensure_allowed_origin, ensure_header, ensure_header_lists, ensure_status, media_type,
};
use super::{
    Checked, abbreviate, ensure, ensure_consecutive, events, id_of, is_comment_block, marker,
    notice_bound, pass, read_through, settled_clients, skip,
};
use crate::parser::LineKind;
use crate::target::{Ctx, send};
use crate::wire::{BodyEnd, RawStream};

pub async fn events_head(ctx: &Ctx) -> Checked {
    let stream = ctx
        .get_stream(
            "/events",
            &[
                ("Accept", "text/event-stream"),
                ("Accept-Encoding", "gzip, deflate, br, zstd"),
            ],
        )
        .await?;
    let head = &stream.head;
    let what = "GET /events";
    ensure_status(head, what, 200)?;
    ensure_header(
        head,
        what,
        "Content-Type",
        "text/event-stream, with no parameter but charset=utf-8",
        |value| {
            let (media, parameters) = media_type(value);
            media == "text/event-stream" && parameters.iter().all(|p| p == "charset=utf-8")
        },
    )?;
    ensure_header_lists(head, what, "Cache-Control", &["no-cache"])?;
    ensure_header(head, what, "X-Accel-Buffering", "no", |value| {
        value.is_some_and(|v| v.eq_ignore_ascii_case("no"))
    })?;
    ensure_allowed_origin(head, what, ctx)?;
    ensure_header(
        head,
        what,
        "Content-Length",
        "none on an event stream",
        |value| value.is_none(),
    )?;
    ensure_header(
        head,
        what,
        "Content-Encoding",
        "none: a stream is never compressed, and `identity` is no content coding (RFC 9110 §8.4.1)",
        |value| value.is_none(),
    )?;
    ensure!(
        head.latency <= Duration::from_millis(500),
        "the head took {} ms to arrive (at most 500 ms)",
        head.latency.as_millis()
    );
    pass()
}

pub async fn events_methods(ctx: &Ctx) -> Checked {
    for path in ["/events", "/health", "/metrics"] {
        for method in ["POST", "PUT", "DELETE", "PATCH"] {
            let method = reqwest::Method::from_bytes(method.as_bytes()).expect("valid method");
            let answer = send(ctx.http.request(method.clone(), ctx.url(path)).body("{}")).await?;
            let what = format!("{method} {path}");
            ensure_status(&answer, &what, 405)?;
            ensure_header_lists(&answer, &what, "Allow", &["GET"])?;
            super::http::ensure_json_error(&answer, &what)?;
        }
    }
    pass()
}

pub async fn retry_first(ctx: &Ctx) -> Checked {
    let mut stream = ctx.open_stream("/events", &[]).await?;
    let (blocks, found) = stream.read_until(Duration::from_secs(2), |_| true).await?;
    ensure!(
        found,
        "no complete block within 2 s; got {}",
        stream.body_sample()
    );
    let first = &blocks[0].block;
    let expected = ctx.config().retry_ms.to_string();
    let only_retry = matches!(
        first.lines.as_slice(),
        [line] if matches!(&line.kind, LineKind::Field { name, value } if name == "retry" && *value == expected)
    );
    ensure!(
        only_retry && first.event.is_none(),
        "the first block is not exactly `retry: {expected}`; the stream began {}",
        stream.body_sample()
    );
    ensure!(
        stream.parser.reconnection_time() == Some(ctx.config().retry_ms),
        "a parser took reconnection time {:?} from it",
        stream.parser.reconnection_time()
    );
    pass()
}

pub async fn event_fields(ctx: &Ctx) -> Checked {
    let mut stream = ctx.open_stream("/events", &[]).await?;
    let name = marker("fields");
    ctx.publish(Some(&name), json!("one\ntwo")).await?;
    let last = ctx.publish(Some(&name), json!({"k": "v"})).await?;
    let mut blocks = read_through(&mut stream, last, Duration::from_secs(5)).await?;
    if ctx.config().tick_ms > 0 && ctx.config().tick_ms <= 2000 {
        // Also see at least one tick.
        let (more, _) = stream
            .read_until(Duration::from_millis(ctx.config().tick_ms + 1000), |b| {
                b.event.as_ref().is_some_and(|e| e.event_type == "tick")
            })
            .await?;
        blocks.extend(more);
    }
    ensure!(
        !stream.saw_cr,
        "the stream contains CR bytes; lines must end with LF alone"
    );
    for (index, timed) in blocks.iter().enumerate() {
        let block = &timed.block;
        if is_comment_block(block) || (index == 0 && block.event.is_none()) {
            continue;
        }
        let describe = || {
            block
                .lines
                .iter()
                .map(|l| l.raw.as_str())
                .collect::<Vec<_>>()
                .join("\\n")
        };
        let mut counts = (0, 0, 0);
        for line in &block.lines {
            match &line.kind {
                LineKind::Field { name, .. } if name == "id" => counts.0 += 1,
                LineKind::Field { name, .. } if name == "event" => counts.1 += 1,
                LineKind::Field { name, .. } if name == "data" => counts.2 += 1,
                _ => {
                    return Err(format!(
                        "block holds a line that is not id/event/data: {:?} in {}",
                        line.raw,
                        describe()
                    ));
                }
            }
        }
        let event = block
            .event
            .as_ref()
            .ok_or_else(|| format!("block dispatches no event: {}", describe()))?;
        let is_gap = event.event_type == "gap";
        ensure!(
            counts.0 == usize::from(!is_gap) && counts.1 <= 1 && counts.2 >= 1,
            "event block needs one id (none for gap), at most one event, one or more data lines: {}",
            describe()
        );
        if !is_gap {
            ensure!(
                id_of(event).is_some(),
                "id is not a decimal integer: {}",
                describe()
            );
        }
    }
    pass()
}

pub async fn heartbeat(ctx: &Ctx) -> Checked {
    let config = ctx.config();
    if config.heartbeat_ms > 3000 {
        return skip(format!(
            "needs heartbeat_ms ≤ 3000 (has {})",
            config.heartbeat_ms
        ));
    }
    // Room for scheduling noise on a busy machine.
    let tolerance = Duration::from_millis((config.heartbeat_ms / 2).max(250));
    if config.tick_ms != 0 && config.tick_ms < config.heartbeat_ms + 100 {
        return skip(format!(
            "needs idle time between ticks: tick_ms 0 or ≥ heartbeat_ms + 100 (has tick_ms {}, heartbeat_ms {})",
            config.tick_ms, config.heartbeat_ms
        ));
    }
    let mut stream = ctx.open_stream("/events", &[]).await?;
    let watch = Duration::from_millis(config.heartbeat_ms * 4).max(Duration::from_secs(2));
    let start = Instant::now();
    let (blocks, _) = stream.read_to_end(watch).await?;
    ensure!(
        stream.end.is_none(),
        "the stream ended while idle: {:?}",
        stream.end
    );
    let limit = Duration::from_millis(config.heartbeat_ms) + tolerance;
    let mut previous = start;
    for timed in &blocks {
        let silence = timed.at.duration_since(previous);
        ensure!(
            silence <= limit,
            "{} ms passed with nothing written (HEARTBEAT_MS is {}); the stream gave {}",
            silence.as_millis(),
            config.heartbeat_ms,
            stream.body_sample()
        );
        previous = timed.at;
    }
    let silence = Instant::now().duration_since(previous);
    ensure!(
        silence <= limit,
        "{} ms of silence at the end of the watch",
        silence.as_millis()
    );
    let comments = blocks.iter().filter(|t| is_comment_block(&t.block)).count();
    ensure!(
        comments >= 1,
        "no comment block in {} ms; the stream gave {}",
        watch.as_millis(),
        stream.body_sample()
    );
    pass()
}

pub async fn disconnect_cleanup(ctx: &Ctx) -> Checked {
    let bound = notice_bound(ctx);
    if bound > Duration::from_secs(20) {
        return skip(format!(
            "needs tick_ms or heartbeat_ms ≤ 18500 (would wait {} s)",
            bound.as_secs()
        ));
    }
    let base = settled_clients(ctx).await?;
    let stream = ctx.open_stream("/events", &[]).await?;
    let counted = ctx
        .wait_for_clients(Duration::from_secs(2), |c| c > base)
        .await?;
    ensure!(
        counted > base,
        "/health still counts {counted} clients with one more stream open (was {base})"
    );
    drop(stream);
    let left = ctx.wait_for_clients(bound, |c| c <= base).await?;
    ensure!(
        left <= base,
        "{} ms after the client closed its connection, /health still counts {left} clients (was {base})",
        bound.as_millis()
    );
    pass()
}

/// A client stops reading while far more than CLIENT_BUFFER large events are published: its
/// stream must be ended (cleanly), and resuming with Last-Event-ID must give what it missed.
/// The largest `CLIENT_BUFFER` the checks that cut a client off will push past.
pub const LAG_MAX_CLIENT_BUFFER: u64 = 2048;

/// What a client that stopped reading got, once it was pushed past `CLIENT_BUFFER`.
pub struct Lagged {
    /// The ids it received before its stream ended (or 20 s passed).
    pub ids: Vec<u64>,
    /// How the stream ended (`None`: it did not end).
    pub end: Option<BodyEnd>,
    /// The id of the last event published, and how many were.
    pub last: u64,
    pub count: u64,
}

/// Opens a stream that stops reading and publishes `CLIENT_BUFFER` + 300 large events, enough to
/// fill every socket and framework buffer on the way, then reads what the stream got.
pub async fn lag_one_client(ctx: &Ctx) -> Result<Lagged, String> {
    // A small receive buffer, so that socket buffers hold as few events as possible.
    // Over HTTP/2 the flow-control windows are made as small too.
    let mut slow = RawStream::open(
        &ctx.target.transport,
        ctx.target.address,
        Some(4096),
        ("GET", "/events", &[], b""),
        Duration::from_secs(5),
    )
    .await?;
    ensure!(
        slow.head.status == 200,
        "GET /events answered {}",
        slow.head.describe()
    );
    let name = marker("lag");
    let payload = json!("x".repeat(60_000));
    let count = ctx.config().client_buffer + 300;
    let mut last = 0;
    for _ in 0..count {
        last = ctx.publish(Some(&name), payload.clone()).await?;
    }
    let (blocks, end) = slow.read_to_end(Duration::from_secs(20)).await?;
    let ids = events(&blocks).into_iter().filter_map(id_of).collect();
    Ok(Lagged {
        ids,
        end,
        last,
        count,
    })
}

pub async fn lag_cutoff(ctx: &Ctx) -> Checked {
    let config = ctx.config().clone();
    if config.client_buffer > LAG_MAX_CLIENT_BUFFER {
        return skip(format!(
            "needs client_buffer ≤ {LAG_MAX_CLIENT_BUFFER} (has {})",
            config.client_buffer
        ));
    }
    let base = settled_clients(ctx).await?;
    let Lagged {
        ids,
        end,
        last,
        count,
    } = lag_one_client(ctx).await?;
    let received_all = ids.last().is_some_and(|&id| id >= last);
    ensure!(
        end.is_some(),
        "the stream of a client {count} events behind (CLIENT_BUFFER {}) was not ended; it received ids {}",
        config.client_buffer,
        abbreviate(&ids)
    );
    ensure!(
        end == Some(BodyEnd::Clean),
        "the lagging stream ended with {end:?}, not a clean end of the body"
    );
    ensure!(
        !received_all,
        "the lagging client received every event ({}), so it was never cut off",
        abbreviate(&ids)
    );
    if let Some(&first) = ids.first() {
        ensure_consecutive(&ids, first, "ids before the cut-off")?;
    }

    // Resume where it stopped: the missed events come from the replay buffer (or a gap).
    let resume_from = ids.last().copied().unwrap_or(last.saturating_sub(count));
    let mut resumed = ctx
        .open_stream("/events", &[("Last-Event-ID", &resume_from.to_string())])
        .await?;
    let blocks = read_through(&mut resumed, last, Duration::from_secs(20)).await?;
    let replayed = events(&blocks);
    let gap = replayed.first().filter(|e| e.event_type == "gap");
    let replayed_ids: Vec<u64> = replayed.iter().copied().filter_map(id_of).collect();
    let first_expected = match gap {
        None => resume_from + 1,
        Some(gap) => {
            let data: serde_json::Value = serde_json::from_str(&gap.data)
                .map_err(|e| format!("gap data is not JSON: {e}"))?;
            data["oldest_id"]
                .as_u64()
                .ok_or("gap without an integer oldest_id")?
        }
    };
    ensure_consecutive(&replayed_ids, first_expected, "resuming after the cut-off")?;
    drop(resumed);
    let left = ctx
        .wait_for_clients(notice_bound(ctx), |c| c <= base)
        .await?;
    ensure!(
        left <= base,
        "/health still counts {left} clients after both streams closed (was {base})"
    );
    pass()
}

/// The largest `MAX_CLIENTS` the checks that fill a server up will open.
pub const FILL_MAX_CLIENTS: u64 = 256;

/// The skip for a server with more `MAX_CLIENTS` than the checks will open.
pub fn too_many_to_fill(ctx: &Ctx) -> Option<Checked> {
    let max = ctx.config().max_clients;
    (max > FILL_MAX_CLIENTS).then(|| {
        skip(format!(
            "needs max_clients ≤ {FILL_MAX_CLIENTS} (has {max})"
        ))
    })
}

/// Once earlier streams have left, opens streams up to `MAX_CLIENTS`, then one more: the open
/// ones, and the answer to the one more.
pub async fn fill_up(ctx: &Ctx) -> Result<(Vec<RawStream>, RawStream), String> {
    let base = settled_clients(ctx).await?;
    let mut open = Vec::new();
    for _ in base..ctx.config().max_clients {
        open.push(ctx.open_stream("/events", &[]).await?);
    }
    let one_more = ctx.get_stream("/events", &[]).await?;
    Ok((open, one_more))
}

pub async fn max_clients(ctx: &Ctx) -> Checked {
    if let Some(skip) = too_many_to_fill(ctx) {
        return skip;
    }
    let max = ctx.config().max_clients;
    let (mut open, refused) = fill_up(ctx).await?;
    let head = &refused.head;
    let what = format!("stream {} of MAX_CLIENTS {max}", max + 1);
    ensure_status(head, &what, 503)?;
    ensure_header(head, &what, "Retry-After", "whole seconds ≥ 1", |value| {
        value
            .and_then(|v| v.parse::<u64>().ok())
            .is_some_and(|s| s >= 1)
    })?;
    ensure_header(
        head,
        &what,
        "Content-Type",
        "application/json: a JSON error",
        |value| value.is_some_and(|v| v.starts_with("application/json")),
    )?;
    drop(refused);
    // Nothing else changes: health and publishing still work.
    let health = send(ctx.http.get(ctx.url("/health"))).await?;
    ensure!(
        health.status == 200,
        "/health answered {} while full",
        health.describe()
    );
    ctx.publish(Some(&marker("full")), json!("still publishing"))
        .await?;
    // A place freed is a place usable again.
    open.pop();
    let deadline = Instant::now() + notice_bound(ctx);
    loop {
        let again = ctx.get_stream("/events", &[]).await?;
        if again.head.status == 200 {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "after one stream closed, a new one still got {}",
            again.head.describe()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    pass()
}

pub async fn max_clients_keeps_streams(ctx: &Ctx) -> Checked {
    if let Some(skip) = too_many_to_fill(ctx) {
        return skip;
    }
    let max = ctx.config().max_clients;
    let (mut open, refused) = fill_up(ctx).await?;
    ensure!(
        refused.head.status == 503,
        "stream {} of MAX_CLIENTS {max} answered {}",
        max + 1,
        refused.head.describe()
    );
    drop(refused);
    // Refusing one more leaves every open stream open and live.
    let id = ctx
        .publish(Some(&marker("still-open")), json!("after a refusal"))
        .await?;
    for (number, stream) in open.iter_mut().enumerate() {
        let blocks = read_through(stream, id, Duration::from_secs(5))
            .await
            .map_err(|why| {
                format!(
                    "open stream {} of {max}, after a refusal: {why}",
                    number + 1
                )
            })?;
        drop(blocks);
    }
    let clients = ctx.health_now().await?.clients;
    ensure!(
        clients == max,
        "/health counts {clients} clients with {max} streams open after a refusal"
    );
    pass()
}
