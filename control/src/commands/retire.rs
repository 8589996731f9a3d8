//! `canaryctl retire`: remove a version no split or rule can reach any more.

use anyhow::Result;

use crate::cli::RetireArgs;
use crate::commands::write;
use crate::edit;

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
