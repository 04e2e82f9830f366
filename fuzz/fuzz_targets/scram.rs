//! The server side of SCRAM-SHA-256(-PLUS) against what a client sends:
//! SASLInitialResponse data (client-first) and SASLResponse data
//! (client-final), with and without a TLS end point, with either
//! mechanism. Two ways to finish: an honest client that computes the
//! proof for the fuzzed client-first (must succeed, return its ClientKey
//! and the right server signature), or fuzzed client-final bytes (must be
//! refused: nobody forges a proof). A final message never counts twice.
//! The stored-secret parser round-trips through its text form.
#![no_main]

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{KeyInit, Mac};
use libfuzzer_sys::fuzz_target;
use pg_tenant_fuzz::{assert_clean_message, part, parts};
use sha2::{Digest, Sha256};
use tenant_router::auth::scram::{end_point, ScramError, ServerExchange, Verifier};

const CLIENT_KEY: [u8; 32] = [7; 32];
const SERVER_KEY: [u8; 32] = [9; 32];
const END_POINT: [u8; 32] = [0xEE; 32];

fn hmac(key: &[u8], msg: &[u8]) -> [u8; 32] {
    let mut m = <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("any key length");
    m.update(msg);
    m.finalize().into_bytes().into()
}

fn verifier() -> Verifier {
    Verifier {
        iterations: 4096,
        salt: b"fuzz-salt".to_vec(),
        stored_key: Sha256::digest(CLIENT_KEY).into(),
        server_key: SERVER_KEY,
    }
}

fn refused(e: &ScramError) {
    assert!(matches!(e.sqlstate(), "08P01" | "28P01"), "{e:?}");
    assert_clean_message(&e.to_string());
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let p = parts(rest);
    let (first, last) = (part(&p, 0), part(&p, 1));
    if mode & 0x40 != 0 {
        if let Ok(v) = Verifier::parse(&String::from_utf8_lossy(first)) {
            assert!(v.iterations > 0 && !v.salt.is_empty());
            assert_eq!(Verifier::parse(&v.to_text()), Ok(v));
        }
        if let Some(h) = end_point(first) {
            assert!(matches!(h.len(), 32 | 48 | 64));
        }
        return;
    }
    let tls = mode & 1 != 0;
    let mechanism = match (mode >> 1) & 3 {
        0 | 3 => "SCRAM-SHA-256",
        1 => "SCRAM-SHA-256-PLUS",
        _ => std::str::from_utf8(last).unwrap_or_default(),
    };
    let mut ex = ServerExchange::new(verifier(), tls.then(|| END_POINT.to_vec()));
    let server_first = match ex.first(mechanism, first) {
        Ok(s) => s,
        Err(e) => {
            refused(&e);
            assert_eq!(
                ex.finish(last),
                Err(ScramError::Malformed("final message before the first"))
            );
            return;
        }
    };
    // What was accepted is a well-formed client-first for this mechanism.
    let text = std::str::from_utf8(first).expect("accepted client-first is UTF-8");
    let plus = mechanism == "SCRAM-SHA-256-PLUS";
    assert!(tls || !plus, "PLUS without TLS");
    let gs2 = if plus {
        "p=tls-server-end-point,,"
    } else if text.starts_with("y,,") {
        assert!(!tls, "a downgrade accepted");
        "y,,"
    } else {
        "n,,"
    };
    let bare = text
        .strip_prefix(gs2)
        .expect("GS2 header for the mechanism");
    let client_nonce = bare
        .split(',')
        .nth(1)
        .and_then(|a| a.strip_prefix("r="))
        .expect("a nonce");
    assert!(bare.starts_with("n="));
    assert!(
        !client_nonce.is_empty()
            && client_nonce
                .bytes()
                .all(|b| (0x21..=0x7e).contains(&b) && b != b',')
    );
    let nonce = server_first
        .strip_prefix("r=")
        .and_then(|s| s.split(',').next())
        .expect("server-first starts with the nonce");
    assert!(nonce.starts_with(client_nonce) && nonce.len() > client_nonce.len());
    assert!(server_first.ends_with(&format!(",s={},i=4096", B64.encode(b"fuzz-salt"))));

    if mode & 0x80 != 0 {
        // The honest client, with the fuzzed final bytes as an extension.
        let mut cbind = gs2.as_bytes().to_vec();
        if plus {
            cbind.extend_from_slice(&END_POINT);
        }
        let mut without_proof = format!("c={},r={nonce}", B64.encode(&cbind));
        if let Ok(ext) = std::str::from_utf8(last) {
            if !ext.is_empty() {
                without_proof = format!("{without_proof},{ext}");
            }
        }
        let auth = format!("{bare},{server_first},{without_proof}");
        let sig = hmac(&Sha256::digest(CLIENT_KEY), auth.as_bytes());
        let proof: Vec<u8> = CLIENT_KEY.iter().zip(sig).map(|(a, b)| a ^ b).collect();
        let msg = format!("{without_proof},p={}", B64.encode(proof));
        let (server_final, key) = ex
            .finish(msg.as_bytes())
            .expect("the honest client is accepted");
        assert_eq!(key, CLIENT_KEY);
        assert_eq!(
            server_final,
            format!("v={}", B64.encode(hmac(&SERVER_KEY, auth.as_bytes())))
        );
    } else {
        let e = ex.finish(last).expect_err("a forged proof accepted");
        refused(&e);
    }
    assert_eq!(
        ex.finish(last),
        Err(ScramError::Malformed("final message before the first"))
    );
});
