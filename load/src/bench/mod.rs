//! The side-by-side benchmarks: the same scenarios, on the same contract, for every server,
//! with every delivery checked while measuring.

pub mod churn;
pub mod cluster;
pub mod fanout;
pub mod h2;
pub mod streams;

use std::path::Path;

use serde::{Deserialize, Serialize};

/// A target from docs/benchmarks/README.md: the limit, and whether a figure must stay strictly
/// below it (`<`) or may reach it (`≤`).
#[derive(Debug, Clone, Copy)]
pub struct Target {
    pub limit: f64,
    pub strictly_below: bool,
}

impl Target {
    pub fn met_by(self, figure: f64) -> bool {
        if self.strictly_below {
            figure < self.limit
        } else {
            figure <= self.limit
        }
    }

    /// `[≤ 1.5]`, `[< 250 ms]`: the target as the tables' headers show it.
    pub fn bracket(self, unit: &str) -> String {
        let sign = if self.strictly_below { "<" } else { "≤" };
        format!("[{sign} {}{unit}]", self.limit)
    }
}

pub const CPU_S_PER_MILLION: Target = Target {
    limit: 1.5,
    strictly_below: false,
};
pub const RSS_PER_IDLE_STREAM_KIB: Target = Target {
    limit: 8.0,
    strictly_below: false,
};
pub const BROADCAST_P99_MS: Target = Target {
    limit: 250.0,
    strictly_below: true,
};
pub const LATENCY_P99_MS: Target = Target {
    limit: 5.0,
    strictly_below: true,
};
pub const MASS_DISCONNECT_MS: Target = Target {
    limit: 1000.0,
    strictly_below: false,
};

/// How big the scenarios are.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sizes {
    /// Streams held open to measure memory per idle stream.
    pub idle_streams: usize,
    /// Streams held open at once, one event sent to all of them.
    pub capacity_streams: usize,
    pub fanout_clients: usize,
    /// Events published back to back (with a bounded window) for throughput and CPU.
    pub fanout_events: u64,
    pub payload_bytes: usize,
    /// Fixed publish rate for the latency measurement, and for how long.
    pub latency_rate: u64,
    pub latency_seconds: u64,
    pub churn_cycles: u64,
}

impl Sizes {
    /// The sizes the targets are stated for (docs/benchmarks/README.md).
    pub fn full() -> Self {
        Self {
            idle_streams: 10_000,
            capacity_streams: 19_000,
            fanout_clients: 1_000,
            fanout_events: 2_000,
            payload_bytes: 64,
            latency_rate: 100,
            latency_seconds: 10,
            churn_cycles: 20_000,
        }
    }

    /// A minute-sized run that checks the machinery works.
    pub fn quick() -> Self {
        Self {
            idle_streams: 1_000,
            capacity_streams: 2_000,
            fanout_clients: 200,
            fanout_events: 200,
            payload_bytes: 64,
            latency_rate: 100,
            latency_seconds: 2,
            churn_cycles: 2_000,
        }
    }
}

/// Every figure of one server.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Results {
    pub framework: String,
    pub streams: streams::Figures,
    pub fanout: fanout::Figures,
    pub churn: churn::Figures,
    /// Idle streams and fan-out over HTTPS with HTTP/2 (absent from results of before it).
    #[serde(default)]
    pub h2: h2::Figures,
}

impl Results {
    /// Problems found while measuring (any lost, duplicated or refused delivery).
    pub fn problems(&self) -> Vec<String> {
        let mut all = Vec::new();
        for (scenario, problems) in [
            ("streams", &self.streams.problems),
            ("fan-out", &self.fanout.problems),
            ("churn", &self.churn.problems),
            ("HTTP/2", &self.h2.problems),
        ] {
            all.extend(problems.iter().map(|p| format!("{scenario}: {p}")));
        }
        all
    }
}

/// Runs every scenario against one server binary, each on a fresh process.
pub async fn run(binary: &Path, sizes: &Sizes, log: &impl Fn(&str)) -> Result<Results, String> {
    let framework = crate::subject::framework_of(binary);
    log(&format!("{framework}: idle and capacity streams"));
    let streams = streams::run(binary, sizes, log).await?;
    log(&format!("{framework}: fan-out"));
    let fanout = fanout::run(binary, sizes, log).await?;
    log(&format!("{framework}: churn"));
    let churn = churn::run(binary, sizes, log).await?;
    log(&format!("{framework}: over HTTPS with HTTP/2"));
    let h2 = h2::run(binary, sizes, log).await?;
    Ok(Results {
        framework,
        streams,
        fanout,
        churn,
        h2,
    })
}

/// Once `streams` idle streams are open: waits until `/health` counts them (a problem when it
/// does not), lets the allocator and the runtime settle, and gives the server's RSS per stream
/// above `baseline`, in KiB.
pub async fn rss_per_idle_stream(
    subject: &crate::subject::Subject,
    baseline: &crate::procfs::Sample,
    streams: usize,
    problems: &mut Vec<String>,
) -> Result<f64, String> {
    if let Err(count) = subject
        .wait_clients(std::time::Duration::from_secs(10), |n| n == streams as u64)
        .await
    {
        problems.push(format!("{count} of {streams} idle streams counted"));
    }
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let idle = subject.sample()?;
    Ok(idle.rss_bytes.saturating_sub(baseline.rss_bytes) as f64 / 1024.0 / streams as f64)
}

/// The first few of many problems, and how many there were.
pub fn summarize(problems: impl IntoIterator<Item = String>) -> Vec<String> {
    let all: Vec<String> = problems.into_iter().collect();
    let mut shown: Vec<String> = all.iter().take(3).cloned().collect();
    if all.len() > shown.len() {
        shown.push(format!("… and {} more", all.len() - shown.len()));
    }
    shown
}
