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
