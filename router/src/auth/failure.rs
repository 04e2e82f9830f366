//! Why an authentication failed, as counted and logged (a leaf: the
//! metrics label their counters with it).

/// Why an authentication failed (the `reason` label of
/// `tenant_router_auth_failures_total`, and the log line).
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
    use super::Failure;

    #[test]
    fn failure_labels_index_their_counters() {
        for (i, f) in Failure::ALL.iter().enumerate() {
            assert_eq!(*f as usize, i, "{}", f.label());
        }
    }
}
