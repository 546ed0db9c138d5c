//! Rendering `cookbook migrate` (its flow is `ops::migrate`): the migrated cookbook on stdout, or
//! with `--write` one line on stderr saying what happened to the file.

use std::io::Write;

use super::args::MigrateArgs;
use crate::error::Error;
use crate::ops::migrate::{migrate, MigrateOptions};
use crate::ops::{CookbookFile, Workspace};

pub fn run(
    file: CookbookFile,
    args: &MigrateArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), Error> {
    // Its warnings are the migrated file's business: not shown.
    let ws = Workspace::open(file)?;
    let options = MigrateOptions {
        to: args.to.clone(),
        write: args.write,
    };
    let report = migrate(&ws, &options)?;
    if !args.write {
        let _ = out.write_all(report.text.as_bytes());
    } else if report.written {
        let (name, from, to) = (&report.file, report.from, report.to);
        let _ = writeln!(err, "{name}: migrated from {from} to {to}");
    } else {
        let _ = writeln!(
            err,
            "{}: already format {}, unchanged",
            report.file, report.to
        );
    }
    Ok(())
}
