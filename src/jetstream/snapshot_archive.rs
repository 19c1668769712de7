//! The archive a stream snapshot carries (`docs/snapshot-facts.md` §3): nats-server 2.15's
//! entry layout (`NATSARC1`, then `state.json`, each consumer, each stored message, and an
//! all-zero end entry) inside a Snappy framed stream, whose CRC-32C per frame finds damage.
//! A reader refuses anything that does not decode whole up to the end entry, so a damaged or
//! truncated backup is known as such before anything is restored from it.

use std::io::{self, Read, Write};

use crate::store::record::MAX_RECORD_BYTES;

/// What every archive starts with, after decompression.
pub const MAGIC: &[u8; 8] = b"NATSARC1";
/// The entry holding the stream's state, first in every archive.
pub const STATE_ENTRY: &str = "state.json";
/// Consumer entries are named `consumers/<name>`.
pub const CONSUMER_PREFIX: &str = "consumers/";
/// The longest entry name a reader takes (a subject is at most this long in the store).
const MAX_NAME_BYTES: u64 = 65_535;

/// Why an archive could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("archive is damaged: {0}")]
    Damaged(String),
    #[error("archive is truncated")]
    Truncated,
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// One entry of an archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// `state.json`, `consumers/<name>`, or a message's subject.
    pub name: String,
    pub ts_ns: i64,
    /// The message's stream sequence; 0 for state and consumers.
    pub seq: u64,
    pub headers: Vec<u8>,
    pub payload: Vec<u8>,
}

impl Entry {
    pub fn is_message(&self) -> bool {
        self.seq > 0
    }
}

/// Writes an archive into `W`, compressed as it goes.
pub struct ArchiveWriter<W: Write> {
    out: snap::write::FrameEncoder<W>,
    scratch: Vec<u8>,
}

impl<W: Write> ArchiveWriter<W> {
    pub fn new(out: W) -> io::Result<Self> {
        let mut out = snap::write::FrameEncoder::new(out);
        out.write_all(MAGIC)?;
        Ok(Self {
            out,
            scratch: Vec::with_capacity(64),
        })
    }

    pub fn entry(
        &mut self,
        name: &str,
        ts_ns: i64,
        seq: u64,
        headers: &[u8],
        payload: &[u8],
    ) -> io::Result<()> {
        let head = &mut self.scratch;
        head.clear();
        uvarint(head, name.len() as u64);
        uvarint(head, ((ts_ns << 1) ^ (ts_ns >> 63)) as u64);
        uvarint(head, seq);
        uvarint(head, headers.len() as u64);
        uvarint(head, payload.len() as u64);
        self.out.write_all(head)?;
        self.out.write_all(name.as_bytes())?;
        self.out.write_all(headers)?;
        self.out.write_all(payload)
    }

    /// Writes the end entry and everything still buffered.
    pub fn finish(&mut self) -> io::Result<()> {
        self.out.write_all(&[0; 5])?;
        self.out.flush()
    }

    /// The compressed bytes written so far (for a sender that takes them off in chunks).
    pub fn output(&mut self) -> &mut W {
        self.out.get_mut()
    }
}

fn uvarint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Reads an archive's entries in order.
pub struct ArchiveReader<R: Read> {
    input: snap::read::FrameDecoder<R>,
    ended: bool,
}

impl<R: Read> ArchiveReader<R> {
    pub fn new(input: R) -> Result<Self, ArchiveError> {
        let mut input = snap::read::FrameDecoder::new(input);
        let mut magic = [0u8; 8];
        read_exact(&mut input, &mut magic)?;
        if &magic != MAGIC {
            return Err(ArchiveError::Damaged("not a stream snapshot".into()));
        }
        Ok(Self {
            input,
            ended: false,
        })
    }

    /// The next entry; `None` after the end entry, which must be followed by nothing.
    pub fn next_entry(&mut self) -> Result<Option<Entry>, ArchiveError> {
        if self.ended {
            return Ok(None);
        }
        let name_len = self.uvarint()?;
        let zigzag = self.uvarint()?;
        let ts_ns = ((zigzag >> 1) as i64) ^ -((zigzag & 1) as i64);
        let seq = self.uvarint()?;
        let headers_len = self.uvarint()?;
        let payload_len = self.uvarint()?;
        if name_len == 0 {
            if ts_ns != 0 || seq != 0 || headers_len != 0 || payload_len != 0 {
                return Err(ArchiveError::Damaged("an entry without a name".into()));
            }
            let mut rest = [0u8; 1];
            if self.input.read(&mut rest).map_err(damaged)? != 0 {
                return Err(ArchiveError::Damaged("data after the end".into()));
            }
            self.ended = true;
            return Ok(None);
        }
        if name_len > MAX_NAME_BYTES || headers_len + payload_len > MAX_RECORD_BYTES as u64 {
            return Err(ArchiveError::Damaged("an entry is too large".into()));
        }
        let mut name = vec![0u8; name_len as usize];
        read_exact(&mut self.input, &mut name)?;
        let name = String::from_utf8(name)
            .map_err(|_| ArchiveError::Damaged("an entry name is not UTF-8".into()))?;
        let mut headers = vec![0u8; headers_len as usize];
        read_exact(&mut self.input, &mut headers)?;
        let mut payload = vec![0u8; payload_len as usize];
        read_exact(&mut self.input, &mut payload)?;
        Ok(Some(Entry {
            name,
            ts_ns,
            seq,
            headers,
            payload,
        }))
    }

    fn uvarint(&mut self) -> Result<u64, ArchiveError> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let mut byte = [0u8; 1];
            read_exact(&mut self.input, &mut byte)?;
            value |= u64::from(byte[0] & 0x7f) << shift;
            if byte[0] & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(ArchiveError::Damaged("a number is too long".into()))
    }
}

fn damaged(err: io::Error) -> ArchiveError {
    ArchiveError::Damaged(err.to_string())
}

fn read_exact(input: &mut impl Read, buf: &mut [u8]) -> Result<(), ArchiveError> {
    input.read_exact(buf).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => ArchiveError::Truncated,
        _ => damaged(e),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn archive(messages: u64) -> Vec<u8> {
        let mut w = ArchiveWriter::new(Vec::new()).unwrap();
        w.entry(STATE_ENTRY, 5, 0, b"", br#"{"messages":3}"#)
            .unwrap();
        w.entry("consumers/C", 6, 0, b"", b"{}").unwrap();
        for seq in 1..=messages {
            w.entry(
                "s.a",
                -(seq as i64),
                seq,
                b"NATS/1.0\r\n\r\n",
                &[seq as u8; 300],
            )
            .unwrap();
        }
        w.finish().unwrap();
        w.output().clone()
    }

    fn read_all(bytes: &[u8]) -> Result<Vec<Entry>, ArchiveError> {
        let mut r = ArchiveReader::new(bytes)?;
        let mut out = Vec::new();
        while let Some(e) = r.next_entry()? {
            out.push(e);
        }
        Ok(out)
    }

    #[test]
    fn entries_come_back_in_order_with_negative_times() {
        let entries = read_all(&archive(50)).unwrap();
        assert_eq!(entries.len(), 52);
        assert_eq!(entries[0].name, STATE_ENTRY);
        assert_eq!(entries[1].name, "consumers/C");
        assert!(!entries[1].is_message());
        let last = &entries[51];
        assert_eq!((last.seq, last.ts_ns, last.payload.len()), (50, -50, 300));
    }

    #[test]
    fn every_cut_and_any_flipped_byte_is_refused() {
        let bytes = archive(20);
        for cut in 0..bytes.len() {
            assert!(read_all(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        for at in (0..bytes.len()).step_by(3) {
            let mut bad = bytes.clone();
            bad[at] ^= 0x04;
            assert!(read_all(&bad).is_err(), "flip at {at}");
        }
        let mut longer = bytes.clone();
        longer.extend_from_slice(&bytes);
        assert!(read_all(&longer).is_err(), "data after the end");
    }
}
