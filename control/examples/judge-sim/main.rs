//! `make judge-sim`: whole rollouts of every scenario through the real judge, at 1,000, 10,000
//! and 100,000 requests per interval, seeded; writes the table to JUDGE.md. For each target
//! missed at its traffic, the smallest traffic of a ladder at which it holds, for the judge
//! and for the best valid test.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use canary_control::rollout::judge::JudgeSettings;
use clap::Parser;
use sim::{Row, Target};

mod sim;

#[derive(Parser)]
struct Args {
    /// Rollouts per scenario and traffic.
    #[arg(long, default_value_t = 2000)]
    rollouts: u64,
    /// Seed of every draw.
    #[arg(long, default_value_t = 20251126)]
    seed: u64,
    /// Threads.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Requests per interval, both versions together.
    #[arg(long, value_delimiter = ',', default_value = "1000,10000,100000")]
    requests: Vec<u64>,
    /// Traffic ladder tried for a missed target.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "1500,2000,3000,5000,7000,10000,15000,20000,30000,50000,100000"
    )]
    ladder: Vec<u64>,
    /// Only scenarios whose name contains this.
    #[arg(long)]
    only: Option<String>,
    /// Where the document goes.
    #[arg(long, default_value = "JUDGE.md")]
    out: PathBuf,
    /// Print the table instead of writing the document.
    #[arg(long)]
    print: bool,
    /// Override the default --min-intervals (exploring the defaults).
    #[arg(long)]
    min_intervals: Option<u32>,
    /// Override the default --alpha (exploring the defaults).
    #[arg(long)]
    alpha: Option<f64>,
}

const INTRO: &str = include_str!("intro.md");

fn main() -> Result<()> {
    let args = Args::parse();
    let mut settings = JudgeSettings::default();
    if let Some(n) = args.min_intervals {
        settings.min_intervals = n;
    }
    if let Some(a) = args.alpha {
        settings.alpha = a;
    }
    let started = Instant::now();
    let scenarios: Vec<_> = sim::scenarios()
        .into_iter()
        .filter(|s| args.only.as_deref().is_none_or(|o| s.name.contains(o)))
        .collect();
    let all = sim::scenarios();
    let number = |name: &str| {
        all.iter()
            .position(|s| s.name == name)
            .unwrap_or(usize::MAX)
    };
    // One row: `scenario` at `requests` per interval, with the run's settings and seed.
    let run_at = |scenario: &sim::Scenario, requests: u64| {
        sim::run(
            scenario,
            number(&scenario.name),
            requests,
            &settings,
            args.rollouts,
            args.seed,
            args.threads,
        )
    };
    let mut rows: Vec<Row> = Vec::new();
    for scenario in &scenarios {
        for &requests in &args.requests {
            let row = run_at(scenario, requests)?;
            eprintln!(
                "{:<50} {:>6}: rolled back {:>5.1}%  (by 25%: {:>5.1}%, by 50%: {:>5.1}%)  stopped {:>5.1}%  [{:.0?}]",
                row.scenario,
                row.requests,
                100.0 * row.rolled_back as f64 / row.rollouts as f64,
                100.0 * row.by_25 as f64 / row.rollouts as f64,
                100.0 * row.by_50 as f64 / row.rollouts as f64,
                100.0 * row.stopped as f64 / row.rollouts as f64,
                started.elapsed()
            );
            rows.push(row);
        }
    }
    let table = sim::table(&rows, &scenarios, &settings);

    // Missed targets: the smallest traffic of the ladder where each holds.
    let mut search = String::new();
    for scenario in &scenarios {
        for target in &scenario.targets {
            let Target::CaughtBy { share, weight, at } = *target else {
                continue;
            };
            let Some(row) = rows
                .iter()
                .find(|r| r.scenario == scenario.name && r.requests == at)
            else {
                continue;
            };
            if row.meets(target) != Some(false) {
                continue;
            }
            let mut found = None;
            for &requests in args.ladder.iter().filter(|&&r| r > at) {
                let row = run_at(scenario, requests)?;
                let caught = if weight <= 25.0 { row.by_25 } else { row.by_50 };
                let got = caught as f64 / row.rollouts as f64;
                eprintln!(
                    "  search {}: {requests} requests/interval: {:.1}% caught by {weight}%",
                    scenario.name,
                    got * 100.0
                );
                if got >= share {
                    found = Some((requests, got));
                    break;
                }
            }
            let what = match found {
                Some((requests, got)) => format!(
                    "holds from {requests} requests per interval ({:.1}% caught by {weight}%)",
                    got * 100.0
                ),
                None => format!(
                    "does not hold up to {} requests per interval",
                    args.ladder.last().copied().unwrap_or(at)
                ),
            };
            let measured =
                if weight <= 25.0 { row.by_25 } else { row.by_50 } as f64 / row.rollouts as f64;
            let best = match sim::best_valid_power(scenario, at, weight, &settings) {
                None => "-".to_string(),
                Some(p) => {
                    let from = args
                        .ladder
                        .iter()
                        .chain(&[at])
                        .copied()
                        .filter(|&r| {
                            sim::best_valid_power(scenario, r, weight, &settings)
                                .is_some_and(|q| q >= share)
                        })
                        .min();
                    format!(
                        "{:.1}% at {at}; {}",
                        p * 100.0,
                        match from {
                            Some(r) => format!("reaches {:.0}% from {r}", share * 100.0),
                            None => "out of reach on the ladder".to_string(),
                        }
                    )
                }
            };
            search.push_str(&format!(
                "| {} | ≥ {:.0}% caught by {weight}% at {at} | {:.1}% | {what} | {best} |\n",
                scenario.name,
                share * 100.0,
                measured * 100.0,
            ));
        }
    }
    let elapsed = started.elapsed();
    if args.print {
        println!("{table}\n{search}");
        return Ok(());
    }
    let mut doc = String::from(INTRO);
    doc.push_str(&format!(
        "\n## The table\n\n{} rollouts per row, seed {}, default settings ({:?}); `make judge-sim` wrote it in {:.0} s on {} threads.\n\n{table}",
        args.rollouts,
        args.seed,
        settings,
        elapsed.as_secs_f64(),
        args.threads
    ));
    doc.push_str("\n## Targets missed at their traffic\n\nThe smallest traffic of the ladder (");
    doc.push_str(
        &args
            .ladder
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(", "),
    );
    doc.push_str(" requests per interval) at which each holds, same seed and rollouts.\n\n");
    if search.is_empty() {
        doc.push_str("None: every target holds at its traffic.\n");
    } else {
        doc.push_str("| scenario | target | measured | smallest traffic where the judge meets it | best valid test |\n|---|---|---:|---|---|\n");
        doc.push_str(&search);
    }
    std::fs::write(&args.out, doc).with_context(|| format!("writing {}", args.out.display()))?;
    eprintln!(
        "wrote {} in {:.0} s",
        args.out.display(),
        elapsed.as_secs_f64()
    );
    Ok(())
}
