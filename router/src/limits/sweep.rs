//! The sweep of the tenant map (`Limits::sweep`, once a second): at most `BATCH` entries a
//! tick, from where the last tick stopped (the map is an `IndexMap`, so
//! the cursor is an index), so one tick costs the same at 1,000 tenants as
//! at 1,000,000, and every entry is seen within `len / BATCH` seconds.
//!
//! For each entry looked at:
//!
//! - with a connection open: in use, its idle time restarts;
//! - held by anything but the map (a login, a watch, a scrape, an admin
//!   read): kept, its idle time running on (it restarts when a connection
//!   slot is released and when a session takes the entry);
//! - else, unused for `metrics.tenant_idle_ms`: removed, with its counters,
//!   QPS bucket, latency window, session registry and series (it starts
//!   from zero on its next connection);
//! - else: compacted (a latency window with nothing recent left and ended
//!   sessions' entries dropped, their buffers freed).
//!
//! An entry is removed only under the map lock and only while its `Arc`
//! is the map's alone; every other `Arc` of it is taken under that lock, so
//! nothing can be holding (or about to hold) an entry that is gone.
//!
//! Every `metrics.histogram_reassign_ms` the sweep also gives the
//! `histogram_top_n` histogram places to the tenants that ran the most
//! statements since the last time (one pass over the map).

use super::counters::TenantCounters;
use crate::metrics::Metrics;
use indexmap::IndexMap;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// How often the sweep runs.
pub const EVERY: Duration = Duration::from_secs(1);
/// Most entries one tick looks at.
pub const BATCH: usize = 4096;

/// Where the next tick goes on.
#[derive(Debug, Default)]
pub struct Cursor {
    next: usize,
    /// When histogram places were last reassigned (`now_ms`).
    reassigned_at: u64,
}

/// What one tick did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    pub examined: usize,
    pub dropped: usize,
    pub reassigned: bool,
}

pub(super) type Map = IndexMap<String, Arc<TenantCounters>>;

/// One tick at time `now` (`now_ms`) over `map` (the caller holds the
/// map's lock), going on from `cursor`, with `[metrics]` as `metrics`
/// has it now.
pub(super) fn tick(map: &mut Map, cursor: &mut Cursor, now: u64, metrics: &Metrics) -> Swept {
    let settings = metrics.settings();
    let mut s = Swept::default();
    let mut i = cursor.next;
    let todo = map.len().min(BATCH);
    while s.examined < todo && !map.is_empty() {
        if i >= map.len() {
            i = 0;
        }
        s.examined += 1;
        let Some((_, c)) = map.get_index(i) else {
            break;
        };
        if c.active() > 0 {
            c.touch(now);
            i += 1;
        } else if Arc::strong_count(c) > 1 {
            // Held for now (a login, a scrape, an admin read): kept,
            // but that is no use of the tenant.
            i += 1;
        } else if now.saturating_sub(c.last_used.load(Ordering::Relaxed)) >= settings.tenant_idle_ms
        {
            // The last entry moves to `i`: looked at next.
            if let Some((id, _)) = map.swap_remove_index(i) {
                tracing::trace!(tenant = %id, "idle tenant's state dropped");
            }
            s.dropped += 1;
            metrics
                .totals()
                .dropped_idle
                .fetch_add(1, Ordering::Relaxed);
        } else {
            // Only the map holds it (a scrape's `Weak` may still point at
            // it: then it is compacted on a later tick).
            if let Some(c) = map.get_index_mut(i).and_then(|(_, c)| Arc::get_mut(c)) {
                c.compact(now);
            }
            i += 1;
        }
    }
    cursor.next = i;
    if now.saturating_sub(cursor.reassigned_at) >= settings.histogram_reassign_ms {
        cursor.reassigned_at = now;
        reassign(map, settings.histogram_top_n, &metrics.named());
        s.reassigned = true;
    }
    s
}

/// Named tenants hold a place; the `top` others that ran the most
/// statements since the last reassignment get the top-N places (a holder
/// wins a tie); everyone else loses theirs (its series go; it observes
/// into `_other`).
fn reassign(map: &Map, top: usize, named: &HashSet<String>) {
    let mut best: BinaryHeap<Reverse<(u64, bool, usize)>> = BinaryHeap::with_capacity(top + 1);
    for (i, (id, c)) in map.iter().enumerate() {
        let recent = c.metrics.take_recent();
        let holds = c.metrics.has_place();
        if top == 0 || named.contains(id) || (recent == 0 && !holds) {
            continue;
        }
        best.push(Reverse((recent, holds, i)));
        if best.len() > top {
            best.pop();
        }
    }
    let mut winners: Vec<usize> = best.into_iter().map(|Reverse((_, _, i))| i).collect();
    winners.sort_unstable();
    let won = |i: usize| winners.binary_search(&i).is_ok();
    // Take first, so the places freed go to the winners.
    for (i, (id, c)) in map.iter().enumerate() {
        if !named.contains(id) && !won(i) && c.metrics.has_place() {
            c.metrics.set_place(false, false);
        }
    }
    for (i, (id, c)) in map.iter().enumerate() {
        if named.contains(id) {
            c.metrics.set_place(true, true);
        } else if won(i) {
            c.metrics.set_place(true, false);
        }
    }
}

#[cfg(test)]
#[path = "sweep_tests.rs"]
mod tests;
