//! The acceptor poem-example serves with: poem's `TcpAcceptor`, with connections that notice a
//! client that went away at the next write and that time request heads (see [`HangUpAware`]).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use poem::http::uri::Scheme;
use poem::listener::{Acceptor, TcpAcceptor};
use poem::web::{LocalAddr, RemoteAddr};
use sse_core::REQUEST_HEAD_TIMEOUT;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Sleep, sleep};

/// poem 3.1.12 keeps polling a connection after hyper has reported that the client closed it
/// (`server.rs:463-477` awaits it again), and the first write to a closed socket still
/// succeeds, so a stream would outlive its client until a second write failed. Connections
/// from this acceptor refuse every write once the client has closed its side (hyper serves no
/// half-closed connections anyway), so the next write ends the stream and frees the client.
/// They also time request heads: see [`HeadDeadline`].
pub struct HangUpAware(pub TcpAcceptor);

impl Acceptor for HangUpAware {
    type Io = HangUpAwareStream;

    fn local_addr(&self) -> Vec<LocalAddr> {
        self.0.local_addr()
    }

    async fn accept(&mut self) -> io::Result<(Self::Io, LocalAddr, RemoteAddr, Scheme)> {
        let (stream, local, remote, scheme) = self.0.accept().await?;
        let stream = HangUpAwareStream {
            stream,
            hung_up: false,
            head: HeadDeadline::new(),
        };
        Ok((stream, local, remote, scheme))
    }
}

pub struct HangUpAwareStream {
    stream: TcpStream,
    hung_up: bool,
    head: HeadDeadline,
}

impl AsyncRead for HangUpAwareStream {
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

impl AsyncWrite for HangUpAwareStream {
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
/// after the deadline fails, and hyper closes the connection. Bodies and streams are untimed.
struct HeadDeadline {
    /// Running while a head is awaited.
    deadline: Option<Pin<Box<Sleep>>>,
    /// Where the bytes read stand in looking for the blank line that ends the head.
    line: Line,
    /// A response has begun since the last head ended: the next bytes read start a new head.
    responded: bool,
}

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
            line: Line::Before,
            responded: false,
        }
    }

    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        self.deadline
            .as_mut()
            .is_some_and(|deadline| deadline.as_mut().poll(cx).is_ready())
    }

    fn read(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        if self.deadline.is_none() {
            if !self.responded {
                return; // the body of the request being answered
            }
            *self = Self::new();
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
