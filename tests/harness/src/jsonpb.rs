//! A WasmPlugin's `pluginConfig` as istiod hands it to Envoy, for the stand-in's istiod part.
//!
//! istiod holds `pluginConfig` as a protobuf `Struct` (every number a double) and writes it with
//! `protomarshal.ToJSON`, which is the legacy `github.com/golang/protobuf/jsonpb` Marshaler with
//! no indent (istio/istio `pkg/util/protomarshal`, called from `pilot/pkg/model/extensions.go`;
//! the string goes into the Wasm configuration as a `StringValue`). That writer, for a `Struct`:
//! object keys sorted by their bytes, no space anywhere (`{"a":1,"b":[1,2]}`), and every number
//! and string written by Go's `encoding/json` (`jsonpb/encode.go`, `marshalSingularValue`).
//!
//! Go's `encoding/json` (`floatEncoder`, `appendString`):
//! - a double is written in the shortest form that reads back the same, in plain notation
//!   (`10`, `0.25`, `100000000000000000000`) unless its magnitude is below 1e-6 or at least
//!   1e21; then in exponent form, the exponent signed and with no leading zero after a minus
//!   (`1e+21`, `1.5e+300`, `1e-7`, `2.5e-10`: strconv writes `1e-07` and encoding/json cleans it
//!   up to `1e-7`);
//! - a string escapes `"` and `\`, writes `\b \f \n \r \t` as such and other bytes below 0x20 as
//!   `\u00XX` (lower-case hex), escapes `<`, `>` and `&` as `\u003c`, `\u003e`, `\u0026` (its
//!   HTML-safe default) and U+2028, U+2029 as `\u2028`, `\u2029`; everything else as is.

use serde_json::Value;

/// `value` as istiod's jsonpb writes it (see the module's documentation).
pub fn istiod_json(value: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, value);
    out
}

fn write_value(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(flag) => out.push_str(if *flag { "true" } else { "false" }),
        // A Struct holds every number as a double (an integer beyond 2^53 loses digits there).
        Value::Number(number) => out.push_str(&go_double(number.as_f64().unwrap_or(f64::NAN))),
        Value::String(text) => write_string(out, text),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push('{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(out, key);
                out.push(':');
                write_value(out, item);
            }
            out.push('}');
        }
    }
}

/// A double as Go's `encoding/json` writes it. (NaN and the infinities cannot come from JSON.)
pub fn go_double(double: f64) -> String {
    let magnitude = double.abs();
    if magnitude == 0.0 || (1e-6..1e21).contains(&magnitude) {
        // Rust's Display is the shortest round-trip form in plain notation, as strconv's 'f'
        // with precision -1 (and `-0` for negative zero, as Go).
        return format!("{double}");
    }
    // Rust's LowerExp is the shortest mantissa with a bare exponent (`1e21`, `1.5e-7`); Go signs
    // the exponent and keeps at least two digits, then drops the zero of `e-0N`.
    let text = format!("{double:e}");
    match text.split_once('e') {
        Some((mantissa, exponent)) => match exponent.strip_prefix('-') {
            Some(negative) => format!("{mantissa}e-{negative}"),
            None => format!("{mantissa}e+{exponent:0>2}"),
        },
        None => text,
    }
}

fn write_string(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", u32::from(c)));
            }
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Expected values written by hand from Go's rules (`strconv.FormatFloat(f, 'f'|'e', -1, 64)`
    /// and encoding/json's clean-up), not computed.
    #[test]
    fn numbers_are_written_as_gos_encoding_json_writes_a_double() {
        for (double, go) in [
            (10.0, "10"),
            (0.25, "0.25"),
            (-0.0, "-0"),
            (0.0, "0"),
            (33.333333333333336, "33.333333333333336"),
            (1e20, "100000000000000000000"),
            (1e21, "1e+21"),
            (-1.5e300, "-1.5e+300"),
            (0.000001, "0.000001"),
            (1e-7, "1e-7"),
            (2.5e-10, "2.5e-10"),
            (5e-324, "5e-324"),
        ] {
            assert_eq!(go_double(double), go, "{double:e}");
        }
    }

    #[test]
    fn objects_are_compact_with_sorted_keys_and_strings_escaped_as_go_does() {
        let stored = json!({"weights": {"canary": 10.0, "b": 0.25}, "default": "stable",
                            "sticky": {"seed": 7, "keys": [{"header": "x-user-id"}, {"cookie": "uid"}]},
                            "tiny": 1e-7, "huge": 1e21, "on": true, "none": null,
                            "text": "a<b>&c \"q\" \\ \u{8}\u{c}\n\r\t\u{1}\u{7f} é \u{2028}"});
        assert_eq!(
            istiod_json(&stored),
            concat!(
                r#"{"default":"stable","huge":1e+21,"none":null,"on":true,"#,
                r#""sticky":{"keys":[{"header":"x-user-id"},{"cookie":"uid"}],"seed":7},"#,
                r#""text":"a\u003cb\u003e\u0026c \"q\" \\ \b\f\n\r\t\u0001"#,
                "\u{7f} é ",
                r#"\u2028","tiny":1e-7,"weights":{"b":0.25,"canary":10}}"#
            )
        );
    }
}
