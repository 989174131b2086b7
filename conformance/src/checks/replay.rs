//! Resuming with `Last-Event-ID` or `?lastEventId` (contract 3).

use std::time::Duration;

use serde_json::{Value, json};

use super::{Checked, ensure, ensure_consecutive, events, id_of, marker, pass, read_through, skip};
use crate::parser::{Event, LineKind};
use crate::target::Ctx;
use crate::wire::RawStream;

/// Publishes `count` events and returns their ids.
async fn publish_some(ctx: &Ctx, check: &str, count: usize) -> Result<Vec<u64>, String> {
    let name = marker(check);
    let mut ids = Vec::with_capacity(count);
    for i in 0..count {
        ids.push(ctx.publish(Some(&name), json!(i)).await?);
    }
    Ok(ids)
}

/// Opens a resuming stream and reads until `last` arrived; returns the events in order.
async fn resume(
    ctx: &Ctx,
    path: &str,
    headers: &[(&str, &str)],
    last: u64,
) -> Result<Vec<Event>, String> {
    let mut stream = ctx.open_stream(path, headers).await?;
    let blocks = read_through(&mut stream, last, Duration::from_secs(10)).await?;
    Ok(events(&blocks).into_iter().cloned().collect())
}

fn ids(events: &[Event]) -> Vec<u64> {
    events.iter().filter_map(id_of).collect()
}

/// The `gap` event's data: `(last_event_id, oldest_id)`.
pub(crate) fn gap_of(event: &Event) -> Result<(Option<u64>, Option<u64>), String> {
    ensure!(
        event.event_type == "gap",
        "expected a gap event first, got {:?} (data {:?})",
        event.event_type,
        event.data
    );
    ensure!(
        event.id.is_none(),
        "the gap event has an id field ({:?}); it must have none",
        event.id
    );
    let data: Value = serde_json::from_str(&event.data)
        .map_err(|e| format!("gap data is not JSON ({e}): {:?}", event.data))?;
    let object = data
        .as_object()
        .ok_or_else(|| format!("gap data is not an object: {}", event.data))?;
    ensure!(
        object.len() == 2
            && object.contains_key("last_event_id")
            && object.contains_key("oldest_id"),
        "gap data must be {{\"last_event_id\":N,\"oldest_id\":O}}, got {}",
        event.data
    );
    let oldest = &object["oldest_id"];
    ensure!(
        oldest.is_null() || oldest.is_u64(),
        "gap oldest_id is neither an id nor null: {}",
        event.data
    );
    Ok((object["last_event_id"].as_u64(), oldest.as_u64()))
}

fn no_gap(events: &[Event], what: &str) -> Result<(), String> {
    ensure!(
        !events.iter().any(|e| e.event_type == "gap"),
        "{what}: unexpected gap event {:?}",
        events
            .iter()
            .find(|e| e.event_type == "gap")
            .map(|e| &e.data)
    );
    Ok(())
}

pub async fn replay_header(ctx: &Ctx) -> Checked {
    let published = publish_some(ctx, "replay-header", 3).await?;
    let (first, last) = (published[0], published[2]);
    let from = (first - 1).to_string();
    let received = resume(ctx, "/events", &[("Last-Event-ID", &from)], last).await?;
    no_gap(&received, "resuming inside the buffer")?;
    ensure_consecutive(&ids(&received), first, &format!("resuming after {from}"))?;
    pass()
}

pub async fn replay_query(ctx: &Ctx) -> Checked {
    let published = publish_some(ctx, "replay-query", 3).await?;
    let (first, second, last) = (published[0], published[1], published[2]);
    let path = format!("/events?lastEventId={}", first - 1);
    let received = resume(ctx, &path, &[], last).await?;
    no_gap(&received, "resuming by query")?;
    ensure_consecutive(&ids(&received), first, &format!("GET {path}"))?;

    // The header wins over the query parameter, whatever it holds.
    let received = resume(ctx, &path, &[("Last-Event-ID", &second.to_string())], last).await?;
    ensure_consecutive(
        &ids(&received),
        second + 1,
        &format!("GET {path} with Last-Event-ID {second}"),
    )?;
    let mut stream = ctx
        .open_stream(&path, &[("Last-Event-ID", "garbage")])
        .await?;
    let fresh = ctx
        .publish(Some(&marker("replay-query")), json!("live"))
        .await?;
    let blocks = read_through(&mut stream, fresh, Duration::from_secs(5)).await?;
    let seen = ids(&events(&blocks).into_iter().cloned().collect::<Vec<_>>());
    ensure!(
        seen.iter().all(|&id| id > last),
        "with Last-Event-ID: garbage and ?lastEventId={}, the server replayed {seen:?}; a present header must win (and garbage means no replay)",
        first - 1
    );
    pass()
}

/// Publishers hammer the server while clients resume from recent ids: every client must see
/// exactly N+1, N+2, … up to the last id published.
pub async fn replay_race(ctx: &Ctx) -> Checked {
    const PUBLISHERS: usize = 2;
    const EACH: usize = 40;
    const CLIENTS: u64 = 6;
    if ctx.config().replay_capacity < 64 {
        return skip(format!(
            "needs replay_capacity ≥ 64 (has {})",
            ctx.config().replay_capacity
        ));
    }
    if ctx.config().max_clients < CLIENTS + 2 {
        return skip(format!(
            "needs max_clients ≥ {} (has {})",
            CLIENTS + 2,
            ctx.config().max_clients
        ));
    }
    let name = marker("race");
    let publishing = async {
        let publishers = (0..PUBLISHERS).map(|_| async {
            let mut last = 0;
            for i in 0..EACH {
                last = last.max(ctx.publish(Some(&name), json!(i)).await?);
            }
            Ok::<_, String>(last)
        });
        let lasts = futures_util::future::try_join_all(publishers).await?;
        Ok::<_, String>(lasts.into_iter().max().unwrap_or_default())
    };
    let joining = async {
        let mut clients = Vec::new();
        for i in 0..CLIENTS {
            tokio::time::sleep(Duration::from_millis(3 * i)).await;
            let n = ctx.health_now().await?.last_id.saturating_sub(i * 3 % 10);
            let stream = ctx
                .open_stream("/events", &[("Last-Event-ID", &n.to_string())])
                .await?;
            clients.push((n, stream));
        }
        Ok::<_, String>(clients)
    };
    let (last, clients) = tokio::join!(publishing, joining);
    let (last, clients) = (last?, clients?);
    for (n, mut stream) in clients {
        let blocks = read_through(&mut stream, last, Duration::from_secs(10)).await?;
        let received: Vec<Event> = events(&blocks).into_iter().cloned().collect();
        no_gap(
            &received,
            &format!("resuming after {n} while others published"),
        )?;
        let seen = ids(&received);
        ensure_consecutive(
            &seen,
            n + 1,
            &format!("resuming after {n} while others published"),
        )?;
    }
    pass()
}

pub async fn gap_too_old(ctx: &Ctx) -> Checked {
    let capacity = ctx.config().replay_capacity;
    if capacity > 5000 {
        return skip(format!("needs replay_capacity ≤ 5000 (has {capacity})"));
    }
    let before = ctx.health_now().await?.last_id;
    let published = publish_some(ctx, "gap-old", capacity as usize + 3).await?;
    let last = *published.last().expect("published");
    // Event `before + 1` has certainly left the buffer: more than `capacity` came after it.
    let received = resume(
        ctx,
        "/events",
        &[("Last-Event-ID", &before.to_string())],
        last,
    )
    .await?;
    let (gap_n, oldest) = gap_of(received.first().ok_or("no event arrived")?)?;
    ensure!(
        gap_n == Some(before),
        "gap last_event_id is {gap_n:?}, expected {before}"
    );
    let oldest = oldest.ok_or("gap oldest_id is null although the buffer is full")?;
    ensure!(
        oldest > before + 1,
        "gap oldest_id {oldest} but event {} must have been evicted",
        before + 1
    );
    let replayed = ids(&received[1..]);
    ensure_consecutive(&replayed, oldest, "after the gap")?;
    ensure!(
        oldest + capacity > last,
        "gap oldest_id {oldest}: the buffer held fewer than REPLAY_CAPACITY={capacity} events up to {last}"
    );
    pass()
}

pub async fn replay_boundary(ctx: &Ctx) -> Checked {
    let capacity = ctx.config().replay_capacity;
    if capacity > 5000 {
        return skip(format!("needs replay_capacity ≤ 5000 (has {capacity})"));
    }
    // With the buffer full, the oldest event held is `last + 1 - capacity`, unless a tick came
    // after `last` and moved it on: then the gap says so and the check tries again.
    for _ in 0..5 {
        let published = publish_some(ctx, "replay-boundary", capacity as usize + 2).await?;
        let last = *published.last().expect("published");
        let n = last - capacity; // the oldest held, less one
        let received = resume(ctx, "/events", &[("Last-Event-ID", &n.to_string())], last).await?;
        let first = received.first().ok_or("no event arrived")?;
        if first.event_type == "gap" {
            let (_, oldest) = gap_of(first)?;
            ensure!(
                oldest.is_some_and(|oldest| oldest > n + 1),
                "resuming from {n}, every event after it held ({}…{last}), got a gap with oldest_id {oldest:?}",
                n + 1
            );
            continue; // a tick moved the oldest on
        }
        ensure_consecutive(&ids(&received), n + 1, &format!("resuming from {n}"))?;
        // One earlier, event n is missing: a gap, then the oldest held.
        let earlier = n - 1;
        let received = resume(
            ctx,
            "/events",
            &[("Last-Event-ID", &earlier.to_string())],
            last,
        )
        .await?;
        let (gap_n, oldest) = gap_of(received.first().ok_or("no event arrived")?)?;
        ensure!(
            gap_n == Some(earlier),
            "gap last_event_id is {gap_n:?}, expected {earlier}"
        );
        let oldest = oldest.ok_or("gap oldest_id is null although events are held")?;
        ensure!(
            oldest > n,
            "resuming from {earlier}: gap oldest_id {oldest}, but {n} was evicted and {} held",
            n + 1
        );
        ensure_consecutive(&ids(&received[1..]), oldest, "after the gap")?;
        return pass();
    }
    Err("five tries in a row, a tick moved the oldest event on before the resume".into())
}

pub async fn gap_too_new(ctx: &Ctx) -> Checked {
    let published = publish_some(ctx, "gap-new", 2).await?;
    let last = published[1];
    let future = last + 1000;
    for (path, headers) in [
        (
            "/events".to_owned(),
            vec![("Last-Event-ID", future.to_string())],
        ),
        (format!("/events?lastEventId={future}"), vec![]),
    ] {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let received = resume(ctx, &path, &headers, last).await?;
        let (gap_n, oldest) = gap_of(received.first().ok_or("no event arrived")?)?;
        ensure!(
            gap_n == Some(future),
            "GET {path}: gap last_event_id is {gap_n:?}, expected {future}"
        );
        let oldest = oldest.ok_or("gap oldest_id is null although events are buffered")?;
        ensure_consecutive(
            &ids(&received[1..]),
            oldest,
            &format!("GET {path}: after the gap"),
        )?;
    }
    pass()
}

/// Resume points just beyond the newest id, and the largest there is.
pub async fn gap_too_new_boundary(ctx: &Ctx) -> Checked {
    // u64::MAX is a decimal u64: a resume point (beyond everything), not garbage — and one
    // that `N + 1` overflows.
    let last = ctx
        .publish(Some(&marker("gap-new-edge")), json!("newest"))
        .await?;
    let max = u64::MAX.to_string();
    let received = resume(ctx, "/events", &[("Last-Event-ID", &max)], last).await?;
    let (gap_n, oldest) = gap_of(received.first().ok_or("no event arrived")?)?;
    ensure!(
        gap_n == Some(u64::MAX),
        "resuming from {max}: gap last_event_id is {gap_n:?}, expected {max}"
    );
    let oldest = oldest.ok_or("gap oldest_id is null although events are buffered")?;
    ensure_consecutive(
        &ids(&received[1..]),
        oldest,
        &format!("resuming from {max}: after the gap"),
    )?;
    // The newest id plus one: nothing after it exists, so a gap. That it was beyond the newest
    // when the stream opened is known afterwards: when the next id published is the marker
    // that followed the opening (a tick between them makes it ambiguous, and the check tries
    // again).
    for _ in 0..5 {
        let mut watcher = ctx.open_stream("/events", &[]).await?;
        let name = marker("gap-new-edge");
        let newest = ctx.publish(Some(&name), json!("newest")).await?;
        let n = (newest + 1).to_string();
        let mut resumed = ctx.open_stream("/events", &[("Last-Event-ID", &n)]).await?;
        let after = ctx.publish(Some(&name), json!("after")).await?;
        read_through(&mut watcher, after, Duration::from_secs(5)).await?;
        if after != newest + 1 {
            continue;
        }
        let blocks = read_through(&mut resumed, after, Duration::from_secs(5)).await?;
        let received: Vec<Event> = events(&blocks).into_iter().cloned().collect();
        let (gap_n, _) = gap_of(received.first().ok_or("no event arrived")?).map_err(|e| {
            format!("resuming from {n} while the newest id was {newest} (one beyond it): {e}")
        })?;
        ensure!(
            gap_n == Some(newest + 1),
            "resuming from {n}: gap last_event_id is {gap_n:?}, expected {n}"
        );
        return pass();
    }
    Err("five tries in a row, a tick came between the resume and the next publication".into())
}

/// A replayed event is the event: the same name and data as a live client got, on every way
/// of resuming, and a resumed stream begins with `retry:` like any other.
pub async fn replay_content(ctx: &Ctx) -> Checked {
    let mut live = ctx.open_stream("/events", &[]).await?;
    let name = marker("replay-content");
    let long: String = format!("{name}.")
        .chars()
        .chain(std::iter::repeat('x'))
        .take(64)
        .collect();
    let payloads = [
        (Some(name.as_str()), json!("line one\nline two")),
        (Some(name.as_str()), json!("crlf\r\nthen cr\rend")),
        (None, json!("")),
        (
            Some(long.as_str()),
            json!({"nested": [1, "two", null], "ok": true}),
        ),
        (Some(name.as_str()), json!(" leading space")),
        (Some(name.as_str()), json!(42)),
    ];
    let mut published = Vec::new();
    for (event, data) in &payloads {
        published.push(ctx.publish(*event, data.clone()).await?);
    }
    let (first, last) = (published[0], published[published.len() - 1]);
    let blocks = read_through(&mut live, last, Duration::from_secs(5)).await?;
    let expected: Vec<(u64, String, String)> = events(&blocks)
        .into_iter()
        .filter_map(|e| Some((id_of(e)?, e.event_type.clone(), e.data.clone())))
        .filter(|(id, _, _)| (first..=last).contains(id))
        .collect();
    ensure_consecutive(
        &expected.iter().map(|(id, _, _)| *id).collect::<Vec<_>>(),
        first,
        "the live stream",
    )?;
    let from = (first - 1).to_string();
    let beyond = u64::MAX.to_string();
    let query = format!("/events?lastEventId={from}");
    let resumes = [
        ("/events", Some(from.as_str()), "Last-Event-ID"),
        (query.as_str(), None, "?lastEventId"),
        (
            "/events",
            Some(beyond.as_str()),
            "a gap (Last-Event-ID beyond the newest)",
        ),
    ];
    let retry = ctx.config().retry_ms.to_string();
    for (path, header, how) in resumes {
        let headers: Vec<(&str, &str)> = header.map(|h| ("Last-Event-ID", h)).into_iter().collect();
        let mut stream = ctx.open_stream(path, &headers).await?;
        let blocks = read_through(&mut stream, last, Duration::from_secs(10)).await?;
        let only_retry = matches!(
            blocks[0].block.lines.as_slice(),
            [line] if matches!(&line.kind, LineKind::Field { name, value } if name == "retry" && *value == retry)
        );
        ensure!(
            only_retry,
            "resuming by {how}: the first block is not exactly `retry: {retry}`; the stream began {}",
            stream.body_sample()
        );
        let replayed: Vec<(u64, String, String)> = events(&blocks)
            .into_iter()
            .filter_map(|e| Some((id_of(e)?, e.event_type.clone(), e.data.clone())))
            .filter(|(id, _, _)| (first..=last).contains(id))
            .collect();
        for (live, again) in expected.iter().zip(&replayed) {
            ensure!(
                live == again,
                "resuming by {how}: event {} replayed as {:?} with data {:?}; live it was {:?} with data {:?}",
                live.0,
                again.1,
                again.2,
                live.1,
                live.2
            );
        }
        ensure!(
            replayed.len() == expected.len(),
            "resuming by {how}: {} of the {} events {first}…{last} replayed",
            replayed.len(),
            expected.len()
        );
    }
    pass()
}

pub async fn garbage_last_event_id(ctx: &Ctx) -> Checked {
    ctx.publish(Some(&marker("garbage")), json!("buffered"))
        .await?;
    let values = [
        "",
        "abc",
        "-1",
        "+1",
        "1.5",
        " 7x",
        "0x10",
        "18446744073709551616",
        "99999999999999999999999",
    ];
    for value in values {
        for by_header in [true, false] {
            let before = ctx.health_now().await?.last_id;
            let (path, headers) = if by_header {
                ("/events".to_owned(), vec![("Last-Event-ID", value)])
            } else {
                (format!("/events?lastEventId={}", urlencode(value)), vec![])
            };
            let mut stream: RawStream = ctx.open_stream(&path, &headers).await?;
            let fresh = ctx.publish(Some(&marker("garbage")), json!("live")).await?;
            let blocks = read_through(&mut stream, fresh, Duration::from_secs(5)).await?;
            let received: Vec<Event> = events(&blocks).into_iter().cloned().collect();
            let what = if by_header {
                format!("Last-Event-ID: {value:?}")
            } else {
                format!("GET {path}")
            };
            no_gap(&received, &what)?;
            let seen = ids(&received);
            ensure!(
                seen.iter().all(|&id| id > before),
                "{what} should be ignored, but the server replayed ids {seen:?} (last id before was {before})"
            );
        }
    }
    pass()
}

fn urlencode(value: &str) -> String {
    value
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b == b'-' || b == b'.' {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
