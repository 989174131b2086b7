//! The checks for a cluster (contract section 7): several instances — of any frameworks — on one
//! shared event log, checked as one server. Each check names its rule; like the single-server
//! checks, each is shown to fail against the broken server with its rule broken
//! (`tests/cluster.rs`).
//!
//! The checks that stop or restart instances start their own, from the members' launchers
//! (`--spawn-cluster`, or the tests), on a log key of their own where the rule needs a cluster
//! whose every member they control.

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant, SystemTime};

use serde_json::json;

use crate::checks::ticks::{Tick, parse_tick};
use crate::checks::{
    Checked, Outcome, abbreviate, ensure, ensure_consecutive, events, id_of, marker, pass,
    read_through, skip,
};
use crate::proxy::LogProxy;
use crate::report::{CheckResult, ServerReport, selected};
use crate::spawn::{Launcher, Server};
use crate::target::{Ctx, Target};
use crate::wire::RawStream;

/// The members of one cluster, and (when the suite started them) how to start more.
pub struct ClusterCtx {
    pub members: Vec<Ctx>,
    /// One per member, with its `EVENT_LOG` (and key) set.
    pub launchers: Option<Vec<Launcher>>,
}

impl ClusterCtx {
    /// Connects to every member; all must be on a shared log.
    pub async fn connect(
        targets: Vec<Target>,
        launchers: Option<Vec<Launcher>>,
    ) -> Result<Self, String> {
        let mut members = Vec::new();
        for target in targets {
            let base = target.base.clone();
            let ctx = Ctx::connect(target).await?;
            ensure!(
                ctx.health.log_backend == "redis",
                "{base} is not on a shared event log (its /health says log.backend {:?})",
                ctx.health.log_backend
            );
            members.push(ctx);
        }
        ensure!(members.len() >= 2, "a cluster needs at least two instances");
        Ok(Self { members, launchers })
    }

    fn tick_ms(&self) -> u64 {
        self.members[0].config().tick_ms
    }

    fn launchers(&self) -> Result<&[Launcher], Checked> {
        self.launchers
            .as_deref()
            .ok_or_else(|| skip("needs instances the suite starts itself (--spawn-cluster)"))
    }
}

type CheckFuture<'a> = Pin<Box<dyn Future<Output = Checked> + Send + 'a>>;

/// A rule of section 7 and the code that checks it against a cluster.
pub struct ClusterCheck {
    pub name: &'static str,
    pub section: &'static str,
    pub summary: &'static str,
    run: for<'a> fn(&'a ClusterCtx) -> CheckFuture<'a>,
}

impl ClusterCheck {
    pub async fn run(&self, ctx: &ClusterCtx) -> Outcome {
        match tokio::time::timeout(crate::checks::CHECK_TIMEOUT, (self.run)(ctx)).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(failure)) => Outcome::Fail(failure),
            Err(_) => Outcome::Fail("did not finish in time".into()),
        }
    }
}

macro_rules! cluster_check {
    ($name:literal, $section:literal, $summary:literal, $run:path) => {
        ClusterCheck {
            name: $name,
            section: $section,
            summary: $summary,
            run: |ctx| Box::pin($run(ctx)),
        }
    };
}

/// Every cluster check, in the order they run.
pub fn all() -> Vec<ClusterCheck> {
    vec![
        cluster_check!(
            "cluster-delivery",
            "7",
            "an event published on any instance reaches every instance, same id and data",
            delivery
        ),
        cluster_check!(
            "cluster-resume",
            "7",
            "resuming on another instance gives exactly N+1, …, also on one held behind the log",
            resume
        ),
        cluster_check!(
            "cluster-ids",
            "7",
            "concurrent publishers on every instance: distinct ids, consecutive on every stream",
            ids
        ),
        cluster_check!(
            "cluster-clock",
            "7",
            "one tick clock for the cluster: the same ticks everywhere, K consecutive",
            clock
        ),
        cluster_check!(
            "cluster-clock-failover",
            "7",
            "the clock's holder killed: ticks resume within TICK_MS + 3 s, K goes on",
            clock_failover
        ),
        cluster_check!(
            "cluster-clock-fenced",
            "7",
            "the clock's holder paused past its lease and continued: it never ticks again",
            clock_fenced
        ),
        cluster_check!(
            "cluster-idempotency",
            "4",
            "an Idempotency-Key retry on another instance publishes once",
            idempotency
        ),
        cluster_check!(
            "cluster-restart",
            "7",
            "an instance restarted continues the ids, and resumes its clients without a gap",
            restart
        ),
    ]
}

/// Runs the selected cluster checks, reporting each as it ends.
pub async fn run_cluster_checks(
    label: &str,
    targets: Vec<Target>,
    launchers: Option<Vec<Launcher>>,
    only: &[String],
    mut progress: impl FnMut(&str, &CheckResult),
) -> ServerReport {
    let ctx = match ClusterCtx::connect(targets, launchers).await {
        Ok(ctx) => ctx,
        Err(error) => return ServerReport::unreachable(label, error),
    };
    let name = format!(
        "cluster({})",
        ctx.members
            .iter()
            .map(|m| m.health.framework.as_str())
            .collect::<Vec<_>>()
            .join("+")
    );
    let mut results = Vec::new();
    for check in all().into_iter().filter(|c| selected(c.name, only)) {
        let started = Instant::now();
        let outcome = check.run(&ctx).await;
        let result = CheckResult {
            name: check.name,
            outcome,
            took: started.elapsed(),
        };
        progress(&name, &result);
        results.push(result);
    }
    ServerReport {
        label: label.to_owned(),
        framework: Some(name),
        transport: None,
        unreachable: None,
        results,
    }
}

/// Opens a live stream on every member.
async fn streams(ctx: &ClusterCtx) -> Result<Vec<RawStream>, String> {
    let mut streams = Vec::new();
    for member in &ctx.members {
        streams.push(member.open_stream("/events", &[]).await?);
    }
    Ok(streams)
}

async fn delivery(ctx: &ClusterCtx) -> Checked {
    let mut streams = streams(ctx).await?;
    for (from, publisher) in ctx.members.iter().enumerate() {
        let name = marker("cluster-delivery");
        let data = json!({ "from": from, "framework": publisher.health.framework });
        let id = publisher.publish(Some(&name), data.clone()).await?;
        for (to, stream) in streams.iter_mut().enumerate() {
            let blocks = read_through(stream, id, Duration::from_secs(10))
                .await
                .map_err(|e| format!("published on instance {from}, on instance {to}: {e}"))?;
            let got: Vec<(Option<u64>, &str)> = events(&blocks)
                .into_iter()
                .filter(|e| e.event_type == name)
                .map(|e| (id_of(e), e.data.as_str()))
                .collect();
            let want = data.to_string();
            ensure!(
                got == [(Some(id), want.as_str())],
                "published on instance {from} ({}) with id {id}: instance {to} ({}) delivered {got:?}",
                publisher.health.framework,
                ctx.members[to].health.framework
            );
        }
    }
    pass()
}

async fn resume(ctx: &ClusterCtx) -> Checked {
    const BURST: usize = 20;
    let n = ctx.members.len();
    for round in 0..2 * n {
        let (publisher, resumer) = (&ctx.members[round % n], &ctx.members[(round + 1) % n]);
        let name = marker("cluster-resume");
        let mut ids = Vec::with_capacity(BURST);
        for i in 0..BURST {
            ids.push(publisher.publish(Some(&name), json!(i)).await?);
        }
        // At once, before the other instance may have seen them: one resume from the middle of
        // the burst, one from its very end (header, then query parameter).
        for (resume_from, path) in [
            (ids[BURST / 2 - 1], None),
            (
                ids[BURST - 1],
                Some(format!("/events?lastEventId={}", ids[BURST - 1])),
            ),
        ] {
            let header = resume_from.to_string();
            let mut stream = match &path {
                None => {
                    resumer
                        .open_stream("/events", &[("last-event-id", &header)])
                        .await?
                }
                Some(path) => resumer.open_stream(path, &[]).await?,
            };
            let through = publisher.publish(Some(&name), json!("after")).await?;
            let blocks = read_through(&mut stream, through, Duration::from_secs(10)).await?;
            let seen = events(&blocks);
            ensure!(
                seen.iter().all(|e| e.event_type != "gap"),
                "resumed on {} after {resume_from} (published on {}): got a gap event {:?}",
                resumer.health.framework,
                publisher.health.framework,
                seen.iter().find(|e| e.event_type == "gap").map(|e| &e.data)
            );
            let got: Vec<u64> = seen.iter().filter_map(|e| id_of(e)).collect();
            ensure_consecutive(
                &got,
                resume_from + 1,
                &format!(
                    "resumed on {} after {resume_from}, an id published on {}",
                    resumer.health.framework, publisher.health.framework
                ),
            )?;
            ensure!(
                got.last() == Some(&through),
                "resumed after {resume_from}: the stream ended its read at {:?}, not {through}",
                got.last()
            );
        }
    }
    match ctx.launchers() {
        Ok(launchers) => resume_while_behind(ctx, launchers).await,
        // Without launchers the race above is all that can be checked.
        Err(_) => pass(),
    }
}

/// An instance whose reader is held behind the log (a proxy in front of Redis withholds what
/// its tail reads get) must still resume a client from an id it has not seen: from the log.
async fn resume_while_behind(ctx: &ClusterCtx, launchers: &[Launcher]) -> Checked {
    let launcher = &launchers[1 % launchers.len()];
    let Some(upstream) = launcher
        .env
        .iter()
        .find(|(name, _)| name == "EVENT_LOG")
        .and_then(|(_, url)| url.strip_prefix("redis://"))
        .and_then(|rest| rest.split('/').next())
        .and_then(|address| {
            std::net::ToSocketAddrs::to_socket_addrs(address)
                .ok()?
                .next()
        })
    else {
        return skip("needs instances started with EVENT_LOG=redis://HOST:PORT");
    };
    let proxy = LogProxy::start(upstream).await?;
    let mut behind = launcher.start(&[("EVENT_LOG", &proxy.url())]).await?;
    let behind_ctx = Ctx::connect(Target::spawned(&behind, launcher.clone())).await?;
    let publisher = &ctx.members[0];
    let name = marker("cluster-resume-behind");
    proxy.hold_readers(true);
    let mut ids = Vec::new();
    for i in 0..10 {
        ids.push(publisher.publish(Some(&name), json!(i)).await?);
    }
    let seen_there = behind_ctx.health_now().await?.last_id;
    let resume_from = ids[4];
    let mut stream = behind_ctx
        .open_stream("/events", &[("last-event-id", &resume_from.to_string())])
        .await?;
    let replayed = read_through(&mut stream, ids[9], Duration::from_secs(5)).await;
    proxy.hold_readers(false);
    let through = publisher.publish(Some(&name), json!("after")).await?;
    let mut blocks = replayed.map_err(|e| {
        format!(
            "an instance held behind the log (it had seen id {seen_there}) did not replay after {resume_from} from the log: {e}"
        )
    })?;
    blocks.extend(read_through(&mut stream, through, Duration::from_secs(10)).await?);
    let seen = events(&blocks);
    ensure!(
        seen.iter().all(|e| e.event_type != "gap"),
        "an instance held behind the log (it had seen id {seen_there}) answered a resume after {resume_from} with a gap event"
    );
    let got: Vec<u64> = seen.iter().filter_map(|e| id_of(e)).collect();
    ensure_consecutive(
        &got,
        resume_from + 1,
        &format!("resumed after {resume_from} on an instance held behind at {seen_there}"),
    )?;
    behind.stop(Duration::from_secs(3)).await;
    pass()
}

async fn ids(ctx: &ClusterCtx) -> Checked {
    const PUBLISHERS: usize = 4;
    const EACH: usize = 200;
    let mut streams = streams(ctx).await?;
    let name = marker("cluster-ids");
    let publishers = (0..PUBLISHERS).map(|p| {
        let member = &ctx.members[p % ctx.members.len()];
        let name = &name;
        async move {
            let mut ids = Vec::with_capacity(EACH);
            for i in 0..EACH {
                ids.push(member.publish(Some(name), json!([p, i])).await?);
            }
            Ok::<_, String>(ids)
        }
    });
    let mut answered: Vec<u64> = Vec::new();
    for ids in futures_util::future::join_all(publishers).await {
        answered.extend(ids?);
    }
    answered.sort_unstable();
    let count = answered.len();
    answered.dedup();
    ensure!(
        answered.len() == count,
        "{} of {count} answered ids were given twice: {}",
        count - answered.len(),
        abbreviate(&answered)
    );
    let last = *answered.last().expect("published");
    for (i, stream) in streams.iter_mut().enumerate() {
        let framework = &ctx.members[i].health.framework;
        let blocks = read_through(stream, last, Duration::from_secs(30)).await?;
        let seen: Vec<u64> = events(&blocks).into_iter().filter_map(id_of).collect();
        let first = *seen.first().ok_or("no events")?;
        ensure_consecutive(
            &seen,
            first,
            &format!("the stream on instance {i} ({framework})"),
        )?;
        ensure!(
            first <= answered[0],
            "the stream on instance {i} ({framework}), opened before publishing, began at {first}, after the first answered id {}",
            answered[0]
        );
    }
    pass()
}

fn needs_ticks(ctx: &ClusterCtx) -> Option<Checked> {
    let tick_ms = ctx.tick_ms();
    (tick_ms == 0 || tick_ms > 2000)
        .then(|| skip(format!("needs tick_ms from 1 to 2000 (has {tick_ms})")))
}

/// Every tick a stream gives within `window`.
async fn ticks_within(stream: &mut RawStream, window: Duration) -> Result<Vec<Tick>, String> {
    let (blocks, _) = stream.read_until(window, |_| false).await?;
    events(&blocks)
        .into_iter()
        .filter(|e| e.event_type == "tick")
        .map(parse_tick)
        .collect()
}

/// Fails unless the ticks' K count up by one and their ids rise.
fn ensure_one_clock(ticks: &[Tick], what: &str) -> Result<(), String> {
    for pair in ticks.windows(2) {
        ensure!(
            pair[1].k == pair[0].k + 1 && pair[1].id > pair[0].id,
            "{what}: tick K={} (id {}) followed by K={} (id {}); ticks: {:?}",
            pair[0].k,
            pair[0].id,
            pair[1].k,
            pair[1].id,
            ticks.iter().map(|t| (t.id, t.k)).collect::<Vec<_>>()
        );
    }
    Ok(())
}

async fn clock(ctx: &ClusterCtx) -> Checked {
    if let Some(skipped) = needs_ticks(ctx) {
        return skipped;
    }
    let periods = 6;
    let tick_ms = ctx.tick_ms();
    let window = Duration::from_millis(tick_ms * periods);
    let mut streams = streams(ctx).await?;
    let reads = streams.iter_mut().map(|s| ticks_within(s, window));
    let mut seen = Vec::new();
    for ticks in futures_util::future::join_all(reads).await {
        seen.push(ticks?);
    }
    for (i, ticks) in seen.iter().enumerate() {
        let what = format!("instance {i} ({})", ctx.members[i].health.framework);
        ensure!(
            ticks.len() >= 2,
            "{what}: {} ticks in {} ms with TICK_MS={tick_ms}",
            ticks.len(),
            window.as_millis()
        );
        ensure!(
            ticks.len() as u64 <= periods + 2,
            "{what}: {} ticks in {} periods of TICK_MS={tick_ms}: more than one clock",
            ticks.len(),
            periods
        );
        ensure_one_clock(ticks, &what)?;
        for tick in ticks {
            for (j, other) in seen.iter().enumerate() {
                if let Some(same) = other.iter().find(|t| t.id == tick.id) {
                    ensure!(
                        same.k == tick.k && same.time == tick.time,
                        "tick id {} is K={} on instance {i} and K={} on instance {j}",
                        tick.id,
                        tick.k,
                        same.k
                    );
                }
            }
        }
    }
    pass()
}

/// Sends a signal to a process the check started.
fn signal(server: &Server, signal: nix::sys::signal::Signal) -> Result<(), String> {
    let pid = server.pid().ok_or("the process has already exited")?;
    let pid = nix::unistd::Pid::from_raw(i32::try_from(pid).map_err(|_| "pid out of range")?);
    nix::sys::signal::kill(pid, signal).map_err(|e| format!("kill -{signal} {pid}: {e}"))
}

async fn clock_failover(ctx: &ClusterCtx) -> Checked {
    use nix::sys::signal::Signal::SIGKILL;
    if let Some(skipped) = needs_ticks(ctx) {
        return skipped;
    }
    let launchers = match ctx.launchers() {
        Ok(launchers) => launchers,
        Err(skipped) => return skipped,
    };
    let tick_ms = ctx.tick_ms();
    let period = Duration::from_millis(tick_ms);
    let (mut servers, ctxs) =
        own_clock_cluster(launchers, 3, "cluster-clock-failover", period).await?;
    let mut on_b = ctxs[1].open_stream("/events", &[]).await?;
    let mut on_c = ctxs[2].open_stream("/events", &[]).await?;
    let mut ticks_b = ticks_within(&mut on_b, period * 2).await?;

    // The holder dies: ticks resume within TICK_MS + 3 s, and K goes on.
    signal(&servers[0], SIGKILL)?;
    let killed = SystemTime::now();
    let bound = period + Duration::from_secs(3);
    let after = ticks_within(&mut on_b, bound + Duration::from_millis(500)).await?;
    let resumed = after.iter().find(|t| t.time > killed);
    ensure!(
        resumed.is_some_and(|t| t.time.duration_since(killed).unwrap_or_default() <= bound),
        "after the clock's holder was killed, ticks resumed {} (allowed: within {} ms); ticks after: {:?}",
        resumed.map_or("never".to_owned(), |t| format!(
            "after {} ms",
            t.time
                .duration_since(killed)
                .unwrap_or_default()
                .as_millis()
        )),
        bound.as_millis(),
        after.iter().map(|t| (t.id, t.k)).collect::<Vec<_>>()
    );
    ticks_b.extend(after);
    let _ = servers[0].wait(Duration::from_secs(5)).await;

    ticks_b.extend(ticks_within(&mut on_b, period * 2).await?);
    let ticks_c = ticks_within(&mut on_c, period).await?;
    for (what, ticks) in [("instance B", &ticks_b), ("instance C", &ticks_c)] {
        ensure_one_clock(
            ticks,
            &format!("{what} of a cluster whose clock failed over"),
        )?;
    }
    pass()
}

/// Starts a cluster of its own (a fresh key) whose first instance, started alone until it has
/// ticked, holds the clock; then the others. Returns the servers (holder first) and their ctxs.
async fn own_clock_cluster(
    launchers: &[Launcher],
    count: usize,
    name: &str,
    period: Duration,
) -> Result<(Vec<Server>, Vec<Ctx>), String> {
    let key = marker(name);
    let env = [("EVENT_LOG_KEY", key.as_str())];
    let launcher = |i: usize| &launchers[i % launchers.len()];
    let mut servers = vec![launcher(0).start(&env).await?];
    let mut ctxs = vec![Ctx::connect(Target::spawned(&servers[0], launcher(0).clone())).await?];
    let mut first = ctxs[0].open_stream("/events", &[]).await?;
    let before = ticks_within(&mut first, period * 2 + Duration::from_secs(2)).await?;
    ensure!(!before.is_empty(), "a lone instance published no tick");
    for i in 1..count {
        let server = launcher(i).start(&env).await?;
        ctxs.push(Ctx::connect(Target::spawned(&server, launcher(i).clone())).await?);
        servers.push(server);
    }
    Ok((servers, ctxs))
}

async fn clock_fenced(ctx: &ClusterCtx) -> Checked {
    use nix::sys::signal::Signal::{SIGCONT, SIGSTOP};
    if let Some(skipped) = needs_ticks(ctx) {
        return skipped;
    }
    let launchers = match ctx.launchers() {
        Ok(launchers) => launchers,
        Err(skipped) => return skipped,
    };
    let tick_ms = ctx.tick_ms();
    let period = Duration::from_millis(tick_ms);
    let (servers, ctxs) = own_clock_cluster(launchers, 2, "cluster-clock-fenced", period).await?;
    let mut watch = ctxs[1].open_stream("/events", &[]).await?;
    let mut ticks = ticks_within(&mut watch, period * 2).await?;
    // The holder is paused past its lease (the other takes the clock over), then continued:
    // its own timers are all overdue, and a tick it publishes now would be a second clock.
    signal(&servers[0], SIGSTOP)?;
    let during = ticks_within(&mut watch, Duration::from_secs(3)).await;
    signal(&servers[0], SIGCONT)?;
    ticks.extend(during?);
    ticks.extend(ticks_within(&mut watch, period * 4).await?);
    ensure_one_clock(
        &ticks,
        "a cluster whose clock's holder was paused and continued",
    )?;
    // One clock ticks every TICK_MS (a handover leaves a longer pause, never a shorter one): a
    // tick inside a period is a second clock, whatever its K.
    let least = Duration::from_millis(tick_ms * 6 / 10);
    for pair in ticks.windows(2) {
        let apart = pair[1]
            .time
            .duration_since(pair[0].time)
            .unwrap_or_default();
        ensure!(
            apart >= least,
            "ticks K={} and K={} were published {} ms apart with TICK_MS={tick_ms}: a paused holder ticked again after it lost the clock",
            pair[0].k,
            pair[1].k,
            apart.as_millis()
        );
    }
    drop(servers);
    pass()
}

async fn idempotency(ctx: &ClusterCtx) -> Checked {
    let n = ctx.members.len();
    crate::checks::idempotency::publishes_once(
        &ctx.members[0],
        &ctx.members[1 % n],
        &ctx.members[2 % n],
    )
    .await
}

async fn restart(ctx: &ClusterCtx) -> Checked {
    let launchers = match ctx.launchers() {
        Ok(launchers) => launchers,
        Err(skipped) => return skipped,
    };
    let launcher = &launchers[0];
    let name = marker("cluster-restart");
    let mut first = launcher.start(&[]).await?;
    let first_ctx = Ctx::connect(Target::spawned(&first, launcher.clone())).await?;
    let before = first_ctx.publish(Some(&name), json!("before")).await?;
    let status = first.stop(Duration::from_secs(3)).await;
    ensure!(
        status.is_some_and(|s| s.success()),
        "the instance did not stop cleanly: {status:?}"
    );
    let mut second = launcher.start(&[]).await?;
    let second_ctx = Ctx::connect(Target::spawned(&second, launcher.clone())).await?;
    ensure!(
        second_ctx.health.last_id >= before,
        "restarted, the instance's last_id is {} (before its restart it gave id {before})",
        second_ctx.health.last_id
    );
    let mut resumed = second_ctx
        .open_stream("/events", &[("last-event-id", &before.to_string())])
        .await?;
    let after = second_ctx.publish(Some(&name), json!("after")).await?;
    ensure!(
        after > before,
        "after a restart the instance gave id {after}, not above the {before} it gave before"
    );
    let blocks = read_through(&mut resumed, after, Duration::from_secs(10)).await?;
    let seen = events(&blocks);
    ensure!(
        seen.iter().all(|e| e.event_type != "gap"),
        "resumed after {before} on the restarted instance: got a gap event"
    );
    let got: Vec<u64> = seen.iter().filter_map(|e| id_of(e)).collect();
    ensure_consecutive(&got, before + 1, "resumed on the restarted instance")?;
    second.stop(Duration::from_secs(3)).await;
    pass()
}
