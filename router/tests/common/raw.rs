//! A raw protocol client, for what tokio-postgres cannot send: Flush
//! without Sync, FunctionCall, many Executes per Sync, a message cut off
//! half way.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256};
use postgres_protocol::message::frontend;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Longest wait for one server message.
const WAIT: Duration = Duration::from_secs(20);

pub struct Raw {
    pub s: TcpStream,
    buf: BytesMut,
    /// The BackendKeyData the client was given (pid, key).
    pub key: Option<(i32, i32)>,
}

/// A server message: tag and body.
pub type Msg = (u8, Bytes);

impl Raw {
    /// Connect and authenticate (trust, cleartext `password` or
    /// SCRAM-SHA-256 with it), up to the first ReadyForQuery.
    pub async fn connect(port: u16, user: &str, db: &str) -> Result<Raw, String> {
        let s = TcpStream::connect(("127.0.0.1", port))
            .await
            .map_err(|e| e.to_string())?;
        s.set_nodelay(true).map_err(|e| e.to_string())?;
        let mut r = Raw {
            s,
            buf: BytesMut::new(),
            key: None,
        };
        let mut m = BytesMut::new();
        frontend::startup_message([("user", user), ("database", db)], &mut m)
            .map_err(|e| e.to_string())?;
        r.send(&m).await;
        let mut scram = None;
        loop {
            let (tag, body) = r.recv().await;
            let code = (tag == b'R' && body.len() >= 4)
                .then(|| i32::from_be_bytes([body[0], body[1], body[2], body[3]]));
            let mut p = BytesMut::new();
            match (tag, code) {
                (_, Some(3)) => {
                    frontend::password_message(super::PASSWORD.as_bytes(), &mut p)
                        .map_err(|e| e.to_string())?;
                    r.send(&p).await;
                }
                (_, Some(10)) => {
                    let c =
                        ScramSha256::new(super::PASSWORD.as_bytes(), ChannelBinding::unsupported());
                    frontend::sasl_initial_response("SCRAM-SHA-256", c.message(), &mut p)
                        .map_err(|e| e.to_string())?;
                    r.send(&p).await;
                    scram = Some(c);
                }
                (_, Some(11)) => {
                    let c = scram.as_mut().ok_or("SASLContinue before SASL")?;
                    c.update(&body[4..]).map_err(|e| e.to_string())?;
                    frontend::sasl_response(c.message(), &mut p).map_err(|e| e.to_string())?;
                    r.send(&p).await;
                }
                (_, Some(12)) => {
                    let c = scram.as_mut().ok_or("SASLFinal before SASL")?;
                    c.finish(&body[4..]).map_err(|e| e.to_string())?;
                }
                (b'E', _) => return Err(error_of(&body).1),
                (b'K', _) if body.len() >= 8 => {
                    let pid = i32::from_be_bytes([body[0], body[1], body[2], body[3]]);
                    let key = i32::from_be_bytes([body[4], body[5], body[6], body[7]]);
                    r.key = Some((pid, key));
                }
                (b'Z', _) => return Ok(r),
                _ => {}
            }
        }
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.s.write_all(bytes).await.expect("send");
    }

    /// The next message (panics after 20 s or at EOF).
    pub async fn recv(&mut self) -> Msg {
        tokio::time::timeout(WAIT, self.try_recv())
            .await
            .expect("a server message within 20 s")
            .expect("a server message, not EOF")
    }

    /// The next message, None at EOF.
    pub async fn try_recv(&mut self) -> Option<Msg> {
        loop {
            if let Some(m) = take_message(&mut self.buf) {
                return Some(m);
            }
            match self.s.read_buf(&mut self.buf).await {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    /// Messages up to and including the next one tagged `tag`.
    pub async fn until(&mut self, tag: u8) -> Vec<Msg> {
        let mut out = Vec::new();
        loop {
            let m = self.recv().await;
            let done = m.0 == tag;
            out.push(m);
            if done {
                return out;
            }
        }
    }

    /// A simple Query, answered up to ReadyForQuery.
    pub async fn query(&mut self, sql: &str) -> Vec<Msg> {
        self.send(&query(sql)).await;
        self.until(b'Z').await
    }
}

pub fn query(sql: &str) -> BytesMut {
    let mut m = BytesMut::new();
    frontend::query(sql, &mut m).expect("query");
    m
}

/// Parse (unnamed) + Bind (unnamed, text parameters) + Execute.
pub fn parse_bind_execute(sql: &str, params: &[&str]) -> BytesMut {
    let mut m = BytesMut::new();
    frontend::parse("", sql, [], &mut m).expect("parse");
    frontend::bind(
        "",
        "",
        [0i16],
        params.iter().copied(),
        |v, buf| {
            buf.put_slice(v.as_bytes());
            Ok(postgres_protocol::IsNull::No)
        },
        [0i16],
        &mut m,
    )
    .map_err(|_| "bind")
    .expect("bind");
    frontend::execute("", 0, &mut m).expect("execute");
    m
}

/// A message: tag and body.
pub fn message(tag: u8, body: &[u8]) -> BytesMut {
    let mut m = BytesMut::new();
    m.put_u8(tag);
    m.put_u32(body.len() as u32 + 4);
    m.put_slice(body);
    m
}

/// A Parse of statement `name` (no parameter types).
pub fn parse(name: &str, sql: &str) -> BytesMut {
    let mut m = BytesMut::new();
    frontend::parse(name, sql, [], &mut m).expect("parse");
    m
}

/// Bind of the unnamed portal to `stmt` with text parameters, Execute,
/// Sync.
pub fn run(stmt: &str, params: &[&str]) -> BytesMut {
    let mut m = BytesMut::new();
    frontend::bind(
        "",
        stmt,
        [0i16; 0],
        params.iter().copied(),
        |p, buf| {
            buf.put_slice(p.as_bytes());
            Ok(postgres_protocol::IsNull::No)
        },
        [0i16; 0],
        &mut m,
    )
    .map_err(|_| "bind")
    .expect("bind");
    frontend::execute("", 0, &mut m).expect("execute");
    frontend::sync(&mut m);
    m
}

/// Bind (unnamed portal, unnamed statement, no parameters) + Execute.
pub fn bind_execute() -> BytesMut {
    let mut m = BytesMut::new();
    frontend::bind(
        "",
        "",
        [0i16; 0],
        Vec::<&str>::new(),
        |_, _| Ok(postgres_protocol::IsNull::No),
        [0i16; 0],
        &mut m,
    )
    .map_err(|_| "bind")
    .expect("bind");
    frontend::execute("", 0, &mut m).expect("execute");
    m
}

pub fn flush() -> BytesMut {
    let mut m = BytesMut::new();
    frontend::flush(&mut m);
    m
}

pub fn sync() -> BytesMut {
    let mut m = BytesMut::new();
    frontend::sync(&mut m);
    m
}

/// FunctionCall of function `oid` with binary float8 arguments.
pub fn function_call(oid: u32, args: &[f64]) -> BytesMut {
    let mut body = BytesMut::new();
    body.put_u32(oid);
    body.put_i16(1);
    body.put_i16(1); // arguments in binary
    body.put_i16(args.len() as i16);
    for a in args {
        body.put_i32(8);
        body.put_f64(*a);
    }
    body.put_i16(1); // result in binary
    let mut m = BytesMut::new();
    m.put_u8(b'F');
    m.put_u32(body.len() as u32 + 4);
    m.put_slice(&body);
    m
}

/// SQLSTATE and message of an ErrorResponse body.
pub fn error_of(body: &[u8]) -> (String, String) {
    let (mut code, mut msg) = (String::new(), String::new());
    let mut rest = body;
    while let Some((&field, tail)) = rest.split_first() {
        if field == 0 {
            break;
        }
        let end = tail.iter().position(|b| *b == 0).unwrap_or(tail.len());
        let v = String::from_utf8_lossy(&tail[..end]).into_owned();
        match field {
            b'C' => code = v,
            b'M' => msg = v,
            _ => {}
        }
        rest = tail.get(end + 1..).unwrap_or_default();
    }
    (code, msg)
}

/// The SQLSTATEs of the ErrorResponses among `msgs`.
pub fn errors(msgs: &[Msg]) -> Vec<String> {
    msgs.iter()
        .filter(|m| m.0 == b'E')
        .map(|m| error_of(&m.1).0)
        .collect()
}

/// The first whole message of `buf`, taken out of it (None while
/// incomplete; room is reserved for the rest).
pub fn take_message(buf: &mut BytesMut) -> Option<Msg> {
    if buf.len() < 5 {
        return None;
    }
    let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
    if buf.len() > len {
        let tag = buf[0];
        buf.advance(5);
        return Some((tag, buf.split_to(len - 4).freeze()));
    }
    buf.reserve(len + 1 - buf.len());
    None
}
