//! The fault-and-load suite at CI scale against every example server, started as real processes
//! on 127.0.0.1: every scenario must pass, except the known limitations in `known.rs`, which
//! must still fail. The full scale runs with `scripts/faults.sh`. One test per example of the
//! workspace (`axum_example`, …), read from `examples/*` when the tests run (libtest-mimic).

#[path = "../../conformance/tests/support/mod.rs"]
mod support;

use sse_load::faults::{FaultCtx, Scale, run};

async fn meets_the_fault_rules(package: &str) {
    let _turn = support::ONE_AT_A_TIME.lock().await;
    sse_load::procfs::raise_open_file_limit();
    let binary = support::build(package, support::Target::Bin(package));
    let ctx = FaultCtx::new(binary, Scale::Ci);
    let outcomes = run(&ctx, &[], &|line| eprintln!("  {line}")).await;
    let verdict = sse_load::Verdict::of(&outcomes, Scale::Ci);
    assert!(verdict.passed(), "{package}: {}", verdict.describe());
    eprintln!("{package}: {}", verdict.describe());
}

fn main() -> std::process::ExitCode {
    let arguments = libtest_mimic::Arguments::from_args();
    let trials = support::examples()
        .into_iter()
        .map(|framework| {
            let name = framework.package.replace('-', "_");
            libtest_mimic::Trial::test(name, move || {
                support::runtime().block_on(meets_the_fault_rules(framework.package));
                Ok(())
            })
        })
        .collect();
    libtest_mimic::run(&arguments, trials).exit_code()
}
