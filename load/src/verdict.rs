//! The suite's verdict over many outcomes: every rule met, except the known limitations — which
//! must still fail, so that a fixed one is noticed and taken off the list.

use crate::faults::{Outcome, Scale};
use crate::known::limitation;

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
            match (
                outcome.passed,
                limitation(&outcome.framework, &outcome.scenario, scale),
            ) {
                (true, None) => verdict.passed += 1,
                (true, Some(_)) => verdict.outdated.push(name),
                (false, None) => verdict.unexpected.push(name),
                (false, Some(_)) => verdict.known.push(name),
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
