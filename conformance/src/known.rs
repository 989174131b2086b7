//! Rules of the contract a framework cannot meet, each with the reason found in its source and
//! what a user should do. A failure of that check, for that framework, with that problem is
//! reported as known, not as a failure; any other failure of the same check still fails. The
//! examples' tests also fail when a known limitation stops showing, so that this list never
//! outlives it.

use crate::checks::Outcome;

/// A check one framework cannot pass.
#[derive(Debug)]
pub struct Limitation {
    /// As its `/health` names it.
    pub framework: &'static str,
    pub check: &'static str,
    /// A phrase of the one failure it explains.
    pub problem: &'static str,
    pub why: &'static str,
}

pub const KNOWN: &[Limitation] = &[Limitation {
    framework: "actix-web",
    check: "h2-shutdown-goaway",
    problem: "closed without a GOAWAY",
    why: "actix-http's HTTP/2 dispatcher has no graceful shutdown (actix-http 3.19: its \
          graceful_shutdown_signal reaches the HTTP/1 dispatcher only), so at stop every \
          stream ends with END_STREAM but the connection is then dropped without a GOAWAY. \
          A client reconnects either way; one that must tell a shutdown from a network fault \
          should be served through a proxy that closes HTTP/2 gracefully (nginx, HAProxy).",
}];

/// The known limitation that explains this outcome of `check` for `framework`, if one does.
pub fn explaining(framework: &str, check: &str, outcome: &Outcome) -> Option<&'static Limitation> {
    let Outcome::Fail(failure) = outcome else {
        return None;
    };
    KNOWN.iter().find(|known| {
        known.framework == framework && known.check == check && failure.contains(known.problem)
    })
}

/// The known limitations of `framework`.
pub fn of(framework: &str) -> impl Iterator<Item = &'static Limitation> {
    KNOWN
        .iter()
        .filter(move |known| known.framework == framework)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_limitation_explains_only_its_own_failure() {
        let goaway = Outcome::Fail("the connection closed without a GOAWAY (RFC 9113)".into());
        assert!(explaining("actix-web", "h2-shutdown-goaway", &goaway).is_some());
        // Another framework, another check, another failure of the check, or a pass: not known.
        assert!(explaining("axum", "h2-shutdown-goaway", &goaway).is_none());
        assert!(explaining("actix-web", "h2-shutdown", &goaway).is_none());
        let other = Outcome::Fail("did not finish within 90 s".into());
        assert!(explaining("actix-web", "h2-shutdown-goaway", &other).is_none());
        assert!(explaining("actix-web", "h2-shutdown-goaway", &Outcome::Pass).is_none());
    }

    #[test]
    fn every_limitation_names_a_check_of_the_suite() {
        let names: Vec<&str> = crate::checks::all().iter().map(|c| c.name).collect();
        for known in KNOWN {
            assert!(names.contains(&known.check), "{known:?}");
        }
    }
}
