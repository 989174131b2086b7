//! The process: shutdown with open streams, bad settings, a port in use (contract 1). These
//! start their own processes of the server, so they run only where the suite can (`--spawn`,
//! and `cargo test -p conformance`).

use std::time::{Duration, Instant};

use super::expect::{ensure_header_eq, ensure_status};
use super::{Checked, ensure, events, marker, pass, read_through, skip};
use crate::spawn::{Launcher, Server};
use crate::target::{Ctx, ServerConfig, Target};
use crate::wire::{BodyEnd, RawStream};

/// Streams held open through the shutdown ("thousands", well inside the open-file limit).
const SHUTDOWN_STREAMS: usize = 1000;

fn launcher(ctx: &Ctx) -> Result<&Launcher, Checked> {
    ctx.launcher()
        .ok_or_else(|| skip("needs a server the suite starts itself (--spawn BINARY)"))
}

pub async fn shutdown(ctx: &Ctx) -> Checked {
    let launcher = match launcher(ctx) {
        Ok(launcher) => launcher,
        Err(skipped) => return skipped,
    };
    let max_clients = (SHUTDOWN_STREAMS + 10).to_string();
    let mut server = launcher
        .start(&[("MAX_CLIENTS", &max_clients), ("TICK_MS", "100")])
        .await?;
    let address = server.address();

    let mut readers = Vec::with_capacity(SHUTDOWN_STREAMS);
    for _ in 0..SHUTDOWN_STREAMS {
        let mut stream = RawStream::get(&launcher.transport, address, "/events", &[]).await?;
        ensure!(
            stream.head.status == 200,
            "stream answered {}",
            stream.head.describe()
        );
        // Read until the stream ends; how long that may take is counted from the SIGTERM below
        // (opening a thousand streams can itself take seconds on a loaded machine).
        readers.push(tokio::spawn(async move {
            let _ = stream.read_to_end(Duration::from_secs(300)).await;
            stream.end
        }));
    }
    server.terminate()?;
    let signalled = Instant::now();
    let status = server.wait(Duration::from_secs(5)).await;
    let took = signalled.elapsed();
    // Once the process is gone every socket is closed, so a stream still unended by then has
    // only to be read to its close.
    let deadline = tokio::time::Instant::from_std(signalled) + Duration::from_secs(10);
    let mut ends = (0, 0, 0, 0);
    for mut reader in readers {
        let end = match tokio::time::timeout_at(deadline, &mut reader).await {
            Ok(end) => end.map_err(|e| e.to_string())?,
            Err(_) => {
                reader.abort();
                None
            }
        };
        match end {
            Some(BodyEnd::Clean) => ends.0 += 1,
            Some(BodyEnd::Truncated) => ends.1 += 1,
            Some(BodyEnd::Reset) => ends.2 += 1,
            None => ends.3 += 1,
        }
    }
    let output = server.output();
    let status = status.ok_or_else(|| {
        format!("the server did not exit within 5 s of SIGTERM; output: {output}")
    })?;
    ensure!(
        status.success(),
        "the server exited with {status} after SIGTERM (expected 0); output: {output}"
    );
    ensure!(
        took <= Duration::from_secs(2),
        "the server took {} ms to exit after SIGTERM (at most 2000)",
        took.as_millis()
    );
    ensure!(
        ends.0 == SHUTDOWN_STREAMS,
        "of {SHUTDOWN_STREAMS} open streams, {} ended cleanly, {} were cut without the end of the chunked body, {} were reset, {} never ended",
        ends.0,
        ends.1,
        ends.2,
        ends.3
    );
    pass()
}

pub async fn config_errors(ctx: &Ctx) -> Checked {
    let launcher = match launcher(ctx) {
        Ok(launcher) => launcher,
        Err(skipped) => return skipped,
    };
    let bad = [
        ("TICK_MS", "abc"),
        ("TICK_MS", "86400001"),
        ("HEARTBEAT_MS", "0"),
        ("RETRY_MS", "-1"),
        ("REPLAY_CAPACITY", "0"),
        ("MAX_CLIENTS", "1000001"),
        ("CLIENT_BUFFER", "1.5"),
        // One past each end of each range.
        ("HEARTBEAT_MS", "86400001"),
        ("RETRY_MS", "86400001"),
        ("REPLAY_CAPACITY", "1000001"),
        ("MAX_CLIENTS", "0"),
        ("CLIENT_BUFFER", "0"),
        ("CLIENT_BUFFER", "1000001"),
        ("TICK_MS", "18446744073709551616"),
        ("PORT", "70000"),
        ("HOST", "not-an-address"),
        ("EVENT_LOG", "redis://"),
        ("EVENT_LOG", "memcached://127.0.0.1:11211"),
        ("EVENT_LOG_KEY", "no spaces"),
        (
            "EVENT_LOG_KEY",
            "k23456789012345678901234567890123456789012345678901234567890123456",
        ),
    ];
    for (variable, value) in bad {
        refused_at_start(launcher, &[(variable, value)], variable, value).await?;
    }
    // An empty value counts as unset: the server starts.
    let mut server = launcher
        .start(&[("TICK_MS", ""), ("HEARTBEAT_MS", "")])
        .await?;
    let status = server.stop(Duration::from_secs(3)).await;
    ensure!(
        status.is_some_and(|s| s.success()),
        "with TICK_MS='' the server did not run and stop cleanly: {status:?}"
    );
    pass()
}

/// Starting with `settings` must fail with status 2 and one line of output naming `variable`
/// and `value` (the contract's answer to a setting that cannot be used).
pub(super) async fn refused_at_start(
    launcher: &Launcher,
    settings: &[(&str, &str)],
    variable: &str,
    value: &str,
) -> Result<(), String> {
    let (status, output) = launcher
        .run_to_exit(settings, Duration::from_secs(10))
        .await?;
    let lines: Vec<&str> = output.lines().filter(|l| !l.trim().is_empty()).collect();
    ensure!(
        status.code() == Some(2),
        "{settings:?}: exited with {status} instead of 2; output: {output:?}"
    );
    ensure!(
        lines.len() == 1 && lines[0].contains(variable) && lines[0].contains(value),
        "{settings:?}: expected one line naming {variable} and {value:?}, got {output:?}"
    );
    Ok(())
}

pub async fn port_in_use(ctx: &Ctx) -> Checked {
    let launcher = match launcher(ctx) {
        Ok(launcher) => launcher,
        Err(skipped) => return skipped,
    };
    let taken = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| format!("cannot bind a port to take: {e}"))?;
    let port = taken
        .local_addr()
        .map_err(|e| e.to_string())?
        .port()
        .to_string();
    let (status, output) = launcher
        .run_to_exit(&[("PORT", &port)], Duration::from_secs(10))
        .await?;
    let lines: Vec<&str> = output.lines().filter(|l| !l.trim().is_empty()).collect();
    ensure!(
        status.code() == Some(1),
        "with port {port} taken: exited with {status} instead of 1; output: {output:?}"
    );
    ensure!(
        lines.len() == 1 && lines[0].contains(&port) && lines[0].contains("PORT"),
        "with port {port} taken: expected one line naming the port and PORT, got {output:?}"
    );
    pass()
}

/// How much longer than the contract's 10 s of retrying a process may take to give up.
const GIVE_UP_MARGIN: Duration = Duration::from_secs(4);

pub async fn log_unreachable(ctx: &Ctx) -> Checked {
    let launcher = match launcher(ctx) {
        Ok(launcher) => launcher,
        Err(skipped) => return skipped,
    };
    // A port of 127.0.0.1 that nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map_err(|e| format!("cannot find a free port: {e}"))?
        .port();
    let url = format!("redis://127.0.0.1:{port}");
    let started = Instant::now();
    let (status, output) = launcher
        .run_to_exit(
            &[("EVENT_LOG", &url)],
            Duration::from_secs(10) + GIVE_UP_MARGIN,
        )
        .await
        .map_err(|e| format!("with EVENT_LOG={url} (nothing listening): {e}"))?;
    let took = started.elapsed();
    let lines: Vec<&str> = output.lines().filter(|l| !l.trim().is_empty()).collect();
    ensure!(
        status.code() == Some(1),
        "with EVENT_LOG={url} (nothing listening): exited with {status} after {} ms instead of 1; output: {output:?}",
        took.as_millis()
    );
    ensure!(
        lines.len() == 1 && lines[0].contains(&url),
        "with EVENT_LOG={url} (nothing listening): expected one line naming the URL, got {output:?}"
    );
    pass()
}

pub async fn log_capacity(ctx: &Ctx) -> Checked {
    let launcher = match launcher(ctx) {
        Ok(launcher) => launcher,
        Err(skipped) => return skipped,
    };
    if ctx.health.log_backend != "redis" {
        return skip("needs a server on a shared event log (EVENT_LOG=redis://…)");
    }
    // Another process on the same log (the launcher's EVENT_LOG), with another capacity.
    let ours = ctx.config().replay_capacity;
    let other = (ours + 1).to_string();
    let (status, output) = launcher
        .run_to_exit(
            &[("REPLAY_CAPACITY", &other)],
            Duration::from_secs(10) + GIVE_UP_MARGIN,
        )
        .await
        .map_err(|e| format!("with REPLAY_CAPACITY={other} on a log made with {ours}: {e}"))?;
    let lines: Vec<&str> = output.lines().filter(|l| !l.trim().is_empty()).collect();
    ensure!(
        status.code() == Some(2),
        "with REPLAY_CAPACITY={other} on a log made with {ours}: exited with {status} instead of 2; output: {output:?}"
    );
    ensure!(
        lines.len() == 1
            && lines[0].contains("REPLAY_CAPACITY")
            && lines[0].contains(&other)
            && lines[0].contains(&ours.to_string()),
        "with REPLAY_CAPACITY={other} on a log made with {ours}: expected one line naming both values, got {output:?}"
    );
    pass()
}

/// A server just started, on an event log of its own: nothing published yet, ids from 1, the
/// clock's K from 1, and `TICK_MS=0` meaning no ticks at all.
pub async fn fresh_start(ctx: &Ctx) -> Checked {
    let launcher = match launcher(ctx) {
        Ok(launcher) => launcher,
        Err(skipped) => return skipped,
    };
    // On a shared log, a key of its own is a log of its own (the memory log is new anyway).
    let key = marker("fresh-start");
    let mut server = launcher
        .start(&[("TICK_MS", "0"), ("EVENT_LOG_KEY", &key)])
        .await?;
    let silent = without_ticks(&server, launcher).await;
    server.stop(Duration::from_secs(3)).await;
    silent?;
    let key = marker("fresh-start");
    let mut server = launcher
        .start(&[("TICK_MS", "200"), ("EVENT_LOG_KEY", &key)])
        .await?;
    let ticking = first_tick(&server, launcher).await;
    server.stop(Duration::from_secs(3)).await;
    ticking?;
    pass()
}

/// With `TICK_MS=0`: `last_id` 0, a resume from 5 gets a gap with `oldest_id: null`, the first
/// publication gets id 1, and no tick ever comes.
async fn without_ticks(server: &Server, launcher: &Launcher) -> Result<(), String> {
    let ctx = Ctx::connect(Target::spawned(server, launcher.clone())).await?;
    let health = ctx.health_now().await?;
    ensure!(
        health.last_id == 0 && health.config.tick_ms == 0,
        "just started with TICK_MS=0, /health says last_id {} and tick_ms {} (expected 0 and 0)",
        health.last_id,
        health.config.tick_ms
    );
    let mut beyond = ctx
        .open_stream("/events", &[("Last-Event-ID", "5")])
        .await?;
    let (blocks, found) = beyond
        .read_until(Duration::from_secs(5), |block| block.event.is_some())
        .await?;
    ensure!(
        found,
        "resuming from 5 on a server that has published nothing, no event came; the stream gave {}",
        beyond.body_sample()
    );
    let gap = events(&blocks)[0];
    let (last_event_id, oldest) = super::replay::gap_of(gap)
        .map_err(|e| format!("resuming from 5 with nothing published: {e}"))?;
    ensure!(
        last_event_id == Some(5) && oldest.is_none(),
        "resuming from 5 with nothing published: gap {:?} (expected {{\"last_event_id\":5,\"oldest_id\":null}})",
        gap.data
    );
    let mut stream = ctx
        .open_stream("/events", &[("Last-Event-ID", "0")])
        .await?;
    let name = marker("fresh-start");
    let id = ctx.publish(Some(&name), serde_json::json!("first")).await?;
    ensure!(
        id == 1,
        "the first event published got id {id} (ids start at 1)"
    );
    let blocks = read_through(&mut stream, 1, Duration::from_secs(5)).await?;
    let seen: Vec<(Option<&str>, &str)> = events(&blocks)
        .into_iter()
        .map(|event| (event.id.as_deref(), event.event_type.as_str()))
        .collect();
    ensure!(
        seen == [(Some("1"), name.as_str())],
        "resuming from 0 before the first event, the stream got {seen:?} (expected only id 1, {name})"
    );
    let health = ctx.health_now().await?;
    ensure!(
        health.last_id == 1,
        "after the first event, /health says last_id {}",
        health.last_id
    );
    // No tick, however long one waits: three heartbeats of silence but for comments.
    let quiet = Duration::from_millis(3 * health.config.heartbeat_ms.max(300));
    let (blocks, found) = stream
        .read_until(quiet, |block| block.event.is_some())
        .await?;
    ensure!(
        !found,
        "with TICK_MS=0 an event came unasked: {:?}",
        events(&blocks).first()
    );
    Ok(())
}

/// With ticks: the first tick has id 1 and K 1 (read back from the buffer, whenever it came).
async fn first_tick(server: &Server, launcher: &Launcher) -> Result<(), String> {
    let ctx = Ctx::connect(Target::spawned(server, launcher.clone())).await?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while ctx.health_now().await?.last_id == 0 {
        ensure!(
            Instant::now() < deadline,
            "with TICK_MS=200, no event was published within 10 s of the start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut stream = ctx
        .open_stream("/events", &[("Last-Event-ID", "0")])
        .await?;
    let blocks = read_through(&mut stream, 1, Duration::from_secs(5)).await?;
    let first = events(&blocks)
        .into_iter()
        .next()
        .ok_or("resuming from 0, no event")?;
    ensure!(
        first.id.as_deref() == Some("1")
            && first.event_type == "tick"
            && first.data.starts_with(r#"{"tick":1,"#),
        "the first event of a server with TICK_MS=200 is id {:?}, {:?}, data {:?} (expected id 1, a tick with K 1)",
        first.id,
        first.event_type,
        first.data
    );
    Ok(())
}

/// Every range at both of its ends is accepted and reported as set; every setting left empty
/// is its default; an empty `TRIGGER_TOKEN` asks for no token.
pub async fn config_edges(ctx: &Ctx) -> Checked {
    let launcher = match launcher(ctx) {
        Ok(launcher) => launcher,
        Err(skipped) => return skipped,
    };
    let low = ServerConfig {
        tick_ms: 0,
        heartbeat_ms: 1,
        retry_ms: 0,
        replay_capacity: 1,
        max_clients: 1,
        client_buffer: 1,
        auth: true,
    };
    let high = ServerConfig {
        tick_ms: 86_400_000,
        heartbeat_ms: 86_400_000,
        retry_ms: 86_400_000,
        replay_capacity: 1_000_000,
        max_clients: 1_000_000,
        client_buffer: 1_000_000,
        auth: true,
    };
    // The contract's defaults (section 1), written out: the suite checks any server against
    // the contract, never against sse-core's own code.
    let defaults = ServerConfig {
        tick_ms: 1000,
        heartbeat_ms: 15_000,
        retry_ms: 3000,
        replay_capacity: 1024,
        max_clients: 10_000,
        client_buffer: 256,
        auth: false,
    };
    for (what, config) in [("the lowest", &low), ("the highest", &high)] {
        let values = [
            ("TICK_MS", config.tick_ms),
            ("HEARTBEAT_MS", config.heartbeat_ms),
            ("RETRY_MS", config.retry_ms),
            ("REPLAY_CAPACITY", config.replay_capacity),
            ("MAX_CLIENTS", config.max_clients),
            ("CLIENT_BUFFER", config.client_buffer),
        ]
        .map(|(name, value)| (name, value.to_string()));
        // A log of its own, made with this REPLAY_CAPACITY.
        let key = marker("config-edges");
        let mut env: Vec<(&str, &str)> = values.iter().map(|(n, v)| (*n, v.as_str())).collect();
        env.push(("EVENT_LOG_KEY", &key));
        let reported = reported_config(launcher, &env).await;
        let reported = reported.map_err(|e| format!("with {what} values {env:?}: {e}"))?;
        ensure!(
            reported == *config,
            "with {what} values {env:?}, /health reports {reported:?}"
        );
    }
    let empty: Vec<(&str, &str)> = [
        "TICK_MS",
        "HEARTBEAT_MS",
        "RETRY_MS",
        "REPLAY_CAPACITY",
        "MAX_CLIENTS",
        "CLIENT_BUFFER",
        "TRIGGER_TOKEN",
        "CORS_ORIGIN",
    ]
    .into_iter()
    .map(|name| (name, ""))
    .collect();
    let key = marker("config-edges");
    let mut env = empty.clone();
    env.push(("EVENT_LOG_KEY", &key));
    let mut server = launcher.start(&env).await?;
    let checked = defaults_in_use(&server, launcher, &defaults).await;
    server.stop(Duration::from_secs(3)).await;
    checked.map_err(|e| format!("with every setting empty: {e}"))?;
    pass()
}

/// Starts a server with these settings and reads back what `/health` says they are.
async fn reported_config(
    launcher: &Launcher,
    env: &[(&str, &str)],
) -> Result<ServerConfig, String> {
    let mut server = launcher.start(env).await?;
    let health = Ctx::connect(Target::spawned(&server, launcher.clone()))
        .await
        .map(|ctx| ctx.health.config.clone());
    server.stop(Duration::from_secs(3)).await;
    health
}

async fn defaults_in_use(
    server: &Server,
    launcher: &Launcher,
    defaults: &ServerConfig,
) -> Result<(), String> {
    let mut target = Target::spawned(server, launcher.clone());
    target.token = None;
    target.origin = "*".to_owned();
    let ctx = Ctx::connect(target).await?;
    ensure!(
        ctx.health.config == *defaults,
        "/health reports {:?} (expected the defaults {defaults:?})",
        ctx.health.config
    );
    // No token asked for, and every origin allowed.
    let answer = ctx
        .trigger(&serde_json::json!({"data": "no token"}))
        .await?;
    let what = "a trigger without a token, every setting empty";
    ensure_status(&answer, what, 202)?;
    ensure_header_eq(&answer, what, "Access-Control-Allow-Origin", "*")?;
    Ok(())
}
