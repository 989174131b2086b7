//! The same over HTTPS with HTTP/2, the way a browser holds its streams to one host: many
//! streams on each connection. Idle streams, `STREAMS_PER_CONNECTION` to a connection (memory
//! per stream), then the fan-out's back-to-back phase (CPU per million deliveries), each on a
//! fresh server process started with a development certificate.

use std::path::Path;
use std::time::{Duration, Instant};

use conformance::wire::Protocol;
use serde::{Deserialize, Serialize};

use crate::bench::{Sizes, fanout, summarize};
use crate::fleet::{Fleet, Leave};
use crate::subject::Subject;

/// Streams on one HTTP/2 connection (a hundred, as `h2-many-streams` checks and as most
/// servers' `SETTINGS_MAX_CONCURRENT_STREAMS` allows).
pub const STREAMS_PER_CONNECTION: usize = 100;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Figures {
    pub idle_streams: usize,
    pub connections: usize,
    pub baseline_rss_kib: u64,
    pub rss_per_idle_stream_kib: f64,
    pub fanout_clients: usize,
    pub fanout_connections: usize,
    pub deliveries_per_s: f64,
    /// Server CPU (user + system) per million deliveries, back to back.
    pub cpu_s_per_million: f64,
    pub problems: Vec<String>,
}

pub async fn run(binary: &Path, sizes: &Sizes, log: &impl Fn(&str)) -> Result<Figures, String> {
    let mut figures = Figures {
        idle_streams: sizes.idle_streams,
        connections: sizes.idle_streams.div_ceil(STREAMS_PER_CONNECTION),
        fanout_clients: sizes.fanout_clients,
        fanout_connections: sizes.fanout_clients.div_ceil(STREAMS_PER_CONNECTION),
        ..Figures::default()
    };

    let subject = Subject::start_tls(binary, &[], Protocol::Http2).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let baseline = subject.sample()?;
    figures.baseline_rss_kib = baseline.rss_bytes / 1024;
    let began = Instant::now();
    let idle = Fleet::start_h2(
        subject.address,
        &subject.transport,
        sizes.idle_streams,
        STREAMS_PER_CONNECTION,
    )?;
    idle.wait_heads(sizes.idle_streams, Duration::from_secs(120))
        .await;
    figures.rss_per_idle_stream_kib = super::rss_per_idle_stream(
        &subject,
        &baseline,
        sizes.idle_streams,
        &mut figures.problems,
    )
    .await?;
    log(&format!(
        "  {} streams on {} HTTP/2 connections in {:.1} s, {:.2} KiB RSS each",
        sizes.idle_streams,
        figures.connections,
        began.elapsed().as_secs_f64(),
        figures.rss_per_idle_stream_kib
    ));
    let tallies = idle.finish(Leave::Reset, Duration::from_secs(30)).await;
    figures.problems.extend(summarize(
        tallies
            .iter()
            .filter_map(|t| t.refused.as_ref())
            .map(|why| format!("an idle HTTP/2 stream was refused: {why}")),
    ));
    subject.stop().await;

    let subject = Subject::start_tls(binary, &[], Protocol::Http2).await?;
    let fleet = Fleet::start_h2(
        subject.address,
        &subject.transport,
        sizes.fanout_clients,
        STREAMS_PER_CONNECTION,
    )?;
    fleet
        .wait_heads(sizes.fanout_clients, Duration::from_secs(60))
        .await;
    subject
        .wait_clients(Duration::from_secs(10), |n| {
            n == sizes.fanout_clients as u64
        })
        .await
        .map_err(|n| format!("{n} of {} HTTP/2 clients connected", sizes.fanout_clients))?;
    let throughput = fanout::back_to_back(&subject, &fleet, sizes).await?;
    figures.deliveries_per_s = throughput.deliveries_per_s;
    figures.cpu_s_per_million = throughput.cpu_s_per_million;
    figures.problems.extend(throughput.problems);
    let tallies = fleet.finish(Leave::Reset, Duration::from_secs(30)).await;
    if let Some(first) = throughput.first_id {
        let last = first + sizes.fanout_events - 1;
        figures.problems.extend(summarize(
            tallies
                .iter()
                .filter(|t| !t.got_exactly(first, last))
                .map(|t| {
                    format!(
                        "an HTTP/2 client did not get exactly ids {first}..={last}: {}",
                        t.describe()
                    )
                }),
        ));
    }
    if tallies.len() != sizes.fanout_clients {
        figures.problems.push(format!(
            "{} of {} HTTP/2 clients reported back",
            tallies.len(),
            sizes.fanout_clients
        ));
    }
    log(&format!(
        "  fan-out over HTTP/2 ({} clients on {} connections): {:.0} deliveries/s, {:.2} CPU s per million",
        sizes.fanout_clients,
        figures.fanout_connections,
        figures.deliveries_per_s,
        figures.cpu_s_per_million
    ));
    subject.stop().await;
    Ok(figures)
}
