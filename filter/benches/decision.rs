//! Criterion benchmarks of the pure core: the decision (a typical configuration and one with
//! 50 rules, short and long keys), cookie parsing and configuration parsing.
//! `cargo bench -p canary-filter` (or `make bench`).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::hint::black_box;

use canary_filter::cookie::find_cookie;
use canary_filter::decision::RequestDescription;
use canary_filter::RoutingPlan;
use criterion::{criterion_group, criterion_main, Criterion};

/// Two versions, three rules, a sticky header key: the shipped example. The end-to-end
/// benchmark (`make bench`) loads the same files into Envoy.
const TYPICAL: &str = include_str!("configs/typical.json");
/// The typical configuration with 50 rules, none of which matches the benchmarked requests.
const FIFTY_RULES: &str = include_str!("configs/fifty-rules.json");

fn decision(c: &mut Criterion) {
    let typical = RoutingPlan::from_json(TYPICAL.as_bytes()).unwrap();
    let fifty = RoutingPlan::from_json(FIFTY_RULES.as_bytes()).unwrap();
    let short = RequestDescription::default().header("x-user-id", "user-4711");
    let long = RequestDescription::default().header("x-user-id", "u".repeat(1024));
    let cookie = RequestDescription::default()
        .header("cookie", "theme=dark; lang=en; uid=user-4711; canary=maybe");
    // The views bind header slots once, as the glue's per-request view does.
    for (name, plan, request) in [
        ("typical/short key", &typical, &short),
        ("typical/1 KiB key", &typical, &long),
        ("typical/cookie key", &typical, &cookie),
        ("50 rules/short key", &fifty, &short),
    ] {
        c.bench_function(&format!("decide {name}"), |b| {
            b.iter(|| {
                let mut view = request.view(plan);
                black_box(plan.decide(black_box(&mut view)))
            })
        });
    }
}

fn cookies(c: &mut Criterion) {
    let small = b"theme=dark; lang=en; uid=user-4711; canary=maybe".to_vec();
    let mut many: Vec<u8> = (0..100)
        .flat_map(|i| format!("c{i}=v{i}; ").into_bytes())
        .collect();
    many.extend_from_slice(b"uid=user-4711");
    c.bench_function("find_cookie 4 cookies", |b| {
        b.iter(|| black_box(find_cookie(black_box(&small), b"uid")))
    });
    c.bench_function("find_cookie 101 cookies (last)", |b| {
        b.iter(|| black_box(find_cookie(black_box(&many), b"uid")))
    });
}

fn parsing(c: &mut Criterion) {
    let fifty = FIFTY_RULES;
    c.bench_function("parse+compile typical config", |b| {
        b.iter(|| black_box(RoutingPlan::from_json(black_box(TYPICAL.as_bytes())).unwrap()))
    });
    c.bench_function("parse+compile 50-rule config", |b| {
        b.iter(|| black_box(RoutingPlan::from_json(black_box(fifty.as_bytes())).unwrap()))
    });
}

criterion_group!(benches, decision, cookies, parsing);
criterion_main!(benches);
