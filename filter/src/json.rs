//! A pull reader of JSON text that knows where it is: every error names the path of the value
//! at fault (`rules[0].when.header.name`) and its line and column, in the words serde_json
//! uses (`invalid type: integer `5`, expected a string`), so the configuration's messages read
//! as they did when serde read it.
//!
//! Written here rather than taken from a crate: serde, serde_json and the float formatting
//! serde's messages link were about 64 KB of a module whose budget is 180 KiB, and the JSON
//! crates without serde read into a map (losing the order and the repeated keys the messages
//! need) or parse numbers with the standard library's exact reader (about 12 KB of tables).
//! [`crate::config`] drives it, one typed reader per struct; the path is kept as byte ranges of
//! the text and written out only for an error.

use std::borrow::Cow;

use crate::ConfigError;

/// One step of the path to the value being read.
enum Step {
    /// The value of the object key written between these byte offsets (inside its quotes).
    Key { start: usize, end: usize },
    /// The element at this index of a list.
    Index(usize),
}

/// Reads one JSON document front to back.
pub(crate) struct Reader<'t> {
    text: &'t [u8],
    at: usize,
    path: Vec<Step>,
    /// Why the document was refused, once it was.
    refusal: Option<ConfigError>,
}

/// The document was refused; the reader holds why ([`Reader::refusal`]). Carried instead of
/// the error itself so that every `?` of the typed readers moves nothing: with the whole
/// `ConfigError` in each `Result`, the readers were a third larger in the module.
#[derive(Debug)]
pub(crate) struct Refused;

/// What a reading gives.
pub(crate) type Read<T> = Result<T, Refused>;

/// A JSON number as read: an integer when written without fraction or exponent and in range,
/// as serde_json keeps it.
#[derive(Clone, Copy)]
enum Number {
    Unsigned(u64),
    Negative(i64),
    Float(f64),
}

/// Exact powers of ten: every one up to 1e22 is a double.
const POWERS_OF_TEN: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

impl<'t> Reader<'t> {
    pub(crate) fn new(text: &'t [u8]) -> Self {
        Reader {
            text,
            at: 0,
            path: Vec::new(),
            refusal: None,
        }
    }

    /// The document must end after its value (white space aside).
    pub(crate) fn end(&mut self) -> Read<()> {
        match self.peek() {
            None => Ok(()),
            Some(_) => Err(self.error(&"trailing characters")),
        }
    }

    /// Refuses the document for `reason`, about the value at the reader's path and position.
    pub(crate) fn error(&mut self, reason: &dyn std::fmt::Display) -> Refused {
        let (line, column) = self.line_and_column();
        self.refusal = Some(ConfigError::Json {
            field: self.path_text(),
            reason: format!("{reason} at line {line} column {column}"),
        });
        Refused
    }

    /// Why the document was refused.
    pub(crate) fn refusal(&mut self) -> ConfigError {
        self.refusal.take().unwrap_or_else(|| ConfigError::Json {
            field: "(document)".to_string(),
            reason: "refused".to_string(),
        })
    }

    /// `missing field `name`` for the object just read (the path is the object's).
    pub(crate) fn missing(&mut self, name: &str) -> Refused {
        self.error(&format_args!("missing field `{name}`"))
    }

    /// An object's fields, each handed to `field` with its key (escapes decoded) while the path
    /// names it; `field` reads the value. `expecting` says what the object is, for the error
    /// when the value is something else.
    pub(crate) fn object(
        &mut self,
        expecting: &str,
        mut field: impl FnMut(&mut Self, &str) -> Read<()>,
    ) -> Read<()> {
        self.object_entries(expecting, &mut field)
    }

    // One copy of the loop for every caller's closure: each copy was about 500 bytes of the
    // module, and configure's time is not in the indirect call.
    fn object_entries(
        &mut self,
        expecting: &str,
        field: &mut dyn FnMut(&mut Self, &str) -> Read<()>,
    ) -> Read<()> {
        if self.peek() != Some(b'{') {
            return Err(self.invalid_type(expecting));
        }
        self.at += 1;
        let mut first = true;
        loop {
            match self.peek() {
                Some(b'}') if first => break,
                Some(b'}') => return Err(self.error(&"trailing comma")),
                Some(b'"') => {}
                Some(_) => return Err(self.error(&"key must be a string")),
                None => return Err(self.error(&"EOF while parsing an object")),
            }
            first = false;
            let start = self.at + 1;
            let key = self.string_literal()?;
            let end = self.at.saturating_sub(1);
            match self.peek() {
                Some(b':') => self.at += 1,
                Some(_) => return Err(self.error(&"expected `:`")),
                None => return Err(self.error(&"EOF while parsing an object")),
            }
            self.path.push(Step::Key { start, end });
            let read = field(self, &key);
            self.path.pop();
            read?;
            match self.peek() {
                Some(b',') => self.at += 1,
                Some(b'}') => break,
                Some(_) => return Err(self.error(&"expected `,` or `}`")),
                None => return Err(self.error(&"EOF while parsing an object")),
            }
        }
        self.at += 1;
        Ok(())
    }

    /// A list's elements, each handed to `element` while the path names its index.
    pub(crate) fn array(&mut self, mut element: impl FnMut(&mut Self) -> Read<()>) -> Read<()> {
        self.elements(&mut element)
    }

    fn elements(&mut self, element: &mut dyn FnMut(&mut Self) -> Read<()>) -> Read<()> {
        if self.peek() != Some(b'[') {
            return Err(self.invalid_type("a sequence"));
        }
        self.at += 1;
        let mut index = 0;
        loop {
            match self.peek() {
                Some(b']') if index == 0 => break,
                Some(b']') => return Err(self.error(&"trailing comma")),
                None => return Err(self.error(&"EOF while parsing a list")),
                Some(_) => {}
            }
            self.path.push(Step::Index(index));
            let read = element(self);
            self.path.pop();
            read?;
            index += 1;
            match self.peek() {
                Some(b',') => self.at += 1,
                Some(b']') => break,
                Some(_) => return Err(self.error(&"expected `,` or `]`")),
                None => return Err(self.error(&"EOF while parsing a list")),
            }
        }
        self.at += 1;
        Ok(())
    }

    /// A list of strings.
    pub(crate) fn strings(&mut self) -> Read<Vec<String>> {
        let mut list = Vec::new();
        self.array(|reader| {
            list.push(reader.string()?);
            Ok(())
        })?;
        Ok(list)
    }

    /// `null`, read, or any other value, left to be read.
    pub(crate) fn null(&mut self) -> Read<bool> {
        if self.peek() == Some(b'n') {
            self.literal(b"null")?;
            return Ok(true);
        }
        Ok(false)
    }

    pub(crate) fn string(&mut self) -> Read<String> {
        self.string_expecting("a string")
    }

    /// A string, where anything else is refused as not `expecting`.
    pub(crate) fn string_expecting(&mut self, expecting: &str) -> Read<String> {
        if self.peek() != Some(b'"') {
            return Err(self.invalid_type(expecting));
        }
        self.string_literal().map(Cow::into_owned)
    }

    pub(crate) fn boolean(&mut self) -> Read<bool> {
        match self.peek() {
            Some(b't') => self.literal(b"true").map(|()| true),
            Some(b'f') => self.literal(b"false").map(|()| false),
            _ => Err(self.invalid_type("a boolean")),
        }
    }

    /// Any number, as a double.
    pub(crate) fn f64(&mut self) -> Read<f64> {
        let start = self.at;
        match self.number_here() {
            Some(number) => Ok(match number? {
                Number::Unsigned(n) => n as f64,
                Number::Negative(n) => n as f64,
                Number::Float(n) => n,
            }),
            None => {
                self.at = start;
                Err(self.invalid_type("f64"))
            }
        }
    }

    /// A whole number from 0 to `u32::MAX`.
    pub(crate) fn u32(&mut self) -> Read<u32> {
        let start = self.at;
        match self.number_here() {
            Some(number) => match number? {
                Number::Unsigned(n) => u32::try_from(n).map_err(|_| {
                    self.at = start;
                    self.error(&format_args!("invalid value: integer `{n}`, expected u32"))
                }),
                Number::Negative(n) => {
                    self.at = start;
                    Err(self.error(&format_args!("invalid value: integer `{n}`, expected u32")))
                }
                Number::Float(_) => {
                    self.at = start;
                    Err(self.invalid_type("u32"))
                }
            },
            None => {
                self.at = start;
                Err(self.invalid_type("u32"))
            }
        }
    }

    /// `invalid type: <the value here>, expected <expecting>`, at the value's first byte.
    pub(crate) fn invalid_type(&mut self, expecting: &str) -> Refused {
        let start = self.at;
        let unexpected = match self.peek() {
            None => return self.error(&"EOF while parsing a value"),
            Some(b'n') if self.text.get(self.at..self.at + 4) == Some(b"null") => {
                "null".to_string()
            }
            Some(b't') if self.text.get(self.at..self.at + 4) == Some(b"true") => {
                "boolean `true`".to_string()
            }
            Some(b'f') if self.text.get(self.at..self.at + 5) == Some(b"false") => {
                "boolean `false`".to_string()
            }
            Some(b'[') => "sequence".to_string(),
            Some(b'{') => "map".to_string(),
            Some(b'"') => match self.string_literal() {
                Ok(value) => format!("string {}", crate::error::Quoted(&value)),
                Err(refused) => return refused,
            },
            Some(_) => match self.number_here() {
                Some(Ok(Number::Unsigned(n))) => format!("integer `{n}`"),
                Some(Ok(Number::Negative(n))) => format!("integer `{n}`"),
                Some(Ok(Number::Float(n))) => {
                    let mut shown = Vec::new();
                    crate::json_write::number(&mut shown, n);
                    let shown = std::str::from_utf8(&shown).unwrap_or_default();
                    format!("floating point `{shown}`")
                }
                Some(Err(refused)) => return refused,
                None => return self.error(&"expected value"),
            },
        };
        self.at = start;
        self.error(&format_args!(
            "invalid type: {unexpected}, expected {expecting}"
        ))
    }

    /// The next byte that is not white space, not consumed.
    fn peek(&mut self) -> Option<u8> {
        while let Some(&byte) = self.text.get(self.at) {
            if !matches!(byte, b' ' | b'\n' | b'\r' | b'\t') {
                return Some(byte);
            }
            self.at += 1;
        }
        None
    }

    /// `true`, `false` or `null`, whose first byte was seen.
    fn literal(&mut self, word: &[u8]) -> Read<()> {
        for &want in word {
            match self.text.get(self.at) {
                Some(&byte) if byte == want => self.at += 1,
                Some(_) => return Err(self.error(&"expected ident")),
                None => return Err(self.error(&"EOF while parsing a value")),
            }
        }
        Ok(())
    }

    /// The string starting at the reader's `"`, its escapes decoded; borrowed from the text
    /// when it has none.
    fn string_literal(&mut self) -> Read<Cow<'t, str>> {
        self.at += 1;
        let start = self.at;
        let mut owned: Option<Vec<u8>> = None;
        let mut plain_from = start;
        loop {
            let Some(&byte) = self.text.get(self.at) else {
                return Err(self.error(&"EOF while parsing a string"));
            };
            match byte {
                b'"' => {
                    let plain = self.text.get(plain_from..self.at).unwrap_or_default();
                    self.at += 1;
                    return match owned {
                        None => std::str::from_utf8(plain)
                            .map(Cow::Borrowed)
                            .map_err(|_| self.utf8_error(start)),
                        Some(mut bytes) => {
                            bytes.extend_from_slice(plain);
                            String::from_utf8(bytes)
                                .map(Cow::Owned)
                                .map_err(|_| self.utf8_error(start))
                        }
                    };
                }
                b'\\' => {
                    let bytes = owned.get_or_insert_with(Vec::new);
                    bytes.extend_from_slice(self.text.get(plain_from..self.at).unwrap_or_default());
                    self.at += 1;
                    let escape = self.escape()?;
                    let mut utf8 = [0; 4];
                    bytes.extend_from_slice(escape.encode_utf8(&mut utf8).as_bytes());
                    plain_from = self.at;
                }
                0x00..=0x1f => {
                    return Err(self.error(
                        &"control character (\\u0000-\\u001F) found while parsing a string",
                    ))
                }
                _ => self.at += 1,
            }
        }
    }

    fn utf8_error(&mut self, start: usize) -> Refused {
        // At the first byte that is not UTF-8.
        let text = self.text.get(start..self.at).unwrap_or_default();
        self.at = start
            + std::str::from_utf8(text)
                .err()
                .map_or(0, |err| err.valid_up_to());
        self.error(&"invalid unicode code point")
    }

    /// The character an escape stands for; the reader is past its `\`.
    fn escape(&mut self) -> Read<char> {
        let Some(&byte) = self.text.get(self.at) else {
            return Err(self.error(&"EOF while parsing a string"));
        };
        self.at += 1;
        Ok(match byte {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let first = self.hex4()?;
                if !(0xD800..0xE000).contains(&first) {
                    return char::from_u32(first).ok_or_else(|| self.error(&"invalid escape"));
                }
                if first >= 0xDC00 {
                    return Err(self.error(&"lone leading surrogate in hex escape"));
                }
                if self.text.get(self.at..self.at + 2) != Some(b"\\u") {
                    return Err(self.error(&"unexpected end of hex escape"));
                }
                self.at += 2;
                let second = self.hex4()?;
                if !(0xDC00..0xE000).contains(&second) {
                    return Err(self.error(&"lone leading surrogate in hex escape"));
                }
                let code = 0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00);
                return char::from_u32(code)
                    .ok_or_else(|| self.error(&"invalid unicode code point"));
            }
            _ => return Err(self.error(&"invalid escape")),
        })
    }

    fn hex4(&mut self) -> Read<u32> {
        let mut value = 0;
        for _ in 0..4 {
            let Some(&byte) = self.text.get(self.at) else {
                return Err(self.error(&"EOF while parsing a string"));
            };
            let digit = char::from(byte)
                .to_digit(16)
                .ok_or_else(|| self.error(&"invalid escape"))?;
            value = value * 16 + digit;
            self.at += 1;
        }
        Ok(value)
    }

    /// The number at the reader, or `None` when what is there does not start one.
    fn number_here(&mut self) -> Option<Read<Number>> {
        let negative = match self.peek()? {
            b'-' => true,
            b'0'..=b'9' => false,
            _ => return None,
        };
        Some(self.number(negative))
    }

    fn digit(&self) -> Option<u64> {
        match self.text.get(self.at) {
            Some(&byte @ b'0'..=b'9') => Some(u64::from(byte - b'0')),
            _ => None,
        }
    }

    /// JSON's number grammar; the significand kept to 19 digits, the rest counted into the
    /// exponent, as serde_json does without its `float_roundtrip` feature.
    fn number(&mut self, negative: bool) -> Read<Number> {
        if negative {
            self.at += 1;
        }
        let mut significand: u64 = 0;
        let mut exponent: i32 = 0;
        let mut overflowed = false;
        match self.digit() {
            Some(0) => {
                self.at += 1;
                if self.digit().is_some() {
                    return Err(self.error(&"invalid number"));
                }
            }
            Some(_) => {
                while let Some(digit) = self.digit() {
                    if !add(&mut significand, digit) {
                        overflowed = true;
                        exponent = exponent.saturating_add(1);
                    }
                    self.at += 1;
                }
            }
            None => return Err(self.error(&"invalid number")),
        }
        let mut float = overflowed;
        if self.text.get(self.at) == Some(&b'.') {
            float = true;
            self.at += 1;
            if self.digit().is_none() {
                return Err(self.error(&"invalid number"));
            }
            while let Some(digit) = self.digit() {
                if !overflowed && add(&mut significand, digit) {
                    exponent = exponent.saturating_sub(1);
                } else {
                    overflowed = true;
                }
                self.at += 1;
            }
        }
        if matches!(self.text.get(self.at), Some(b'e' | b'E')) {
            float = true;
            self.at += 1;
            let negative_exponent = match self.text.get(self.at) {
                Some(b'-') => {
                    self.at += 1;
                    true
                }
                Some(b'+') => {
                    self.at += 1;
                    false
                }
                _ => false,
            };
            if self.digit().is_none() {
                return Err(self.error(&"invalid number"));
            }
            let mut written: i32 = 0;
            while let Some(digit) = self.digit() {
                written = written.saturating_mul(10).saturating_add(digit as i32);
                self.at += 1;
            }
            exponent = if negative_exponent {
                exponent.saturating_sub(written)
            } else {
                exponent.saturating_add(written)
            };
        }
        if !float {
            if !negative {
                return Ok(Number::Unsigned(significand));
            }
            // `-0` is a float, as serde_json reads it.
            if let Ok(value) = i64::try_from(significand) {
                if value != 0 {
                    return Ok(Number::Negative(-value));
                }
            }
        }
        let magnitude = decimal_to_f64(significand, exponent);
        if magnitude.is_infinite() {
            return Err(self.error(&"number out of range"));
        }
        Ok(Number::Float(if negative { -magnitude } else { magnitude }))
    }

    /// The path as users see it: `rules[0].when`, or `(document)` at the top.
    fn path_text(&self) -> String {
        let mut path = String::new();
        for step in &self.path {
            match step {
                Step::Key { start, end } => {
                    if !path.is_empty() {
                        path.push('.');
                    }
                    // The key as the reader decoded it: read its quoted text again.
                    let mut again = Reader::new(self.text);
                    again.at = start.saturating_sub(1);
                    match again.string_literal() {
                        Ok(key) => path.push_str(&key),
                        // Cut short by the error: as far as it is text.
                        Err(Refused) => {
                            let raw = self.text.get(*start..*end).unwrap_or_default();
                            let text = match std::str::from_utf8(raw) {
                                Ok(text) => text,
                                Err(err) => std::str::from_utf8(
                                    raw.get(..err.valid_up_to()).unwrap_or_default(),
                                )
                                .unwrap_or_default(),
                            };
                            path.push_str(text);
                        }
                    }
                }
                Step::Index(index) => {
                    path.push('[');
                    path.push_str(&index.to_string());
                    path.push(']');
                }
            }
        }
        if path.is_empty() {
            path.push_str("(document)");
        }
        path
    }

    /// The 1-based line and column (in bytes) of the reader's position.
    fn line_and_column(&self) -> (usize, usize) {
        let before = self.text.get(..self.at).unwrap_or(self.text);
        let line = before.iter().filter(|&&byte| byte == b'\n').count() + 1;
        let line_start = before
            .iter()
            .rposition(|&byte| byte == b'\n')
            .map_or(0, |at| at + 1);
        (line, self.at - line_start + 1)
    }
}

/// `significand × 10 + digit`, unless that overflows.
fn add(significand: &mut u64, digit: u64) -> bool {
    match significand
        .checked_mul(10)
        .and_then(|s| s.checked_add(digit))
    {
        Some(next) => {
            *significand = next;
            true
        }
        None => false,
    }
}

/// `significand × 10^exponent`: exact (one rounding) when the significand has at most 53 bits
/// and the power is one of the exact ones, which covers every number a configuration needs
/// (percents to 0.01, seeds); otherwise within a few units in the last place, as serde_json's
/// default reading is.
fn decimal_to_f64(significand: u64, exponent: i32) -> f64 {
    let mut value = significand as f64;
    if significand == 0 {
        return 0.0;
    }
    let mut exponent = exponent;
    // Stopping once the value is out of range, so `1e999999999` costs a few steps, not
    // millions.
    while exponent > 22 && value.is_finite() {
        value *= 1e22;
        exponent -= 22;
    }
    while exponent < -22 && value != 0.0 {
        value /= 1e22;
        exponent += 22;
    }
    let power = POWERS_OF_TEN
        .get(exponent.unsigned_abs() as usize)
        .copied()
        .unwrap_or(1.0);
    if exponent >= 0 {
        value * power
    } else {
        value / power
    }
}

#[cfg(test)]
mod tests {
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    fn read_f64(text: &str) -> Result<f64, String> {
        refused(text.as_bytes(), Reader::f64)
    }

    /// What `read` gives for `text`, or the message of its refusal.
    fn refused<'t, T>(
        text: &'t [u8],
        read: impl FnOnce(&mut Reader<'t>) -> Read<T>,
    ) -> Result<T, String> {
        let mut reader = Reader::new(text);
        read(&mut reader).map_err(|Refused| reader.refusal().to_string())
    }

    /// Every percent a configuration may hold, written as a person writes it, reads as the
    /// standard library's exact reader reads it (the independent reference).
    #[test]
    fn every_percent_reads_exactly() {
        for hundredths in 0..=10_000u32 {
            let text = format!("{}.{:02}", hundredths / 100, hundredths % 100);
            let want: f64 = text.parse().unwrap();
            assert_eq!(read_f64(&text).unwrap().to_bits(), want.to_bits(), "{text}");
        }
        for text in [
            "0", "10", "100", "1e2", "1E2", "2.5e1", "-0.0", "0.5e-0", "12.50",
        ] {
            let want: f64 = text.parse().unwrap();
            assert_eq!(read_f64(text).unwrap().to_bits(), want.to_bits(), "{text}");
        }
    }

    /// Outside the exact range, within a few units in the last place of the exact reading.
    #[test]
    fn long_and_far_numbers_read_closely() {
        for text in [
            "3.141592653589793238462643383279",
            "123456789012345678901234567890",
            "1.5e300",
            "2.2250738585072014e-308",
            "0.000000000000000000000000000001",
            "9007199254740993",
        ] {
            let want: f64 = text.parse().unwrap();
            let got = read_f64(text).unwrap();
            let apart = (got.to_bits() as i64 - want.to_bits() as i64).unsigned_abs();
            assert!(apart <= 4, "{text}: {got} against {want}");
        }
        assert!(read_f64("1e400")
            .unwrap_err()
            .contains("number out of range"));
    }

    #[test]
    fn malformed_numbers_are_refused() {
        for text in ["01", "-", "1.", ".5", "1e", "1e+", "-x"] {
            let err = read_f64(text);
            assert!(err.is_err(), "{text}: {err:?}");
        }
    }

    #[test]
    fn strings_decode_every_escape() {
        let text = r#""a\"b\\c\/d\b\f\n\r\t\u0041\u00e9\ud83d\ude00é""#;
        assert_eq!(
            refused(text.as_bytes(), Reader::string).unwrap(),
            "a\"b\\c/d\u{8}\u{c}\n\r\tAé😀é"
        );
        for (bad, reason) in [
            (r#""\x""#, "invalid escape"),
            (r#""\ud800""#, "unexpected end of hex escape"),
            (r#""\udc00""#, "lone leading surrogate in hex escape"),
            ("\"a\u{1}\"", "control character"),
            (r#""abc"#, "EOF while parsing a string"),
        ] {
            let err = refused(bad.as_bytes(), Reader::string).unwrap_err();
            assert!(err.contains(reason), "{bad}: {err}");
        }
        let not_utf8 = [b'"', 0xff, b'"'];
        let err = refused(&not_utf8, Reader::string).unwrap_err();
        assert!(err.contains("invalid unicode code point"), "{err}");
    }

    #[test]
    fn errors_name_the_path_line_and_column() {
        let text = b"{\n  \"a\": [1, {\"b\": x}]\n}";
        let err = refused(text, |reader| {
            reader.object("an object", |reader, _| {
                reader.array(|reader| {
                    if reader.peek() == Some(b'{') {
                        reader.object("an object", |reader, _| reader.boolean().map(|_| ()))
                    } else {
                        reader.u32().map(|_| ())
                    }
                })
            })
        })
        .unwrap_err();
        assert_eq!(err, "a[1].b: expected value at line 2 column 18");
    }

    #[test]
    fn wrong_types_say_what_they_found() {
        for (text, want) in [
            ("null", "invalid type: null, expected a string"),
            ("true", "invalid type: boolean `true`, expected a string"),
            ("5", "invalid type: integer `5`, expected a string"),
            ("-5", "invalid type: integer `-5`, expected a string"),
            (
                "1.5",
                "invalid type: floating point `1.5`, expected a string",
            ),
            ("[1]", "invalid type: sequence, expected a string"),
            ("{}", "invalid type: map, expected a string"),
        ] {
            let err = refused(text.as_bytes(), Reader::string).unwrap_err();
            assert_eq!(err, format!("(document): {want} at line 1 column 1"));
        }
        let err = refused(b"\"x\"", Reader::boolean).unwrap_err();
        assert_eq!(
            err,
            "(document): invalid type: string \"x\", expected a boolean at line 1 column 1"
        );
        let err = refused(b"5000000000", Reader::u32).unwrap_err();
        assert!(
            err.contains("invalid value: integer `5000000000`, expected u32"),
            "{err}"
        );
        let err = refused(b"-1", Reader::u32).unwrap_err();
        assert!(
            err.contains("invalid value: integer `-1`, expected u32"),
            "{err}"
        );
    }
}
