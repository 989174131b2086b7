//! Raw HTTP/1.1 for the checks that must see the exact bytes (the chunked framing, the end of a
//! stream) or misbehave on purpose (stop reading, close mid-stream); everything else goes
//! through reqwest. [`client`] is the client itself, which the load generator uses too;
//! [`RawStream`] reads a response through it into the strict event-stream parser.

use std::time::{Duration, Instant};

use crate::parser::{Block, Parser};

mod client;

pub use client::{
    BodyDecoder, BodyEnd, Connection, Head, MAX_HEAD, WireResult, find, parse_head, request,
};

/// A block of the event stream with the moment it was complete.
#[derive(Debug, Clone)]
pub struct TimedBlock {
    pub at: Instant,
    pub block: Block,
}

/// A request whose response is being read: the head is in, the body comes as it arrives.
pub struct RawStream {
    connection: Connection,
    body: BodyDecoder,
    pub head: Head,
    pub parser: Parser,
    /// The decoded body so far (capped), for failure messages.
    body_sample: Vec<u8>,
    pub body_bytes: u64,
    /// Whether any CR byte was in the body (the contract's lines end with LF alone).
    pub saw_cr: bool,
    pub end: Option<BodyEnd>,
}

const SAMPLE_CAP: usize = 4096;
/// The most read from the socket at once.
const READ_SIZE: usize = 64 * 1024;

impl RawStream {
    /// Sends `GET path` with `headers` and waits (at most 5 s) for the response head.
    pub async fn get(
        address: std::net::SocketAddr,
        path: &str,
        headers: &[(&str, &str)],
    ) -> WireResult<Self> {
        let connection = Connection::open(address, None).await?;
        Self::request(
            connection,
            "GET",
            path,
            headers,
            b"",
            Duration::from_secs(5),
        )
        .await
    }

    /// Sends any request on an open connection and reads the response head.
    pub async fn request(
        mut connection: Connection,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        head_timeout: Duration,
    ) -> WireResult<Self> {
        let bytes = request(method, path, connection.address(), headers, body);
        let sent = Instant::now();
        connection
            .send(&bytes)
            .await
            .map_err(|e| format!("cannot send the request: {e}"))?;
        Self::response(connection, method, sent, head_timeout).await
    }

    /// Reads the response head to a `method` request sent on `connection` at `sent`, waiting
    /// at most `head_timeout` from then.
    pub async fn response(
        mut connection: Connection,
        method: &str,
        sent: Instant,
        head_timeout: Duration,
    ) -> WireResult<Self> {
        let head = connection.read_head(sent, head_timeout).await?;
        let body = BodyDecoder::for_response(&head, method)?;
        Ok(Self {
            end: body.is_complete().then_some(BodyEnd::Clean),
            connection,
            body,
            head,
            parser: Parser::new(),
            body_sample: Vec::new(),
            body_bytes: 0,
            saw_cr: false,
        })
    }

    /// Waits at most `timeout` for more body bytes; returns the blocks they completed (empty
    /// when the body ended or nothing arrived in time).
    pub async fn read_some(&mut self, timeout: Duration) -> WireResult<Vec<TimedBlock>> {
        if self.end.is_some() {
            return Ok(Vec::new());
        }
        let mut body = self.take_body()?;
        if body.is_empty() && self.end.is_none() {
            match self.connection.read_within(timeout, READ_SIZE).await {
                None => return Ok(Vec::new()),
                Some(Ok(0)) => self.end = Some(self.body.end_at_close()),
                Some(Ok(_)) => body = self.take_body()?,
                Some(Err(_)) => self.end = Some(BodyEnd::Reset),
            }
        }
        let at = Instant::now();
        Ok(self
            .feed(&body)
            .into_iter()
            .map(|block| TimedBlock { at, block })
            .collect())
    }

    /// Reads until `stop` says so for a block, the body ends, or `timeout` passes. Returns every
    /// block read (including the one that stopped it) and whether `stop` was satisfied.
    pub async fn read_until(
        &mut self,
        timeout: Duration,
        mut stop: impl FnMut(&Block) -> bool,
    ) -> WireResult<(Vec<TimedBlock>, bool)> {
        let deadline = Instant::now() + timeout;
        let mut blocks = Vec::new();
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() || self.end.is_some() {
                return Ok((blocks, false));
            }
            for timed in self.read_some(remaining).await? {
                let done = stop(&timed.block);
                blocks.push(timed);
                if done {
                    return Ok((blocks, true));
                }
            }
        }
    }

    /// Reads everything until the body ends or `timeout` passes.
    pub async fn read_to_end(
        &mut self,
        timeout: Duration,
    ) -> WireResult<(Vec<TimedBlock>, Option<BodyEnd>)> {
        let (blocks, _) = self.read_until(timeout, |_| false).await?;
        Ok((blocks, self.end))
    }

    /// The body received so far as text (its first 4 KiB), for a short answer read to its end.
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body_sample).into_owned()
    }

    /// The first bytes of the body, quoted, for failure messages.
    pub fn body_sample(&self) -> String {
        let mut text = format!("{:?}", String::from_utf8_lossy(&self.body_sample));
        if self.body_bytes > SAMPLE_CAP as u64 {
            text.push_str(&format!(" … ({} bytes in all)", self.body_bytes));
        }
        text
    }

    fn feed(&mut self, body: &[u8]) -> Vec<Block> {
        if body.is_empty() {
            return Vec::new();
        }
        self.body_bytes += body.len() as u64;
        self.saw_cr |= body.contains(&b'\r');
        let room = SAMPLE_CAP.saturating_sub(self.body_sample.len());
        self.body_sample
            .extend_from_slice(&body[..room.min(body.len())]);
        self.parser.feed(body)
    }

    /// The body bytes received and not yet decoded; notes the body's end when it comes.
    fn take_body(&mut self) -> WireResult<Vec<u8>> {
        let mut body = Vec::new();
        self.connection.take_body(&mut self.body, &mut body)?;
        if self.body.is_complete() {
            self.end = Some(BodyEnd::Clean);
        }
        Ok(body)
    }
}
