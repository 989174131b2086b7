//! Connect/disconnect cycles by the ten thousand: nothing leaks — the client count returns to
//! 0, and the open descriptors and RSS return to their baseline (within 10 %).

use std::time::{Duration, Instant};

use crate::bench::churn::cycles;
use crate::faults::{FaultCtx, Findings};
use crate::stats::mib;

/// Cycles per second. A leak shows at any rate; the rate decides how many streams a server
/// that notices a vanished client only at its next write (rocket, up to `HEARTBEAT_MS` later)
/// holds at once, and so its peak memory.
const RATE: u64 = 2_000;
/// Cycles run first, at the same rate, so that the baseline includes one-time allocations
/// (runtime threads, allocator arenas) and the memory of the streams in flight at that rate.
const WARM_UP: u64 = 4_000;
/// The cycles run in this many equal parts, RSS read after each: a leak climbs part after part,
/// while memory an allocator keeps after a peak levels off.
const PARTS: u64 = 5;

pub async fn run(ctx: &FaultCtx, findings: &mut Findings) -> Result<String, String> {
    let count = ctx.scale.pick(50_000, 3_000);
    // The contract lets a server notice a vanished client as late as its next write (rocket
    // does): a one-second heartbeat bounds that for every server alike.
    let subject = ctx.start(&[("HEARTBEAT_MS", "1000")]).await?;
    let heartbeat = Duration::from_millis(subject.health().await?.config.heartbeat_ms);
    cycles(&subject, WARM_UP, Some(RATE)).await;
    let _ = subject.wait_clients(heartbeat * 2, |n| n == 0).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = subject.sample()?;

    let began = Instant::now();
    let (mut failed, mut first_error) = (0, None);
    let mut rss_path = vec![before.rss_bytes];
    for part in 0..PARTS {
        let (part_failed, part_error) = cycles(&subject, count / PARTS, Some(RATE)).await;
        failed += part_failed;
        first_error = first_error.or(part_error);
        if part + 1 < PARTS {
            rss_path.push(subject.sample()?.rss_bytes);
        }
    }
    let took = began.elapsed();
    let zero = subject
        .wait_clients(heartbeat + Duration::from_secs(2), |n| n == 0)
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = subject.sample()?;
    subject.stop().await;

    findings.figure(format!(
        "{count} cycles in {:.1} s ({:.0}/s, paced at {RATE}/s), {failed} failed",
        took.as_secs_f64(),
        count as f64 / took.as_secs_f64()
    ));
    findings.require(failed == 0, || {
        format!("{failed} cycles failed; the first: {first_error:?}")
    });
    match zero {
        Ok(waited) => findings.figure(format!(
            "client count back to 0 {:.0} ms after the last cycle",
            waited.as_secs_f64() * 1000.0
        )),
        Err(left) => findings.require(false, || {
            format!("{left} clients still counted {heartbeat:?} + 2 s after the last cycle")
        }),
    }
    let rss_growth = after.rss_bytes as f64 / before.rss_bytes as f64 - 1.0;
    findings.figure(format!(
        "RSS {} → {} KiB ({:+.1} %), open fds {} → {}",
        before.rss_bytes / 1024,
        after.rss_bytes / 1024,
        rss_growth * 100.0,
        before.open_fds,
        after.open_fds
    ));
    rss_path.push(after.rss_bytes);
    findings.figure(format!(
        "RSS before, then after each of the {PARTS} parts of the cycles (the last once the count is back to 0): {} MiB",
        rss_path
            .iter()
            .map(|bytes| format!("{:.1}", mib(*bytes)))
            .collect::<Vec<_>>()
            .join(" → ")
    ));
    findings.require(rss_growth <= 0.10, || {
        format!("RSS grew {:.1} % (limit 10 %)", rss_growth * 100.0)
    });
    findings.require(
        after.open_fds as f64 <= before.open_fds as f64 * 1.1,
        || format!("open fds {} → {}", before.open_fds, after.open_fds),
    );
    Ok(format!(
        "{count} cycles; RSS {:+.1} %; fds {}→{}",
        rss_growth * 100.0,
        before.open_fds,
        after.open_fds
    ))
}
