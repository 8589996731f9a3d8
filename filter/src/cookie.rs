//! Finding one cookie in a `cookie` request header, on raw bytes: the header may carry
//! hundreds of cookies, malformed pairs or bytes that are not UTF-8, and none of that may
//! stop the request from being routed.

/// The value of the first cookie called `name` (case-sensitive, RFC 6265) in a `cookie`
/// header value such as `a=1; b=2`. Pairs without `=` are skipped; surrounding white space
/// and one pair of surrounding double quotes are removed from the value.
pub fn find_cookie<'h>(header: &'h [u8], name: &[u8]) -> Option<&'h [u8]> {
    cookies(header).find_map(|(have, raw_value)| (have == name).then(|| cookie_value(raw_value)))
}

/// Every cookie of a `cookie` header as `(name, raw value)`, in order, as [`find_cookie`]
/// reads them: one pass over the header for all the names a plan looks for. The raw value is
/// what follows the `=`; [`cookie_value`] makes it the value, for the cookies wanted only.
pub fn cookies(header: &[u8]) -> Cookies<'_> {
    Cookies { rest: header }
}

/// A cookie's value from its raw value: white space and one pair of double quotes removed.
pub fn cookie_value(raw_value: &[u8]) -> &[u8] {
    strip_quotes(trim(raw_value))
}

/// The iterator of [`cookies`].
pub struct Cookies<'h> {
    rest: &'h [u8],
}

impl<'h> Iterator for Cookies<'h> {
    type Item = (&'h [u8], &'h [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        while !self.rest.is_empty() {
            let end = find_byte(self.rest, b';').unwrap_or(self.rest.len());
            let (pair, rest) = self.rest.split_at(end);
            self.rest = rest.get(1..).unwrap_or_default();
            if let Some(eq) = pair.iter().position(|&byte| byte == b'=') {
                let (raw_name, raw_value) = pair.split_at(eq);
                // raw_value starts with the '='.
                return Some((trim(raw_name), raw_value.get(1..).unwrap_or_default()));
            }
        }
        None
    }
}

/// The position of the first `byte` in `bytes`, eight bytes to a step: a browser's cookie
/// header runs to kilobytes, and a byte-by-byte search was most of a request's cost with two
/// hundred cookies (BENCHMARKS.md). A word's bytes equal to `byte` become zero bytes of
/// `word ^ pattern`; the classic zero-byte test marks the first of them exactly (bits above it
/// may be marked wrongly, bits below never are).
fn find_byte(bytes: &[u8], byte: u8) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let pattern = ONES * u64::from(byte);
    let mut chunks = bytes.chunks_exact(8);
    let mut at = 0;
    for chunk in &mut chunks {
        // Spelled out so that it compiles to one 8-byte load (`copy_from_slice` became a call
        // to `memcpy` at opt-level "z").
        let [b0, b1, b2, b3, b4, b5, b6, b7] = *chunk else {
            break;
        };
        let diff = u64::from_le_bytes([b0, b1, b2, b3, b4, b5, b6, b7]) ^ pattern;
        let zeros = diff.wrapping_sub(ONES) & !diff & HIGHS;
        if zeros != 0 {
            return Some(at + (zeros.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&b| b == byte)
        .map(|i| at + i)
}

fn trim(bytes: &[u8]) -> &[u8] {
    let is_space = |byte: &u8| *byte == b' ' || *byte == b'\t';
    let start = bytes
        .iter()
        .position(|b| !is_space(b))
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !is_space(b))
        .map_or(start, |i| i + 1);
    bytes.get(start..end).unwrap_or_default()
}

fn strip_quotes(value: &[u8]) -> &[u8] {
    match value {
        [b'"', inner @ .., b'"'] => inner,
        _ => value,
    }
}

#[cfg(test)]
mod tests {
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    #[test]
    fn finds_cookies_by_exact_name() {
        type Case = (&'static [u8], &'static [u8], Option<&'static [u8]>);
        let table: &[Case] = &[
            (b"uid=42", b"uid", Some(b"42")),
            (b"a=1; uid=42; b=2", b"uid", Some(b"42")),
            (b"a=1;uid=42", b"uid", Some(b"42")),
            (b"  uid = 42  ", b"uid", Some(b"42")),
            (b"uid=\"quoted\"", b"uid", Some(b"quoted")),
            (b"uid=", b"uid", Some(b"")),
            (b"uid=a=b", b"uid", Some(b"a=b")),
            (b"UID=42", b"uid", None),
            (b"xuid=42", b"uid", None),
            (b"uid=first; uid=second", b"uid", Some(b"first")),
            (b"", b"uid", None),
            (b";;;", b"uid", None),
            (b"uid", b"uid", None),
            (b"garbage; uid=7", b"uid", Some(b"7")),
            (b"=; =x; uid=8", b"uid", Some(b"8")),
            (b"\xff\xfe=1; uid=\xff9", b"uid", Some(b"\xff9")),
            (b"uid=\"", b"uid", Some(b"\"")),
        ];
        for &(header, name, want) in table {
            assert_eq!(find_cookie(header, name), want, "header {header:?}");
        }
    }

    #[test]
    fn finds_bytes_as_position_does() {
        let text: Vec<u8> = (0..100u8)
            .map(|i| b"ab;=\x00\xff;c"[usize::from(i % 8)])
            .collect();
        for start in 0..text.len() {
            for len in 0..(text.len() - start).min(20) {
                let bytes = &text[start..start + len];
                for byte in [b';', b'=', 0, 0xff, b'z'] {
                    let want = bytes.iter().position(|&b| b == byte);
                    assert_eq!(find_byte(bytes, byte), want, "{bytes:?} {byte}");
                }
            }
        }
        // The first of adjacent matches, and a match after a byte one above it (0x3c after ;).
        assert_eq!(find_byte(b"xxxxxxx;;xxxxxxx", b';'), Some(7));
        assert_eq!(find_byte(b"<;xxxxxx", b';'), Some(1));
        assert_eq!(find_byte(b"\x01\x00xxxxxx", 0), Some(1));
    }

    #[test]
    fn hundreds_of_cookies() {
        let mut header = Vec::new();
        for i in 0..400 {
            header.extend_from_slice(format!("c{i}=v{i}; ").as_bytes());
        }
        header.extend_from_slice(b"uid=last");
        assert_eq!(find_cookie(&header, b"c399"), Some(&b"v399"[..]));
        assert_eq!(find_cookie(&header, b"uid"), Some(&b"last"[..]));
        assert_eq!(find_cookie(&header, b"c400"), None);
    }
}
