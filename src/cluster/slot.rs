//! Hash slots: CRC16/XMODEM of the key, or of its `{hash tag}`, mod 16384.

/// Number of hash slots in a Redis Cluster.
pub const SLOT_COUNT: usize = 16384;

/// The slot of `key`, exactly as Redis's `keyHashSlot` computes it: if the key
/// holds a `{` followed later by a `}` with at least one byte between them,
/// only the bytes between the first `{` and the first `}` after it are hashed.
pub fn key_slot(key: &[u8]) -> u16 {
    let hashed = hash_tag(key).unwrap_or(key);
    crc16::State::<crc16::XMODEM>::calculate(hashed) & (SLOT_COUNT as u16 - 1)
}

fn hash_tag(key: &[u8]) -> Option<&[u8]> {
    let open = key.iter().position(|&b| b == b'{')?;
    let rest = key.get(open + 1..)?;
    let close = rest.iter().position(|&b| b == b'}')?;
    if close == 0 {
        return None;
    }
    rest.get(..close)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_slots() {
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b"name"), 5798);
        assert_eq!(key_slot(b"key"), 12539);
        assert_eq!(key_slot(b"bar"), 5061);
        assert_eq!(key_slot(b""), 0);
        // The CRC16/XMODEM check value of "123456789" is 0x31C3.
        assert_eq!(key_slot(b"123456789"), 0x31C3 & 16383);
    }

    #[test]
    fn hash_tags() {
        assert_eq!(
            key_slot(b"{user1000}.following"),
            key_slot(b"{user1000}.followers")
        );
        assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"user1000"));
        // An empty tag hashes the whole key.
        assert_eq!(key_slot(b"{}foo"), crc(b"{}foo"));
        // Only the first {...} counts, even when it is empty.
        assert_eq!(key_slot(b"foo{}{bar}"), crc(b"foo{}{bar}"));
        // The tag runs from the first { to the first } after it.
        assert_eq!(key_slot(b"foo{{bar}}zap"), key_slot(b"{bar"));
        assert_eq!(key_slot(b"foo{bar}{zap}"), key_slot(b"bar"));
        assert_eq!(key_slot(b"foo{bar"), crc(b"foo{bar"));
    }

    fn crc(key: &[u8]) -> u16 {
        crc16::State::<crc16::XMODEM>::calculate(key) % 16384
    }
}
