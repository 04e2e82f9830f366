//! Cancel routing: the router remembers which backend keys belong to live
//! sessions, and forwards a CancelRequest only for a known key. Unknown keys
//! are dropped silently, as Postgres does.

use crate::protocol;
use crate::transport::Stream;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Live backends' keys, each with the upstream address it lives on (a
/// reload may change the upstream for new sessions only).
pub struct CancelRegistry {
    keys: Mutex<HashMap<(i32, i32), String>>,
}

/// Unregisters its key when the session ends, however it ends.
pub struct CancelGuard {
    registry: Arc<CancelRegistry>,
    key: (i32, i32),
}

impl CancelGuard {
    /// The backend's (pid, cancel key).
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

    pub fn register(self: &Arc<Self>, pid: i32, key: i32, upstream: &str) -> CancelGuard {
        if let Ok(mut keys) = self.keys.lock() {
            keys.insert((pid, key), upstream.to_owned());
        }
        CancelGuard {
            registry: self.clone(),
            key: (pid, key),
        }
    }

    /// The upstream of a live session's backend.
    fn upstream_of(&self, pid: i32, key: i32) -> Option<String> {
        self.keys.lock().ok()?.get(&(pid, key)).cloned()
    }

    pub fn is_live(&self, pid: i32, key: i32) -> bool {
        self.upstream_of(pid, key).is_some()
    }

    /// Send a CancelRequest for a live session's backend; false when the
    /// key is unknown (the request is dropped, as Postgres does).
    pub async fn forward(&self, pid: i32, key: i32) -> bool {
        let Some(upstream) = self.upstream_of(pid, key) else {
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
}
