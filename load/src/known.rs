//! Rules of the fault suite a framework cannot meet, each with the reason found in its source
//! and what a user should do. A run expects exactly these to fail: one that starts passing is
//! reported too, so that this list never outlives the limitation.

use crate::faults::Scale;

/// A rule one framework cannot meet.
#[derive(Debug)]
pub struct Limitation {
    pub framework: &'static str,
    pub scenario: &'static str,
    /// `Some(scale)` when it shows only at that scale.
    pub at: Option<Scale>,
    pub why: &'static str,
}

pub const KNOWN: &[Limitation] = &[
    Limitation {
        framework: "rocket",
        scenario: "slowloris",
        at: None,
        why: "Rocket 0.5 builds hyper's connection with `header_read_timeout(None)` \
          (rocket-0.5.2/src/server.rs) and exposes neither that setting nor its listener, so a \
          client trickling its request head keeps the connection. Run Rocket behind a proxy that \
          times request heads (nginx `client_header_timeout`, HAProxy `timeout http-request`).",
    },
    Limitation {
        framework: "rocket",
        scenario: "churn",
        at: Some(Scale::Full),
        why: "Rocket's RSS grows well past 10 % over 50,000 cycles (the figures above) and then \
              levels off, while the other five servers stay within a few per cent. It is not a \
              leak: a heap profile shows the same heap peak after 7,000 and 54,000 cycles and \
              about 0.4 MB live at the end. Rocket notices a vanished client only at its next \
              write, so at 2,000 cycles/s and a 1 s heartbeat some 1,850 vanished streams of \
              ~29 KiB each are alive at any moment, and glibc's malloc keeps part of that memory \
              after it is freed; under jemalloc the scenario passes. A Rocket service with heavy \
              reconnect churn should keep HEARTBEAT_MS short and may run on jemalloc \
              (docs/rocket-churn-memory.md has the evidence).",
    },
];

/// The known limitation for this framework and scenario at this scale, if any.
pub fn limitation(framework: &str, scenario: &str, scale: Scale) -> Option<&'static Limitation> {
    KNOWN.iter().find(|l| {
        l.framework == framework && l.scenario == scenario && l.at.is_none_or(|at| at == scale)
    })
}
