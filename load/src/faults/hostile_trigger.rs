//! Hostile `POST /trigger` bodies, sent byte for byte: invalid UTF-8, JSON nested 10,000 deep,
//! 10,000-digit numbers, repeated members, a body that never finishes and a `Content-Length`
//! shorter than the body. Each gets the contract's JSON error (or, for the body that never
//! finishes, a 408, a close or silence until the client gives up), the process survives every
//! one of them, and none publishes anything.
//!
//! The exact-bytes client here ([`RawConnection`], a thin wrapper of the conformance suite's raw
//! client that reads one whole reply at a time), which slowloris uses too: reqwest would refuse
//! to send most of these requests.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use conformance::spawn::SUITE_TOKEN;
use conformance::wire::{BodyDecoder, BodyEnd, Connection, find, parse_head};
use sse_core::REQUEST_BODY_TIMEOUT;

use crate::faults::{FaultCtx, Findings};
use crate::subject::Subject;

/// A client connection (the conformance suite's [`Connection`]) that sends exactly the bytes it
/// is given and reads whatever comes back as HTTP/1.1 responses, noticing when the server
/// closes instead.
pub(super) struct RawConnection {
    connection: Connection,
    closed: bool,
}

/// A response read in full.
#[derive(Debug, Clone)]
pub(super) struct Response {
    pub status: u16,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
}

/// What the server did with a request.
#[derive(Debug, Clone)]
pub(super) enum Reply {
    Answer(Response),
    /// The connection closed (or was reset) before a complete response.
    Closed,
    /// Neither happened within the wait.
    Silent,
}

impl RawConnection {
    pub async fn open(address: SocketAddr) -> Result<Self, String> {
        Ok(Self {
            connection: Connection::open(address, None).await?,
            closed: false,
        })
    }

    /// Sends `bytes`, at most for `timeout` (a server that stops reading must not hang the
    /// client); false when the server closed the connection first or the time ran out.
    pub async fn send(&mut self, bytes: &[u8], timeout: Duration) -> bool {
        matches!(
            tokio::time::timeout(timeout, self.connection.send(bytes)).await,
            Ok(Ok(()))
        )
    }

    /// The next response on the connection, read for at most `timeout`.
    pub async fn reply(&mut self, timeout: Duration) -> Reply {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(response) = take_response(&mut self.connection.received, self.closed) {
                return Reply::Answer(response);
            }
            if self.closed {
                return Reply::Closed;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.connection.read_within(left, 16 * 1024).await {
                None => return Reply::Silent,
                Some(Ok(0) | Err(_)) => self.closed = true,
                Some(Ok(_)) => {}
            }
        }
    }

    /// Waits at most `timeout` for the server to close the connection, discarding whatever
    /// it sends; true when it did.
    pub async fn closed_within(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let kept = self.connection.received.len();
        while !self.closed {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.connection.read_within(left, 4096).await {
                None => return false,
                Some(Ok(0) | Err(_)) => self.closed = true,
                Some(Ok(_)) => self.connection.received.truncate(kept),
            }
        }
        true
    }
}

impl Response {
    /// The contract's error: `application/json` and a body `{"error":"…"}`.
    pub fn is_json_error(&self) -> bool {
        let json = self
            .content_type
            .as_deref()
            .is_some_and(|t| t.to_ascii_lowercase().starts_with("application/json"));
        let body: Option<serde_json::Value> = serde_json::from_slice(&self.body).ok();
        json && body.is_some_and(|b| b.get("error").is_some_and(serde_json::Value::is_string))
    }
}

impl Reply {
    pub fn describe(&self) -> String {
        match self {
            Self::Answer(response) if response.is_json_error() => {
                format!("{} JSON error", response.status)
            }
            Self::Answer(response) => format!(
                "{} ({}, {:?})",
                response.status,
                response
                    .content_type
                    .as_deref()
                    .unwrap_or("no Content-Type"),
                String::from_utf8_lossy(&response.body[..response.body.len().min(80)])
            ),
            Self::Closed => "closed".to_owned(),
            Self::Silent => "no answer".to_owned(),
        }
    }
}

/// Takes one complete response off the front of `received`, read by the suite's head parser
/// and body decoder: `None` while it is incomplete (or when it is no HTTP/1.1 response at all,
/// which only the connection's end then answers for). A body that ends with the connection is
/// complete once `closed`.
fn take_response(received: &mut Vec<u8>, closed: bool) -> Option<Response> {
    let head_end = find(received, b"\r\n\r\n")?;
    let head = parse_head(&received[..head_end], Duration::ZERO).ok()?;
    // These connections send POST and GET requests only (no HEAD).
    let mut framing = BodyDecoder::for_response(&head, "POST").ok()?;
    let mut body = Vec::new();
    let used = framing.decode(&received[head_end + 4..], &mut body).ok()?;
    let complete = framing.is_complete() || (closed && framing.end_at_close() == BodyEnd::Clean);
    if !complete {
        return None;
    }
    received.drain(..head_end + 4 + used);
    Some(Response {
        status: head.status,
        content_type: head.header("content-type").map(str::to_owned),
        body,
    })
}

/// How long a case waits for its answer.
const ANSWER_WAIT: Duration = Duration::from_secs(5);

/// A trigger request with the suite's token and a `Content-Length` of `declared`, followed by
/// `body` whatever its length.
fn trigger_request(address: SocketAddr, declared: usize, body: &[u8]) -> Vec<u8> {
    let mut request = format!(
        "POST /trigger HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\n\
         Authorization: Bearer {SUITE_TOKEN}\r\nContent-Length: {declared}\r\n\r\n"
    )
    .into_bytes();
    request.extend_from_slice(body);
    request
}

/// The bodies that are not acceptable JSON triggers, each of which must get a JSON 400.
fn bad_bodies() -> Vec<(&'static str, Vec<u8>)> {
    const DEPTH: usize = 10_000;
    let digits = "7".repeat(10_000);
    let mut invalid_utf8 = br#"{"event":"x","data":""#.to_vec();
    invalid_utf8.extend_from_slice(b"\xff\xfe\xc3(");
    invalid_utf8.extend_from_slice(br#""}"#);
    vec![
        ("invalid UTF-8 in data", invalid_utf8),
        (
            "invalid UTF-8 in a name",
            b"{\"\xc3\x28\":1,\"data\":1}".to_vec(),
        ),
        (
            "arrays nested 10,000 deep",
            format!(r#"{{"data":{}{}}}"#, "[".repeat(DEPTH), "]".repeat(DEPTH)).into_bytes(),
        ),
        (
            "objects nested 10,000 deep",
            format!(
                r#"{{"data":{}1{}}}"#,
                r#"{"a":"#.repeat(DEPTH),
                "}".repeat(DEPTH)
            )
            .into_bytes(),
        ),
        (
            "a 10,000-digit number as data",
            format!(r#"{{"data":{digits}}}"#).into_bytes(),
        ),
        ("a 10,000-digit number as the body", digits.into_bytes()),
        ("data given twice", br#"{"data":1,"data":2}"#.to_vec()),
        (
            "event given twice",
            br#"{"event":"a","event":"tick","data":1}"#.to_vec(),
        ),
    ]
}

/// What a case must get.
#[derive(Debug, Clone, Copy)]
enum Want {
    /// The contract's JSON 400.
    JsonBadRequest,
    /// A body that never finishes: 408, a close, or nothing until the client gives up.
    TimeoutOrClose,
    /// Garbage after a request: anything but a success (an error, a close, nothing).
    NoSuccess,
}

impl Want {
    fn accepts(self, reply: &Reply) -> bool {
        match (self, reply) {
            (Self::JsonBadRequest, Reply::Answer(r)) => r.status == 400 && r.is_json_error(),
            (Self::JsonBadRequest, _) => false,
            (Self::TimeoutOrClose, Reply::Answer(r)) => r.status == 408,
            (Self::TimeoutOrClose, _) => true,
            (Self::NoSuccess, Reply::Answer(r)) => r.status >= 400,
            (Self::NoSuccess, _) => true,
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Self::JsonBadRequest => "a JSON 400",
            Self::TimeoutOrClose => "408, a close or no answer",
            Self::NoSuccess => "an error, a close or no answer",
        }
    }
}

/// One case and what came of it.
struct Case {
    name: &'static str,
    want: Want,
    reply: Reply,
    took: Duration,
    /// `/health` after the case, or why it did not answer.
    health: Result<(), String>,
}

impl Case {
    fn passed(&self) -> bool {
        self.want.accepts(&self.reply) && self.health.is_ok()
    }
}

pub async fn run(ctx: &FaultCtx, findings: &mut Findings) -> Result<String, String> {
    // The client's own limit for the body that never finishes: at Ci, just long enough to see
    // the servers' body timeout act.
    let stall_wait = ctx.scale.pick(
        Duration::from_secs(15),
        REQUEST_BODY_TIMEOUT + Duration::from_secs(2),
    );
    let subject = ctx.start(&[]).await?;
    let before = subject.health().await;
    // The stalled body takes longest: the other cases run beside it.
    let (mut stalled, mut cases) = tokio::join!(
        stalled_body(subject.address, stall_wait),
        bad_json_cases(&subject)
    );
    stalled.health = healthy(&subject).await;
    cases.push(stalled);
    cases.extend(lying_length(&subject).await);
    let after = subject.health().await;
    subject.stop().await;
    let before = before?.last_id;

    for case in &cases {
        findings.figure(format!(
            "{}: {} after {:.2} s",
            case.name,
            case.reply.describe(),
            case.took.as_secs_f64()
        ));
        findings.require(case.want.accepts(&case.reply), || {
            format!(
                "{}: expected {}, got {}",
                case.name,
                case.want.describe(),
                case.reply.describe()
            )
        });
        if let Err(problem) = &case.health {
            findings.require(false, || format!("after {}: {problem}", case.name));
        }
    }
    let after = after.map(|h| h.last_id);
    findings.require(after == Ok(before), || {
        format!(
            "last_id was {before} before the cases and {after:?} after: something was published"
        )
    });
    let stall = cases
        .iter()
        .find(|c| matches!(c.want, Want::TimeoutOrClose))
        .map_or_else(String::new, |c| match &c.reply {
            Reply::Silent => format!("no answer in {} s", stall_wait.as_secs()),
            reply => format!("{} after {:.1} s", reply.describe(), c.took.as_secs_f64()),
        });
    Ok(format!(
        "{}/{} as required; stalled body: {stall}",
        cases.iter().filter(|c| c.passed()).count(),
        cases.len()
    ))
}

/// Sends `request` on a new connection and reads one reply.
async fn exchange(address: SocketAddr, request: &[u8]) -> Reply {
    let Ok(mut connection) = RawConnection::open(address).await else {
        return Reply::Closed;
    };
    connection.send(request, ANSWER_WAIT).await;
    connection.reply(ANSWER_WAIT).await
}

/// Sends each bad body on its own connection, checking `/health` after each.
async fn bad_json_cases(subject: &Subject) -> Vec<Case> {
    let mut cases = Vec::new();
    for (name, body) in bad_bodies() {
        let began = Instant::now();
        let reply = exchange(
            subject.address,
            &trigger_request(subject.address, body.len(), &body),
        )
        .await;
        cases.push(Case {
            name,
            want: Want::JsonBadRequest,
            reply,
            took: began.elapsed(),
            health: healthy(subject).await,
        });
    }
    cases
}

/// `Content-Length: 100`, 10 bytes sent, then nothing until the server acts or `wait` passes.
async fn stalled_body(address: SocketAddr, wait: Duration) -> Case {
    let began = Instant::now();
    let reply = match RawConnection::open(address).await {
        Ok(mut connection) => {
            connection
                .send(
                    &trigger_request(address, 100, br#"{"data":12"#),
                    ANSWER_WAIT,
                )
                .await;
            connection.reply(wait).await
        }
        Err(_) => Reply::Closed,
    };
    Case {
        name: "a body that never finishes (Content-Length 100, 10 bytes sent)",
        want: Want::TimeoutOrClose,
        reply,
        took: began.elapsed(),
        health: Ok(()),
    }
}

/// `Content-Length: 10` with 40 bytes sent: the first 10 are a truncated trigger (a 400), the
/// other 30 a garbage request on the same connection, which must not be taken for a good one.
async fn lying_length(subject: &Subject) -> [Case; 2] {
    const BODY: &[u8; 40] = b"{\"data\":1,\"event\":\"tick\"} / HTTP/1.1\r\n\r\n";
    let address = subject.address;
    let began = Instant::now();
    let (first, first_took, second) = match RawConnection::open(address).await {
        Ok(mut connection) => {
            connection
                .send(&trigger_request(address, 10, BODY), ANSWER_WAIT)
                .await;
            let first = connection.reply(ANSWER_WAIT).await;
            let first_took = began.elapsed();
            (first, first_took, connection.reply(ANSWER_WAIT).await)
        }
        Err(_) => (Reply::Closed, began.elapsed(), Reply::Closed),
    };
    [
        Case {
            name: "Content-Length 10, 40 bytes sent: the first 10",
            want: Want::JsonBadRequest,
            reply: first,
            took: first_took,
            health: Ok(()),
        },
        Case {
            name: "Content-Length 10, 40 bytes sent: the other 30 (a garbage request)",
            want: Want::NoSuccess,
            reply: second,
            took: began.elapsed(),
            health: healthy(subject).await,
        },
    ]
}

/// Whether the process still answers `/health`.
async fn healthy(subject: &Subject) -> Result<(), String> {
    subject
        .health()
        .await
        .map(drop)
        .map_err(|e| format!("/health did not answer ({e}); the process may have crashed"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_are_taken_one_at_a_time() {
        let mut received = b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\n\
              content-length: 13\r\n\r\n{\"error\":\"x\"}HTTP/1.1 404 Not Found\r\n\
              transfer-encoding: chunked\r\n\r\n2\r\nno\r\n0\r\n\r\nHTTP/1.1 408 Request Timeout\r\n\r\nbye"
            .to_vec();
        let first = take_response(&mut received, false).expect("a whole response");
        assert_eq!(first.status, 400);
        assert!(first.is_json_error());
        let second = take_response(&mut received, false).expect("a whole response");
        assert_eq!((second.status, second.body.as_slice()), (404, &b"no"[..]));
        assert!(second.content_type.is_none());
        // A body without a length ends with the connection.
        assert!(take_response(&mut received, false).is_none());
        let third = take_response(&mut received, true).expect("complete once closed");
        assert_eq!((third.status, third.body.as_slice()), (408, &b"bye"[..]));
        assert!(received.is_empty());

        let mut cut = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 10\r\n\r\n{\"e".to_vec();
        assert!(take_response(&mut cut, true).is_none());
        let mut garbage = b"SSH-2.0\r\n\r\n".to_vec();
        assert!(take_response(&mut garbage, true).is_none());
    }
}
