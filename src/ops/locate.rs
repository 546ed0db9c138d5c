//! Finding the cookbook the way cargo finds `Cargo.toml`.
//!
//! Without `-f`, the nearest `cookbook.json` in the current directory or one of its parents;
//! `-f DIR` means `DIR/cookbook.json`; `-f -` reads standard input, and the cookbook's relative
//! paths (sources, contexts, the lock, the state directory) then start from the current
//! directory. An empty `COOKBOOK_FILE` counts as unset, as an empty `CARGO_TARGET_DIR` does.
//!
//! Standard input is read once and kept for the process: callers pass the resolved path around,
//! and a path whose bytes came from stdin is recognised by [`stdin_bytes`]. The command line's
//! `-f` (`cli::args::CookbookArg`) calls [`resolve`]; a daemon names its cookbook as a path.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::error::Error;
use crate::ops::CookbookFile;

/// The file name searched for.
pub const COOKBOOK_FILE: &str = "cookbook.json";

/// The cookbook read from standard input, with the path that stands for it.
static STDIN: OnceLock<(PathBuf, Vec<u8>)> = OnceLock::new();

/// The bytes of `path` when it is the stand-in for standard input.
pub fn stdin_bytes(path: &Path) -> Option<&'static [u8]> {
    STDIN
        .get()
        .filter(|(p, _)| p == path)
        .map(|(_, b)| b.as_slice())
}

/// How a cookbook file is named in messages: `<stdin>` for standard input.
pub fn display_name(path: &Path) -> String {
    if stdin_bytes(path).is_some() {
        "<stdin>".to_owned()
    } else {
        path.display().to_string()
    }
}

/// The cookbook at `path` (standard input's bytes when it is their stand-in), named as messages
/// name it.
pub fn cookbook_file(path: PathBuf) -> CookbookFile {
    CookbookFile {
        bytes: stdin_bytes(&path),
        label: display_name(&path),
        path,
    }
}

/// The cookbook file to use: `given` (`-f`), else `COOKBOOK_FILE`, else the nearest
/// `cookbook.json` from the current directory upward; `-` reads standard input, a directory means
/// its `cookbook.json`.
pub fn resolve(given: Option<&Path>) -> Result<PathBuf, Error> {
    let env = std::env::var_os("COOKBOOK_FILE").filter(|v| !v.is_empty());
    let given = given.map(Path::to_path_buf).or(env.map(PathBuf::from));
    let cwd = std::env::current_dir().map_err(|source| Error::Read {
        path: PathBuf::from("."),
        source,
    })?;
    match given {
        Some(p) if p.as_os_str() == "-" => read_stdin(&cwd),
        Some(p) if p.is_dir() => Ok(p.join(COOKBOOK_FILE)),
        Some(p) => Ok(p),
        None => search_upward(&cwd),
    }
}

fn read_stdin(cwd: &Path) -> Result<PathBuf, Error> {
    // Named like a file in the current directory so the lock and state directory land there;
    // `<stdin>` in messages.
    let path = cwd.join(COOKBOOK_FILE);
    let mut bytes = Vec::new();
    let max = crate::load::COOKBOOK_MAX;
    std::io::stdin()
        .take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| Error::Read {
            path: PathBuf::from("<stdin>"),
            source,
        })?;
    if bytes.len() as u64 > max {
        return Err(Error::Usage {
            message: format!(
                "standard input holds more than {} MiB: not a cookbook",
                max >> 20
            ),
            help: None,
        });
    }
    let _ = STDIN.set((path.clone(), bytes));
    Ok(path)
}

/// The nearest `cookbook.json` from `start` upward. The path is kept relative when it is in the
/// current directory, so messages say `cookbook.json:3:5`, not a long absolute path.
fn search_upward(start: &Path) -> Result<PathBuf, Error> {
    let mut searched = Vec::new();
    for dir in start.ancestors() {
        let candidate = dir.join(COOKBOOK_FILE);
        if candidate.is_file() {
            return Ok(if dir == start {
                PathBuf::from(COOKBOOK_FILE)
            } else {
                candidate
            });
        }
        searched.push(dir.display().to_string());
    }
    Err(Error::Usage {
        message: format!(
            "could not find {COOKBOOK_FILE} in {} or any parent directory",
            start.display()
        ),
        help: Some(
            "pass the cookbook with `-f PATH` (a file, a directory, or `-` for standard input), \
             or create one with `cookbook init`"
                .to_owned(),
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_nearest_cookbook_upward() {
        let root = tempfile::tempdir().unwrap();
        let deep = root.path().join("services/api/src");
        std::fs::create_dir_all(&deep).unwrap();
        std::fs::write(root.path().join(COOKBOOK_FILE), "{}").unwrap();
        assert_eq!(
            search_upward(&deep).unwrap(),
            root.path().join(COOKBOOK_FILE)
        );
        std::fs::write(root.path().join("services").join(COOKBOOK_FILE), "{}").unwrap();
        assert_eq!(
            search_upward(&deep).unwrap(),
            root.path().join("services").join(COOKBOOK_FILE)
        );
        assert_eq!(
            search_upward(root.path()).unwrap(),
            PathBuf::from(COOKBOOK_FILE)
        );
    }

    #[test]
    fn a_directory_named_cookbook_json_is_not_a_cookbook() {
        let root = tempfile::tempdir().unwrap();
        let inner = root.path().join("a");
        std::fs::create_dir_all(inner.join(COOKBOOK_FILE)).unwrap();
        std::fs::write(root.path().join(COOKBOOK_FILE), "{}").unwrap();
        assert_eq!(
            search_upward(&inner).unwrap(),
            root.path().join(COOKBOOK_FILE)
        );
    }
}
