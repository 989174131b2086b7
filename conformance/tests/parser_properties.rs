//! Fuzzing the conformance parser by property: on any bytes it never panics, and what it
//! reports (blocks with their lines and events, the lines left pending at the end, the last
//! event ID, the reconnection time, whether invalid UTF-8 was seen) is the same whether the
//! body arrives at once, byte by byte, or cut at arbitrary points — a check that judges a
//! server must not depend on how TCP happened to split its bytes.

use conformance::hostile::cut;
use conformance::parser::{Block, Parser};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

/// Everything the parser reports about one stream.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    blocks: Vec<Block>,
    pending: Vec<String>,
    last_event_id: String,
    reconnection_time: Option<u64>,
    saw_invalid_utf8: bool,
}

/// Feeds the chunks in order (empty ones included), then ends the stream.
fn parse<'a>(chunks: impl IntoIterator<Item = &'a [u8]>) -> Outcome {
    let mut parser = Parser::new();
    let mut blocks = Vec::new();
    for chunk in chunks {
        blocks.extend(parser.feed(chunk));
    }
    let pending = parser.finish();
    Outcome {
        blocks,
        pending,
        last_event_id: parser.last_event_id().to_owned(),
        reconnection_time: parser.reconnection_time(),
        saw_invalid_utf8: parser.saw_invalid_utf8(),
    }
}

/// Hand-picked streams with what a chunked parser gets wrong (a CRLF, a BOM or a character cut in
/// two, invalid UTF-8 at a chunk end), cut at every single point and fed byte by byte.
#[test]
fn known_hard_streams_cut_anywhere_give_the_same_outcome() {
    let samples: [&[u8]; 5] = [
        b"\xEF\xBB\xBFid: 1\r\nevent: add\r\ndata: a\r\ndata:  b\r\n\r\n: c\rretry: 300\r\rdata\n\ndata: tail",
        "data: é€😀\r\n\r\ndata:\u{FEFF}x\r\r:\n\nid: 2\0\nid\ndata\r\n\r\n".as_bytes(),
        b"data: \xF0\x9F\x98\xFF\xE2\x82\r\n\r\ndata: \xC0\xAF\n\n\xED\xA0\x80\n\ndata: \xF0\x9F",
        b"\r\n\r\r\n\n\rdata: a\r\r\ndata: b\n\r\n",
        b"\xEF\xBB\xBF\xEF\xBB\xBF\xEF\xBBdata: x\n\n\xEF",
    ];
    for sample in samples {
        let whole = parse([sample]);
        for split in 0..=sample.len() {
            assert_eq!(
                parse(cut(sample, &[split])),
                whole,
                "{sample:?} split at {split}"
            );
        }
        assert_eq!(parse(sample.chunks(1)), whole, "{sample:?} byte by byte");
    }
}

/// Bytes where the structure that matters is common: lines with field names (whole, cut or
/// misspelt), every separator and line end (CR, LF, CRLF, none), values with BOMs, 4-byte and
/// cut characters, bytes that are never UTF-8 and digits for `retry`; mixed with soups of the
/// same bytes one at a time, and a few arbitrary bytes. Random bytes alone would almost never
/// spell `data:`, end a block, put a BOM first, or cut a character in two.
fn stream_bytes() -> impl Strategy<Value = Vec<u8>> {
    let byte = || {
        prop_oneof![
            4 => prop::sample::select(b"\r\n:data id event retry \xEF\xBB\xBF\xF0\x9F\x98\x80\xff".to_vec()),
            1 => any::<u8>(),
        ]
        .prop_map(|byte| vec![byte])
    };
    let value_piece = prop_oneof![
        1 => byte(),
        3 => prop::sample::select(vec![
            &b""[..], b"x", b" ", b"0", b"10", b"18446744073709551616", b"\0", b":", b"\xEF\xBB\xBF",
            b"\xF0\x9F\x98\x80", b"\xF0\x9F\x98", b"\xC3\xA9", b"\xED\xA0\x80", b"\xff",
        ])
        .prop_map(<[u8]>::to_vec),
    ];
    // Repeated entries are weights: `data` lines and BOM-less starts are the common case.
    let line = (
        prop::sample::select(vec![
            &b"data"[..],
            b"data",
            b"id",
            b"event",
            b"retry",
            b"",
            b"dat",
            b"data ",
            b"Data",
            b"x",
        ]),
        prop::sample::select(vec![&b":"[..], b": ", b"", b"::", b":  "]),
        prop_oneof![
            3 => prop::collection::vec(value_piece, 0..4).prop_map(|pieces| pieces.concat()),
            // All digits, so that `retry` counts.
            1 => "[0-9]{1,20}".prop_map(String::into_bytes),
        ],
        prop::sample::select(vec![
            &b"\n"[..],
            b"\r",
            b"\r\n",
            b"\n\n",
            b"\r\n\r\n",
            b"\r\r",
            b"",
        ]),
    )
        .prop_map(|(name, separator, value, end)| [name, separator, &value, end].concat());
    let piece = prop_oneof![
        4 => line,
        1 => prop::collection::vec(byte(), 1..8).prop_map(|bytes| bytes.concat()),
    ];
    (
        prop::sample::select(vec![
            &b""[..],
            b"",
            b"\xEF\xBB\xBF",
            b"\xEF\xBB",
            b"\xEF\xBB\xBF\xEF\xBB\xBF",
        ]),
        prop::collection::vec(piece, 0..24),
    )
        .prop_map(|(start, pieces)| [start.to_vec(), pieces.concat()].concat())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 1024,
        // Integration tests have no lib.rs beside them: keep failing cases next to this file.
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("regressions"))),
        ..ProptestConfig::default()
    })]

    /// At once, byte by byte, and cut anywhere: the same outcome (and no panic on the way).
    #[test]
    fn the_outcome_does_not_depend_on_chunking(
        bytes in stream_bytes(),
        points in prop::collection::vec(any::<usize>(), 0..12),
    ) {
        let whole = parse([bytes.as_slice()]);
        prop_assert_eq!(&parse(bytes.chunks(1)), &whole, "byte by byte");
        prop_assert_eq!(&parse(cut(&bytes, &points)), &whole, "cut at {:?}", points);
    }

    /// Arbitrary bytes, with no bias at all, for whatever the weighting above misses.
    #[test]
    fn arbitrary_bytes_neither_panic_nor_depend_on_chunking(
        bytes in prop::collection::vec(any::<u8>(), 0..256),
        points in prop::collection::vec(any::<usize>(), 0..12),
    ) {
        let whole = parse([bytes.as_slice()]);
        prop_assert_eq!(&parse(cut(&bytes, &points)), &whole, "cut at {:?}", points);
    }
}

/// The weighting must actually produce the structure it is there for, or the property above
/// is weaker than it looks: many streams dispatch an event, and enough of them set a retry or
/// an id, start with a BOM, contain invalid UTF-8, or are entirely valid.
#[test]
fn stream_strategy_produces_interesting_structure() {
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let samples: Vec<(Vec<u8>, Outcome)> = (0..1000)
        .map(|_| {
            let bytes = stream_bytes().new_tree(&mut runner).unwrap().current();
            let outcome = parse([bytes.as_slice()]);
            (bytes, outcome)
        })
        .collect();
    let count = |what: fn(&[u8], &Outcome) -> bool| {
        samples
            .iter()
            .filter(|(bytes, outcome)| what(bytes, outcome))
            .count()
    };
    let with_event = count(|_, o| o.blocks.iter().any(|b| b.event.is_some()));
    assert!(
        with_event >= 300,
        "{with_event} of 1000 streams dispatch an event"
    );
    for (what, n) in [
        ("a retry", count(|_, o| o.reconnection_time.is_some())),
        ("an id", count(|_, o| !o.last_event_id.is_empty())),
        ("a BOM", count(|b, _| b.starts_with(b"\xEF\xBB\xBF"))),
        ("invalid UTF-8", count(|_, o| o.saw_invalid_utf8)),
        ("only valid UTF-8", count(|_, o| !o.saw_invalid_utf8)),
    ] {
        assert!(n >= 30, "{n} of 1000 streams have {what}");
    }
}
