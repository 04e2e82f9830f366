//! The first bytes of a connection: StartupMessage, SSLRequest,
//! GSSENCRequest, CancelRequest, fed in chunks of the size the input's
//! first byte picks. Every packet parsed re-encodes to exactly the bytes
//! it was read from; lengths stay within 8..=MAX_STARTUP_LEN; an
//! incomplete packet consumes nothing. Parsed parameters then go through
//! the tenant-name rules (`pg_tenant_fuzz::tenant`).
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use pg_tenant_fuzz::{assert_clean_message, tenant};
use tenant_router::protocol::{
    cancel_request, read_startup, startup_message, FrameError, Startup, CANCEL_REQUEST,
    GSSENC_REQUEST, MAX_STARTUP_LEN, SSL_REQUEST,
};

fn request(code: u32) -> Vec<u8> {
    let mut v = 8u32.to_be_bytes().to_vec();
    v.extend(code.to_be_bytes());
    v
}

fuzz_target!(|data: &[u8]| {
    let Some((&step, stream)) = data.split_first() else {
        return;
    };
    let step = usize::from(step).max(1);
    let mut buf = BytesMut::new();
    for chunk in stream.chunks(step) {
        buf.extend_from_slice(chunk);
        loop {
            let before = buf.clone();
            match read_startup(&mut buf) {
                Ok(None) => {
                    assert_eq!(buf, before, "an incomplete packet consumes nothing");
                    if before.len() >= 4 {
                        let len = u32::from_be_bytes([before[0], before[1], before[2], before[3]]);
                        assert!(before.len() < len as usize);
                    }
                    break;
                }
                Ok(Some(pkt)) => {
                    let used = before.len() - buf.len();
                    assert!((8..=MAX_STARTUP_LEN).contains(&used));
                    let raw = &before[..used];
                    assert_eq!(
                        u32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]) as usize,
                        used
                    );
                    let again: Vec<u8> = match &pkt {
                        Startup::Ssl => request(SSL_REQUEST),
                        Startup::GssEnc => request(GSSENC_REQUEST),
                        Startup::Cancel { pid, key } => {
                            assert_eq!(used, 16);
                            cancel_request(*pid, *key).to_vec()
                        }
                        Startup::Startup { params } => {
                            for (i, (k, v)) in params.iter().enumerate() {
                                assert!(!k.is_empty() && !k.contains('\0') && !v.contains('\0'));
                                assert!(params[..i].iter().all(|(o, _)| o != k), "duplicate {k:?}");
                            }
                            let sel = raw.get(8).copied().unwrap_or_default();
                            tenant::check_screen(params);
                            tenant::check_identify(&tenant::config(sel), params, None);
                            startup_message(params).to_vec()
                        }
                    };
                    assert_eq!(again, raw, "re-encoded {pkt:?}");
                }
                Err(e) => {
                    assert_clean_message(&e.to_string());
                    match e {
                        FrameError::BadStartupLength(n) => {
                            assert!(!(8..=MAX_STARTUP_LEN).contains(&n));
                            assert_eq!(buf, before, "a bad length consumes nothing");
                        }
                        FrameError::MalformedStartup(_) | FrameError::UnsupportedProtocol(..) => {
                            let used = before.len() - buf.len();
                            assert!((8..=MAX_STARTUP_LEN).contains(&used));
                        }
                        other => panic!("unexpected error {other:?}"),
                    }
                    let code = before
                        .get(4..8)
                        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]));
                    if let Some(c @ (SSL_REQUEST | GSSENC_REQUEST | CANCEL_REQUEST)) = code {
                        let len = u32::from_be_bytes([before[0], before[1], before[2], before[3]]);
                        let wanted = if c == CANCEL_REQUEST { 16 } else { 8 };
                        assert_ne!(len, wanted, "a well-formed request refused");
                    }
                    return;
                }
            }
        }
    }
});
