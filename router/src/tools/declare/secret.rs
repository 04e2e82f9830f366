//! Whether a stored SCRAM-SHA-256 verifier is the one of a declared secret,
//! so that applying the same file twice does not replace it (a verifier has
//! a random salt: comparing texts would always differ).

use super::spec::Secret;
use crate::auth::scram::Verifier;

/// The most iterations a stored verifier is recomputed with. PostgreSQL
/// stores `scram_iterations` (4096 unless raised), but `set_password`
/// (granted to tenant_admin) takes any well-formed verifier, up to
/// 2147483647 iterations: hours of hashing per tenant for the superuser's
/// `apply`. A verifier above this is "replaced" by the declared secret.
pub const MAX_COMPARED_ITERATIONS: u32 = 10_000_000;

/// `secret` is a verifier itself (set_password stores it as given) or a
/// password, prepared as PostgreSQL prepares it (SASLprep, or the bytes as
/// they are when SASLprep refuses them) and hashed with the stored salt
/// and iteration count.
pub fn matches(secret: &Secret, stored: &str) -> bool {
    if secret.0.starts_with("SCRAM-SHA-256$") {
        return secret.0 == stored;
    }
    let Ok(v) = Verifier::parse(stored) else {
        return false;
    };
    if v.iterations > MAX_COMPARED_ITERATIONS {
        return false;
    }
    let prepared = match stringprep::saslprep(&secret.0) {
        Ok(p) => p.into_owned(),
        Err(_) => secret.0.clone(),
    };
    Verifier::from_password(&prepared, &v.salt, v.iterations) == v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_matches_its_verifier_and_no_other() {
        let v = Verifier::from_password("pencil", b"0123456789abcdef", 4096).to_text();
        assert!(matches(&Secret("pencil".into()), &v));
        assert!(!matches(&Secret("pencil2".into()), &v));
        assert!(!matches(&Secret("pencil".into()), "md5abc"));
        assert!(matches(&Secret(v.clone()), &v));
    }

    #[test]
    fn a_verifier_of_absurd_iterations_is_not_recomputed() {
        // Before the cap this ran PBKDF2 2^31-1 times (hours).
        let mut v = Verifier::from_password("pencil", b"0123456789abcdef", 1);
        v.iterations = i32::MAX as u32;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(matches(&Secret("pencil".into()), &v.to_text()));
        });
        assert_eq!(
            rx.recv_timeout(std::time::Duration::from_secs(60)),
            Ok(false)
        );
        // Control: a verifier at the cap's side of normal is compared.
        let ok = Verifier::from_password("pencil", b"0123456789abcdef", 4096).to_text();
        assert!(matches(&Secret("pencil".into()), &ok));
    }

    #[test]
    fn non_ascii_passwords_are_prepared_like_postgresql() {
        // SASLprep maps U+00A0 (no-break space) to a space.
        let v = Verifier::from_password("a b", b"salt", 16).to_text();
        assert!(matches(&Secret("a\u{a0}b".into()), &v));
    }
}
