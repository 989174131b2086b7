//! Spec-exact, incremental parser for the `text/event-stream` format.
//!
//! Follows the WHATWG HTML standard, "Server-sent events" → "Interpreting an
//! event stream", step by step:
//!
//! 1. the body is decoded with *UTF-8 decode* (one leading BOM dropped,
//!    invalid sequences replaced by U+FFFD), as a stream;
//! 2. the text is split into lines ended by CRLF, lone LF or lone CR;
//! 3. each line is a blank line (dispatch), a comment, or a field, and fields
//!    update the data / event type / last event ID buffers and the
//!    reconnection time;
//! 4. at end of stream, whatever was not ended by a blank line is discarded.
//!
//! Besides the events the standard dispatches, the parser reports the wire
//! structure (the lines of each block) so a conformance checker can explain
//! what it saw. A *block* is everything between two blank lines: **every**
//! blank line closes a block, even one with no lines (so `"\n\n"` yields two
//! empty blocks). This keeps the mapping "one blank line ⇔ one `Block`"
//! simple and lossless.
//!
//! The result never depends on how the input is chunked: every piece of
//! state that can straddle a chunk boundary (a partial UTF-8 sequence, a CR
//! that may be followed by LF, a partial line, the lines of an open block)
//! is carried over between calls to [`Parser::feed`].

use std::mem;

/// Incremental parser: feed bytes as they arrive in any chunking; the result
/// is the same however the input is split.
///
/// [`Parser::finish`] ends the stream. Feeding again afterwards starts a new
/// stream (as after a reconnection): decoding, line and block state start
/// afresh, while the last event ID buffer, the reconnection time and the
/// invalid-UTF-8 flag are kept, since they describe the event source as a
/// whole rather than one connection.
#[derive(Debug, Default)]
pub struct Parser {
    decoder: Utf8Decoder,
    splitter: LineSplitter,
    interpreter: Interpreter,
}

impl Parser {
    /// A parser positioned at the start of a stream, with all buffers empty.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feed the next chunk of the body; returns the blocks completed by it
    /// (a block ends at a blank line).
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<Block> {
        let text = self.decoder.decode(chunk);
        let mut blocks = Vec::new();
        let Self {
            splitter,
            interpreter,
            ..
        } = self;
        splitter.split(&text, |line| blocks.extend(interpreter.process_line(line)));
        blocks
    }

    /// End of stream: per the standard, an incomplete last line /
    /// unterminated block is discarded (no event dispatched).
    ///
    /// Returns the raw lines that were pending (not ended by a blank line),
    /// so a checker can report them. A last line that had no line terminator
    /// is included too (after its own, possibly truncated, UTF-8 was flushed
    /// as U+FFFD), unless it is empty.
    pub fn finish(&mut self) -> Vec<String> {
        let tail = self.decoder.finish();
        let mut pending = self.interpreter.discard_block();
        pending.extend(self.splitter.finish(tail));
        pending
    }

    /// The "last event ID buffer", which the standard keeps across events
    /// (a blank line never resets it; only an `id` field changes it).
    pub fn last_event_id(&self) -> &str {
        &self.interpreter.last_event_id
    }

    /// The last valid `retry` value seen (milliseconds), if any.
    pub fn reconnection_time(&self) -> Option<u64> {
        self.interpreter.reconnection_time
    }

    /// True once any invalid UTF-8 was decoded (replaced by U+FFFD).
    pub fn saw_invalid_utf8(&self) -> bool {
        self.decoder.saw_invalid
    }
}

/// Everything between two blank lines, as the wire had it and as the
/// standard interprets it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// In wire order, excluding the terminating blank line.
    pub lines: Vec<Line>,
    /// The event dispatched at this block's blank line, if any (None when
    /// the data buffer was empty — e.g. a retry-only or comment-only block).
    pub event: Option<Event>,
}

/// One non-blank line of a block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// The decoded line without its terminator.
    pub raw: String,
    /// How the standard reads the line.
    pub kind: LineKind,
}

/// The two kinds of non-blank line the standard distinguishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineKind {
    /// Text after the leading ':'.
    Comment(String),
    /// Value after the standard's processing (one leading space removed); a
    /// line with no colon is a field with empty value. Unknown field names
    /// are kept here too, although the standard ignores them.
    Field { name: String, value: String },
}

/// An event as dispatched at a blank line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// "message" when no/empty event field.
    pub event_type: String,
    /// With the final trailing LF removed, as the standard says.
    pub data: String,
    /// The last event ID buffer at dispatch time (persists across events, as
    /// the standard says).
    pub last_event_id: String,
    /// The value of an `id` field that appeared IN THIS BLOCK and was
    /// accepted (not containing NUL); None otherwise. With several accepted
    /// `id` fields, the last one (which is also `last_event_id`).
    pub id: Option<String>,
}

impl LineKind {
    /// Classifies a non-blank line: a leading colon makes a comment;
    /// otherwise the first colon separates name and value (dropping one
    /// U+0020 after it), and a line without colon is all name.
    fn parse(raw: &str) -> Self {
        match raw.split_once(':') {
            Some(("", comment)) => Self::Comment(comment.to_owned()),
            Some((name, value)) => Self::field(name, value.strip_prefix(' ').unwrap_or(value)),
            None => Self::field(raw, ""),
        }
    }

    fn field(name: &str, value: &str) -> Self {
        Self::Field {
            name: name.to_owned(),
            value: value.to_owned(),
        }
    }
}

/// Streaming form of the Encoding standard's *UTF-8 decode*.
///
/// Rust's `Utf8Chunks` replaces exactly the "maximal subparts" the Encoding
/// standard replaces, so each is one U+FFFD; the only streaming concern is a
/// sequence cut short by the end of a chunk, which is held back until the
/// next chunk (or end of stream) shows whether it completes.
#[derive(Debug)]
struct Utf8Decoder {
    /// A truncated but so far valid sequence from the end of the last chunk
    /// (at most 3 bytes).
    pending: Vec<u8>,
    /// No character has been produced yet, so a U+FEFF would be the BOM.
    at_stream_start: bool,
    saw_invalid: bool,
}

impl Default for Utf8Decoder {
    fn default() -> Self {
        Self {
            pending: Vec::new(),
            at_stream_start: true,
            saw_invalid: false,
        }
    }
}

impl Utf8Decoder {
    /// Decodes `chunk` as the continuation of everything fed so far.
    fn decode(&mut self, chunk: &[u8]) -> String {
        let joined;
        let input = if self.pending.is_empty() {
            chunk
        } else {
            joined = [mem::take(&mut self.pending).as_slice(), chunk].concat();
            joined.as_slice()
        };

        let mut text = String::with_capacity(input.len());
        let mut chunks = input.utf8_chunks().peekable();
        while let Some(part) = chunks.next() {
            text.push_str(part.valid());
            let invalid = part.invalid();
            if chunks.peek().is_none() && is_truncated_sequence(invalid) {
                self.pending = invalid.to_vec();
            } else if !invalid.is_empty() {
                self.replace_invalid(&mut text);
            }
        }
        self.strip_bom(text)
    }

    /// End of stream: a sequence still pending can no longer complete, so it
    /// becomes one U+FFFD. Resets the decoder for a possible new stream.
    fn finish(&mut self) -> Option<char> {
        self.at_stream_start = true;
        if mem::take(&mut self.pending).is_empty() {
            return None;
        }
        self.saw_invalid = true;
        Some(char::REPLACEMENT_CHARACTER)
    }

    fn replace_invalid(&mut self, text: &mut String) {
        self.saw_invalid = true;
        text.push(char::REPLACEMENT_CHARACTER);
    }

    /// Drops a U+FEFF only if it is the very first character of the stream;
    /// the decision is taken once the first character exists, which may be
    /// several (tiny) chunks in.
    fn strip_bom(&mut self, mut text: String) -> String {
        if self.at_stream_start && !text.is_empty() {
            self.at_stream_start = false;
            if text.starts_with(BOM) {
                text.drain(..BOM.len_utf8());
            }
        }
        text
    }
}

/// U+FEFF, which *UTF-8 decode* drops once at the start of the stream.
const BOM: char = '\u{FEFF}';

/// True for bytes that start a valid UTF-8 sequence but stop before its end,
/// i.e. bytes that more input could still complete.
fn is_truncated_sequence(bytes: &[u8]) -> bool {
    matches!(std::str::from_utf8(bytes), Err(err) if err.error_len().is_none())
}

/// Splits decoded text into lines ended by CRLF, lone LF or lone CR.
#[derive(Debug, Default)]
struct LineSplitter {
    /// The current line so far (its terminator not yet seen).
    partial: String,
    /// The last character seen was a CR, so an LF right after it belongs to
    /// the same line end — even if it arrives in the next chunk.
    after_cr: bool,
}

impl LineSplitter {
    /// Passes each line completed by `text` to `on_line`, without terminator.
    fn split(&mut self, text: &str, mut on_line: impl FnMut(String)) {
        let mut rest = text;
        while !rest.is_empty() {
            if mem::take(&mut self.after_cr)
                && let Some(after_lf) = rest.strip_prefix('\n')
            {
                rest = after_lf;
                continue;
            }
            let Some(end) = rest.find(['\r', '\n']) else {
                self.partial.push_str(rest);
                return;
            };
            self.partial.push_str(&rest[..end]);
            self.after_cr = rest[end..].starts_with('\r');
            on_line(mem::take(&mut self.partial));
            rest = &rest[end + 1..];
        }
    }

    /// End of stream: returns the unterminated last line, if non-empty,
    /// completed by the decoder's final `tail`, and resets the splitter.
    fn finish(&mut self, tail: Option<char>) -> Option<String> {
        self.after_cr = false;
        self.partial.extend(tail);
        Some(mem::take(&mut self.partial)).filter(|line| !line.is_empty())
    }
}

/// The standard's per-stream buffers, plus the lines of the open block.
#[derive(Debug, Default)]
struct Interpreter {
    data: String,
    event_type: String,
    last_event_id: String,
    reconnection_time: Option<u64>,
    /// Lines since the last blank line.
    block_lines: Vec<Line>,
    /// The last accepted `id` value in the open block.
    block_id: Option<String>,
}

impl Interpreter {
    /// Processes one line; a blank line closes the open block.
    fn process_line(&mut self, raw: String) -> Option<Block> {
        if raw.is_empty() {
            return Some(self.dispatch());
        }
        let kind = LineKind::parse(&raw);
        if let LineKind::Field { name, value } = &kind {
            self.process_field(name, value);
        }
        self.block_lines.push(Line { raw, kind });
        None
    }

    /// The standard's field steps; unknown names are ignored.
    fn process_field(&mut self, name: &str, value: &str) {
        match name {
            "event" => value.clone_into(&mut self.event_type),
            "data" => {
                self.data.push_str(value);
                self.data.push('\n');
            }
            // An id containing NUL falls through to `_` and is ignored (it
            // could not be sent back in a Last-Event-ID header).
            "id" if !value.contains('\0') => {
                value.clone_into(&mut self.last_event_id);
                self.block_id = Some(value.to_owned());
            }
            "retry" => {
                if let Some(millis) = parse_retry(value) {
                    self.reconnection_time = Some(millis);
                }
            }
            _ => {}
        }
    }

    /// The standard's "dispatch the event" steps, closing the open block.
    /// Data and event type buffers are reset; the last event ID buffer is not.
    fn dispatch(&mut self) -> Block {
        let lines = mem::take(&mut self.block_lines);
        let id = self.block_id.take();
        let event_type = mem::take(&mut self.event_type);
        let mut data = mem::take(&mut self.data);
        if data.is_empty() {
            return Block { lines, event: None };
        }
        if data.ends_with('\n') {
            data.pop();
        }
        let event_type = if event_type.is_empty() {
            "message".to_owned()
        } else {
            event_type
        };
        let event = Event {
            event_type,
            data,
            last_event_id: self.last_event_id.clone(),
            id,
        };
        Block {
            lines,
            event: Some(event),
        }
    }

    /// End of stream: the open block is never dispatched. Returns its raw
    /// lines and empties the buffers a dispatch would have reset.
    fn discard_block(&mut self) -> Vec<String> {
        self.data.clear();
        self.event_type.clear();
        self.block_id = None;
        mem::take(&mut self.block_lines)
            .into_iter()
            .map(|line| line.raw)
            .collect()
    }
}

/// A `retry` value counts only if it is one or more ASCII digits (so no sign,
/// space or decimal point) that fit in a `u64`.
fn parse_retry(value: &str) -> Option<u64> {
    let all_digits = !value.is_empty() && value.bytes().all(|byte| byte.is_ascii_digit());
    all_digits.then(|| value.parse().ok()).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` in one chunk, then finishes.
    fn parse(input: &[u8]) -> (Vec<Block>, Vec<String>) {
        let mut parser = Parser::new();
        let blocks = parser.feed(input);
        (blocks, parser.finish())
    }

    /// Feeds `input` in one chunk and returns only the dispatched events.
    fn events(input: &[u8]) -> Vec<Event> {
        parse(input)
            .0
            .into_iter()
            .filter_map(|block| block.event)
            .collect()
    }

    fn event(event_type: &str, data: &str, last_event_id: &str, id: Option<&str>) -> Event {
        Event {
            event_type: event_type.to_owned(),
            data: data.to_owned(),
            last_event_id: last_event_id.to_owned(),
            id: id.map(str::to_owned),
        }
    }

    fn message(data: &str) -> Event {
        event("message", data, "", None)
    }

    fn field(raw: &str, name: &str, value: &str) -> Line {
        Line {
            raw: raw.to_owned(),
            kind: LineKind::Field {
                name: name.to_owned(),
                value: value.to_owned(),
            },
        }
    }

    fn comment(raw: &str, text: &str) -> Line {
        Line {
            raw: raw.to_owned(),
            kind: LineKind::Comment(text.to_owned()),
        }
    }

    #[test]
    fn bom_is_stripped_at_stream_start() {
        let (blocks, _) = parse(b"\xEF\xBB\xBFdata: x\n\n");
        assert_eq!(blocks[0].lines, [field("data: x", "data", "x")]);
        assert_eq!(blocks[0].event, Some(message("x")));
    }

    #[test]
    fn only_one_bom_is_stripped() {
        let (blocks, _) = parse(b"\xEF\xBB\xBF\xEF\xBB\xBFdata: x\n\n");
        assert_eq!(
            blocks[0].lines,
            [field("\u{FEFF}data: x", "\u{FEFF}data", "x")]
        );
        assert_eq!(blocks[0].event, None);
    }

    #[test]
    fn bom_later_in_stream_is_kept() {
        let (blocks, _) = parse(b"data: a\n\n\xEF\xBB\xBFdata: b\n\ndata: \xEF\xBB\xBFc\n\n");
        assert_eq!(blocks.len(), 3);
        assert_eq!(blocks[0].event, Some(message("a")));
        assert_eq!(
            blocks[1].lines,
            [field("\u{FEFF}data: b", "\u{FEFF}data", "b")]
        );
        assert_eq!(blocks[1].event, None);
        assert_eq!(blocks[2].event, Some(message("\u{FEFF}c")));
    }

    #[test]
    fn bom_split_across_chunks_is_stripped() {
        let mut parser = Parser::new();
        assert!(parser.feed(b"\xEF").is_empty());
        assert!(parser.feed(b"").is_empty());
        assert!(parser.feed(b"\xBB").is_empty());
        let blocks = parser.feed(b"\xBFdata: x\n\n");
        assert_eq!(blocks[0].event, Some(message("x")));
        assert!(!parser.saw_invalid_utf8());
    }

    #[test]
    fn lf_cr_and_crlf_each_end_a_line() {
        for input in [
            &b"data: a\ndata: b\n\n"[..],
            b"data: a\rdata: b\r\r",
            b"data: a\r\ndata: b\r\n\r\n",
            b"data: a\rdata: b\n\r\n",
            b"data: a\ndata: b\r\r\n",
        ] {
            let (blocks, pending) = parse(input);
            assert_eq!(blocks.len(), 1, "{input:?}");
            assert_eq!(
                blocks[0].lines,
                [field("data: a", "data", "a"), field("data: b", "data", "b")]
            );
            assert_eq!(blocks[0].event, Some(message("a\nb")), "{input:?}");
            assert!(pending.is_empty());
        }
    }

    #[test]
    fn lf_then_cr_is_two_line_ends() {
        // "\n\r" is LF (ends the data line) then CR (a blank line).
        assert_eq!(events(b"data: a\n\r"), [message("a")]);
        // "\r\r\n" is CR then CRLF: again a line end then a blank line.
        assert_eq!(events(b"data: a\r\r\n"), [message("a")]);
    }

    #[test]
    fn crlf_split_across_chunks_is_one_line_end() {
        let mut parser = Parser::new();
        assert!(parser.feed(b"data: a\r").is_empty());
        // Had the LF been a line end of its own, this would dispatch "a".
        assert!(parser.feed(b"\n").is_empty());
        assert!(parser.feed(b"data: b\r").is_empty());
        assert!(parser.feed(b"").is_empty());
        assert!(parser.feed(b"\n").is_empty());
        let blocks = parser.feed(b"\r\n");
        assert_eq!(blocks.len(), 1);
        assert_eq!(blocks[0].event, Some(message("a\nb")));
        assert!(parser.finish().is_empty());
    }

    #[test]
    fn cr_at_chunk_end_followed_by_other_text() {
        let mut parser = Parser::new();
        assert!(parser.feed(b"data: a\r").is_empty());
        let blocks = parser.feed(b"\rdata: b");
        assert_eq!(blocks.len(), 1);
        assert_eq!(blocks[0].event, Some(message("a")));
        assert_eq!(parser.finish(), ["data: b"]);
    }

    #[test]
    fn multibyte_utf8_split_across_chunks() {
        let text = "data: é€😀\n\n".as_bytes();
        for split in 0..=text.len() {
            let mut parser = Parser::new();
            let mut blocks = parser.feed(&text[..split]);
            blocks.extend(parser.feed(&text[split..]));
            assert_eq!(blocks.len(), 1);
            assert_eq!(blocks[0].event, Some(message("é€😀")), "split {split}");
            assert!(!parser.saw_invalid_utf8());
        }
    }

    #[test]
    fn four_byte_char_fed_one_byte_at_a_time() {
        let mut parser = Parser::new();
        let mut blocks = Vec::new();
        for byte in "data:😀\n\n".bytes() {
            blocks.extend(parser.feed(&[byte]));
        }
        assert_eq!(blocks[0].event, Some(message("😀")));
        assert!(!parser.saw_invalid_utf8());
    }

    #[test]
    fn invalid_utf8_becomes_replacement_character() {
        let mut parser = Parser::new();
        assert!(!parser.saw_invalid_utf8());
        // 0xFF is never valid; E2 82 is a truncated 3-byte sequence (one
        // maximal subpart, so one U+FFFD); C0 AF is an overlong encoding
        // (each byte its own U+FFFD).
        let blocks = parser.feed(b"data: a\xFFb\xE2\x82c\xC0\xAFd\n\n");
        assert_eq!(
            blocks[0].event,
            Some(message("a\u{FFFD}b\u{FFFD}c\u{FFFD}\u{FFFD}d"))
        );
        assert!(parser.saw_invalid_utf8());
    }

    #[test]
    fn invalid_byte_does_not_swallow_a_line_end() {
        let (blocks, _) = parse(b"data: \xE2\n\n");
        assert_eq!(blocks[0].event, Some(message("\u{FFFD}")));
    }

    #[test]
    fn truncated_utf8_at_end_of_stream_is_replaced() {
        let mut parser = Parser::new();
        assert!(parser.feed(b"data: x\n\ndata: \xF0\x9F").len() == 1);
        assert!(!parser.saw_invalid_utf8());
        assert_eq!(parser.finish(), ["data: \u{FFFD}"]);
        assert!(parser.saw_invalid_utf8());
    }

    #[test]
    fn comments() {
        let (blocks, _) = parse(b":\n: hello\n:: x\ndata: y\n:after\n\n");
        assert_eq!(
            blocks[0].lines,
            [
                comment(":", ""),
                comment(": hello", " hello"),
                comment(":: x", ": x"),
                field("data: y", "data", "y"),
                comment(":after", "after"),
            ]
        );
        assert_eq!(blocks[0].event, Some(message("y")));
    }

    #[test]
    fn comment_only_block_dispatches_nothing() {
        let (blocks, _) = parse(b": keep-alive\n\n");
        assert_eq!(
            blocks,
            [Block {
                lines: vec![comment(": keep-alive", " keep-alive")],
                event: None,
            }]
        );
    }

    #[test]
    fn field_without_colon_has_empty_value() {
        let (blocks, _) = parse(b"data\ndata\n\n");
        assert_eq!(
            blocks[0].lines,
            [field("data", "data", ""), field("data", "data", "")]
        );
        // Two empty data lines make "\n\n"; one trailing LF is removed.
        assert_eq!(blocks[0].event, Some(message("\n")));
        assert_eq!(events(b"data\n\n"), [message("")]);
    }

    #[test]
    fn exactly_one_leading_space_is_removed() {
        let (blocks, _) = parse(b"data:  x\n\n");
        assert_eq!(blocks[0].lines, [field("data:  x", "data", " x")]);
        assert_eq!(blocks[0].event, Some(message(" x")));
        // A tab is not a space, and trailing spaces are kept.
        assert_eq!(events(b"data:\tx \n\n"), [message("\tx ")]);
    }

    #[test]
    fn value_without_space_after_colon() {
        assert_eq!(events(b"data:x\n\n"), [message("x")]);
    }

    #[test]
    fn only_first_colon_separates_name_and_value() {
        let (blocks, _) = parse(b"data: a: b:c\n\n");
        assert_eq!(blocks[0].lines, [field("data: a: b:c", "data", "a: b:c")]);
    }

    #[test]
    fn field_names_are_case_sensitive_and_exact() {
        let (blocks, _) = parse(b"Data: x\ndata : y\n\n");
        assert_eq!(
            blocks[0].lines,
            [
                field("Data: x", "Data", "x"),
                field("data : y", "data ", "y")
            ]
        );
        assert_eq!(blocks[0].event, None);
    }

    #[test]
    fn data_lines_are_joined_and_last_lf_removed() {
        assert_eq!(
            events(b"data: a\ndata: b\ndata: c\n\n"),
            [message("a\nb\nc")]
        );
        assert_eq!(events(b"data: a\ndata\n\n"), [message("a\n")]);
    }

    #[test]
    fn empty_data_field_dispatches_event_with_empty_data() {
        assert_eq!(events(b"data:\n\n"), [message("")]);
        assert_eq!(events(b"data: \n\n"), [message("")]);
    }

    #[test]
    fn event_type_is_set_and_reset_after_dispatch() {
        let input = b"event: add\ndata: 1\n\ndata: 2\n\nevent:\ndata: 3\n\n";
        assert_eq!(
            events(input),
            [event("add", "1", "", None), message("2"), message("3")]
        );
    }

    #[test]
    fn event_type_is_reset_even_without_dispatch() {
        // The first block has no data, but its blank line still clears the
        // event type buffer.
        assert_eq!(events(b"event: add\n\ndata: 1\n\n"), [message("1")]);
    }

    #[test]
    fn last_event_type_field_wins() {
        assert_eq!(
            events(b"event: a\nevent: b\ndata: x\n\n"),
            [event("b", "x", "", None)]
        );
    }

    #[test]
    fn id_persists_across_events() {
        let mut parser = Parser::new();
        let blocks = parser.feed(b"id: 1\ndata: a\n\ndata: b\n\nid: 2\n\ndata: c\n\n");
        let events: Vec<_> = blocks.into_iter().map(|block| block.event).collect();
        assert_eq!(
            events,
            [
                Some(event("message", "a", "1", Some("1"))),
                Some(event("message", "b", "1", None)),
                None,
                Some(event("message", "c", "2", None)),
            ]
        );
        assert_eq!(parser.last_event_id(), "2");
    }

    #[test]
    fn id_containing_nul_is_ignored() {
        let mut parser = Parser::new();
        let blocks = parser.feed(b"id: 1\ndata: a\n\nid: 2\0x\ndata: b\n\n");
        assert_eq!(blocks[1].lines[0], field("id: 2\0x", "id", "2\0x"));
        assert_eq!(blocks[1].event, Some(event("message", "b", "1", None)));
        assert_eq!(parser.last_event_id(), "1");
    }

    #[test]
    fn nul_id_after_valid_id_in_same_block_keeps_the_valid_one() {
        assert_eq!(
            events(b"id: 7\nid: \0\ndata: a\n\n"),
            [event("message", "a", "7", Some("7"))]
        );
    }

    #[test]
    fn empty_id_resets_last_event_id() {
        let mut parser = Parser::new();
        let blocks = parser.feed(b"id: 1\ndata: a\n\nid\ndata: b\n\nid:\ndata: c\n\n");
        let events: Vec<_> = blocks.into_iter().filter_map(|block| block.event).collect();
        assert_eq!(
            events,
            [
                event("message", "a", "1", Some("1")),
                event("message", "b", "", Some("")),
                event("message", "c", "", Some("")),
            ]
        );
        assert_eq!(parser.last_event_id(), "");
    }

    #[test]
    fn id_in_block_without_data_still_updates_buffer() {
        let mut parser = Parser::new();
        let blocks = parser.feed(b"id: 9\n\n");
        assert_eq!(blocks[0].event, None);
        assert_eq!(parser.last_event_id(), "9");
    }

    #[test]
    fn retry_accepts_ascii_digits_only() {
        let cases: [(&[u8], Option<u64>); 11] = [
            (b"retry: 100\n\n", Some(100)),
            (b"retry:0\n\n", Some(0)),
            (b"retry: 007\n\n", Some(7)),
            (b"retry: 18446744073709551615\n\n", Some(u64::MAX)),
            (b"retry: +100\n\n", None),
            (b"retry: -1\n\n", None),
            (b"retry: 1.5\n\n", None),
            (b"retry: \n\n", None),
            (b"retry\n\n", None),
            (b"retry:  100\n\n", None),
            (b"retry: 18446744073709551616\n\n", None),
        ];
        for (input, expected) in cases {
            let mut parser = Parser::new();
            parser.feed(input);
            assert_eq!(parser.reconnection_time(), expected, "{input:?}");
        }
    }

    #[test]
    fn invalid_retry_keeps_previous_value() {
        let mut parser = Parser::new();
        parser.feed(
            "retry: 100\n\nretry: 1e3\nretry: ١٢\nretry: 99999999999999999999\n\n".as_bytes(),
        );
        assert_eq!(parser.reconnection_time(), Some(100));
        parser.feed(b"retry: 250\n\n");
        assert_eq!(parser.reconnection_time(), Some(250));
    }

    #[test]
    fn retry_only_block_dispatches_no_event() {
        let (blocks, _) = parse(b"retry: 500\n\n");
        assert_eq!(
            blocks,
            [Block {
                lines: vec![field("retry: 500", "retry", "500")],
                event: None,
            }]
        );
    }

    #[test]
    fn unknown_field_is_recorded_but_ignored() {
        let mut parser = Parser::new();
        let blocks = parser.feed(b"foo: bar\ndata: x\nretryx: 5\n\n");
        assert_eq!(
            blocks[0].lines,
            [
                field("foo: bar", "foo", "bar"),
                field("data: x", "data", "x"),
                field("retryx: 5", "retryx", "5"),
            ]
        );
        assert_eq!(blocks[0].event, Some(message("x")));
        assert_eq!(parser.reconnection_time(), None);
    }

    #[test]
    fn every_blank_line_closes_a_block() {
        let (blocks, _) = parse(b"\n\ndata: x\n\n\n");
        let empty = Block {
            lines: vec![],
            event: None,
        };
        assert_eq!(blocks.len(), 4);
        assert_eq!(blocks[0], empty);
        assert_eq!(blocks[1], empty);
        assert_eq!(blocks[2].event, Some(message("x")));
        assert_eq!(blocks[3], empty);
    }

    #[test]
    fn unterminated_last_block_is_discarded() {
        let mut parser = Parser::new();
        let blocks = parser.feed(b"data: a\n\nid: 5\nevent: e\ndata: b\n");
        assert_eq!(blocks.len(), 1);
        assert_eq!(parser.finish(), ["id: 5", "event: e", "data: b"]);
        // The id field was processed when its line ended, as the standard
        // processes lines as they arrive; only the event is discarded.
        assert_eq!(parser.last_event_id(), "5");
    }

    #[test]
    fn unterminated_last_line_is_discarded() {
        let mut parser = Parser::new();
        assert!(parser.feed(b"data: a\ndata: b").is_empty());
        assert_eq!(parser.finish(), ["data: a", "data: b"]);
        let mut parser = Parser::new();
        assert!(parser.feed(b"id: 3").is_empty());
        assert_eq!(parser.finish(), ["id: 3"]);
        assert_eq!(parser.last_event_id(), "");
    }

    #[test]
    fn finish_on_clean_end_returns_nothing() {
        let (_, pending) = parse(b"data: a\n\n");
        assert!(pending.is_empty());
        let (blocks, pending) = parse(b"");
        assert!(blocks.is_empty() && pending.is_empty());
    }

    #[test]
    fn feed_after_finish_starts_a_new_stream() {
        let mut parser = Parser::new();
        parser.feed(b"id: 1\nretry: 10\ndata: a\n\nevent: x\ndata: lost\r");
        assert_eq!(parser.finish(), ["event: x", "data: lost"]);
        // New stream: the BOM is stripped again, the leftover CR does not
        // eat this LF, and the discarded event type does not leak.
        let blocks = parser.feed(b"\xEF\xBB\xBF\ndata: b\n\n");
        assert_eq!(
            blocks[0],
            Block {
                lines: vec![],
                event: None
            }
        );
        assert_eq!(blocks[1].event, Some(event("message", "b", "1", None)));
        assert_eq!(parser.reconnection_time(), Some(10));
    }

    #[test]
    fn sample_stream_exact_result() {
        let sample = b"\xEF\xBB\xBFid: 1\r\nevent: add\r\ndata: a\r\ndata:  b\r\n\r\n: c\rretry: 300\r\rdata\n\ndata: tail";
        let mut parser = Parser::new();
        let blocks = parser.feed(sample);
        assert_eq!(
            blocks,
            [
                Block {
                    lines: vec![
                        field("id: 1", "id", "1"),
                        field("event: add", "event", "add"),
                        field("data: a", "data", "a"),
                        field("data:  b", "data", " b"),
                    ],
                    event: Some(event("add", "a\n b", "1", Some("1"))),
                },
                Block {
                    lines: vec![comment(": c", " c"), field("retry: 300", "retry", "300")],
                    event: None,
                },
                Block {
                    lines: vec![field("data", "data", "")],
                    event: Some(event("message", "", "1", None)),
                },
            ]
        );
        assert_eq!(parser.finish(), ["data: tail"]);
        assert_eq!(parser.reconnection_time(), Some(300));
        assert!(!parser.saw_invalid_utf8());
    }
}
