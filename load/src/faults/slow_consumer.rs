//! A client that opens a stream and never reads, while 1 KiB events are published: the server
//! must cut it off (not buffer without bound), keep everyone else on time, and let it resume.

use std::time::{Duration, Instant};

use conformance::wire::BodyEnd;

use crate::faults::{FaultCtx, Findings};
use crate::fleet::{Fleet, Leave, Tally, stamped_payload};
use crate::stats::{Spread, mib};
use crate::stream::{Stream, clock_ns};
use crate::subject::Subject;

const PAYLOAD: usize = 1024;
const OTHERS: usize = 100;
/// Publish rate: fast enough to fill the slow client's buffers quickly, well under what the
/// other clients can take.
const RATE: u64 = 2_000;
const RSS_LIMIT: u64 = 64 * 1024 * 1024;

pub async fn run(ctx: &FaultCtx, findings: &mut Findings) -> Result<String, String> {
    let calm_events = ctx.scale.pick(2_000, 400);
    let slow_events = ctx.scale.pick(20_000, 4_000);
    let subject = ctx.start(&[]).await?;
    let health = subject.health().await?;
    let (client_buffer, replay) = (health.config.client_buffer, health.config.replay_capacity);
    let others = Fleet::open(&subject, OTHERS, Duration::from_secs(30)).await?;

    // Latency with no slow client, for comparison.
    let first_id = publish_paced(&subject, calm_events, None).await?.0;
    let baseline_rss = subject.sample()?.rss_bytes;

    let mut slow = Stream::open(
        subject.address,
        "/events",
        &[],
        Some(4096),
        Duration::from_secs(10),
    )
    .await?;
    subject
        .wait_clients(Duration::from_secs(10), |n| n == OTHERS as u64 + 1)
        .await
        .map_err(|n| format!("the slow client was not counted ({n} clients)"))?;
    let (_, last_id, watch) = publish_paced(&subject, slow_events, Some(OTHERS as u64)).await?;
    let peak_rss = watch.peak_rss.max(subject.sample()?.rss_bytes);

    let total = (calm_events + slow_events) * OTHERS as u64;
    let complete = others.wait_delivered(total, Duration::from_secs(60)).await;
    let tallies = others.finish(Leave::Reset, Duration::from_secs(30)).await;

    // The slow client now reads what the server had queued for it, up to the end it was given.
    let mut slow_tally = Tally::default();
    let end = slow
        .read_to_end(Duration::from_secs(30), |event| {
            slow_tally.record(event, clock_ns())
        })
        .await;
    let slow_last = slow_tally.last_id.unwrap_or(0);
    let resumed = resume(&subject, slow_last, last_id).await;
    subject.stop().await;

    // Rules and figures.
    match watch.cut {
        Some((events, after)) => findings.figure(format!(
            "slow client cut off after {events} of {slow_events} events ({:.2} s; CLIENT_BUFFER {client_buffer})",
            after.as_secs_f64()
        )),
        None => findings.require(false, || {
            format!("the slow client was never cut off during {slow_events} events")
        }),
    }
    findings.require(end == Some(BodyEnd::Clean), || {
        format!("the slow client's stream did not end cleanly: {end:?}")
    });
    findings.figure(format!(
        "slow client had received ids up to {slow_last} ({} events) when its stream ended: {end:?}",
        slow_tally.received
    ));
    let growth = peak_rss.saturating_sub(baseline_rss);
    findings.figure(format!(
        "RSS {:.1} MiB before, peak {:.1} MiB (+{:.1} MiB)",
        mib(baseline_rss),
        mib(peak_rss),
        mib(growth)
    ));
    findings.require(growth <= RSS_LIMIT, || {
        format!("RSS grew by {:.1} MiB (limit 64 MiB)", mib(growth))
    });
    let bad: Vec<String> = tallies
        .iter()
        .filter(|t| !t.got_exactly(first_id, last_id))
        .map(Tally::describe)
        .collect();
    findings.require(complete && bad.is_empty() && tallies.len() == OTHERS, || {
        format!(
            "{} of {OTHERS} other clients did not get ids {first_id}..={last_id} exactly; first: {:?}",
            bad.len() + OTHERS.saturating_sub(tallies.len()),
            bad.first()
        )
    });
    let calm = calm_events as usize;
    let before = Spread::of_micros(
        tallies
            .iter()
            .flat_map(|t| t.latencies_us.iter().take(calm).copied())
            .collect(),
    );
    let during = Spread::of_micros(
        tallies
            .iter()
            .flat_map(|t| t.latencies_us.iter().skip(calm).copied())
            .collect(),
    );
    findings.figure(format!(
        "other clients' latency p50/p99: {:.2}/{:.2} ms without, {:.2}/{:.2} ms with the slow client",
        before.p50_ms, before.p99_ms, during.p50_ms, during.p99_ms
    ));
    let unchanged = during.p99_ms <= 2.0 * before.p99_ms + 5.0;
    if ctx.scale == crate::faults::Scale::Full {
        findings.require(unchanged, || {
            format!(
                "the others' p99 latency went from {:.2} ms to {:.2} ms",
                before.p99_ms, during.p99_ms
            )
        });
    }
    match resumed {
        Ok(line) => findings.figure(format!("{line} (REPLAY_CAPACITY {replay})")),
        Err(problem) => findings.require(false, || problem),
    }
    Ok(format!(
        "cut after {}; +{:.0} MiB; p99 {:.1}→{:.1} ms",
        watch
            .cut
            .map_or("never".to_owned(), |(events, _)| format!("{events} ev")),
        mib(growth),
        before.p99_ms,
        during.p99_ms
    ))
}

/// What was seen while publishing.
#[derive(Default)]
struct Watch {
    peak_rss: u64,
    /// Events published and time elapsed when the count fell to `others`.
    cut: Option<(u64, Duration)>,
}

/// Publishes `count` stamped 1 KiB events at [`RATE`]; with `others`, watches for the moment the
/// client count falls to it. Returns the first and last id.
async fn publish_paced(
    subject: &Subject,
    count: u64,
    others: Option<u64>,
) -> Result<(u64, u64, Watch), String> {
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / RATE as f64));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut watch = Watch::default();
    let (mut first, mut last) = (0, 0);
    let began = Instant::now();
    for k in 1..=count {
        ticker.tick().await;
        last = subject
            .publisher
            .publish("load", &stamped_payload(PAYLOAD))
            .await?;
        if first == 0 {
            first = last;
        }
        if let Some(others) = others
            && k % 100 == 0
        {
            watch.peak_rss = watch.peak_rss.max(subject.sample()?.rss_bytes);
            if watch.cut.is_none() && subject.health().await?.clients == others {
                watch.cut = Some((k, began.elapsed()));
            }
        }
    }
    Ok((first, last, watch))
}

/// Reconnects with `Last-Event-ID: seen` and checks the replay: a `gap` event when the missed
/// events are no longer all buffered, then every buffered event up to `last`, in order.
async fn resume(subject: &Subject, seen: u64, last: u64) -> Result<String, String> {
    let seen_text = seen.to_string();
    let mut stream = Stream::open(
        subject.address,
        "/events",
        &[("Last-Event-ID", &seen_text)],
        None,
        Duration::from_secs(10),
    )
    .await?;
    let mut tally = Tally::default();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while tally.last_id.unwrap_or(0) < last && tokio::time::Instant::now() < deadline {
        let read = tokio::time::timeout_at(deadline, stream.read(|e| tally.record(e, clock_ns())));
        if !matches!(read.await, Ok(crate::stream::Progress::Open)) {
            break;
        }
    }
    stream.abort();
    let first = tally.first_id.unwrap_or(0);
    let contiguous = tally.last_id == Some(last) && tally.missing == 0 && tally.duplicates == 0;
    let gap_needed = first > seen + 1;
    if !contiguous
        || (gap_needed && tally.gaps.len() != 1)
        || (!gap_needed && !tally.gaps.is_empty())
    {
        return Err(format!(
            "resuming from {seen}: expected {}ids up to {last} in order, got gaps {:?} and {}",
            if gap_needed {
                "one gap event, then "
            } else {
                ""
            },
            tally.gaps,
            tally.describe()
        ));
    }
    Ok(format!(
        "resumed from {seen}: {}ids {first}..={last} from the replay buffer",
        if gap_needed {
            format!("gap event {}, then ", tally.gaps[0])
        } else {
            String::new()
        }
    ))
}
