//! Finding one cookie in a `cookie` request header, on raw bytes: the header may carry
//! hundreds of cookies, malformed pairs or bytes that are not UTF-8, and none of that may
//! stop the request from being routed.

/// The value of the first cookie called `name` (case-sensitive, RFC 6265) in a `cookie`
/// header value such as `a=1; b=2`. Pairs without `=` are skipped; surrounding white space
/// and one pair of surrounding double quotes are removed from the value.
pub fn find_cookie<'h>(header: &'h [u8], name: &[u8]) -> Option<&'h [u8]> {
    cookies(header).find_map(|(have, value)| (have == name).then_some(value))
}

/// Every cookie of a `cookie` header as `(name, value)`, in order, read as [`find_cookie`]
/// reads them: one pass over the header for all the names a plan looks for.
pub fn cookies(header: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    header.split(|&byte| byte == b';').filter_map(|pair| {
        let eq = pair.iter().position(|&byte| byte == b'=')?;
        let (raw_name, raw_value) = pair.split_at(eq);
        // raw_value starts with the '='.
        let value = trim(raw_value.get(1..).unwrap_or_default());
        Some((trim(raw_name), strip_quotes(value)))
    })
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
