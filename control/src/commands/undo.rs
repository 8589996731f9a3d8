//! `canaryctl undo`: go back to the configuration before the last change.

use anyhow::Result;

use crate::cli::UndoArgs;
use crate::commands::write;

/// Restores the previous version of the file, previewing who moves back.
pub fn exec(args: UndoArgs) -> Result<()> {
    let pusher = write::pusher(&args.target, &args.confirm);
    let (update, applied) = pusher.undo()?;
    print!("{}", write::preview(&update));
    println!(
        "restored the previous version of {}",
        pusher.file.path().display()
    );
    print!("{}", write::report(&pusher, &applied));
    Ok(())
}
