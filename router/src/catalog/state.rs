//! The catalog's state, shared by its API (`catalog`: lookups, pages,
//! secrets) and its worker (`worker`, which owns the connection): what is
//! known between queries, whether the connection is up, the request queue.
//! Facts about the installed pg_tenant are not here: each connection
//! holds its own (`schema::Schema`).

use super::known::Known;
use super::types::{CatalogMetrics, Holder, Link, Request};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

pub struct Catalog {
    pub(super) url: String,
    /// `catalog.password_file`'s password, put into `url` at each connect.
    pub(super) password: crate::config::CatalogPassword,
    /// TLS to the catalog (`tls.upstream_tls`, read at start).
    pub(super) tls: Option<(
        Arc<tokio_rustls::rustls::ClientConfig>,
        crate::tls::UpstreamTls,
    )>,
    pub(super) holder: OnceLock<Arc<dyn Holder>>,
    /// Rows, unknown names, reads in flight, tenants to re-read.
    pub(super) known: Known,
    /// How long kept rows serve once the catalog went down.
    pub(super) fallback_ttl: Duration,
    pub(super) requests: mpsc::Sender<Request>,
    /// The worker's end of `requests`, until `start` hands it over.
    pub(super) inbox: Mutex<Option<mpsc::Receiver<Request>>>,
    pub(super) link: Mutex<Link>,
    /// `link` is Up (read on every lookup).
    pub(super) connected: AtomicBool,
    /// Numbers the catalog connection's queries, in the order they run.
    pub(super) seq: AtomicU64,
    pub(super) metrics: OnceLock<CatalogMetrics>,
    /// One admin read (a page, the counts) on the catalog connection at a
    /// time: each round of the worker serves at most one besides the
    /// lookups, so the admin API never holds logins up by more than one
    /// such query.
    pub(super) admin_reads: tokio::sync::Semaphore,
}

impl Catalog {
    /// A notification: forget what is known of the tenant (`"*"`: of
    /// all), and queue it for re-reading if the router holds it. Runs on
    /// the task that reads the catalog connection, for every notification:
    /// constant work (a forged flood must not hold up the answers behind
    /// it).
    pub(super) fn changed(&self, payload: &str) {
        if let Some(m) = self.metrics.get() {
            m.notifications.inc();
        }
        let holder = self.holder.get();
        self.known
            .changed(payload, |id| holder.is_some_and(|h| h.holds(id)));
    }

    /// Everything the router holds, for a pass of re-reads.
    pub(super) fn held(&self) -> Vec<String> {
        self.holder.get().map(|h| h.held()).unwrap_or_default()
    }

    /// The connection is up: rows kept from before may have missed
    /// changes, so they are not served, and everything held is re-read.
    pub(super) fn came_up(&self) {
        self.known.reset();
        *self.link.lock().unwrap_or_else(|p| p.into_inner()) = Link::Up;
        self.connected.store(true, Ordering::Release);
    }

    /// The connection is gone: kept rows serve for `cache_ttl_ms`.
    /// (Failing to reconnect leaves `since` as it was.)
    pub(super) fn went_down(&self) {
        self.connected.store(false, Ordering::Release);
        let mut link = self.link.lock().unwrap_or_else(|p| p.into_inner());
        if !matches!(*link, Link::Down { .. }) {
            *link = Link::Down {
                since: Instant::now(),
            };
        }
    }

    pub(super) fn counted(&self) {
        if let Some(m) = self.metrics.get() {
            m.queries.inc();
        }
    }

    /// The number of the next query on the catalog connection.
    pub(super) fn next_seq(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::AcqRel) + 1
    }
}
