//! A deliberately broken server, for proving that every conformance check can fail.
//!
//! It is axum-example (the same routes) with one rule of the contract broken, chosen by the
//! environment variable `BROKEN`, named after the check that must catch it (see `--list` of the
//! conformance CLI); `BROKEN=none` breaks nothing. Each break is the kind of mistake real SSE
//! servers make: a naive encoder, a forgotten header, a racy replay, a leaked subscriber.
//!
//! `cargo run -p conformance --example broken_server` (with `BROKEN=…` and the usual settings).

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, BodyDataStream, Bytes};
use axum::extract::{Request, State};
use axum::http::header::{ACCESS_CONTROL_ALLOW_ORIGIN, CONTENT_TYPE};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::Response;
use futures_util::{FutureExt, StreamExt};
use sse_core::config::Cli;
use sse_core::hyper_server::{serve, serve_with};
use sse_core::log::redis::StartError;
use sse_core::server::{
    Started, Startup, Stopping, announce, bind_or_exit, connect_or_exit, init_logging,
    shutdown_signal, stopping,
};
use sse_core::{
    App, Config, EVENT_STREAM_HEADERS, EventLogSetting, EventName, Framework, retry_block,
};

const FRAMEWORK: Framework = Framework {
    name: "broken",
    package: "broken_server",
    default_port: 3999,
};

/// Which rule is broken: the name of the check that must notice.
#[derive(Clone)]
struct Broken {
    rule: &'static str,
    app: App,
}

/// Set when a stream is refused at MAX_CLIENTS: the next open stream to write ends instead
/// (the `max-clients-keeps-streams` break).
static END_ONE: AtomicBool = AtomicBool::new(false);

/// Streams opened with a Last-Event-ID that is no number (the `metrics-refusals` break).
static GARBAGE_RESUMES: AtomicU64 = AtomicU64::new(0);

/// The event names of accepted triggers (the `metrics-labels` break).
static EVENT_NAMES: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Event streams that were dropped, kept alive on purpose (the `disconnect-cleanup` break).
static LEAKED: Mutex<Vec<BodyDataStream>> = Mutex::new(Vec::new());

#[tokio::main]
async fn main() {
    let rule: &'static str = std::env::var("BROKEN")
        .expect("set BROKEN to a check name, or none")
        .leak();
    let Started {
        app,
        listener,
        stopping,
    } = match rule {
        // These break start-up itself, so they take a path of their own.
        "config-errors"
        | "tls-config-errors"
        | "config-edges"
        | "port-in-use"
        | "log-unreachable"
        | "log-capacity"
        | "cluster-delivery"
        | "cluster-clock-failover"
        | "cluster-clock-fenced"
        | "cluster-restart" => broken_start(rule).await,
        _ => {
            Startup::new(FRAMEWORK)
                .adjust(move |config| {
                    if rule == "lag-cutoff" {
                        // Broken: a slow client may fall behind without bound (/health still
                        // says 16, see below).
                        config.client_buffer = 1_000_000;
                    }
                })
                .bound()
                .await
        }
    };
    if rule == "cluster-clock" {
        forge_ticks(app.clone());
    }
    if rule == "log-connection-cut" {
        watch_log_connection(app.clone());
    }
    let broken = Broken {
        rule,
        app: app.clone(),
    };
    let router =
        axum_example::routes(app.clone()).layer(middleware::from_fn_with_state(broken, break_rule));
    let shutdown: Stopping = if rule == "shutdown" || rule == "h2-shutdown" {
        // Broken: exits at once on SIGTERM, cutting every open stream.
        let signal = shutdown_signal();
        Box::pin(async move {
            signal.await;
            std::process::exit(0);
        })
    } else if rule == "h2-shutdown-goaway" {
        // Broken: on SIGTERM the streams are ended, and once they are out the process exits
        // without a graceful close of its connections, so no GOAWAY is sent.
        let signal = shutdown_signal();
        let app = app.clone();
        Box::pin(async move {
            signal.await;
            app.stop();
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            std::process::exit(0);
        })
    } else {
        stopping
    };
    let Some(tls) = app.config.tls.clone() else {
        let listener = tokio::net::TcpListener::from_std(listener).unwrap();
        let serve = axum::serve(listener, router).with_graceful_shutdown(shutdown);
        tokio::select! {
            result = serve => result.unwrap(),
            () = app.shutdown_deadline() => {}
        }
        return;
    };
    let started = Started {
        app: app.clone(),
        listener,
        stopping: shutdown,
    };
    match rule {
        "tls-alpn-h2" => {
            // Broken: HTTP/2 is never offered.
            let mut config = std::sync::Arc::unwrap_or_clone(tls.server_config());
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            serve_with(started, router, Some(std::sync::Arc::new(config))).await;
        }
        "tls-refuses-plain-http" => plain_beside_tls(started, router, &tls).await,
        "h2-no-connection-headers" => h2_by_hand(started, &tls).await,
        _ => serve(started, router).await,
    }
}

/// Broken (`h2-no-connection-headers`): an HTTP/2 server written by hand that answers every
/// request `200` with `Connection: keep-alive`, as an HTTP/1.1 habit carried over would (hyper
/// and the h2 crate refuse to send it, so the frames are written here).
async fn h2_by_hand(started: Started, tls: &sse_core::tls::Tls) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let acceptor = tokio_rustls::TlsAcceptor::from(tls.server_config());
    let listener = tokio::net::TcpListener::from_std(started.listener).unwrap();
    let mut stopping = started.stopping;
    // A frame: length (24 bits), type, flags, stream id (31 bits), payload.
    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let length = (payload.len() as u32).to_be_bytes();
        let mut out = vec![length[1], length[2], length[3], kind, flags];
        out.extend_from_slice(&stream.to_be_bytes());
        out.extend_from_slice(payload);
        out
    }
    loop {
        tokio::select! {
            Ok((tcp, _)) = listener.accept() => {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else { return };
                    let mut preface = [0; 24];
                    if tls.read_exact(&mut preface).await.is_err() {
                        return;
                    }
                    let _ = tls.write_all(&frame(4, 0, 0, &[])).await; // SETTINGS
                    loop {
                        let mut head = [0; 9];
                        if tls.read_exact(&mut head).await.is_err() {
                            return;
                        }
                        let length = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
                        let (kind, flags) = (head[3], head[4]);
                        let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
                        let mut payload = vec![0; length];
                        if tls.read_exact(&mut payload).await.is_err() {
                            return;
                        }
                        let answer = match kind {
                            4 if flags & 1 == 0 => frame(4, 1, 0, &[]), // SETTINGS ACK
                            1 => {
                                // HPACK: `:status: 200` (static index 8), then a literal
                                // `connection: keep-alive` without indexing.
                                let mut block = vec![0x88, 0x00, 10];
                                block.extend_from_slice(b"connection");
                                block.push(10);
                                block.extend_from_slice(b"keep-alive");
                                frame(1, 0x4 | 0x1, stream, &block) // END_HEADERS | END_STREAM
                            }
                            _ => continue,
                        };
                        if tls.write_all(&answer).await.is_err() {
                            return;
                        }
                    }
                });
            }
            () = &mut stopping => return,
        }
    }
}

/// Broken (`tls-refuses-plain-http`): HTTP and HTTPS on one port, told apart by the first byte
/// (a TLS handshake begins with 0x16), each proxied to a server of its own.
async fn plain_beside_tls(started: Started, router: axum::Router, tls: &sse_core::tls::Tls) {
    let inner = |config| {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let address = listener.local_addr().unwrap();
        let started = Started {
            app: started.app.clone(),
            listener,
            stopping: Box::pin(std::future::pending()),
        };
        tokio::spawn(serve_with(started, router.clone(), config));
        address
    };
    let (plain, secure) = (inner(None), inner(Some(tls.server_config())));
    let listener = tokio::net::TcpListener::from_std(started.listener).unwrap();
    let mut stopping = started.stopping;
    loop {
        tokio::select! {
            Ok((mut client, _)) = listener.accept() => {
                tokio::spawn(async move {
                    let mut first = [0; 1];
                    if client.peek(&mut first).await.is_err() {
                        return;
                    }
                    let to = if first[0] == 0x16 { secure } else { plain };
                    if let Ok(mut server) = tokio::net::TcpStream::connect(to).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            }
            () = &mut stopping => return,
        }
    }
}

/// Start-up with its own rule broken.
async fn broken_start(rule: &str) -> Started {
    if rule == "config-edges" && std::env::var("TICK_MS").is_ok_and(|v| v == "86400000") {
        // Broken: the range's upper end is left out (`0..86400000`).
        eprintln!("TICK_MS=86400000: expected 0 … 86399999");
        std::process::exit(2);
    }
    let config = if rule == "tls-config-errors" {
        // Broken: a TLS setting that cannot be used is dropped, and the server starts on plain
        // HTTP instead of refusing to start.
        let cli = <Cli as clap::Parser>::parse();
        Config::from_cli(cli, FRAMEWORK).unwrap_or_else(|_| {
            let cli = Cli {
                tls_cert: None,
                tls_key: None,
                ..<Cli as clap::Parser>::parse()
            };
            Config::from_cli(cli, FRAMEWORK).unwrap()
        })
    } else if rule == "config-errors" {
        // Broken: bad settings are silently replaced by the defaults.
        Config::from_cli(<Cli as clap::Parser>::parse(), FRAMEWORK).unwrap_or_else(|_| {
            Config::from_cli(
                Cli {
                    port: Some("0".into()),
                    ..Cli::default()
                },
                FRAMEWORK,
            )
            .unwrap()
        })
    } else {
        Config::load_or_exit(FRAMEWORK)
    };
    init_logging(&config);
    if rule == "cluster-restart" {
        // Broken: every start begins the shared log anew, so ids restart at 1.
        if let EventLogSetting::Redis(url) = &config.event_log {
            let key = &config.event_log_key;
            let mut redis = redis::Client::open(url.as_str())
                .and_then(|client| client.get_connection())
                .expect("the shared log answers");
            redis::cmd("DEL")
                .arg(format!("{key}:events"))
                .arg(format!("{key}:meta"))
                .exec(&mut redis)
                .expect("DEL runs");
        }
    }
    let app = match rule {
        // Broken: every instance keeps its own log, as if there were no shared one.
        "cluster-delivery" => App::new(FRAMEWORK, config.clone()),
        // Broken: a shared log that cannot be reached is silently replaced by the memory log.
        "log-unreachable" => App::connect(FRAMEWORK, config.clone())
            .await
            .unwrap_or_else(|_| App::new(FRAMEWORK, config.clone())),
        // Broken: a log made with another REPLAY_CAPACITY is used anyway, with its capacity.
        "log-capacity" => match App::connect(FRAMEWORK, config.clone()).await {
            Err(StartError::Capacity { log, .. }) => {
                let mut adopted = config.clone();
                adopted.replay_capacity = log;
                connect_or_exit(FRAMEWORK, adopted).await
            }
            Ok(app) => app,
            Err(_) => connect_or_exit(FRAMEWORK, config.clone()).await,
        },
        _ => connect_or_exit(FRAMEWORK, config.clone()).await,
    };
    let listener = if rule == "port-in-use" {
        // Broken: a bind failure panics instead of saying what to do.
        let listener = std::net::TcpListener::bind((config.host, config.port)).unwrap();
        listener.set_nonblocking(true).unwrap();
        listener
    } else {
        bind_or_exit(&config, FRAMEWORK)
    };
    let stopping = stopping(&app);
    announce(&app, listener.local_addr().unwrap());
    // Broken (cluster-clock-failover): only an instance that started on an empty log ever
    // ticks, so the clock never fails over to one that joined later.
    if rule == "cluster-clock-fenced" {
        unfenced_clock(app.clone(), &config);
    } else if rule != "cluster-clock-failover" || app.hub.last_id() == 0 {
        app.start_ticker();
    }
    Started {
        app,
        listener,
        stopping,
    }
}

async fn break_rule(State(broken): State<Broken>, mut request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    let method = request.method().clone();
    match broken.rule {
        "cluster-resume" if path == "/events" => {
            // Broken: a resume is judged by what this instance has seen, not by the log, so a
            // client with an id this instance has not seen yet looks like one from the future.
            let resume = request
                .headers()
                .get("last-event-id")
                .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
            if resume.is_some_and(|n| n > broken.app.hub.last_id()) {
                let beyond = (broken.app.hub.last_id() + 1_000_000).to_string();
                request
                    .headers_mut()
                    .insert("last-event-id", HeaderValue::from_str(&beyond).unwrap());
            }
        }
        "cluster-idempotency" if path == "/trigger" => {
            return idempotent_here_only(request, next).await;
        }
        "idempotency" if path == "/trigger" => {
            // Broken: the Idempotency-Key is ignored, so every retry publishes again.
            request.headers_mut().remove("idempotency-key");
        }
        "replay-header" => {
            request.headers_mut().remove("last-event-id");
        }
        "demo-page-gzip" if path == "/" => {
            // Broken: the page is never compressed (a compression layer left out).
            request.headers_mut().remove("accept-encoding");
        }
        "replay-boundary" if path == "/events" => {
            // Broken: off by one at the edge of the buffer — resuming from the oldest held less
            // one is taken for a resume from before it, and gets a gap.
            let resume = request
                .headers()
                .get("last-event-id")
                .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
            if let Some(n) = resume.filter(|&n| n > 0) {
                let held = broken.app.hub.log().held_after(n).await;
                if held.is_ok_and(|held| held.oldest == Some(n + 1)) {
                    let earlier = HeaderValue::from_str(&(n - 1).to_string()).unwrap();
                    request.headers_mut().insert("last-event-id", earlier);
                }
            }
        }
        "replay-query" if path == "/events" => {
            *request.uri_mut() = "/events".parse().unwrap();
        }
        "garbage-last-event-id" => {
            let garbage = request
                .headers()
                .get("last-event-id")
                .is_some_and(|v| v.to_str().map_or(true, |s| s.parse::<u64>().is_err()));
            if garbage {
                request
                    .headers_mut()
                    .insert("last-event-id", HeaderValue::from_static("0"));
            }
        }
        "trigger-error-order" if path == "/trigger" => {
            let json = request
                .headers()
                .get(CONTENT_TYPE)
                .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
            if !json && method == Method::POST {
                return plain(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    r#"{"error":"checked the type first"}"#,
                );
            }
        }
        "trigger-error-order-keys" if path == "/trigger" => {
            // Broken: the key is checked first, as the first header a middleware looks at.
            let malformed = request.headers().get("idempotency-key").is_some_and(|key| {
                let key = key.as_bytes();
                key.is_empty() || key.len() > 64 || key.iter().any(|b| !(0x21..=0x7e).contains(b))
            });
            if malformed {
                return plain(
                    StatusCode::BAD_REQUEST,
                    r#"{"error":"bad Idempotency-Key"}"#,
                );
            }
        }
        "idempotency-edges"
            if path == "/trigger" && request.headers().contains_key("idempotency-key") =>
        {
            // Broken: the body is compared as parsed JSON (re-serialized), not as bytes, so the
            // same members in another order or with spaces pass for the same body.
            let (parts, body) = request.into_parts();
            let bytes = axum::body::to_bytes(body, 1 << 20)
                .await
                .unwrap_or_default();
            let bytes = serde_json::from_slice::<serde_json::Value>(&bytes)
                .map(|value| {
                    let mut members: Vec<(String, serde_json::Value)> = value
                        .as_object()
                        .map(|o| o.clone().into_iter().collect())
                        .unwrap_or_default();
                    members.sort_by(|a, b| a.0.cmp(&b.0));
                    let sorted: serde_json::Map<String, serde_json::Value> =
                        members.into_iter().collect();
                    Bytes::from(serde_json::Value::Object(sorted).to_string())
                })
                .unwrap_or(bytes);
            request = Request::from_parts(parts, Body::from(bytes));
        }
        "not-found-methods"
            if method == Method::OPTIONS && !KNOWN_PATHS.contains(&path.as_str()) =>
        {
            // Broken: a CORS layer over the whole router answers preflights on any path.
            let mut response = Response::new(Body::empty());
            *response.status_mut() = StatusCode::NO_CONTENT;
            response
                .headers_mut()
                .insert(ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
            return response;
        }
        "gap-too-new-boundary" if path == "/events" => {
            // Broken: off by one — a resume point just beyond the newest id is taken for the
            // newest itself (no gap).
            let newest = broken.app.hub.last_id();
            let beyond = request
                .headers()
                .get("last-event-id")
                .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
                == Some(newest + 1);
            if beyond {
                let newest = HeaderValue::from_str(&newest.to_string()).unwrap();
                request.headers_mut().insert("last-event-id", newest);
            }
        }
        "replay-content"
            if path == "/events" && request.headers().contains_key("last-event-id") =>
        {
            // Broken: replayed events lose their name (a buffer that kept only id and data).
            let newest = broken.app.hub.last_id();
            let response = next.run(request).await;
            return map_frames(response, move |frame| {
                let id: Option<u64> = frame
                    .strip_prefix("id: ")
                    .and_then(|rest| rest.split('\n').next()?.parse().ok());
                if id.is_some_and(|id| id <= newest) {
                    let (head, rest) = frame.split_once("\nevent: ")?;
                    let (_, rest) = rest.split_once('\n')?;
                    return Some(format!("{head}\n{rest}"));
                }
                Some(frame)
            });
        }
        "metrics-refusals" if path == "/events" => {
            // Broken (with /metrics below): any Last-Event-ID counts as a resume.
            let garbage = request
                .headers()
                .get("last-event-id")
                .is_some_and(|v| v.to_str().map_or(true, |s| s.parse::<u64>().is_err()));
            if garbage {
                GARBAGE_RESUMES.fetch_add(1, Ordering::Relaxed);
            }
        }
        "replay-race" if path == "/events" && request.headers().contains_key("last-event-id") => {
            return racy_resume(&broken.app, request).await;
        }
        _ => {}
    }
    let response = next.run(request).await;
    break_response(&broken, &path, &method, response).await
}

async fn break_response(
    broken: &Broken,
    path: &str,
    method: &Method,
    mut response: Response,
) -> Response {
    let status = response.status();
    let headers = response.headers_mut();
    match (broken.rule, path) {
        ("events-head", "/events") => {
            headers.remove("x-accel-buffering");
        }
        // Unmatched methods answered as unknown paths (actix-web's default).
        ("events-methods", "/events" | "/health") | ("trigger-405", "/trigger")
            if status == StatusCode::METHOD_NOT_ALLOWED =>
        {
            *response.status_mut() = StatusCode::NOT_FOUND;
        }
        ("trigger-401", _) => {
            headers.remove("www-authenticate");
        }
        ("trigger-400", _) if status == StatusCode::BAD_REQUEST => {
            *response.status_mut() = StatusCode::UNPROCESSABLE_ENTITY
        }
        ("trigger-413", _) if status == StatusCode::PAYLOAD_TOO_LARGE => {
            *response.status_mut() = StatusCode::BAD_REQUEST
        }
        ("trigger-415", _) if status == StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            *response.status_mut() = StatusCode::BAD_REQUEST
        }
        ("max-clients", "/events") if status == StatusCode::SERVICE_UNAVAILABLE => {
            *response.status_mut() = StatusCode::TOO_MANY_REQUESTS;
            response.headers_mut().remove("retry-after");
        }
        ("cors-preflight", _) if method == Method::OPTIONS => {
            *response.status_mut() = StatusCode::OK
        }
        ("cors-every-response", _) if status == StatusCode::NOT_FOUND => {
            headers.remove(ACCESS_CONTROL_ALLOW_ORIGIN);
        }
        ("not-found", _) if status == StatusCode::NOT_FOUND => {
            return html(status, "<h1>Not Found</h1>");
        }
        ("demo-page", "/") => {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        }
        ("events-not-compressed", "/events") => {
            // Broken: actix-web-lab's way of keeping a compressor off the stream, which names
            // no content coding at all.
            headers.insert("content-encoding", HeaderValue::from_static("identity"));
        }
        ("trigger-rejected-publishes-nothing", "/trigger") if status == StatusCode::BAD_REQUEST => {
            // Broken: a trigger refused for its reserved name is published all the same (under
            // that name, so that only its data tells it from the clock's ticks).
            let _ = broken
                .app
                .hub
                .publish(EventName::tick(), "\"refused, published\"".into(), None)
                .await;
        }
        ("trigger-rejected-keeps-ids", "/trigger") if status.is_client_error() => {
            // Broken: the id is taken before the request is judged, so a refusal uses one up
            // (published under a name the streams then leave out).
            let _ = broken
                .app
                .hub
                .publish(
                    EventName::custom("burned").unwrap(),
                    "\"burned\"".into(),
                    None,
                )
                .await;
        }
        ("trigger-answer", "/trigger") if status == StatusCode::ACCEPTED => {
            // Broken: an event left unnamed is answered as `null` (an Option serialized).
            return rewrite_body(response, |text| {
                text.replace(r#""event":"message""#, r#""event":null"#)
            })
            .await;
        }
        ("cors-allow-headers", _) if method == Method::OPTIONS => {
            // Broken: the preflight of version 1, before Idempotency-Key.
            headers.insert(
                "access-control-allow-headers",
                HeaderValue::from_static("content-type, authorization, last-event-id"),
            );
        }
        ("cors-refusals", _) if status == StatusCode::PAYLOAD_TOO_LARGE => {
            // Broken: the body limit sits outside the CORS layer.
            headers.remove(ACCESS_CONTROL_ALLOW_ORIGIN);
        }
        ("trigger-clients", "/trigger") if status == StatusCode::ACCEPTED => {
            // Broken: the answer's clients is never counted.
            return rewrite_body(response, |text| {
                let mut answer: serde_json::Value = serde_json::from_str(&text).unwrap();
                answer["clients"] = 0.into();
                answer.to_string()
            })
            .await;
        }
        ("max-clients-keeps-streams", "/events") if status == StatusCode::SERVICE_UNAVAILABLE => {
            // Broken: making room for the refused one, an open stream is ended.
            END_ONE.store(true, Ordering::Relaxed);
        }
        ("max-clients-keeps-streams", "/events") if status == StatusCode::OK => {
            let (parts, body) = response.into_parts();
            let stream = body.into_data_stream();
            let ends = futures_util::stream::unfold(stream, |mut stream| async move {
                let next = stream.next().await?;
                (!END_ONE.swap(false, Ordering::Relaxed)).then_some((next, stream))
            });
            return Response::from_parts(parts, Body::from_stream(ends));
        }
        ("metrics", "/metrics") => {
            // Broken: the open-streams gauge counts requests in flight, which for a stream ends
            // when the handler returns its body, not when the stream ends.
            return rewrite_body(response, |text| {
                map_lines(&text, |line| {
                    line.starts_with("sse_clients ")
                        .then(|| "sse_clients 0".to_owned())
                })
            })
            .await;
        }
        ("metrics-labels", "/trigger") if status == StatusCode::ACCEPTED => {
            // Broken: publications are labelled by their event name (a request's text).
            let (parts, body) = response.into_parts();
            let bytes = axum::body::to_bytes(body, usize::MAX)
                .await
                .unwrap_or_default();
            let answer: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
            let mut names = EVENT_NAMES.lock().unwrap();
            if let Some(name) = answer["event"]
                .as_str()
                .filter(|n| !names.iter().any(|s| s == n))
            {
                names.push(name.to_owned());
            }
            return Response::from_parts(parts, Body::from(bytes));
        }
        ("metrics-labels", "/metrics") => {
            return rewrite_body(response, |text| {
                map_lines(&text, |line| {
                    line.starts_with("sse_events_published_total{kind=\"custom\"}")
                        .then(|| {
                            let names = EVENT_NAMES.lock().unwrap();
                            names.iter().fold(line.to_owned(), |lines, name| {
                                format!("{lines}\nsse_events_published_total{{kind=\"{name}\"}} 1")
                            })
                        })
                })
            })
            .await;
        }
        ("metrics-refusals", "/metrics") => {
            let garbage = GARBAGE_RESUMES.load(Ordering::Relaxed);
            return rewrite_body(response, |text| {
                map_lines(&text, |line| {
                    let value = line.strip_prefix("sse_replays_total{result=\"complete\"} ")?;
                    let value: u64 = value.parse().ok()?;
                    Some(format!(
                        "sse_replays_total{{result=\"complete\"}} {}",
                        value + garbage
                    ))
                })
            })
            .await;
        }
        ("metrics-counts", "/metrics") => {
            // Broken: a stream's duration is counted when its handler returns (as a request
            // latency is), so every open stream is counted before it ends.
            let open = broken.app.hub.clients();
            return rewrite_body(response, |text| {
                map_lines(&text, |line| {
                    let counted = line.starts_with("sse_stream_duration_seconds_bucket")
                        || line.starts_with("sse_stream_duration_seconds_count");
                    let (series, value) = line.rsplit_once(' ')?;
                    let value: usize = value.parse().ok()?;
                    counted.then(|| format!("{series} {}", value + open))
                })
            })
            .await;
        }
        ("cluster-delivery", "/health") => {
            // It says it is on the shared log (it was started with one), so that the cluster
            // checks begin and it is cluster-delivery that notices.
            return rewrite_body(response, |text| {
                text.replace("\"backend\":\"memory\"", "\"backend\":\"redis\"")
            })
            .await;
        }
        ("cluster-ids", "/trigger") if status == StatusCode::ACCEPTED => {
            // Broken: the answer's id comes from a counter of this instance's own.
            static LOCAL: AtomicU64 = AtomicU64::new(0);
            return rewrite_body(response, |text| {
                let mut answer: serde_json::Value = serde_json::from_str(&text).unwrap();
                answer["id"] = (LOCAL.fetch_add(1, Ordering::Relaxed) + 1).into();
                answer.to_string()
            })
            .await;
        }
        ("log-outage", "/trigger") if status == StatusCode::SERVICE_UNAVAILABLE => {
            // Broken: a failed publication is acknowledged anyway.
            let id = broken.app.hub.last_id() + 1;
            let mut response = Response::new(Body::from(format!(
                r#"{{"id":{id},"event":"outage","clients":0}}"#
            )));
            *response.status_mut() = StatusCode::ACCEPTED;
            return response;
        }
        ("log-data-loss", "/trigger") if status == StatusCode::ACCEPTED => {
            // Broken: ids given anew after the log lost its data (as with no floor kept),
            // shown as the answer of a log that began again at 1 after the first ten.
            return rewrite_body(response, |text| {
                let mut answer: serde_json::Value = serde_json::from_str(&text).unwrap();
                let id = answer["id"].as_u64().unwrap();
                if id > 10 {
                    answer["id"] = (id - 10).into();
                }
                answer.to_string()
            })
            .await;
        }
        ("log-connection-cut", "/events") if status == StatusCode::OK => {
            // Broken: a stream ends whenever the connection to the log drops, so its client
            // has to reconnect.
            let mut lost = LOG_LOST.subscribe();
            let (parts, body) = response.into_parts();
            let body = body.into_data_stream().take_until(async move {
                let _ = lost.changed().await;
            });
            return Response::from_parts(parts, Body::from_stream(body));
        }
        ("health", "/health") => {
            // A break the suite can still read (it needs `last_id` and the rest to begin), so
            // that it is the `health` check itself that notices.
            return rewrite_body(response, |text| {
                text.replace("\"status\":\"ok\"", "\"status\":\"up\"")
            })
            .await;
        }
        ("tick-cadence", "/health") => {
            return rewrite_body(response, |text| {
                text.replace("\"tick_ms\":500", "\"tick_ms\":1000")
            })
            .await;
        }
        ("lag-cutoff", "/health") => {
            return rewrite_body(response, |text| {
                text.replace("\"client_buffer\":1000000", "\"client_buffer\":16")
            })
            .await;
        }
        // Broken: a stream whose client went away (or reset it, over HTTP/2) is kept.
        ("disconnect-cleanup" | "h2-many-streams", "/events") => {
            let (parts, body) = response.into_parts();
            return Response::from_parts(
                parts,
                Body::from_stream(Leaky(Some(body.into_data_stream()))),
            );
        }
        (rule, "/events") if status == StatusCode::OK => {
            let stream_number = STREAMS.fetch_add(1, Ordering::Relaxed);
            return map_frames(response, move |frame| {
                break_frame(rule, stream_number, frame)
            });
        }
        _ => {}
    }
    response
}

static STREAMS: AtomicU64 = AtomicU64::new(0);

/// The paths the router serves (anything else is unknown).
const KNOWN_PATHS: [&str; 5] = ["/", "/events", "/trigger", "/health", "/metrics"];

/// Breaks one written frame of an event stream (the hub writes one block per frame).
fn break_frame(rule: &str, stream_number: u64, frame: String) -> Option<String> {
    let is_event = frame.starts_with("id: ") || frame.starts_with("event: ");
    match rule {
        "retry-first" if frame.starts_with("retry:") => None,
        "heartbeat" if frame.starts_with(':') => None,
        "event-fields" if is_event => Some(format!("source: broken\n{frame}")),
        "tick-shape" if frame.contains("event: tick") => {
            Some(frame.replace("{\"tick\":", "{\"tick\": "))
        }
        // Each stream's ticks get a number of their own (a per-stream prefix on K), so streams
        // disagree on K.
        "tick-shared" if frame.contains("event: tick") => {
            Some(frame.replace("{\"tick\":", &format!("{{\"tick\":{}", stream_number + 1)))
        }
        "ids-consecutive" => {
            let id: Option<u64> = frame
                .strip_prefix("id: ")
                .and_then(|rest| rest.split('\n').next()?.parse().ok());
            (id.is_none_or(|id| id % 5 != 0)).then_some(frame)
        }
        "payload-json" if is_event => Some(frame.replace("true", "1")),
        // A field separator without its space: a line starting with a space loses it.
        "payload-multiline" if is_event => Some(frame.replace("\ndata: ", "\ndata:")),
        "payload-unicode" if is_event => Some(
            frame
                .chars()
                .map(|c| if c.is_ascii() { c } else { '?' })
                .collect(),
        ),
        // An empty payload written as no data line at all: no event is dispatched.
        "payload-empty" if is_event => Some(frame.replace("\ndata: \n\n", "\n\n")),
        "payload-default-name" => Some(frame.replace("event: message\n", "event: msg\n")),
        // Payload lines written raw after one `data:`: line breaks become fields and events.
        "injection" if is_event => {
            let (head, data) = frame.split_once("data: ")?;
            Some(format!("{head}data: {}", data.replace("\ndata: ", "\n")))
        }
        "gap-too-old" | "gap-too-new" if frame.contains("event: gap\n") => None,
        "trigger-rejected-keeps-ids" if frame.contains("event: burned\n") => None,
        // K counted from 0.
        "fresh-start" if frame.contains("event: tick\n") => {
            let (head, rest) = frame.split_once("{\"tick\":")?;
            let (k, tail) = rest.split_once(',')?;
            let k: u64 = k.parse().ok()?;
            Some(format!("{head}{{\"tick\":{},{tail}", k.saturating_sub(1)))
        }
        _ => Some(frame),
    }
}

fn map_frames(
    response: Response,
    mut change: impl FnMut(String) -> Option<String> + Send + 'static,
) -> Response {
    let (parts, body) = response.into_parts();
    let frames = body.into_data_stream().filter_map(move |frame| {
        let changed = frame
            .ok()
            .and_then(|bytes| change(String::from_utf8_lossy(&bytes).into_owned()));
        async move { changed.map(|text| Ok::<_, Infallible>(Bytes::from(text))) }
    });
    Response::from_parts(parts, Body::from_stream(frames))
}

/// Broken (cluster-idempotency): keys are remembered by this instance only, so a retry on
/// another instance publishes again.
async fn idempotent_here_only(request: Request, next: Next) -> Response {
    static SEEN: Mutex<Vec<(Vec<u8>, Bytes, String)>> = Mutex::new(Vec::new());
    let (mut parts, body) = request.into_parts();
    let Some(key) = parts.headers.remove("idempotency-key") else {
        return next.run(Request::from_parts(parts, body)).await;
    };
    let body = axum::body::to_bytes(body, 1 << 20)
        .await
        .unwrap_or_default();
    let key = key.as_bytes().to_vec();
    let earlier = SEEN
        .lock()
        .unwrap()
        .iter()
        .find(|(k, _, _)| *k == key)
        .map(|(_, b, answer)| (b.clone(), answer.clone()));
    if let Some((first_body, answer)) = earlier {
        if first_body == body {
            let mut response = Response::new(Body::from(answer));
            *response.status_mut() = StatusCode::ACCEPTED;
            response
                .headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            return response;
        }
        return plain(
            StatusCode::UNPROCESSABLE_ENTITY,
            r#"{"error":"another body"}"#,
        );
    }
    let response = next
        .run(Request::from_parts(parts, Body::from(body.clone())))
        .await;
    if response.status() != StatusCode::ACCEPTED {
        return response;
    }
    let (parts, answer) = response.into_parts();
    let answer = axum::body::to_bytes(answer, 1 << 20)
        .await
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&answer).into_owned();
    SEEN.lock().unwrap().push((key, body, text.clone()));
    Response::from_parts(parts, Body::from(text))
}

/// Counts the times the shared log's connection was seen lost (the log-connection-cut break).
static LOG_LOST: std::sync::LazyLock<tokio::sync::watch::Sender<u64>> =
    std::sync::LazyLock::new(|| tokio::sync::watch::channel(0).0);

fn watch_log_connection(app: App) {
    tokio::spawn(async move {
        loop {
            if !app.hub.log().connected() {
                LOG_LOST.send_modify(|lost| *lost += 1);
                while !app.hub.log().connected() {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
}

/// Broken (cluster-clock-fenced): a clock that checks the lease on its own beat and remembers
/// the answer, instead of checking it in the same step as the tick; K is the log's, so K stays
/// consecutive. Continued after a pause past its lease, it ticks once on what it remembered.
fn unfenced_clock(app: App, config: &Config) {
    let EventLogSetting::Redis(url) = &config.event_log else {
        return;
    };
    let (lease, meta) = (
        format!("{}:lease", config.event_log_key),
        format!("{}:meta", config.event_log_key),
    );
    let client = redis::Client::open(url.as_str()).expect("a valid EVENT_LOG");
    let period = Duration::from_millis(app.config.tick_ms.max(1));
    tokio::spawn(async move {
        let mut redis = client
            .get_multiplexed_async_connection()
            .await
            .expect("the shared log answers");
        let me = app.instance.to_string();
        let mut holds = false;
        let mut beat = tokio::time::interval(Duration::from_millis(500));
        let mut clock = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        clock.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                biased;
                _ = clock.tick(), if holds => {
                    let k: u64 = redis::cmd("HINCRBY").arg(&meta).arg("tick").arg(1)
                        .query_async(&mut redis).await.unwrap_or(0);
                    let data = sse_core::log::tick_data(k, std::time::SystemTime::now());
                    let _ = app.hub.publish(EventName::tick(), data, None).await;
                }
                _ = beat.tick() => {
                    let taken: Option<String> = redis::cmd("SET").arg(&lease).arg(&me)
                        .arg("NX").arg("PX").arg(2000).query_async(&mut redis).await.unwrap_or(None);
                    holds = taken.is_some() || {
                        let holder: Option<String> = redis::cmd("GET").arg(&lease)
                            .query_async(&mut redis).await.unwrap_or(None);
                        holder.as_deref() == Some(me.as_str())
                    };
                    if holds {
                        let _: Result<(), _> = redis::cmd("PEXPIRE").arg(&lease).arg(2000)
                            .query_async(&mut redis).await;
                    }
                }
            }
        }
    });
}

/// Broken (cluster-clock): every instance runs a clock of its own besides the shared one,
/// counting K by itself.
fn forge_ticks(app: App) {
    let period = Duration::from_millis(app.config.tick_ms.max(1));
    tokio::spawn(async move {
        for k in 1u64.. {
            tokio::time::sleep(period).await;
            let data = sse_core::log::tick_data(k, std::time::SystemTime::now());
            let _ = app.hub.publish(EventName::tick(), data, None).await;
        }
    });
}

/// Each line of `text`, or what `change` makes of it.
fn map_lines(text: &str, change: impl Fn(&str) -> Option<String>) -> String {
    text.lines()
        .map(|line| change(line).unwrap_or_else(|| line.to_owned()) + "\n")
        .collect()
}

async fn rewrite_body(response: Response, change: impl FnOnce(String) -> String) -> Response {
    let (mut parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let text = change(String::from_utf8_lossy(&bytes).into_owned());
    parts.headers.remove("content-length");
    Response::from_parts(parts, Body::from(text))
}

fn plain(status: StatusCode, json: &'static str) -> Response {
    let mut response = Response::new(Body::from(json));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn html(status: StatusCode, text: &'static str) -> Response {
    let mut response = Response::new(Body::from(text));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/html"));
    response
}

/// A naive resume: copy the replay, then subscribe to live events separately — whatever is
/// published in between is lost.
async fn racy_resume(app: &App, request: Request) -> Response {
    let header = request
        .headers()
        .get("last-event-id")
        .map(|v| v.as_bytes().to_vec());
    let Ok(mut snapshot) = app.subscribe(header.as_deref(), None).await else {
        return plain(StatusCode::SERVICE_UNAVAILABLE, r#"{"error":"full"}"#);
    };
    let mut replay = vec![retry_block(app.config.retry_ms)];
    while let Some(Some(event)) = snapshot.next().now_or_never() {
        replay.push(event.wire().clone());
    }
    drop(snapshot);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let Ok(live) = app.subscribe(None, None).await else {
        return plain(StatusCode::SERVICE_UNAVAILABLE, r#"{"error":"full"}"#);
    };
    let live = live.map(|event| event.wire().clone());
    let body = futures_util::stream::iter(replay)
        .chain(live)
        .map(Ok::<_, Infallible>);
    let mut response = Response::new(Body::from_stream(body));
    for (name, value) in EVENT_STREAM_HEADERS {
        response
            .headers_mut()
            .insert(name, HeaderValue::from_static(value));
    }
    response
}

/// A body that, when the client goes away, is kept instead of dropped: its subscription leaks.
struct Leaky(Option<BodyDataStream>);

impl futures_util::Stream for Leaky {
    type Item = Result<Bytes, axum::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match self.0.as_mut() {
            Some(stream) => stream.poll_next_unpin(cx),
            None => Poll::Ready(None),
        }
    }
}

impl Drop for Leaky {
    fn drop(&mut self) {
        if let Some(stream) = self.0.take() {
            LEAKED.lock().unwrap().push(stream);
        }
    }
}
