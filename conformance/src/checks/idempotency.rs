//! `Idempotency-Key` on `POST /trigger` (contract 4): a retry with the same key and body answers
//! the first answer and publishes nothing; another body gets 422; a malformed key gets 400 —
//! on one server, and across the instances of a cluster.

use std::time::Duration;

use serde_json::{Value, json};

use super::http::ensure_json_error;
use super::{Checked, ensure, events, marker, pass, read_through};
use crate::target::{Answer, Ctx};

pub async fn idempotency(ctx: &Ctx) -> Checked {
    publishes_once(ctx, ctx, ctx).await
}

/// Publishes on `first`, retries on `retry`, and watches the stream of `watch`.
pub async fn publishes_once(first: &Ctx, retry: &Ctx, watch: &Ctx) -> Checked {
    let mut stream = watch.open_stream("/events", &[]).await?;
    let name = marker("idempotency");
    let key = format!("key-{name}");
    let body = json!({ "event": name, "data": "once" }).to_string();
    let answer = first
        .trigger_with(body.clone(), &[("idempotency-key", &key)])
        .await?;
    let original = accepted(&answer, "the first request with an Idempotency-Key")?;
    let again = retry
        .trigger_with(body.clone(), &[("idempotency-key", &key)])
        .await?;
    let repeated = accepted(&again, "the retry with the same key and body")?;
    ensure!(
        repeated == original,
        "the retry with the same Idempotency-Key and body answered {repeated} instead of the first answer {original}"
    );
    let other = json!({ "event": name, "data": "another body" }).to_string();
    let conflict = retry
        .trigger_with(other, &[("idempotency-key", &key)])
        .await?;
    ensure!(
        conflict.status == 422,
        "the same Idempotency-Key with another body answered {} (expected 422)",
        conflict.describe()
    );
    ensure_json_error(&conflict, "422 for a reused Idempotency-Key")?;
    let too_long = "k".repeat(65);
    for malformed in ["", "a b", "a\tb", too_long.as_str()] {
        let answer = first
            .trigger_with(body.clone(), &[("idempotency-key", malformed)])
            .await?;
        ensure!(
            answer.status == 400,
            "Idempotency-Key {malformed:?} (not 1 to 64 visible ASCII characters) answered {} (expected 400)",
            answer.describe()
        );
        ensure_json_error(&answer, "400 for a malformed Idempotency-Key")?;
    }
    // Everything above published exactly one event: read through a later one and count.
    let end = first
        .publish(Some(&marker("idempotency-end")), json!(0))
        .await?;
    let blocks = read_through(&mut stream, end, Duration::from_secs(10)).await?;
    let published: Vec<(Option<&str>, &str)> = events(&blocks)
        .into_iter()
        .filter(|event| event.event_type == name)
        .map(|event| (event.id.as_deref(), event.data.as_str()))
        .collect();
    let id = original["id"].to_string();
    ensure!(
        published == [(Some(id.as_str()), "once")],
        "the key's requests published {published:?} (expected only id {id} with data \"once\")"
    );
    pass()
}

/// The JSON of a 202 answer.
fn accepted(answer: &Answer, what: &str) -> Result<Value, String> {
    ensure!(
        answer.status == 202,
        "{what} answered {} (expected 202)",
        answer.describe()
    );
    answer
        .json()
        .filter(|json| json.get("id").is_some_and(Value::is_u64))
        .ok_or_else(|| format!("{what} answered 202 without an id: {:?}", answer.body))
}

pub async fn idempotency_edges(ctx: &Ctx) -> Checked {
    let mut stream = ctx.open_stream("/events", &[]).await?;
    let name = marker("idempotency-edges");
    let body = |data: &str| json!({ "event": name, "data": data }).to_string();
    // The widest key: 64 characters running through the visible ASCII range, this run's own.
    let widest: String = name
        .chars()
        .chain(('!'..='~').cycle())
        .skip(name.len().saturating_sub(20))
        .take(64)
        .collect();
    let mut published = Vec::new();
    let first = ctx
        .trigger_with(body("widest"), &[("idempotency-key", &widest)])
        .await?;
    let original = accepted(&first, &format!("Idempotency-Key {widest:?}"))?;
    // One more stream open before the retry: the retry still answers the first answer.
    let _more = ctx.open_stream("/events", &[]).await?;
    let retry = ctx
        .trigger_with(body("widest"), &[("idempotency-key", &widest)])
        .await?;
    let repeated = accepted(
        &retry,
        &format!("the retry with Idempotency-Key {widest:?}"),
    )?;
    ensure!(
        repeated == original,
        "the retry with Idempotency-Key {widest:?}, one more stream open, answered {repeated} instead of the first answer {original}"
    );
    published.push((original["id"].to_string(), "widest"));
    // The shortest keys cannot be this run's own: a 422 says the key is valid and was used
    // before (by an earlier run) as well as a 202 does.
    for shortest in ["!", "~"] {
        let answer = ctx
            .trigger_with(body(shortest), &[("idempotency-key", shortest)])
            .await?;
        ensure!(
            answer.status == 202 || answer.status == 422,
            "Idempotency-Key {shortest:?} (one visible ASCII character) answered {} (expected 202, or 422 if an earlier run used it)",
            answer.describe()
        );
        if answer.status == 202 {
            let original = accepted(&answer, shortest)?;
            published.push((original["id"].to_string(), shortest));
        }
    }
    // The body is compared as bytes: the same members in another order, or with a space, are
    // another body.
    let key = format!("key-{name}");
    let first = format!(r#"{{"event":"{name}","data":"bytes"}}"#);
    let answer = ctx
        .trigger_with(first.clone(), &[("idempotency-key", &key)])
        .await?;
    let original = accepted(&answer, "a request with a new key")?;
    published.push((original["id"].to_string(), "bytes"));
    let reordered = format!(r#"{{"data":"bytes","event":"{name}"}}"#);
    let spaced = first.replace(':', ": ");
    for (other, what) in [
        (reordered, "its members reordered"),
        (spaced, "a space added"),
    ] {
        let answer = ctx
            .trigger_with(other, &[("idempotency-key", &key)])
            .await?;
        ensure!(
            answer.status == 422,
            "the same Idempotency-Key with the same body but {what} answered {} (expected 422: bodies are compared as bytes)",
            answer.describe()
        );
    }
    // A key whose first request was refused is still free.
    let fresh = format!("fresh-{name}");
    let refused = ctx
        .trigger_with(
            json!({"event": "bad name", "data": 1}).to_string(),
            &[("idempotency-key", &fresh)],
        )
        .await?;
    ensure!(
        refused.status == 400,
        "a bad event name with a new Idempotency-Key answered {} (expected 400)",
        refused.describe()
    );
    let after = ctx
        .trigger_with(body("after a refusal"), &[("idempotency-key", &fresh)])
        .await?;
    let after = accepted(
        &after,
        "a valid request with a key whose first request was refused",
    )?;
    published.push((after["id"].to_string(), "after a refusal"));

    let end = ctx
        .publish(Some(&marker("idempotency-end")), json!(0))
        .await?;
    let blocks = read_through(&mut stream, end, Duration::from_secs(10)).await?;
    // (A string's text is the event's data.)
    let seen: Vec<(String, &str)> = events(&blocks)
        .into_iter()
        .filter(|event| event.event_type == name)
        .map(|event| (event.id.clone().unwrap_or_default(), event.data.as_str()))
        .collect();
    let expected: Vec<(String, &str)> = published
        .iter()
        .map(|(id, data)| (id.clone(), *data))
        .collect();
    ensure!(
        seen == expected,
        "the keyed requests published {seen:?} (expected exactly {expected:?})"
    );
    pass()
}
