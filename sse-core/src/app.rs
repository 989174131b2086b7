//! The state one server process runs with, and the contract's answers that do not depend on
//! the framework: opening a stream, accepting a trigger, health, the tick clock, shutdown.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::config::Config;
use crate::error::ApiError;
use crate::fanout::{SubscribeError, Subscription};
use crate::framework::Framework;
use crate::hub::Hub;
use crate::log::AppendError;
use crate::log::redis::StartError;
use crate::request::{
    MAX_TRIGGER_BODY, authorize, check_content_length, check_content_type, idempotency,
    parse_trigger,
};
use crate::stream::EventStreamBody;

/// How long open streams get to end after shutdown begins before the process exits anyway
/// (the contract allows 2 s in all).
pub const SHUTDOWN_GRACE: Duration = Duration::from_millis(1500);

/// One per process; cheap to clone into every handler.
#[derive(Clone)]
pub struct App {
    pub framework: Framework,
    pub config: Arc<Config>,
    pub hub: Hub,
    /// This process's name in the cluster (`/health`'s `instance`), chosen at start.
    pub instance: Arc<str>,
}

/// The `202` answer to an accepted trigger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Accepted {
    pub id: u64,
    pub event: String,
    pub clients: usize,
}

impl Accepted {
    pub fn body(&self) -> String {
        serde_json::to_string(self).expect("plain struct serialises")
    }
}

/// What [`App::check_trigger_headers`] keeps from the head for [`App::publish_trigger`].
#[derive(Debug, Clone, Default)]
pub struct TriggerHead {
    idempotency_key: Option<Vec<u8>>,
}

impl App {
    /// An app on the embedded log of this process alone (whatever `config.event_log` says);
    /// [`App::connect`] starts on the log the settings name.
    pub fn new(framework: Framework, config: Config) -> Self {
        let hub = Hub::memory(config.hub_limits());
        Self::with_hub(framework, config, hub)
    }

    /// An app on the log the settings name (`EVENT_LOG`): for the shared log, connects within
    /// 10 s and starts following it.
    pub async fn connect(framework: Framework, config: Config) -> Result<Self, StartError> {
        let instance = new_instance_name(framework);
        let hub = Hub::connect(&config, &instance).await?;
        let mut app = Self::with_hub(framework, config, hub);
        app.instance = instance.into();
        Ok(app)
    }

    fn with_hub(framework: Framework, config: Config, hub: Hub) -> Self {
        hub.metrics().info(framework.name, hub.log().backend());
        Self {
            framework,
            config: Arc::new(config),
            hub,
            instance: new_instance_name(framework).into(),
        }
    }

    /// Opens a stream for `GET /events`, resuming after the `Last-Event-ID` header or the
    /// `lastEventId` query parameter; 503 when `MAX_CLIENTS` streams are open, or when the
    /// resume point needs a shared log that cannot be reached.
    pub async fn subscribe(
        &self,
        last_event_id: Option<&[u8]>,
        query: Option<&str>,
    ) -> Result<Subscription, ApiError> {
        let resume = crate::request::resume_point(last_event_id, query);
        self.hub.subscribe(resume).await.map_err(|error| match error {
            SubscribeError::Full { max_clients } => ApiError::unavailable(
                format!("too many clients: {max_clients} event streams are open (MAX_CLIENTS); retry later"),
                self.retry_after_secs(),
            ),
            SubscribeError::ShuttingDown => {
                ApiError::unavailable("the server is shutting down; retry later", 1)
            }
            SubscribeError::LogUnavailable => ApiError::log_unavailable(self.retry_after_secs()),
        })
    }

    /// `Retry-After` for a 503: `RETRY_MS` in whole seconds, at least 1.
    fn retry_after_secs(&self) -> u64 {
        self.config.retry_ms.div_ceil(1000)
    }

    /// The whole `/events` body as bytes: retry, replay, live events, heartbeats.
    pub fn event_stream_body(&self, subscription: Subscription) -> EventStreamBody {
        EventStreamBody::new(subscription, self.config.retry_ms, self.config.heartbeat())
    }

    /// `POST /trigger`, from the request's headers (looked up by their lower-case names) to its
    /// answer, in the contract's order: the head's checks ([`App::check_trigger_headers`]: 401,
    /// 415, then 413 for a declared length over the limit) and only then the body, so that 401
    /// and 415 win over 413; then its validation (400), its `Idempotency-Key` (422) and the
    /// publication (503). `read_body` is the framework's own read of the body, given the limit
    /// ([`MAX_TRIGGER_BODY`]): 413 past it, 400 for a body that breaks off, and 408 for one
    /// that stalls (through [`read_body_in_time`](crate::read_body_in_time) where the
    /// framework times no bodies itself).
    pub async fn trigger<'a, Read, Body>(
        &self,
        header: impl Fn(&str) -> Option<&'a [u8]>,
        read_body: impl FnOnce(usize) -> Read,
    ) -> Result<Accepted, ApiError>
    where
        Read: Future<Output = Result<Body, ApiError>>,
        Body: AsRef<[u8]>,
    {
        let head = self.check_trigger_headers(header)?;
        let body = read_body(MAX_TRIGGER_BODY).await;
        self.publish_trigger(head, body).await
    }

    /// The checks of `POST /trigger` that need only the request head, in the contract's order
    /// (401, 415, then 413 for a declared length over the limit), with the headers looked up
    /// by their lower-case names. Read the body only after these pass, and hand what they
    /// return to [`App::publish_trigger`]. A refusal leaves the body unread, so it closes the
    /// connection.
    pub fn check_trigger_headers<'a>(
        &self,
        header: impl Fn(&str) -> Option<&'a [u8]>,
    ) -> Result<TriggerHead, ApiError> {
        let content_length = header("content-length")
            .and_then(|value| std::str::from_utf8(value).ok()?.trim().parse().ok());
        let checked = authorize(
            self.config.trigger_token.as_deref(),
            header("authorization"),
        )
        .and_then(|()| check_content_type(header("content-type")))
        .and_then(|()| check_content_length(content_length));
        if let Err(refused) = checked {
            return self.trigger_answered(Err(refused.closing_connection()));
        }
        Ok(TriggerHead {
            idempotency_key: header("idempotency-key").map(<[u8]>::to_vec),
        })
    }

    /// Validates a trigger body and its `Idempotency-Key` (400), and publishes it: 422 for a
    /// key reused with another body, 503 when the log cannot be reached. `body` is the body as
    /// the framework read it, or why it could not (413, 408, 400), so that every trigger's
    /// answer is counted here (`sse_triggers_total`).
    pub async fn publish_trigger(
        &self,
        head: TriggerHead,
        body: Result<impl AsRef<[u8]>, ApiError>,
    ) -> Result<Accepted, ApiError> {
        let published = match body {
            Ok(body) => self.publish_body(head, body.as_ref()).await,
            Err(error) => Err(error),
        };
        self.trigger_answered(published)
    }

    fn trigger_answered<T>(&self, answer: Result<T, ApiError>) -> Result<T, ApiError> {
        let status = answer.as_ref().map_or_else(|error| error.status, |_| 202);
        self.hub.metrics().trigger_answered(status);
        answer
    }

    async fn publish_body(&self, head: TriggerHead, body: &[u8]) -> Result<Accepted, ApiError> {
        let trigger = parse_trigger(body)?;
        let once = idempotency(head.idempotency_key.as_deref(), body)?;
        let key = once.as_ref().map(|once| once.key.clone());
        let published = self
            .hub
            .publish(trigger.event.clone(), trigger.text, once)
            .await
            .map_err(|error| match error {
                AppendError::Conflict => {
                    ApiError::idempotency_conflict(key.as_deref().unwrap_or_default())
                }
                AppendError::Unavailable(why) => {
                    tracing::warn!("a trigger could not reach the event log: {why}");
                    ApiError::log_unavailable(self.retry_after_secs())
                }
                AppendError::ShuttingDown => {
                    ApiError::unavailable("the server is shutting down; nothing was published", 1)
                }
            })?;
        Ok(Accepted {
            id: published.id,
            event: trigger.event.to_string(),
            clients: published.clients,
        })
    }

    /// The `GET /health` body.
    pub async fn health(&self) -> String {
        let config = &self.config;
        let log = self.hub.log();
        let connected = log.connected();
        serde_json::json!({
            "status": if connected { "ok" } else { "degraded" },
            "framework": self.framework.name,
            "instance": &*self.instance,
            "clients": self.hub.clients(),
            "last_id": self.hub.last_id(),
            "log": { "backend": log.backend(), "connected": connected },
            "config": {
                "tick_ms": config.tick_ms,
                "heartbeat_ms": config.heartbeat_ms,
                "retry_ms": config.retry_ms,
                "replay_capacity": config.replay_capacity,
                "max_clients": config.max_clients,
                "client_buffer": config.client_buffer,
                "auth": config.trigger_token.is_some(),
            }
        })
        .to_string()
    }

    /// The `GET /metrics` body (served as [`crate::METRICS_CONTENT_TYPE`]): this instance's
    /// figures, with the same `clients` and `last_id` as `/health`.
    pub fn metrics(&self) -> String {
        let hub = &self.hub;
        hub.metrics()
            .render(hub.clients(), hub.last_id(), hub.log().connected())
    }

    /// Starts the one clock that publishes `tick` events for the whole server (if `TICK_MS` > 0):
    /// on the shared log, every instance stands ready and the holder of the log's lease ticks.
    /// It stops at shutdown. Needs a running tokio runtime.
    pub fn start_ticker(&self) {
        let Some(period) = self.config.tick_period() else {
            return;
        };
        let hub = self.hub.clone();
        tokio::spawn(async move {
            let mut clock = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
            clock.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            let beat_every = hub.log().lease_beat();
            let mut beat = tokio::time::interval(beat_every.unwrap_or(Duration::from_secs(3600)));
            beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            let stopped = hub.stopped();
            tokio::pin!(stopped);
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    _ = clock.tick() => {
                        if let Err(AppendError::ShuttingDown) = hub.tick(SystemTime::now()).await {
                            break;
                        }
                    }
                    _ = beat.tick(), if beat_every.is_some() => hub.log().keep_lease().await,
                }
            }
        });
    }

    /// Begins shutdown: every open stream ends, new ones are refused.
    pub fn stop(&self) {
        self.hub.stop();
    }

    /// Completes [`SHUTDOWN_GRACE`] after shutdown began: a server that is still waiting for
    /// connections to finish by then (a client that stopped reading) exits anyway.
    pub async fn shutdown_deadline(&self) {
        self.hub.stopped().await;
        tokio::time::sleep(SHUTDOWN_GRACE).await;
        tracing::warn!(
            "some connections were still open {} ms after shutdown began; exiting anyway",
            SHUTDOWN_GRACE.as_millis()
        );
    }
}

/// A name for this process, unique within a cluster: framework, pid and 32 random bits.
fn new_instance_name(framework: Framework) -> String {
    let mut random = [0u8; 4];
    // Without randomness the pid alone still tells the processes of one machine apart.
    let _ = getrandom::fill(&mut random);
    format!(
        "{}-{}-{}",
        framework.name,
        std::process::id(),
        random
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Cli;
    use futures_util::StreamExt;

    const TEST: Framework = Framework {
        name: "test",
        package: "test-example",
        default_port: 0,
    };

    fn app(cli: Cli) -> App {
        App::new(TEST, Config::from_cli(cli, TEST).unwrap())
    }

    #[tokio::test]
    async fn health_reports_config_and_counts_without_the_token() {
        let app = app(Cli {
            trigger_token: Some("s3cret".into()),
            ..Cli::default()
        });
        let _stream = app.subscribe(None, None).await.unwrap();
        let health: serde_json::Value = serde_json::from_str(&app.health().await).unwrap();
        assert!(health["instance"].as_str().unwrap().starts_with("test-"));
        assert_eq!(
            health,
            serde_json::json!({
                "status": "ok", "framework": "test", "clients": 1, "last_id": 0,
                "instance": health["instance"], "log": {"backend": "memory", "connected": true},
                "config": {"tick_ms": 1000, "heartbeat_ms": 15000, "retry_ms": 3000,
                           "replay_capacity": 1024, "max_clients": 10000, "client_buffer": 256,
                           "auth": true}
            })
        );
        assert!(!app.health().await.contains("s3cret"));
    }

    #[tokio::test]
    async fn trigger_checks_run_in_the_contracts_order() {
        let app = app(Cli {
            trigger_token: Some("t".into()),
            ..Cli::default()
        });
        let check = |authorization: &'static str, content_type: &'static str, length: &str| {
            let length = length.to_owned();
            app.check_trigger_headers(|name| match name {
                "authorization" => Some(authorization.as_bytes()),
                "content-type" => Some(content_type.as_bytes()),
                "content-length" => Some(length.as_bytes()),
                _ => None,
            })
            .err()
        };
        let status = |error: Option<ApiError>| error.map(|e| e.status);
        // Everything wrong: 401 first, then 415, then 413.
        assert_eq!(status(check("", "text/plain", "1048576")), Some(401));
        assert_eq!(
            status(check("Bearer t", "text/plain", "1048576")),
            Some(415)
        );
        let too_large = check("Bearer t", "application/json", "1048576").unwrap();
        assert_eq!(too_large.status, 413);
        // The body is left unread, so the connection closes; said once.
        assert_eq!(too_large.headers, vec![("connection", "close".to_owned())]);
        assert_eq!(status(check("Bearer t", "application/json", "10")), None);
    }

    #[tokio::test]
    async fn accepted_trigger_reaches_streams_and_rejected_one_publishes_nothing() {
        let app = app(Cli::default());
        let mut stream = app.subscribe(None, None).await.unwrap();
        assert!(
            app.publish_trigger(TriggerHead::default(), Ok(br#"{"event":"tick","data":1}"#))
                .await
                .is_err()
        );
        let accepted = app
            .publish_trigger(
                TriggerHead::default(),
                Ok(br#"{"event":"greeting","data":"hi"}"#),
            )
            .await
            .unwrap();
        assert_eq!(
            accepted,
            Accepted {
                id: 1,
                event: "greeting".into(),
                clients: 1
            }
        );
        assert_eq!(
            accepted.body(),
            r#"{"id":1,"event":"greeting","clients":1}"#
        );
        assert_eq!(
            within!(stream.next()).unwrap().wire(),
            "id: 1\nevent: greeting\ndata: hi\n\n"
        );
    }

    #[tokio::test]
    async fn full_server_answers_503_with_retry_after() {
        let app = app(Cli {
            max_clients: Some("1".into()),
            retry_ms: Some("2500".into()),
            ..Cli::default()
        });
        let _first = app.subscribe(None, None).await.unwrap();
        let error = app.subscribe(None, None).await.err().unwrap();
        assert_eq!(error.status, 503);
        assert_eq!(error.headers, vec![("retry-after", "3".to_owned())]);
    }

    #[tokio::test(start_paused = true)]
    async fn ticker_publishes_consecutive_ticks_until_shutdown() {
        let app = app(Cli {
            tick_ms: Some("100".into()),
            ..Cli::default()
        });
        let mut stream = app.subscribe(None, None).await.unwrap();
        app.start_ticker();
        for k in 1..=3u64 {
            let event = within!(stream.next()).unwrap();
            assert_eq!((event.id(), event.name()), (Some(k), "tick"));
            assert!(
                event
                    .text()
                    .starts_with(&format!(r#"{{"tick":{k},"time":""#))
            );
        }
        app.stop();
        // The stream ends (after what was queued before), however long the clock runs.
        let mut after = 0;
        while within!(stream.next()).is_some() {
            after += 1;
            assert!(after < 100, "the stream goes on after shutdown");
        }
        assert!(
            app.hub
                .publish(crate::EventName::message(), "x".into(), None)
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn an_idempotency_key_publishes_once_and_refuses_another_body() {
        let app = app(Cli::default());
        let head = |key: &str| TriggerHead {
            idempotency_key: Some(key.as_bytes().to_vec()),
        };
        let body = br#"{"data":"once"}"#;
        let first = app.publish_trigger(head("k-1"), Ok(body)).await.unwrap();
        let _stream = app.subscribe(None, None).await.unwrap();
        // The retry answers the first answer (clients as it was then) and publishes nothing.
        assert_eq!(
            app.publish_trigger(head("k-1"), Ok(body)).await.unwrap(),
            first
        );
        assert_eq!(app.hub.last_id(), first.id);
        let conflict = app
            .publish_trigger(head("k-1"), Ok(br#"{"data":"other"}"#))
            .await
            .unwrap_err();
        assert_eq!(conflict.status, 422);
        assert_eq!(
            app.publish_trigger(head("bad key"), Ok(body))
                .await
                .unwrap_err()
                .status,
            400
        );
        // A bad body wins over a reused key (400 before 422), and publishes nothing.
        assert_eq!(
            app.publish_trigger(head("k-1"), Ok(b"{"))
                .await
                .unwrap_err()
                .status,
            400
        );
        assert_eq!(
            app.publish_trigger(head("k-2"), Ok(body)).await.unwrap().id,
            first.id + 1
        );
    }

    #[tokio::test]
    async fn every_trigger_answer_is_counted_by_its_status() {
        let app = app(Cli {
            trigger_token: Some("t".into()),
            ..Cli::default()
        });
        let count = |status: u16| {
            let series = format!("sse_triggers_total{{status=\"{status}\"}} ");
            let text = app.metrics();
            text.lines()
                .find_map(|line| line.strip_prefix(series.as_str()))
                .map(|value| value.parse::<u64>().unwrap())
                .unwrap_or_else(|| panic!("no {series} in:\n{text}"))
        };
        let head = app.check_trigger_headers(|name| {
            (name == "content-type").then_some(&b"application/json"[..])
        });
        assert_eq!(head.unwrap_err().status, 401);
        let authorized = |name: &str| match name {
            "authorization" => Some(&b"Bearer t"[..]),
            "content-type" => Some(&b"application/json"[..]),
            _ => None,
        };
        let head = || app.check_trigger_headers(authorized).unwrap();
        let unread: Result<&[u8], _> = Err(ApiError::payload_too_large(crate::MAX_TRIGGER_BODY));
        assert!(app.publish_trigger(head(), unread).await.is_err());
        assert!(app.publish_trigger(head(), Ok(b"{")).await.is_err());
        assert!(
            app.publish_trigger(head(), Ok(br#"{"data":1}"#))
                .await
                .is_ok()
        );
        assert!(
            app.publish_trigger(head(), Ok(br#"{"data":2}"#))
                .await
                .is_ok()
        );
        assert_eq!(
            [count(401), count(413), count(400), count(202), count(415)],
            [1, 1, 1, 2, 0]
        );
        assert!(
            app.metrics()
                .contains("sse_info{framework=\"test\",log=\"memory\"} 1\n")
        );
    }
}
