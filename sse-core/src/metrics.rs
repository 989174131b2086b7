//! `GET /metrics` (contract 5): this process's counters and gauges, in the Prometheus text
//! format, kept by the `metrics` crate's handles and rendered by `metrics-exporter-prometheus`
//! (as a recorder of this process's own, never installed globally, so that every [`Metrics`]
//! is separate — a test may run several servers in one process).
//!
//! Every figure is updated where what it counts happens, and no label value comes from a
//! request: `kind`, `reason`, `result` and `status` take only the values written here. A
//! publication costs one atomic add for `sse_events_published_total` and one for
//! `sse_events_delivered_total` (however many streams it reaches); nothing is counted per
//! delivery. The gauges (`sse_clients`, `sse_last_id`, `sse_log_connected`) are read from the
//! hub when `/metrics` is rendered, so they always agree with `/health`.
//!
//! A stream's lifetime is counted once, when it ends (`sse_stream_duration_seconds`), never as
//! a request latency: an open stream is not a slow request.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use metrics::{Counter, Gauge, Histogram, Key, Label, Level, Metadata, Recorder, Unit};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

/// The `Content-Type` of `GET /metrics`: the Prometheus text exposition format.
pub const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// `sse_stream_duration_seconds`'s buckets: from a reconnect loop (under a second) to a
/// stream held open all day.
const DURATION_BUCKETS: [f64; 12] = [
    0.1, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 10_800.0, 43_200.0, 86_400.0,
];

/// The trigger answers counted from the start, so that a rate of refusals has a zero before
/// its first one. Any other status a trigger is answered with is added when it first happens
/// (it is one of the server's own answers, never a request's text).
const TRIGGER_STATUSES: [u16; 8] = [202, 400, 401, 408, 413, 415, 422, 503];

/// Ended streams whose durations may wait in the recorder's histogram buffer before they are
/// folded into its buckets (which a scrape does too): bounds its memory when nobody scrapes.
const UPKEEP_EVERY: u32 = 1024;

/// Why a stream was refused (`sse_streams_refused_total`'s `reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    MaxClients,
    ShuttingDown,
    Log,
}

/// This process's metrics. One per fan-out; shared by every clone of the hub.
pub struct Metrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    published_tick: Counter,
    published_custom: Counter,
    delivered: Counter,
    lagged: Counter,
    refused: [Counter; 3],
    replays_complete: Counter,
    replays_gap: Counter,
    triggers: Mutex<BTreeMap<u16, Counter>>,
    stream_duration: Histogram,
    ended_since_upkeep: AtomicU32,
    clients: Gauge,
    last_id: Gauge,
    log_connected: Gauge,
}

static METADATA: Metadata<'static> = Metadata::new(module_path!(), Level::INFO, None);

impl Metrics {
    /// Registers every series of the contract, each at zero.
    pub fn new() -> Self {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Full("sse_stream_duration_seconds".into()),
                &DURATION_BUCKETS,
            )
            .expect("the buckets are not empty")
            .build_recorder();
        let describe = |name: &'static str, unit: Option<Unit>, help: &'static str| {
            // Counters, gauges and histograms share one description table.
            recorder.describe_counter(name.into(), unit, help.into());
        };
        describe("sse_clients", None, "Event streams open on this instance.");
        describe(
            "sse_events_published_total",
            None,
            "Events this instance published, by kind (tick or custom).",
        );
        describe(
            "sse_events_delivered_total",
            None,
            "Events handed to the streams of this instance (one per event per stream).",
        );
        describe(
            "sse_clients_lagged_total",
            None,
            "Streams ended because they fell more than CLIENT_BUFFER events behind.",
        );
        describe(
            "sse_streams_refused_total",
            None,
            "Streams refused with 503, by reason (max_clients, shutting_down, log).",
        );
        describe(
            "sse_replays_total",
            None,
            "Resumes with Last-Event-ID, by result (complete, or gap when events were missed).",
        );
        describe(
            "sse_triggers_total",
            None,
            "POST /trigger requests answered, by status.",
        );
        describe(
            "sse_stream_duration_seconds",
            Some(Unit::Seconds),
            "How long event streams stayed open, counted when they end.",
        );
        describe(
            "sse_log_connected",
            None,
            "1 while the event log can be reached (always 1 for the memory log), else 0.",
        );
        describe(
            "sse_last_id",
            None,
            "The newest event id this instance has seen.",
        );
        describe(
            "sse_info",
            None,
            "Always 1: which framework serves, on which event log.",
        );

        let counter = |name: &'static str, labels: &[(&'static str, &'static str)]| {
            recorder.register_counter(&key(name, labels), &METADATA)
        };
        let refused = [
            counter("sse_streams_refused_total", &[("reason", "max_clients")]),
            counter("sse_streams_refused_total", &[("reason", "shutting_down")]),
            counter("sse_streams_refused_total", &[("reason", "log")]),
        ];
        let triggers = TRIGGER_STATUSES
            .iter()
            .map(|&status| (status, trigger_counter(&recorder, status)))
            .collect();
        let gauge = |name: &'static str| recorder.register_gauge(&key(name, &[]), &METADATA);
        let metrics = Self {
            published_tick: counter("sse_events_published_total", &[("kind", "tick")]),
            published_custom: counter("sse_events_published_total", &[("kind", "custom")]),
            delivered: counter("sse_events_delivered_total", &[]),
            lagged: counter("sse_clients_lagged_total", &[]),
            refused,
            replays_complete: counter("sse_replays_total", &[("result", "complete")]),
            replays_gap: counter("sse_replays_total", &[("result", "gap")]),
            triggers: Mutex::new(triggers),
            stream_duration: recorder
                .register_histogram(&key("sse_stream_duration_seconds", &[]), &METADATA),
            ended_since_upkeep: AtomicU32::new(0),
            clients: gauge("sse_clients"),
            last_id: gauge("sse_last_id"),
            log_connected: gauge("sse_log_connected"),
            handle: recorder.handle(),
            recorder,
        };
        // The empty histogram is rendered only once the recorder has folded it in.
        metrics.handle.run_upkeep();
        metrics
    }

    /// Adds `sse_info{framework,log} 1`: which framework serves, on which log (constants of
    /// this process, set once at start).
    pub(crate) fn info(&self, framework: &'static str, backend: &'static str) {
        let labels = [("framework", framework), ("log", backend)];
        self.recorder
            .register_gauge(&key("sse_info", &labels), &METADATA)
            .set(1.0);
    }

    /// An event this instance published: a tick, or a custom one.
    pub(crate) fn published(&self, tick: bool) {
        match tick {
            true => self.published_tick.increment(1),
            false => self.published_custom.increment(1),
        }
    }

    /// `streams` streams were handed one event (or a replay of that many events).
    pub(crate) fn delivered(&self, streams: usize) {
        if streams > 0 {
            self.delivered.increment(streams as u64);
        }
    }

    pub(crate) fn lagged(&self) {
        self.lagged.increment(1);
    }

    pub(crate) fn refused(&self, why: Refusal) {
        self.refused[why as usize].increment(1);
    }

    /// A resume with `Last-Event-ID`; `gap` when it began with a `gap` event.
    pub(crate) fn replayed(&self, gap: bool) {
        match gap {
            true => self.replays_gap.increment(1),
            false => self.replays_complete.increment(1),
        }
    }

    /// A `POST /trigger` answered with `status`.
    pub(crate) fn trigger_answered(&self, status: u16) {
        let mut triggers = self
            .triggers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        triggers
            .entry(status)
            .or_insert_with(|| trigger_counter(&self.recorder, status))
            .increment(1);
    }

    /// A stream ended after `open`.
    pub(crate) fn stream_ended(&self, open: Duration) {
        self.stream_duration.record(open.as_secs_f64());
        if self.ended_since_upkeep.fetch_add(1, Ordering::Relaxed) + 1 >= UPKEEP_EVERY {
            self.ended_since_upkeep.store(0, Ordering::Relaxed);
            self.handle.run_upkeep();
        }
    }

    /// The exposition text, with the gauges set to what the hub says now.
    pub fn render(&self, clients: usize, last_id: u64, log_connected: bool) -> String {
        self.clients.set(clients as f64);
        self.last_id.set(last_id as f64);
        self.log_connected
            .set(if log_connected { 1.0 } else { 0.0 });
        self.ended_since_upkeep.store(0, Ordering::Relaxed);
        self.handle.render()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

fn key(name: &'static str, labels: &[(&'static str, &'static str)]) -> Key {
    Key::from_parts(
        name,
        labels
            .iter()
            .map(|&(label, value)| Label::new(label, value))
            .collect::<Vec<_>>(),
    )
}

fn trigger_counter(recorder: &PrometheusRecorder, status: u16) -> Counter {
    let key = Key::from_parts(
        "sse_triggers_total",
        vec![Label::new("status", status.to_string())],
    );
    recorder.register_counter(&key, &METADATA)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
            .map(|value| value.parse().unwrap())
    }

    #[test]
    fn every_series_is_there_from_the_start_at_zero() {
        let metrics = Metrics::new();
        metrics.info("test", "memory");
        let text = metrics.render(0, 0, true);
        for series in [
            "sse_clients",
            "sse_last_id",
            r#"sse_events_published_total{kind="tick"}"#,
            r#"sse_events_published_total{kind="custom"}"#,
            "sse_events_delivered_total",
            "sse_clients_lagged_total",
            r#"sse_streams_refused_total{reason="max_clients"}"#,
            r#"sse_streams_refused_total{reason="shutting_down"}"#,
            r#"sse_streams_refused_total{reason="log"}"#,
            r#"sse_replays_total{result="complete"}"#,
            r#"sse_replays_total{result="gap"}"#,
            r#"sse_triggers_total{status="202"}"#,
            r#"sse_triggers_total{status="413"}"#,
            "sse_stream_duration_seconds_count",
            "sse_stream_duration_seconds_sum",
            r#"sse_stream_duration_seconds_bucket{le="+Inf"}"#,
        ] {
            assert_eq!(sample(&text, series), Some(0.0), "{series} in:\n{text}");
        }
        assert_eq!(sample(&text, "sse_log_connected"), Some(1.0));
        assert_eq!(
            sample(&text, r#"sse_info{framework="test",log="memory"}"#),
            Some(1.0)
        );
        assert!(text.contains("# TYPE sse_stream_duration_seconds histogram\n"));
        assert!(text.contains("# TYPE sse_events_published_total counter\n"));
        assert!(text.contains("# TYPE sse_clients gauge\n"));
    }

    #[test]
    fn counts_move_where_they_happen() {
        let metrics = Metrics::new();
        metrics.published(true);
        metrics.published(false);
        metrics.published(false);
        metrics.delivered(3);
        metrics.delivered(0);
        metrics.lagged();
        metrics.refused(Refusal::Log);
        metrics.replayed(true);
        metrics.trigger_answered(202);
        metrics.trigger_answered(418);
        metrics.stream_ended(Duration::from_millis(2500));
        let text = metrics.render(4, 17, false);
        let at = |series: &str| sample(&text, series).unwrap_or_else(|| panic!("{series}"));
        assert_eq!(at(r#"sse_events_published_total{kind="tick"}"#), 1.0);
        assert_eq!(at(r#"sse_events_published_total{kind="custom"}"#), 2.0);
        assert_eq!(at("sse_events_delivered_total"), 3.0);
        assert_eq!(at("sse_clients_lagged_total"), 1.0);
        assert_eq!(at(r#"sse_streams_refused_total{reason="log"}"#), 1.0);
        assert_eq!(
            at(r#"sse_streams_refused_total{reason="max_clients"}"#),
            0.0
        );
        assert_eq!(at(r#"sse_replays_total{result="gap"}"#), 1.0);
        assert_eq!(at(r#"sse_triggers_total{status="202"}"#), 1.0);
        assert_eq!(at(r#"sse_triggers_total{status="418"}"#), 1.0);
        assert_eq!(at("sse_stream_duration_seconds_count"), 1.0);
        assert_eq!(at("sse_stream_duration_seconds_sum"), 2.5);
        assert_eq!(at(r#"sse_stream_duration_seconds_bucket{le="1"}"#), 0.0);
        assert_eq!(at(r#"sse_stream_duration_seconds_bucket{le="5"}"#), 1.0);
        assert_eq!(at("sse_clients"), 4.0);
        assert_eq!(at("sse_last_id"), 17.0);
        assert_eq!(at("sse_log_connected"), 0.0);
    }

    #[test]
    fn two_servers_in_one_process_count_apart() {
        let one = Metrics::new();
        let other = Metrics::new();
        one.lagged();
        assert_eq!(
            sample(&other.render(0, 0, true), "sse_clients_lagged_total"),
            Some(0.0)
        );
    }
}
