//! `-f/--file`: the cookbook a command reads, found by `ops::locate` (the way cargo finds
//! `Cargo.toml`).

use std::path::{Path, PathBuf};

pub use super::args::CookbookArg;
use crate::error::Error;
pub use crate::ops::locate::{cookbook_file, display_name, stdin_bytes, COOKBOOK_FILE};
use crate::ops::CookbookFile;

impl CookbookArg {
    /// [`CookbookArg::resolve`], as the cookbook file to open.
    pub fn locate(&self, top: Option<&Path>) -> Result<CookbookFile, Error> {
        self.resolve(top).map(cookbook_file)
    }

    /// The cookbook file to use: `-f` after the subcommand, else `-f` before it (`top`), else
    /// `COOKBOOK_FILE`, else the search upward.
    pub fn resolve(&self, top: Option<&Path>) -> Result<PathBuf, Error> {
        crate::ops::locate::resolve(self.file.as_deref().or(top))
    }
}
