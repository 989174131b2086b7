//! The one raw HTTP/1.1 client of the workspace, over TCP: a [`Connection`] that sends exactly
//! the bytes it is given and reads with or without a time limit, the response [`Head`] and its
//! strict parser, and a [`BodyDecoder`] for `Content-Length`, chunked and until-close bodies.
//! The conformance suite reads event streams with it ([`super::RawStream`]); the load
//! generator's streams and hostile clients (`sse-load`) are built on it too, so every client
//! judges the framing by the same rules: a chunk-size line, the CRLF after chunk data and the
//! trailers' end must be exactly as HTTP/1.1 says, or the body is malformed.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::client::TlsStream;

/// Errors of the raw client, as sentences for failure messages.
pub type WireResult<T> = Result<T, String>;

/// The largest response head read, and the longest chunk-size or trailer line.
pub const MAX_HEAD: usize = 64 * 1024;

/// The first `needle` in `haystack`.
#[inline]
pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

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

    /// The status and all headers, for failure messages.
    pub fn describe(&self) -> String {
        let lines: Vec<String> = self
            .headers
            .iter()
            .map(|(n, v)| format!("{n}: {v}"))
            .collect();
        format!("{} [{}]", self.status, lines.join("; "))
    }
}

/// Parses a response head (without its final blank line), strictly: an `HTTP/1.1` or `HTTP/1.0`
/// status line with a three-digit status, then `name: value` lines only.
pub fn parse_head(bytes: &[u8], latency: Duration) -> WireResult<Head> {
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

/// A request's bytes: the request line, `Host`, `headers` in order, a blank line, `body`.
pub fn request(
    method: &str,
    target: &str,
    host: SocketAddr,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Vec<u8> {
    let mut request = format!("{method} {target} HTTP/1.1\r\nHost: {host}\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    let mut bytes = request.into_bytes();
    bytes.extend_from_slice(body);
    bytes
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

/// A TCP connection to a server, plain or inside TLS: what is sent goes out byte for byte, and
/// what comes back is kept in [`Connection::received`] until a head parser or a body decoder
/// takes it.
pub struct Connection {
    socket: Socket,
    address: SocketAddr,
    /// Bytes received and not yet taken.
    pub received: Vec<u8>,
}

impl Connection {
    /// Connects (within 5 s), with a small receive buffer when asked (for a client that stops
    /// reading).
    pub async fn open(address: SocketAddr, receive_buffer: Option<u32>) -> WireResult<Self> {
        Ok(Self {
            socket: Socket::Tcp(tcp(address, receive_buffer).await?),
            address,
            received: Vec::new(),
        })
    }

    /// [`Connection::open`], then a TLS handshake with `config` (HTTP/1.1 over TLS when
    /// `config` offers `http/1.1` by ALPN).
    pub async fn open_tls(
        address: SocketAddr,
        receive_buffer: Option<u32>,
        config: Arc<rustls::ClientConfig>,
    ) -> WireResult<Self> {
        let tcp = tcp(address, receive_buffer).await?;
        let tls = crate::tls::handshake(address, tcp, config).await?;
        Ok(Self {
            socket: Socket::Tls(Box::new(tls)),
            address,
            received: Vec::new(),
        })
    }

    /// The server's address (what `Host` names).
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Sends `bytes` exactly as they are.
    pub async fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.socket.write_all(bytes).await?;
        // TLS holds written bytes back until flushed.
        self.socket.flush().await
    }

    /// Waits for at most `limit` more bytes and adds them to `received`: how many came (0 when
    /// the server closed the connection).
    #[inline]
    pub async fn read_more(&mut self, limit: usize) -> io::Result<usize> {
        self.received.reserve(limit);
        (&mut self.socket)
            .take(limit as u64)
            .read_buf(&mut self.received)
            .await
    }

    /// [`Connection::read_more`], for at most `timeout`: `None` when nothing came in time.
    pub async fn read_within(
        &mut self,
        timeout: Duration,
        limit: usize,
    ) -> Option<io::Result<usize>> {
        tokio::time::timeout(timeout, self.read_more(limit))
            .await
            .ok()
    }

    /// Reads the response head to a request sent at `sent`, for at most `timeout` from then,
    /// and takes it off `received` (what follows it stays there: the start of the body).
    pub async fn read_head(&mut self, sent: Instant, timeout: Duration) -> WireResult<Head> {
        let head_end = loop {
            if let Some(end) = find(&self.received, b"\r\n\r\n") {
                break end;
            }
            if self.received.len() > MAX_HEAD {
                return Err("the response head is larger than 64 KiB".into());
            }
            let remaining = timeout.saturating_sub(sent.elapsed());
            let read = self
                .read_within(remaining, 8192)
                .await
                .ok_or_else(|| {
                    format!(
                        "no complete response head within {} ms",
                        timeout.as_millis()
                    )
                })?
                .map_err(|e| format!("reading the response head failed: {e}"))?;
            if read == 0 {
                return Err(format!(
                    "the connection closed before a complete response head; got {:?}",
                    String::from_utf8_lossy(&self.received)
                ));
            }
        };
        let head = parse_head(&self.received[..head_end], sent.elapsed())?;
        self.received.drain(..head_end + 4);
        Ok(head)
    }

    /// Moves the body bytes `body` allows out of `received` into `out`.
    #[inline]
    pub fn take_body(&mut self, body: &mut BodyDecoder, out: &mut Vec<u8>) -> WireResult<()> {
        let used = body.decode(&self.received, out)?;
        self.received.drain(..used);
        Ok(())
    }

    /// Closes the connection by resetting it (no TIME_WAIT left behind on this side): what a
    /// client that goes away does, as far as the server can tell.
    pub fn abort(self) {
        let _ = self.socket.tcp().set_zero_linger();
    }
}

/// Connects (within 5 s), with a small receive buffer when asked.
pub(crate) async fn tcp(address: SocketAddr, receive_buffer: Option<u32>) -> WireResult<TcpStream> {
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
    let tcp = tokio::time::timeout(Duration::from_secs(5), socket.connect(address))
        .await
        .map_err(|_| format!("connecting to {address} took more than 5 s"))?
        .map_err(|e| format!("cannot connect to {address}: {e}"))?;
    // As browsers do: a small write (a TLS handshake message, an HTTP/2 frame) goes out at once
    // instead of waiting for the ACK of the one before.
    tcp.set_nodelay(true)
        .map_err(|e| format!("cannot set TCP_NODELAY: {e}"))?;
    Ok(tcp)
}

/// A connection's byte stream.
enum Socket {
    Tcp(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Socket {
    fn tcp(&self) -> &TcpStream {
        match self {
            Self::Tcp(tcp) => tcp,
            Self::Tls(tls) => tls.get_ref().0,
        }
    }
}

impl AsyncRead for Socket {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(tcp) => Pin::new(tcp).poll_read(cx, buf),
            Self::Tls(tls) => Pin::new(tls.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Socket {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Tcp(tcp) => Pin::new(tcp).poll_write(cx, buf),
            Self::Tls(tls) => Pin::new(tls.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(tcp) => Pin::new(tcp).poll_flush(cx),
            Self::Tls(tls) => Pin::new(tls.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(tcp) => Pin::new(tcp).poll_shutdown(cx),
            Self::Tls(tls) => Pin::new(tls.as_mut()).poll_shutdown(cx),
        }
    }
}

/// A response body's framing, decoded as its bytes arrive, however they are split.
#[derive(Debug)]
pub struct BodyDecoder {
    framing: Framing,
}

#[derive(Debug)]
enum Framing {
    Chunked {
        state: Chunk,
        /// The part of a chunk-size or trailer line that came in an earlier piece.
        line: Vec<u8>,
    },
    Length(u64),
    UntilClose,
    /// The framing was broken: why (every later piece gets the same answer).
    Malformed(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// Expecting a chunk-size line.
    Size,
    /// Inside chunk data, this many bytes left.
    Data(u64),
    /// Expecting the CRLF after chunk data (`true`: its CR has come).
    DataEnd(bool),
    /// After the last chunk: trailers until an empty line.
    Trailers,
    /// The body is complete.
    Done,
}

impl BodyDecoder {
    /// The framing of the response with this head to a `method` request: none for `HEAD`, 204
    /// and 304, then chunked, then `Content-Length`, else until the connection closes.
    pub fn for_response(head: &Head, method: &str) -> WireResult<Self> {
        if method == "HEAD" || head.status == 204 || head.status == 304 {
            return Ok(Self::length(0));
        }
        if let Some(encoding) = head.header("transfer-encoding")
            && encoding
                .to_ascii_lowercase()
                .split(',')
                .any(|part| part.trim() == "chunked")
        {
            return Ok(Self::chunked());
        }
        match head.header("content-length") {
            Some(length) => length
                .parse()
                .map(Self::length)
                .map_err(|_| format!("malformed Content-Length {length:?}")),
            None => Ok(Self {
                framing: Framing::UntilClose,
            }),
        }
    }

    pub fn chunked() -> Self {
        Self {
            framing: Framing::Chunked {
                state: Chunk::Size,
                line: Vec::new(),
            },
        }
    }

    pub fn length(length: u64) -> Self {
        Self {
            framing: Framing::Length(length),
        }
    }

    /// Whether the body is complete (the last chunk and the trailers' end, or every byte of a
    /// `Content-Length`).
    pub fn is_complete(&self) -> bool {
        matches!(
            self.framing,
            Framing::Length(0)
                | Framing::Chunked {
                    state: Chunk::Done,
                    ..
                }
        )
    }

    /// How the body ended if the connection closes now: cleanly when it was complete or ends
    /// with the connection, truncated otherwise.
    pub fn end_at_close(&self) -> BodyEnd {
        if self.is_complete() || matches!(self.framing, Framing::UntilClose) {
            BodyEnd::Clean
        } else {
            BodyEnd::Truncated
        }
    }

    /// Decodes the next piece of the response after the head, adding the body bytes to `out`;
    /// returns how many bytes of `input` belong to the body (it stops at the body's end).
    #[inline]
    pub fn decode(&mut self, input: &[u8], out: &mut Vec<u8>) -> WireResult<usize> {
        match &mut self.framing {
            Framing::Length(left) => {
                let take = input
                    .len()
                    .min(usize::try_from(*left).unwrap_or(usize::MAX));
                out.extend_from_slice(&input[..take]);
                *left -= take as u64;
                Ok(take)
            }
            Framing::UntilClose => {
                out.extend_from_slice(input);
                Ok(input.len())
            }
            Framing::Malformed(why) => Err(why.clone()),
            Framing::Chunked { state, line } => match dechunk(state, line, input, out) {
                Ok(used) => Ok(used),
                Err(why) => {
                    self.framing = Framing::Malformed(why.clone());
                    Err(why)
                }
            },
        }
    }
}

/// Decodes chunked framing from `input` on: the bytes it used, or why the framing is broken.
fn dechunk(
    state: &mut Chunk,
    line: &mut Vec<u8>,
    input: &[u8],
    out: &mut Vec<u8>,
) -> WireResult<usize> {
    let mut at = 0;
    while at < input.len() {
        let rest = &input[at..];
        match *state {
            Chunk::Size | Chunk::Trailers => {
                let Some(used) = take_line(line, rest)? else {
                    return Ok(input.len());
                };
                at += used;
                // The line without its CRLF: in `line` when it came in pieces.
                let text = if line.is_empty() {
                    &rest[..used - 2]
                } else {
                    line.truncate(line.len() - 2);
                    &line[..]
                };
                *state = match *state {
                    Chunk::Size => match chunk_size(text) {
                        Some(0) => Chunk::Trailers,
                        Some(size) => Chunk::Data(size),
                        None => {
                            return Err(format!(
                                "malformed chunk size line {:?}",
                                String::from_utf8_lossy(text)
                            ));
                        }
                    },
                    _ if text.is_empty() => Chunk::Done,
                    _ => Chunk::Trailers,
                };
                line.clear();
            }
            Chunk::Data(left) => {
                let take = rest.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                out.extend_from_slice(&rest[..take]);
                at += take;
                let left = left - take as u64;
                *state = if left == 0 {
                    Chunk::DataEnd(false)
                } else {
                    Chunk::Data(left)
                };
            }
            // The usual case first: both bytes of the CRLF in this piece.
            Chunk::DataEnd(false) if rest.starts_with(b"\r\n") => {
                at += 2;
                *state = Chunk::Size;
            }
            Chunk::DataEnd(cr) => {
                let expected = if cr { b'\n' } else { b'\r' };
                if rest[0] != expected {
                    let seen = if cr { &b"\r"[..] } else { b"" };
                    return Err(format!(
                        "chunk data not followed by CRLF: {:?}",
                        String::from_utf8_lossy(&[seen, &rest[..rest.len().min(40)]].concat())
                    ));
                }
                at += 1;
                *state = if cr {
                    Chunk::Size
                } else {
                    Chunk::DataEnd(true)
                };
            }
            Chunk::Done => return Ok(at),
        }
    }
    Ok(at)
}

/// Finds the end of a CRLF-terminated line that may have begun in an earlier piece (kept in
/// `line`): how many bytes of `rest` it took with its CRLF, or `None` when the line goes on
/// (all of `rest` is then in `line`). A lone LF does not end a line.
#[inline]
fn take_line(line: &mut Vec<u8>, rest: &[u8]) -> WireResult<Option<usize>> {
    let mut from = 0;
    while let Some(offset) = rest[from..].iter().position(|&b| b == b'\n') {
        let newline = from + offset;
        let after_cr = match newline {
            0 => line.last() == Some(&b'\r'),
            _ => rest[newline - 1] == b'\r',
        };
        if after_cr {
            if !line.is_empty() {
                line.extend_from_slice(&rest[..=newline]);
            }
            return Ok(Some(newline + 1));
        }
        from = newline + 1;
    }
    if line.len() + rest.len() > MAX_HEAD {
        return Err("a chunk-size or trailer line longer than 64 KiB".into());
    }
    line.extend_from_slice(rest);
    Ok(None)
}

/// A chunk-size line's size: hexadecimal digits before any `;` extension, blanks around them
/// allowed.
#[inline]
fn chunk_size(line: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(line).ok()?;
    u64::from_str_radix(text.split(';').next().unwrap_or_default().trim(), 16).ok()
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// Decodes `wire` in pieces of `split` bytes: the body, or the first error.
    fn decode_all(body: &mut BodyDecoder, wire: &[u8], split: usize) -> WireResult<Vec<u8>> {
        let mut out = Vec::new();
        for piece in wire.chunks(split) {
            let used = body.decode(piece, &mut out)?;
            assert!(used <= piece.len());
        }
        Ok(out)
    }

    #[test]
    fn chunked_bodies_decode_however_they_are_split() {
        let wire = b"a\r\nretry: 10\n\r\n1C;ext=1\r\nid: 1\nevent: x\ndata: hello\n\n\r\n0\r\n\r\n";
        for split in 1..=wire.len() {
            let mut body = BodyDecoder::chunked();
            let decoded = decode_all(&mut body, wire, split).unwrap();
            assert_eq!(
                decoded, b"retry: 10\nid: 1\nevent: x\ndata: hello\n\n",
                "split {split}"
            );
            assert!(body.is_complete(), "split {split}");
            assert_eq!(body.end_at_close(), BodyEnd::Clean);
        }
    }

    #[test]
    fn decoding_stops_at_the_end_of_the_body() {
        let mut body = BodyDecoder::chunked();
        let wire = b"3\r\nabc\r\n0\r\nX-Trailer: 1\r\n\r\nHTTP/1.1 200 OK\r\n";
        let mut out = Vec::new();
        let used = body.decode(wire, &mut out).unwrap();
        assert_eq!((out.as_slice(), used), (&b"abc"[..], wire.len() - 17));
        assert_eq!(body.decode(b"more", &mut out), Ok(0));

        let mut body = BodyDecoder::length(4);
        let mut out = Vec::new();
        assert_eq!(body.decode(b"ab", &mut out), Ok(2));
        assert_eq!(body.end_at_close(), BodyEnd::Truncated);
        assert_eq!(body.decode(b"cdef", &mut out), Ok(2));
        assert!(body.is_complete());
        assert_eq!(out, b"abcd");
    }

    #[test]
    fn a_chunked_body_cut_short_is_truncated() {
        let mut body = BodyDecoder::chunked();
        decode_all(&mut body, b"5\r\nhel", 64).unwrap();
        assert!(!body.is_complete());
        assert_eq!(body.end_at_close(), BodyEnd::Truncated);
    }

    #[test]
    fn broken_chunked_framing_is_an_error_and_stays_one() {
        for (wire, error) in [
            (&b"zz\r\n"[..], "malformed chunk size line \"zz\""),
            (
                b"3\r\nabcX\r\n",
                "chunk data not followed by CRLF: \"X\\r\\n\"",
            ),
            (
                b"3\r\nabc\r\r\n",
                "chunk data not followed by CRLF: \"\\r\\r\\n\"",
            ),
            // A lone LF ends no line: the size line runs on to the CRLF.
            (b"3\nabc\r\n", "malformed chunk size line \"3\\nabc\""),
        ] {
            // In one piece, the message quotes what followed; in smaller ones, less of it.
            let kind = &error[..error.find('"').unwrap()];
            for split in 1..=wire.len() {
                let mut body = BodyDecoder::chunked();
                let got = decode_all(&mut body, wire, split).unwrap_err();
                assert!(got.starts_with(kind), "{wire:?} split {split}: {got}");
                if split == wire.len() {
                    assert_eq!(got, error);
                }
                assert_eq!(body.decode(b"0\r\n\r\n", &mut Vec::new()), Err(got));
                assert_eq!(body.end_at_close(), BodyEnd::Truncated);
            }
        }
        let mut body = BodyDecoder::chunked();
        let endless = vec![b'1'; MAX_HEAD + 1];
        assert!(decode_all(&mut body, &endless, 4096).is_err());
    }

    #[test]
    fn framing_follows_the_head() {
        let head = |status, headers: &[(&str, &str)]| Head {
            status,
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            latency: Duration::ZERO,
        };
        let framing = |head: &Head, method| {
            let body = BodyDecoder::for_response(head, method).unwrap();
            (body.is_complete(), body.end_at_close())
        };
        let chunked = head(200, &[("Transfer-Encoding", "gzip, Chunked")]);
        assert_eq!(framing(&chunked, "GET"), (false, BodyEnd::Truncated));
        assert_eq!(framing(&chunked, "HEAD"), (true, BodyEnd::Clean));
        let until_close = head(200, &[]);
        assert_eq!(framing(&until_close, "GET"), (false, BodyEnd::Clean));
        assert_eq!(
            framing(&head(204, &[("content-length", "5")]), "GET"),
            (true, BodyEnd::Clean)
        );
        assert_eq!(
            framing(&head(200, &[("content-length", "5")]), "GET"),
            (false, BodyEnd::Truncated)
        );
        assert_eq!(
            BodyDecoder::for_response(&head(200, &[("Content-Length", "5x")]), "GET").err(),
            Some("malformed Content-Length \"5x\"".to_owned())
        );
    }

    #[test]
    fn heads_are_parsed_strictly() {
        let head = parse_head(
            b"HTTP/1.1 503 Service Unavailable\r\nRetry-After:  2 \r\nContent-Type: application/json",
            Duration::ZERO,
        )
        .unwrap();
        assert_eq!(head.status, 503);
        assert_eq!(head.header("retry-after"), Some("2"));
        assert_eq!(head.header("CONTENT-TYPE"), Some("application/json"));
        assert_eq!(head.header("content-length"), None);
        for malformed in [
            &b"HTTP/2 200\r\n"[..],
            b"HTTP/1.1 2x0 OK",
            b"ICY 200 OK",
            b"HTTP/1.1 200 OK\r\nno colon here",
        ] {
            assert!(
                parse_head(malformed, Duration::ZERO).is_err(),
                "{malformed:?}"
            );
        }
    }

    #[test]
    fn requests_are_written_in_order() {
        let address: SocketAddr = "127.0.0.1:3001".parse().unwrap();
        assert_eq!(
            request(
                "POST",
                "/trigger",
                address,
                &[("A", "1"), ("B", "2")],
                b"{}"
            ),
            b"POST /trigger HTTP/1.1\r\nHost: 127.0.0.1:3001\r\nA: 1\r\nB: 2\r\n\r\n{}"
        );
        assert_eq!(find(b"ab\r\n\r\ncd", b"\r\n\r\n"), Some(2));
        assert_eq!(find(b"ab\r\n", b"\r\n\r\n"), None);
    }

    /// A server on 127.0.0.1 that reads one request and answers with `pieces`, 20 ms apart,
    /// then closes; the request it read comes back through the handle.
    async fn serve(pieces: Vec<&'static [u8]>) -> (SocketAddr, tokio::task::JoinHandle<Vec<u8>>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = Vec::new();
            while find(&request, b"\r\n\r\n").is_none() {
                let mut buffer = [0u8; 1024];
                let read = socket.read(&mut buffer).await.unwrap();
                request.extend_from_slice(&buffer[..read]);
            }
            for piece in pieces {
                socket.write_all(piece).await.unwrap();
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            request
        });
        (address, server)
    }

    #[tokio::test]
    async fn a_response_is_read_as_it_arrives() {
        let (address, server) = serve(vec![
            b"HTTP/1.1 200 OK\r\nTransfer-",
            b"Encoding: chunked\r\n\r\n5\r\nhe",
            b"llo\r\n0\r\n\r\n",
        ])
        .await;
        let mut connection = Connection::open(address, None).await.unwrap();
        let sent = Instant::now();
        connection
            .send(&request("GET", "/x", address, &[("A", "1")], b""))
            .await
            .unwrap();
        let head = connection
            .read_head(sent, Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(head.header("transfer-encoding"), Some("chunked"));
        let mut body = BodyDecoder::for_response(&head, "GET").unwrap();
        let mut out = Vec::new();
        connection.take_body(&mut body, &mut out).unwrap();
        while !body.is_complete() {
            let read = connection.read_within(Duration::from_secs(5), 3).await;
            assert!(matches!(read, Some(Ok(1..=3))), "{read:?}");
            connection.take_body(&mut body, &mut out).unwrap();
        }
        assert_eq!(out, b"hello");
        assert!(connection.received.is_empty());
        let asked = server.await.unwrap();
        assert_eq!(
            asked,
            format!("GET /x HTTP/1.1\r\nHost: {address}\r\nA: 1\r\n\r\n").as_bytes()
        );
    }

    #[tokio::test]
    async fn a_head_that_never_completes_is_an_error() {
        let (address, server) = serve(vec![b"HTTP/1.1 200 OK\r\n"]).await;
        let mut connection = Connection::open(address, None).await.unwrap();
        connection.send(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        let closed = connection
            .read_head(Instant::now(), Duration::from_secs(5))
            .await
            .unwrap_err();
        assert_eq!(
            closed,
            "the connection closed before a complete response head; got \"HTTP/1.1 200 OK\\r\\n\""
        );
        server.await.unwrap();

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut connection = Connection::open(listener.local_addr().unwrap(), None)
            .await
            .unwrap();
        let silent = connection
            .read_head(Instant::now(), Duration::from_millis(100))
            .await
            .unwrap_err();
        assert_eq!(silent, "no complete response head within 100 ms");
        assert!(
            connection
                .read_within(Duration::from_millis(10), 10)
                .await
                .is_none()
        );
    }
}
