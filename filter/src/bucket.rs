//! The sticky bucket and the weight ranges.
//!
//! `bucket = murmur3_x86_32(key, seed) % 10000`. Non-default versions take consecutive bucket
//! ranges in the order they are declared; buckets past every range go to the default version.
//! Raising one weight therefore only ever adds buckets to that version's range.

/// Buckets per 100 %: a weight of 0.01 % is one bucket.
pub const BUCKETS: u32 = 10_000;

/// `murmur3_x86_32(key, seed) % 10000`.
pub fn bucket_of(key: &[u8], seed: u32) -> u32 {
    murmur3_x86_32(key, seed) % BUCKETS
}

/// The 32-bit x86 variant of MurmurHash3 (Austin Appleby's `MurmurHash3_x86_32`), on a byte
/// slice. Written here rather than taken from the `murmur3` crate, whose version reads through
/// `std::io::Read` four bytes at a time: that was slower on the data path and pulled std's I/O
/// error tables into the `.wasm`. The tests check it against published vectors and against the
/// crate on random inputs.
pub fn murmur3_x86_32(key: &[u8], seed: u32) -> u32 {
    const C1: u32 = 0xcc9e_2d51;
    const C2: u32 = 0x1b87_3593;
    let mut h = seed;
    let mut blocks = key.chunks_exact(4);
    for block in &mut blocks {
        // chunks_exact(4) yields 4 bytes; the pattern says so without an index that could fail.
        let &[b0, b1, b2, b3] = block else { continue };
        let mut k = u32::from_le_bytes([b0, b1, b2, b3]);
        k = k.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2);
        h ^= k;
        h = h.rotate_left(13).wrapping_mul(5).wrapping_add(0xe654_6b64);
    }
    let tail = blocks.remainder();
    if !tail.is_empty() {
        let mut k = 0u32;
        for (i, byte) in tail.iter().enumerate() {
            k |= u32::from(*byte) << (8 * i);
        }
        k = k.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2);
        h ^= k;
    }
    // The length is mixed in modulo 2^32, as the reference implementation does.
    h ^= key.len() as u32;
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

/// A weight in basis points of a percent (1 = 0.01 %, 10000 = 100 %).
pub type BasisPoints = u32;

/// A compiled split: the upper bound (exclusive) of each non-default version's bucket range,
/// in declaration order. Buckets at or past the last bound belong to the default version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    /// `(upper bound, version index, outcome index)`, bounds non-decreasing.
    ranges: Vec<Range>,
    /// Outcome (metrics slot) for buckets that fall to the default version.
    default_outcome: usize,
}

/// One version's range inside a [`Split`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Range {
    end: u32,
    version: usize,
    outcome: usize,
}

impl Split {
    /// Builds a split from `(version index, weight, outcome index)` in declaration order.
    /// The caller has checked that the weights add up to at most [`BUCKETS`].
    pub fn new(weights: &[(usize, BasisPoints, usize)], default_outcome: usize) -> Self {
        let mut end = 0;
        let ranges = weights
            .iter()
            .map(|&(version, weight, outcome)| {
                end += weight;
                Range {
                    end,
                    version,
                    outcome,
                }
            })
            .collect();
        Split {
            ranges,
            default_outcome,
        }
    }

    /// The `(version, outcome)` a bucket belongs to; `None` means the default version.
    pub fn pick(&self, bucket: u32) -> Option<(usize, usize)> {
        self.ranges
            .iter()
            .find(|range| bucket < range.end)
            .map(|range| (range.version, range.outcome))
    }

    /// Outcome for buckets past every range.
    pub fn default_outcome(&self) -> usize {
        self.default_outcome
    }

    /// The bucket range `[start, end)` of each listed version, in declaration order.
    pub fn ranges(&self) -> Vec<(usize, u32, u32)> {
        let mut start = 0;
        self.ranges
            .iter()
            .map(|range| {
                let item = (range.version, start, range.end);
                start = range.end;
                item
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    /// Published test vectors of MurmurHash3_x86_32 (SMHasher, and the vectors used by the
    /// reference implementations' ports).
    #[test]
    fn murmur3_matches_published_vectors() {
        let vectors: &[(&[u8], u32, u32)] = &[
            (b"", 0, 0),
            (b"", 1, 0x514e_28b7),
            (b"", 0xffff_ffff, 0x81f1_6f39),
            (b"\xff\xff\xff\xff", 0, 0x7629_3b50),
            (b"\x21\x43\x65\x87", 0, 0xf55b_516b),
            (b"\x21\x43\x65\x87", 0x5082_edee, 0x2362_f9de),
            (b"\x21\x43\x65", 0, 0x7e4a_8634),
            (b"\x21\x43", 0, 0xa0f7_b07a),
            (b"\x21", 0, 0x7266_1cf4),
            (b"\x00\x00\x00\x00", 0, 0x2362_f9de),
            (b"\x00\x00\x00", 0, 0x85f0_b427),
            (b"\x00\x00", 0, 0x30f4_c306),
            (b"\x00", 0, 0x514e_28b7),
            (b"Hello, world!", 1234, 0xfaf6_cdb3),
            (b"Hello, world!", 4321, 0xbf50_5788),
            (
                b"The quick brown fox jumps over the lazy dog",
                0x9747_b28c,
                0x2fa8_26cd,
            ),
            (b"aaaa", 0x9747_b28c, 0x5a97_808a),
            (b"abc", 0x9747_b28c, 0xc84a_62dd),
            (b"Hello, world!", 0x9747_b28c, 0x2488_4cba),
        ];
        for &(key, seed, want) in vectors {
            assert_eq!(
                murmur3_x86_32(key, seed),
                want,
                "key {key:?} seed {seed:#x}"
            );
        }
    }

    /// The same function as the `murmur3` crate, on many inputs of every tail length.
    #[test]
    fn murmur3_matches_the_murmur3_crate() {
        let mut state = 0x1234_5678_9abc_def0_u64;
        for len in 0..200usize {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state as u8
                })
                .collect();
            let seed = state as u32;
            let want = murmur3::murmur3_32(&mut std::io::Cursor::new(&bytes), seed).unwrap();
            assert_eq!(murmur3_x86_32(&bytes, seed), want, "len {len}");
        }
    }

    #[test]
    fn bucket_is_hash_mod_10000() {
        for key in [
            "user-1",
            "user-2",
            "",
            "ünïcödé",
            "a-much-longer-key-with-many-bytes",
        ] {
            for seed in [0, 1, 42, u32::MAX] {
                let bucket = bucket_of(key.as_bytes(), seed);
                assert_eq!(bucket, murmur3_x86_32(key.as_bytes(), seed) % 10_000);
                assert!(bucket < BUCKETS);
            }
        }
    }

    #[test]
    fn ranges_are_consecutive_in_declaration_order() {
        // versions 1 (10 %), 2 (5.5 %), 3 (0 %), default gets the rest
        let split = Split::new(&[(1, 1000, 11), (2, 550, 12), (3, 0, 13)], 10);
        assert_eq!(
            split.ranges(),
            vec![(1, 0, 1000), (2, 1000, 1550), (3, 1550, 1550)]
        );
        let table = [
            (0, Some((1, 11))),
            (999, Some((1, 11))),
            (1000, Some((2, 12))),
            (1549, Some((2, 12))),
            (1550, None),
            (9999, None),
        ];
        for (bucket, want) in table {
            assert_eq!(split.pick(bucket), want, "bucket {bucket}");
        }
        assert_eq!(split.default_outcome(), 10);
    }

    #[test]
    fn full_weight_covers_every_bucket() {
        let split = Split::new(&[(1, 10_000, 1)], 0);
        assert_eq!(split.pick(0), Some((1, 1)));
        assert_eq!(split.pick(9_999), Some((1, 1)));
    }
}
