//! The router's one source of random values: the operating system's
//! CSPRNG (`getrandom`). SCRAM nonces, mock salts and md5 challenges,
//! the nonces of the router's own exchanges, `setseed()` values and the
//! cancel keys of pooled clients all come from here.

/// `N` random bytes.
pub fn bytes<const N: usize>() -> Result<[u8; N], getrandom::Error> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b)?;
    Ok(b)
}
