//! SIGTERM with thousands of open streams: the process exits 0 within 2 s and every stream
//! ends with a complete chunked body — none reset, none cut mid-chunk.

use std::time::{Duration, Instant};

use conformance::wire::BodyEnd;

use crate::faults::{FaultCtx, Findings, Scale};
use crate::fleet::{Fleet, Leave};

const LIMIT: Duration = Duration::from_secs(2);

/// Streams open when the signal comes: the most any scenario holds at once.
pub fn streams(scale: Scale) -> usize {
    scale.pick(10_000, 1_000)
}

pub async fn run(ctx: &FaultCtx, findings: &mut Findings) -> Result<String, String> {
    let streams = streams(ctx.scale);
    let mut subject = ctx.start(&[]).await?;
    let fleet = Fleet::open(&subject, streams, Duration::from_secs(60)).await?;

    subject.terminate()?;
    let signalled = Instant::now();
    let status = subject.wait_exit(Duration::from_secs(10)).await;
    let took = signalled.elapsed();
    let tallies = fleet.finish(Leave::AwaitEnd, Duration::from_secs(10)).await;
    let clean = tallies
        .iter()
        .filter(|t| t.end == Some(BodyEnd::Clean))
        .count();
    let reset = tallies
        .iter()
        .filter(|t| t.end == Some(BodyEnd::Reset))
        .count();
    let truncated = tallies
        .iter()
        .filter(|t| t.end == Some(BodyEnd::Truncated))
        .count();

    findings.figure(format!(
        "{streams} streams; exit {status:?} {:.0} ms after SIGTERM",
        took.as_secs_f64() * 1000.0
    ));
    findings.figure(format!(
        "{clean} ended cleanly, {truncated} truncated, {reset} reset, {} still open",
        streams - clean - truncated - reset
    ));
    findings.require(status.is_some_and(|s| s.success()), || {
        format!("exit status {status:?} (expected 0)")
    });
    findings.require(took <= LIMIT, || {
        format!("exit took {:.2} s (limit 2 s)", took.as_secs_f64())
    });
    findings.require(clean == streams, || {
        format!(
            "{} of {streams} streams did not end cleanly",
            streams - clean
        )
    });
    if !findings.problems.is_empty() {
        findings.figure(format!("server output: {}", tail(&subject.output(), 600)));
    }
    Ok(format!(
        "exit 0 in {:.0} ms; {clean}/{streams} clean",
        took.as_secs_f64() * 1000.0
    ))
}

fn tail(text: &str, chars: usize) -> String {
    let skip = text.chars().count().saturating_sub(chars);
    text.chars().skip(skip).collect()
}
