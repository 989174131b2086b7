//! # salvo-example — the SSE contract with salvo 1
//!
//! Shows: `/events` with salvo's own `SseEvent`/`SseKeepAlive` fed by the shared hub, state in
//! the `Depot` (`affix_state`), per-path CORS with salvo-cors, the trigger's checks in the
//! contract's order, JSON errors for every rejection (404, 405 with `Allow`,
//! 401, 413, 415, 400, 503), the demo page gzip-compressed by salvo's `Compression`, HTTPS with
//! HTTP/2 through salvo's rustls listener, and a graceful shutdown that open streams cannot
//! hold hostage.
//!
//! Run it with `cargo run -p salvo-example` (`-- --help` lists the settings), then
//! `curl -N http://127.0.0.1:3006/events` and, in another terminal,
//! `curl -X POST http://127.0.0.1:3006/trigger -H 'content-type: application/json' -d '{"data":"hi"}'`.

use std::convert::Infallible;
use std::io;
use std::time::Duration;

use futures_util::{StreamExt, future, stream};
use salvo::affix_state;
use salvo::conn::rustls::{Keycert, RustlsConfig, RustlsListener};
use salvo::conn::tcp::TcpAcceptor;
use salvo::conn::{Acceptor, Listener};
use salvo::cors::Cors;
use salvo::fuse::FuseConfig;
use salvo::http::header::{ACCESS_CONTROL_ALLOW_ORIGIN, CONTENT_TYPE};
use salvo::http::{HeaderName, HeaderValue, Method, ParseError, StatusCode};
use salvo::prelude::*;
use salvo::sse::{SseEvent, SseKeepAlive};
use salvo_compression::Compression;
use sse_core::server::{Started, Stopping, start};
use sse_core::{
    ApiError, App, CORS_ALLOW_HEADERS, CORS_MAX_AGE_SECS, DEMO_PAGE, EVENT_STREAM_HEADERS,
    METRICS_CONTENT_TYPE, REQUEST_BODY_TIMEOUT, REQUEST_HEAD_TIMEOUT, SHUTDOWN_GRACE,
};

#[tokio::main]
async fn main() {
    let Started {
        app,
        listener,
        stopping,
    } = start(sse_core::this_framework!()).await;
    // Nagle's algorithm holds each small write (a handshake message, an event) until the one
    // before is ACKed, some 40 ms against a delayed ACK. salvo's `TcpAcceptor` keeps the accepted
    // socket to itself, so TCP_NODELAY is set on the listener, which Linux copies to each one.
    socket2::SockRef::from(&listener)
        .set_tcp_nodelay(true)
        .expect("TCP_NODELAY on a TCP listener");
    let listener = tokio::net::TcpListener::from_std(listener).expect("listener joins the runtime");
    let acceptor = TcpAcceptor::try_from(listener).expect("bound listener has an address");
    let service = routes(app.clone());
    match &app.config.tls {
        None => serve(acceptor, service, stopping).await,
        // salvo's rustls listener (ALPN h2 and http/1.1), around the listener already bound.
        Some(tls) => {
            let keycert = Keycert::new()
                .cert(tls.cert_pem.clone())
                .key(tls.key_pem.clone());
            let acceptor = RustlsListener::new(RustlsConfig::new(keycert), Bound(acceptor))
                .try_bind()
                .await
                .expect("TLS_CERT and TLS_KEY were checked at start");
            serve(acceptor, service, stopping).await
        }
    }
}

async fn serve(acceptor: impl Acceptor + 'static, service: Service, stopping: Stopping) {
    // salvo's fuse already cuts a request head off after 30 s; the shared, shorter limit here,
    // and a limit on a stalled body (off by default), which the trigger answers with 408.
    let fuse = FuseConfig::default()
        .with_http1_header_timeout(REQUEST_HEAD_TIMEOUT)
        .with_request_body_timeout(REQUEST_BODY_TIMEOUT);
    // salvo handles no signals itself. Once `stopping` has ended every stream, salvo's graceful
    // stop has only to let them finish, and its own timeout cuts any connection still open
    // after the grace period (a client that stopped reading).
    let server = Server::new(acceptor).fuse_config(fuse);
    let handle = server.handle();
    tokio::spawn(async move {
        stopping.await;
        handle.stop_graceful(SHUTDOWN_GRACE);
    });
    server.serve(service).await;
}

/// salvo's TLS wraps a `Listener` (an address still to bind), and sse-core has bound the port
/// already: this hands the bound acceptor over as one.
struct Bound(TcpAcceptor);

impl Listener for Bound {
    type Acceptor = TcpAcceptor;

    async fn try_bind(self) -> salvo::Result<TcpAcceptor> {
        Ok(self.0)
    }
}

/// Every route of the contract, with its CORS and its JSON errors.
fn routes(app: App) -> Service {
    let origin = HeaderValue::from_str(&app.config.cors_origin).expect("CORS_ORIGIN was validated");
    let router = Router::new()
        .hoop(affix_state::inject(app))
        // Only the page is compressed (salvo's `Compression` takes any `text/*`).
        .push(resource(
            Router::new()
                .hoop(Compression::new())
                .get(demo_page)
                .head(demo_page),
            "GET, HEAD",
            &origin,
        ))
        .push(resource(
            Router::with_path("events").get(events).head(events),
            "GET, HEAD",
            &origin,
        ))
        .push(resource(
            Router::with_path("trigger").post(trigger),
            "POST",
            &origin,
        ))
        .push(resource(
            Router::with_path("health").get(health).head(health),
            "GET, HEAD",
            &origin,
        ))
        .push(resource(
            Router::with_path("metrics").get(metrics).head(metrics),
            "GET, HEAD",
            &origin,
        ))
        .push(Router::with_path("{**rest}").goal(NotFound(origin)));
    Service::new(router)
}

/// One path: its CORS (its own methods in the preflight) and a JSON 405 with `Allow` for every
/// other method. salvo-cors asks to sit on the `Service` because a preflight matches no route;
/// here the path's goal takes every other method, OPTIONS included, so the preflight reaches
/// this path's `Cors` and gets this path's methods.
fn resource(router: Router, allow: &'static str, origin: &HeaderValue) -> Router {
    let methods = allow
        .split(", ")
        .map(|method| Method::from_bytes(method.as_bytes()).expect("a standard method"));
    let cors = Cors::new()
        .allow_origin(origin.clone())
        .allow_methods(methods.collect::<Vec<_>>())
        .allow_headers(
            CORS_ALLOW_HEADERS
                .split(", ")
                .map(HeaderName::from_static)
                .collect::<Vec<_>>(),
        )
        .max_age(Duration::from_secs(CORS_MAX_AGE_SECS.into()))
        .into_handler();
    router.hoop(cors).goal(OtherMethods { allow })
}

/// The goal of a path for the methods it does not route (salvo's own 405 would skip the
/// path's CORS hoop and send HTML).
struct OtherMethods {
    allow: &'static str,
}

#[handler]
impl OtherMethods {
    fn handle(&self, req: &Request, res: &mut Response) {
        if req.method() == Method::OPTIONS {
            // The path's `Cors` hoop adds the preflight headers.
            res.status_code(StatusCode::NO_CONTENT);
        } else {
            let path = req.uri().path();
            let error = ApiError::method_not_allowed(req.method().as_str(), path, self.allow);
            res.render(JsonError(error));
        }
    }
}

fn state(depot: &Depot) -> &App {
    depot
        .get_typed::<App>()
        .expect("affix_state injects the App")
}

#[handler]
fn demo_page() -> Text<&'static str> {
    Text::Html(DEMO_PAGE.as_str())
}

#[handler]
async fn events(req: &Request, depot: &Depot, res: &mut Response) -> Result<(), JsonError> {
    let app = state(depot);
    let last_event_id = req
        .headers()
        .get("last-event-id")
        .map(HeaderValue::as_bytes);
    let subscription = app.subscribe(last_event_id, req.uri().query()).await?;
    // salvo's encoder splits data at CR, LF and CRLF and keeps leading spaces and empty data,
    // so it carries every payload; ids and names come from the hub and hold no line breaks,
    // which it would assert on.
    let retry = SseEvent::default().retry(Duration::from_millis(app.config.retry_ms));
    let published = subscription.map(|event| {
        let sse = SseEvent::default().name(event.name()).text(event.text());
        match event.id() {
            Some(id) => sse.id(id.to_string()),
            None => sse,
        }
    });
    SseKeepAlive::new(
        stream::once(future::ready(retry))
            .chain(published)
            .map(Ok::<_, Infallible>),
    )
    .max_interval(app.config.heartbeat())
    .stream(res);
    for (name, value) in EVENT_STREAM_HEADERS {
        res.headers_mut()
            .insert(name, HeaderValue::from_static(value));
    }
    Ok(())
}

#[handler]
async fn trigger(
    req: &mut Request,
    depot: &Depot,
) -> Result<(StatusCode, Text<String>), JsonError> {
    // Cloned: reading the body needs the request mutably.
    let headers = req.headers().clone();
    let headers = |name: &str| headers.get(name).map(HeaderValue::as_bytes);
    let accepted = state(depot)
        .trigger(headers, |limit| async move {
            req.payload_with_max_size(limit)
                .await
                .map_err(|error| match error {
                    ParseError::PayloadTooLarge => ApiError::payload_too_large(limit),
                    ParseError::Other(error)
                        if error
                            .downcast_ref::<io::Error>()
                            .is_some_and(|error| error.kind() == io::ErrorKind::TimedOut) =>
                    {
                        ApiError::request_timeout(REQUEST_BODY_TIMEOUT)
                    }
                    _ => ApiError::unreadable_body(),
                })
        })
        .await?;
    Ok((StatusCode::ACCEPTED, Text::Json(accepted.body())))
}

#[handler]
async fn health(depot: &Depot) -> Text<String> {
    Text::Json(state(depot).health().await)
}

#[handler]
async fn metrics(depot: &Depot, response: &mut Response) {
    let content_type = HeaderValue::from_static(METRICS_CONTENT_TYPE);
    response.headers_mut().insert(CONTENT_TYPE, content_type);
    response.render(state(depot).metrics());
}

/// Every other path. No path's CORS ran, so the origin header is added here. (A `Catcher` could
/// write this 404 too, but salvo skips catchers for HEAD, and the header must be on every answer.)
struct NotFound(HeaderValue);

#[handler]
impl NotFound {
    fn handle(&self, req: &Request, res: &mut Response) {
        res.headers_mut()
            .insert(ACCESS_CONTROL_ALLOW_ORIGIN, self.0.clone());
        res.render(JsonError(ApiError::not_found(req.uri().path())));
    }
}

/// The contract's JSON error as a salvo `Scribe`.
struct JsonError(ApiError);

impl From<ApiError> for JsonError {
    fn from(error: ApiError) -> Self {
        Self(error)
    }
}

impl Scribe for JsonError {
    fn render(self, res: &mut Response) {
        let (head, body) = http::Response::<String>::from(self.0).into_parts();
        res.status_code(head.status);
        res.headers_mut().extend(head.headers);
        res.body(body);
    }
}
