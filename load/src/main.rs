//! `sse-load --help`: benchmarks and the fault-and-load suite for the example servers.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use sse_load::{bench, charts, faults, report};

#[derive(Parser)]
#[command(
    version,
    about = "Load generator for the sse-examples servers: starts each server binary itself on \
             127.0.0.1, measures it through /proc and checks every delivery.",
    after_help = "Examples:\n  sse-load bench target/release/axum-example --size quick\n  \
                  sse-load faults --scale ci target/release/*-example\n  \
                  sse-load cluster target/release/axum-example\n\n\
                  scripts/bench.sh and scripts/faults.sh run all six servers and write docs/."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Benchmarks: idle streams and capacity, fan-out, churn; a fresh process per scenario.
    Bench {
        /// Server binaries to measure (release builds, e.g. target/release/axum-example).
        #[arg(required = true)]
        servers: Vec<PathBuf>,
        /// `full` for the published figures, `quick` to check the machinery in a minute.
        #[arg(long, value_enum, default_value = "full")]
        size: Size,
        /// Write every figure as JSON here.
        #[arg(long, value_name = "FILE")]
        json: Option<PathBuf>,
        /// Write the results tables (Markdown) here.
        #[arg(long, value_name = "FILE")]
        markdown: Option<PathBuf>,
        /// Write the SVG charts into this directory.
        #[arg(long, value_name = "DIR")]
        charts: Option<PathBuf>,
        /// Replace the part of this file between `<!-- bench:start -->` and
        /// `<!-- bench:end -->` with the headline table.
        #[arg(long, value_name = "FILE")]
        readme: Option<PathBuf>,
    },
    /// The fault-and-load suite: every scenario against every server, with a pass rule each.
    Faults {
        /// Server binaries to test.
        #[arg(required = true)]
        servers: Vec<PathBuf>,
        /// `full` at the sizes docs/faults.md reports, `ci` for the bounded run CI makes.
        #[arg(long, value_enum, default_value = "full")]
        scale: faults::Scale,
        /// Run only these scenarios (repeatable); `sse-load list` shows them.
        #[arg(long, value_name = "SCENARIO")]
        only: Vec<String>,
        /// Write the results (Markdown) here.
        #[arg(long, value_name = "FILE")]
        markdown: Option<PathBuf>,
        /// Write every outcome as JSON here.
        #[arg(long, value_name = "FILE")]
        json: Option<PathBuf>,
    },
    /// The shared event log's cost: instances × clients on one redis-server it starts, against
    /// one process on the memory log at the same rates.
    Cluster {
        /// Server binaries for the instances (cycled: one binary runs three times).
        #[arg(required = true)]
        servers: Vec<PathBuf>,
        /// `full` for the published figures, `quick` to check the machinery in a minute.
        #[arg(long, value_enum, default_value = "full")]
        size: Size,
        /// Write every figure as JSON here.
        #[arg(long, value_name = "FILE")]
        json: Option<PathBuf>,
        /// Write the results table (Markdown) here.
        #[arg(long, value_name = "FILE")]
        markdown: Option<PathBuf>,
    },
    /// Lists the fault scenarios and their rules.
    List,
}

#[derive(Clone, Copy, ValueEnum)]
enum Size {
    Full,
    Quick,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let limit = sse_load::procfs::raise_open_file_limit();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("the tokio runtime starts");
    // As typed, but for absolute paths (the binaries in the target directory), which say
    // nothing about another machine: their file names.
    let command_line = std::env::args()
        .map(|a| match a.strip_prefix('/') {
            Some(path) => path.rsplit('/').next().unwrap_or(path).to_owned(),
            None => a,
        })
        .collect::<Vec<_>>()
        .join(" ");
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Bench {
                servers,
                size,
                json,
                markdown,
                charts: chart_dir,
                readme,
            } => {
                let sizes = match size {
                    Size::Full => bench::Sizes::full(),
                    Size::Quick => bench::Sizes::quick(),
                };
                need_files(limit, sizes.capacity_streams)?;
                check_binaries(&servers)?;
                let mut all = Vec::new();
                let mut failed = false;
                for server in &servers {
                    let results = bench::run(server, &sizes, &log)
                        .await
                        .map_err(|e| format!("{}: {e}", server.display()))?;
                    for problem in results.problems() {
                        failed = true;
                        log(&format!("PROBLEM {}: {problem}", results.framework));
                    }
                    all.push(results);
                }
                if let Some(path) = json {
                    write(
                        &path,
                        &serde_json::to_string_pretty(&all).expect("figures serialize"),
                    )?;
                }
                if let Some(path) = markdown {
                    write(&path, &report::bench(&all, &sizes, &command_line))?;
                }
                if let Some(dir) = chart_dir {
                    for file in charts::bench(&all, &sizes, &dir)? {
                        log(&format!("wrote {}", dir.join(file).display()));
                    }
                }
                if let Some(path) = readme {
                    let text = std::fs::read_to_string(&path)
                        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                    let section = format!(
                        "{}\nMeasured on {} ({}); every figure: [docs/benchmarks/results.md](docs/benchmarks/results.md).\n",
                        report::headline(&all, &sizes),
                        report::today(),
                        report::machine()
                    );
                    let updated = report::replace_section(&text, &section)
                        .map_err(|e| format!("{}: {e}", path.display()))?;
                    write(&path, &updated)?;
                }
                Ok(!failed)
            }
            Command::Faults {
                servers,
                scale,
                only,
                markdown,
                json,
            } => {
                need_files(limit, faults::shutdown::streams(scale))?;
                check_binaries(&servers)?;
                if let Some(unknown) = only
                    .iter()
                    .find(|o| !faults::SCENARIOS.iter().any(|s| s.name == o.as_str()))
                {
                    return Err(format!(
                        "no scenario named {unknown:?} (see `sse-load list`)"
                    ));
                }
                let mut outcomes = Vec::new();
                for server in &servers {
                    let ctx = faults::FaultCtx::new(server.clone(), scale);
                    outcomes.extend(faults::run(&ctx, &only, &log).await);
                }
                let verdict = sse_load::Verdict::of(&outcomes, scale);
                log(&verdict.describe());
                if let Some(path) = json {
                    write(
                        &path,
                        &serde_json::to_string_pretty(&outcomes).expect("outcomes serialize"),
                    )?;
                }
                if let Some(path) = markdown {
                    write(&path, &report::faults(&outcomes, scale, &command_line))?;
                }
                Ok(verdict.passed())
            }
            Command::Cluster {
                servers,
                size,
                json,
                markdown,
            } => {
                let sizes = match size {
                    Size::Full => bench::cluster::ClusterSizes::full(),
                    Size::Quick => bench::cluster::ClusterSizes::quick(),
                };
                need_files(limit, sizes.most_streams())?;
                check_binaries(&servers)?;
                let figures = bench::cluster::run(&servers, &sizes, &log).await?;
                let failed = figures.rates.iter().any(|r| !r.problems.is_empty());
                if let Some(path) = json {
                    write(
                        &path,
                        &serde_json::to_string_pretty(&figures).expect("figures serialize"),
                    )?;
                }
                if let Some(path) = markdown {
                    let text = format!(
                        "# The shared event log under load\n\nGenerated by `{command_line}` on {} ({}).\n\n{}",
                        report::today(),
                        report::machine(),
                        bench::cluster::markdown(&figures)
                    );
                    write(&path, &text)?;
                }
                Ok(!failed)
            }
            Command::List => {
                for scenario in faults::SCENARIOS {
                    println!("{:20} {}", scenario.name, scenario.rule);
                }
                Ok(true)
            }
        }
    });
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("sse-load: {error}");
            ExitCode::from(2)
        }
    }
}

fn log(line: &str) {
    eprintln!("{line}");
}

fn need_files(limit: u64, streams: usize) -> Result<(), String> {
    let needed = streams as u64 + 100;
    if limit < needed {
        return Err(format!(
            "the open-file limit is {limit}; {streams} streams need at least {needed} (raise the hard limit: ulimit -Hn)"
        ));
    }
    Ok(())
}

fn check_binaries(servers: &[PathBuf]) -> Result<(), String> {
    match servers.iter().find(|s| !s.is_file()) {
        Some(missing) => Err(format!(
            "{} is not a file; build it first (cargo build --release -p <package>)",
            missing.display()
        )),
        None => Ok(()),
    }
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    log(&format!("wrote {}", path.display()));
    Ok(())
}
