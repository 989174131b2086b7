//! Fan-out: N clients, events published through `POST /trigger`. First back to back (with a
//! bounded window so that no client falls `CLIENT_BUFFER` behind) for throughput and CPU per
//! delivery, then at a fixed rate below saturation for trigger-to-delivery latency.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;

use crate::bench::{Sizes, summarize};
use crate::fleet::{Fleet, Leave, stamped_payload};
use crate::stats::{Spread, mib};
use crate::subject::Subject;

/// Events published ahead of the deliveries during the throughput phase: event k waits until
/// the fleet as a whole has (k − WINDOW) × clients deliveries. This bounds the total backlog,
/// not each client's; a client that falls behind `CLIENT_BUFFER` is still caught, since every
/// client must get every event.
const WINDOW: u64 = 32;
/// Publishing requests in flight at once during the throughput phase.
const PUBLISHERS: usize = 4;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Figures {
    pub clients: usize,
    pub payload_bytes: usize,
    pub events: u64,
    pub deliveries_per_s: f64,
    /// Server CPU (user + system) per million deliveries, throughput phase.
    pub cpu_s_per_million: f64,
    pub latency_rate: u64,
    pub latency_events: u64,
    pub latency: Spread,
    /// Server CPU per million deliveries at the fixed rate.
    pub cpu_s_per_million_at_rate: f64,
    pub rss_peak_mib: f64,
    pub problems: Vec<String>,
}

pub async fn run(binary: &Path, sizes: &Sizes, log: &impl Fn(&str)) -> Result<Figures, String> {
    let subject = Subject::start(binary, &[]).await?;
    let clients = sizes.fanout_clients as u64;
    let mut figures = Figures {
        clients: sizes.fanout_clients,
        payload_bytes: sizes.payload_bytes,
        events: sizes.fanout_events,
        latency_rate: sizes.latency_rate,
        ..Figures::default()
    };
    let fleet = Fleet::open(&subject, sizes.fanout_clients, Duration::from_secs(60)).await?;
    let throughput = back_to_back(&subject, &fleet, sizes).await?;
    let mut rss_peak = throughput.rss_peak_bytes;
    let first_id = throughput.first_id;
    figures.deliveries_per_s = throughput.deliveries_per_s;
    figures.cpu_s_per_million = throughput.cpu_s_per_million;
    figures.problems.extend(throughput.problems);
    log(&format!(
        "  {} deliveries: {:.0}/s, {:.2} CPU s per million",
        sizes.fanout_events * clients,
        figures.deliveries_per_s,
        figures.cpu_s_per_million
    ));

    // Latency at a fixed rate, stamped payloads.
    let events = sizes.latency_rate * sizes.latency_seconds;
    figures.latency_events = events;
    let mut ticker =
        tokio::time::interval(Duration::from_secs_f64(1.0 / sizes.latency_rate as f64));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let before = subject.sample()?;
    let mut last_id = 0;
    for _ in 0..events {
        ticker.tick().await;
        last_id = subject
            .publisher
            .publish("load", &stamped_payload(sizes.payload_bytes))
            .await?;
    }
    let all = (sizes.fanout_events + events) * clients;
    if !fleet.wait_delivered(all, Duration::from_secs(60)).await {
        figures.problems.push(format!(
            "{} of {all} deliveries arrived",
            fleet.delivered.load(Ordering::Relaxed)
        ));
    }
    let after = subject.sample()?;
    rss_peak = rss_peak.max(after.rss_bytes);
    figures.cpu_s_per_million_at_rate =
        (after.cpu - before.cpu).as_secs_f64() / ((events * clients) as f64 / 1_000_000.0);
    figures.rss_peak_mib = mib(rss_peak);

    let tallies = fleet.finish(Leave::Reset, Duration::from_secs(30)).await;
    figures.latency = Spread::of_micros(
        tallies
            .iter()
            .flat_map(|t| t.latencies_us.clone())
            .collect(),
    );
    let first = first_id.unwrap_or(1);
    figures.problems.extend(summarize(
        tallies
            .iter()
            .filter(|t| !t.got_exactly(first, last_id))
            .map(|t| {
                format!(
                    "a client did not get exactly ids {first}..={last_id}: {}",
                    t.describe()
                )
            }),
    ));
    if tallies.len() != sizes.fanout_clients {
        figures.problems.push(format!(
            "{} of {clients} clients reported back",
            tallies.len()
        ));
    }
    log(&format!(
        "  latency at {} ev/s: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; {:.2} CPU s per million",
        sizes.latency_rate,
        figures.latency.p50_ms,
        figures.latency.p99_ms,
        figures.latency.max_ms,
        figures.cpu_s_per_million_at_rate
    ));
    subject.stop().await;
    Ok(figures)
}

/// What publishing back to back gave.
pub struct Throughput {
    pub deliveries_per_s: f64,
    /// Server CPU (user + system) per million deliveries.
    pub cpu_s_per_million: f64,
    /// The first id published.
    pub first_id: Option<u64>,
    pub rss_peak_bytes: u64,
    pub problems: Vec<String>,
}

/// Publishes `sizes.fanout_events` events back to back to `fleet` (its streams open), with a
/// bounded window so that no client falls `CLIENT_BUFFER` behind, until every delivery is in.
pub async fn back_to_back(
    subject: &Subject,
    fleet: &Fleet,
    sizes: &Sizes,
) -> Result<Throughput, String> {
    let clients = sizes.fanout_clients as u64;
    let mut problems = Vec::new();
    let mut rss_peak = subject.sample()?.rss_bytes;

    // Throughput: no timestamps (latency here is only queueing). Several publishers at once,
    // as a busy service has, so events can arrive faster than one request round trip.
    let padding = "x".repeat(sizes.payload_bytes);
    let before = subject.sample()?;
    let began = Instant::now();
    let next = Arc::new(AtomicU64::new(0));
    let mut publishers = JoinSet::new();
    for _ in 0..PUBLISHERS {
        let (next, publisher, padding) = (
            Arc::clone(&next),
            subject.publisher.clone(),
            padding.clone(),
        );
        let delivered = Arc::clone(&fleet.delivered);
        let events = sizes.fanout_events;
        publishers.spawn(async move {
            let mut first = u64::MAX;
            loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                if k >= events {
                    return Ok::<u64, String>(first);
                }
                let allowed = k.saturating_sub(WINDOW) * clients;
                let waited = Instant::now();
                while delivered.load(Ordering::Relaxed) < allowed {
                    if waited.elapsed() > Duration::from_secs(30) {
                        return Err(format!("deliveries stalled at event {k}"));
                    }
                    // tokio's timer has millisecond resolution.
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                first = first.min(publisher.publish("load", &padding).await?);
            }
        });
    }
    let mut first_id = None;
    while let Some(joined) = publishers.join_next().await {
        let first = joined.map_err(|e| e.to_string())??;
        first_id = Some(first_id.unwrap_or(u64::MAX).min(first));
    }
    rss_peak = rss_peak.max(subject.sample()?.rss_bytes);
    let total = sizes.fanout_events * clients;
    let complete = fleet.wait_delivered(total, Duration::from_secs(60)).await;
    let took = began.elapsed();
    let after = subject.sample()?;
    rss_peak = rss_peak.max(after.rss_bytes);
    if !complete {
        problems.push(format!(
            "{} of {total} deliveries arrived",
            fleet.delivered.load(Ordering::Relaxed)
        ));
    }
    Ok(Throughput {
        deliveries_per_s: total as f64 / took.as_secs_f64(),
        cpu_s_per_million: (after.cpu - before.cpu).as_secs_f64() / (total as f64 / 1_000_000.0),
        first_id,
        rss_peak_bytes: rss_peak,
        problems,
    })
}
