//! The rules indexed by what they read, so that a request pays for the rules it could match,
//! not for every rule: with a thousand rules a request still looks at a handful.
//!
//! Every rule has a **gate**: one of its conditions, which must hold for the rule to hold. A
//! header or cookie condition holds only when its header or cookie is there, and an `equals`
//! one only for that one value; a region condition only for its regions. The index files each
//! rule under its gate's key: the header (then the value, for `equals`), the cookie name (then
//! the value), or each of its regions. A request looks up the keys it has: each header it
//! carries, each cookie in its `cookie` header (one pass over it), its region. What it finds
//! are candidate rules; each candidate's conditions are then checked in full, as before, and
//! the first rule in configuration order that holds wins. A rule that is not found cannot hold:
//! its gate does not.

use crate::cookie::cookies;
use crate::decision::RequestView;
use crate::plan::{Condition, HeaderSlot, RoutingPlan, Rule, ValueTest};

/// Rule numbers (indices into the plan's rules), ascending.
type RuleList = Vec<usize>;

/// The rules filed under one header or cookie.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Gates {
    /// Rules whose gate is `equals`, by the value wanted (sorted by value).
    equals: Vec<(Vec<u8>, RuleList)>,
    /// Rules whose gate is `prefix` or `present`: candidates whenever the header or cookie is
    /// there.
    any_value: RuleList,
}

impl Gates {
    fn add(&mut self, test: &ValueTest, rule: usize) {
        match test {
            ValueTest::Equals(value) => add_to(&mut self.equals, value.clone(), rule),
            ValueTest::Prefix(_) | ValueTest::Present => self.any_value.push(rule),
        }
    }

    /// The candidates for a header or cookie that has `value`: at most two lists.
    fn candidates(&self, value: &[u8]) -> [&[usize]; 2] {
        let equal = match self
            .equals
            .binary_search_by(|(wanted, _)| wanted.as_slice().cmp(value))
        {
            Ok(at) => self.equals.get(at).map_or(&[][..], |(_, rules)| rules),
            Err(_) => &[],
        };
        [equal, &self.any_value]
    }
}

/// Files `rule` under `key` in a list kept sorted by key.
fn add_to<K: Ord>(entries: &mut Vec<(K, RuleList)>, key: K, rule: usize) {
    match entries.binary_search_by(|(have, _)| have.cmp(&key)) {
        Ok(at) => {
            if let Some((_, rules)) = entries.get_mut(at) {
                rules.push(rule);
            }
        }
        Err(at) => entries.insert(at, (key, vec![rule])),
    }
}

/// The index of a plan's rules.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct RuleIndex {
    /// Rules gated on a header, by the header's (lower-case) name, sorted by name.
    headers: Vec<(Vec<u8>, HeaderSlot, Gates)>,
    /// Rules gated on a cookie, by the cookie's name, sorted by name.
    cookies: Vec<(Vec<u8>, Gates)>,
    /// Rules gated on the region, by region, sorted.
    regions: Vec<(Vec<u8>, RuleList)>,
}

impl RuleIndex {
    /// Indexes `rules`; `header_names` are the plan's names by slot.
    pub(crate) fn new(rules: &[Rule], header_names: &[String]) -> Self {
        let mut index = RuleIndex::default();
        for (number, rule) in rules.iter().enumerate() {
            let Some(gate) = gate(rule) else { continue };
            match gate {
                Condition::Header(slot, test) => {
                    let name = header_names
                        .get(*slot)
                        .map_or(Vec::new(), |name| name.as_bytes().to_vec());
                    let at = match index
                        .headers
                        .binary_search_by(|(have, _, _)| have.cmp(&name))
                    {
                        Ok(at) => at,
                        Err(at) => {
                            index.headers.insert(at, (name, *slot, Gates::default()));
                            at
                        }
                    };
                    if let Some((_, _, gates)) = index.headers.get_mut(at) {
                        gates.add(test, number);
                    }
                }
                Condition::Cookie(name, test) => {
                    let at = match index.cookies.binary_search_by(|(have, _)| have.cmp(name)) {
                        Ok(at) => at,
                        Err(at) => {
                            index.cookies.insert(at, (name.clone(), Gates::default()));
                            at
                        }
                    };
                    if let Some((_, gates)) = index.cookies.get_mut(at) {
                        gates.add(test, number);
                    }
                }
                Condition::Region(regions) => {
                    for region in regions {
                        let rules =
                            match index.regions.binary_search_by(|(have, _)| have.cmp(region)) {
                                Ok(at) => index.regions.get(at).map(|(_, rules)| rules.as_slice()),
                                Err(_) => None,
                            };
                        // A region listed twice in one rule files it once.
                        if rules.and_then(|rules| rules.last()) != Some(&number) {
                            add_to(&mut index.regions, region.clone(), number);
                        }
                    }
                }
            }
        }
        index
    }
}

/// The condition a rule is filed under: the most selective one it has (an `equals` on a
/// header, then on a cookie, then the region, then any header or cookie condition).
fn gate(rule: &Rule) -> Option<&Condition> {
    let rank = |condition: &Condition| match condition {
        Condition::Header(_, ValueTest::Equals(_)) => 0,
        Condition::Cookie(_, ValueTest::Equals(_)) => 1,
        Condition::Region(_) => 2,
        Condition::Header(..) => 3,
        Condition::Cookie(..) => 4,
    };
    rule.conditions
        .iter()
        .min_by_key(|condition| rank(condition))
}

impl RoutingPlan {
    /// The number of the first rule that holds for `request`, looking only at the rules the
    /// index finds for it.
    pub(crate) fn first_rule<R: RequestView>(&self, request: &mut R) -> Option<usize> {
        let index = &self.index;
        // The first rule found so far: later candidates stop at it.
        let mut first: Option<usize> = None;

        if !index.headers.is_empty() {
            let mut lists: Vec<&[usize]> = Vec::new();
            let walked = request.for_each_header(&mut |name, value| {
                if let Ok(at) = index
                    .headers
                    .binary_search_by(|(have, _, _)| have.as_slice().cmp(name))
                {
                    if let Some((_, _, gates)) = index.headers.get(at) {
                        lists.extend(gates.candidates(value));
                    }
                }
            });
            if !walked {
                // A view that cannot list its headers is asked for each name the index has.
                for (_, slot, gates) in &index.headers {
                    if let Some(value) = request.header(*slot) {
                        lists.extend(gates.candidates(value));
                    }
                }
            }
            for list in lists {
                first = self.first_holding(list, first, request);
            }
        }

        if !index.cookies.is_empty() {
            let mut lists: Vec<&[usize]> = Vec::new();
            if let Some(header) = self.cookie_header.and_then(|slot| request.header(slot)) {
                for (name, value) in cookies(header) {
                    if let Ok(at) = index
                        .cookies
                        .binary_search_by(|(have, _)| have.as_slice().cmp(name))
                    {
                        if let Some((_, gates)) = index.cookies.get(at) {
                            lists.extend(gates.candidates(value));
                        }
                    }
                }
            }
            for list in lists {
                first = self.first_holding(list, first, request);
            }
        }

        if !index.regions.is_empty() {
            let list = self.region(request).and_then(|region| {
                index
                    .regions
                    .binary_search_by(|(have, _)| have.as_slice().cmp(region))
                    .ok()
                    .and_then(|at| index.regions.get(at))
                    .map(|(_, rules)| rules.as_slice())
            });
            if let Some(list) = list {
                first = self.first_holding(list, first, request);
            }
        }
        first
    }

    /// The first rule of `candidates` (ascending) before `first` whose conditions all hold,
    /// else `first`.
    fn first_holding<R: RequestView>(
        &self,
        candidates: &[usize],
        first: Option<usize>,
        request: &mut R,
    ) -> Option<usize> {
        for &number in candidates {
            if first.is_some_and(|first| number >= first) {
                break;
            }
            let holds = self.rules.get(number).is_some_and(|rule| {
                rule.conditions
                    .iter()
                    .all(|condition| self.holds(condition, request))
            });
            if holds {
                return Some(number);
            }
        }
        first
    }
}
