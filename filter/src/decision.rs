//! The per-request decision: rules in order, first match wins; otherwise the top-level split.
//! It reads the request through [`RequestView`], so the same code runs in Envoy (the wasm
//! glue), in `canaryctl explain` and in the tests.
//!
//! Every per-request method of [`RoutingPlan`] is here, above the plan and its parts: the
//! version (through the rules' index), the features, the mirror and the hosts. Each part decides
//! on its own struct, handed the plan's rules, sticky keys and request reader it needs, so
//! that no part depends on the plan that holds it.

use crate::bucket::{bucket_of, Split, BUCKETS};
use crate::compiled::{Action, Key};
use crate::config::WhenMissing;
use crate::features::FeatureReason;
use crate::mirror::MirrorAction;
use crate::plan::RoutingPlan;
use crate::rule_index::{KeyCookies, Search};

// `RequestView` and `HeaderSlot` are a leaf of their own (request.rs), which the plan's parts
// read requests through; here is where callers have always found them.
pub use crate::request::{HeaderSlot, RequestView};

/// The version a request goes to, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Index into [`RoutingPlan::versions`].
    pub version: usize,
    /// Index into [`RoutingPlan::outcomes`]: which metrics count this request.
    pub outcome: usize,
    /// Why.
    pub reason: Reason,
}

/// Why a request went where it went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Rule number `rule` pinned it to its version.
    Pinned { rule: usize },
    /// A split placed it by its bucket: rule number `rule`'s split, or the top-level one.
    Split {
        rule: Option<usize>,
        bucket: u32,
        /// The sticky key that gave the bucket (index into `sticky.keys`); `None` when the
        /// bucket was drawn at random.
        key: Option<usize>,
    },
    /// A split had to place it, no sticky key was present and `when_missing` is `default`.
    MissingKey { rule: Option<usize> },
}

impl RoutingPlan {
    /// Picks the version for one request.
    pub fn decide<R: RequestView>(&self, request: &mut R) -> Decision {
        // The first rule in order that holds, found through the rules' index (rule_index.rs):
        // only the rules the request could match are looked at. Features-only rules are not
        // in the index (they pin features, never a version: `decide_features`).
        let search = Search {
            index: &self.index,
            rules: &self.rules,
            reader: &self.reader,
        };
        let (first, key_cookies) = search.first_rule(request);
        let first = first.and_then(|index| Some((index, self.rules.get(index)?)));
        match first.map(|(index, rule)| (index, &rule.action)) {
            Some((index, Action::Pin(version, outcome))) => Decision {
                version: *version,
                outcome: *outcome,
                reason: Reason::Pinned { rule: index },
            },
            Some((index, Action::Split(split))) => {
                self.place(split, Some(index), request, &key_cookies)
            }
            Some((_, Action::Features)) | None => {
                self.place(&self.split, None, request, &key_cookies)
            }
        }
    }

    /// The sticky key's source index and bucket, if the request carries a key.
    pub fn sticky_bucket<R: RequestView>(&self, request: &mut R) -> Option<(usize, u32)> {
        self.sticky_bucket_with(request, &KeyCookies::default())
    }

    /// [`RoutingPlan::sticky_bucket`], with the key cookies the rules' pass over the `cookie`
    /// header found on its way, so that the header is not searched again.
    fn sticky_bucket_with<R: RequestView>(
        &self,
        request: &mut R,
        key_cookies: &KeyCookies,
    ) -> Option<(usize, u32)> {
        let sticky = self.sticky.as_ref()?;
        sticky.keys.iter().enumerate().find_map(|(index, key)| {
            let value = match (key, key_cookies.found(index)) {
                (Key::Header(slot), _) => request.header(*slot),
                (Key::Cookie(_), Some(found)) => {
                    let (start, end) = found?;
                    request.header(self.reader.cookie_header?)?.get(start..end)
                }
                (Key::Cookie(name), None) => self.reader.cookie(request, name),
            }?;
            if value.is_empty() {
                None
            } else {
                Some((index, bucket_of(value, sticky.seed)))
            }
        })
    }

    fn place<R: RequestView>(
        &self,
        split: &Split,
        rule: Option<usize>,
        request: &mut R,
        key_cookies: &KeyCookies,
    ) -> Decision {
        let (bucket, key) = match self.sticky_bucket_with(request, key_cookies) {
            Some((key, bucket)) => (bucket, Some(key)),
            None => {
                let missing = self.sticky.as_ref().map(|sticky| sticky.when_missing);
                if missing == Some(WhenMissing::Default) {
                    return Decision {
                        version: self.default_version,
                        outcome: self.missing_key_outcome,
                        reason: Reason::MissingKey { rule },
                    };
                }
                (request.random() % BUCKETS, None)
            }
        };
        let (version, outcome) = split
            .pick(bucket)
            .unwrap_or((self.default_version, split.default_outcome()));
        Decision {
            version,
            outcome,
            reason: Reason::Split { rule, bucket, key },
        }
    }

    /// The request's sticky key: the index of its source in `sticky.keys` and its value.
    pub fn sticky_key<'r, R: RequestView>(&self, request: &'r mut R) -> Option<(usize, &'r [u8])> {
        self.sticky.as_ref()?.key(&self.reader, request)
    }

    /// Which features a request has: bit `i` set for feature `i` on. Calls `each` with every
    /// feature's index, state and reason (for `canaryctl explain`). Without features: 0, and
    /// nothing read.
    pub fn decide_features<R: RequestView>(
        &self,
        request: &mut R,
        each: impl FnMut(usize, bool, FeatureReason),
    ) -> u32 {
        let Some(features) = &self.features else {
            return 0;
        };
        features.decide(
            &self.rules,
            self.sticky.as_ref(),
            &self.reader,
            request,
            each,
        )
    }

    /// What to do with the mirror header of a request routed to version `routed`.
    pub fn mirror<R: RequestView>(&self, request: &mut R, routed: usize) -> MirrorAction {
        let Some(mirror) = &self.mirror else {
            return MirrorAction::Nothing;
        };
        mirror.action(self.sticky.as_ref(), &self.reader, request, routed)
    }

    /// Whether the plan routes only some hosts (`hosts` given): each request's `:authority`
    /// is then read first, and a request for another host is left alone.
    pub fn is_scoped(&self) -> bool {
        self.hosts.is_some()
    }

    /// Whether the plan routes a request with this `:authority` (`None`: the request has
    /// none). Always, without `hosts`; with them, only a request for one of them.
    pub fn routes_authority(&self, authority: Option<&[u8]>) -> bool {
        match &self.hosts {
            None => true,
            Some(scope) => authority.is_some_and(|authority| scope.contains(authority)),
        }
    }
}

/// A request described by plain values: for `canaryctl explain`, the tests and benchmarks.
/// Header names are matched case-insensitively.
#[derive(Debug, Clone, Default)]
pub struct RequestDescription {
    /// `(name, value)` pairs; the first of a name wins.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The proxy's own region.
    pub proxy_region: Option<String>,
    /// What [`RequestView::random`] returns (keyless requests under `when_missing: random`).
    pub random: u32,
}

/// A [`RequestDescription`] bound to a plan's header slots.
pub struct DescribedRequest<'a> {
    slots: Vec<Option<&'a [u8]>>,
    proxy_region: Option<&'a [u8]>,
    random: u32,
}

impl RequestDescription {
    /// Adds a header.
    pub fn header(mut self, name: &str, value: impl Into<Vec<u8>>) -> Self {
        self.headers.push((name.to_ascii_lowercase(), value.into()));
        self
    }

    /// Binds the description to `plan`'s header slots.
    pub fn view<'a>(&'a self, plan: &RoutingPlan) -> DescribedRequest<'a> {
        let slots = plan
            .header_names()
            .iter()
            .map(|name| {
                self.headers
                    .iter()
                    .find(|(have, _)| have.eq_ignore_ascii_case(name))
                    .map(|(_, value)| value.as_slice())
            })
            .collect();
        DescribedRequest {
            slots,
            proxy_region: self.proxy_region.as_deref().map(str::as_bytes),
            random: self.random,
        }
    }
}

impl RequestView for DescribedRequest<'_> {
    fn header(&mut self, slot: HeaderSlot) -> Option<&[u8]> {
        self.slots.get(slot).copied().flatten()
    }

    fn proxy_region(&self) -> Option<&[u8]> {
        self.proxy_region
    }

    fn random(&mut self) -> u32 {
        self.random
    }
}
