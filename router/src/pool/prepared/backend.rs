//! What one backend holds: the names of its prepared statements (as
//! PostgreSQL keys them: their first 63 bytes), a keyed hash of each one's
//! text, who prepared it (weakly) and when it was last used (LRU). Never
//! the text itself, so a backend's tracking costs about a hundred bytes
//! per statement whatever the statements are.

use bytes::Bytes;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::{OnceLock, Weak};

/// PostgreSQL keys prepared statements by their first NAMEDATALEN - 1
/// bytes: two longer names with the same start are one statement.
pub const NAME_KEY: usize = 63;

/// The part of a statement name PostgreSQL tells statements apart by.
pub fn key(name: &[u8]) -> &[u8] {
    &name[..name.len().min(NAME_KEY)]
}

/// The hash of a statement's text and parameter types (keyed per
/// process, so no client can make two texts collide).
pub fn text_hash(rest: &[u8]) -> u64 {
    static KEYS: OnceLock<std::collections::hash_map::RandomState> = OnceLock::new();
    let mut h = KEYS
        .get_or_init(std::collections::hash_map::RandomState::new)
        .build_hasher();
    h.write(rest);
    h.finish()
}

/// A statement on a backend: its text's hash (None: unknown) and who
/// prepared it.
#[derive(Debug)]
pub(super) struct Held {
    pub hash: Option<u64>,
    pub owner: Weak<()>,
    /// Last use, on the backend's clock (LRU).
    pub used: u64,
}

/// The named statements a backend holds.
#[derive(Debug, Default)]
pub struct BackendStatements {
    pub(super) held: HashMap<Bytes, Held>,
    pub(super) clock: u64,
}

impl BackendStatements {
    pub fn new() -> BackendStatements {
        BackendStatements::default()
    }

    pub fn len(&self) -> usize {
        self.held.len()
    }

    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// The statements are gone (DISCARD ALL).
    pub fn clear(&mut self) {
        self.held.clear();
    }

    /// What tracking them costs the router, in bytes (about).
    pub fn memory(&self) -> usize {
        const ENTRY: usize = std::mem::size_of::<Bytes>() + std::mem::size_of::<Held>() + 8;
        self.held.keys().map(|k| k.len() + ENTRY).sum()
    }

    pub(super) fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    pub(super) fn put(&mut self, name: Bytes, hash: Option<u64>, owner: Weak<()>) {
        let used = self.tick();
        self.held.insert(name, Held { hash, owner, used });
    }

    pub(super) fn touch(&mut self, name: &[u8]) {
        let now = self.tick();
        if let Some(h) = self.held.get_mut(name) {
            h.used = now;
        }
    }

    /// Still there, but what it is is not known.
    pub(super) fn unknown(&mut self, name: Bytes) {
        self.put(name, None, Weak::new());
    }

    /// Whether the backend has the statement keyed `name` (known or not).
    pub fn holds(&self, name: &[u8]) -> bool {
        self.held.contains_key(name)
    }

    /// Statements whose client left (or of unknown text).
    pub(super) fn orphans(&self) -> Vec<Bytes> {
        self.held
            .iter()
            .filter(|(_, h)| h.owner.strong_count() == 0)
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// The least recently used statement not used since `since`.
    pub(super) fn least_recent(&self, since: u64) -> Option<Bytes> {
        self.held
            .iter()
            .filter(|(_, h)| h.used < since)
            .min_by_key(|(_, h)| h.used)
            .map(|(n, _)| n.clone())
    }
}
