//! Reading one header out of a header map as proxy-wasm hosts serialize it, without copying.
//!
//! The glue fetches a request's whole header map in one host call and looks the plan's headers
//! up here, instead of one host call per header name: every call into or out of Envoy's V8
//! costs about a microsecond (see BENCHMARKS.md), a lookup in this buffer a few nanoseconds.
//!
//! The format (proxy-wasm ABI): a little-endian `u32` pair count, then a `u32` key length and a
//! `u32` value length per pair, then each key and each value followed by a NUL byte, in order.
//! A buffer that does not follow it is treated as holding no headers: a request is never
//! refused, or the VM crashed, over what the host handed over.

/// The value of the first header named `name` (Envoy keeps header names in lower case, and so
/// does the plan), or `None` if there is none or the buffer is malformed.
pub fn find_header<'a>(pairs: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    let count = usize::try_from(read_u32(pairs, 0)?).ok()?;
    // Lengths start after the count; data after all the lengths.
    let mut data = count.checked_mul(8)?.checked_add(4)?;
    for index in 0..count {
        let at = 4 + index * 8;
        let key_len = usize::try_from(read_u32(pairs, at)?).ok()?;
        let value_len = usize::try_from(read_u32(pairs, at + 4)?).ok()?;
        let key = pairs.get(data..data.checked_add(key_len)?)?;
        let value_start = data.checked_add(key_len)?.checked_add(1)?;
        let value_end = value_start.checked_add(value_len)?;
        if key == name {
            return pairs.get(value_start..value_end);
        }
        data = value_end.checked_add(1)?;
    }
    None
}

fn read_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let word = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes(word.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::find_header;

    /// Serializes pairs the way a proxy-wasm host does.
    fn serialize(pairs: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = (pairs.len() as u32).to_le_bytes().to_vec();
        for (key, value) in pairs {
            out.extend((key.len() as u32).to_le_bytes());
            out.extend((value.len() as u32).to_le_bytes());
        }
        for (key, value) in pairs {
            out.extend(key.as_bytes());
            out.push(0);
            out.extend(*value);
            out.push(0);
        }
        out
    }

    #[test]
    fn finds_the_first_header_of_a_name() {
        let buffer = serialize(&[
            (":path", b"/"),
            ("x-user-id", b"user-1"),
            ("cookie", b"a=1; b=2"),
            ("x-user-id", b"second"),
            ("x-empty", b""),
            ("x-bytes", b"\xff\x00\xfe"),
        ]);
        assert_eq!(find_header(&buffer, b":path"), Some(&b"/"[..]));
        assert_eq!(find_header(&buffer, b"x-user-id"), Some(&b"user-1"[..]));
        assert_eq!(find_header(&buffer, b"cookie"), Some(&b"a=1; b=2"[..]));
        assert_eq!(find_header(&buffer, b"x-empty"), Some(&b""[..]));
        assert_eq!(find_header(&buffer, b"x-bytes"), Some(&b"\xff\x00\xfe"[..]));
        assert_eq!(find_header(&buffer, b"x-missing"), None);
        assert_eq!(find_header(&buffer, b"x-user"), None);
        assert_eq!(find_header(&serialize(&[]), b"x-user-id"), None);
    }

    #[test]
    fn malformed_buffers_hold_no_headers() {
        let good = serialize(&[("x-a", b"1"), ("x-user-id", b"user-1")]);
        // Every truncation: never a panic, never a value read past what the buffer holds.
        for len in 0..good.len() {
            let cut = &good[..len];
            if let Some(value) = find_header(cut, b"x-user-id") {
                assert_eq!(value, b"user-1", "truncated to {len}");
            }
        }
        let mut huge_count = good.clone();
        huge_count[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(find_header(&huge_count, b"x-user-id"), None);
        let mut huge_length = good.clone();
        huge_length[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(find_header(&huge_length, b"x-user-id"), None);
        assert_eq!(find_header(&[], b"x-user-id"), None);
    }
}
