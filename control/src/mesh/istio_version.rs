//! Which Istio releases the rendered resources work on, and the API versions each serves.
//!
//! Two things bound it, both read in Istio's sources and release notes (no live mesh here):
//! - The `EnvoyFilter` that removes client-sent routing headers patches the connection manager's
//!   `early_header_mutation_extensions` with `envoy.http.early_header_mutation.header_mutation`.
//!   istio-proxy compiles that extension in from 1.20.5, 1.21.1 and 1.22.0; an older proxy
//!   rejects the patched listener. Without the strip, `failStrategy: FAIL_OPEN` would let a
//!   client's own version header pick the canary, so there is no rendering without it.
//! - `networking.istio.io/v1` (DestinationRule, VirtualService) is served from Istio 1.22;
//!   before that the same kinds are served as `v1beta1` (same fields for what is rendered here).
//!   The WasmPlugin is `extensions.istio.io/v1alpha1` and the EnvoyFilter
//!   `networking.istio.io/v1alpha3` in every release.

use std::fmt;
use std::str::FromStr;

/// An Istio release as given to `--istio-version`: `X.Y` or `X.Y.Z`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IstioVersion {
    /// Major (1).
    pub major: u32,
    /// Minor.
    pub minor: u32,
    /// Patch, when given.
    pub patch: Option<u32>,
}

/// The release `canaryctl istio` renders for when `--istio-version` is not given: the first
/// that serves `networking.istio.io/v1` (and has the early header mutation in every patch).
pub const DEFAULT_ISTIO_VERSION: &str = "1.22";

/// The oldest release the rendered resources work on (the early header mutation's first).
pub const MINIMUM_ISTIO_VERSION: &str = "1.20.5";

/// The first patch of 1.20 and 1.21 whose proxy has the early header mutation extension (every
/// patch of 1.22 on has it, none before 1.20).
const EARLY_HEADER_MUTATION: [(u32, u32); 2] = [(20, 5), (21, 1)];

impl FromStr for IstioVersion {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim().trim_start_matches('v');
        let parts: Vec<&str> = text.split('.').collect();
        let number = |part: &str| -> Result<u32, String> {
            part.parse::<u32>().map_err(|_| {
                format!("expected an Istio release as X.Y or X.Y.Z (1.22, 1.21.1), got {text:?}")
            })
        };
        match parts.as_slice() {
            [major, minor] => Ok(IstioVersion {
                major: number(major)?,
                minor: number(minor)?,
                patch: None,
            }),
            [major, minor, patch] => Ok(IstioVersion {
                major: number(major)?,
                minor: number(minor)?,
                patch: Some(number(patch)?),
            }),
            _ => Err(format!(
                "expected an Istio release as X.Y or X.Y.Z (1.22, 1.21.1), got {text:?}"
            )),
        }
    }
}

impl fmt::Display for IstioVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.patch {
            Some(patch) => write!(f, "{}.{}.{patch}", self.major, self.minor),
            None => write!(f, "{}.{}", self.major, self.minor),
        }
    }
}

impl IstioVersion {
    fn at_least(&self, major: u32, minor: u32) -> bool {
        (self.major, self.minor) >= (major, minor)
    }

    /// The API version of `networking.istio.io` for DestinationRule and VirtualService.
    pub fn networking_api(&self) -> &'static str {
        if self.at_least(1, 22) {
            "networking.istio.io/v1"
        } else {
            "networking.istio.io/v1beta1"
        }
    }

    /// Whether this release's proxy has the early header mutation extension; an error saying
    /// why not (or what to give) otherwise.
    pub fn has_early_header_mutation(&self) -> Result<(), String> {
        let missing = |first: String| {
            format!(
                "Istio {self} is not supported: the EnvoyFilter that removes client-sent routing \
                 headers before a route is picked uses the early header mutation extension \
                 (envoy.http.early_header_mutation.header_mutation), which istio-proxy has from \
                 {first} on; an older proxy rejects the patched listener, and without the \
                 removal any client could pick the canary by sending the version header. \
                 Upgrade to {first} or later (the minimum is {MINIMUM_ISTIO_VERSION})"
            )
        };
        if self.at_least(1, 22) {
            return Ok(());
        }
        if self.major != 1 || self.minor < 20 {
            return Err(missing(MINIMUM_ISTIO_VERSION.to_string()));
        }
        let Some(&(_, first_patch)) = EARLY_HEADER_MUTATION
            .iter()
            .find(|(minor, _)| *minor == self.minor)
        else {
            return Err(missing(MINIMUM_ISTIO_VERSION.to_string()));
        };
        match self.patch {
            Some(patch) if patch >= first_patch => Ok(()),
            Some(_) => Err(missing(format!("1.{}.{first_patch}", self.minor))),
            None => Err(format!(
                "Istio {self}: only 1.{minor}.{first_patch} and later patches of 1.{minor} have \
                 the early header mutation extension the EnvoyFilter needs; give the patch \
                 release your mesh runs (--istio-version 1.{minor}.{first_patch} or later; \
                 `istioctl version` shows it)",
                minor = self.minor
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(text: &str) -> IstioVersion {
        text.parse().unwrap_or_else(|err| panic!("{err}"))
    }

    #[test]
    fn releases_parse_as_x_y_or_x_y_z() {
        assert_eq!(
            version("1.22"),
            IstioVersion {
                major: 1,
                minor: 22,
                patch: None
            }
        );
        assert_eq!(version("v1.21.1").patch, Some(1));
        assert_eq!(version("1.21.1").to_string(), "1.21.1");
        for bad in ["1", "1.x", "1.22.0.1", "", "latest"] {
            assert!(bad.parse::<IstioVersion>().is_err(), "{bad}");
        }
    }

    #[test]
    fn the_networking_api_is_v1_from_1_22_and_v1beta1_before() {
        assert_eq!(version("1.22").networking_api(), "networking.istio.io/v1");
        assert_eq!(version("1.27.3").networking_api(), "networking.istio.io/v1");
        assert_eq!(version("2.0").networking_api(), "networking.istio.io/v1");
        assert_eq!(
            version("1.21.1").networking_api(),
            "networking.istio.io/v1beta1"
        );
        assert_eq!(
            version("1.20.5").networking_api(),
            "networking.istio.io/v1beta1"
        );
    }

    #[test]
    fn the_early_header_mutation_is_in_1_20_5_1_21_1_and_every_1_22() {
        for ok in ["1.20.5", "1.20.9", "1.21.1", "1.22", "1.22.0", "1.28.1"] {
            assert_eq!(version(ok).has_early_header_mutation(), Ok(()), "{ok}");
        }
        // 1.21.0 lacks it: without the patch it cannot be told.
        let err = version("1.21").has_early_header_mutation().unwrap_err();
        assert!(
            err.contains("give the patch release") && err.contains("1.21.1"),
            "{err}"
        );
        for (missing, first) in [
            ("1.20.4", "1.20.5"),
            ("1.21.0", "1.21.1"),
            ("1.19.9", "1.20.5"),
            ("1.18", "1.20.5"),
        ] {
            let err = version(missing).has_early_header_mutation().unwrap_err();
            assert!(
                err.starts_with(&format!("Istio {missing} is not supported"))
                    && err.contains(&format!("from {first} on")),
                "{missing}: {err}"
            );
        }
        let err = version("1.20").has_early_header_mutation().unwrap_err();
        assert!(err.contains("--istio-version 1.20.5 or later"), "{err}");
    }
}
