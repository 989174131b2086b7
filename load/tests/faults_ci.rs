//! The fault-and-load suite at CI scale against every example server, started as real processes
//! on 127.0.0.1: every scenario must pass, except the known limitations in `known.rs`, which
//! must still fail. The full scale runs with `scripts/faults.sh`.

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

macro_rules! example {
    ($test:ident, $package:literal) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $test() {
            meets_the_fault_rules($package).await;
        }
    };
}

example!(axum_example, "axum-example");
example!(actix_web_example, "actix-web-example");
example!(warp_example, "warp-example");
example!(rocket_example, "rocket-example");
example!(poem_example, "poem-example");
example!(salvo_example, "salvo-example");
