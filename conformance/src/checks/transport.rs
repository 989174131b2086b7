//! Transport (contract section 8): compression everywhere but the stream, and HTTPS with ALPN
//! `h2`. The TLS checks start their own process of the server with a development certificate
//! the suite makes, so they run where the suite can start the server (`--spawn`).

use std::io::Read;
use std::path::Path;
use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::expect::{ensure_header, ensure_status};
use super::{Checked, Outcome, ensure, marker, pass, read_through, skip};
use crate::spawn::{Launcher, Server};
use crate::target::Ctx;
use crate::tls::{self, Certificates};
use crate::wire::h2::{self as h2_frames, FrameTap};
use crate::wire::{find, parse_head, request};

/// What a stream is asked with: what browsers send, and more.
const ACCEPT_ANY_CODING: &str = "gzip, deflate, br, zstd";

pub async fn events_not_compressed(ctx: &Ctx) -> Checked {
    let mut stream = ctx
        .get_stream(
            "/events",
            &[
                ("Accept", "text/event-stream"),
                ("Accept-Encoding", ACCEPT_ANY_CODING),
            ],
        )
        .await?;
    let what = format!("GET /events with Accept-Encoding: {ACCEPT_ANY_CODING}");
    ensure_status(&stream.head, &what, 200)?;
    ensure_header(
        &stream.head,
        &what,
        "Content-Encoding",
        "none: a stream is never compressed, and `identity` is no content coding (RFC 9110 §8.4.1)",
        |value| value.is_none(),
    )?;
    // Each event leaves at once: a compressor holding bytes back would delay it.
    let text = marker("events-not-compressed");
    let id = ctx.publish(Some("uncompressed"), json!(text)).await?;
    let blocks = read_through(&mut stream, id, Duration::from_secs(5)).await?;
    let arrived = blocks
        .iter()
        .filter_map(|timed| timed.block.event.as_ref())
        .any(|event| event.data == text);
    ensure!(
        arrived,
        "event {id} arrived without its data {text:?}: {}",
        stream.body_sample()
    );
    pass()
}

pub async fn demo_page_gzip(ctx: &Ctx) -> Checked {
    let get = |accept: Option<&str>| {
        let mut request = ctx.http.get(ctx.url("/"));
        if let Some(accept) = accept {
            request = request.header("accept-encoding", accept);
        }
        async move {
            let response = request
                .send()
                .await
                .map_err(|e| format!("GET / failed: {e}"))?;
            let status = response.status().as_u16();
            let encoding = response
                .headers()
                .get("content-encoding")
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
            let body = response
                .bytes()
                .await
                .map_err(|e| format!("reading GET / failed: {e}"))?;
            Ok::<_, String>((status, encoding, body))
        }
    };
    let looks_like_the_page =
        |page: &str| page.to_ascii_lowercase().contains("<html") && page.contains("EventSource");

    let (status, encoding, body) = get(Some("gzip")).await?;
    ensure!(
        status == 200,
        "GET / with Accept-Encoding: gzip answered {status}"
    );
    ensure!(
        encoding
            .as_deref()
            .is_some_and(|e| e.eq_ignore_ascii_case("gzip")),
        "GET / with Accept-Encoding: gzip was not compressed: Content-Encoding {encoding:?} ({} bytes)",
        body.len()
    );
    let mut page = String::new();
    flate2::read::GzDecoder::new(&body[..])
        .read_to_string(&mut page)
        .map_err(|e| format!("GET / said gzip but its body does not gunzip: {e}"))?;
    ensure!(
        looks_like_the_page(&page),
        "GET / gunzipped is not the demo page: {:?}",
        page.chars().take(200).collect::<String>()
    );

    for accept in [None, Some("identity"), Some("gzip;q=0")] {
        let (status, encoding, body) = get(accept).await?;
        let asked = accept.map_or("no Accept-Encoding".into(), |a| {
            format!("Accept-Encoding: {a}")
        });
        ensure!(status == 200, "GET / with {asked} answered {status}");
        ensure!(
            encoding.is_none(),
            "GET / with {asked} (gzip not accepted) came with Content-Encoding {encoding:?}"
        );
        ensure!(
            looks_like_the_page(&String::from_utf8_lossy(&body)),
            "GET / with {asked} is not the demo page as text"
        );
    }
    pass()
}

/// Starts the server with TLS and the suite's development certificate, and `more` settings.
async fn start_tls(
    launcher: &Launcher,
    certificates: &Certificates,
    more: &[(&str, &str)],
) -> Result<Server, String> {
    let env = certificates.env();
    let mut env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    env.extend_from_slice(more);
    let server = launcher.start(&env).await?;
    ensure!(
        server.output().contains("listening on https://"),
        "with TLS_CERT and TLS_KEY the server did not say `listening on https://…`: {}",
        server.output()
    );
    Ok(server)
}

/// Runs `check` against a process of the server started over TLS (with `more` settings) and the
/// authority to trust, and stops the process afterwards, whatever the outcome.
async fn on_tls_server(
    ctx: &Ctx,
    more: &[(&str, &str)],
    check: impl AsyncFnOnce(&mut Server, &Path) -> Checked,
) -> Checked {
    let launcher = match launcher(ctx) {
        Ok(launcher) => launcher,
        Err(skipped) => return skipped,
    };
    let certificates = Certificates::make()?;
    let mut server = start_tls(launcher, &certificates, more).await?;
    let outcome = check(&mut server, &certificates.files.ca).await;
    server.stop(Duration::from_secs(3)).await;
    outcome
}

fn launcher(ctx: &Ctx) -> Result<&Launcher, Checked> {
    ctx.launcher()
        .ok_or_else(|| skip("needs a server the suite starts itself (--spawn BINARY)"))
}

/// `GET path` over HTTP/1.1 on a TLS connection: the status.
async fn get_over_tls_http1(
    stream: &mut tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
    address: std::net::SocketAddr,
    path: &str,
) -> Result<u16, String> {
    let sent = std::time::Instant::now();
    stream
        .write_all(&request(
            "GET",
            path,
            address,
            &[("Connection", "close")],
            b"",
        ))
        .await
        .map_err(|e| format!("cannot send GET {path} over TLS: {e}"))?;
    let mut received = Vec::new();
    let end = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Some(end) = find(&received, b"\r\n\r\n") {
                return Ok(end);
            }
            let mut buffer = [0; 4096];
            match stream.read(&mut buffer).await {
                Ok(0) => return Err("the connection closed before a response head".to_owned()),
                Ok(n) => received.extend_from_slice(&buffer[..n]),
                Err(e) => return Err(format!("reading the response failed: {e}")),
            }
        }
    })
    .await
    .map_err(|_| format!("no response head to GET {path} over TLS within 5 s"))??;
    Ok(parse_head(&received[..end], sent.elapsed())?.status)
}

/// `GET path` over HTTP/2: the status.
async fn get_over_h2(
    stream: tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
    address: std::net::SocketAddr,
    path: &str,
) -> Result<u16, String> {
    let (send, connection) = h2::client::handshake(stream)
        .await
        .map_err(|e| format!("the HTTP/2 handshake failed: {e}"))?;
    let driver = tokio::spawn(connection);
    let answer = tokio::time::timeout(Duration::from_secs(5), async move {
        let mut send = send
            .ready()
            .await
            .map_err(|e| format!("the HTTP/2 connection is not ready: {e}"))?;
        let request = http::Request::get(format!("https://{address}{path}"))
            .body(())
            .expect("a valid request");
        let (response, _) = send
            .send_request(request, true)
            .map_err(|e| format!("cannot send GET {path} over HTTP/2: {e}"))?;
        let response = response
            .await
            .map_err(|e| format!("GET {path} over HTTP/2 failed: {e}"))?;
        Ok::<_, String>(response.status().as_u16())
    })
    .await
    .map_err(|_| format!("no answer to GET {path} over HTTP/2 within 5 s"))?;
    driver.abort();
    answer
}

pub async fn tls_alpn_h2(ctx: &Ctx) -> Checked {
    on_tls_server(ctx, &[], async |server: &mut Server, ca: &Path| {
        let address = server.address();
        let both = tls::connect(address, tls::client_config(ca, &[b"h2", b"http/1.1"])?).await?;
        let chosen = tls::negotiated(&both);
        ensure!(
            chosen == "h2",
            "offered ALPN h2 and http/1.1, the server chose {chosen} (HTTP/2 needs h2)"
        );
        let status = get_over_h2(both, address, "/health").await?;
        ensure!(status == 200, "GET /health over HTTP/2 answered {status}");

        let mut h1 = tls::connect(address, tls::client_config(ca, &[b"http/1.1"])?).await?;
        let chosen = tls::negotiated(&h1);
        ensure!(
            chosen == "http/1.1",
            "offered ALPN http/1.1 alone, the server chose {chosen}"
        );
        let status = get_over_tls_http1(&mut h1, address, "/health").await?;
        ensure!(
            status == 200,
            "GET /health over HTTPS/1.1 answered {status}"
        );
        pass()
    })
    .await
}

pub async fn tls_refuses_plain_http(ctx: &Ctx) -> Checked {
    on_tls_server(ctx, &[], async |server: &mut Server, ca: &Path| {
        let address = server.address();
        // A client already connected over TLS before the plain one, and one after it.
        let mut before = tls::connect(address, tls::client_config(ca, &[b"http/1.1"])?).await?;
        let mut plain = tokio::net::TcpStream::connect(address)
            .await
            .map_err(|e| format!("cannot connect to {address}: {e}"))?;
        plain
            .write_all(&request("GET", "/health", address, &[], b""))
            .await
            .map_err(|e| format!("cannot send plain HTTP: {e}"))?;
        let mut answer = Vec::new();
        let closed = tokio::time::timeout(Duration::from_secs(10), async {
            let mut buffer = [0; 4096];
            loop {
                match plain.read(&mut buffer).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => answer.extend_from_slice(&buffer[..n]),
                }
            }
        })
        .await
        .is_ok();
        ensure!(
            !answer.starts_with(b"HTTP/"),
            "a plain HTTP request to the HTTPS port was answered in plain HTTP: {:?}",
            String::from_utf8_lossy(&answer[..answer.len().min(200)])
        );
        ensure!(
            closed,
            "a plain HTTP request to the HTTPS port was not closed within 10 s"
        );
        let status = get_over_tls_http1(&mut before, address, "/health").await?;
        ensure!(
            status == 200,
            "after a plain HTTP request, a client connected before it got {status}"
        );
        let mut after = tls::connect(address, tls::client_config(ca, &[b"http/1.1"])?).await?;
        let status = get_over_tls_http1(&mut after, address, "/health").await?;
        ensure!(
            status == 200,
            "after a plain HTTP request, a new client got {status}"
        );
        pass()
    })
    .await
}

pub async fn tls_config_errors(ctx: &Ctx) -> Checked {
    let launcher = match launcher(ctx) {
        Ok(launcher) => launcher,
        Err(skipped) => return skipped,
    };
    let certificates = Certificates::make()?;
    let dir = &certificates.dir;
    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        Ok::<_, String>(path.display().to_string())
    };
    let stray = write("stray-key.pem", &dev_cert::stray_key())?;
    let not_pem = write("not.pem", "not a certificate\n")?;
    let missing = dir.join("missing.pem").display().to_string();
    let directory = dir.display().to_string();
    let cert = certificates.files.cert.display().to_string();
    let key = certificates.files.key.display().to_string();
    // Each: the settings, and the variable (with its value, when it has one) the line must name.
    type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, &'a str);
    let cases: [Case; 7] = [
        (&[("TLS_CERT", &cert)], "TLS_KEY", ""),
        (&[("TLS_KEY", &key)], "TLS_CERT", ""),
        (
            &[("TLS_CERT", &missing), ("TLS_KEY", &key)],
            "TLS_CERT",
            &missing,
        ),
        (
            &[("TLS_CERT", &directory), ("TLS_KEY", &key)],
            "TLS_CERT",
            &directory,
        ),
        (
            &[("TLS_CERT", &not_pem), ("TLS_KEY", &key)],
            "TLS_CERT",
            &not_pem,
        ),
        (
            &[("TLS_CERT", &cert), ("TLS_KEY", &not_pem)],
            "TLS_KEY",
            &not_pem,
        ),
        (
            &[("TLS_CERT", &cert), ("TLS_KEY", &stray)],
            "TLS_KEY",
            &stray,
        ),
    ];
    for (settings, variable, value) in cases {
        super::process::refused_at_start(launcher, settings, variable, value).await?;
    }
    pass()
}

/// Event streams opened at once on one HTTP/2 connection.
const H2_STREAMS: usize = 100;

/// One request on an HTTP/2 connection: its response head and body.
async fn h2_send(
    send: &h2::client::SendRequest<bytes::Bytes>,
    address: std::net::SocketAddr,
    request: http::request::Builder,
    path: &str,
    body: Option<&str>,
) -> Result<(http::Response<h2::RecvStream>, h2::SendStream<bytes::Bytes>), String> {
    let request = request
        .uri(format!("https://{address}{path}"))
        .body(())
        .map_err(|e| e.to_string())?;
    let sent = h2_frames::send(send, request, body.map(str::as_bytes));
    tokio::time::timeout(Duration::from_secs(10), sent)
        .await
        .map_err(|_| format!("no response head to {path} over HTTP/2 within 10 s"))?
}

/// Reads an HTTP/2 body until `done` holds for what came so far, for at most `timeout`.
async fn h2_read_until(
    body: &mut h2::RecvStream,
    received: &mut Vec<u8>,
    timeout: Duration,
    done: impl Fn(&[u8]) -> bool,
) -> Result<(), String> {
    tokio::time::timeout(timeout, async {
        while !done(received) {
            match body.data().await {
                Some(Ok(data)) => {
                    let _ = body.flow_control().release_capacity(data.len());
                    received.extend_from_slice(&data);
                }
                Some(Err(e)) => return Err(format!("the stream failed: {e}")),
                None => return Err("the stream ended".to_owned()),
            }
        }
        Ok(())
    })
    .await
    .map_err(|_| {
        format!(
            "not within {} ms; got {:?}",
            timeout.as_millis(),
            String::from_utf8_lossy(&received[..received.len().min(200)])
        )
    })?
}

/// `/health`'s `clients`, asked over the same HTTP/2 connection.
async fn h2_clients(
    send: &h2::client::SendRequest<bytes::Bytes>,
    address: std::net::SocketAddr,
) -> Result<u64, String> {
    let (response, _) = h2_send(
        send,
        address,
        http::Request::builder().method("GET"),
        "/health",
        None,
    )
    .await?;
    let mut body = response.into_body();
    let mut received = Vec::new();
    while let Some(data) = body.data().await {
        let data = data.map_err(|e| format!("reading /health over HTTP/2 failed: {e}"))?;
        let _ = body.flow_control().release_capacity(data.len());
        received.extend_from_slice(&data);
    }
    serde_json::from_slice::<serde_json::Value>(&received)
        .ok()
        .and_then(|health| health["clients"].as_u64())
        .ok_or_else(|| {
            format!(
                "/health over HTTP/2: {:?}",
                String::from_utf8_lossy(&received)
            )
        })
}

pub async fn h2_many_streams(ctx: &Ctx) -> Checked {
    let room = (H2_STREAMS + 10).to_string();
    let bound = super::notice_bound(ctx) + Duration::from_secs(5);
    on_tls_server(
        ctx,
        &[("MAX_CLIENTS", &room)],
        async |server: &mut Server, ca: &Path| {
            let address = server.address();
            let tls = tls::connect(address, tls::client_config(ca, &[b"h2"])?).await?;
            let chosen = tls::negotiated(&tls);
            ensure!(
                chosen == "h2",
                "offered ALPN h2 alone, the server chose {chosen}"
            );
            let (send, connection) = h2_frames::client()
                .handshake(tls)
                .await
                .map_err(|e| format!("the HTTP/2 handshake failed: {e}"))?;
            let driver = tokio::spawn(connection);
            let send = &send;

            // All at once, on this one connection.
            let opened = futures_util::future::join_all((0..H2_STREAMS).map(|_| async move {
                let (response, stream) = h2_send(
                    send,
                    address,
                    http::Request::builder().method("GET"),
                    "/events",
                    None,
                )
                .await?;
                let status = response.status().as_u16();
                ensure!(status == 200, "GET /events over HTTP/2 answered {status}");
                let mut body = response.into_body();
                let mut received = Vec::new();
                h2_read_until(&mut body, &mut received, Duration::from_secs(10), |got| {
                    find(got, b"\n\n").is_some()
                })
                .await
                .map_err(|e| format!("a stream's first block: {e}"))?;
                Ok::<_, String>((body, stream, received))
            }))
            .await;
            let failed: Vec<&String> = opened.iter().filter_map(|o| o.as_ref().err()).collect();
            ensure!(
                failed.is_empty(),
                "{} of {H2_STREAMS} streams on one HTTP/2 connection did not open, first: {}",
                failed.len(),
                failed[0]
            );
            let mut streams: Vec<_> = opened.into_iter().map(Result::unwrap).collect();
            let clients = h2_clients(send, address).await?;
            ensure!(
                clients == H2_STREAMS as u64,
                "with {H2_STREAMS} streams open on one connection /health says {clients} clients"
            );

            // One event reaches every stream.
            let text = marker("h2-many-streams");
            let body = json!({ "event": "h2", "data": text }).to_string();
            let request = http::Request::builder()
                .method("POST")
                .header("content-type", "application/json")
                .header(
                    "authorization",
                    format!("Bearer {}", crate::spawn::SUITE_TOKEN),
                );
            let (response, _) = h2_send(send, address, request, "/trigger", Some(&body)).await?;
            let status = response.status().as_u16();
            ensure!(status == 202, "POST /trigger over HTTP/2 answered {status}");
            let needle = format!("data: {text}\n");
            let arrived =
                futures_util::future::join_all(streams.iter_mut().map(|(body, _, received)| {
                    h2_read_until(body, received, Duration::from_secs(10), |got| {
                        find(got, needle.as_bytes()).is_some()
                    })
                }))
                .await;
            let missed: Vec<&String> = arrived.iter().filter_map(|a| a.as_ref().err()).collect();
            ensure!(
                missed.is_empty(),
                "{} of {H2_STREAMS} streams did not get the event published over HTTP/2, first: {}",
                missed.len(),
                missed[0]
            );

            // A client's RST_STREAM frees the stream as a disconnect does.
            for (_, stream, _) in &mut streams {
                stream.send_reset(h2::Reason::CANCEL);
            }
            drop(streams);
            let deadline = tokio::time::Instant::now() + bound;
            let mut clients = h2_clients(send, address).await?;
            while clients > 0 && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(50)).await;
                clients = h2_clients(send, address).await?;
            }
            ensure!(
                clients == 0,
                "{clients} of {H2_STREAMS} streams still counted {} ms after their RST_STREAM",
                bound.as_millis()
            );
            driver.abort();
            pass()
        },
    )
    .await
}

/// Headers HTTP/2 forbids (RFC 9113 §8.2.2): the connection-specific ones of HTTP/1.1.
const CONNECTION_SPECIFIC: [&str; 5] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
];

pub async fn h2_no_connection_headers(ctx: &Ctx) -> Checked {
    on_tls_server(ctx, &[], async |server: &mut Server, ca: &Path| {
        let address = server.address();
        let tls = tls::connect(address, tls::client_config(ca, &[b"h2"])?).await?;
        let chosen = tls::negotiated(&tls);
        ensure!(
            chosen == "h2",
            "offered ALPN h2 alone, the server chose {chosen}"
        );
        let (send, connection) = h2::client::handshake(tls)
            .await
            .map_err(|e| format!("the HTTP/2 handshake failed: {e}"))?;
        let driver = tokio::spawn(connection);
        // Every kind of answer: a page, a stream, JSON, metrics, and a refusal that closes an
        // HTTP/1.1 connection (`Connection: close` there).
        let bearer = format!("Bearer {}", crate::spawn::SUITE_TOKEN);
        // Method, path, headers, body.
        type Asked<'a> = (&'a str, &'a str, Vec<(&'a str, &'a str)>, Option<&'a str>);
        let requests: [Asked; 6] = [
            ("GET", "/", vec![("accept-encoding", "gzip")], None),
            ("GET", "/events", vec![], None),
            ("GET", "/health", vec![], None),
            ("GET", "/metrics", vec![], None),
            (
                "POST",
                "/trigger",
                vec![("content-type", "application/json")],
                Some("{}"),
            ),
            (
                "POST",
                "/trigger",
                vec![("content-type", "text/plain"), ("authorization", &bearer)],
                Some("x"),
            ),
        ];
        for (method, path, headers, body) in requests {
            let mut request = http::Request::builder().method(method);
            for (name, value) in headers {
                request = request.header(name, value);
            }
            let what = format!("{method} {path} over HTTP/2");
            let (response, _) =
                h2_send(&send, address, request, path, body)
                    .await
                    .map_err(|e| {
                        format!(
                            "{what}: {e} (an HTTP/2 client refuses a response carrying a \
                         connection-specific header as malformed)"
                        )
                    })?;
            let sent: Vec<&str> = response
                .headers()
                .keys()
                .map(|name| name.as_str())
                .filter(|name| CONNECTION_SPECIFIC.contains(name))
                .collect();
            ensure!(
                sent.is_empty(),
                "{what} came with {sent:?}, which HTTP/2 forbids (RFC 9113 §8.2.2)"
            );
        }
        driver.abort();
        pass()
    })
    .await
}

/// Event streams held open on one HTTP/2 connection through the shutdown.
const H2_SHUTDOWN_STREAMS: usize = 50;

/// What became of a server's HTTP/2 connection and its streams when it was sent SIGTERM.
struct H2Shutdown {
    /// Why each stream that did not end with END_STREAM ended (a reset, a cut, still open).
    cut: Vec<String>,
    /// Whether a GOAWAY came before the connection closed.
    goaway: bool,
    status: Option<std::process::ExitStatus>,
}

/// Opens [`H2_SHUTDOWN_STREAMS`] streams on one HTTP/2 connection to a TLS process of the
/// server, sends it SIGTERM, and reads every stream, the frames and the exit.
async fn shut_down_over_h2(ctx: &Ctx) -> Result<Result<H2Shutdown, Checked>, String> {
    let room = (H2_SHUTDOWN_STREAMS + 10).to_string();
    let mut seen = None;
    let outcome = on_tls_server(
        ctx,
        &[("MAX_CLIENTS", &room)],
        async |server: &mut Server, ca: &Path| {
            let address = server.address();
            let tls = tls::connect(address, tls::client_config(ca, &[b"h2"])?).await?;
            let (tls, frames) = FrameTap::new(tls);
            let (send, connection) = h2_frames::client()
                .handshake(tls)
                .await
                .map_err(|e| format!("the HTTP/2 handshake failed: {e}"))?;
            let mut connection = tokio::spawn(connection);
            let send = &send;
            let opened =
                futures_util::future::join_all((0..H2_SHUTDOWN_STREAMS).map(|_| async move {
                    let (response, _) = h2_send(
                        send,
                        address,
                        http::Request::builder().method("GET"),
                        "/events",
                        None,
                    )
                    .await?;
                    let status = response.status().as_u16();
                    ensure!(status == 200, "GET /events over HTTP/2 answered {status}");
                    Ok::<_, String>(response.into_body())
                }))
                .await;
            let mut bodies = Vec::with_capacity(H2_SHUTDOWN_STREAMS);
            for opened in opened {
                bodies.push(opened?);
            }
            server.terminate()?;
            // Each stream must end with its END_STREAM: its body ends (`None`), not an error.
            let ends =
                futures_util::future::join_all(bodies.into_iter().map(|mut body| async move {
                    tokio::time::timeout(Duration::from_secs(10), async {
                        loop {
                            match body.data().await {
                                Some(Ok(data)) => {
                                    let _ = body.flow_control().release_capacity(data.len());
                                }
                                Some(Err(e)) => return Err(e.to_string()),
                                None => return Ok(()),
                            }
                        }
                    })
                    .await
                    .unwrap_or_else(|_| Err("still open 10 s after the SIGTERM".into()))
                }))
                .await;
            let status = server.wait(Duration::from_secs(5)).await;
            // The GOAWAY is read off the wire: the connection's end alone cannot tell it from a
            // close (after a GOAWAY the client may still write into the closing connection and
            // see a broken pipe).
            let _ = tokio::time::timeout(Duration::from_secs(5), &mut connection).await;
            connection.abort();
            let goaway = frames
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .contains(&h2_frames::GOAWAY);
            seen = Some(H2Shutdown {
                cut: ends.into_iter().filter_map(Result::err).collect(),
                goaway,
                status,
            });
            pass()
        },
    )
    .await;
    match (outcome, seen) {
        (Ok(Outcome::Pass), Some(seen)) => Ok(Ok(seen)),
        (Ok(other), _) => Ok(Err(Ok(other))),
        (Err(failure), _) => Err(failure),
    }
}

pub async fn h2_shutdown(ctx: &Ctx) -> Checked {
    let seen = match shut_down_over_h2(ctx).await? {
        Ok(seen) => seen,
        Err(skipped) => return skipped,
    };
    ensure!(
        seen.cut.is_empty(),
        "{} of {H2_SHUTDOWN_STREAMS} streams did not end with END_STREAM at shutdown, first: {}",
        seen.cut.len(),
        seen.cut[0]
    );
    ensure!(
        seen.status.is_some_and(|s| s.success()),
        "the server did not exit 0 after the SIGTERM: {:?}",
        seen.status
    );
    pass()
}

pub async fn h2_shutdown_goaway(ctx: &Ctx) -> Checked {
    let seen = match shut_down_over_h2(ctx).await? {
        Ok(seen) => seen,
        Err(skipped) => return skipped,
    };
    ensure!(
        seen.goaway,
        "the connection closed without a GOAWAY (RFC 9113 §6.8: a server that shuts down sends one)"
    );
    pass()
}
