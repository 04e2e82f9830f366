//! The types the pool's files share: which pool a backend comes from
//! (`PoolKey`), why a client got none (`PoolError`), and why a backend was
//! closed instead of reused (`Discard`, a metric label). A leaf.

/// Which pool a client's backend comes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PoolKey {
    /// The upstream's name (`main` or an `[upstreams.<name>]`).
    pub upstream: String,
    /// Its address when the pool was made: a reload that changes it, or
    /// removes the upstream, drains the pool (`Pools::drain_gone`).
    pub address: String,
    pub database: String,
    pub role: String,
    /// The tenant of a dedicated pool.
    pub dedicated: Option<String>,
}

impl PoolKey {
    /// The startup parameters a backend of this key logs in with.
    pub fn login_params(&self) -> Vec<(String, String)> {
        vec![
            ("user".to_owned(), self.role.clone()),
            ("database".to_owned(), self.database.clone()),
        ]
    }

    /// `role@database`, and `/tenant` for a dedicated pool (metrics,
    /// logs); on a named upstream, `upstream:` before it.
    pub fn label(&self) -> String {
        let on = if self.upstream == crate::config::MAIN {
            String::new()
        } else {
            format!("{}:", self.upstream)
        };
        match &self.dedicated {
            Some(t) => format!("{on}{}@{}/{}", self.role, self.database, t),
            None => format!("{on}{}@{}", self.role, self.database),
        }
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum PoolError {
    #[error("pool {pool} is drained: its upstream \"{upstream}\" was removed or moved by a configuration reload; reconnect")]
    Drained { pool: String, upstream: String },
    #[error("no backend of pool {pool} became free within {waited_ms} ms (pool size {size}; tenant \"{tenant}\" may hold {share} of it at once)")]
    Timeout {
        pool: String,
        tenant: String,
        waited_ms: u64,
        size: usize,
        share: usize,
    },
}

impl PoolError {
    pub fn sqlstate(&self) -> &'static str {
        match self {
            PoolError::Drained { .. } => "57P01",
            PoolError::Timeout { .. } => "53300",
        }
    }
}

/// Why a pooled backend was closed instead of reused (metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Discard {
    ClosedWhileIdle,
    CheckFailed,
    SwitchFailed,
    ResetFailed,
    TooManySettings,
    ClientLeftBusy,
    Lifetime,
    IdleTimeout,
    /// Its upstream was removed or readdressed by a reload.
    Drained,
}

impl Discard {
    pub const ALL: [Discard; 9] = [
        Discard::ClosedWhileIdle,
        Discard::CheckFailed,
        Discard::SwitchFailed,
        Discard::ResetFailed,
        Discard::TooManySettings,
        Discard::ClientLeftBusy,
        Discard::Lifetime,
        Discard::IdleTimeout,
        Discard::Drained,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Discard::ClosedWhileIdle => "closed_while_idle",
            Discard::CheckFailed => "check_failed",
            Discard::SwitchFailed => "switch_failed",
            Discard::ResetFailed => "reset_failed",
            Discard::TooManySettings => "too_many_settings",
            Discard::ClientLeftBusy => "client_left_busy",
            Discard::Lifetime => "lifetime",
            Discard::IdleTimeout => "idle_timeout",
            Discard::Drained => "drained",
        }
    }
}
