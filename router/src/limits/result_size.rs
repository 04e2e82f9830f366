//! `max_result_bytes`: the bytes of DataRow and COPY OUT CopyData frames
//! a unit sends back (whole frames, counted from their headers, so a
//! streamed row counts in full before any of it is relayed).

/// Result bytes of the running unit.
#[derive(Debug, Default)]
pub struct ResultSize {
    unit: Option<u64>,
    bytes: u64,
}

impl ResultSize {
    /// Count a row of `len` bytes for unit `seq`; true when it goes over
    /// `max` (> 0).
    pub fn add(&mut self, seq: Option<u64>, len: usize, max: u64) -> bool {
        if self.unit != seq {
            self.unit = seq;
            self.bytes = 0;
        }
        self.bytes += len as u64;
        max > 0 && self.bytes > max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counted_per_unit() {
        let mut r = ResultSize::default();
        assert!(!r.add(Some(1), 10, 20));
        assert!(!r.add(Some(1), 10, 20));
        assert!(r.add(Some(1), 1, 20), "over 20 bytes");
        assert!(!r.add(Some(2), 15, 20), "a new unit starts afresh");
        assert!(!r.add(Some(2), 1000, 0), "0 is unlimited");
    }
}
