//! Rules of the fault suite a framework cannot meet, each with the reason found in its source
//! and what a user should do. A run expects exactly these to fail: one that starts passing where
//! it always showed is reported too, so that this list never outlives the limitation. A
//! limitation explains one broken rule: a scenario that also breaks another is a failure.

use crate::faults::{Outcome, Scale};

/// A rule one framework cannot meet.
#[derive(Debug)]
pub struct Limitation {
    pub framework: &'static str,
    pub scenario: &'static str,
    /// A phrase of the one problem it explains (`Outcome::problems`).
    pub problem: &'static str,
    /// The scales at which it shows on every run: a pass there means it is gone.
    pub always_at: &'static [Scale],
    /// The scales at which it shows on some runs only (the figure sits near the rule's limit,
    /// on either side of it with the machine's load): a failure there is expected, a pass no news.
    pub sometimes_at: &'static [Scale],
    pub why: &'static str,
}

impl Limitation {
    /// Whether it can show at `scale` at all.
    pub fn applies_at(&self, scale: Scale) -> bool {
        self.always_at.contains(&scale) || self.sometimes_at.contains(&scale)
    }
}

pub const KNOWN: &[Limitation] = &[
    Limitation {
        framework: "rocket",
        scenario: "slowloris",
        problem: "trickling connections were still open",
        always_at: &[Scale::Ci, Scale::Full],
        sometimes_at: &[],
        why: "Rocket 0.5 builds hyper's connection with `header_read_timeout(None)` \
          (rocket-0.5.2/src/server.rs) and exposes neither that setting nor its listener, so a \
          client trickling its request head keeps the connection. Run Rocket behind a proxy that \
          times request heads (nginx `client_header_timeout`, HAProxy `timeout http-request`).",
    },
    Limitation {
        framework: "rocket",
        scenario: "churn",
        problem: "RSS grew",
        always_at: &[Scale::Full],
        sometimes_at: &[Scale::Ci],
        why: "Rocket's RSS grows well past 10 % over 50,000 cycles (the figures above) and then \
              levels off, while the other five servers stay within a few per cent. At CI scale \
              (3,000 cycles after the warm-up) it is still climbing and ends either side of 10 % \
              with the machine's load (+7 % to +21 % on one 2-core machine). It is not a \
              leak: a heap profile shows the same heap peak after 7,000 and 54,000 cycles and \
              about 0.4 MB live at the end. Rocket notices a vanished client only at its next \
              write, so at 2,000 cycles/s and a 1 s heartbeat some 1,850 vanished streams of \
              ~29 KiB each are alive at any moment, and glibc's malloc keeps part of that memory \
              after it is freed; under jemalloc the scenario passes. A Rocket service with heavy \
              reconnect churn should keep HEARTBEAT_MS short and may run on jemalloc \
              (docs/rocket-churn-memory.md has the evidence).",
    },
];

/// The known limitation that can show for this framework and scenario at this scale, if any.
pub fn limitation(framework: &str, scenario: &str, scale: Scale) -> Option<&'static Limitation> {
    KNOWN
        .iter()
        .find(|l| l.framework == framework && l.scenario == scenario && l.applies_at(scale))
}

/// The known limitation that explains this failed outcome: every problem it has is that one.
pub fn explaining(outcome: &Outcome, scale: Scale) -> Option<&'static Limitation> {
    limitation(&outcome.framework, &outcome.scenario, scale).filter(|l| {
        !outcome.passed
            && !outcome.problems.is_empty()
            && outcome.problems.iter().all(|p| p.contains(l.problem))
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An outcome of `scenario` for `framework`, failed with these problems (passed with none).
    pub(crate) fn outcome(framework: &str, scenario: &str, problems: &[&str]) -> Outcome {
        Outcome {
            scenario: scenario.into(),
            framework: framework.into(),
            passed: problems.is_empty(),
            summary: String::new(),
            figures: Vec::new(),
            problems: problems.iter().map(|p| p.to_string()).collect(),
            seconds: 0.0,
        }
    }

    #[test]
    fn a_limitation_explains_its_own_problem_only() {
        let rss = outcome("rocket", "churn", &["RSS grew 12.0 % (limit 10 %)"]);
        assert!(explaining(&rss, Scale::Full).is_some());
        assert!(explaining(&rss, Scale::Ci).is_some());
        let more = outcome(
            "rocket",
            "churn",
            &["RSS grew 12.0 % (limit 10 %)", "open fds 13 → 40"],
        );
        assert!(explaining(&more, Scale::Ci).is_none());
        assert!(explaining(&outcome("salvo", "churn", &["RSS grew 12.0 %"]), Scale::Ci).is_none());
        assert!(explaining(&outcome("rocket", "churn", &[]), Scale::Ci).is_none());
    }

    #[test]
    fn every_limitation_names_a_scale() {
        for known in KNOWN {
            assert!(
                !known.always_at.is_empty() || !known.sometimes_at.is_empty(),
                "{known:?}"
            );
            assert!(
                known
                    .always_at
                    .iter()
                    .all(|s| !known.sometimes_at.contains(s))
            );
        }
    }
}
