//! The benchmark's Lua peer (`envoy/lua/sticky-split.lua`, setup (f) of `make bench`) routes
//! every key exactly as the canary filter does: the same keys sent through a front running the
//! Lua filter and through a front running the canary filter with the same split reach the same
//! cluster, the one `murmur3_x86_32(key, 0) % 10000 < 1000` names (the Rust function the filter
//! runs, itself checked against published vectors and the `murmur3` crate).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use canary_harness::envoy::repo_root;
use canary_harness::mesh::{Isolated, Layout, Mesh};
use canary_harness::preamble::{contract_cluster, mesh, upstream_of};

/// The split the Lua source hard-codes: 10 % canary (`app-v2`), seed 0, key `x-user-id`.
const FILTER_CONFIG: &str = r#"{
  "versions": [{"name": "stable", "cluster": "app-v1"}, {"name": "canary", "cluster": "app-v2"}],
  "default": "stable", "weights": {"canary": 10},
  "sticky": {"keys": [{"header": "x-user-id"}], "seed": 0},
  "version_header": ""
}"#;

/// Keys of every length from 1 to 40 bytes (each tail length of murmur3's 4-byte blocks, many
/// times), multi-byte UTF-8, punctuation, and the benchmark's own `user-N` keys.
fn keys() -> Vec<String> {
    let alphabet: Vec<char> = "abcXYZ019-_.~!*ü€ß".chars().collect();
    let mut keys: Vec<String> = (1..=40)
        .flat_map(|len| {
            let alphabet = &alphabet;
            (0..8).map(move |variant| {
                (0..len)
                    .map(|i| alphabet[(i * 7 + variant * 3 + len) % alphabet.len()])
                    .collect()
            })
        })
        .collect();
    keys.extend((0..1200).map(|i| format!("user-{i}")));
    keys
}

#[test]
fn lua_sticky_split_routes_every_key_as_the_filter_does() {
    let lua = Mesh::start(
        Layout::isolated(Isolated {
            lua_filter: Some(repo_root().join("envoy/lua/sticky-split.lua")),
            ..Isolated::default()
        }),
        Some(FILTER_CONFIG),
    )
    .unwrap_or_else(|err| panic!("{err}"));
    let filter = mesh(FILTER_CONFIG);
    let keys = keys();
    let mut canary = 0;
    for key in &keys {
        let want = contract_cluster(key, 0, 10.0);
        let by_lua = upstream_of(&lua, key);
        let by_filter = upstream_of(&filter, key);
        assert_eq!(by_lua, want, "Lua, key {key:?}");
        assert_eq!(by_filter, want, "filter, key {key:?}");
        canary += usize::from(want == "app-v2");
    }
    // Both clusters were reached (10 % of 1,520 keys is about 150): a front that never
    // re-picked the route would have sent every key to the fallback, app-v1.
    assert!((100..=210).contains(&canary), "{canary} canary keys");
}
