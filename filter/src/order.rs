//! The order of byte strings, for compiling: which rule names repeat, the header names in
//! order, the values a header's rules want grouped. One stable merge sort of positions, in
//! O(n log n): inserting each into a sorted list was O(n²) in moves, a few milliseconds at
//! 10,000 rules and a tenth of a second at 30,000 (BENCHMARKS.md, round 3). Not the standard
//! library's sorts: one of their instances is larger in the module than this whole file, and
//! each caller's comparison would be another instance.

/// The positions of `keys` in the order of the keys (bytewise, as `<[u8]>::cmp`), equal keys
/// in the order they are given.
pub(crate) fn by_bytes(keys: &[&[u8]]) -> Vec<usize> {
    let key = |position: usize| keys.get(position).copied().unwrap_or_default();
    let mut order: Vec<usize> = (0..keys.len()).collect();
    let mut merged: Vec<usize> = Vec::with_capacity(keys.len());
    let mut width = 1;
    while width < order.len() {
        merged.clear();
        for start in (0..order.len()).step_by(2 * width) {
            let middle = order.len().min(start + width);
            let end = order.len().min(start + 2 * width);
            let (left, right) = (
                order.get(start..middle).unwrap_or_default(),
                order.get(middle..end).unwrap_or_default(),
            );
            // Runs already in order (keys given sorted, the common case) are copied whole.
            let in_order = match (left.last(), right.first()) {
                (Some(&last), Some(&first)) => key(last) <= key(first),
                _ => true,
            };
            if in_order {
                merged.extend_from_slice(left);
                merged.extend_from_slice(right);
                continue;
            }
            let (mut l, mut r) = (0, 0);
            while let (Some(&a), Some(&b)) = (left.get(l), right.get(r)) {
                // `<=`: on equal keys the left one, given first, goes first.
                if key(a) <= key(b) {
                    merged.push(a);
                    l += 1;
                } else {
                    merged.push(b);
                    r += 1;
                }
            }
            merged.extend_from_slice(left.get(l..).unwrap_or_default());
            merged.extend_from_slice(right.get(r..).unwrap_or_default());
        }
        std::mem::swap(&mut order, &mut merged);
        width *= 2;
    }
    order
}

#[cfg(test)]
mod tests {
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    /// Against the standard library's stable sort of the positions by key, on lists of every
    /// length to 70 drawn from a few keys (many equal) and on longer ones.
    #[test]
    fn orders_as_the_standard_stable_sort() {
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let alphabet: [&[u8]; 7] = [
            b"",
            b"a",
            b"ab",
            b"b",
            b"x-flag-1",
            b"x-flag-10",
            b"x-flag-2",
        ];
        for length in (0..70).chain([500, 1_000, 4_097]) {
            for _ in 0..20 {
                let keys: Vec<&[u8]> = (0..length)
                    .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                    .collect();
                let mut want: Vec<usize> = (0..keys.len()).collect();
                want.sort_by(|a, b| keys[*a].cmp(keys[*b]));
                assert_eq!(by_bytes(&keys), want, "{keys:?}");
            }
        }
    }

    #[test]
    fn sorted_and_reversed_keys() {
        let names: Vec<String> = (0..1_000).map(|i| format!("rule-{i:04}")).collect();
        let keys: Vec<&[u8]> = names.iter().map(|name| name.as_bytes()).collect();
        assert_eq!(by_bytes(&keys), (0..1_000).collect::<Vec<_>>());
        let reversed: Vec<&[u8]> = keys.iter().rev().copied().collect();
        assert_eq!(by_bytes(&reversed), (0..1_000).rev().collect::<Vec<_>>());
    }
}
