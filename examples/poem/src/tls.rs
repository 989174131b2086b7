//! HTTPS for poem-example: poem's `TcpAcceptor` with a TLS handshake made lazily inside each
//! connection's own task, by tokio-rustls with sse-core's configuration (ALPN h2, http/1.1).
//!
//! poem 3.1.12's own `RustlsAcceptor` loads its configuration in the same unbiased `select!` as
//! the first accept (`listener/rustls.rs:382-405`): a connection already waiting when the server
//! starts can be accepted before the configuration and dropped ("no valid tls config"). Its
//! `rustls` feature also brings aws-lc-rs in, whatever the process's provider.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use poem::http::uri::Scheme;
use poem::listener::{Acceptor, TcpAcceptor};
use poem::web::{LocalAddr, RemoteAddr};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_rustls::{Accept, TlsAcceptor};

/// Accepts from `A` and speaks TLS on every connection.
pub struct Tls<A> {
    inner: A,
    tls: TlsAcceptor,
}

impl<A> Tls<A> {
    pub fn new(inner: A, config: Arc<rustls::ServerConfig>) -> Self {
        Self {
            inner,
            tls: TlsAcceptor::from(config),
        }
    }
}

impl Acceptor for Tls<TcpAcceptor> {
    type Io = Handshaking<TcpStream>;

    fn local_addr(&self) -> Vec<LocalAddr> {
        self.inner.local_addr()
    }

    async fn accept(&mut self) -> io::Result<(Self::Io, LocalAddr, RemoteAddr, Scheme)> {
        let (stream, local, remote, _) = self.inner.accept().await?;
        let stream = Handshaking::Pending(Box::new(self.tls.accept(stream)));
        Ok((stream, local, remote, Scheme::HTTPS))
    }
}

/// A connection whose handshake completes at its first read or write; a failed handshake
/// fails only this connection (a plain-HTTP client, say).
pub enum Handshaking<S> {
    Pending(Box<Accept<S>>),
    Ready(Box<TlsStream<S>>),
    Failed,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Handshaking<S> {
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<&mut TlsStream<S>>> {
        if let Self::Pending(accept) = self {
            *self = match ready!(Pin::new(&mut **accept).poll(cx)) {
                Ok(stream) => Self::Ready(Box::new(stream)),
                Err(error) => {
                    *self = Self::Failed;
                    return Poll::Ready(Err(error));
                }
            };
        }
        match self {
            Self::Ready(stream) => Poll::Ready(Ok(stream)),
            _ => Poll::Ready(Err(io::ErrorKind::NotConnected.into())),
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for Handshaking<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let stream = ready!(self.poll_ready(cx))?;
        Pin::new(stream).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Handshaking<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let stream = ready!(self.poll_ready(cx))?;
        Pin::new(stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let stream = ready!(self.poll_ready(cx))?;
        Pin::new(stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let stream = ready!(self.poll_ready(cx))?;
        Pin::new(stream).poll_shutdown(cx)
    }
}
