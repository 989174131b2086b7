//! # rocket-example — the SSE contract with Rocket 0.5
//!
//! Shows: a streaming `/events` body fed by the shared hub, request guards and managed state,
//! the trigger's checks in the contract's order with the body read through `Data::open(limit)`,
//! hand-made routes for Rocket's missing 405 and CORS preflight (`other_methods.rs`), catchers
//! that answer JSON, the demo page gzip-compressed by hand (Rocket has no compression), a
//! response fairing for `Access-Control-Allow-Origin`, and (in `main.rs`) Rocket's own TLS
//! with HTTP/2 and a graceful shutdown that ends every stream before Rocket's begins.
//!
//! Run it with `cargo run -p rocket-example` (`-- --help` lists the settings), then
//! `curl -N http://127.0.0.1:3004/events` and, in another terminal,
//! `curl -X POST http://127.0.0.1:3004/trigger -H 'content-type: application/json' -d '{"data":"hi"}'`.

use std::convert::Infallible;
use std::io::Cursor;

use rocket::data::{Data, ToByteUnit};
use rocket::fairing::AdHoc;
use rocket::http::uri::Origin;
use rocket::http::{ContentType, Header, HeaderMap, Status};
use rocket::request::{self, FromRequest, Request};
use rocket::response::content::{RawHtml, RawJson};
use rocket::response::stream::ByteStream;
use rocket::response::{self, Responder, Response};
use rocket::{Build, Rocket, State, catch, catchers, get, post, routes};
use sse_core::compress::{DEMO_PAGE_GZIP, accepts_gzip};
use sse_core::{
    ApiError, App, DEMO_PAGE, ERROR_CONTENT_TYPE, EVENT_STREAM_HEADERS, EventStreamBody,
    METRICS_CONTENT_TYPE, read_body_in_time,
};

use crate::other_methods::resource;

mod other_methods;

/// Every route of the contract, with its CORS and its JSON errors. Configuration, signals and
/// the startup banner are the process's business (`main.rs`).
pub fn routes(app: App) -> Rocket<Build> {
    let origin = app.config.cors_origin.clone();
    rocket::build()
        .mount("/", routes![demo_page, events, trigger, health, metrics])
        .mount("/", resource("/", "GET, HEAD"))
        .mount("/", resource("/events", "GET, HEAD"))
        .mount("/", resource("/trigger", "POST"))
        .mount("/", resource("/health", "GET, HEAD"))
        .mount("/", resource("/metrics", "GET, HEAD"))
        .register("/", catchers![not_found, other_error])
        .attach(AdHoc::on_response("CORS origin", move |_, response| {
            let origin = origin.clone();
            Box::pin(async move {
                response.set_raw_header("access-control-allow-origin", origin);
            })
        }))
        .manage(app)
}

#[get("/")]
fn demo_page(headers: Headers<'_>) -> DemoPage {
    DemoPage {
        gzip: accepts_gzip(headers.0.get("accept-encoding")),
    }
}

/// Rocket 0.5 has no compression of its own: the page goes out as sse-core compressed it once,
/// to a client that accepts gzip.
struct DemoPage {
    gzip: bool,
}

impl<'r> Responder<'r, 'static> for DemoPage {
    fn respond_to(self, request: &'r Request<'_>) -> response::Result<'static> {
        let mut response = if self.gzip {
            let mut response = RawHtml(DEMO_PAGE_GZIP.as_slice()).respond_to(request)?;
            response.set_raw_header("content-encoding", "gzip");
            response
        } else {
            RawHtml(DEMO_PAGE.as_str()).respond_to(request)?
        };
        response.set_raw_header("vary", "accept-encoding");
        Ok(response)
    }
}

#[get("/events")]
async fn events(
    app: &State<App>,
    headers: Headers<'_>,
    uri: &Origin<'_>,
) -> Result<EventStream, JsonError> {
    let last_event_id = headers.0.get_one("last-event-id").map(str::as_bytes);
    let query = uri.query().map(|query| query.as_str());
    let subscription = app.subscribe(last_event_id, query).await?;
    Ok(EventStream(app.event_stream_body(subscription)))
}

#[post("/trigger", data = "<body>")]
async fn trigger(
    app: &State<App>,
    headers: Headers<'_>,
    body: Data<'_>,
) -> Result<(Status, RawJson<String>), JsonError> {
    let header = |name: &str| headers.0.get_one(name).map(str::as_bytes);
    // Rocket has no body timeout of its own, hence the shared one (408). It covers what the
    // handler reads; a body stalled within its first bytes stalls in Rocket's pre-routing peek,
    // before this runs, and is never answered (docs/faults.md).
    let read_body = |limit: usize| {
        read_body_in_time(async move {
            let body = body
                .open(limit.bytes())
                .into_bytes()
                .await
                .map_err(|_| ApiError::unreadable_body())?;
            if !body.is_complete() {
                return Err(ApiError::payload_too_large(limit));
            }
            // Rocket peeks at the first bytes of every body before routing and, when the client
            // goes away mid-body, keeps what it got as if it were all: a body shorter than
            // declared is cut.
            let declared = header("content-length")
                .and_then(|n| std::str::from_utf8(n).ok()?.trim().parse().ok());
            match declared.filter(|&declared: &usize| declared != body.len()) {
                Some(declared) => Err(ApiError::bad_request(format!(
                    "the request body ended after {} bytes, before the {declared} its Content-Length declared",
                    body.len()
                ))),
                None => Ok(body.into_inner()),
            }
        })
    };
    let accepted = app.trigger(header, read_body).await?;
    Ok((Status::Accepted, RawJson(accepted.body())))
}

#[get("/health")]
async fn health(app: &State<App>) -> RawJson<String> {
    RawJson(app.health().await)
}

#[get("/metrics")]
fn metrics(app: &State<App>) -> (ContentType, String) {
    let content_type = ContentType::parse_flexible(METRICS_CONTENT_TYPE);
    (content_type.expect("a valid media type"), app.metrics())
}

/// Rocket's own catchers answer HTML (or JSON only when `Accept` prefers it).
#[catch(404)]
fn not_found(request: &Request<'_>) -> JsonError {
    JsonError(ApiError::not_found(request.uri().path().as_str()))
}

/// What reaches this is Rocket's own doing: 400 for a request it cannot parse (an unknown
/// method among them), 500 for a handler that panicked. Rocket answers an unparsable request
/// without running the response fairings, so this catcher sets the origin itself.
#[catch(default)]
fn other_error(status: Status, request: &Request<'_>) -> WithOrigin {
    let message = match status.code {
        400 => "the request could not be parsed: send GET, HEAD, POST or OPTIONS with a valid URI"
            .to_owned(),
        _ => format!(
            "{} {} failed with {status}",
            request.method(),
            request.uri().path()
        ),
    };
    let app = request.rocket().state::<App>().expect("App is managed");
    WithOrigin {
        error: JsonError(ApiError {
            status: status.code,
            message,
            headers: Vec::new(),
        }),
        origin: Header::new(
            "access-control-allow-origin",
            app.config.cors_origin.clone(),
        ),
    }
}

#[derive(Responder)]
struct WithOrigin {
    error: JsonError,
    origin: Header<'static>,
}

/// The request's headers. Rocket has typed guards for a few (`&ContentType`), none for any
/// header by name.
struct Headers<'r>(&'r HeaderMap<'r>);

#[rocket::async_trait]
impl<'r> FromRequest<'r> for Headers<'r> {
    type Error = Infallible;

    async fn from_request(request: &'r Request<'_>) -> request::Outcome<Self, Infallible> {
        request::Outcome::Success(Headers(request.headers()))
    }
}

/// Rocket's own `EventStream` writes `data:value` with no space, so a payload that starts
/// with a space loses it, and its heartbeat `:\n` is no comment block (and can land between
/// the fields of an event): the hub's pre-encoded bytes go out as a `ByteStream` instead, with
/// the contract's heartbeat included.
struct EventStream(EventStreamBody);

impl<'r> Responder<'r, 'r> for EventStream {
    fn respond_to(self, request: &'r Request<'_>) -> response::Result<'r> {
        let mut response = ByteStream::from(self.0).respond_to(request)?;
        for (name, value) in EVENT_STREAM_HEADERS {
            response.set_raw_header(name, value);
        }
        Ok(response)
    }
}

/// The contract's JSON error as a Rocket response.
struct JsonError(ApiError);

impl From<ApiError> for JsonError {
    fn from(error: ApiError) -> Self {
        Self(error)
    }
}

impl<'r> Responder<'r, 'static> for JsonError {
    fn respond_to(self, _: &'r Request<'_>) -> response::Result<'static> {
        let body = self.0.body();
        let mut response = Response::build();
        response
            .status(Status::new(self.0.status))
            .raw_header("content-type", ERROR_CONTENT_TYPE)
            .sized_body(body.len(), Cursor::new(body));
        for (name, value) in self.0.headers {
            response.raw_header(name, value);
        }
        response.ok()
    }
}
