//! Everything the servers decide about a request that is not framework glue: the trigger's
//! checks in the contract's order (401, 415, 413, 400; 405 is routing), and where a client
//! asked to resume from.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::encode::{EventName, payload_text};
use crate::error::{ApiError, quoted};
use crate::log::Idempotency;

/// The largest `POST /trigger` body accepted (64 KiB); larger gets 413.
pub const MAX_TRIGGER_BODY: usize = 64 * 1024;

/// A validated trigger: the event to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trigger {
    pub event: EventName,
    /// The payload as clients will receive it.
    pub text: String,
}

/// 401 unless `TRIGGER_TOKEN` is unset or `authorization` is `Bearer <token>`, compared in
/// constant time.
pub fn authorize(token: Option<&str>, authorization: Option<&[u8]>) -> Result<(), ApiError> {
    let Some(token) = token else {
        return Ok(());
    };
    let presented = authorization
        .and_then(|value| value.split_first_chunk::<7>())
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case(b"bearer "))
        .map(|(_, credentials)| credentials.trim_ascii());
    match presented {
        Some(presented) if bool::from(presented.ct_eq(token.as_bytes())) => Ok(()),
        _ => Err(ApiError::unauthorized()),
    }
}

/// 415 unless the media type is `application/json` (parameters such as charset allowed).
pub fn check_content_type(content_type: Option<&[u8]>) -> Result<(), ApiError> {
    let text = content_type.map(String::from_utf8_lossy);
    let is_json = text.as_deref().is_some_and(|value| {
        let media_type = value.split(';').next().unwrap_or_default().trim();
        media_type.eq_ignore_ascii_case("application/json")
    });
    if is_json {
        Ok(())
    } else {
        Err(ApiError::unsupported_media_type(text.as_deref()))
    }
}

/// 413 when a declared `Content-Length` is already over the limit, so that the body need not
/// be read at all. Bodies without (or with a lying) length are limited while reading.
pub fn check_content_length(content_length: Option<u64>) -> Result<(), ApiError> {
    match content_length {
        Some(length) if length > MAX_TRIGGER_BODY as u64 => {
            Err(ApiError::payload_too_large(MAX_TRIGGER_BODY))
        }
        _ => Ok(()),
    }
}

/// 400 unless the body is a JSON object with `data` and, optionally, a valid `event` name,
/// each member given once.
pub fn parse_trigger(body: &[u8]) -> Result<Trigger, ApiError> {
    const EXAMPLE: &str = r#"{"event":"greeting","data":"hello"}"#;
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|error| {
        ApiError::bad_request(format!(
            "the body is not valid JSON ({error}); send an object like {EXAMPLE}"
        ))
    })?;
    let serde_json::Value::Object(mut object) = value else {
        return Err(ApiError::bad_request(format!(
            "the body must be a JSON object like {EXAMPLE}, got {}",
            json_kind(&value)
        )));
    };
    // serde_json keeps the last of two equal names; another parser in front of this server
    // may keep the first (RFC 8259 §4 leaves it open), so a repeated member is refused.
    if let Err(error) = serde_json::from_slice::<UniqueMembers>(body) {
        return Err(ApiError::bad_request(format!(
            "{error}; send each member once, like {EXAMPLE}"
        )));
    }
    let event = match object.get("event") {
        None => EventName::message(),
        Some(serde_json::Value::String(name)) => EventName::custom(name)?,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "event must be a string matching {}, got {}",
                crate::encode::EVENT_NAME_PATTERN,
                json_kind(other)
            )));
        }
    };
    let data = object.remove("data").ok_or_else(|| {
        ApiError::bad_request(format!(
            "data is required (any JSON value); send an object like {EXAMPLE}"
        ))
    })?;
    Ok(Trigger {
        event,
        text: payload_text(&data),
    })
}

/// Deserializes only to check that no top-level member name repeats.
struct UniqueMembers;

impl<'de> serde::Deserialize<'de> for UniqueMembers {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = UniqueMembers;

            fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
                formatter.write_str("a JSON object")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<UniqueMembers, A::Error> {
                let mut seen = std::collections::HashSet::new();
                while let Some(name) = map.next_key::<String>()? {
                    map.next_value::<serde::de::IgnoredAny>()?;
                    if !seen.insert(name.clone()) {
                        return Err(serde::de::Error::custom(format!(
                            "the member {name:?} appears twice"
                        )));
                    }
                }
                Ok(UniqueMembers)
            }
        }
        deserializer.deserialize_map(Visitor)
    }
}

fn json_kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// The `Idempotency-Key` of a trigger (1 to 64 visible ASCII characters), with the SHA-256
/// of the body it came with; 400 when the key is malformed.
pub fn idempotency(key: Option<&[u8]>, body: &[u8]) -> Result<Option<Idempotency>, ApiError> {
    let Some(key) = key else {
        return Ok(None);
    };
    let valid = (1..=64).contains(&key.len()) && key.iter().all(|b| (0x21..=0x7e).contains(b));
    if !valid {
        return Err(ApiError::bad_request(format!(
            "Idempotency-Key must be 1 to 64 visible ASCII characters (no spaces), got {}",
            quoted(&String::from_utf8_lossy(key))
        )));
    }
    let digest = Sha256::digest(body)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    Ok(Some(Idempotency {
        key: String::from_utf8_lossy(key).into_owned(),
        digest,
    }))
}

/// The id a client resumes after (contract section 3): the `Last-Event-ID` header when present,
/// whatever it holds; otherwise the first `lastEventId` query parameter. A value that is not a
/// decimal integer fitting in 64 bits counts as absent.
pub fn resume_point(last_event_id: Option<&[u8]>, query: Option<&str>) -> Option<u64> {
    match last_event_id {
        Some(header) => decimal(header),
        None => form_urlencoded::parse(query?.as_bytes())
            .find(|(name, _)| name == "lastEventId")
            .and_then(|(_, value)| decimal(value.as_bytes())),
    }
}

fn decimal(text: &[u8]) -> Option<u64> {
    if text.is_empty() || !text.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(text).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idempotency_keys_are_1_to_64_visible_ascii_characters() {
        let ok = |key: &[u8]| idempotency(Some(key), b"{}").map(|once| once.map(|o| o.key));
        assert_eq!(ok(b"a"), Ok(Some("a".into())));
        assert_eq!(ok(&[b'~'; 64]).unwrap().unwrap().len(), 64);
        assert_eq!(
            ok(b"!#$%&'()*+,-./:;<=>?@[]^_`{|}"),
            Ok(Some("!#$%&'()*+,-./:;<=>?@[]^_`{|}".into()))
        );
        for bad in [
            &b""[..],
            &[b'k'; 65],
            b"a b",
            b"a\tb",
            "é".as_bytes(),
            b"\x7f",
        ] {
            assert_eq!(ok(bad).unwrap_err().status, 400, "{bad:?}");
        }
        assert_eq!(idempotency(None, b"{}"), Ok(None));
        let first = idempotency(Some(b"k"), b"{\"data\":1}").unwrap().unwrap();
        let other = idempotency(Some(b"k"), b"{\"data\": 1}").unwrap().unwrap();
        assert_ne!(first.digest, other.digest, "bodies are compared as bytes");
        assert_eq!(first.digest.len(), 64);
    }

    #[test]
    fn authorize_needs_the_exact_bearer_token_only_when_configured() {
        assert!(authorize(None, None).is_ok());
        assert!(authorize(None, Some(b"Bearer whatever")).is_ok());
        assert!(authorize(Some("s3cret"), Some(b"Bearer s3cret")).is_ok());
        assert!(authorize(Some("s3cret"), Some(b"bearer s3cret")).is_ok());
        for wrong in [
            &b""[..],
            b"Bearer",
            b"Bearer ",
            b"Bearer s3cre",
            b"Bearer s3cretX",
            b"Basic s3cret",
            b"s3cret",
        ] {
            let error = authorize(Some("s3cret"), Some(wrong)).unwrap_err();
            assert_eq!(error.status, 401, "{:?}", String::from_utf8_lossy(wrong));
        }
        assert_eq!(authorize(Some("s3cret"), None).unwrap_err().status, 401);
    }

    #[test]
    fn content_type_must_be_json() {
        assert!(check_content_type(Some(b"application/json")).is_ok());
        assert!(check_content_type(Some(b"Application/JSON; charset=utf-8")).is_ok());
        for bad in [
            &b"text/plain"[..],
            b"application/jsonx",
            b"application/x-www-form-urlencoded",
            b"",
        ] {
            assert_eq!(check_content_type(Some(bad)).unwrap_err().status, 415);
        }
        let error = check_content_type(None).unwrap_err();
        assert_eq!(
            error.message,
            "Content-Type must be application/json, got none"
        );
    }

    #[test]
    fn declared_length_over_the_limit_is_413() {
        assert!(check_content_length(None).is_ok());
        assert!(check_content_length(Some(MAX_TRIGGER_BODY as u64)).is_ok());
        assert_eq!(
            check_content_length(Some(MAX_TRIGGER_BODY as u64 + 1))
                .unwrap_err()
                .status,
            413
        );
    }

    #[test]
    fn parse_trigger_accepts_any_data_and_defaults_the_name() {
        let trigger = parse_trigger(br#"{"data":{"a":1},"other":true}"#).unwrap();
        assert_eq!(
            (trigger.event.as_str(), trigger.text.as_str()),
            ("message", r#"{"a":1}"#)
        );
        let trigger = parse_trigger(br#"{"event":"x.y","data":"a\r\nb"}"#).unwrap();
        assert_eq!(
            (trigger.event.as_str(), trigger.text.as_str()),
            ("x.y", "a\nb")
        );
        assert_eq!(parse_trigger(br#"{"data":null}"#).unwrap().text, "null");
    }

    #[test]
    fn parse_trigger_refuses_with_a_sentence() {
        let cases: [(&[u8], &str); 10] = [
            (b"", "not valid JSON"),
            (b"{", "not valid JSON"),
            (b"\xff", "not valid JSON"),
            (b"[1]", "got an array"),
            (br#"{"event":"x"}"#, "data is required"),
            (br#"{"event":5,"data":1}"#, "got a number"),
            (br#"{"event":"a b","data":1}"#, r#"got "a b""#),
            (br#"{"event":"tick","data":1}"#, "reserved"),
            (
                br#"{"data":1,"data":2}"#,
                r#"the member "data" appears twice"#,
            ),
            (
                br#"{"event":"a","x":{"event":1},"event":"b","data":1}"#,
                r#"the member "event" appears twice"#,
            ),
        ];
        for (body, needle) in cases {
            let error = parse_trigger(body).unwrap_err();
            assert_eq!(error.status, 400);
            assert!(
                error.message.contains(needle),
                "{:?}: {}",
                String::from_utf8_lossy(body),
                error.message
            );
        }
    }

    #[test]
    fn deep_nesting_is_refused_not_a_crash() {
        let body = format!("{{\"data\":{}{}}}", "[".repeat(10_000), "]".repeat(10_000));
        assert_eq!(parse_trigger(body.as_bytes()).unwrap_err().status, 400);
    }

    #[test]
    fn resume_point_prefers_the_header_whatever_it_holds() {
        assert_eq!(resume_point(Some(b"42"), Some("lastEventId=7")), Some(42));
        assert_eq!(resume_point(Some(b"garbage"), Some("lastEventId=7")), None);
        assert_eq!(resume_point(Some(b""), Some("lastEventId=7")), None);
        assert_eq!(
            resume_point(None, Some("a=1&lastEventId=7&lastEventId=9")),
            Some(7)
        );
        assert_eq!(resume_point(None, Some("lastEventId=%37")), Some(7));
        assert_eq!(resume_point(None, None), None);
    }

    #[test]
    fn resume_point_ignores_what_is_not_a_decimal_u64() {
        for bad in [
            "",
            "-1",
            "+1",
            " 1",
            "1.0",
            "0x10",
            "18446744073709551616",
            "١",
        ] {
            assert_eq!(resume_point(Some(bad.as_bytes()), None), None, "{bad:?}");
        }
        assert_eq!(
            resume_point(Some(b"18446744073709551615"), None),
            Some(u64::MAX)
        );
        assert_eq!(resume_point(Some(b"007"), None), Some(7));
    }
}
