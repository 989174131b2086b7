//! The fault-and-load suite: the ways SSE servers fail in production — slow consumers, shutdown
//! under load, churn, floods, slowloris, hostile payloads, requests and resume points — each a
//! scenario with a pass rule and figures, run against a fresh process of every server.

pub mod churn;
pub mod flood;
pub mod hostile_resume;
pub mod hostile_trigger;
pub mod payloads;
pub mod shared_log;
pub mod shutdown;
pub mod slow_consumer;
pub mod slowloris;

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::subject::Subject;

/// How big the scenarios are: `Full` at the published sizes (docs/faults.md), `Ci` small
/// enough for every CI run. Timing rules (latency unchanged, `/health` quick) are enforced at `Full` only; at `Ci`
/// they are reported, since a shared CI machine makes timings noise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
pub enum Scale {
    Ci,
    Full,
}

impl Scale {
    /// `full` at `Full`, `ci` at `Ci`.
    pub fn pick<T>(self, full: T, ci: T) -> T {
        match self {
            Self::Full => full,
            Self::Ci => ci,
        }
    }
}

/// What a scenario needs: which server, how big.
#[derive(Debug, Clone)]
pub struct FaultCtx {
    pub binary: PathBuf,
    pub framework: String,
    pub scale: Scale,
    /// More environment for every server started, on top of what a scenario sets (the
    /// deliberately broken server of the tests takes `BROKEN=<rule>` this way).
    pub env: Vec<(String, String)>,
}

impl FaultCtx {
    pub fn new(binary: PathBuf, scale: Scale) -> Self {
        Self {
            framework: crate::subject::framework_of(&binary),
            binary,
            scale,
            env: Vec::new(),
        }
    }

    /// Starts a fresh server with the scenario's `overrides` and this context's environment.
    pub async fn start(&self, overrides: &[(&str, &str)]) -> Result<Subject, String> {
        let mut env = overrides.to_vec();
        env.extend(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        Subject::start(&self.binary, &env).await
    }
}

/// The result of one scenario against one server.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Outcome {
    pub scenario: String,
    pub framework: String,
    pub passed: bool,
    /// The headline figures, short enough for a table cell.
    pub summary: String,
    /// Every figure measured, one per line.
    pub figures: Vec<String>,
    /// Each rule that was broken, as a sentence; empty when passed.
    pub problems: Vec<String>,
    pub seconds: f64,
}

/// Collects a scenario's figures and broken rules.
#[derive(Debug, Default)]
pub struct Findings {
    pub figures: Vec<String>,
    pub problems: Vec<String>,
}

impl Findings {
    pub fn figure(&mut self, line: impl Into<String>) {
        self.figures.push(line.into());
    }

    /// Records `problem` unless `ok`.
    pub fn require(&mut self, ok: bool, problem: impl FnOnce() -> String) {
        if !ok {
            self.problems.push(problem());
        }
    }
}

type Run = for<'a> fn(
    &'a FaultCtx,
    &'a mut Findings,
) -> Pin<Box<dyn Future<Output = Result<String, String>> + Send + 'a>>;

/// A named scenario: its run returns the table summary, or an error that stopped it.
pub struct Scenario {
    pub name: &'static str,
    pub rule: &'static str,
    pub run: Run,
}

macro_rules! scenario {
    ($name:literal, $rule:literal, $($module:ident)::+) => {
        Scenario {
            name: $name,
            rule: $rule,
            run: |ctx, findings| Box::pin($($module)::+::run(ctx, findings)),
        }
    };
}

/// Every scenario, in the order docs/faults.md reports them.
pub const SCENARIOS: &[Scenario] = &[
    scenario!(
        "slow-consumer",
        "A client that never reads is cut off within a bound while 1 KiB events are published; RSS stays within 64 MiB of its baseline; 100 other clients get every event with unchanged latency; the slow client resumes from the replay buffer or with a gap event.",
        slow_consumer
    ),
    scenario!(
        "shutdown-under-load",
        "SIGTERM with many open streams: exit 0 within 2 s, every stream ended cleanly (complete chunked body, no reset).",
        shutdown
    ),
    scenario!(
        "churn",
        "Connect/disconnect cycles: the client count returns to 0; open descriptors and RSS return to their baseline (within 10 %).",
        churn
    ),
    scenario!(
        "flood",
        "Connection attempts far beyond MAX_CLIENTS: the excess gets 503 with Retry-After; /health keeps answering quickly; connected clients lose nothing.",
        flood
    ),
    scenario!(
        "slowloris",
        "Clients trickling a request head byte by byte are cut off within REQUEST_HEAD_TIMEOUT + 5 s and a 1 MiB header gets a 4xx or a close within 5 s, while an open stream gets every event published meanwhile and /health answers every poll.",
        slowloris
    ),
    scenario!(
        "hostile-trigger",
        "POST /trigger with invalid UTF-8, JSON nested 10,000 deep, 10,000-digit numbers, repeated members and lying or unfinished bodies: each gets a JSON 400 (an unfinished body: 408, a close or a client timeout); the process survives and nothing is published.",
        hostile_trigger
    ),
    scenario!(
        "hostile-resume",
        "GET /events with hostile Last-Event-ID headers and lastEventId queries (100 KiB, repeated, non-ASCII, beyond 64 bits, signed, padded, hex): each is refused by a size or byte limit, ignored, or honoured exactly as a decimal; the process survives.",
        hostile_resume
    ),
    scenario!(
        "hostile-payloads",
        "Property-based triggers with hostile names and data against the live server: invalid names get a JSON 400 and publish nothing; valid ones reach an open stream as exactly one event with that id, name and data, and no other line.",
        payloads
    ),
    scenario!(
        "log-outage",
        "On a shared log, Redis SIGKILLed with streams open and publishers running, then restarted on its data: triggers get 503 with Retry-After and /health says degraded meanwhile; afterwards no acknowledged event is missing or doubled, every stream is consecutive, and no stream ended.",
        shared_log::outage
    ),
    scenario!(
        "log-data-loss",
        "On a shared log, Redis restarted empty: the next id is above the highest given before, an open stream goes on consecutively, and a client resuming from a lost id gets the gap event.",
        shared_log::data_loss
    ),
    scenario!(
        "log-connection-cut",
        "On a shared log, every connection of the server cut again and again (CLIENT KILL TYPE normal) with publishers running: no acknowledged event is missing or doubled, every stream is consecutive, and no stream ended.",
        shared_log::connection_cut
    ),
    scenario!(
        "log-unreachable",
        "A shared log that nothing answers at start: exit status 1 within 10 s (a 4 s margin), with one line naming the URL.",
        shared_log::unreachable
    ),
];

/// Runs the named scenarios (all when `only` is empty) against one server.
pub async fn run(ctx: &FaultCtx, only: &[String], log: &impl Fn(&str)) -> Vec<Outcome> {
    let mut outcomes = Vec::new();
    for scenario in SCENARIOS
        .iter()
        .filter(|s| only.is_empty() || only.iter().any(|o| o == s.name))
    {
        log(&format!("{}: {} …", ctx.framework, scenario.name));
        let began = Instant::now();
        let mut findings = Findings::default();
        let result = (scenario.run)(ctx, &mut findings).await;
        let (summary, passed) = match result {
            Ok(summary) => (summary, findings.problems.is_empty()),
            Err(error) => {
                findings.problems.push(error);
                ("error".to_owned(), false)
            }
        };
        let outcome = Outcome {
            scenario: scenario.name.to_owned(),
            framework: ctx.framework.clone(),
            passed,
            summary,
            figures: findings.figures,
            problems: findings.problems,
            seconds: began.elapsed().as_secs_f64(),
        };
        log(&format!(
            "{}: {} {} in {:.1} s — {}",
            ctx.framework,
            scenario.name,
            if outcome.passed { "passed" } else { "FAILED" },
            outcome.seconds,
            outcome.summary
        ));
        for figure in &outcome.figures {
            log(&format!("    {figure}"));
        }
        for problem in &outcome.problems {
            log(&format!("    PROBLEM: {problem}"));
        }
        outcomes.push(outcome);
    }
    outcomes
}
