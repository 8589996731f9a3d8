//! `canaryctl status`: the per-version table from Envoy's admin endpoints; with `--watch`, the
//! rates over each refresh interval.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Result};
use serde_json::json;

use crate::admin::Admin;
use crate::cli::StatusArgs;
use crate::status::{self, VersionStats};

/// Prints the table (or JSON) once; with `--watch`, the totals, then every SECONDS the rates
/// over the last refresh interval, until Ctrl-C or `--count` refreshes.
pub fn exec(args: StatusArgs) -> Result<()> {
    let admins: Vec<Admin> = args.admin.iter().map(|a| Admin::new(a)).collect();
    let rule = args.rule.as_deref();
    let sources: Vec<&str> = admins.iter().map(Admin::base).collect();
    let scope = rule.map_or(String::new(), |rule| format!("  rule {rule}"));
    let every = match args.watch {
        Some(seconds) if seconds > 0.0 && seconds.is_finite() => {
            Some(Duration::from_secs_f64(seconds))
        }
        Some(_) => bail!("--watch needs a number of seconds above 0"),
        None => None,
    };
    let mut versions = read(&admins, rule)?;
    let mut read_at = Instant::now();
    let now = || humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
    if args.json {
        let totals = status::summarize(&versions);
        if every.is_some() {
            println!("{}", json!({"time": now(), "rule": rule, "totals": totals}));
        } else {
            println!("{}", serde_json::to_string_pretty(&totals)?);
        }
    } else {
        let since = if every.is_some() {
            format!("{}  ", now())
        } else {
            String::new()
        };
        println!(
            "{since}{}{scope}  totals since each Envoy started",
            sources.join(", ")
        );
        print!("{}", status::render_table(&versions));
    }
    std::io::stdout().flush()?;
    let Some(every) = every else {
        return Ok(());
    };
    let redraw = !args.json && std::io::stdout().is_terminal();
    let mut refreshes = 0;
    while args.count.is_none_or(|count| refreshes < count) {
        std::thread::sleep(every.saturating_sub(read_at.elapsed()));
        let later = read(&admins, rule)?;
        let seconds = read_at.elapsed().as_secs_f64();
        read_at = Instant::now();
        let rates = status::rates(&later, &versions, seconds);
        versions = later;
        refreshes += 1;
        if args.json {
            println!(
                "{}",
                json!({"time": now(), "rule": rule, "window_seconds": seconds, "rates": rates})
            );
        } else {
            if redraw {
                print!("\x1b[2J\x1b[H");
            }
            println!(
                "{}  {}{scope}  over the last {seconds:.1}s",
                now(),
                sources.join(", ")
            );
            print!("{}", status::render_rates(&rates));
        }
        std::io::stdout().flush()?;
    }
    Ok(())
}

/// The filter's metrics of every admin endpoint, summed by version; of one rule label only
/// when `rule` is given.
pub fn read(admins: &[Admin], rule: Option<&str>) -> Result<BTreeMap<String, VersionStats>> {
    let mut total = BTreeMap::new();
    for admin in admins {
        for (version, stats) in status::read_versions_of_rule(admin, rule)? {
            let entry: &mut VersionStats = total.entry(version).or_default();
            status::add_into(entry, &stats);
        }
    }
    Ok(total)
}
