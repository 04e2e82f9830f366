//! Tenant, role, subject and passed claims.
use super::*;

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

/// A payload that repeats a key (at the top or deeper) is refused: readers
/// that keep the first "tenant" and readers that keep the last would see
/// different tenants. Control: the same claims without the repetition.
#[test]
fn a_payload_that_repeats_a_key_is_refused() {
    let p = pair(Algorithm::HS256, false);
    let mut s = Setup::new();
    let v = s.trust(p).load();
    let signed = |payload: String| {
        let head = b64(br#"{"alg":"HS256","typ":"JWT"}"#);
        let message = format!("{head}.{}", b64(payload.as_bytes()));
        let sig =
            jsonwebtoken::crypto::sign(message.as_bytes(), &p.encoding_key(), Algorithm::HS256)
                .unwrap();
        format!("{message}.{sig}")
    };
    let exp = at(300);
    let base = format!(r#""sub":"ann","role":"app_user","exp":{exp}"#);
    let control = format!(r#"{{{base},"tenant":"acme","app":{{"x":1}}}}"#);
    assert!(v.verify(&signed(control), now()).is_ok(), "control");
    for twice in [
        format!(r#"{{{base},"tenant":"acme","tenant":"globex"}}"#),
        format!(r#"{{{base},"tenant":"acme","app":{{"x":1,"x":2}}}}"#),
    ] {
        assert_eq!(
            v.verify(&signed(twice.clone()), now()),
            Err(JwtError::Malformed(
                "payload is not JSON, or an object in it repeats a key"
            )),
            "{twice}"
        );
    }
}
