//! Concurrent keyed load against a front proxy, for the tests that change things under
//! traffic. Bounded in time (120 s) and count, and stopped by the caller.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::http_agent;

/// What the clients saw.
#[derive(Debug, Default)]
pub struct LoadReport {
    /// Requests sent.
    pub sent: u64,
    /// Every answer that was not a 2xx, and every connection error.
    pub failures: Vec<String>,
}

/// Clients sending `GET /` with rotating `x-user-id` keys until stopped.
pub struct Load {
    stop: Arc<AtomicBool>,
    workers: Vec<JoinHandle<LoadReport>>,
}

impl Load {
    /// `threads` clients, each pausing `pause` between requests; every `tester_every`-th
    /// request also carries `x-canary: always` (a tester pinned by header).
    pub fn start(
        target: SocketAddr,
        threads: usize,
        pause: Duration,
        tester_every: Option<u64>,
    ) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let workers = (0..threads)
            .map(|worker| {
                let stop = Arc::clone(&stop);
                std::thread::spawn(move || {
                    let agent = http_agent(Duration::from_secs(10));
                    let url = format!("http://{target}/");
                    let deadline = Instant::now() + Duration::from_secs(120);
                    let mut report = LoadReport::default();
                    while !stop.load(Ordering::Relaxed)
                        && Instant::now() < deadline
                        && report.sent < 300_000
                    {
                        let key = format!("load-{worker}-{}", report.sent % 5_000);
                        let mut request = agent.get(&url).header("x-user-id", &key);
                        if tester_every.is_some_and(|n| report.sent.is_multiple_of(n)) {
                            request = request.header("x-canary", "always");
                        }
                        match request.call() {
                            Ok(reply) if reply.status().is_success() => {}
                            Ok(reply) => report.failures.push(format!("status {}", reply.status())),
                            Err(err) => report.failures.push(format!("error {err}")),
                        }
                        report.sent += 1;
                        if !pause.is_zero() {
                            std::thread::sleep(pause);
                        }
                    }
                    report
                })
            })
            .collect();
        Load { stop, workers }
    }

    /// Stops the clients and sums what they saw.
    pub fn stop(self) -> LoadReport {
        self.stop.store(true, Ordering::Relaxed);
        let mut total = LoadReport::default();
        for worker in self.workers {
            if let Ok(report) = worker.join() {
                total.sent += report.sent;
                total.failures.extend(report.failures);
            }
        }
        total
    }
}
