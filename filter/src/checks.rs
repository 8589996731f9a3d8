//! The checks a configuration's values pass on their way into a plan (names, header and
//! cookie names, percents), shared by the plan's compiler and the parts it compiles
//! (`features`, `mirror`): each refuses a bad value with a [`ConfigError`] naming its field.

use crate::bucket::BasisPoints;
use crate::error::ConfigError;

/// Service, version and rule names become Envoy stat name segments and Prometheus label values, and the
/// version name travels in a header: keep them to a safe alphabet.
pub(crate) fn check_name(field: impl FieldPath, name: &str) -> Result<(), ConfigError> {
    let valid = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if valid {
        Ok(())
    } else {
        Err(ConfigError::BadName {
            field: field.path(),
            value: name.to_string(),
        })
    }
}

/// Where a value is in the configuration (`rules[7].when.header.name`), as an error names it.
/// A rule's paths are written out only when an error needs them ([`Lazy`]): a thousand rules
/// made several thousand `format!` calls at every configure for errors that never came.
pub(crate) trait FieldPath {
    fn path(&self) -> String;
}

impl FieldPath for &str {
    fn path(&self) -> String {
        (*self).to_string()
    }
}

impl FieldPath for &String {
    fn path(&self) -> String {
        (*self).clone()
    }
}

/// A path written out by its closure, when asked.
pub(crate) struct Lazy<F>(pub(crate) F);

impl<F: Fn() -> String> FieldPath for Lazy<F> {
    fn path(&self) -> String {
        (self.0)()
    }
}

/// Header names are case-insensitive: compile them to lower case, as Envoy presents them.
/// Pseudo-headers (`:authority`, `:path`) may be read, never written.
pub(crate) fn header_name(
    field: impl FieldPath,
    name: &str,
    may_be_pseudo: bool,
) -> Result<String, ConfigError> {
    let body = match name.strip_prefix(':') {
        Some(rest) if may_be_pseudo => rest,
        _ => name,
    };
    let valid = !body.is_empty() && body.bytes().all(is_token_byte);
    if valid {
        Ok(name.to_ascii_lowercase())
    } else if name.is_empty() {
        Err(ConfigError::Empty {
            field: field.path(),
        })
    } else {
        Err(ConfigError::BadHeaderName {
            field: field.path(),
            value: name.to_string(),
        })
    }
}

/// RFC 9110 `tchar`.
fn is_token_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

pub(crate) fn cookie_name(field: impl FieldPath, name: &str) -> Result<Vec<u8>, ConfigError> {
    if name.is_empty() {
        return Err(ConfigError::Empty {
            field: field.path(),
        });
    }
    if !name.bytes().all(is_token_byte) {
        return Err(ConfigError::BadName {
            field: field.path(),
            value: name.to_string(),
        });
    }
    Ok(name.as_bytes().to_vec())
}

/// A percent with a resolution of 0.01, as a whole number of buckets.
pub(crate) fn basis_points(field: &str, percent: f64) -> Result<BasisPoints, ConfigError> {
    if !percent.is_finite() || !(0.0..=100.0).contains(&percent) {
        return Err(ConfigError::WeightRange {
            field: field.to_string(),
            value: percent,
        });
    }
    let scaled = percent * 100.0;
    let rounded = scaled.round();
    // 0.29 * 100 is 28.999999999999996 in binary floating point: allow for that, not for 0.005.
    if (scaled - rounded).abs() > 1e-6 {
        return Err(ConfigError::WeightResolution {
            field: field.to_string(),
            value: percent,
        });
    }
    // In 0..=10000 after the range check, so the conversion is exact.
    Ok(rounded as BasisPoints)
}
