//! Reading one header out of a header map as proxy-wasm hosts serialize it, without copying.
//!
//! The glue fetches a request's whole header map in one host call and looks the plan's headers
//! up here, instead of one host call per header name: every call into or out of Envoy's V8
//! costs about a microsecond (see BENCHMARKS.md), a lookup in this buffer a few nanoseconds.
//!
//! The format (proxy-wasm ABI): a little-endian `u32` pair count, then a `u32` key length and a
//! `u32` value length per pair, then each key and each value followed by a NUL byte, in order.
//! A buffer that does not follow it is treated as holding no headers: a request is never
//! refused, or the VM crashed, over what the host handed over.
//!
//! [`HeaderMapRequest`] is the request the filter decides on in Envoy: everything but the host
//! call that fetches the buffer, which the glue hands it as a closure. The tests run the
//! filter's exact per-request path natively by handing it a buffer instead.

use std::cell::Cell;

use crate::decision::RequestView;
use crate::plan::{HeaderSlot, RoutingPlan};

/// The value of the first header named `name` (Envoy keeps header names in lower case, and so
/// does the plan), or `None` if there is none or the buffer is malformed.
pub fn find_header<'a>(pairs: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    let count = usize::try_from(read_u32(pairs, 0)?).ok()?;
    // Lengths start after the count; data after all the lengths.
    let mut data = count.checked_mul(8)?.checked_add(4)?;
    for index in 0..count {
        let at = 4 + index * 8;
        let key_len = usize::try_from(read_u32(pairs, at)?).ok()?;
        let value_len = usize::try_from(read_u32(pairs, at + 4)?).ok()?;
        let key = pairs.get(data..data.checked_add(key_len)?)?;
        let value_start = data.checked_add(key_len)?.checked_add(1)?;
        let value_end = value_start.checked_add(value_len)?;
        if key == name {
            return pairs.get(value_start..value_end);
        }
        data = value_end.checked_add(1)?;
    }
    None
}

/// Calls `visit` with each pair of a header map, in order, up to where the buffer stops
/// following the format.
pub fn for_each_pair(pairs: &[u8], visit: &mut dyn FnMut(&[u8], &[u8])) {
    let Some(count) = read_u32(pairs, 0).and_then(|count| usize::try_from(count).ok()) else {
        return;
    };
    let Some(mut data) = count
        .checked_mul(8)
        .and_then(|lengths| lengths.checked_add(4))
    else {
        return;
    };
    for index in 0..count {
        let at = 4 + index * 8;
        let pair = (|| {
            let key_len = usize::try_from(read_u32(pairs, at)?).ok()?;
            let value_len = usize::try_from(read_u32(pairs, at + 4)?).ok()?;
            let key = pairs.get(data..data.checked_add(key_len)?)?;
            let value_start = data.checked_add(key_len)?.checked_add(1)?;
            let value_end = value_start.checked_add(value_len)?;
            Some((
                key,
                pairs.get(value_start..value_end)?,
                value_end.checked_add(1)?,
            ))
        })();
        let Some((key, value, next)) = pair else {
            return;
        };
        visit(key, value);
        data = next;
    }
}

/// A header map of one pair in the format [`find_header`] reads: what the glue builds when the
/// plan reads a single header name and it fetched only that header (one host call that returns
/// the value, cheaper than one that returns the whole map; see BENCHMARKS.md).
pub fn single_pair(name: &[u8], value: &[u8]) -> Vec<u8> {
    let length = |bytes: &[u8]| u32::try_from(bytes.len()).unwrap_or(u32::MAX).to_le_bytes();
    let mut pairs = Vec::with_capacity(14 + name.len() + value.len());
    pairs.extend_from_slice(&1u32.to_le_bytes());
    pairs.extend_from_slice(&length(name));
    pairs.extend_from_slice(&length(value));
    pairs.extend_from_slice(name);
    pairs.push(0);
    pairs.extend_from_slice(value);
    pairs.push(0);
    pairs
}

fn read_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let word = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes(word.try_into().ok()?))
}

/// A request as the filter sees it: the whole header map, serialized by the host, fetched by
/// `fetch` the first time the decision reads a header (a plan without rules and keys never
/// does) and each header then looked up in that buffer with [`find_header`].
pub struct HeaderMapRequest<'a, F, B> {
    fetch: F,
    /// The buffer once fetched.
    headers: Option<B>,
    /// The plan's header names, by [`HeaderSlot`].
    names: &'a [String],
    proxy_region: Option<&'a [u8]>,
    /// splitmix64 state, shared by every request of a worker.
    random: &'a Cell<u64>,
}

impl<'a, F, B> HeaderMapRequest<'a, F, B>
where
    F: FnMut() -> B,
    B: AsRef<[u8]>,
{
    /// A request whose header map `fetch` returns, for `plan`. `random` is the state of the
    /// keyless requests' random draws: any value but zero, carried from request to request.
    pub fn new(
        plan: &'a RoutingPlan,
        fetch: F,
        proxy_region: Option<&'a [u8]>,
        random: &'a Cell<u64>,
    ) -> Self {
        HeaderMapRequest {
            fetch,
            headers: None,
            names: plan.header_names(),
            proxy_region,
            random,
        }
    }
}

impl<F, B> RequestView for HeaderMapRequest<'_, F, B>
where
    F: FnMut() -> B,
    B: AsRef<[u8]>,
{
    fn header(&mut self, slot: HeaderSlot) -> Option<&[u8]> {
        let name = self.names.get(slot)?;
        let headers: &B = self.headers.get_or_insert_with(&mut self.fetch);
        find_header(headers.as_ref(), name.as_bytes())
    }

    fn proxy_region(&self) -> Option<&[u8]> {
        self.proxy_region
    }

    fn for_each_header(&mut self, visit: &mut dyn FnMut(&[u8], &[u8])) -> bool {
        let headers: &B = self.headers.get_or_insert_with(&mut self.fetch);
        for_each_pair(headers.as_ref(), visit);
        true
    }

    fn random(&mut self) -> u32 {
        // splitmix64: a few arithmetic steps per keyless request. The buckets need spread, not
        // secrecy, and pulling in a random-number crate would add to every module's size.
        let state = self.random.get().wrapping_add(0x9e37_79b9_7f4a_7c15);
        self.random.set(state);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        ((z ^ (z >> 31)) >> 32) as u32
    }
}

#[cfg(test)]
mod tests {
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use std::cell::Cell;

    use super::{find_header, HeaderMapRequest};
    use crate::decision::RequestView;
    use crate::RoutingPlan;

    /// Serializes pairs the way a proxy-wasm host does.
    fn serialize(pairs: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = (pairs.len() as u32).to_le_bytes().to_vec();
        for (key, value) in pairs {
            out.extend((key.len() as u32).to_le_bytes());
            out.extend((value.len() as u32).to_le_bytes());
        }
        for (key, value) in pairs {
            out.extend(key.as_bytes());
            out.push(0);
            out.extend(*value);
            out.push(0);
        }
        out
    }

    #[test]
    fn finds_the_first_header_of_a_name() {
        let buffer = serialize(&[
            (":path", b"/"),
            ("x-user-id", b"user-1"),
            ("cookie", b"a=1; b=2"),
            ("x-user-id", b"second"),
            ("x-empty", b""),
            ("x-bytes", b"\xff\x00\xfe"),
        ]);
        assert_eq!(find_header(&buffer, b":path"), Some(&b"/"[..]));
        assert_eq!(find_header(&buffer, b"x-user-id"), Some(&b"user-1"[..]));
        assert_eq!(find_header(&buffer, b"cookie"), Some(&b"a=1; b=2"[..]));
        assert_eq!(find_header(&buffer, b"x-empty"), Some(&b""[..]));
        assert_eq!(find_header(&buffer, b"x-bytes"), Some(&b"\xff\x00\xfe"[..]));
        assert_eq!(find_header(&buffer, b"x-missing"), None);
        assert_eq!(find_header(&buffer, b"x-user"), None);
        assert_eq!(find_header(&serialize(&[]), b"x-user-id"), None);
    }

    #[test]
    fn malformed_buffers_hold_no_headers() {
        let good = serialize(&[("x-a", b"1"), ("x-user-id", b"user-1")]);
        // Every truncation: never a panic, never a value read past what the buffer holds.
        for len in 0..good.len() {
            let cut = &good[..len];
            if let Some(value) = find_header(cut, b"x-user-id") {
                assert_eq!(value, b"user-1", "truncated to {len}");
            }
        }
        let mut huge_count = good.clone();
        huge_count[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(find_header(&huge_count, b"x-user-id"), None);
        let mut huge_length = good.clone();
        huge_length[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(find_header(&huge_length, b"x-user-id"), None);
        assert_eq!(find_header(&[], b"x-user-id"), None);
    }

    fn plan(json: &str) -> RoutingPlan {
        RoutingPlan::from_json(json.as_bytes()).unwrap()
    }

    const VERSIONS: &str = r#""versions": [{"name": "s", "cluster": "a"}, {"name": "c", "cluster": "b"}], "default": "s""#;

    #[test]
    fn the_header_map_is_fetched_once_and_only_when_read() {
        let reads_headers = plan(&format!(
            r#"{{{VERSIONS}, "sticky": {{"keys": [{{"header": "x-user-id"}}, {{"cookie": "uid"}}]}}}}"#
        ));
        let buffer = serialize(&[("cookie", b"uid=7"), ("x-user-id", b"u1")]);
        let fetches = Cell::new(0);
        let random = Cell::new(1);
        let mut request = HeaderMapRequest::new(
            &reads_headers,
            || {
                fetches.set(fetches.get() + 1);
                buffer.as_slice()
            },
            None,
            &random,
        );
        assert_eq!(fetches.get(), 0);
        assert_eq!(request.header(0), Some(&b"u1"[..]));
        assert_eq!(request.header(1), Some(&b"uid=7"[..]));
        assert_eq!(request.header(0), Some(&b"u1"[..]));
        assert_eq!(request.header(2), None, "no such slot");
        assert_eq!(fetches.get(), 1);

        let reads_none = plan(&format!(r#"{{{VERSIONS}, "weights": {{"c": 50}}}}"#));
        let mut request = HeaderMapRequest::new(
            &reads_none,
            || {
                fetches.set(fetches.get() + 1);
                buffer.as_slice()
            },
            Some(b"eu".as_slice()),
            &random,
        );
        reads_none.decide(&mut request);
        assert_eq!(request.proxy_region(), Some(&b"eu"[..]));
        assert_eq!(
            fetches.get(),
            1,
            "a plan that reads no header fetched the map"
        );
    }

    #[test]
    fn a_single_pair_reads_back_as_its_header_only() {
        for value in [&b""[..], b"u1", b"\xff\x00 bytes", &[b'k'; 300]] {
            let pairs = super::single_pair(b"x-user-id", value);
            assert_eq!(pairs, serialize(&[("x-user-id", value)]));
            assert_eq!(find_header(&pairs, b"x-user-id"), Some(value));
            assert_eq!(find_header(&pairs, b"cookie"), None);
        }
    }

    /// The draws are splitmix64's (Vigna's reference outputs from state 0, high 32 bits), and
    /// the state carries from one request to the next through the shared cell.
    #[test]
    fn random_draws_follow_splitmix64() {
        let plan = plan(&format!("{{{VERSIONS}}}"));
        let state = Cell::new(0);
        let mut first = HeaderMapRequest::new(&plan, Vec::<u8>::new, None, &state);
        assert_eq!(first.random(), 0xe220_a839);
        assert_eq!(first.random(), 0x6e78_9e6a);
        let mut second = HeaderMapRequest::new(&plan, Vec::<u8>::new, None, &state);
        assert_eq!(second.random(), 0x06c4_5d18);
        assert_eq!(second.random(), 0xf88b_b8a8);
    }
}
