//! The project's tools on the native harness (`canary-harness`) and canaryctl's library:
//! `canary-demo` and `canary-istio-demo` (`make demo`, `make istio-demo`), `canary-bench`
//! (`make bench`, `make bench-host-calls`, `make bench-cost`) and `canary-dashboard` (`make
//! dashboard-picture`), whose renderer is [`dashboard`].

pub mod dashboard;

use std::sync::mpsc;

pub use canary_harness::{Error, Result};

/// What the demo binaries wait on: it receives once Ctrl-C (or SIGTERM) arrives, and the main
/// thread then stops what it started by PID.
pub fn on_interrupt() -> Result<mpsc::Receiver<()>> {
    let (stop_tx, stop_rx) = mpsc::channel();
    ctrlc::set_handler(move || {
        let _ = stop_tx.send(());
    })?;
    Ok(stop_rx)
}
