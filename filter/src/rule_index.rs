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
//!
//! Only rules that choose a version are filed: a features-only rule (`Action::Features`)
//! never decides the version, so it must not stop the search for the first rule that does.
//! The feature pins are found apart from this index (`Features::decide` checks every rule
//! that names a feature, in order), so no rule that can pin a feature is missed.

use crate::compiled::{Action, Condition, Key, RequestReader, Rule, ValueTest};
use crate::cookie::{cookie_value, CookieNames};
use crate::request::{HeaderSlot, RequestView};

/// The sticky keys' cookies as the rules' pass over the `cookie` header found them: for each
/// of the first [`KEY_COOKIES`] keys that is a cookie, where its value lies in the header
/// (`None`: the header has no such cookie). Empty when no pass was made; the key is then
/// looked up in the header as before.
#[derive(Debug, Default)]
pub(crate) struct KeyCookies {
    scanned: bool,
    found: [Option<(usize, usize)>; KEY_COOKIES],
}

/// How many sticky keys the pass over the `cookie` header looks for.
const KEY_COOKIES: usize = 4;

impl KeyCookies {
    /// For key number `key`, a cookie: `Some(where its value is)` when the pass looked for it.
    pub(crate) fn found(&self, key: usize) -> Option<Option<(usize, usize)>> {
        if self.scanned && key < KEY_COOKIES {
            self.found.get(key).copied()
        } else {
            None
        }
    }
}

/// Up to this many header names among the rules' gates, the decision fetches each from the
/// request (a header map lookup each); beyond, it walks the request's headers once.
const FEW_HEADER_NAMES: usize = 2;

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
    /// The gates of one header or cookie from its rules' tests, in rule order.
    fn new<'a>(tests: impl Iterator<Item = (&'a ValueTest, usize)> + Clone) -> Self {
        // One rule reads it, the common case: its lists made directly.
        let mut first_two = tests.clone();
        if let (Some((test, rule)), None) = (first_two.next(), first_two.next()) {
            return match test {
                ValueTest::Equals(value) => Gates {
                    equals: vec![(value.clone(), vec![rule])],
                    any_value: Vec::new(),
                },
                ValueTest::Prefix(_) | ValueTest::Present => Gates {
                    equals: Vec::new(),
                    any_value: vec![rule],
                },
            };
        }
        let mut equals = Vec::new();
        let mut any_value = Vec::new();
        for (test, rule) in tests {
            match test {
                ValueTest::Equals(value) => equals.push((value.as_slice(), rule)),
                ValueTest::Prefix(_) | ValueTest::Present => any_value.push(rule),
            }
        }
        Gates {
            equals: grouped(&equals),
            any_value,
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

/// `(key, item)` pairs grouped by key, the keys sorted and each key's items in their order
/// ([`crate::order`]). A group costs its key's copy and its list; nothing else is allocated
/// per pair.
fn grouped<T: Copy>(items: &[(&[u8], T)]) -> Vec<(Vec<u8>, Vec<T>)> {
    // One pair, the common case of a header or cookie that one rule reads.
    if let [(key, item)] = items {
        return vec![(key.to_vec(), vec![*item])];
    }
    let keys: Vec<&[u8]> = items.iter().map(|(key, _)| *key).collect();
    let mut groups: Vec<(Vec<u8>, Vec<T>)> = Vec::new();
    for position in crate::order::by_bytes(&keys) {
        let Some(&(key, item)) = items.get(position) else {
            continue;
        };
        match groups.last_mut() {
            Some((last, list)) if last.as_slice() == key => list.push(item),
            _ => groups.push((key.to_vec(), vec![item])),
        }
    }
    groups
}

/// The index of a plan's rules.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct RuleIndex {
    /// Rules gated on a header, by the header's (lower-case) name, sorted by name.
    headers: Vec<(Vec<u8>, HeaderSlot, Gates)>,
    /// The cookie names the pass over the `cookie` header looks for: the rules' gates' and
    /// the first [`KEY_COOKIES`] sticky keys'. Empty when no rule is gated on a cookie (the
    /// keys then find their cookie themselves, and no pass is made).
    cookie_names: CookieNames,
    /// Per name of `cookie_names`: the rules gated on it, and the keys it is (bit `k` for key
    /// `k`).
    cookie_wants: Vec<(Gates, u8)>,
    /// Rules gated on the region, by region, sorted.
    regions: Vec<(Vec<u8>, RuleList)>,
}

impl RuleIndex {
    /// Indexes the rules that choose a version among `rules`; `header_names` are the plan's
    /// names by slot, `keys` the sticky keys.
    pub(crate) fn new(rules: &[Rule], header_names: &[String], keys: &[Key]) -> Self {
        // The header rules go in the order of their header's name, each name's in rule order:
        // the names are put in order once, then each rule counted into its name's place.
        let names: Vec<&[u8]> = header_names.iter().map(String::as_bytes).collect();
        let mut place = vec![0; header_names.len()];
        for (at, slot) in crate::order::by_bytes(&names).into_iter().enumerate() {
            if let Some(place) = place.get_mut(slot) {
                *place = at;
            }
        }
        let place_of = |slot: HeaderSlot| place.get(slot).copied().unwrap_or_default();
        let mut header_rules: Vec<(HeaderSlot, (&ValueTest, usize))> = Vec::new();
        let mut cookies = Vec::new();
        let mut regions = Vec::new();
        let choosing = rules
            .iter()
            .enumerate()
            .filter(|(_, rule)| !matches!(rule.action, Action::Features));
        for (number, rule) in choosing {
            match gate(rule) {
                Some(Condition::Header(slot, test)) => header_rules.push((*slot, (test, number))),
                Some(Condition::Cookie(name, test)) => {
                    cookies.push((name.as_slice(), Some((test, number))));
                }
                Some(Condition::Region(wanted)) => {
                    for region in wanted {
                        regions.push((region.as_slice(), number));
                    }
                }
                None => {}
            }
        }
        // Where each name's rules start, then each rule at its name's next free place.
        let mut starts = vec![0; header_names.len()];
        for (slot, _) in &header_rules {
            if let Some(count) = starts.get_mut(place_of(*slot)) {
                *count += 1;
            }
        }
        let mut next = 0;
        for start in &mut starts {
            let count = *start;
            *start = next;
            next += count;
        }
        let mut headers = vec![None; header_rules.len()];
        for rule in header_rules {
            if let Some(start) = starts.get_mut(place_of(rule.0)) {
                if let Some(cell) = headers.get_mut(*start) {
                    *cell = Some(rule);
                }
                *start += 1;
            }
        }
        let headers: Vec<_> = headers.into_iter().flatten().collect();
        let headers = headers
            .chunk_by(|(one, _), (other, _)| one == other)
            .filter_map(|run| {
                let (slot, _) = run.first()?;
                let name = header_names.get(*slot)?;
                let tests = run.iter().map(|(_, test)| *test);
                Some((name.as_bytes().to_vec(), *slot, Gates::new(tests)))
            })
            .collect();
        // The keys' cookies ride along the rules' pass, when there is one.
        let mut key_bits = Vec::new();
        if !cookies.is_empty() {
            for (number, key) in keys.iter().enumerate().take(KEY_COOKIES) {
                if let Key::Cookie(name) = key {
                    cookies.push((name.as_slice(), None));
                    key_bits.push((name.as_slice(), 1u8 << number));
                }
            }
        }
        let (names, cookie_wants) = grouped(&cookies)
            .into_iter()
            .map(|(name, wants)| {
                let keys = key_bits
                    .iter()
                    .filter(|(key, _)| *key == name.as_slice())
                    .fold(0, |bits, (_, bit)| bits | bit);
                let gates = Gates::new(wants.iter().flatten().copied());
                (name, (gates, keys))
            })
            .unzip();
        let mut regions = grouped(&regions);
        // A region listed twice in one rule files the rule once.
        for (_, rules) in &mut regions {
            rules.dedup();
        }
        RuleIndex {
            headers,
            cookie_names: CookieNames::new(names),
            cookie_wants,
            regions,
        }
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

/// The indexed rules' search for one request: the rules it was made from, and the plan's reader
/// of their conditions.
pub(crate) struct Search<'p> {
    pub(crate) index: &'p RuleIndex,
    pub(crate) rules: &'p [Rule],
    pub(crate) reader: &'p RequestReader,
}

impl Search<'_> {
    /// The number of the first rule that holds for `request`, looking only at the rules the
    /// index finds for it.
    /// Also returns where the sticky keys' cookies are, when it passed over the `cookie` header.
    pub(crate) fn first_rule<R: RequestView>(
        &self,
        request: &mut R,
    ) -> (Option<usize>, KeyCookies) {
        let mut key_cookies = KeyCookies::default();
        let index = self.index;
        // The first rule found so far: later candidates stop at it.
        let mut first: Option<usize> = None;

        if !index.headers.is_empty() {
            let mut lists: Vec<&[usize]> = Vec::new();
            // A few header names are each looked up in the request; more, and each of the
            // request's headers is looked up among them instead.
            let walked = index.headers.len() > FEW_HEADER_NAMES
                && request.for_each_header(&mut |name, value| {
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

        if !index.cookie_wants.is_empty() {
            let mut lists: Vec<&[usize]> = Vec::new();
            if let Some(header) = self
                .reader
                .cookie_header
                .and_then(|slot| request.header(slot))
            {
                key_cookies.scanned = true;
                let found = &mut key_cookies.found;
                index.cookie_names.scan(header, |number, raw_value| {
                    let Some((gates, keys)) = index.cookie_wants.get(number) else {
                        return;
                    };
                    let value = cookie_value(raw_value);
                    // The first cookie of each key's name (the one `find_cookie` returns).
                    for (bit, found) in found.iter_mut().enumerate() {
                        if found.is_none() && keys & (1 << bit) != 0 {
                            let start =
                                (value.as_ptr() as usize).saturating_sub(header.as_ptr() as usize);
                            *found = Some((start, start + value.len()));
                        }
                    }
                    lists.extend(gates.candidates(value));
                });
            }
            for list in lists {
                first = self.first_holding(list, first, request);
            }
        }

        if !index.regions.is_empty() {
            let list = self.reader.region(request).and_then(|region| {
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
        (first, key_cookies)
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
            let holds = self
                .rules
                .get(number)
                .is_some_and(|rule| self.reader.rule_holds(rule, request));
            if holds {
                return Some(number);
            }
        }
        first
    }
}
