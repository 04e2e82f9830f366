use super::*;
use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256};

/// Made by PostgreSQL 15 (`SET password_encryption = 'scram-sha-256';
/// CREATE ROLE x PASSWORD 'pencil'`, then pg_authid.rolpassword).
const PG_VERIFIER: &str = "SCRAM-SHA-256$4096:F3ywAC9ggGAtBlM5uK/9hw==$s0Wh4OTRW89OJFNiaQzO7+6eH2m34kmr2nntNS2dgIw=:aEF60cbIjtOO7fb/0Ki8lntVlH1fIxp4+dgeUFwStJo=";

#[test]
fn postgres_verifier_parses_and_matches_its_password() {
    let v = Verifier::parse(PG_VERIFIER).unwrap();
    assert_eq!(v.iterations, 4096);
    assert_eq!(v.salt.len(), 16);
    assert_eq!(Verifier::from_password("pencil", &v.salt, 4096), v);
    assert_eq!(v.to_text(), PG_VERIFIER);
    for bad in [
        "",
        "md5abc",
        "SCRAM-SHA-256$4096:c2FsdA==$abc:def",
        "SCRAM-SHA-256$0:c2FsdA==$s0Wh4OTRW89OJFNiaQzO7+6eH2m34kmr2nntNS2dgIw=:aEF60cbIjtOO7fb/0Ki8lntVlH1fIxp4+dgeUFwStJo=",
        "SCRAM-SHA-256$x:c2FsdA==$s0Wh4OTRW89OJFNiaQzO7+6eH2m34kmr2nntNS2dgIw=:aEF60cbIjtOO7fb/0Ki8lntVlH1fIxp4+dgeUFwStJo=",
        "SCRAM-SHA-256$4096:$s0Wh4OTRW89OJFNiaQzO7+6eH2m34kmr2nntNS2dgIw=:aEF60cbIjtOO7fb/0Ki8lntVlH1fIxp4+dgeUFwStJo=",
    ] {
        assert_eq!(Verifier::parse(bad), Err(ScramError::BadVerifier), "{bad}");
    }
}

/// RFC 7677 §3: user "user", password "pencil", fixed nonces.
#[test]
fn rfc7677_exchange() {
    let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
    let v = Verifier::from_password("pencil", &salt, 4096);
    let mut s = ServerExchange::new(v, None);
    let first = s
        .first_with(
            SCRAM_SHA_256,
            b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
            "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
        )
        .unwrap();
    assert_eq!(
        first,
        "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
    );
    let (fin, client_key) = s
        .finish(b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
        .unwrap();
    assert_eq!(fin, "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");
    let salted = hi(b"pencil", &salt, 4096);
    assert_eq!(client_key, hmac(&salted, &[b"Client Key"]));
}

/// postgres-protocol's own SCRAM client against the server side, with and
/// without channel binding; the ClientKey it yields logs in again.
fn run_client(
    v: &Verifier,
    end_point: Option<Vec<u8>>,
    password: &str,
    cb: ChannelBinding,
    mechanism: &str,
) -> Result<[u8; 32], ScramError> {
    let mut server = ServerExchange::new(v.clone(), end_point);
    let mut client = ScramSha256::new(password.as_bytes(), cb);
    let first = server.first(mechanism, client.message())?;
    client.update(first.as_bytes()).unwrap();
    let (fin, key) = server.finish(client.message())?;
    client
        .finish(fin.as_bytes())
        .expect("client accepts the signature");
    Ok(key)
}

#[test]
fn postgres_protocol_client_against_the_server() {
    let v = Verifier::parse(PG_VERIFIER).unwrap();
    let key = run_client(
        &v,
        None,
        "pencil",
        ChannelBinding::unsupported(),
        SCRAM_SHA_256,
    )
    .unwrap();
    assert_eq!(sha256(&key), v.stored_key);
    assert_eq!(
        run_client(
            &v,
            None,
            "pencilx",
            ChannelBinding::unsupported(),
            SCRAM_SHA_256
        ),
        Err(ScramError::WrongProof)
    );
    // Channel binding to the router's certificate.
    let ep = vec![7u8; 32];
    let cb = || ChannelBinding::tls_server_end_point(ep.clone());
    run_client(&v, Some(ep.clone()), "pencil", cb(), SCRAM_SHA_256_PLUS).unwrap();
    // Bound to another certificate (a man in the middle): refused.
    let other = ChannelBinding::tls_server_end_point(vec![8u8; 32]);
    assert_eq!(
        run_client(&v, Some(ep.clone()), "pencil", other, SCRAM_SHA_256_PLUS),
        Err(ScramError::ChannelBinding)
    );
    // A client that could bind ("y") while PLUS was offered: downgrade.
    assert!(matches!(
        run_client(
            &v,
            Some(ep.clone()),
            "pencil",
            ChannelBinding::unrequested(),
            SCRAM_SHA_256
        ),
        Err(ScramError::Negotiation(_))
    ));
    // "y" without TLS is fine; PLUS without TLS is not offered.
    run_client(
        &v,
        None,
        "pencil",
        ChannelBinding::unrequested(),
        SCRAM_SHA_256,
    )
    .unwrap();
    assert!(matches!(
        run_client(&v, None, "pencil", cb(), SCRAM_SHA_256_PLUS),
        Err(ScramError::Negotiation(_))
    ));
}

#[test]
fn client_key_logs_in_against_the_same_verifier() {
    let v = Verifier::parse(PG_VERIFIER).unwrap();
    let key = run_client(
        &v,
        None,
        "pencil",
        ChannelBinding::unsupported(),
        SCRAM_SHA_256,
    )
    .unwrap();
    // The router, as a client with the ClientKey, against a server
    // holding the verifier (as PostgreSQL would).
    let mut pg = ServerExchange::new(v.clone(), None);
    let mut router = ClientKeyClient::new(key, v.server_key).unwrap();
    let first = pg.first(SCRAM_SHA_256, &router.initial()).unwrap();
    let fin = router.respond(first.as_bytes()).unwrap();
    let (server_final, key2) = pg.finish(&fin).unwrap();
    assert_eq!(key2, key);
    router.finish(server_final.as_bytes()).unwrap();
    // A forged server signature is refused.
    assert_eq!(
        router.finish(b"v=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="),
        Err(ScramError::ServerSignature)
    );
    // A server nonce that does not extend ours is refused.
    let mut r2 = ClientKeyClient::new(key, v.server_key).unwrap();
    assert_eq!(
        r2.respond(b"r=other,s=c2FsdA==,i=4096"),
        Err(ScramError::Nonce)
    );
}

#[test]
fn malformed_messages_are_refused_without_panicking() {
    let v = Verifier::parse(PG_VERIFIER).unwrap();
    for first in [
        &b""[..],
        b"n",
        b"n,",
        b"x,,n=u,r=abc",
        b"n,a=admin,n=u,r=abc",
        b"n,,r=abc",
        b"n,,n=u",
        b"n,,n=u,r=",
        b"p=tls-unique,,n=u,r=abc",
        b"\xff\xfe",
    ] {
        let mut s = ServerExchange::new(v.clone(), None);
        let e = s.first(SCRAM_SHA_256, first).unwrap_err();
        assert_eq!(e.sqlstate(), "08P01", "{first:?}: {e}");
    }
    let mut s = ServerExchange::new(v.clone(), None);
    assert!(s.first("SCRAM-SHA-1", b"n,,n=u,r=abc").is_err());
    for fin in [
        &b""[..],
        b"c=biws",
        b"c=biws,r=abc,p=",
        b"c=bad!,r=abc,p=AAAA",
        b"c=biws,r=abc,p=AAAA",
        b"c=biws,p=AAAA",
    ] {
        let mut s = ServerExchange::new(v.clone(), None);
        s.first_with(SCRAM_SHA_256, b"n,,n=u,r=abc", "xyz").unwrap();
        let e = s.finish(fin).unwrap_err();
        assert_ne!(e, ScramError::WrongProof, "{fin:?}");
        assert_eq!(e.sqlstate(), "08P01", "{fin:?}: {e}");
    }
    // A final message before the first.
    let mut s = ServerExchange::new(v, None);
    assert!(s.finish(b"c=biws,r=abc,p=AAAA").is_err());
}

#[test]
fn mock_verifiers_are_stable_per_name_and_refuse_everything() {
    let secret = [9u8; 32];
    let a = Verifier::mock(&secret, "app.nosuch");
    assert_eq!(a, Verifier::mock(&secret, "app.nosuch"));
    assert_ne!(a.salt, Verifier::mock(&secret, "app.other").salt);
    assert_ne!(a.salt, Verifier::mock(&[1u8; 32], "app.nosuch").salt);
    assert_eq!(a.iterations, MOCK_ITERATIONS);
    for pw in ["", "pencil", "rt-secret"] {
        assert_eq!(
            run_client(&a, None, pw, ChannelBinding::unsupported(), SCRAM_SHA_256),
            Err(ScramError::WrongProof)
        );
    }
}

#[test]
fn end_point_hash_follows_the_signature_algorithm() {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".into()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let der = cert.der().to_vec();
    assert_eq!(end_point(&der), Some(sha256(&der).to_vec()));
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".into()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let der = cert.der().to_vec();
    assert_eq!(end_point(&der), Some(sha2::Sha384::digest(&der).to_vec()));
    assert_eq!(end_point(b"\x30\x03\x02\x01"), None);
    assert_eq!(end_point(b""), None);
}

/// Arbitrary bytes never panic the server side (a small deterministic
/// generator: every length up to 200, many byte mixes).
#[test]
fn arbitrary_input_never_panics() {
    let v = Verifier::parse(PG_VERIFIER).unwrap();
    let mut x: u64 = 0x9e3779b97f4a7c15;
    let alphabet = b"nyp=,racsi tls-server-end-point\0\xffAZ09+/";
    for len in 0..200usize {
        for _ in 0..20 {
            let msg: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    alphabet[(x % alphabet.len() as u64) as usize]
                })
                .collect();
            let mut s = ServerExchange::new(v.clone(), Some(vec![1; 32]));
            let _ = s.first(SCRAM_SHA_256_PLUS, &msg);
            let _ = s.finish(&msg);
            let mut s = ServerExchange::new(v.clone(), None);
            if s.first(SCRAM_SHA_256, b"n,,n=,r=abc").is_ok() {
                let _ = s.finish(&msg);
            }
            let _ = end_point(&msg);
        }
    }
}
