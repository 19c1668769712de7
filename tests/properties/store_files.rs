//! The store's other files (segment index, `deletes.dat`, `snapshot.dat`): any bytes either
//! decode to a value that encodes back to those bytes, or are refused. "Those bytes" with the
//! reserved fields zeroed: readers ignore them (docs/storage-format.md), writers write zeros.

use jetlog::store::index::SegmentIndex;
use jetlog::store::meta::{DeletesFile, Snapshot};

/// Input layout: `[which file | 0x80 to fix the checksum][bytes]`. With the high bit set the
/// trailing CRC is recomputed first, so that mutated bodies reach the checks after it (a file
/// with a good CRC and bad contents can only come from a bug, but must not panic either).
pub fn store_file(data: &[u8]) {
    let [which, buf @ ..] = data else {
        return;
    };
    let mut fixed;
    let buf = if which & 0x80 != 0 && buf.len() >= 4 {
        fixed = buf.to_vec();
        let body = fixed.len() - 4;
        let crc = crc32fast::hash(&fixed[..body]);
        fixed[body..].copy_from_slice(&crc.to_le_bytes());
        &fixed[..]
    } else {
        buf
    };
    match (which & 0x7f) % 3 {
        0 => {
            // The base sequence and segment length come from the file name and the segment;
            // take them from the bytes too, so that those two checks can pass.
            let at = |offset: usize| {
                buf.get(offset..offset + 8)
                    .map_or(0, |b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
            };
            let (base_seq, segment_len) = (at(8), at(24));
            if let Ok(index) = SegmentIndex::decode(buf, base_seq, segment_len) {
                assert_eq!(index.encode(segment_len), canonical(buf, &[7]), "index");
                assert_eq!(index.base_seq(), base_seq);
                if let (Some(first), Some(last)) = (index.first_seq(), index.last_seq()) {
                    assert!(first >= base_seq && first <= last);
                    for seq in first..=last.min(first.saturating_add(64)) {
                        if let Some(offset) = index.offset(seq) {
                            assert!(u64::from(offset) < segment_len);
                        }
                    }
                }
            }
            let _ = SegmentIndex::decode(buf, 1, buf.len() as u64);
        }
        1 => {
            if let Ok(deletes) = DeletesFile::decode(buf) {
                assert_eq!(deletes.encode(), canonical(buf, &[7]), "deletes.dat");
                for pair in deletes.ranges.windows(2) {
                    assert!(
                        pair[0].1 < pair[1].0,
                        "ranges overlap: {:?}",
                        deletes.ranges
                    );
                }
                assert!(deletes.ranges.iter().all(|(lo, hi)| lo <= hi));
            }
        }
        _ => {
            if let Ok(snapshot) = Snapshot::decode(buf) {
                assert_eq!(
                    snapshot.encode(),
                    canonical(buf, &[7, 12, 13, 14, 15]),
                    "snapshot"
                );
            }
        }
    }
}

/// `file` as a writer would have written it: the reserved bytes at `reserved` zero, and the
/// trailing CRC computed over that.
fn canonical(file: &[u8], reserved: &[usize]) -> Vec<u8> {
    let mut out = file.to_vec();
    for &at in reserved {
        out[at] = 0;
    }
    let body = out.len() - 4;
    let crc = crc32fast::hash(&out[..body]);
    out[body..].copy_from_slice(&crc.to_le_bytes());
    out
}
