//! # poem-example — the SSE contract with poem 3.1
//!
//! Shows: a streaming `/events` body fed by the shared hub, poem's `Cors` middleware per route
//! (with the two fixes the contract needs), the trigger's checks in the contract's order, JSON
//! errors for every rejection (404, 405 with `Allow`, 401, 413, 415, 400, 503) as a poem
//! `ResponseError`, the demo page gzip-compressed by poem's `Compression`, HTTPS with HTTP/2
//! (an acceptor of our own, `tls.rs`), a graceful shutdown that open streams cannot hold hostage,
//! and an acceptor (`hang_up.rs`) that lets a client that went away be noticed at the next write.
//!
//! Run it with `cargo run -p poem-example` (`-- --help` lists the settings), then
//! `curl -N http://127.0.0.1:3005/events` and, in another terminal,
//! `curl -X POST http://127.0.0.1:3005/trigger -H 'content-type: application/json' -d '{"data":"hi"}'`.

use std::fmt;
use std::io;
use std::sync::Arc;

use futures_util::StreamExt;
use poem::error::{CorsError, MethodNotAllowedError, NotFoundError, ReadBodyError, ResponseError};
use poem::http::header::{ACCEPT_ENCODING, ACCESS_CONTROL_ALLOW_ORIGIN, VARY};
use poem::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use poem::listener::{AcceptorExt, TcpAcceptor};
use poem::middleware::{Compression, Cors, SetHeader};
use poem::web::CompressionAlgo;
use poem::web::{Data, Html};
use poem::{
    Body, Endpoint, EndpointExt, IntoResponse, Request, Response, Route, RouteMethod, Server, get,
    handler, post,
};
use sse_core::server::{Started, start};
use sse_core::{
    ApiError, App, CORS_ALLOW_HEADERS, CORS_MAX_AGE_SECS, DEMO_PAGE, EVENT_STREAM_HEADERS,
    METRICS_CONTENT_TYPE, SHUTDOWN_GRACE, read_body_in_time,
};

use crate::hang_up::HangUpAware;
use crate::tls::Tls;

mod hang_up;
mod tls;

#[tokio::main]
async fn main() {
    let Started {
        app,
        listener,
        stopping,
    } = start(sse_core::this_framework!()).await;
    // poem leaves Nagle's algorithm on, which holds each small write (an event, a handshake
    // message) until the one before is ACKed: some 40 ms against a delayed ACK. Set on the
    // listener, TCP_NODELAY is copied by Linux to every accepted socket, plain or TLS.
    socket2::SockRef::from(&listener)
        .set_tcp_nodelay(true)
        .expect("TCP_NODELAY on a TCP listener");
    let tcp = TcpAcceptor::from_std(listener).expect("listener joins the runtime");
    // With TLS_CERT/TLS_KEY, a TLS acceptor of our own (`tls.rs` says why not poem's).
    let acceptor = match &app.config.tls {
        None => HangUpAware::plain(tcp).boxed(),
        Some(tls) => HangUpAware::tls(Tls::new(tcp, tls.server_config())).boxed(),
    };

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
        // Only the page is compressed: poem's `Compression` would compress `/events` too.
        .at(
            "/",
            resource(
                get(demo_page
                    .with(Compression::new().algorithms([CompressionAlgo::GZIP]))
                    .before(gzip_or_nothing)),
                "GET, HEAD",
            ),
        )
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

/// poem's `Compression` takes `gzip;q=0` for a yes and answers `*` with zstd: the request's
/// `Accept-Encoding` becomes plain `gzip` when it accepts gzip, and goes otherwise.
async fn gzip_or_nothing(mut request: Request) -> poem::Result<Request> {
    let headers = request.headers_mut();
    let values = headers.get_all(ACCEPT_ENCODING);
    let gzip = sse_core::compress::accepts_gzip(values.iter().filter_map(|v| v.to_str().ok()));
    headers.remove(ACCEPT_ENCODING);
    if gzip {
        headers.insert(ACCEPT_ENCODING, HeaderValue::from_static("gzip"));
    }
    Ok(request)
}

#[handler]
fn demo_page() -> impl IntoResponse {
    // poem's `Compression` says no `Vary`; a cache needs it.
    Html(DEMO_PAGE.as_str()).with_header(VARY, "accept-encoding")
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
    let headers = |name: &str| headers.get(name).map(HeaderValue::as_bytes);
    // poem has no default limit, and its `SizeLimit` trusts `Content-Length` alone (411 without
    // it), so the limit is applied while reading: a chunked body gets its 413 too. Nor has it a
    // body timeout: the shared one (408).
    let accepted = app
        .trigger(headers, |limit| {
            read_body_in_time(async move {
                body.into_bytes_limit(limit)
                    .await
                    .map_err(|error| match error {
                        ReadBodyError::PayloadTooLarge => ApiError::payload_too_large(limit),
                        _ => ApiError::unreadable_body(),
                    })
            })
        })
        .await?;
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
        self.0.status_code()
    }

    fn as_response(&self) -> Response {
        let (head, body) = poem::http::Response::<String>::from(self.0.clone()).into_parts();
        let mut response = Response::from((head.status, body));
        response.headers_mut().extend(head.headers);
        response
    }
}
