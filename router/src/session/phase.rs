//! What every part of a session shares: where the connection stands
//! (`Phase`), its byte counts, the FATALs the router closes a session
//! with, and `Deadline::within`, which bounds each handshake step by the
//! startup deadline.

use crate::error::SessionError;
use crate::protocol::{self, Severity};
use bytes::BytesMut;
use std::future::Future;
use std::time::Duration;

/// The phases of a connection (docs/src/development/reading-the-code.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    WaitStartup,
    Authenticating,
    PostAuth,
    Injecting,
    Transparent,
    /// SIGTERM: relaying until the session is idle.
    Draining,
}

/// Byte counts for the close log line.
#[derive(Debug, Default, Clone, Copy)]
pub struct Traffic {
    pub from_client: u64,
    pub to_client: u64,
}

/// The FATALs the router closes a session with: (SQLSTATE, why).
pub type Fatal = (&'static str, &'static str);

pub const SHUTTING_DOWN: Fatal = ("57P01", "tenant-router is shutting down");
pub const KICKED: Fatal = (
    "57P01",
    "an administrator disconnected this tenant's connections",
);
pub const EXPIRED: Fatal = ("28000", "the JWT this session logged in with has expired");
pub const OVERFLOW: Fatal = (
    "54000",
    "more than 100000 Parse and Close messages wait for their answers (send Sync): with transaction pooling tenant-router tracks each of them",
);
pub const LOST: Fatal = (
    "08P01",
    "a COPY failed with a Sync sent before its data, and which answers follow cannot be told: with transaction pooling the session ends (send Sync after the COPY's data, not before)",
);

pub const SERVER_LOST: Fatal = (
    "08006",
    "the connection to the server was lost: PostgreSQL closed it without an error (the server or the network to it went away)",
);

pub const UNRESPONSIVE: Fatal = (
    "08006",
    "the server did not answer within 5 s of the router's cancel of a statement over the tenant's max_query_ms (the server, or the network to it, has stalled)",
);

pub const UNREAD: Fatal = (
    "57014",
    "the client did not read the answer of a statement canceled over the tenant's max_query_ms within 5 s of the cancel (PostgreSQL finishes a cancel only once the client takes what it sent)",
);

/// The ErrorResponse a session is closed with.
pub fn fatal_frame((code, why): Fatal) -> BytesMut {
    protocol::error_response(
        Severity::Fatal,
        code,
        &format!("terminating connection: {why}"),
    )
}

/// Longest wait, when a session ends, for PostgreSQL to close its backend.
pub const BACKEND_EXIT_WAIT: Duration = Duration::from_secs(5);

/// Time a client over `max_client_connections` has to say what it wants
/// (a cancel request is still served) before it is refused.
pub const OVER_CAPACITY_GRACE: Duration = Duration::from_secs(1);

/// When startup and authentication must be over (`startup_timeout_ms`).
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    pub at: tokio::time::Instant,
    /// The configured limit, for the error.
    limit_ms: u64,
}

impl Deadline {
    pub fn new(at: tokio::time::Instant, limit_ms: u64) -> Deadline {
        Deadline { at, limit_ms }
    }

    /// `step`'s result, or `StartupTimeout` when the deadline passes first.
    pub async fn within<T, E>(
        self,
        step: impl Future<Output = Result<T, E>>,
    ) -> Result<T, SessionError>
    where
        SessionError: From<E>,
    {
        match tokio::time::timeout_at(self.at, step).await {
            Ok(r) => r.map_err(SessionError::from),
            Err(_) => Err(SessionError::StartupTimeout(self.limit_ms)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::{sleep, Instant};

    #[tokio::test(start_paused = true)]
    async fn a_step_past_the_startup_deadline_is_a_startup_timeout() {
        let deadline = Deadline::new(Instant::now() + Duration::from_millis(100), 100);
        let slow = async {
            sleep(Duration::from_secs(1)).await;
            Ok::<(), std::io::Error>(())
        };
        assert!(matches!(
            deadline.within(slow).await,
            Err(SessionError::StartupTimeout(100))
        ));
        // Within it, the step's own result, its error converted.
        let fast = Deadline::new(Instant::now() + Duration::from_millis(100), 100);
        assert_eq!(
            fast.within(async { Ok::<u8, std::io::Error>(7) })
                .await
                .ok(),
            Some(7)
        );
        let failed = fast.within(async { Err::<u8, _>(std::io::Error::other("reset")) });
        assert!(matches!(failed.await, Err(SessionError::Io(_))));
    }

    #[test]
    fn the_unresponsive_fatal_names_the_wait_it_gave() {
        let secs = crate::limits::watch::CANCEL_ANSWER_WAIT.as_secs();
        assert!(UNRESPONSIVE.1.contains(&format!("within {secs} s ")));
        assert!(UNREAD.1.contains(&format!("within {secs} s ")));
    }
}
