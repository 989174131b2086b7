//! The event hub: assigns ids, keeps the replay buffer, and fans events out to subscribers.
//!
//! One mutex guards the id counter, the replay buffer and the subscriber table, so that
//! publishing (assign id, buffer, hand to every subscriber) and subscribing (copy the replay,
//! register for live events) are each atomic with respect to the other: a resuming client gets
//! exactly N+1, N+2, … with no gap and no duplicate, however many publishers race it. Nothing
//! awaits while the lock is held; handing an event to a subscriber is a non-blocking
//! `try_send` of an `Arc` to bytes encoded once.
//!
//! The interface (`publish`, `subscribe`, `clients`, `last_id`, `shutdown`) is async and free of
//! framework types so that a second backend (a shared pub/sub store) can stand behind it.

use std::collections::{HashMap, VecDeque};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_core::Stream;
use tokio::sync::mpsc;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use crate::encode::{EventName, encode_event};

/// An event as published: encoded once, shared by every client that receives it.
#[derive(Debug)]
pub struct Event {
    id: Option<u64>,
    name: EventName,
    text: String,
    wire: Bytes,
}

impl Event {
    fn new(id: Option<u64>, name: EventName, text: String) -> Self {
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

/// The hub's size limits (from `REPLAY_CAPACITY`, `MAX_CLIENTS`, `CLIENT_BUFFER`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HubLimits {
    pub replay_capacity: usize,
    pub max_clients: usize,
    pub client_buffer: usize,
}

/// What a publication reports back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Published {
    pub id: u64,
    /// Open streams at the moment of publication.
    pub clients: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscribeError {
    /// `MAX_CLIENTS` streams are open.
    Full {
        max_clients: usize,
    },
    ShuttingDown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShuttingDown;

/// The shared event hub. Cloning is cheap; all clones are the same hub.
#[derive(Clone)]
pub struct Hub {
    shared: Arc<Shared>,
}

struct Shared {
    limits: HubLimits,
    state: Mutex<State>,
    shutdown: CancellationToken,
}

struct State {
    last_id: u64,
    /// The last `replay_capacity` events, oldest first, ids consecutive.
    replay: VecDeque<Arc<Event>>,
    subscribers: HashMap<u64, mpsc::Sender<Arc<Event>>>,
    next_subscriber: u64,
    shut_down: bool,
}

impl Hub {
    pub fn new(limits: HubLimits) -> Self {
        assert!(limits.replay_capacity > 0 && limits.client_buffer > 0);
        Self {
            shared: Arc::new(Shared {
                limits,
                state: Mutex::new(State {
                    last_id: 0,
                    replay: VecDeque::with_capacity(limits.replay_capacity.min(4096)),
                    subscribers: HashMap::new(),
                    next_subscriber: 0,
                    shut_down: false,
                }),
                shutdown: CancellationToken::new(),
            }),
        }
    }

    pub fn limits(&self) -> HubLimits {
        self.shared.limits
    }

    /// Publishes an event with the next id to every open stream. `text` is the payload as
    /// clients receive it (see [`crate::payload_text`]).
    pub async fn publish(&self, name: EventName, text: String) -> Result<Published, ShuttingDown> {
        self.publish_now(name, text)
    }

    fn publish_now(&self, name: EventName, text: String) -> Result<Published, ShuttingDown> {
        let mut state = self.shared.lock();
        if state.shut_down {
            return Err(ShuttingDown);
        }
        let id = state.last_id + 1;
        state.last_id = id;
        let event = Arc::new(Event::new(Some(id), name, text));
        if state.replay.len() == self.shared.limits.replay_capacity {
            state.replay.pop_front();
        }
        state.replay.push_back(Arc::clone(&event));

        let clients = state.subscribers.len();
        let client_buffer = self.shared.limits.client_buffer;
        state.subscribers.retain(|subscriber, sender| match sender.try_send(Arc::clone(&event)) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                // Dropping the sender ends the stream once the client has taken what is
                // queued; it resumes from the replay buffer with Last-Event-ID.
                tracing::info!(
                    subscriber,
                    "client fell more than CLIENT_BUFFER={client_buffer} events behind; ending its stream"
                );
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        });
        Ok(Published { id, clients })
    }

    /// Opens a stream. With `last_event_id` = N, the stream first yields every buffered event
    /// after N (preceded by a `gap` event when events after N are no longer buffered, or N is
    /// newer than anything published), then live events, with no gap or duplicate between.
    pub async fn subscribe(
        &self,
        last_event_id: Option<u64>,
    ) -> Result<Subscription, SubscribeError> {
        let mut state = self.shared.lock();
        if state.shut_down {
            return Err(SubscribeError::ShuttingDown);
        }
        let max_clients = self.shared.limits.max_clients;
        if state.subscribers.len() >= max_clients {
            return Err(SubscribeError::Full { max_clients });
        }
        let replay = match last_event_id {
            Some(n) => replay_after(&state, n),
            None => Vec::new(),
        };
        let (sender, receiver) = mpsc::channel(self.shared.limits.client_buffer);
        let key = state.next_subscriber;
        state.next_subscriber += 1;
        state.subscribers.insert(key, sender);
        drop(state);
        Ok(Subscription {
            replay: replay.into_iter(),
            live: receiver,
            _registration: Registration {
                shared: Arc::clone(&self.shared),
                key,
            },
        })
    }

    /// Open streams right now.
    pub async fn clients(&self) -> usize {
        self.shared.lock().subscribers.len()
    }

    /// The id of the newest event, 0 before the first.
    pub async fn last_id(&self) -> u64 {
        self.shared.lock().last_id
    }

    /// Ends every open stream (each ends after what is already queued for it), refuses new
    /// subscriptions and publications, and wakes everyone waiting on [`Hub::shut_down`].
    pub fn shutdown(&self) {
        let mut state = self.shared.lock();
        state.shut_down = true;
        let ended = state.subscribers.len();
        state.subscribers.clear();
        drop(state);
        if !self.shared.shutdown.is_cancelled() {
            tracing::info!(streams = ended, "shutting down: ending every event stream");
        }
        self.shared.shutdown.cancel();
    }

    /// Completes once [`Hub::shutdown`] has been called.
    pub fn shut_down(&self) -> WaitForCancellationFutureOwned {
        self.shared.shutdown.clone().cancelled_owned()
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

/// The replay for a client that last saw `n` (contract section 3).
fn replay_after(state: &State, n: u64) -> Vec<Arc<Event>> {
    let oldest = state.replay.front().and_then(|event| event.id());
    let complete = n <= state.last_id && oldest.is_none_or(|oldest| n + 1 >= oldest);
    if complete {
        let skip = oldest.map_or(0, |oldest| (n + 1).saturating_sub(oldest) as usize);
        return state.replay.iter().skip(skip).cloned().collect();
    }
    let gap = serde_json::json!({ "last_event_id": n, "oldest_id": oldest }).to_string();
    let mut replay = Vec::with_capacity(state.replay.len() + 1);
    replay.push(Arc::new(Event::new(None, EventName::gap(), gap)));
    replay.extend(state.replay.iter().cloned());
    replay
}

/// One open stream: the replay, then live events. Ends when the hub shuts down or when the
/// client fell more than `CLIENT_BUFFER` events behind. Dropping it leaves the client count.
pub struct Subscription {
    replay: std::vec::IntoIter<Arc<Event>>,
    live: mpsc::Receiver<Arc<Event>>,
    _registration: Registration,
}

impl Stream for Subscription {
    type Item = Arc<Event>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if let Some(event) = self.replay.next() {
            return Poll::Ready(Some(event));
        }
        self.live.poll_recv(cx)
    }
}

/// Removes the subscriber from the hub when its stream is dropped (the client went away).
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
    use super::*;
    use futures_util::StreamExt;
    use std::time::Duration;

    fn hub(replay_capacity: usize, max_clients: usize, client_buffer: usize) -> Hub {
        Hub::new(HubLimits {
            replay_capacity,
            max_clients,
            client_buffer,
        })
    }

    async fn publish(hub: &Hub, text: &str) -> Published {
        hub.publish(EventName::message(), text.to_owned())
            .await
            .unwrap()
    }

    /// Everything the stream yields without waiting.
    fn ready(sub: &mut Subscription) -> Vec<(Option<u64>, String, String)> {
        let mut out = Vec::new();
        while let Some(Some(event)) = sub.next().now_or_never() {
            out.push((event.id(), event.name().to_owned(), event.text().to_owned()));
        }
        out
    }

    fn ids(events: &[(Option<u64>, String, String)]) -> Vec<Option<u64>> {
        events.iter().map(|e| e.0).collect()
    }

    use futures_util::FutureExt;

    #[tokio::test]
    async fn ids_start_at_one_and_have_no_gap() {
        let hub = hub(8, 10, 8);
        assert_eq!(hub.last_id().await, 0);
        for expected in 1..=5 {
            assert_eq!(publish(&hub, "x").await.id, expected);
        }
        assert_eq!(hub.last_id().await, 5);
    }

    #[tokio::test]
    async fn live_events_reach_every_subscriber() {
        let hub = hub(8, 10, 8);
        let mut a = hub.subscribe(None).await.unwrap();
        let mut b = hub.subscribe(None).await.unwrap();
        assert_eq!(
            publish(&hub, "hello").await,
            Published { id: 1, clients: 2 }
        );
        for sub in [&mut a, &mut b] {
            assert_eq!(
                ready(sub),
                vec![(Some(1), "message".into(), "hello".into())]
            );
        }
    }

    #[tokio::test]
    async fn replay_sends_everything_after_n() {
        let hub = hub(8, 10, 8);
        for _ in 0..5 {
            publish(&hub, "x").await;
        }
        let mut sub = hub.subscribe(Some(2)).await.unwrap();
        publish(&hub, "live").await;
        assert_eq!(
            ids(&ready(&mut sub)),
            vec![Some(3), Some(4), Some(5), Some(6)]
        );

        let mut all = hub.subscribe(Some(0)).await.unwrap();
        assert_eq!(ids(&ready(&mut all)).len(), 6);
        let mut up_to_date = hub.subscribe(Some(6)).await.unwrap();
        assert!(ready(&mut up_to_date).is_empty());
    }

    #[tokio::test]
    async fn too_old_resume_point_gets_a_gap_then_the_buffer() {
        let hub = hub(3, 10, 8);
        for _ in 0..6 {
            publish(&hub, "x").await;
        }
        // Buffer holds 4, 5, 6: resuming after 3 is complete, after 2 is not.
        let mut complete = hub.subscribe(Some(3)).await.unwrap();
        assert_eq!(ids(&ready(&mut complete)), vec![Some(4), Some(5), Some(6)]);
        let mut sub = hub.subscribe(Some(2)).await.unwrap();
        let events = ready(&mut sub);
        assert_eq!(ids(&events), vec![None, Some(4), Some(5), Some(6)]);
        assert_eq!(events[0].1, "gap");
        assert_eq!(events[0].2, r#"{"last_event_id":2,"oldest_id":4}"#);
    }

    #[tokio::test]
    async fn too_new_resume_point_gets_a_gap() {
        let hub = hub(8, 10, 8);
        let mut empty = hub.subscribe(Some(41)).await.unwrap();
        assert_eq!(
            ready(&mut empty),
            vec![(
                None,
                "gap".into(),
                r#"{"last_event_id":41,"oldest_id":null}"#.into()
            )]
        );
        publish(&hub, "x").await;
        let mut sub = hub.subscribe(Some(2)).await.unwrap();
        let events = ready(&mut sub);
        assert_eq!(ids(&events), vec![None, Some(1)]);
        assert_eq!(events[0].2, r#"{"last_event_id":2,"oldest_id":1}"#);
    }

    #[tokio::test]
    async fn max_clients_refuses_and_dropping_frees_a_place() {
        let hub = hub(8, 2, 8);
        let a = hub.subscribe(None).await.unwrap();
        let _b = hub.subscribe(None).await.unwrap();
        assert_eq!(hub.clients().await, 2);
        assert_eq!(
            hub.subscribe(None).await.err(),
            Some(SubscribeError::Full { max_clients: 2 })
        );
        drop(a);
        assert_eq!(hub.clients().await, 1);
        assert!(hub.subscribe(None).await.is_ok());
    }

    #[tokio::test]
    async fn a_client_more_than_client_buffer_behind_is_cut_off() {
        let hub = hub(64, 10, 4);
        let mut slow = hub.subscribe(None).await.unwrap();
        let mut fast = hub.subscribe(None).await.unwrap();
        for round in 1..=6u64 {
            publish(&hub, "x").await;
            assert_eq!(ids(&ready(&mut fast)), vec![Some(round)]);
        }
        // The slow one got the 4 it could hold, then its stream ended; the fast one goes on.
        assert_eq!(hub.clients().await, 1);
        assert_eq!(
            ids(&ready(&mut slow)),
            vec![Some(1), Some(2), Some(3), Some(4)]
        );
        assert_eq!(slow.next().await.map(|e| e.id()), None);
        // Four behind is still allowed.
        let mut edge = hub.subscribe(None).await.unwrap();
        for _ in 0..4 {
            publish(&hub, "x").await;
        }
        assert_eq!(hub.clients().await, 2);
        assert_eq!(ready(&mut edge).len(), 4);
    }

    #[tokio::test]
    async fn shutdown_ends_every_stream_and_refuses_new_ones() {
        let hub = hub(8, 10, 8);
        let mut sub = hub.subscribe(None).await.unwrap();
        publish(&hub, "queued").await;
        hub.shutdown();
        hub.shut_down().await;
        assert_eq!(sub.next().await.map(|e| e.id()), Some(Some(1)));
        assert!(sub.next().await.is_none());
        assert_eq!(
            hub.subscribe(None).await.err(),
            Some(SubscribeError::ShuttingDown)
        );
        assert_eq!(
            hub.publish(EventName::message(), "x".into()).await,
            Err(ShuttingDown)
        );
        assert_eq!(hub.clients().await, 0);
    }

    /// Publishers on other tasks race subscribers that resume from random points: every
    /// subscriber must see exactly N+1, N+2, … (after an optional gap), many rounds over.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn resume_joins_replay_and_live_without_gap_or_duplicate_under_concurrent_publishing() {
        const ROUNDS: usize = 40;
        const PUBLISHERS: usize = 3;
        const EVENTS_PER_PUBLISHER: usize = 300;
        const SUBSCRIBERS: usize = 12;
        for round in 0..ROUNDS {
            let hub = hub(256, 100, 4096);
            let publishers: Vec<_> = (0..PUBLISHERS)
                .map(|_| {
                    let hub = hub.clone();
                    tokio::spawn(async move {
                        for _ in 0..EVENTS_PER_PUBLISHER {
                            publish(&hub, "p").await;
                            tokio::task::yield_now().await;
                        }
                    })
                })
                .collect();
            let subscribers: Vec<_> = (0..SUBSCRIBERS)
                .map(|i| {
                    let hub = hub.clone();
                    tokio::spawn(async move {
                        for _ in 0..(i * 7 + round) % 23 {
                            tokio::task::yield_now().await;
                        }
                        let last = hub.last_id().await;
                        let n = last.saturating_sub((i as u64 * 13) % 200);
                        let mut sub = hub.subscribe(Some(n)).await.unwrap();
                        let total = (PUBLISHERS * EVENTS_PER_PUBLISHER) as u64;
                        let mut expected = n + 1;
                        while expected <= total {
                            let event = tokio::time::timeout(Duration::from_secs(10), sub.next())
                                .await
                                .expect("stream stalled")
                                .expect("stream ended early");
                            assert_eq!(
                                event.id(),
                                Some(expected),
                                "round {round}, resumed after {n}"
                            );
                            expected += 1;
                        }
                    })
                })
                .collect();
            for task in publishers.into_iter().chain(subscribers) {
                task.await.unwrap();
            }
        }
    }
}
