//! Cancel routing: the router remembers which keys belong to live sessions,
//! and forwards a CancelRequest only for a known key. Unknown keys are
//! dropped silently, as Postgres does. A session that owns its backend
//! gives the client the backend's own key; a pooled session gives it a key
//! of the router's, mapped to the backend serving it.

use crate::protocol;
use crate::transport::Stream;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Notify;

/// Where a client's key leads: the backend's own (pid, key) and the
/// upstream it lives on (a reload may change the upstream for new sessions
/// only).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Target {
    pid: i32,
    key: i32,
    upstream: Arc<str>,
}

/// One live session's key.
struct Entry {
    /// None: the session holds no backend now (transaction pooling,
    /// between transactions), and a cancel is dropped.
    target: Option<Target>,
    /// Cancels forwarded and not yet delivered (PostgreSQL has not closed
    /// the cancel connection).
    in_flight: usize,
    /// Told when `in_flight` drops to 0.
    settled: Arc<Notify>,
}

/// Live sessions' keys, by the (pid, key) their clients know.
pub struct CancelRegistry {
    keys: Mutex<HashMap<(i32, i32), Entry>>,
}

/// Longest wait for cancels in flight before a backend changes hands.
const SETTLE_WAIT: Duration = Duration::from_secs(5);

/// Unregisters its key when the session ends, however it ends.
pub struct CancelGuard {
    registry: Arc<CancelRegistry>,
    key: (i32, i32),
}

impl CancelGuard {
    /// The (pid, cancel key) the client knows.
    pub fn key(&self) -> (i32, i32) {
        self.key
    }
}

impl Drop for CancelGuard {
    fn drop(&mut self) {
        self.registry.lock().remove(&self.key);
    }
}

impl CancelRegistry {
    pub fn new() -> Arc<CancelRegistry> {
        Arc::new(CancelRegistry {
            keys: Mutex::new(HashMap::new()),
        })
    }

    /// The client's key is the backend's own.
    pub fn register(self: &Arc<Self>, pid: i32, key: i32, upstream: &str) -> CancelGuard {
        self.register_as((pid, key), (pid, key), upstream)
    }

    /// `client` (the key the client was given) leads to the backend
    /// `backend` on `upstream`.
    pub fn register_as(
        self: &Arc<Self>,
        client: (i32, i32),
        backend: (i32, i32),
        upstream: &str,
    ) -> CancelGuard {
        self.lock().insert(
            client,
            Entry {
                target: Some(Target {
                    pid: backend.0,
                    key: backend.1,
                    upstream: Arc::from(upstream),
                }),
                in_flight: 0,
                settled: Arc::new(Notify::new()),
            },
        );
        CancelGuard {
            registry: self.clone(),
            key: client,
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<(i32, i32), Entry>> {
        self.keys.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Point a live client key at another backend.
    pub fn retarget(&self, client: (i32, i32), backend: ((i32, i32), &Arc<str>)) {
        if let Some(e) = self.lock().get_mut(&client) {
            let ((pid, key), upstream) = backend;
            e.target = Some(Target {
                pid,
                key,
                upstream: upstream.clone(),
            });
        }
    }

    /// The client's backend changes hands (transaction pooling): from now
    /// on its key leads nowhere, and this returns once every cancel already
    /// forwarded with it has been delivered (or after `SETTLE_WAIT`), so a
    /// client's cancel can never land in the next client's work.
    pub async fn detach(&self, client: (i32, i32)) {
        let deadline = tokio::time::Instant::now() + SETTLE_WAIT;
        loop {
            let settled = {
                let mut keys = self.lock();
                let Some(e) = keys.get_mut(&client) else {
                    return;
                };
                e.target = None;
                if e.in_flight == 0 {
                    return;
                }
                e.settled.clone()
            };
            if tokio::time::timeout_at(deadline, settled.notified())
                .await
                .is_err()
            {
                tracing::warn!(
                    "a cancel request was still on its way after {} s",
                    SETTLE_WAIT.as_secs()
                );
                return;
            }
        }
    }

    /// A key no live session uses, for a pooled client: random, with a
    /// positive pid (clients print it as one).
    pub fn fresh_key(&self) -> (i32, i32) {
        loop {
            let b = crate::random::bytes::<8>().unwrap_or_else(|_| {
                let n = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_nanos() as u64;
                n.to_le_bytes()
            });
            let pid = (i32::from_le_bytes([b[0], b[1], b[2], b[3]]) & 0x3fff_ffff).max(1);
            let key = i32::from_le_bytes([b[4], b[5], b[6], b[7]]);
            if !self.is_live(pid, key) {
                return (pid, key);
            }
        }
    }

    #[cfg(test)]
    fn target(&self, pid: i32, key: i32) -> Option<Target> {
        self.lock().get(&(pid, key)).and_then(|e| e.target.clone())
    }

    pub fn is_live(&self, pid: i32, key: i32) -> bool {
        self.lock().contains_key(&(pid, key))
    }

    /// Send a CancelRequest for the backend of a live session's key; false
    /// when the key is unknown (the request is dropped, as Postgres does).
    pub async fn forward(&self, pid: i32, key: i32) -> bool {
        let client = (pid, key);
        let taken = self.lock().get_mut(&client).and_then(|e| {
            let t = e.target.clone()?;
            e.in_flight += 1;
            Some(t)
        });
        let Some(Target { pid, key, upstream }) = taken else {
            tracing::info!(
                backend_pid = pid,
                "cancel request with an unknown key dropped"
            );
            return false;
        };
        /// Counts the cancel delivered however the forwarding ends (also
        /// when its task is aborted).
        struct InFlight<'a>(&'a CancelRegistry, (i32, i32));
        impl Drop for InFlight<'_> {
            fn drop(&mut self) {
                if let Some(e) = self.0.lock().get_mut(&self.1) {
                    e.in_flight -= 1;
                    if e.in_flight == 0 {
                        e.settled.notify_one();
                    }
                }
            }
        }
        let _in_flight = InFlight(self, client);
        self.deliver(pid, key, &upstream).await;
        true
    }

    /// Send the CancelRequest and wait until PostgreSQL has closed the
    /// connection (it does once it has signaled the backend).
    async fn deliver(&self, pid: i32, key: i32, upstream: &str) {
        match Stream::connect(upstream, Duration::from_secs(5)).await {
            Ok(mut s) => {
                let _ = s.write_all(&protocol::cancel_request(pid, key)).await;
                // Postgres closes the connection once it has signaled the
                // backend: wait for that, so callers know it was delivered.
                let mut sink = [0u8; 64];
                let delivered = async { while s.read(&mut sink).await.is_ok_and(|n| n > 0) {} };
                let _ = tokio::time::timeout(Duration::from_secs(2), delivered).await;
                tracing::info!(backend_pid = pid, "cancel request forwarded");
            }
            Err(e) => {
                tracing::warn!(backend_pid = pid, error = %e, "cannot forward cancel request")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_live_only_while_guarded() {
        let r = CancelRegistry::new();
        let g = r.register(10, 20, "127.0.0.1:1");
        assert!(r.is_live(10, 20));
        assert!(!r.is_live(10, 21));
        drop(g);
        assert!(!r.is_live(10, 20));
    }

    #[test]
    fn a_pooled_key_leads_to_its_backend() {
        let r = CancelRegistry::new();
        let client = r.fresh_key();
        assert!(client.0 > 0);
        let g = r.register_as(client, (77, 88), "127.0.0.1:1");
        assert_eq!(g.key(), client);
        assert_eq!(
            r.target(client.0, client.1),
            Some(Target {
                pid: 77,
                key: 88,
                upstream: Arc::from("127.0.0.1:1")
            })
        );
        assert!(
            !r.is_live(77, 88),
            "the backend's own key is not the client's"
        );
        drop(g);
        assert!(!r.is_live(client.0, client.1));
    }

    #[tokio::test]
    async fn a_backend_changes_hands_only_after_its_cancels_are_delivered() {
        use tokio::net::TcpListener;
        // A stand-in PostgreSQL that holds the cancel connection open until
        // told to close it (PostgreSQL closes it once it signaled).
        let pg = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = pg.local_addr().expect("addr").to_string();
        let (release, released) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            let (mut s, _) = pg.accept().await.expect("accept");
            let mut req = [0u8; 16];
            s.read_exact(&mut req).await.expect("cancel request");
            let _ = released.await;
            drop(s);
            req
        });
        let r = CancelRegistry::new();
        let client = r.fresh_key();
        let _g = r.register_as(client, (41, 42), &addr);
        let forward = tokio::spawn({
            let r = r.clone();
            async move { r.forward(client.0, client.1).await }
        });
        // Wait until the cancel is on its way.
        while r.lock().get(&client).is_some_and(|e| e.in_flight == 0) {
            tokio::task::yield_now().await;
        }
        let mut detach = Box::pin(r.detach(client));
        assert!(
            futures_util::FutureExt::now_or_never(&mut detach).is_none(),
            "a cancel is still on its way"
        );
        assert_eq!(r.target(client.0, client.1), None, "no new cancel is taken");
        let _ = release.send(());
        detach.await;
        assert!(forward.await.expect("join"), "forwarded");
        let req = server.await.expect("join");
        assert_eq!(
            &req[8..],
            &[0, 0, 0, 41, 0, 0, 0, 42],
            "the backend's own key"
        );
        // A cancel between transactions is dropped.
        assert!(!r.forward(client.0, client.1).await);
    }
}
