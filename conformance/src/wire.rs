//! The raw wire, for the checks that must see the exact bytes (the chunked framing, the end of a
//! stream) or misbehave on purpose (stop reading, close mid-stream); everything else goes
//! through reqwest. [`client`] is the HTTP/1.1 client itself, plain or over TLS, which the load
//! generator uses too; [`h2`] is one HTTP/2 request on a connection of its own; [`RawStream`]
//! reads a response through either into the strict event-stream parser, so that a check reads
//! the same over each [`Transport`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::parser::{Block, Parser};
use crate::tls::Certificates;

mod client;
pub mod h2;

pub(crate) use client::tcp;
pub use client::{
    BodyDecoder, BodyEnd, Connection, Head, MAX_HEAD, WireResult, find, parse_head, request,
};

/// How the suite talks to a server.
#[derive(Debug, Clone)]
pub enum Transport {
    /// HTTP/1.1 over TCP.
    Plain,
    /// HTTPS, trusting one authority, offering one protocol by ALPN.
    Tls(Arc<Tls>),
}

/// The protocol spoken over TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Http1,
    Http2,
}

impl Protocol {
    /// Its ALPN name.
    pub fn alpn(self) -> &'static [u8] {
        match self {
            Self::Http1 => b"http/1.1",
            Self::Http2 => b"h2",
        }
    }
}

/// The client side of HTTPS.
#[derive(Debug)]
pub struct Tls {
    pub protocol: Protocol,
    /// The authority trusted (PEM).
    pub ca: PathBuf,
    /// Trusts `ca`, offers `protocol` alone.
    pub config: Arc<rustls::ClientConfig>,
    /// The certificate the suite made for a server it starts (its files go with the last user).
    pub certificates: Option<Certificates>,
}

impl Transport {
    /// HTTPS trusting the authority in `ca` and speaking `protocol`.
    pub fn tls(ca: &Path, protocol: Protocol) -> Result<Self, String> {
        Ok(Self::Tls(Arc::new(Tls {
            protocol,
            ca: ca.to_owned(),
            config: crate::tls::client_config(ca, &[protocol.alpn()])?,
            certificates: None,
        })))
    }

    /// A certificate made for a server the suite starts, and HTTPS trusting it.
    pub fn with_new_certificate(protocol: Protocol) -> Result<Self, String> {
        let certificates = Certificates::make()?;
        let ca = certificates.files.ca.clone();
        Ok(Self::Tls(Arc::new(Tls {
            protocol,
            config: crate::tls::client_config(&ca, &[protocol.alpn()])?,
            ca,
            certificates: Some(certificates),
        })))
    }

    pub fn scheme(&self) -> &'static str {
        match self {
            Self::Plain => "http",
            Self::Tls(_) => "https",
        }
    }

    /// The protocol spoken (HTTP/1.1 when plain).
    pub fn protocol(&self) -> Protocol {
        match self {
            Self::Plain => Protocol::Http1,
            Self::Tls(tls) => tls.protocol,
        }
    }

    /// How it reads in a report.
    pub fn describe(&self) -> &'static str {
        match self {
            Self::Plain => "HTTP/1.1",
            Self::Tls(tls) if tls.protocol == Protocol::Http1 => "HTTPS, HTTP/1.1 (ALPN http/1.1)",
            Self::Tls(_) => "HTTPS, HTTP/2 (ALPN h2)",
        }
    }
}

/// A block of the event stream with the moment it was complete.
#[derive(Debug, Clone)]
pub struct TimedBlock {
    pub at: Instant,
    pub block: Block,
}

/// A request whose response is being read: the head is in, the body comes as it arrives.
pub struct RawStream {
    source: Source,
    pub head: Head,
    pub parser: Parser,
    /// The decoded body so far (capped), for failure messages.
    body_sample: Vec<u8>,
    pub body_bytes: u64,
    /// Whether any CR byte was in the body (the contract's lines end with LF alone).
    pub saw_cr: bool,
    pub end: Option<BodyEnd>,
}

/// Where the body comes from.
enum Source {
    Http1 {
        connection: Connection,
        body: BodyDecoder,
    },
    Http2(Box<h2::H2Body>),
}

const SAMPLE_CAP: usize = 4096;
/// The most read from the socket at once.
const READ_SIZE: usize = 64 * 1024;

impl RawStream {
    /// Sends `GET path` with `headers` on a connection of its own and waits (at most 5 s) for
    /// the response head.
    pub async fn get(
        transport: &Transport,
        address: SocketAddr,
        path: &str,
        headers: &[(&str, &str)],
    ) -> WireResult<Self> {
        Self::open(
            transport,
            address,
            None,
            ("GET", path, headers, b""),
            Duration::from_secs(5),
        )
        .await
    }

    /// Sends a request (method, path, headers, body) on a connection of its own, with a
    /// receive buffer (and, over HTTP/2, a flow-control window) that small when asked, and
    /// waits at most `head_timeout` for the response head. Over HTTP/2 a body goes in DATA
    /// frames, its length told only by `headers`.
    pub async fn open(
        transport: &Transport,
        address: SocketAddr,
        receive_buffer: Option<u32>,
        (method, path, headers, body): (&str, &str, &[(&str, &str)], &[u8]),
        head_timeout: Duration,
    ) -> WireResult<Self> {
        let connection = match transport {
            Transport::Plain => Connection::open(address, receive_buffer).await?,
            Transport::Tls(tls) if tls.protocol == Protocol::Http1 => {
                Connection::open_tls(address, receive_buffer, Arc::clone(&tls.config)).await?
            }
            Transport::Tls(tls) => {
                let (head, body) = h2::request(
                    address,
                    receive_buffer,
                    Arc::clone(&tls.config),
                    method,
                    path,
                    headers,
                    body,
                    head_timeout,
                )
                .await?;
                return Ok(Self::with(
                    head,
                    body.is_end_stream().then_some(BodyEnd::Clean),
                    Source::Http2(Box::new(body)),
                ));
            }
        };
        Self::request(connection, method, path, headers, body, head_timeout).await
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
        Ok(Self::with(
            head,
            body.is_complete().then_some(BodyEnd::Clean),
            Source::Http1 { connection, body },
        ))
    }

    fn with(head: Head, end: Option<BodyEnd>, source: Source) -> Self {
        Self {
            source,
            head,
            parser: Parser::new(),
            body_sample: Vec::new(),
            body_bytes: 0,
            saw_cr: false,
            end,
        }
    }

    /// The client goes away without a word: the connection is reset (HTTP/1.1) or dropped
    /// without an `RST_STREAM` (HTTP/2).
    pub fn abort(self) {
        match self.source {
            Source::Http1 { connection, .. } => connection.abort(),
            Source::Http2(body) => body.abort(),
        }
    }

    /// Waits at most `timeout` for more body bytes; returns the blocks they completed (empty
    /// when the body ended or nothing arrived in time).
    pub async fn read_some(&mut self, timeout: Duration) -> WireResult<Vec<TimedBlock>> {
        if self.end.is_some() {
            return Ok(Vec::new());
        }
        let body = match &mut self.source {
            Source::Http2(h2) => match h2.read_within(timeout).await {
                h2::Read::Nothing => return Ok(Vec::new()),
                h2::Read::End(end) => {
                    self.end = Some(end);
                    Vec::new()
                }
                h2::Read::Data(data) => data.to_vec(),
            },
            Source::Http1 { .. } => {
                let mut body = self.take_body()?;
                if body.is_empty()
                    && self.end.is_none()
                    && let Source::Http1 {
                        connection,
                        body: decoder,
                    } = &mut self.source
                {
                    match connection.read_within(timeout, READ_SIZE).await {
                        None => return Ok(Vec::new()),
                        Some(Ok(0)) => self.end = Some(decoder.end_at_close()),
                        Some(Ok(_)) => body = self.take_body()?,
                        Some(Err(_)) => self.end = Some(BodyEnd::Reset),
                    }
                }
                body
            }
        };
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
        let mut out = Vec::new();
        if let Source::Http1 { connection, body } = &mut self.source {
            connection.take_body(body, &mut out)?;
            if body.is_complete() {
                self.end = Some(BodyEnd::Clean);
            }
        }
        Ok(out)
    }
}
