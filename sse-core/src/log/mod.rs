//! The event log: where events get their ids and live for replay (contract sections 3 and 7).
//!
//! - [`memory`]: this process alone (`EVENT_LOG=memory`, the default): a ring of the last
//!   `REPLAY_CAPACITY` events behind one mutex, handing each event to the fan-out as it
//!   appends it.
//! - [`redis`]: a Redis stream shared by every instance with the same URL and key
//!   (`EVENT_LOG=redis://…`): ids come from Redis, and one reader per instance follows the
//!   stream's tail and hands each event to the fan-out, so that every instance sees one order.
//!
//! Both answer the same four questions — append an event and get its id, read what is held
//! after N, publish a tick if this instance holds the clock, and whether the log is reachable —
//! and the replay policy is one pure function of what they answer ([`replay_plan`]).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::encode::EventName;
use crate::fanout::{Event, FanOut};

pub mod memory;
pub mod redis;

/// How long an `Idempotency-Key` is remembered (the contract: at least 10 minutes).
pub const IDEMPOTENCY_TTL: Duration = Duration::from_secs(600);

/// What a client resuming after N gets (contract section 3), from what the log holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayPlan {
    /// Every event after N is still held: send those.
    Complete,
    /// Events after N are gone, or N is newer than anything published: send a `gap` event,
    /// then everything held.
    Gap,
}

/// The replay policy: N against the oldest id held (None when nothing is) and the newest id
/// ever given. N = oldest − 1 is complete (nothing after it is missing); N above the newest
/// is a gap (the client saw ids this log never gave, or has lost).
pub fn replay_plan(n: u64, oldest: Option<u64>, newest: u64) -> ReplayPlan {
    let complete = n <= newest
        && match oldest {
            Some(oldest) => n.saturating_add(1) >= oldest,
            None => n == newest,
        };
    if complete {
        ReplayPlan::Complete
    } else {
        ReplayPlan::Gap
    }
}

/// What the log holds after a resume point: the events with id > N (all held events when N
/// is newer than the newest), the oldest id held and the newest id given.
#[derive(Debug, Clone, Default)]
pub struct Held {
    pub events: Vec<Arc<Event>>,
    pub oldest: Option<u64>,
    pub newest: u64,
}

/// An accepted publication.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    pub id: u64,
    /// Open streams of this instance at publication.
    pub clients: usize,
    /// An `Idempotency-Key` seen before: the first answer again, nothing published.
    pub repeat: bool,
}

/// A request's `Idempotency-Key` with a digest of its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Idempotency {
    pub key: String,
    /// SHA-256 of the body, hex.
    pub digest: String,
}

/// Why an append did not happen (or may not have).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppendError {
    /// The key was used with another body.
    Conflict,
    /// The log could not be reached; whether the event was stored is unknown.
    Unavailable(String),
    ShuttingDown,
}

/// The log this process runs with.
#[derive(Clone)]
pub enum EventLog {
    Memory(Arc<memory::MemoryLog>),
    Redis(Arc<redis::RedisLog>),
}

impl EventLog {
    /// `"memory"` or `"redis"`, as `/health` names it.
    pub fn backend(&self) -> &'static str {
        match self {
            Self::Memory(_) => "memory",
            Self::Redis(_) => "redis",
        }
    }

    /// Appends a custom event. With `once`, a key seen before with the same body answers the
    /// first answer again and appends nothing; with another body it is a conflict.
    pub async fn append(
        &self,
        fanout: &FanOut,
        name: EventName,
        text: String,
        once: Option<Idempotency>,
    ) -> Result<Appended, AppendError> {
        if fanout.is_stopped() {
            return Err(AppendError::ShuttingDown);
        }
        let appended = match self {
            Self::Memory(log) => log.append(fanout, name, text, once),
            Self::Redis(log) => log.append(fanout, name, text, once).await,
        }?;
        fanout.saw(appended.id);
        Ok(appended)
    }

    /// Publishes the next tick (`{"tick":K,"time":…}`) if this instance holds the clock;
    /// `None` when another instance does.
    pub async fn tick(&self, fanout: &FanOut, at: SystemTime) -> Result<Option<u64>, AppendError> {
        if fanout.is_stopped() {
            return Err(AppendError::ShuttingDown);
        }
        match self {
            Self::Memory(log) => Ok(Some(log.tick(fanout, at))),
            Self::Redis(log) => log.tick(fanout, at).await,
        }
    }

    /// What is held after `n`.
    pub async fn held_after(&self, n: u64) -> Result<Held, String> {
        match self {
            Self::Memory(log) => Ok(log.held_after(n)),
            Self::Redis(log) => log.held_after(n).await,
        }
    }

    /// Whether the log can be reached (always, for the memory log).
    pub fn connected(&self) -> bool {
        match self {
            Self::Memory(_) => true,
            Self::Redis(log) => log.connected(),
        }
    }

    /// How long the clock's beat is: the shared log's lease is renewed this often.
    pub fn lease_beat(&self) -> Option<Duration> {
        match self {
            Self::Memory(_) => None,
            Self::Redis(_) => Some(redis::LEASE_BEAT),
        }
    }

    /// Takes or renews the clock's lease (shared log only).
    pub async fn keep_lease(&self) {
        if let Self::Redis(log) = self {
            log.keep_lease().await;
        }
    }
}

/// `{"tick":K,"time":"YYYY-MM-DDTHH:MM:SS.mmmZ"}`.
pub fn tick_data(tick: u64, at: SystemTime) -> String {
    format!(r#"{{"tick":{tick},"time":"{}"}}"#, tick_time(at))
}

/// The `time` of a tick, UTC with milliseconds.
pub fn tick_time(at: SystemTime) -> String {
    humantime::format_rfc3339_millis(at).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_plan_at_its_edges() {
        use ReplayPlan::*;
        // Nothing published yet: 0 is up to date, anything else is newer than the log.
        assert_eq!(replay_plan(0, None, 0), Complete);
        assert_eq!(replay_plan(1, None, 0), Gap);
        // Held 4..=6: after 3 is complete (N = oldest − 1), after 2 is not.
        assert_eq!(replay_plan(3, Some(4), 6), Complete);
        assert_eq!(replay_plan(2, Some(4), 6), Gap);
        assert_eq!(replay_plan(6, Some(4), 6), Complete);
        assert_eq!(replay_plan(7, Some(4), 6), Gap);
        // A log that lost its events but kept (or was given) its newest id.
        assert_eq!(replay_plan(100, None, 100), Complete);
        assert_eq!(replay_plan(50, None, 100), Gap);
        assert_eq!(replay_plan(u64::MAX, Some(1), 5), Gap);
    }

    #[test]
    fn tick_data_has_the_contract_shape() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_millis(1_795_176_000_007);
        assert_eq!(
            tick_data(3, at),
            r#"{"tick":3,"time":"2026-11-20T12:00:00.007Z"}"#
        );
    }
}
