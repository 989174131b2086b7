//! Ticks and ids (contract 2.2, 2.3).

use std::time::{Duration, SystemTime};

use serde_json::{Value, json};

use super::{
    Checked, abbreviate, ensure, ensure_consecutive, events, id_of, marker, pass, read_through,
    skip,
};
use crate::parser::Event;
use crate::target::Ctx;
use crate::wire::RawStream;

/// A tick as received: its id, K, and publication time.
pub(crate) struct Tick {
    pub(crate) id: u64,
    pub(crate) k: u64,
    pub(crate) time: SystemTime,
}

fn needs_ticks(ctx: &Ctx) -> Option<String> {
    let tick_ms = ctx.config().tick_ms;
    (tick_ms == 0 || tick_ms > 2000)
        .then(|| format!("needs tick_ms from 1 to 2000 (has {tick_ms})"))
}

/// Reads `count` ticks from `stream`, checking each one's exact shape.
async fn read_ticks(ctx: &Ctx, stream: &mut RawStream, count: usize) -> Result<Vec<Tick>, String> {
    let timeout =
        Duration::from_millis(ctx.config().tick_ms * (count as u64 + 2)) + Duration::from_secs(2);
    let mut seen = 0;
    let (blocks, done) = stream
        .read_until(timeout, |block| {
            seen += usize::from(block.event.as_ref().is_some_and(|e| e.event_type == "tick"));
            seen == count
        })
        .await?;
    ensure!(
        done,
        "{count} ticks did not arrive within {} ms; got {}",
        timeout.as_millis(),
        stream.body_sample()
    );
    events(&blocks)
        .into_iter()
        .filter(|e| e.event_type == "tick")
        .map(parse_tick)
        .collect()
}

pub(crate) fn parse_tick(event: &Event) -> Result<Tick, String> {
    let id = id_of(event).ok_or_else(|| format!("tick without a decimal id: {event:?}"))?;
    let value: Value = serde_json::from_str(&event.data)
        .map_err(|e| format!("tick data is not JSON ({e}): {:?}", event.data))?;
    let k = value.get("tick").and_then(Value::as_u64);
    let time = value.get("time").and_then(Value::as_str);
    let (Some(k), Some(time), Some(2)) = (k, time, value.as_object().map(|o| o.len())) else {
        return Err(format!(
            "tick data must be exactly {{\"tick\":K,\"time\":\"…\"}}, got {:?}",
            event.data
        ));
    };
    ensure!(
        event.data == format!(r#"{{"tick":{k},"time":"{time}"}}"#),
        "tick data is not compact JSON in the contract's order: {:?}",
        event.data
    );
    ensure!(
        is_utc_millis(time),
        "tick time {time:?} is not YYYY-MM-DDTHH:MM:SS.mmmZ"
    );
    let time = humantime::parse_rfc3339(time).map_err(|e| format!("tick time {time:?}: {e}"))?;
    Ok(Tick { id, k, time })
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` exactly.
fn is_utc_millis(text: &str) -> bool {
    let pattern = b"dddd-dd-ddTdd:dd:dd.dddZ";
    text.len() == pattern.len()
        && text.bytes().zip(pattern).all(|(c, p)| {
            if *p == b'd' {
                c.is_ascii_digit()
            } else {
                c == *p
            }
        })
}

pub async fn tick_shape(ctx: &Ctx) -> Checked {
    if let Some(needs) = needs_ticks(ctx) {
        return skip(needs);
    }
    let mut stream = ctx.open_stream("/events", &[]).await?;
    let ticks = read_ticks(ctx, &mut stream, 3).await?;
    for pair in ticks.windows(2) {
        ensure!(
            pair[1].k == pair[0].k + 1,
            "tick K went from {} to {}",
            pair[0].k,
            pair[1].k
        );
        ensure!(pair[1].time >= pair[0].time, "tick time went backwards");
    }
    let skew = SystemTime::now()
        .duration_since(ticks[0].time)
        .unwrap_or_else(|e| e.duration());
    ensure!(
        skew < Duration::from_secs(30),
        "tick time is {} s away from this machine's clock",
        skew.as_secs()
    );
    pass()
}

pub async fn tick_cadence(ctx: &Ctx) -> Checked {
    if let Some(needs) = needs_ticks(ctx) {
        return skip(needs);
    }
    let tick_ms = ctx.config().tick_ms as f64;
    let mut stream = ctx.open_stream("/events", &[]).await?;
    let ticks = read_ticks(ctx, &mut stream, 6).await?;
    let intervals: Vec<f64> = ticks
        .windows(2)
        .map(|p| {
            p[1].time
                .duration_since(p[0].time)
                .unwrap_or_default()
                .as_secs_f64()
                * 1000.0
        })
        .collect();
    let mean = intervals.iter().sum::<f64>() / intervals.len() as f64;
    let within = |value: f64, low: f64, high: f64| (low..=high).contains(&value);
    ensure!(
        within(mean, tick_ms * 0.8, tick_ms * 1.2),
        "ticks came every {mean:.0} ms on average; TICK_MS is {tick_ms} (intervals {intervals:.0?})"
    );
    ensure!(
        intervals
            .iter()
            .all(|&i| within(i, tick_ms * 0.5, tick_ms * 1.5 + 200.0)),
        "a tick interval is far from TICK_MS {tick_ms}: {intervals:.0?}"
    );
    pass()
}

pub async fn tick_shared(ctx: &Ctx) -> Checked {
    if let Some(needs) = needs_ticks(ctx) {
        return skip(needs);
    }
    let mut first = ctx.open_stream("/events", &[]).await?;
    let mut second = ctx.open_stream("/events", &[]).await?;
    let (a, b) = tokio::join!(
        read_ticks(ctx, &mut first, 3),
        read_ticks(ctx, &mut second, 3)
    );
    let (a, b) = (a?, b?);
    let common: Vec<(&Tick, &Tick)> = a
        .iter()
        .flat_map(|x| b.iter().filter(move |y| y.id == x.id).map(move |y| (x, y)))
        .collect();
    ensure!(
        common.len() >= 2,
        "two clients saw no common tick ids: {:?} and {:?}",
        ids(&a),
        ids(&b)
    );
    for (x, y) in common {
        ensure!(
            x.k == y.k && x.time == y.time,
            "tick id {} differs between two clients",
            x.id
        );
    }
    pass()
}

fn ids(ticks: &[Tick]) -> Vec<u64> {
    ticks.iter().map(|t| t.id).collect()
}

pub async fn ids_consecutive(ctx: &Ctx) -> Checked {
    const PUBLISHERS: usize = 3;
    const EACH: usize = 20;
    let mut stream = ctx.open_stream("/events", &[]).await?;
    let name = marker("ids");
    let publishers = (0..PUBLISHERS).map(|p| {
        let name = &name;
        async move {
            let mut ids = Vec::new();
            for i in 0..EACH {
                ids.push(
                    ctx.publish(Some(name), json!({"publisher": p, "i": i}))
                        .await?,
                );
            }
            Ok::<_, String>(ids)
        }
    });
    let published: Vec<Vec<u64>> = futures_util::future::try_join_all(publishers).await?;
    let mut published: Vec<u64> = published.into_iter().flatten().collect();
    published.sort_unstable();
    let before = published.len();
    published.dedup();
    ensure!(
        published.len() == before,
        "POST /trigger gave the same id twice: {}",
        abbreviate(&published)
    );
    let last = *published.last().expect("published");
    let blocks = read_through(&mut stream, last, Duration::from_secs(10)).await?;
    let seen: Vec<u64> = events(&blocks).into_iter().filter_map(id_of).collect();
    let first = *seen.first().ok_or("no event with an id arrived")?;
    ensure_consecutive(&seen, first, "ids on the stream")?;
    for id in &published {
        ensure!(
            seen.contains(id),
            "published id {id} never arrived (seen {})",
            abbreviate(&seen)
        );
    }
    let custom: Vec<u64> = events(&blocks)
        .into_iter()
        .filter(|e| e.event_type == name)
        .filter_map(id_of)
        .collect();
    ensure!(
        custom == published,
        "the stream's {name} ids {} differ from the ids POST /trigger returned",
        abbreviate(&custom)
    );
    pass()
}

#[cfg(test)]
mod tests {
    #[test]
    fn utc_millis_format() {
        assert!(super::is_utc_millis("2026-11-20T12:00:00.000Z"));
        assert!(!super::is_utc_millis("2026-11-20T12:00:00Z"));
        assert!(!super::is_utc_millis("2026-11-20T12:00:00.000000Z"));
        assert!(!super::is_utc_millis("2026-11-20 12:00:00.000Z"));
        assert!(!super::is_utc_millis("2026-11-20T12:00:00.000+00:00"));
    }
}
