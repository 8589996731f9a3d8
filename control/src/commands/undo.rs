//! `canaryctl undo`: go back to the configuration before the last change.

use anyhow::Result;

use crate::cli::UndoArgs;
use crate::commands::write;

/// Restores the previous version of the configuration, previewing who moves back.
pub fn exec(args: UndoArgs) -> Result<()> {
    let target = write::target(&args.target, &args.confirm)?;
    let (update, applied) = target.undo()?;
    print!("{}", write::preview(&update));
    println!("restored the previous version of {}", target.describe());
    print!("{}", target.report(&applied));
    if let crate::target::Target::EcdsFile(pusher) = &target {
        print!(
            "{}",
            crate::fallback::follow(pusher, &update.before, &update.after, false)?
        );
    }
    print!("{}", write::running_rollouts(&target, &update, false));
    Ok(())
}
