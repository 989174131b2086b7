//! Running the checks against a server, and the checks × servers table.

use std::time::{Duration, Instant};

use crate::checks::{self, Outcome};
use crate::target::{Ctx, Target};
use crate::wire::Transport;

/// Everything the suite found out about one server.
#[derive(Debug, Clone)]
pub struct ServerReport {
    /// How the server was named on the command line (its URL or binary).
    pub label: String,
    /// The `framework` it reports in `/health`.
    pub framework: Option<String>,
    /// How the suite spoke to it: the transport and what ALPN chose.
    pub transport: Option<String>,
    /// Why no check could run (the server did not answer `/health`).
    pub unreachable: Option<String>,
    pub results: Vec<CheckResult>,
}

#[derive(Debug, Clone)]
pub struct CheckResult {
    pub name: &'static str,
    pub outcome: Outcome,
    pub took: Duration,
}

impl ServerReport {
    /// A server no check could run against, and why.
    pub fn unreachable(label: &str, error: String) -> Self {
        Self {
            label: label.to_owned(),
            framework: None,
            transport: None,
            unreachable: Some(error),
            results: Vec::new(),
        }
    }

    /// The failures no known limitation explains.
    pub fn failures(&self) -> impl Iterator<Item = &CheckResult> {
        self.results
            .iter()
            .filter(|r| matches!(r.outcome, Outcome::Fail(_)) && self.known(r).is_none())
    }

    /// The known limitation that explains this result, if it is a failure one explains.
    pub fn known(&self, result: &CheckResult) -> Option<&'static crate::known::Limitation> {
        crate::known::explaining(self.framework.as_deref()?, result.name, &result.outcome)
    }

    pub fn passed(&self) -> bool {
        self.unreachable.is_none() && self.failures().next().is_none()
    }

    pub fn name(&self) -> &str {
        self.framework.as_deref().unwrap_or(&self.label)
    }
}

/// Whether a check is selected by `--only` patterns (none selects all).
pub fn selected(name: &str, only: &[String]) -> bool {
    only.is_empty() || only.iter().any(|pattern| name.contains(pattern.as_str()))
}

/// Runs every selected check, one after the other, reporting each as it ends.
pub async fn run_checks(
    label: &str,
    target: Target,
    only: &[String],
    mut progress: impl FnMut(&str, &CheckResult),
) -> ServerReport {
    let ctx = match Ctx::connect(target).await {
        Ok(ctx) => ctx,
        Err(error) => return ServerReport::unreachable(label, error),
    };
    let framework = ctx.health.framework.clone();
    let transport = match &ctx.negotiated {
        Some(chosen) => format!(
            "{}; the handshake chose {chosen}",
            ctx.target.transport.describe()
        ),
        None => ctx.target.transport.describe().to_owned(),
    };
    let mut results = Vec::new();
    for check in checks::all().into_iter().filter(|c| selected(c.name, only)) {
        let started = Instant::now();
        let outcome = match &ctx.target.transport {
            Transport::Tls(_) if check.own_tls_server => Outcome::Skip(
                "it starts HTTPS servers of its own: it runs when the suite speaks plain HTTP to the server".into(),
            ),
            _ => check.run(&ctx).await,
        };
        let result = CheckResult {
            name: check.name,
            outcome,
            took: started.elapsed(),
        };
        progress(&framework, &result);
        results.push(result);
    }
    ServerReport {
        label: label.to_owned(),
        framework: Some(framework),
        transport: Some(transport),
        unreachable: None,
        results,
    }
}

/// One cell of the table.
fn cell(outcome: Option<&Outcome>, known: bool) -> &'static str {
    match outcome {
        Some(Outcome::Fail(_)) if known => "known",
        Some(Outcome::Pass) => "pass",
        Some(Outcome::Fail(_)) => "FAIL",
        Some(Outcome::Skip(_)) => "skip",
        None => "-",
    }
}

/// The checks × servers table, then every failure and skip with its reason.
pub fn table(reports: &[ServerReport]) -> String {
    // Every check that ran, in the order it first ran (server checks, then cluster checks).
    let mut names: Vec<&str> = Vec::new();
    for result in reports.iter().flat_map(|r| &r.results) {
        if !names.contains(&result.name) {
            names.push(result.name);
        }
    }
    let first_width = names.iter().map(|n| n.len()).max().unwrap_or(5).max(5);
    let widths: Vec<usize> = reports.iter().map(|r| r.name().len().max(4)).collect();
    let mut out = format!("{:first_width$}", "check");
    for (report, width) in reports.iter().zip(&widths) {
        out.push_str(&format!("  {:width$}", report.name()));
    }
    out.push('\n');
    for name in &names {
        out.push_str(&format!("{name:first_width$}"));
        for (report, width) in reports.iter().zip(&widths) {
            let result = report.results.iter().find(|r| r.name == *name);
            let known = result.is_some_and(|r| report.known(r).is_some());
            out.push_str(&format!(
                "  {:width$}",
                cell(result.map(|r| &r.outcome), known)
            ));
        }
        out.push('\n');
    }
    let mut notes = String::new();
    for report in reports {
        if let Some(transport) = &report.transport {
            notes.push_str(&format!("{}: over {transport}\n", report.name()));
        }
        if let Some(error) = &report.unreachable {
            notes.push_str(&format!("{}: unreachable: {error}\n", report.label));
        }
        for result in &report.results {
            match &result.outcome {
                Outcome::Fail(_) if let Some(known) = report.known(result) => {
                    notes.push_str(&format!(
                        "{} / {}: known limitation: {}\n",
                        report.name(),
                        result.name,
                        known.why
                    ))
                }
                Outcome::Fail(why) => notes.push_str(&format!(
                    "{} / {}: FAIL: {why}\n",
                    report.name(),
                    result.name
                )),
                Outcome::Skip(why) => notes.push_str(&format!(
                    "{} / {}: skipped ({why})\n",
                    report.name(),
                    result.name
                )),
                Outcome::Pass => {}
            }
        }
    }
    if !notes.is_empty() {
        out.push('\n');
        out.push_str(&notes);
    }
    let passed: usize = reports
        .iter()
        .map(|r| {
            r.results
                .iter()
                .filter(|x| x.outcome == Outcome::Pass)
                .count()
        })
        .sum();
    let failed: usize = reports.iter().map(|r| r.failures().count()).sum::<usize>()
        + reports.iter().filter(|r| r.unreachable.is_some()).count();
    let skipped: usize = reports
        .iter()
        .map(|r| {
            r.results
                .iter()
                .filter(|x| matches!(x.outcome, Outcome::Skip(_)))
                .count()
        })
        .sum();
    let known: usize = reports
        .iter()
        .map(|r| r.results.iter().filter(|x| r.known(x).is_some()).count())
        .sum();
    out.push_str(&format!(
        "\nconformance: {passed} passed, {failed} failed, {known} known limitations, {skipped} skipped\n"
    ));
    out
}
