//! CORS, health, unknown paths and the demo page (contract 5, 6).

use std::time::Duration;

use serde_json::{Value, json};

use super::{Checked, ensure, marker, pass, settled_clients};
use crate::target::{Answer, Ctx, Health, send};

/// Fails unless `answer` is a contract error: JSON content type and `{"error": "…"}`.
pub fn ensure_json_error(answer: &Answer, what: &str) -> Result<(), String> {
    let content_type = answer
        .header("content-type")
        .unwrap_or_default()
        .to_ascii_lowercase();
    ensure!(
        content_type.split(';').next().map(str::trim) == Some("application/json"),
        "{what}: error with Content-Type {content_type:?} instead of application/json: {}",
        answer.describe()
    );
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

fn method_list(value: Option<&str>) -> Vec<String> {
    value
        .unwrap_or_default()
        .split(',')
        .map(|m| m.trim().to_ascii_uppercase())
        .filter(|m| !m.is_empty())
        .collect()
}

pub async fn cors_preflight(ctx: &Ctx) -> Checked {
    let origin = if ctx.target.origin == "*" {
        "https://elsewhere.example"
    } else {
        ctx.target.origin.as_str()
    };
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
        let seen = format!("{} {:?}", answer.status, answer.headers);
        ensure!(
            answer.status == 204,
            "OPTIONS {path} answered {} instead of 204: {seen}",
            answer.status
        );
        ensure!(
            answer.header("access-control-allow-origin") == Some(ctx.target.origin.as_str()),
            "OPTIONS {path}: Access-Control-Allow-Origin is not {:?}: {seen}",
            ctx.target.origin
        );
        let methods = method_list(answer.header("access-control-allow-methods"));
        ensure!(
            methods.iter().any(|m| m == method) && !methods.iter().any(|m| m == not_allowed),
            "OPTIONS {path}: Access-Control-Allow-Methods should list {method} and not {not_allowed}: {methods:?}"
        );
        let headers = answer
            .header("access-control-allow-headers")
            .unwrap_or_default()
            .to_ascii_lowercase();
        let headers: Vec<&str> = headers.split(',').map(str::trim).collect();
        for needed in ["content-type", "authorization", "last-event-id"] {
            ensure!(
                headers.contains(&needed),
                "OPTIONS {path}: Access-Control-Allow-Headers lacks {needed}: {seen}"
            );
        }
        ensure!(
            answer
                .header("access-control-max-age")
                .and_then(|v| v.parse::<u64>().ok())
                .is_some(),
            "OPTIONS {path}: no Access-Control-Max-Age in seconds: {seen}"
        );
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
        ensure!(
            answer.header("access-control-allow-origin") == Some(ctx.target.origin.as_str()),
            "{what} ({}) has Access-Control-Allow-Origin {:?}, expected {:?}",
            answer.status,
            answer.header("access-control-allow-origin"),
            ctx.target.origin
        );
    }
    pass()
}

pub async fn health(ctx: &Ctx) -> Checked {
    let answer = send(ctx.http.get(ctx.url("/health"))).await?;
    ensure!(
        answer.status == 200,
        "GET /health answered {}",
        answer.describe()
    );
    ensure!(
        answer
            .header("content-type")
            .is_some_and(|v| v.starts_with("application/json")),
        "GET /health is not application/json: {:?}",
        answer.header("content-type")
    );
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
        ensure!(
            answer.status == 404,
            "GET {path} answered {} instead of 404",
            answer.describe()
        );
        ensure_json_error(&answer, &format!("GET {path}"))?;
    }
    pass()
}

pub async fn demo_page(ctx: &Ctx) -> Checked {
    let answer = send(ctx.http.get(ctx.url("/"))).await?;
    ensure!(answer.status == 200, "GET / answered {}", answer.status);
    let content_type = answer
        .header("content-type")
        .unwrap_or_default()
        .to_ascii_lowercase()
        .replace(' ', "");
    ensure!(
        content_type == "text/html;charset=utf-8",
        "GET / has Content-Type {content_type:?}, not text/html; charset=utf-8"
    );
    ensure!(
        answer.body.to_ascii_lowercase().contains("<html") && answer.body.contains("EventSource"),
        "GET / does not look like the demo page (no <html> or EventSource)"
    );
    pass()
}
