//! Finding cookies in a `cookie` request header, on raw bytes: the header may carry hundreds
//! of cookies, malformed pairs or bytes that are not UTF-8, and none of that may stop the
//! request from being routed.
//!
//! A browser's header holds dozens to hundreds of cookies, and splitting it at every `;` was
//! most of such a request's cost (BENCHMARKS.md). So the names a plan looks for are found from
//! the `=` signs instead, sixteen bytes at a time: a block's `=` signs whose byte before could
//! end a wanted name (or is white space, or `;`) are found with one mask ([`block`]), and only
//! at those is the pair looked at. A header whose cookies are all of other names costs about
//! a dozen wasm instructions per sixteen bytes.

/// The value of the first cookie called `name` (case-sensitive, RFC 6265) in a `cookie`
/// header value such as `a=1; b=2`. Pairs without `=` are skipped; surrounding white space
/// and one pair of surrounding double quotes are removed from the value.
pub fn find_cookie<'h>(header: &'h [u8], name: &[u8]) -> Option<&'h [u8]> {
    if !is_plain_name(name) {
        // Any other name (empty, or with white space, `=` or `;` in it), pair by pair.
        return cookies(header)
            .find_map(|(have, raw_value)| (have == name).then(|| cookie_value(raw_value)));
    }
    let ends = NameEnds::new(name.last().copied());
    let mut value = None;
    scan_pairs(header, &ends, |have, eq| {
        if have == name {
            value = Some(cookie_value(raw_value_at(header, eq)));
        }
        value.is_none()
    });
    value
}

/// The cookie names a plan looks for, compiled for [`CookieNames::scan`]: one pass over a
/// `cookie` header finds all of them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CookieNames {
    /// Sorted, without repeats.
    names: Vec<Vec<u8>>,
    /// The bytes the names end in.
    ends: NameEnds,
}

impl CookieNames {
    /// `names` must be sorted and without repeats (their number is what [`CookieNames::scan`]
    /// reports). A name no cookie can have (empty, or with white space, `=` or `;` in it) is
    /// kept, never found.
    pub fn new(names: Vec<Vec<u8>>) -> Self {
        let ends = names
            .iter()
            .filter(|name| is_plain_name(name))
            .filter_map(|name| name.last().copied());
        CookieNames {
            ends: NameEnds::new(ends),
            names,
        }
    }

    /// The names, as given to [`CookieNames::new`].
    pub fn names(&self) -> &[Vec<u8>] {
        &self.names
    }

    /// Calls `found(number, raw value)` for each cookie of `header` whose name is one of the
    /// names (`number` its place among them), in header order (a name found twice is reported
    /// twice). [`cookie_value`] makes the raw value the value.
    pub fn scan<'h>(&self, header: &'h [u8], mut found: impl FnMut(usize, &'h [u8])) {
        if self.names.is_empty() {
            return;
        }
        scan_pairs(header, &self.ends, |name, eq| {
            if let Ok(number) = self
                .names
                .binary_search_by(|have| have.as_slice().cmp(name))
            {
                found(number, raw_value_at(header, eq));
            }
            true
        });
    }
}

/// A name [`scan_pairs`] can find: not empty, and without the bytes that end or split a pair
/// or that trimming removes. Every cookie name a configuration may give is one (a token).
fn is_plain_name(name: &[u8]) -> bool {
    !name.is_empty()
        && !name
            .iter()
            .any(|byte| matches!(byte, b'=' | b';' | b' ' | b'\t'))
}

/// The bytes that may stand just before the `=` of a wanted pair: the last bytes of the
/// names, white space (`a = 1`) and `;` (an empty name, ruled out later).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct NameEnds {
    /// The bytes, a bit each: the exact test.
    bits: [u32; 8],
    /// The same set as two tables of sixteen bytes, indexed by a byte's low and its high four
    /// bits: a byte is in the set if the entries it indexes share a bit. Each byte gets its
    /// own bit up to eight bytes, so up to eight the test is exact; past eight bits are
    /// shared and the test lets more bytes through, which the exact test then sorts out.
    low: [u8; 16],
    high: [u8; 16],
}

impl NameEnds {
    fn new(ends: impl IntoIterator<Item = u8>) -> Self {
        let mut set = NameEnds::default();
        let mut count = 0;
        for byte in [b' ', b'\t', b';'].into_iter().chain(ends) {
            let (word, bit) = (usize::from(byte >> 5), 1u32 << (byte & 31));
            match set.bits.get_mut(word) {
                Some(have) if *have & bit == 0 => *have |= bit,
                _ => continue,
            }
            let class = 1u8 << (count % 8);
            count += 1;
            if let Some(low) = set.low.get_mut(usize::from(byte & 15)) {
                *low |= class;
            }
            if let Some(high) = set.high.get_mut(usize::from(byte >> 4)) {
                *high |= class;
            }
        }
        set
    }

    fn contains(&self, byte: u8) -> bool {
        self.bits
            .get(usize::from(byte >> 5))
            .is_some_and(|word| word & (1 << (byte & 31)) != 0)
    }
}

/// The pairs of a `cookie` header whose name may end in one of `ends`, found from the `=`
/// signs: `visit(name, position of the '=')` for each, in order, until it returns false. A
/// pair's name is what lies between the `;` before it (or the header's start) and its first
/// `=`, trimmed, as [`cookies`] reads it; pairs without `=` have none and are skipped.
fn scan_pairs<'h>(
    header: &'h [u8],
    ends: &NameEnds,
    mut visit: impl FnMut(&'h [u8], usize) -> bool,
) {
    // Where the pair of the next `=` begins at the earliest: just after the previous one
    // looked at (a `;` must come between for it to be another pair's).
    let mut after_previous: Option<usize> = None;
    // The first block, whose first byte has no byte before it, and the last, short one are
    // read from a padded copy; the others in place. The loop is kept to the block's test
    // (the deterministic measure charges a loop's straight-line code on every turn).
    let first = block::candidates(&padded_window(header, 0), ends);
    if first != 0 && !pairs_of_block(header, 0, first, &mut after_previous, ends, &mut visit) {
        return;
    }
    let mut block = block::BLOCK;
    while let Some(window) = header
        .get(block - 1..block + block::BLOCK)
        .and_then(|window| <&[u8; block::WINDOW]>::try_from(window).ok())
    {
        let mask = block::candidates(window, ends);
        if mask != 0 && !pairs_of_block(header, block, mask, &mut after_previous, ends, &mut visit)
        {
            return;
        }
        block += block::BLOCK;
    }
    if block < header.len() {
        let last = block::candidates(&padded_window(header, block), ends);
        if last != 0 {
            pairs_of_block(header, block, last, &mut after_previous, ends, &mut visit);
        }
    }
}

/// The bytes from `block - 1` to `block + BLOCK`, zeros where the header has none (a zero is
/// neither `=` nor a byte a name may end in that matters: the `=` after it has no name).
#[inline(never)]
fn padded_window(header: &[u8], block: usize) -> [u8; block::WINDOW] {
    let mut window = [0u8; block::WINDOW];
    let from = block.saturating_sub(1);
    let skip = usize::from(block == 0);
    let bytes = header.get(from..).unwrap_or_default();
    for (to, byte) in window.iter_mut().skip(skip).zip(bytes) {
        *to = *byte;
    }
    window
}

/// [`scan_pairs`]' work at the candidate `=` signs of one block (`mask`, a bit per byte):
/// the exact test of the byte before, then [`look_at_pair`]. Returns false when `visit` did.
#[inline(never)]
fn pairs_of_block<'h>(
    header: &'h [u8],
    block: usize,
    mut mask: block::Mask,
    after_previous: &mut Option<usize>,
    ends: &NameEnds,
    visit: &mut impl FnMut(&'h [u8], usize) -> bool,
) -> bool {
    while mask != 0 {
        let eq = block + mask.trailing_zeros() as usize;
        mask &= mask - 1;
        let floor = after_previous.replace(eq + 1);
        let worth_a_look = match eq.checked_sub(1).and_then(|at| header.get(at)) {
            Some(&byte) => ends.contains(byte),
            None => true,
        };
        if worth_a_look && !look_at_pair(header, eq, floor, ends, visit) {
            return false;
        }
    }
    true
}

/// [`scan_pairs`]' work at an `=` that may end a wanted name: its pair's name, handed to
/// `visit` if the `=` is its pair's first. Returns what `visit` returned (true: go on).
#[inline(never)]
fn look_at_pair<'h>(
    header: &'h [u8],
    eq: usize,
    floor: Option<usize>,
    ends: &NameEnds,
    visit: &mut impl FnMut(&'h [u8], usize) -> bool,
) -> bool {
    let before = header.get(..eq).unwrap_or_default();
    let name_end = before
        .iter()
        .rposition(|byte| !is_space(*byte))
        .map_or(0, |at| at + 1);
    if let Some(&last) = name_end.checked_sub(1).and_then(|at| header.get(at)) {
        if !ends.contains(last) {
            return true;
        }
    }
    // The `;` before the name, looked for back to the previous `=` that was looked at.
    let since = floor.unwrap_or(0);
    let pair_start = match memchr::memrchr(b';', header.get(since..name_end).unwrap_or_default()) {
        Some(at) => since + at + 1,
        // The `=` of a value (`a=b=c`): its pair's first `=` came before.
        None if floor.is_some() => return true,
        None => 0,
    };
    let name = header.get(pair_start..name_end).unwrap_or_default();
    let name = name
        .iter()
        .position(|byte| !is_space(*byte))
        .and_then(|start| name.get(start..))
        .unwrap_or_default();
    visit(name, eq)
}

/// With wasm's SIMD (the module is built with it, `.cargo/config.toml`): the sixteen bytes of
/// a block and the sixteen before them by one each, compared at once. Hand-written on
/// `core::arch`: `memchr` (used for the single searches here) hands out one match at a time
/// and starts a new search at each, which cost more than the search with an `=` every 30 to
/// 40 bytes; no crate found tests a byte and its neighbour together.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod block {
    use core::arch::wasm32::{
        u8x16_bitmask, u8x16_eq, u8x16_shr, u8x16_splat, u8x16_swizzle, v128, v128_and,
        v128_andnot, v128_load,
    };

    use super::NameEnds;

    pub(super) const BLOCK: usize = 16;
    /// A block and the byte before it.
    pub(super) const WINDOW: usize = BLOCK + 1;
    /// A bit per byte of a block.
    pub(super) type Mask = u16;

    /// The block's `=` signs whose byte before is in `ends` (or may be: see [`NameEnds`]).
    #[inline(always)]
    pub(super) fn candidates(window: &[u8; WINDOW], ends: &NameEnds) -> Mask {
        // SAFETY: each load reads sixteen bytes inside `window` (from 0 and from 1) or inside
        // a table of sixteen; wasm loads need no alignment.
        let (before, block, low, high) = unsafe {
            (
                v128_load(window.as_ptr().cast::<v128>()),
                v128_load(window.as_ptr().add(1).cast::<v128>()),
                v128_load(ends.low.as_ptr().cast::<v128>()),
                v128_load(ends.high.as_ptr().cast::<v128>()),
            )
        };
        let equal_signs = u8x16_eq(block, u8x16_splat(b'='));
        let classes = v128_and(
            u8x16_swizzle(low, v128_and(before, u8x16_splat(15))),
            u8x16_swizzle(high, u8x16_shr(before, 4)),
        );
        u8x16_bitmask(v128_andnot(equal_signs, u8x16_eq(classes, u8x16_splat(0))))
    }
}

/// Elsewhere (native builds, the wasm tests' target): every `=` of the block, byte by byte
/// (the compiler vectorizes it); [`pairs_of_block`]'s exact test then does the sorting.
#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
mod block {
    use super::NameEnds;

    pub(super) const BLOCK: usize = 16;
    pub(super) const WINDOW: usize = BLOCK + 1;
    pub(super) type Mask = u16;

    pub(super) fn candidates(window: &[u8; WINDOW], _ends: &NameEnds) -> Mask {
        window
            .iter()
            .skip(1)
            .enumerate()
            .filter(|(_, byte)| **byte == b'=')
            .fold(0, |mask, (at, _)| mask | 1 << at)
    }
}

/// The raw value of the pair whose `=` is at `eq`: up to the next `;` or the header's end.
fn raw_value_at(header: &[u8], eq: usize) -> &[u8] {
    let rest = header.get(eq + 1..).unwrap_or_default();
    let end = memchr::memchr(b';', rest).unwrap_or(rest.len());
    rest.get(..end).unwrap_or_default()
}

fn is_space(byte: u8) -> bool {
    byte == b' ' || byte == b'\t'
}

/// Every cookie of a `cookie` header as `(name, raw value)`, in order, as [`find_cookie`]
/// reads them: one pass over the header for all the names a plan looks for. The raw value is
/// what follows the `=`; [`cookie_value`] makes it the value, for the cookies wanted only.
pub fn cookies(header: &[u8]) -> Cookies<'_> {
    Cookies { rest: header }
}

/// A cookie's value from its raw value: white space and one pair of double quotes removed.
pub fn cookie_value(raw_value: &[u8]) -> &[u8] {
    strip_quotes(trim(raw_value))
}

/// The iterator of [`cookies`].
pub struct Cookies<'h> {
    rest: &'h [u8],
}

impl<'h> Iterator for Cookies<'h> {
    type Item = (&'h [u8], &'h [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        while !self.rest.is_empty() {
            let end = memchr::memchr(b';', self.rest).unwrap_or(self.rest.len());
            let (pair, rest) = self.rest.split_at(end);
            self.rest = rest.get(1..).unwrap_or_default();
            if let Some(eq) = pair.iter().position(|&byte| byte == b'=') {
                let (raw_name, raw_value) = pair.split_at(eq);
                // raw_value starts with the '='.
                return Some((trim(raw_name), raw_value.get(1..).unwrap_or_default()));
            }
        }
        None
    }
}

fn trim(bytes: &[u8]) -> &[u8] {
    let is_space = |byte: &u8| *byte == b' ' || *byte == b'\t';
    let start = bytes
        .iter()
        .position(|b| !is_space(b))
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !is_space(b))
        .map_or(start, |i| i + 1);
    bytes.get(start..end).unwrap_or_default()
}

fn strip_quotes(value: &[u8]) -> &[u8] {
    match value {
        [b'"', inner @ .., b'"'] => inner,
        _ => value,
    }
}

#[cfg(test)]
mod tests {
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    #[test]
    fn finds_cookies_by_exact_name() {
        type Case = (&'static [u8], &'static [u8], Option<&'static [u8]>);
        let table: &[Case] = &[
            (b"uid=42", b"uid", Some(b"42")),
            (b"a=1; uid=42; b=2", b"uid", Some(b"42")),
            (b"a=1;uid=42", b"uid", Some(b"42")),
            (b"  uid = 42  ", b"uid", Some(b"42")),
            (b"uid=\"quoted\"", b"uid", Some(b"quoted")),
            (b"uid=", b"uid", Some(b"")),
            (b"uid=a=b", b"uid", Some(b"a=b")),
            (b"UID=42", b"uid", None),
            (b"xuid=42", b"uid", None),
            (b"uid=first; uid=second", b"uid", Some(b"first")),
            (b"", b"uid", None),
            (b";;;", b"uid", None),
            (b"uid", b"uid", None),
            (b"garbage; uid=7", b"uid", Some(b"7")),
            (b"=; =x; uid=8", b"uid", Some(b"8")),
            (b"\xff\xfe=1; uid=\xff9", b"uid", Some(b"\xff9")),
            (b"uid=\"", b"uid", Some(b"\"")),
        ];
        for &(header, name, want) in table {
            assert_eq!(find_cookie(header, name), want, "header {header:?}");
        }
    }

    /// The one-pass scans against the pair-by-pair reader: every cookie of every wanted name,
    /// in order, over headers built from pieces that put names, `=`, `;` and white space
    /// everywhere a block boundary (sixteen bytes) can fall.
    #[test]
    fn the_scans_find_what_the_pair_by_pair_reader_finds() {
        let pieces: [&[u8]; 14] = [
            b"uid", b"=", b"; ", b";", b" ", b"\t", b"a", b"x-uid", b"ui", b"d", b"==", b"v=1",
            b"\xff", b"\"q\"",
        ];
        let names: Vec<Vec<u8>> = vec![b"a".to_vec(), b"d".to_vec(), b"uid".to_vec()];
        let wanted = CookieNames::new(names.clone());
        // A small linear congruential generator: the same headers every run.
        let mut state = 0x2545_f491_u32;
        for _ in 0..3000 {
            let mut header = Vec::new();
            state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            let length = 1 + (state >> 16) % 30;
            for _ in 0..length {
                state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                header.extend_from_slice(pieces[(state >> 16) as usize % pieces.len()]);
            }
            let mut want = Vec::new();
            for (name, raw_value) in cookies(&header) {
                if let Ok(number) = names.binary_search_by(|have| have.as_slice().cmp(name)) {
                    want.push((number, raw_value));
                }
            }
            let mut found = Vec::new();
            wanted.scan(&header, |number, raw_value| found.push((number, raw_value)));
            assert_eq!(found, want, "{:?}", String::from_utf8_lossy(&header));
            for name in &names {
                let first = cookies(&header)
                    .find_map(|(have, raw)| (have == name.as_slice()).then(|| cookie_value(raw)));
                assert_eq!(find_cookie(&header, name), first, "{header:?} {name:?}");
            }
        }
    }

    #[test]
    fn byte_sets_of_more_than_eight_bytes_still_hold_their_bytes() {
        let ends = NameEnds::new(b"abcdefghijklmnop".iter().copied());
        for byte in 0..=255u8 {
            let wanted = b"abcdefghijklmnop \t;".contains(&byte);
            assert_eq!(ends.contains(byte), wanted, "{byte}");
            // The tables' test lets every byte of the set through (and may let others).
            let low = ends.low[usize::from(byte & 15)];
            let high = ends.high[usize::from(byte >> 4)];
            if wanted {
                assert_ne!(low & high, 0, "{byte}");
            }
        }
    }

    #[test]
    fn hundreds_of_cookies() {
        let mut header = Vec::new();
        for i in 0..400 {
            header.extend_from_slice(format!("c{i}=v{i}; ").as_bytes());
        }
        header.extend_from_slice(b"uid=last");
        assert_eq!(find_cookie(&header, b"c399"), Some(&b"v399"[..]));
        assert_eq!(find_cookie(&header, b"uid"), Some(&b"last"[..]));
        assert_eq!(find_cookie(&header, b"c400"), None);
    }
}
