//! Segment records: any bytes either decode to a record whose checksum holds, whose parts lie
//! inside the record, and which encodes back to the same bytes, or give an error; and a scan
//! of any file accounts for every byte after the header as a record, damage or a tail.

use std::io;

use bytes::Bytes;
use jetlog::store::io::VfsFile;
use jetlog::store::record::{
    decode_record, encode_record, Decoded, MAX_RECORD_BYTES, RECORD_HEADER_BYTES,
    SEGMENT_HEADER_BYTES,
};
use jetlog::store::scan::scan_segment;
use jetlog::store::NewMessage;

/// Records up to this length also get every single bit flipped (costs len² per record).
const BIT_FLIP_MAX_BYTES: usize = 256;

/// Decodes `buf` and checks what came out.
pub fn decode_checked(buf: &[u8]) {
    match decode_record(buf) {
        Decoded::Record(r) => {
            assert!((RECORD_HEADER_BYTES..=MAX_RECORD_BYTES).contains(&r.len));
            assert!(r.len <= buf.len(), "a record longer than its buffer");
            let record = &buf[..r.len];
            for part in [r.subject, r.headers, r.payload] {
                assert!(within(part, record), "a part outside its record");
            }
            // A compressed payload follows its uncompressed length (4 bytes).
            let length_field = if r.compressed { 4 } else { 0 };
            assert_eq!(
                RECORD_HEADER_BYTES
                    + r.subject.len()
                    + r.headers.len()
                    + length_field
                    + r.payload.len(),
                r.len
            );
            assert!(!r.subject.is_empty());
            assert!(r.size <= MAX_RECORD_BYTES);
            if r.compressed {
                // Arbitrary compressed bytes either expand to exactly the recorded length or
                // are refused; re-compressing need not give the same bytes back.
                if let Ok(payload) = r.payload_bytes() {
                    let head = RECORD_HEADER_BYTES + r.subject.len() + r.headers.len();
                    assert_eq!(head + payload.len(), r.size);
                }
            } else if let Some(subject) = r.subject_str() {
                let mut again = Vec::new();
                let msg = NewMessage {
                    subject: subject.to_string(),
                    headers: Bytes::copy_from_slice(r.headers),
                    payload: Bytes::copy_from_slice(r.payload),
                    ts_ns: r.ts_ns,
                };
                encode_record(&mut again, r.seq, &msg);
                assert_eq!(&again[..], record, "decoded record does not encode back");
            }
            for cut in 0..r.len {
                match decode_record(&buf[..cut]) {
                    Decoded::Incomplete { needed } => assert!(needed > cut && needed <= r.len),
                    other => panic!("prefix of {cut} bytes of a record gave {other:?}"),
                }
            }
            if r.len <= BIT_FLIP_MAX_BYTES {
                let mut damaged = record.to_vec();
                for bit in 0..r.len * 8 {
                    damaged[bit / 8] ^= 1 << (bit % 8);
                    let decoded = decode_record(&damaged);
                    assert!(
                        !matches!(decoded, Decoded::Record(_)),
                        "flip of bit {bit} not detected"
                    );
                    damaged[bit / 8] ^= 1 << (bit % 8);
                }
            }
        }
        Decoded::Incomplete { needed } => {
            assert!(
                needed > buf.len(),
                "incomplete, yet {needed} bytes are there"
            );
            assert!(needed <= MAX_RECORD_BYTES);
        }
        Decoded::Invalid(_) => {}
    }
}

/// Rewrites the CRC of each record that follows the header back to back, then of the record
/// at offset 0 (whose CRC field lies in the header, which the scan does not read).
fn fix_checksums(file: &mut [u8]) {
    let mut pos = SEGMENT_HEADER_BYTES;
    while let Some(len) = fix_checksum_at(file, pos) {
        pos += len;
    }
    fix_checksum_at(file, 0);
}

/// Rewrites the CRC of the record at `pos` if its length field fits the file; returns the
/// length.
fn fix_checksum_at(file: &mut [u8], pos: usize) -> Option<usize> {
    let head = file.get(pos..pos + 4)?;
    let len = u32::from_le_bytes(head.try_into().expect("4 bytes")) as usize;
    if len < RECORD_HEADER_BYTES || file.len() - pos < len {
        return None;
    }
    let record = &file[pos..pos + len];
    let mut crc = crc32fast::Hasher::new();
    crc.update(&record[0..4]);
    crc.update(&record[8..]);
    let crc = crc.finalize();
    file[pos + 4..pos + 8].copy_from_slice(&crc.to_le_bytes());
    Some(len)
}

fn within(part: &[u8], whole: &[u8]) -> bool {
    let (part, whole) = (part.as_ptr_range(), whole.as_ptr_range());
    part.start >= whole.start && part.end <= whole.end
}

/// Input layout: `[base sequence | 0x80 to fix checksums][sequence span][file]`. The file is
/// decoded as a record at offset 0, then scanned as a segment (its first 20 bytes standing for
/// the header, which the scan does not read) whose sequences must lie in `[base, base + span)`
/// (span 255: unbounded). With the high bit set, the CRC of every record whose length fits is
/// recomputed first, so that mutated records reach the checks after the checksum.
pub fn segment_record(data: &[u8]) {
    let [base, span, file @ ..] = data else {
        return;
    };
    let mut fixed;
    let file = if base & 0x80 != 0 {
        fixed = file.to_vec();
        fix_checksums(&mut fixed);
        &fixed[..]
    } else {
        file
    };
    decode_checked(file);
    let base_seq = u64::from(base & 0x7f);
    let seq_limit = if *span == u8::MAX {
        u64::MAX
    } else {
        base_seq + u64::from(*span)
    };
    let mem = MemFile(file.to_vec());
    let file_len = file.len() as u64;
    let mut records: Vec<(u64, u64, u64)> = Vec::new();
    let outcome = scan_segment(&mem, file_len, base_seq, seq_limit, |r, offset| {
        records.push((offset, r.len as u64, r.seq));
    })
    .expect("reads from memory do not fail");

    assert_eq!(outcome.records, records.len() as u64);
    assert!(outcome.torn_tail.is_none() || outcome.zero_tail.is_none());
    for pair in records.windows(2) {
        assert!(pair[0].2 < pair[1].2, "sequences do not grow: {records:?}");
    }
    for &(offset, len, seq) in &records {
        assert!(seq >= base_seq && seq < seq_limit);
        let at = &file[offset as usize..];
        let Decoded::Record(r) = decode_record(at) else {
            panic!("the scan reported a record at {offset} that does not decode");
        };
        assert_eq!((r.len as u64, r.seq), (len, seq));
        decode_checked(at);
    }
    // Records and damaged ranges tile the file from the header to the tail, in order.
    let mut spans: Vec<(u64, u64)> = records.iter().map(|&(o, l, _)| (o, o + l)).collect();
    spans.extend(outcome.damaged.iter().map(|d| (d.offset, d.offset + d.len)));
    spans.sort_unstable();
    let mut pos = SEGMENT_HEADER_BYTES as u64;
    for (start, end) in spans {
        assert_eq!(start, pos, "a gap or an overlap at {pos}: {outcome:?}");
        assert!(end > start);
        pos = end;
    }
    let end = outcome
        .torn_tail
        .or(outcome.zero_tail)
        .unwrap_or(file_len.max(pos));
    assert_eq!(pos, end, "{outcome:?}");
    let last_record_end = records
        .last()
        .map_or(SEGMENT_HEADER_BYTES as u64, |r| r.0 + r.1);
    assert_eq!(outcome.valid_end, last_record_end);
    if let Some(tail) = outcome.zero_tail {
        assert!(file[tail as usize..].iter().all(|b| *b == 0));
    }
    if let Some(tail) = outcome.torn_tail {
        assert!(file[tail as usize..].iter().any(|b| *b != 0));
    }
}

/// A read-only file in memory.
#[derive(Debug)]
struct MemFile(Vec<u8>);

impl VfsFile for MemFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(self.0.len());
        let n = buf.len().min(self.0.len() - start);
        buf[..n].copy_from_slice(&self.0[start..start + n]);
        Ok(n)
    }
    fn write_at(&self, _: &[u8], _: u64) -> io::Result<usize> {
        Err(io::ErrorKind::Unsupported.into())
    }
    fn sync_data(&self) -> io::Result<()> {
        Ok(())
    }
    fn set_len(&self, _: u64) -> io::Result<()> {
        Err(io::ErrorKind::Unsupported.into())
    }
    fn allocate(&self, _: u64, _: u64) -> io::Result<()> {
        Err(io::ErrorKind::Unsupported.into())
    }
    fn file_len(&self) -> io::Result<u64> {
        Ok(self.0.len() as u64)
    }
}
