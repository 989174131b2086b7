//! Faults of the shared event log (contract section 7), each against a server on a real
//! redis-server the scenario starts itself (its own port on 127.0.0.1, its own directory,
//! every write fsynced), which it then kills, restarts, empties or cuts off:
//!
//! - `log-outage`: Redis SIGKILLed with streams open and publishers running, then restarted
//!   on its data: 503 + Retry-After meanwhile, `/health` degraded, streams open; afterwards no
//!   acknowledged event missing, none twice, every stream consecutive, none reconnected.
//! - `log-data-loss`: Redis restarted empty: ids continue above the highest seen, and a
//!   client resuming from an id the log lost gets the `gap` event.
//! - `log-connection-cut`: every connection of the server cut (`CLIENT KILL TYPE normal`),
//!   again and again, with publishers running: the reader resumes with no gap or duplicate.
//! - `log-unreachable`: nothing listening at `EVENT_LOG`: exit 1 within 10 s (+ a margin),
//!   one line naming the URL.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use conformance::spawn::Launcher;
use conformance::wire::BodyEnd;
use redis_fixture::RedisServer;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{FaultCtx, Findings};
use crate::stream::Stream;
use crate::subject::Subject;

/// Starts a redis-server and the scenario's server on it.
async fn on_redis(
    ctx: &FaultCtx,
    overrides: &[(&str, &str)],
) -> Result<(RedisServer, Subject), String> {
    let redis = RedisServer::start()?;
    let url = redis.url();
    let mut env = vec![("EVENT_LOG", url.as_str())];
    env.extend_from_slice(overrides);
    let subject = ctx.start(&env).await?;
    Ok((redis, subject))
}

/// One client reading a stream until told the last id to wait for.
struct Watcher {
    through: watch::Sender<u64>,
    task: JoinHandle<Watched>,
}

/// What a watcher saw: every event with an id (id, first data line), and how the stream ended
/// (`None`: still open when the watcher stopped).
struct Watched {
    events: Vec<(u64, String)>,
    end: Option<BodyEnd>,
}

impl Watcher {
    async fn open(subject: &Subject, headers: &[(&str, &str)]) -> Result<Self, String> {
        let mut stream = Stream::open(
            subject.address,
            "/events",
            headers,
            None,
            Duration::from_secs(10),
        )
        .await?;
        if stream.head.status != 200 {
            return Err(format!("GET /events answered {}", stream.head.status));
        }
        let (through, mut wanted) = watch::channel(0u64);
        let task = tokio::spawn(async move {
            let mut events = Vec::new();
            let deadline = tokio::time::Instant::now() + Duration::from_secs(300);
            loop {
                let target = *wanted.borrow();
                if target > 0 && events.last().is_some_and(|(id, _)| *id >= target) {
                    return Watched { events, end: None };
                }
                tokio::select! {
                    progress = stream.read(|event| {
                        if let Some(id) = event.id {
                            events.push((id, String::from_utf8_lossy(event.data).into_owned()));
                        }
                    }) => {
                        if let crate::stream::Progress::Ended(end) = progress {
                            return Watched { events, end: Some(end) };
                        }
                    }
                    _ = wanted.changed() => {}
                    () = tokio::time::sleep_until(deadline) => return Watched { events, end: None },
                }
            }
        });
        Ok(Self { through, task })
    }

    /// `count` streams on `subject`.
    async fn open_many(subject: &Subject, count: usize) -> Result<Vec<Self>, String> {
        let mut watchers = Vec::with_capacity(count);
        for _ in 0..count {
            watchers.push(Self::open(subject, &[]).await?);
        }
        Ok(watchers)
    }

    /// Waits until every one of `watchers` has given id `last` (30 s at most each).
    async fn finish_all(watchers: Vec<Self>, last: u64) -> Result<Vec<Watched>, String> {
        let mut watched = Vec::with_capacity(watchers.len());
        for watcher in watchers {
            watched.push(watcher.finish(last, Duration::from_secs(30)).await?);
        }
        Ok(watched)
    }

    /// Waits (at most `timeout`) until the stream has given id `last`.
    async fn finish(self, last: u64, timeout: Duration) -> Result<Watched, String> {
        let _ = self.through.send(last);
        tokio::time::timeout(timeout, self.task)
            .await
            .map_err(|_| format!("a stream did not reach id {last} within {timeout:?}"))?
            .map_err(|e| e.to_string())
    }
}

/// Publishers posting triggers until stopped: every acknowledged (202) id with its data, and
/// how many got 503 (with Retry-After) or anything else.
struct Publishing {
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Vec<(u64, String)>>>,
    refused: Arc<AtomicU64>,
    tasks: Vec<JoinHandle<Result<(), String>>>,
}

impl Publishing {
    fn start(subject: &Subject, publishers: usize, name: &'static str) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(Mutex::new(Vec::new()));
        let refused = Arc::new(AtomicU64::new(0));
        let http = conformance::target::http_client()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("an HTTP client builds");
        let tasks = (0..publishers)
            .map(|p| {
                let (stop, acked, refused, http) =
                    (stop.clone(), acked.clone(), refused.clone(), http.clone());
                let url = format!("{}/trigger", subject.base);
                tokio::spawn(async move {
                    for i in 0u64.. {
                        if stop.load(Ordering::Relaxed) {
                            return Ok(());
                        }
                        let data = format!("{p}-{i}");
                        let body = serde_json::json!({ "event": name, "data": data }).to_string();
                        let answer = http
                            .post(&url)
                            .header("content-type", "application/json")
                            .bearer_auth(conformance::spawn::SUITE_TOKEN)
                            .body(body)
                            .send()
                            .await;
                        match answer {
                            Ok(answer) if answer.status() == 202 => {
                                let text = answer.text().await.map_err(|e| e.to_string())?;
                                let json: serde_json::Value =
                                    serde_json::from_str(&text).map_err(|e| e.to_string())?;
                                let id = json["id"].as_u64().ok_or("202 without an id")?;
                                acked.lock().unwrap().push((id, data));
                            }
                            Ok(answer) if answer.status() == 503 => {
                                if answer.headers().get("retry-after").is_none() {
                                    return Err("a 503 without Retry-After".into());
                                }
                                refused.fetch_add(1, Ordering::Relaxed);
                                tokio::time::sleep(Duration::from_millis(50)).await;
                            }
                            Ok(answer) => {
                                return Err(format!("POST /trigger answered {}", answer.status()));
                            }
                            // No answer at all (the server itself is fine; count it as refused).
                            Err(_) => {
                                refused.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    Ok(())
                })
            })
            .collect();
        Self {
            stop,
            acked,
            refused,
            tasks,
        }
    }

    /// Stops them; every acknowledged (id, data), and how many were refused.
    async fn stop(self) -> Result<(Vec<(u64, String)>, u64), String> {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            task.await.map_err(|e| e.to_string())??;
        }
        let acked = std::mem::take(&mut *self.acked.lock().unwrap());
        Ok((acked, self.refused.load(Ordering::Relaxed)))
    }
}

/// Polls `/health` until `want(health)` holds for its JSON body; how long it took.
async fn wait_health(
    subject: &Subject,
    timeout: Duration,
    want: impl Fn(&serde_json::Value) -> bool,
) -> Result<Duration, String> {
    let began = Instant::now();
    let http = conformance::target::http_client()
        .timeout(Duration::from_secs(2))
        .build()
        .map_err(|e| e.to_string())?;
    loop {
        if let Ok(answer) = http.get(format!("{}/health", subject.base)).send().await
            && let Ok(text) = answer.text().await
            && let Ok(health) = serde_json::from_str::<serde_json::Value>(&text)
            && want(&health)
        {
            return Ok(began.elapsed());
        }
        if began.elapsed() > timeout {
            return Err(format!(
                "/health did not change as expected within {timeout:?}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `/health` says the log is connected again.
fn up_again(health: &serde_json::Value) -> bool {
    health["status"] == "ok" && health["log"]["connected"] == true
}

/// Publishes one marker, retrying while the log recovers; its id.
async fn marker(subject: &Subject) -> Result<u64, String> {
    let began = Instant::now();
    loop {
        match subject.publisher.publish("marker", "end").await {
            Ok(id) => return Ok(id),
            Err(error) if began.elapsed() > Duration::from_secs(15) => return Err(error),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// The rules every stream must meet after a fault: still open, ids consecutive through `last`,
/// every acknowledged event on it once with its data.
fn judge_streams(findings: &mut Findings, watched: &[Watched], acked: &[(u64, String)], last: u64) {
    let mut incomplete = 0;
    for (i, stream) in watched.iter().enumerate() {
        findings.require(stream.end.is_none(), || {
            format!(
                "stream {i} ended ({:?}) during the fault: its client had to reconnect",
                stream.end
            )
        });
        // Through `last` (a read may bring a tick or two after it).
        let ids: Vec<u64> = stream
            .events
            .iter()
            .map(|(id, _)| *id)
            .take_while(|id| *id <= last)
            .collect();
        let consecutive = ids.windows(2).all(|w| w[1] == w[0] + 1);
        findings.require(consecutive && ids.last() == Some(&last), || {
            let breaks: Vec<(u64, u64)> = ids
                .windows(2)
                .filter(|w| w[1] != w[0] + 1)
                .map(|w| (w[0], w[1]))
                .take(5)
                .collect();
            format!(
                "stream {i}: ids not consecutive through {last} (last {:?}; breaks {breaks:?})",
                ids.last()
            )
        });
        let first = ids.first().copied().unwrap_or(u64::MAX);
        let missing = acked
            .iter()
            .filter(|(id, _)| *id >= first)
            .filter(|(id, data)| !stream.events.iter().any(|(i, d)| i == id && d == data))
            .count();
        if missing > 0 {
            incomplete += 1;
        }
    }
    findings.require(incomplete == 0, || {
        format!("{incomplete} streams lack acknowledged events (or got them with other data)")
    });
}

pub mod outage {
    use super::*;

    pub async fn run(ctx: &FaultCtx, findings: &mut Findings) -> Result<String, String> {
        let streams = ctx.scale.pick(200, 10);
        let publishers = ctx.scale.pick(4, 2);
        let (mut redis, subject) =
            on_redis(ctx, &[("TICK_MS", "200"), ("HEARTBEAT_MS", "500")]).await?;
        let watchers = Watcher::open_many(&subject, streams).await?;
        let publishing = Publishing::start(&subject, publishers, "outage");
        tokio::time::sleep(Duration::from_secs(1)).await;

        redis.kill();
        let degraded = wait_health(&subject, Duration::from_secs(10), |health| {
            health["status"] == "degraded" && health["log"]["connected"] == false
        })
        .await;
        findings.require(degraded.is_ok(), || {
            "/health did not say degraded within 10 s of Redis being killed".into()
        });
        tokio::time::sleep(Duration::from_secs(2)).await;
        let during = subject
            .publisher
            .post(br#"{"event":"outage","data":"during"}"#.to_vec())
            .await?;
        findings.require(during.0 == 503, || {
            format!(
                "a trigger during the outage answered {} (expected 503)",
                during.0
            )
        });
        redis.restart()?;
        let back = wait_health(&subject, Duration::from_secs(15), up_again).await?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (acked, refused) = publishing.stop().await?;
        let last = marker(&subject).await?;
        let watched = Watcher::finish_all(watchers, last).await?;
        findings.figure(format!(
            "{streams} streams, {publishers} publishers: {} acknowledged, {refused} refused (503) during the outage",
            acked.len()
        ));
        if let Ok(degraded) = degraded {
            findings.figure(format!(
                "/health degraded {} ms after the kill",
                degraded.as_millis()
            ));
        }
        findings.figure(format!(
            "log connected again {} ms after the restart",
            back.as_millis()
        ));
        findings.require(refused > 0, || {
            "no trigger was refused while Redis was down: the outage was not exercised".into()
        });
        judge_streams(findings, &watched, &acked, last);
        subject.stop().await;
        Ok(format!("{} acked, {refused} refused, 0 lost", acked.len()))
    }
}

pub mod data_loss {
    use super::*;

    pub async fn run(ctx: &FaultCtx, findings: &mut Findings) -> Result<String, String> {
        let (mut redis, subject) = on_redis(ctx, &[("TICK_MS", "0")]).await?;
        let mut before = 0;
        for i in 0..10 {
            before = subject.publisher.publish("before", &i.to_string()).await?;
        }
        // A 202 comes when the log has stored the event, and this instance's reader sees it a
        // moment later; a stream opened before that would rightly get event `before` live.
        wait_health(&subject, Duration::from_secs(10), |health| {
            health["last_id"] == before
        })
        .await?;
        let live = Watcher::open(&subject, &[]).await?;
        redis.restart_empty()?;
        wait_health(&subject, Duration::from_secs(15), up_again).await?;
        let after = marker(&subject).await?;
        findings.figure(format!(
            "last id before the loss {before}, first after {after}"
        ));
        findings.require(after == before + 1, || {
            format!("after Redis came back empty the next id was {after}; ids up to {before} were already given")
        });
        let resumed = Watcher::open(&subject, &[("last-event-id", "5")]).await?;
        let next = subject.publisher.publish("after", "2").await?;
        let live = live.finish(next, Duration::from_secs(10)).await?;
        let live_ids: Vec<u64> = live.events.iter().map(|(id, _)| *id).collect();
        findings.require(live_ids == [after, next] && live.end.is_none(), || {
            format!(
                "a stream open through the loss got ids {live_ids:?} (expected [{after}, {next}])"
            )
        });
        // The resumed stream's gap event has no id; its first event with one comes after it.
        let resumed = resumed.finish(next, Duration::from_secs(10)).await?;
        let resumed_ids: Vec<u64> = resumed.events.iter().map(|(id, _)| *id).collect();
        findings.require(resumed_ids == [after, next], || {
            format!("resuming after 5 (lost with the data) gave ids {resumed_ids:?}")
        });
        let gap = gap_after(&subject, 5).await?;
        findings.require(
            gap.as_ref().is_some_and(|g| g["last_event_id"] == 5 && g["oldest_id"] == after),
            || format!("resuming after 5 (lost with the data) did not begin with the gap event: {gap:?}"),
        );
        subject.stop().await;
        Ok(format!("ids {before} → {after}, gap for a lost id"))
    }

    /// The data of the first event of a stream resumed after `n`, if it is a `gap`.
    async fn gap_after(subject: &Subject, n: u64) -> Result<Option<serde_json::Value>, String> {
        let header = n.to_string();
        let mut stream = Stream::open(
            subject.address,
            "/events",
            &[("last-event-id", &header)],
            None,
            Duration::from_secs(10),
        )
        .await?;
        let mut first = None;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while first.is_none() && tokio::time::Instant::now() < deadline {
            let read = tokio::time::timeout_at(
                deadline,
                stream.read(|event| {
                    if first.is_none() {
                        first = Some((event.name.to_vec(), event.data.to_vec()));
                    }
                }),
            );
            if read.await.is_err() {
                break;
            }
        }
        stream.abort();
        Ok(first
            .filter(|(name, _)| name == b"gap")
            .and_then(|(_, data)| serde_json::from_slice(&data).ok()))
    }
}

pub mod connection_cut {
    use super::*;

    pub async fn run(ctx: &FaultCtx, findings: &mut Findings) -> Result<String, String> {
        let streams = ctx.scale.pick(100, 10);
        let cuts = ctx.scale.pick(10, 4);
        let (redis, subject) =
            on_redis(ctx, &[("TICK_MS", "100"), ("HEARTBEAT_MS", "500")]).await?;
        let watchers = Watcher::open_many(&subject, streams).await?;
        let publishing = Publishing::start(&subject, 2, "cut");
        for _ in 0..cuts {
            tokio::time::sleep(Duration::from_millis(400)).await;
            redis.command(&["CLIENT", "KILL", "TYPE", "normal"])?;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (acked, refused) = publishing.stop().await?;
        let last = marker(&subject).await?;
        let watched = Watcher::finish_all(watchers, last).await?;
        findings.figure(format!(
            "{streams} streams, {cuts} cuts of every connection: {} acknowledged, {refused} refused",
            acked.len()
        ));
        judge_streams(findings, &watched, &acked, last);
        subject.stop().await;
        Ok(format!("{cuts} cuts, {} acked, 0 lost", acked.len()))
    }
}

pub mod unreachable {
    use super::*;

    pub async fn run(ctx: &FaultCtx, findings: &mut Findings) -> Result<String, String> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        let url = format!("redis://127.0.0.1:{port}");
        let mut env: Vec<(&str, &str)> = vec![("EVENT_LOG", &url)];
        env.extend(ctx.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let began = Instant::now();
        let result = Launcher::new(ctx.binary.clone())
            .run_to_exit(&env, Duration::from_secs(14))
            .await;
        let took = began.elapsed();
        let (status, output) = match result {
            Ok(exit) => exit,
            Err(error) => {
                findings.require(false, || format!("with nothing at {url}: {error}"));
                return Ok("did not exit".into());
            }
        };
        let lines: Vec<&str> = output.lines().filter(|l| !l.trim().is_empty()).collect();
        findings.figure(format!(
            "exit {status} after {} ms: {output:?}",
            took.as_millis()
        ));
        findings.require(status.code() == Some(1), || {
            format!("exited with {status}, not 1")
        });
        findings.require(lines.len() == 1 && lines[0].contains(&url), || {
            format!("expected one line naming {url}, got {output:?}")
        });
        Ok(format!(
            "exit {} in {:.1} s",
            status.code().unwrap_or(-1),
            took.as_secs_f64()
        ))
    }
}
