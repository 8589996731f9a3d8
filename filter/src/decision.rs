//! The per-request decision: rules in order, first match wins; otherwise the top-level split.
//! It reads the request through [`RequestView`], so the same code runs in Envoy (the wasm
//! glue), in `canaryctl explain` and in the tests.

use crate::bucket::{bucket_of, Split, BUCKETS};
use crate::config::WhenMissing;
use crate::cookie::find_cookie;
use crate::plan::{Action, Condition, HeaderSlot, Key, RoutingPlan, ValueTest};
use crate::rule_index::KeyCookies;

/// What the decision needs from a request.
pub trait RequestView {
    /// The value of the request header numbered `slot` in [`RoutingPlan::header_names`],
    /// or `None` when the request lacks it. Called at most a few times per slot.
    fn header(&mut self, slot: HeaderSlot) -> Option<&[u8]>;
    /// The proxy's own region (`node.locality.region`), if it has one.
    fn proxy_region(&self) -> Option<&[u8]>;
    /// A uniformly random number, for requests without a sticky key.
    fn random(&mut self) -> u32;
    /// Calls `visit` with the (lower-case) name and the value of each request header, in
    /// order, and returns `true`; or returns `false` without calling it, and the decision asks
    /// for each header it may need with [`RequestView::header`] instead. Listing the headers
    /// lets a plan with many header rules look each header up among its rules once, rather
    /// than each of its rules' headers up in the request.
    fn for_each_header(&mut self, visit: &mut dyn FnMut(&[u8], &[u8])) -> bool {
        let _ = visit;
        false
    }
}

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
        let (first, key_cookies) = self.first_rule(request);
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
                    request.header(self.cookie_header?)?.get(start..end)
                }
                (Key::Cookie(name), None) => self.cookie(request, name),
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

    pub(crate) fn holds<R: RequestView>(&self, condition: &Condition, request: &mut R) -> bool {
        match condition {
            Condition::Header(slot, test) => test.accepts(request.header(*slot)),
            Condition::Cookie(name, test) => test.accepts(self.cookie(request, name)),
            Condition::Region(regions) => match self.region(request) {
                Some(region) => regions.iter().any(|wanted| wanted.as_slice() == region),
                None => false,
            },
        }
    }

    pub(crate) fn cookie<'r, R: RequestView>(
        &self,
        request: &'r mut R,
        name: &[u8],
    ) -> Option<&'r [u8]> {
        let header = request.header(self.cookie_header?)?;
        find_cookie(header, name)
    }

    /// The request's region: the region header when present and non-empty, else the proxy's.
    pub(crate) fn region<'r, R: RequestView>(&self, request: &'r mut R) -> Option<&'r [u8]> {
        if let Some(slot) = self.region_header {
            // Two lookups keep the borrow checker content without copying the value.
            if request.header(slot).is_some_and(|value| !value.is_empty()) {
                return request.header(slot);
            }
        }
        request.proxy_region()
    }
}

impl ValueTest {
    fn accepts(&self, value: Option<&[u8]>) -> bool {
        match (self, value) {
            (_, None) => false,
            (ValueTest::Present, Some(_)) => true,
            (ValueTest::Equals(want), Some(value)) => value == want.as_slice(),
            (ValueTest::Prefix(prefix), Some(value)) => value.starts_with(prefix),
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
