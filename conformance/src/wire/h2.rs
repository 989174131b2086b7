//! One HTTP/2 request over a TLS connection of its own (the `h2` crate): the equivalent, for
//! the checks, of a [`super::Connection`] with one request on it. The response's DATA frames
//! are the body; `END_STREAM` ends it cleanly, an `RST_STREAM` resets it, and a connection that
//! closes before either cuts it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use h2::client::SendRequest;
use h2::{Reason, RecvStream, SendStream};

use super::{BodyEnd, Head, WireResult};

/// Headers that HTTP/2 forbids (RFC 9113 §8.2.2): the raw HTTP/1.1 checks may pass them, and
/// HTTP/2 has its own way for each (`:authority` for `Host`, frames for the rest).
const CONNECTION_SPECIFIC: &[&str] = &[
    "host",
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
];

/// The suite's HTTP/2 client settings. The h2 crate ends a connection that brings "too many"
/// small DATA frames it holds unread (a defence of its own); a hundred streams of small events
/// and heartbeats read one after another are no attack, and browsers set no such budget.
pub fn client() -> h2::client::Builder {
    let mut builder = h2::client::Builder::new();
    builder.data_frame_budget(1 << 30);
    builder
}

/// A TLS connection (ALPN `h2` in `config`) and the HTTP/2 handshake on it, driven by a task of
/// its own: the handle to send requests with, and that task.
pub async fn connect(
    address: SocketAddr,
    config: Arc<rustls::ClientConfig>,
    builder: &h2::client::Builder,
) -> WireResult<(SendRequest<Bytes>, tokio::task::JoinHandle<()>)> {
    handshake(crate::tls::connect(address, config).await?, builder).await
}

/// The HTTP/2 handshake (within 5 s) on a connection that chose `h2`, and the task driving it.
pub async fn handshake<S>(
    io: S,
    builder: &h2::client::Builder,
) -> WireResult<(SendRequest<Bytes>, tokio::task::JoinHandle<()>)>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (send, connection) = tokio::time::timeout(Duration::from_secs(5), builder.handshake(io))
        .await
        .map_err(|_| "the HTTP/2 handshake took more than 5 s".to_owned())?
        .map_err(|e| format!("the HTTP/2 handshake failed: {e}"))?;
    let driver = tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok((send, driver))
}

/// Sends `request` on the connection (once it can take another stream) with `body` in DATA
/// frames, and waits for the response head.
pub async fn send(
    connection: &SendRequest<Bytes>,
    request: http::Request<()>,
    body: Option<&[u8]>,
) -> WireResult<(http::Response<RecvStream>, SendStream<Bytes>)> {
    let what = format!("{} {}", request.method(), request.uri().path());
    let mut ready = connection
        .clone()
        .ready()
        .await
        .map_err(|e| format!("the HTTP/2 connection is not ready: {e}"))?;
    let (response, mut stream) = ready
        .send_request(request, body.is_none())
        .map_err(|e| format!("cannot send {what} over HTTP/2: {e}"))?;
    if let Some(body) = body {
        stream
            .send_data(Bytes::copy_from_slice(body), true)
            .map_err(|e| format!("cannot send the body of {what}: {e}"))?;
    }
    let response = response
        .await
        .map_err(|e| format!("{what} over HTTP/2 failed: {e}"))?;
    Ok((response, stream))
}

/// A response's status and headers as the raw client's [`Head`], `latency` after the request.
pub fn head(parts: &http::response::Parts, latency: Duration) -> Head {
    Head {
        status: parts.status.as_u16(),
        headers: parts
            .headers
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_owned(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect(),
        latency,
    }
}

/// A request's response being read: the head is in, the DATA frames come as they arrive.
pub struct H2Body {
    body: RecvStream,
    /// Kept so that the request's stream stays ours until the body is dropped.
    request: Option<SendStream<Bytes>>,
    /// Kept so that the connection stays open while the body is read.
    _connection: SendRequest<Bytes>,
    driver: tokio::task::JoinHandle<()>,
}

/// Opens a connection of its own, sends the request (a body in DATA frames, without a
/// `Content-Length` unless `headers` give one) and waits for the response head, for at most
/// `head_timeout` from the request. `receive_buffer` makes the socket's receive buffer and the
/// stream's and connection's flow-control windows that small (a client that reads slowly).
#[allow(clippy::too_many_arguments)]
pub async fn request(
    address: SocketAddr,
    receive_buffer: Option<u32>,
    config: Arc<rustls::ClientConfig>,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    head_timeout: Duration,
) -> WireResult<(Head, H2Body)> {
    let tcp = super::tcp(address, receive_buffer).await?;
    let tls = crate::tls::handshake(address, tcp, config).await?;
    let mut builder = client();
    if let Some(window) = receive_buffer {
        builder
            .initial_window_size(window)
            .initial_connection_window_size(window);
    }
    let (connection, driver) = handshake(tls, &builder).await?;
    let mut request = http::Request::builder()
        .method(method)
        .uri(format!("https://{address}{path}"));
    for (name, value) in headers {
        if !CONNECTION_SPECIFIC.contains(&name.to_ascii_lowercase().as_str()) {
            request = request.header(*name, *value);
        }
    }
    let request = request
        .body(())
        .map_err(|e| format!("cannot make the request {method} {path}: {e}"))?;
    let sent = Instant::now();
    let body = (!body.is_empty()).then_some(body);
    let answer = tokio::time::timeout(head_timeout, send(&connection, request, body)).await;
    let (response, stream) = match answer {
        Ok(Ok(answer)) => answer,
        Ok(Err(error)) => {
            driver.abort();
            return Err(error);
        }
        Err(_) => {
            driver.abort();
            return Err(format!(
                "no response head within {} ms",
                head_timeout.as_millis()
            ));
        }
    };
    let (parts, body) = response.into_parts();
    Ok((
        head(&parts, sent.elapsed()),
        H2Body {
            body,
            request: Some(stream),
            _connection: connection,
            driver,
        },
    ))
}

/// What one read of the body gave.
pub enum Read {
    Data(Bytes),
    End(BodyEnd),
    /// Nothing within the time given.
    Nothing,
}

impl H2Body {
    /// Whether the response ended with its head (`END_STREAM` on HEADERS).
    pub fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    /// Waits at most `timeout` for the next DATA frame or the stream's end. Each frame's bytes
    /// are given back to the flow-control window as soon as they are read.
    pub async fn read_within(&mut self, timeout: Duration) -> Read {
        match tokio::time::timeout(timeout, self.body.data()).await {
            Err(_) => Read::Nothing,
            Ok(None) => Read::End(BodyEnd::Clean),
            Ok(Some(Ok(data))) => {
                let _ = self.body.flow_control().release_capacity(data.len());
                Read::Data(data)
            }
            Ok(Some(Err(error))) if error.is_reset() => Read::End(BodyEnd::Reset),
            Ok(Some(Err(_))) => Read::End(BodyEnd::Truncated),
        }
    }

    /// Goes away without a word: the connection is dropped, no `RST_STREAM` is sent.
    pub fn abort(self) {
        self.driver.abort();
    }
}

impl Drop for H2Body {
    /// A client that goes away: `RST_STREAM` (CANCEL) for its stream, then the connection is
    /// closed once that is sent (the h2 connection ends when nothing uses it any more).
    fn drop(&mut self) {
        if let Some(mut stream) = self.request.take() {
            stream.send_reset(Reason::CANCEL);
        }
        // The driver ends by itself once the reset is out and no handle is left; a server
        // that never answers is dealt with by the bound below.
        let driver = self.driver.abort_handle();
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn(async move {
                tokio::time::sleep(Duration::from_secs(10)).await;
                driver.abort();
            })),
            Err(_) => driver.abort(),
        }
    }
}

/// The frame types an HTTP/2 server sent, read off the bytes as they pass (the `h2` crate
/// keeps a `GOAWAY` to itself): what a check wraps a connection in to judge the frames.
pub struct FrameTap<S> {
    inner: S,
    /// The current frame header's bytes so far.
    header: [u8; 9],
    filled: usize,
    /// Payload bytes of the current frame still to pass.
    payload_left: usize,
    seen: Arc<std::sync::Mutex<Vec<u8>>>,
}

/// The `GOAWAY` frame type (RFC 9113 §6.8).
pub const GOAWAY: u8 = 0x7;

impl<S> FrameTap<S> {
    /// Wraps the client's side of a connection whose first byte from the server begins a frame
    /// (a server's connection preface is its SETTINGS frame). The list fills as frames arrive.
    pub fn new(inner: S) -> (Self, Arc<std::sync::Mutex<Vec<u8>>>) {
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let tap = Self {
            inner,
            header: [0; 9],
            filled: 0,
            payload_left: 0,
            seen: Arc::clone(&seen),
        };
        (tap, seen)
    }

    fn observe(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            if self.payload_left > 0 {
                let skip = self.payload_left.min(bytes.len());
                self.payload_left -= skip;
                bytes = &bytes[skip..];
                continue;
            }
            let take = (9 - self.filled).min(bytes.len());
            self.header[self.filled..self.filled + take].copy_from_slice(&bytes[..take]);
            self.filled += take;
            bytes = &bytes[take..];
            if self.filled == 9 {
                let length =
                    u32::from_be_bytes([0, self.header[0], self.header[1], self.header[2]]);
                self.payload_left = length as usize;
                self.filled = 0;
                self.seen
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(self.header[3]);
            }
        }
    }
}

impl<S: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for FrameTap<S> {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let poll = std::pin::Pin::new(&mut this.inner).poll_read(cx, buf);
        if poll.is_ready() {
            let new = buf.filled()[before..].to_vec();
            this.observe(&new);
        }
        poll
    }
}

impl<S: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for FrameTap<S> {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
