//! The per-segment index: sequence → record offset and timestamp.
//!
//! In memory the index is dense over the segment's sequence range (one slot per sequence from
//! the segment's base), 12 bytes per message: a `u32` offset (`ABSENT` for a sequence that has
//! no readable record, e.g. one lost to corruption) and a `u64` timestamp for start-by-time
//! lookups. Only the active segment's index lives in memory for good; a sealed segment's index
//! is written to `<base>.idx` when it is sealed and loaded on demand into a small cache, so
//! memory does not grow with the number of stored messages.
//!
//! The file carries the length of the segment it describes: an index that does not match its
//! segment's length (a segment changed after the index was written) is not trusted.

use super::record::{read_u32, read_u64, CHECKSUM_CRC32, FORMAT_VERSION};

/// Magic at the start of every index file.
pub const INDEX_MAGIC: [u8; 4] = *b"JLIX";
/// Bytes before the first entry.
pub const INDEX_HEADER_BYTES: usize = 32;
/// Bytes per entry: offset `u32` + timestamp `u64`.
pub const INDEX_ENTRY_BYTES: usize = 12;
/// Offset value meaning "no record for this sequence".
pub const ABSENT: u32 = u32::MAX;

/// Dense sequence → (offset, timestamp) map for one segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentIndex {
    /// Sequence of slot 0 (the segment's base sequence).
    base_seq: u64,
    /// Record offsets in the segment file, `ABSENT` for holes.
    offsets: Vec<u32>,
    /// Timestamps, meaningless where the offset is `ABSENT`.
    ts: Vec<u64>,
}

impl SegmentIndex {
    /// An empty index for a segment starting at `base_seq`.
    pub fn new(base_seq: u64) -> Self {
        SegmentIndex {
            base_seq,
            offsets: Vec::new(),
            ts: Vec::new(),
        }
    }

    /// The segment's base sequence.
    pub fn base_seq(&self) -> u64 {
        self.base_seq
    }

    /// Records a record for `seq`; sequences must grow, skipped ones become holes.
    pub fn push(&mut self, seq: u64, offset: u32, ts_ns: u64) {
        debug_assert!(
            seq >= self.base_seq + self.offsets.len() as u64,
            "sequences only grow"
        );
        while self.base_seq + (self.offsets.len() as u64) < seq {
            self.offsets.push(ABSENT);
            self.ts.push(0);
        }
        self.offsets.push(offset);
        self.ts.push(ts_ns);
    }

    /// Drops every entry at or after `seq` (used when a failed write is rolled back).
    pub fn truncate_from(&mut self, seq: u64) {
        let keep = seq.saturating_sub(self.base_seq) as usize;
        self.offsets.truncate(keep);
        self.ts.truncate(keep);
    }

    fn slot(&self, seq: u64) -> Option<usize> {
        let i = usize::try_from(seq.checked_sub(self.base_seq)?).ok()?;
        (i < self.offsets.len() && self.offsets[i] != ABSENT).then_some(i)
    }

    /// Offset of the record for `seq`, if it has one.
    pub fn offset(&self, seq: u64) -> Option<u32> {
        self.slot(seq).map(|i| self.offsets[i])
    }

    /// Timestamp of the record for `seq`, if it has one.
    pub fn ts(&self, seq: u64) -> Option<u64> {
        self.slot(seq).map(|i| self.ts[i])
    }

    /// Highest sequence with a record.
    pub fn last_seq(&self) -> Option<u64> {
        let i = self.offsets.iter().rposition(|o| *o != ABSENT)?;
        Some(self.base_seq + i as u64)
    }

    /// Lowest sequence with a record.
    pub fn first_seq(&self) -> Option<u64> {
        let i = self.offsets.iter().position(|o| *o != ABSENT)?;
        Some(self.base_seq + i as u64)
    }

    /// Sequences in the covered range that have no record.
    pub fn holes(&self) -> impl Iterator<Item = u64> + '_ {
        let base = self.base_seq;
        let last = self.offsets.iter().rposition(|o| *o != ABSENT).unwrap_or(0);
        self.offsets[..last]
            .iter()
            .enumerate()
            .filter(|(_, o)| **o == ABSENT)
            .map(move |(i, _)| base + i as u64)
    }

    /// Present `(seq, offset, ts)` entries from `from_seq` on, in order.
    pub fn entries_from(&self, from_seq: u64) -> impl Iterator<Item = (u64, u32, u64)> + '_ {
        let start = from_seq
            .saturating_sub(self.base_seq)
            .min(self.offsets.len() as u64) as usize;
        let base = self.base_seq;
        (start..self.offsets.len())
            .filter(|i| self.offsets[*i] != ABSENT)
            .map(move |i| (base + i as u64, self.offsets[i], self.ts[i]))
    }

    /// Heap bytes held (for memory accounting in docs and benches).
    pub fn heap_bytes(&self) -> usize {
        self.offsets.capacity() * 4 + self.ts.capacity() * 8
    }

    /// The index file for this index, describing a segment of `segment_len` bytes.
    pub fn encode(&self, segment_len: u64) -> Vec<u8> {
        let n = self.offsets.len();
        let mut buf = Vec::with_capacity(INDEX_HEADER_BYTES + n * INDEX_ENTRY_BYTES + 4);
        buf.extend_from_slice(&INDEX_MAGIC);
        buf.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        buf.push(CHECKSUM_CRC32);
        buf.push(0);
        buf.extend_from_slice(&self.base_seq.to_le_bytes());
        buf.extend_from_slice(&(n as u64).to_le_bytes());
        buf.extend_from_slice(&segment_len.to_le_bytes());
        for i in 0..n {
            buf.extend_from_slice(&self.offsets[i].to_le_bytes());
            buf.extend_from_slice(&self.ts[i].to_le_bytes());
        }
        let crc = crc32fast::hash(&buf);
        buf.extend_from_slice(&crc.to_le_bytes());
        buf
    }

    /// Parses an index file, trusting it only if its checksum is good and it describes the
    /// segment `base_seq` of exactly `segment_len` bytes.
    pub fn decode(buf: &[u8], base_seq: u64, segment_len: u64) -> Result<Self, &'static str> {
        if buf.len() < INDEX_HEADER_BYTES + 4 {
            return Err("index file too short");
        }
        let body = &buf[..buf.len() - 4];
        if crc32fast::hash(body) != read_u32(buf, buf.len() - 4) {
            return Err("index checksum mismatch");
        }
        if body[0..4] != INDEX_MAGIC
            || u16::from_le_bytes([body[4], body[5]]) != FORMAT_VERSION
            || body[6] != CHECKSUM_CRC32
        {
            return Err("index magic, version or checksum id not recognised");
        }
        if read_u64(body, 8) != base_seq {
            return Err("index names another segment");
        }
        let n = read_u64(body, 16);
        if read_u64(body, 24) != segment_len {
            return Err("index describes another segment length");
        }
        if (body.len() - INDEX_HEADER_BYTES) as u64 != n.saturating_mul(INDEX_ENTRY_BYTES as u64) {
            return Err("index entry count does not match its size");
        }
        // Entry i stands for sequence base_seq + i; an index reaching past the largest
        // sequence describes records that cannot exist, and its lookups would overflow.
        if n > 0 && base_seq.checked_add(n - 1).is_none() {
            return Err("index covers sequences past the largest one");
        }
        let mut index = SegmentIndex::new(base_seq);
        index.offsets.reserve(n as usize);
        index.ts.reserve(n as usize);
        for chunk in body[INDEX_HEADER_BYTES..].chunks_exact(INDEX_ENTRY_BYTES) {
            let offset = read_u32(chunk, 0);
            if offset != ABSENT && u64::from(offset) >= segment_len {
                return Err("index points past the end of its segment");
            }
            index.offsets.push(offset);
            index.ts.push(read_u64(chunk, 4));
        }
        Ok(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> SegmentIndex {
        let mut ix = SegmentIndex::new(10);
        ix.push(10, 20, 100);
        ix.push(11, 60, 110);
        ix.push(13, 140, 130);
        ix
    }

    #[test]
    fn skipped_sequences_become_holes() {
        let ix = sample();
        assert_eq!(ix.offset(11), Some(60));
        assert_eq!(ix.offset(12), None);
        assert_eq!(ix.holes().collect::<Vec<_>>(), vec![12]);
        assert_eq!((ix.first_seq(), ix.last_seq()), (Some(10), Some(13)));
        assert_eq!(
            ix.entries_from(11).map(|e| e.0).collect::<Vec<_>>(),
            vec![11, 13]
        );
    }

    #[test]
    fn index_file_round_trips_and_rejects_damage() {
        let ix = sample();
        let buf = ix.encode(200);
        assert_eq!(SegmentIndex::decode(&buf, 10, 200), Ok(ix));
        assert!(
            SegmentIndex::decode(&buf, 10, 201).is_err(),
            "segment length must match"
        );
        assert!(
            SegmentIndex::decode(&buf, 11, 200).is_err(),
            "base must match"
        );
        for byte in 0..buf.len() {
            let mut bad = buf.clone();
            bad[byte] ^= 0x10;
            assert!(SegmentIndex::decode(&bad, 10, 200).is_err(), "byte {byte}");
        }
        assert!(SegmentIndex::decode(&buf[..buf.len() - 1], 10, 200).is_err());
    }

    /// Found by the `store_files` fuzz target: a checksum-valid index of a segment based at
    /// `u64::MAX - 1` with three entries decoded, and `last_seq` then overflowed.
    #[test]
    fn index_reaching_past_the_largest_sequence_is_refused() {
        let base = u64::MAX - 1;
        let full = SegmentIndex {
            base_seq: base,
            offsets: vec![20, 60],
            ts: vec![1, 2],
        };
        let decoded = SegmentIndex::decode(&full.encode(200), base, 200).expect("decodes");
        assert_eq!(decoded.last_seq(), Some(u64::MAX));
        let past = SegmentIndex {
            base_seq: base,
            offsets: vec![20, 60, 100],
            ts: vec![1, 2, 3],
        };
        assert_eq!(
            SegmentIndex::decode(&past.encode(200), base, 200),
            Err("index covers sequences past the largest one")
        );
    }

    #[test]
    fn truncate_from_drops_later_entries() {
        let mut ix = sample();
        ix.truncate_from(11);
        assert_eq!(ix.last_seq(), Some(10));
        ix.push(11, 60, 1);
        assert_eq!(ix.offset(11), Some(60));
    }
}
