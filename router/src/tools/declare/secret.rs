//! Whether a stored SCRAM-SHA-256 verifier is the one of a declared secret,
//! so that applying the same file twice does not replace it (a verifier has
//! a random salt: comparing texts would always differ).

use super::spec::Secret;
use crate::auth::scram::Verifier;

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
    fn non_ascii_passwords_are_prepared_like_postgresql() {
        // SASLprep maps U+00A0 (no-break space) to a space.
        let v = Verifier::from_password("a b", b"salt", 16).to_text();
        assert!(matches(&Secret("a\u{a0}b".into()), &v));
    }
}
