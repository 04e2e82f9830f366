//! Named upstreams (docs/src/scaling-out/index.md): the `[upstreams.<name>]`
//! sections as written (`RawUpstream`, checked by `validate_upstreams`) and
//! what the running configuration keeps of them and of the top-level
//! `upstream`, the main one (`Upstreams`, `Upstream`): the address, the
//! TLS client configuration for it, the size of its shared pools.
//!
//! A tenant's catalog `upstream` names one of them (NULL: the main one);
//! the name `main` is the top-level `upstream` and cannot be redefined.

use crate::tls::{TlsConfig, TlsSettings, UpstreamTls};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio_rustls::rustls;

/// The name of the top-level `upstream`.
pub const MAIN: &str = "main";

/// Most named upstreams one router may have (each is a label value of the
/// upstream metrics).
pub const MAX_UPSTREAMS: usize = 64;

/// One `[upstreams.<name>]` section as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawUpstream {
    /// PostgreSQL server address (host:port).
    pub address: String,
    /// TLS to it, as `tls.upstream_tls`: `disable`, `prefer`, `require`,
    /// `verify-ca`, `verify-full`. Unset: `[tls]`'s `upstream_tls`,
    /// `upstream_ca_file`, `upstream_cert_file` and `upstream_key_file`.
    pub tls: Option<UpstreamTls>,
    /// With `tls`: the CA file, client certificate and key, as
    /// `tls.upstream_ca_file` and friends.
    pub tls_ca_file: String,
    pub tls_cert_file: String,
    pub tls_key_file: String,
    /// Backends of each shared pool on this upstream (one per database and
    /// login role). Unset: `pool.size`.
    pub pool_size: Option<usize>,
}

/// Whether `name` may name an upstream: the catalog's pattern
/// `^[a-z][a-z0-9_]{0,62}$`.
pub fn valid_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_')
}

/// Whether `addr` is `host:port`.
pub fn valid_address(addr: &str) -> bool {
    addr.rsplit_once(':')
        .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok())
}

/// Check the `[upstreams.*]` sections; the message names the key.
pub fn validate_upstreams(upstreams: &BTreeMap<String, RawUpstream>) -> Result<(), String> {
    if upstreams.len() > MAX_UPSTREAMS {
        return Err(format!(
            "{} [upstreams.*] sections: at most {MAX_UPSTREAMS}",
            upstreams.len()
        ));
    }
    for (name, u) in upstreams {
        if name == MAIN {
            return Err("[upstreams.main] is reserved: \"main\" is the top-level upstream".into());
        }
        if !valid_name(name) {
            return Err(format!(
                "[upstreams.{name}]: upstream names match ^[a-z][a-z0-9_]{{0,62}}$ (the catalog's tenants.upstream)"
            ));
        }
        if !valid_address(&u.address) {
            return Err(format!(
                "upstreams.{name}.address \"{}\" is not host:port",
                u.address
            ));
        }
        if u.pool_size == Some(0) {
            return Err(format!("upstreams.{name}.pool_size must be greater than 0"));
        }
        let files =
            !u.tls_ca_file.is_empty() || !u.tls_cert_file.is_empty() || !u.tls_key_file.is_empty();
        if u.tls.is_none() && files {
            return Err(format!(
                "upstreams.{name}: tls_ca_file, tls_cert_file and tls_key_file need upstreams.{name}.tls (unset, the upstream uses [tls]'s upstream settings)"
            ));
        }
    }
    Ok(())
}

/// One upstream in effect.
#[derive(Debug)]
pub struct Upstream {
    /// `main`, or the name of its section.
    pub name: Arc<str>,
    /// host:port.
    pub address: String,
    pub tls_mode: UpstreamTls,
    /// The TLS client configuration (None: `disable`).
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// Backends of each of its shared pools.
    pub pool_size: usize,
}

/// Two upstreams are the same one when they have the same name and
/// address (what a pool is keyed by).
impl PartialEq for Upstream {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.address == other.address
    }
}

impl Eq for Upstream {}

impl Upstream {
    pub fn is_main(&self) -> bool {
        &*self.name == MAIN
    }
}

/// Every upstream in effect: the main one and the named ones.
#[derive(Debug, Clone)]
pub struct Upstreams {
    main: Arc<Upstream>,
    named: BTreeMap<String, Arc<Upstream>>,
}

impl Upstreams {
    /// The upstreams of a validated document: `address` and `tls` of the
    /// main one, the named ones with their TLS files read.
    pub fn load(
        main_address: &str,
        tls: &TlsSettings,
        pool_size: usize,
        raw: &BTreeMap<String, RawUpstream>,
    ) -> Result<Upstreams, crate::tls::TlsError> {
        let main = Arc::new(Upstream {
            name: Arc::from(MAIN),
            address: main_address.to_owned(),
            tls_mode: tls.upstream_tls,
            tls: tls.client.clone(),
            pool_size,
        });
        let mut named = BTreeMap::new();
        for (name, u) in raw {
            let (tls_mode, client) = match u.tls {
                None => (tls.upstream_tls, tls.client.clone()),
                Some(mode) => {
                    let own = TlsConfig {
                        upstream_tls: mode,
                        upstream_ca_file: u.tls_ca_file.clone(),
                        upstream_cert_file: u.tls_cert_file.clone(),
                        upstream_key_file: u.tls_key_file.clone(),
                        ..TlsConfig::default()
                    };
                    // Its messages name [tls]'s keys: name this section's.
                    let client = crate::tls::upstream_client(&own).map_err(|e| {
                        let m = e
                            .to_string()
                            .trim_start_matches("tls: ")
                            .replace("tls.upstream_tls", &format!("upstreams.{name}.tls"))
                            .replace("tls.upstream_", &format!("upstreams.{name}.tls_"));
                        crate::tls::TlsError::Invalid(m)
                    })?;
                    (mode, client)
                }
            };
            named.insert(
                name.clone(),
                Arc::new(Upstream {
                    name: Arc::from(name.as_str()),
                    address: u.address.clone(),
                    tls_mode,
                    tls: client,
                    pool_size: u.pool_size.unwrap_or(pool_size),
                }),
            );
        }
        Ok(Upstreams { main, named })
    }

    /// The top-level upstream.
    pub fn main(&self) -> &Arc<Upstream> {
        &self.main
    }

    /// The upstream a tenant's catalog `upstream` names (None, or "main":
    /// the main one); None when no such upstream is configured.
    pub fn get(&self, name: Option<&str>) -> Option<&Arc<Upstream>> {
        match name {
            None | Some(MAIN) => Some(&self.main),
            Some(n) => self.named.get(n),
        }
    }

    /// Every upstream, the main one first.
    pub fn all(&self) -> impl Iterator<Item = &Arc<Upstream>> {
        std::iter::once(&self.main).chain(self.named.values())
    }

    /// Whether an upstream of this name has this address.
    pub fn has(&self, name: &str, address: &str) -> bool {
        self.get(Some(name)).is_some_and(|u| u.address == address)
    }
}
