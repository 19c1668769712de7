//! Byte layout of segment headers and message records (see `docs/storage-format.md`).
//!
//! Records are self-delimiting: each starts with its total length and a CRC32 that covers the
//! length and everything after the CRC field. A reader can therefore check a record in
//! isolation, which is what lets recovery step over a damaged record and keep the good ones
//! after it. All integers are little-endian.

use super::config::NewMessage;

/// Magic at the start of every segment file.
pub const SEGMENT_MAGIC: [u8; 4] = *b"JLSG";
/// Format version written into segment, index and metadata headers.
pub const FORMAT_VERSION: u16 = 1;
/// Checksum algorithm id: 1 = CRC-32 (IEEE 802.3 polynomial, as computed by `crc32fast`).
pub const CHECKSUM_CRC32: u8 = 1;
/// Bytes of the segment header; the first record starts here.
pub const SEGMENT_HEADER_BYTES: usize = 20;
/// Fixed bytes at the start of every record, before subject, headers and payload.
pub const RECORD_HEADER_BYTES: usize = 30;
/// Longest subject a record can frame (its length is a `u16`).
pub const MAX_SUBJECT_BYTES: usize = u16::MAX as usize;
/// Largest record accepted, header included: 64 MiB of payload (nats-server's hard cap on
/// `max_payload`) plus 1 MiB for subject and headers. Larger lengths read from disk are
/// treated as corruption rather than allocated.
pub const MAX_RECORD_BYTES: usize = 65 * 1024 * 1024;

/// A record decoded from a buffer, borrowing its variable parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordView<'a> {
    /// Stream sequence.
    pub seq: u64,
    /// Timestamp in ns.
    pub ts_ns: u64,
    /// Subject bytes (UTF-8, checked by [`RecordView::subject_str`]).
    pub subject: &'a [u8],
    /// Header block.
    pub headers: &'a [u8],
    /// Payload.
    pub payload: &'a [u8],
    /// Total record length in bytes.
    pub len: usize,
}

impl RecordView<'_> {
    /// The subject as text; `None` if it is not UTF-8 (which a CRC-valid record can only hold
    /// if it was written so, so callers treat it as corruption).
    pub fn subject_str(&self) -> Option<&str> {
        std::str::from_utf8(self.subject).ok()
    }
}

/// Outcome of decoding at some position of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decoded<'a> {
    /// A whole, checksum-valid record.
    Record(RecordView<'a>),
    /// The buffer ends before the record does; `needed` bytes would hold it (or its header).
    Incomplete {
        /// Total bytes needed from the record start.
        needed: usize,
    },
    /// Not a valid record here.
    Invalid(&'static str),
}

/// Size of the record that would store `msg`.
pub fn record_len(subject_len: usize, headers_len: usize, payload_len: usize) -> usize {
    RECORD_HEADER_BYTES + subject_len + headers_len + payload_len
}

/// Appends the record for `msg` with sequence `seq` to `buf`. The caller has checked the
/// sizes against [`MAX_SUBJECT_BYTES`] and [`MAX_RECORD_BYTES`].
pub fn encode_record(buf: &mut Vec<u8>, seq: u64, msg: &NewMessage) {
    let len = record_len(msg.subject.len(), msg.headers.len(), msg.payload.len());
    debug_assert!(len <= MAX_RECORD_BYTES && msg.subject.len() <= MAX_SUBJECT_BYTES);
    let start = buf.len();
    buf.reserve(len);
    buf.extend_from_slice(&(len as u32).to_le_bytes());
    buf.extend_from_slice(&[0u8; 4]);
    buf.extend_from_slice(&seq.to_le_bytes());
    buf.extend_from_slice(&msg.ts_ns.to_le_bytes());
    buf.extend_from_slice(&(msg.subject.len() as u16).to_le_bytes());
    buf.extend_from_slice(&(msg.headers.len() as u32).to_le_bytes());
    buf.extend_from_slice(msg.subject.as_bytes());
    buf.extend_from_slice(&msg.headers);
    buf.extend_from_slice(&msg.payload);
    let crc = record_crc(&buf[start..]);
    buf[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// CRC of a record: over the length field and everything after the CRC field, so that a
/// damaged length is caught too.
fn record_crc(record: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&record[0..4]);
    h.update(&record[8..]);
    h.finalize()
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// Reads a little-endian `u64` at `at`; the caller checked the bounds.
pub(crate) fn read_u64(b: &[u8], at: usize) -> u64 {
    u64_at(b, at)
}
/// Reads a little-endian `u32` at `at`; the caller checked the bounds.
pub(crate) fn read_u32(b: &[u8], at: usize) -> u32 {
    u32_at(b, at)
}
/// Reads a little-endian `u16` at `at`; the caller checked the bounds.
pub(crate) fn read_u16(b: &[u8], at: usize) -> u16 {
    u16_at(b, at)
}

/// Decodes the record starting at `buf[0]`. Checks, in order: the length is plausible, the
/// inner lengths fit, the whole record is present, the CRC matches.
pub fn decode_record(buf: &[u8]) -> Decoded<'_> {
    if buf.len() < 4 {
        return Decoded::Incomplete {
            needed: RECORD_HEADER_BYTES,
        };
    }
    let len = u32_at(buf, 0) as usize;
    if len == 0 {
        return Decoded::Invalid("zero length (preallocated or zeroed space)");
    }
    if !(RECORD_HEADER_BYTES..=MAX_RECORD_BYTES).contains(&len) {
        return Decoded::Invalid("record length out of range");
    }
    if buf.len() < RECORD_HEADER_BYTES {
        return Decoded::Incomplete {
            needed: RECORD_HEADER_BYTES.max(len),
        };
    }
    let subject_len = u16_at(buf, 24) as usize;
    let headers_len = u32_at(buf, 26) as usize;
    if subject_len == 0 || RECORD_HEADER_BYTES + subject_len + headers_len > len {
        return Decoded::Invalid("subject or header length does not fit the record");
    }
    if buf.len() < len {
        return Decoded::Incomplete { needed: len };
    }
    let record = &buf[..len];
    if record_crc(record) != u32_at(buf, 4) {
        return Decoded::Invalid("checksum mismatch");
    }
    let subject_end = RECORD_HEADER_BYTES + subject_len;
    let headers_end = subject_end + headers_len;
    Decoded::Record(RecordView {
        seq: u64_at(buf, 8),
        ts_ns: u64_at(buf, 16),
        subject: &record[RECORD_HEADER_BYTES..subject_end],
        headers: &record[subject_end..headers_end],
        payload: &record[headers_end..],
        len,
    })
}

/// Cheap pre-check used when hunting for the next valid record after damage: the length and
/// sequence are plausible, so computing a CRC is worth it.
pub fn plausible_at(buf: &[u8], min_seq: u64, max_seq: u64) -> bool {
    if buf.len() < RECORD_HEADER_BYTES {
        return false;
    }
    let len = u32_at(buf, 0) as usize;
    let seq = u64_at(buf, 8);
    (RECORD_HEADER_BYTES..=MAX_RECORD_BYTES).contains(&len) && seq >= min_seq && seq <= max_seq
}

/// The segment header for a segment whose first sequence is `base_seq`.
pub fn encode_segment_header(base_seq: u64) -> [u8; SEGMENT_HEADER_BYTES] {
    let mut h = [0u8; SEGMENT_HEADER_BYTES];
    h[0..4].copy_from_slice(&SEGMENT_MAGIC);
    h[4..6].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    h[6] = CHECKSUM_CRC32;
    h[8..16].copy_from_slice(&base_seq.to_le_bytes());
    let crc = crc32fast::hash(&h[0..16]);
    h[16..20].copy_from_slice(&crc.to_le_bytes());
    h
}

/// Why a segment header was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderProblem {
    /// Shorter than a header (a segment whose creation was cut short).
    Short,
    /// Magic or checksum wrong.
    Damaged,
    /// Intact, but written by another format version or checksum algorithm.
    Unsupported,
    /// Intact, but names another base sequence than the file name.
    WrongBase,
}

/// Checks a segment header against the base sequence from the file name.
pub fn check_segment_header(buf: &[u8], base_seq: u64) -> Result<(), HeaderProblem> {
    if buf.len() < SEGMENT_HEADER_BYTES {
        return Err(HeaderProblem::Short);
    }
    if buf[0..4] != SEGMENT_MAGIC || crc32fast::hash(&buf[0..16]) != u32_at(buf, 16) {
        return Err(HeaderProblem::Damaged);
    }
    if u16_at(buf, 4) != FORMAT_VERSION || buf[6] != CHECKSUM_CRC32 {
        return Err(HeaderProblem::Unsupported);
    }
    if u64_at(buf, 8) != base_seq {
        return Err(HeaderProblem::WrongBase);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn msg(subject: &str, hdr: &'static [u8], payload: &'static [u8]) -> NewMessage {
        NewMessage {
            subject: subject.into(),
            headers: Bytes::from_static(hdr),
            payload: Bytes::from_static(payload),
            ts_ns: 77,
        }
    }

    #[test]
    fn record_round_trips_with_all_fields() {
        let mut buf = Vec::new();
        encode_record(&mut buf, 42, &msg("a.b", b"NATS/1.0\r\n\r\n", b"hello"));
        assert_eq!(buf.len(), record_len(3, 12, 5));
        let Decoded::Record(r) = decode_record(&buf) else {
            panic!("not decoded")
        };
        assert_eq!((r.seq, r.ts_ns, r.len), (42, 77, buf.len()));
        assert_eq!(r.subject_str(), Some("a.b"));
        assert_eq!(r.headers, b"NATS/1.0\r\n\r\n");
        assert_eq!(r.payload, b"hello");
    }

    #[test]
    fn every_single_bit_flip_is_detected() {
        let mut buf = Vec::new();
        encode_record(&mut buf, 9, &msg("x", b"", b"payload bytes"));
        for bit in 0..buf.len() * 8 {
            let mut bad = buf.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(
                !matches!(decode_record(&bad), Decoded::Record(_)),
                "flip of bit {bit} not detected"
            );
        }
    }

    #[test]
    fn truncated_record_is_incomplete_and_zeros_are_invalid() {
        let mut buf = Vec::new();
        encode_record(&mut buf, 1, &msg("x", b"", b"abc"));
        for cut in 0..buf.len() {
            assert!(
                matches!(decode_record(&buf[..cut]), Decoded::Incomplete { .. }),
                "{cut}"
            );
        }
        assert!(matches!(decode_record(&[0u8; 64]), Decoded::Invalid(_)));
    }

    #[test]
    fn segment_header_checks_magic_version_and_base() {
        let h = encode_segment_header(5);
        assert_eq!(check_segment_header(&h, 5), Ok(()));
        assert_eq!(check_segment_header(&h, 6), Err(HeaderProblem::WrongBase));
        assert_eq!(check_segment_header(&h[..10], 5), Err(HeaderProblem::Short));
        let mut bad = h;
        bad[1] ^= 4;
        assert_eq!(check_segment_header(&bad, 5), Err(HeaderProblem::Damaged));
    }
}
