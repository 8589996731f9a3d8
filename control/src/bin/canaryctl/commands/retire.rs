//! `canaryctl retire`: remove a version no split or rule can reach any more.

use anyhow::Result;

use crate::commands::prelude::*;
use crate::commands::write;
use canary_control::config::edit;

#[derive(Args)]
pub struct RetireArgs {
    /// The version to remove.
    pub version: String,
    #[command(flatten)]
    pub write: WriteArgs,
}

/// Retires the version and says so when the file was written.
pub fn exec(args: RetireArgs) -> Result<()> {
    let update = write::apply(&args.write, |config| edit::retire(config, &args.version))?;
    if update.written {
        println!(
            "retired `{}`: you can now remove its cluster from the mesh",
            args.version
        );
    }
    Ok(())
}
