//! The context token's parser (`pg_tenant_token::parse`, what the
//! extension reads from `SET pg_tenant.context`), the public-key list
//! parser and the limits on what a token carries. A parsed token is in
//! canonical form (it re-encodes to itself); no fuzzed token verifies;
//! a key list is accepted only within its limits.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pg_tenant_fuzz::{part, parts};
use pg_tenant_token::{
    check_action, parse, parse_public_keys, public_key_hex, verify, Action, Backend, SigningKey,
    TokenError, MAX_CLAIMS_LEN, MAX_DOCUMENT_LEN, MAX_PUBLIC_KEYS, MAX_SUBJECT_LEN, MAX_TOKEN_LEN,
};
use std::sync::OnceLock;

fn keys() -> &'static Vec<pg_tenant_token::VerifyingKey> {
    static K: OnceLock<Vec<pg_tenant_token::VerifyingKey>> = OnceLock::new();
    K.get_or_init(|| {
        let key = SigningKey::from_bytes(&[3; 32]);
        parse_public_keys(&public_key_hex(&key)).expect("a key")
    })
}

fuzz_target!(|data: &[u8]| {
    let p = parts(data);
    let token = String::from_utf8_lossy(part(&p, 0));
    match parse(&token) {
        Ok((nonce, sig)) => {
            assert!(token.len() <= MAX_TOKEN_LEN && nonce >= 1);
            assert_eq!(format!("v2.{nonce}.{}", hex_lower(&sig.to_bytes())), token);
            let be = Backend {
                pid: 1,
                cancel_key: 2,
            };
            // Only a signature by the key verifies: a fuzzed one never does.
            let r = verify(keys(), Action::Set("acme"), be, 0, &token);
            assert_eq!(r, Err(TokenError::BadSignature));
        }
        Err(e) => assert_eq!(e, TokenError::Malformed),
    }
    let strs: Vec<String> = (1..4)
        .map(|i| String::from_utf8_lossy(part(&p, i)).into_owned())
        .collect();
    let (tenant, subject, claims) = (&strs[0], &strs[1], &strs[2]);
    if check_action(Action::SetSubject {
        tenant,
        subject,
        claims,
    })
    .is_ok()
    {
        assert!(!subject.is_empty() && subject.len() <= MAX_SUBJECT_LEN && !subject.contains('\0'));
        assert!(claims.len() <= MAX_CLAIMS_LEN && !claims.contains('\0'));
        let t = claims.trim_matches([' ', '\t', '\n', '\r']);
        assert!(t.starts_with('{') && t.ends_with('}') && t.len() >= 2);
    }
    if check_action(Action::SetSealed {
        tenant,
        document: claims,
    })
    .is_ok()
    {
        assert!(claims.len() <= MAX_DOCUMENT_LEN && !claims.contains('\0'));
    }
    if let Ok(list) = parse_public_keys(subject) {
        assert!(list.len() <= MAX_PUBLIC_KEYS);
        for k in &list {
            let hex = public_key_hex_of(k);
            assert!(subject.contains(&hex), "key {hex} not in {subject:?}");
        }
    }
});

fn hex_lower(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn public_key_hex_of(k: &pg_tenant_token::VerifyingKey) -> String {
    hex_lower(k.as_bytes())
}
