//! Hostile payloads against the live server, property-based: whatever name and data a client
//! posts, an invalid or reserved name gets a JSON 400 and publishes nothing, and a valid one
//! gets a 202 and reaches an open stream as exactly one block — that event, with that id, name
//! and data, and no other field. Two of the frameworks (actix-web, salvo) write events with
//! their own encoders, so checking sse-core's encoder alone would not prove this.
//!
//! Every case is framed by two marker events: the stream must deliver exactly the case's event
//! between them (or nothing, for a refused case), so a case never depends on an earlier one —
//! which also keeps proptest's shrinking honest.

use std::cell::RefCell;
use std::time::Duration;

use conformance::checks::is_comment_block;
use conformance::hostile::{
    any_data, any_name, check_exactly_the_event, hostile_string, name_is_valid, request_body,
    valid_name,
};
use conformance::parser::Block;
use conformance::wire::RawStream;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner};
use serde_json::Value;

use crate::faults::{FaultCtx, Findings};
use crate::publish::Publisher;
use crate::subject::Subject;

const WAIT: Duration = Duration::from_secs(5);
const MARKER: &str = "marker";

/// One case: the name (`None`: the member is left out) and the data posted.
type Trigger = (Option<String>, Value);

pub async fn run(ctx: &FaultCtx, findings: &mut Findings) -> Result<String, String> {
    let cases = ctx.scale.pick(256, 48);
    let subject = ctx.start(&[]).await?;
    let result = run_cases(&subject, cases, findings).await;
    subject.stop().await;
    result
}

async fn run_cases(
    subject: &Subject,
    cases: u32,
    findings: &mut Findings,
) -> Result<String, String> {
    let mut stream = RawStream::get(
        &conformance::wire::Transport::Plain,
        subject.address,
        "/events",
        &[("Accept", "text/event-stream")],
    )
    .await?;
    stream
        .read_until(WAIT, |block| block.event.is_none())
        .await?;
    let publisher = subject.publisher.clone();
    let handle = tokio::runtime::Handle::current();
    // The runner and its test are synchronous: they run on a blocking thread, each case
    // driving its requests on the runtime through `handle`.
    let (outcome, tally) = tokio::task::spawn_blocking(move || {
        let live = Live {
            publisher,
            stream: tokio::sync::Mutex::new(stream),
            tally: RefCell::new(Tally::default()),
        };
        let config = Config {
            cases,
            failure_persistence: None,
            // A server that stopped answering costs WAIT per shrinking step: bounded.
            max_shrink_time: 30_000,
            ..Config::default()
        };
        let mut runner =
            TestRunner::new_with_rng(config, TestRng::deterministic_rng(RngAlgorithm::ChaCha));
        let outcome = runner.run(&any_trigger(), |trigger| {
            handle.block_on(live.check(&trigger))
        });
        (outcome, live.tally.into_inner())
    })
    .await
    .map_err(|e| format!("the property runner panicked: {e}"))?;
    findings.figure(format!(
        "{cases} cases: {} accepted and delivered exactly, {} refused with a JSON 400",
        tally.accepted, tally.refused
    ));
    match outcome {
        Ok(()) => {}
        Err(TestError::Fail(reason, (name, data))) => findings.require(false, || {
            format!(
                "POST /trigger with event {} and data {data} (shrunk): {reason}",
                name.map_or("left out".to_owned(), |n| format!("{n:?}"))
            )
        }),
        Err(TestError::Abort(reason)) => {
            findings.require(false, || format!("the run stopped: {reason}"))
        }
    }
    Ok(format!(
        "{cases} cases, {} accepted, {} refused",
        tally.accepted, tally.refused
    ))
}

/// The server side of the cases: where to post, the open stream, and counts.
struct Live {
    publisher: Publisher,
    /// Locked by each read; a `RefCell` borrow may not be held across an await.
    stream: tokio::sync::Mutex<RawStream>,
    tally: RefCell<Tally>,
}

#[derive(Debug, Default)]
struct Tally {
    accepted: u64,
    refused: u64,
}

impl Live {
    /// Posts the trigger between two markers and checks the answer and what the stream got.
    async fn check(&self, (name, data): &Trigger) -> Result<(), TestCaseError> {
        // Whatever an earlier case left on the stream goes with the first marker.
        let before = self.marker().await?;
        self.blocks_up_to(before).await?;
        let body = request_body(name.as_deref(), data);
        let (status, answer) = self
            .publisher
            .post(body)
            .await
            .map_err(TestCaseError::fail)?;
        let valid = name.as_deref().is_none_or(name_is_valid);
        let after = self.marker().await?;
        let between = &self.blocks_up_to(after).await?;
        if valid {
            prop_assert_eq!(status, 202, "answer {}", answer);
            let id = accepted_id(&answer, name.as_deref().unwrap_or("message"))?;
            prop_assert_eq!(
                (id, after),
                (before + 1, before + 2),
                "ids around the markers"
            );
            prop_assert_eq!(
                between.len(),
                1,
                "blocks between the markers: {:?}",
                between
            );
            check_exactly_the_event(
                &between[0],
                Some(id),
                name.as_deref().unwrap_or("message"),
                data,
            )?;
            self.tally.borrow_mut().accepted += 1;
        } else {
            prop_assert_eq!(status, 400, "answer {}", answer);
            prop_assert!(is_json_error(&answer), "not a JSON error: {}", answer);
            prop_assert_eq!(after, before + 1, "a refused trigger took an id");
            prop_assert!(
                between.is_empty(),
                "blocks between the markers: {:?}",
                between
            );
            self.tally.borrow_mut().refused += 1;
        }
        Ok(())
    }

    /// Publishes a marker; returns its id.
    async fn marker(&self) -> Result<u64, TestCaseError> {
        self.publisher
            .publish(MARKER, "")
            .await
            .map_err(TestCaseError::fail)
    }

    /// The blocks before the marker `id`, heartbeats (comment-only blocks) left out.
    async fn blocks_up_to(&self, id: u64) -> Result<Vec<Block>, TestCaseError> {
        let mut stream = self.stream.lock().await;
        let wanted = id.to_string();
        let (blocks, found) = stream
            .read_until(WAIT, |block| {
                block.event.as_ref().is_some_and(|e| {
                    e.event_type == MARKER && e.id.as_deref() == Some(wanted.as_str())
                })
            })
            .await
            .map_err(TestCaseError::fail)?;
        if !found {
            return Err(TestCaseError::fail(format!(
                "marker {id} did not arrive within {WAIT:?} (stream end: {:?})",
                stream.end
            )));
        }
        let mut blocks: Vec<Block> = blocks.into_iter().map(|timed| timed.block).collect();
        blocks.pop();
        blocks.retain(|block| !is_comment_block(block));
        Ok(blocks)
    }
}

fn is_json_error(answer: &str) -> bool {
    serde_json::from_str::<Value>(answer)
        .ok()
        .is_some_and(|v| v.get("error").is_some_and(Value::is_string))
}

/// The id of a 202 `{"id":N,"event":NAME,"clients":K}`, after checking its name.
fn accepted_id(answer: &str, name: &str) -> Result<u64, TestCaseError> {
    let value: Value = serde_json::from_str(answer)
        .map_err(|e| TestCaseError::fail(format!("202 body is not JSON ({e}): {answer}")))?;
    prop_assert_eq!(
        value.get("event").and_then(Value::as_str),
        Some(name),
        "202 body {}",
        answer
    );
    value
        .get("id")
        .and_then(Value::as_u64)
        .ok_or_else(|| TestCaseError::fail(format!("202 body without an id: {answer}")))
}

/// A trigger: most of the time a valid name (or none), so that most cases reach the stream,
/// and mostly string data, the kind the encoders split into lines.
fn any_trigger() -> impl Strategy<Value = Trigger> {
    let name = prop_oneof![
        1 => Just(None),
        2 => valid_name().prop_map(Some),
        3 => any_name().prop_map(Some),
    ];
    let data = prop_oneof![
        3 => hostile_string().prop_map(Value::String),
        1 => any_data(),
    ];
    (name, data)
}

#[cfg(test)]
mod tests {
    use proptest::strategy::ValueTree;

    use super::*;

    /// The cases must reach both sides often, or the live run proves little at 48 cases: most
    /// are accepted, many refused, and many accepted ones carry a CR in string data.
    #[test]
    fn triggers_hit_both_sides_and_carriage_returns() {
        let mut runner = TestRunner::deterministic();
        let triggers: Vec<Trigger> = (0..1000)
            .map(|_| any_trigger().new_tree(&mut runner).unwrap().current())
            .collect();
        let accepted: Vec<&Trigger> = triggers
            .iter()
            .filter(|(name, _)| name.as_deref().is_none_or(name_is_valid))
            .collect();
        let with_cr = accepted
            .iter()
            .filter(|(_, data)| data.as_str().is_some_and(|text| text.contains('\r')))
            .count();
        assert!(
            (600..=900).contains(&accepted.len()),
            "{} accepted",
            accepted.len()
        );
        assert!(
            with_cr >= 150,
            "{with_cr} accepted with a CR in string data"
        );
    }
}
