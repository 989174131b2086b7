//! The state one server process runs with, and the contract's answers that do not depend on
//! the framework: opening a stream, accepting a trigger, health, the tick clock, shutdown.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::config::{Config, Framework};
use crate::encode::EventName;
use crate::error::ApiError;
use crate::hub::{Hub, SubscribeError, Subscription};
use crate::request::{authorize, check_content_length, check_content_type, parse_trigger};
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

impl App {
    pub fn new(framework: Framework, config: Config) -> Self {
        let hub = Hub::new(config.hub_limits());
        Self {
            framework,
            config: Arc::new(config),
            hub,
        }
    }

    /// Opens a stream for `GET /events`, resuming after the `Last-Event-ID` header or the
    /// `lastEventId` query parameter; 503 when `MAX_CLIENTS` streams are open.
    pub async fn subscribe(
        &self,
        last_event_id: Option<&[u8]>,
        query: Option<&str>,
    ) -> Result<Subscription, ApiError> {
        let resume = crate::request::resume_point(last_event_id, query);
        self.hub.subscribe(resume).await.map_err(|error| match error {
            SubscribeError::Full { max_clients } => ApiError::unavailable(
                format!("too many clients: {max_clients} event streams are open (MAX_CLIENTS); retry later"),
                self.config.retry_ms.div_ceil(1000),
            ),
            SubscribeError::ShuttingDown => {
                ApiError::unavailable("the server is shutting down; retry later", 1)
            }
        })
    }

    /// The whole `/events` body as bytes: retry, replay, live events, heartbeats.
    pub fn event_stream_body(&self, subscription: Subscription) -> EventStreamBody {
        EventStreamBody::new(subscription, self.config.retry_ms, self.config.heartbeat())
    }

    /// The checks of `POST /trigger` that need only the request head, in the contract's order
    /// (401, 415, then 413 for a declared length over the limit), with the headers looked up
    /// by their lower-case names. Read the body only after these pass. The body is left unread,
    /// so a refusal closes the connection.
    pub fn check_trigger_headers<'a>(
        &self,
        header: impl Fn(&str) -> Option<&'a [u8]>,
    ) -> Result<(), ApiError> {
        let content_length = header("content-length")
            .and_then(|value| std::str::from_utf8(value).ok()?.trim().parse().ok());
        authorize(
            self.config.trigger_token.as_deref(),
            header("authorization"),
        )
        .and_then(|()| check_content_type(header("content-type")))
        .and_then(|()| check_content_length(content_length))
        .map_err(ApiError::closing_connection)
    }

    /// Validates a trigger body (400) and publishes it.
    pub async fn publish_trigger(&self, body: &[u8]) -> Result<Accepted, ApiError> {
        let trigger = parse_trigger(body)?;
        let published = self
            .hub
            .publish(trigger.event.clone(), trigger.text)
            .await
            .map_err(|_| {
                ApiError::unavailable("the server is shutting down; nothing was published", 1)
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
        serde_json::json!({
            "status": "ok",
            "framework": self.framework.name,
            "clients": self.hub.clients().await,
            "last_id": self.hub.last_id().await,
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

    /// Starts the one clock that publishes `tick` events for the whole server (if `TICK_MS` > 0);
    /// it stops at shutdown. Needs a running tokio runtime.
    pub fn start_ticker(&self) {
        let Some(period) = self.config.tick_period() else {
            return;
        };
        let hub = self.hub.clone();
        tokio::spawn(async move {
            let mut clock = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
            clock.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            let shut_down = hub.shut_down();
            tokio::pin!(shut_down);
            for tick in 1u64.. {
                tokio::select! {
                    _ = &mut shut_down => break,
                    _ = clock.tick() => {}
                }
                if hub
                    .publish(EventName::tick(), tick_data(tick, SystemTime::now()))
                    .await
                    .is_err()
                {
                    break;
                }
            }
        });
    }

    /// Begins shutdown: every open stream ends, new ones are refused.
    pub fn shutdown(&self) {
        self.hub.shutdown();
    }

    /// Completes [`SHUTDOWN_GRACE`] after shutdown began: a server that is still waiting for
    /// connections to finish by then (a client that stopped reading) exits anyway.
    pub async fn shutdown_deadline(&self) {
        self.hub.shut_down().await;
        tokio::time::sleep(SHUTDOWN_GRACE).await;
        tracing::warn!(
            "some connections were still open {} ms after shutdown began; exiting anyway",
            SHUTDOWN_GRACE.as_millis()
        );
    }
}

/// `{"tick":K,"time":"YYYY-MM-DDTHH:MM:SS.mmmZ"}`.
fn tick_data(tick: u64, at: SystemTime) -> String {
    format!(
        r#"{{"tick":{tick},"time":"{}"}}"#,
        humantime::format_rfc3339_millis(at)
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

    #[test]
    fn tick_data_has_the_contract_shape() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_millis(1_795_176_000_007);
        assert_eq!(
            tick_data(3, at),
            r#"{"tick":3,"time":"2026-11-20T12:00:00.007Z"}"#
        );
    }

    #[tokio::test]
    async fn health_reports_config_and_counts_without_the_token() {
        let app = app(Cli {
            trigger_token: Some("s3cret".into()),
            ..Cli::default()
        });
        let _stream = app.subscribe(None, None).await.unwrap();
        let health: serde_json::Value = serde_json::from_str(&app.health().await).unwrap();
        assert_eq!(
            health,
            serde_json::json!({
                "status": "ok", "framework": "test", "clients": 1, "last_id": 0,
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
            app.publish_trigger(br#"{"event":"tick","data":1}"#)
                .await
                .is_err()
        );
        let accepted = app
            .publish_trigger(br#"{"event":"greeting","data":"hi"}"#)
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
            stream.next().await.unwrap().wire(),
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
            let event = stream.next().await.unwrap();
            assert_eq!((event.id(), event.name()), (Some(k), "tick"));
            assert!(
                event
                    .text()
                    .starts_with(&format!(r#"{{"tick":{k},"time":""#))
            );
        }
        app.shutdown();
        while stream.next().await.is_some() {}
        assert!(
            app.hub
                .publish(EventName::message(), "x".into())
                .await
                .is_err()
        );
    }
}
