//! Hostile input for property-based tests, and the contract's rules it is judged by, written
//! independently of sse-core: the property tests of the shared encoder
//! (`tests/hostile_payloads.rs`) and sse-load's live `hostile-payloads` scenario both use them.

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use serde_json::Value;

use crate::parser::{Block, LineKind};

/// The contract's rule for `event`: one ASCII letter or digit, then at most 63 of letters,
/// digits and `._:-`; not `tick` or `gap`.
pub fn name_is_valid(name: &str) -> bool {
    let allowed_after = |c: char| c.is_ascii_alphanumeric() || ['.', '_', ':', '-'].contains(&c);
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    let rest: Vec<char> = chars.collect();
    first_ok
        && rest.len() <= 63
        && rest.into_iter().all(allowed_after)
        && !["tick", "gap"].contains(&name)
}

/// What a client must receive for a string payload: every CRLF, lone CR and LF becomes LF.
pub fn normalised(text: &str) -> String {
    text.replace("\r\n", "\n").replace('\r', "\n")
}

/// The body of `POST /trigger` for this name (`None`: the member is left out) and data.
pub fn request_body(name: Option<&str>, data: &Value) -> Vec<u8> {
    let mut body = serde_json::Map::new();
    if let Some(name) = name {
        body.insert("event".into(), name.into());
    }
    body.insert("data".into(), data.clone());
    serde_json::to_vec(&Value::Object(body)).expect("a JSON value serializes")
}

/// Names the contract allows.
pub fn valid_name() -> impl Strategy<Value = String> {
    "[A-Za-z0-9][A-Za-z0-9._:-]{0,63}".prop_filter("reserved", |name| name_is_valid(name))
}

/// `bytes` cut at `points` (each taken modulo the length plus one, so they may repeat and make
/// empty chunks), as TCP may deliver a body: the parser must not care.
pub fn cut<'a>(bytes: &'a [u8], points: &[usize]) -> Vec<&'a [u8]> {
    let mut points: Vec<usize> = points.iter().map(|p| p % (bytes.len() + 1)).collect();
    points.sort_unstable();
    let mut chunks = Vec::new();
    let mut start = 0;
    for end in points.into_iter().chain([bytes.len()]) {
        chunks.push(&bytes[start..end]);
        start = end;
    }
    chunks
}

/// Names on both sides of the rule, each often: valid ones, the 64/65-character edge, the
/// reserved names and their neighbours, valid names with one hostile character put in
/// anywhere, and arbitrary strings.
pub fn any_name() -> impl Strategy<Value = String> {
    let hostile = prop::sample::select(vec![
        "\n", "\r", "\r\n", " ", ":", "\0", "é", "\u{2028}", "/", "\t", "\u{FEFF}", "😀",
    ]);
    let spliced = (
        "[A-Za-z0-9][A-Za-z0-9._:-]{0,8}",
        hostile,
        any::<prop::sample::Index>(),
    )
        .prop_map(|(name, bad, at)| {
            // Valid names are ASCII, so every byte index is a char boundary.
            let at = at.index(name.len() + 1);
            format!("{}{bad}{}", &name[..at], &name[at..])
        });
    prop_oneof![
        4 => valid_name(),
        2 => "[A-Za-z0-9][a-z0-9._:-]{62,64}",
        1 => prop::sample::select(vec!["tick", "gap", "Tick", "ticks", "gap:", "message", "0", ""])
            .prop_map(str::to_owned),
        1 => "[._:-][A-Za-z0-9]{0,4}",
        3 => spliced,
        2 => any::<String>(),
    ]
}

/// Strings made to look like the wire: line breaks of every kind, field and comment
/// look-alikes, NUL, Unicode line separators, a BOM, leading spaces, plus arbitrary text.
pub fn hostile_string() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        3 => prop::sample::select(vec![
            "\r", "\n", "\r\n", "\n\r", "\r\r", "\n\n", "\0", "\u{2028}", "\u{2029}", "\u{85}",
            "\u{FEFF}", ":", " ", "  lead", "data:", "data: x", "id:", "id: 99", "event:",
            "event: tick", "retry:", "retry: 1", ": comment", "", "😀",
        ])
        .prop_map(str::to_owned),
        1 => "[a-z ]{0,6}",
        1 => any::<String>(),
    ];
    prop::collection::vec(piece, 0..12).prop_map(|pieces| pieces.concat())
}

/// A float that survives a text round trip through serde_json exactly (its default parser
/// may be one ULP off for rare values, which would be serde_json's doing, not the server's).
fn round_tripping_float() -> impl Strategy<Value = Value> {
    any::<f64>().prop_filter_map("not exactly representable in JSON", |x| {
        let value = serde_json::Number::from_f64(x).map(Value::Number)?;
        let back: Value = serde_json::from_str(&value.to_string()).ok()?;
        (back == value).then_some(value)
    })
}

/// Any JSON value, with hostile strings as strings and keys, up to three levels deep; mostly
/// strings, which are what the encoders split into lines.
pub fn any_data() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        1 => Just(Value::Null),
        1 => any::<bool>().prop_map(Value::Bool),
        1 => any::<i64>().prop_map(Value::from),
        1 => any::<u64>().prop_map(Value::from),
        1 => round_tripping_float(),
        4 => hostile_string().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(hostile_string(), inner, 0..4)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

/// The block is the event asked for and nothing else: only `id`, `event` and `data` fields,
/// the `id` given (none when `None`), at most one `event` (the contract lets it be left out
/// for `message`), dispatching `name` with the data a client must receive: a string's text
/// with line breaks normalised, any other value as JSON that parses back equal.
pub fn check_exactly_the_event(
    block: &Block,
    id: Option<u64>,
    name: &str,
    data: &Value,
) -> Result<(), TestCaseError> {
    let mut ids = Vec::new();
    let mut names = Vec::new();
    for line in &block.lines {
        match &line.kind {
            LineKind::Field { name, value } if name == "id" => ids.push(value.clone()),
            LineKind::Field { name, value } if name == "event" => names.push(value.clone()),
            LineKind::Field { name, .. } if name == "data" => {}
            _ => prop_assert!(false, "injected line {:?} in {:?}", line.raw, block),
        }
    }
    let id = id.map(|id| id.to_string());
    prop_assert_eq!(ids, Vec::from_iter(id.clone()), "id lines of {:?}", block);
    prop_assert!(names.len() <= 1, "event lines {:?} in {:?}", names, block);
    let Some(event) = &block.event else {
        return Err(TestCaseError::fail(format!(
            "no event dispatched: {block:?}"
        )));
    };
    prop_assert_eq!(&event.event_type, name);
    prop_assert_eq!(&event.id, &id);
    match data {
        Value::String(text) => prop_assert_eq!(&event.data, &normalised(text)),
        other => {
            let back = serde_json::from_str::<Value>(&event.data).ok();
            prop_assert_eq!(back.as_ref(), Some(other), "data {:?}", event.data);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reference_rules_say_what_the_contract_says() {
        for valid in ["a", "A.b_c:d-e", "0", &"x".repeat(64), "ticks", "message"] {
            assert!(name_is_valid(valid), "{valid:?}");
        }
        for invalid in ["", "tick", "gap", ".a", "a b", "é", &"x".repeat(65), "a\n"] {
            assert!(!name_is_valid(invalid), "{invalid:?}");
        }
        assert_eq!(normalised("a\r\nb\rc\nd\r\r\n"), "a\nb\nc\nd\n\n");
    }
}
