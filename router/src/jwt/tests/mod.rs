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

mod claims;
mod files;
mod signatures;
