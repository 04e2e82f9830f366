//! The label values of the metrics' own families: why a connection was
//! refused (`Refusal`), which limit stopped a statement (`Denial`), why an
//! authentication failed (`Failure`). Metrics owns them so that it imports
//! no layer above it; auth, limits and the session name them from here.
//! Each enum's discriminant indexes its counters (`ALL` in order).

/// Why a connection of a known tenant was refused (the `reason` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    MaxConnections,
    Disabled,
    Auth,
    /// Upstream unreachable, startup timeout, context injection failed.
    Error,
}

impl Refusal {
    pub const ALL: [Refusal; 4] = [
        Refusal::MaxConnections,
        Refusal::Disabled,
        Refusal::Auth,
        Refusal::Error,
    ];
    pub fn label(self) -> &'static str {
        match self {
            Refusal::MaxConnections => "max_connections",
            Refusal::Disabled => "disabled",
            Refusal::Auth => "auth",
            Refusal::Error => "error",
        }
    }
}

/// Which limit refused or stopped a statement (the `limit` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denial {
    QpsLimit,
    MaxQueryMs,
    MaxResultBytes,
}

impl Denial {
    pub const ALL: [Denial; 3] = [Denial::QpsLimit, Denial::MaxQueryMs, Denial::MaxResultBytes];
    pub fn label(self) -> &'static str {
        match self {
            Denial::QpsLimit => "qps_limit",
            Denial::MaxQueryMs => "max_query_ms",
            Denial::MaxResultBytes => "max_result_bytes",
        }
    }
}

/// Why an authentication failed (the `reason` label of
/// `tenant_router_auth_failures_total`, and the log line; `auth::Failure`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    WrongPassword,
    UnknownTenant,
    Disabled,
    /// `tenant.login_verifier` has nothing for the role (no such role, no
    /// password, not a member of tenant_app, superuser...).
    RoleRefused,
    /// After authentication: pg_tenant refused the context (the login role
    /// is not among the tenant's `login_roles`, or may bypass RLS).
    RoleNotAllowed,
    NoCredentials,
    /// Cleartext would be needed but the connection is not protected.
    CleartextRefused,
    /// A malformed or out-of-order message.
    Protocol,
}

impl Failure {
    pub const ALL: [Failure; 8] = [
        Failure::WrongPassword,
        Failure::UnknownTenant,
        Failure::Disabled,
        Failure::RoleRefused,
        Failure::RoleNotAllowed,
        Failure::NoCredentials,
        Failure::CleartextRefused,
        Failure::Protocol,
    ];
    pub fn label(self) -> &'static str {
        match self {
            Failure::WrongPassword => "wrong_password",
            Failure::UnknownTenant => "unknown_tenant",
            Failure::Disabled => "disabled",
            Failure::RoleRefused => "role_refused",
            Failure::RoleNotAllowed => "role_not_allowed",
            Failure::NoCredentials => "no_credentials",
            Failure::CleartextRefused => "cleartext_refused",
            Failure::Protocol => "protocol",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Denial, Failure, Refusal};

    /// The counters are arrays indexed by these enums: each value's
    /// discriminant must be its place in `ALL`.
    #[test]
    fn labels_index_their_counters() {
        for (i, f) in Failure::ALL.iter().enumerate() {
            assert_eq!(*f as usize, i, "{}", f.label());
        }
        for (i, r) in Refusal::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i, "{}", r.label());
        }
        for (i, d) in Denial::ALL.iter().enumerate() {
            assert_eq!(*d as usize, i, "{}", d.label());
        }
    }
}
