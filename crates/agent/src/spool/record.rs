//! Spool record framing, pure. A frame is
//! `u32 body_len | u32 crc32c | body`, body = `u64 seq | i64 ts_ms | u16 loc_len | loc |
//! u32 log_len | log | u8 has_pos [| u64 dev | u64 ino | u64 offset]`, all little-endian.
//! The CRC-32C covers the length field and the body, so a torn or flipped tail is reported as
//! `Truncated` or `Corrupt`, never decoded as some other record.

use thiserror::Error;

use crate::event::{Event, Record, SourcePos, MAX_LOG};

/// `body_len` and `crc32c`.
pub const HEADER_LEN: usize = 8;
/// Body without its variable parts: seq, ts_ms, loc_len, log_len, has_pos.
const FIXED_BODY: usize = 8 + 8 + 2 + 4 + 1;
const POS_LEN: usize = 24;
/// Longest `Event.location` a record holds (its length is a u16).
pub const MAX_LOCATION: usize = u16::MAX as usize;
/// Largest body any valid record has; a header announcing more is corrupt.
pub const MAX_BODY: usize = FIXED_BODY + MAX_LOCATION + MAX_LOG + POS_LEN;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum EncodeError {
    #[error("event location is {0} bytes, more than {MAX_LOCATION}")]
    LocationTooLong(usize),
    #[error("event log is {0} bytes, more than {MAX_LOG}")]
    LogTooLong(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// The bytes end inside the frame: a torn write.
    #[error("record truncated")]
    Truncated,
    /// The frame is complete but its checksum or layout is wrong.
    #[error("record corrupt")]
    Corrupt,
}

/// Whether the event can be framed.
pub fn check(ev: &Event) -> Result<(), EncodeError> {
    if ev.location.len() > MAX_LOCATION {
        return Err(EncodeError::LocationTooLong(ev.location.len()));
    }
    if ev.log.len() > MAX_LOG {
        return Err(EncodeError::LogTooLong(ev.log.len()));
    }
    Ok(())
}

fn body_len(ev: &Event) -> usize {
    FIXED_BODY + ev.location.len() + ev.log.len() + if ev.pos.is_some() { POS_LEN } else { 0 }
}

/// Bytes the framed record takes.
pub fn encoded_len(ev: &Event) -> usize {
    HEADER_LEN + body_len(ev)
}

/// Appends the framed record to `out`.
pub fn encode(rec: &Record, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let ev = &rec.event;
    check(ev)?;
    let body = body_len(ev);
    let start = out.len();
    out.reserve(HEADER_LEN + body);
    // Both lengths were checked above, so the casts are exact.
    out.extend_from_slice(&(body as u32).to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&rec.seq.to_le_bytes());
    out.extend_from_slice(&ev.ts_ms.to_le_bytes());
    out.extend_from_slice(&(ev.location.len() as u16).to_le_bytes());
    out.extend_from_slice(ev.location.as_bytes());
    out.extend_from_slice(&(ev.log.len() as u32).to_le_bytes());
    out.extend_from_slice(&ev.log);
    match ev.pos {
        None => out.push(0),
        Some(p) => {
            out.push(1);
            out.extend_from_slice(&p.dev.to_le_bytes());
            out.extend_from_slice(&p.ino.to_le_bytes());
            out.extend_from_slice(&p.offset.to_le_bytes());
        }
    }
    let crc = frame_crc(&out[start..start + 4], &out[start + HEADER_LEN..]);
    out[start + 4..start + HEADER_LEN].copy_from_slice(&crc.to_le_bytes());
    Ok(())
}

/// Whole frame length announced by a header; `Corrupt` if no valid record is that long.
pub fn frame_len(header: &[u8; HEADER_LEN]) -> Result<usize, DecodeError> {
    let body = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    if !(FIXED_BODY..=MAX_BODY).contains(&body) {
        return Err(DecodeError::Corrupt);
    }
    Ok(HEADER_LEN + body)
}

/// Decodes the frame at the start of `buf`; returns the record and the bytes it took.
pub fn decode(buf: &[u8]) -> Result<(Record, usize), DecodeError> {
    let header: &[u8; HEADER_LEN] = buf
        .get(..HEADER_LEN)
        .and_then(|h| h.try_into().ok())
        .ok_or(DecodeError::Truncated)?;
    let total = frame_len(header)?;
    let frame = buf.get(..total).ok_or(DecodeError::Truncated)?;
    let stored = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    let body = &frame[HEADER_LEN..];
    if frame_crc(&header[..4], body) != stored {
        return Err(DecodeError::Corrupt);
    }
    let rec = parse_body(body).ok_or(DecodeError::Corrupt)?;
    Ok((rec, total))
}

fn parse_body(body: &[u8]) -> Option<Record> {
    let mut c = Cursor(body);
    let seq = u64::from_le_bytes(c.array()?);
    let ts_ms = i64::from_le_bytes(c.array()?);
    let loc_len = u16::from_le_bytes(c.array()?) as usize;
    let location = std::str::from_utf8(c.take(loc_len)?).ok()?.to_owned();
    let log_len = u32::from_le_bytes(c.array()?) as usize;
    if log_len > MAX_LOG {
        return None;
    }
    let log = c.take(log_len)?.to_vec();
    let pos = match c.array::<1>()?[0] {
        0 => None,
        1 => Some(SourcePos {
            dev: u64::from_le_bytes(c.array()?),
            ino: u64::from_le_bytes(c.array()?),
            offset: u64::from_le_bytes(c.array()?),
        }),
        _ => return None,
    };
    if !c.0.is_empty() {
        return None;
    }
    Some(Record {
        seq,
        event: Event {
            ts_ms,
            location,
            log,
            pos,
        },
    })
}

struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.0.len() {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }
}

fn frame_crc(len_field: &[u8], body: &[u8]) -> u32 {
    let mut crc = Crc32c::new();
    crc.update(len_field);
    crc.update(body);
    crc.finish()
}

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), byte-at-a-time table.
pub struct Crc32c(u32);

const CRC_TABLE: [u32; 256] = crc_table();

const fn crc_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0x82F6_3B78
            } else {
                c >> 1
            };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
}

impl Crc32c {
    pub fn new() -> Crc32c {
        Crc32c(!0)
    }

    pub fn update(&mut self, data: &[u8]) {
        let mut c = self.0;
        for &b in data {
            c = CRC_TABLE[((c ^ b as u32) & 0xff) as usize] ^ (c >> 8);
        }
        self.0 = c;
    }

    pub fn finish(&self) -> u32 {
        !self.0
    }
}

impl Default for Crc32c {
    fn default() -> Self {
        Crc32c::new()
    }
}

/// CRC-32C of `data`.
pub fn crc32c(data: &[u8]) -> u32 {
    let mut c = Crc32c::new();
    c.update(data);
    c.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn event_strategy() -> impl Strategy<Value = Record> {
        (
            any::<u64>(),
            any::<i64>(),
            ".{0,40}",
            proptest::collection::vec(any::<u8>(), 0..300),
            proptest::option::of((any::<u64>(), any::<u64>(), any::<u64>())),
        )
            .prop_map(|(seq, ts_ms, location, log, pos)| Record {
                seq,
                event: Event {
                    ts_ms,
                    location,
                    log,
                    pos: pos.map(|(dev, ino, offset)| SourcePos { dev, ino, offset }),
                },
            })
    }

    fn enc(rec: &Record) -> Vec<u8> {
        let mut out = Vec::new();
        encode(rec, &mut out).unwrap();
        out
    }

    /// Decodes records from the front of `buf` until the first error.
    fn decode_stream(mut buf: &[u8]) -> (Vec<Record>, Option<DecodeError>) {
        let mut out = Vec::new();
        while !buf.is_empty() {
            match decode(buf) {
                Ok((r, n)) => {
                    out.push(r);
                    buf = &buf[n..];
                }
                Err(e) => return (out, Some(e)),
            }
        }
        (out, None)
    }

    #[test]
    fn crc32c_check_value() {
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(b""), 0);
    }

    #[test]
    fn layout_is_as_documented() {
        let rec = Record {
            seq: 7,
            event: Event {
                ts_ms: -1,
                location: "ab".into(),
                log: b"xyz".to_vec(),
                pos: Some(SourcePos {
                    dev: 1,
                    ino: 2,
                    offset: 3,
                }),
            },
        };
        let b = enc(&rec);
        assert_eq!(b.len(), encoded_len(&rec.event));
        assert_eq!(b.len(), 8 + 8 + 8 + 2 + 2 + 4 + 3 + 1 + 24);
        assert_eq!(&b[0..4], &((b.len() - 8) as u32).to_le_bytes());
        assert_eq!(&b[8..16], &7u64.to_le_bytes());
        assert_eq!(&b[24..26], &2u16.to_le_bytes());
        assert_eq!(&b[26..28], b"ab");
        assert_eq!(b[35], 1);
    }

    #[test]
    fn oversized_events_are_refused() {
        let mut rec = Record {
            seq: 1,
            event: Event {
                ts_ms: 0,
                location: "l".repeat(MAX_LOCATION + 1),
                log: Vec::new(),
                pos: None,
            },
        };
        let mut out = Vec::new();
        assert_eq!(
            encode(&rec, &mut out),
            Err(EncodeError::LocationTooLong(MAX_LOCATION + 1))
        );
        rec.event.location = "l".into();
        rec.event.log = vec![0; MAX_LOG + 1];
        assert!(encode(&rec, &mut out).is_err());
        assert!(out.is_empty());
        rec.event.location = "l".repeat(MAX_LOCATION);
        rec.event.log = vec![0; MAX_LOG];
        rec.event.pos = Some(SourcePos {
            dev: 0,
            ino: 0,
            offset: 0,
        });
        encode(&rec, &mut out).unwrap();
        assert_eq!(out.len(), HEADER_LEN + MAX_BODY);
        assert_eq!(decode(&out).unwrap().0, rec);
    }

    #[test]
    fn zeroed_tail_is_corrupt() {
        assert_eq!(decode(&[0; 64]).unwrap_err(), DecodeError::Corrupt);
        assert_eq!(decode(&[0; 3]).unwrap_err(), DecodeError::Truncated);
    }

    proptest! {
        #[test]
        fn round_trip(rec in event_strategy()) {
            let b = enc(&rec);
            prop_assert_eq!(b.len(), encoded_len(&rec.event));
            let (back, n) = decode(&b).unwrap();
            prop_assert_eq!(n, b.len());
            prop_assert_eq!(back, rec);
        }

        #[test]
        fn any_truncation_is_truncated(rec in event_strategy(), cut in any::<prop::sample::Index>()) {
            let b = enc(&rec);
            let cut = cut.index(b.len());
            prop_assert_eq!(decode(&b[..cut]).unwrap_err(), DecodeError::Truncated);
        }

        #[test]
        fn any_bit_flip_is_detected(rec in event_strategy(), at in any::<prop::sample::Index>(), bit in 0u8..8) {
            let mut b = enc(&rec);
            let at = at.index(b.len());
            b[at] ^= 1 << bit;
            prop_assert!(decode(&b).is_err());
        }

        /// A stream whose last frame is torn or flipped yields exactly the frames before it.
        #[test]
        fn damaged_tail_keeps_earlier_records(
            recs in proptest::collection::vec(event_strategy(), 1..6),
            at in any::<prop::sample::Index>(),
            flip in any::<Option<u8>>(),
        ) {
            let mut buf = Vec::new();
            let mut last_start = 0;
            for r in &recs {
                last_start = buf.len();
                encode(r, &mut buf).unwrap();
            }
            let at = last_start + at.index(buf.len() - last_start);
            match flip {
                Some(bit) => buf[at] ^= 1 << (bit % 8),
                None => buf.truncate(at),
            }
            let (got, err) = decode_stream(&buf);
            prop_assert_eq!(&got[..], &recs[..recs.len() - 1]);
            // Cutting exactly at the frame boundary leaves a clean stream.
            prop_assert_eq!(err.is_some(), buf.len() > last_start);
        }
    }
}
