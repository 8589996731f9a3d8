//! Which requests a configuration routes, by destination: the `hosts` it lists, matched against
//! the request's `:authority`.
//!
//! In an Istio sidecar a WasmPlugin runs on every outbound HTTP request of the workloads it
//! selects, whatever service they call (its `match` narrows only by traffic mode and port). A
//! filter that routes `checkout` must therefore leave a call to `payments` alone: no header
//! written, nothing counted, nothing logged. Without `hosts` every request is routed, as in the
//! Envoy front proxy, which fronts one service.
//!
//! An entry matches the authority's host (its port, if any, ignored; ASCII case ignored) when
//! they are equal. An entry in Kubernetes' service form `NAME.NAMESPACE.svc.DOMAIN`
//! (`checkout.shop.svc.cluster.local`) also matches the shorter names a client in the
//! service's namespace resolves to it, as Istio's sidecar routes accept them: `NAME`,
//! `NAME.NAMESPACE` and `NAME.NAMESPACE.svc`. (A WasmPlugin outside the mesh's root namespace
//! only selects workloads of its own namespace, so the short name means the same service there.)

use crate::error::ConfigError;

/// The longest host name DNS allows.
const MAX_HOST: usize = 253;
/// The longest DNS label.
const MAX_LABEL: usize = 63;

/// The compiled `hosts`: every name a request's authority may carry, in lower case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HostScope {
    names: Vec<Vec<u8>>,
}

impl HostScope {
    /// Checks the entries (each a DNS name without port or wildcard, none given twice) and
    /// lists every name they match.
    pub(crate) fn compile(entries: &[String]) -> Result<HostScope, ConfigError> {
        if entries.is_empty() {
            return Err(ConfigError::Empty {
                field: "hosts".to_string(),
            });
        }
        let mut names: Vec<Vec<u8>> = Vec::with_capacity(entries.len());
        for (i, entry) in entries.iter().enumerate() {
            let field = || format!("hosts[{i}]");
            let lower = entry.to_ascii_lowercase().into_bytes();
            if lower.is_empty() {
                return Err(ConfigError::Empty { field: field() });
            }
            if !is_host_name(&lower) {
                return Err(ConfigError::BadHost {
                    field: field(),
                    value: entry.clone(),
                });
            }
            // Quadratic, once per configuration: cheaper in the .wasm than a set type.
            if entries
                .iter()
                .take(i)
                .any(|earlier| earlier.eq_ignore_ascii_case(entry))
            {
                return Err(ConfigError::Duplicate {
                    field: field(),
                    value: entry.clone(),
                });
            }
            // `NAME.NAMESPACE.svc.DOMAIN` also matches the names that end at its first three
            // dots: `NAME`, `NAME.NAMESPACE`, `NAME.NAMESPACE.svc`.
            let mut dots = lower
                .iter()
                .enumerate()
                .filter(|(_, byte)| **byte == b'.')
                .map(|(at, _)| at);
            if let (Some(first), Some(second), Some(third)) =
                (dots.next(), dots.next(), dots.next())
            {
                if lower.get(second + 1..third) == Some(b"svc".as_slice()) {
                    for end in [first, second, third] {
                        names.extend(lower.get(..end).map(<[u8]>::to_vec));
                    }
                }
            }
            names.push(lower);
        }
        Ok(HostScope { names })
    }

    /// Whether a request with this `:authority` is for one of the hosts.
    pub(crate) fn contains(&self, authority: &[u8]) -> bool {
        let host = host_of(authority);
        self.names
            .iter()
            .any(|name| name.as_slice().eq_ignore_ascii_case(host))
    }
}

/// A DNS name in lower case: labels of letters, digits and `-` (not at either end of a label),
/// 1 to 63 bytes each, 253 in all.
fn is_host_name(name: &[u8]) -> bool {
    name.len() <= MAX_HOST
        && name.split(|byte| *byte == b'.').all(|label| {
            !label.is_empty()
                && label.len() <= MAX_LABEL
                && label.first() != Some(&b'-')
                && label.last() != Some(&b'-')
                && label
                    .iter()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        })
}

/// The host of an authority: without its port (`checkout:80`, `[::1]:80`), as it is otherwise.
pub fn host_of(authority: &[u8]) -> &[u8] {
    let Some(colon) = authority.iter().rposition(|&b| b == b':') else {
        return authority;
    };
    let (host, port) = authority.split_at(colon);
    let port_digits = port.get(1..).unwrap_or_default();
    // A colon inside an unbracketed IPv6 address is not a port separator.
    let bracketed_or_plain = host.first() == Some(&b'[') || !host.contains(&b':');
    if bracketed_or_plain && port_digits.iter().all(u8::is_ascii_digit) {
        host
    } else {
        authority
    }
}

#[cfg(test)]
mod tests {
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::{host_of, HostScope};
    use crate::ConfigError;

    fn scope(entries: &[&str]) -> Result<HostScope, ConfigError> {
        HostScope::compile(&entries.iter().map(|e| e.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn a_service_entry_matches_every_form_a_client_writes() {
        let scope = scope(&["checkout.default.svc.cluster.local"]).unwrap();
        for authority in [
            "checkout",
            "checkout:80",
            "checkout.default",
            "checkout.default:8080",
            "checkout.default.svc",
            "checkout.default.svc:80",
            "checkout.default.svc.cluster.local",
            "checkout.default.svc.cluster.local:80",
            "Checkout.Default.SVC.cluster.local:80",
        ] {
            assert!(scope.contains(authority.as_bytes()), "{authority}");
        }
        for authority in [
            "payments",
            "payments.default.svc.cluster.local",
            "checkout.shop",
            "checkout.default.svc.cluster",
            "checkout.default.svc.cluster.local.",
            "checkout-v2",
            "checkou",
            "checkout:80:80",
            "",
            "default",
            "svc",
        ] {
            assert!(!scope.contains(authority.as_bytes()), "{authority}");
        }
    }

    #[test]
    fn other_entries_match_as_listed() {
        let scope = scope(&["api.example.com", "search", "10.0.0.7"]).unwrap();
        for authority in [
            "api.example.com",
            "API.example.com:443",
            "search:80",
            "10.0.0.7:8080",
        ] {
            assert!(scope.contains(authority.as_bytes()), "{authority}");
        }
        for authority in ["api", "example.com", "search.default", "10.0.0.70"] {
            assert!(!scope.contains(authority.as_bytes()), "{authority}");
        }
    }

    #[test]
    fn ports_are_cut_only_where_they_are_ports() {
        assert_eq!(host_of(b"checkout:80"), b"checkout");
        assert_eq!(host_of(b"checkout"), b"checkout");
        assert_eq!(host_of(b"checkout:"), b"checkout");
        assert_eq!(host_of(b"[::1]:80"), b"[::1]");
        assert_eq!(host_of(b"[::1]"), b"[::1]");
        assert_eq!(host_of(b"::1"), b"::1");
        assert_eq!(host_of(b"checkout:http"), b"checkout:http");
        assert_eq!(host_of(b""), b"");
    }

    #[test]
    fn bad_entries_are_refused_by_field() {
        let field = |entries: &[&str]| scope(entries).map(|_| ()).unwrap_err().to_string();
        assert_eq!(field(&[]), "hosts: must not be empty");
        assert_eq!(field(&["a", ""]), "hosts[1]: must not be empty");
        for bad in [
            "checkout:80",
            "*.example.com",
            "a..b",
            ".a",
            "a.",
            "-a",
            "a_b",
            "é",
            "a b",
            &"a".repeat(64),
        ] {
            assert!(
                field(&["ok", bad]).starts_with("hosts[1]: "),
                "{bad}: {}",
                field(&["ok", bad])
            );
        }
        assert_eq!(
            field(&["search", "Search"]),
            "hosts[1]: \"Search\" is used twice"
        );
        assert!(scope(&[&format!("{}.b", "a".repeat(63))]).is_ok());
    }
}
