//! Verifier tests with real keys: RSA, EC P-256 and Ed25519 pairs made by
//! the `openssl` CLI once per test run, HS256 secrets written to files.

use super::*;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{encode, DecodingKey, EncodingKey, Header as JwtHeader};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The tests' clock: 2027-01-15.
fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

fn at(offset: i64) -> i64 {
    1_800_000_000 + offset
}

/// A key pair: what signs (private) and what the router is given.
struct Pair {
    alg: Algorithm,
    private_pem: Vec<u8>,
    /// The public key PEM, or for HS256 the secret itself.
    public: Vec<u8>,
}

impl Pair {
    fn encoding_key(&self) -> EncodingKey {
        match self.alg {
            Algorithm::HS256 => EncodingKey::from_secret(&self.public),
            Algorithm::RS256 => EncodingKey::from_rsa_pem(&self.private_pem).unwrap(),
            Algorithm::ES256 => EncodingKey::from_ec_pem(&self.private_pem).unwrap(),
            Algorithm::EdDSA => EncodingKey::from_ed_pem(&self.private_pem).unwrap(),
            a => panic!("no test keys for {a:?}"),
        }
    }

    fn sign(&self, claims: &Value) -> String {
        self.sign_kid(claims, None)
    }

    fn sign_kid(&self, claims: &Value, kid: Option<&str>) -> String {
        let mut h = JwtHeader::new(self.alg);
        h.kid = kid.map(str::to_owned);
        encode(&h, claims, &self.encoding_key()).unwrap()
    }

    fn jwk(&self, kid: &str, with_alg: bool) -> Jwk {
        let dk = match self.alg {
            Algorithm::RS256 => DecodingKey::from_rsa_pem(&self.public),
            Algorithm::ES256 => DecodingKey::from_ec_pem(&self.public),
            Algorithm::EdDSA => DecodingKey::from_ed_pem(&self.public),
            a => panic!("no JWK for {a:?}"),
        }
        .unwrap();
        let mut jwk = Jwk::from_decoding_key(&dk, with_alg.then_some(self.alg)).unwrap();
        jwk.common.key_id = Some(kid.into());
        jwk
    }
}

fn openssl(args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("the openssl CLI");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn generate(dir: &Path, name: &str, alg: Algorithm) -> Pair {
    let private = dir.join(format!("{name}.key"));
    let public = dir.join(format!("{name}.pub"));
    let p = private.to_str().unwrap();
    match alg {
        Algorithm::RS256 => openssl(&[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            p,
        ]),
        Algorithm::ES256 => openssl(&[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            p,
        ]),
        Algorithm::EdDSA => openssl(&["genpkey", "-algorithm", "ed25519", "-out", p]),
        a => panic!("no generator for {a:?}"),
    }
    openssl(&[
        "pkey",
        "-in",
        p,
        "-pubout",
        "-out",
        public.to_str().unwrap(),
    ]);
    Pair {
        alg,
        private_pem: std::fs::read(&private).unwrap(),
        public: std::fs::read(&public).unwrap(),
    }
}

fn secret_pair(byte: u8) -> Pair {
    Pair {
        alg: Algorithm::HS256,
        private_pem: Vec::new(),
        public: vec![byte; 40],
    }
}

/// Two pairs (a, b) per algorithm, made once.
struct TestKeys {
    pairs: Vec<(Pair, Pair)>,
}

fn keys() -> &'static TestKeys {
    static KEYS: OnceLock<TestKeys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let mut pairs = vec![(secret_pair(b'a'), secret_pair(b'b'))];
        for (i, alg) in [Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA]
            .into_iter()
            .enumerate()
        {
            pairs.push((
                generate(dir.path(), &format!("{i}a"), alg),
                generate(dir.path(), &format!("{i}b"), alg),
            ));
        }
        TestKeys { pairs }
    })
}

fn pair(alg: Algorithm, second: bool) -> &'static Pair {
    let (a, b) = keys()
        .pairs
        .iter()
        .find(|(a, _)| a.alg == alg)
        .expect("test pair");
    if second {
        b
    } else {
        a
    }
}

const ALGS: [Algorithm; 4] = [
    Algorithm::HS256,
    Algorithm::RS256,
    Algorithm::ES256,
    Algorithm::EdDSA,
];

/// A directory with the router's key files and a config pointing at them.
struct Setup {
    dir: tempfile::TempDir,
    cfg: JwtConfig,
}

impl Setup {
    fn new() -> Setup {
        Setup {
            dir: tempfile::tempdir().unwrap(),
            cfg: JwtConfig {
                allowed_roles: vec!["app_user".into(), "app_admin".into()],
                pass_claims: vec!["email".into()],
                ..JwtConfig::default()
            },
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Give the router `p`'s public side (file name per algorithm, so a
    /// second call replaces the file: key rotation).
    fn trust(&mut self, p: &Pair) -> &mut Setup {
        if p.alg == Algorithm::HS256 {
            let path = self.path("hs256.secret");
            write_secret(&path, &p.public, 0o600);
            self.cfg.hs256_secret_file = Some(path);
        } else {
            let path = self.path(&format!("{:?}.pem", p.alg));
            std::fs::write(&path, &p.public).unwrap();
            if !self.cfg.public_key_files.contains(&path) {
                self.cfg.public_key_files.push(path);
            }
        }
        self
    }

    fn jwks(&mut self, keys: Vec<Jwk>) -> &mut Setup {
        let path = self.path("jwks.json");
        std::fs::write(&path, serde_json::to_vec(&JwkSet { keys }).unwrap()).unwrap();
        self.cfg.jwks_file = Some(path);
        self
    }

    fn load(&self) -> JwtVerifier {
        JwtVerifier::load(&self.cfg).unwrap()
    }

    fn load_err(&self) -> String {
        JwtVerifier::load(&self.cfg).unwrap_err().to_string()
    }
}

fn write_secret(path: &Path, secret: &[u8], mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, secret).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn claims() -> Value {
    json!({
        "sub": "user-42",
        "tenant": "acme",
        "role": "app_user",
        "email": "ann@acme.example",
        "exp": at(600),
        "iat": at(-10),
    })
}

fn with(mut base: Value, changes: Value) -> Value {
    for (k, v) in changes.as_object().unwrap() {
        if v.is_null() {
            base.as_object_mut().unwrap().remove(k);
        } else {
            base[k] = v.clone();
        }
    }
    base
}

fn b64(v: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(v)
}

/// A token put together by hand (for headers `encode` will not write).
fn raw(header: Value, claims: &Value, sig: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes()),
        b64(sig)
    )
}

#[test]
fn valid_tokens_verify_for_each_algorithm() {
    for alg in ALGS {
        let mut s = Setup::new();
        let v = s.trust(pair(alg, false)).load();
        assert_eq!(v.algorithms(), &[alg]);
        let id = v
            .verify(&pair(alg, false).sign(&claims()), now())
            .unwrap_or_else(|e| panic!("{alg:?}: {e}"));
        assert_eq!(
            id,
            JwtIdentity {
                tenant: "acme".into(),
                login_role: "app_user".into(),
                subject: "user-42".into(),
                claims_json: r#"{"email":"ann@acme.example"}"#.into(),
                expires_at: UNIX_EPOCH + Duration::from_secs(at(600) as u64),
            },
            "{alg:?}"
        );
    }
}

#[test]
fn another_key_is_a_bad_signature() {
    for alg in ALGS {
        let mut s = Setup::new();
        let v = s.trust(pair(alg, false)).load();
        let e = v
            .verify(&pair(alg, true).sign(&claims()), now())
            .unwrap_err();
        assert_eq!(e, JwtError::BadSignature, "{alg:?}");
        assert_eq!((e.reason(), e.sqlstate()), ("bad_signature", "28P01"));
    }
}

#[test]
fn a_tampered_payload_is_a_bad_signature() {
    for alg in ALGS {
        let mut s = Setup::new();
        let v = s.trust(pair(alg, false)).load();
        let token = pair(alg, false).sign(&claims());
        let parts: Vec<&str> = token.split('.').collect();
        let other = with(claims(), json!({"tenant": "globex"}));
        let forged = format!(
            "{}.{}.{}",
            parts[0],
            b64(other.to_string().as_bytes()),
            parts[2]
        );
        assert_eq!(
            v.verify(&forged, now()),
            Err(JwtError::BadSignature),
            "{alg:?}"
        );
    }
}

#[test]
fn alg_none_is_refused() {
    for alg in ALGS {
        let mut s = Setup::new();
        let v = s.trust(pair(alg, false)).load();
        for none in ["none", "None", "NONE"] {
            for sig in [&b""[..], b"x"] {
                let t = raw(json!({"alg": none, "typ": "JWT"}), &claims(), sig);
                let e = v.verify(&t, now()).unwrap_err();
                assert!(
                    matches!(e, JwtError::AlgorithmNotAllowed(_)),
                    "{alg:?} {none}: {e}"
                );
            }
        }
        // Nor an algorithm for which no key is configured.
        let other = if alg == Algorithm::EdDSA {
            Algorithm::RS256
        } else {
            Algorithm::EdDSA
        };
        let e = v
            .verify(&pair(other, false).sign(&claims()), now())
            .unwrap_err();
        assert!(matches!(e, JwtError::AlgorithmNotAllowed(_)), "{e}");
    }
}

#[test]
fn an_rsa_public_key_is_never_an_hmac_secret() {
    let rsa = pair(Algorithm::RS256, false);
    let forged = encode(
        &JwtHeader::new(Algorithm::HS256),
        &claims(),
        &EncodingKey::from_secret(&rsa.public),
    )
    .unwrap();
    // Only the RSA key configured: HS256 is not even allowed.
    let mut s = Setup::new();
    let v = s.trust(rsa).load();
    let e = v.verify(&forged, now()).unwrap_err();
    assert_eq!(e, JwtError::AlgorithmNotAllowed("\"HS256\"".into()));
    // HS256 allowed too (a secret file): the RSA key is still not tried.
    s.trust(pair(Algorithm::HS256, false));
    let v = s.load();
    assert_eq!(v.verify(&forged, now()), Err(JwtError::BadSignature));
    // Nor through a JWKS kid that names the RSA key.
    let mut s = Setup::new();
    let v = s.jwks(vec![rsa.jwk("rsa-1", true)]).load();
    let mut h = JwtHeader::new(Algorithm::HS256);
    h.kid = Some("rsa-1".into());
    let forged = encode(&h, &claims(), &EncodingKey::from_secret(&rsa.public)).unwrap();
    assert!(matches!(
        v.verify(&forged, now()),
        Err(JwtError::AlgorithmNotAllowed(_))
    ));
    // The same with an HS256 secret configured next to the JWKS.
    s.trust(pair(Algorithm::HS256, false));
    let v = s.load();
    assert!(matches!(
        v.verify(&forged, now()),
        Err(JwtError::AlgorithmNotAllowed(_))
    ));
}

#[test]
fn keys_named_in_the_header_are_ignored() {
    // An attacker's token carrying its own key (jwk), or pointing at one
    // (jku, x5u): keys come only from the configuration.
    let (ours, theirs) = (pair(Algorithm::EdDSA, false), pair(Algorithm::EdDSA, true));
    let mut s = Setup::new();
    let v = s.trust(ours).load();
    let mut h = JwtHeader::new(Algorithm::EdDSA);
    h.jwk = Some(theirs.jwk("mine", true));
    h.jku = Some("https://evil.example.com/jwks.json".into());
    h.x5u = Some("https://evil.example.com/cert.pem".into());
    let t = encode(&h, &claims(), &theirs.encoding_key()).unwrap();
    assert_eq!(v.verify(&t, now()), Err(JwtError::BadSignature));
}

#[test]
fn expiry_honours_the_leeway() {
    for alg in ALGS {
        let p = pair(alg, false);
        let mut s = Setup::new();
        let v = s.trust(p).load();
        let within = p.sign(&with(claims(), json!({"exp": at(-30)})));
        assert!(v.verify(&within, now()).is_ok(), "{alg:?}");
        let beyond = p.sign(&with(claims(), json!({"exp": at(-31)})));
        let e = v.verify(&beyond, now()).unwrap_err();
        assert_eq!(e, JwtError::Expired, "{alg:?}");
        assert_eq!((e.reason(), e.sqlstate()), ("expired", "28P01"));
        let nbf = p.sign(&with(claims(), json!({"nbf": at(31)})));
        assert_eq!(v.verify(&nbf, now()), Err(JwtError::NotYetValid), "{alg:?}");
        let nbf = p.sign(&with(claims(), json!({"nbf": at(30)})));
        assert!(v.verify(&nbf, now()).is_ok(), "{alg:?}");
    }
    let mut s = Setup::new();
    s.cfg.leeway_s = 0;
    let p = pair(Algorithm::EdDSA, false);
    let v = s.trust(p).load();
    let t = p.sign(&with(claims(), json!({"exp": at(-1)})));
    assert_eq!(v.verify(&t, now()), Err(JwtError::Expired));
    // The clock is the caller's: the same token is fine earlier.
    assert!(v.verify(&t, now() - Duration::from_secs(5)).is_ok());
}

#[test]
fn exp_is_required_and_numeric() {
    let p = pair(Algorithm::HS256, false);
    let mut s = Setup::new();
    let v = s.trust(p).load();
    let t = p.sign(&with(claims(), json!({"exp": null})));
    assert_eq!(
        v.verify(&t, now()),
        Err(JwtError::MissingClaim("exp".into()))
    );
    for bad in [json!("1900000000"), json!(-5), json!(1e300), json!([1])] {
        let t = p.sign(&with(claims(), json!({ "exp": bad })));
        assert_eq!(
            v.verify(&t, now()),
            Err(JwtError::InvalidClaim("exp".into())),
            "{bad}"
        );
    }
    let t = p.sign(&with(claims(), json!({"nbf": "soon"})));
    assert_eq!(
        v.verify(&t, now()),
        Err(JwtError::InvalidClaim("nbf".into()))
    );
    // A fractional NumericDate is fine.
    let t = p.sign(&with(claims(), json!({"exp": at(60) as f64 + 0.5})));
    let id = v.verify(&t, now()).unwrap();
    assert_eq!(
        id.expires_at,
        UNIX_EPOCH + Duration::from_millis(at(60) as u64 * 1000 + 500)
    );
}

#[test]
fn issuer_and_audience() {
    let p = pair(Algorithm::ES256, false);
    let mut s = Setup::new();
    s.cfg.issuer = Some("https://idp.example.com/".into());
    s.cfg.audience = vec!["tenant-router".into(), "db".into()];
    let v = s.trust(p).load();
    let good = json!({"iss": "https://idp.example.com/", "aud": "db"});
    assert!(v
        .verify(&p.sign(&with(claims(), good.clone())), now())
        .is_ok());
    let list = json!({"aud": ["other", "tenant-router"]});
    assert!(v
        .verify(&p.sign(&with(with(claims(), good.clone()), list)), now())
        .is_ok());
    for (change, want) in [
        (
            json!({"iss": "https://evil.example.com/"}),
            JwtError::WrongIssuer,
        ),
        (json!({"iss": null}), JwtError::WrongIssuer),
        (
            json!({"iss": ["https://idp.example.com/"]}),
            JwtError::WrongIssuer,
        ),
        (json!({"aud": "other"}), JwtError::WrongAudience),
        (json!({"aud": ["other", "x"]}), JwtError::WrongAudience),
        (json!({"aud": ["db", 5]}), JwtError::WrongAudience),
        (json!({"aud": null}), JwtError::WrongAudience),
        (json!({"aud": []}), JwtError::WrongAudience),
    ] {
        let t = p.sign(&with(with(claims(), good.clone()), change.clone()));
        let e = v.verify(&t, now()).unwrap_err();
        assert_eq!(e, want, "{change}");
        assert_eq!(e.sqlstate(), "28P01");
    }
    // Without a configured audience, a token meant for someone else
    // (it has an aud) is refused; one without aud is fine.
    let mut s = Setup::new();
    let v = s.trust(p).load();
    let t = p.sign(&with(claims(), json!({"aud": "billing"})));
    assert_eq!(v.verify(&t, now()), Err(JwtError::WrongAudience));
    assert!(v.verify(&p.sign(&claims()), now()).is_ok());
}

#[test]
fn tenant_role_and_subject_claims() {
    let p = pair(Algorithm::HS256, false);
    let mut s = Setup::new();
    let v = s.trust(p).load();
    let check = |change: Value, want: JwtError, code: &str| {
        let e = v.verify(&p.sign(&with(claims(), change.clone())), now());
        assert_eq!(e, Err(want), "{change}");
        assert_eq!(e.unwrap_err().sqlstate(), code);
    };
    check(
        json!({"tenant": null}),
        JwtError::MissingClaim("tenant".into()),
        "28000",
    );
    for bad in [json!("Acme"), json!("acme corp"), json!(""), json!(7)] {
        check(
            json!({ "tenant": bad }),
            JwtError::BadTenant("tenant".into()),
            "28000",
        );
    }
    check(
        json!({"role": "postgres"}),
        JwtError::RoleNotAllowed("\"postgres\"".into()),
        "28000",
    );
    check(
        json!({"role": "x\ny"}),
        JwtError::RoleNotAllowed("(not shown)".into()),
        "28000",
    );
    check(
        json!({"role": ["app_user"]}),
        JwtError::InvalidClaim("role".into()),
        "28000",
    );
    check(
        json!({"role": null}),
        JwtError::MissingClaim("role".into()),
        "28000",
    );
    check(
        json!({"sub": null}),
        JwtError::MissingClaim("sub".into()),
        "28000",
    );
    for bad in [
        json!(""),
        json!("a\u{0}b"),
        json!("x".repeat(257)),
        json!(42),
    ] {
        check(
            json!({ "sub": bad }),
            JwtError::BadSubject("sub".into()),
            "28000",
        );
    }
    let id = v
        .verify(
            &p.sign(&with(
                claims(),
                json!({"role": "app_admin", "sub": "é".repeat(128)}),
            )),
            now(),
        )
        .unwrap();
    assert_eq!(id.login_role, "app_admin");
    assert_eq!(id.subject.len(), 256);

    // default_role when the claim is absent, never to override one.
    s.cfg.default_role = Some("app_user".into());
    let v = s.load();
    let t = p.sign(&with(claims(), json!({"role": null})));
    assert_eq!(v.verify(&t, now()).unwrap().login_role, "app_user");
    let t = p.sign(&with(claims(), json!({"role": "admin"})));
    assert!(matches!(
        v.verify(&t, now()),
        Err(JwtError::RoleNotAllowed(_))
    ));
}

#[test]
fn dotted_claim_paths() {
    let p = pair(Algorithm::EdDSA, false);
    let mut s = Setup::new();
    s.cfg.tenant_claim = "app_metadata.tenant".into();
    s.cfg.role_claim = "https://example.com/role".into();
    s.cfg.subject_claim = "user_id".into();
    let v = s.trust(p).load();
    let c = json!({
        "user_id": "u1",
        "exp": at(60),
        "app_metadata": {"tenant": "globex", "plan": "pro"},
        "https://example.com/role": "app_admin",
    });
    let id = v.verify(&p.sign(&c), now()).unwrap();
    assert_eq!(
        (
            id.tenant.as_str(),
            id.login_role.as_str(),
            id.subject.as_str()
        ),
        ("globex", "app_admin", "u1")
    );
    // A top-level claim with the dotted name wins over the path.
    let c2 = with(c.clone(), json!({"app_metadata.tenant": "initech"}));
    assert_eq!(v.verify(&p.sign(&c2), now()).unwrap().tenant, "initech");
    let c3 = with(c.clone(), json!({"app_metadata": {"plan": "pro"}}));
    assert_eq!(
        v.verify(&p.sign(&c3), now()),
        Err(JwtError::MissingClaim("app_metadata.tenant".into()))
    );
    let c4 = with(c, json!({"app_metadata": "globex"}));
    assert_eq!(
        v.verify(&p.sign(&c4), now()),
        Err(JwtError::MissingClaim("app_metadata.tenant".into()))
    );
}

#[test]
fn pass_claims_are_selected_and_sorted() {
    let p = pair(Algorithm::RS256, false);
    let mut s = Setup::new();
    s.cfg.pass_claims = vec![
        "zone".into(),
        "email".into(),
        "absent".into(),
        "groups".into(),
        "Age".into(),
    ];
    let v = s.trust(p).load();
    let c = with(
        claims(),
        json!({"zone": "eu", "groups": ["a", "b"], "Age": 7, "secret_stuff": "no"}),
    );
    let id = v.verify(&p.sign(&c), now()).unwrap();
    assert_eq!(
        id.claims_json,
        r#"{"Age":7,"email":"ann@acme.example","groups":["a","b"],"zone":"eu"}"#
    );
    // None present: an empty object.
    s.cfg.pass_claims = vec!["absent".into()];
    let v = s.load();
    assert_eq!(v.verify(&p.sign(&c), now()).unwrap().claims_json, "{}");
    // Too large.
    s.cfg.pass_claims = vec!["blob".into()];
    let v = s.load();
    let big = with(claims(), json!({"blob": "x".repeat(8200)}));
    let e = v.verify(&p.sign(&big), now()).unwrap_err();
    assert!(matches!(e, JwtError::ClaimsTooLarge(n) if n > 8192), "{e}");
    assert_eq!((e.reason(), e.sqlstate()), ("claims_too_large", "28000"));
    let fits = with(claims(), json!({"blob": "x".repeat(8192 - 11)}));
    assert_eq!(
        v.verify(&p.sign(&fits), now()).unwrap().claims_json.len(),
        8192
    );
}

#[test]
fn jwks_keys_are_selected_by_kid() {
    let rsa_a = pair(Algorithm::RS256, false);
    let rsa_b = pair(Algorithm::RS256, true);
    let ed = pair(Algorithm::EdDSA, false);
    let es = pair(Algorithm::ES256, false);
    let mut s = Setup::new();
    let v = s
        .jwks(vec![
            rsa_a.jwk("2026-a", true),
            rsa_b.jwk("2026-b", false), // alg from kty
            ed.jwk("ed", false),        // alg from crv
            es.jwk("ec", true),
        ])
        .load();
    assert_eq!(
        v.algorithms(),
        &[Algorithm::RS256, Algorithm::EdDSA, Algorithm::ES256]
    );
    for (p, kid) in [(rsa_a, "2026-a"), (rsa_b, "2026-b"), (ed, "ed"), (es, "ec")] {
        let id = v.verify(&p.sign_kid(&claims(), Some(kid)), now());
        assert!(id.is_ok(), "{kid}: {id:?}");
        // Without a kid every key of the algorithm is tried.
        assert!(v.verify(&p.sign(&claims()), now()).is_ok(), "{kid}");
    }
    // The kid chooses the key: b's token under a's kid fails.
    assert_eq!(
        v.verify(&rsa_b.sign_kid(&claims(), Some("2026-a")), now()),
        Err(JwtError::BadSignature)
    );
    let e = v
        .verify(&rsa_a.sign_kid(&claims(), Some("2025-z")), now())
        .unwrap_err();
    assert_eq!(e, JwtError::UnknownKey("\"2025-z\"".into()));
    assert_eq!((e.reason(), e.sqlstate()), ("unknown_key", "28P01"));
    assert!(!e.to_string().contains("eyJ"), "{e}");
    // An Ed25519 token under the RSA key's kid.
    assert!(matches!(
        v.verify(&ed.sign_kid(&claims(), Some("2026-a")), now()),
        Err(JwtError::AlgorithmNotAllowed(_))
    ));
    // A kid unknown to the JWKS may still be signed by a PEM key.
    s.trust(pair(Algorithm::RS256, true));
    let v = s.load();
    assert!(v
        .verify(&rsa_b.sign_kid(&claims(), Some("2025-z")), now())
        .is_ok());
    assert_eq!(
        v.verify(
            &pair(Algorithm::ES256, true).sign_kid(&claims(), Some("2025-z")),
            now()
        ),
        Err(JwtError::UnknownKey("\"2025-z\"".into()))
    );
}

#[test]
fn jwks_files_are_checked() {
    let rsa = pair(Algorithm::RS256, false);
    let mut s = Setup::new();
    // Encryption keys and unsupported curves are skipped...
    let mut enc = rsa.jwk("enc", false);
    enc.common.public_key_use = Some(jsonwebtoken::jwk::PublicKeyUse::Encryption);
    let v = s
        .jwks(vec![
            enc.clone(),
            pair(Algorithm::EdDSA, false).jwk("ed", true),
        ])
        .load();
    assert_eq!(v.algorithms(), &[Algorithm::EdDSA]);
    // ...but a JWKS with nothing usable is an error.
    s.jwks(vec![enc]);
    assert!(
        s.load_err().contains("no usable signing key"),
        "{}",
        s.load_err()
    );
    // Symmetric keys do not belong in a JWKS.
    let oct = Jwk::from_decoding_key(&DecodingKey::from_secret(&[7u8; 32]), None).unwrap();
    s.jwks(vec![oct]);
    assert!(s.load_err().contains("symmetric"), "{}", s.load_err());
    // An alg that contradicts the key type.
    let mut wrong = rsa.jwk("w", true);
    wrong.common.key_algorithm = Some(jsonwebtoken::jwk::KeyAlgorithm::ES256);
    s.jwks(vec![wrong]);
    assert!(s.load_err().contains("does not fit"), "{}", s.load_err());
    // An Ed25519 JWK of the wrong length.
    let path = s.path("jwks.json");
    std::fs::write(
        &path,
        r#"{"keys":[{"kty":"OKP","crv":"Ed25519","x":"AAAA","kid":"short"}]}"#,
    )
    .unwrap();
    assert!(s.load_err().contains("32 bytes"), "{}", s.load_err());
    let many: Vec<Jwk> = (0..65).map(|i| rsa.jwk(&format!("k{i}"), true)).collect();
    s.jwks(many);
    assert!(s.load_err().contains("at most 64"), "{}", s.load_err());
    std::fs::write(&path, "[]").unwrap();
    assert!(s.load_err().contains("not a JWKS"), "{}", s.load_err());
}

#[test]
fn reloading_rotates_keys() {
    for alg in ALGS {
        let (old, new) = (pair(alg, false), pair(alg, true));
        let mut s = Setup::new();
        let before = s.trust(old).load();
        s.trust(new);
        let after = s.load();
        let (t_old, t_new) = (old.sign(&claims()), new.sign(&claims()));
        assert!(before.verify(&t_old, now()).is_ok(), "{alg:?}");
        assert_eq!(before.verify(&t_new, now()), Err(JwtError::BadSignature));
        assert!(after.verify(&t_new, now()).is_ok(), "{alg:?}");
        assert_eq!(
            after.verify(&t_old, now()),
            Err(JwtError::BadSignature),
            "{alg:?}"
        );
    }
    // A JWKS rotation: the new document drops the old kid.
    let (a, b) = (pair(Algorithm::ES256, false), pair(Algorithm::ES256, true));
    let mut s = Setup::new();
    let before = s.jwks(vec![a.jwk("a", true)]).load();
    let after = s.jwks(vec![b.jwk("b", true)]).load();
    assert!(before
        .verify(&a.sign_kid(&claims(), Some("a")), now())
        .is_ok());
    assert!(after
        .verify(&b.sign_kid(&claims(), Some("b")), now())
        .is_ok());
    assert_eq!(
        after.verify(&a.sign_kid(&claims(), Some("a")), now()),
        Err(JwtError::UnknownKey("\"a\"".into()))
    );
}

#[test]
fn hs256_secret_file_rules() {
    let mut s = Setup::new();
    let path = s.path("secret");
    s.cfg.hs256_secret_file = Some(path.clone());
    write_secret(&path, &[b'k'; 40], 0o644);
    let e = JwtVerifier::load(&s.cfg).unwrap_err();
    assert!(matches!(
        e,
        JwtConfigError::SecretPermissions { mode: 0o644, .. }
    ));
    assert!(e.to_string().contains("chmod 600"), "{e}");
    assert!(!e.to_string().contains("kkkk"), "{e}");
    write_secret(&path, &[b'k'; 40], 0o640);
    assert!(s.load_err().contains("mode 0640"));
    write_secret(&path, b"short-secret\n", 0o600);
    assert!(matches!(
        JwtVerifier::load(&s.cfg),
        Err(JwtConfigError::SecretTooShort { len: 12, .. })
    ));
    // 0400 is stricter: fine. The trailing newline is not part of it.
    let secret = b"0123456789abcdef0123456789abcdef";
    let mut file = secret.to_vec();
    file.extend_from_slice(b"\r\n");
    write_secret(&path, &file, 0o400);
    let v = s.load();
    let p = Pair {
        alg: Algorithm::HS256,
        private_pem: Vec::new(),
        public: secret.to_vec(),
    };
    assert!(v.verify(&p.sign(&claims()), now()).is_ok());
    std::fs::remove_file(&path).unwrap();
    assert!(s.load_err().contains("cannot read"), "{}", s.load_err());
}

#[test]
fn public_key_files_are_checked() {
    let mut s = Setup::new();
    let path = s.path("k.pem");
    s.cfg.public_key_files = vec![path.clone()];
    std::fs::write(&path, &pair(Algorithm::RS256, false).private_pem).unwrap();
    assert!(s.load_err().contains("private key"), "{}", s.load_err());
    std::fs::write(&path, "not a key").unwrap();
    assert!(s.load_err().contains("no PEM block"), "{}", s.load_err());
    std::fs::write(
        &path,
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    assert!(s.load_err().contains("CERTIFICATE"), "{}", s.load_err());
    std::fs::write(
        &path,
        "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
    )
    .unwrap();
    assert!(s.load_err().contains("not an RSA"), "{}", s.load_err());
    // A key outside an explicit algorithms list.
    std::fs::write(&path, &pair(Algorithm::EdDSA, false).public).unwrap();
    s.cfg.algorithms = vec![Algorithm::RS256];
    assert!(
        s.load_err().contains("not in algorithms"),
        "{}",
        s.load_err()
    );
    // An allowed algorithm without a key.
    s.cfg.algorithms = vec![Algorithm::EdDSA, Algorithm::ES256];
    assert!(
        s.load_err().contains("no configured key is an ES256 key"),
        "{}",
        s.load_err()
    );
    s.cfg.algorithms = vec![Algorithm::EdDSA];
    s.load();
    // EC keys: P-384 is ES384, P-521 is not supported.
    s.cfg.algorithms = Vec::new();
    for (curve, want) in [("P-384", Some(Algorithm::ES384)), ("P-521", None)] {
        let key = s.path(&format!("{curve}.key"));
        let k = key.to_str().unwrap();
        openssl(&[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            &format!("ec_paramgen_curve:{curve}"),
            "-out",
            k,
        ]);
        openssl(&["pkey", "-in", k, "-pubout", "-out", path.to_str().unwrap()]);
        match want {
            Some(alg) => {
                let v = s.load();
                assert_eq!(v.algorithms(), &[alg]);
                let enc = EncodingKey::from_ec_pem(&std::fs::read(&key).unwrap()).unwrap();
                let t = encode(&JwtHeader::new(alg), &claims(), &enc).unwrap();
                assert!(v.verify(&t, now()).is_ok(), "{curve}");
            }
            None => assert!(s.load_err().contains("curve"), "{}", s.load_err()),
        }
    }
}

#[test]
fn malformed_tokens() {
    let p = pair(Algorithm::HS256, false);
    let mut s = Setup::new();
    let v = s.trust(p).load();
    let good = p.sign(&claims());
    let parts: Vec<&str> = good.split('.').collect();
    let long = format!("{good}{}", "A".repeat(MAX_TOKEN_LEN));
    let not_object = format!("{}.{}.{}", parts[0], b64(b"[1,2]"), parts[2]);
    for t in [
        String::new(),
        long,
        "abc".into(),
        format!("{}.{}", parts[0], parts[1]),
        format!("{good}.x.y"),
        format!("!!.{}.{}", parts[1], parts[2]),
        format!("{}.{}.{}", b64(b"{\"alg\":"), parts[1], parts[2]),
        format!("{}.{}.{}", b64(b"\"HS256\""), parts[1], parts[2]),
        format!("{}.{}.%%%", parts[0], parts[1]),
    ] {
        let e = v.verify(&t, now()).unwrap_err();
        assert!(matches!(e, JwtError::Malformed(_)), "{t:.40}: {e}");
        assert_eq!((e.reason(), e.sqlstate()), ("malformed", "28P01"));
    }
    // The payload is read only once the signature holds.
    assert_eq!(v.verify(&not_object, now()), Err(JwtError::BadSignature));
    // crit is refused even when signed.
    let mut h = JwtHeader::new(Algorithm::HS256);
    h.crit = Some(vec!["exp".into()]);
    let t = encode(&h, &claims(), &p.encoding_key()).unwrap();
    assert!(matches!(v.verify(&t, now()), Err(JwtError::Malformed(_))));
    // A signed payload that is not an object.
    let t = encode(
        &JwtHeader::new(Algorithm::HS256),
        &json!([1]),
        &p.encoding_key(),
    )
    .unwrap();
    assert!(matches!(v.verify(&t, now()), Err(JwtError::Malformed(_))));
    // Unverified header values are shown only when short and printable.
    let t = raw(json!({"alg": "x".repeat(100)}), &claims(), b"s");
    assert_eq!(
        v.verify(&t, now()),
        Err(JwtError::AlgorithmNotAllowed("(not shown)".into()))
    );
}

#[test]
fn errors_never_show_the_token_or_secret() {
    let p = pair(Algorithm::HS256, false);
    let mut s = Setup::new();
    s.cfg.issuer = Some("me".into());
    let v = s.trust(p).load();
    let secret = String::from_utf8(p.public.clone()).unwrap();
    for c in [
        with(claims(), json!({"exp": at(-100)})),
        with(claims(), json!({"iss": "you"})),
        with(claims(), json!({"iss": "me", "tenant": "BAD!"})),
    ] {
        for t in [p.sign(&c), pair(Algorithm::HS256, true).sign(&c)] {
            let e = v.verify(&t, now()).unwrap_err().to_string();
            let payload = t.split('.').nth(1).unwrap();
            assert!(!e.contains(payload) && !e.contains(&secret), "{e}");
            assert!(!e.contains("BAD!"), "{e}");
        }
    }
    let dbg = format!("{v:?}");
    assert!(!dbg.contains(&secret) && dbg.contains("keys: 1"), "{dbg}");
}

#[test]
fn verifier_is_a_plain_shareable_value() {
    fn assert_send_sync<T: Send + Sync + Clone + 'static>() {}
    assert_send_sync::<JwtVerifier>();
    let mut s = Setup::new();
    s.cfg.end_session_at_expiry = false;
    s.cfg.user = "token".into();
    let v = s.trust(pair(Algorithm::EdDSA, false)).load();
    assert_eq!(v.user(), "token");
    assert!(!v.end_session_at_expiry());
    assert_eq!(v.config().leeway_s, 30);
}

#[test]
fn every_error_has_a_reason_and_sqlstate() {
    let all = [
        JwtError::Malformed("x"),
        JwtError::AlgorithmNotAllowed("a".into()),
        JwtError::UnknownKey("k".into()),
        JwtError::BadSignature,
        JwtError::Expired,
        JwtError::NotYetValid,
        JwtError::WrongIssuer,
        JwtError::WrongAudience,
        JwtError::MissingClaim("c".into()),
        JwtError::InvalidClaim("c".into()),
        JwtError::BadTenant("c".into()),
        JwtError::RoleNotAllowed("r".into()),
        JwtError::BadSubject("c".into()),
        JwtError::ClaimsTooLarge(9000),
    ];
    let mut reasons: Vec<&str> = all.iter().map(JwtError::reason).collect();
    reasons.sort_unstable();
    reasons.dedup();
    assert_eq!(reasons.len(), all.len(), "distinct reasons");
    let auth = all.iter().filter(|e| e.sqlstate() == "28P01").count();
    let authz = all.iter().filter(|e| e.sqlstate() == "28000").count();
    assert_eq!((auth, authz), (8, 6));
}
