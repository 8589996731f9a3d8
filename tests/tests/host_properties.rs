//! The Envoy properties `make bench-host-calls` prices as alternatives to the filter's own
//! reads (`response.code` on the response and at the end of the stream, `request.duration` at
//! the end of the stream) are there in Envoy 1.40 for every request: the probe
//! (`tests/probe`) reads each, counting reads that return a value and reads that return none.
//! A price measured on reads that return nothing would be the price of a miss, which is
//! cheaper (no buffer to hand back).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::time::Duration;

use canary_harness::mesh::{Isolated, Layout, Mesh};
use canary_harness::preamble::get_ok;
use canary_harness::trap::probe_wasm;

#[test]
fn response_code_and_request_duration_are_there_for_every_request() {
    let probe = probe_wasm().unwrap_or_else(|err| panic!("{err}"));
    let mesh = Mesh::start(
        Layout::isolated(Isolated {
            wasm: Some(probe),
            ..Isolated::default()
        }),
        // And one property Envoy does not have, so that both counts are seen to move.
        Some("prop_code=1 log_code=1 log_duration=1 log_absent=1 count=1"),
    )
    .unwrap_or_else(|err| panic!("{err}"));
    let requests = 50;
    for i in 0..requests {
        let reply = get_ok(&mesh, &[("x-user-id", &format!("p-{i}"))]);
        // The probe routes every request to app-v1.
        assert_eq!(reply.upstream(), Some("app-v1"));
    }
    // `on_log` runs after the response went out: wait for the last request's reads.
    let found = "wasmcustom.probe_found";
    mesh.wait_for(Duration::from_secs(5), || {
        Ok(mesh.front().stat(found)? == 3 * requests)
    })
    .unwrap_or_else(|err| panic!("{err}: {:?}", mesh.front().stat(found)));
    assert_eq!(
        mesh.front().stat("wasmcustom.probe_missing").unwrap(),
        requests,
        "only the absent property may be missing"
    );
}
