//! The shared log (`EVENT_LOG=redis://…`): a Redis stream that every instance with the same URL
//! and `EVENT_LOG_KEY` appends to and follows, so that several processes — of any framework —
//! are one server (contract section 7).
//!
//! - Ids come from Redis: event N is stream entry `0-N`, given by `XADD … 0-*` in the same
//!   step that trims the stream to `REPLAY_CAPACITY` (`MAXLEN =`). No counter to keep in step.
//! - Everything that must be atomic is a function of one library (`functions.lua`, loaded
//!   with `FUNCTION LOAD REPLACE`): publish, publish with an idempotency key, the clock's lease,
//!   the fenced tick (checks the lease and publishes in one call), the floor after data loss,
//!   and the read for a replay (oldest id, newest id and entries in one snapshot).
//! - One reader per instance, on a connection of its own (a blocking read must not share a
//!   connection, nor be cut short by the default response timeout: redis-rs#851): `XREAD
//!   BLOCK` from the last id it saw, handing each entry to the fan-out in id order. A publisher
//!   gets its id from Redis, and its event reaches local clients through the reader, so every
//!   instance delivers the same order.
//! - Commands go through redis-rs's `ConnectionManager`, which reconnects by itself; while
//!   Redis cannot be reached they fail within [`COMMAND_TIMEOUT`] (a trigger gets 503), the
//!   reader retries, and open streams wait with their heartbeats, to continue where they were.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::{AsyncConnectionConfig, Client, Cmd, RedisError, Value};

use super::{AppendError, Appended, Held, IDEMPOTENCY_TTL, Idempotency, tick_time};
use crate::encode::EventName;
use crate::fanout::{Event, FanOut};

/// The function library, loaded by every instance at start.
const LIBRARY: &str = include_str!("functions.lua");

/// How long the clock's lease lasts without renewal: a holder that died (or is paused) is
/// replaced within this plus one [`LEASE_BEAT`], so ticks resume within `TICK_MS` + 3 s.
pub const LEASE_TTL: Duration = Duration::from_millis(2000);
/// How often every instance with ticks on takes or renews the lease: well inside its expiry.
pub const LEASE_BEAT: Duration = Duration::from_millis(500);
/// How long one command may take before the log counts as unreachable.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);
/// How long the reader's `XREAD` blocks when nothing is new.
const READ_BLOCK: Duration = Duration::from_secs(1);
/// At most this many entries per read.
const READ_COUNT: usize = 1000;
/// How long a process waits at start for the log to answer (the contract: 10 s).
pub const START_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a process could not start on the shared log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartError {
    /// Not reachable within [`START_TIMEOUT`]: the last error.
    Unreachable(String),
    /// The log was created with another `REPLAY_CAPACITY`.
    Capacity { log: usize, ours: usize },
}

/// The names of the keys, all under `EVENT_LOG_KEY`.
struct Keys {
    events: String,
    meta: String,
    recovering: String,
    lease: String,
    once: String,
}

pub struct RedisLog {
    client: Client,
    commands: ConnectionManager,
    keys: Keys,
    capacity: usize,
    instance: String,
    connected: AtomicBool,
    holds_clock: AtomicBool,
}

impl RedisLog {
    /// Connects (retrying for up to [`START_TIMEOUT`]), loads the function library, checks the
    /// log's `REPLAY_CAPACITY`, and returns the log with the newest id it has given.
    pub async fn connect(
        url: &str,
        key: &str,
        capacity: usize,
        instance: String,
    ) -> Result<(Self, u64), StartError> {
        let client = Client::open(url).map_err(|e| StartError::Unreachable(e.to_string()))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(COMMAND_TIMEOUT))
            .set_response_timeout(Some(COMMAND_TIMEOUT))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(500));
        let deadline = Instant::now() + START_TIMEOUT;
        let commands = loop {
            let attempt = async {
                let mut commands = client
                    .get_connection_manager_with_config(config.clone())
                    .await?;
                load_library(&mut commands).await?;
                Ok::<_, RedisError>(commands)
            };
            // No attempt runs past the deadline: the contract gives 10 s in all.
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left.min(COMMAND_TIMEOUT * 2), attempt).await {
                Ok(Ok(commands)) => break commands,
                Ok(Err(error)) if Instant::now() >= deadline => {
                    return Err(StartError::Unreachable(error.to_string()));
                }
                Err(_) if Instant::now() >= deadline => {
                    return Err(StartError::Unreachable("no answer".into()));
                }
                _ => tokio::time::sleep(Duration::from_millis(250)).await,
            }
        };
        let log = Self {
            client,
            commands,
            keys: Keys {
                events: format!("{key}:events"),
                meta: format!("{key}:meta"),
                recovering: format!("{key}:recovering"),
                lease: format!("{key}:lease"),
                once: format!("{key}:once:"),
            },
            capacity,
            instance,
            connected: AtomicBool::new(true),
            holds_clock: AtomicBool::new(false),
        };
        let mut init = fcall("sse_init", &[&log.keys.meta]);
        init.arg(capacity);
        let found: usize = log
            .run(&init)
            .await
            .map_err(|e| StartError::Unreachable(e.to_string()))?;
        if found != capacity {
            return Err(StartError::Capacity {
                log: found,
                ours: capacity,
            });
        }
        let newest = log
            .run::<u64>(&log.floor_cmd(0))
            .await
            .map_err(|e| StartError::Unreachable(e.to_string()))?;
        Ok((log, newest))
    }

    /// Starts the reader that hands every event after `from` to `fanout`, until shutdown.
    pub fn follow(self: &Arc<Self>, fanout: FanOut, from: u64) {
        let log = Arc::clone(self);
        tokio::spawn(async move { log.read_tail(fanout, from).await });
    }

    pub fn connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    pub(super) async fn append(
        &self,
        fanout: &FanOut,
        name: EventName,
        text: String,
        once: Option<Idempotency>,
    ) -> Result<Appended, AppendError> {
        let clients = fanout.clients();
        let floor = fanout.newest();
        let Some(once) = once else {
            let mut publish = fcall(
                "sse_publish",
                &[&self.keys.events, &self.keys.meta, &self.keys.recovering],
            );
            publish
                .arg(self.capacity)
                .arg(floor)
                .arg(name.as_str())
                .arg(text);
            let id = self.run::<u64>(&publish).await.map_err(unavailable)?;
            return Ok(Appended {
                id,
                clients,
                repeat: false,
            });
        };
        let once_key = format!("{}{}", self.keys.once, once.key);
        let mut publish = fcall(
            "sse_publish_once",
            &[
                &self.keys.events,
                &self.keys.meta,
                &self.keys.recovering,
                &once_key,
            ],
        );
        publish
            .arg(self.capacity)
            .arg(floor)
            .arg(name.as_str())
            .arg(text)
            .arg(&once.digest)
            .arg(clients)
            .arg(IDEMPOTENCY_TTL.as_millis() as u64);
        let answer: Vec<Value> = self.run(&publish).await.map_err(unavailable)?;
        match answer.as_slice() {
            [outcome, id, clients] if text_of(outcome).is_some_and(|o| o != "conflict") => {
                Ok(Appended {
                    id: number(id).ok_or_else(|| unavailable_text("bad id"))?,
                    clients: number(clients).ok_or_else(|| unavailable_text("bad count"))? as usize,
                    repeat: text_of(outcome).as_deref() == Some("repeat"),
                })
            }
            [outcome] if text_of(outcome).as_deref() == Some("conflict") => {
                Err(AppendError::Conflict)
            }
            other => Err(unavailable_text(&format!("unexpected answer {other:?}"))),
        }
    }

    pub(super) async fn tick(
        &self,
        fanout: &FanOut,
        at: SystemTime,
    ) -> Result<Option<u64>, AppendError> {
        let mut tick = fcall(
            "sse_tick",
            &[
                &self.keys.events,
                &self.keys.meta,
                &self.keys.recovering,
                &self.keys.lease,
            ],
        );
        tick.arg(self.capacity)
            .arg(fanout.newest())
            .arg(&self.instance)
            .arg(LEASE_TTL.as_millis() as u64)
            .arg(tick_time(at));
        let answer: Option<(u64, u64)> = self.run(&tick).await.map_err(unavailable)?;
        self.note_clock(answer.is_some());
        Ok(answer.map(|(id, _)| id))
    }

    pub(super) async fn keep_lease(&self) {
        let mut lease = fcall("sse_lease", &[&self.keys.lease]);
        lease.arg(&self.instance).arg(LEASE_TTL.as_millis() as u64);
        if let Ok(held) = self.run::<u8>(&lease).await {
            self.note_clock(held == 1);
        }
    }

    pub(super) async fn held_after(&self, n: u64) -> Result<Held, String> {
        let mut read = fcall("sse_held_after", &[&self.keys.events]);
        read.arg(n);
        let answer: Vec<Value> = self.run(&read).await.map_err(|e| e.to_string())?;
        let [oldest, newest, entries] = answer.as_slice() else {
            return Err(format!("unexpected answer {answer:?}"));
        };
        let Value::Array(entries) = entries else {
            return Err(format!("unexpected entries {entries:?}"));
        };
        Ok(Held {
            events: entries.iter().filter_map(entry).map(Arc::new).collect(),
            oldest: number(oldest),
            newest: number(newest).unwrap_or(0),
        })
    }

    fn floor_cmd(&self, floor: u64) -> Cmd {
        let mut cmd = fcall(
            "sse_floor",
            &[&self.keys.events, &self.keys.meta, &self.keys.recovering],
        );
        cmd.arg(floor).arg(self.capacity);
        cmd
    }

    /// Runs a command on the shared connection; a library that Redis lost (it came back empty)
    /// is loaded again and the command retried once.
    async fn run<T: redis::FromRedisValue>(&self, cmd: &Cmd) -> Result<T, RedisError> {
        let mut commands = self.commands.clone();
        let mut result = cmd.query_async(&mut commands).await;
        if let Err(error) = &result
            && is_missing_library(error)
        {
            tracing::warn!("the event log has lost its functions; loading them again");
            result = match load_library(&mut commands).await {
                Ok(()) => cmd.query_async(&mut commands).await,
                Err(error) => Err(error),
            };
        }
        match &result {
            Ok(_) => self.set_connected(true),
            Err(error) if is_outage(error) => self.set_connected(false),
            Err(_) => {}
        }
        result
    }

    fn set_connected(&self, now: bool) {
        if self.connected.swap(now, Ordering::Relaxed) != now {
            if now {
                tracing::info!("the event log is reachable again");
            } else {
                tracing::warn!(
                    "the event log cannot be reached; triggers get 503 until it is back"
                );
            }
        }
    }

    fn note_clock(&self, holds: bool) {
        if self.holds_clock.swap(holds, Ordering::Relaxed) != holds {
            if holds {
                tracing::info!(instance = %self.instance, "this instance now runs the tick clock");
            } else {
                tracing::info!("another instance runs the tick clock");
            }
        }
    }

    /// The reader: follows the stream from `last`, reconnecting (and raising the log's floor
    /// to what this instance saw) after every failure, until shutdown.
    async fn read_tail(&self, fanout: FanOut, mut last: u64) {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(COMMAND_TIMEOUT))
            .set_response_timeout(Some(READ_BLOCK + COMMAND_TIMEOUT));
        let stopped = fanout.stopped();
        tokio::pin!(stopped);
        loop {
            let failure = tokio::select! {
                () = &mut stopped => return,
                failure = self.read_until_failure(&config, &fanout, &mut last) => failure,
            };
            if is_outage(&failure) {
                self.set_connected(false);
            } else {
                tracing::warn!("reading the event log failed: {failure}");
            }
            tokio::select! {
                () = &mut stopped => return,
                () = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
        }
    }

    async fn read_until_failure(
        &self,
        config: &AsyncConnectionConfig,
        fanout: &FanOut,
        last: &mut u64,
    ) -> RedisError {
        let mut connection: MultiplexedConnection = match self
            .client
            .get_multiplexed_async_connection_with_config(config)
            .await
        {
            Ok(connection) => connection,
            Err(error) => return error,
        };
        // Redis may have come back without what this instance saw: no id may be given twice.
        let floor = self.floor_cmd(fanout.newest().max(*last));
        if let Err(error) = self.run::<u64>(&floor).await {
            return error;
        }
        self.set_connected(true);
        loop {
            let mut read = redis::cmd("XREAD");
            read.arg("BLOCK")
                .arg(READ_BLOCK.as_millis() as u64)
                .arg("COUNT")
                .arg(READ_COUNT)
                .arg("STREAMS")
                .arg(&self.keys.events)
                .arg(format!("0-{last}"));
            let reply: Value = match read.query_async(&mut connection).await {
                Ok(reply) => reply,
                Err(error) => return error,
            };
            self.set_connected(true);
            if matches!(reply, Value::Nil) {
                // Nothing new for a second: make sure the log has not lost what this instance
                // saw without the connection dropping (a flush, a failover behind a proxy).
                let floor = self.floor_cmd(fanout.newest().max(*last));
                if let Err(error) = self.run::<u64>(&floor).await {
                    return error;
                }
                continue;
            }
            for event in entries_of(reply) {
                let id = event.id().expect("log entries have ids");
                if id <= *last {
                    continue;
                }
                if id != *last + 1 {
                    // Trimmed away while this instance was behind, or the log lost data:
                    // this instance's streams missed events; they resume and get a gap.
                    tracing::warn!(after = *last, next = id, "events of the log were missed");
                    fanout.end_all();
                }
                *last = id;
                fanout.deliver(Arc::new(event));
                // A batch (catching up after a cut) goes out one event at a time with the
                // streams' tasks running in between, so that a client that reads is not cut
                // off merely because this reader handed it many events at once.
                tokio::task::yield_now().await;
            }
        }
    }
}

async fn load_library(commands: &mut ConnectionManager) -> Result<(), RedisError> {
    redis::cmd("FUNCTION")
        .arg("LOAD")
        .arg("REPLACE")
        .arg(LIBRARY)
        .query_async::<String>(commands)
        .await
        .map(drop)
}

fn fcall(function: &str, keys: &[&str]) -> Cmd {
    let mut cmd = redis::cmd("FCALL");
    cmd.arg(function).arg(keys.len());
    for key in keys {
        cmd.arg(*key);
    }
    cmd
}

fn is_missing_library(error: &RedisError) -> bool {
    error.to_string().contains("Function not found")
}

/// Whether an error means Redis cannot be reached (as opposed to a refused command): any I/O
/// error (a refusal, a reset, a time-out are I/O errors too), or one after which redis-rs
/// reconnects (a reply it could not parse).
fn is_outage(error: &RedisError) -> bool {
    error.is_io_error() || error.is_unrecoverable_error()
}

fn unavailable(error: RedisError) -> AppendError {
    AppendError::Unavailable(error.to_string())
}

fn unavailable_text(text: &str) -> AppendError {
    AppendError::Unavailable(text.to_owned())
}

fn text_of(value: &Value) -> Option<String> {
    match value {
        Value::BulkString(bytes) => String::from_utf8(bytes.clone()).ok(),
        Value::SimpleString(text) => Some(text.clone()),
        _ => None,
    }
}

fn number(value: &Value) -> Option<u64> {
    match value {
        Value::Int(n) => u64::try_from(*n).ok(),
        other => text_of(other)?.parse().ok(),
    }
}

/// The entries of an `XREAD` reply (one stream).
fn entries_of(reply: Value) -> Vec<Event> {
    let Value::Array(streams) = reply else {
        return Vec::new(); // nil: nothing new within the block time
    };
    streams
        .into_iter()
        .filter_map(|stream| match stream {
            Value::Array(mut pair) if pair.len() == 2 => match pair.pop() {
                Some(Value::Array(entries)) => Some(entries),
                _ => None,
            },
            _ => None,
        })
        .flatten()
        .filter_map(|entry| self::entry(&entry))
        .collect()
}

/// One stream entry `[0-N, [e, NAME, d, DATA]]` as an event with id N.
fn entry(value: &Value) -> Option<Event> {
    let Value::Array(parts) = value else {
        return None;
    };
    let [id, Value::Array(fields)] = parts.as_slice() else {
        return None;
    };
    let id: u64 = text_of(id)?.strip_prefix("0-")?.parse().ok()?;
    let (mut name, mut data) = (None, None);
    for pair in fields.chunks(2) {
        if let [field, value] = pair {
            match text_of(field).as_deref() {
                Some("e") => name = text_of(value),
                Some("d") => data = text_of(value),
                _ => {}
            }
        }
    }
    let name = EventName::from_log(name.as_deref().unwrap_or("message"));
    Some(Event::new(
        Some(id),
        name,
        crate::encode::normalize_line_breaks(&data.unwrap_or_default()),
    ))
}
