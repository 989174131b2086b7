//! `GET /metrics` (contract 5): the exposition read strictly, its labels never taken from a
//! request, and its figures against what the suite really did.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::json;

use super::expect::{ensure_header, ensure_status};
use super::stream::{LAG_MAX_CLIENT_BUFFER, Lagged, fill_up, lag_one_client, too_many_to_fill};
use super::{
    Checked, ensure, id_of, marker, notice_bound, pass, read_through, settled_clients, skip,
};
use crate::exposition::{Exposition, parse};
use crate::target::{Ctx, send};
use crate::wire::RawStream;

/// The label a contract metric is split by, and the values it may take.
type Split = Option<(&'static str, &'static [&'static str])>;

/// The contract's metrics: name, type, and the label its samples carry (`status` takes any
/// HTTP status).
const CONTRACT_METRICS: [(&str, &str, Split); 10] = [
    ("sse_clients", "gauge", None),
    (
        "sse_events_published_total",
        "counter",
        Some(("kind", &["tick", "custom"])),
    ),
    ("sse_events_delivered_total", "counter", None),
    ("sse_clients_lagged_total", "counter", None),
    (
        "sse_streams_refused_total",
        "counter",
        Some(("reason", &["max_clients", "shutting_down", "log"])),
    ),
    (
        "sse_replays_total",
        "counter",
        Some(("result", &["complete", "gap"])),
    ),
    ("sse_triggers_total", "counter", Some(("status", &[]))),
    ("sse_stream_duration_seconds", "histogram", None),
    ("sse_log_connected", "gauge", None),
    ("sse_last_id", "gauge", None),
];

/// `GET /metrics`, read strictly: 200, the text format's content type, and a valid exposition.
pub async fn scrape(ctx: &Ctx) -> Result<Exposition, String> {
    let answer = send(ctx.http.get(ctx.url("/metrics"))).await?;
    let what = "GET /metrics";
    ensure_status(&answer, what, 200)?;
    ensure_header(
        &answer,
        what,
        "Content-Type",
        "text/plain; version=0.0.4",
        |value| {
            let value = value.unwrap_or_default().to_ascii_lowercase();
            let mut parts = value.split(';').map(str::trim);
            parts.next() == Some("text/plain")
                && parts.find_map(|part| part.strip_prefix("version=")) == Some("0.0.4")
        },
    )?;
    parse(&answer.body).map_err(|why| format!("GET /metrics is not a valid exposition: {why}"))
}

/// A series: a sample name and the labels that pick it.
type Series<'a> = (&'a str, &'a [(&'a str, &'a str)]);

const CLIENTS: Series = ("sse_clients", &[]);
const LAST_ID: Series = ("sse_last_id", &[]);
const LOG_CONNECTED: Series = ("sse_log_connected", &[]);
const TICKS: Series = ("sse_events_published_total", &[("kind", "tick")]);
const CUSTOM: Series = ("sse_events_published_total", &[("kind", "custom")]);
const DELIVERED: Series = ("sse_events_delivered_total", &[]);
const LAGGED: Series = ("sse_clients_lagged_total", &[]);
const FULL: Series = ("sse_streams_refused_total", &[("reason", "max_clients")]);
const COMPLETE: Series = ("sse_replays_total", &[("result", "complete")]);
const GAP: Series = ("sse_replays_total", &[("result", "gap")]);
const ACCEPTED: Series = ("sse_triggers_total", &[("status", "202")]);
const ENDED: Series = ("sse_stream_duration_seconds_count", &[]);
const OPEN_FOR: Series = ("sse_stream_duration_seconds_sum", &[]);

/// The sum of every sample of a series (0 when there is none).
fn figure(exposition: &Exposition, (name, labels): Series) -> f64 {
    exposition.sum(name, labels).unwrap_or(0.0)
}

/// Scrapes until `ready` holds, for at most `timeout` (a count may trail what caused it, as a
/// delivery trails its publication on a shared log); returns the last scrape.
async fn scrape_until(
    ctx: &Ctx,
    timeout: Duration,
    ready: impl Fn(&Exposition) -> bool,
) -> Result<Exposition, String> {
    let deadline = Instant::now() + timeout;
    loop {
        let exposition = scrape(ctx).await?;
        if ready(&exposition) || Instant::now() >= deadline {
            return Ok(exposition);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// How far a series moved between two scrapes.
fn moved(before: &Exposition, after: &Exposition, series: Series) -> f64 {
    figure(after, series) - figure(before, series)
}

/// Fails unless a series moved by exactly `by` between two scrapes.
fn ensure_moved(
    before: &Exposition,
    after: &Exposition,
    series: Series,
    by: f64,
    what: &str,
) -> Result<(), String> {
    let (name, labels) = series;
    let moved = moved(before, after, series);
    ensure!(
        moved == by,
        "{name}{labels:?} moved by {moved} after {what}, expected {by}"
    );
    Ok(())
}

/// Opens a stream and reads its first block; returns it and when that block arrived (the
/// server's stream had begun by then).
async fn open_timed(ctx: &Ctx, headers: &[(&str, &str)]) -> Result<(RawStream, Instant), String> {
    let mut stream = ctx.open_stream("/events", headers).await?;
    let (blocks, found) = stream.read_until(Duration::from_secs(5), |_| true).await?;
    ensure!(found, "a new stream sent nothing within 5 s");
    Ok((stream, blocks[0].at))
}

pub async fn metrics(ctx: &Ctx) -> Checked {
    let exposition = scrape(ctx).await?;
    for (name, kind, split) in CONTRACT_METRICS {
        let family = exposition.families.get(name);
        ensure!(
            family.is_some_and(|family| family.kind == kind),
            "GET /metrics has no {kind} {name} (found {:?})",
            family.map(|family| &family.kind)
        );
        let Some((label, values)) = split else {
            continue;
        };
        for sample in &exposition.families[name].samples {
            let value = sample.label(label);
            let allowed = match label {
                "status" => value.is_some_and(|v| {
                    v.len() == 3 && v.parse::<u16>().is_ok_and(|s| (100..600).contains(&s))
                }),
                _ => value.is_some_and(|v| values.contains(&v)),
            };
            ensure!(
                allowed,
                "{} has {label}={value:?}; the contract allows {}",
                sample.name,
                if values.is_empty() {
                    "an HTTP status".to_owned()
                } else {
                    format!("{values:?}")
                }
            );
        }
    }
    for (name, labels) in [CLIENTS, LAST_ID, LOG_CONNECTED] {
        ensure!(
            exposition.sum(name, labels).is_some(),
            "GET /metrics has no sample of {name}"
        );
    }

    // With streams open and nothing else changing, /metrics and /health count the same.
    let base = settled_clients(ctx).await?;
    let _one = ctx.open_stream("/events", &[]).await?;
    let _two = ctx.open_stream("/events", &[]).await?;
    let before = ctx.health_now().await?;
    let exposition = scrape(ctx).await?;
    let after = ctx.health_now().await?;
    let clients = figure(&exposition, CLIENTS);
    ensure!(
        before.clients == base + 2 && after.clients == base + 2,
        "/health counts {} then {} clients with {} open",
        before.clients,
        after.clients,
        base + 2
    );
    ensure!(
        clients == (base + 2) as f64,
        "sse_clients is {clients} while /health counts {} open streams",
        base + 2
    );
    let last_id = figure(&exposition, LAST_ID);
    ensure!(
        (before.last_id as f64..=after.last_id as f64).contains(&last_id),
        "sse_last_id is {last_id}, /health said {} before and {} after",
        before.last_id,
        after.last_id
    );
    let connected = figure(&exposition, LOG_CONNECTED);
    ensure!(
        connected == f64::from(u8::from(before.log_connected)),
        "sse_log_connected is {connected} while /health says log.connected {}",
        before.log_connected
    );
    pass()
}

/// The requests a careless server would take label values from — an event name, a path, a query,
/// an `Idempotency-Key`, a `Last-Event-ID`, headers — each carrying `name`.
async fn requests_named(ctx: &Ctx, name: &str) -> Result<(), String> {
    let answer = ctx
        .trigger_with(
            json!({"event": name, "data": 1}).to_string(),
            &[
                ("user-agent", name),
                ("idempotency-key", name),
                ("x-forwarded-for", "203.0.113.9"),
            ],
        )
        .await?;
    ensure!(
        answer.status == 202,
        "POST /trigger answered {}",
        answer.describe()
    );
    let refused = ctx
        .trigger(&json!({"event": format!("{name} with spaces"), "data": 1}))
        .await?;
    ensure!(
        refused.status == 400,
        "a trigger with a bad event name answered {}",
        refused.describe()
    );
    for path in [
        format!("/{name}"),
        format!("/metrics?{name}"),
        format!("/health?{name}"),
    ] {
        send(ctx.http.get(ctx.url(&path))).await?;
    }
    let stream = ctx
        .open_stream(
            &format!("/events?lastEventId={name}"),
            &[("last-event-id", name), ("user-agent", name)],
        )
        .await?;
    drop(stream);
    Ok(())
}

pub async fn metrics_labels(ctx: &Ctx) -> Checked {
    let series = |exposition: &Exposition| -> BTreeSet<String> {
        exposition
            .samples()
            .map(|sample| format!("{}{:?}", sample.name, sample.labels))
            .collect()
    };
    // The same requests twice, with other names: the first may make a lazy server create the
    // series it keeps for them; the second must add none.
    requests_named(ctx, &marker("metrics-warm-up")).await?;
    let before = scrape(ctx).await?;
    requests_named(ctx, &marker("metrics-label")).await?;
    let after = scrape(ctx).await?;
    let taken: Vec<String> = series(&after)
        .into_iter()
        .filter(|line| line.contains("metrics-") || line.contains("203.0.113.9"))
        .collect();
    ensure!(
        taken.is_empty(),
        "label values taken from a request: {taken:?}"
    );
    let added: Vec<String> = series(&after)
        .difference(&series(&before))
        .cloned()
        .collect();
    ensure!(
        added.is_empty(),
        "requests with new names added series {added:?} (label values come only from the server's own states)"
    );
    pass()
}

pub async fn metrics_counts(ctx: &Ctx) -> Checked {
    let config = ctx.config().clone();
    let noticed = notice_bound(ctx) + Duration::from_secs(2);
    let base = settled_clients(ctx).await?;
    let start = scrape(ctx).await?;

    // Two streams, one resuming from the newest id: a complete replay, and nothing ended yet.
    let newest = ctx.health_now().await?.last_id.to_string();
    let (mut plain, plain_began) = open_timed(ctx, &[]).await?;
    let (mut resumed, resumed_began) = open_timed(ctx, &[("last-event-id", &newest)]).await?;
    let open = scrape_until(ctx, noticed, |m| moved(&start, m, COMPLETE) >= 1.0).await?;
    ensure_moved(
        &start,
        &open,
        COMPLETE,
        1.0,
        "one resume with nothing missed",
    )?;
    let clients = figure(&open, CLIENTS);
    ensure!(
        clients == (base + 2) as f64,
        "sse_clients is {clients} with {} streams open",
        base + 2
    );
    ensure_moved(
        &start,
        &open,
        ENDED,
        0.0,
        "opening two streams (none ended)",
    )?;

    // Three triggers accepted, each refusal counted by its status and publishing nothing.
    let name = marker("metrics-counts");
    let mut last = 0;
    for n in 0..3 {
        last = ctx.publish(Some(&name), json!(n)).await?;
    }
    let mut refusals = vec![
        ("400", ctx.trigger_with("{".into(), &[]).await?.status),
        (
            "415",
            send(
                ctx.http
                    .post(ctx.url("/trigger"))
                    .header("content-type", "text/plain")
                    .bearer_auth(ctx.target.token.as_deref().unwrap_or_default())
                    .body("{}"),
            )
            .await?
            .status,
        ),
    ];
    if config.auth {
        let unauthorized = ctx
            .http
            .post(ctx.url("/trigger"))
            .header("content-type", "application/json")
            .body(r#"{"data":1}"#);
        refusals.push(("401", send(unauthorized).await?.status));
    }
    for (expected, status) in &refusals {
        ensure!(
            status.to_string() == *expected,
            "a trigger that should get {expected} got {status}"
        );
    }
    read_through(&mut plain, last, Duration::from_secs(10)).await?;
    read_through(&mut resumed, last, Duration::from_secs(10)).await?;
    let published = scrape_until(ctx, noticed, |m| {
        moved(&start, m, CUSTOM) >= 3.0 && moved(&open, m, DELIVERED) >= 6.0
    })
    .await?;
    ensure_moved(&start, &published, CUSTOM, 3.0, "three accepted triggers")?;
    ensure_moved(&start, &published, ACCEPTED, 3.0, "three accepted triggers")?;
    for (status, _) in &refusals {
        let refused: Series = ("sse_triggers_total", &[("status", status)]);
        let what = format!("one trigger refused with {status}");
        ensure_moved(&start, &published, refused, 1.0, &what)?;
    }
    let delivered = moved(&open, &published, DELIVERED) as i64;
    ensure!(
        delivered >= 6,
        "sse_events_delivered_total moved by {delivered} while two streams received three events"
    );

    // A resume from beyond the newest id: a gap.
    let beyond = (last + 1000).to_string();
    let mut ahead = ctx
        .open_stream("/events", &[("last-event-id", &beyond)])
        .await?;
    let (_, found) = ahead
        .read_until(Duration::from_secs(5), |block| {
            block.event.as_ref().is_some_and(|e| e.event_type == "gap")
        })
        .await?;
    ensure!(
        found,
        "a resume from {beyond} (newer than {last}) got no gap event"
    );
    drop(ahead);

    // Each stream's lifetime is counted once, when it ends, and is at least what it was open.
    let held = plain_began.elapsed() + resumed_began.elapsed();
    drop(plain);
    drop(resumed);
    ctx.wait_for_clients(noticed, |c| c <= base).await?;
    let closed = scrape_until(ctx, noticed, |m| moved(&published, m, ENDED) >= 3.0).await?;
    ensure_moved(&published, &closed, ENDED, 3.0, "three streams ended")?;
    let clients = figure(&closed, CLIENTS);
    ensure!(
        clients == base as f64,
        "sse_clients is {clients} after the streams closed (/health counts {base})"
    );
    ensure_moved(
        &start,
        &closed,
        GAP,
        1.0,
        "one resume from beyond the newest id",
    )?;
    let open_for = moved(&published, &closed, OPEN_FOR);
    ensure!(
        (open_for + 0.001).total_cmp(&held.as_secs_f64()).is_ge(),
        "sse_stream_duration_seconds_sum grew by {open_for:.3} s for streams open {:.3} s in all",
        held.as_secs_f64()
    );

    // A tick published after a scrape shows in the next ones.
    if config.tick_ms > 0 {
        let before = scrape(ctx).await?;
        let seen = figure(&before, LAST_ID) as u64;
        let mut stream = ctx.open_stream("/events", &[]).await?;
        let wait = Duration::from_millis(config.tick_ms * 2) + Duration::from_secs(3);
        let (_, found) = stream
            .read_until(wait, |block| {
                block
                    .event
                    .as_ref()
                    .is_some_and(|e| e.event_type == "tick" && id_of(e).is_some_and(|id| id > seen))
            })
            .await?;
        ensure!(
            found,
            "no tick after id {seen} within {} ms",
            wait.as_millis()
        );
        let after = scrape_until(ctx, noticed, |m| moved(&before, m, TICKS) >= 1.0).await?;
        let ticks = moved(&before, &after, TICKS) as i64;
        ensure!(
            ticks >= 1,
            "a tick was published, and sse_events_published_total{{kind=\"tick\"}} moved by {ticks}"
        );
    }

    // A stream refused at MAX_CLIENTS is counted with its reason.
    if too_many_to_fill(ctx).is_none() {
        settled_clients(ctx).await?;
        let before = scrape(ctx).await?;
        let (open, refused) = fill_up(ctx).await?;
        ensure!(
            refused.head.status == 503,
            "stream {} of MAX_CLIENTS {} answered {}",
            config.max_clients + 1,
            config.max_clients,
            refused.head.describe()
        );
        let after = scrape(ctx).await?;
        drop(open);
        ensure_moved(
            &before,
            &after,
            FULL,
            1.0,
            "one stream refused at MAX_CLIENTS",
        )?;
    }

    // A client cut off for lag is counted once.
    if config.client_buffer <= LAG_MAX_CLIENT_BUFFER {
        settled_clients(ctx).await?;
        let before = scrape(ctx).await?;
        let Lagged { end, ids, .. } = lag_one_client(ctx).await?;
        ensure!(
            end.is_some(),
            "a client that stopped reading was not cut off (it got {} events)",
            ids.len()
        );
        let after = scrape_until(ctx, noticed, |m| moved(&before, m, LAGGED) >= 1.0).await?;
        ensure_moved(&before, &after, LAGGED, 1.0, "one client cut off for lag")?;
    }
    pass()
}

/// The rest of what `/metrics` counts and does not: an idempotent retry is an answer but no
/// publication, 413 and 422 are answers by their status, another method on `/trigger` is no
/// trigger, and a `Last-Event-ID` that is not a number is no resume.
pub async fn metrics_refusals(ctx: &Ctx) -> Checked {
    if ctx.config().auth && ctx.target.token.is_none() {
        return skip("needs the server's token (--token)");
    }
    let answers = |e: &Exposition| e.sum("sse_triggers_total", &[]).unwrap_or(0.0);
    let resumes = |e: &Exposition| e.sum("sse_replays_total", &[]).unwrap_or(0.0);
    let key = format!("key-{}", marker("metrics-refusals"));
    let body = json!({"event": marker("metrics-refusals"), "data": 1}).to_string();

    let before = scrape(ctx).await?;
    let first = ctx
        .trigger_with(body.clone(), &[("idempotency-key", &key)])
        .await?;
    ensure!(
        first.status == 202,
        "a keyed trigger answered {}",
        first.describe()
    );
    let after_first = scrape(ctx).await?;
    ensure_moved(&before, &after_first, CUSTOM, 1.0, "a keyed trigger")?;
    let retry = ctx
        .trigger_with(body.clone(), &[("idempotency-key", &key)])
        .await?;
    ensure!(
        retry.status == 202,
        "its retry answered {}",
        retry.describe()
    );
    let after_retry = scrape(ctx).await?;
    ensure_moved(
        &after_first,
        &after_retry,
        CUSTOM,
        0.0,
        "an idempotent retry (an answer, no publication)",
    )?;
    ensure_moved(
        &after_first,
        &after_retry,
        ACCEPTED,
        1.0,
        "an idempotent retry answered 202",
    )?;

    let conflict = ctx
        .trigger_with(json!({"data": 2}).to_string(), &[("idempotency-key", &key)])
        .await?;
    let too_big = ctx
        .trigger_with(json!({"data": "x".repeat(70_000)}).to_string(), &[])
        .await?;
    ensure!(
        conflict.status == 422 && too_big.status == 413,
        "a reused key answered {} and 70 kB answered {} (expected 422 and 413)",
        conflict.describe(),
        too_big.describe()
    );
    let after_refusals = scrape(ctx).await?;
    for status in ["422", "413"] {
        ensure_moved(
            &after_retry,
            &after_refusals,
            ("sse_triggers_total", &[("status", status)]),
            1.0,
            &format!("one trigger answered {status}"),
        )?;
    }
    ensure_moved(&after_retry, &after_refusals, CUSTOM, 0.0, "two refusals")?;

    // Not a trigger, and not a resume.
    let not_post = send(ctx.http.get(ctx.url("/trigger"))).await?;
    ensure!(
        not_post.status == 405,
        "GET /trigger answered {}",
        not_post.describe()
    );
    for garbage in ["abc", "-1", "18446744073709551616"] {
        let mut stream = ctx
            .open_stream("/events", &[("Last-Event-ID", garbage)])
            .await?;
        stream.read_until(Duration::from_secs(5), |_| true).await?;
    }
    let after_others = scrape(ctx).await?;
    let (counted, resumed) = (
        answers(&after_others) - answers(&after_refusals),
        resumes(&after_others) - resumes(&after_refusals),
    );
    ensure!(
        counted == 0.0,
        "GET /trigger (405, no trigger) moved sse_triggers_total by {counted}"
    );
    ensure!(
        resumed == 0.0,
        "three streams whose Last-Event-ID is no number (no resume) moved sse_replays_total by {resumed}"
    );
    pass()
}
