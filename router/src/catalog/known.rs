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
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Most rows kept (about 0.5 KiB each).
const MAX_ROWS: u64 = 100_000;
/// Most unknown names remembered.
const MAX_UNKNOWN: u64 = 100_000;

pub(super) struct Known {
    rows: moka::sync::Cache<String, Arc<TenantInfo>>,
    unknown: moka::sync::Cache<String, ()>,
    state: Mutex<State>,
    /// Raised when a tenant is queued for re-reading.
    pub(super) wake: tokio::sync::Notify,
}

#[derive(Default)]
struct State {
    /// Ids of the query running now; true once a notification named it
    /// (or all) after the query began.
    reading: HashMap<String, bool>,
    /// Tenants to re-read, oldest first, each once (`queued`).
    stale: VecDeque<String>,
    queued: HashSet<String>,
}

impl State {
    fn queue(&mut self, id: &str) {
        if self.queued.insert(id.to_owned()) {
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
            state: Mutex::default(),
            wake: tokio::sync::Notify::new(),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The tenant's row as last read, if kept.
    pub(super) fn row(&self, id: &str) -> Option<Arc<TenantInfo>> {
        self.rows.get(id)
    }

    /// Whether the catalog did not know the name a moment ago.
    pub(super) fn is_unknown(&self, id: &str) -> bool {
        self.unknown.contains_key(id)
    }

    /// A query for these ids begins.
    pub(super) fn begin<'a>(&self, ids: impl IntoIterator<Item = &'a str>) {
        let mut s = self.state();
        for id in ids {
            s.reading.insert(id.to_owned(), false);
        }
    }

    /// The query's answers: kept unless a notification named the tenant
    /// while it ran.
    pub(super) fn settle(&self, answers: &[(String, Entry)]) {
        let mut s = self.state();
        for (id, entry) in answers {
            if s.reading.remove(id).unwrap_or(true) {
                continue;
            }
            match entry {
                Some(row) => {
                    self.rows.insert(id.clone(), row.clone());
                    self.unknown.invalidate(id);
                }
                None => {
                    self.rows.invalidate(id);
                    self.unknown.insert(id.clone(), ());
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
    /// router holds it (`holds`) or is reading it now. With `"*"`, every
    /// row and unknown name is forgotten, and everything `held` and
    /// being read is queued.
    pub(super) fn changed(
        &self,
        id: &str,
        holds: impl FnOnce(&str) -> bool,
        held: impl FnOnce() -> Vec<String>,
    ) {
        if id == "*" {
            let held = held();
            let mut s = self.state();
            self.rows.invalidate_all();
            self.unknown.invalidate_all();
            let reading: Vec<String> = s.reading.keys().cloned().collect();
            for d in s.reading.values_mut() {
                *d = true;
            }
            for id in held.iter().chain(&reading) {
                s.queue(id);
            }
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

    /// Up to `n` tenants to re-read, oldest first.
    pub(super) fn take_stale(&self, n: usize) -> Vec<String> {
        let mut s = self.state();
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
            id: id.into(),
            enabled: true,
            isolation: "rls".into(),
            database_name: None,
            schema_name: None,
            max_connections: 0,
            qps_limit: 0,
            burst_multiplier: 1.0,
            max_query_ms: 0,
            max_result_bytes: 0,
            auth_secret: None,
            pool: Default::default(),
            client_idle_timeout_ms: 0,
            read_seq: seq,
        })
    }

    fn known() -> Known {
        Known::new(Duration::from_secs(60), Duration::from_secs(60))
    }

    const NOBODY: fn(&str) -> bool = |_| false;

    #[test]
    fn an_answer_is_kept_and_a_notification_drops_it() {
        let k = known();
        k.begin(["acme", "ghost"]);
        k.settle(&[
            ("acme".into(), Some(row("acme", 1))),
            ("ghost".into(), None),
        ]);
        assert_eq!(k.row("acme").map(|r| r.read_seq), Some(1));
        assert!(k.is_unknown("ghost"));
        k.changed("acme", NOBODY, Vec::new);
        k.changed("ghost", NOBODY, Vec::new);
        assert!(k.row("acme").is_none());
        assert!(!k.is_unknown("ghost"));
        // Not held, not being read: nothing to re-read.
        assert!(k.take_stale(10).is_empty());
    }

    #[test]
    fn an_answer_read_across_a_change_is_not_kept_and_is_read_again() {
        let k = known();
        k.begin(["acme", "globex"]);
        // The change commits while the query runs.
        k.changed("acme", NOBODY, Vec::new);
        k.settle(&[
            ("acme".into(), Some(row("acme", 1))),
            ("globex".into(), Some(row("globex", 1))),
        ]);
        assert!(k.row("acme").is_none(), "may predate the change");
        assert!(k.row("globex").is_some());
        assert_eq!(k.take_stale(10), vec!["acme".to_string()]);
    }

    #[test]
    fn everything_changed_drops_every_row_and_queues_what_is_held() {
        let k = known();
        k.begin(["a", "b"]);
        k.settle(&[("a".into(), Some(row("a", 1))), ("b".into(), None)]);
        k.begin(["c"]);
        k.changed("*", NOBODY, || vec!["held".into()]);
        k.settle(&[("c".into(), Some(row("c", 2)))]);
        assert!(k.row("a").is_none() && k.row("c").is_none());
        assert!(!k.is_unknown("b"));
        let mut stale = k.take_stale(10);
        stale.sort();
        assert_eq!(stale, vec!["c".to_string(), "held".to_string()]);
    }

    #[test]
    fn a_storm_queues_each_held_tenant_once_and_only_held_ones() {
        let k = known();
        for round in 0..3 {
            for i in 0..1000 {
                k.changed(&format!("t{i}"), |id| id.ends_with('7'), Vec::new);
            }
            assert_eq!(k.stale_len(), 100, "round {round}");
        }
        let first = k.take_stale(64);
        assert_eq!(first.len(), 64);
        assert_eq!(first[0], "t7");
        assert_eq!(k.take_stale(1000).len(), 36);
        // Taken ids may be queued again by a later change.
        k.changed("t7", |_| true, Vec::new);
        assert_eq!(k.take_stale(10), vec!["t7".to_string()]);
    }

    #[test]
    fn a_failed_query_keeps_nothing() {
        let k = known();
        k.begin(["acme"]);
        k.abandon(["acme"]);
        // A late answer for an id no query reads is not kept either.
        k.settle(&[("acme".into(), Some(row("acme", 1)))]);
        assert!(k.row("acme").is_none());
    }
}
