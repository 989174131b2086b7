//! # actix-web-example — the SSE contract with actix-web 4
//!
//! Shows: `/events` as actix-web-lab's `Sse` responder (its encoder, `retry:` block and
//! keep-alive) fed by the shared hub; one `Resource` per path with its CORS preflight and a JSON
//! 405 with `Allow`; `Access-Control-Allow-Origin` on every response from `DefaultHeaders`; the
//! trigger's checks in the contract's order over a raw `web::Payload`; JSON errors through
//! `ResponseError`; the demo page gzip-compressed by actix-web's `Compress`; HTTPS with HTTP/2
//! through actix-web's rustls listener; and a graceful shutdown that ends the streams before
//! actix-web drains them.
//!
//! Run it with `cargo run -p actix-web-example` (`-- --help` lists the settings), then
//! `curl -N http://127.0.0.1:3002/events` and, in another terminal,
//! `curl -X POST http://127.0.0.1:3002/trigger -H 'content-type: application/json' -d '{"data":"hi"}'`.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::KeepAlive;
use actix_web::http::header::{self, ContentType, HeaderName, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::{Compress, DefaultHeaders};
use actix_web::web::{self, ThinData};
use actix_web::{
    HttpRequest, HttpResponse, HttpServer, Resource, Responder, ResponseError, Route, guard,
};
use actix_web_lab::sse;
use futures_util::StreamExt;
use sse_core::server::{Started, start};
use sse_core::{
    ApiError, App, CORS_ALLOW_HEADERS, CORS_MAX_AGE_SECS, DEMO_PAGE, ERROR_CONTENT_TYPE,
    EVENT_STREAM_HEADERS, METRICS_CONTENT_TYPE, REQUEST_HEAD_TIMEOUT, read_body_in_time,
};

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let Started {
        app,
        listener,
        stopping,
    } = start(sse_core::this_framework!()).await;

    let routes = {
        let app = app.clone();
        move || {
            actix_web::App::new()
                .app_data(ThinData(app.clone()))
                .wrap(DefaultHeaders::new().add((
                    header::ACCESS_CONTROL_ALLOW_ORIGIN,
                    app.config.cors_origin.as_str(),
                )))
                // Only the page is compressed (gzip, for clients that accept it).
                .service(
                    resource("/", "GET, HEAD")
                        .route(get_or_head().to(demo_page))
                        .wrap(Compress::default())
                        // `Compress` says `Vary` only on what it compressed; caches need it on both.
                        .wrap(DefaultHeaders::new().add((header::VARY, "accept-encoding"))),
                )
                .service(resource("/events", "GET, HEAD").route(get_or_head().to(events)))
                .service(resource("/trigger", "POST").post(trigger))
                .service(resource("/health", "GET, HEAD").route(get_or_head().to(health)))
                .service(resource("/metrics", "GET, HEAD").route(get_or_head().to(metrics)))
                .default_service(web::to(not_found))
        }
    };
    let server = HttpServer::new(routes)
        // A head still incomplete after this gets 408 and the connection closes (actix-web's
        // default is the same 5 s)...
        .client_request_timeout(REQUEST_HEAD_TIMEOUT)
        // ...but only a connection's first head is timed: on a kept-alive connection the next
        // head, once its first byte is in, could trickle forever. One request per connection.
        .keep_alive(KeepAlive::Disabled)
        // By default a client's EOF counts as a half-close and the stream goes on until a write
        // fails (the second heartbeat after the close); this ends it at the EOF.
        .h1_allow_half_closed(false)
        // An event is a small write: sent at once, not held for the ACK of the one before
        // (Nagle's algorithm costs each TLS handshake some 40 ms against a delayed ACK).
        .tcp_nodelay(true)
        // actix-web's own handlers stop at once on SIGINT (resetting every stream) and wait for
        // open streams on SIGTERM; `stopping` ends the streams first, making both a graceful stop.
        .shutdown_signal(stopping)
        // Workers look again after 1 s at the earliest; whoever is still connected then (a
        // client that stopped reading) is dropped instead of being waited for 30 s.
        .shutdown_timeout(1);
    // With TLS_CERT/TLS_KEY, actix-web's rustls listener; the ALPN list (h2, http/1.1) is ours.
    let server = match &app.config.tls {
        None => server.listen(listener)?,
        Some(tls) => {
            server.listen_rustls_0_23(listener, Arc::unwrap_or_clone(tls.server_config()))?
        }
    }
    .run();
    tokio::select! {
        result = server => result,
        () = app.shutdown_deadline() => Ok(()),
    }
}

/// A path answering `allow`: its CORS preflight, and a JSON 405 with `Allow` for other methods
/// (actix-web's own 405 has an empty body).
fn resource(path: &str, allow: &'static str) -> Resource {
    web::resource(path)
        .route(web::method(Method::OPTIONS).to(move || async move {
            HttpResponse::NoContent()
                .insert_header((header::ACCESS_CONTROL_ALLOW_METHODS, allow))
                .insert_header((header::ACCESS_CONTROL_ALLOW_HEADERS, CORS_ALLOW_HEADERS))
                .insert_header((header::ACCESS_CONTROL_MAX_AGE, CORS_MAX_AGE_SECS))
                .finish()
        }))
        .default_service(web::to(move |request: HttpRequest| async move {
            let method = request.method().as_str();
            JsonError(ApiError::method_not_allowed(method, request.path(), allow)).error_response()
        }))
}

/// actix-web routes `HEAD` only where asked to (and then sends the head without the body).
fn get_or_head() -> Route {
    web::route().guard(guard::Any(guard::Get()).or(guard::Head()))
}

async fn demo_page() -> HttpResponse {
    HttpResponse::Ok()
        .content_type(ContentType::html())
        .body(DEMO_PAGE.as_str())
}

async fn events(
    ThinData(app): ThinData<App>,
    request: HttpRequest,
) -> Result<HttpResponse, JsonError> {
    let last_event_id = request
        .headers()
        .get("last-event-id")
        .map(HeaderValue::as_bytes);
    let subscription = app
        .subscribe(last_event_id, Some(request.query_string()))
        .await?;
    // actix-web-lab's encoder splits data at CR, LF and CRLF, keeps empty and space-led lines,
    // and the hub only makes valid names, so the framework's own `Sse` can carry every event.
    let events = subscription.map(|event| {
        let data = sse::Data::new(event.text()).event(event.name());
        match event.id() {
            Some(id) => data.id(id.to_string()).into(),
            None => data.into(),
        }
    });
    let sse = sse::Sse::from_infallible_stream(events)
        .with_retry_duration(Duration::from_millis(app.config.retry_ms))
        .with_keep_alive(app.config.heartbeat());
    let mut response = sse.respond_to(&request);
    let headers = response.headers_mut();
    // actix-web-lab marks the stream `Content-Encoding: identity` to keep `Compress` off it, but
    // `identity` is no content coding (RFC 9110 §8.4.1); here `Compress` wraps only `/`.
    headers.remove(header::CONTENT_ENCODING);
    for (name, value) in EVENT_STREAM_HEADERS {
        headers.insert(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
    Ok(response)
}

async fn trigger(
    ThinData(app): ThinData<App>,
    request: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, JsonError> {
    let headers = |name: &str| request.headers().get(name).map(HeaderValue::as_bytes);
    // A raw `Payload`, read only when `App::trigger` asks: the `Json` and `Bytes` extractors
    // would read (and size) the body before the handler runs, answering 413 ahead of 401 and
    // 415. actix-web has no body timeout of its own, hence the shared one (408).
    let accepted = app
        .trigger(headers, |limit| {
            read_body_in_time(async move {
                body.to_bytes_limited(limit)
                    .await
                    .map_err(|_| ApiError::payload_too_large(limit))?
                    .map_err(|_| ApiError::unreadable_body())
            })
        })
        .await?;
    Ok(HttpResponse::Accepted()
        .content_type(ContentType::json())
        .body(accepted.body()))
}

async fn health(ThinData(app): ThinData<App>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(ContentType::json())
        .body(app.health().await)
}

async fn metrics(ThinData(app): ThinData<App>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(METRICS_CONTENT_TYPE)
        .body(app.metrics())
}

async fn not_found(request: HttpRequest) -> HttpResponse {
    JsonError(ApiError::not_found(request.path())).error_response()
}

/// The contract's JSON error as an actix-web error (its default `ResponseError` body is text).
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

impl ResponseError for JsonError {
    fn status_code(&self) -> StatusCode {
        // actix-web has `http` 0.2's `StatusCode`; `ApiError`'s statuses are all valid.
        StatusCode::from_u16(self.0.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        response.content_type(ERROR_CONTENT_TYPE);
        for (name, value) in &self.0.headers {
            response.insert_header((*name, value.as_str()));
        }
        response.body(self.0.body())
    }
}
