//! The hub: the event log (where ids come from and replay is read, [`crate::log`]) joined with
//! this process's fan-out (its open streams, [`crate::fanout`]).
//!
//! Subscribing registers the stream's live queue first, then reads what the log holds after the
//! resume point, and the stream drops every live event at or below the newest id that read
//! accounts for: replay and live join by id, with no gap and no duplicate, however many
//! publishers race it, on one process or many. The replay policy is [`replay_plan`].

use std::sync::Arc;
use std::time::SystemTime;

use crate::config::{Config, EventLogSetting};
use crate::encode::EventName;
use crate::fanout::{Event, FanOut, SubscribeError, Subscription};
use crate::log::memory::MemoryLog;
use crate::log::redis::{RedisLog, StartError};
use crate::log::{AppendError, Appended, EventLog, Idempotency, ReplayPlan, replay_plan};
use crate::metrics::{Metrics, Refusal};

/// The hub's size limits (from `REPLAY_CAPACITY`, `MAX_CLIENTS`, `CLIENT_BUFFER`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HubLimits {
    pub replay_capacity: usize,
    pub max_clients: usize,
    pub client_buffer: usize,
}

/// The event log and the fan-out of one process. Cloning is cheap; all clones are the same hub.
#[derive(Clone)]
pub struct Hub {
    log: EventLog,
    fanout: FanOut,
}

impl Hub {
    /// A hub on the embedded log of this process alone.
    pub fn memory(limits: HubLimits) -> Self {
        Self {
            log: EventLog::Memory(Arc::new(MemoryLog::new(limits.replay_capacity))),
            fanout: FanOut::new(limits.max_clients, limits.client_buffer),
        }
    }

    /// A hub on the log `config` names; for the shared log, connects (for up to 10 s) and
    /// starts the reader that follows it. `instance` names this process in the cluster.
    pub async fn connect(config: &Config, instance: &str) -> Result<Self, StartError> {
        let limits = config.hub_limits();
        let EventLogSetting::Redis(url) = &config.event_log else {
            return Ok(Self::memory(limits));
        };
        let (log, newest) = RedisLog::connect(
            url,
            &config.event_log_key,
            limits.replay_capacity,
            instance.to_owned(),
        )
        .await?;
        let log = Arc::new(log);
        let fanout = FanOut::new(limits.max_clients, limits.client_buffer);
        fanout.saw(newest);
        log.follow(fanout.clone(), newest);
        Ok(Self {
            log: EventLog::Redis(log),
            fanout,
        })
    }

    pub fn log(&self) -> &EventLog {
        &self.log
    }

    /// Publishes an event with the next id to every open stream. `text` is the payload as
    /// clients receive it (see [`crate::payload_text`]). With `once`, an idempotency key seen
    /// before answers its first answer again and publishes nothing.
    pub async fn publish(
        &self,
        name: EventName,
        text: String,
        once: Option<Idempotency>,
    ) -> Result<Appended, AppendError> {
        let appended = self.log.append(&self.fanout, name, text, once).await?;
        if !appended.repeat {
            self.metrics().published(false);
        }
        Ok(appended)
    }

    /// Publishes the next tick if this process holds the clock (`None` when another does).
    pub async fn tick(&self, at: SystemTime) -> Result<Option<u64>, AppendError> {
        let ticked = self.log.tick(&self.fanout, at).await?;
        if ticked.is_some() {
            self.metrics().published(true);
        }
        Ok(ticked)
    }

    /// Opens a stream. With `last_event_id` = N, the stream first yields every held event
    /// after N (preceded by a `gap` event when events after N are no longer held, or N is
    /// newer than anything published), then live events, with no gap or duplicate between.
    pub async fn subscribe(
        &self,
        last_event_id: Option<u64>,
    ) -> Result<Subscription, SubscribeError> {
        let live = self.fanout.register()?;
        let Some(n) = last_event_id else {
            return Ok(live.join(Vec::new(), 0));
        };
        let metrics = self.metrics();
        // A client up to date with this process needs nothing from the log: while the log is
        // out of reach it is served at once, without waiting for a read to time out.
        let up_to_date = n == self.fanout.newest();
        let held = match self.log.connected() {
            true => self.log.held_after(n).await.ok(),
            false => None,
        };
        let Some(held) = held else {
            if up_to_date {
                metrics.replayed(false);
                return Ok(live.join(Vec::new(), n));
            }
            metrics.refused(Refusal::Log);
            return Err(SubscribeError::LogUnavailable);
        };
        let plan = replay_plan(n, held.oldest, held.newest);
        metrics.replayed(plan == ReplayPlan::Gap);
        let replay = match plan {
            ReplayPlan::Complete => held.events,
            ReplayPlan::Gap => {
                let gap = serde_json::json!({ "last_event_id": n, "oldest_id": held.oldest });
                let mut replay = Vec::with_capacity(held.events.len() + 1);
                replay.push(Arc::new(Event::new(
                    None,
                    EventName::gap(),
                    gap.to_string(),
                )));
                replay.extend(held.events);
                replay
            }
        };
        Ok(live.join(replay, held.newest))
    }

    /// This process's metrics (`GET /metrics`).
    pub fn metrics(&self) -> &Metrics {
        self.fanout.metrics()
    }

    /// Open streams of this process right now.
    pub fn clients(&self) -> usize {
        self.fanout.clients()
    }

    /// The newest id this process has seen, 0 before the first.
    pub fn last_id(&self) -> u64 {
        self.fanout.newest()
    }

    /// Ends every open stream (each ends after what is already queued for it), refuses new
    /// subscriptions and publications, and completes [`Hub::stopped`].
    pub fn stop(&self) {
        self.fanout.stop();
    }

    /// Completes once [`Hub::stop`] has been called.
    pub fn stopped(&self) -> tokio_util::sync::WaitForCancellationFutureOwned {
        self.fanout.stopped()
    }
}

#[cfg(test)]
mod tests {
    //! Every test runs against both logs: the memory log, and the shared log on a real
    //! redis-server of its own (`redis_fixture`).
    use super::*;
    use crate::config::Cli;
    use futures_util::StreamExt;
    use redis_fixture::RedisServer;
    use std::time::Duration;

    /// A hub and, for the shared log, the redis-server behind it (stopped on drop).
    struct TestHub {
        hub: Hub,
        _redis: Option<RedisServer>,
    }

    impl std::ops::Deref for TestHub {
        type Target = Hub;
        fn deref(&self) -> &Hub {
            &self.hub
        }
    }

    #[derive(Clone, Copy, Debug)]
    enum Log {
        Memory,
        Redis,
    }

    async fn hub(
        log: Log,
        replay_capacity: usize,
        max_clients: usize,
        client_buffer: usize,
    ) -> TestHub {
        let limits = HubLimits {
            replay_capacity,
            max_clients,
            client_buffer,
        };
        match log {
            Log::Memory => TestHub {
                hub: Hub::memory(limits),
                _redis: None,
            },
            Log::Redis => {
                let redis = RedisServer::start().expect("redis-server starts");
                let config = Config::from_cli(
                    Cli {
                        replay_capacity: Some(replay_capacity.to_string()),
                        max_clients: Some(max_clients.to_string()),
                        client_buffer: Some(client_buffer.to_string()),
                        event_log: Some(redis.url()),
                        ..Cli::default()
                    },
                    crate::config::tests::AXUM,
                )
                .unwrap();
                let hub = Hub::connect(&config, "test-instance").await.unwrap();
                TestHub {
                    hub,
                    _redis: Some(redis),
                }
            }
        }
    }

    async fn publish(hub: &Hub, text: &str) -> Appended {
        hub.publish(EventName::message(), text.to_owned(), None)
            .await
            .unwrap()
    }

    type Seen = (Option<u64>, String, String);

    /// The next `count` events of the stream (each within 10 s).
    async fn take(sub: &mut Subscription, count: usize) -> Vec<Seen> {
        let mut out = Vec::new();
        for _ in 0..count {
            let event = tokio::time::timeout(Duration::from_secs(10), sub.next())
                .await
                .expect("an event within 10 s")
                .expect("the stream goes on");
            out.push((event.id(), event.name().to_owned(), event.text().to_owned()));
        }
        out
    }

    /// Fails if the stream yields anything within a moment (what follows it is checked too).
    async fn nothing_more(sub: &mut Subscription) {
        if let Ok(next) = tokio::time::timeout(Duration::from_millis(300), sub.next()).await {
            panic!("expected nothing more, got {:?}", next.map(|e| e.id()));
        }
    }

    fn ids(events: &[Seen]) -> Vec<Option<u64>> {
        events.iter().map(|e| e.0).collect()
    }

    /// One `#[tokio::test]` per log for each scenario below.
    macro_rules! on_both_logs {
        ($($name:ident),* $(,)?) => {
            mod memory {
                $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() { super::$name(super::Log::Memory).await })*
            }
            mod redis {
                $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() { super::$name(super::Log::Redis).await })*
            }
        };
    }

    on_both_logs!(
        ids_start_at_one_and_have_no_gap,
        live_events_reach_every_subscriber,
        replay_sends_everything_after_n,
        too_old_resume_point_gets_a_gap_then_the_buffer,
        too_new_resume_point_gets_a_gap,
        max_clients_refuses_and_dropping_frees_a_place,
        a_client_more_than_client_buffer_behind_is_cut_off,
        shutdown_ends_every_stream_and_refuses_new_ones,
        resume_joins_replay_and_live_exactly_under_concurrent_publishing,
        metrics_count_what_happened,
        an_idempotency_key_publishes_once_and_refuses_another_body,
    );

    async fn an_idempotency_key_publishes_once_and_refuses_another_body(log: Log) {
        let hub = hub(log, 8, 10, 8).await;
        let once = |key: &str, digest: &str| {
            Some(Idempotency {
                key: key.to_owned(),
                digest: digest.to_owned(),
            })
        };
        let keyed = |key: &'static str, digest: &'static str| {
            hub.publish(EventName::message(), "keyed".into(), once(key, digest))
        };
        let first = keyed("k", "aaaa").await.unwrap();
        assert!(!first.repeat);
        let _stream = hub.subscribe(None).await.unwrap();
        // The retry: the first answer (its clients too), flagged as a repeat, nothing published.
        let again = keyed("k", "aaaa").await.unwrap();
        assert_eq!(
            (again.id, again.clients, again.repeat),
            (first.id, first.clients, true)
        );
        assert_eq!(keyed("k", "bbbb").await, Err(AppendError::Conflict));
        assert_eq!(hub.last_id(), first.id);
        assert_eq!(
            metric(&hub, r#"sse_events_published_total{kind="custom"}"#),
            1.0
        );
        // Another key publishes.
        let other = keyed("k2", "aaaa").await.unwrap();
        assert_eq!((other.id, other.repeat), (first.id + 1, false));
    }

    async fn ids_start_at_one_and_have_no_gap(log: Log) {
        let hub = hub(log, 8, 10, 8).await;
        assert_eq!(hub.last_id(), 0);
        for expected in 1..=5 {
            assert_eq!(publish(&hub, "x").await.id, expected);
        }
        assert_eq!(hub.last_id(), 5);
    }

    async fn live_events_reach_every_subscriber(log: Log) {
        let hub = hub(log, 8, 10, 8).await;
        let mut a = hub.subscribe(None).await.unwrap();
        let mut b = hub.subscribe(None).await.unwrap();
        assert_eq!(
            publish(&hub, "hello").await,
            Appended {
                id: 1,
                clients: 2,
                repeat: false
            }
        );
        for sub in [&mut a, &mut b] {
            assert_eq!(
                take(sub, 1).await,
                vec![(Some(1), "message".into(), "hello".into())]
            );
            nothing_more(sub).await;
        }
    }

    async fn replay_sends_everything_after_n(log: Log) {
        let hub = hub(log, 8, 10, 8).await;
        for _ in 0..5 {
            publish(&hub, "x").await;
        }
        let mut sub = hub.subscribe(Some(2)).await.unwrap();
        publish(&hub, "live").await;
        assert_eq!(
            ids(&take(&mut sub, 4).await),
            vec![Some(3), Some(4), Some(5), Some(6)]
        );
        nothing_more(&mut sub).await;

        let mut all = hub.subscribe(Some(0)).await.unwrap();
        assert_eq!(
            ids(&take(&mut all, 6).await),
            (1..=6).map(Some).collect::<Vec<_>>()
        );
        let mut up_to_date = hub.subscribe(Some(6)).await.unwrap();
        nothing_more(&mut up_to_date).await;
    }

    async fn too_old_resume_point_gets_a_gap_then_the_buffer(log: Log) {
        let hub = hub(log, 3, 10, 8).await;
        for _ in 0..6 {
            publish(&hub, "x").await;
        }
        // Held: 4, 5, 6. Resuming after 3 is complete (N = oldest − 1), after 2 is not.
        let mut complete = hub.subscribe(Some(3)).await.unwrap();
        assert_eq!(
            ids(&take(&mut complete, 3).await),
            vec![Some(4), Some(5), Some(6)]
        );
        nothing_more(&mut complete).await;
        let mut sub = hub.subscribe(Some(2)).await.unwrap();
        let events = take(&mut sub, 4).await;
        assert_eq!(ids(&events), vec![None, Some(4), Some(5), Some(6)]);
        assert_eq!(events[0].1, "gap");
        assert_eq!(events[0].2, r#"{"last_event_id":2,"oldest_id":4}"#);
        nothing_more(&mut sub).await;
    }

    async fn too_new_resume_point_gets_a_gap(log: Log) {
        let hub = hub(log, 8, 10, 8).await;
        let mut empty = hub.subscribe(Some(41)).await.unwrap();
        assert_eq!(
            take(&mut empty, 1).await,
            vec![(
                None,
                "gap".into(),
                r#"{"last_event_id":41,"oldest_id":null}"#.into()
            )]
        );
        publish(&hub, "x").await;
        let mut sub = hub.subscribe(Some(2)).await.unwrap();
        let events = take(&mut sub, 2).await;
        assert_eq!(ids(&events), vec![None, Some(1)]);
        assert_eq!(events[0].2, r#"{"last_event_id":2,"oldest_id":1}"#);
        nothing_more(&mut sub).await;
    }

    async fn max_clients_refuses_and_dropping_frees_a_place(log: Log) {
        let hub = hub(log, 8, 2, 8).await;
        let a = hub.subscribe(None).await.unwrap();
        let _b = hub.subscribe(Some(0)).await.unwrap();
        assert_eq!(hub.clients(), 2);
        assert_eq!(
            hub.subscribe(None).await.err(),
            Some(SubscribeError::Full { max_clients: 2 })
        );
        drop(a);
        assert_eq!(hub.clients(), 1);
        assert!(hub.subscribe(None).await.is_ok());
    }

    async fn a_client_more_than_client_buffer_behind_is_cut_off(log: Log) {
        let hub = hub(log, 64, 10, 4).await;
        let mut slow = hub.subscribe(None).await.unwrap();
        let mut fast = hub.subscribe(None).await.unwrap();
        for round in 1..=6u64 {
            publish(&hub, "x").await;
            assert_eq!(ids(&take(&mut fast, 1).await), vec![Some(round)]);
        }
        // The slow one got the 4 it could hold, then its stream ended; the fast one goes on.
        assert_eq!(hub.clients(), 1);
        assert_eq!(
            ids(&take(&mut slow, 4).await),
            vec![Some(1), Some(2), Some(3), Some(4)]
        );
        assert_eq!(within!(slow.next()).map(|e| e.id()), None);
        // Four behind is still allowed.
        let mut edge = hub.subscribe(None).await.unwrap();
        for round in 7..=10u64 {
            publish(&hub, "x").await;
            assert_eq!(ids(&take(&mut fast, 1).await), vec![Some(round)]);
        }
        assert_eq!(hub.clients(), 2);
        assert_eq!(take(&mut edge, 4).await.len(), 4);
    }

    async fn shutdown_ends_every_stream_and_refuses_new_ones(log: Log) {
        let hub = hub(log, 8, 10, 8).await;
        let mut sub = hub.subscribe(None).await.unwrap();
        let mut watcher = hub.subscribe(None).await.unwrap();
        publish(&hub, "queued").await;
        // Delivered (for the shared log, the reader has handed it over) before shutdown.
        take(&mut watcher, 1).await;
        hub.stop();
        hub.stopped().await;
        assert_eq!(within!(sub.next()).map(|e| e.id()), Some(Some(1)));
        assert!(within!(sub.next()).is_none());
        assert_eq!(
            hub.subscribe(None).await.err(),
            Some(SubscribeError::ShuttingDown)
        );
        assert_eq!(
            hub.publish(EventName::message(), "x".into(), None).await,
            Err(AppendError::ShuttingDown)
        );
        assert_eq!(hub.clients(), 0);
    }

    /// Publishers on other tasks race subscribers that resume from points behind the newest
    /// id. Each subscriber gets exactly N+1, N+2, … — or, only when the log had really moved
    /// past N by then (more than the capacity published since), a `gap` whose `oldest_id` O
    /// is above N+1, and then exactly O, O+1, … . Many rounds over.
    async fn resume_joins_replay_and_live_exactly_under_concurrent_publishing(log: Log) {
        const PUBLISHERS: usize = 3;
        const EVENTS_PER_PUBLISHER: usize = 300;
        const SUBSCRIBERS: usize = 12;
        for round in 0..40 {
            let hub = hub(log, 256, 100, 4096).await;
            let publishers: Vec<_> = (0..PUBLISHERS)
                .map(|_| {
                    let hub = hub.hub.clone();
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
                    let hub = hub.hub.clone();
                    tokio::spawn(async move {
                        for _ in 0..(i * 7 + round) % 23 {
                            tokio::task::yield_now().await;
                        }
                        let n = hub.last_id().saturating_sub((i as u64 * 13) % 200);
                        let mut sub = hub.subscribe(Some(n)).await.unwrap();
                        let total = (PUBLISHERS * EVENTS_PER_PUBLISHER) as u64;
                        let mut expected = n + 1;
                        let mut first = true;
                        while expected <= total {
                            let event = tokio::time::timeout(Duration::from_secs(20), sub.next())
                                .await
                                .expect("stream stalled")
                                .expect("stream ended early");
                            if first && event.id().is_none() {
                                let gap: serde_json::Value =
                                    serde_json::from_str(event.text()).unwrap();
                                let oldest = gap["oldest_id"].as_u64().unwrap();
                                assert_eq!(gap["last_event_id"], n, "round {round}");
                                assert!(
                                    oldest > n + 1,
                                    "round {round}: a gap after {n} while {} was still held",
                                    n + 1
                                );
                                expected = oldest;
                                first = false;
                                continue;
                            }
                            first = false;
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

    /// A series' value in the hub's `/metrics` text.
    fn metric(hub: &Hub, series: &str) -> f64 {
        let text = hub
            .metrics()
            .render(hub.clients(), hub.last_id(), hub.log().connected());
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("no {series} in:\n{text}"))
            .parse()
            .unwrap()
    }

    async fn metrics_count_what_happened(log: Log) {
        let hub = hub(log, 4, 2, 2).await;
        let mut plain = hub.subscribe(None).await.unwrap();
        let mut resumed = hub.subscribe(Some(0)).await.unwrap();
        assert!(hub.subscribe(None).await.is_err());
        assert_eq!(
            metric(&hub, r#"sse_streams_refused_total{reason="max_clients"}"#),
            1.0
        );
        assert_eq!(metric(&hub, r#"sse_replays_total{result="complete"}"#), 1.0);
        assert_eq!(metric(&hub, "sse_clients"), 2.0);

        publish(&hub, "one").await;
        publish(&hub, "two").await;
        take(&mut plain, 2).await;
        take(&mut resumed, 2).await;
        // One count per stream that got each event, added once per event.
        assert_eq!(
            metric(&hub, r#"sse_events_published_total{kind="custom"}"#),
            2.0
        );
        // (The count is added just after the queues are handed the event, so it may trail
        // what a stream has already read by a moment.)
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while metric(&hub, "sse_events_delivered_total") < 4.0
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(metric(&hub, "sse_events_delivered_total"), 4.0);
        assert_eq!(metric(&hub, "sse_last_id"), 2.0);
        // Nothing is counted for a stream until it ends.
        assert_eq!(metric(&hub, "sse_stream_duration_seconds_count"), 0.0);

        drop(plain);
        for text in ["three", "four", "five"] {
            publish(&hub, text).await;
        }
        // Two queued (CLIENT_BUFFER), the third cut the stream off. (Read only once it has:
        // the shared log delivers through its reader, which reading could make room for.)
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while hub.clients() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(take(&mut resumed, 2).await.len(), 2);
        let end = tokio::time::timeout(Duration::from_secs(10), resumed.next()).await;
        assert!(matches!(end, Ok(None)), "the lagging stream ends");
        drop(resumed);
        assert_eq!(metric(&hub, "sse_clients_lagged_total"), 1.0);
        assert_eq!(metric(&hub, "sse_stream_duration_seconds_count"), 2.0);
        assert_eq!(metric(&hub, "sse_clients"), 0.0);

        // Five published, four held: resuming from 0 misses event 1.
        let _gap = hub.subscribe(Some(0)).await.unwrap();
        assert_eq!(metric(&hub, r#"sse_replays_total{result="gap"}"#), 1.0);
        assert_eq!(
            metric(&hub, r#"sse_events_published_total{kind="tick"}"#),
            0.0
        );
        hub.tick(SystemTime::now()).await.unwrap();
        assert_eq!(
            metric(&hub, r#"sse_events_published_total{kind="tick"}"#),
            1.0
        );
        assert_eq!(metric(&hub, "sse_log_connected"), 1.0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn metrics_show_a_shared_log_out_of_reach() {
        let mut hub = hub(Log::Redis, 8, 8, 8).await;
        publish(&hub, "before").await;
        let redis = hub._redis.as_mut().expect("a redis-server");
        redis.kill();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while hub.log().connected() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(metric(&hub, "sse_log_connected"), 0.0);
        // A resume that needs the log is refused, and counted with its reason.
        assert!(matches!(
            hub.subscribe(Some(0)).await,
            Err(SubscribeError::LogUnavailable)
        ));
        assert_eq!(
            metric(&hub, r#"sse_streams_refused_total{reason="log"}"#),
            1.0
        );
        assert_eq!(
            metric(&hub, r#"sse_streams_refused_total{reason="max_clients"}"#),
            0.0
        );
        // One up to date with this instance needs nothing from the log: a complete replay.
        let _served = hub.subscribe(Some(1)).await.unwrap();
        assert_eq!(metric(&hub, r#"sse_replays_total{result="complete"}"#), 1.0);
        hub._redis
            .as_mut()
            .unwrap()
            .restart()
            .expect("redis-server restarts");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !hub.log().connected() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(metric(&hub, "sse_log_connected"), 1.0);
    }

    fn redis_config(redis: &RedisServer) -> Config {
        Config::from_cli(
            Cli {
                event_log: Some(redis.url()),
                ..Cli::default()
            },
            crate::config::tests::AXUM,
        )
        .unwrap()
    }

    /// Sends a signal (`-STOP`, `-CONT`) to a test's redis-server.
    fn signal(name: &str, redis: &RedisServer) {
        let pid = redis.pid().expect("a pid").to_string();
        let status = std::process::Command::new("kill")
            .args([name, &pid])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill {name} {pid}");
    }

    #[tokio::test]
    async fn a_shared_log_that_comes_up_late_is_waited_for() {
        let mut redis = RedisServer::start().expect("redis-server starts");
        redis.kill();
        let config = redis_config(&redis);
        let connecting = tokio::spawn(async move { Hub::connect(&config, "late").await.is_ok() });
        // Past the first attempt's own time-out (4 s): refused connections and a timed-out
        // attempt both come before the log is up.
        tokio::time::sleep(Duration::from_secs(5)).await;
        redis.restart().expect("redis-server restarts");
        assert!(
            within!(connecting).unwrap(),
            "a log up 5 s after the start (of 10 s allowed) was not waited for"
        );
    }

    #[tokio::test]
    async fn a_shared_log_that_stops_answering_is_out_of_reach_until_it_answers() {
        // A stopped process keeps its socket open: commands time out (no I/O error, no refusal).
        let redis = RedisServer::start().expect("redis-server starts");
        let hub = Hub::connect(&redis_config(&redis), "stopped")
            .await
            .unwrap();
        publish(&hub, "before").await;
        signal("-STOP", &redis);
        let refused = hub.publish(EventName::message(), "while stopped".into(), None);
        let refused = within!(refused);
        let out_of_reach = !hub.log().connected();
        signal("-CONT", &redis);
        assert!(
            matches!(refused, Err(AppendError::Unavailable(_))),
            "a publication while the log does not answer: {refused:?}"
        );
        assert!(
            out_of_reach,
            "a command that timed out did not mark the log out of reach"
        );
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !hub.log().connected() && tokio::time::Instant::now() < deadline {
            let _ = hub
                .publish(EventName::message(), "after".into(), None)
                .await;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(hub.log().connected());
    }

    #[tokio::test]
    async fn the_clocks_lease_is_kept_between_ticks_so_no_other_instance_ticks() {
        let limits = HubLimits {
            replay_capacity: 8,
            max_clients: 8,
            client_buffer: 8,
        };
        assert_eq!(Hub::memory(limits).log().lease_beat(), None);
        let redis = RedisServer::start().expect("redis-server starts");
        let holder = Hub::connect(&redis_config(&redis), "holder").await.unwrap();
        let standby = Hub::connect(&redis_config(&redis), "standby")
            .await
            .unwrap();
        assert_eq!(
            holder.log().lease_beat(),
            Some(crate::log::redis::LEASE_BEAT)
        );
        holder.log().keep_lease().await;
        assert!(holder.tick(SystemTime::now()).await.unwrap().is_some());
        // Longer than the lease, with no tick in between (a TICK_MS above it): the beat alone
        // keeps the clock where it is.
        let until = tokio::time::Instant::now() + crate::log::redis::LEASE_TTL * 3 / 2;
        while tokio::time::Instant::now() < until {
            holder.log().keep_lease().await;
            tokio::time::sleep(crate::log::redis::LEASE_BEAT).await;
        }
        assert_eq!(standby.tick(SystemTime::now()).await.unwrap(), None);
        assert!(holder.tick(SystemTime::now()).await.unwrap().is_some());
    }

    #[tokio::test]
    async fn a_log_that_lost_its_functions_gets_them_again() {
        let mut redis = RedisServer::start().expect("redis-server starts");
        let hub = Hub::connect(&redis_config(&redis), "reloading")
            .await
            .unwrap();
        publish(&hub, "before").await;
        // Restarted empty: no data, and no function library (Redis keeps them in its data).
        redis.restart_empty().expect("redis-server restarts empty");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let published = loop {
            match hub
                .publish(EventName::message(), "after".into(), None)
                .await
            {
                Ok(appended) => break appended,
                Err(error) => {
                    assert!(
                        tokio::time::Instant::now() < deadline,
                        "no publication within 10 s of the restart: {error:?}"
                    );
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        };
        assert!(published.id >= 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn at_start_an_unreachable_log_is_tried_until_start_timeout() {
        use crate::log::redis::START_TIMEOUT;
        // Refusing connections; accepting them but never answering (stopped); stopped for 5 s.
        let mut refusing = RedisServer::start().expect("redis-server starts");
        refusing.kill();
        let silent = RedisServer::start().expect("redis-server starts");
        signal("-STOP", &silent);
        let late = RedisServer::start().expect("redis-server starts");
        signal("-STOP", &late);
        let attempt = |redis: &RedisServer| {
            let config = redis_config(redis);
            tokio::spawn(async move {
                let began = tokio::time::Instant::now();
                let outcome = Hub::connect(&config, "starting").await.map(|_| ());
                (outcome, began.elapsed())
            })
        };
        let (refused, stopped, resumed) = (attempt(&refusing), attempt(&silent), attempt(&late));
        tokio::time::sleep(Duration::from_secs(5)).await;
        signal("-CONT", &late);
        let resumed = within!(resumed).unwrap();
        assert!(
            resumed.0.is_ok(),
            "a log that answered after 5 s: {resumed:?}"
        );
        for (what, attempt) in [("refusing", refused), ("stopped", stopped)] {
            let (outcome, took) = within!(attempt).unwrap();
            assert!(
                matches!(outcome, Err(crate::log::redis::StartError::Unreachable(_))),
                "{what}: {outcome:?}"
            );
            // Tried until the deadline (a timer never fires early), and not much longer.
            assert!(
                took >= START_TIMEOUT && took <= START_TIMEOUT + Duration::from_secs(10),
                "{what}: gave up after {took:?} (START_TIMEOUT is {START_TIMEOUT:?})"
            );
        }
        signal("-CONT", &silent);
    }

    #[tokio::test]
    async fn a_command_the_log_refuses_leaves_it_reachable() {
        let redis = RedisServer::start().expect("redis-server starts");
        let hub = Hub::connect(&redis_config(&redis), "refused")
            .await
            .unwrap();
        // Another writer's hash where the clock's lease belongs: Redis answers, with an error.
        redis
            .command(&["HSET", "sse:lease", "a", "b"])
            .expect("HSET runs");
        let ticked = hub.tick(SystemTime::now()).await;
        assert!(
            ticked.is_err(),
            "a tick on a lease of the wrong type: {ticked:?}"
        );
        assert!(
            hub.log().connected(),
            "a refused command marked a log that answers as out of reach"
        );
    }
}
