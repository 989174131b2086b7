//! Many event-stream clients at once, each a task that checks every delivery it gets: ids
//! consecutive, no duplicate, the payload's timestamp turned into a latency.

use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use conformance::wire::{BodyEnd, Transport};
use h2::client::SendRequest;
use tokio::sync::{OnceCell, Semaphore, watch};
use tokio::task::JoinSet;

use crate::stream::{Event, Progress, Stream, clock_ns};
use crate::subject::Subject;

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

/// An HTTP/2 connection some of a fleet's streams share, made by the first of them.
type SharedConnection = OnceCell<Result<SendRequest<Bytes>, String>>;

/// Connects in flight at once while a fleet opens its streams.
const CONNECTS_IN_FLIGHT: usize = 128;

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
    pub heads: Arc<AtomicU64>,
    leave: watch::Sender<Option<Leave>>,
    tasks: JoinSet<Tally>,
}

impl Fleet {
    /// Starts `clients` streams (`GET /events`), each on a connection of its own; they connect
    /// in the background (see [`Fleet::wait_heads`]).
    pub fn start(address: SocketAddr, clients: usize) -> Self {
        Self::spawn(clients, |_| {
            Stream::open(address, "/events", &[], None, Duration::from_secs(30))
        })
    }

    /// Starts `clients` streams over HTTPS with HTTP/2 (`transport`), `per_connection` of them
    /// on each connection, as a browser puts its streams to one host on one connection.
    pub fn start_h2(
        address: SocketAddr,
        transport: &Transport,
        clients: usize,
        per_connection: usize,
    ) -> Result<Self, String> {
        let Transport::Tls(tls) = transport else {
            return Err("HTTP/2 needs a server started with TLS".into());
        };
        let connections: Vec<Arc<SharedConnection>> = (0..clients.div_ceil(per_connection.max(1)))
            .map(|_| Arc::new(OnceCell::new()))
            .collect();
        let config = Arc::clone(&tls.config);
        Ok(Self::spawn(clients, move |i| {
            let connection = Arc::clone(&connections[i / per_connection.max(1)]);
            let config = Arc::clone(&config);
            async move {
                // The connection's first stream makes it; the others wait for it.
                let send = connection
                    .get_or_init(|| async {
                        let mut builder = conformance::wire::h2::client();
                        // Windows as large as a browser's, so that flow control is not the
                        // limit being measured.
                        builder
                            .initial_window_size(1 << 20)
                            .initial_connection_window_size(16 << 20);
                        conformance::wire::h2::connect(address, config, &builder)
                            .await
                            .map(|(send, _driver)| send)
                    })
                    .await
                    .clone()?;
                Stream::open_h2(&send, address, "/events", Duration::from_secs(30)).await
            }
        }))
    }

    fn spawn<Opening>(clients: usize, open: impl Fn(usize) -> Opening) -> Self
    where
        Opening: std::future::Future<Output = Result<Stream, String>> + Send + 'static,
    {
        let delivered = Arc::new(AtomicU64::new(0));
        let heads = Arc::new(AtomicU64::new(0));
        let (leave, leave_rx) = watch::channel(None);
        let gate = Arc::new(Semaphore::new(CONNECTS_IN_FLIGHT));
        let mut tasks = JoinSet::new();
        for i in 0..clients {
            let gate = Arc::clone(&gate);
            let delivered = Arc::clone(&delivered);
            let heads = Arc::clone(&heads);
            let leave = leave_rx.clone();
            let opening = open(i);
            tasks.spawn(async move {
                let permit = gate.acquire_owned().await.expect("never closed");
                let began = Instant::now();
                let opened = opening.await;
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
                run_client(stream, &mut tally, &delivered, leave).await;
                tally
            });
        }
        Self {
            delivered,
            heads,
            leave,
            tasks,
        }
    }

    /// Starts `clients` streams against `subject` and waits until every head has arrived (at
    /// most `within`) and the server's `/health` counts exactly that many clients.
    pub async fn open(subject: &Subject, clients: usize, within: Duration) -> Result<Self, String> {
        let fleet = Self::start(subject.address, clients);
        fleet.wait_heads(clients, within).await;
        subject
            .wait_clients(Duration::from_secs(10), |n| n == clients as u64)
            .await
            .map_err(|n| format!("{n} of {clients} clients connected"))?;
        Ok(fleet)
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

/// Reads `stream` until the server ends it or the fleet is told to leave; with
/// [`Leave::AwaitEnd`], on until the server ends it.
async fn run_client(
    mut stream: Stream,
    tally: &mut Tally,
    delivered: &AtomicU64,
    mut leave: watch::Receiver<Option<Leave>>,
) {
    // One future for the whole life of the client: a new `changed()` on every read would take
    // the watch's lock each time, on the load generator's hot path.
    let mut told = pin!(async move {
        leave
            .wait_for(Option::is_some)
            .await
            .map_or(Leave::Reset, |leave| leave.unwrap_or(Leave::Reset))
    });
    let how = loop {
        tokio::select! {
            how = &mut told => break how,
            progress = read_counting(&mut stream, tally, delivered) => {
                if let Progress::Ended(end) = progress {
                    tally.end = Some(end);
                    return;
                }
            }
        }
    };
    if how == Leave::Reset {
        stream.abort();
        return;
    }
    loop {
        if let Progress::Ended(end) = read_counting(&mut stream, tally, delivered).await {
            tally.end = Some(end);
            return;
        }
    }
}

/// One read: every event into the tally, and the events with an id into the fleet's count
/// (one atomic add per read, not per event).
async fn read_counting(stream: &mut Stream, tally: &mut Tally, delivered: &AtomicU64) -> Progress {
    let mut with_id = 0;
    let progress = stream
        .read(|event| {
            tally.record(event, clock_ns());
            with_id += u64::from(event.id.is_some());
        })
        .await;
    if with_id > 0 {
        delivered.fetch_add(with_id, Ordering::Relaxed);
    }
    progress
}
