//! # poem-example — the SSE contract with poem 3.1
//!
//! Shows: a streaming `/events` body fed by the shared hub, poem's `Cors` middleware per route
//! (with the two fixes the contract needs), the trigger's checks in the contract's order, JSON
//! errors for every rejection (404, 405 with `Allow`, 401, 413, 415, 400, 503) as a poem
//! `ResponseError`, a graceful shutdown that open streams cannot hold hostage, and an acceptor
//! that lets a client that went away be noticed at the next write.
//!
//! Run it with `cargo run -p poem-example` (`-- --help` lists the settings), then
//! `curl -N http://127.0.0.1:3005/events` and, in another terminal,
//! `curl -X POST http://127.0.0.1:3005/trigger -H 'content-type: application/json' -d '{"data":"hi"}'`.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use futures_util::StreamExt;
use poem::error::{CorsError, MethodNotAllowedError, NotFoundError, ReadBodyError, ResponseError};
use poem::http::header::ACCESS_CONTROL_ALLOW_ORIGIN;
use poem::http::uri::Scheme;
use poem::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use poem::listener::{Acceptor, TcpAcceptor};
use poem::middleware::{Cors, SetHeader};
use poem::web::{Data, Html, LocalAddr, RemoteAddr};
use poem::{
    Body, Endpoint, EndpointExt, Request, Response, Route, RouteMethod, Server, get, handler, post,
};
use sse_core::server::{Started, start};
use sse_core::{
    ApiError, App, CORS_ALLOW_HEADERS, CORS_MAX_AGE_SECS, DEMO_PAGE, ERROR_CONTENT_TYPE,
    EVENT_STREAM_HEADERS, Framework, MAX_TRIGGER_BODY, METRICS_CONTENT_TYPE, REQUEST_HEAD_TIMEOUT,
    SHUTDOWN_GRACE, read_body_in_time,
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Sleep, sleep};

const FRAMEWORK: Framework = Framework {
    name: "poem",
    package: "poem-example",
    default_port: 3005,
};

#[tokio::main]
async fn main() {
    let Started {
        app,
        listener,
        stopping,
    } = start(FRAMEWORK).await;
    let acceptor =
        HangUpAware(TcpAcceptor::from_std(listener).expect("listener joins the runtime"));

    // `stopping` has ended every stream; poem's own timeout then drops whatever is still open
    // (a client that stopped reading), so the process exits in time anyway.
    Server::new_with_acceptor(acceptor)
        .run_with_graceful_shutdown(routes(app), stopping, Some(SHUTDOWN_GRACE))
        .await
        .expect("server error");
}

/// Every route of the contract, with its CORS and its JSON errors.
fn routes(app: App) -> impl Endpoint {
    let origin = app.config.cors_origin.clone();
    Route::new()
        .at("/", resource(get(demo_page), "GET, HEAD"))
        .at("/events", resource(get(events), "GET, HEAD"))
        .at("/trigger", resource(post(trigger), "POST"))
        .at("/health", resource(get(health), "GET, HEAD"))
        .at("/metrics", resource(get(metrics), "GET, HEAD"))
        .around(finish)
        // poem's `Cors` sets the origin only on requests that carry `Origin`, and echoes that
        // instead of the configured value; the contract wants the configured value everywhere.
        .with(SetHeader::new().overriding(ACCESS_CONTROL_ALLOW_ORIGIN, origin))
        .data(app)
}

/// One path: its methods, a JSON 405 with `Allow`, and poem's `Cors` answering preflights with
/// just those methods.
fn resource(methods: RouteMethod, allow: &'static str) -> impl Endpoint {
    let cors = Cors::new()
        .allow_methods(allow.split(", "))
        .allow_headers(CORS_ALLOW_HEADERS.split(", "))
        .max_age(CORS_MAX_AGE_SECS as i32);
    // The 405 is reshaped inside `Cors`: for a request with `Origin`, `Cors` turns the inner
    // error into poem's plain-text response before anything outside could see it.
    methods
        .around(move |route, request| async move {
            let method = request.method().clone();
            let path = request.uri().path().to_owned();
            route.call(request).await.map_err(|error| {
                if error.is::<MethodNotAllowedError>() {
                    JsonError(ApiError::method_not_allowed(method.as_str(), &path, allow)).into()
                } else {
                    error
                }
            })
        })
        .with(cors)
}

/// The outermost glue: every error still left (poem's 404 and CORS refusals, or one of ours)
/// becomes the contract's JSON, and a preflight's 200 becomes 204.
async fn finish(route: Arc<Route>, request: Request) -> poem::Result<Response> {
    let preflight = request.method() == Method::OPTIONS;
    let path = request.uri().path().to_owned();
    let mut response = match route.call(request).await {
        Ok(response) => response,
        Err(error) if error.is::<JsonError>() => error.into_response(),
        Err(error) => {
            let message = if error.is::<NotFoundError>() {
                ApiError::not_found(&path).message
            } else if error.is::<CorsError>() {
                format!(
                    "the CORS preflight for {path} was refused ({error}); ask for one of its \
                     methods and only the headers {CORS_ALLOW_HEADERS}"
                )
            } else {
                format!("{error} ({path})")
            };
            let status = error.status().as_u16();
            JsonError(ApiError {
                status,
                message,
                headers: Vec::new(),
            })
            .as_response()
        }
    };
    // poem's `Cors` answers a preflight with 200; the contract (like most servers) says 204.
    if preflight && response.status() == StatusCode::OK {
        response.set_status(StatusCode::NO_CONTENT);
    }
    Ok(response)
}

#[handler]
fn demo_page() -> Html<&'static str> {
    Html(DEMO_PAGE)
}

#[handler]
async fn events(
    Data(app): Data<&App>,
    headers: &HeaderMap,
    uri: &Uri,
) -> Result<Response, JsonError> {
    let last_event_id = headers.get("last-event-id").map(HeaderValue::as_bytes);
    let subscription = app.subscribe(last_event_id, uri.query()).await?;
    // poem's `SSE` splits data with `str::lines()` (a lone CR ends no line, a trailing LF is
    // lost, empty data sends no event at all) and cannot write comments, so the hub's
    // pre-encoded events go out as a plain streaming body instead, with the heartbeat included.
    let body = Body::from_bytes_stream(app.event_stream_body(subscription).map(Ok::<_, io::Error>));
    let response = EVENT_STREAM_HEADERS
        .into_iter()
        .fold(Response::builder(), |response, (name, value)| {
            response.header(name, value)
        });
    Ok(response.body(body))
}

#[handler]
async fn trigger(
    Data(app): Data<&App>,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, JsonError> {
    let head = app.check_trigger_headers(|name| headers.get(name).map(HeaderValue::as_bytes))?;
    // Read the body only now, so that 401 and 415 win over 413 as the contract orders them.
    // poem has no default limit, and its `SizeLimit` trusts `Content-Length` alone (411 without
    // it), so the limit is applied while reading: a chunked body gets its 413 too. Nor has it a
    // body timeout: the shared one (408).
    let body = read_body_in_time(async {
        body.into_bytes_limit(MAX_TRIGGER_BODY)
            .await
            .map_err(|error| match error {
                ReadBodyError::PayloadTooLarge => ApiError::payload_too_large(MAX_TRIGGER_BODY),
                _ => ApiError::unreadable_body(),
            })
    })
    .await;
    let accepted = app.publish_trigger(head, body).await?;
    Ok(Response::builder()
        .status(StatusCode::ACCEPTED)
        .content_type("application/json")
        .body(accepted.body()))
}

#[handler]
async fn health(Data(app): Data<&App>) -> Response {
    Response::builder()
        .content_type("application/json")
        .body(app.health().await)
}

#[handler]
fn metrics(Data(app): Data<&App>) -> Response {
    Response::builder()
        .content_type(METRICS_CONTENT_TYPE)
        .body(app.metrics())
}

/// The contract's JSON error as a poem error, so that handlers can use `?` on an [`ApiError`].
#[derive(Debug)]
struct JsonError(ApiError);

impl From<ApiError> for JsonError {
    fn from(error: ApiError) -> Self {
        Self(error)
    }
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for JsonError {}

impl ResponseError for JsonError {
    fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.0.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn as_response(&self) -> Response {
        let response = Response::builder()
            .status(self.status())
            .content_type(ERROR_CONTENT_TYPE);
        let response = self
            .0
            .headers
            .iter()
            .fold(response, |response, (name, value)| {
                response.header(*name, value)
            });
        response.body(self.0.body())
    }
}

/// poem 3.1.12 keeps polling a connection after hyper has reported that the client closed it
/// (`server.rs:463-477` awaits it again), and the first write to a closed socket still
/// succeeds, so a stream would outlive its client until a second write failed. Connections
/// from this acceptor refuse every write once the client has closed its side (hyper serves no
/// half-closed connections anyway), so the next write ends the stream and frees the client.
/// They also time request heads: see [`HeadDeadline`].
struct HangUpAware(TcpAcceptor);

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

struct HangUpAwareStream {
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
