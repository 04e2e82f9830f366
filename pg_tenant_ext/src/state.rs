//! The extension's per-backend state, read by every module: the tenant
//! context as `set_context` stored it, and the types of its values.
//!
//! The context lives in SUSET GUCs (`pg_tenant.tenant_id`,
//! `pg_tenant.context_state`, `pg_tenant.subject`, `pg_tenant.claims`; see
//! `gucs`), so it is transactional, survives `RESET ALL`/`DISCARD ALL`,
//! reaches parallel workers and cannot be written by a non-superuser. Their
//! assign hooks keep a parsed copy here ([`cache_tenant`], [`cache_state`],
//! [`cache_subject`], [`cache_claims`]): reading the tenant costs no GUC
//! lookup.
//!
//! A leaf: it uses nothing else from this crate, so any module may use it
//! without making an import cycle. [`Backend`] is the cell that every
//! module's own per-backend statics are kept in.

use std::cell::{Cell, RefCell};
use std::ffi::CString;

/// Per-backend cell. A backend is single-threaded, so plain cells suffice.
pub struct Backend<T>(pub T);
// SAFETY: a Postgres backend runs extension code on one thread only.
unsafe impl<T> Sync for Backend<T> {}

static TENANT: Backend<RefCell<Option<String>>> = Backend(RefCell::new(None));
static STATE: Backend<Cell<ContextState>> = Backend(Cell::new(ContextState::NONE));
static SUBJECT: Backend<RefCell<Option<String>>> = Backend(RefCell::new(None));
static CLAIMS: Backend<RefCell<Option<CString>>> = Backend(RefCell::new(None));

/// DML kinds a tenant may be restricted to (`allowed_operations`).
pub mod ops {
    pub const SELECT: u8 = 1;
    pub const INSERT: u8 = 2;
    pub const UPDATE: u8 = 4;
    pub const DELETE: u8 = 8;
    pub const ALL: u8 = SELECT | INSERT | UPDATE | DELETE;

    /// Bit for an operation name as stored in `tenant.tenants`.
    pub fn from_name(name: &str) -> Option<u8> {
        Some(match name {
            "select" => SELECT,
            "insert" => INSERT,
            "update" => UPDATE,
            "delete" => DELETE,
            _ => return None,
        })
    }
}

/// The budgets loaded by `set_context` (all 0 without a context), enforced
/// by `budget` and `advisory`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Budget {
    /// The tenant's advisory lock namespace (`tenant.tenants.lock_space`).
    pub lock_space: u32,
    pub max_advisory_locks: u32,
    pub statement_timeout_ms: u32,
    pub idle_in_transaction_timeout_ms: u32,
    pub work_mem_kb: u32,
    pub maintenance_work_mem_kb: u32,
    pub temp_file_limit_kb: u32,
}

impl Budget {
    /// Serialized as `lock_space:max_advisory_locks:statement:idle:work:maintenance:temp`.
    pub fn serialize(&self) -> String {
        format!(
            "{}:{}:{}:{}:{}:{}:{}",
            self.lock_space,
            self.max_advisory_locks,
            self.statement_timeout_ms,
            self.idle_in_transaction_timeout_ms,
            self.work_mem_kb,
            self.maintenance_work_mem_kb,
            self.temp_file_limit_kb
        )
    }

    /// Parse the 7 fields that [`Budget::serialize`] writes.
    pub fn parse<'a>(it: &mut impl Iterator<Item = &'a str>) -> Option<Budget> {
        let mut next = || it.next()?.parse::<u32>().ok();
        Some(Budget {
            lock_space: next()?,
            max_advisory_locks: next()?,
            statement_timeout_ms: next()?,
            idle_in_transaction_timeout_ms: next()?,
            work_mem_kb: next()?,
            maintenance_work_mem_kb: next()?,
            temp_file_limit_kb: next()?,
        })
    }
}

/// What `set_context` loaded besides the tenant id: the locked role, the
/// tenant's permissions and whether its effective `pool_mode` is
/// `transaction`, and the tenant's budgets ([`Budget`]). Serialized into
/// `pg_tenant.context_state` as `v4:<role oid>:<allow_ddl>:<read_only>:<ops
/// bits>:<allow_large_objects>:<transaction_pool>:<budget>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ContextState {
    pub role: u32,
    pub allow_ddl: bool,
    pub read_only: bool,
    pub ops: u8,
    pub allow_large_objects: bool,
    /// The tenant's effective pool_mode is `transaction` (see `pool`).
    pub transaction_pool: bool,
    /// Budgets of shared resources (0.5.0).
    pub budget: Budget,
    pub active: bool,
}

impl ContextState {
    pub const NONE: ContextState = ContextState {
        role: 0,
        allow_ddl: true,
        read_only: false,
        ops: ops::ALL,
        allow_large_objects: true,
        transaction_pool: false,
        budget: Budget {
            lock_space: 0,
            max_advisory_locks: 0,
            statement_timeout_ms: 0,
            idle_in_transaction_timeout_ms: 0,
            work_mem_kb: 0,
            maintenance_work_mem_kb: 0,
            temp_file_limit_kb: 0,
        },
        active: false,
    };

    pub fn parse(s: &str) -> Option<ContextState> {
        if s.is_empty() {
            return Some(ContextState::NONE);
        }
        let mut it = s.split(':');
        if it.next()? != "v4" {
            return None;
        }
        let role = it.next()?.parse().ok()?;
        let allow_ddl = it.next()? == "1";
        let read_only = it.next()? == "1";
        let ops = it.next()?.parse().ok()?;
        let allow_large_objects = it.next()? == "1";
        let transaction_pool = it.next()? == "1";
        let budget = Budget::parse(&mut it)?;
        if it.next().is_some() || ops > ops::ALL {
            return None;
        }
        Some(ContextState {
            role,
            allow_ddl,
            read_only,
            ops,
            allow_large_objects,
            transaction_pool,
            budget,
            active: true,
        })
    }

    pub fn serialize(&self) -> String {
        format!(
            "v4:{}:{}:{}:{}:{}:{}:{}",
            self.role,
            self.allow_ddl as u8,
            self.read_only as u8,
            self.ops,
            self.allow_large_objects as u8,
            self.transaction_pool as u8,
            self.budget.serialize()
        )
    }
}

/// Keep the tenant id (`pg_tenant.tenant_id`'s assign hook; "" is none).
pub fn cache_tenant(v: Option<&str>) {
    *TENANT.0.borrow_mut() = v.filter(|s| !s.is_empty()).map(str::to_owned);
}

/// Keep the context state (`pg_tenant.context_state`'s assign hook).
pub fn cache_state(s: ContextState) {
    STATE.0.set(s);
}

/// Keep the subject (`pg_tenant.subject`'s assign hook; "" is none).
pub fn cache_subject(v: Option<&str>) {
    *SUBJECT.0.borrow_mut() = v.filter(|s| !s.is_empty()).map(str::to_owned);
}

/// Keep the claims (`pg_tenant.claims`'s assign hook; "" is none).
pub fn cache_claims(v: Option<&str>) {
    *CLAIMS.0.borrow_mut() = v
        .filter(|s| !s.is_empty())
        .and_then(|s| CString::new(s).ok());
}

/// The state loaded with the current context (`active == false` without).
pub fn state() -> ContextState {
    STATE.0.get()
}

/// The current tenant id, if any.
pub fn tenant() -> Option<String> {
    TENANT.0.borrow().clone()
}

/// Look at the current tenant id without copying it.
pub fn with_tenant<T>(f: impl FnOnce(Option<&str>) -> T) -> T {
    f(TENANT.0.borrow().as_deref())
}

/// The current subject, if any.
pub fn subject() -> Option<String> {
    SUBJECT.0.borrow().clone()
}

/// The current subject's claims (JSON object text), if any.
pub fn claims() -> Option<CString> {
    CLAIMS.0.borrow().clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trip() {
        let s = ContextState {
            role: 16384,
            allow_ddl: false,
            read_only: true,
            ops: ops::SELECT | ops::INSERT,
            allow_large_objects: true,
            transaction_pool: true,
            budget: Budget {
                lock_space: 3,
                max_advisory_locks: 64,
                statement_timeout_ms: 300_000,
                idle_in_transaction_timeout_ms: 0,
                work_mem_kb: 65536,
                maintenance_work_mem_kb: 1,
                temp_file_limit_kb: 2,
            },
            active: true,
        };
        assert_eq!(ContextState::parse(&s.serialize()), Some(s));
        let session = ContextState {
            transaction_pool: false,
            ..s
        };
        assert_eq!(ContextState::parse(&session.serialize()), Some(session));
        assert_eq!(ContextState::parse(""), Some(ContextState::NONE));
        assert_eq!(ContextState::parse("v4:1:0:0:99:0:0:0:0:0:0:0:0:0"), None);
        assert_eq!(ContextState::parse("v3:1:0:0:1:0:0"), None);
        assert_eq!(ContextState::parse("v4:1:0:0:1:0:0"), None);
        assert_eq!(ContextState::parse("v4:1:0:0:1:0:1:0:0:0:0:0:0:0:1"), None);
    }

    #[test]
    fn budget_round_trip() {
        let b = Budget {
            lock_space: 7,
            max_advisory_locks: 64,
            statement_timeout_ms: 1,
            idle_in_transaction_timeout_ms: 2,
            work_mem_kb: 3,
            maintenance_work_mem_kb: 4,
            temp_file_limit_kb: 5,
        };
        let text = b.serialize();
        assert_eq!(Budget::parse(&mut text.split(':')), Some(b));
        assert_eq!(Budget::parse(&mut "1:2:3".split(':')), None);
        assert_eq!(Budget::parse(&mut "1:2:3:4:5:6:x".split(':')), None);
    }
}
