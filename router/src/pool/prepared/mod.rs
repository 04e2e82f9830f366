//! Protocol-level prepared statements in transaction pooling (as PgBouncer
//! 1.21+ does): a client's named statements live on whichever backend
//! serves it at the moment, so the router remembers each client's Parse
//! messages and, before a Bind or Describe of a statement the current
//! backend does not have (or has under the same name from another
//! client), sends the client's Parse first (and a Close of the other one).
//! The answers to what the router added (ParseComplete, CloseComplete)
//! are not passed on, so the client sees exactly the answers to its own
//! messages.
//!
//! Everything is bounded (docs/src/pooling/index.md, "Prepared statements in transaction mode"):
//!
//! - **per backend** at most `pool.max_prepared_statements`: beyond that
//!   the least recently used statement (not used by the batch on its way)
//!   is closed on the backend (LRU); the backend keeps only names and
//!   hashes, never query texts;
//! - **per client** at most `pool.max_client_prepared_statements` named
//!   statements of `pool.max_client_prepared_bytes` in all (the Parse
//!   messages the router keeps to prepare them again); a Parse beyond
//!   either gets 53400 naming the limit (PostgreSQL gets a failing
//!   stand-in, so the answers stay in order) — never left untracked;
//! - **when a client leaves** its statements are freed here at once, and
//!   closed on each backend that holds them at that backend's next use
//!   (its entries name their owner weakly).
//!
//! A statement name the backend may hold but whose text is not known (a
//! Parse or Close PostgreSQL skipped after an error) is kept as *unknown*:
//! it never matches, and is closed before that name is used again, so no
//! Parse ever collides (42P05). Names are tracked as PostgreSQL keys them,
//! by their first 63 bytes (`backend::key`).
//!
//! Which server answer belongs to which Parse or Close is tracked by
//! position: PostgreSQL answers messages in order, and after an error in
//! an extended-protocol batch it skips everything (Queries included) up to
//! the next Sync, answering nothing of it. Batches are delimited by Syncs;
//! the relay says what each server message meant (`Answer`, from the
//! conversation), so a Query PostgreSQL ignored or a Sync it ignored
//! during COPY (`syncs_ignored`) never puts the count out of step.
//! Messages too large to hold whole are seen by their first bytes (a
//! Bind's statement name, a Close's or Describe's name) and tracked the
//! same way.
//!
//! Not covered (docs/src/pooling/index.md): the unnamed statement across transactions (it
//! lives until the next Parse, normally in the same batch), and SQL-level
//! `PREPARE`/`DEALLOCATE` (left to the client).

mod backend;
mod budget;
mod refusal;

use backend::text_hash;
pub use backend::{key, BackendStatements, NAME_KEY};
pub use budget::Budget;
pub use refusal::Refusal;

use crate::codec::FrameView;
use bytes::{BufMut, Bytes, BytesMut};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

/// Most Parse and Close messages of a client waiting for their answers
/// (about 5 MB of tracking); far above any driver's pipeline.
pub const MAX_WAITING: usize = 100_000;

/// What to do with a client message.
#[derive(Debug, PartialEq, Eq)]
pub enum ClientVerdict {
    /// Send it as it is.
    AsIs,
    /// Send these (the router's Close/Parse) first, then it.
    Prepend(BytesMut),
    /// Send these instead (a refusal's stand-in).
    Instead(BytesMut),
}

/// What a server message meant, as far as statements go (the relay tells,
/// from the conversation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    ParseComplete,
    CloseComplete,
    /// An error of a simple Query or FunctionCall: nothing is skipped.
    SimpleError,
    /// An error in an extended-protocol batch: PostgreSQL skips to Sync.
    ExtendedError,
    /// ReadyForQuery answering a Sync.
    ReadySync,
    /// ReadyForQuery answering a Query or FunctionCall.
    ReadyOther,
    Other,
}

/// What to do with a server message.
#[derive(Debug, PartialEq, Eq)]
pub enum ServerVerdict {
    Pass,
    /// The answer to something the router added: not passed on.
    Drop,
    /// A refusal's stand-in failed: the client gets this error instead.
    Replace(BytesMut),
}

/// A Parse or Close on its way, waiting for its answer.
#[derive(Debug)]
struct Sent {
    /// Syncs sent before it: its batch.
    group: u64,
    /// b'P' (answered by ParseComplete) or b'C' (CloseComplete).
    kind: u8,
    /// Added by the router: its answer is not passed on.
    injected: bool,
    /// The statement (its key) it prepares or closes (None: unnamed, a
    /// portal, or a refusal's stand-in).
    name: Option<Bytes>,
}

/// A client's statement: its whole Parse frame and its text's hash.
#[derive(Debug)]
struct Statement {
    parse: Bytes,
    hash: u64,
}

/// One client's statements and the Parse/Close answers it waits for.
#[derive(Debug)]
pub struct Prepared {
    budget: Budget,
    /// Its statements on backends name this weakly: once the client is
    /// gone they are closed at the backend's next use.
    owner: Arc<()>,
    /// The client's named statements, by key.
    client: HashMap<Bytes, Statement>,
    client_bytes: usize,
    waiting: VecDeque<Sent>,
    syncs_sent: u64,
    syncs_answered: u64,
    /// The backend's clock when the batch on its way began: statements
    /// used since are not evicted.
    batch_clock: u64,
    /// Statements of departed clients to close before the next frame.
    owed: Vec<Bytes>,
    /// Refusals whose stand-in's error is still to come, by batch.
    refusals: VecDeque<(u64, Refusal)>,
    /// Statements prepared again on another backend (metric).
    pub reprepared: u64,
    /// Statements closed on a backend to keep it within its budget.
    pub evicted: u64,
}

impl Default for Prepared {
    fn default() -> Self {
        Prepared::new(Budget::default())
    }
}

/// The first NUL-terminated string of `b` and what follows it.
fn cstr(b: &[u8]) -> Option<(&[u8], &[u8])> {
    let end = b.iter().position(|c| *c == 0)?;
    Some((&b[..end], &b[end + 1..]))
}

/// The key of the statement name at the start of `b`, which may be cut
/// (a streamed message): known once its end or `NAME_KEY` bytes are there.
fn name_key(b: &[u8], whole: bool) -> Option<&[u8]> {
    match cstr(b) {
        Some((name, _)) => Some(key(name)),
        None if !whole && b.len() >= NAME_KEY => Some(&b[..NAME_KEY]),
        None => None,
    }
}

fn close_statement(name: &[u8], out: &mut BytesMut) {
    out.put_u8(b'C');
    out.put_u32((4 + 1 + name.len() + 1) as u32);
    out.put_u8(b'S');
    out.put_slice(name);
    out.put_u8(0);
}

/// What becomes of a client message.
enum Own {
    /// It goes (after what the router added).
    AsIs,
    /// The router's bytes go instead of it (a refusal's stand-in).
    Instead,
}

impl Prepared {
    pub fn new(budget: Budget) -> Prepared {
        Prepared {
            budget,
            owner: Arc::new(()),
            client: HashMap::new(),
            client_bytes: 0,
            waiting: VecDeque::new(),
            syncs_sent: 0,
            syncs_answered: 0,
            batch_clock: 0,
            owed: Vec::new(),
            refusals: VecDeque::new(),
            reprepared: 0,
            evicted: 0,
        }
    }

    /// No Parse or Close is waiting for its answer (the backend can be
    /// detached as far as statements go).
    pub fn settled(&self) -> bool {
        self.waiting.is_empty()
    }

    /// More Parse and Close messages wait for their answers than
    /// `MAX_WAITING` (a client sending them without end while PostgreSQL
    /// skips to a Sync that never comes): the session must end, or the
    /// router's memory would grow with what the client sends.
    pub fn overflowing(&self) -> bool {
        self.waiting.len() + self.refusals.len() > MAX_WAITING
    }

    /// Named statements the client holds, and the bytes kept for them.
    pub fn held(&self) -> (usize, usize) {
        (self.client.len(), self.client_bytes)
    }

    /// The client is served by a backend holding `have` from now on:
    /// statements there whose client is gone (and those of unknown text)
    /// are closed before its next message.
    pub fn adopt(&mut self, have: &BackendStatements) {
        self.owed = have.orphans();
        self.batch_clock = have.clock + 1;
    }

    /// The largest Parse the client may send whole (larger ones are
    /// streamed and, when named, refused).
    pub fn largest(&self) -> usize {
        self.budget.client_bytes
    }

    /// A client message (whole, or the start of a streamed one) about to
    /// reach a backend holding `have`.
    pub fn on_client(&mut self, v: FrameView<'_>, have: &mut BackendStatements) -> ClientVerdict {
        let mut out = BytesMut::new();
        for name in std::mem::take(&mut self.owed) {
            if have
                .held
                .get(&name)
                .is_some_and(|h| h.owner.strong_count() == 0)
            {
                have.held.remove(&name);
                close_statement(&name, &mut out);
                self.push(b'C', true, Some(name));
            }
        }
        match self.message(v, have, &mut out) {
            Own::AsIs if out.is_empty() => ClientVerdict::AsIs,
            Own::AsIs => ClientVerdict::Prepend(out),
            Own::Instead => ClientVerdict::Instead(out),
        }
    }

    fn refuse(&mut self, why: Refusal, out: &mut BytesMut) -> Own {
        self.refusals.push_back((self.syncs_sent, why));
        match why {
            Refusal::Unreadable => out.extend_from_slice(&refusal::bind_stand_in()),
            Refusal::TooMany | Refusal::TooLarge => {
                self.push(b'P', false, None);
                out.extend_from_slice(&refusal::parse_stand_in());
            }
        }
        Own::Instead
    }

    fn message(
        &mut self,
        v: FrameView<'_>,
        have: &mut BackendStatements,
        out: &mut BytesMut,
    ) -> Own {
        let whole = v.is_whole();
        let Some(body) = v.bytes.get(5..) else {
            return Own::AsIs;
        };
        match v.tag {
            b'P' if whole => self.parse(v.bytes, body, have, out),
            b'P' => match cstr(body) {
                Some((b"", _)) => {
                    self.push(b'P', false, None);
                    Own::AsIs
                }
                // Named (or a name longer than what is shown): too large
                // to keep.
                _ => self.refuse(Refusal::TooLarge, out),
            },
            b'B' => match cstr(body).map(|(_portal, rest)| name_key(rest, whole)) {
                Some(Some(stmt)) => self.ensure(stmt, have, out),
                Some(None) if whole => Own::AsIs,
                _ if whole => Own::AsIs,
                _ => self.refuse(Refusal::Unreadable, out),
            },
            b'D' if body.first() == Some(&b'S') => match name_key(&body[1..], whole) {
                Some(stmt) => self.ensure(stmt, have, out),
                None => Own::AsIs,
            },
            b'C' => {
                let name = match (
                    body.first(),
                    name_key(body.get(1..).unwrap_or_default(), whole),
                ) {
                    (Some(b'S'), Some(name)) if !name.is_empty() => {
                        if let Some(s) = self.client.remove(name) {
                            self.client_bytes -= s.parse.len();
                        }
                        have.held.remove(name);
                        Some(Bytes::copy_from_slice(name))
                    }
                    _ => None,
                };
                self.push(b'C', false, name);
                Own::AsIs
            }
            b'S' => {
                self.syncs_sent += 1;
                self.batch_clock = have.clock + 1;
                Own::AsIs
            }
            b'Q' | b'F' => {
                self.batch_clock = have.clock + 1;
                Own::AsIs
            }
            _ => Own::AsIs,
        }
    }

    fn parse(
        &mut self,
        frame: &[u8],
        body: &[u8],
        have: &mut BackendStatements,
        out: &mut BytesMut,
    ) -> Own {
        let Some((name, rest)) = cstr(body) else {
            return Own::AsIs;
        };
        if name.is_empty() {
            self.push(b'P', false, None);
            return Own::AsIs;
        }
        let name = key(name);
        let replaced = self.client.get(name).map_or(0, |s| s.parse.len());
        let bytes = self.client_bytes - replaced + frame.len();
        if frame.len() > self.budget.client_bytes {
            return self.refuse(Refusal::TooLarge, out);
        }
        if (replaced == 0 && self.client.len() >= self.budget.per_client)
            || bytes > self.budget.client_bytes
        {
            return self.refuse(Refusal::TooMany, out);
        }
        let name = Bytes::copy_from_slice(name);
        let hash = text_hash(rest);
        if have.holds(&name) {
            // Another client's statement of that name (or this client's
            // from an earlier transaction, or one of unknown text): close
            // it first.
            close_statement(&name, out);
            self.push(b'C', true, Some(name.clone()));
        } else {
            self.make_room(have, out);
        }
        have.put(name.clone(), Some(hash), Arc::downgrade(&self.owner));
        self.client.insert(
            name.clone(),
            Statement {
                parse: Bytes::copy_from_slice(frame),
                hash,
            },
        );
        self.client_bytes = bytes;
        self.push(b'P', false, Some(name));
        Own::AsIs
    }

    /// Before a Bind or Describe of `stmt`: prepare it on this backend if
    /// it does not hold the client's version. A name the client never
    /// prepared but the backend holds (another client's) is closed first,
    /// so PostgreSQL answers as it would to this client alone: 26000.
    fn ensure(&mut self, stmt: &[u8], have: &mut BackendStatements, out: &mut BytesMut) -> Own {
        if stmt.is_empty() {
            return Own::AsIs;
        }
        let Some(s) = self.client.get(stmt) else {
            if have.holds(stmt) {
                let name = Bytes::copy_from_slice(stmt);
                have.held.remove(stmt);
                close_statement(&name, out);
                self.push(b'C', true, Some(name));
            }
            return Own::AsIs;
        };
        let (hash, parse) = (s.hash, s.parse.clone());
        let held = have.held.get(stmt).map(|h| h.hash);
        if held == Some(Some(hash)) {
            have.touch(stmt);
            return Own::AsIs;
        }
        let name = Bytes::copy_from_slice(stmt);
        if held.is_some() {
            close_statement(stmt, out);
            self.push(b'C', true, Some(name.clone()));
        } else {
            self.make_room(have, out);
        }
        out.extend_from_slice(&parse);
        self.push(b'P', true, Some(name.clone()));
        have.put(name, Some(hash), Arc::downgrade(&self.owner));
        self.reprepared += 1;
        Own::AsIs
    }

    /// Keep the backend under its budget before a statement is added:
    /// close the least recently used ones the batch on its way has not
    /// used (if every one is in use, the batch may go over until it ends).
    fn make_room(&mut self, have: &mut BackendStatements, out: &mut BytesMut) {
        while have.held.len() >= self.budget.per_backend.max(1) {
            let Some(name) = have.least_recent(self.batch_clock) else {
                return;
            };
            have.held.remove(&name);
            close_statement(&name, out);
            self.push(b'C', true, Some(name));
            self.evicted += 1;
        }
    }

    fn push(&mut self, kind: u8, injected: bool, name: Option<Bytes>) {
        self.waiting.push_back(Sent {
            group: self.syncs_sent,
            kind,
            injected,
            name,
        });
    }

    /// A server message (`frame`: whole, or its start) and what it meant.
    pub fn on_server(
        &mut self,
        frame: &[u8],
        answer: Answer,
        have: &mut BackendStatements,
    ) -> ServerVerdict {
        match answer {
            Answer::ParseComplete | Answer::CloseComplete => {
                let want = if answer == Answer::ParseComplete {
                    b'P'
                } else {
                    b'C'
                };
                self.drop_skipped(have);
                match self.waiting.front() {
                    Some(front) if front.kind == want => {
                        match self.waiting.pop_front().is_some_and(|s| s.injected) {
                            true => ServerVerdict::Drop,
                            false => ServerVerdict::Pass,
                        }
                    }
                    // Out of step (cannot happen with PostgreSQL): pass it
                    // on, and treat every name waited for as unknown.
                    _ => {
                        while !self.waiting.is_empty() {
                            self.skipped_into(have);
                        }
                        ServerVerdict::Pass
                    }
                }
            }
            Answer::ExtendedError | Answer::SimpleError => {
                let verdict = self.refusal(frame);
                if answer == Answer::ExtendedError {
                    // PostgreSQL skips the rest of the batch: nothing of it
                    // is answered, and what it would have prepared or
                    // closed is in an unknown state.
                    while self
                        .waiting
                        .front()
                        .is_some_and(|s| s.group <= self.syncs_answered)
                    {
                        self.skipped_into(have);
                    }
                }
                verdict
            }
            Answer::ReadySync => {
                self.syncs_answered += 1;
                self.drop_skipped(have);
                ServerVerdict::Pass
            }
            Answer::ReadyOther | Answer::Other => ServerVerdict::Pass,
        }
    }

    /// PostgreSQL ignored `n` Syncs (sent during COPY IN): their batches
    /// are over.
    pub fn syncs_ignored(&mut self, n: u64, have: &mut BackendStatements) {
        self.syncs_answered += n;
        self.drop_skipped(have);
    }

    /// Entries of batches already over were skipped by PostgreSQL.
    fn drop_skipped(&mut self, have: &mut BackendStatements) {
        while self
            .waiting
            .front()
            .is_some_and(|s| s.group < self.syncs_answered)
        {
            self.skipped_into(have);
        }
        while self
            .refusals
            .front()
            .is_some_and(|r| r.0 < self.syncs_answered)
        {
            self.refusals.pop_front();
        }
    }

    /// The client's error for a refusal's stand-in that failed.
    fn refusal(&mut self, frame: &[u8]) -> ServerVerdict {
        if !refusal::is_stand_ins(frame) {
            return ServerVerdict::Pass;
        }
        while self
            .refusals
            .front()
            .is_some_and(|r| r.0 < self.syncs_answered)
        {
            self.refusals.pop_front();
        }
        let why = self.refusals.pop_front().map_or(Refusal::TooMany, |r| r.1);
        ServerVerdict::Replace(refusal::error(why, self.budget))
    }

    /// The oldest waiting entry was skipped by PostgreSQL: its statement
    /// may or may not be on the backend.
    fn skipped_into(&mut self, have: &mut BackendStatements) {
        if let Some(Sent {
            name: Some(n),
            kind,
            injected,
            ..
        }) = self.waiting.pop_front()
        {
            if kind == b'P' && !injected {
                // PostgreSQL never prepared the client's statement.
                if let Some(s) = self.client.remove(&n) {
                    self.client_bytes -= s.parse.len();
                }
            }
            have.unknown(n);
        }
    }
}

#[cfg(test)]
mod tests;
