//! `canaryctl status`: the per-version table from Envoy's admin endpoints.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::time::Duration;

use anyhow::{bail, Result};

use crate::admin::Admin;
use crate::cli::StatusArgs;
use crate::status::{self, VersionStats};

/// Prints the table (or JSON) once, or every `--watch` seconds until Ctrl-C.
pub fn exec(args: StatusArgs) -> Result<()> {
    let admins: Vec<Admin> = args.admin.iter().map(|a| Admin::new(a)).collect();
    loop {
        let versions = read(&admins)?;
        if args.json {
            println!(
                "{}",
                serde_json::to_string_pretty(&status::summarize(&versions))?
            );
        } else {
            if args.watch.is_some() && std::io::stdout().is_terminal() {
                print!("\x1b[2J\x1b[H");
            }
            let sources: Vec<&str> = admins.iter().map(Admin::base).collect();
            println!("{}", sources.join(", "));
            print!("{}", status::render_table(&versions));
        }
        std::io::stdout().flush()?;
        match args.watch {
            Some(seconds) if seconds > 0.0 => std::thread::sleep(Duration::from_secs_f64(seconds)),
            Some(_) => bail!("--watch needs a number of seconds above 0"),
            None => return Ok(()),
        }
    }
}

/// The filter's metrics of every admin endpoint, summed by version.
pub fn read(admins: &[Admin]) -> Result<BTreeMap<String, VersionStats>> {
    let mut total = BTreeMap::new();
    for admin in admins {
        for (version, stats) in status::read_versions(admin)? {
            let entry: &mut VersionStats = total.entry(version).or_default();
            status::add_into(entry, &stats);
        }
    }
    Ok(total)
}
