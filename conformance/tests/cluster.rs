//! The cluster checks (contract section 7) against real clusters: three example servers of
//! different frameworks on one redis-server the test starts, which must pass every check; and
//! for each check, a cluster of three broken servers with that check's rule broken, which must
//! fail it (with nothing broken, the same cluster passes them all).

mod support;

use conformance::checks::Outcome;
use conformance::cluster::{self, ClusterCtx};
use conformance::report::table;
use conformance::spawn::{Launcher, Server};
use conformance::target::Target;
use redis_fixture::RedisServer;

/// The frameworks of the example cluster: three different ones.
const MEMBERS: [&str; 3] = ["axum-example", "actix-web-example", "rocket-example"];

/// Starts one server per launcher on `redis` under `key`; returns them with their targets.
async fn start_cluster(
    launchers: Vec<Launcher>,
    redis: &RedisServer,
    key: &str,
) -> (Vec<Server>, Vec<Target>, Vec<Launcher>) {
    let mut servers = Vec::new();
    let mut targets = Vec::new();
    let mut on_log = Vec::new();
    for launcher in launchers {
        let launcher = launcher
            .with_env("EVENT_LOG", &redis.url())
            .with_env("EVENT_LOG_KEY", key);
        let server = launcher
            .start(&[])
            .await
            .unwrap_or_else(|e| panic!("{key}: {e}"));
        targets.push(Target::spawned(&server, launcher.clone()));
        on_log.push(launcher);
        servers.push(server);
    }
    (servers, targets, on_log)
}

async fn stop(servers: &mut [Server]) -> String {
    let mut output = String::new();
    for server in servers {
        server.stop(std::time::Duration::from_secs(3)).await;
        output.push_str(&server.output());
    }
    output
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_frameworks_on_one_log_pass_every_cluster_check() {
    let _turn = support::ONE_AT_A_TIME.lock().await;
    let launchers = MEMBERS
        .iter()
        .map(|package| Launcher::new(support::build(package, support::Target::Bin(package))))
        .collect();
    let redis = RedisServer::start().expect("redis-server starts");
    let (mut servers, targets, launchers) = start_cluster(launchers, &redis, "examples").await;
    let report = cluster::run_cluster_checks(
        "axum + actix-web + rocket",
        targets,
        Some(launchers),
        &[],
        |name, result| {
            eprintln!(
                "  [{name}] {:28} {:>5.1} s  {:?}",
                result.name,
                result.took.as_secs_f64(),
                result.outcome
            )
        },
    )
    .await;
    let output = stop(&mut servers).await;
    let all_passed = report.results.iter().all(|r| r.outcome == Outcome::Pass);
    assert!(
        report.passed() && all_passed && report.results.len() == cluster::all().len(),
        "{}\nserver output:\n{output}",
        table(std::slice::from_ref(&report))
    );
    eprintln!("{}", table(&[report]));
}

fn broken(rule: &str) -> Launcher {
    Launcher::new(support::build(
        "conformance",
        support::Target::Example("broken_server"),
    ))
    .with_env("BROKEN", rule)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_nothing_broken_a_cluster_of_broken_servers_passes() {
    let _turn = support::ONE_AT_A_TIME.lock().await;
    let redis = RedisServer::start().expect("redis-server starts");
    let launchers = (0..3).map(|_| broken("none")).collect();
    let (mut servers, targets, launchers) = start_cluster(launchers, &redis, "none").await;
    let report =
        cluster::run_cluster_checks("broken (none)", targets, Some(launchers), &[], |_, _| {})
            .await;
    let output = stop(&mut servers).await;
    let all_passed = report.results.iter().all(|r| r.outcome == Outcome::Pass);
    assert!(
        report.passed() && all_passed,
        "{}\n{output}",
        table(&[report])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_cluster_check_fails_against_a_cluster_that_breaks_its_rule() {
    let _turn = support::ONE_AT_A_TIME.lock().await;
    let redis = RedisServer::start().expect("redis-server starts");
    let mut undetected = Vec::new();
    for check in cluster::all() {
        let launchers = (0..3).map(|_| broken(check.name)).collect();
        // Each proof on a log of its own.
        let (mut servers, targets, launchers) = start_cluster(launchers, &redis, check.name).await;
        let ctx = ClusterCtx::connect(targets, Some(launchers))
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "BROKEN={}: the cluster checks cannot begin: {e}",
                    check.name
                )
            });
        let outcome = check.run(&ctx).await;
        stop(&mut servers).await;
        match &outcome {
            Outcome::Fail(why) => eprintln!(
                "  {:28} fails as it should: {}",
                check.name,
                why.chars().take(140).collect::<String>()
            ),
            other => {
                eprintln!("  {:28} did NOT fail: {other:?}", check.name);
                undetected.push(check.name);
            }
        }
    }
    assert!(
        undetected.is_empty(),
        "cluster checks that did not notice their rule broken: {undetected:?}"
    );
}
