//! `sse-load`: starts the example servers (release builds) as real processes on 127.0.0.1 and
//! puts them under load — the benchmarks of `scripts/bench.sh` and the fault-and-load suite of
//! `scripts/faults.sh` — checking every delivery while it measures.

pub mod bench;
pub mod charts;
pub mod faults;
pub use verdict::Verdict;
pub mod fleet;
pub mod known;
pub mod procfs;
pub mod publish;
pub mod report;
pub mod stats;
pub mod stream;
pub mod subject;
pub mod verdict;
