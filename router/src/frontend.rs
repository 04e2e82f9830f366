//! The client side of a session: its stream, what it sent that is not
//! relayed yet, and the startup phase (SSLRequest and direct TLS,
//! GSSENCRequest, CancelRequest, StartupMessage). Fails with
//! `FrontendError`.

use crate::codec::{self, ReadError};
use crate::protocol::{self, FrameError, Startup};
use crate::tls::{ClientTls, TlsSettings, ALPN_POSTGRESQL};
use crate::transport::Stream;
use bytes::BytesMut;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::rustls;

/// Why the client side failed (the session turns each into its
/// `SessionError` of the same words).
#[derive(Debug, thiserror::Error)]
pub enum FrontendError {
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error("tenant-router accepts only TLS connections (tls.client_tls = require): connect with sslmode=require or stronger")]
    TlsRequired,
    #[error("TLS: {0}")]
    Tls(String),
    /// A direct TLS handshake while client TLS is disabled: the client
    /// speaks TLS, so it cannot read a FATAL; the connection is closed.
    #[error("direct TLS connection refused: tls.client_tls = disable")]
    DirectTlsRefused,
    #[error("client closed the connection")]
    ClientGone,
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

impl From<ReadError> for FrontendError {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::Frame(f) => FrontendError::Frame(f),
            ReadError::Io(i) => FrontendError::Io(i),
        }
    }
}

/// The first byte of a TLS handshake record (a ClientHello).
const TLS_HANDSHAKE: u8 = 0x16;

/// What the startup phase produced.
pub enum Opening {
    Cancel { pid: i32, key: i32 },
    Startup(Vec<(String, String)>),
}

/// The client's TLS, once terminated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsInfo {
    /// "1.2" or "1.3".
    pub version: &'static str,
    /// The server name the client asked for (SNI), lower case.
    pub sni: Option<String>,
    /// Started with a direct TLS handshake (no SSLRequest).
    pub direct: bool,
}

pub struct Frontend {
    pub stream: Stream,
    /// Bytes read from the client and not yet relayed.
    pub buf: BytesMut,
    pub tls: Option<Box<TlsInfo>>,
}

impl Frontend {
    pub fn new(stream: Stream) -> Frontend {
        Frontend {
            stream,
            // Startup and authentication messages are small; the relay
            // grows the buffer when a conversation needs more.
            buf: BytesMut::with_capacity(1024),
            tls: None,
        }
    }

    /// The first packet that is not an encryption request. TLS is started
    /// by an SSLRequest (answered 'S' when client TLS is on, else 'N') or
    /// by a direct TLS handshake (PostgreSQL 17 `sslnegotiation=direct`,
    /// ALPN `postgresql` required). GSSENCRequest always gets 'N'.
    pub async fn read_opening(&mut self, tls: &TlsSettings) -> Result<Opening, FrontendError> {
        if self.stream.peek_first().await? == Some(TLS_HANDSHAKE) {
            let cfg = tls.server.clone().ok_or(FrontendError::DirectTlsRefused)?;
            self.start_tls(cfg, true).await?;
            if self.stream.tls_state().and_then(|t| t.alpn).as_deref() != Some(ALPN_POSTGRESQL) {
                return Err(FrontendError::Tls(
                    "direct TLS connections must negotiate the ALPN protocol \"postgresql\"".into(),
                ));
            }
        }
        loop {
            match protocol::read_startup(&mut self.buf)? {
                Some(Startup::Ssl) => {
                    if self.tls.is_some() {
                        return Err(FrontendError::Tls("SSLRequest inside TLS".into()));
                    }
                    match tls.server.clone() {
                        Some(cfg) => {
                            self.stream.write_all(b"S").await?;
                            // Bytes sent after the SSLRequest and before the
                            // handshake would be read as if encrypted
                            // (CVE-2021-23222): refuse them.
                            if !self.buf.is_empty() {
                                return Err(FrontendError::Tls(
                                    "data received after SSLRequest before the TLS handshake"
                                        .into(),
                                ));
                            }
                            self.start_tls(cfg, false).await?;
                        }
                        None => self.stream.write_all(b"N").await?,
                    }
                }
                Some(Startup::GssEnc) => self.stream.write_all(b"N").await?,
                Some(Startup::Cancel { pid, key }) => return Ok(Opening::Cancel { pid, key }),
                Some(Startup::Startup { params }) => {
                    if self.tls.is_none() && tls.client_mode() == ClientTls::Require {
                        return Err(FrontendError::TlsRequired);
                    }
                    return Ok(Opening::Startup(params));
                }
                None => {
                    if self.stream.read_buf(&mut self.buf).await? == 0 {
                        return Err(FrontendError::ClientGone);
                    }
                }
            }
        }
    }

    async fn start_tls(
        &mut self,
        cfg: Arc<rustls::ServerConfig>,
        direct: bool,
    ) -> Result<(), FrontendError> {
        self.stream
            .accept_tls(cfg)
            .await
            .map_err(|e| FrontendError::Tls(format!("handshake failed: {e}")))?;
        if let Some(t) = self.stream.tls_state() {
            self.tls = Some(Box::new(TlsInfo {
                version: t.version,
                sni: t.sni,
                direct,
            }));
        }
        Ok(())
    }

    /// One whole message of at most `max` bytes.
    pub async fn read_frame(&mut self, max: usize) -> Result<BytesMut, FrontendError> {
        codec::read_frame(&mut self.stream, &mut self.buf, max)
            .await?
            .ok_or(FrontendError::ClientGone)
    }

    pub async fn send(&mut self, bytes: &[u8]) -> Result<(), FrontendError> {
        Ok(self.stream.write_all(bytes).await?)
    }
}
