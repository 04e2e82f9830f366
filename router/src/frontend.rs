//! The client side of a session: its stream, what it sent that is not
//! relayed yet, and the startup phase (SSLRequest, GSSENCRequest,
//! CancelRequest, StartupMessage).

use crate::codec;
use crate::error::SessionError;
use crate::protocol::{self, Startup};
use crate::transport::Stream;
use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What the startup phase produced.
pub enum Opening {
    Cancel { pid: i32, key: i32 },
    Startup(Vec<(String, String)>),
}

pub struct Frontend {
    pub stream: Stream,
    /// Bytes read from the client and not yet relayed.
    pub buf: BytesMut,
}

impl Frontend {
    pub fn new(stream: Stream) -> Frontend {
        Frontend {
            stream,
            buf: BytesMut::with_capacity(16 * 1024),
        }
    }

    /// The first packet that is not an encryption request (refused: no TLS
    /// here yet, the client may go on in clear text).
    pub async fn read_opening(&mut self) -> Result<Opening, SessionError> {
        loop {
            match protocol::read_startup(&mut self.buf)? {
                Some(Startup::Ssl) | Some(Startup::GssEnc) => self.stream.write_all(b"N").await?,
                Some(Startup::Cancel { pid, key }) => return Ok(Opening::Cancel { pid, key }),
                Some(Startup::Startup { params }) => return Ok(Opening::Startup(params)),
                None => {
                    if self.stream.read_buf(&mut self.buf).await? == 0 {
                        return Err(SessionError::ClientGone);
                    }
                }
            }
        }
    }

    /// One whole message of at most `max` bytes.
    pub async fn read_frame(&mut self, max: usize) -> Result<BytesMut, SessionError> {
        codec::read_frame(&mut self.stream, &mut self.buf, max)
            .await?
            .ok_or(SessionError::ClientGone)
    }

    pub async fn send(&mut self, bytes: &[u8]) -> Result<(), SessionError> {
        Ok(self.stream.write_all(bytes).await?)
    }
}
