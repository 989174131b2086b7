//! The sse-examples conformance suite.
//!
//! - [`parser`]: a strict `text/event-stream` parser that follows the WHATWG standard to the
//!   letter and keeps the raw lines, so that checks can judge the wire itself;
//! - [`wire`]: the raw wire for the checks that must see exact bytes: an HTTP/1.1 client (plain
//!   or over TLS) and one HTTP/2 request per connection, read alike;
//! - [`checks`]: one named check per rule of the contract (`CONTRACT.md`);
//! - [`exposition`]: a strict reader of the Prometheus text format, for `GET /metrics`;
//! - [`cluster`]: the checks for several instances on one shared event log (section 7);
//! - [`target`]: the server under test and the requests most checks make;
//! - [`tls`]: the suite's TLS client (a CA of its choice, ALPN as a check asks);
//! - [`spawn`]: starting server binaries as real processes, and stopping them by PID;
//! - [`hostile`]: hostile input for property tests, and the contract's rules it is judged by;
//! - [`known`]: the checks a framework cannot pass, and why;
//! - [`report`]: running the checks and printing the checks × servers table.

pub mod checks;
pub mod cluster;
pub mod exposition;
pub mod hostile;
pub mod known;
pub mod parser;
pub mod proxy;
pub mod report;
pub mod spawn;
pub mod target;
pub mod tls;
pub mod wire;
