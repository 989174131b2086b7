//! Starts every example server as a real process on a free port of 127.0.0.1 and runs the whole
//! suite against it: once on the memory log, once on a shared log in a redis-server of the
//! test's own. The examples are the workspace's (`examples/*`, as each `Cargo.toml` describes
//! itself), one test per example and log: `axum_example::on_the_memory_log`, … (a test harness
//! of its own, libtest-mimic, since the list is read when the tests run).

mod support;

use conformance::checks::{self, Outcome};
use conformance::report::{run_checks, table};
use conformance::spawn::Launcher;
use conformance::target::Target;

/// Which event log the server runs on.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Log {
    Memory,
    Redis,
}

async fn passes_the_contract(package: &str, log: Log) {
    let _turn = support::ONE_AT_A_TIME.lock().await;
    let binary = support::build(package, support::Target::Bin(package));
    let mut launcher = Launcher::new(binary);
    let redis = (log == Log::Redis)
        .then(|| redis_fixture::RedisServer::start().expect("redis-server starts"));
    if let Some(redis) = &redis {
        launcher = launcher.with_env("EVENT_LOG", &redis.url());
    }
    let package = &format!(
        "{package}{}",
        if log == Log::Redis {
            " (shared log)"
        } else {
            ""
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
    // With the suite's settings every check can run (those for a shared log, on it): a skip
    // here means a check was not proven.
    let may_skip: Vec<&str> = checks::all()
        .iter()
        .filter(|check| check.shared_log && log == Log::Memory)
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
                (Log::Memory, "on_the_memory_log"),
                (Log::Redis, "on_a_shared_redis_log"),
            ]
            .map(|(log, test)| {
                let name = format!("{}::{test}", framework.package.replace('-', "_"));
                libtest_mimic::Trial::test(name, move || {
                    support::runtime().block_on(passes_the_contract(framework.package, log));
                    Ok(())
                })
            })
        })
        .collect();
    libtest_mimic::run(&arguments, trials).exit_code()
}
