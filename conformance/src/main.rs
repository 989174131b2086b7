//! `conformance` — runs the contract's checks against running servers (by URL) or against
//! server binaries it starts itself, and prints a checks × servers table.
//!
//! `cargo run -p conformance -- http://127.0.0.1:3001`
//! `cargo run -p conformance -- --spawn target/debug/axum-example`
//! `cargo run -p conformance -- --tls --spawn target/debug/axum-example` (HTTPS, HTTP/2)
//! `cargo run -p conformance -- --ca-cert target/dev-cert/ca.pem https://127.0.0.1:3001`
//! `cargo run -p conformance -- --cluster http://127.0.0.1:3001 http://127.0.0.1:3002`
//! `cargo run -p conformance -- --spawn-cluster target/debug/axum-example target/debug/rocket-example`

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use conformance::checks::{self, Outcome};
use conformance::cluster;
use conformance::report::{ServerReport, run_checks, table};
use conformance::spawn::Launcher;
use conformance::target::Target;
use conformance::wire::Protocol;

#[derive(Parser)]
#[command(
    version,
    about = "Checks Server-Sent Events servers against the sse-examples contract (CONTRACT.md).",
    after_help = "Checks that a server's settings do not allow (as its /health reports them) are skipped with \
                  the reason. The process checks (shutdown, config errors, port in use) need --spawn. \
                  The cluster checks (contract section 7) run with --cluster (running instances on one \
                  shared log) or --spawn-cluster (instances the suite starts on a redis-server it starts, \
                  or on --redis); those that stop and restart instances need --spawn-cluster. \
                  Exit status: 0 when nothing failed, 1 when a check failed or a server could not be \
                  reached, 2 for bad arguments."
)]
struct Cli {
    /// Base URLs of running servers, e.g. http://127.0.0.1:3001 or https://127.0.0.1:3001
    urls: Vec<String>,
    /// Start this server binary (with PORT=0 and the suite's settings) and check it; repeatable
    #[arg(long, value_name = "BINARY")]
    spawn: Vec<PathBuf>,
    /// The certificate authority (PEM) to trust for https:// URLs, e.g. target/dev-cert/ca.pem
    #[arg(long, value_name = "FILE")]
    ca_cert: Option<PathBuf>,
    /// Start the --spawn servers with HTTPS, on a development certificate the suite makes
    #[arg(long)]
    tls: bool,
    /// Over HTTPS, speak HTTP/1.1 (ALPN http/1.1) instead of HTTP/2 (ALPN h2)
    #[arg(long)]
    http1: bool,
    /// Bearer token of servers that run with TRIGGER_TOKEN (for the URLs given)
    #[arg(long, env = "CONFORMANCE_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// The Access-Control-Allow-Origin the servers are configured with (for the URLs given)
    #[arg(long, default_value = "*")]
    origin: String,
    /// Base URLs of running instances of one cluster (the same EVENT_LOG and key): run the
    /// cluster checks against them
    #[arg(long, value_name = "URL", num_args = 2..)]
    cluster: Vec<String>,
    /// Start these server binaries as one cluster (each once, in this order; at least two) on
    /// a shared log and run the cluster checks; repeat a binary to run it twice
    #[arg(long, value_name = "BINARY", num_args = 2..)]
    spawn_cluster: Vec<PathBuf>,
    /// The shared log for --spawn-cluster, redis://HOST:PORT; without it the suite starts a
    /// redis-server of its own on a free port of 127.0.0.1 (Debian's redis-server package)
    #[arg(long, value_name = "URL")]
    redis: Option<String>,
    /// Run only the checks whose name contains this; repeatable
    #[arg(long, value_name = "NAME")]
    only: Vec<String>,
    /// List the checks and exit
    #[arg(long)]
    list: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.list {
        for check in checks::all() {
            println!("{:36} §{:4} {}", check.name, check.section, check.summary);
        }
        for check in cluster::all() {
            println!("{:36} §{:4} {}", check.name, check.section, check.summary);
        }
        return ExitCode::SUCCESS;
    }
    if cli.urls.is_empty()
        && cli.spawn.is_empty()
        && cli.cluster.is_empty()
        && cli.spawn_cluster.is_empty()
    {
        eprintln!(
            "conformance: give at least one server URL, --spawn BINARY, --cluster URL URL… or --spawn-cluster BINARY BINARY… (see --help)"
        );
        return ExitCode::from(2);
    }
    let protocol = if cli.http1 {
        Protocol::Http1
    } else {
        Protocol::Http2
    };
    let tls = cli.ca_cert.as_deref().map(|ca| (ca, protocol));
    let mut reports = Vec::new();
    for url in &cli.urls {
        let target = match Target::from_url(url, cli.token.clone(), cli.origin.clone(), tls) {
            Ok(target) => target,
            Err(error) => {
                eprintln!("conformance: {error}");
                return ExitCode::from(2);
            }
        };
        eprintln!("checking {url} …");
        reports.push(run_checks(url, target, &cli.only, print_progress).await);
    }
    for binary in &cli.spawn {
        let tls = cli.tls.then_some(protocol);
        reports.push(check_spawned(binary.clone(), tls, &cli.only).await);
    }
    if !cli.cluster.is_empty() {
        let mut targets = Vec::new();
        for url in &cli.cluster {
            match Target::from_url(url, cli.token.clone(), cli.origin.clone(), tls) {
                Ok(target) => targets.push(target),
                Err(error) => {
                    eprintln!("conformance: {error}");
                    return ExitCode::from(2);
                }
            }
        }
        eprintln!("checking the cluster {} …", cli.cluster.join(" "));
        let label = cli.cluster.join(" ");
        reports.push(
            cluster::run_cluster_checks(&label, targets, None, &cli.only, print_progress).await,
        );
    }
    if !cli.spawn_cluster.is_empty() {
        reports
            .push(check_spawned_cluster(&cli.spawn_cluster, cli.redis.as_deref(), &cli.only).await);
    }
    print!("{}", table(&reports));
    if reports.iter().all(ServerReport::passed) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

async fn check_spawned(binary: PathBuf, tls: Option<Protocol>, only: &[String]) -> ServerReport {
    let label = binary.display().to_string();
    let unreachable = |error: String| ServerReport::unreachable(&label, error);
    let launcher = match tls.map(|protocol| Launcher::new(binary.clone()).with_tls(protocol)) {
        None => Launcher::new(binary),
        Some(Ok(launcher)) => launcher,
        Some(Err(error)) => return unreachable(error),
    };
    eprintln!("starting {label} ({}) …", launcher.transport.describe());
    let mut server = match launcher.start(&[]).await {
        Ok(server) => server,
        Err(error) => return unreachable(error),
    };
    let target = Target::spawned(&server, launcher);
    let report = run_checks(&label, target, only, print_progress).await;
    server.stop(std::time::Duration::from_secs(3)).await;
    report
}

async fn check_spawned_cluster(
    binaries: &[PathBuf],
    redis: Option<&str>,
    only: &[String],
) -> ServerReport {
    let label = binaries
        .iter()
        .map(|b| b.display().to_string())
        .collect::<Vec<_>>()
        .join(" ");
    let unreachable = |error: String| ServerReport::unreachable(&label, error);
    let started_redis;
    let url = match redis {
        Some(url) => url.to_owned(),
        None => {
            eprintln!("starting redis-server …");
            started_redis = match redis_fixture::RedisServer::start() {
                Ok(redis) => redis,
                Err(error) => return unreachable(error),
            };
            started_redis.url()
        }
    };
    // A key of its own, so that a log in use by anything else is left alone.
    let key = format!("conformance-{}", std::process::id());
    let mut servers = Vec::new();
    let mut launchers = Vec::new();
    let mut targets = Vec::new();
    for binary in binaries {
        let launcher = Launcher::new(binary.clone())
            .with_env("EVENT_LOG", &url)
            .with_env("EVENT_LOG_KEY", &key);
        eprintln!("starting {} on {url} …", binary.display());
        let server = match launcher.start(&[]).await {
            Ok(server) => server,
            Err(error) => return unreachable(error),
        };
        targets.push(Target::spawned(&server, launcher.clone()));
        launchers.push(launcher);
        servers.push(server);
    }
    let report =
        cluster::run_cluster_checks(&label, targets, Some(launchers), only, print_progress).await;
    for server in &mut servers {
        server.stop(std::time::Duration::from_secs(3)).await;
    }
    report
}

fn print_progress(framework: &str, result: &conformance::report::CheckResult) {
    let known = conformance::known::explaining(framework, result.name, &result.outcome);
    let verdict = match &result.outcome {
        Outcome::Fail(why) if known.is_some() => format!("known limitation: {why}"),
        Outcome::Pass => "pass".to_owned(),
        Outcome::Skip(why) => format!("skipped ({why})"),
        Outcome::Fail(why) => format!("FAIL: {why}"),
    };
    eprintln!(
        "  [{framework}] {:36} {:>6.1} s  {verdict}",
        result.name,
        result.took.as_secs_f64()
    );
}
