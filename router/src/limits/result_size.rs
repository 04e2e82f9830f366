//! `max_result_bytes`: the bytes of every message the server sends while a
//! unit is being answered, up to (not including) its ReadyForQuery:
//! RowDescription, DataRow, COPY OUT CopyData, NoticeResponse,
//! NotificationResponse, FunctionCallResponse, CommandComplete,
//! ErrorResponse and the rest. Whole frames count, from their headers, so
//! a streamed message counts in full before any of it is relayed.

/// Result bytes of the unit being answered.
#[derive(Debug, Default)]
pub struct ResultSize {
    unit: Option<u64>,
    bytes: u64,
    over: bool,
}

impl ResultSize {
    /// Count a message of `len` bytes for unit `seq`; true when this one
    /// takes the unit over `max` (> 0), once per unit.
    pub fn add(&mut self, seq: u64, len: usize, max: u64) -> bool {
        if self.unit != Some(seq) {
            self.unit = Some(seq);
            self.bytes = 0;
            self.over = false;
        }
        self.bytes = self.bytes.saturating_add(len as u64);
        if max > 0 && self.bytes > max && !self.over {
            self.over = true;
            return true;
        }
        false
    }

    /// Whether unit `seq` went over its limit: nothing more of it is
    /// relayed but what the protocol needs (its error, ReadyForQuery).
    pub fn over(&self, seq: Option<u64>) -> bool {
        self.over && seq.is_some() && self.unit == seq
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counted_per_unit() {
        let mut r = ResultSize::default();
        assert!(!r.add(1, 10, 20));
        assert!(!r.add(1, 10, 20));
        assert!(!r.over(Some(1)));
        assert!(r.add(1, 1, 20), "over 20 bytes");
        assert!(r.over(Some(1)));
        assert!(!r.add(1, 1, 20), "reported once");
        assert!(r.over(Some(1)), "and stays over");
        assert!(!r.over(Some(2)) && !r.over(None));
        assert!(!r.add(2, 15, 20), "a new unit starts afresh");
        assert!(!r.over(Some(2)));
        assert!(!r.add(2, 1000, 0), "0 is unlimited");
        assert!(!r.over(Some(2)));
    }
}
