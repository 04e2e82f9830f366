//! Logins in progress of tenants whose state the router does not hold
//! (no client of theirs has authenticated since they were last idle): an
//! administrator's disconnect of the tenant must reach them too, without
//! making state for a tenant a client merely named. An entry lives only
//! while such a login runs, so the map is bounded by the client
//! connections open.

use crate::interrupt::{Interrupt, Interrupts, Signal};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

type Map = Mutex<HashMap<String, (usize, Interrupts)>>;

#[derive(Default)]
pub struct Logins(Arc<Map>);

/// One login in progress; leaves the registry on drop.
pub struct LoginGuard {
    tenant: String,
    map: Arc<Map>,
}

impl Logins {
    /// A login of `tenant` started; `interrupt` is its session's.
    pub fn started(&self, tenant: &str, interrupt: &Arc<Interrupt>) -> LoginGuard {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let entry = map.entry(tenant.to_owned()).or_default();
        entry.0 += 1;
        entry.1.register(interrupt);
        LoginGuard {
            tenant: tenant.to_owned(),
            map: self.0.clone(),
        }
    }

    /// Kick every login of `tenant` in progress; returns how many.
    pub fn kick(&self, tenant: &str) -> usize {
        let map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.get(tenant).map_or(0, |(_, i)| i.raise(Signal::Kick))
    }

    /// Whether a login of `tenant` is in progress.
    pub fn contains(&self, tenant: &str) -> bool {
        let map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.contains_key(tenant)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

impl Drop for LoginGuard {
    fn drop(&mut self) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(entry) = map.get_mut(&self.tenant) {
            entry.0 -= 1;
            if entry.0 == 0 {
                map.remove(&self.tenant);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_login_is_kicked_while_in_progress_and_leaves_no_entry() {
        let logins = Logins::default();
        let a = Arc::new(Interrupt::default());
        let b = Arc::new(Interrupt::default());
        let ga = logins.started("acme", &a);
        let gb = logins.started("acme", &b);
        assert_eq!(logins.kick("acme"), 2);
        assert_eq!(logins.kick("globex"), 0, "other tenants untouched");
        assert!(logins.contains("acme") && !logins.contains("globex"));
        drop(ga);
        assert_eq!(logins.len(), 1);
        drop(gb);
        assert_eq!(logins.len(), 0, "no entry outlives its logins");
        assert_eq!(logins.kick("acme"), 0);
    }
}
