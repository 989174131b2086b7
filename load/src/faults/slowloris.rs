//! Slowloris: many connections trickle a request head one byte every half second, and one
//! sends a 1 MiB header at once. The server must cut the tricklers off (a request-head
//! timeout) and refuse the huge header (a size limit), while an open event stream still gets
//! every event published meanwhile and `/health` answers every poll.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sse_core::REQUEST_HEAD_TIMEOUT;
use tokio::task::JoinSet;

use super::hostile_trigger::{RawConnection, Reply};
use crate::faults::{FaultCtx, Findings};
use crate::fleet::{Fleet, Leave};
use crate::subject::Subject;

/// Slack on top of [`REQUEST_HEAD_TIMEOUT`] before a trickler counts as never cut off.
const SLACK: Duration = Duration::from_secs(5);
const TRICKLE_EVERY: Duration = Duration::from_millis(500);
const BIG_HEADER: usize = 1024 * 1024;
/// How soon the 1 MiB header must be refused.
const BIG_HEADER_LIMIT: Duration = Duration::from_secs(5);
const PUBLISH_EVERY: Duration = Duration::from_millis(50);
const POLL_EVERY: Duration = Duration::from_millis(250);

/// What became of one trickling connection that connected.
#[derive(Debug, Clone, Copy)]
struct Trickled {
    /// When the server closed it, from the first byte sent; `None`: still open at the limit.
    cut_after: Option<Duration>,
    /// The status the server answered before closing, if any (a 408, say).
    status: Option<u16>,
}

/// What the background clients saw while the attack went on.
#[derive(Debug, Default)]
struct Background {
    /// Events published (each answered 202).
    published: u64,
    publish_errors: Vec<String>,
    polls: u64,
    failed_polls: Vec<String>,
    slowest_poll: Duration,
}

pub async fn run(ctx: &FaultCtx, findings: &mut Findings) -> Result<String, String> {
    let tricklers = ctx.scale.pick(200, 20);
    let subject = ctx.start(&[]).await?;
    let watcher = match Fleet::open(&subject, 1, Duration::from_secs(10)).await {
        Ok(watcher) => watcher,
        Err(error) => {
            subject.stop().await;
            return Err(format!("the watching event stream did not open: {error}"));
        }
    };

    let attack_over = AtomicBool::new(false);
    let ((trickled, big), background) = tokio::join!(
        async {
            let attack = tokio::join!(
                trickle_all(subject.address, tricklers),
                big_header(subject.address)
            );
            attack_over.store(true, Ordering::Relaxed);
            attack
        },
        background(&subject, &attack_over)
    );

    let published = background.published;
    watcher
        .wait_delivered(published, Duration::from_secs(5))
        .await;
    let tally = watcher
        .finish(Leave::Reset, Duration::from_secs(5))
        .await
        .pop()
        .unwrap_or_default();
    let last_id = subject.health().await.map(|h| h.last_id);
    subject.stop().await;

    let unconnected: Vec<&String> = trickled.iter().filter_map(|t| t.as_ref().err()).collect();
    findings.require(unconnected.is_empty(), || {
        format!(
            "{} of {tricklers} trickling connections could not connect, first: {}",
            unconnected.len(),
            unconnected[0]
        )
    });
    let trickled: Vec<Trickled> = trickled.into_iter().filter_map(Result::ok).collect();
    let cut: Vec<Duration> = trickled.iter().filter_map(|t| t.cut_after).collect();
    let slowest_cut = cut.iter().max().copied().unwrap_or_default();
    let answered: Vec<u16> = trickled.iter().filter_map(|t| t.status).collect();
    let when = match cut.iter().min() {
        Some(first) => format!(
            ", after {:.1}–{:.1} s",
            first.as_secs_f64(),
            slowest_cut.as_secs_f64()
        ),
        None => String::new(),
    };
    let how = match answered.first() {
        Some(status) => format!("{} answered (e.g. {status}) first", answered.len()),
        None => "none answered first".to_owned(),
    };
    findings.figure(format!(
        "{} of {} trickling connections cut off{when}; {how}",
        cut.len(),
        trickled.len(),
    ));
    findings.require(cut.len() == trickled.len(), || {
        format!(
            "{} of {} trickling connections were still open {} s after their first byte",
            trickled.len() - cut.len(),
            trickled.len(),
            (REQUEST_HEAD_TIMEOUT + SLACK).as_secs()
        )
    });
    let (big_reply, big_took) = big;
    findings.figure(format!(
        "1 MiB header: {} after {:.2} s",
        big_reply.describe(),
        big_took.as_secs_f64()
    ));
    let refused = match &big_reply {
        Reply::Answer(response) => [400, 413, 431].contains(&response.status),
        Reply::Closed => true,
        Reply::Silent => false,
    };
    findings.require(refused && big_took <= BIG_HEADER_LIMIT, || {
        format!(
            "1 MiB header: expected 431, 400, 413 or a close within {} s, got {} after {:.2} s",
            BIG_HEADER_LIMIT.as_secs(),
            big_reply.describe(),
            big_took.as_secs_f64()
        )
    });
    findings.require(background.publish_errors.is_empty(), || {
        format!(
            "publishing failed during the attack: {:?}",
            background.publish_errors.first()
        )
    });
    findings.figure(format!(
        "watching stream: {published} events published, got {}",
        tally.describe()
    ));
    findings.require(published > 0 && tally.got_exactly(1, published), || {
        format!(
            "the watching stream did not get ids 1..={published} exactly: {}",
            tally.describe()
        )
    });
    findings.figure(format!(
        "/health: {} polls, {} failed, slowest {:.1} ms",
        background.polls,
        background.failed_polls.len(),
        background.slowest_poll.as_secs_f64() * 1000.0
    ));
    findings.require(background.failed_polls.is_empty(), || {
        format!(
            "{} of {} /health polls failed, first: {:?}",
            background.failed_polls.len(),
            background.polls,
            background.failed_polls.first()
        )
    });
    findings.require(last_id == Ok(published), || {
        format!("last_id is {last_id:?} after {published} events were published")
    });
    Ok(format!(
        "{}/{tricklers} cut{when}; 1 MiB: {}; {}/{published} delivered",
        cut.len(),
        big_reply.describe(),
        tally.received
    ))
}

/// Runs `count` tricklers at once and collects what became of each (or why it could not
/// connect).
async fn trickle_all(address: SocketAddr, count: usize) -> Vec<Result<Trickled, String>> {
    let mut tasks: JoinSet<_> = (0..count).map(|_| trickle(address)).collect();
    let mut results = Vec::with_capacity(count);
    while let Some(joined) = tasks.join_next().await {
        results.extend(joined.ok());
    }
    results
}

/// Sends a request line and `Host` at once, then one byte of a header line every
/// [`TRICKLE_EVERY`], never ending the head, until the server closes the connection or
/// [`REQUEST_HEAD_TIMEOUT`] + [`SLACK`] has passed.
async fn trickle(address: SocketAddr) -> Result<Trickled, String> {
    let mut result = Trickled {
        cut_after: None,
        status: None,
    };
    let mut connection = RawConnection::open(address).await?;
    let began = Instant::now();
    let limit = REQUEST_HEAD_TIMEOUT + SLACK;
    let start = format!("GET /events HTTP/1.1\r\nHost: {address}\r\nX-Trickle: ");
    let mut sent = connection.send(start.as_bytes(), limit).await;
    while sent && began.elapsed() < limit {
        // Waiting for a reply is the pause between two bytes.
        match connection.reply(TRICKLE_EVERY).await {
            Reply::Silent => sent = connection.send(b"a", limit).await,
            Reply::Closed => break,
            Reply::Answer(response) => {
                result.status = Some(response.status);
                let left = limit.saturating_sub(began.elapsed());
                if !connection.closed_within(left).await {
                    return Ok(result);
                }
                break;
            }
        }
    }
    if began.elapsed() < limit {
        result.cut_after = Some(began.elapsed());
    }
    Ok(result)
}

/// Sends a request with a 1 MiB header in one write; returns the reply and when it came.
async fn big_header(address: SocketAddr) -> (Reply, Duration) {
    let began = Instant::now();
    let Ok(mut connection) = RawConnection::open(address).await else {
        return (Reply::Closed, began.elapsed());
    };
    let mut request = format!("GET /health HTTP/1.1\r\nHost: {address}\r\nX-Big: ").into_bytes();
    request.resize(request.len() + BIG_HEADER, b'a');
    request.extend_from_slice(b"\r\n\r\n");
    // A server may answer and close before it has read it all: the reply is what counts.
    connection.send(&request, BIG_HEADER_LIMIT).await;
    let left = BIG_HEADER_LIMIT.saturating_sub(began.elapsed());
    let reply = connection.reply(left + Duration::from_secs(1)).await;
    (reply, began.elapsed())
}

/// Publishes every [`PUBLISH_EVERY`] and polls `/health` every [`POLL_EVERY`] until `over`.
async fn background(subject: &Subject, over: &AtomicBool) -> Background {
    let mut seen = Background::default();
    let mut publish = tokio::time::interval(PUBLISH_EVERY);
    let mut poll = tokio::time::interval(POLL_EVERY);
    while !over.load(Ordering::Relaxed) {
        tokio::select! {
            _ = publish.tick() => match subject.publisher.publish("during", "slowloris").await {
                Ok(_) => seen.published += 1,
                Err(e) => seen.publish_errors.push(e),
            },
            _ = poll.tick() => {
                let asked = Instant::now();
                seen.polls += 1;
                match subject.health().await {
                    Ok(_) => seen.slowest_poll = seen.slowest_poll.max(asked.elapsed()),
                    Err(e) => seen.failed_polls.push(e),
                }
            }
        }
    }
    seen
}
