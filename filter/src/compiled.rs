//! The compiled pieces of a plan (its versions, outcomes, sticky keys and rules) and how the
//! per-request path reads a request for them ([`RequestReader`]: a condition, a cookie, the
//! region; [`Sticky::key`]: the sticky key). A leaf under the plan and its parts (the rules'
//! index, the features, the mirror), so that each part works on these pieces without going
//! through the plan that holds them.

use crate::bucket::Split;
use crate::config::WhenMissing;
use crate::cookie::find_cookie;
use crate::request::{HeaderSlot, RequestView};

/// A version of the service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    /// Its name (metrics label, version header).
    pub name: String,
    /// The Envoy cluster written into the route header.
    pub cluster: String,
}

/// One `(version, rule label)` pair a request can end in; each has its own metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricSeries {
    /// Index into the plan's versions (`RoutingPlan::versions`).
    pub version: usize,
    /// The `rule` label: a rule's name, `weights` or `default`.
    pub label: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Sticky {
    pub(crate) keys: Vec<Key>,
    pub(crate) seed: u32,
    pub(crate) when_missing: WhenMissing,
}

/// A compiled sticky key source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Key {
    Header(HeaderSlot),
    Cookie(Vec<u8>),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Rule {
    pub(crate) name: String,
    pub(crate) conditions: Vec<Condition>,
    pub(crate) action: Action,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Condition {
    Header(HeaderSlot, ValueTest),
    Cookie(Vec<u8>, ValueTest),
    Region(Vec<Vec<u8>>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ValueTest {
    Equals(Vec<u8>),
    Prefix(Vec<u8>),
    Present,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Action {
    /// Pin to `(version, outcome)`.
    Pin(usize, usize),
    Split(Split),
    /// Pins features only; the version is left to the later rules and the split.
    Features,
}
/// Where the plan reads the request for its conditions and cookie keys: the slots of the
/// `cookie` header and of the region header. Held by the plan and lent to its parts, so that a
/// rule's conditions hold the same way for the version (decision.rs, rule_index.rs), the
/// features and the mirror.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RequestReader {
    /// The `cookie` header's slot (`None`: no rule or key reads a cookie).
    pub(crate) cookie_header: Option<HeaderSlot>,
    /// The region header's slot (`None`: the region is the proxy's).
    pub(crate) region_header: Option<HeaderSlot>,
}

impl RequestReader {
    /// Whether `condition` holds for `request`.
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

    /// Whether every condition of `rule` holds for `request`.
    pub(crate) fn rule_holds<R: RequestView>(&self, rule: &Rule, request: &mut R) -> bool {
        rule.conditions
            .iter()
            .all(|condition| self.holds(condition, request))
    }

    /// The value of the cookie `name`, if the request has it.
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

impl Sticky {
    /// The request's sticky key: the index of its source in `keys` (the first present) and
    /// its value.
    pub(crate) fn key<'r, R: RequestView>(
        &self,
        reader: &RequestReader,
        request: &'r mut R,
    ) -> Option<(usize, &'r [u8])> {
        let mut found = None;
        for (index, key) in self.keys.iter().enumerate() {
            let present = match key {
                Key::Header(slot) => request.header(*slot).is_some_and(|v| !v.is_empty()),
                Key::Cookie(name) => reader.cookie(request, name).is_some_and(|v| !v.is_empty()),
            };
            if present {
                found = Some((index, key));
                break;
            }
        }
        let (index, key) = found?;
        let value = match key {
            Key::Header(slot) => request.header(*slot),
            Key::Cookie(name) => reader.cookie(request, name),
        }?;
        Some((index, value))
    }
}
