//! A deliberately small HTTP/1.1 client over raw TCP, for the checks that must see the exact
//! bytes (the chunked framing, the end of a stream) or misbehave on purpose (stop reading, close
//! mid-stream). Everything else goes through reqwest.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::parser::{Block, Parser};

/// A status line and headers as received.
#[derive(Debug, Clone)]
pub struct Head {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    /// When the head was complete, measured from the moment the request was sent.
    pub latency: Duration,
}

impl Head {
    /// The first header with that name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// All headers, one per line, for failure messages.
    pub fn describe(&self) -> String {
        let lines: Vec<String> = self
            .headers
            .iter()
            .map(|(n, v)| format!("{n}: {v}"))
            .collect();
        format!("{} [{}]", self.status, lines.join("; "))
    }
}

/// How a response body ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyEnd {
    /// The last chunk (`0\r\n\r\n`) arrived, or a `Content-Length` body was complete.
    Clean,
    /// The connection closed without the end of the chunked body.
    Truncated,
    /// The connection was reset.
    Reset,
}

/// A block of the event stream with the moment it was complete.
#[derive(Debug, Clone)]
pub struct TimedBlock {
    pub at: Instant,
    pub block: Block,
}

#[derive(Debug)]
enum Framing {
    Chunked(ChunkState),
    Length(u64),
    UntilClose,
}

#[derive(Debug, Clone, Copy)]
enum ChunkState {
    /// Expecting a chunk-size line.
    Size,
    /// Inside chunk data, this many bytes left.
    Data(u64),
    /// Expecting the CRLF after chunk data.
    DataEnd,
    /// After the last chunk: trailers until an empty line.
    Trailers,
}

/// A request whose response is being read: the head is in, the body comes as it arrives.
pub struct RawStream {
    socket: TcpStream,
    /// Bytes received but not yet consumed by the framing.
    pending: Vec<u8>,
    framing: Framing,
    pub head: Head,
    pub parser: Parser,
    /// The decoded body so far (capped), for failure messages.
    body_sample: Vec<u8>,
    pub body_bytes: u64,
    /// Whether any CR byte was in the body (the contract's lines end with LF alone).
    pub saw_cr: bool,
    pub end: Option<BodyEnd>,
}

/// Errors of the raw client, as sentences for failure messages.
pub type WireResult<T> = Result<T, String>;

const SAMPLE_CAP: usize = 4096;

/// Connects with a small receive buffer when asked (for a client that stops reading).
pub async fn connect(address: SocketAddr, receive_buffer: Option<u32>) -> WireResult<TcpStream> {
    let socket = if address.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(|e| format!("cannot create a socket: {e}"))?;
    if let Some(size) = receive_buffer {
        socket
            .set_recv_buffer_size(size)
            .map_err(|e| format!("cannot set SO_RCVBUF: {e}"))?;
    }
    tokio::time::timeout(Duration::from_secs(5), socket.connect(address))
        .await
        .map_err(|_| format!("connecting to {address} took more than 5 s"))?
        .map_err(|e| format!("cannot connect to {address}: {e}"))
}

impl RawStream {
    /// Sends `GET path` with `headers` and waits (at most `head_timeout`) for the response head.
    pub async fn get(
        address: SocketAddr,
        path: &str,
        headers: &[(&str, &str)],
    ) -> WireResult<Self> {
        let socket = connect(address, None).await?;
        Self::request(
            socket,
            address,
            "GET",
            path,
            headers,
            b"",
            Duration::from_secs(5),
        )
        .await
    }

    /// Sends any request on an already connected socket and reads the response head.
    pub async fn request(
        mut socket: TcpStream,
        address: SocketAddr,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        head_timeout: Duration,
    ) -> WireResult<Self> {
        let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {address}\r\n");
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        let mut bytes = request.into_bytes();
        bytes.extend_from_slice(body);
        let sent = Instant::now();
        socket
            .write_all(&bytes)
            .await
            .map_err(|e| format!("cannot send the request: {e}"))?;

        let mut pending = Vec::new();
        let head_end = loop {
            if let Some(end) = find(&pending, b"\r\n\r\n") {
                break end;
            }
            if pending.len() > 64 * 1024 {
                return Err("the response head is larger than 64 KiB".into());
            }
            let remaining = head_timeout.saturating_sub(sent.elapsed());
            let mut buf = [0u8; 8192];
            let read = tokio::time::timeout(remaining, socket.read(&mut buf))
                .await
                .map_err(|_| {
                    format!(
                        "no complete response head within {} ms",
                        head_timeout.as_millis()
                    )
                })?
                .map_err(|e| format!("reading the response head failed: {e}"))?;
            if read == 0 {
                return Err(format!(
                    "the connection closed before a complete response head; got {:?}",
                    String::from_utf8_lossy(&pending)
                ));
            }
            pending.extend_from_slice(&buf[..read]);
        };
        let head = parse_head(&pending[..head_end], sent.elapsed())?;
        pending.drain(..head_end + 4);
        let framing = framing_of(&head, method)?;
        let mut stream = Self {
            socket,
            pending,
            framing,
            head,
            parser: Parser::new(),
            body_sample: Vec::new(),
            body_bytes: 0,
            saw_cr: false,
            end: None,
        };
        if matches!(stream.framing, Framing::Length(0)) {
            stream.end = Some(BodyEnd::Clean);
        }
        Ok(stream)
    }

    /// Waits at most `timeout` for more body bytes; returns the blocks they completed (empty
    /// when the body ended or nothing arrived in time).
    pub async fn read_some(&mut self, timeout: Duration) -> WireResult<Vec<TimedBlock>> {
        if self.end.is_some() {
            return Ok(Vec::new());
        }
        let mut body = self.take_body()?;
        if body.is_empty() && self.end.is_none() {
            let mut buf = vec![0u8; 64 * 1024];
            match tokio::time::timeout(timeout, self.socket.read(&mut buf)).await {
                Err(_) => return Ok(Vec::new()),
                Ok(Ok(0)) => {
                    self.end = Some(match self.framing {
                        Framing::UntilClose => BodyEnd::Clean,
                        _ => BodyEnd::Truncated,
                    });
                }
                Ok(Ok(read)) => {
                    self.pending.extend_from_slice(&buf[..read]);
                    body = self.take_body()?;
                }
                Ok(Err(_)) => self.end = Some(BodyEnd::Reset),
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

    /// The first bytes of the body, as text, for failure messages.
    /// The body received so far as text (its first 4 KiB), for a short answer read to its end.
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body_sample).into_owned()
    }

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

    /// Moves whatever complete body bytes the framing allows out of `pending`.
    fn take_body(&mut self) -> WireResult<Vec<u8>> {
        let mut body = Vec::new();
        loop {
            match &mut self.framing {
                Framing::UntilClose => {
                    body.append(&mut self.pending);
                    return Ok(body);
                }
                Framing::Length(left) => {
                    let take = (*left).min(self.pending.len() as u64) as usize;
                    body.extend(self.pending.drain(..take));
                    *left -= take as u64;
                    if *left == 0 {
                        self.end = Some(BodyEnd::Clean);
                    }
                    return Ok(body);
                }
                Framing::Chunked(state) => match *state {
                    ChunkState::Size => {
                        let Some(line_end) = find(&self.pending, b"\r\n") else {
                            return Ok(body);
                        };
                        let line = String::from_utf8_lossy(&self.pending[..line_end]).into_owned();
                        let size_text = line.split(';').next().unwrap_or_default().trim();
                        let size = u64::from_str_radix(size_text, 16)
                            .map_err(|_| format!("malformed chunk size line {line:?}"))?;
                        self.pending.drain(..line_end + 2);
                        *state = if size == 0 {
                            ChunkState::Trailers
                        } else {
                            ChunkState::Data(size)
                        };
                    }
                    ChunkState::Data(left) => {
                        if self.pending.is_empty() {
                            return Ok(body);
                        }
                        let take = left.min(self.pending.len() as u64) as usize;
                        body.extend(self.pending.drain(..take));
                        let left = left - take as u64;
                        *state = if left == 0 {
                            ChunkState::DataEnd
                        } else {
                            ChunkState::Data(left)
                        };
                    }
                    ChunkState::DataEnd => {
                        if self.pending.len() < 2 {
                            return Ok(body);
                        }
                        if &self.pending[..2] != b"\r\n" {
                            return Err(format!(
                                "chunk data not followed by CRLF: {:?}",
                                String::from_utf8_lossy(
                                    &self.pending[..self.pending.len().min(40)]
                                )
                            ));
                        }
                        self.pending.drain(..2);
                        *state = ChunkState::Size;
                    }
                    ChunkState::Trailers => {
                        let Some(line_end) = find(&self.pending, b"\r\n") else {
                            return Ok(body);
                        };
                        self.pending.drain(..line_end + 2);
                        if line_end == 0 {
                            self.end = Some(BodyEnd::Clean);
                            return Ok(body);
                        }
                    }
                },
            }
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

fn parse_head(bytes: &[u8], latency: Duration) -> WireResult<Head> {
    let text = String::from_utf8_lossy(bytes);
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .strip_prefix("HTTP/1.1 ")
        .or_else(|| status_line.strip_prefix("HTTP/1.0 "))
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("malformed status line {status_line:?}"))?;
    let headers = lines
        .map(|line| {
            let (name, value) = line
                .split_once(':')
                .ok_or_else(|| format!("malformed header line {line:?}"))?;
            Ok((name.trim().to_owned(), value.trim().to_owned()))
        })
        .collect::<WireResult<_>>()?;
    Ok(Head {
        status,
        headers,
        latency,
    })
}

fn framing_of(head: &Head, method: &str) -> WireResult<Framing> {
    if method == "HEAD" || head.status == 204 || head.status == 304 {
        return Ok(Framing::Length(0));
    }
    if let Some(encoding) = head.header("transfer-encoding")
        && encoding
            .to_ascii_lowercase()
            .split(',')
            .any(|part| part.trim() == "chunked")
    {
        return Ok(Framing::Chunked(ChunkState::Size));
    }
    match head.header("content-length") {
        Some(length) => length
            .parse()
            .map(Framing::Length)
            .map_err(|_| format!("malformed Content-Length {length:?}")),
        None => Ok(Framing::UntilClose),
    }
}
