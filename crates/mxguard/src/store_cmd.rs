//! `mxguard store check [--repair]`: is the store file sound, and if not,
//! keep what can still be read. The work is in `mxguard_store::check`.

use crate::settings::Globals;
use clap::Subcommand;
use mxguard_store::check::{self, Checked, Contents, Repaired};
use std::process::ExitCode;

#[derive(Subcommand)]
pub enum StoreCommand {
    /// Verify every page of the store file (mxguard serve must be stopped).
    /// Exit status 0 if sound, 1 if damaged.
    Check {
        /// If damaged: copy every entry that can still be read into a new
        /// file, keep the damaged one as mxguard.redb.damaged-<time>, and
        /// put the new one in its place.
        #[arg(long)]
        repair: bool,
    },
}

pub fn run(globals: &Globals, cmd: StoreCommand) -> Result<ExitCode, String> {
    let StoreCommand::Check { repair } = cmd;
    let loaded = globals.load_config()?;
    let dir = &loaded.config.store.data_dir;
    let path = dir.join("mxguard.redb");
    // Refusals (serve holds the file, no store there) say what to do.
    let refused = |e: mxguard_store::StoreError| e.to_string();
    if !repair {
        return match check::check(dir).map_err(refused)? {
            Checked::Sound(c) => {
                println!("{}: sound ({})", path.display(), describe(&c));
                Ok(ExitCode::SUCCESS)
            }
            Checked::Damaged(what) => {
                println!("{what}");
                Ok(ExitCode::FAILURE)
            }
        };
    }
    match check::repair(dir).map_err(refused)? {
        Repaired::NothingToDo(c) => {
            println!(
                "{}: sound ({}); nothing to repair",
                path.display(),
                describe(&c)
            );
        }
        Repaired::Salvaged {
            damage,
            kept,
            skipped,
            damaged_file,
        } => {
            println!("{damage}");
            println!(
                "repaired: {} now holds what could be read ({}); {skipped} damaged part(s) skipped",
                path.display(),
                describe(&kept)
            );
            println!(
                "the damaged file is kept as {} (delete it once mxguard runs well)",
                damaged_file.display()
            );
            println!(
                "entries on damaged pages are lost: greylisted senders are greylisted again; if `mxguard stats` shows no classifier model, learn it again (mxguard learn)"
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn describe(c: &Contents) -> String {
    format!(
        "{} values, {} lists holding {} items",
        c.values, c.lists, c.list_items
    )
}
