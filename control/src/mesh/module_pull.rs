//! How the sidecars fetch the filter's module, and why a write of the WasmPlugin must not make
//! them fetch it again.
//!
//! istiod puts the WasmPlugin's `metadata.resourceVersion` into the Wasm VM's environment
//! (`ISTIO_META_WASM_PLUGIN_RESOURCE_VERSION`, istio/istio `pilot/pkg/model/extensions.go`),
//! and every write of the object (each `canaryctl set`, each rollout step) gives it a new one.
//! The agent's module cache (`pkg/wasm/cache.go`) keys a module by its checksum when one is
//! known (`sha256`, or an `@sha256:` digest in the URL): then the module is served from the
//! cache whatever the pull policy. Without a checksum it looks the URL up in its checksum cache,
//! and with pull policy `Always` it uses that entry only while the resource version is the one
//! it fetched for: a new resource version means a new fetch. The default policy is
//! `IfNotPresent`, except for an `oci://` image tagged `:latest`, which gets `Always`.
//! A fetch that fails with `failStrategy: FAIL_OPEN` replaces the filter with an allow-all RBAC
//! filter (`pkg/wasm/convert.go`): the requests then go to the default version, the canary is
//! silently at 0 %, and a rollout judges nothing. So `canaryctl istio` renders `IfNotPresent`
//! unless told otherwise, and says when the rendered resources can still fetch again.

use std::fmt;
use std::str::FromStr;

/// A WasmPlugin's `imagePullPolicy` (istio/api `extensions/v1alpha1`'s `PullPolicy`; its
/// `UNSPECIFIED_POLICY` is Istio's default, described above).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullPolicy {
    /// Fetch only when the module is not in the sidecar's cache.
    IfNotPresent,
    /// Without a checksum: fetch again on every new resource version of the WasmPlugin.
    Always,
}

impl FromStr for PullPolicy {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "IfNotPresent" => Ok(PullPolicy::IfNotPresent),
            "Always" => Ok(PullPolicy::Always),
            other => Err(format!("expected IfNotPresent or Always, got {other:?}")),
        }
    }
}

impl fmt::Display for PullPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PullPolicy::IfNotPresent => "IfNotPresent",
            PullPolicy::Always => "Always",
        })
    }
}

/// The policy rendered: the one given, else `IfNotPresent` (so that no write of the WasmPlugin,
/// a rollout step included, makes the sidecars fetch the module again).
pub fn rendered_policy(given: Option<PullPolicy>) -> PullPolicy {
    given.unwrap_or(PullPolicy::IfNotPresent)
}

/// Whether the module is pinned by a checksum: `--sha256`, or a digest in an `oci://` URL.
pub fn pinned(url: &str, sha256: Option<&str>) -> bool {
    sha256.is_some() || (url.starts_with("oci://") && url.contains("@sha256:"))
}

/// What to warn the user about for this module location and policy (printed to stderr; empty
/// when nothing).
pub fn warnings(url: &str, sha256: Option<&str>, policy: PullPolicy) -> Vec<String> {
    let mut warnings = Vec::new();
    if pinned(url, sha256) {
        return warnings;
    }
    let mutable = if url.starts_with("oci://") {
        Some(format!(
            "the image tag of {url} is mutable: a sidecar that starts after the tag moves runs \
             another module than one that started before. Pin it with --sha256 (the module's \
             sha256) or an @sha256: digest"
        ))
    } else if url.starts_with("http://") || url.starts_with("https://") {
        Some(format!(
            "the module at {url} can change behind the same URL. Pin it with --sha256"
        ))
    } else {
        None
    };
    warnings.extend(mutable);
    if policy == PullPolicy::Always {
        warnings.push(
            "with --pull-policy Always and no --sha256, every write of the WasmPlugin (each \
             `canaryctl set`, each rollout step) makes every selected sidecar fetch the module \
             again (istiod puts the resource version into the Wasm VM's environment); with \
             failStrategy FAIL_OPEN a failed fetch replaces the filter with allow-all, and the \
             canary silently gets no traffic"
                .to_string(),
        );
    }
    warnings
}

/// Why a write of a WasmPlugin with this `spec` makes its sidecars fetch the module again, if it
/// does: no checksum, and pull policy `Always` (given, or Istio's default for an `oci://` image
/// tagged `:latest`; a URL without a scheme is an `oci://` one to istiod).
pub fn refetches_on_write(spec: &serde_json::Value) -> Option<String> {
    let url = spec["url"].as_str().unwrap_or_default();
    let sha256 = spec["sha256"].as_str().filter(|sha| !sha.is_empty());
    let oci = url.starts_with("oci://") || !url.contains("://");
    // A file:// module is read from the sidecar's own disk: nothing is fetched.
    if sha256.is_some() || url.starts_with("file://") || (oci && url.contains("@sha256:")) {
        return None;
    }
    let why = match spec["imagePullPolicy"].as_str() {
        Some("Always") => "imagePullPolicy Always".to_string(),
        Some("IfNotPresent") => return None,
        _ if oci && url.ends_with(":latest") => {
            "no imagePullPolicy (for an image tagged :latest, Istio's default is Always)"
                .to_string()
        }
        _ => return None,
    };
    Some(format!(
        "the WasmPlugin pulls {url} with {why}, and no sha256: every write of it (each step of \
         this rollout) makes every selected sidecar fetch the module again, and with \
         failStrategy FAIL_OPEN a failed fetch replaces the filter with allow-all, the canary \
         silently getting no traffic. Set spec.imagePullPolicy to IfNotPresent or spec.sha256 \
         (canaryctl istio renders both)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_refetches_only_without_a_checksum_under_always() {
        use serde_json::json;
        let sha = "0".repeat(64);
        let latest = "oci://r.example/c:latest";
        for (spec, refetches) in [
            (json!({"url": latest}), true),
            (json!({"url": "r.example/c:latest"}), true),
            (
                json!({"url": latest, "imagePullPolicy": "UNSPECIFIED_POLICY"}),
                true,
            ),
            (
                json!({"url": latest, "imagePullPolicy": "IfNotPresent"}),
                false,
            ),
            (json!({"url": latest, "sha256": sha}), false),
            (json!({"url": "oci://r.example/c:1.0"}), false),
            (
                json!({"url": "oci://r.example/c:1.0", "imagePullPolicy": "Always"}),
                true,
            ),
            (
                json!({"url": format!("oci://r.example/c@sha256:{sha}"), "imagePullPolicy": "Always"}),
                false,
            ),
            (
                json!({"url": "https://r.example/c.wasm", "imagePullPolicy": "Always"}),
                true,
            ),
            (json!({"url": "https://r.example/c:latest"}), false),
            (
                json!({"url": "file:///opt/c.wasm", "imagePullPolicy": "Always"}),
                false,
            ),
        ] {
            assert_eq!(refetches_on_write(&spec).is_some(), refetches, "{spec}");
        }
    }

    #[test]
    fn the_rendered_policy_is_if_not_present_unless_given() {
        assert_eq!(rendered_policy(None), PullPolicy::IfNotPresent);
        assert_eq!(
            rendered_policy(Some(PullPolicy::Always)),
            PullPolicy::Always
        );
        assert_eq!("Always".parse(), Ok(PullPolicy::Always));
        assert!("always".parse::<PullPolicy>().is_err());
    }

    #[test]
    fn a_mutable_tag_without_a_checksum_is_warned_about() {
        let sha = "0".repeat(64);
        let tagged = "oci://registry.example.com/canary-filter:latest";
        let by_digest = format!("oci://registry.example.com/canary-filter@sha256:{sha}");
        assert!(warnings(tagged, Some(&sha), PullPolicy::Always).is_empty());
        assert!(warnings(&by_digest, None, PullPolicy::Always).is_empty());
        assert!(warnings("file:///opt/plugin.wasm", None, PullPolicy::IfNotPresent).is_empty());
        let said = warnings(tagged, None, PullPolicy::IfNotPresent);
        assert_eq!(said.len(), 1);
        assert!(said[0].contains("mutable") && said[0].contains("--sha256"));
        let said = warnings(tagged, None, PullPolicy::Always);
        assert_eq!(said.len(), 2);
        assert!(said[1].contains("each rollout step") && said[1].contains("allow-all"));
        assert_eq!(
            warnings("https://example.com/p.wasm", None, PullPolicy::IfNotPresent).len(),
            1
        );
    }
}
