//! Cancel routing: the router remembers which backend keys belong to live
//! sessions, and forwards a CancelRequest only for a known key. Unknown keys
//! are dropped silently, as Postgres does.

use crate::protocol;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

pub struct CancelRegistry {
    upstream: String,
    keys: Mutex<HashSet<(i32, i32)>>,
}

/// Unregisters its key when the session ends, however it ends.
pub struct CancelGuard {
    registry: Arc<CancelRegistry>,
    key: (i32, i32),
}

impl Drop for CancelGuard {
    fn drop(&mut self) {
        if let Ok(mut keys) = self.registry.keys.lock() {
            keys.remove(&self.key);
        }
    }
}

impl CancelRegistry {
    pub fn new(upstream: String) -> Arc<CancelRegistry> {
        Arc::new(CancelRegistry {
            upstream,
            keys: Mutex::new(HashSet::new()),
        })
    }

    pub fn register(self: &Arc<Self>, pid: i32, key: i32) -> CancelGuard {
        if let Ok(mut keys) = self.keys.lock() {
            keys.insert((pid, key));
        }
        CancelGuard {
            registry: self.clone(),
            key: (pid, key),
        }
    }

    pub fn is_live(&self, pid: i32, key: i32) -> bool {
        self.keys
            .lock()
            .map(|k| k.contains(&(pid, key)))
            .unwrap_or(false)
    }

    /// Send a CancelRequest for a live session's backend.
    pub async fn forward(&self, pid: i32, key: i32) {
        if !self.is_live(pid, key) {
            tracing::info!(
                backend_pid = pid,
                "cancel request with an unknown key dropped"
            );
            return;
        }
        match TcpStream::connect(&self.upstream).await {
            Ok(mut s) => {
                let _ = s.write_all(&protocol::cancel_request(pid, key)).await;
                let _ = s.shutdown().await;
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
        let r = CancelRegistry::new("127.0.0.1:1".into());
        let g = r.register(10, 20);
        assert!(r.is_live(10, 20));
        assert!(!r.is_live(10, 21));
        drop(g);
        assert!(!r.is_live(10, 20));
    }
}
