//! `POST /trigger`'s answers to bad requests (contract 4).

use std::time::Duration;

use serde_json::{Value, json};

use super::http::ensure_json_error;
use super::{Checked, ensure, events, marker, pass, read_through, settled_clients, skip};
use crate::target::{Answer, Ctx, send};
use crate::wire::{RawStream, connect};

/// A trigger request with full control over every part.
struct Request<'a> {
    method: &'a str,
    content_type: Option<&'a str>,
    authorization: Option<String>,
    body: Vec<u8>,
}

impl<'a> Request<'a> {
    /// A well-formed request (right method, type and token) with this body.
    fn post(ctx: &Ctx, body: impl Into<Vec<u8>>) -> Self {
        Self {
            method: "POST",
            content_type: Some("application/json"),
            authorization: ctx.target.token.as_ref().map(|t| format!("Bearer {t}")),
            body: body.into(),
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
    ensure!(
        answer.status == status,
        "{what}: answered {} instead of {status}",
        answer.describe()
    );
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
        let answer = expect_status(ctx, request, 405, &format!("{method} /trigger")).await?;
        let allow = answer
            .header("allow")
            .unwrap_or_default()
            .to_ascii_uppercase();
        ensure!(
            allow.split(',').any(|m| m.trim() == "POST"),
            "{method} /trigger: 405 without Allow listing POST (Allow: {allow:?})"
        );
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
    let body = body_of_size(LIMIT + 100);
    let mut chunked = Vec::new();
    for chunk in body.chunks(8192) {
        chunked.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        chunked.extend_from_slice(chunk);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let authorization = ctx.target.token.as_ref().map(|t| format!("Bearer {t}"));
    let mut headers = vec![
        ("Content-Type", "application/json"),
        ("Transfer-Encoding", "chunked"),
    ];
    if let Some(value) = &authorization {
        headers.push(("Authorization", value));
    }
    let socket = connect(ctx.target.address, None).await?;
    let response = RawStream::request(
        socket,
        ctx.target.address,
        "POST",
        "/trigger",
        &headers,
        &chunked,
        Duration::from_secs(5),
    )
    .await?;
    ensure!(
        response.head.status == 413,
        "a chunked body of 64 KiB + 100 without Content-Length answered {} instead of 413",
        response.head.describe()
    );
    pass()
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
        ensure!(
            answer
                .header("www-authenticate")
                .is_some_and(|v| v.to_ascii_lowercase().starts_with("bearer")),
            "{what}: 401 without WWW-Authenticate: Bearer"
        );
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

pub async fn rejected_publishes_nothing(ctx: &Ctx) -> Checked {
    let mut stream = ctx.open_stream("/events", &[]).await?;
    // Every rejected body carries this, so that an event published from one is recognised even
    // under a reserved name (a `tick` with the clock's own name).
    let refused = marker("refused");
    let body = |event: Option<&str>| match event {
        Some(event) => json!({"event": event, "data": refused}).to_string(),
        None => json!({"data": refused}).to_string(),
    };
    let mut rejections = vec![
        Request::post(ctx, b"not json".to_vec()),
        Request::post(ctx, body(Some("tick"))),
        Request::post(ctx, body(Some("gap"))),
        Request::post(ctx, body(Some("bad name"))),
        Request {
            content_type: Some("text/plain"),
            ..Request::post(ctx, body(None))
        },
        Request::post(ctx, body_of_size(70_000)),
        Request {
            method: "PUT",
            ..Request::post(ctx, body(None))
        },
    ];
    if ctx.config().auth {
        let wrong = Some("Bearer wrong-token".to_owned());
        rejections.push(Request {
            authorization: wrong,
            ..Request::post(ctx, body(None))
        });
    }
    for request in rejections {
        let method = request.method;
        let answer = request.send(ctx).await?;
        ensure!(
            answer.status >= 400,
            "{method} /trigger meant to be rejected answered {}",
            answer.describe()
        );
    }
    let name = marker("after-rejections");
    let marker_id = ctx.publish(Some(&name), Value::from("marker")).await?;
    let blocks = read_through(&mut stream, marker_id, Duration::from_secs(5)).await?;
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
