//! A lean event-stream client for load: raw HTTP/1.1 over TCP, chunked decoding, and just enough
//! of the SSE format to check every delivery (ids, names, the first data line). The conformance
//! suite's spec-exact parser checks the format; this one has to stay cheap at 19,000 streams.

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use conformance::wire::{BodyEnd, Head};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Nanoseconds since this process first asked: the clock that stamps published payloads, so a
/// client computes trigger-to-delivery latency from the payload alone.
pub fn clock_ns() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// An event as this client sees it: only what the checks need.
#[derive(Debug)]
pub struct Event<'a> {
    pub id: Option<u64>,
    pub name: &'a [u8],
    /// The first `data:` line.
    pub data: &'a [u8],
}

/// How a read went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    Open,
    Ended(BodyEnd),
}

/// An open `GET` whose head has arrived; events are read with [`Stream::read`].
pub struct Stream {
    socket: TcpStream,
    pub head: Head,
    body: BodyDecoder,
    events: EventScanner,
    buffer: Vec<u8>,
    /// The dechunked bytes of the last read, kept to reuse its allocation.
    decoded: Vec<u8>,
}

const READ_SIZE: usize = 4096;
const MAX_HEAD: usize = 64 * 1024;

impl Stream {
    /// Sends `GET target` with `headers` on a new connection and reads the response head
    /// (at most `timeout` for both).
    pub async fn open(
        address: SocketAddr,
        target: &str,
        headers: &[(&str, &str)],
        receive_buffer: Option<u32>,
        timeout: Duration,
    ) -> Result<Self, String> {
        tokio::time::timeout(timeout, async {
            let socket = conformance::wire::connect(address, receive_buffer).await?;
            Self::request(socket, address, target, headers).await
        })
        .await
        .map_err(|_| format!("GET {target}: no response head within {timeout:?}"))?
    }

    async fn request(
        mut socket: TcpStream,
        address: SocketAddr,
        target: &str,
        headers: &[(&str, &str)],
    ) -> Result<Self, String> {
        let mut request =
            format!("GET {target} HTTP/1.1\r\nHost: {address}\r\nAccept: text/event-stream\r\n");
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        let sent = Instant::now();
        socket
            .write_all(request.as_bytes())
            .await
            .map_err(|e| format!("sending GET {target}: {e}"))?;
        let mut buffer = Vec::with_capacity(READ_SIZE);
        let head_end = loop {
            if let Some(end) = find(&buffer, b"\r\n\r\n") {
                break end + 4;
            }
            if buffer.len() > MAX_HEAD {
                return Err(format!("GET {target}: response head over {MAX_HEAD} bytes"));
            }
            let read = socket
                .read_buf(&mut buffer)
                .await
                .map_err(|e| format!("reading the head of GET {target}: {e}"))?;
            if read == 0 {
                return Err(format!(
                    "GET {target}: connection closed before a response head"
                ));
            }
        };
        let head = parse_head(&buffer[..head_end], sent.elapsed())
            .ok_or_else(|| format!("GET {target}: malformed response head"))?;
        let mut body = BodyDecoder::for_head(&head);
        let mut events = EventScanner::default();
        let mut decoded = Vec::new();
        body.decode(&buffer[head_end..], &mut decoded);
        events.push(&decoded);
        buffer.clear();
        Ok(Self {
            socket,
            head,
            body,
            events,
            buffer,
            decoded,
        })
    }

    /// Waits for more of the body and hands every complete event to `on_event`.
    pub async fn read(&mut self, mut on_event: impl FnMut(&Event<'_>)) -> Progress {
        self.events.drain(&mut on_event);
        if let Some(end) = self.body.end() {
            return Progress::Ended(end);
        }
        self.buffer.clear();
        self.buffer.reserve(READ_SIZE);
        match self.socket.read_buf(&mut self.buffer).await {
            Ok(0) => {
                self.body.eof();
                Progress::Ended(self.body.end().unwrap_or(BodyEnd::Truncated))
            }
            Ok(_) => {
                self.decoded.clear();
                self.body.decode(&self.buffer, &mut self.decoded);
                self.events.push(&self.decoded);
                self.events.drain(&mut on_event);
                match self.body.end() {
                    Some(end) => Progress::Ended(end),
                    None => Progress::Open,
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                Progress::Ended(BodyEnd::Reset)
            }
            Err(_) => Progress::Ended(BodyEnd::Truncated),
        }
    }

    /// Reads until the body ends or `timeout` passes (`None`: still open).
    pub async fn read_to_end(
        &mut self,
        timeout: Duration,
        mut on_event: impl FnMut(&Event<'_>),
    ) -> Option<BodyEnd> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, self.read(&mut on_event)).await {
                Ok(Progress::Open) => continue,
                Ok(Progress::Ended(end)) => return Some(end),
                Err(_) => return None,
            }
        }
    }

    /// Closes the connection by resetting it (no TIME_WAIT left behind on this side): what a
    /// client that goes away does, as far as the server can tell.
    pub fn abort(self) {
        let _ = self.socket.set_zero_linger();
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn parse_head(bytes: &[u8], latency: Duration) -> Option<Head> {
    let text = std::str::from_utf8(bytes).ok()?;
    let mut lines = text.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers = lines
        .filter(|line| !line.is_empty())
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_owned(), value.trim().to_owned()))
        .collect();
    Some(Head {
        status,
        headers,
        latency,
    })
}

/// The response body's framing, decoded incrementally.
#[derive(Debug)]
enum BodyDecoder {
    Chunked { state: Chunk, line: Vec<u8> },
    Length(u64),
    UntilClose { closed: bool },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// Reading a chunk-size line.
    Size,
    /// This many data bytes left in the chunk.
    Data(u64),
    /// The CRLF after chunk data.
    DataEnd,
    /// After the last chunk: trailer lines until an empty one.
    Trailers,
    Done,
    Truncated,
    Malformed,
}

impl BodyDecoder {
    fn for_head(head: &Head) -> Self {
        let chunked = head
            .header("transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
        if chunked {
            Self::Chunked {
                state: Chunk::Size,
                line: Vec::new(),
            }
        } else if let Some(length) = head.header("content-length").and_then(|v| v.parse().ok()) {
            Self::Length(length)
        } else {
            Self::UntilClose { closed: false }
        }
    }

    fn end(&self) -> Option<BodyEnd> {
        match self {
            Self::Chunked { state, .. } => match state {
                Chunk::Done => Some(BodyEnd::Clean),
                Chunk::Truncated | Chunk::Malformed => Some(BodyEnd::Truncated),
                _ => None,
            },
            Self::Length(0) => Some(BodyEnd::Clean),
            Self::Length(_) => None,
            Self::UntilClose { closed } => closed.then_some(BodyEnd::Clean),
        }
    }

    fn eof(&mut self) {
        match self {
            Self::Chunked { state, .. } if *state != Chunk::Done => *state = Chunk::Truncated,
            Self::UntilClose { closed } => *closed = true,
            _ => {}
        }
    }

    fn decode(&mut self, mut input: &[u8], out: &mut Vec<u8>) {
        match self {
            Self::Length(left) => {
                let take = input
                    .len()
                    .min(usize::try_from(*left).unwrap_or(usize::MAX));
                out.extend_from_slice(&input[..take]);
                *left -= take as u64;
            }
            Self::UntilClose { .. } => out.extend_from_slice(input),
            Self::Chunked { state, line } => {
                while !input.is_empty() {
                    match *state {
                        Chunk::Size | Chunk::DataEnd | Chunk::Trailers => {
                            let Some(newline) = input.iter().position(|&b| b == b'\n') else {
                                line.extend_from_slice(input);
                                return;
                            };
                            line.extend_from_slice(&input[..newline]);
                            input = &input[newline + 1..];
                            let text = line.strip_suffix(b"\r").unwrap_or(line);
                            *state = match *state {
                                Chunk::Size => {
                                    let size = std::str::from_utf8(text)
                                        .ok()
                                        .map(|t| t.split(';').next().unwrap_or("").trim())
                                        .and_then(|t| u64::from_str_radix(t, 16).ok());
                                    match size {
                                        Some(0) => Chunk::Trailers,
                                        Some(size) => Chunk::Data(size),
                                        None => Chunk::Malformed,
                                    }
                                }
                                Chunk::DataEnd if text.is_empty() => Chunk::Size,
                                Chunk::Trailers if text.is_empty() => Chunk::Done,
                                Chunk::Trailers => Chunk::Trailers,
                                _ => Chunk::Malformed,
                            };
                            line.clear();
                        }
                        Chunk::Data(left) => {
                            let take = input.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                            out.extend_from_slice(&input[..take]);
                            input = &input[take..];
                            let left = left - take as u64;
                            *state = if left == 0 {
                                Chunk::DataEnd
                            } else {
                                Chunk::Data(left)
                            };
                        }
                        Chunk::Done | Chunk::Truncated | Chunk::Malformed => return,
                    }
                }
            }
        }
    }
}

/// Splits the decoded body into blocks at blank lines (the servers end lines with LF).
#[derive(Debug, Default)]
struct EventScanner {
    pending: Vec<u8>,
    /// Where the search for the next blank line resumes.
    scanned: usize,
}

impl EventScanner {
    fn push(&mut self, bytes: &[u8]) {
        self.pending.extend_from_slice(bytes);
    }

    /// Hands out every complete event (comment-only blocks, the heartbeats, dispatch nothing).
    fn drain(&mut self, on_event: &mut impl FnMut(&Event<'_>)) {
        let mut start = 0;
        let mut from = self.scanned.max(start);
        while let Some(offset) = find(&self.pending[from..], b"\n\n") {
            let end = from + offset;
            let block = &self.pending[start..end];
            if let Some(event) = parse_block(block) {
                on_event(&event);
            }
            start = end + 2;
            from = start;
        }
        self.pending.drain(..start);
        // A blank line may straddle the next read: look again from the last byte.
        self.scanned = self.pending.len().saturating_sub(1);
    }
}

/// The event in a block, if it has a data line (a block without one dispatches nothing).
fn parse_block(block: &[u8]) -> Option<Event<'_>> {
    let mut id = None;
    let mut name: &[u8] = b"message";
    let mut data = None;
    for line in block.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(0) => continue,
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &b""[..]),
        };
        match field {
            b"id" => id = std::str::from_utf8(value).ok().and_then(|v| v.parse().ok()),
            b"event" => name = value,
            b"data" if data.is_none() => data = Some(value),
            _ => {}
        }
    }
    Some(Event {
        id,
        name,
        data: data?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(framing: &mut BodyDecoder, wire: &[u8], split: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for piece in wire.chunks(split) {
            framing.decode(piece, &mut out);
        }
        out
    }

    #[test]
    fn chunked_bodies_decode_however_they_are_split() {
        let wire = b"a\r\nretry: 10\n\r\n1C;ext=1\r\nid: 1\nevent: x\ndata: hello\n\n\r\n0\r\n\r\n";
        for split in 1..wire.len() {
            let mut framing = BodyDecoder::Chunked {
                state: Chunk::Size,
                line: Vec::new(),
            };
            let body = decode_all(&mut framing, wire, split);
            assert_eq!(
                body, b"retry: 10\nid: 1\nevent: x\ndata: hello\n\n",
                "split {split}"
            );
            assert_eq!(framing.end(), Some(BodyEnd::Clean), "split {split}");
        }
    }

    #[test]
    fn a_chunked_body_cut_short_is_truncated() {
        let mut framing = BodyDecoder::Chunked {
            state: Chunk::Size,
            line: Vec::new(),
        };
        decode_all(&mut framing, b"5\r\nhel", 64);
        assert_eq!(framing.end(), None);
        framing.eof();
        assert_eq!(framing.end(), Some(BodyEnd::Truncated));
        let mut framing = BodyDecoder::Chunked {
            state: Chunk::Size,
            line: Vec::new(),
        };
        decode_all(&mut framing, b"zz\r\n", 64);
        assert_eq!(framing.end(), Some(BodyEnd::Truncated));
    }

    #[test]
    fn events_are_found_across_reads() {
        let body = b"retry: 10\n\n:\n\nid: 7\nevent: tick\ndata: {\"a\":1}\ndata: more\n\nid: 8\ndata:x\n\n";
        for split in 1..body.len() {
            let mut scanner = EventScanner::default();
            let mut seen = Vec::new();
            for piece in body.chunks(split) {
                scanner.push(piece);
                scanner.drain(&mut |e: &Event<'_>| {
                    seen.push((e.id, e.name.to_vec(), e.data.to_vec()));
                });
            }
            assert_eq!(
                seen,
                vec![
                    (Some(7), b"tick".to_vec(), b"{\"a\":1}".to_vec()),
                    (Some(8), b"message".to_vec(), b"x".to_vec()),
                ],
                "split {split}"
            );
        }
    }
}
