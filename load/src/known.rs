//! Rules of the fault suite a framework cannot meet, each with the reason found in its source
//! and what a user should do. A run expects exactly these to fail: one that starts passing is
//! reported too, so that this list never outlives the limitation.

/// A rule one framework cannot meet.
#[derive(Debug)]
pub struct Limitation {
    pub framework: &'static str,
    pub scenario: &'static str,
    pub why: &'static str,
}

pub const KNOWN: &[Limitation] = &[Limitation {
    framework: "rocket",
    scenario: "slowloris",
    why: "Rocket 0.5 builds hyper's connection with `header_read_timeout(None)` \
          (rocket-0.5.2/src/server.rs) and exposes neither that setting nor its listener, so a \
          client trickling its request head keeps the connection. Run Rocket behind a proxy that \
          times request heads (nginx `client_header_timeout`, HAProxy `timeout http-request`).",
}];

/// The known limitation for this framework and scenario, if any.
pub fn limitation(framework: &str, scenario: &str) -> Option<&'static Limitation> {
    KNOWN
        .iter()
        .find(|l| l.framework == framework && l.scenario == scenario)
}
