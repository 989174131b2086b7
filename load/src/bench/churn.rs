//! Churn: connect, read the head, vanish (connection reset), many times over; then the client
//! count, open descriptors and memory must come back to where they were.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::bench::Sizes;
use crate::stream::Stream;
use crate::subject::Subject;

/// Cycles run first so that one-time allocations (runtime, allocator arenas) are in the baseline.
const WARM_UP: u64 = 1_000;
const CONCURRENCY: usize = 64;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Figures {
    pub cycles: u64,
    pub cycles_per_s: f64,
    pub failed_cycles: u64,
    /// From the last disconnect to `/health` counting 0.
    pub back_to_zero_ms: Option<f64>,
    pub rss_before_kib: u64,
    pub rss_after_kib: u64,
    pub fds_before: u64,
    pub fds_after: u64,
    pub problems: Vec<String>,
}

/// Runs `count` connect/disconnect cycles, `CONCURRENCY` at a time and at most `rate` per second
/// when given; returns how many failed and the first failure.
pub async fn cycles(subject: &Subject, count: u64, rate: Option<u64>) -> (u64, Option<String>) {
    let mut pace = rate.map(|rate| {
        let mut pace = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
        pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        pace
    });
    let gate = Arc::new(Semaphore::new(CONCURRENCY));
    let mut tasks = JoinSet::new();
    let mut failed = 0;
    let mut first_error = None;
    let mut note = |result: Result<Result<(), String>, tokio::task::JoinError>| {
        if let Ok(Err(e)) | Err(e) = result.map_err(|e| e.to_string()) {
            failed += 1;
            first_error.get_or_insert(e);
        }
    };
    for _ in 0..count {
        if let Some(pace) = &mut pace {
            pace.tick().await;
        }
        let permit = Arc::clone(&gate)
            .acquire_owned()
            .await
            .expect("never closed");
        let address = subject.address;
        tasks.spawn(async move {
            let stream =
                Stream::open(address, "/events", &[], None, Duration::from_secs(10)).await?;
            drop(permit);
            if stream.head.status != 200 {
                return Err(format!("GET /events answered {}", stream.head.describe()));
            }
            stream.abort();
            Ok(())
        });
        while let Some(result) = tasks.try_join_next() {
            note(result);
        }
    }
    while let Some(result) = tasks.join_next().await {
        note(result);
    }
    (failed, first_error)
}

pub async fn run(binary: &Path, sizes: &Sizes, log: &impl Fn(&str)) -> Result<Figures, String> {
    let subject = Subject::start(binary, &[]).await?;
    let mut figures = Figures {
        cycles: sizes.churn_cycles,
        ..Figures::default()
    };
    cycles(&subject, WARM_UP, None).await;
    let _ = subject
        .wait_clients(Duration::from_secs(30), |n| n == 0)
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = subject.sample()?;

    let began = Instant::now();
    let (failed, first_error) = cycles(&subject, sizes.churn_cycles, None).await;
    let took = began.elapsed();
    figures.cycles_per_s = sizes.churn_cycles as f64 / took.as_secs_f64();
    figures.failed_cycles = failed;
    if let Some(error) = first_error {
        figures
            .problems
            .push(format!("{failed} cycles failed, the first: {error}"));
    }
    let ended = Instant::now();
    match subject
        .wait_clients(Duration::from_secs(30), |n| n == 0)
        .await
    {
        Ok(_) => figures.back_to_zero_ms = Some(ended.elapsed().as_secs_f64() * 1000.0),
        Err(count) => figures.problems.push(format!(
            "{count} clients still counted 30 s after the churn"
        )),
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = subject.sample()?;
    figures.rss_before_kib = before.rss_bytes / 1024;
    figures.rss_after_kib = after.rss_bytes / 1024;
    figures.fds_before = before.open_fds;
    figures.fds_after = after.open_fds;
    log(&format!(
        "  {} cycles in {:.1} s ({:.0}/s); RSS {} → {} KiB, fds {} → {}",
        sizes.churn_cycles,
        took.as_secs_f64(),
        figures.cycles_per_s,
        figures.rss_before_kib,
        figures.rss_after_kib,
        figures.fds_before,
        figures.fds_after
    ));
    subject.stop().await;
    Ok(figures)
}
