//! Signatures, algorithms, time, issuer and audience.
use super::*;

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
