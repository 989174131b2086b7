//! Idle streams and capacity: open N streams (connect rate, time to the response head, server
//! memory per stream), grow to the capacity target, send one event to all of them (delivery
//! latency), then drop every connection at once (how soon the count is back to 0).

use std::path::Path;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::bench::{Sizes, summarize};
use crate::fleet::{Fleet, Leave, stamped_payload};
use crate::stats::Spread;
use crate::subject::Subject;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Figures {
    pub idle_streams: usize,
    pub connects_per_s: f64,
    pub time_to_head: Spread,
    pub baseline_rss_kib: u64,
    pub rss_per_idle_stream_kib: f64,
    pub capacity_streams: usize,
    pub capacity_open: u64,
    pub capacity_rss_mib: f64,
    /// Publish-to-delivery latency of one event sent to every open stream.
    pub broadcast: Spread,
    /// From dropping every connection at once to `/health` counting 0.
    pub mass_disconnect_ms: Option<f64>,
    pub problems: Vec<String>,
}

pub async fn run(binary: &Path, sizes: &Sizes, log: &impl Fn(&str)) -> Result<Figures, String> {
    let subject = Subject::start(binary, &[]).await?;
    let mut figures = Figures {
        idle_streams: sizes.idle_streams,
        capacity_streams: sizes.capacity_streams,
        ..Figures::default()
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let baseline = subject.sample()?;
    figures.baseline_rss_kib = baseline.rss_bytes / 1024;

    let began = Instant::now();
    let idle = Fleet::start(subject.address, sizes.idle_streams);
    idle.wait_heads(sizes.idle_streams, Duration::from_secs(120))
        .await;
    let connect_time = began.elapsed();
    figures.connects_per_s = sizes.idle_streams as f64 / connect_time.as_secs_f64();
    figures.rss_per_idle_stream_kib = super::rss_per_idle_stream(
        &subject,
        &baseline,
        sizes.idle_streams,
        &mut figures.problems,
    )
    .await?;
    log(&format!(
        "  {} streams in {:.1} s, {:.2} KiB RSS each",
        sizes.idle_streams,
        connect_time.as_secs_f64(),
        figures.rss_per_idle_stream_kib
    ));

    let more = sizes.capacity_streams.saturating_sub(sizes.idle_streams);
    let grown = Fleet::start(subject.address, more);
    grown.wait_heads(more, Duration::from_secs(120)).await;
    let open = subject
        .wait_clients(Duration::from_secs(10), |n| {
            n == sizes.capacity_streams as u64
        })
        .await;
    figures.capacity_open = match open {
        Ok(_) => sizes.capacity_streams as u64,
        Err(count) => count,
    };
    figures.capacity_rss_mib = crate::stats::mib(subject.sample()?.rss_bytes);
    let id = subject
        .publisher
        .publish("load", &stamped_payload(sizes.payload_bytes))
        .await?;
    let want = sizes.capacity_streams as u64;
    let arrived = async {
        let deadline = Instant::now() + Duration::from_secs(30);
        while idle.delivered.load(std::sync::atomic::Ordering::Relaxed)
            + grown.delivered.load(std::sync::atomic::Ordering::Relaxed)
            < want
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    arrived.await;
    log(&format!(
        "  {} streams open, one event published (id {id})",
        figures.capacity_open
    ));

    // Every client resets its connection at once.
    let dropped = Instant::now();
    let mut tallies = idle.finish(Leave::Reset, Duration::from_secs(30)).await;
    tallies.extend(grown.finish(Leave::Reset, Duration::from_secs(30)).await);
    figures.mass_disconnect_ms = subject
        .wait_clients(Duration::from_secs(30), |n| n == 0)
        .await
        .ok()
        .map(|_| dropped.elapsed().as_secs_f64() * 1000.0);

    figures.time_to_head = Spread::of_durations(
        tallies
            .iter()
            .filter(|t| t.refused.is_none())
            .map(|t| t.time_to_head),
    );
    figures.broadcast = Spread::of_micros(
        tallies
            .iter()
            .flat_map(|t| t.latencies_us.clone())
            .collect(),
    );
    figures.problems.extend(summarize(
        tallies
            .iter()
            .filter(|t| !t.got_exactly(id, id))
            .map(|t| format!("a client did not get exactly event {id}: {}", t.describe())),
    ));
    if tallies.len() != sizes.capacity_streams {
        figures.problems.push(format!(
            "{} of {} clients reported back",
            tallies.len(),
            sizes.capacity_streams
        ));
    }
    subject.stop().await;
    Ok(figures)
}
