//! The module's size budget, 180 KiB after `make wasm` (wasm-opt), in `make test`: a size
//! is the same on every run of the same toolchain, so unlike a time it can be a test.
//! BENCHMARKS.md says what the bytes are made of.

#![allow(clippy::unwrap_used, clippy::panic)]

use canary_wasm_cost::filter_module;

/// 180 KiB.
const BUDGET_BYTES: u64 = 184_320;

#[test]
fn the_module_is_within_its_size_budget() {
    let path = filter_module();
    let bytes = std::fs::metadata(&path)
        .unwrap_or_else(|err| panic!("{}: {err} (build it: `make wasm`)", path.display()))
        .len();
    assert!(
        bytes <= BUDGET_BYTES,
        "{} is {bytes} bytes, {} over the budget of {BUDGET_BYTES} (if cargo built it after \
         `make wasm`, this is the module before wasm-opt: run `make wasm`)",
        path.display(),
        bytes - BUDGET_BYTES
    );
}
