//! Connection attempts far beyond `MAX_CLIENTS`: every excess one gets 503 with `Retry-After`,
//! `/health` keeps answering quickly, and the clients already connected lose nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::faults::{FaultCtx, Findings, Scale};
use crate::fleet::{Fleet, Leave, Tally};
use crate::stream::Stream;
use crate::subject::Subject;

const CONCURRENCY: usize = 256;
const HEALTH_LIMIT: Duration = Duration::from_millis(500);

pub async fn run(ctx: &FaultCtx, findings: &mut Findings) -> Result<String, String> {
    let max_clients = ctx.scale.pick(500, 50);
    let attempts = ctx.scale.pick(20_000, 2_000);
    let max_text = max_clients.to_string();
    let subject = ctx.start(&[("MAX_CLIENTS", &max_text)]).await?;
    let fleet = Fleet::open(&subject, max_clients, Duration::from_secs(30)).await?;

    let flooding = Arc::new(AtomicBool::new(true));
    let health_watch = {
        let flooding = Arc::clone(&flooding);
        let base = subject.base.clone();
        tokio::spawn(async move { watch_health(&base, &flooding).await })
    };
    let publisher = {
        let flooding = Arc::clone(&flooding);
        let publisher = subject.publisher.clone();
        tokio::spawn(async move {
            let mut ids = Vec::new();
            while flooding.load(Ordering::Relaxed) {
                ids.push(publisher.publish("load", "during the flood").await?);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Ok::<_, String>(ids)
        })
    };

    let began = Instant::now();
    let answers = flood(&subject, attempts).await;
    let took = began.elapsed();
    flooding.store(false, Ordering::Relaxed);
    let ids = publisher.await.map_err(|e| e.to_string())??;
    let health = health_watch.await.map_err(|e| e.to_string())?;
    let last = *ids.last().ok_or("nothing was published during the flood")?;
    fleet
        .wait_delivered(
            ids.len() as u64 * max_clients as u64,
            Duration::from_secs(10),
        )
        .await;
    let tallies = fleet.finish(Leave::Reset, Duration::from_secs(10)).await;
    subject.stop().await;

    let refused_properly = answers.iter().filter(|a| **a == Answer::Refused).count();
    findings.figure(format!(
        "{attempts} attempts beyond MAX_CLIENTS={max_clients} in {:.1} s: {refused_properly} got 503 with Retry-After, {} admitted, {} other answers, {} failed to connect",
        took.as_secs_f64(),
        answers.iter().filter(|a| **a == Answer::Admitted).count(),
        answers.iter().filter(|a| matches!(a, Answer::Other(_))).count(),
        answers.iter().filter(|a| **a == Answer::Failed).count(),
    ));
    findings.require(refused_properly == attempts, || {
        let odd = answers.iter().find(|a| **a != Answer::Refused);
        format!(
            "{} of {attempts} excess attempts did not get 503 with Retry-After (e.g. {odd:?})",
            attempts - refused_properly
        )
    });
    findings.figure(format!(
        "/health during the flood: {} polls, {} failed, slowest {:.0} ms",
        health.polls,
        health.failures,
        health.slowest.as_secs_f64() * 1000.0
    ));
    findings.require(health.failures == 0, || {
        format!("{} /health polls failed during the flood", health.failures)
    });
    if ctx.scale == Scale::Full {
        findings.require(health.slowest <= HEALTH_LIMIT, || {
            format!(
                "/health took {:.0} ms during the flood (limit {} ms)",
                health.slowest.as_secs_f64() * 1000.0,
                HEALTH_LIMIT.as_millis()
            )
        });
    }
    let first = ids[0];
    let bad: Vec<&Tally> = tallies
        .iter()
        .filter(|t| !t.got_exactly(first, last))
        .collect();
    findings.figure(format!(
        "{} events published during the flood; {} of {max_clients} connected clients got all of them",
        ids.len(),
        tallies.len() - bad.len()
    ));
    findings.require(bad.is_empty() && tallies.len() == max_clients, || {
        format!(
            "connected clients lost events: {:?}",
            bad.first().map(|t| t.describe())
        )
    });
    Ok(format!(
        "{refused_properly}/{attempts} 503; /health ≤ {:.0} ms",
        health.slowest.as_secs_f64() * 1000.0
    ))
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Answer {
    /// 503 with a whole-seconds `Retry-After` of at least 1.
    Refused,
    Admitted,
    Other(String),
    Failed,
}

async fn flood(subject: &Subject, attempts: usize) -> Vec<Answer> {
    let gate = Arc::new(Semaphore::new(CONCURRENCY));
    let mut tasks = JoinSet::new();
    for _ in 0..attempts {
        let permit = Arc::clone(&gate)
            .acquire_owned()
            .await
            .expect("never closed");
        let address = subject.address;
        tasks.spawn(async move {
            let opened = Stream::open(address, "/events", &[], None, Duration::from_secs(10)).await;
            drop(permit);
            let Ok(stream) = opened else {
                return Answer::Failed;
            };
            let retry_after = stream
                .head
                .header("retry-after")
                .and_then(|v| v.parse::<u64>().ok());
            let answer = match (stream.head.status, retry_after) {
                (503, Some(seconds)) if seconds >= 1 => Answer::Refused,
                (200, _) => Answer::Admitted,
                _ => Answer::Other(stream.head.describe()),
            };
            stream.abort();
            answer
        });
    }
    let mut answers = Vec::with_capacity(attempts);
    while let Some(joined) = tasks.join_next().await {
        answers.push(joined.unwrap_or(Answer::Failed));
    }
    answers
}

struct HealthWatch {
    polls: u64,
    failures: u64,
    slowest: Duration,
}

/// Polls `/health` every 50 ms on fresh connections (a flooded server must still accept them).
async fn watch_health(base: &str, flooding: &AtomicBool) -> HealthWatch {
    let http = conformance::target::http_client()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(5))
        .build()
        .expect("an HTTP client without TLS builds");
    let mut watch = HealthWatch {
        polls: 0,
        failures: 0,
        slowest: Duration::ZERO,
    };
    let url = format!("{base}/health");
    while flooding.load(Ordering::Relaxed) {
        let began = Instant::now();
        let ok = matches!(http.get(&url).send().await, Ok(r) if r.status() == 200);
        watch.polls += 1;
        watch.failures += u64::from(!ok);
        watch.slowest = watch.slowest.max(began.elapsed());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    watch
}
