//! The router's admin API as a tool calls it (`tenants move`: pause,
//! resume, the row the router holds): HTTP/1.1 over one TCP connection,
//! `Authorization: Bearer`, a JSON answer.

use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("admin API at {addr}: {reason}")]
    Unreachable { addr: String, reason: String },
    #[error("admin API {method} {path}: HTTP {status}: {body}")]
    Status {
        method: &'static str,
        path: String,
        status: u16,
        body: String,
    },
    #[error("admin API {path}: the answer is not JSON: {0}", path = .1)]
    Body(String, String),
}

/// Where the admin API is and its token ("" none).
#[derive(Debug, Clone)]
pub struct AdminApi {
    pub addr: String,
    pub token: String,
}

/// Longest answer read (a tenant's row is a few KiB).
const MAX_ANSWER: usize = 1 << 20;

impl AdminApi {
    pub async fn post(&self, path: &str, timeout: Duration) -> Result<serde_json::Value, ApiError> {
        self.call("POST", path, timeout).await
    }

    pub async fn get(&self, path: &str) -> Result<serde_json::Value, ApiError> {
        self.call("GET", path, Duration::from_secs(10)).await
    }

    async fn call(
        &self,
        method: &'static str,
        path: &str,
        timeout: Duration,
    ) -> Result<serde_json::Value, ApiError> {
        let unreachable = |reason: String| ApiError::Unreachable {
            addr: self.addr.clone(),
            reason,
        };
        let auth = if self.token.is_empty() {
            String::new()
        } else {
            format!("Authorization: Bearer {}\r\n", self.token)
        };
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\n{auth}Content-Length: 0\r\nConnection: close\r\n\r\n",
            self.addr
        );
        let exchange = async {
            let mut s = TcpStream::connect(&self.addr).await?;
            s.write_all(request.as_bytes()).await?;
            let mut answer = Vec::new();
            (&mut s)
                .take(MAX_ANSWER as u64)
                .read_to_end(&mut answer)
                .await?;
            Ok::<Vec<u8>, std::io::Error>(answer)
        };
        let answer = match tokio::time::timeout(timeout + Duration::from_secs(5), exchange).await {
            Ok(Ok(a)) => a,
            Ok(Err(e)) => return Err(unreachable(e.to_string())),
            Err(_) => return Err(unreachable("no answer in time".into())),
        };
        let text = String::from_utf8_lossy(&answer);
        let (head, body) = text
            .split_once("\r\n\r\n")
            .ok_or_else(|| unreachable("not an HTTP answer".into()))?;
        let status: u16 = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| unreachable("not an HTTP answer".into()))?;
        let body = if head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
        {
            dechunk(body)
        } else {
            body.to_owned()
        };
        if status != 200 {
            return Err(ApiError::Status {
                method,
                path: path.to_owned(),
                status,
                body,
            });
        }
        serde_json::from_str(&body).map_err(|e| ApiError::Body(e.to_string(), path.to_owned()))
    }
}

/// A chunked body's data.
fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || after.len() < n {
            break;
        }
        out.push_str(&after[..n]);
        rest = after[n..].trim_start_matches("\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn dechunk_joins_the_chunks() {
        assert_eq!(
            super::dechunk("3\r\n{\"a\r\n4\r\n\":1}\r\n0\r\n\r\n"),
            "{\"a\":1}"
        );
    }
}
