//! Hostile payloads (contract 2.3 and 4): whatever a client puts in `POST /trigger`, what the
//! server writes parses, with the conformance parser, into exactly the one event it asked
//! for. No name or data can inject a field, a comment or an event boundary; invalid and
//! reserved names are refused.
//!
//! The path is the servers' own: `parse_trigger` on the request body, then the hub, which
//! encodes each event once (`encode_event`) and hands the same bytes to every stream after the
//! `retry:` block. The bytes are fed to the parser cut at random points, as TCP may deliver them.

use conformance::hostile::{
    any_data, any_name, check_exactly_the_event, cut, name_is_valid, request_body, valid_name,
};
use conformance::parser::{Block, LineKind, Parser};
use futures_util::{FutureExt, StreamExt};
use proptest::prelude::*;
use proptest::test_runner::{FileFailurePersistence, TestCaseError};
use serde_json::Value;
use sse_core::encode::{EventName, encode_event, retry_block};
use sse_core::request::parse_trigger;
use sse_core::{Hub, HubLimits};

/// A trigger a server accepts: a valid name, or none (meaning `message`), and any data.
fn accepted_trigger() -> impl Strategy<Value = (Option<String>, Value)> {
    (prop::option::weighted(0.8, valid_name()), any_data())
}

/// Feeds `bytes` cut at the given points (taken modulo the length, so they may repeat and
/// make empty chunks), then ends the stream. Returns the blocks and the parser, after
/// checking that nothing was left unterminated.
fn parse_in_chunks(bytes: &[u8], cuts: &[usize]) -> Result<(Vec<Block>, Parser), TestCaseError> {
    let mut parser = Parser::new();
    let mut blocks = Vec::new();
    for chunk in cut(bytes, cuts) {
        blocks.extend(parser.feed(chunk));
    }
    prop_assert_eq!(parser.finish(), Vec::<String>::new(), "unterminated lines");
    Ok((blocks, parser))
}

/// The contract's check, plus what this project's encoder promises beyond it: `event:` is
/// always written, `message` included.
fn check_our_event(
    block: &Block,
    id: Option<u64>,
    name: &str,
    data: &Value,
) -> Result<(), TestCaseError> {
    check_exactly_the_event(block, id, name, data)?;
    let written = block
        .lines
        .iter()
        .any(|line| matches!(&line.kind, LineKind::Field { name: field, value } if field == "event" && value == name));
    prop_assert!(written, "no `event: {}` line in {:?}", name, block);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 1024,
        // Integration tests have no lib.rs beside them: keep failing cases next to this file.
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("regressions"))),
        ..ProptestConfig::default()
    })]

    /// `EventName::custom` accepts exactly the names the contract allows, unchanged, and
    /// refuses the others with a 400.
    #[test]
    fn event_names_are_accepted_exactly_when_the_contract_allows(name in any_name()) {
        match EventName::custom(&name) {
            Ok(accepted) => {
                prop_assert!(name_is_valid(&name), "accepted invalid {name:?}");
                prop_assert_eq!(accepted.as_str(), name.as_str());
            }
            Err(error) => {
                prop_assert!(!name_is_valid(&name), "refused valid {name:?}");
                prop_assert_eq!(error.status, 400);
            }
        }
    }

    /// The trigger route refuses the same names, so no invalid name reaches the encoder.
    #[test]
    fn triggers_with_invalid_names_are_refused(name in any_name(), data in any_data()) {
        let result = parse_trigger(&request_body(Some(&name), &data));
        prop_assert_eq!(result.is_ok(), name_is_valid(&name), "{:?}", name);
    }

    /// One accepted trigger with any id: the encoded event is one block, exactly that event.
    #[test]
    fn any_accepted_trigger_is_written_as_exactly_its_event(
        (name, data) in accepted_trigger(),
        id in prop::option::weighted(0.9, any::<u64>()),
        cuts in prop::collection::vec(any::<usize>(), 0..8),
    ) {
        let trigger = parse_trigger(&request_body(name.as_deref(), &data)).unwrap();
        let wire = encode_event(id, &trigger.event, &trigger.text);
        let (blocks, _) = parse_in_chunks(&wire, &cuts)?;
        prop_assert_eq!(blocks.len(), 1, "{:?}", blocks);
        check_our_event(&blocks[0], id, name.as_deref().unwrap_or("message"), &data)?;
    }

    /// Several triggers through the hub, as a stream writes them after its `retry:` block: one
    /// retry-only block, then exactly one block per trigger, in order, with ids 1, 2, 3, …
    #[test]
    fn a_stream_of_hostile_triggers_is_exactly_those_events(
        triggers in prop::collection::vec(accepted_trigger(), 1..5),
        retry_ms in 0u64..=86_400_000,
        cuts in prop::collection::vec(any::<usize>(), 0..16),
    ) {
        let hub = Hub::memory(HubLimits { replay_capacity: 8, max_clients: 1, client_buffer: 8 });
        for (name, data) in &triggers {
            let trigger = parse_trigger(&request_body(name.as_deref(), data)).unwrap();
            // The memory log never waits while publishing or subscribing: no runtime is needed.
            hub.publish(trigger.event, trigger.text, None).now_or_never().unwrap().unwrap();
        }
        let mut subscription = hub.subscribe(Some(0)).now_or_never().unwrap().unwrap();
        let mut wire = retry_block(retry_ms).to_vec();
        while let Some(Some(event)) = subscription.next().now_or_never() {
            wire.extend_from_slice(event.wire());
        }
        let (blocks, parser) = parse_in_chunks(&wire, &cuts)?;
        prop_assert_eq!(blocks.len(), triggers.len() + 1, "{:?}", blocks);
        prop_assert_eq!(blocks[0].event.as_ref(), None);
        prop_assert_eq!(parser.reconnection_time(), Some(retry_ms));
        for (n, ((name, data), block)) in triggers.iter().zip(&blocks[1..]).enumerate() {
            let name = name.as_deref().unwrap_or("message");
            check_our_event(block, Some(n as u64 + 1), name, data)?;
        }
    }

    /// Whatever bytes arrive as a trigger body, `parse_trigger` answers without panicking, and
    /// what it accepts is safe to encode: a valid name and text with no CR.
    #[test]
    fn parse_trigger_survives_any_body(body in trigger_like_bytes()) {
        match parse_trigger(&body) {
            Ok(trigger) => {
                let name = trigger.event.as_str();
                prop_assert!(name_is_valid(name), "{:?}", name);
                prop_assert!(!trigger.text.contains('\r'));
            }
            Err(error) => prop_assert_eq!(error.status, 400),
        }
    }
}

/// Trigger bodies, good and bad: real request bodies with any name and data, the same bodies
/// cut short or with a token spliced in, and soups of JSON tokens, escapes, deep brackets and
/// invalid UTF-8 (arbitrary bytes alone almost never get past the first character of JSON).
fn trigger_like_bytes() -> impl Strategy<Value = Vec<u8>> {
    let token = || {
        prop_oneof![
            3 => prop::sample::select(vec![
                &b"{"[..], b"}", b"[", b"]", b",", b":", b"\"", br#"{"event":"#, br#""data":"#,
                br#""tick""#, br#""a b""#, br#""x\n""#, br#""\r\n""#, br#""\u0000""#,
                br#""\ud800""#, b"\\", b"1e999", b"-0", b"null", b"true", b" ", b"\xff",
                b"\xEF\xBB\xBF",
            ])
            .prop_map(<[u8]>::to_vec),
            1 => prop::collection::vec(any::<u8>(), 0..8),
            1 => (1usize..300).prop_map(|depth| b"[".repeat(depth)),
        ]
    };
    let body = || {
        (prop::option::weighted(0.8, any_name()), any_data())
            .prop_map(|(name, data)| request_body(name.as_deref(), &data))
    };
    prop_oneof![
        2 => body(),
        1 => (body(), any::<prop::sample::Index>())
            .prop_map(|(body, at)| body[..at.index(body.len() + 1)].to_vec()),
        1 => (body(), any::<prop::sample::Index>(), token()).prop_map(|(mut body, at, token)| {
            let at = at.index(body.len() + 1);
            body.splice(at..at, token);
            body
        }),
        2 => prop::collection::vec(token(), 0..24).prop_map(|tokens| tokens.concat()),
    ]
}

/// The strategies must exercise both sides, or the properties above prove little: a quarter
/// to three quarters of the names are valid, and a tenth to nine tenths of the trigger
/// bodies are accepted.
#[test]
fn strategies_hit_both_sides_often() {
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let mut sample = |strategy: &dyn Fn() -> proptest::strategy::BoxedStrategy<bool>| {
        (0..1000)
            .filter(|_| strategy().new_tree(&mut runner).unwrap().current())
            .count()
    };
    let valid = sample(&|| any_name().prop_map(|name| name_is_valid(&name)).boxed());
    assert!(
        (250..=750).contains(&valid),
        "{valid} of 1000 names are valid"
    );
    let accepted = sample(&|| {
        trigger_like_bytes()
            .prop_map(|body| parse_trigger(&body).is_ok())
            .boxed()
    });
    assert!(
        (100..=900).contains(&accepted),
        "{accepted} of 1000 bodies are accepted"
    );
}
