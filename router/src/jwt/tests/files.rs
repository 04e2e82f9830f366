//! Key files, JWKS, reloads, malformed tokens and error texts.
use super::*;

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
        // Without a kid: the only key of its algorithm is tried...
        let unnamed = v.verify(&p.sign(&claims()), now());
        if kid.starts_with("2026") {
            // ...but never every JWKS key of an algorithm with several.
            assert_eq!(
                unnamed,
                Err(JwtError::UnknownKey("none: the token names no kid".into())),
                "{kid}"
            );
        } else {
            assert!(unnamed.is_ok(), "{kid}: {unnamed:?}");
        }
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
