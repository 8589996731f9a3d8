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
use crate::checks::{basis_points, header_name};
use crate::compiled::{Key, RequestReader, Sticky, Version};
use crate::config::{MirrorSpec, WhenMissing, MIRROR_SEED_MIX};
use crate::error::ConfigError;
use crate::error::Quoted;
use crate::request::{HeaderSlot, RequestView};

/// The `mirror` section compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mirror {
    /// Index of the version the copies go to.
    pub(crate) version: usize,
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
    /// Copy the request to this version (index into the plan's versions): write its
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

impl Mirror {
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

    /// What to do with the mirror header of a request routed to version `routed`; `sticky`
    /// and `reader` are the plan's sticky keys and request reader (for sticky sampling).
    pub(crate) fn action<R: RequestView>(
        &self,
        sticky: Option<&Sticky>,
        reader: &RequestReader,
        request: &mut R,
        routed: usize,
    ) -> MirrorAction {
        if self.copies(sticky, reader, request, routed) {
            return MirrorAction::Copy(self.version);
        }
        if request.header(self.header_slot).is_some() {
            MirrorAction::Remove
        } else {
            MirrorAction::Nothing
        }
    }

    fn copies<R: RequestView>(
        &self,
        sticky: Option<&Sticky>,
        reader: &RequestReader,
        request: &mut R,
        routed: usize,
    ) -> bool {
        if routed == self.version || self.share == 0 {
            return false;
        }
        let method = request.header(self.method_slot).unwrap_or_default();
        if !self.methods.iter().any(|allowed| allowed == method) {
            return false;
        }
        if let Some(slot) = self.path_slot {
            let path = request.header(slot).unwrap_or_default();
            if self
                .exclude_paths
                .iter()
                .any(|prefix| path.starts_with(prefix))
            {
                return false;
            }
        }
        let bucket = match self.key_bucket(sticky, reader, request) {
            Some(bucket) => bucket,
            None if self.sticky && sticky.map(|s| s.when_missing) == Some(WhenMissing::Default) => {
                return false
            }
            None => request.random() % BUCKETS,
        };
        bucket < self.share
    }

    /// The bucket of the request's sticky key under the mirror's seed (sticky sampling only).
    fn key_bucket<R: RequestView>(
        &self,
        sticky: Option<&Sticky>,
        reader: &RequestReader,
        request: &mut R,
    ) -> Option<u32> {
        if !self.sticky {
            return None;
        }
        sticky?.keys.iter().find_map(|key| {
            let value = match key {
                Key::Header(slot) => request.header(*slot),
                Key::Cookie(name) => reader.cookie(request, name),
            }?;
            (!value.is_empty()).then(|| bucket_of(value, self.seed))
        })
    }
}

// Their tests go through a whole plan (`RoutingPlan::from_json`), which sits above this part.
#[cfg(test)]
mod tests;
