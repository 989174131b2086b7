//! The per-process fan-out: the open streams of this process, each with a bounded queue.
//!
//! The event log (see [`crate::log`]) hands it every event in id order — the memory log as it
//! appends, the shared log through its reader — and the fan-out passes each one to every
//! subscriber with a non-blocking `try_send` of an `Arc` to bytes encoded once. A subscriber
//! whose queue is full (more than `CLIENT_BUFFER` events behind) is cut off: its stream ends
//! after what is queued, and it resumes by replay. Nothing awaits while the lock is held.
//!
//! Replay and live events are joined by id, not by a lock: a stream registers its live queue
//! first, then reads the log after N, and drops every live event at or below the last id the
//! replay gave it ([`Subscription`]). Every event the log holds at registration is in the
//! replay; every event delivered after registration is in the queue; the overlap is dropped.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use futures_core::Stream;
use tokio::sync::mpsc;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use crate::encode::{EventName, encode_event};
use crate::metrics::{Metrics, Refusal};

/// An event as published: encoded once, shared by every client that receives it.
#[derive(Debug)]
pub struct Event {
    id: Option<u64>,
    name: EventName,
    text: String,
    wire: Bytes,
}

impl Event {
    pub(crate) fn new(id: Option<u64>, name: EventName, text: String) -> Self {
        let wire = encode_event(id, &name, &text);
        Self {
            id,
            name,
            text,
            wire,
        }
    }

    /// `None` only for `gap` events.
    pub fn id(&self) -> Option<u64> {
        self.id
    }

    pub fn name(&self) -> &str {
        self.name.as_str()
    }

    /// The payload as the client receives it (line breaks are `\n`).
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The complete event block in `text/event-stream` form, ready to write.
    pub fn wire(&self) -> &Bytes {
        &self.wire
    }
}

/// Why a stream could not be opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubscribeError {
    /// `MAX_CLIENTS` streams are open.
    Full {
        max_clients: usize,
    },
    ShuttingDown,
    /// The resume point needs the shared log, and it cannot be reached.
    LogUnavailable,
}

/// The open streams of this process. Cloning is cheap; all clones are the same fan-out.
#[derive(Clone)]
pub struct FanOut {
    shared: Arc<Shared>,
}

struct Shared {
    max_clients: usize,
    client_buffer: usize,
    state: Mutex<State>,
    /// The newest id this process has seen (delivered, or answered to a publisher).
    newest: AtomicU64,
    stopped: CancellationToken,
    metrics: Metrics,
}

/// One open stream as the fan-out sees it: its queue, and the last id its replay accounts for
/// (0 until the replay is known), so that events it already has are not queued again.
struct Subscriber {
    queue: mpsc::Sender<Arc<Event>>,
    through: Arc<AtomicU64>,
}

struct State {
    subscribers: HashMap<u64, Subscriber>,
    next_subscriber: u64,
    stopped: bool,
}

impl FanOut {
    pub fn new(max_clients: usize, client_buffer: usize) -> Self {
        assert!(client_buffer > 0);
        Self {
            shared: Arc::new(Shared {
                max_clients,
                client_buffer,
                state: Mutex::new(State {
                    subscribers: HashMap::new(),
                    next_subscriber: 0,
                    stopped: false,
                }),
                newest: AtomicU64::new(0),
                stopped: CancellationToken::new(),
                metrics: Metrics::new(),
            }),
        }
    }

    /// Hands the next event (in id order) to every open stream; returns how many were open.
    pub fn deliver(&self, event: Arc<Event>) -> usize {
        if let Some(id) = event.id() {
            self.saw(id);
        }
        let mut state = self.shared.lock();
        let clients = state.subscribers.len();
        let client_buffer = self.shared.client_buffer;
        let id = event.id().unwrap_or(u64::MAX);
        let mut delivered = 0;
        state.subscribers.retain(|subscriber, Subscriber { queue, through }| {
            if id <= through.load(Ordering::Relaxed) {
                return true; // its replay had it
            }
            match queue.try_send(Arc::clone(&event)) {
            Ok(()) => {
                delivered += 1;
                true
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                // Dropping the sender ends the stream once the client has taken what is
                // queued; it resumes from the replay buffer with Last-Event-ID.
                tracing::info!(
                    subscriber,
                    "client fell more than CLIENT_BUFFER={client_buffer} events behind; ending its stream"
                );
                self.shared.metrics.lagged();
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
            }
        });
        drop(state);
        self.shared.metrics.delivered(delivered);
        clients
    }

    /// Notes an id this process has seen (the answer to its own publication, say).
    pub fn saw(&self, id: u64) {
        self.shared.newest.fetch_max(id, Ordering::Relaxed);
    }

    /// The newest id this process has seen, 0 before the first.
    pub fn newest(&self) -> u64 {
        self.shared.newest.load(Ordering::Relaxed)
    }

    /// Registers a live queue for a new stream (`MAX_CLIENTS` permitting). Events delivered
    /// from now on are queued for it; read the replay only after this.
    pub fn register(&self) -> Result<Live, SubscribeError> {
        let mut state = self.shared.lock();
        if state.stopped {
            self.shared.metrics.refused(Refusal::ShuttingDown);
            return Err(SubscribeError::ShuttingDown);
        }
        let max_clients = self.shared.max_clients;
        if state.subscribers.len() >= max_clients {
            self.shared.metrics.refused(Refusal::MaxClients);
            return Err(SubscribeError::Full { max_clients });
        }
        let (queue, receiver) = mpsc::channel(self.shared.client_buffer);
        let through = Arc::new(AtomicU64::new(0));
        let key = state.next_subscriber;
        state.next_subscriber += 1;
        state.subscribers.insert(
            key,
            Subscriber {
                queue,
                through: Arc::clone(&through),
            },
        );
        Ok(Live {
            receiver,
            through,
            opened: Instant::now(),
            registration: Registration {
                shared: Arc::clone(&self.shared),
                key,
            },
        })
    }

    /// Open streams right now.
    pub fn clients(&self) -> usize {
        self.shared.lock().subscribers.len()
    }

    /// This process's metrics (`GET /metrics`).
    pub fn metrics(&self) -> &Metrics {
        &self.shared.metrics
    }

    /// Ends every open stream (each after what is queued for it) without shutting down: used
    /// when this process missed events, so that its clients resume by replay and learn of it.
    pub fn end_all(&self) {
        let ended = std::mem::take(&mut self.shared.lock().subscribers).len();
        tracing::warn!(
            streams = ended,
            "this instance missed events of the log; ending its streams so that they resume"
        );
    }

    /// Ends every open stream (each after what is queued for it), refuses new ones, and
    /// completes [`FanOut::stopped`].
    pub fn stop(&self) {
        let mut state = self.shared.lock();
        state.stopped = true;
        let ended = std::mem::take(&mut state.subscribers).len();
        drop(state);
        if !self.shared.stopped.is_cancelled() {
            tracing::info!(streams = ended, "shutting down: ending every event stream");
        }
        self.shared.stopped.cancel();
    }

    pub fn is_stopped(&self) -> bool {
        self.shared.stopped.is_cancelled()
    }

    /// Completes once [`FanOut::stop`] has been called.
    pub fn stopped(&self) -> WaitForCancellationFutureOwned {
        self.shared.stopped.clone().cancelled_owned()
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // The state stays consistent even if a holder panicked: every critical section
        // finishes its writes before anything that could panic.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A registered live queue, before its replay is known.
pub struct Live {
    receiver: mpsc::Receiver<Arc<Event>>,
    through: Arc<AtomicU64>,
    opened: Instant,
    registration: Registration,
}

impl Live {
    /// The stream: `replay` first, then the live events after `through` (the last id the
    /// replay accounts for), so that replay and live join with no gap and no duplicate.
    pub fn join(self, replay: Vec<Arc<Event>>, through: u64) -> Subscription {
        // From now on the fan-out does not queue what the replay has; what it queued before,
        // the stream drops as it reads.
        self.through.store(through, Ordering::Relaxed);
        self.registration.shared.metrics.delivered(replay.len());
        Subscription {
            replay: replay.into_iter(),
            live: self,
            through,
        }
    }
}

/// One open stream: the replay, then live events. Ends when the process shuts down or the
/// client fell more than `CLIENT_BUFFER` events behind. Dropping it leaves the client count.
pub struct Subscription {
    replay: std::vec::IntoIter<Arc<Event>>,
    live: Live,
    through: u64,
}

impl Stream for Subscription {
    type Item = Arc<Event>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if let Some(event) = self.replay.next() {
            return Poll::Ready(Some(event));
        }
        loop {
            match self.live.receiver.poll_recv(cx) {
                Poll::Ready(Some(event)) if event.id().is_some_and(|id| id <= self.through) => {}
                other => return other,
            }
        }
    }
}

/// A stream's lifetime is counted when it ends, however it ends.
impl Drop for Subscription {
    fn drop(&mut self) {
        let metrics = &self.live.registration.shared.metrics;
        metrics.stream_ended(self.live.opened.elapsed());
    }
}

/// Removes the subscriber when its stream is dropped (the client went away).
struct Registration {
    shared: Arc<Shared>,
    key: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.shared.lock().subscribers.remove(&self.key);
    }
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt;

    use super::*;

    fn event(id: u64) -> Arc<Event> {
        Arc::new(Event::new(Some(id), EventName::message(), id.to_string()))
    }

    async fn ids(subscription: &mut Subscription, count: usize) -> Vec<Option<u64>> {
        let mut ids = Vec::new();
        for _ in 0..count {
            ids.push(within!(subscription.next()).and_then(|e| e.id()));
        }
        ids
    }

    #[tokio::test]
    async fn deliver_answers_the_streams_open_and_queues_what_each_replay_lacks() {
        let fanout = FanOut::new(8, 8);
        assert_eq!(fanout.deliver(event(1)), 0);
        let mut fresh = fanout.register().unwrap().join(Vec::new(), 0);
        // This one's replay gave it 1 and 2: the fan-out queues neither again.
        let mut resumed = fanout.register().unwrap().join(vec![event(1), event(2)], 2);
        assert_eq!(fanout.deliver(event(2)), 2);
        assert_eq!(fanout.deliver(event(3)), 2);
        assert_eq!(ids(&mut fresh, 2).await, [Some(2), Some(3)]);
        assert_eq!(ids(&mut resumed, 3).await, [Some(1), Some(2), Some(3)]);
        // A gap event (no id) reaches everyone, whatever their replay held.
        let gap = Arc::new(Event::new(None, EventName::gap(), "{}".into()));
        assert_eq!(fanout.deliver(gap), 2);
        assert_eq!(ids(&mut resumed, 1).await, [None]);
    }

    #[tokio::test]
    async fn an_event_queued_before_the_replay_was_known_is_dropped_once_it_is() {
        let fanout = FanOut::new(8, 8);
        let live = fanout.register().unwrap();
        fanout.deliver(event(5));
        fanout.deliver(event(6));
        // The replay, read after registering, already had 5.
        let mut subscription = live.join(vec![event(4), event(5)], 5);
        assert_eq!(ids(&mut subscription, 3).await, [Some(4), Some(5), Some(6)]);
    }

    #[tokio::test]
    async fn end_all_ends_every_stream_after_its_queue_and_keeps_serving() {
        let fanout = FanOut::new(8, 8);
        let mut first = fanout.register().unwrap().join(Vec::new(), 0);
        fanout.deliver(event(1));
        fanout.end_all();
        assert_eq!(fanout.clients(), 0);
        assert_eq!(ids(&mut first, 1).await, [Some(1)]);
        assert!(within!(first.next()).is_none());
        assert!(!fanout.is_stopped());
        let mut again = fanout.register().unwrap().join(Vec::new(), 0);
        assert_eq!(fanout.deliver(event(2)), 1);
        assert_eq!(ids(&mut again, 1).await, [Some(2)]);
    }

    #[tokio::test]
    async fn shutdown_ends_every_stream_refuses_new_ones_and_completes_stopped() {
        let fanout = FanOut::new(8, 8);
        let mut open = fanout.register().unwrap().join(Vec::new(), 0);
        fanout.deliver(event(1));
        assert!(!fanout.is_stopped());
        fanout.stop();
        assert!(fanout.is_stopped());
        within!(fanout.stopped());
        assert_eq!(ids(&mut open, 1).await, [Some(1)]);
        assert!(within!(open.next()).is_none());
        assert_eq!(fanout.register().err(), Some(SubscribeError::ShuttingDown));
        // A second shutdown changes nothing.
        fanout.stop();
        assert!(fanout.is_stopped());
    }

    #[test]
    fn max_clients_refuses_the_one_more_and_a_freed_place_is_usable() {
        let fanout = FanOut::new(2, 8);
        let first = fanout.register().unwrap();
        let _second = fanout.register().unwrap();
        assert_eq!(
            fanout.register().err(),
            Some(SubscribeError::Full { max_clients: 2 })
        );
        drop(first);
        assert_eq!(fanout.clients(), 1);
        assert!(fanout.register().is_ok());
    }

    #[tokio::test]
    async fn a_client_more_than_client_buffer_behind_is_cut_off_others_go_on() {
        let fanout = FanOut::new(8, 2);
        let mut slow = fanout.register().unwrap().join(Vec::new(), 0);
        let mut fast = fanout.register().unwrap().join(Vec::new(), 0);
        for id in 1..=3 {
            fanout.deliver(event(id));
            assert_eq!(ids(&mut fast, 1).await, [Some(id)]);
        }
        // Two queued, the third did not fit: cut off after the two.
        assert_eq!(fanout.clients(), 1);
        assert_eq!(ids(&mut slow, 2).await, [Some(1), Some(2)]);
        assert!(within!(slow.next()).is_none());
    }
}
