//! JSON's strings and numbers written as serde_json writes them, for the canonical form
//! ([`crate::canonical`]) and for the values the configuration's messages show
//! ([`crate::error`], [`crate::json`]). A leaf: it knows nothing of the configuration.

/// A JSON string as serde_json escapes it: `"` and `\`, the control characters below 0x20
/// (`\b`, `\t`, `\n`, `\f`, `\r` short, the others as `\u00xx`), everything else as is.
pub(crate) fn string(out: &mut Vec<u8>, value: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    for &byte in value.as_bytes() {
        match byte {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            0x00..=0x1f => {
                out.extend_from_slice(b"\\u00");
                let hex = |nibble: u8| HEX.get(usize::from(nibble)).copied().unwrap_or(b'0');
                out.push(hex(byte >> 4));
                out.push(hex(byte & 0xf));
            }
            _ => out.push(byte),
        }
    }
    out.push(b'"');
}

/// A finite `f64` as serde_json writes it: the shortest digits that read back as the same
/// number (ryu's), laid out as serde_json lays them out: `10.0`, `0.01`, `1e-7`, `1.5e+300`
/// (ryu writes `1.5e300`). A number that is not finite (JSON has none; serde_json writes
/// `null`) is written `null` too.
pub(crate) fn number(out: &mut Vec<u8>, value: f64) {
    if !value.is_finite() {
        out.extend_from_slice(b"null");
        return;
    }
    let mut buffer = ryu::Buffer::new();
    let digits = buffer.format_finite(value);
    match digits.split_once('e') {
        Some((significand, exponent)) if !exponent.starts_with('-') => {
            out.extend_from_slice(significand.as_bytes());
            out.extend_from_slice(b"e+");
            out.extend_from_slice(exponent.as_bytes());
        }
        _ => out.extend_from_slice(digits.as_bytes()),
    }
}

#[cfg(test)]
mod tests {
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    /// Numbers over every layout serde_json has (whole, fraction, small, exponent), and every
    /// weight a configuration the filter accepts may hold: written as serde_json writes them.
    #[test]
    fn numbers_as_serde_json_writes_them() {
        let mut values = vec![
            0.0,
            -0.0,
            1.0,
            10.0,
            100.0,
            0.01,
            0.29,
            33.33,
            99.99,
            12.5,
            1e-5,
            1e-4,
            0.000123,
            1e-7,
            1.5e-7,
            1e15,
            1e16,
            1e17,
            1.234e17,
            1e21,
            1e22,
            1.7976931348623157e308,
            5e-324,
            -12.5,
            f64::MIN_POSITIVE,
        ];
        // 0.00 to 100.00 in steps of 0.01, as parsed.
        values.extend((0..=10_000).map(|points| {
            format!("{}.{:02}", points / 100, points % 100)
                .parse::<f64>()
                .unwrap()
        }));
        for value in values {
            let mut out = Vec::new();
            number(&mut out, value);
            assert_eq!(
                String::from_utf8(out).unwrap(),
                serde_json::to_string(&value).unwrap(),
                "{value:e}"
            );
        }
    }

    /// Any other number (a configuration the filter refuses may hold one) is written in as
    /// few digits as reads back as the same number. serde_json's writer and ryu may pick
    /// another last digit where two are as short: then the two forms differ, which no
    /// accepted configuration meets (above).
    #[test]
    fn any_number_reads_back_as_itself() {
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        for _ in 0..20_000 {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let value = f64::from_bits(state);
            if !value.is_finite() {
                continue;
            }
            let mut out = Vec::new();
            number(&mut out, value);
            let text = String::from_utf8(out).unwrap();
            let reference = serde_json::to_string(&value).unwrap();
            assert_eq!(text.parse::<f64>().unwrap(), value, "{text}");
            assert_eq!(text.len(), reference.len(), "{text} against {reference}");
        }
    }
}
