//! The server side of a session: one backend connection, its key data and
//! what it sent that is not relayed yet; the steps after authentication
//! (PostAuth, Injecting) and the router's own checked exchanges
//! (`exchange`). Separate from the client side: a pool keeps a `Backend`
//! at rest and hands it to another client. Fails with `BackendError`.

use crate::codec::{self, ReadError};
use crate::config::{Config, Upstream};
use crate::protocol::{self, FrameError};
use crate::transport::Stream;
use bytes::{BufMut, BytesMut};
use postgres_protocol::message::backend::Message;
use tokio::io::AsyncWriteExt;

/// Why a backend failed (the session turns each into its `SessionError`
/// of the same words).
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("cannot connect to PostgreSQL at {addr}: {reason}")]
    Upstream { addr: String, reason: String },
    /// Postgres refused (too many clients, no such database, shutting
    /// down...): its ErrorResponse goes to the client unchanged.
    #[error("PostgreSQL refused the connection: {}", protocol::error_summary(.0.clone()))]
    Postgres(BytesMut),
    #[error("could not set the tenant context: {0}")]
    Injection(String),
    /// pg_tenant refused the context for this login (42501 from
    /// set_context: not among the tenant's login_roles, superuser...).
    #[error("{0}")]
    ContextRefused(String),
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error("PostgreSQL closed the connection")]
    ServerGone,
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

impl From<ReadError> for BackendError {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::Frame(f) => BackendError::Frame(f),
            ReadError::Io(i) => BackendError::Io(i),
        }
    }
}

pub struct Backend {
    pub stream: Stream,
    /// Bytes read from Postgres and not yet relayed.
    pub buf: BytesMut,
    /// Its BackendKeyData (pid, secret key), once PostAuth has read it.
    pub key: Option<(i32, i32)>,
    /// The parameters PostgreSQL reported (ParameterStatus), as of the last
    /// exchange the router itself ran (a pooled client is sent these).
    pub params: Vec<(String, String)>,
    /// When the connection was opened.
    pub opened: std::time::Instant,
    /// The nonce of the last context token signed for this backend.
    nonce: u64,
    /// The tenant whose context the router last set here (pooled backends).
    pub served: Option<String>,
    /// The context and settings it has now (pooled backends; None: none,
    /// after a reset).
    pub context: Option<std::sync::Arc<ContextTag>>,
    /// The named statements it holds (transaction pooling).
    pub statements: crate::pool::prepared::BackendStatements,
}

/// Whose context a pooled backend has: tenant, end user, and the client
/// settings applied with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContextTag {
    pub tenant: String,
    pub subject: Option<(String, String)>,
    pub settings: Vec<(String, String)>,
    /// The sealed context of a database tenant (its catalog row), as the
    /// client's lookup returned it.
    pub document: Option<std::sync::Arc<str>>,
}

impl Backend {
    /// Open a connection to `up` (the main upstream or a named one), with
    /// TLS as its settings say.
    pub async fn connect(cfg: &Config, up: &Upstream) -> Result<Backend, BackendError> {
        let fail = |reason: String| BackendError::Upstream {
            addr: up.address.clone(),
            reason,
        };
        let mut stream = Stream::connect(&up.address, cfg.connect_timeout())
            .await
            .map_err(|e| fail(e.to_string()))?;
        if let Some(tls) = &up.tls {
            let host = crate::tls::upstream_host(&up.address);
            let on =
                tokio::time::timeout(cfg.connect_timeout(), stream.request_tls(tls.clone(), host))
                    .await
                    .map_err(|_| fail("TLS handshake timed out".into()))?
                    .map_err(|e| fail(format!("TLS: {e}")))?;
            if !on && up.tls_mode != crate::tls::UpstreamTls::Prefer {
                return Err(fail(format!(
                    "PostgreSQL does not accept TLS (the TLS mode of upstream \"{}\" requires it)",
                    up.name
                )));
            }
        }
        Ok(Backend {
            stream,
            buf: BytesMut::with_capacity(16 * 1024),
            key: None,
            params: Vec::new(),
            opened: std::time::Instant::now(),
            nonce: 0,
            served: None,
            context: None,
            statements: Default::default(),
        })
    }

    pub async fn send(&mut self, bytes: &[u8]) -> Result<(), BackendError> {
        Ok(self.stream.write_all(bytes).await?)
    }

    /// The next whole message (Postgres is trusted up to the protocol's
    /// own 1 GiB cap).
    pub async fn read_frame(&mut self) -> Result<BytesMut, BackendError> {
        codec::read_frame(&mut self.stream, &mut self.buf, protocol::MAX_MESSAGE_LEN)
            .await?
            .ok_or(BackendError::ServerGone)
    }

    /// PostAuth: read Postgres' messages after AuthenticationOk up to
    /// ReadyForQuery. ParameterStatus, BackendKeyData and notices go into
    /// `out`, and so does the ReadyForQuery (the caller decides when to
    /// send it). An ErrorResponse (too many clients, database does not
    /// exist...) is Postgres' own answer: it reaches the client unchanged.
    pub async fn post_auth(&mut self, out: &mut BytesMut) -> Result<(i32, i32), BackendError> {
        let mut key = None;
        loop {
            let frame = self.read_frame().await?;
            match frame[0] {
                b'S' => {
                    self.note_parameter(&frame);
                    if !protocol::is_pg_tenant_parameter(&frame) {
                        out.extend_from_slice(&frame);
                    }
                }
                b'K' => {
                    if let Some(Message::BackendKeyData(k)) = protocol::typed(&frame) {
                        key = Some((k.process_id(), k.secret_key()));
                    }
                    out.extend_from_slice(&frame);
                }
                b'Z' => {
                    out.extend_from_slice(&frame);
                    self.key = key;
                    return key.ok_or(BackendError::Injection(
                        "PostgreSQL sent no BackendKeyData".into(),
                    ));
                }
                b'E' => return Err(BackendError::Postgres(frame)),
                _ => out.extend_from_slice(&frame),
            }
        }
    }

    /// Whether an idle backend has said something on its own (a FATAL
    /// before it closed: `idle_session_timeout`, a terminated backend, a
    /// shutdown) or closed: checked without waiting, before a pooled
    /// backend is reused.
    pub fn unsolicited(&mut self) -> bool {
        use futures_util::FutureExt;
        use tokio::io::AsyncReadExt;
        let mut probe = [0u8; 1];
        self.stream.read(&mut probe).now_or_never().is_some()
    }

    /// Remember a ParameterStatus.
    pub fn note_parameter(&mut self, frame: &[u8]) {
        if let Some((name, value)) = protocol::parameter_status(frame) {
            match self.params.iter_mut().find(|(n, _)| *n == name) {
                Some(p) => p.1 = value,
                None => self.params.push((name, value)),
            }
        }
    }

    /// A nonce for the next context token of this backend: the clock in
    /// microseconds, and always above the last one (two tokens signed in
    /// the same microsecond must still grow).
    pub fn next_nonce(&mut self) -> u64 {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or(1);
        self.nonce = now.max(self.nonce + 1);
        self.nonce
    }

    /// Send `req` (the router's own messages, ending in `readies`
    /// ReadyForQuery answers) and read until the last ReadyForQuery.
    /// ParameterStatus is remembered; returns the first ErrorResponse, if
    /// any, and the last transaction status.
    ///
    /// Without an error, the answers must be exactly those `req` asks for
    /// (`Answers::of`): a ParseComplete per Parse, a BindComplete per
    /// Bind, one row and one CommandComplete per Execute (the router's own
    /// statements each return one row), one CommandComplete per Query and
    /// nothing else but notices, reports and notifications. Anything more
    /// (an answer meant for a client, still on its way) fails the exchange,
    /// and the backend is closed: it never serves anyone again.
    ///
    /// The request ends with a batch of the router's own that echoes a
    /// fresh random nonce (`SELECT $1::text`, one more ReadyForQuery): the
    /// last row must be that nonce, which nothing a client sent earlier can
    /// know. Its answers are not part of what the caller sees.
    pub async fn exchange(
        &mut self,
        req: &[u8],
        readies: usize,
    ) -> Result<(Option<BytesMut>, u8), BackendError> {
        let nonce = fresh_nonce();
        let mut full = BytesMut::with_capacity(req.len() + 64);
        full.extend_from_slice(req);
        postgres_protocol::message::frontend::parse("", "SELECT $1::text", [25u32], &mut full)
            .map_err(|e| BackendError::Injection(e.to_string()))?;
        bind_execute(&[0], &[&nonce], &mut full)?;
        postgres_protocol::message::frontend::sync(&mut full);
        self.send(&full).await?;
        let expected = Answers::of(&full, readies + 1);
        let mut seen = Answers::default();
        let mut failure = None;
        let mut last_row = BytesMut::new();
        let mut status = b'I';
        let mut left = readies + 1;
        loop {
            let frame = self.read_frame().await?;
            match frame[0] {
                b'E' if failure.is_none() => failure = Some(frame),
                b'E' => {}
                b'S' => self.note_parameter(&frame),
                b'N' | b'A' => {}
                b'Z' => {
                    seen.ready += 1;
                    left -= 1;
                    if left == 1 {
                        // The caller's last ReadyForQuery.
                        status = frame.get(5).copied().unwrap_or(b'I');
                    }
                    if left == 0 {
                        let echoed = last_row.get(11..).is_some_and(|v| v == nonce.as_bytes());
                        if failure.is_none() && (seen != expected || !echoed) {
                            return Err(BackendError::Injection(format!(
                                "the backend's answers were not those of the router's own request (expected {expected:?}, got {seen:?}, nonce echoed: {echoed})"
                            )));
                        }
                        return Ok((failure, status));
                    }
                }
                b'D' => {
                    seen.note(b'D');
                    last_row = frame;
                }
                tag => seen.note(tag),
            }
        }
    }

    /// Injecting: `SELECT tenant.set_context($1, $2)` with bind parameters,
    /// in one round trip; replace the held ReadyForQuery in `out` with the
    /// one that follows. Any error fails the connection.
    pub async fn inject(
        &mut self,
        out: &mut BytesMut,
        tenant: &str,
        token: &str,
        subject: Option<(&str, &str)>,
        document: Option<&str>,
    ) -> Result<(), BackendError> {
        let mut req = BytesMut::with_capacity(256);
        context_request(tenant, token, subject, document, &mut req)?;
        postgres_protocol::message::frontend::sync(&mut req);
        self.send(&req).await?;
        // Drop the held ReadyForQuery (the last frame in `out`).
        out.truncate(out.len().saturating_sub(6));
        let mut failure = None;
        loop {
            let frame = self.read_frame().await?;
            match frame[0] {
                b'E' => failure = Some(frame),
                b'S' if !protocol::is_pg_tenant_parameter(&frame) => out.extend_from_slice(&frame),
                b'Z' => {
                    if let Some(f) = failure {
                        // 42501: set_context refuses this session (its
                        // login role may not use the tenant, or bypasses
                        // row level security): an answer for the client.
                        let (code, msg) = protocol::error_fields(&f);
                        if code == "42501" {
                            return Err(BackendError::ContextRefused(msg));
                        }
                        // 55000: the tenant does not live on this server
                        // (a fence, or the catalog places it elsewhere):
                        // PostgreSQL's answer, with its hint to reconnect,
                        // goes to the client as it is.
                        if code == "55000" {
                            return Err(BackendError::Postgres(f));
                        }
                        return Err(BackendError::Injection(protocol::error_summary(f)));
                    }
                    out.extend_from_slice(&frame);
                    return Ok(());
                }
                // ParseComplete, BindComplete, DataRow, CommandComplete, notices.
                _ => {}
            }
        }
    }
}

/// What a context token for `tenant` signs: the tenant, with the subject
/// and claims of a token login, and the sealed context `document` of a
/// database tenant.
pub fn context_action<'a>(
    tenant: &'a str,
    subject: Option<(&'a str, &'a str)>,
    document: Option<&'a str>,
) -> pg_tenant_token::Action<'a> {
    use pg_tenant_token::Action;
    match (subject, document) {
        (None, None) => Action::Set(tenant),
        (Some((subject, claims)), None) => Action::SetSubject {
            tenant,
            subject,
            claims,
        },
        (None, Some(document)) => Action::SetSealed { tenant, document },
        (Some((subject, claims)), Some(document)) => Action::SetSubjectSealed {
            tenant,
            subject,
            claims,
            document,
        },
    }
}

/// Parse, Bind and Execute of `SELECT tenant.set_context(...)` for
/// `tenant` (and the subject and claims of a token login), or of
/// `tenant.set_context_sealed(...)` with the `document` of a database
/// tenant, with bind parameters; the caller adds the Sync.
pub fn context_request(
    tenant: &str,
    token: &str,
    subject: Option<(&str, &str)>,
    document: Option<&str>,
    req: &mut BytesMut,
) -> Result<(), BackendError> {
    if let Some(document) = document {
        return sealed_request(tenant, token, subject, document, req);
    }
    use postgres_protocol::message::frontend;
    let fail = |e: std::io::Error| BackendError::Injection(e.to_string());
    // Text parameters are read in the client's client_encoding; the
    // subject and the claims were signed as UTF-8, so they travel as
    // bytea (never converted) and are decoded as UTF-8 on the server.
    // (binary format: a bytea parameter in text format would be read in
    // client_encoding too).
    type Shape = (&'static str, &'static [u32], &'static [i16]);
    let ((sql, types, formats), values): (Shape, Vec<&str>) = match subject {
        None => (
            ("SELECT tenant.set_context($1, $2)", &[25, 25], &[0]),
            vec![tenant, token],
        ),
        Some((subject, claims)) => (
            (
                "SELECT tenant.set_context($1, $2, pg_catalog.convert_from($3, 'UTF8'), \
                 pg_catalog.convert_from($4, 'UTF8'))",
                &[25, 25, 17, 17],
                &[0, 0, 1, 1],
            ),
            vec![tenant, token, subject, claims],
        ),
    };
    frontend::parse("", sql, types.iter().copied(), req).map_err(fail)?;
    bind_execute(formats, &values, req)
}

/// `context_request` of a database tenant: `tenant.set_context_sealed`,
/// the document (like the subject and claims) as UTF-8 bytea.
fn sealed_request(
    tenant: &str,
    token: &str,
    subject: Option<(&str, &str)>,
    document: &str,
    req: &mut BytesMut,
) -> Result<(), BackendError> {
    use postgres_protocol::message::frontend;
    let fail = |e: std::io::Error| BackendError::Injection(e.to_string());
    match subject {
        None => {
            frontend::parse(
                "",
                "SELECT tenant.set_context_sealed($1, $2, pg_catalog.convert_from($3, 'UTF8'))",
                [25u32, 25, 17],
                req,
            )
            .map_err(fail)?;
            bind_execute(&[0, 0, 1], &[tenant, token, document], req)
        }
        Some((subject, claims)) => {
            frontend::parse(
                "",
                "SELECT tenant.set_context_sealed($1, $2, pg_catalog.convert_from($3, 'UTF8'), \
                 pg_catalog.convert_from($4, 'UTF8'), pg_catalog.convert_from($5, 'UTF8'))",
                [25u32, 25, 17, 17, 17],
                req,
            )
            .map_err(fail)?;
            bind_execute(
                &[0, 0, 1, 1, 1],
                &[tenant, token, subject, claims, document],
                req,
            )
        }
    }
}

/// Bind (unnamed statement and portal, `values` as they are, in the given
/// formats) and Execute.
pub fn bind_execute(
    formats: &[i16],
    values: &[&str],
    req: &mut BytesMut,
) -> Result<(), BackendError> {
    use postgres_protocol::message::frontend;
    use postgres_protocol::IsNull;
    frontend::bind(
        "",
        "",
        formats.iter().copied(),
        values.iter().copied(),
        |v, buf| {
            buf.put_slice(v.as_bytes());
            Ok(IsNull::No)
        },
        [0i16],
        req,
    )
    .map_err(|_| BackendError::Injection("cannot encode Bind".into()))?;
    frontend::execute("", 0, req).map_err(|e| BackendError::Injection(e.to_string()))
}

/// How many answers of each kind a request of the router's gets.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Answers {
    parsed: usize,
    bound: usize,
    rows: usize,
    completed: usize,
    ready: usize,
    /// Anything else (a RowDescription, an empty query, COPY...): never an
    /// answer to the router's own requests.
    other: usize,
}

impl Answers {
    /// What `req` (the router's messages) asks for.
    pub fn of(req: &[u8], readies: usize) -> Answers {
        let mut a = Answers {
            ready: readies,
            ..Answers::default()
        };
        let mut rest = req;
        while rest.len() >= 5 {
            let len = u32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]) as usize;
            match rest[0] {
                b'P' => a.parsed += 1,
                b'B' => a.bound += 1,
                b'E' => {
                    a.rows += 1;
                    a.completed += 1;
                }
                b'Q' => a.completed += 1,
                _ => {}
            }
            rest = rest.get(1 + len..).unwrap_or_default();
        }
        a
    }

    fn note(&mut self, tag: u8) {
        match tag {
            b'1' => self.parsed += 1,
            b'2' => self.bound += 1,
            b'D' => self.rows += 1,
            b'C' => self.completed += 1,
            _ => self.other += 1,
        }
    }
}

/// A fresh random nonce for an exchange (hex).
fn fresh_nonce() -> String {
    hex::encode(crate::random::bytes::<12>().unwrap_or([9; 12]))
}

#[cfg(test)]
mod answers_tests {
    use super::*;

    #[test]
    fn the_answers_a_request_asks_for_are_counted_from_its_messages() {
        let mut req = crate::protocol::query("DISCARD ALL");
        postgres_protocol::message::frontend::parse("", "SELECT 1", [], &mut req).unwrap();
        bind_execute(&[0], &[], &mut req).unwrap();
        postgres_protocol::message::frontend::sync(&mut req);
        let want = Answers::of(&req, 2);
        let mut seen = Answers::default();
        for t in *b"C12DC" {
            seen.note(t);
        }
        seen.ready = 2;
        assert_eq!(seen, want);
        // A client's answer still on its way is one too many.
        seen.note(b'T');
        assert_ne!(seen, want);
    }
}
