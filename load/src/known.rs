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
        why: "Over 50,000 cycles Rocket's RSS grows by about 30 % (55 → 73 MiB, some 330 bytes a \
              cycle; 3,000 cycles stay within 5 %), while the other five servers, on the same \
              sse-core, stay within 2 %. Rocket keeps every vanished client's response task and \
              channel until its next write (it notices a closed connection only then), so it \
              churns far more state per cycle; we did not find which allocation stays. Its \
              descriptors and client count do return to their baseline. A Rocket service with \
              heavy reconnect churn should keep HEARTBEAT_MS short and watch its memory.",
    },
];

/// The known limitation for this framework and scenario at this scale, if any.
pub fn limitation(framework: &str, scenario: &str, scale: Scale) -> Option<&'static Limitation> {
    KNOWN.iter().find(|l| {
        l.framework == framework && l.scenario == scenario && l.at.is_none_or(|at| at == scale)
    })
}
