//! Tenant secrets: the SCRAM-SHA-256 verifier behind `tenant.set_password`.
//!
//! The SQL side (`sql/secrets.sql`) keeps verifiers in
//! `tenant.tenant_secrets`, which no role but the extension's owner can
//! read; `tenant.auth_secret` and `tenant.login_verifier` hand them to the
//! router only. This module turns what `set_password` was given into the
//! verifier to store: a well-formed verifier as it is, a plaintext password
//! through PostgreSQL's own `pg_be_scram_build_secret` (SASLprep, a random
//! 16-byte salt from `pg_strong_random`, 4096 iterations: exactly what
//! `ALTER ROLE ... PASSWORD` stores). Nothing here logs or echoes the
//! password or the verifier.

use base64::Engine;
use pgrx::prelude::*;
use pgrx::{pg_sys, PgSqlErrorCode};
use std::ffi::{c_char, CStr, CString};

const SCRAM_PREFIX: &str = "SCRAM-SHA-256$";
const SCRAM_KEY_LEN: usize = 32;

/// Why a `SCRAM-SHA-256$...` string is not a verifier, or Ok.
pub fn check_scram_verifier(v: &str) -> Result<(), &'static str> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let rest = v
        .strip_prefix(SCRAM_PREFIX)
        .ok_or("no SCRAM-SHA-256$ prefix")?;
    let (iter_salt, keys) = rest.split_once('$').ok_or("no $ before the keys")?;
    let (iterations, salt) = iter_salt
        .split_once(':')
        .ok_or("no : between iterations and salt")?;
    let (stored, server) = keys
        .split_once(':')
        .ok_or("no : between StoredKey and ServerKey")?;
    let digits = !iterations.is_empty() && iterations.bytes().all(|b| b.is_ascii_digit());
    match iterations.parse::<i32>() {
        Ok(n) if digits && n >= 1 && !iterations.starts_with('0') => {}
        _ => return Err("iterations must be a number from 1 to 2147483647"),
    }
    match b64.decode(salt) {
        Ok(s) if !s.is_empty() => {}
        _ => return Err("the salt is not base64"),
    }
    match b64.decode(stored) {
        Ok(k) if k.len() == SCRAM_KEY_LEN => {}
        _ => return Err("StoredKey is not 32 bytes of base64"),
    }
    match b64.decode(server) {
        Ok(k) if k.len() == SCRAM_KEY_LEN => {}
        _ => return Err("ServerKey is not 32 bytes of base64"),
    }
    Ok(())
}

fn invalid(msg: String) -> ! {
    ereport!(ERROR, PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE, msg);
}

/// The SCRAM-SHA-256 verifier to store for `password`: a well-formed
/// verifier (`SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`,
/// base64, 32-byte keys) is returned as it is; any other non-empty string
/// is a plaintext password and gets a new verifier from PostgreSQL's own
/// code (random salt, 4096 iterations). 22023 for an empty password or a
/// malformed verifier. Internal: `tenant.set_password` calls it.
#[pg_extern(volatile, parallel_safe)]
fn _scram_verifier(password: &str) -> String {
    if password.is_empty() {
        invalid("password must not be empty (NULL removes the tenant's secret)".into());
    }
    if password.starts_with(SCRAM_PREFIX) {
        if let Err(why) = check_scram_verifier(password) {
            invalid(format!(
                "malformed SCRAM-SHA-256 verifier ({why}); expected \
                 SCRAM-SHA-256$<iterations>:<base64 salt>$<base64 StoredKey>:<base64 ServerKey>"
            ));
        }
        let c = CString::new(password).unwrap_or_default();
        // SAFETY: get_password_type reads a NUL-terminated string.
        let kind = unsafe { pg_sys::get_password_type(c.as_ptr()) };
        if kind != pg_sys::PasswordType::PASSWORD_TYPE_SCRAM_SHA_256 {
            invalid("malformed SCRAM-SHA-256 verifier (PostgreSQL does not read it)".into());
        }
        return password.to_owned();
    }
    let Ok(c) = CString::new(password) else {
        invalid("password must not contain a NUL byte".into());
    };
    extern "C-unwind" {
        fn pg_be_scram_build_secret(password: *const c_char) -> *mut c_char;
    }
    // SAFETY: a backend function taking a NUL-terminated string and
    // returning a palloc'd one; it may raise (no random bytes), so it runs
    // behind pgrx's FFI guard.
    unsafe {
        let secret = pg_sys::ffi::pg_guard_ffi_boundary(|| pg_be_scram_build_secret(c.as_ptr()));
        if secret.is_null() {
            invalid("could not compute a SCRAM-SHA-256 verifier".into());
        }
        let out = CStr::from_ptr(secret).to_string_lossy().into_owned();
        pg_sys::pfree(secret.cast());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::check_scram_verifier;

    // PostgreSQL's verifier for password "pencil" with a fixed salt.
    const GOOD: &str = "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=";

    #[test]
    fn verifier_shape() {
        assert_eq!(check_scram_verifier(GOOD), Ok(()));
        for bad in [
            "SCRAM-SHA-256$",
            "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==",
            &GOOD.replace("4096", "0"),
            &GOOD.replace("4096", "-1"),
            &GOOD.replace("4096", "04096"),
            &GOOD.replace("4096", "99999999999"),
            &GOOD.replace("W22ZaJ0SNY7soEsUEjb6gQ==", "not base64!"),
            &GOOD.replace("W22ZaJ0SNY7soEsUEjb6gQ==", ""),
            &GOOD.replace("WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=", "AAAA"),
            &GOOD.replace("=:wfP", "=wfP"),
            &format!("{GOOD}:extra"),
            &format!("{GOOD}$extra"),
            &GOOD.replace("SCRAM-SHA-256$", "SCRAM-SHA-1$"),
        ] {
            assert!(check_scram_verifier(bad).is_err(), "{bad}");
        }
    }
}
