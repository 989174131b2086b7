//! The response body of `GET /events` as bytes, for frameworks whose own SSE encoder cannot
//! carry every payload of the contract (or which have none): the `retry:` block, then the
//! hub's pre-encoded events, with a heartbeat comment whenever nothing was written for the
//! heartbeat period. It ends when the subscription ends (lag cut-off or shutdown).

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_core::Stream;
use tokio::time::{Instant, Sleep, sleep};

use crate::encode::{HEARTBEAT, retry_block};
use crate::fanout::Subscription;

/// The `/events` body: a `Stream` of byte chunks (the `retry:` block, events, heartbeats) that
/// ends with its subscription.
pub struct EventStreamBody {
    retry: Option<Bytes>,
    subscription: Subscription,
    heartbeat_every: Duration,
    /// Fires at the latest moment a heartbeat may be due; checked against `last_write` when it
    /// fires rather than moved on every write, which keeps timer work off the per-event path.
    heartbeat: Pin<Box<Sleep>>,
    last_write: Instant,
}

impl EventStreamBody {
    pub fn new(subscription: Subscription, retry_ms: u64, heartbeat_every: Duration) -> Self {
        Self {
            retry: Some(retry_block(retry_ms)),
            subscription,
            heartbeat_every,
            heartbeat: Box::pin(sleep(heartbeat_every)),
            last_write: Instant::now(),
        }
    }

    fn written(&mut self, bytes: Bytes) -> Poll<Option<Bytes>> {
        self.last_write = Instant::now();
        Poll::Ready(Some(bytes))
    }
}

impl Stream for EventStreamBody {
    type Item = Bytes;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        if let Some(retry) = self.retry.take() {
            return self.written(retry);
        }
        match Pin::new(&mut self.subscription).poll_next(cx) {
            Poll::Ready(Some(event)) => return self.written(event.wire().clone()),
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Pending => {}
        }
        loop {
            if self.heartbeat.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            let due = self.last_write + self.heartbeat_every;
            if due <= Instant::now() {
                let next = Instant::now() + self.heartbeat_every;
                self.heartbeat.as_mut().reset(next);
                return self.written(Bytes::from_static(HEARTBEAT));
            }
            // Something was written since the timer was set: wait until a heartbeat is due.
            self.heartbeat.as_mut().reset(due);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::EventName;
    use crate::hub::{Hub, HubLimits};
    use futures_util::StreamExt;

    #[tokio::test(start_paused = true)]
    async fn retry_then_events_then_heartbeats_then_end() {
        let hub = Hub::memory(HubLimits {
            replay_capacity: 8,
            max_clients: 8,
            client_buffer: 8,
        });
        hub.publish(EventName::message(), "old".into(), None)
            .await
            .unwrap();
        let subscription = hub.subscribe(Some(0)).await.unwrap();
        let mut body = EventStreamBody::new(subscription, 2500, Duration::from_secs(15));
        assert_eq!(within!(body.next()).unwrap(), "retry: 2500\n\n");
        assert_eq!(
            within!(body.next()).unwrap(),
            "id: 1\nevent: message\ndata: old\n\n"
        );

        let started = Instant::now();
        assert_eq!(within!(body.next()).unwrap(), ":\n\n");
        assert_eq!(started.elapsed(), Duration::from_secs(15));

        tokio::time::advance(Duration::from_secs(10)).await;
        hub.publish(EventName::message(), "new".into(), None)
            .await
            .unwrap();
        assert_eq!(
            within!(body.next()).unwrap(),
            "id: 2\nevent: message\ndata: new\n\n"
        );
        // The heartbeat period restarts after every write.
        let after_event = Instant::now();
        assert_eq!(within!(body.next()).unwrap(), ":\n\n");
        assert_eq!(after_event.elapsed(), Duration::from_secs(15));

        hub.stop();
        assert!(within!(body.next()).is_none());
    }
}
