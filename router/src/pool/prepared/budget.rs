//! The bounds on the statements the router tracks (from `[pool]`).

/// The bounds (from `[pool]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Statements one backend keeps (LRU beyond).
    pub per_backend: usize,
    /// Named statements one client may hold.
    pub per_client: usize,
    /// Bytes of Parse messages one client may hold (and the largest
    /// statement tracked).
    pub client_bytes: usize,
}

impl Default for Budget {
    fn default() -> Self {
        Budget {
            per_backend: 200,
            per_client: 1000,
            client_bytes: 2 * 1024 * 1024,
        }
    }
}
