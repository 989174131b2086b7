//! Many event-stream clients at once, each a task that checks every delivery it gets: ids
//! consecutive, no duplicate, the payload's timestamp turned into a latency.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use conformance::wire::BodyEnd;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use crate::stream::{Event, Progress, Stream, clock_ns};

/// What one client saw.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    /// The error that kept it from opening a stream (or the status other than 200).
    pub refused: Option<String>,
    pub status: u16,
    /// From the start of `connect` to the complete response head.
    pub time_to_head: Duration,
    pub first_id: Option<u64>,
    pub last_id: Option<u64>,
    pub received: u64,
    /// Ids skipped between consecutive events.
    pub missing: u64,
    /// Ids at or below one already seen.
    pub duplicates: u64,
    /// The data of every `gap` event.
    pub gaps: Vec<String>,
    /// Trigger-to-delivery latency of every timestamped event, in microseconds.
    pub latencies_us: Vec<u32>,
    /// How the stream ended, if the server ended it.
    pub end: Option<BodyEnd>,
}

impl Tally {
    pub fn record(&mut self, event: &Event<'_>, now_ns: u64) {
        let Some(id) = event.id else {
            if event.name == b"gap" {
                self.gaps
                    .push(String::from_utf8_lossy(event.data).into_owned());
            }
            return;
        };
        match self.last_id {
            Some(last) if id <= last => {
                self.duplicates += 1;
                return;
            }
            Some(last) => self.missing += id - last - 1,
            None => self.first_id = Some(id),
        }
        self.last_id = Some(id);
        self.received += 1;
        if let Some(sent) = stamp(event.data) {
            let micros = now_ns.saturating_sub(sent) / 1000;
            self.latencies_us
                .push(u32::try_from(micros).unwrap_or(u32::MAX));
        }
    }

    /// Whether it got exactly the ids `first..=last`, each once.
    pub fn got_exactly(&self, first: u64, last: u64) -> bool {
        self.refused.is_none()
            && self.first_id == Some(first)
            && self.last_id == Some(last)
            && self.missing == 0
            && self.duplicates == 0
    }

    pub fn describe(&self) -> String {
        format!(
            "status {} refused {:?}, ids {:?}..={:?}, {} received, {} missing, {} duplicates, end {:?}",
            self.status,
            self.refused,
            self.first_id,
            self.last_id,
            self.received,
            self.missing,
            self.duplicates,
            self.end
        )
    }
}

/// The payload the load publishes: `t=<clock_ns>;` padded with `x` to `size` bytes.
pub fn stamped_payload(size: usize) -> String {
    let mut payload = format!("t={};", clock_ns());
    let pad = size.saturating_sub(payload.len());
    payload.extend(std::iter::repeat_n('x', pad));
    payload
}

fn stamp(data: &[u8]) -> Option<u64> {
    let rest = data.strip_prefix(b"t=")?;
    let end = rest.iter().position(|&b| b == b';')?;
    std::str::from_utf8(&rest[..end]).ok()?.parse().ok()
}

/// How a fleet connects.
#[derive(Debug, Clone)]
pub struct Plan {
    pub clients: usize,
    /// Connects in flight at once.
    pub connect_concurrency: usize,
    /// Request target, e.g. `/events`.
    pub target: String,
    pub headers: Vec<(String, String)>,
    /// A small receive buffer, for clients that will stop reading.
    pub receive_buffer: Option<u32>,
    /// Clients that read nothing after the head (slow consumers).
    pub never_read: bool,
}

impl Plan {
    pub fn streams(clients: usize) -> Self {
        Self {
            clients,
            connect_concurrency: 128,
            target: "/events".to_owned(),
            headers: Vec::new(),
            receive_buffer: None,
            never_read: false,
        }
    }
}

/// How a fleet's clients leave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leave {
    /// Keep reading until the server ends each stream (or the wait runs out).
    AwaitEnd,
    /// Close each connection with a reset, as a client that vanishes does.
    Reset,
}

/// Running clients and what they have delivered so far.
pub struct Fleet {
    pub delivered: Arc<AtomicU64>,
    pub connected: Arc<AtomicU64>,
    pub heads: Arc<AtomicU64>,
    leave: watch::Sender<Option<Leave>>,
    tasks: JoinSet<Tally>,
    pub started: Instant,
}

impl Fleet {
    /// Starts the clients; they connect in the background (see [`Fleet::wait_connected`]).
    pub fn start(address: SocketAddr, plan: Plan) -> Self {
        let delivered = Arc::new(AtomicU64::new(0));
        let connected = Arc::new(AtomicU64::new(0));
        let heads = Arc::new(AtomicU64::new(0));
        let (leave, leave_rx) = watch::channel(None);
        let gate = Arc::new(Semaphore::new(plan.connect_concurrency.max(1)));
        let plan = Arc::new(plan);
        let mut tasks = JoinSet::new();
        for _ in 0..plan.clients {
            let plan = Arc::clone(&plan);
            let gate = Arc::clone(&gate);
            let delivered = Arc::clone(&delivered);
            let connected = Arc::clone(&connected);
            let heads = Arc::clone(&heads);
            let leave = leave_rx.clone();
            tasks.spawn(async move {
                let permit = gate.acquire_owned().await.expect("never closed");
                let began = Instant::now();
                let headers: Vec<(&str, &str)> = plan
                    .headers
                    .iter()
                    .map(|(n, v)| (n.as_str(), v.as_str()))
                    .collect();
                let opened = Stream::open(
                    address,
                    &plan.target,
                    &headers,
                    plan.receive_buffer,
                    Duration::from_secs(30),
                )
                .await;
                drop(permit);
                heads.fetch_add(1, Ordering::Relaxed);
                let mut tally = Tally::default();
                let stream = match opened {
                    Ok(stream) => stream,
                    Err(e) => {
                        tally.refused = Some(e);
                        return tally;
                    }
                };
                tally.status = stream.head.status;
                tally.time_to_head = began.elapsed();
                if tally.status != 200 {
                    tally.refused = Some(stream.head.describe());
                    return tally;
                }
                connected.fetch_add(1, Ordering::Relaxed);
                run_client(stream, &plan, &mut tally, &delivered, leave).await;
                tally
            });
        }
        Self {
            delivered,
            connected,
            heads,
            leave,
            tasks,
            started: Instant::now(),
        }
    }

    /// Waits until every client has its head (or its refusal); false when `timeout` ran out.
    pub async fn wait_heads(&self, total: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while self.heads.load(Ordering::Relaxed) < total as u64 {
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        true
    }

    /// Waits until the clients together have `count` deliveries; false when `timeout` ran out.
    pub async fn wait_delivered(&self, count: u64, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while self.delivered.load(Ordering::Relaxed) < count {
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        true
    }

    /// Tells every client to leave, then collects what each saw (at most `timeout`).
    pub async fn finish(mut self, leave: Leave, timeout: Duration) -> Vec<Tally> {
        let _ = self.leave.send(Some(leave));
        let mut tallies = Vec::new();
        let deadline = tokio::time::Instant::now() + timeout;
        while let Ok(Some(joined)) = tokio::time::timeout_at(deadline, self.tasks.join_next()).await
        {
            if let Ok(tally) = joined {
                tallies.push(tally);
            }
        }
        self.tasks.abort_all();
        tallies
    }
}

async fn run_client(
    mut stream: Stream,
    plan: &Plan,
    tally: &mut Tally,
    delivered: &AtomicU64,
    mut leave: watch::Receiver<Option<Leave>>,
) {
    if plan.never_read {
        let _ = leave.wait_for(Option::is_some).await;
    }
    loop {
        let left = *leave.borrow();
        if left == Some(Leave::Reset) {
            stream.abort();
            return;
        }
        let progress = tokio::select! {
            progress = stream.read(|event| {
                tally.record(event, clock_ns());
                if event.id.is_some() {
                    delivered.fetch_add(1, Ordering::Relaxed);
                }
            }) => progress,
            _ = leave.changed(), if left.is_none() => continue,
        };
        if let Progress::Ended(end) = progress {
            tally.end = Some(end);
            return;
        }
    }
}
