//! The assertions most checks make about a response's status and headers, one line each, with
//! failure messages that say what was asked, which header, what was expected and what came,
//! and show every header received.

use super::ensure;
use crate::target::{Answer, Ctx};
use crate::wire::Head;

/// A response as the checks judge it: the raw client's [`Head`] or reqwest's [`Answer`].
pub trait Response {
    fn status(&self) -> u16;
    /// The first value of the named header (case-insensitive); `None` when it is absent.
    fn header(&self, name: &str) -> Option<&str>;
    /// The status and every header (and the body, when there is one), for failure messages.
    fn seen(&self) -> String;
}

impl Response for Head {
    fn status(&self) -> u16 {
        self.status
    }

    fn header(&self, name: &str) -> Option<&str> {
        Head::header(self, name)
    }

    fn seen(&self) -> String {
        self.describe()
    }
}

impl Response for Answer {
    fn status(&self) -> u16 {
        self.status
    }

    fn header(&self, name: &str) -> Option<&str> {
        Answer::header(self, name)
    }

    fn seen(&self) -> String {
        let headers: Vec<String> = self
            .headers
            .iter()
            .map(|(name, value)| format!("{name}: {}", String::from_utf8_lossy(value.as_bytes())))
            .collect();
        let body: String = self.body.chars().take(300).collect();
        format!("{} [{}] {body:?}", self.status, headers.join("; "))
    }
}

/// Fails unless the status is `expected`.
pub fn ensure_status(response: &impl Response, what: &str, expected: u16) -> Result<(), String> {
    let status = response.status();
    ensure!(
        status == expected,
        "{what} answered {status} instead of {expected}: {}",
        response.seen()
    );
    Ok(())
}

/// Fails unless header `name` satisfies `ok` (which gets `None` when it is absent); `expected`
/// says in words what `ok` accepts.
pub fn ensure_header(
    response: &impl Response,
    what: &str,
    name: &str,
    expected: &str,
    ok: impl FnOnce(Option<&str>) -> bool,
) -> Result<(), String> {
    let value = response.header(name);
    ensure!(
        ok(value),
        "{what}: {name} {} (expected {expected}): {}",
        match value {
            Some(value) => format!("is {value:?}"),
            None => "is missing".to_owned(),
        },
        response.seen()
    );
    Ok(())
}

/// Fails unless header `name` is exactly `expected`.
pub fn ensure_header_eq(
    response: &impl Response,
    what: &str,
    name: &str,
    expected: &str,
) -> Result<(), String> {
    ensure_header(response, what, name, &format!("{expected:?}"), |value| {
        value == Some(expected)
    })
}

/// Fails unless `Access-Control-Allow-Origin` is the origin the server was given (contract 6).
pub fn ensure_allowed_origin(
    response: &impl Response,
    what: &str,
    ctx: &Ctx,
) -> Result<(), String> {
    ensure_header_eq(
        response,
        what,
        "Access-Control-Allow-Origin",
        &ctx.target.origin,
    )
}

/// A header's comma-separated items, trimmed and in lower case (none when it is absent).
pub fn header_items(response: &impl Response, name: &str) -> Vec<String> {
    list_items(response.header(name))
}

/// Fails unless header `name`'s items include every one of `items` (in any case).
pub fn ensure_header_lists(
    response: &impl Response,
    what: &str,
    name: &str,
    items: &[&str],
) -> Result<(), String> {
    let listed = header_items(response, name);
    let missing: Vec<&str> = items
        .iter()
        .copied()
        .filter(|item| !listed.iter().any(|l| l.eq_ignore_ascii_case(item)))
        .collect();
    ensure_header(
        response,
        what,
        name,
        &format!(
            "a list with {}; {} lacking",
            items.join(", "),
            missing.join(", ")
        ),
        |_| missing.is_empty(),
    )
}

/// A header value's comma-separated items, trimmed and in lower case.
pub fn list_items(value: Option<&str>) -> Vec<String> {
    value
        .unwrap_or_default()
        .split(',')
        .map(|item| item.trim().to_ascii_lowercase())
        .collect()
}

/// A `Content-Type`-like value split at `;`, in lower case: the media type, then its
/// parameters with the blanks inside them removed (`charset = UTF-8` is `charset=utf-8`).
pub fn media_type(value: Option<&str>) -> (String, Vec<String>) {
    let value = value.unwrap_or_default().to_ascii_lowercase();
    let mut parts = value.split(';').map(str::trim);
    let media = parts.next().unwrap_or_default().to_owned();
    (media, parts.map(|p| p.replace(' ', "")).collect())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn head() -> Head {
        Head {
            status: 200,
            headers: vec![
                (
                    "Content-Type".into(),
                    "text/event-stream; Charset = UTF-8".into(),
                ),
                ("Cache-Control".into(), "No-Cache, no-store".into()),
            ],
            latency: Duration::ZERO,
        }
    }

    fn answer() -> Answer {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert("allow", "GET, HEAD".parse().unwrap());
        Answer {
            status: 405,
            headers,
            body: r#"{"error":"no"}"#.into(),
        }
    }

    #[test]
    fn passing_assertions_pass() {
        let head = head();
        ensure_status(&head, "GET /events", 200).unwrap();
        ensure_header_eq(
            &head,
            "GET /events",
            "content-type",
            "text/event-stream; Charset = UTF-8",
        )
        .unwrap();
        ensure_header(&head, "GET /events", "Content-Length", "none", |v| {
            v.is_none()
        })
        .unwrap();
        ensure_header_lists(&head, "GET /events", "cache-control", &["no-cache"]).unwrap();
        ensure_header_lists(&answer(), "PUT /health", "Allow", &["GET"]).unwrap();
        assert_eq!(header_items(&answer(), "ALLOW"), ["get", "head"]);
        assert_eq!(
            media_type(head.header("content-type")),
            (
                "text/event-stream".to_owned(),
                vec!["charset=utf-8".to_owned()]
            )
        );
    }

    #[test]
    fn failures_say_which_header_what_was_expected_and_what_came() {
        let head = head();
        assert_eq!(
            ensure_header_eq(&head, "GET /events", "X-Accel-Buffering", "no"),
            Err(format!(
                "GET /events: X-Accel-Buffering is missing (expected \"no\"): {}",
                head.describe()
            ))
        );
        assert_eq!(
            ensure_header_lists(
                &head,
                "GET /events",
                "Cache-Control",
                &["no-cache", "private"]
            ),
            Err(format!(
                "GET /events: Cache-Control is \"No-Cache, no-store\" (expected a list with \
                 no-cache, private; private lacking): {}",
                head.describe()
            ))
        );
        assert_eq!(
            ensure_status(&answer(), "PUT /health", 404),
            Err(
                "PUT /health answered 405 instead of 404: 405 [allow: GET, HEAD] \
                 \"{\\\"error\\\":\\\"no\\\"}\""
                    .to_owned()
            )
        );
    }
}
