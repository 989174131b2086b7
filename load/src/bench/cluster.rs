//! The shared event log's cost: instances × clients on one redis-server, events published through
//! the first instance at a fixed rate and delivered by every instance — against the same number
//! of processes on the memory log, each with as many clients and its own publications at the
//! same rate, so that the machine carries the same deliveries with the same processes and only
//! the log differs.
//!
//! Figures: publish-to-delivery latency on the *other* instances (the event went through Redis
//! and their readers), server CPU per million deliveries (all instances together), and Redis's own
//! CPU per event. Targets (docs/benchmarks/README.md): CPU per delivery within 15 % of the memory
//! log's, and p99 no worse than twice the memory log's.

use std::path::PathBuf;
use std::time::Duration;

use redis_fixture::RedisServer;
use serde::{Deserialize, Serialize};

use crate::fleet::{Fleet, Leave, Tally, stamped_payload};
use crate::procfs::Sample;
use crate::stats::Spread;
use crate::subject::Subject;

/// CPU per delivery on the shared log, as a multiple of the memory log's.
pub const CPU_RATIO: super::Target = super::Target {
    limit: 1.15,
    strictly_below: false,
};
/// Cross-instance p99 as a multiple of the single process's.
pub const P99_RATIO: super::Target = super::Target {
    limit: 2.0,
    strictly_below: false,
};

/// A publication rate and the clients each instance holds at it.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Load {
    pub rate: u64,
    pub clients_per_instance: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClusterSizes {
    pub instances: usize,
    pub loads: Vec<Load>,
    pub seconds: u64,
    pub payload_bytes: usize,
}

impl ClusterSizes {
    /// 3 × 1,000 clients at 100 events/s; at 1,000 events/s, 3 × 100 clients: 3 × 1,000 would
    /// be 3 million deliveries a second, more than this 2-core machine (which also runs the
    /// clients) can carry with one process, let alone three.
    pub fn full() -> Self {
        Self {
            instances: 3,
            loads: vec![
                Load {
                    rate: 100,
                    clients_per_instance: 1000,
                },
                Load {
                    rate: 1000,
                    clients_per_instance: 100,
                },
            ],
            seconds: 10,
            payload_bytes: 64,
        }
    }

    pub fn quick() -> Self {
        Self {
            instances: 3,
            loads: vec![Load {
                rate: 100,
                clients_per_instance: 200,
            }],
            seconds: 2,
            payload_bytes: 64,
        }
    }

    /// The most streams open at once.
    pub fn most_streams(&self) -> usize {
        self.loads
            .iter()
            .map(|l| l.clients_per_instance * self.instances)
            .max()
            .unwrap_or(0)
    }
}

/// One rate: the memory log's single process, then the cluster.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RateFigures {
    pub rate: u64,
    pub clients_per_instance: usize,
    pub events: u64,
    /// The memory-log processes' deliveries.
    pub single_latency: Spread,
    pub single_cpu_s_per_million: f64,
    /// On the instances that did not publish.
    pub cross_latency: Spread,
    /// On the instance that published (its events, too, come back through the log).
    pub local_latency: Spread,
    pub cluster_cpu_s_per_million: f64,
    /// Redis's CPU per event published, in microseconds.
    pub redis_cpu_us_per_event: f64,
    pub problems: Vec<String>,
}

impl RateFigures {
    pub fn cpu_ratio(&self) -> f64 {
        self.cluster_cpu_s_per_million / self.single_cpu_s_per_million
    }

    pub fn p99_ratio(&self) -> f64 {
        self.cross_latency.p99_ms / self.single_latency.p99_ms
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Figures {
    pub frameworks: Vec<String>,
    pub sizes: ClusterSizes,
    pub rates: Vec<RateFigures>,
}

/// Runs the cluster benchmark with `binaries` as the instances (cycled if fewer).
pub async fn run(
    binaries: &[PathBuf],
    sizes: &ClusterSizes,
    log: &impl Fn(&str),
) -> Result<Figures, String> {
    let instances: Vec<&PathBuf> = binaries.iter().cycle().take(sizes.instances).collect();
    let frameworks = instances
        .iter()
        .map(|b| crate::subject::framework_of(b))
        .collect();
    let mut rates = Vec::new();
    for &Load {
        rate,
        clients_per_instance: clients,
    } in &sizes.loads
    {
        let mut figures = RateFigures {
            rate,
            clients_per_instance: clients,
            events: rate * sizes.seconds,
            ..RateFigures::default()
        };
        log(&format!(
            "memory log: {} × {clients} clients at {rate} ev/s each",
            sizes.instances
        ));
        let mut alone = Vec::new();
        for binary in &instances {
            alone.push(Subject::start(binary, &[]).await?);
        }
        let members: Vec<&Subject> = alone.iter().collect();
        let measured =
            publish_and_measure(&members, None, sizes, clients, rate, &mut figures).await?;
        figures.single_latency = Spread::of_micros(measured.all_micros);
        figures.single_cpu_s_per_million = measured.cpu_s_per_million;
        for subject in alone {
            subject.stop().await;
        }

        log(&format!(
            "shared log: {} × {clients} clients at {rate} ev/s",
            sizes.instances
        ));
        let redis = RedisServer::start()?;
        let url = redis.url();
        let mut subjects = Vec::new();
        for binary in &instances {
            subjects.push(Subject::start(binary, &[("EVENT_LOG", &url)]).await?);
        }
        let members: Vec<&Subject> = subjects.iter().collect();
        let measured =
            publish_and_measure(&members, Some(&redis), sizes, clients, rate, &mut figures).await?;
        figures.local_latency = measured.latency[0];
        figures.cross_latency = Spread::of_micros(measured.cross_micros);
        figures.cluster_cpu_s_per_million = measured.cpu_s_per_million;
        figures.redis_cpu_us_per_event = measured.redis_cpu_us_per_event;
        for subject in subjects {
            subject.stop().await;
        }
        drop(redis);
        log(&format!(
            "  at {rate} ev/s: single p99 {:.2} ms, {:.2} CPU s/M; cluster cross p99 {:.2} ms, {:.2} CPU s/M ({:.2}×), redis {:.1} µs/event{}",
            figures.single_latency.p99_ms,
            figures.single_cpu_s_per_million,
            figures.cross_latency.p99_ms,
            figures.cluster_cpu_s_per_million,
            figures.cpu_ratio(),
            figures.redis_cpu_us_per_event,
            if figures.problems.is_empty() {
                String::new()
            } else {
                format!("; problems: {:?}", figures.problems)
            }
        ));
        rates.push(figures);
    }
    Ok(Figures {
        frameworks,
        sizes: sizes.clone(),
        rates,
    })
}

struct Measured {
    /// Per member, the latency of its deliveries.
    latency: Vec<Spread>,
    /// Every delivery's latency.
    all_micros: Vec<u32>,
    /// Every delivery's latency on members other than the first.
    cross_micros: Vec<u32>,
    cpu_s_per_million: f64,
    redis_cpu_us_per_event: f64,
}

/// Opens the clients on every member and publishes at `rate`: through the first member when they
/// share a log (`redis`), to each member when each has its own; then measures.
async fn publish_and_measure(
    members: &[&Subject],
    redis: Option<&RedisServer>,
    sizes: &ClusterSizes,
    clients: usize,
    rate: u64,
    figures: &mut RateFigures,
) -> Result<Measured, String> {
    let mut fleets = Vec::new();
    for member in members {
        fleets.push(Fleet::open(member, clients, Duration::from_secs(60)).await?);
    }
    let events = rate * sizes.seconds;
    let cpu_of = |members: &[&Subject]| -> Result<Duration, String> {
        members
            .iter()
            .map(|m| m.sample().map(|s| s.cpu))
            .sum::<Result<Duration, String>>()
    };
    let redis_cpu = || -> Result<Duration, String> {
        match redis.and_then(RedisServer::pid) {
            Some(pid) => Sample::read(pid).map(|s| s.cpu),
            None => Ok(Duration::ZERO),
        }
    };
    let (cpu_before, redis_before) = (cpu_of(members)?, redis_cpu()?);
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let publishers: Vec<&Subject> = match redis {
        Some(_) => vec![members[0]],
        None => members.to_vec(),
    };
    // The ids each member's clients must get: the shared log's, or each process's own.
    let mut span: Vec<(Option<u64>, u64)> = vec![(None, 0); publishers.len()];
    for _ in 0..events {
        ticker.tick().await;
        let sent = futures_util::future::join_all(publishers.iter().map(|p| async move {
            let payload = stamped_payload(sizes.payload_bytes);
            p.publisher.publish("load", &payload).await
        }))
        .await;
        for ((first, last), id) in span.iter_mut().zip(sent) {
            *last = id?;
            first.get_or_insert(*last);
        }
    }
    let expected = events * clients as u64;
    for (i, fleet) in fleets.iter().enumerate() {
        if !fleet
            .wait_delivered(expected, Duration::from_secs(60))
            .await
        {
            figures.problems.push(format!(
                "instance {i}: {} of {expected} deliveries arrived",
                fleet.delivered.load(std::sync::atomic::Ordering::Relaxed)
            ));
        }
    }
    let deliveries = (expected * members.len() as u64) as f64;
    let cpu = (cpu_of(members)? - cpu_before).as_secs_f64();
    let redis_spent = (redis_cpu()? - redis_before).as_secs_f64();
    let mut latency = Vec::new();
    let mut cross_micros = Vec::new();
    let mut all_micros = Vec::new();
    for (i, fleet) in fleets.into_iter().enumerate() {
        let (first, last) = span[i % span.len()];
        let first = first.unwrap_or(1);
        let tallies: Vec<Tally> = fleet.finish(Leave::Reset, Duration::from_secs(30)).await;
        let wrong = tallies
            .iter()
            .filter(|t| !t.got_exactly(first, last))
            .count();
        if wrong > 0 {
            figures.problems.push(format!(
                "instance {i}: {wrong} clients did not get exactly ids {first}..={last}"
            ));
        }
        let micros: Vec<u32> = tallies
            .iter()
            .flat_map(|t| t.latencies_us.iter().copied())
            .collect();
        if i > 0 {
            cross_micros.extend_from_slice(&micros);
        }
        all_micros.extend_from_slice(&micros);
        latency.push(Spread::of_micros(micros));
    }
    Ok(Measured {
        latency,
        all_micros,
        cross_micros,
        cpu_s_per_million: cpu / (deliveries / 1_000_000.0),
        redis_cpu_us_per_event: redis_spent * 1e6 / events as f64,
    })
}

/// The Markdown section for docs/benchmarks/cluster.md.
pub fn markdown(figures: &Figures) -> String {
    let mut out = format!(
        "{} instances ({}) on one redis-server (`--appendfsync always`), {}-byte events published through the first instance for {} s at each rate; the baseline is as many processes of the same server on the memory log, each with as many clients and its own events at the same rate (the same deliveries on the same processes; only the log differs). Latency is measured on the instances that did not publish (the event went through Redis and their readers).\n\n",
        figures.sizes.instances,
        figures.frameworks.join(", "),
        figures.sizes.payload_bytes,
        figures.sizes.seconds,
    );
    out.push_str(&format!(
        "| rate | clients per instance | memory log p50 / p99 | cross-instance p50 / p99 | p99 ratio {} | memory log CPU s per million | shared log CPU s per million | CPU ratio {} | Redis CPU per event | problems |\n|---|---|---|---|---|---|---|---|---|---|\n",
        P99_RATIO.bracket("×"),
        CPU_RATIO.bracket("×")
    ));
    for rate in &figures.rates {
        let mark = |target: super::Target, value: f64| {
            if target.met_by(value) { "✅" } else { "❌" }
        };
        out.push_str(&format!(
            "| {} ev/s | {} | {:.2} / {:.2} ms | {:.2} / {:.2} ms | {} {:.2}× | {:.2} | {:.2} | {} {:.2}× | {:.1} µs | {} |\n",
            rate.rate,
            rate.clients_per_instance,
            rate.single_latency.p50_ms,
            rate.single_latency.p99_ms,
            rate.cross_latency.p50_ms,
            rate.cross_latency.p99_ms,
            mark(P99_RATIO, rate.p99_ratio()),
            rate.p99_ratio(),
            rate.single_cpu_s_per_million,
            rate.cluster_cpu_s_per_million,
            mark(CPU_RATIO, rate.cpu_ratio()),
            rate.cpu_ratio(),
            rate.redis_cpu_us_per_event,
            if rate.problems.is_empty() { "none".to_owned() } else { rate.problems.join("; ") },
        ));
    }
    out
}
