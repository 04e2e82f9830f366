//! Cancel routing: the router remembers which keys belong to live sessions,
//! and forwards a CancelRequest only for a known key. Unknown keys are
//! dropped silently, as Postgres does. A session that owns its backend
//! gives the client the backend's own key; a pooled session gives it a key
//! of the router's, mapped to the backend serving it.

use crate::protocol;
use crate::transport::Stream;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Where a client's key leads: the backend's own (pid, key) and the
/// upstream it lives on (a reload may change the upstream for new sessions
/// only).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Target {
    pid: i32,
    key: i32,
    upstream: String,
}

/// Live sessions' keys, by the (pid, key) their clients know; None: the
/// session holds no backend now (transaction pooling, between
/// transactions), and a cancel is dropped.
pub struct CancelRegistry {
    keys: Mutex<HashMap<(i32, i32), Option<Target>>>,
}

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
        if let Ok(mut keys) = self.registry.keys.lock() {
            keys.remove(&self.key);
        }
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
        if let Ok(mut keys) = self.keys.lock() {
            keys.insert(
                client,
                Some(Target {
                    pid: backend.0,
                    key: backend.1,
                    upstream: upstream.to_owned(),
                }),
            );
        }
        CancelGuard {
            registry: self.clone(),
            key: client,
        }
    }

    /// Point a live client key at another backend, or at none.
    pub fn retarget(&self, client: (i32, i32), backend: Option<((i32, i32), &str)>) {
        if let Ok(mut keys) = self.keys.lock() {
            if let Some(t) = keys.get_mut(&client) {
                *t = backend.map(|((pid, key), upstream)| Target {
                    pid,
                    key,
                    upstream: upstream.to_owned(),
                });
            }
        }
    }

    /// A key no live session uses, for a pooled client: random, with a
    /// positive pid (clients print it as one).
    pub fn fresh_key(&self) -> (i32, i32) {
        loop {
            let b = crate::auth::scram::random_bytes::<8>().unwrap_or_else(|_| {
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

    fn target(&self, pid: i32, key: i32) -> Option<Target> {
        self.keys.lock().ok()?.get(&(pid, key)).cloned().flatten()
    }

    pub fn is_live(&self, pid: i32, key: i32) -> bool {
        self.keys.lock().is_ok_and(|k| k.contains_key(&(pid, key)))
    }

    /// Send a CancelRequest for the backend of a live session's key; false
    /// when the key is unknown (the request is dropped, as Postgres does).
    pub async fn forward(&self, pid: i32, key: i32) -> bool {
        let Some(Target { pid, key, upstream }) = self.target(pid, key) else {
            tracing::info!(
                backend_pid = pid,
                "cancel request with an unknown key dropped"
            );
            return false;
        };
        match Stream::connect(&upstream, Duration::from_secs(5)).await {
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
        true
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
                upstream: "127.0.0.1:1".into()
            })
        );
        assert!(
            !r.is_live(77, 88),
            "the backend's own key is not the client's"
        );
        drop(g);
        assert!(!r.is_live(client.0, client.1));
    }
}
