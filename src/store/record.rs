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
/// Set in a record's `headers_len` field when its payload is stored compressed (Snappy, raw
/// format), preceded by its length before compression as a `u32`. Header blocks are never
/// longer than `MAX_RECORD_BYTES`, so the bit is free in every record.
const COMPRESSED_FLAG: u32 = 1 << 31;
/// Payloads shorter than this are stored as they are: compressing them saves too little.
pub const MIN_COMPRESS_BYTES: usize = 64;

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
    /// Payload, as stored: compressed when `compressed` (see [`RecordView::payload_bytes`]).
    pub payload: &'a [u8],
    pub compressed: bool,
    /// Total record length in bytes on disk: where the next record starts.
    pub len: usize,
    /// The message's stored size as limits and state count it: the record's length with the
    /// payload uncompressed (`len` for a record stored plain).
    pub size: usize,
}

impl RecordView<'_> {
    /// The subject as text; `None` if it is not UTF-8 (which a CRC-valid record can only hold
    /// if it was written so, so callers treat it as corruption).
    pub fn subject_str(&self) -> Option<&str> {
        std::str::from_utf8(self.subject).ok()
    }

    /// The payload as the publisher sent it; `Err` when a compressed payload (whose CRC
    /// matched) does not decompress to its recorded length.
    pub fn payload_bytes(&self) -> Result<bytes::Bytes, &'static str> {
        if !self.compressed {
            return Ok(bytes::Bytes::copy_from_slice(self.payload));
        }
        let want = self.size - (self.len - self.payload.len() - 4);
        // The stream states its own length: checked before anything is allocated.
        if snap::raw::decompress_len(self.payload).ok() != Some(want) {
            return Err("compressed payload does not decompress to its length");
        }
        let mut out = vec![0u8; want];
        match snap::raw::Decoder::new().decompress(self.payload, &mut out) {
            Ok(n) if n == want => Ok(bytes::Bytes::from(out)),
            _ => Err("compressed payload does not decompress to its length"),
        }
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

/// Appends the record for `msg` with its payload compressed when that makes it smaller;
/// otherwise exactly what [`encode_record`] writes. Returns the message's stored size (the
/// record's length uncompressed, as limits count it).
pub fn encode_record_compressed(
    buf: &mut Vec<u8>,
    seq: u64,
    msg: &NewMessage,
    encoder: &mut snap::raw::Encoder,
) -> usize {
    let size = record_len(msg.subject.len(), msg.headers.len(), msg.payload.len());
    if msg.payload.len() < MIN_COMPRESS_BYTES {
        encode_record(buf, seq, msg);
        return size;
    }
    let start = buf.len();
    let prefix = RECORD_HEADER_BYTES + msg.subject.len() + msg.headers.len() + 4;
    let bound = snap::raw::max_compress_len(msg.payload.len());
    buf.resize(start + prefix + bound, 0);
    let packed = match encoder.compress(&msg.payload, &mut buf[start + prefix..]) {
        Ok(n) if n + 4 < msg.payload.len() => n,
        _ => {
            buf.truncate(start);
            encode_record(buf, seq, msg);
            return size;
        }
    };
    buf.truncate(start + prefix + packed);
    let len = prefix + packed;
    let at = |i: usize| start + i;
    buf[at(0)..at(4)].copy_from_slice(&(len as u32).to_le_bytes());
    buf[at(8)..at(16)].copy_from_slice(&seq.to_le_bytes());
    buf[at(16)..at(24)].copy_from_slice(&msg.ts_ns.to_le_bytes());
    buf[at(24)..at(26)].copy_from_slice(&(msg.subject.len() as u16).to_le_bytes());
    let flagged = msg.headers.len() as u32 | COMPRESSED_FLAG;
    buf[at(26)..at(30)].copy_from_slice(&flagged.to_le_bytes());
    let subject_end = at(RECORD_HEADER_BYTES) + msg.subject.len();
    buf[at(RECORD_HEADER_BYTES)..subject_end].copy_from_slice(msg.subject.as_bytes());
    let headers_end = subject_end + msg.headers.len();
    buf[subject_end..headers_end].copy_from_slice(&msg.headers);
    buf[headers_end..headers_end + 4].copy_from_slice(&(msg.payload.len() as u32).to_le_bytes());
    let crc = record_crc(&buf[start..]);
    buf[at(4)..at(8)].copy_from_slice(&crc.to_le_bytes());
    size
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
    let headers_field = u32_at(buf, 26);
    let compressed = headers_field & COMPRESSED_FLAG != 0;
    let headers_len = (headers_field & !COMPRESSED_FLAG) as usize;
    let raw_len_bytes = if compressed { 4 } else { 0 };
    if subject_len == 0 || RECORD_HEADER_BYTES + subject_len + headers_len + raw_len_bytes > len {
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
    let (payload, size) = if compressed {
        let raw_len = u32_at(record, headers_end) as usize;
        let size = headers_end + raw_len;
        if size > MAX_RECORD_BYTES {
            return Decoded::Invalid("uncompressed length out of range");
        }
        (&record[headers_end + 4..], size)
    } else {
        (&record[headers_end..], len)
    };
    Decoded::Record(RecordView {
        seq: u64_at(buf, 8),
        ts_ns: u64_at(buf, 16),
        subject: &record[RECORD_HEADER_BYTES..subject_end],
        headers: &record[subject_end..headers_end],
        payload,
        compressed,
        len,
        size,
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
    fn a_compressed_record_reads_back_whole_and_counts_its_plain_size() {
        let payload: &'static [u8] = &[b'a'; 1000];
        let mut buf = Vec::new();
        let mut enc = snap::raw::Encoder::new();
        let size = encode_record_compressed(&mut buf, 7, &msg("c.x", b"H", payload), &mut enc);
        assert_eq!(size, record_len(3, 1, 1000));
        assert!(buf.len() < 100, "stored in {} bytes", buf.len());
        let Decoded::Record(r) = decode_record(&buf) else {
            panic!("not decoded")
        };
        assert!(r.compressed);
        assert_eq!((r.seq, r.len, r.size), (7, buf.len(), size));
        assert_eq!(r.headers, b"H");
        assert_eq!(&r.payload_bytes().unwrap()[..], payload);
        for bit in 0..buf.len() * 8 {
            let mut bad = buf.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(
                !matches!(decode_record(&bad), Decoded::Record(_)),
                "flip of bit {bit} not detected"
            );
        }
        // What does not shrink, or is short, is stored plain.
        let mut plain = Vec::new();
        encode_record_compressed(&mut plain, 8, &msg("c.x", b"", b"short"), &mut enc);
        let Decoded::Record(r) = decode_record(&plain) else {
            panic!("not decoded")
        };
        assert!(!r.compressed && r.size == r.len);
        let noise: Vec<u8> = (0..500u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        let noisy = NewMessage {
            subject: "n".into(),
            headers: Bytes::new(),
            payload: Bytes::from(noise.clone()),
            ts_ns: 1,
        };
        let mut raw = Vec::new();
        encode_record_compressed(&mut raw, 9, &noisy, &mut enc);
        let Decoded::Record(r) = decode_record(&raw) else {
            panic!("not decoded")
        };
        assert_eq!(r.payload_bytes().unwrap(), noise);
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
