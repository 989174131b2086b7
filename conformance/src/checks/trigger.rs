//! `POST /trigger`'s answers to bad requests (contract 4).

use std::time::Duration;

use serde_json::{Value, json};

use super::expect::{ensure_header, ensure_header_lists, ensure_status};
use super::http::ensure_json_error;
use super::{
    Checked, abbreviate, ensure, ensure_consecutive, events, id_of, marker, pass, read_through,
    settled_clients, skip,
};
use crate::target::{Answer, Ctx, send};
use crate::wire::{RawStream, TimedBlock};

/// A trigger request with full control over every part.
struct Request<'a> {
    method: &'a str,
    content_type: Option<&'a str>,
    authorization: Option<String>,
    idempotency_key: Option<String>,
    body: Vec<u8>,
}

impl<'a> Request<'a> {
    /// A well-formed request (right method, type and token) with this body.
    fn post(ctx: &Ctx, body: impl Into<Vec<u8>>) -> Self {
        Self {
            method: "POST",
            content_type: Some("application/json"),
            authorization: ctx.target.token.as_ref().map(|t| format!("Bearer {t}")),
            idempotency_key: None,
            body: body.into(),
        }
    }

    /// The same request with an `Idempotency-Key`.
    fn keyed(self, key: &str) -> Self {
        Self {
            idempotency_key: Some(key.to_owned()),
            ..self
        }
    }

    async fn send(self, ctx: &Ctx) -> Result<Answer, String> {
        // A server may answer before reading a large body and close the connection; the
        // unread bytes then make the kernel reset it, which can swallow the answer on its way
        // to us. The answer was still sent, so ask again (a few times) rather than fail.
        let attempts = if self.body.len() > 16 * 1024 { 3 } else { 1 };
        let mut last_error = String::new();
        for _ in 0..attempts {
            match self.send_once(ctx).await {
                Ok(answer) => return Ok(answer),
                Err(error) => last_error = error,
            }
        }
        Err(last_error)
    }

    async fn send_once(&self, ctx: &Ctx) -> Result<Answer, String> {
        let method =
            reqwest::Method::from_bytes(self.method.as_bytes()).map_err(|e| e.to_string())?;
        let mut request = ctx
            .http
            .request(method, ctx.url("/trigger"))
            .body(self.body.clone());
        if let Some(content_type) = self.content_type {
            request = request.header("content-type", content_type);
        }
        if let Some(authorization) = &self.authorization {
            request = request.header("authorization", authorization);
        }
        if let Some(key) = &self.idempotency_key {
            request = request.header("idempotency-key", key);
        }
        send(request).await
    }
}

/// A valid trigger body of exactly `size` bytes.
fn body_of_size(size: usize) -> Vec<u8> {
    let frame = r#"{"event":"conformance.size","data":""}"#.len();
    format!(
        r#"{{"event":"conformance.size","data":"{}"}}"#,
        "x".repeat(size - frame)
    )
    .into_bytes()
}

async fn expect_status(
    ctx: &Ctx,
    request: Request<'_>,
    status: u16,
    what: &str,
) -> Result<Answer, String> {
    let answer = request.send(ctx).await?;
    ensure_status(&answer, what, status)?;
    if status >= 400 {
        ensure_json_error(&answer, what)?;
    }
    Ok(answer)
}

pub async fn trigger_400(ctx: &Ctx) -> Checked {
    let long_name = "x".repeat(65);
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"not json".to_vec(), "a body that is not JSON"),
        (b"".to_vec(), "an empty body"),
        (b"{\"data\":".to_vec(), "truncated JSON"),
        (b"\xff\xfe{}".to_vec(), "invalid UTF-8"),
        (b"[1,2]".to_vec(), "an array"),
        (b"\"just a string\"".to_vec(), "a string"),
        (b"{}".to_vec(), "an object without data"),
        (br#"{"event":"ok"}"#.to_vec(), "an event without data"),
        (
            json!({"event": "a b", "data": 1}).to_string().into_bytes(),
            "event with a space",
        ),
        (
            json!({"event": "", "data": 1}).to_string().into_bytes(),
            "empty event name",
        ),
        (
            json!({"event": "-x", "data": 1}).to_string().into_bytes(),
            "event starting with -",
        ),
        (
            json!({"event": long_name, "data": 1})
                .to_string()
                .into_bytes(),
            "65-character event name",
        ),
        (
            json!({"event": "é", "data": 1}).to_string().into_bytes(),
            "non-ASCII event name",
        ),
        (
            json!({"event": 5, "data": 1}).to_string().into_bytes(),
            "event that is a number",
        ),
        (
            json!({"event": null, "data": 1}).to_string().into_bytes(),
            "event that is null",
        ),
        (
            json!({"event": "tick", "data": 1}).to_string().into_bytes(),
            "the reserved name tick",
        ),
        (
            json!({"event": "gap", "data": 1}).to_string().into_bytes(),
            "the reserved name gap",
        ),
    ];
    for (body, what) in cases {
        expect_status(ctx, Request::post(ctx, body), 400, what).await?;
    }
    // The edges of what is valid.
    let accepted = [
        json!({"event": "x".repeat(64), "data": 1}),
        json!({"event": "a.b_c:d-E9", "data": 1}),
        json!({"event": "0", "data": 1, "ignored": "other members are ignored"}),
    ];
    for body in accepted {
        expect_status(
            ctx,
            Request::post(ctx, body.to_string()),
            202,
            &format!("valid body {body}"),
        )
        .await?;
    }
    pass()
}

pub async fn trigger_405(ctx: &Ctx) -> Checked {
    for method in ["GET", "PUT", "DELETE", "PATCH"] {
        let request = Request {
            method,
            ..Request::post(ctx, b"{\"data\":1}".to_vec())
        };
        let what = format!("{method} /trigger");
        let answer = expect_status(ctx, request, 405, &what).await?;
        ensure_header_lists(&answer, &what, "Allow", &["POST"])?;
    }
    pass()
}

pub async fn trigger_413(ctx: &Ctx) -> Checked {
    const LIMIT: usize = 64 * 1024;
    expect_status(
        ctx,
        Request::post(ctx, body_of_size(LIMIT)),
        202,
        "a valid body of exactly 64 KiB",
    )
    .await?;
    expect_status(
        ctx,
        Request::post(ctx, body_of_size(LIMIT + 1)),
        413,
        "a valid body of 64 KiB + 1",
    )
    .await?;
    expect_status(
        ctx,
        Request::post(ctx, body_of_size(1024 * 1024)),
        413,
        "a 1 MiB body",
    )
    .await?;

    // The same without a Content-Length: a chunked body that goes over the limit while read.
    let status = send_chunked(ctx, &body_of_size(LIMIT + 100)).await?;
    ensure!(
        status == 413,
        "a chunked body of 64 KiB + 100 without Content-Length answered {status} instead of 413"
    );
    pass()
}

/// `POST /trigger` with a body of no announced length over the raw client (chunked over
/// HTTP/1.1; over HTTP/2 DATA frames without `Content-Length`): the status.
async fn send_chunked(ctx: &Ctx, body: &[u8]) -> Result<u16, String> {
    let authorization = ctx.target.token.as_ref().map(|t| format!("Bearer {t}"));
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(value) = &authorization {
        headers.push(("Authorization", value));
    }
    let mut sent = body.to_vec();
    if !ctx.over_h2() {
        headers.push(("Transfer-Encoding", "chunked"));
        sent.clear();
        for chunk in body.chunks(8192) {
            sent.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
            sent.extend_from_slice(chunk);
            sent.extend_from_slice(b"\r\n");
        }
        sent.extend_from_slice(b"0\r\n\r\n");
    }
    let response = RawStream::open(
        &ctx.target.transport,
        ctx.target.address,
        None,
        ("POST", "/trigger", &headers, &sent),
        Duration::from_secs(5),
    )
    .await?;
    Ok(response.head.status)
}

pub async fn trigger_415(ctx: &Ctx) -> Checked {
    let body = json!({"data": "typed"}).to_string();
    for content_type in [
        Some("text/plain"),
        None,
        Some("application/x-www-form-urlencoded"),
        Some("application/jsonx"),
        Some("text/json"),
    ] {
        let request = Request {
            content_type,
            ..Request::post(ctx, body.clone())
        };
        expect_status(ctx, request, 415, &format!("Content-Type {content_type:?}")).await?;
    }
    for content_type in ["application/json; charset=utf-8", "Application/JSON"] {
        let request = Request {
            content_type: Some(content_type),
            ..Request::post(ctx, body.clone())
        };
        expect_status(ctx, request, 202, &format!("Content-Type {content_type:?}")).await?;
    }
    pass()
}

pub async fn trigger_401(ctx: &Ctx) -> Checked {
    if !ctx.config().auth {
        return skip("needs TRIGGER_TOKEN set (health config.auth true)");
    }
    let body = json!({"data": "authorized?"}).to_string();
    let wrong = ctx
        .target
        .token
        .as_deref()
        .map_or("wrong".to_owned(), |t| format!("{t}x"));
    let cases = [
        (None, "no Authorization"),
        (Some(format!("Bearer {wrong}")), "a wrong token"),
        (Some("Bearer".to_owned()), "Bearer without a token"),
        (Some(format!("Basic {wrong}")), "the Basic scheme"),
    ];
    for (authorization, what) in cases {
        let request = Request {
            authorization,
            ..Request::post(ctx, body.clone())
        };
        let answer = expect_status(ctx, request, 401, what).await?;
        ensure_header(
            &answer,
            what,
            "WWW-Authenticate",
            "the Bearer scheme",
            |value| value.is_some_and(|v| v.to_ascii_lowercase().starts_with("bearer")),
        )?;
    }
    if let Some(token) = &ctx.target.token {
        if let Some(prefix) = token
            .get(..token.len().saturating_sub(1))
            .filter(|p| !p.is_empty())
        {
            let request = Request {
                authorization: Some(format!("Bearer {prefix}")),
                ..Request::post(ctx, body.clone())
            };
            expect_status(ctx, request, 401, "a prefix of the token").await?;
        }
        expect_status(ctx, Request::post(ctx, body), 202, "the right token").await?;
    }
    pass()
}

pub async fn trigger_error_order(ctx: &Ctx) -> Checked {
    let huge_invalid = {
        let mut body = b"{not json".to_vec();
        body.resize(70_000, b' ');
        body
    };
    let everything_wrong = Request {
        method: "PUT",
        content_type: Some("text/plain"),
        authorization: Some("Bearer wrong-token".to_owned()),
        idempotency_key: None,
        body: huge_invalid.clone(),
    };
    expect_status(
        ctx,
        everything_wrong,
        405,
        "PUT, wrong token, text/plain, 70 kB of non-JSON",
    )
    .await?;
    if ctx.config().auth {
        let request = Request {
            content_type: Some("text/plain"),
            authorization: Some("Bearer wrong-token".to_owned()),
            ..Request::post(ctx, huge_invalid.clone())
        };
        expect_status(
            ctx,
            request,
            401,
            "POST, wrong token, text/plain, 70 kB of non-JSON",
        )
        .await?;
    }
    if ctx.config().auth && ctx.target.token.is_none() {
        return skip("the rest needs the server's token (--token)");
    }
    let request = Request {
        content_type: Some("text/plain"),
        ..Request::post(ctx, huge_invalid.clone())
    };
    expect_status(ctx, request, 415, "POST, text/plain, 70 kB of non-JSON").await?;
    expect_status(
        ctx,
        Request::post(ctx, huge_invalid),
        413,
        "POST, application/json, 70 kB of non-JSON",
    )
    .await?;
    expect_status(
        ctx,
        Request::post(ctx, b"{not json".to_vec()),
        400,
        "POST, application/json, short non-JSON",
    )
    .await?;
    pass()
}

/// What the stream saw while every kind of refusal was sent: the events from a first accepted
/// publication to a last one, with every refused request in between.
struct Refusals {
    blocks: Vec<TimedBlock>,
    /// The accepted events' name (both ends), and the text every refused body carries.
    name: String,
    refused: String,
    first: u64,
    last: u64,
}

/// Sends one request for every way the contract refuses a trigger — each 400 cause, 401 (no
/// token, a wrong one), 405, 413 (with and without a Content-Length), 415 (another type, none),
/// 422 — between two accepted publications, with a stream open throughout.
async fn refuse_everything(ctx: &Ctx) -> Result<Refusals, String> {
    let mut stream = ctx.open_stream("/events", &[]).await?;
    // Every refused body carries this, so that an event published from one is recognised even
    // under a reserved name (a `tick` with the clock's own name).
    let refused = marker("refused");
    let name = marker("around-refusals");
    let key = format!("key-{name}");
    let first = Request::post(ctx, json!({"event": name, "data": "first"}).to_string())
        .keyed(&key)
        .send(ctx)
        .await?;
    let first = first
        .json()
        .filter(|_| first.status == 202)
        .and_then(|answer| answer["id"].as_u64())
        .ok_or_else(|| format!("the first publication answered {}", first.describe()))?;
    let body = |event: Option<&str>| match event {
        Some(event) => json!({"event": event, "data": refused}).to_string(),
        None => json!({"data": refused}).to_string(),
    };
    let oversized = json!({"data": format!("{refused}{}", "x".repeat(70_000))}).to_string();
    let mut rejections = vec![
        Request::post(ctx, format!("not json {refused}")),
        Request::post(ctx, json!([refused]).to_string()),
        Request::post(ctx, json!({"event": name, "note": refused}).to_string()),
        Request::post(ctx, body(Some("tick"))),
        Request::post(ctx, body(Some("gap"))),
        Request::post(ctx, body(Some("bad name"))),
        Request::post(ctx, body(None)).keyed("a b"),
        Request {
            content_type: Some("text/plain"),
            ..Request::post(ctx, body(None))
        },
        Request {
            content_type: None,
            ..Request::post(ctx, body(None))
        },
        Request::post(ctx, oversized.clone()),
        Request {
            method: "PUT",
            ..Request::post(ctx, body(None))
        },
        // The first publication's key with another body.
        Request::post(ctx, body(Some(&name))).keyed(&key),
    ];
    if ctx.config().auth {
        for authorization in [Some("Bearer wrong-token".to_owned()), None] {
            rejections.push(Request {
                authorization,
                ..Request::post(ctx, body(None))
            });
        }
    }
    for request in rejections {
        let what = format!(
            "{} /trigger {:?}",
            request.method,
            String::from_utf8_lossy(&request.body[..request.body.len().min(60)])
        );
        let answer = request.send(ctx).await?;
        ensure!(
            answer.status >= 400,
            "{what}, meant to be refused, answered {}",
            answer.describe()
        );
    }
    let status = send_chunked(ctx, oversized.as_bytes()).await?;
    ensure!(
        status == 413,
        "a chunked body of 70 kB, meant to be refused, answered {status}"
    );
    let last = ctx.publish(Some(&name), Value::from("last")).await?;
    let blocks = read_through(&mut stream, last, Duration::from_secs(5)).await?;
    Ok(Refusals {
        blocks,
        name,
        refused,
        first,
        last,
    })
}

pub async fn rejected_publishes_nothing(ctx: &Ctx) -> Checked {
    let Refusals {
        blocks,
        name,
        refused,
        ..
    } = refuse_everything(ctx).await?;
    for event in events(&blocks) {
        let clock_tick = event.event_type == "tick" && event.data.starts_with(r#"{"tick":"#);
        ensure!(
            (clock_tick || event.event_type == name) && !event.data.contains(&refused),
            "a rejected trigger published something: event {:?} id {:?} data {:?}",
            event.event_type,
            event.id,
            event.data
        );
    }
    pass()
}

pub async fn rejected_keeps_ids(ctx: &Ctx) -> Checked {
    let Refusals {
        blocks,
        first,
        last,
        ..
    } = refuse_everything(ctx).await?;
    // The stream was open before the first publication, so it has every id from there on.
    let ids: Vec<u64> = events(&blocks)
        .into_iter()
        .filter_map(id_of)
        .filter(|id| (first..=last).contains(id))
        .collect();
    ensure_consecutive(
        &ids,
        first,
        "between two publications with every kind of refused trigger in between",
    )?;
    ensure!(
        ids.last() == Some(&last),
        "the ids from {first} to {last} did not all arrive: {}",
        abbreviate(&ids)
    );
    pass()
}

pub async fn trigger_answer(ctx: &Ctx) -> Checked {
    let mut stream = ctx.open_stream("/events", &[]).await?;
    let long = format!("{}.", marker("answer"))
        .chars()
        .chain(std::iter::repeat('x'))
        .take(64)
        .collect::<String>();
    let mut answers = Vec::new();
    for event in [None, Some(long.as_str())] {
        let body = match event {
            Some(event) => json!({"event": event, "data": "answered"}),
            None => json!({"data": "answered"}),
        };
        let answer = ctx.trigger(&body).await?;
        ensure!(
            answer.status == 202,
            "POST /trigger {body} answered {}",
            answer.describe()
        );
        let json = answer
            .json()
            .and_then(|value| value.as_object().cloned())
            .ok_or_else(|| format!("202 whose body is not a JSON object: {}", answer.describe()))?;
        let mut keys: Vec<&str> = json.keys().map(String::as_str).collect();
        keys.sort_unstable();
        ensure!(
            keys == ["clients", "event", "id"],
            "a 202's body has the members {keys:?} (expected exactly id, event, clients): {}",
            answer.body
        );
        let name = event.unwrap_or("message");
        ensure!(
            json["event"] == name,
            "POST /trigger {body}: the 202 says event {} (expected {name:?})",
            json["event"]
        );
        let id = json["id"]
            .as_u64()
            .filter(|&id| id > 0)
            .ok_or_else(|| format!("a 202's id is not a positive integer: {}", answer.body))?;
        ensure!(
            json["clients"].is_u64(),
            "a 202's clients is not an integer: {}",
            answer.body
        );
        answers.push((id, name.to_owned()));
    }
    let last = answers[answers.len() - 1].0;
    let blocks = read_through(&mut stream, last, Duration::from_secs(5)).await?;
    let received = events(&blocks);
    for (id, name) in answers {
        let event = received
            .iter()
            .find(|event| id_of(event) == Some(id))
            .ok_or_else(|| format!("the 202 said id {id}, and no event with that id arrived"))?;
        ensure!(
            event.event_type == name && event.data == "answered",
            "the 202 said id {id} for an event {name:?}; the stream's id {id} is {:?} with data {:?}",
            event.event_type,
            event.data
        );
    }
    pass()
}

pub async fn trigger_error_order_keys(ctx: &Ctx) -> Checked {
    if ctx.config().auth && ctx.target.token.is_none() {
        return skip("needs the server's token (--token)");
    }
    let huge_invalid = {
        let mut body = b"{not json".to_vec();
        body.resize(70_000, b' ');
        body
    };
    let valid = json!({"data": "ordered"}).to_string();
    let mut cases = Vec::new();
    if ctx.config().auth {
        cases.push((
            Request {
                authorization: Some("Bearer wrong-token".to_owned()),
                ..Request::post(ctx, valid.clone()).keyed("a b")
            },
            401,
            "a malformed Idempotency-Key and a wrong token",
        ));
    }
    cases.push((
        Request {
            content_type: Some("text/plain"),
            ..Request::post(ctx, valid.clone()).keyed("a b")
        },
        415,
        "a malformed Idempotency-Key and text/plain",
    ));
    cases.push((
        Request::post(ctx, huge_invalid.clone()).keyed("a b"),
        413,
        "a malformed Idempotency-Key and 70 kB",
    ));
    for (request, status, what) in cases {
        expect_status(ctx, request, status, what).await?;
    }
    // A key in use: a body that is not valid is a 400 (or 413) before it is another body.
    let key = format!("key-{}", marker("order"));
    expect_status(
        ctx,
        Request::post(ctx, valid).keyed(&key),
        202,
        "the first request with a new key",
    )
    .await?;
    expect_status(
        ctx,
        Request::post(ctx, b"{not json".to_vec()).keyed(&key),
        400,
        "a used Idempotency-Key with a body that is not JSON",
    )
    .await?;
    expect_status(
        ctx,
        Request::post(ctx, json!({"event": "bad name", "data": 1}).to_string()).keyed(&key),
        400,
        "a used Idempotency-Key with a bad event name",
    )
    .await?;
    expect_status(
        ctx,
        Request::post(ctx, huge_invalid).keyed(&key),
        413,
        "a used Idempotency-Key with 70 kB",
    )
    .await?;
    pass()
}

pub async fn trigger_clients(ctx: &Ctx) -> Checked {
    let base = settled_clients(ctx).await?;
    let name = marker("clients");
    let clients_of = |answer: &crate::target::Answer| {
        answer
            .json()
            .and_then(|value| value.get("clients")?.as_u64())
            .ok_or_else(|| format!("202 without an integer clients: {}", answer.describe()))
    };
    let mut open = Vec::new();
    for more in 1..=3u64 {
        open.push(ctx.open_stream("/events", &[]).await?);
        let answer = ctx.trigger(&json!({"event": name, "data": more})).await?;
        ensure!(
            answer.status == 202,
            "POST /trigger answered {}",
            answer.describe()
        );
        let clients = clients_of(&answer)?;
        ensure!(
            clients == base + more,
            "with {} streams open, 202 said clients {clients}",
            base + more
        );
    }
    // A stream that leaves is counted out.
    open.pop();
    let left = ctx
        .wait_for_clients(super::notice_bound(ctx), |c| c == base + 2)
        .await?;
    ensure!(
        left == base + 2,
        "/health still counts {left} clients after one of {} closed",
        base + 3
    );
    let answer = ctx.trigger(&json!({"event": name, "data": 0})).await?;
    let clients = clients_of(&answer)?;
    ensure!(
        clients == base + 2,
        "after one stream of {} closed, 202 said clients {clients}",
        base + 3
    );
    pass()
}
