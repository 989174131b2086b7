//! Each fault scenario fails against a server that breaks its rule: the conformance suite's
//! deliberately broken server (`conformance/examples/broken_server.rs`, axum's routes with one
//! rule broken by `BROKEN=<check>`), at CI scale. With nothing broken the same server passes
//! them, so each failure is the break's doing.

#[path = "../../conformance/tests/support/mod.rs"]
mod support;

use sse_load::faults::{FaultCtx, Scale, run};

/// Starts the broken server with `BROKEN=rule` and runs `scenarios` against it.
async fn outcomes(rule: &str, scenarios: &[&str]) -> Vec<sse_load::faults::Outcome> {
    sse_load::procfs::raise_open_file_limit();
    let binary = support::build("conformance", support::Target::Example("broken_server"));
    let mut ctx = FaultCtx::new(binary, Scale::Ci);
    ctx.env.push(("BROKEN".into(), rule.into()));
    let only: Vec<String> = scenarios.iter().map(|s| s.to_string()).collect();
    run(&ctx, &only, &|line| eprintln!("  [BROKEN={rule}] {line}")).await
}

async fn catches(scenario: &str, rule: &str) {
    let _turn = support::ONE_AT_A_TIME.lock().await;
    let outcome = outcomes(rule, &[scenario]).await.remove(0);
    assert!(
        !outcome.passed,
        "{scenario} passed against a server with {rule} broken: {outcome:?}"
    );
    eprintln!("{scenario} caught BROKEN={rule}: {:?}", outcome.problems);
}

macro_rules! catches {
    ($test:ident, $scenario:literal, $rule:literal) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $test() {
            catches($scenario, $rule).await;
        }
    };
}

// A slow client that is never cut off.
catches!(slow_consumer, "slow-consumer", "lag-cutoff");
// Exiting at once on SIGTERM, cutting every stream.
catches!(shutdown_under_load, "shutdown-under-load", "shutdown");
// Streams of vanished clients kept alive: the count never returns to 0.
catches!(churn, "churn", "disconnect-cleanup");
// 429 without Retry-After instead of 503.
catches!(flood, "flood", "max-clients");
// The broken server is served by plain `axum::serve`, which sets no request-head timeout: the
// very mistake this scenario exists for, so nothing needs breaking.
catches!(slowloris, "slowloris", "none");
// 422 instead of 400 for bad bodies.
catches!(hostile_trigger, "hostile-trigger", "trigger-400");
// A garbage resume point read as 0, replaying everything.
catches!(hostile_resume, "hostile-resume", "garbage-last-event-id");
// Payload text written without splitting its line breaks.
catches!(hostile_payloads, "hostile-payloads", "injection");
// A publication that failed while Redis was down acknowledged anyway.
catches!(log_outage, "log-outage", "log-outage");
// Ids given anew after Redis came back empty.
catches!(log_data_loss, "log-data-loss", "log-data-loss");
// Streams ended whenever the connection to Redis drops.
catches!(
    log_connection_cut,
    "log-connection-cut",
    "log-connection-cut"
);
// An unreachable shared log silently replaced by the memory log.
catches!(log_unreachable, "log-unreachable", "log-unreachable");

/// The control: with nothing broken, every scenario but slowloris passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_broken_passes() {
    let _turn = support::ONE_AT_A_TIME.lock().await;
    let scenarios: Vec<&str> = sse_load::faults::SCENARIOS
        .iter()
        .map(|s| s.name)
        .filter(|name| *name != "slowloris")
        .collect();
    for outcome in outcomes("none", &scenarios).await {
        assert!(outcome.passed, "{outcome:?}");
    }
}
