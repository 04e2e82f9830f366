//! Where one connection's conversation stands, from the frames that pass
//! in both directions: the single source of "idle", "in transaction" and
//! "at rest" for drain, limits and (later) pooling.
//!
//! Every client message that makes Postgres run something is a *unit*: a
//! simple Query, a Bind (binding plans the statement, and planning runs
//! immutable functions on constants), an Execute, a FunctionCall. A Sync
//! is a unit too (it ends an extended-protocol batch, commits an implicit
//! transaction and is answered by ReadyForQuery). Units wait in order for
//! the server's answer:
//!
//! ```text
//! Query, FunctionCall  ... ReadyForQuery            (errors: ErrorResponse, then ReadyForQuery)
//! Bind                 ... BindComplete
//! Execute              ... CommandComplete | EmptyQueryResponse | PortalSuspended
//! Bind, Execute        ... ErrorResponse: this and every later unit up to the next
//!                          Sync are discarded by Postgres (it skips until Sync)
//! Sync                 ... ReadyForQuery
//! ```
//!
//! COPY has sub-states (`CopyState`): CopyInResponse, CopyOutResponse and
//! CopyBothResponse start them; CommandComplete, ErrorResponse or
//! ReadyForQuery end them.

use crate::codec::FrameView;
use std::collections::VecDeque;
use std::time::Instant;

/// Transaction status of the last ReadyForQuery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxStatus {
    Idle,
    InTransaction,
    Failed,
}

/// A client message Postgres answers on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Query,
    Bind,
    Execute,
    Call,
    Sync,
}

/// COPY sub-state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyState {
    None,
    /// The client sends CopyData.
    In,
    /// The server sends CopyData.
    Out,
    Both,
}

/// A unit sent and not yet answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pending {
    pub unit: Unit,
    /// Sequence number, unique within the connection.
    pub seq: u64,
    /// When it was sent.
    pub sent: Instant,
    /// A limit refused it: Postgres got a stand-in that fails.
    pub denied: bool,
    /// COPY messages (CopyData, CopyDone, CopyFail) the client had sent
    /// before it: a Sync sent after a COPY's start with none between is
    /// ignored by PostgreSQL.
    pub copy_mark: u64,
    /// CopyDone and CopyFail messages the client had sent before it.
    pub copy_ends: u64,
}

/// What a server frame meant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerEvent {
    /// DataRow.
    Row,
    /// CopyData of a COPY TO STDOUT (or COPY BOTH).
    CopyData,
    /// The server's CopyDone.
    CopyDone,
    /// CommandComplete, EmptyQueryResponse or PortalSuspended; `Some` when
    /// it answered an Execute.
    StatementDone(Option<Pending>),
    /// BindComplete, with the Bind it answered.
    Bound(Option<Pending>),
    /// ErrorResponse, with the unit it failed (`None`: a Parse, Describe...
    /// with no unit waiting, or an error outside any unit; a Parse that
    /// fails before a waiting Bind or Execute is reported as theirs, which
    /// Postgres skips anyway).
    Error(Option<Pending>),
    /// ReadyForQuery, with the Query, FunctionCall or Sync it answered.
    Ready(Option<Pending>),
    Other,
}

impl ServerEvent {
    /// The unit this frame answered or failed, if it was one's answer.
    pub fn unit(&self) -> Option<Pending> {
        match *self {
            ServerEvent::StatementDone(p)
            | ServerEvent::Bound(p)
            | ServerEvent::Error(p)
            | ServerEvent::Ready(p) => p,
            _ => None,
        }
    }
}

#[derive(Debug)]
pub struct Conversation {
    pending: VecDeque<Pending>,
    next_seq: u64,
    /// When the first pending unit became first: a unit's clock starts
    /// when the ones before it are answered.
    front_since: Instant,
    /// Extended-protocol messages sent since the last Sync.
    open_batch: bool,
    /// Postgres discards everything but Sync (an extended-protocol
    /// message failed and no Sync was sent since).
    skipping: bool,
    status: TxStatus,
    copy: CopyState,
    terminated: bool,
    /// The client sent a message type that is not valid after startup:
    /// PostgreSQL ends the session; the backend is never at rest again.
    broken: bool,
    /// COPY messages (CopyData, CopyDone, CopyFail) sent so far.
    copy_mark: u64,
    /// CopyDone and CopyFail messages sent so far.
    copy_ends: u64,
    /// The client sent CopyData and no CopyDone or CopyFail since.
    copying: bool,
    /// PostgreSQL started a COPY IN (CopyInResponse) whose CopyDone or
    /// CopyFail the client has not sent yet.
    copy_in_open: bool,
    /// Syncs PostgreSQL ignored (sent during COPY IN) not yet taken.
    ignored_syncs: u64,
    /// A COPY IN failed with Syncs pending that were sent after its start
    /// and before its data: whether PostgreSQL read them inside the COPY
    /// (ignored) or after it failed (answered) cannot be told. The
    /// answers can no longer be matched to what asked for them.
    lost: bool,
}

impl Default for Conversation {
    fn default() -> Self {
        Conversation {
            pending: VecDeque::new(),
            next_seq: 0,
            front_since: Instant::now(),
            open_batch: false,
            skipping: false,
            status: TxStatus::Idle,
            copy: CopyState::None,
            terminated: false,
            broken: false,
            copy_mark: 0,
            copy_ends: 0,
            copying: false,
            copy_in_open: false,
            ignored_syncs: 0,
            lost: false,
        }
    }
}

impl Conversation {
    /// The unit a client frame starts, if it runs something: Query, Bind,
    /// Execute, FunctionCall. None while Postgres skips until Sync.
    pub fn starts(&self, tag: u8) -> Option<Unit> {
        if self.skipping {
            return None;
        }
        match tag {
            b'Q' => Some(Unit::Query),
            b'B' => Some(Unit::Bind),
            b'E' => Some(Unit::Execute),
            b'F' => Some(Unit::Call),
            _ => None,
        }
    }

    /// A client frame went to Postgres (`denied`: as a failing stand-in).
    pub fn client_sent(&mut self, tag: u8, denied: bool) {
        match tag {
            b'Q' | b'F' if self.skipping => {}
            b'B' | b'E' if self.skipping => self.open_batch = true,
            b'Q' => self.push(Unit::Query, denied),
            b'F' => self.push(Unit::Call, denied),
            b'B' => {
                self.open_batch = true;
                self.push(Unit::Bind, denied);
            }
            b'E' => {
                self.open_batch = true;
                self.push(Unit::Execute, denied);
            }
            b'S' => {
                self.open_batch = false;
                self.skipping = false;
                self.push(Unit::Sync, false);
            }
            b'P' | b'D' | b'C' => self.open_batch = true,
            // Flush runs nothing and opens nothing (psycopg sends one after
            // its pipeline's Sync).
            b'H' => {}
            b'X' => self.terminated = true,
            // CopyData, CopyDone, CopyFail: part of a running unit.
            b'd' => {
                self.copy_mark += 1;
                self.copying = true;
            }
            b'c' | b'f' => {
                self.copy_mark += 1;
                self.copy_ends += 1;
                self.copying = false;
                self.copy_in_open = false;
            }
            // Not a message a client may send now: PostgreSQL answers with
            // a FATAL (later, after what is queued before it).
            _ => self.broken = true,
        }
    }

    fn push(&mut self, unit: Unit, denied: bool) {
        let now = Instant::now();
        if self.pending.is_empty() {
            self.front_since = now;
        }
        self.pending.push_back(Pending {
            unit,
            seq: self.next_seq,
            sent: now,
            denied,
            copy_mark: self.copy_mark,
            copy_ends: self.copy_ends,
        });
        self.next_seq += 1;
    }

    fn pop(&mut self) -> Option<Pending> {
        let p = self.pending.pop_front();
        self.front_since = Instant::now();
        p
    }

    /// A server frame on its way to the client.
    pub fn on_server(&mut self, v: FrameView<'_>) -> ServerEvent {
        match v.tag {
            b'D' => ServerEvent::Row,
            b'd' if matches!(self.copy, CopyState::Out | CopyState::Both) => ServerEvent::CopyData,
            b'c' => ServerEvent::CopyDone,
            b'G' => {
                self.copy = CopyState::In;
                // Open until the client ends it (it may have already).
                self.copy_in_open = self.front().is_some_and(|p| p.copy_ends == self.copy_ends);
                ServerEvent::Other
            }
            b'H' => {
                self.copy = CopyState::Out;
                ServerEvent::Other
            }
            b'W' => {
                self.copy = CopyState::Both;
                ServerEvent::Other
            }
            b'C' | b'I' | b's' => {
                if self.copy == CopyState::In {
                    // The COPY read all its input: Syncs sent before its
                    // data were read inside it, and ignored.
                    self.drop_syncs_read_by_copy();
                }
                self.copy = CopyState::None;
                let execute = self.front().is_some_and(|p| p.unit == Unit::Execute);
                ServerEvent::StatementDone(if execute { self.pop() } else { None })
            }
            b'2' => {
                let bind = self.front().is_some_and(|p| p.unit == Unit::Bind);
                ServerEvent::Bound(if bind { self.pop() } else { None })
            }
            b'E' => {
                if self.copy == CopyState::In && self.syncs_before_copy_data() > 0 {
                    self.lost = true;
                }
                self.copy = CopyState::None;
                match self.front() {
                    Some(p) if matches!(p.unit, Unit::Query | Unit::Call) => {
                        ServerEvent::Error(Some(p))
                    }
                    _ => {
                        // Postgres now skips to the next Sync: the units
                        // before it never run (a Query or FunctionCall in
                        // the batch included).
                        let failed = self
                            .front()
                            .filter(|p| matches!(p.unit, Unit::Bind | Unit::Execute))
                            .and_then(|_| self.pop());
                        while self.front().is_some_and(|p| p.unit != Unit::Sync) {
                            self.pop();
                        }
                        if self.pending.is_empty() {
                            self.skipping = true;
                        }
                        ServerEvent::Error(failed)
                    }
                }
            }
            b'Z' => {
                self.copy = CopyState::None;
                self.status = match v.bytes.get(5) {
                    Some(b'T') => TxStatus::InTransaction,
                    Some(b'E') => TxStatus::Failed,
                    _ => TxStatus::Idle,
                };
                let mut answered = None;
                while let Some(p) = self.pop() {
                    if !matches!(p.unit, Unit::Bind | Unit::Execute) {
                        answered = Some(p);
                        break;
                    }
                }
                ServerEvent::Ready(answered)
            }
            _ => ServerEvent::Other,
        }
    }

    /// The Syncs pending after the unit in front (the COPY's) that the
    /// client sent before any COPY message: read inside the COPY if it read
    /// its input (tokio-postgres sends Bind, Execute, Sync, then the data),
    /// at top level if it failed first.
    fn syncs_before_copy_data(&self) -> usize {
        let Some(start) = self.front() else {
            return 0;
        };
        self.pending
            .iter()
            .skip(1)
            .filter(|p| p.unit == Unit::Sync && p.copy_mark == start.copy_mark)
            .count()
    }

    /// COPY IN ended with CommandComplete: PostgreSQL read it to the end,
    /// so the Syncs sent before its data were read inside it and ignored:
    /// never answered.
    fn drop_syncs_read_by_copy(&mut self) {
        let Some(start) = self.front() else {
            return;
        };
        let before = self.pending.len();
        let mut first = true;
        self.pending.retain(|p| {
            let keep = first || !(p.unit == Unit::Sync && p.copy_mark == start.copy_mark);
            first = false;
            keep
        });
        self.ignored_syncs += (before - self.pending.len()) as u64;
    }

    /// A COPY IN failed with Syncs sent before its data pending: which
    /// answers follow cannot be told (`lost`). The session's backend must
    /// never serve anyone else; a pooled session ends.
    pub fn lost(&self) -> bool {
        self.lost
    }

    /// A Sync now would reach PostgreSQL during COPY IN (PostgreSQL started
    /// one, or the client has sent CopyData, and the client has not sent
    /// its CopyDone or CopyFail yet): PostgreSQL ignores it unless the data already failed the
    /// COPY, and which of the two cannot be told in time. The relay drops
    /// such a Sync (exactly what PostgreSQL does when the COPY is going
    /// well), so every Sync that reaches PostgreSQL is answered.
    pub fn sync_during_copy(&self) -> bool {
        self.copying || self.copy_in_open
    }

    /// Syncs PostgreSQL ignored since the last call (the statement
    /// tracking of transaction pooling counts batches by Sync).
    pub fn take_ignored_syncs(&mut self) -> u64 {
        std::mem::take(&mut self.ignored_syncs)
    }

    /// The unit Postgres is answering now.
    pub fn front(&self) -> Option<Pending> {
        self.pending.front().copied()
    }

    /// The unit Postgres is running now, and since when (its clock started
    /// when the units before it were answered).
    pub fn running(&self) -> Option<(Pending, Instant)> {
        self.front()
            .filter(|p| p.unit != Unit::Sync)
            .map(|p| (p, self.front_since.max(p.sent)))
    }

    pub fn status(&self) -> TxStatus {
        self.status
    }

    pub fn copy(&self) -> CopyState {
        self.copy
    }

    /// The client sent Terminate.
    pub fn terminated(&self) -> bool {
        self.terminated
    }

    /// Nothing sent and unanswered, no extended batch open, not in a
    /// transaction or COPY: the backend could be closed or handed to
    /// another client.
    pub fn at_rest(&self) -> bool {
        !self.broken
            && !self.lost
            && self.pending.is_empty()
            && !self.open_batch
            && !self.skipping
            && self.status == TxStatus::Idle
            && self.copy == CopyState::None
    }

    /// Nothing in flight and no transaction, but an extended batch left
    /// without Sync (or PostgreSQL skipping to a Sync not sent yet): the
    /// backend is held with no timer of PostgreSQL's running.
    pub fn unsynced_idle(&self) -> bool {
        !self.broken
            && !self.lost
            && self.pending.is_empty()
            && (self.open_batch || self.skipping)
            && self.status == TxStatus::Idle
            && self.copy == CopyState::None
    }

    /// Extended-protocol messages were sent since the last Sync.
    pub fn batch_open(&self) -> bool {
        self.open_batch
    }

    /// Nothing sent and unanswered (a transaction may be open).
    pub fn quiet(&self) -> bool {
        self.pending.is_empty() && !self.open_batch
    }
}

#[cfg(test)]
#[path = "conversation_tests.rs"]
mod tests;
