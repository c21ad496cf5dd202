//! A short string as one `u128`, for transforms that look rows up by a string key.
//!
//! Hashing a byte slice and comparing bytes per row is slow in WebAssembly: the comparison
//! is the C library's `memcmp`, which goes a byte at a time. Most keys (device ids,
//! tickers, country codes) are short, and a string of at most 15 bytes fits in one `u128`
//! with its length: a map keyed by that number hashes one fixed-size value and compares
//! two words.

/// The longest string [`packed`] packs.
pub const MAX_LEN: usize = 15;

/// The string of `len` bytes at `start` in `values` and its length in one `u128`, when it
/// is at most [`MAX_LEN`] bytes: the bytes in the low 15 bytes (little-endian, the rest
/// zero) and the length in the top byte, so two strings give the same number only if they
/// are the same, and the top byte of a packed string is never above 15 (other keys can use
/// the numbers above). Read as one word from `values` when 16 bytes are there.
///
/// `values` is the buffer of a string array (`StringArray::values`) and `start`, `len` a
/// value's offset and length in it; for one `&str`, `packed(s.as_bytes(), 0, s.len())`.
///
/// # Panics
/// If `start + len` is past the end of `values`.
#[inline]
pub fn packed(values: &[u8], start: usize, len: usize) -> Option<u128> {
    if len > MAX_LEN {
        return None;
    }
    let word = match values.get(start..start + 16) {
        Some(word) => u128::from_le_bytes(word.try_into().unwrap_or_default()),
        None => {
            let mut word = [0u8; 16];
            word[..len].copy_from_slice(&values[start..start + len]);
            u128::from_le_bytes(word)
        }
    };
    Some((word & LOW_BYTES[len]) | ((len as u128) << 120))
}

/// The string a [`packed`] number holds, `None` if its top byte is not a length up to 15.
pub fn unpacked(packed: u128) -> Option<Vec<u8>> {
    let len = (packed >> 120) as usize;
    (len <= MAX_LEN).then(|| packed.to_le_bytes()[..len].to_vec())
}

/// `LOW_BYTES[n]` keeps the low `n` bytes of a u128 (a table: a shift by a variable amount
/// is a library call in WebAssembly, which has no 128-bit integers).
const LOW_BYTES: [u128; 16] = {
    let mut masks = [0u128; 16];
    let mut n = 0;
    while n < 16 {
        masks[n] = (1u128 << (n * 8)) - 1;
        n += 1;
    }
    masks
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_strings_pack_injectively_wherever_they_lie_in_the_buffer() {
        // The same strings at the end of the buffer (no 16-byte word there) and inside it.
        let strings: Vec<&[u8]> = vec![
            b"",
            b"\0",
            b"\0\0",
            b"a",
            b"a\0",
            b"ab",
            b"abcdefghijklmno",
            b"abcdefghijklmn",
        ];
        let mut seen = std::collections::HashMap::new();
        for s in &strings {
            let mut buffer = b"xxxx".to_vec();
            buffer.extend_from_slice(s);
            let at_end = packed(&buffer, 4, s.len()).unwrap();
            buffer.extend_from_slice(&[0xff; 20]);
            let inside = packed(&buffer, 4, s.len()).unwrap();
            assert_eq!(at_end, inside, "{s:?}");
            assert_eq!(unpacked(inside).as_deref(), Some(*s));
            assert!(inside >> 120 <= MAX_LEN as u128);
            assert_eq!(seen.insert(inside, *s), None, "{s:?} packs like another string");
        }
        assert_eq!(packed(&[b'a'; 16], 0, 16), None);
        assert_eq!(unpacked(16u128 << 120), None);
    }
}
