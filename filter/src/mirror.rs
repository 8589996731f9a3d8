//! A dark canary: which requests are copied to a version whose answers are discarded. The
//! filter writes the target's cluster into the mirror header; Envoy's
//! `request_mirror_policies` (`cluster_header`) sends the copy and throws its answer away, so
//! the user always gets the routed version's answer.
//!
//! Only requests whose method is listed and whose path no exclusion prefixes are eligible;
//! of those, `percent` are copied: a sticky share (the split's sticky key hashed with the
//! mirror's own seed, so one user's requests are all in or all out) or a random one. A request
//! already routed to the mirror's version is never copied to it again.

use crate::bucket::{bucket_of, BasisPoints, BUCKETS};
use crate::config::{MirrorSpec, WhenMissing, MIRROR_SEED_MIX};
use crate::cookie::find_cookie;
use crate::decision::RequestView;
use crate::error::Quoted;
use crate::plan::{basis_points, header_name, HeaderSlot, Key, RoutingPlan, Sticky, Version};
use crate::ConfigError;

/// The `mirror` section compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mirror {
    /// Index of the version the copies go to.
    version: usize,
    /// Share of the eligible requests copied, in buckets of [`BUCKETS`].
    share: BasisPoints,
    /// Whether the share is drawn by the sticky key (else per request).
    sticky: bool,
    seed: u32,
    /// The mirror header's name (lower case) and its slot (to see a client's copy).
    pub(crate) header: String,
    header_slot: HeaderSlot,
    method_slot: HeaderSlot,
    methods: Vec<Vec<u8>>,
    /// `:path`'s slot, only when some path is excluded.
    path_slot: Option<HeaderSlot>,
    exclude_paths: Vec<Vec<u8>>,
}

/// What the filter does with the mirror header of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MirrorAction {
    /// Copy the request to this version (index into [`RoutingPlan::versions`]): write its
    /// cluster into the mirror header.
    Copy(usize),
    /// Not copied, and the client sent a mirror header of its own: remove it.
    Remove,
    /// Not copied; nothing to do.
    Nothing,
}

/// The parts of the plan compiled before the mirror that it depends on.
pub(crate) struct MirrorContext<'a> {
    pub(crate) versions: &'a [Version],
    pub(crate) sticky: Option<&'a Sticky>,
    pub(crate) route_header: Option<&'a str>,
    pub(crate) version_header: Option<&'a str>,
}

/// Checks and compiles the `mirror` section; `slot` numbers the request headers it reads.
pub(crate) fn compile(
    spec: &MirrorSpec,
    context: &MirrorContext<'_>,
    mut slot: impl FnMut(&str) -> HeaderSlot,
) -> Result<Mirror, ConfigError> {
    let version = context
        .versions
        .iter()
        .position(|v| v.name == spec.version)
        .ok_or_else(|| ConfigError::UnknownVersion {
            field: "mirror.version".to_string(),
            value: spec.version.clone(),
        })?;
    let share = basis_points("mirror.percent", spec.percent)?;
    let sticky = match spec.sampling.as_deref() {
        None => context.sticky.is_some(),
        Some("sticky") if context.sticky.is_some() => true,
        Some("sticky") => {
            return Err(ConfigError::Mirror {
                field: "mirror.sampling".to_string(),
                reason: "`sticky` needs the top-level `sticky` keys, which are not given"
                    .to_string(),
            })
        }
        Some("random") => false,
        Some(other) => {
            return Err(ConfigError::Mirror {
                field: "mirror.sampling".to_string(),
                reason: format!("{} is neither `sticky` nor `random`", Quoted(other)),
            })
        }
    };
    let seed = spec
        .seed
        .unwrap_or_else(|| context.sticky.map_or(0, |sticky| sticky.seed) ^ MIRROR_SEED_MIX);
    let header = header_name("mirror.header", &spec.header, false)?;
    if Some(header.as_str()) == context.route_header
        || Some(header.as_str()) == context.version_header
    {
        return Err(ConfigError::Mirror {
            field: "mirror.header".to_string(),
            reason: format!(
                "{} is already a routing header; name a header of its own",
                Quoted(&header)
            ),
        });
    }
    if spec.methods.is_empty() {
        return Err(ConfigError::Empty {
            field: "mirror.methods".to_string(),
        });
    }
    let mut methods = Vec::with_capacity(spec.methods.len());
    for (i, method) in spec.methods.iter().enumerate() {
        let field = format!("mirror.methods[{i}]");
        if method.is_empty() {
            return Err(ConfigError::Empty { field });
        }
        // Methods are tokens and case-sensitive: `get` is not `GET`, and a list that says
        // `get` would copy nothing a browser sends.
        if !method.bytes().all(|b| b.is_ascii_uppercase() || b == b'-') {
            return Err(ConfigError::Mirror {
                field,
                reason: format!("{} is not an upper-case HTTP method", Quoted(method)),
            });
        }
        methods.push(method.as_bytes().to_vec());
    }
    let mut exclude_paths = Vec::with_capacity(spec.exclude_paths.len());
    for (i, path) in spec.exclude_paths.iter().enumerate() {
        if !path.starts_with('/') {
            return Err(ConfigError::Mirror {
                field: format!("mirror.exclude_paths[{i}]"),
                reason: format!("{} is not a path prefix starting with `/`", Quoted(path)),
            });
        }
        exclude_paths.push(path.as_bytes().to_vec());
    }
    Ok(Mirror {
        version,
        share,
        sticky,
        seed,
        header_slot: slot(&header),
        header,
        method_slot: slot(":method"),
        methods,
        path_slot: (!exclude_paths.is_empty()).then(|| slot(":path")),
        exclude_paths,
    })
}

impl RoutingPlan {
    /// The mirror header (lower case), when the configuration mirrors.
    pub fn mirror_header(&self) -> Option<&str> {
        self.mirror.as_ref().map(|mirror| mirror.header.as_str())
    }

    /// The version requests are copied to, when the configuration mirrors.
    pub fn mirror_version(&self) -> Option<usize> {
        self.mirror.as_ref().map(|mirror| mirror.version)
    }

    /// What to do with the mirror header of a request routed to version `routed`.
    pub fn mirror<R: RequestView>(&self, request: &mut R, routed: usize) -> MirrorAction {
        let Some(mirror) = &self.mirror else {
            return MirrorAction::Nothing;
        };
        if self.copies(mirror, request, routed) {
            return MirrorAction::Copy(mirror.version);
        }
        if request.header(mirror.header_slot).is_some() {
            MirrorAction::Remove
        } else {
            MirrorAction::Nothing
        }
    }

    fn copies<R: RequestView>(&self, mirror: &Mirror, request: &mut R, routed: usize) -> bool {
        if routed == mirror.version || mirror.share == 0 {
            return false;
        }
        let method = request.header(mirror.method_slot).unwrap_or_default();
        if !mirror.methods.iter().any(|allowed| allowed == method) {
            return false;
        }
        if let Some(slot) = mirror.path_slot {
            let path = request.header(slot).unwrap_or_default();
            if mirror
                .exclude_paths
                .iter()
                .any(|prefix| path.starts_with(prefix))
            {
                return false;
            }
        }
        let bucket = match self.mirror_key_bucket(mirror, request) {
            Some(bucket) => bucket,
            None if mirror.sticky
                && self.sticky.as_ref().map(|s| s.when_missing) == Some(WhenMissing::Default) =>
            {
                return false
            }
            None => request.random() % BUCKETS,
        };
        bucket < mirror.share
    }

    /// The bucket of the request's sticky key under the mirror's seed (sticky sampling only).
    fn mirror_key_bucket<R: RequestView>(&self, mirror: &Mirror, request: &mut R) -> Option<u32> {
        if !mirror.sticky {
            return None;
        }
        let sticky = self.sticky.as_ref()?;
        sticky.keys.iter().find_map(|key| {
            let value = match key {
                Key::Header(slot) => request.header(*slot),
                Key::Cookie(name) => {
                    let header = request.header(self.cookie_header?)?;
                    find_cookie(header, name)
                }
            }?;
            (!value.is_empty()).then(|| bucket_of(value, mirror.seed))
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::*;
    use crate::decision::RequestDescription;

    const BASE: &str = r#""versions": [{"name": "stable", "cluster": "app-v1"}, {"name": "canary", "cluster": "app-v2"}], "default": "stable""#;

    fn plan(extra: &str) -> RoutingPlan {
        RoutingPlan::from_json(format!("{{{BASE}, {extra}}}").as_bytes()).unwrap()
    }

    fn refused(extra: &str) -> String {
        RoutingPlan::from_json(format!("{{{BASE}, {extra}}}").as_bytes())
            .unwrap_err()
            .to_string()
    }

    fn request(method: &str, path: &str, key: &str) -> RequestDescription {
        RequestDescription::default()
            .header(":method", method)
            .header(":path", path)
            .header("x-user-id", key)
    }

    fn get(key: &str) -> RequestDescription {
        request("GET", "/", key)
    }

    const STICKY: &str = r#""sticky": {"keys": [{"header": "x-user-id"}], "seed": 7}"#;

    /// The mirrored share is the murmur3 contract under the mirror's own seed, checked with
    /// the reference murmur3 crate rather than the filter's own.
    #[test]
    fn the_sticky_share_follows_murmur3_under_the_mirror_seed() {
        let plan = plan(&format!(
            r#"{STICKY}, "mirror": {{"version": "canary", "percent": 30, "seed": 99}}"#
        ));
        let mut copied = 0;
        for i in 0..2000 {
            let key = format!("user-{i}");
            let hash = murmur3::murmur3_32(&mut std::io::Cursor::new(key.as_bytes()), 99).unwrap();
            let want = hash % 10_000 < 3000;
            let request = get(&key);
            let got = plan.mirror(&mut request.view(&plan), 0);
            assert_eq!(got == MirrorAction::Copy(1), want, "{key}");
            copied += usize::from(want);
        }
        assert!((500..700).contains(&copied), "{copied} of 2000 at 30 %");
    }

    #[test]
    fn the_default_seed_is_mixed_from_the_splits() {
        let plan = plan(&format!(
            r#"{STICKY}, "mirror": {{"version": "canary", "percent": 50}}"#
        ));
        assert_eq!(plan.mirror.as_ref().unwrap().seed, 7 ^ MIRROR_SEED_MIX);
    }

    #[test]
    fn unsafe_methods_excluded_paths_and_the_routed_version_are_never_copied() {
        let plan = plan(&format!(
            r#"{STICKY}, "mirror": {{"version": "canary", "percent": 100, "exclude_paths": ["/admin"]}}"#
        ));
        assert_eq!(
            plan.mirror(&mut get("u").view(&plan), 0),
            MirrorAction::Copy(1)
        );
        let head = request("HEAD", "/", "u");
        assert_eq!(plan.mirror(&mut head.view(&plan), 0), MirrorAction::Copy(1));
        for method in ["POST", "PUT", "DELETE", "PATCH", "get"] {
            let request = request(method, "/", "u");
            assert_eq!(
                plan.mirror(&mut request.view(&plan), 0),
                MirrorAction::Nothing,
                "{method}"
            );
        }
        for path in ["/admin", "/admin/users", "/administrator", "/admin?x=1"] {
            let request = request("GET", path, "u");
            assert_eq!(
                plan.mirror(&mut request.view(&plan), 0),
                MirrorAction::Nothing,
                "{path}"
            );
        }
        // Already routed to the canary: no second copy.
        assert_eq!(
            plan.mirror(&mut get("u").view(&plan), 1),
            MirrorAction::Nothing
        );
        // A client's own mirror header on a request not copied is removed.
        let sneaky = RequestDescription::default()
            .header(":method", "POST")
            .header("x-canary-mirror", "app-v3");
        assert_eq!(
            plan.mirror(&mut sneaky.view(&plan), 0),
            MirrorAction::Remove
        );
    }

    #[test]
    fn keyless_requests_follow_when_missing_and_random_sampling_draws_per_request() {
        let defaulted = plan(
            r#""sticky": {"keys": [{"header": "x-user-id"}], "when_missing": "default"}, "mirror": {"version": "canary", "percent": 100}"#,
        );
        let keyless = RequestDescription::default().header(":method", "GET");
        assert_eq!(
            defaulted.mirror(&mut keyless.view(&defaulted), 0),
            MirrorAction::Nothing
        );
        let random = plan(r#""mirror": {"version": "canary", "percent": 25}"#);
        let mut low = RequestDescription::default().header(":method", "GET");
        low.random = 2499;
        assert_eq!(
            random.mirror(&mut low.view(&random), 0),
            MirrorAction::Copy(1)
        );
        low.random = 2500;
        assert_eq!(
            random.mirror(&mut low.view(&random), 0),
            MirrorAction::Nothing
        );
    }

    #[test]
    fn no_mirror_reads_nothing() {
        let plain = plan(STICKY);
        assert_eq!(plain.header_names(), ["x-user-id"]);
        assert_eq!(plain.mirror_header(), None);
        assert_eq!(
            plain.mirror(&mut get("u").view(&plain), 0),
            MirrorAction::Nothing
        );
    }

    #[test]
    fn bad_mirror_sections_name_their_field() {
        for (extra, field) in [
            (
                r#""mirror": {"version": "nope", "percent": 5}"#,
                "mirror.version:",
            ),
            (
                r#""mirror": {"version": "canary", "percent": 101}"#,
                "mirror.percent:",
            ),
            (
                r#""mirror": {"version": "canary", "percent": 0.001}"#,
                "mirror.percent:",
            ),
            (
                r#""mirror": {"version": "canary", "percent": 5, "sampling": "sticky"}"#,
                "mirror.sampling:",
            ),
            (
                r#""mirror": {"version": "canary", "percent": 5, "sampling": "often"}"#,
                "mirror.sampling:",
            ),
            (
                r#""mirror": {"version": "canary", "percent": 5, "header": "x-canary-cluster"}"#,
                "mirror.header:",
            ),
            (
                r#""mirror": {"version": "canary", "percent": 5, "header": "bad header"}"#,
                "mirror.header:",
            ),
            (
                r#""mirror": {"version": "canary", "percent": 5, "methods": []}"#,
                "mirror.methods:",
            ),
            (
                r#""mirror": {"version": "canary", "percent": 5, "methods": ["GET", "get"]}"#,
                "mirror.methods[1]:",
            ),
            (
                r#""mirror": {"version": "canary", "percent": 5, "exclude_paths": ["admin"]}"#,
                "mirror.exclude_paths[0]:",
            ),
            (
                r#""mirror": {"version": "canary", "percent": 5, "pct": 1}"#,
                "mirror.pct:",
            ),
            (r#""mirror": {"version": "canary"}"#, "mirror:"),
        ] {
            let message = refused(extra);
            assert!(message.starts_with(field), "{extra}: {message}");
        }
    }
}
