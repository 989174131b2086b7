//! CORS, health, unknown paths and the demo page (contract 5, 6).

use std::time::Duration;

use serde_json::{Value, json};

use super::expect::{
    ensure_allowed_origin, ensure_header, ensure_header_lists, ensure_status, header_items,
    media_type,
};
use super::{Checked, ensure, marker, pass, settled_clients, skip};
use crate::target::{Answer, Ctx, Health, send};

/// Fails unless `answer` is a contract error: JSON content type and `{"error": "…"}`.
pub fn ensure_json_error(answer: &Answer, what: &str) -> Result<(), String> {
    ensure_header(
        answer,
        what,
        "Content-Type",
        "application/json for an error",
        |value| media_type(value).0 == "application/json",
    )?;
    let message = answer.json().and_then(|value| {
        let object = value.as_object()?;
        (object.len() == 1).then(|| object.get("error")?.as_str().map(str::to_owned))?
    });
    ensure!(
        message.is_some_and(|m| !m.trim().is_empty() && !m.contains('\n')),
        "{what}: error body is not {{\"error\":\"one sentence\"}}: {}",
        answer.describe()
    );
    Ok(())
}

/// The origin a preflight comes from: the server's own setting, or any when it allows all.
fn preflight_origin(ctx: &Ctx) -> &str {
    if ctx.target.origin == "*" {
        "https://elsewhere.example"
    } else {
        ctx.target.origin.as_str()
    }
}

pub async fn cors_preflight(ctx: &Ctx) -> Checked {
    let origin = preflight_origin(ctx);
    let paths = [
        ("/events", "GET", "POST"),
        ("/trigger", "POST", "GET"),
        ("/health", "GET", "POST"),
        ("/metrics", "GET", "POST"),
    ];
    for (path, method, not_allowed) in paths {
        let request = ctx
            .http
            .request(reqwest::Method::OPTIONS, ctx.url(path))
            .header("origin", origin)
            .header("access-control-request-method", method)
            .header(
                "access-control-request-headers",
                "content-type,authorization,last-event-id",
            );
        let answer = send(request).await?;
        let what = format!("OPTIONS {path}");
        ensure_status(&answer, &what, 204)?;
        ensure_allowed_origin(&answer, &what, ctx)?;
        let methods = header_items(&answer, "access-control-allow-methods");
        ensure_header(
            &answer,
            &what,
            "Access-Control-Allow-Methods",
            &format!("a list with {method} and without {not_allowed}"),
            |_| {
                let listed = |m: &str| methods.iter().any(|l| l.eq_ignore_ascii_case(m));
                listed(method) && !listed(not_allowed)
            },
        )?;
        ensure_header_lists(
            &answer,
            &what,
            "Access-Control-Allow-Headers",
            &["content-type", "authorization", "last-event-id"],
        )?;
        ensure_header(
            &answer,
            &what,
            "Access-Control-Max-Age",
            "whole seconds",
            |value| value.and_then(|v| v.parse::<u64>().ok()).is_some(),
        )?;
    }
    pass()
}

pub async fn cors_every_response(ctx: &Ctx) -> Checked {
    let mut answers = vec![
        ("GET /health", send(ctx.http.get(ctx.url("/health"))).await?),
        (
            "GET /metrics",
            send(ctx.http.get(ctx.url("/metrics"))).await?,
        ),
        ("GET /", send(ctx.http.get(ctx.url("/"))).await?),
        (
            "GET /no-such-path",
            send(ctx.http.get(ctx.url("/no-such-path"))).await?,
        ),
        ("PUT /health", send(ctx.http.put(ctx.url("/health"))).await?),
        (
            "POST /trigger (accepted)",
            ctx.trigger(&json!({"event": marker("cors"), "data": 1}))
                .await?,
        ),
        (
            "POST /trigger (400)",
            ctx.trigger(&json!({"event": "bad name", "data": 1}))
                .await?,
        ),
    ];
    if ctx.config().auth {
        let unauthorized = ctx
            .http
            .post(ctx.url("/trigger"))
            .header("content-type", "application/json")
            .body("{}");
        answers.push(("POST /trigger (401)", send(unauthorized).await?));
    }
    for (what, answer) in answers {
        ensure_allowed_origin(&answer, what, ctx)?;
    }
    pass()
}

/// The headers a browser asks a preflight for, per path: every one the contract lists.
pub async fn cors_allow_headers(ctx: &Ctx) -> Checked {
    const ALL: [&str; 4] = [
        "content-type",
        "authorization",
        "last-event-id",
        "idempotency-key",
    ];
    for (path, method) in [
        ("/events", "GET"),
        ("/trigger", "POST"),
        ("/health", "GET"),
        ("/metrics", "GET"),
    ] {
        let request = ctx
            .http
            .request(reqwest::Method::OPTIONS, ctx.url(path))
            .header("origin", preflight_origin(ctx))
            .header("access-control-request-method", method)
            .header("access-control-request-headers", ALL.join(","));
        let answer = send(request).await?;
        let what = format!("OPTIONS {path} asking for {}", ALL.join(", "));
        ensure_status(&answer, &what, 204)?;
        ensure_header_lists(&answer, &what, "Access-Control-Allow-Headers", &ALL)?;
    }
    pass()
}

/// Refusals made before a request reaches its handler (a size limit, a type check, the
/// client limit) carry the CORS header too, and the client limit's 503 is a JSON error.
pub async fn cors_refusals(ctx: &Ctx) -> Checked {
    if ctx.config().auth && ctx.target.token.is_none() {
        return skip("needs the server's token (--token)");
    }
    let key = format!("key-{}", marker("cors-refusals"));
    let first = ctx
        .trigger_with(json!({"data": 1}).to_string(), &[("idempotency-key", &key)])
        .await?;
    ensure!(
        first.status == 202,
        "POST /trigger with a new key answered {}",
        first.describe()
    );
    let big = json!({"data": "x".repeat(70_000)}).to_string();
    let mut answers = vec![
        (
            "POST /trigger of 70 kB",
            413,
            ctx.trigger_with(big, &[]).await?,
        ),
        ("POST /trigger as text/plain", 415, {
            let mut request = ctx
                .http
                .post(ctx.url("/trigger"))
                .header("content-type", "text/plain")
                .body(json!({"data": 1}).to_string());
            if let Some(token) = &ctx.target.token {
                request = request.bearer_auth(token);
            }
            send(request).await?
        }),
        (
            "POST /trigger with a used key",
            422,
            ctx.trigger_with(json!({"data": 2}).to_string(), &[("idempotency-key", &key)])
                .await?,
        ),
        (
            "POST /trigger with a malformed key",
            400,
            ctx.trigger_with(
                json!({"data": 1}).to_string(),
                &[("idempotency-key", "a b")],
            )
            .await?,
        ),
        (
            "GET /trigger",
            405,
            send(ctx.http.get(ctx.url("/trigger"))).await?,
        ),
        (
            "DELETE /events",
            405,
            send(ctx.http.delete(ctx.url("/events"))).await?,
        ),
    ];
    if super::stream::too_many_to_fill(ctx).is_none() {
        let (open, mut refused) = super::stream::fill_up(ctx).await?;
        let _ = refused.read_to_end(Duration::from_secs(5)).await;
        let mut headers = reqwest::header::HeaderMap::new();
        for (name, value) in &refused.head.headers {
            if let (Ok(name), Ok(value)) = (
                reqwest::header::HeaderName::from_bytes(name.as_bytes()),
                reqwest::header::HeaderValue::from_str(value),
            ) {
                headers.append(name, value);
            }
        }
        let answer = Answer {
            status: refused.head.status,
            headers,
            body: refused.body_text(),
        };
        drop(open);
        // The streams just closed leave the count by their next write: wait, for the next check.
        settled_clients(ctx).await?;
        ensure!(
            answer.status == 503,
            "GET /events at MAX_CLIENTS answered {}",
            answer.describe()
        );
        ensure_json_error(&answer, "GET /events at MAX_CLIENTS (503)")?;
        answers.push(("GET /events at MAX_CLIENTS", 503, answer));
    }
    for (what, expected, answer) in answers {
        ensure_status(&answer, what, expected)?;
        ensure_allowed_origin(&answer, what, ctx)?;
    }
    pass()
}

pub async fn health(ctx: &Ctx) -> Checked {
    let answer = send(ctx.http.get(ctx.url("/health"))).await?;
    ensure_status(&answer, "GET /health", 200)?;
    ensure_header(
        &answer,
        "GET /health",
        "Content-Type",
        "application/json",
        |value| value.is_some_and(|v| v.starts_with("application/json")),
    )?;
    let health = Health::parse(&answer.body)?;
    ensure!(
        health.raw.get("status") == Some(&Value::from("ok")),
        "status is not \"ok\": {}",
        answer.body
    );
    ensure!(
        health.log_connected,
        "log.connected is false on a server whose log is up: {}",
        answer.body
    );
    if let Some(token) = &ctx.target.token {
        ensure!(
            !answer.body.contains(token.as_str()),
            "/health shows the trigger token: {}",
            answer.body
        );
    }
    let id = ctx
        .publish(Some(&marker("health")), json!("counted"))
        .await?;
    let after = ctx.health_now().await?;
    ensure!(
        after.last_id >= id,
        "last_id {} is behind the id {id} just published",
        after.last_id
    );

    let base = settled_clients(ctx).await?;
    let stream = ctx.open_stream("/events", &[]).await?;
    let counted = ctx
        .wait_for_clients(Duration::from_secs(2), |c| c == base + 1)
        .await?;
    ensure!(
        counted == base + 1,
        "with one stream open, clients is {counted} (expected {})",
        base + 1
    );
    drop(stream);
    pass()
}

pub async fn not_found(ctx: &Ctx) -> Checked {
    for path in [
        "/no-such-path",
        "/events/extra",
        "/trigger2",
        "/health.json",
    ] {
        let answer = send(ctx.http.get(ctx.url(path))).await?;
        let what = format!("GET {path}");
        ensure_status(&answer, &what, 404)?;
        ensure_json_error(&answer, &what)?;
    }
    pass()
}

/// Unknown paths are unknown to every method: no 405, and no preflight answered there.
pub async fn not_found_methods(ctx: &Ctx) -> Checked {
    for path in ["/no-such-path", "/events/extra", "/trigger/x"] {
        for method in ["POST", "PUT", "DELETE", "OPTIONS"] {
            let mut request = ctx.http.request(
                reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
                ctx.url(path),
            );
            if method == "OPTIONS" {
                request = request
                    .header("origin", preflight_origin(ctx))
                    .header("access-control-request-method", "GET");
            } else {
                request = request
                    .header("content-type", "application/json")
                    .body(json!({"data": 1}).to_string());
            }
            let answer = send(request).await?;
            let what = format!("{method} {path}");
            ensure_status(&answer, &what, 404)?;
            ensure_json_error(&answer, &what)?;
            ensure_allowed_origin(&answer, &what, ctx)?;
        }
    }
    pass()
}

pub async fn demo_page(ctx: &Ctx) -> Checked {
    let answer = send(ctx.http.get(ctx.url("/"))).await?;
    ensure_status(&answer, "GET /", 200)?;
    ensure_header(
        &answer,
        "GET /",
        "Content-Type",
        "text/html; charset=utf-8",
        |value| {
            value
                .unwrap_or_default()
                .to_ascii_lowercase()
                .replace(' ', "")
                == "text/html;charset=utf-8"
        },
    )?;
    ensure!(
        answer.body.to_ascii_lowercase().contains("<html") && answer.body.contains("EventSource"),
        "GET / does not look like the demo page (no <html> or EventSource)"
    );
    pass()
}
