//! # warp-example — the SSE contract with warp 0.4
//!
//! Shows: the contract's routes as warp filters joined with `or`, where each path answers every
//! method itself (its handler, its CORS preflight, a JSON 405 with `Allow`) so that no warp
//! rejection ever reaches the client as plain text; a streaming `/events` body fed by the shared
//! hub; the trigger's checks in the contract's order with a body limit that holds for chunked
//! bodies too; the demo page gzip-compressed by warp's `compression::gzip()`; and the filters
//! served as a tower service on hyper's own connection builders (sse-core's `serve`), for a
//! request-head timeout, HTTPS with HTTP/2 (tokio-rustls) and a graceful shutdown that open
//! streams cannot hold hostage.
//!
//! Run it with `cargo run -p warp-example` (`-- --help` lists the settings), then
//! `curl -N http://127.0.0.1:3003/events` and, in another terminal,
//! `curl -X POST http://127.0.0.1:3003/trigger -H 'content-type: application/json' -d '{"data":"hi"}'`.

use std::convert::Infallible;
use std::pin::pin;

use bytes::BufMut;
use futures_util::{Stream, StreamExt};
use sse_core::hyper_server::serve;
use sse_core::server::start;
use sse_core::{
    ApiError, App, CORS_ALLOW_HEADERS, CORS_MAX_AGE_SECS, DEMO_PAGE, EVENT_STREAM_HEADERS,
    METRICS_CONTENT_TYPE, read_body_in_time,
};
use warp::http::header::{
    ACCEPT_ENCODING, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_MAX_AGE, CONTENT_TYPE, VARY,
};
use warp::http::{HeaderMap, HeaderValue, Method, StatusCode};
use warp::path::FullPath;
use warp::reply::Response;
use warp::{Buf, Filter, Rejection, Reply};

#[tokio::main]
async fn main() {
    let started = start(sse_core::this_framework!()).await;
    let service = warp::service(routes(started.app.clone()));
    // warp's filters as a tower service on hyper's own connection builder, because
    // `warp::serve` gives hyper no timer and so no request-head timeout.
    serve(started, service).await;
}

/// Every route of the contract. Once a path matches, its branch always answers, and the last
/// branch answers every other path with the JSON 404: the filter cannot reject (`Infallible`),
/// so warp's plain-text rejection answers never reach a client.
fn routes(app: App) -> impl Filter<Extract = (impl Reply,), Error = Infallible> + Clone {
    let origin = app.config.cors_origin.clone();
    let app = warp::any().map(move || app.clone());
    let get_or_head = || warp::get().or(warp::head()).unify();

    let page = move || get_or_head().map(|| warp::reply::html(DEMO_PAGE.as_str()));
    // warp's `gzip()` compresses whatever the client accepts, so it is only asked to when the
    // client accepts gzip; only the page is compressed.
    let demo = accepts_gzip()
        .and(page())
        .with(warp::filters::compression::gzip())
        .map(Reply::into_response)
        .or(page().map(Reply::into_response))
        .unify()
        .with(warp::reply::with::header(VARY, "accept-encoding"));
    let events = get_or_head()
        .and(app.clone())
        .and(warp::header::headers_cloned())
        .and(raw_query())
        .then(events);
    let trigger = warp::post()
        .and(app.clone())
        .and(warp::header::headers_cloned())
        .and(warp::body::stream())
        .then(trigger);
    let health = get_or_head().and(app.clone()).then(health);
    let metrics = get_or_head().and(app).map(metrics);
    let not_found =
        warp::path::full().map(|path: FullPath| JsonError(ApiError::not_found(path.as_str())));

    resource("/", "GET, HEAD", demo)
        .or(resource("/events", "GET, HEAD", events))
        .or(resource("/trigger", "POST", trigger))
        .or(resource("/health", "GET, HEAD", health))
        .or(resource("/metrics", "GET, HEAD", metrics))
        .or(not_found)
        // warp's `cors()` cannot carry the contract: it adds the origin header only when the
        // request sends `Origin`, then echoes that origin (it cannot send `*`), and it answers
        // a preflight with 200.
        .with(warp::reply::with::header(
            ACCESS_CONTROL_ALLOW_ORIGIN,
            origin,
        ))
}

/// One path: its handler for the methods in `allow`, its CORS preflight, and a JSON 405.
fn resource<R: Reply>(
    path: &'static str,
    allow: &'static str,
    handler: impl Filter<Extract = (R,), Error = Rejection> + Clone + Send + Sync,
) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    // Compared whole: `warp::path!("events")` would also match `/events/`, another path.
    let path_is = warp::path::full()
        .and_then(move |full: FullPath| async move {
            if full.as_str() == path {
                Ok(())
            } else {
                Err(warp::reject::not_found())
            }
        })
        .untuple_one();
    let preflight = warp::options().map(move || {
        let mut response = StatusCode::NO_CONTENT.into_response();
        let headers = response.headers_mut();
        headers.insert(
            ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static(allow),
        );
        headers.insert(
            ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static(CORS_ALLOW_HEADERS),
        );
        headers.insert(ACCESS_CONTROL_MAX_AGE, HeaderValue::from(CORS_MAX_AGE_SECS));
        response
    });
    let not_allowed = warp::method().map(move |method: Method| {
        JsonError(ApiError::method_not_allowed(method.as_str(), path, allow))
    });
    path_is.and(handler.or(preflight).or(not_allowed))
}

/// Passes a request whose `Accept-Encoding` accepts gzip; rejects any other.
fn accepts_gzip() -> impl Filter<Extract = (), Error = Rejection> + Clone {
    warp::header::headers_cloned()
        .and_then(|headers: HeaderMap| async move {
            let values = headers.get_all(ACCEPT_ENCODING);
            if sse_core::compress::accepts_gzip(values.iter().filter_map(|v| v.to_str().ok())) {
                Ok(())
            } else {
                Err(warp::reject())
            }
        })
        .untuple_one()
}

/// The raw query string, if any (`warp::query::raw` rejects a request without one).
fn raw_query() -> impl Filter<Extract = (Option<String>,), Error = Infallible> + Clone {
    warp::query::raw()
        .map(Some)
        .or(warp::any().map(|| None))
        .unify()
}

async fn events(
    app: App,
    headers: HeaderMap,
    query: Option<String>,
) -> Result<Response, JsonError> {
    let last_event_id = headers.get("last-event-id").map(HeaderValue::as_bytes);
    let subscription = app.subscribe(last_event_id, query.as_deref()).await?;
    // warp's own `sse::reply` writes `data:` with no space after the colon, so a payload line
    // that starts with a space loses it at the client; `warp::reply::stream` sends the hub's
    // pre-encoded events (heartbeat included) as they are instead.
    let body = app.event_stream_body(subscription).map(Ok::<_, Infallible>);
    let mut response = warp::reply::stream(body).into_response();
    for (name, value) in EVENT_STREAM_HEADERS {
        response
            .headers_mut()
            .insert(name, HeaderValue::from_static(value));
    }
    Ok(response)
}

async fn trigger(
    app: App,
    headers: HeaderMap,
    body: impl Stream<Item = Result<impl Buf, warp::Error>>,
) -> Result<Response, JsonError> {
    let headers = |name: &str| headers.get(name).map(HeaderValue::as_bytes);
    // warp's body filters have no limit of their own, and `content_length_limit` answers 411
    // to a chunked body, so the limit is counted here while reading; nor a timeout (408).
    let accepted = app
        .trigger(headers, |limit| {
            read_body_in_time(read_at_most(body, limit))
        })
        .await?;
    let reply = warp::reply::with_status(warp::reply::json(&accepted), StatusCode::ACCEPTED);
    Ok(reply.into_response())
}

async fn read_at_most(
    body: impl Stream<Item = Result<impl Buf, warp::Error>>,
    limit: usize,
) -> Result<Vec<u8>, ApiError> {
    let mut body = pin!(body);
    let mut bytes = Vec::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|_| ApiError::unreadable_body())?;
        if bytes.len() + chunk.remaining() > limit {
            return Err(ApiError::payload_too_large(limit));
        }
        bytes.put(chunk);
    }
    Ok(bytes)
}

async fn health(app: App) -> impl Reply {
    warp::reply::with_header(app.health().await, CONTENT_TYPE, "application/json")
}

fn metrics(app: App) -> impl Reply {
    warp::reply::with_header(app.metrics(), CONTENT_TYPE, METRICS_CONTENT_TYPE)
}

/// The contract's JSON error as a warp reply.
struct JsonError(ApiError);

impl From<ApiError> for JsonError {
    fn from(error: ApiError) -> Self {
        Self(error)
    }
}

impl Reply for JsonError {
    fn into_response(self) -> Response {
        Response::from(self.0)
    }
}
