//! Starts every example server as a real process on a free port of 127.0.0.1 and runs the whole
//! suite against it. Adding a framework is one line in the list at the bottom.

mod support;

use conformance::checks::Outcome;
use conformance::report::{run_checks, table};
use conformance::spawn::Launcher;
use conformance::target::Target;

async fn passes_the_contract(package: &str) {
    let _turn = support::ONE_AT_A_TIME.lock().await;
    let binary = support::build(package, support::Target::Bin(package));
    let launcher = Launcher::new(binary);
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
    // With the suite's settings every check can run: a skip here means a check was not proven.
    let skipped: Vec<&str> = report
        .results
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::Skip(_)))
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

macro_rules! example {
    ($test:ident, $package:literal) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $test() {
            passes_the_contract($package).await;
        }
    };
}

example!(axum_example, "axum-example");
example!(actix_web_example, "actix-web-example");
example!(rocket_example, "rocket-example");
example!(poem_example, "poem-example");
example!(warp_example, "warp-example");
example!(salvo_example, "salvo-example");
