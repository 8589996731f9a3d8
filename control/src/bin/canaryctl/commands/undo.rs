//! `canaryctl undo`: go back to the configuration before the last change.

use anyhow::Result;

use crate::commands::prelude::*;
use crate::commands::write;

#[derive(Args)]
pub struct UndoArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub confirm: Confirm,
}

/// Restores the previous version of the configuration, previewing who moves back.
pub fn exec(args: UndoArgs) -> Result<()> {
    let target = write::target(&args.target, &args.confirm)?;
    let (update, applied) = target.undo()?;
    print!("{}", write::preview(&update));
    println!("restored the previous version of {}", target.describe());
    print!("{}", target.report(&applied));
    if let canary_control::mesh::target::Target::EcdsFile(pusher) = &target {
        print!(
            "{}",
            canary_control::mesh::fallback::follow(pusher, &update.before, &update.after, false)?
        );
    }
    print!("{}", write::running_rollouts(&target, &update, false));
    Ok(())
}
