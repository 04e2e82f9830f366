//! Token logins end to end (docs/src/authentication/jwt.md): a JWT as the password opens the
//! tenant it names, as the role it names, with its subject and passed
//! claims in `tenant.current_subject()` / `tenant.current_claims()`; every
//! bad token is refused before anything is opened; keys rotate on SIGHUP;
//! a per-user policy shows each end user only their rows; the session ends
//! when the token does. Clients: tokio-postgres, psql, and psycopg with a
//! token minted by PyJWT.
mod common;
use common::wire::{backends, temp_dir};
use common::*;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const FIXTURES: &str = r#"
SET client_min_messages = warning;
DO $$
DECLARE r text;
BEGIN
  FOREACH r IN ARRAY ARRAY['rt_jwt', 'rt_jwt_probe'] LOOP
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
      SET LOCAL password_encryption = 'scram-sha-256';
      EXECUTE format('CREATE ROLE %I LOGIN PASSWORD %L', r, 'rt-secret');
    END IF;
    PERFORM tenant.create_app_role(r);
  END LOOP;
END $$;
GRANT SELECT ON notes TO rt_jwt, rt_jwt_probe;
CREATE TABLE IF NOT EXISTS jw_docs (id serial PRIMARY KEY, tenant_id text NOT NULL,
  owner text NOT NULL, body text NOT NULL);
SELECT tenant.protect('jw_docs');
DROP POLICY IF EXISTS jw_docs_owner ON jw_docs;
CREATE POLICY jw_docs_owner ON jw_docs AS RESTRICTIVE
  USING (owner = (SELECT tenant.current_subject()));
GRANT SELECT ON jw_docs TO rt_jwt;
INSERT INTO jw_docs (tenant_id, owner, body)
SELECT * FROM (VALUES ('acme', 'alice', 'a1'), ('acme', 'alice', 'a2'), ('acme', 'bob', 'b1'),
                      ('globex', 'alice', 'g1')) v
WHERE NOT EXISTS (SELECT 1 FROM jw_docs);
"#;

fn fixtures() {
    static F: OnceLock<()> = OnceLock::new();
    F.get_or_init(|| {
        cluster();
        admin_sql(FIXTURES);
    });
}

fn openssl(args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// An Ed25519 key pair made by openssl: (private PEM, public PEM file).
fn ed25519(dir: &Path, name: &str) -> (Vec<u8>, PathBuf) {
    let private = dir.join(format!("{name}.key"));
    let public = dir.join(format!("{name}.pub"));
    openssl(&[
        "genpkey",
        "-algorithm",
        "ed25519",
        "-out",
        private.to_str().unwrap(),
    ]);
    openssl(&[
        "pkey",
        "-in",
        private.to_str().unwrap(),
        "-pubout",
        "-out",
        public.to_str().unwrap(),
    ]);
    (std::fs::read(private).unwrap(), public)
}

/// Keys and files of one test router.
struct Setup {
    dir: PathBuf,
    signing: Vec<u8>,
    public: PathBuf,
    secret: PathBuf,
}

impl Setup {
    fn new() -> Setup {
        fixtures();
        let dir = temp_dir("keys");
        let (signing, public) = ed25519(&dir, "idp");
        let secret = dir.join("hs256.secret");
        std::fs::write(&secret, "a shared secret of at least thirty-two bytes\n").unwrap();
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
        Setup {
            dir,
            signing,
            public,
            secret,
        }
    }

    /// The router's `[auth]` tables, with `extra` lines in `[auth.jwt]`.
    fn config(&self, extra: &str) -> String {
        let creds = self.dir.join("credentials.toml");
        std::fs::write(
            &creds,
            "[roles]\nrt_jwt = \"rt-secret\"\nrt_jwt_probe = \"rt-secret\"\n",
        )
        .unwrap();
        std::fs::set_permissions(&creds, std::fs::Permissions::from_mode(0o600)).unwrap();
        format!(
            "[auth]\ncredentials_file = \"{}\"\n[auth.jwt]\npublic_key_files = [\"{}\"]\n\
             hs256_secret_file = \"{}\"\nallowed_roles = [\"rt_jwt\", \"rt_jwt_probe\"]\n\
             pass_claims = [\"email\"]\n{extra}\n",
            creds.display(),
            self.public.display(),
            self.secret.display()
        )
    }

    fn token(&self, claims: &Value) -> String {
        sign(&self.signing, claims)
    }
}

fn sign(private_pem: &[u8], claims: &Value) -> String {
    let key = EncodingKey::from_ed_pem(private_pem).expect("ed25519 key");
    encode(&Header::new(Algorithm::EdDSA), claims, &key).expect("sign")
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// `base` with `changes` merged in (a null removes the claim).
fn merge(mut base: Value, changes: Value) -> Value {
    if let (Some(m), Some(ch)) = (base.as_object_mut(), changes.as_object()) {
        for (k, v) in ch {
            if v.is_null() {
                m.remove(k);
            } else {
                m.insert(k.clone(), v.clone());
            }
        }
    }
    base
}

/// Claims of a valid token for `tenant` and `sub`, with `changes` merged.
fn claims(tenant: &str, sub: &str, changes: Value) -> Value {
    let base = json!({
        "sub": sub,
        "tenant": tenant,
        "role": "rt_jwt",
        "email": format!("{sub}@example.com"),
        "exp": now() + 300,
    });
    merge(base, changes)
}

fn url(r: &Router, token: &str) -> String {
    r.url("jwt").replace(PASSWORD, token)
}

/// (tenant, subject, claims JSON, visible notes) of a token login.
async fn whoami(
    r: &Router,
    token: &str,
) -> Result<(String, String, String, i64), (String, String)> {
    let c = connect(&url(r, token)).await.map_err(|e| {
        let msg = e
            .as_db_error()
            .map(|d| d.message().to_owned())
            .unwrap_or_else(|| e.to_string());
        (sqlstate(&e), msg)
    })?;
    let row = c
        .query_one(
            "SELECT tenant.current_tenant_id(), tenant.current_subject(), \
             tenant.current_claims()::text",
            &[],
        )
        .await
        .unwrap();
    Ok((row.get(0), row.get(1), row.get(2), visible_notes(&c).await))
}

#[tokio::test]
async fn a_jwt_opens_the_tenant_it_names_with_its_subject_and_claims() {
    let s = Setup::new();
    let r = Router::start_with(&s.config(""));
    let acme = s.token(&claims("acme", "alice", json!({})));
    assert_eq!(
        whoami(&r, &acme).await.unwrap(),
        (
            "acme".into(),
            "alice".into(),
            r#"{"email": "alice@example.com"}"#.into(),
            3
        )
    );
    // The same end user in another tenant's token sees that tenant.
    let globex = s.token(&claims("globex", "alice", json!({})));
    let (tenant, _, _, notes) = whoami(&r, &globex).await.unwrap();
    assert_eq!((tenant.as_str(), notes), ("globex", 3));
    // psql, the token as PGPASSWORD.
    let out = Command::new("psql")
        .args(["-X", "-tA", "-c"])
        .arg("SELECT tenant.current_tenant_id() || '|' || tenant.current_subject()")
        .arg(format!(
            "host=127.0.0.1 port={} user=jwt dbname={DB}",
            r.port
        ))
        .env("PGPASSWORD", &acme)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "acme|alice",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The subject cannot be changed from SQL.
    let c = connect(&url(&r, &acme)).await.unwrap();
    let e = c
        .simple_query("SET pg_tenant.subject = 'bob'")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e), "42501", "{e}");
    let sub: String = c
        .query_one("SELECT tenant.current_subject()", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(sub, "alice");
}

#[tokio::test]
async fn a_python_client_with_a_pyjwt_token_connects() {
    let s = Setup::new();
    let r = Router::start_with(&s.config(""));
    let out = Command::new("python3")
        .arg("jwt_psycopg.py")
        .args(["127.0.0.1", &r.port.to_string(), "jwt", DB])
        .arg(&s.secret)
        .args(["acme", "rt_jwt", "py-user"])
        .current_dir(repo().join("router/tests/drivers"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "acme|py-user|py-user@example.com|3"
    );
}

#[tokio::test]
async fn every_bad_token_is_refused_before_anything_is_opened() {
    let s = Setup::new();
    let r = Router::start_with(
        &s.config("issuer = \"https://idp.test/\"\naudience = [\"pg-tenant\"]\nleeway_s = 30"),
    );
    let good = |changes: Value| {
        let issued =
            json!({"iss": "https://idp.test/", "aud": "pg-tenant", "role": "rt_jwt_probe"});
        merge(claims("acme", "carol", issued), changes)
    };
    let before = backends("rt_jwt_probe");
    let (other_key, _) = ed25519(&s.dir, "other");
    let cases: Vec<(&str, String, &str, &str)> = vec![
        (
            "expired beyond the leeway",
            s.token(&good(json!({"exp": now() - 120}))),
            "28P01",
            "expired",
        ),
        (
            "another key",
            sign(&other_key, &good(json!({}))),
            "28P01",
            "signature",
        ),
        (
            "wrong issuer",
            s.token(&good(json!({"iss": "https://evil.test/"}))),
            "28P01",
            "issuer",
        ),
        (
            "wrong audience",
            s.token(&good(json!({"aud": "someone-else"}))),
            "28P01",
            "audience",
        ),
        (
            "not yet valid",
            s.token(&good(json!({"nbf": now() + 600}))),
            "28P01",
            "not valid yet",
        ),
        (
            "role not allowed",
            s.token(&good(json!({"role": "rt_trust"}))),
            "28000",
            "rt_trust",
        ),
        (
            "no subject",
            s.token(&good(json!({"sub": null}))),
            "28000",
            "sub",
        ),
        (
            "bad tenant id",
            s.token(&good(json!({"tenant": "Acme; DROP"}))),
            "28000",
            "tenant",
        ),
        ("garbage", "not.a.jwt".to_string(), "28P01", "malformed"),
    ];
    for (what, token, code, words) in &cases {
        let e = whoami(&r, token).await.expect_err(what);
        assert_eq!(e.0, *code, "{what}: {}", e.1);
        assert!(
            e.1.to_lowercase().contains(words),
            "{what}: message \"{}\" should mention {words}",
            e.1
        );
        assert!(!e.1.contains(token.as_str()), "{what}: the token is echoed");
    }
    assert_eq!(
        backends("rt_jwt_probe"),
        before,
        "a refused token opened a backend"
    );
    // A token for a tenant that does not exist verifies, then gets 28000.
    let e = whoami(&r, &s.token(&good(json!({"tenant": "nobody"}))))
        .await
        .unwrap_err();
    assert_eq!(e.0, "28000", "{}", e.1);
    assert!(e.1.contains("does not exist"), "{}", e.1);
    // Within the leeway, and the control: accepted.
    let late = s.token(&good(json!({"exp": now() - 5})));
    assert_eq!(whoami(&r, &late).await.unwrap().0, "acme");
    let m = prometheus(&r).await;
    assert!(
        m.contains("tenant_router_unknown_tenant_auth_failures_total{reason=\"expired\"} 1"),
        "{m}"
    );
}

#[tokio::test]
async fn keys_rotate_on_sighup() {
    let s = Setup::new();
    let r = Router::start_with(&s.config(""));
    let old = s.token(&claims("acme", "dave", json!({})));
    assert_eq!(whoami(&r, &old).await.unwrap().0, "acme");
    let (new_key, new_public) = ed25519(&s.dir, "rotated");
    std::fs::copy(&new_public, &s.public).unwrap();
    r.signal("HUP");
    let reloaded = eventually(Duration::from_secs(10), || async {
        prometheus(&r)
            .await
            .contains("tenant_router_config_reloads_total{result=\"ok\"} 1")
    })
    .await;
    assert!(reloaded, "{}", r.log_text());
    let e = whoami(&r, &old).await.unwrap_err();
    assert_eq!(e.0, "28P01", "the old key is gone: {}", e.1);
    let new = sign(&new_key, &claims("acme", "dave", json!({})));
    assert_eq!(whoami(&r, &new).await.unwrap().1, "dave");
}

#[tokio::test]
async fn a_subject_policy_shows_each_end_user_only_their_rows() {
    let s = Setup::new();
    let r = Router::start_with(&s.config(""));
    let docs = |tenant: &str, sub: &str| {
        let token = s.token(&claims(tenant, sub, json!({})));
        let url = url(&r, &token);
        async move {
            let c = connect(&url).await.unwrap();
            let rows = c
                .query("SELECT body FROM jw_docs ORDER BY body", &[])
                .await
                .unwrap();
            rows.iter().map(|r| r.get(0)).collect::<Vec<String>>()
        }
    };
    assert_eq!(docs("acme", "alice").await, ["a1", "a2"]);
    assert_eq!(docs("acme", "bob").await, ["b1"]);
    assert_eq!(docs("globex", "alice").await, ["g1"]);
    assert!(docs("acme", "mallory").await.is_empty());
}

#[tokio::test]
async fn the_session_ends_when_its_token_expires() {
    let s = Setup::new();
    let r = Router::start_with(&s.config("leeway_s = 0"));
    let token = s.token(&claims("acme", "erin", json!({"exp": now() + 3})));
    let c = connect(&url(&r, &token)).await.unwrap();
    assert_eq!(
        visible_notes(&c).await,
        3,
        "the session works before expiry"
    );
    // A statement that outlives the token is cut off by the expiry.
    let e = tokio::time::timeout(
        Duration::from_secs(30),
        c.simple_query("SELECT pg_sleep(20)"),
    )
    .await
    .expect("the router ends the session at expiry")
    .unwrap_err();
    let msg = e
        .as_db_error()
        .map(|d| (d.code().code().to_owned(), d.message().to_owned()));
    assert_eq!(
        msg,
        Some((
            "28000".into(),
            "terminating connection: the JWT this session logged in with has expired".into()
        )),
        "{e}"
    );
    // A session of a token that does not end meanwhile is untouched.
    let long = s.token(&claims("acme", "erin", json!({})));
    assert_eq!(whoami(&r, &long).await.unwrap().1, "erin");
}

/// The subject and claims are signed as UTF-8: a client whose
/// client_encoding is LATIN1 still gets its non-ASCII subject (before, the
/// server read them in LATIN1 and the signature did not match). A claim
/// holding NUL, which PostgreSQL's JSON refuses, is refused up front.
#[tokio::test]
async fn non_ascii_subjects_work_in_any_client_encoding() {
    let s = Setup::new();
    let r = Router::start_with(&s.config(""));
    let token = s.token(&claims("acme", "café", json!({})));
    let out = Command::new("psql")
        .args(["-X", "-tA", "-c", "SELECT tenant.current_subject()"])
        .arg(format!(
            "host=127.0.0.1 port={} user=jwt dbname={DB}",
            r.port
        ))
        .env("PGPASSWORD", &token)
        .env("PGCLIENTENCODING", "LATIN1")
        .output()
        .unwrap();
    assert_eq!(
        out.stdout.trim_ascii(),
        b"caf\xe9",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(whoami(&r, &token).await.unwrap().1, "café");
    let nul = s.token(&claims("acme", "dan", json!({"email": "a\u{0}b"})));
    let e = whoami(&r, &nul).await.unwrap_err();
    assert_eq!(e.0, "28000", "{}", e.1);
    assert!(e.1.contains("NUL"), "{}", e.1);
}
