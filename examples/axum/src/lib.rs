//! # axum-example — the SSE contract with axum 0.8
//!
//! Shows: a streaming `/events` body fed by the shared hub, per-route CORS with tower-http, the
//! demo page gzip-compressed by tower-http's `CompressionLayer`, the trigger's checks in the
//! contract's order, JSON errors for every rejection (404, 405 with `Allow`, 401, 413, 415,
//! 400, 503), `/metrics` for Prometheus, and the router served as
//! a tower service on hyper's own connection builders (sse-core's `serve`), for a
//! request-head timeout, HTTPS with HTTP/2 (`TLS_CERT`/`TLS_KEY`, tokio-rustls) and a graceful
//! shutdown that open streams cannot hold hostage.
//!
//! Run it with `cargo run -p axum-example` (`-- --help` lists the settings), then
//! `curl -N http://127.0.0.1:3001/events` and, in another terminal,
//! `curl -X POST http://127.0.0.1:3001/trigger -H 'content-type: application/json' -d '{"data":"hi"}'`.

use std::convert::Infallible;
use std::error::Error;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::{ACCESS_CONTROL_ALLOW_ORIGIN, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use futures_util::StreamExt;
use sse_core::{
    ApiError, App, CORS_ALLOW_HEADERS, CORS_MAX_AGE_SECS, DEMO_PAGE, EVENT_STREAM_HEADERS,
    METRICS_CONTENT_TYPE, REQUEST_BODY_TIMEOUT,
};
use tower_http::compression::CompressionLayer;
use tower_http::cors::CorsLayer;
use tower_http::timeout::{RequestBodyDeadlineLayer, TimeoutError};

/// Every route of the contract, with its CORS and its JSON errors.
pub fn routes(app: App) -> Router {
    let origin = HeaderValue::from_str(&app.config.cors_origin).expect("CORS_ORIGIN was validated");
    Router::new()
        .route(
            "/",
            // Only the page is compressed (gzip, for clients that accept it); tower-http's
            // default predicate would skip `text/event-stream` anyway.
            resource(
                get(demo_page).layer(CompressionLayer::new()),
                &[Method::GET, Method::HEAD],
                &origin,
            ),
        )
        .route(
            "/events",
            resource(get(events), &[Method::GET, Method::HEAD], &origin),
        )
        .route(
            "/trigger",
            resource(
                // A body that has not arrived in full by the deadline fails to read (408).
                post(trigger).layer(RequestBodyDeadlineLayer::new(REQUEST_BODY_TIMEOUT)),
                &[Method::POST],
                &origin,
            ),
        )
        .route(
            "/health",
            resource(get(health), &[Method::GET, Method::HEAD], &origin),
        )
        .route(
            "/metrics",
            resource(get(metrics), &[Method::GET, Method::HEAD], &origin),
        )
        .fallback(not_found)
        .layer(middleware::from_fn(preflight_no_content))
        .with_state(app)
}

/// A route's CORS (its own methods in the preflight) and its JSON 405 with `Allow`.
fn resource(
    route: MethodRouter<App>,
    methods: &[Method],
    origin: &HeaderValue,
) -> MethodRouter<App> {
    let allow: &'static str = methods
        .iter()
        .map(Method::as_str)
        .collect::<Vec<_>>()
        .join(", ")
        .leak();
    let cors = CorsLayer::new()
        .allow_origin(origin.clone())
        .allow_methods(methods.to_vec())
        .allow_headers(
            CORS_ALLOW_HEADERS
                .split(", ")
                .map(HeaderName::from_static)
                .collect::<Vec<_>>(),
        )
        .max_age(Duration::from_secs(CORS_MAX_AGE_SECS.into()));
    route
        .fallback(move |method: Method, uri: Uri| async move {
            JsonError(ApiError::method_not_allowed(
                method.as_str(),
                uri.path(),
                allow,
            ))
        })
        .layer(cors)
}

/// tower-http answers a preflight with 200; the contract (like most servers) says 204.
async fn preflight_no_content(request: Request, next: Next) -> Response {
    let preflight = request.method() == Method::OPTIONS;
    let mut response = next.run(request).await;
    if preflight && response.status() == StatusCode::OK {
        *response.status_mut() = StatusCode::NO_CONTENT;
    }
    response
}

async fn demo_page() -> Html<&'static str> {
    Html(DEMO_PAGE.as_str())
}

async fn events(
    State(app): State<App>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, JsonError> {
    let last_event_id = headers.get("last-event-id").map(HeaderValue::as_bytes);
    let subscription = app.subscribe(last_event_id, uri.query()).await?;
    // axum's own `Sse` cannot send an event whose data is empty (it writes no `data:` line) and
    // in 0.8.9 turns a CRLF into two lines, so the hub's pre-encoded events go out as a plain
    // streaming body instead, with the heartbeat included.
    let body = Body::from_stream(app.event_stream_body(subscription).map(Ok::<_, Infallible>));
    Ok((EVENT_STREAM_HEADERS, body).into_response())
}

async fn trigger(State(app): State<App>, request: Request) -> Result<Response, JsonError> {
    let (head, body) = request.into_parts();
    let headers = |name: &str| head.headers.get(name).map(HeaderValue::as_bytes);
    let accepted = app
        .trigger(headers, |limit| async move {
            axum::body::to_bytes(body, limit).await.map_err(|error| {
                let error = error.into_inner();
                if error.is::<http_body_util::LengthLimitError>() {
                    ApiError::payload_too_large(limit)
                } else if caused_by::<TimeoutError>(&*error) {
                    ApiError::request_timeout(REQUEST_BODY_TIMEOUT)
                } else {
                    ApiError::unreadable_body()
                }
            })
        })
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        [(CONTENT_TYPE, "application/json")],
        accepted.body(),
    )
        .into_response())
}

/// Whether `error` or one of its sources is an `E` (body errors arrive wrapped in axum's).
fn caused_by<E: Error + 'static>(error: &(dyn Error + 'static)) -> bool {
    let mut error = Some(error);
    while let Some(current) = error {
        if current.is::<E>() {
            return true;
        }
        error = current.source();
    }
    false
}

async fn health(State(app): State<App>) -> impl IntoResponse {
    ([(CONTENT_TYPE, "application/json")], app.health().await)
}

async fn metrics(State(app): State<App>) -> impl IntoResponse {
    ([(CONTENT_TYPE, METRICS_CONTENT_TYPE)], app.metrics())
}

/// Unknown paths get no CORS layer (a preflight there is a 404 too), only the origin header.
async fn not_found(State(app): State<App>, uri: Uri) -> impl IntoResponse {
    let origin = [(ACCESS_CONTROL_ALLOW_ORIGIN, app.config.cors_origin.clone())];
    (origin, JsonError(ApiError::not_found(uri.path())))
}

/// The contract's JSON error as an axum response.
struct JsonError(ApiError);

impl From<ApiError> for JsonError {
    fn from(error: ApiError) -> Self {
        Self(error)
    }
}

impl IntoResponse for JsonError {
    fn into_response(self) -> Response {
        Response::from(self.0)
    }
}
