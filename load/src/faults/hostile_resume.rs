//! Hostile resume points: `GET /events` with `Last-Event-ID` headers and `lastEventId` query
//! parameters of 100 KiB, repeated 100 or 1,000 times, holding raw or percent-encoded
//! non-ASCII bytes, beyond 64 bits, negative, padded or hexadecimal. Each request is refused
//! (a 4xx or a close, where a size limit or a byte the framework rejects allows it), ignored
//! (a normal stream from the live end), or — for a decimal integer — honoured exactly as the
//! contract says; the process survives every one.
//!
//! Whether a stream replayed anything is told without waiting: after its head arrives, a
//! marker event is published, and everything the stream delivers up to the marker is the
//! replay.

use std::net::SocketAddr;
use std::time::Duration;

use conformance::checks::id_of;
use conformance::parser::{Block, LineKind};
use conformance::wire::{Connection, RawStream};
use serde_json::Value;

use crate::faults::{FaultCtx, Findings};
use crate::subject::Subject;

/// Events published before the cases, so that a resume point has something to replay.
const SEEDED: u64 = 8;
const WAIT: Duration = Duration::from_secs(5);
const KIB_100: usize = 100 * 1024;

/// What a case may do to the stream.
#[derive(Debug, Clone)]
enum Allowed {
    /// Not a decimal integer: the stream starts at the live end.
    Ignore,
    /// A decimal integer: exactly the events after it (after a `gap` event if they are gone).
    Honour(u64),
    /// Several values: ignored, or honoured as any one of them.
    IgnoreOrAnyOf(Vec<u64>),
}

struct Case {
    name: &'static str,
    /// The request target.
    target: String,
    /// Raw header lines, each ending in CRLF.
    headers: Vec<u8>,
    allowed: Allowed,
    /// Whether a 4xx or a close is also acceptable: huge or repeated values meet the
    /// framework's size limits, and raw non-ASCII bytes in a header may be refused outright.
    may_refuse: bool,
}

fn header_case(name: &'static str, value: &[u8], allowed: Allowed, may_refuse: bool) -> Case {
    let mut headers = b"Last-Event-ID: ".to_vec();
    headers.extend_from_slice(value);
    headers.extend_from_slice(b"\r\n");
    Case {
        name,
        target: "/events".to_owned(),
        headers,
        allowed,
        may_refuse,
    }
}

fn query_case(name: &'static str, query: String, allowed: Allowed, may_refuse: bool) -> Case {
    Case {
        name,
        target: format!("/events?{query}"),
        headers: Vec::new(),
        allowed,
        may_refuse,
    }
}

fn cases() -> Vec<Case> {
    use Allowed::{Honour, Ignore, IgnoreOrAnyOf};
    let digits = "1".repeat(KIB_100);
    // Printable, header-safe garbage.
    let garbage: String = (0..KIB_100)
        .map(|i| char::from(b"x!#$%&'*+-.^_`|~aZ9"[i % 19]))
        .collect();
    let repeated_headers = (1..=100).fold(Vec::new(), |mut lines, n| {
        lines.extend_from_slice(format!("Last-Event-ID: {n}\r\n").as_bytes());
        lines
    });
    let repeated_query: Vec<String> = (1..=1000).map(|n| format!("lastEventId={n}")).collect();
    vec![
        header_case("header: 100 KiB of digits", digits.as_bytes(), Ignore, true),
        header_case(
            "header: 100 KiB of garbage",
            garbage.as_bytes(),
            Ignore,
            true,
        ),
        Case {
            name: "header: 100 Last-Event-ID headers, 1 to 100",
            target: "/events".to_owned(),
            headers: repeated_headers,
            allowed: IgnoreOrAnyOf((1..=100).collect()),
            may_refuse: true,
        },
        header_case("header: raw UTF-8 é (0xC3 0xA9)", b"\xc3\xa9", Ignore, true),
        header_case("header: raw 0xFF", b"5\xff", Ignore, true),
        header_case(
            "header: 18446744073709551616 (2^64)",
            b"18446744073709551616",
            Ignore,
            false,
        ),
        header_case(
            "header: 18446744073709551615 (u64::MAX)",
            b"18446744073709551615",
            Honour(u64::MAX),
            false,
        ),
        header_case("header: -1", b"-1", Ignore, false),
        // HTTP strips whitespace around a field value (RFC 9110 §5.5): these are `5`.
        header_case("header: ' 5'", b" 5", Honour(5), false),
        header_case("header: '5 '", b"5 ", Honour(5), false),
        header_case("header: 0x10", b"0x10", Ignore, false),
        query_case("query: 5", "lastEventId=5".into(), Honour(5), false),
        query_case(
            "query: 100 KiB of digits",
            format!("lastEventId={digits}"),
            Ignore,
            true,
        ),
        query_case(
            "query: 100 KiB before lastEventId=3",
            format!("pad={}&lastEventId=3", "x".repeat(KIB_100)),
            Honour(3),
            true,
        ),
        query_case(
            "query: lastEventId 1,000 times, 1 to 1000",
            repeated_query.join("&"),
            IgnoreOrAnyOf((1..=1000).collect()),
            true,
        ),
        query_case(
            "query: percent-encoded é",
            "lastEventId=%C3%A9".into(),
            Ignore,
            false,
        ),
        query_case(
            "query: invalid percent-encoding",
            "lastEventId=%ZZ%FF%C3%".into(),
            Ignore,
            true,
        ),
        query_case(
            "query: 2^64",
            "lastEventId=18446744073709551616".into(),
            Ignore,
            false,
        ),
        query_case("query: -1", "lastEventId=-1".into(), Ignore, false),
        query_case("query: ' 5'", "lastEventId=%205".into(), Ignore, false),
        query_case("query: '5 '", "lastEventId=5%20".into(), Ignore, false),
        query_case("query: 0x10", "lastEventId=0x10".into(), Ignore, false),
    ]
}

/// What a stream delivered before the marker.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    /// Nothing: it started at the live end.
    Ignored,
    /// The events after this id (after a `gap` event when they were gone).
    Honoured(u64),
}

/// What the server did with a case.
#[derive(Debug)]
enum Outcome {
    Refused(String),
    Streamed(Seen),
}

pub async fn run(ctx: &FaultCtx, findings: &mut Findings) -> Result<String, String> {
    let subject = ctx.start(&[]).await?;
    let result = run_cases(&subject, findings).await;
    subject.stop().await;
    result
}

async fn run_cases(subject: &Subject, findings: &mut Findings) -> Result<String, String> {
    for n in 1..=SEEDED {
        subject.publisher.publish("seed", &n.to_string()).await?;
    }
    let mut published = SEEDED;
    let (mut refused, mut ignored, mut honoured) = (0, 0, 0);
    let cases = cases();
    for case in &cases {
        let outcome = try_case(subject, case, &mut published).await;
        match &outcome {
            Ok(Outcome::Refused(how)) => {
                refused += 1;
                findings.figure(format!("{}: refused ({how})", case.name));
                findings.require(case.may_refuse, || {
                    format!(
                        "{}: refused ({how}), but it must be {}",
                        case.name,
                        describe(&case.allowed)
                    )
                });
            }
            Ok(Outcome::Streamed(seen)) => {
                match seen {
                    Seen::Ignored => ignored += 1,
                    Seen::Honoured(_) => honoured += 1,
                }
                findings.figure(format!("{}: 200, {}", case.name, describe_seen(seen)));
                findings.require(allows(&case.allowed, seen), || {
                    format!(
                        "{}: {}, but it must be {}",
                        case.name,
                        describe_seen(seen),
                        describe(&case.allowed)
                    )
                });
            }
            Err(problem) => findings.require(false, || format!("{}: {problem}", case.name)),
        }
        if let Err(e) = subject.health().await {
            findings.require(false, || {
                format!(
                    "after {}: /health did not answer ({e}); the process may have crashed",
                    case.name
                )
            });
        }
    }
    let last_id = subject.health().await?.last_id;
    findings.require(last_id == published, || {
        format!("last_id is {last_id}, but only {published} events were published")
    });
    Ok(format!(
        "{} cases: {honoured} honoured, {ignored} ignored, {refused} refused",
        cases.len()
    ))
}

/// Opens the stream, publishes the marker once its head is in, and reads up to the marker.
async fn try_case(subject: &Subject, case: &Case, published: &mut u64) -> Result<Outcome, String> {
    let mut stream = match open(subject.address, case).await? {
        Opened::Stream(stream) => stream,
        Opened::Refused(how) => return Ok(Outcome::Refused(how)),
    };
    match stream.head.status {
        200 => {}
        status @ 400..=499 => return Ok(Outcome::Refused(status.to_string())),
        _ => return Err(format!("answered {}", stream.head.describe())),
    }
    let newest = *published;
    let marker = subject.publisher.publish("marker", "m").await?;
    *published += 1;
    let (blocks, found) = stream
        .read_until(WAIT, |block| {
            block.event.as_ref().and_then(id_of) == Some(marker)
        })
        .await?;
    if !found {
        return Err(format!(
            "the marker event {marker} did not arrive within {WAIT:?}; body so far {}",
            stream.body_sample()
        ));
    }
    let blocks: Vec<&Block> = blocks.iter().map(|timed| &timed.block).collect();
    let seen = replay_of(&blocks, newest, marker)
        .map_err(|e| format!("{e}; body {}", stream.body_sample()))?;
    Ok(Outcome::Streamed(seen))
}

enum Opened {
    Stream(Box<RawStream>),
    /// Closed or reset before a response head.
    Refused(String),
}

/// Sends the case's request line and headers byte for byte, then `Host` and the blank line,
/// and lets [`RawStream`] read the response.
async fn open(address: SocketAddr, case: &Case) -> Result<Opened, String> {
    let mut connection = Connection::open(address, None).await?;
    let mut request = format!(
        "GET {} HTTP/1.1\r\nAccept: text/event-stream\r\n",
        case.target
    )
    .into_bytes();
    request.extend_from_slice(&case.headers);
    request.extend_from_slice(format!("Host: {address}\r\n\r\n").as_bytes());
    let sent = std::time::Instant::now();
    // A server may refuse (and close) before the last of 100 KiB is written.
    match tokio::time::timeout(WAIT, connection.send(&request)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Ok(Opened::Refused(format!("closed while sending: {e}"))),
        Err(_) => {
            return Err(format!(
                "the server stopped reading the request for {WAIT:?}"
            ));
        }
    }
    // The outer limit goes first, so that RawStream's errors all mean the connection ended.
    let response = RawStream::response(connection, "GET", sent, 2 * WAIT);
    match tokio::time::timeout(WAIT, response).await {
        Ok(Ok(stream)) => Ok(Opened::Stream(Box::new(stream))),
        Ok(Err(e)) => Ok(Opened::Refused(format!("closed: {e}"))),
        Err(_) => Err(format!("no response head within {WAIT:?}")),
    }
}

/// Reads the blocks up to the marker: the `retry:` block first, then either only the marker
/// (nothing replayed), or the events after some N up to the marker with no gap or duplicate,
/// after one `gap` event for N when N was beyond `newest`.
fn replay_of(blocks: &[&Block], newest: u64, marker: u64) -> Result<Seen, String> {
    let retry_first = blocks.first().is_some_and(|b| {
        b.event.is_none()
            && matches!(&b.lines[..], [line] if matches!(&line.kind, LineKind::Field { name, .. } if name == "retry"))
    });
    if !retry_first {
        return Err("the stream did not start with a retry-only block".into());
    }
    let events: Vec<_> = blocks[1..]
        .iter()
        .filter_map(|b| b.event.as_ref())
        .collect();
    let (gap, events) = match events.split_first() {
        Some((first, rest)) if first.event_type == "gap" => (Some(*first), rest),
        _ => (None, &events[..]),
    };
    let ids: Vec<Option<u64>> = events.iter().map(|e| id_of(e)).collect();
    let first = ids.first().copied().flatten().unwrap_or(0);
    let consecutive = ids
        .iter()
        .enumerate()
        .all(|(k, id)| *id == Some(first + k as u64));
    if !consecutive || ids.last() != Some(&Some(marker)) {
        return Err(format!(
            "ids {ids:?} are not consecutive up to the marker {marker}"
        ));
    }
    match gap {
        None if first == marker => Ok(Seen::Ignored),
        None => Ok(Seen::Honoured(first - 1)),
        Some(gap) => {
            let data: Value = serde_json::from_str(&gap.data)
                .map_err(|e| format!("gap data {:?} is not JSON: {e}", gap.data))?;
            let asked = data.get("last_event_id").and_then(Value::as_u64);
            match asked {
                Some(n)
                    if n > newest
                        && first == 1
                        && data.get("oldest_id") == Some(&Value::from(1)) =>
                {
                    Ok(Seen::Honoured(n))
                }
                _ => Err(format!(
                    "a gap event {} (newest id {newest}) followed by ids from {first}",
                    gap.data
                )),
            }
        }
    }
}

fn allows(allowed: &Allowed, seen: &Seen) -> bool {
    match (allowed, seen) {
        (Allowed::Ignore | Allowed::IgnoreOrAnyOf(_), Seen::Ignored) => true,
        (Allowed::Honour(n), Seen::Honoured(m)) => n == m,
        (Allowed::IgnoreOrAnyOf(values), Seen::Honoured(m)) => values.contains(m),
        _ => false,
    }
}

fn describe(allowed: &Allowed) -> String {
    match allowed {
        Allowed::Ignore => "ignored".to_owned(),
        Allowed::Honour(n) => format!("honoured as {n}"),
        Allowed::IgnoreOrAnyOf(values) => format!(
            "ignored or honoured as one of {}..={}",
            values.first().unwrap_or(&0),
            values.last().unwrap_or(&0)
        ),
    }
}

fn describe_seen(seen: &Seen) -> String {
    match seen {
        Seen::Ignored => "ignored (live events only)".to_owned(),
        Seen::Honoured(n) => format!("honoured as {n}"),
    }
}
