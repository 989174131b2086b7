//! The embedded log (`EVENT_LOG=memory`): ids, the replay ring and idempotency keys of this
//! process alone, behind one mutex. Appending hands the event to the fan-out under that mutex,
//! so that concurrent publishers deliver in id order.

use super::{AppendError, Appended, Held, IDEMPOTENCY_TTL, Idempotency, tick_data};
use crate::encode::EventName;
use crate::fanout::{Event, FanOut};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;
use tokio::time::Instant; // tokio's clock, so that a test can let ten minutes pass at once

pub struct MemoryLog {
    capacity: usize,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    last_id: u64,
    /// The last `capacity` events, oldest first, ids consecutive.
    ring: VecDeque<Arc<Event>>,
    last_tick: u64,
    /// Idempotency keys: digest of the first body and the first answer.
    once: HashMap<String, (String, Appended)>,
    /// The same keys by age, to forget them after [`IDEMPOTENCY_TTL`].
    once_by_age: VecDeque<(Instant, String)>,
}

impl MemoryLog {
    pub fn new(capacity: usize) -> Self {
        assert!(capacity > 0);
        Self {
            capacity,
            state: Mutex::new(State {
                ring: VecDeque::with_capacity(capacity.min(4096)),
                ..State::default()
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every critical section finishes its writes before anything that could panic.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(super) fn append(
        &self,
        fanout: &FanOut,
        name: EventName,
        text: String,
        once: Option<Idempotency>,
    ) -> Result<Appended, AppendError> {
        let mut state = self.lock();
        if let Some(once) = &once {
            state.forget_expired();
            if let Some((digest, first)) = state.once.get(&once.key) {
                return if *digest == once.digest {
                    Ok(Appended {
                        repeat: true,
                        ..*first
                    })
                } else {
                    Err(AppendError::Conflict)
                };
            }
        }
        let appended = state.push(self.capacity, fanout, name, text);
        if let Some(Idempotency { key, digest }) = once {
            state.once_by_age.push_back((Instant::now(), key.clone()));
            state.once.insert(key, (digest, appended));
        }
        Ok(appended)
    }

    pub(super) fn tick(&self, fanout: &FanOut, at: SystemTime) -> u64 {
        let mut state = self.lock();
        state.last_tick += 1;
        let text = tick_data(state.last_tick, at);
        state
            .push(self.capacity, fanout, EventName::tick(), text)
            .id
    }

    pub(super) fn held_after(&self, n: u64) -> Held {
        let state = self.lock();
        let oldest = state.ring.front().and_then(|event| event.id());
        let skip = match oldest {
            Some(oldest) if n <= state.last_id => (n + 1).saturating_sub(oldest) as usize,
            _ => 0,
        };
        Held {
            events: state.ring.iter().skip(skip).cloned().collect(),
            oldest,
            newest: state.last_id,
        }
    }
}

impl State {
    fn push(
        &mut self,
        capacity: usize,
        fanout: &FanOut,
        name: EventName,
        text: String,
    ) -> Appended {
        let id = self.last_id + 1;
        self.last_id = id;
        let event = Arc::new(Event::new(Some(id), name, text));
        if self.ring.len() == capacity {
            self.ring.pop_front();
        }
        self.ring.push_back(Arc::clone(&event));
        let clients = fanout.deliver(event);
        Appended {
            id,
            clients,
            repeat: false,
        }
    }

    fn forget_expired(&mut self) {
        while let Some((at, _)) = self.once_by_age.front() {
            if at.elapsed() < IDEMPOTENCY_TTL {
                break;
            }
            let (_, key) = self.once_by_age.pop_front().expect("front exists");
            self.once.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_key_is_kept_for_its_time_and_forgotten_then() {
        let log = MemoryLog::new(8);
        let fanout = FanOut::new(8, 8);
        let append = || {
            let once = Idempotency {
                key: "k".into(),
                digest: "d".into(),
            };
            log.append(&fanout, EventName::message(), "x".into(), Some(once))
                .unwrap()
        };
        let first = append();
        tokio::time::advance(IDEMPOTENCY_TTL - Duration::from_millis(1)).await;
        assert!(append().repeat, "forgotten before IDEMPOTENCY_TTL");
        tokio::time::advance(Duration::from_millis(1)).await;
        let later = append();
        assert_eq!((later.id, later.repeat), (first.id + 1, false));
        // Forgotten keys leave nothing behind.
        assert_eq!(log.lock().once.len(), 1);
        assert_eq!(log.lock().once_by_age.len(), 1);
    }
}
