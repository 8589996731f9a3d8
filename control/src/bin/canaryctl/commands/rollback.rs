//! `canaryctl rollback`: every non-default weight to 0 in one step; pins stay.

use anyhow::Result;

use crate::commands::prelude::*;
use crate::commands::write;
use canary_control::config::edit;

/// Rolls back and says so when the file was written.
pub fn exec(args: WriteArgs) -> Result<()> {
    let update = write::apply(&args, edit::rollback)?;
    if update.written {
        println!(
            "rolled back: every split sends all keys to `{}`; pins stay",
            update.after.default
        );
    }
    Ok(())
}
