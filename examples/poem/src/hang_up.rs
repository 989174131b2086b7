//! The acceptor poem-example serves with: poem's `TcpAcceptor` (or its rustls acceptor on top),
//! with connections that notice a client that went away at the next write and that time
//! HTTP/1 request heads (see [`HangUpAware`]).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use poem::http::uri::Scheme;
use poem::listener::Acceptor;
use poem::web::{LocalAddr, RemoteAddr};
use sse_core::REQUEST_HEAD_TIMEOUT;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Sleep, sleep};

/// poem 3.1.12 keeps polling a connection after hyper has reported that the client closed it
/// (`server.rs:463-477` awaits it again), and the first write to a closed socket still
/// succeeds, so a stream would outlive its client until a second write failed. Connections
/// from this acceptor refuse every write once the client has closed its side (hyper serves no
/// half-closed connections anyway), so the next write ends the stream and frees the client.
/// They also time request heads: see [`HeadDeadline`].
pub struct HangUpAware<A> {
    inner: A,
    http2: bool,
}

impl<A> HangUpAware<A> {
    /// Over plain TCP every connection is timed as HTTP/1: an HTTP/2 preface too (poem would
    /// speak h2c, which the contract does not ask for).
    pub fn plain(inner: A) -> Self {
        Self {
            inner,
            http2: false,
        }
    }

    /// Over TLS, where a client may speak HTTP/2: a connection that begins with its preface is
    /// not timed.
    pub fn tls(inner: A) -> Self {
        Self { inner, http2: true }
    }
}

impl<A: Acceptor> Acceptor for HangUpAware<A> {
    type Io = HangUpAwareStream<A::Io>;

    fn local_addr(&self) -> Vec<LocalAddr> {
        self.inner.local_addr()
    }

    async fn accept(&mut self) -> io::Result<(Self::Io, LocalAddr, RemoteAddr, Scheme)> {
        let (stream, local, remote, scheme) = self.inner.accept().await?;
        let stream = HangUpAwareStream {
            stream,
            hung_up: false,
            head: if self.http2 {
                HeadDeadline::new()
            } else {
                HeadDeadline::http1()
            },
        };
        Ok((stream, local, remote, scheme))
    }
}

pub struct HangUpAwareStream<S> {
    stream: S,
    hung_up: bool,
    head: HeadDeadline,
}

impl<S: AsyncRead + Unpin> AsyncRead for HangUpAwareStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.head.expired(cx) {
            return Poll::Ready(Err(io::ErrorKind::TimedOut.into()));
        }
        let (room, filled) = (buf.remaining(), buf.filled().len());
        let read = ready!(Pin::new(&mut self.stream).poll_read(cx, buf));
        self.hung_up |= read.is_ok() && room > 0 && buf.filled().len() == filled;
        self.head.read(&buf.filled()[filled..]);
        Poll::Ready(read)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for HangUpAwareStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.hung_up {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        self.head.responding();
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// poem's `Server` builds its hyper connections itself, with no timer, so hyper's request-head
/// timeout is off and cannot be set (`server.rs:450`): a client trickling its headers would
/// hold its connection forever. This gives each head [`REQUEST_HEAD_TIMEOUT`] from the accept
/// (or from the first byte after a response), until the blank line that ends it arrives; a read
/// after the deadline fails, and hyper closes the connection. Bodies and streams are untimed,
/// and so is an HTTP/2 connection (its preface ends the first head; its frames have no heads).
struct HeadDeadline {
    /// Running while a head is awaited.
    deadline: Option<Pin<Box<Sleep>>>,
    /// The connection began with the HTTP/2 preface: nothing more to time.
    h2: bool,
    /// How many bytes of the preface have been seen so far, while it may still be one.
    preface: usize,
    /// Where the bytes read stand in looking for the blank line that ends the head.
    line: Line,
    /// A response has begun since the last head ended: the next bytes read start a new head.
    responded: bool,
}

/// How an HTTP/2 connection begins (RFC 9113 §3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

#[derive(Clone, Copy)]
enum Line {
    /// No byte of the head yet (empty lines before a request are skipped, as hyper does).
    Before,
    Text,
    Start,
    StartCr,
}

impl HeadDeadline {
    fn new() -> Self {
        Self {
            deadline: Some(Box::pin(sleep(REQUEST_HEAD_TIMEOUT))),
            h2: false,
            preface: 0,
            line: Line::Before,
            responded: false,
        }
    }

    /// For a connection that cannot be HTTP/2.
    fn http1() -> Self {
        Self {
            preface: usize::MAX,
            ..Self::new()
        }
    }

    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        self.deadline
            .as_mut()
            .is_some_and(|deadline| deadline.as_mut().poll(cx).is_ready())
    }

    fn read(&mut self, bytes: &[u8]) {
        if bytes.is_empty() || self.h2 {
            return;
        }
        if self.preface < H2_PREFACE.len() {
            let seen = &H2_PREFACE[self.preface..];
            let common = seen.len().min(bytes.len());
            if bytes[..common] == seen[..common] {
                self.preface += common;
                if self.preface == H2_PREFACE.len() {
                    (self.h2, self.deadline) = (true, None);
                    return;
                }
            } else {
                self.preface = usize::MAX; // not HTTP/2
            }
        }
        if self.deadline.is_none() {
            if !self.responded {
                return; // the body of the request being answered
            }
            // A later head on an HTTP/1 connection.
            *self = Self {
                preface: usize::MAX,
                ..Self::new()
            };
        }
        for &byte in bytes {
            self.line = match (self.line, byte) {
                (Line::Start | Line::StartCr, b'\n') => {
                    self.deadline = None;
                    return;
                }
                (Line::Before, b'\r' | b'\n') => Line::Before,
                (Line::Start, b'\r') => Line::StartCr,
                (_, b'\n') => Line::Start,
                _ => Line::Text,
            };
        }
    }

    /// Whatever hyper writes answers a head it has read in full.
    fn responding(&mut self) {
        if self.h2 {
            return;
        }
        self.deadline = None;
        self.responded = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timing(head: &HeadDeadline) -> bool {
        head.deadline.is_some()
    }

    #[tokio::test]
    async fn a_head_is_timed_until_its_blank_line_in_any_split() {
        for head in [
            &b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..],
            b"GET / HTTP/1.1\nHost: x\n\n",
        ] {
            for split in 0..=head.len() {
                let mut deadline = HeadDeadline::new();
                deadline.read(&head[..split]);
                assert_eq!(timing(&deadline), split < head.len(), "split at {split}");
                deadline.read(&head[split..]);
                assert!(!timing(&deadline));
            }
        }
    }

    #[tokio::test]
    async fn an_http2_connection_is_never_timed_in_any_split() {
        let mut start = H2_PREFACE.to_vec();
        start.extend_from_slice(b"\0\0\x06\x04\0\0\0\0\0");
        for split in 0..=start.len() {
            let mut deadline = HeadDeadline::new();
            deadline.read(&start[..split]);
            deadline.read(&start[split..]);
            deadline.responding();
            deadline.read(b"\0\0\x04\x08\0\0\0\0\0");
            assert!(!timing(&deadline), "split at {split}");
        }
        let mut http1 = HeadDeadline::new();
        http1.read(b"PRI / HTTP/1.1\r\n");
        assert!(timing(&http1));
        let mut plain = HeadDeadline::http1();
        plain.read(H2_PREFACE);
        plain.responding();
        plain.read(b"\0\0\x04\x08\0\0\0\0\0");
        assert!(timing(&plain), "h2c is timed as HTTP/1");
    }

    #[tokio::test]
    async fn empty_lines_before_a_request_end_no_head() {
        let mut deadline = HeadDeadline::new();
        deadline.read(b"\r\n\r\n\n\nGET / HTTP/1.1\r\n");
        assert!(timing(&deadline));
    }

    #[tokio::test]
    async fn the_next_head_is_timed_after_a_response_not_the_body_before_it() {
        let mut deadline = HeadDeadline::new();
        deadline.read(b"POST /trigger HTTP/1.1\r\nContent-Length: 2\r\n\r\n");
        deadline.read(b"{}");
        assert!(!timing(&deadline));
        deadline.responding();
        deadline.read(b"GET /");
        assert!(timing(&deadline));
    }
}
