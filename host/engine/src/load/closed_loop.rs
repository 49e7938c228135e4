//! Closed-loop stages: a number of virtual users, each sending its next
//! unit when the last one's response has ended (and the think time passed),
//! until the stage's duration or request count.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::feeder::Feed;
use super::request::{Turn, UnitEnd, send_unit, think};
use super::shape;
use super::shared::{Ctx, Window};
use crate::config::{Shard, Stage};

/// Run stage `index` with its virtual users, taking units from `feed`;
/// returns how many requests were sent. A shard runs the users it owns
/// (user I, I + N, …: the union of the shards is every user, and a ramp's
/// users join and leave at the same times), with its share of `requests`.
pub(super) fn run(
    ctx: &Arc<Ctx>,
    feed: &Arc<Feed>,
    handle: &tokio::runtime::Handle,
    (index, stage): (usize, &Stage),
    shard: Option<Shard>,
    start: Instant,
) -> u64 {
    let users = stage.concurrency.unwrap_or(1).max(stage.from_concurrency.unwrap_or(0));
    let window = Window::of(stage, start);
    let deadline = stage.duration_s.map(|d| start + Duration::from_secs_f64(d));
    let requests = stage.requests.map(|r| shard.map_or(r, |s| s.owned_in(0, r)));
    let budget = Arc::new(AtomicU64::new(requests.unwrap_or(u64::MAX)));
    let launched = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..users)
        .filter(|&user| shard.is_none_or(|s| s.owns(user as u64)))
        .map(|user| {
            let ctx = ctx.clone();
            let feed = feed.clone();
            let stage = stage.clone();
            let budget = budget.clone();
            let launched = launched.clone();
            handle.spawn(async move {
                let over = || ctx.stopping.load(Ordering::SeqCst) || deadline.is_some_and(|d| Instant::now() >= d);
                let mut first = true;
                loop {
                    if !first {
                        let pause = Duration::from_secs_f64(stage.think_time_ms / 1000.0);
                        if !pause.is_zero() && !think(&ctx, pause).await {
                            return;
                        }
                    }
                    first = false;
                    if over() {
                        return;
                    }
                    // A concurrency ramp: users above the current target wait.
                    if user >= shape::users_at(&stage, start.elapsed().as_secs_f64()) {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        first = true;
                        continue;
                    }
                    let Some(ready) = feed.next().await else { return };
                    ctx.counters.in_flight.fetch_add(1, Ordering::SeqCst);
                    let finished = send_unit(&ctx, ready, &stage, |k| {
                        if k > 0 && over() {
                            return None;
                        }
                        budget
                            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |b| b.checked_sub(1))
                            .ok()?;
                        launched.fetch_add(1, Ordering::Relaxed);
                        ctx.counters.sent.fetch_add(1, Ordering::Relaxed);
                        Some(Turn {
                            stage: index,
                            scheduled: Instant::now(),
                            window,
                            queue_wait: None,
                        })
                    })
                    .await;
                    ctx.counters.in_flight.fetch_sub(1, Ordering::SeqCst);
                    // A missed request (no connection in time) leaves the user to try its next.
                    if finished == UnitEnd::Stopped {
                        return;
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        let _ = handle.block_on(t);
    }
    launched.load(Ordering::Relaxed)
}
