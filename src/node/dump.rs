//! The DUMP payload of the built-in node: what DUMP returns, RESTORE reads
//! and MIGRATE sends.
//!
//! The framing is Redis's: the serialized value, then a 2-byte format
//! version and an 8-byte CRC-64 (Jones polynomial, reflected, the one Redis
//! uses) of everything before it, both little-endian. The value encoding is
//! Slotway's own (Redis's is the RDB format), so the version is
//! [`FORMAT_VERSION`], far above any RDB version: a real Redis refuses our
//! payloads, and we refuse its, each with Redis's "DUMP payload version or
//! checksum are wrong" rather than misreading them.
//!
//! ```text
//! payload := type:u8 value version:u16le crc:u64le
//! value   := string                      (type 0)
//!          | count string*               (1, list, head first)
//!          | count (string string)*      (2, hash: field, value)
//!          | count string*               (3, set)
//!          | count (string f64le)*       (4, sorted set: member, score)
//! string  := len bytes                   (len and count: LEB128 varints)
//! ```

use bytes::{BufMut, Bytes, BytesMut};

use super::db::{Map, MemberSet, SortedSet, Value};

/// The format version written after the value ("SW" read little-endian).
pub const FORMAT_VERSION: u16 = 0x5753;

const TYPE_STRING: u8 = 0;
const TYPE_LIST: u8 = 1;
const TYPE_HASH: u8 = 2;
const TYPE_SET: u8 = 3;
const TYPE_ZSET: u8 = 4;

/// Why a payload was refused, with Redis's reply texts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DumpError {
    /// Too short, another version, or a checksum mismatch.
    #[error("ERR DUMP payload version or checksum are wrong")]
    VersionOrChecksum,
    /// The checksum holds but the value does not decode.
    #[error("ERR Bad data format")]
    BadFormat,
}

impl DumpError {
    /// The error reply text (after the `-`).
    pub fn text(&self) -> &'static str {
        match self {
            DumpError::VersionOrChecksum => "ERR DUMP payload version or checksum are wrong",
            DumpError::BadFormat => "ERR Bad data format",
        }
    }
}

/// Serializes `value` into a DUMP payload.
pub fn dump(value: &Value) -> Bytes {
    let mut out = BytesMut::with_capacity(estimate(value) + 16);
    match value {
        Value::Str(s) => {
            out.put_u8(TYPE_STRING);
            put_string(&mut out, s);
        }
        Value::List(list) => {
            out.put_u8(TYPE_LIST);
            put_len(&mut out, list.len());
            for item in list {
                put_string(&mut out, item);
            }
        }
        Value::Hash(hash) => {
            out.put_u8(TYPE_HASH);
            put_len(&mut out, hash.len());
            for (field, v) in hash {
                put_string(&mut out, field);
                put_string(&mut out, v);
            }
        }
        Value::Set(set) => {
            out.put_u8(TYPE_SET);
            put_len(&mut out, set.len());
            for member in set {
                put_string(&mut out, member);
            }
        }
        Value::ZSet(zset) => {
            out.put_u8(TYPE_ZSET);
            put_len(&mut out, zset.len());
            for (member, score) in zset.iter() {
                put_string(&mut out, member);
                out.put_f64_le(score);
            }
        }
    }
    out.put_u16_le(FORMAT_VERSION);
    let crc = crc64(0, &out);
    out.put_u64_le(crc);
    out.freeze()
}

/// Decodes a DUMP payload.
///
/// # Errors
/// [`DumpError::VersionOrChecksum`] unless the footer is ours and the
/// checksum holds; [`DumpError::BadFormat`] for a value that does not
/// decode (truncated, trailing bytes, an unknown type, an empty
/// collection, a duplicate member, a NaN score).
pub fn restore(payload: &[u8]) -> Result<Value, DumpError> {
    let body_len = payload
        .len()
        .checked_sub(10)
        .ok_or(DumpError::VersionOrChecksum)?;
    let (data, footer) = payload.split_at(body_len);
    let (version, crc) = footer.split_at(2);
    if version != FORMAT_VERSION.to_le_bytes() {
        return Err(DumpError::VersionOrChecksum);
    }
    let checked = payload.get(..body_len + 2).unwrap_or_default();
    if crc != crc64(0, checked).to_le_bytes() {
        return Err(DumpError::VersionOrChecksum);
    }
    let mut reader = Reader { data, pos: 0 };
    let value = reader.value().ok_or(DumpError::BadFormat)?;
    if reader.pos != data.len() || value.is_empty_collection() {
        return Err(DumpError::BadFormat);
    }
    Ok(value)
}

/// Bytes the value will take, to size the buffer once.
fn estimate(value: &Value) -> usize {
    match value {
        Value::Str(s) => s.len() + 10,
        Value::List(l) => l.iter().map(|s| s.len() + 5).sum::<usize>() + 10,
        Value::Hash(h) => h.iter().map(|(f, v)| f.len() + v.len() + 10).sum::<usize>() + 10,
        Value::Set(s) => s.iter().map(|m| m.len() + 5).sum::<usize>() + 10,
        Value::ZSet(z) => z.iter().map(|(m, _)| m.len() + 13).sum::<usize>() + 10,
    }
}

fn put_len(out: &mut BytesMut, len: usize) {
    let mut v = len as u64;
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.put_u8(byte);
            return;
        }
        out.put_u8(byte | 0x80);
    }
}

fn put_string(out: &mut BytesMut, s: &[u8]) {
    put_len(out, s.len());
    out.put_slice(s);
}

/// Reads a payload's value; every read is bounds-checked, and counts never
/// pre-allocate more than the bytes left could hold.
struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn byte(&mut self) -> Option<u8> {
        let b = *self.data.get(self.pos)?;
        self.pos += 1;
        Some(b)
    }

    fn len(&mut self) -> Option<usize> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            if shift == 63 && b > 1 {
                return None;
            }
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return usize::try_from(v).ok();
            }
        }
        None
    }

    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.data.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }

    fn string(&mut self) -> Option<Bytes> {
        let n = self.len()?;
        self.take(n).map(Bytes::copy_from_slice)
    }

    /// A count of items of at least `min_item` bytes each.
    fn count(&mut self, min_item: usize) -> Option<(usize, usize)> {
        let n = self.len()?;
        let left = self.data.len() - self.pos;
        if n.checked_mul(min_item)? > left {
            return None;
        }
        Some((n, n.min(left)))
    }

    fn value(&mut self) -> Option<Value> {
        match self.byte()? {
            TYPE_STRING => self.string().map(Value::Str),
            TYPE_LIST => {
                let (n, cap) = self.count(1)?;
                let mut list = std::collections::VecDeque::with_capacity(cap);
                for _ in 0..n {
                    list.push_back(self.string()?);
                }
                Some(Value::List(list))
            }
            TYPE_HASH => {
                let (n, cap) = self.count(2)?;
                let mut hash = Map::with_capacity_and_hasher(cap, Default::default());
                for _ in 0..n {
                    let field = self.string()?;
                    let value = self.string()?;
                    if hash.insert(field, value).is_some() {
                        return None;
                    }
                }
                Some(Value::Hash(hash))
            }
            TYPE_SET => {
                let (n, cap) = self.count(1)?;
                let mut set = MemberSet::with_capacity(cap);
                for _ in 0..n {
                    if !set.insert(self.string()?) {
                        return None;
                    }
                }
                Some(Value::Set(set))
            }
            TYPE_ZSET => {
                let (n, _) = self.count(9)?;
                let mut zset = SortedSet::new();
                for _ in 0..n {
                    let member = self.string()?;
                    let bits: [u8; 8] = self.take(8)?.try_into().ok()?;
                    let score = f64::from_le_bytes(bits);
                    if score.is_nan() || zset.insert(member, score).is_some() {
                        return None;
                    }
                }
                Some(Value::ZSet(zset))
            }
            _ => None,
        }
    }
}

/// CRC-64/Jones as Redis computes it (reflected, initial value `crc`).
pub fn crc64(mut crc: u64, data: &[u8]) -> u64 {
    for &b in data {
        let index = ((crc ^ u64::from(b)) & 0xff) as usize;
        // `index` is below 256, the table's length.
        crc = CRC64_TABLE[index] ^ (crc >> 8);
    }
    crc
}

/// The Jones polynomial 0xad93d23594c935a9, bit-reversed.
const CRC64_POLY_REFLECTED: u64 = 0x95ac_9329_ac4b_c9b5;

static CRC64_TABLE: [u64; 256] = crc64_table();

const fn crc64_table() -> [u64; 256] {
    let mut table = [0u64; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u64;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ CRC64_POLY_REFLECTED
            } else {
                crc >> 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    fn samples() -> Vec<Value> {
        let mut hash = Map::default();
        hash.insert(b("f1"), b("v1"));
        hash.insert(b(""), b("empty field"));
        let mut set = MemberSet::new();
        set.insert(b("a"));
        set.insert(b("b"));
        let mut zset = SortedSet::new();
        zset.insert(b("x"), 1.5);
        zset.insert(b("y"), f64::NEG_INFINITY);
        zset.insert(b("z"), -0.0);
        vec![
            Value::Str(b("")),
            Value::Str(b("hello")),
            Value::Str(Bytes::from(vec![0xffu8; 300])),
            Value::List(VecDeque::from(vec![b("1"), b(""), b("three")])),
            Value::Hash(hash),
            Value::Set(set),
            Value::ZSet(zset),
        ]
    }

    /// A comparable form of a value (maps and sets sorted).
    fn canonical(value: &Value) -> (String, Vec<Vec<u8>>) {
        let mut items: Vec<Vec<u8>> = match value {
            Value::Str(s) => vec![s.to_vec()],
            Value::List(l) => return ("list".into(), l.iter().map(|s| s.to_vec()).collect()),
            Value::Hash(h) => h
                .iter()
                .map(|(f, v)| [&f[..], b"=", &v[..]].concat())
                .collect(),
            Value::Set(s) => s.iter().map(|m| m.to_vec()).collect(),
            Value::ZSet(z) => {
                let items = z
                    .iter()
                    .map(|(m, s)| [&m[..], &s.to_bits().to_le_bytes()[..]].concat())
                    .collect();
                return ("zset".into(), items);
            }
        };
        items.sort();
        (value.type_name().into(), items)
    }

    #[test]
    fn crc64_is_redis_crc64_jones() {
        assert_eq!(crc64(0, b"123456789"), 0xe9c6_d914_c4b8_d9ca);
        // The footer of redis-server 7.0's DUMP of the string "10.6".
        assert_eq!(
            crc64(0, b"\x00\x0410.6\x0a\x00").to_le_bytes(),
            *b"\xba\x02\xab\x5e\x6f\x17\x93\xbd"
        );
    }

    #[test]
    fn every_type_round_trips() {
        for value in samples() {
            let payload = dump(&value);
            let back = restore(&payload).expect("restores");
            assert_eq!(canonical(&back), canonical(&value));
        }
    }

    #[test]
    fn any_flipped_byte_is_refused() {
        for value in samples() {
            let payload = dump(&value);
            for i in 0..payload.len() {
                let mut bad = payload.to_vec();
                bad[i] ^= 0x20;
                assert!(restore(&bad).is_err(), "byte {i} of {value:?}");
            }
        }
    }

    #[test]
    fn short_foreign_and_malformed_payloads_are_refused() {
        assert_eq!(restore(b"").err(), Some(DumpError::VersionOrChecksum));
        assert_eq!(
            restore(b"123456789").err(),
            Some(DumpError::VersionOrChecksum)
        );
        // Redis 7.0's DUMP of the string "10.6": RDB version 10.
        let redis = b"\x00\x0410.6\x0a\x00\xba\x02\xab\x5e\x6f\x17\x93\xbd";
        assert_eq!(restore(redis).err(), Some(DumpError::VersionOrChecksum));
        // A valid frame around a value that does not decode.
        let frame = |body: &[u8]| {
            let mut out = BytesMut::from(body);
            out.put_u16_le(FORMAT_VERSION);
            let crc = crc64(0, &out);
            out.put_u64_le(crc);
            out.to_vec()
        };
        for body in [
            &b""[..],
            b"\x09",                                             // unknown type
            b"\x00\x05abc",                                      // truncated string
            b"\x00\x01ab",                                       // trailing byte
            b"\x01\x00",                                         // empty list
            b"\x03\x02\x01a\x01a",                               // duplicate set member
            b"\x01\xff\xff\xff\xff\x0f",                         // a count the bytes cannot hold
            b"\x00\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", // varint overflow
        ] {
            assert_eq!(
                restore(&frame(body)).err(),
                Some(DumpError::BadFormat),
                "{body:?}"
            );
        }
        let nan = [&b"\x04\x01\x01m"[..], &f64::NAN.to_le_bytes()].concat();
        assert_eq!(restore(&frame(&nan)).err(), Some(DumpError::BadFormat));
    }
}
