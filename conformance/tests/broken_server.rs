//! Every check is shown to fail against a server that breaks its rule: the deliberately
//! broken server (`examples/broken_server.rs`) is started once per check, with that check's
//! rule broken, and the check must report a failure. With nothing broken, every check passes,
//! so a failure is the rule's doing and not the broken server's.

mod support;

use conformance::checks::{self, Outcome};
use conformance::report::{run_checks, table};
use conformance::spawn::Launcher;
use conformance::target::{Ctx, Target};
use conformance::wire::Protocol;

fn launcher() -> Launcher {
    Launcher::new(support::build(
        "conformance",
        support::Target::Example("broken_server"),
    ))
}

/// The broken server on a shared log in a redis-server of the test's own.
fn on_shared_log(launcher: Launcher, redis: &redis_fixture::RedisServer) -> Launcher {
    launcher.with_env("EVENT_LOG", &redis.url())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_nothing_broken_every_check_passes() {
    let _turn = support::ONE_AT_A_TIME.lock().await;
    let launcher = launcher().with_env("BROKEN", "none");
    let mut server = launcher.start(&[]).await.expect("broken_server starts");
    let report = run_checks(
        "broken_server (BROKEN=none)",
        Target::spawned(&server, launcher),
        &[],
        |_, _| {},
    )
    .await;
    server.stop(std::time::Duration::from_secs(3)).await;
    let all_passed = report.results.iter().all(|r| r.outcome == Outcome::Pass);
    let shared_log_skipped = report.results.iter().all(|r| {
        let shared = checks::all()
            .iter()
            .any(|c| c.name == r.name && c.shared_log);
        r.outcome == Outcome::Pass || shared
    });
    assert!(
        report.passed() && (all_passed || shared_log_skipped),
        "{}",
        table(&[report])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_shared_log_with_nothing_broken_the_shared_log_checks_pass() {
    let _turn = support::ONE_AT_A_TIME.lock().await;
    let redis = redis_fixture::RedisServer::start().expect("redis-server starts");
    let launcher = on_shared_log(launcher(), &redis).with_env("BROKEN", "none");
    let mut server = launcher.start(&[]).await.expect("broken_server starts");
    let only: Vec<String> = checks::all()
        .iter()
        .filter(|check| check.shared_log)
        .map(|check| check.name.to_owned())
        .collect();
    let report = run_checks(
        "broken_server (BROKEN=none, shared log)",
        Target::spawned(&server, launcher),
        &only,
        |_, _| {},
    )
    .await;
    server.stop(std::time::Duration::from_secs(3)).await;
    let all_passed = report.results.iter().all(|r| r.outcome == Outcome::Pass);
    assert!(report.passed() && all_passed, "{}", table(&[report]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_check_fails_against_a_server_that_breaks_its_rule() {
    every_check_fails(launcher(), |_| true).await;
}

/// The same over HTTPS with HTTP/2: each check, read through the HTTP/2 client, still sees its
/// rule broken (`END_STREAM` missing at shutdown, a reset stream left counted, …). The checks
/// that start HTTPS servers of their own have run above.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_http2_every_check_fails_against_a_server_that_breaks_its_rule() {
    let base = launcher()
        .with_tls(Protocol::Http2)
        .expect("a development certificate");
    every_check_fails(base, |check| !check.own_tls_server).await;
}

async fn every_check_fails(base: Launcher, applies: impl Fn(&checks::Check) -> bool) {
    let _turn = support::ONE_AT_A_TIME.lock().await;
    let redis = redis_fixture::RedisServer::start().expect("redis-server starts");
    let mut undetected = Vec::new();
    for check in checks::all().into_iter().filter(|check| applies(check)) {
        let mut launcher = base.clone().with_env("BROKEN", check.name);
        if check.shared_log {
            // Each proof on a log of its own, so that no earlier one's state counts.
            launcher = on_shared_log(launcher, &redis).with_env("EVENT_LOG_KEY", check.name);
        }
        let mut server = launcher
            .start(&[])
            .await
            .unwrap_or_else(|e| panic!("BROKEN={}: {e}", check.name));
        // Every break leaves the suite able to begin, so that the failure is the check's own.
        let ctx = Ctx::connect(Target::spawned(&server, launcher))
            .await
            .unwrap_or_else(|e| panic!("BROKEN={}: the suite cannot begin: {e}", check.name));
        let outcome = check.run(&ctx).await;
        server.stop(std::time::Duration::from_secs(3)).await;
        match &outcome {
            Outcome::Fail(why) => {
                eprintln!("  {:36} fails as it should: {}", check.name, shorten(why))
            }
            other => {
                eprintln!("  {:36} did NOT fail: {other:?}", check.name);
                undetected.push(check.name);
            }
        }
    }
    assert!(
        undetected.is_empty(),
        "checks that did not notice their rule broken: {undetected:?}"
    );
}

fn shorten(text: &str) -> String {
    let short: String = text.chars().take(140).collect();
    if short.len() < text.len() {
        format!("{short}…")
    } else {
        short
    }
}
