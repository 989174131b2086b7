//! The `text/event-stream` wire format, written once for every server (contract 2.2 and 2.3).
//!
//! Nothing here can put a line break inside a field value: event names are validated
//! ([`EventName`]), ids are integers, and payload text is split at every line break into
//! `data:` lines. So no input can inject a field, a comment or an event boundary.

use bytes::{BufMut, Bytes, BytesMut};
use std::fmt;
use std::sync::Arc;

use crate::error::{ApiError, quoted};

/// The pattern every custom event name must match.
pub const EVENT_NAME_PATTERN: &str = "^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$";

/// The names the server publishes itself; a trigger may not use them.
pub const RESERVED_EVENT_NAMES: [&str; 2] = ["tick", "gap"];

/// What a heartbeat writes: a comment block, which dispatches nothing.
pub const HEARTBEAT: &[u8] = b":\n\n";

/// An event name that is safe to write into a field: it matches [`EVENT_NAME_PATTERN`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EventName(Arc<str>);

impl EventName {
    /// A name for a custom event: must match the pattern and not be reserved.
    pub fn custom(name: &str) -> Result<Self, ApiError> {
        if !matches_pattern(name) {
            return Err(ApiError::bad_request(format!(
                "event must match {EVENT_NAME_PATTERN}, got {}",
                quoted(name)
            )));
        }
        if RESERVED_EVENT_NAMES.contains(&name) {
            return Err(ApiError::bad_request(format!(
                "event {} is reserved for the server's own events; choose another name",
                quoted(name)
            )));
        }
        Ok(Self(name.into()))
    }

    pub fn message() -> Self {
        Self("message".into())
    }

    /// The name of the server's own ticks (the broken server forges some with it).
    pub fn tick() -> Self {
        Self("tick".into())
    }

    pub(crate) fn gap() -> Self {
        Self("gap".into())
    }

    /// A name read back from the shared log: `tick` or a valid custom name; anything else
    /// (another writer's entry) is sent as `message`, so that it cannot break the stream.
    pub(crate) fn from_log(name: &str) -> Self {
        match name {
            "tick" => Self::tick(),
            name => Self::custom(name).unwrap_or_else(|_| Self::message()),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EventName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$`, without pulling in a regex engine.
fn matches_pattern(name: &str) -> bool {
    let bytes = name.as_bytes();
    let Some((first, rest)) = bytes.split_first() else {
        return false;
    };
    first.is_ascii_alphanumeric()
        && rest.len() <= 63
        && rest
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// The text a client receives for a JSON payload (contract 2.3): a string is its own text with
/// every line break (`\r\n`, `\n`, lone `\r`) turned into `\n`; any other value is compact JSON
/// (which never holds a raw line break).
pub fn payload_text(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(text) => normalize_line_breaks(text),
        other => other.to_string(),
    }
}

pub(crate) fn normalize_line_breaks(text: &str) -> String {
    if !text.contains('\r') {
        return text.to_owned();
    }
    text.replace("\r\n", "\n").replace('\r', "\n")
}

/// One event on the wire: `id:` (when it has one), `event:`, one `data:` line per line of
/// `text`, and the blank line that dispatches it. `text` must already be normalised by
/// [`payload_text`] (only `\n` breaks); an empty text is one empty `data:` line.
pub fn encode_event(id: Option<u64>, name: &EventName, text: &str) -> Bytes {
    debug_assert!(
        !text.contains('\r'),
        "payload text must be normalised first"
    );
    let lines = text.split('\n');
    let capacity = 32 + name.as_str().len() + text.len() + 7 * (text.matches('\n').count() + 1);
    let mut out = BytesMut::with_capacity(capacity);
    if let Some(id) = id {
        out.put_slice(b"id: ");
        out.put_slice(id.to_string().as_bytes());
        out.put_u8(b'\n');
    }
    out.put_slice(b"event: ");
    out.put_slice(name.as_str().as_bytes());
    out.put_u8(b'\n');
    for line in lines {
        // "data: " with its space, so that a line starting with a space keeps it.
        out.put_slice(b"data: ");
        out.put_slice(line.as_bytes());
        out.put_u8(b'\n');
    }
    out.put_u8(b'\n');
    out.freeze()
}

/// The first block of every stream: the reconnection delay, which dispatches no event.
pub fn retry_block(retry_ms: u64) -> Bytes {
    Bytes::from(format!("retry: {retry_ms}\n\n"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn event_names_follow_the_pattern() {
        for ok in ["a", "Z9", "a.b_c:d-e", &"x".repeat(64), "message", "0"] {
            assert!(EventName::custom(ok).is_ok(), "{ok:?} should be accepted");
        }
        for bad in [
            "",
            " a",
            "a b",
            "-a",
            ".a",
            "a\nb",
            "a\rb",
            "é",
            "a/b",
            &"x".repeat(65),
        ] {
            let err = EventName::custom(bad).unwrap_err();
            assert_eq!(err.status, 400);
            assert!(err.message.contains(EVENT_NAME_PATTERN), "{}", err.message);
        }
        for reserved in RESERVED_EVENT_NAMES {
            let err = EventName::custom(reserved).unwrap_err();
            assert!(err.message.contains("reserved"), "{}", err.message);
        }
    }

    #[test]
    fn invalid_name_message_quotes_the_input() {
        let err = EventName::custom("a b").unwrap_err();
        assert_eq!(
            err.message,
            r#"event must match ^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$, got "a b""#
        );
    }

    #[test]
    fn payload_text_normalises_strings_and_compacts_json() {
        assert_eq!(payload_text(&json!("a\r\nb\nc\rd")), "a\nb\nc\nd");
        assert_eq!(payload_text(&json!("\r\r\n")), "\n\n");
        assert_eq!(payload_text(&json!("")), "");
        assert_eq!(
            payload_text(&json!({"a": [1, "x\ny"]})),
            r#"{"a":[1,"x\ny"]}"#
        );
        assert_eq!(payload_text(&json!(null)), "null");
        assert_eq!(payload_text(&json!(1.5)), "1.5");
    }

    #[test]
    fn encodes_every_line_as_a_data_field() {
        let name = EventName::custom("greeting").unwrap();
        assert_eq!(
            encode_event(Some(7), &name, "a\n lead\n"),
            Bytes::from_static(b"id: 7\nevent: greeting\ndata: a\ndata:  lead\ndata: \n\n")
        );
    }

    #[test]
    fn empty_text_is_one_empty_data_line() {
        assert_eq!(
            encode_event(Some(1), &EventName::message(), ""),
            Bytes::from_static(b"id: 1\nevent: message\ndata: \n\n")
        );
    }

    #[test]
    fn gap_has_no_id_field() {
        assert_eq!(
            encode_event(None, &EventName::gap(), "{}"),
            Bytes::from_static(b"event: gap\ndata: {}\n\n")
        );
    }

    #[test]
    fn retry_block_is_alone() {
        assert_eq!(retry_block(3000), Bytes::from_static(b"retry: 3000\n\n"));
    }
}
