//! JWT-as-password (`jwt::JwtVerifier::verify`) with an HS256 secret and
//! an Ed25519 public key configured. Three inputs: a raw token; a header
//! and a payload (JSON) the harness signs with the HS256 secret, so the
//! claim checks are reached; and claims the harness writes itself from
//! fuzzed strings, which must be accepted exactly when the tenant and the
//! subject are valid. Whatever is accepted names a valid tenant, an
//! allowed role, a bounded subject and passed claims that are a JSON
//! object of the listed names; no refusal repeats the token.
#![no_main]

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use hmac::{KeyInit, Mac};
use libfuzzer_sys::fuzz_target;
use pg_tenant_fuzz::{assert_clean_message, part, parts, tenant::model_valid_tenant};
use serde_json::{json, Map, Value};
use std::os::unix::fs::PermissionsExt;
use std::sync::OnceLock;
use std::time::{Duration, UNIX_EPOCH};
use tenant_router::jwt::{JwtConfig, JwtError, JwtIdentity, JwtVerifier, MAX_CLAIMS_JSON};

const SECRET: &[u8] = b"fuzz-secret-fuzz-secret-fuzz-secret-0123";
const ED_PEM: &str = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAA6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg=\n-----END PUBLIC KEY-----\n";
const ROLES: &[&str] = &["app", "reader"];
const PASS: &[&str] = &["email", "groups"];
const NOW: u64 = 1_800_000_000;

/// Two verifiers: lax (no issuer, no audience, a default role) and
/// strict (issuer, audience, a dotted tenant claim, no default role).
fn verifiers() -> &'static [JwtVerifier; 2] {
    static V: OnceLock<[JwtVerifier; 2]> = OnceLock::new();
    V.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("pg_tenant_fuzz_jwt.{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let secret = dir.join("hs256.secret");
        std::fs::write(&secret, SECRET).expect("secret file");
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let ed = dir.join("ed25519.pem");
        std::fs::write(&ed, ED_PEM).expect("key file");
        let base = JwtConfig {
            hs256_secret_file: Some(secret),
            public_key_files: vec![ed],
            allowed_roles: ROLES.iter().map(|s| s.to_string()).collect(),
            pass_claims: PASS.iter().map(|s| s.to_string()).collect(),
            ..JwtConfig::default()
        };
        let lax = JwtConfig {
            default_role: Some("app".into()),
            ..base.clone()
        };
        let strict = JwtConfig {
            issuer: Some("https://issuer.example".into()),
            audience: vec!["pg".into()],
            tenant_claim: "org.tenant".into(),
            ..base
        };
        [
            JwtVerifier::load(&lax).expect("lax config"),
            JwtVerifier::load(&strict).expect("strict config"),
        ]
    })
}

fn hs256(header: &[u8], payload: &[u8]) -> String {
    let signed = format!("{}.{}", B64URL.encode(header), B64URL.encode(payload));
    let mut m =
        <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(SECRET).expect("any key length");
    m.update(signed.as_bytes());
    format!("{signed}.{}", B64URL.encode(m.finalize().into_bytes()))
}

fn check(result: &Result<JwtIdentity, JwtError>, token: &str) {
    match result {
        Ok(id) => {
            assert!(model_valid_tenant(&id.tenant), "tenant {:?}", id.tenant);
            assert!(ROLES.contains(&id.login_role.as_str()));
            assert!(
                !id.subject.is_empty() && id.subject.len() <= 256 && !id.subject.contains('\0')
            );
            assert!(id.claims_json.len() <= MAX_CLAIMS_JSON);
            let claims: Map<String, Value> =
                serde_json::from_str(&id.claims_json).expect("claims JSON");
            assert!(claims.keys().all(|k| PASS.contains(&k.as_str())));
            let leeway = Duration::from_secs(30);
            assert!(id.expires_at + leeway >= UNIX_EPOCH + Duration::from_secs(NOW));
        }
        Err(e) => {
            assert!(
                matches!(e.sqlstate(), "28000" | "28P01" | "08P01"),
                "{e:?}: {}",
                e.sqlstate()
            );
            assert!(!e.reason().is_empty());
            let msg = e.to_string();
            assert_clean_message(&msg);
            if token.len() > 80 {
                assert!(!msg.contains(token), "the message repeats the token");
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let v = &verifiers()[usize::from(mode & 1)];
    let now = UNIX_EPOCH + Duration::from_secs(NOW);
    let p = parts(rest);
    match (mode >> 1) & 3 {
        0 => {
            let token = String::from_utf8_lossy(rest);
            check(&v.verify(&token, now), &token);
        }
        1 => {
            let token = hs256(part(&p, 0), part(&p, 1));
            let r = v.verify(&token, now);
            check(&r, &token);
            if let Ok(id) = r {
                // What verified is what was signed.
                let claims: Map<String, Value> =
                    serde_json::from_slice(part(&p, 1)).expect("payload");
                assert_eq!(
                    claims.get("sub").and_then(Value::as_str),
                    Some(id.subject.as_str())
                );
            }
        }
        _ => {
            let (tenant, sub) = (
                String::from_utf8_lossy(part(&p, 0)),
                String::from_utf8_lossy(part(&p, 1)),
            );
            let role = ["app", "reader"][usize::from(mode >> 3 & 1)];
            let email = String::from_utf8_lossy(part(&p, 2));
            let strict = mode & 1 == 1;
            let claims = if strict {
                json!({"org": {"tenant": tenant}, "sub": sub, "role": role, "exp": NOW + 60,
                       "iss": "https://issuer.example", "aud": ["x", "pg"], "email": email})
            } else {
                json!({"tenant": tenant, "sub": sub, "exp": NOW as f64 - 10.5, "email": email})
            };
            let payload = serde_json::to_vec(&claims).expect("JSON");
            let token = hs256(br#"{"alg":"HS256","typ":"JWT"}"#, &payload);
            let r = v.verify(&token, now);
            check(&r, &token);
            let valid_sub = !sub.is_empty() && sub.len() <= 256 && !sub.contains('\0');
            let small = json!({"email": email}).to_string().len() <= MAX_CLAIMS_JSON;
            match r {
                Ok(id) => {
                    assert!(model_valid_tenant(&tenant) && valid_sub && small);
                    assert_eq!((id.tenant.as_str(), id.subject.as_str()), (&*tenant, &*sub));
                    assert_eq!(id.login_role, if strict { role } else { "app" });
                    assert_eq!(id.claims_json, json!({"email": email}).to_string());
                }
                Err(e) => assert!(
                    !(model_valid_tenant(&tenant) && valid_sub && small),
                    "valid claims refused: {e:?}"
                ),
            }
        }
    }
});
