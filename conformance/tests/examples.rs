//! Starts every example server as a real process on a free port of 127.0.0.1 and runs the whole
//! suite against it: on the memory log, on a shared log in a redis-server of the test's own,
//! and over HTTPS with HTTP/2 (on a development certificate the suite makes). The examples are
//! the workspace's (`examples/*`, as each `Cargo.toml` describes itself), one test per example
//! and run: `axum_example::on_the_memory_log`, `…::on_a_shared_redis_log`, `…::over_http2` (a
//! test harness of its own, libtest-mimic, since the list is read when the tests run).

mod support;

use conformance::checks::{self, Outcome};
use conformance::report::{run_checks, table};
use conformance::spawn::Launcher;
use conformance::target::Target;
use conformance::wire::Protocol;

/// How the server runs: on which event log, and how the suite speaks to it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Run {
    /// The memory log, plain HTTP/1.1.
    Memory,
    /// A shared log in a redis-server, plain HTTP/1.1.
    Redis,
    /// The memory log, HTTPS with HTTP/2.
    Http2,
}

async fn passes_the_contract(package: &str, run: Run) {
    let _turn = support::ONE_AT_A_TIME.lock().await;
    let binary = support::build(package, support::Target::Bin(package));
    let mut launcher = Launcher::new(binary);
    let redis = (run == Run::Redis)
        .then(|| redis_fixture::RedisServer::start().expect("redis-server starts"));
    if let Some(redis) = &redis {
        launcher = launcher.with_env("EVENT_LOG", &redis.url());
    }
    if run == Run::Http2 {
        launcher = launcher
            .with_tls(Protocol::Http2)
            .expect("a development certificate");
    }
    let package = &format!(
        "{package}{}",
        match run {
            Run::Memory => "",
            Run::Redis => " (shared log)",
            Run::Http2 => " (HTTP/2)",
        }
    );
    let mut server = launcher
        .start(&[])
        .await
        .unwrap_or_else(|e| panic!("{package}: {e}"));
    let target = Target::spawned(&server, launcher);
    let report = run_checks(package, target, &[], |framework, result| {
        eprintln!(
            "  [{framework}] {:36} {:>5.1} s  {:?}",
            result.name,
            result.took.as_secs_f64(),
            result.outcome
        );
    })
    .await;
    let status = server.stop(std::time::Duration::from_secs(3)).await;
    let output = server.output();
    // With the suite's settings every check can run (those for a shared log, on it; those
    // that start HTTPS servers of their own, in a plain run): a skip here means a check was
    // not proven.
    let may_skip: Vec<&str> = checks::all()
        .iter()
        .filter(|check| {
            (check.shared_log && run != Run::Redis) || (check.own_tls_server && run == Run::Http2)
        })
        .map(|check| check.name)
        .collect();
    let skipped: Vec<&str> = report
        .results
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::Skip(_)) && !may_skip.contains(&r.name))
        .map(|r| r.name)
        .collect();
    assert!(
        report.passed() && skipped.is_empty(),
        "{package} does not meet the contract (skipped: {skipped:?}):\n{}\nserver output:\n{output}",
        table(std::slice::from_ref(&report))
    );
    // A known limitation that passes is gone: the list must not outlive it.
    let framework = report.framework.clone().unwrap_or_default();
    let outdated: Vec<&str> = conformance::known::of(&framework)
        .filter(|known| {
            report
                .results
                .iter()
                .any(|r| r.name == known.check && r.outcome == Outcome::Pass)
        })
        .map(|known| known.check)
        .collect();
    assert!(
        outdated.is_empty(),
        "{package}: known limitations that no longer show (remove them from conformance/src/known.rs): {outdated:?}"
    );
    if run == Run::Http2 {
        assert!(
            report
                .transport
                .as_deref()
                .is_some_and(|t| t.ends_with("chose h2")),
            "{package}: the suite did not speak HTTP/2: {:?}",
            report.transport
        );
    }
    assert!(
        status.is_some_and(|s| s.success()),
        "{package} did not exit 0 on SIGTERM: {status:?}\n{output}"
    );
    eprintln!("{}", table(&[report]));
}

fn main() -> std::process::ExitCode {
    let arguments = libtest_mimic::Arguments::from_args();
    let trials = support::examples()
        .into_iter()
        .flat_map(|framework| {
            [
                (Run::Memory, "on_the_memory_log"),
                (Run::Redis, "on_a_shared_redis_log"),
                (Run::Http2, "over_http2"),
            ]
            .map(|(run, test)| {
                let name = format!("{}::{test}", framework.package.replace('-', "_"));
                libtest_mimic::Trial::test(name, move || {
                    support::runtime().block_on(passes_the_contract(framework.package, run));
                    Ok(())
                })
            })
        })
        .collect();
    libtest_mimic::run(&arguments, trials).exit_code()
}
