//! The one value every way of authenticating ends in (`Authenticated`),
//! and what the router answers PostgreSQL's authentication request with
//! (`BackendLogin`).

/// Who authenticated, and how the router logs into PostgreSQL for them.
/// The one value the handshake produces (token logins fill `subject`
/// and `expires_at`).
#[derive(Debug, Clone)]
pub struct Authenticated {
    pub tenant: String,
    /// The role PostgreSQL sees (the user name without the tenant).
    pub login_role: String,
    /// (subject, claims as JSON) of a token login.
    pub subject: Option<(String, String)>,
    /// When the credential stops being valid (token logins).
    pub expires_at: Option<std::time::SystemTime>,
    pub login: BackendLogin,
}

/// What the router answers PostgreSQL's authentication request with.
#[derive(Clone)]
pub enum BackendLogin {
    /// PostgreSQL's exchange was relayed to the client.
    Relayed,
    /// SCRAM with the client's ClientKey (and the ServerKey that checks
    /// PostgreSQL's signature), from a verified SCRAM exchange.
    ClientKey {
        client_key: [u8; 32],
        server_key: [u8; 32],
    },
    /// An md5 challenge answered from the stored `md5<hex>` hash.
    Md5Hash(String),
    /// A password (credentials file): cleartext, md5 or SCRAM.
    Password(String),
}

impl std::fmt::Debug for BackendLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BackendLogin::Relayed => "Relayed",
            BackendLogin::ClientKey { .. } => "ClientKey",
            BackendLogin::Md5Hash(_) => "Md5Hash",
            BackendLogin::Password(_) => "Password",
        })
    }
}
