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
//! Which server answer belongs to which Parse or Close is tracked by
//! position: PostgreSQL answers messages in order, and after an error it
//! skips everything up to the next Sync, answering nothing of it.
//!
//! Not covered (README): the unnamed statement across transactions (it
//! lives until the next Parse, normally in the same batch), a Parse too
//! large to hold (over the codec's streaming threshold), and SQL-level
//! `PREPARE`/`DEALLOCATE` (refused or left to the client).

use bytes::{BufMut, Bytes, BytesMut};
use std::collections::{HashMap, VecDeque};

/// The named statements a backend holds: name → the Parse body after the
/// name (query text and parameter types).
pub type BackendStatements = HashMap<Bytes, Bytes>;

/// A Parse or Close on its way, waiting for its answer.
#[derive(Debug)]
struct Sent {
    /// The batch it belongs to (Syncs, Queries and FunctionCalls sent
    /// before it).
    batch: u64,
    /// b'P' (answered by ParseComplete) or b'C' (CloseComplete).
    kind: u8,
    /// Added by the router: its answer is not passed on.
    injected: bool,
    /// The statement a Parse prepares (None: unnamed or a Close).
    name: Option<Bytes>,
}

/// One client's statements and the Parse/Close answers it waits for.
#[derive(Debug, Default)]
pub struct Prepared {
    /// The client's named statements: name → whole Parse frame.
    client: HashMap<Bytes, Bytes>,
    waiting: VecDeque<Sent>,
    sent_batches: u64,
    answered_batches: u64,
    /// Statements prepared again on another backend (metric).
    pub reprepared: u64,
}

/// The first NUL-terminated string of `b` and what follows it.
fn cstr(b: &[u8]) -> Option<(&[u8], &[u8])> {
    let end = b.iter().position(|c| *c == 0)?;
    Some((&b[..end], &b[end + 1..]))
}

fn close_statement(name: &[u8], out: &mut BytesMut) {
    out.put_u8(b'C');
    out.put_u32((4 + 1 + name.len() + 1) as u32);
    out.put_u8(b'S');
    out.put_slice(name);
    out.put_u8(0);
}

impl Prepared {
    /// No Parse or Close is waiting for its answer (the backend can be
    /// detached as far as statements go).
    pub fn settled(&self) -> bool {
        self.waiting.is_empty()
    }

    /// A whole client frame about to reach a backend holding `have`.
    /// Returns the bytes to send instead (the router's Close/Parse, then
    /// the frame), or None to send the frame as it is.
    pub fn on_client(&mut self, frame: &[u8], have: &mut BackendStatements) -> Option<BytesMut> {
        let tag = *frame.first()?;
        let body = frame.get(5..)?;
        match tag {
            b'P' => {
                let (name, rest) = cstr(body)?;
                if name.is_empty() {
                    self.push(b'P', false, None);
                    return None;
                }
                let name = Bytes::copy_from_slice(name);
                let mut out = None;
                if have.contains_key(&name) {
                    // Another client's statement of that name (or this
                    // client's from an earlier transaction): close it first.
                    let mut b = BytesMut::with_capacity(frame.len() + name.len() + 7);
                    close_statement(&name, &mut b);
                    self.push(b'C', true, None);
                    b.extend_from_slice(frame);
                    out = Some(b);
                }
                have.insert(name.clone(), Bytes::copy_from_slice(rest));
                self.client
                    .insert(name.clone(), Bytes::copy_from_slice(frame));
                self.push(b'P', false, Some(name));
                out
            }
            b'B' => {
                let (_portal, rest) = cstr(body)?;
                let (stmt, _) = cstr(rest)?;
                self.ensure(stmt, frame, have)
            }
            b'D' if body.first() == Some(&b'S') => {
                let (stmt, _) = cstr(&body[1..])?;
                self.ensure(stmt, frame, have)
            }
            b'C' => {
                if body.first() == Some(&b'S') {
                    if let Some((name, _)) = cstr(&body[1..]) {
                        if !name.is_empty() {
                            self.client.remove(name);
                            have.remove(name);
                        }
                    }
                }
                self.push(b'C', false, None);
                None
            }
            b'S' | b'Q' | b'F' => {
                self.sent_batches += 1;
                None
            }
            _ => None,
        }
    }

    /// Before a Bind or Describe of `stmt`: prepare it on this backend if
    /// it does not hold the client's version.
    fn ensure(
        &mut self,
        stmt: &[u8],
        frame: &[u8],
        have: &mut BackendStatements,
    ) -> Option<BytesMut> {
        if stmt.is_empty() {
            return None;
        }
        let parse = self.client.get(stmt)?.clone();
        let (_, wanted) = cstr(parse.get(5..)?)?;
        let held = have.get(stmt);
        if held.is_some_and(|h| h.as_ref() == wanted) {
            return None;
        }
        let name = Bytes::copy_from_slice(stmt);
        let mut b = BytesMut::with_capacity(parse.len() + frame.len() + stmt.len() + 7);
        if held.is_some() {
            close_statement(stmt, &mut b);
            self.push(b'C', true, None);
        }
        b.extend_from_slice(&parse);
        self.push(b'P', true, Some(name.clone()));
        have.insert(name, Bytes::copy_from_slice(wanted));
        self.reprepared += 1;
        b.extend_from_slice(frame);
        Some(b)
    }

    fn push(&mut self, kind: u8, injected: bool, name: Option<Bytes>) {
        self.waiting.push_back(Sent {
            batch: self.sent_batches,
            kind,
            injected,
            name,
        });
    }

    /// A server frame's tag; true: the answer to something the router
    /// added, not passed on.
    pub fn on_server(&mut self, tag: u8, have: &mut BackendStatements) -> bool {
        match tag {
            b'1' | b'3' => {
                let want = if tag == b'1' { b'P' } else { b'C' };
                // The oldest waiting Parse/Close of the batch being answered.
                while let Some(front) = self.waiting.front() {
                    if front.batch < self.answered_batches {
                        self.waiting.pop_front();
                        continue;
                    }
                    if front.kind == want {
                        return self.waiting.pop_front().is_some_and(|s| s.injected);
                    }
                    // Out of step (cannot happen with PostgreSQL): pass
                    // the answer on and forget what we waited for.
                    self.waiting.clear();
                    return false;
                }
                false
            }
            b'E' => {
                // PostgreSQL skips the rest of the batch: nothing of it is
                // answered, and statements it would have prepared are not
                // there.
                let batch = self.answered_batches;
                while self.waiting.front().is_some_and(|s| s.batch <= batch) {
                    if let Some(Sent {
                        kind: b'P',
                        name: Some(n),
                        ..
                    }) = self.waiting.pop_front()
                    {
                        have.remove(&n);
                    }
                }
                false
            }
            b'Z' => {
                self.answered_batches += 1;
                false
            }
            _ => false,
        }
    }

    /// The backend's statements are gone (DISCARD ALL on a tenant switch,
    /// or a new backend): nothing is waiting either.
    pub fn forget_backend(&mut self) {
        self.waiting.clear();
        self.answered_batches = self.sent_batches;
    }
}

#[cfg(test)]
#[path = "prepared_tests.rs"]
mod tests;
