//! SCRAM-SHA-256 (RFC 5802, RFC 7677) as the router speaks it itself:
//!
//! - the server side, against a PostgreSQL verifier
//!   (`SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>`), with
//!   `SCRAM-SHA-256-PLUS` and `tls-server-end-point` channel binding to
//!   the router's own certificate when the client came over TLS. A
//!   successful exchange yields the client's ClientKey
//!   (`ClientProof XOR HMAC(StoredKey, AuthMessage)`);
//! - the client side that logs into PostgreSQL with that ClientKey (as
//!   PgBouncer does): the same verifier, so the same salt and iterations,
//!   and the proof `ClientKey XOR HMAC(StoredKey, AuthMessage')`; the
//!   server's signature is checked with ServerKey;
//! - mock verifiers for names that do not exist: a salt and iteration
//!   count derived from the name and a per-process secret (the same on
//!   every attempt, as PostgreSQL's mock authentication), and keys that no
//!   proof matches.
//!
//! Everything here is pure (no I/O); keys and proofs are compared in
//! constant time.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{KeyInit, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub const SCRAM_SHA_256: &str = "SCRAM-SHA-256";
pub const SCRAM_SHA_256_PLUS: &str = "SCRAM-SHA-256-PLUS";
/// The channel binding type the router supports (RFC 5929).
pub const TLS_SERVER_END_POINT: &str = "tls-server-end-point";
/// Iterations of mock verifiers (PostgreSQL's default).
pub const MOCK_ITERATIONS: u32 = 4096;
/// Length of the server's part of the nonce, in random bytes (base64'd).
const NONCE_BYTES: usize = 18;

type HmacSha256 = hmac::Hmac<Sha256>;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScramError {
    #[error("invalid SCRAM secret")]
    BadVerifier,
    #[error("malformed SCRAM message ({0})")]
    Malformed(&'static str),
    #[error("SCRAM channel binding negotiation error ({0})")]
    Negotiation(&'static str),
    #[error("SCRAM channel binding check failed")]
    ChannelBinding,
    #[error("SCRAM nonce mismatch")]
    Nonce,
    /// The client's proof does not match: a wrong password (or a mock).
    #[error("wrong SCRAM proof")]
    WrongProof,
    #[error("PostgreSQL's SCRAM server signature is invalid")]
    ServerSignature,
    #[error("no random bytes available: {0}")]
    Random(String),
}

impl ScramError {
    /// The SQLSTATE a client gets for it (PostgreSQL's choices).
    pub fn sqlstate(&self) -> &'static str {
        match self {
            ScramError::WrongProof => "28P01",
            ScramError::BadVerifier | ScramError::ServerSignature | ScramError::Random(_) => {
                "28000"
            }
            _ => "08P01",
        }
    }
}

fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // An HMAC accepts keys of any length: this cannot fail.
    let mut m = <HmacSha256 as KeyInit>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    for p in parts {
        m.update(p);
    }
    m.finalize().into_bytes().into()
}

fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

fn xor(a: &[u8; 32], b: &[u8; 32]) -> [u8; 32] {
    let mut out = [0u8; 32];
    for i in 0..32 {
        out[i] = a[i] ^ b[i];
    }
    out
}

/// Random bytes (`crate::random`), failing as a SCRAM error.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], ScramError> {
    crate::random::bytes::<N>().map_err(|e| ScramError::Random(e.to_string()))
}

fn nonce() -> Result<String, ScramError> {
    Ok(B64.encode(random_bytes::<NONCE_BYTES>()?))
}

/// A parsed SCRAM-SHA-256 verifier.
#[derive(Clone, PartialEq, Eq)]
pub struct Verifier {
    pub iterations: u32,
    pub salt: Vec<u8>,
    pub stored_key: [u8; 32],
    pub server_key: [u8; 32],
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

fn key32(b64: &str) -> Result<[u8; 32], ScramError> {
    let v = B64.decode(b64).map_err(|_| ScramError::BadVerifier)?;
    v.try_into().map_err(|_| ScramError::BadVerifier)
}

impl Verifier {
    /// Parse `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`.
    pub fn parse(s: &str) -> Result<Verifier, ScramError> {
        let rest = s
            .strip_prefix("SCRAM-SHA-256$")
            .ok_or(ScramError::BadVerifier)?;
        let (params, keys) = rest.split_once('$').ok_or(ScramError::BadVerifier)?;
        let (iter, salt) = params.split_once(':').ok_or(ScramError::BadVerifier)?;
        let (stored, server) = keys.split_once(':').ok_or(ScramError::BadVerifier)?;
        let iterations: u32 = iter.parse().map_err(|_| ScramError::BadVerifier)?;
        let salt = B64.decode(salt).map_err(|_| ScramError::BadVerifier)?;
        if iterations == 0 || salt.is_empty() {
            return Err(ScramError::BadVerifier);
        }
        Ok(Verifier {
            iterations,
            salt,
            stored_key: key32(stored)?,
            server_key: key32(server)?,
        })
    }

    /// The verifier PostgreSQL stores for `password` (ASCII passwords:
    /// SASLprep leaves them unchanged).
    pub fn from_password(password: &str, salt: &[u8], iterations: u32) -> Verifier {
        let salted = hi(password.as_bytes(), salt, iterations);
        let client_key = hmac(&salted, &[b"Client Key"]);
        Verifier {
            iterations,
            salt: salt.to_vec(),
            stored_key: sha256(&client_key),
            server_key: hmac(&salted, &[b"Server Key"]),
        }
    }

    /// The text form, as in pg_authid.
    pub fn to_text(&self) -> String {
        format!(
            "SCRAM-SHA-256${}:{}${}:{}",
            self.iterations,
            B64.encode(&self.salt),
            B64.encode(self.stored_key),
            B64.encode(self.server_key)
        )
    }

    /// A verifier for a name that has none: its salt comes from `secret`
    /// and `name` (the same on every attempt); no proof matches its keys.
    pub fn mock(secret: &[u8; 32], name: &str) -> Verifier {
        let salt = hmac(secret, &[b"pg_tenant mock salt\0", name.as_bytes()]);
        let stored_key = hmac(secret, &[b"pg_tenant mock key\0", name.as_bytes()]);
        Verifier {
            iterations: MOCK_ITERATIONS,
            salt: salt[..16].to_vec(),
            stored_key,
            server_key: stored_key,
        }
    }
}

/// Hi() of RFC 5802 (PBKDF2 with HMAC-SHA-256, one block).
fn hi(password: &[u8], salt: &[u8], iterations: u32) -> [u8; 32] {
    let mut u = hmac(password, &[salt, &1u32.to_be_bytes()]);
    let mut out = u;
    for _ in 1..iterations {
        u = hmac(password, &[&u]);
        for i in 0..32 {
            out[i] ^= u[i];
        }
    }
    out
}

/// What a client sent first, parsed.
struct ClientFirst {
    /// The GS2 header (`n,,`, `y,,`, `p=tls-server-end-point,,`).
    gs2_header: String,
    channel_binding: bool,
    bare: String,
    nonce: String,
}

fn printable_nonce(n: &str) -> bool {
    !n.is_empty() && n.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b',')
}

fn parse_client_first(data: &[u8]) -> Result<ClientFirst, ScramError> {
    let text = std::str::from_utf8(data).map_err(|_| ScramError::Malformed("not UTF-8"))?;
    let (flag, rest) = text
        .split_once(',')
        .ok_or(ScramError::Malformed("no GS2 header"))?;
    let channel_binding = match flag {
        "n" | "y" => false,
        _ => match flag.strip_prefix("p=") {
            Some(TLS_SERVER_END_POINT) => true,
            Some(_) => return Err(ScramError::Negotiation("unsupported channel binding type")),
            None => return Err(ScramError::Malformed("bad GS2 channel binding flag")),
        },
    };
    let (authzid, bare) = rest
        .split_once(',')
        .ok_or(ScramError::Malformed("no GS2 header"))?;
    if !authzid.is_empty() {
        return Err(ScramError::Malformed(
            "authorization identity is not supported",
        ));
    }
    let gs2_header = format!("{flag},,");
    // client-first-message-bare: n=<user>,r=<nonce>[,extensions]
    let mut attrs = bare.split(',');
    if !attrs.next().is_some_and(|a| a.starts_with("n=")) {
        return Err(ScramError::Malformed("no user name attribute"));
    }
    let nonce = attrs
        .next()
        .and_then(|a| a.strip_prefix("r="))
        .filter(|n| printable_nonce(n))
        .ok_or(ScramError::Malformed("no valid nonce"))?;
    Ok(ClientFirst {
        gs2_header,
        channel_binding,
        bare: bare.to_owned(),
        nonce: nonce.to_owned(),
    })
}

/// The server side of one exchange.
pub struct ServerExchange {
    verifier: Verifier,
    /// The `tls-server-end-point` data of the client's TLS connection
    /// (None: no TLS, or a certificate without a usable hash).
    end_point: Option<Vec<u8>>,
    /// After the first message: what the final one is checked against.
    state: Option<FirstDone>,
}

struct FirstDone {
    expected_cbind: Vec<u8>,
    nonce: String,
    /// client-first-bare "," server-first
    auth_prefix: String,
}

impl ServerExchange {
    pub fn new(verifier: Verifier, end_point: Option<Vec<u8>>) -> ServerExchange {
        ServerExchange {
            verifier,
            end_point,
            state: None,
        }
    }

    /// The mechanisms to offer, best first.
    pub fn mechanisms(&self) -> &'static [&'static str] {
        if self.end_point.is_some() {
            &[SCRAM_SHA_256_PLUS, SCRAM_SHA_256]
        } else {
            &[SCRAM_SHA_256]
        }
    }

    /// The client's SASLInitialResponse (mechanism, data): the
    /// server-first-message.
    pub fn first(&mut self, mechanism: &str, data: &[u8]) -> Result<String, ScramError> {
        self.first_with(mechanism, data, &nonce()?)
    }

    fn first_with(
        &mut self,
        mechanism: &str,
        data: &[u8],
        server_nonce: &str,
    ) -> Result<String, ScramError> {
        let plus = match mechanism {
            SCRAM_SHA_256 => false,
            SCRAM_SHA_256_PLUS if self.end_point.is_some() => true,
            _ => return Err(ScramError::Negotiation("unsupported SASL mechanism")),
        };
        let first = parse_client_first(data)?;
        match (plus, first.channel_binding, first.gs2_header.as_str()) {
            (true, true, _) => {}
            (true, false, _) => {
                return Err(ScramError::Negotiation(
                    "SCRAM-SHA-256-PLUS needs channel binding data",
                ))
            }
            (false, true, _) => {
                return Err(ScramError::Negotiation(
                    "channel binding data for a mechanism without channel binding",
                ))
            }
            // "y": the client could bind but thinks the server cannot: a
            // downgrade when PLUS was offered.
            (false, false, "y,,") if self.end_point.is_some() => {
                return Err(ScramError::Negotiation(
                    "the client supports channel binding, which the server offered",
                ))
            }
            _ => {}
        }
        let mut expected_cbind = first.gs2_header.clone().into_bytes();
        if plus {
            expected_cbind.extend_from_slice(self.end_point.as_deref().unwrap_or_default());
        }
        let nonce = format!("{}{server_nonce}", first.nonce);
        let server_first = format!(
            "r={nonce},s={},i={}",
            B64.encode(&self.verifier.salt),
            self.verifier.iterations
        );
        self.state = Some(FirstDone {
            expected_cbind,
            nonce,
            auth_prefix: format!("{},{server_first}", first.bare),
        });
        Ok(server_first)
    }

    /// The client-final-message: on success the server-final-message and
    /// the client's ClientKey.
    pub fn finish(&mut self, data: &[u8]) -> Result<(String, [u8; 32]), ScramError> {
        let st = self
            .state
            .take()
            .ok_or(ScramError::Malformed("final message before the first"))?;
        let text = std::str::from_utf8(data).map_err(|_| ScramError::Malformed("not UTF-8"))?;
        let (without_proof, proof) = text
            .rsplit_once(",p=")
            .ok_or(ScramError::Malformed("no proof"))?;
        let mut attrs = without_proof.split(',');
        let cbind = attrs
            .next()
            .and_then(|a| a.strip_prefix("c="))
            .ok_or(ScramError::Malformed("no channel binding attribute"))?;
        let cbind = B64
            .decode(cbind)
            .map_err(|_| ScramError::Malformed("channel binding is not base64"))?;
        if !bool::from(cbind.ct_eq(&st.expected_cbind)) {
            return Err(ScramError::ChannelBinding);
        }
        let nonce = attrs
            .next()
            .and_then(|a| a.strip_prefix("r="))
            .ok_or(ScramError::Malformed("no nonce"))?;
        if nonce != st.nonce {
            return Err(ScramError::Nonce);
        }
        let proof: [u8; 32] = B64
            .decode(proof)
            .map_err(|_| ScramError::Malformed("proof is not base64"))?
            .try_into()
            .map_err(|_| ScramError::Malformed("proof has the wrong length"))?;
        let auth_message = format!("{},{without_proof}", st.auth_prefix);
        let signature = hmac(&self.verifier.stored_key, &[auth_message.as_bytes()]);
        let client_key = xor(&proof, &signature);
        if !bool::from(sha256(&client_key).ct_eq(&self.verifier.stored_key)) {
            return Err(ScramError::WrongProof);
        }
        let server_sig = hmac(&self.verifier.server_key, &[auth_message.as_bytes()]);
        Ok((format!("v={}", B64.encode(server_sig)), client_key))
    }
}

/// The client side with a ClientKey instead of a password.
pub struct ClientKeyClient {
    client_key: [u8; 32],
    server_key: [u8; 32],
    nonce: String,
    expected: Option<[u8; 32]>,
}

impl ClientKeyClient {
    pub fn new(client_key: [u8; 32], server_key: [u8; 32]) -> Result<ClientKeyClient, ScramError> {
        Ok(ClientKeyClient {
            client_key,
            server_key,
            nonce: nonce()?,
            expected: None,
        })
    }

    /// The SASLInitialResponse data (SCRAM-SHA-256, no channel binding).
    pub fn initial(&self) -> Vec<u8> {
        format!("n,,n=,r={}", self.nonce).into_bytes()
    }

    /// The client-final-message for the server-first-message.
    pub fn respond(&mut self, server_first: &[u8]) -> Result<Vec<u8>, ScramError> {
        let text =
            std::str::from_utf8(server_first).map_err(|_| ScramError::Malformed("not UTF-8"))?;
        let nonce = text
            .split(',')
            .next()
            .and_then(|a| a.strip_prefix("r="))
            .ok_or(ScramError::Malformed("no nonce"))?;
        if !nonce.starts_with(&self.nonce) || nonce.len() == self.nonce.len() {
            return Err(ScramError::Nonce);
        }
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("n=,r={},{text},{without_proof}", self.nonce);
        let stored_key = sha256(&self.client_key);
        let signature = hmac(&stored_key, &[auth_message.as_bytes()]);
        let proof = xor(&self.client_key, &signature);
        self.expected = Some(hmac(&self.server_key, &[auth_message.as_bytes()]));
        Ok(format!("{without_proof},p={}", B64.encode(proof)).into_bytes())
    }

    /// Check the server-final-message.
    pub fn finish(&self, server_final: &[u8]) -> Result<(), ScramError> {
        let expected = self.expected.ok_or(ScramError::ServerSignature)?;
        let sig = std::str::from_utf8(server_final)
            .ok()
            .and_then(|t| t.strip_prefix("v="))
            .and_then(|v| B64.decode(v).ok())
            .ok_or(ScramError::ServerSignature)?;
        if bool::from(sig.as_slice().ct_eq(&expected)) {
            Ok(())
        } else {
            Err(ScramError::ServerSignature)
        }
    }
}

/// `tls-server-end-point` data for a certificate (RFC 5929 §4.1): its
/// hash with the hash function of its signature algorithm, SHA-256 when
/// that is MD5 or SHA-1. None when the algorithm names no hash (Ed25519)
/// or the certificate cannot be read: then SCRAM-SHA-256-PLUS is not
/// offered.
pub fn end_point(cert_der: &[u8]) -> Option<Vec<u8>> {
    const SHA384: &[&[u8]] = &[
        &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0c], // sha384WithRSAEncryption
        &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03],       // ecdsa-with-SHA384
    ];
    const SHA512: &[&[u8]] = &[
        &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0d], // sha512WithRSAEncryption
        &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x04],       // ecdsa-with-SHA512
    ];
    const SHA256_OR_WEAKER: &[&[u8]] = &[
        &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b], // sha256WithRSAEncryption
        &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x05], // sha1WithRSAEncryption
        &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x04], // md5WithRSAEncryption
        &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02],       // ecdsa-with-SHA256
        &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x01],             // ecdsa-with-SHA1
    ];
    let oid = signature_algorithm(cert_der)?;
    if SHA384.contains(&oid) {
        Some(sha2::Sha384::digest(cert_der).to_vec())
    } else if SHA512.contains(&oid) {
        Some(sha2::Sha512::digest(cert_der).to_vec())
    } else if SHA256_OR_WEAKER.contains(&oid) {
        Some(sha256(cert_der).to_vec())
    } else {
        None
    }
}

/// One DER element at the start of `b`: (tag, contents, rest).
fn der(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let tag = *b.first()?;
    let first = *b.get(1)?;
    let (len, head) = if first < 0x80 {
        (first as usize, 2)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for i in 0..n {
            len = (len << 8) | *b.get(2 + i)? as usize;
        }
        (len, 2 + n)
    };
    let end = head.checked_add(len)?;
    Some((tag, b.get(head..end)?, b.get(end..)?))
}

/// The OID of a certificate's outer signatureAlgorithm.
fn signature_algorithm(cert: &[u8]) -> Option<&[u8]> {
    let (0x30, cert, _) = der(cert)? else {
        return None;
    };
    let (0x30, _tbs, rest) = der(cert)? else {
        return None;
    };
    let (0x30, alg, _) = der(rest)? else {
        return None;
    };
    let (0x06, oid, _) = der(alg)? else {
        return None;
    };
    Some(oid)
}

#[cfg(test)]
#[path = "scram_tests.rs"]
mod tests;
