// In-process tests (`cargo pgrx test`): the parts that need Rust, above
// all tokens minted by the same `pg_tenant_token` module the router uses.
// The SQL surface and the escape attempts are in the regress/ suite.
use pg_tenant_token::{sign, Action, Backend, SigningKey};
use pgrx::prelude::*;

/// The test key of docs/src/concepts/context-token.md (seed bytes 0x00..=0x1f); its public key is in
/// `pg_test::postgresql_conf_options`.
fn key() -> SigningKey {
    SigningKey::from_bytes(&std::array::from_fn(|i| i as u8))
}

/// This backend, as the router sees it in BackendKeyData.
fn me() -> Backend {
    // SAFETY: reads of backend constants.
    unsafe {
        Backend {
            pid: pgrx::pg_sys::MyProcPid,
            cancel_key: crate::compat::cancel_key().expect("a protocol 3.0 cancel key"),
        }
    }
}

/// Another backend: `pid_delta` away, or the same pid with another cancel
/// key (a later backend that reuses the pid).
fn other(pid_delta: i32) -> Backend {
    let b = me();
    Backend {
        pid: b.pid + pid_delta,
        cancel_key: if pid_delta == 0 {
            b.cancel_key.wrapping_add(1)
        } else {
            b.cancel_key
        },
    }
}

/// Nonces must grow within a backend, and tests may share one: every test
/// offsets its nonces (all below 1000) from the clock, in thousandths of
/// a microsecond, which only grows from one test to the next.
fn base() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64 * 1000)
        .unwrap_or(1000)
}

fn token(action: Action<'_>, nonce: u64) -> String {
    sign(&key(), action, me(), nonce)
}

/// Tenants, then become a plain login role: a superuser session never gets
/// a tenant context.
fn setup_tenants() {
    Spi::run("SELECT tenant.create_tenant('acme'); SELECT tenant.create_tenant('globex')")
        .expect("create tenants");
    become_app();
}

fn become_app() {
    Spi::run(
        "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'pgrx_app') THEN \
         CREATE ROLE pgrx_app LOGIN; END IF; END $$; \
         GRANT USAGE ON SCHEMA tenant TO pgrx_app; \
         SET SESSION AUTHORIZATION pgrx_app",
    )
    .expect("become pgrx_app");
}

fn current() -> Option<String> {
    Spi::get_one::<String>("SELECT tenant.current_tenant_id()").expect("spi")
}

fn try_set(tenant: &str, tok: &str) -> Result<Option<String>, pgrx::spi::Error> {
    Spi::get_one_with_args::<String>(
        "SELECT tenant.set_context($1, $2)",
        &[tenant.into(), tok.into()],
    )
}

#[pg_test]
fn no_context_is_null() {
    assert_eq!(current(), None);
}

#[pg_test]
fn router_minted_token_sets_context() {
    let b = base();
    setup_tenants();
    let t = token(Action::Set("acme"), b + 10);
    assert_eq!(try_set("acme", &t).unwrap(), Some("acme".into()));
    assert_eq!(current(), Some("acme".into()));
    let t = token(Action::Set("globex"), b + 11);
    try_set("globex", &t).unwrap();
    assert_eq!(current(), Some("globex".into()));
    Spi::run(&format!("SELECT tenant.clear_context('{}')", token(Action::Clear, b + 12))).unwrap();
    assert_eq!(current(), None);
}

#[pg_test(error = "invalid tenant context token: context token nonce was already used")]
fn replayed_token_is_refused() {
    let b = base();
    setup_tenants();
    let t = token(Action::Set("acme"), b + 20);
    try_set("acme", &t).unwrap();
    // The same token again: refused.
    Spi::run(&format!("SELECT tenant.set_context('acme', '{t}')")).unwrap();
}

#[pg_test(error = "invalid tenant context token: context token nonce was already used")]
fn lower_nonce_is_refused() {
    let b = base();
    setup_tenants();
    try_set("acme", &token(Action::Set("acme"), b + 30)).unwrap();
    let older = token(Action::Set("globex"), b + 29);
    Spi::run(&format!("SELECT tenant.set_context('globex', '{older}')")).unwrap();
}

#[pg_test(error = "invalid tenant context token: context token signature does not match")]
fn token_for_another_pid_is_refused() {
    let b = base();
    setup_tenants();
    let t = sign(&key(), Action::Set("acme"), other(1), b + 1);
    Spi::run(&format!("SELECT tenant.set_context('acme', '{t}')")).unwrap();
}

#[pg_test(error = "invalid tenant context token: context token signature does not match")]
fn token_for_a_reused_pid_is_refused() {
    let b = base();
    setup_tenants();
    let t = sign(&key(), Action::Set("acme"), other(0), b + 1);
    Spi::run(&format!("SELECT tenant.set_context('acme', '{t}')")).unwrap();
}

#[pg_test(error = "invalid tenant context token: context token signature does not match")]
fn token_under_another_key_is_refused() {
    let b = base();
    setup_tenants();
    let other = SigningKey::from_bytes(&[7u8; 32]);
    let t = sign(&other, Action::Set("acme"), me(), b + 1);
    Spi::run(&format!("SELECT tenant.set_context('acme', '{t}')")).unwrap();
}

#[pg_test(error = "invalid tenant context token: context token signature does not match")]
fn token_for_another_tenant_is_refused() {
    let b = base();
    setup_tenants();
    let t = token(Action::Set("acme"), b + 1);
    Spi::run(&format!("SELECT tenant.set_context('globex', '{t}')")).unwrap();
}

#[pg_test(error = "tenant \"nope\" does not exist")]
fn unknown_tenant_is_refused() {
    let b = base();
    become_app();
    let t = token(Action::Set("nope"), b + 1);
    Spi::run(&format!("SELECT tenant.set_context('nope', '{t}')")).unwrap();
}

#[pg_test(error = "tenant \"acme\" is disabled")]
fn disabled_tenant_is_refused() {
    let b = base();
    setup_tenants();
    Spi::run("RESET SESSION AUTHORIZATION; SELECT tenant.disable_tenant('acme')").unwrap();
    become_app();
    let t = token(Action::Set("acme"), b + 1);
    Spi::run(&format!("SELECT tenant.set_context('acme', '{t}')")).unwrap();
}

#[pg_test]
fn refused_token_changes_nothing() {
    let b = base();
    setup_tenants();
    try_set("acme", &token(Action::Set("acme"), b + 5)).unwrap();
    let bad = sign(&key(), Action::Set("globex"), other(7), b + 6);
    // Run the failing call in a subtransaction so the test can look after it.
    let r = Spi::run(&format!(
        "DO $$ BEGIN PERFORM tenant.set_context('globex', '{bad}'); \
         EXCEPTION WHEN insufficient_privilege THEN NULL; END $$"
    ));
    assert!(r.is_ok());
    assert_eq!(current(), Some("acme".into()));
}

#[pg_test]
fn typed_accessors_follow_the_tenant() {
    let b = base();
    Spi::run("SELECT tenant.create_tenant('42'); \
              SELECT tenant.create_tenant('8c4b2c7e-4f53-4c6b-9a57-3b1f7c1e2d90')")
        .unwrap();
    become_app();
    try_set("42", &token(Action::Set("42"), b + 1)).unwrap();
    assert_eq!(Spi::get_one::<i64>("SELECT tenant.current_tenant_bigint()").unwrap(), Some(42));
    assert_eq!(Spi::get_one::<pgrx::Uuid>("SELECT tenant.current_tenant_uuid()").unwrap(), None);
    let u = "8c4b2c7e-4f53-4c6b-9a57-3b1f7c1e2d90";
    try_set(u, &token(Action::Set(u), b + 2)).unwrap();
    assert_eq!(
        Spi::get_one::<String>("SELECT tenant.current_tenant_uuid()::text").unwrap(),
        Some(u.to_string())
    );
    assert_eq!(Spi::get_one::<i64>("SELECT tenant.current_tenant_bigint()").unwrap(), None);
}

#[pg_test]
fn current_tenant_id_is_stable_and_parallel_safe() {
    let (vol, par) = Spi::get_two::<String, String>(
        "SELECT provolatile::text, proparallel::text FROM pg_proc \
         WHERE oid = 'tenant.current_tenant_id'::regproc",
    )
    .unwrap();
    assert_eq!(vol.as_deref(), Some("s"));
    assert_eq!(par.as_deref(), Some("s"));
}

#[pg_test(
    error = "tenant \"acme\" cannot be given to a session whose login role has SUPERUSER: row level security would not confine it"
)]
fn superuser_session_gets_no_context() {
    let b = base();
    Spi::run("SELECT tenant.create_tenant('acme')").unwrap();
    // Still the test's superuser: refused even with a valid token.
    Spi::run(&format!(
        "SELECT tenant.set_context('acme', '{}')",
        token(Action::Set("acme"), b + 1)
    ))
    .unwrap();
}

#[pg_test(
    error = "tenant \"acme\" cannot be given to a session whose login role has BYPASSRLS: row level security would not confine it"
)]
fn bypassrls_session_gets_no_context() {
    let b = base();
    Spi::run(
        "SELECT tenant.create_tenant('acme'); CREATE ROLE pgrx_bypass LOGIN BYPASSRLS; \
         GRANT USAGE ON SCHEMA tenant TO pgrx_bypass; SET SESSION AUTHORIZATION pgrx_bypass",
    )
    .unwrap();
    Spi::run(&format!(
        "SELECT tenant.set_context('acme', '{}')",
        token(Action::Set("acme"), b + 1)
    ))
    .unwrap();
}

fn subject_token(tenant: &str, subject: &str, claims: &str, nonce: u64) -> String {
    token(
        Action::SetSubject {
            tenant,
            subject,
            claims,
        },
        nonce,
    )
}

fn try_set_subject(
    tenant: &str,
    tok: &str,
    subject: &str,
    claims: &str,
) -> Result<Option<String>, pgrx::spi::Error> {
    Spi::get_one_with_args::<String>(
        "SELECT tenant.set_context($1, $2, $3, $4)",
        &[tenant.into(), tok.into(), subject.into(), claims.into()],
    )
}

fn subject_and_claims() -> (Option<String>, Option<String>) {
    Spi::get_two::<String, String>(
        "SELECT tenant.current_subject(), tenant.current_claims()::text",
    )
    .expect("spi")
}

#[pg_test]
fn set_subject_token_sets_subject_and_claims() {
    let b = base();
    setup_tenants();
    assert_eq!(subject_and_claims(), (None, None));
    let claims = r#"{"role": "editor", "big": 123456789012345678901234567890}"#;
    let t = subject_token("acme", "alice", claims, b + 1);
    assert_eq!(
        try_set_subject("acme", &t, "alice", claims).unwrap(),
        Some("acme".into())
    );
    assert_eq!(current(), Some("acme".into()));
    // jsonb keeps every digit (PostgreSQL's parser, not a float).
    assert_eq!(
        subject_and_claims(),
        (
            Some("alice".into()),
            Some(r#"{"big": 123456789012345678901234567890, "role": "editor"}"#.into())
        )
    );
    // The 2-argument form clears the subject; so does clear_context.
    try_set("globex", &token(Action::Set("globex"), b + 2)).unwrap();
    assert_eq!(subject_and_claims(), (None, None));
    let t = subject_token("acme", "bob", "{}", b + 3);
    try_set_subject("acme", &t, "bob", "{}").unwrap();
    assert_eq!(subject_and_claims(), (Some("bob".into()), Some("{}".into())));
    Spi::run(&format!(
        "SELECT tenant.clear_context('{}')",
        token(Action::Clear, b + 4)
    ))
    .unwrap();
    assert_eq!(subject_and_claims(), (None, None));
    assert_eq!(current(), None);
}

#[pg_test(error = "invalid tenant context token: context token signature does not match")]
fn plain_set_token_is_not_a_set_subject_token() {
    let b = base();
    setup_tenants();
    let t = token(Action::Set("acme"), b + 1);
    try_set_subject("acme", &t, "alice", "{}").unwrap();
}

#[pg_test(error = "invalid tenant context token: context token signature does not match")]
fn token_for_another_subject_is_refused() {
    let b = base();
    setup_tenants();
    let t = subject_token("acme", "alice", "{}", b + 1);
    try_set_subject("acme", &t, "mallory", "{}").unwrap();
}

#[pg_test(error = "claims must be the text of a JSON object: got a JSON array")]
fn claims_must_be_an_object() {
    // The token crate lets only {...}-shaped claims through; the
    // extension's own check (PostgreSQL's jsonb parser) stands behind it.
    crate::subject::check_claims("{\"ok\": true}");
    crate::subject::check_claims("[1, 2]");
}

#[pg_test(error = "claims must be the text of a JSON object: invalid input syntax for type json")]
fn claims_must_parse() {
    let b = base();
    setup_tenants();
    let claims = "{\"a\": }";
    let t = subject_token("acme", "alice", claims, b + 1);
    try_set_subject("acme", &t, "alice", claims).unwrap();
}

#[pg_test]
fn scram_verifier_of_a_password_and_of_a_verifier() {
    let v = Spi::get_one::<String>("SELECT tenant._scram_verifier('pencil')")
        .unwrap()
        .unwrap();
    assert!(v.starts_with("SCRAM-SHA-256$4096:"), "{v}");
    assert_eq!(crate::auth::check_scram_verifier(&v), Ok(()));
    // A new salt every time.
    let w = Spi::get_one::<String>("SELECT tenant._scram_verifier('pencil')")
        .unwrap()
        .unwrap();
    assert_ne!(v, w);
    // A verifier is kept as it is.
    let kept = Spi::get_one_with_args::<String>(
        "SELECT tenant._scram_verifier($1)",
        &[v.as_str().into()],
    )
    .unwrap();
    assert_eq!(kept, Some(v));
}

#[pg_test(error = "malformed SCRAM-SHA-256 verifier (StoredKey is not 32 bytes of base64); expected SCRAM-SHA-256$<iterations>:<base64 salt>$<base64 StoredKey>:<base64 ServerKey>")]
fn malformed_verifier_is_refused() {
    Spi::run("SELECT tenant._scram_verifier('SCRAM-SHA-256$4096:c2FsdA==$AAAA:AAAA')").unwrap();
}
