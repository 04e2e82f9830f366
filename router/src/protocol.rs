//! PostgreSQL v3 messages the router reads or writes itself: the startup
//! packet (`Ok(None)` while incomplete, length checked before anything is
//! read), the server messages it sends clients (ErrorResponse,
//! ReadyForQuery, ParameterStatus, BackendKeyData) and the few client
//! messages its stand-ins need. Client messages the router sends
//! PostgreSQL are otherwise postgres-protocol's (`message::frontend`).
//! Framing of regular messages is in `codec`.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Largest startup packet accepted (docs/src/router/index.md: nothing
/// before authentication makes the router hold much).
pub const MAX_STARTUP_LEN: usize = 10_000;
/// Largest regular message accepted from either side (1 GiB, as Postgres).
pub const MAX_MESSAGE_LEN: usize = 1 << 30;

pub const PROTOCOL_3_0: u32 = 196_608;
pub const SSL_REQUEST: u32 = 80_877_103;
pub const GSSENC_REQUEST: u32 = 80_877_104;
pub const CANCEL_REQUEST: u32 = 80_877_102;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("invalid message length {0}")]
    BadLength(usize),
    #[error("startup packet length {0} is out of range (8 to {MAX_STARTUP_LEN} bytes)")]
    BadStartupLength(usize),
    #[error("unsupported frontend protocol {0}.{1}: tenant-router speaks 3.0")]
    UnsupportedProtocol(u16, u16),
    #[error("malformed startup packet: {0}")]
    MalformedStartup(&'static str),
    #[error("message '{tag}' of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge { tag: char, len: usize, max: usize },
}

/// The first packet of a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Startup {
    Ssl,
    GssEnc,
    Cancel { pid: i32, key: i32 },
    Startup { params: Vec<(String, String)> },
}

/// Split one startup-phase packet off `buf`, or `Ok(None)` if incomplete.
pub fn read_startup(buf: &mut BytesMut) -> Result<Option<Startup>, FrameError> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    if !(8..=MAX_STARTUP_LEN).contains(&len) {
        return Err(FrameError::BadStartupLength(len));
    }
    if buf.len() < len {
        return Ok(None);
    }
    let mut pkt = buf.split_to(len).freeze();
    pkt.advance(4);
    let code = pkt.get_u32();
    match code {
        SSL_REQUEST if len == 8 => Ok(Some(Startup::Ssl)),
        GSSENC_REQUEST if len == 8 => Ok(Some(Startup::GssEnc)),
        CANCEL_REQUEST if len == 16 => Ok(Some(Startup::Cancel {
            pid: pkt.get_i32(),
            key: pkt.get_i32(),
        })),
        SSL_REQUEST | GSSENC_REQUEST | CANCEL_REQUEST => Err(FrameError::MalformedStartup(
            "wrong length for request code",
        )),
        PROTOCOL_3_0 => Ok(Some(Startup::Startup {
            params: parse_params(pkt)?,
        })),
        v => Err(FrameError::UnsupportedProtocol((v >> 16) as u16, v as u16)),
    }
}

fn parse_params(mut body: Bytes) -> Result<Vec<(String, String)>, FrameError> {
    let mut params = Vec::new();
    loop {
        let key = cstr(&mut body)?;
        if key.is_empty() {
            break;
        }
        let value = cstr(&mut body)?;
        if params.iter().any(|(k, _)| *k == key) {
            return Err(FrameError::MalformedStartup("duplicate parameter"));
        }
        params.push((key, value));
    }
    if body.has_remaining() {
        return Err(FrameError::MalformedStartup(
            "trailing bytes after parameters",
        ));
    }
    Ok(params)
}

fn cstr(body: &mut Bytes) -> Result<String, FrameError> {
    let end = body
        .iter()
        .position(|b| *b == 0)
        .ok_or(FrameError::MalformedStartup("unterminated string"))?;
    let s = std::str::from_utf8(&body[..end])
        .map_err(|_| FrameError::MalformedStartup("parameter is not UTF-8"))?
        .to_owned();
    body.advance(end + 1);
    Ok(s)
}

/// A v3.0 StartupMessage of `params`, by postgres-protocol's encoder. A
/// name or value ends at a NUL, should one hold any (a parsed startup
/// packet cannot), so the encoding cannot fail.
pub fn startup_message(params: &[(String, String)]) -> BytesMut {
    let upto_nul = |s: &str| s.split('\0').next().unwrap_or_default().to_owned();
    let params: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| (upto_nul(k), upto_nul(v)))
        .collect();
    let mut out = BytesMut::with_capacity(64);
    // No NUL is left in a name or value: nothing to fail.
    let _ = postgres_protocol::message::frontend::startup_message(
        params.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        &mut out,
    );
    out
}

/// A CancelRequest, by postgres-protocol's encoder.
pub fn cancel_request(pid: i32, key: i32) -> BytesMut {
    let mut out = BytesMut::with_capacity(16);
    postgres_protocol::message::frontend::cancel_request(pid, key, &mut out);
    out
}

/// A whole backend message (handshake phases), typed by postgres-protocol;
/// None for a tag it does not know (NegotiateProtocolVersion) or a
/// malformed body.
pub fn typed(frame: &BytesMut) -> Option<postgres_protocol::message::backend::Message> {
    postgres_protocol::message::backend::Message::parse(&mut frame.clone())
        .ok()
        .flatten()
}

/// Encode a simple Query.
pub fn query(sql: &str) -> BytesMut {
    let mut q = BytesMut::with_capacity(sql.len() + 6);
    q.put_u8(b'Q');
    q.put_u32((sql.len() + 5) as u32);
    q.put_slice(sql.as_bytes());
    q.put_u8(0);
    q
}

/// Encode an Execute of `portal`, all rows.
pub fn execute(portal: &str) -> BytesMut {
    let mut q = BytesMut::with_capacity(portal.len() + 10);
    q.put_u8(b'E');
    q.put_u32((portal.len() + 9) as u32);
    q.put_slice(portal.as_bytes());
    q.put_u8(0);
    q.put_u32(0);
    q
}

/// Encode a ReadyForQuery with transaction status `status`.
pub fn ready_for_query(status: u8) -> [u8; 6] {
    [b'Z', 0, 0, 0, 5, status]
}

/// Severity of an error the router reports itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Error,
    Fatal,
}

/// Encode an ErrorResponse.
/// The (name, value) of a ParameterStatus frame.
pub fn parameter_status(frame: &[u8]) -> Option<(String, String)> {
    let body = frame.get(5..)?;
    let mut parts = body.split(|b| *b == 0);
    let name = std::str::from_utf8(parts.next()?).ok()?;
    let value = std::str::from_utf8(parts.next()?).ok()?;
    Some((name.to_owned(), value.to_owned()))
}

/// A ParameterStatus of pg_tenant's own (`pg_tenant.*`): the router's
/// business, never passed on to a client.
pub fn is_pg_tenant_parameter(frame: &[u8]) -> bool {
    frame.first() == Some(&b'S') && frame.get(5..).is_some_and(|b| b.starts_with(b"pg_tenant."))
}

/// A ParameterStatus frame.
pub fn parameter_status_frame(name: &str, value: &str, out: &mut BytesMut) {
    let len = 4 + name.len() + 1 + value.len() + 1;
    out.put_u8(b'S');
    out.put_u32(len as u32);
    out.put_slice(name.as_bytes());
    out.put_u8(0);
    out.put_slice(value.as_bytes());
    out.put_u8(0);
}

/// A BackendKeyData frame.
pub fn backend_key_data(pid: i32, key: i32, out: &mut BytesMut) {
    out.put_u8(b'K');
    out.put_u32(12);
    out.put_i32(pid);
    out.put_i32(key);
}

pub fn error_response(severity: Severity, code: &str, message: &str) -> BytesMut {
    let sev = match severity {
        Severity::Error => "ERROR",
        Severity::Fatal => "FATAL",
    };
    let mut out = BytesMut::with_capacity(32 + message.len());
    out.put_u8(b'E');
    out.put_u32(0);
    for (field, value) in [(b'S', sev), (b'V', sev), (b'C', code), (b'M', message)] {
        out.put_u8(field);
        out.put_slice(value.replace('\0', " ").as_bytes());
        out.put_u8(0);
    }
    out.put_u8(0);
    let len = (out.len() - 1) as u32;
    out[1..5].copy_from_slice(&len.to_be_bytes());
    out
}

/// "message (SQLSTATE)" of a whole ErrorResponse frame, for errors the
/// router passes on in its own words.
pub fn error_summary(frame: BytesMut) -> String {
    let (code, msg) = parse_error_fields(frame.freeze().slice(5..));
    format!("{msg} ({code})")
}

/// The SQLSTATE and message of a whole ErrorResponse frame.
pub fn error_fields(frame: &[u8]) -> (String, String) {
    parse_error_fields(Bytes::copy_from_slice(frame.get(5..).unwrap_or_default()))
}

/// The SQLSTATE and message of an ErrorResponse body.
pub fn parse_error_fields(mut body: Bytes) -> (String, String) {
    let (mut code, mut msg) = (String::new(), String::new());
    while body.has_remaining() {
        let field = body.get_u8();
        if field == 0 {
            break;
        }
        let Ok(v) = cstr(&mut body) else { break };
        match field {
            b'C' => code = v,
            b'M' => msg = v,
            _ => {}
        }
    }
    (code, msg)
}

/// A Bind of the unnamed portal to `statement`, with no parameters (the
/// stand-ins of refused messages: a statement no client has).
pub fn bind_unnamed(statement: &str) -> BytesMut {
    let mut b = BytesMut::with_capacity(statement.len() + 16);
    b.put_u8(b'B');
    b.put_u32((4 + 1 + statement.len() + 1 + 6) as u32);
    b.put_u8(0);
    b.put_slice(statement.as_bytes());
    b.put_u8(0);
    b.put_i16(0); // parameter format codes
    b.put_i16(0); // parameters
    b.put_i16(0); // result format codes
    b
}

/// A NotificationResponse (`A`) whose channel starts with `prefix`, with
/// the prefix taken off; None for anything else (including a malformed
/// frame, which is left as Postgres sent it). pg_tenant namespaces tenant
/// channels as `<tenant>:<channel>`; the router hands the application back
/// the name it listened on. `pid` (pooled clients): (the backend's real
/// pid, the pid the client was given): a notification the client's own
/// backend sent carries the pid the client knows.
pub fn unprefix_notification(
    frame: &[u8],
    prefix: &[u8],
    pid: Option<(i32, i32)>,
) -> Option<BytesMut> {
    // 'A', int32 length, int32 pid, channel NUL, payload NUL
    if frame.len() < 11 || frame[0] != b'A' {
        return None;
    }
    let body = &frame[9..];
    let end = body.iter().position(|b| *b == 0)?;
    let channel = body[..end].strip_prefix(prefix)?;
    let rest = &body[end..];
    let len = 4 + 4 + channel.len() + rest.len();
    let mut out = BytesMut::with_capacity(1 + len);
    out.put_u8(b'A');
    out.put_u32(u32::try_from(len).ok()?);
    let sender = i32::from_be_bytes([frame[5], frame[6], frame[7], frame[8]]);
    match pid {
        Some((real, given)) if sender == real => out.put_i32(given),
        _ => out.extend_from_slice(&frame[5..9]),
    }
    out.extend_from_slice(channel);
    out.extend_from_slice(rest);
    Some(out)
}

#[cfg(test)]
mod tests {

    #[test]
    fn parameter_status_round_trip_and_pg_tenant_reports() {
        let mut f = BytesMut::new();
        parameter_status_frame("TimeZone", "UTC", &mut f);
        assert_eq!(
            parameter_status(&f),
            Some(("TimeZone".into(), "UTC".into()))
        );
        assert!(!is_pg_tenant_parameter(&f));
        let mut own = BytesMut::new();
        parameter_status_frame("pg_tenant.session_settings", "{}", &mut own);
        assert!(is_pg_tenant_parameter(&own));
        assert_eq!(parameter_status(b"S\0\0\0\x05"), None, "truncated");
        let mut k = BytesMut::new();
        backend_key_data(7, -3, &mut k);
        assert_eq!(&k[..], b"K\0\0\0\x0c\0\0\0\x07\xff\xff\xff\xfd");
    }

    use super::*;

    fn notification(pid: u32, channel: &str, payload: &str) -> BytesMut {
        let mut f = BytesMut::new();
        f.put_u8(b'A');
        f.put_u32((4 + 4 + channel.len() + 1 + payload.len() + 1) as u32);
        f.put_u32(pid);
        f.extend_from_slice(channel.as_bytes());
        f.put_u8(0);
        f.extend_from_slice(payload.as_bytes());
        f.put_u8(0);
        f
    }

    #[test]
    fn tenant_prefix_comes_off_notifications() {
        let f = notification(42, "acme:jobs", "p:1");
        let out = unprefix_notification(&f, b"acme:", None).unwrap();
        assert_eq!(&out[..], &notification(42, "jobs", "p:1")[..]);
        // Another prefix, another message type, a truncated frame: untouched.
        assert!(unprefix_notification(&f, b"globex:", None).is_none());
        assert!(unprefix_notification(b"Z\0\0\0\x05I", b"acme:", None).is_none());
        assert!(unprefix_notification(&f[..12], b"acme:", None).is_none());
        let no_nul = &f[..9 + "acme:jobs".len()];
        assert!(unprefix_notification(no_nul, b"acme:", None).is_none());
        // A pooled client's own notification: the pid it was given.
        let out = unprefix_notification(&f, b"acme:", Some((42, 7))).unwrap();
        assert_eq!(&out[..], &notification(7, "jobs", "p:1")[..]);
        let out = unprefix_notification(&f, b"acme:", Some((41, 7))).unwrap();
        assert_eq!(&out[..], &notification(42, "jobs", "p:1")[..], "another's");
    }

    fn startup_bytes(code: u32, body: &[u8]) -> BytesMut {
        let mut b = BytesMut::new();
        b.put_u32((8 + body.len()) as u32);
        b.put_u32(code);
        b.put_slice(body);
        b
    }

    #[test]
    fn startup_round_trip() {
        let params = vec![
            ("user".to_string(), "app.acme".to_string()),
            ("database".to_string(), "app".to_string()),
        ];
        let mut b = startup_message(&params);
        assert_eq!(read_startup(&mut b), Ok(Some(Startup::Startup { params })));
        assert!(b.is_empty());
    }

    #[test]
    fn startup_incomplete_then_complete() {
        let full = startup_message(&[("user".into(), "u".into())]);
        let mut b = BytesMut::from(&full[..3]);
        assert_eq!(read_startup(&mut b), Ok(None));
        let mut b = BytesMut::from(&full[..full.len() - 1]);
        assert_eq!(read_startup(&mut b), Ok(None));
    }

    #[test]
    fn special_requests() {
        assert_eq!(
            read_startup(&mut startup_bytes(SSL_REQUEST, b"")),
            Ok(Some(Startup::Ssl))
        );
        assert_eq!(
            read_startup(&mut startup_bytes(GSSENC_REQUEST, b"")),
            Ok(Some(Startup::GssEnc))
        );
        let mut c = startup_bytes(CANCEL_REQUEST, &[0, 0, 0, 7, 0, 0, 1, 0]);
        assert_eq!(
            read_startup(&mut c),
            Ok(Some(Startup::Cancel { pid: 7, key: 256 }))
        );
        assert!(read_startup(&mut startup_bytes(CANCEL_REQUEST, b"")).is_err());
        let mut ssl = BytesMut::new();
        postgres_protocol::message::frontend::ssl_request(&mut ssl);
        assert_eq!(read_startup(&mut ssl), Ok(Some(Startup::Ssl)));
    }

    #[test]
    fn bad_startup_packets() {
        let mut huge = BytesMut::new();
        huge.put_u32(10_001);
        assert_eq!(
            read_startup(&mut huge),
            Err(FrameError::BadStartupLength(10_001))
        );
        let mut tiny = BytesMut::from(&[0u8, 0, 0, 4][..]);
        assert_eq!(
            read_startup(&mut tiny),
            Err(FrameError::BadStartupLength(4))
        );
        assert_eq!(
            read_startup(&mut startup_bytes(0x0002_0000, b"user\0u\0\0")),
            Err(FrameError::UnsupportedProtocol(2, 0))
        );
        for body in [
            &b"user\0u"[..],
            b"user\0u\0\0junk",
            b"user\0\xff\0\0",
            b"a\0b\0a\0c\0\0",
        ] {
            assert!(matches!(
                read_startup(&mut startup_bytes(PROTOCOL_3_0, body)),
                Err(FrameError::MalformedStartup(_))
            ));
        }
    }

    #[test]
    fn error_response_encoding() {
        let e = error_response(Severity::Fatal, "28000", "no such tenant");
        assert_eq!(e[0], b'E');
        assert_eq!(
            u32::from_be_bytes([e[1], e[2], e[3], e[4]]) as usize,
            e.len() - 1
        );
        assert_eq!(
            parse_error_fields(e.freeze().slice(5..)),
            ("28000".into(), "no such tenant".into())
        );
    }

    #[test]
    fn cancel_request_encoding() {
        let mut b = cancel_request(42, -5);
        assert_eq!(
            read_startup(&mut b),
            Ok(Some(Startup::Cancel { pid: 42, key: -5 }))
        );
    }
}
