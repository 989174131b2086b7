//! `conformance` — runs the contract's checks against running servers (by URL) or against
//! server binaries it starts itself, and prints a checks × servers table.
//!
//! `cargo run -p conformance -- http://127.0.0.1:3001`
//! `cargo run -p conformance -- --spawn target/debug/axum-example`

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use conformance::checks::{self, Outcome};
use conformance::report::{ServerReport, run_checks, table};
use conformance::spawn::Launcher;
use conformance::target::Target;

#[derive(Parser)]
#[command(
    version,
    about = "Checks Server-Sent Events servers against the sse-examples contract (CONTRACT.md).",
    after_help = "Checks that a server's settings do not allow (as its /health reports them) are skipped with \
                  the reason. The process checks (shutdown, config errors, port in use) need --spawn. \
                  Exit status: 0 when nothing failed, 1 when a check failed or a server could not be \
                  reached, 2 for bad arguments."
)]
struct Cli {
    /// Base URLs of running servers, e.g. http://127.0.0.1:3001
    urls: Vec<String>,
    /// Start this server binary (with PORT=0 and the suite's settings) and check it; repeatable
    #[arg(long, value_name = "BINARY")]
    spawn: Vec<PathBuf>,
    /// Bearer token of servers that run with TRIGGER_TOKEN (for the URLs given)
    #[arg(long, env = "CONFORMANCE_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// The Access-Control-Allow-Origin the servers are configured with (for the URLs given)
    #[arg(long, default_value = "*")]
    origin: String,
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
        return ExitCode::SUCCESS;
    }
    if cli.urls.is_empty() && cli.spawn.is_empty() {
        eprintln!("conformance: give at least one server URL or --spawn BINARY (see --help)");
        return ExitCode::from(2);
    }
    let mut reports = Vec::new();
    for url in &cli.urls {
        let target = match Target::from_url(url, cli.token.clone(), cli.origin.clone()) {
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
        reports.push(check_spawned(binary.clone(), &cli.only).await);
    }
    print!("{}", table(&reports));
    if reports.iter().all(ServerReport::passed) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

async fn check_spawned(binary: PathBuf, only: &[String]) -> ServerReport {
    let label = binary.display().to_string();
    let launcher = Launcher::new(binary);
    eprintln!("starting {label} …");
    let mut server = match launcher.start(&[]).await {
        Ok(server) => server,
        Err(error) => {
            return ServerReport {
                label,
                framework: None,
                unreachable: Some(error),
                results: Vec::new(),
            };
        }
    };
    let target = Target::spawned(&server, launcher);
    let report = run_checks(&label, target, only, print_progress).await;
    server.stop(std::time::Duration::from_secs(3)).await;
    report
}

fn print_progress(framework: &str, result: &conformance::report::CheckResult) {
    let verdict = match &result.outcome {
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
