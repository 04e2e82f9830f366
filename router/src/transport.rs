//! The one stream type every socket goes through: a client connection, a
//! server connection, a cancel request. Plain TCP, or TLS (rustls) ended at
//! the router; nothing above this module sees the difference.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::rustls;

/// What a client's TLS handshake settled.
#[derive(Debug, Clone)]
pub struct TlsState {
    /// "1.2" or "1.3".
    pub version: &'static str,
    /// The server name the client asked for (SNI), lower case.
    pub sni: Option<String>,
    /// The ALPN protocol agreed on.
    pub alpn: Option<Vec<u8>>,
}

/// A connection to a client or to PostgreSQL.
#[derive(Debug)]
pub enum Stream {
    Tcp(TcpStream),
    /// A client's TLS, terminated here.
    ServerTls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
    /// TLS to PostgreSQL, originated here.
    ClientTls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
    /// Left behind while a TCP stream is being upgraded; every I/O fails.
    Upgrading,
}

fn upgrading() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "stream is being upgraded")
}

macro_rules! each {
    ($self:expr, $s:ident => $e:expr) => {
        match $self {
            Stream::Tcp($s) => $e,
            Stream::ServerTls($s) => $e,
            Stream::ClientTls($s) => $e,
            Stream::Upgrading => Poll::Ready(Err(upgrading())),
        }
    };
}

impl Stream {
    /// Wrap an accepted TCP connection (Nagle off: the protocol is
    /// request/response).
    pub fn tcp(s: TcpStream) -> Stream {
        let _ = s.set_nodelay(true);
        Stream::Tcp(s)
    }

    /// Open a connection to `addr` (host:port) within `timeout`.
    pub async fn connect(addr: &str, timeout: Duration) -> io::Result<Stream> {
        let s = tokio::time::timeout(timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "timed out"))??;
        Ok(Stream::tcp(s))
    }

    /// Terminate a client's TLS on this (TCP) stream. The TLS version and
    /// the server name it asked for are read from the result.
    pub async fn accept_tls(&mut self, cfg: Arc<rustls::ServerConfig>) -> io::Result<()> {
        let Stream::Tcp(tcp) = std::mem::replace(self, Stream::Upgrading) else {
            return Err(io::Error::other(
                "TLS requested on a stream that is not plain TCP",
            ));
        };
        let tls = tokio_rustls::TlsAcceptor::from(cfg).accept(tcp).await?;
        *self = Stream::ServerTls(Box::new(tls));
        Ok(())
    }

    /// Ask PostgreSQL for TLS (SSLRequest) on this fresh TCP stream and,
    /// when it answers 'S', do the handshake for `host`. Returns false when
    /// it answered 'N' (the stream stays cleartext).
    pub async fn request_tls(
        &mut self,
        cfg: Arc<rustls::ClientConfig>,
        host: &str,
    ) -> io::Result<bool> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let Stream::Tcp(tcp) = self else {
            return Err(io::Error::other(
                "TLS requested on a stream that is not plain TCP",
            ));
        };
        let mut req = [0u8; 8];
        req[..4].copy_from_slice(&8i32.to_be_bytes());
        req[4..].copy_from_slice(&80877103i32.to_be_bytes());
        tcp.write_all(&req).await?;
        match tcp.read_u8().await? {
            b'N' => return Ok(false),
            b'S' => {}
            other => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("unexpected answer {other:#04x} to SSLRequest"),
                ))
            }
        }
        let name = rustls_pki_types::ServerName::try_from(host.to_string())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let Stream::Tcp(tcp) = std::mem::replace(self, Stream::Upgrading) else {
            return Err(io::Error::other("stream changed during the SSLRequest"));
        };
        let tls = tokio_rustls::TlsConnector::from(cfg)
            .connect(name, tcp)
            .await?;
        *self = Stream::ClientTls(Box::new(tls));
        Ok(true)
    }

    /// Plain TCP: wait until the socket can be read (data, EOF or error),
    /// holding no buffer. None on TLS, whose readiness says nothing about
    /// the plaintext already decrypted: read it instead.
    pub fn poll_read_ready(&self, cx: &mut Context<'_>) -> Option<Poll<io::Result<()>>> {
        match self {
            Stream::Tcp(tcp) => Some(tcp.poll_read_ready(cx)),
            _ => None,
        }
    }

    /// The first byte the peer sent, without consuming it (None at EOF or
    /// on a stream that is not plain TCP).
    pub async fn peek_first(&self) -> io::Result<Option<u8>> {
        let Stream::Tcp(tcp) = self else {
            return Ok(None);
        };
        let mut b = [0u8; 1];
        Ok((tcp.peek(&mut b).await? == 1).then_some(b[0]))
    }

    /// Whether the peer is on this host (a loopback address).
    pub fn peer_is_loopback(&self) -> bool {
        let addr = match self {
            Stream::Tcp(s) => s.peer_addr(),
            Stream::ServerTls(t) => t.get_ref().0.peer_addr(),
            Stream::ClientTls(t) => t.get_ref().0.peer_addr(),
            Stream::Upgrading => return false,
        };
        addr.is_ok_and(|a| a.ip().is_loopback())
    }

    pub fn is_tls(&self) -> bool {
        matches!(self, Stream::ServerTls(_))
    }

    /// What a client TLS stream negotiated.
    pub fn tls_state(&self) -> Option<TlsState> {
        match self {
            Stream::ServerTls(t) => {
                let c = t.get_ref().1;
                Some(TlsState {
                    version: crate::tls::version_label(c.protocol_version()),
                    sni: c.server_name().map(|s| s.to_ascii_lowercase()),
                    alpn: c.alpn_protocol().map(|a| a.to_vec()),
                })
            }
            _ => None,
        }
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        each!(self.get_mut(), s => Pin::new(s).poll_read(cx, buf))
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        each!(self.get_mut(), s => Pin::new(s).poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        each!(self.get_mut(), s => Pin::new(s).poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Tcp(s) => s.is_write_vectored(),
            Stream::ServerTls(s) => s.is_write_vectored(),
            Stream::ClientTls(s) => s.is_write_vectored(),
            Stream::Upgrading => false,
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        each!(self.get_mut(), s => Pin::new(s).poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        each!(self.get_mut(), s => Pin::new(s).poll_shutdown(cx))
    }
}
