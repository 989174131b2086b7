//! The suite's verdict over many outcomes: every rule met, except the known limitations — which
//! must still fail, so that a fixed one is noticed and taken off the list.

use crate::faults::{Outcome, Scale};
use crate::known::{explaining, limitation};

pub struct Verdict {
    pub passed: usize,
    /// `framework scenario` of every failure that is not a known limitation.
    pub unexpected: Vec<String>,
    /// Known limitations that failed as expected.
    pub known: Vec<String>,
    /// Known limitations that passed: the list in `known.rs` is out of date.
    pub outdated: Vec<String>,
}

impl Verdict {
    pub fn of(outcomes: &[Outcome], scale: Scale) -> Self {
        let mut verdict = Self {
            passed: 0,
            unexpected: Vec::new(),
            known: Vec::new(),
            outdated: Vec::new(),
        };
        for outcome in outcomes {
            let name = format!("{} {}", outcome.framework, outcome.scenario);
            let known = limitation(&outcome.framework, &outcome.scenario, scale);
            if outcome.passed {
                match known {
                    Some(known) if known.always_at.contains(&scale) => verdict.outdated.push(name),
                    _ => verdict.passed += 1,
                }
            } else if explaining(outcome, scale).is_some() {
                verdict.known.push(name);
            } else {
                verdict.unexpected.push(name);
            }
        }
        verdict
    }

    pub fn passed(&self) -> bool {
        self.unexpected.is_empty() && self.outdated.is_empty()
    }

    pub fn describe(&self) -> String {
        let list = |names: &[String]| {
            if names.is_empty() {
                String::new()
            } else {
                format!(" ({})", names.join(", "))
            }
        };
        format!(
            "fault suite: {} passed, {} failed{}, {} known limitations{}{}",
            self.passed,
            self.unexpected.len(),
            list(&self.unexpected),
            self.known.len(),
            list(&self.known),
            if self.outdated.is_empty() {
                String::new()
            } else {
                format!(
                    "; known limitations that now pass (take them off load/src/known.rs):{}",
                    list(&self.outdated)
                )
            }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::known::tests::outcome;

    #[test]
    fn a_limitation_that_shows_always_must_fail_and_one_that_shows_sometimes_may_pass() {
        let passed = [
            outcome("rocket", "churn", &[]),
            outcome("rocket", "slowloris", &[]),
        ];
        let ci = Verdict::of(&passed, Scale::Ci);
        assert_eq!(
            (ci.passed, ci.outdated.as_slice()),
            (1, ["rocket slowloris".to_owned()].as_slice())
        );
        let full = Verdict::of(&passed, Scale::Full);
        assert_eq!(full.outdated.len(), 2);
        assert!(!full.passed());

        let rss = [outcome(
            "rocket",
            "churn",
            &["RSS grew 12.0 % (limit 10 %)"],
        )];
        assert!(Verdict::of(&rss, Scale::Ci).passed());
        assert_eq!(Verdict::of(&rss, Scale::Ci).known.len(), 1);
        let fds = [outcome(
            "rocket",
            "churn",
            &["RSS grew 12.0 %", "open fds 13 → 40"],
        )];
        assert_eq!(Verdict::of(&fds, Scale::Ci).unexpected, ["rocket churn"]);
    }
}
