//! What the router knows of the catalog between queries:
//!
//! - rows read, served to new connections without a query while the
//!   catalog connection is up: every change notifies `pg_tenant_catalog`,
//!   and a notification drops the tenant's row at once;
//! - names the catalog does not know (for `negative_ttl_ms`);
//! - the ids of the query running now: a notification naming one of them
//!   means its answer may predate the change, so that answer is given to
//!   the lookups that asked but not kept;
//! - the tenants to re-read: those the router holds state for (see
//!   `Holder`) that a notification named, each queued once, re-read in
//!   bulk by the worker between lookups.
//!
//! Everything here is synchronous and cheap: a notification costs a hash
//! lookup or two, never a query.

use super::row::{Entry, TenantInfo};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Most rows kept (about 0.5 KiB each).
const MAX_ROWS: u64 = 100_000;
/// Most unknown names remembered.
const MAX_UNKNOWN: u64 = 100_000;

pub(super) struct Known {
    /// Rows, with the epoch they were read in.
    rows: moka::sync::Cache<String, (u64, Arc<TenantInfo>)>,
    /// Unknown names, with the epoch they were found unknown in.
    unknown: moka::sync::Cache<String, u64>,
    /// Bumped by every "anything may have changed": what was kept in an
    /// earlier epoch is not served (nothing to walk: a flood of them
    /// costs an increment each).
    epoch: AtomicU64,
    state: Mutex<State>,
    /// Raised when there is something to re-read.
    pub(super) wake: tokio::sync::Notify,
}

#[derive(Default)]
struct State {
    /// Ids of the query running now; true once a notification named it
    /// after the query began.
    reading: HashMap<String, bool>,
    /// Tenants to re-read, oldest first, each once (`queued`).
    stale: VecDeque<String>,
    queued: HashSet<String>,
    /// An "anything may have changed" not yet turned into re-reads of
    /// everything held (many of them make one pass).
    everything: bool,
}

impl State {
    fn queue(&mut self, id: &str) {
        if !self.queued.contains(id) {
            self.queued.insert(id.to_owned());
            self.stale.push_back(id.to_owned());
        }
    }
}

impl Known {
    /// Rows unused for `idle` are forgotten; unknown names after
    /// `negative_ttl`.
    pub(super) fn new(idle: Duration, negative_ttl: Duration) -> Known {
        Known {
            rows: moka::sync::Cache::builder()
                .max_capacity(MAX_ROWS)
                .time_to_idle(idle.max(Duration::from_millis(1)))
                .build(),
            unknown: moka::sync::Cache::builder()
                .max_capacity(MAX_UNKNOWN)
                .time_to_live(negative_ttl.max(Duration::from_millis(1)))
                .build(),
            epoch: AtomicU64::new(0),
            state: Mutex::default(),
            wake: tokio::sync::Notify::new(),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// The tenant's row as last read, if kept (and of this epoch).
    pub(super) fn row(&self, id: &str) -> Option<Arc<TenantInfo>> {
        match self.rows.get(id) {
            Some((e, row)) if e == self.epoch() => Some(row),
            _ => None,
        }
    }

    /// Whether the catalog did not know the name a moment ago.
    pub(super) fn is_unknown(&self, id: &str) -> bool {
        self.unknown.get(id).is_some_and(|e| e == self.epoch())
    }

    /// A query for these ids begins; returns its epoch (for `settle`).
    pub(super) fn begin<'a>(&self, ids: impl IntoIterator<Item = &'a str>) -> u64 {
        let mut s = self.state();
        for id in ids {
            s.reading.insert(id.to_owned(), false);
        }
        self.epoch()
    }

    /// The answers of the query begun in `epoch`: kept unless a
    /// notification named the tenant (or everything) while it ran.
    pub(super) fn settle(&self, epoch: u64, answers: &[(String, Entry)]) {
        let mut s = self.state();
        let same = epoch == self.epoch();
        for (id, entry) in answers {
            if s.reading.remove(id).unwrap_or(true) || !same {
                continue;
            }
            match entry {
                Some(row) => {
                    self.rows.insert(id.clone(), (epoch, row.clone()));
                    self.unknown.invalidate(id);
                }
                None => {
                    self.rows.invalidate(id);
                    self.unknown.insert(id.clone(), epoch);
                }
            }
        }
    }

    /// The query failed: nothing of it is kept.
    pub(super) fn abandon<'a>(&self, ids: impl IntoIterator<Item = &'a str>) {
        let mut s = self.state();
        for id in ids {
            s.reading.remove(id);
        }
    }

    /// A notification named `id` (`"*"`: anything may have changed):
    /// forget what is known of it, and queue it for re-reading when the
    /// router holds it (`holds`) or is reading it now. `"*"` starts a new
    /// epoch and asks for one pass over everything held (`take_stale`).
    /// Constant work per notification: a flood costs little.
    pub(super) fn changed(&self, id: &str, holds: impl FnOnce(&str) -> bool) {
        if id == "*" {
            let mut s = self.state();
            self.epoch.fetch_add(1, Ordering::AcqRel);
            s.everything = true;
        } else {
            let held = holds(id);
            let mut s = self.state();
            self.rows.invalidate(id);
            self.unknown.invalidate(id);
            let reading = match s.reading.get_mut(id) {
                Some(dirty) => {
                    *dirty = true;
                    true
                }
                None => false,
            };
            if held || reading {
                s.queue(id);
            }
        }
        self.wake.notify_one();
    }

    /// Re-read `id` (a login that read it before a change the router was
    /// not holding it for).
    pub(super) fn recheck(&self, id: &str) {
        self.state().queue(id);
        self.wake.notify_one();
    }

    /// The connection is new: nothing kept from before is served, no
    /// query of the old one is running, everything held is re-read.
    pub(super) fn reset(&self) {
        let mut s = self.state();
        self.epoch.fetch_add(1, Ordering::AcqRel);
        s.reading.clear();
        s.everything = true;
    }

    /// Up to `n` tenants to re-read, oldest first; after an "anything may
    /// have changed", everything `held` first joins the queue (once for
    /// any number of them).
    pub(super) fn take_stale(&self, n: usize, held: impl FnOnce() -> Vec<String>) -> Vec<String> {
        let everything = std::mem::take(&mut self.state().everything);
        let held = if everything { held() } else { Vec::new() };
        let mut s = self.state();
        for id in &held {
            s.queue(id);
        }
        let take = n.min(s.stale.len());
        let ids: Vec<String> = s.stale.drain(..take).collect();
        for id in &ids {
            s.queued.remove(id);
        }
        ids
    }

    /// Tenants waiting to be re-read.
    pub(super) fn stale_len(&self) -> usize {
        self.state().stale.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, seq: u64) -> Arc<TenantInfo> {
        Arc::new(TenantInfo {
            read_seq: seq,
            ..TenantInfo::for_test(id)
        })
    }

    fn known() -> Known {
        Known::new(Duration::from_secs(60), Duration::from_secs(60))
    }

    const NOBODY: fn(&str) -> bool = |_| false;
    const NONE_HELD: fn() -> Vec<String> = Vec::new;

    #[test]
    fn an_answer_is_kept_and_a_notification_drops_it() {
        let k = known();
        let e = k.begin(["acme", "ghost"]);
        k.settle(
            e,
            &[
                ("acme".into(), Some(row("acme", 1))),
                ("ghost".into(), None),
            ],
        );
        assert_eq!(k.row("acme").map(|r| r.read_seq), Some(1));
        assert!(k.is_unknown("ghost"));
        k.changed("acme", NOBODY);
        k.changed("ghost", NOBODY);
        assert!(k.row("acme").is_none());
        assert!(!k.is_unknown("ghost"));
        // Not held, not being read: nothing to re-read.
        assert!(k.take_stale(10, NONE_HELD).is_empty());
    }

    #[test]
    fn an_answer_read_across_a_change_is_not_kept_and_is_read_again() {
        let k = known();
        let e = k.begin(["acme", "globex"]);
        // The change commits while the query runs.
        k.changed("acme", NOBODY);
        k.settle(
            e,
            &[
                ("acme".into(), Some(row("acme", 1))),
                ("globex".into(), Some(row("globex", 1))),
            ],
        );
        assert!(k.row("acme").is_none(), "may predate the change");
        assert!(k.row("globex").is_some());
        assert_eq!(k.take_stale(10, NONE_HELD), vec!["acme".to_string()]);
    }

    #[test]
    fn everything_changed_drops_every_row_and_queues_what_is_held_once() {
        let k = known();
        let e = k.begin(["a", "b"]);
        k.settle(e, &[("a".into(), Some(row("a", 1))), ("b".into(), None)]);
        let e = k.begin(["c"]);
        for _ in 0..1000 {
            k.changed("*", NOBODY);
        }
        k.settle(e, &[("c".into(), Some(row("c", 2)))]);
        assert!(
            k.row("a").is_none() && k.row("c").is_none(),
            "an older epoch"
        );
        assert!(!k.is_unknown("b"));
        let mut passes = 0;
        let stale = k.take_stale(10, || {
            passes += 1;
            vec!["held".into(), "a".into()]
        });
        assert_eq!(stale, vec!["held".to_string(), "a".to_string()]);
        assert_eq!(passes, 1, "a thousand of them: one pass");
        assert!(k.take_stale(10, || panic!("no second pass")).is_empty());
        // What is read in the new epoch is kept.
        let e = k.begin(["a"]);
        k.settle(e, &[("a".into(), Some(row("a", 3)))]);
        assert_eq!(k.row("a").map(|r| r.read_seq), Some(3));
    }

    #[test]
    fn a_new_connection_serves_nothing_kept_before() {
        let k = known();
        let e = k.begin(["a"]);
        k.settle(e, &[("a".into(), Some(row("a", 1)))]);
        let late = k.begin(["b"]);
        k.reset();
        k.settle(late, &[("b".into(), Some(row("b", 2)))]);
        assert!(k.row("a").is_none() && k.row("b").is_none());
        assert_eq!(k.take_stale(10, || vec!["a".into()]), vec!["a".to_string()]);
    }

    #[test]
    fn a_storm_queues_each_held_tenant_once_and_only_held_ones() {
        let k = known();
        for round in 0..3 {
            for i in 0..1000 {
                k.changed(&format!("t{i}"), |id| id.ends_with('7'));
            }
            assert_eq!(k.stale_len(), 100, "round {round}");
        }
        let first = k.take_stale(64, NONE_HELD);
        assert_eq!(first.len(), 64);
        assert_eq!(first[0], "t7");
        assert_eq!(k.take_stale(1000, NONE_HELD).len(), 36);
        // Taken ids may be queued again by a later change.
        k.changed("t7", |_| true);
        assert_eq!(k.take_stale(10, NONE_HELD), vec!["t7".to_string()]);
    }

    #[test]
    fn a_failed_query_keeps_nothing() {
        let k = known();
        let e = k.begin(["acme"]);
        k.abandon(["acme"]);
        // A late answer for an id no query reads is not kept either.
        k.settle(e, &[("acme".into(), Some(row("acme", 1)))]);
        assert!(k.row("acme").is_none());
    }
}
