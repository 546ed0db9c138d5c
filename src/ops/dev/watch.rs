//! What the dev loop watches, kept equal to what the stage's containers are made of now.
//!
//! Directories (a context's trees) are watched recursively. A single file (the cookbook, a file
//! a context copies) is watched through its directory, not by itself: an editor that saves by
//! writing a new file and renaming it over the old one (vim, most IDEs' "safe write") would leave
//! a watch on the file itself on the replaced inode, and the loop blind to every later save.
//! Events from a file's directory count only for the watched files in it.
//!
//! The roots are set again after every look at the sources (`Watched::set`), so an edit to the
//! cookbook that adds a container to the stage, or moves a context, is watched from then on.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use notify::{RecursiveMode, Watcher as _};

use crate::error::Error;

/// A notify watcher and what it watches: every directory in `trees` and `parents` has a watch
/// (a failed watch is not recorded, so the next [`Watched::set`] tries it again).
pub(super) struct Watched {
    watcher: notify::RecommendedWatcher,
    /// Watched recursively.
    trees: BTreeSet<PathBuf>,
    /// Watched through `parents`.
    files: BTreeSet<PathBuf>,
    /// Watched non-recursively, for the files in them.
    parents: BTreeSet<PathBuf>,
}

impl Watched {
    /// A watcher whose events go to `send`; it watches nothing until [`Watched::set`].
    pub(super) fn new(
        send: impl Fn(notify::Result<notify::Event>) + Send + 'static,
    ) -> Result<Watched, Error> {
        let watcher = notify::recommended_watcher(send)
            .map_err(|e| Error::Failed(format!("cannot watch the sources: {e}")))?;
        Ok(Watched {
            watcher,
            trees: BTreeSet::new(),
            files: BTreeSet::new(),
            parents: BTreeSet::new(),
        })
    }

    /// Watches exactly `roots` (absolute and resolved: directories and files), starting and
    /// ending watches as they differ from what is watched; `Ok(true)` when that changed.
    /// `Err`: a watch could not be started; what did start is kept, and the rest is tried again
    /// by the next call.
    pub(super) fn set(&mut self, roots: &[PathBuf]) -> Result<bool, Error> {
        let trees: BTreeSet<PathBuf> = roots.iter().filter(|r| r.is_dir()).cloned().collect();
        let files: BTreeSet<PathBuf> = roots.iter().filter(|r| !r.is_dir()).cloned().collect();
        let parents: BTreeSet<PathBuf> = files
            .iter()
            .filter_map(|f| f.parent().map(Path::to_path_buf))
            .collect();
        let changed = trees != self.trees || files != self.files;
        self.files = files;
        // Ended first, so that a path that was a file's directory and is now a tree (or the
        // other way round) is watched anew in its mode.
        for (old, new) in [(&mut self.trees, &trees), (&mut self.parents, &parents)] {
            let gone: Vec<PathBuf> = old.difference(new).cloned().collect();
            for path in gone {
                // A directory already removed has lost its watch with it.
                let _ = self.watcher.unwatch(&path);
                old.remove(&path);
            }
        }
        for (new, old, mode) in [
            (&trees, &mut self.trees, RecursiveMode::Recursive),
            (&parents, &mut self.parents, RecursiveMode::NonRecursive),
        ] {
            for path in new.difference(&old.clone()) {
                self.watcher
                    .watch(path, mode)
                    .map_err(|e| Error::Failed(format!("cannot watch {}: {e}", path.display())))?;
                old.insert(path.clone());
            }
        }
        Ok(changed)
    }

    /// Forgets every tree that `changed` names itself — an event about the root directory: it
    /// was deleted, moved or made anew, and its watch may be gone with it —, so that the next
    /// [`Watched::set`] watches it anew (`rm -rf dist && build`). Its identity cannot tell: a
    /// directory made anew often gets the inode number the deleted one had.
    pub(super) fn recheck(&mut self, changed: &[PathBuf]) {
        for path in changed {
            if self.trees.remove(path) {
                let _ = self.watcher.unwatch(path);
            }
        }
    }

    /// Whether a changed path is one of the sources: inside a watched tree, or a watched file.
    pub(super) fn covers(&self, path: &Path) -> bool {
        self.files.contains(path) || self.trees.iter().any(|t| path.starts_with(t))
    }

    /// The watched roots, sorted: the trees and the files.
    pub(super) fn roots(&self) -> Vec<&Path> {
        let mut roots: Vec<&Path> = self
            .trees
            .iter()
            .chain(&self.files)
            .map(PathBuf::as_path)
            .collect();
        roots.sort();
        roots
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc::{channel, Receiver};
    use std::time::{Duration, Instant};

    /// The first path an event names that `watched` covers, waiting at most 10 s (inotify
    /// answers in milliseconds); `None` when none came.
    fn covered(events: &Receiver<notify::Event>, watched: &Watched) -> Option<PathBuf> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            let event = events.recv_timeout(left).ok()?;
            if let Some(p) = event.paths.into_iter().find(|p| watched.covers(p)) {
                return Some(p);
            }
        }
        None
    }

    /// Whether an event names `path` (and `watched` covers it) within 10 s; events for other
    /// covered paths (the directory a write touched) are passed over.
    fn saw(events: &Receiver<notify::Event>, watched: &Watched, path: &Path) -> bool {
        std::iter::from_fn(|| covered(events, watched)).any(|p| p == path)
    }

    /// Takes events until none has come for 200 ms.
    fn drain(events: &Receiver<notify::Event>) {
        while events.recv_timeout(Duration::from_millis(200)).is_ok() {}
    }

    fn watcher() -> (Watched, Receiver<notify::Event>) {
        let (tx, rx) = channel();
        let watched = Watched::new(move |e: notify::Result<notify::Event>| {
            if let Ok(e) = e {
                let _ = tx.send(e);
            }
        })
        .unwrap();
        (watched, rx)
    }

    /// Saved the way vim and most IDEs save — a new file renamed over the old one —, twice:
    /// both saves are seen (a watch on the file itself would have missed the second).
    #[test]
    fn a_file_saved_by_rename_is_seen_on_every_save() {
        let dir = tempfile::tempdir().unwrap();
        let base = std::fs::canonicalize(dir.path()).unwrap();
        let file = base.join("cookbook.json");
        std::fs::write(&file, "{}").unwrap();
        let (mut watched, events) = watcher();
        assert!(watched.set(std::slice::from_ref(&file)).unwrap());
        for n in 0..2 {
            let temp = base.join(format!(".cookbook.json.swp{n}"));
            std::fs::write(&temp, format!("{{\"n\": {n}}}")).unwrap();
            std::fs::rename(&temp, &file).unwrap();
            assert!(saw(&events, &watched, &file), "save {n}");
            drain(&events);
        }
        // Another file in the same directory is not a source: the first change seen after it
        // is the cookbook's.
        assert!(!watched.covers(&base.join("README.md")));
        std::fs::write(base.join("README.md"), "x").unwrap();
        std::fs::write(&file, "{}").unwrap();
        assert_eq!(covered(&events, &watched), Some(file));
    }

    /// A tree deleted and made again at the same path (`rm -rf dist && build`) lost its watch
    /// with the first directory: the event naming the root makes the next set watch it anew.
    #[test]
    fn a_tree_made_anew_is_watched_anew() {
        let dir = tempfile::tempdir().unwrap();
        let base = std::fs::canonicalize(dir.path()).unwrap();
        let tree = base.join("dist");
        std::fs::create_dir(&tree).unwrap();
        let (mut watched, events) = watcher();
        watched.set(std::slice::from_ref(&tree)).unwrap();
        std::fs::remove_dir_all(&tree).unwrap();
        std::fs::create_dir(&tree).unwrap();
        // What the loop's batch hands over: the covered paths of the events.
        let mut changed = Vec::new();
        while let Ok(event) = events.recv_timeout(Duration::from_millis(200)) {
            changed.extend(event.paths.into_iter().filter(|p| watched.covers(p)));
        }
        assert!(changed.contains(&tree), "{changed:?}");
        watched.recheck(&changed);
        assert!(
            watched.set(std::slice::from_ref(&tree)).unwrap(),
            "watched anew"
        );
        std::fs::write(tree.join("app.js"), "1").unwrap();
        assert!(saw(&events, &watched, &tree.join("app.js")));
    }

    /// Set again with other roots, it watches the new ones and no longer the old.
    #[test]
    fn roots_follow_what_the_stage_is_made_of() {
        let dir = tempfile::tempdir().unwrap();
        let base = std::fs::canonicalize(dir.path()).unwrap();
        let (a, b) = (base.join("a"), base.join("b"));
        std::fs::create_dir_all(a.join("src")).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        let (mut watched, events) = watcher();
        assert!(watched.set(std::slice::from_ref(&a)).unwrap());
        assert!(
            !watched.set(std::slice::from_ref(&a)).unwrap(),
            "the same roots"
        );
        std::fs::write(a.join("src/main.rs"), "1").unwrap();
        assert!(saw(&events, &watched, &a.join("src/main.rs")));

        assert!(watched.set(std::slice::from_ref(&b)).unwrap());
        assert_eq!(watched.roots(), vec![b.as_path()]);
        drain(&events);
        std::fs::write(a.join("src/main.rs"), "2").unwrap();
        std::fs::write(b.join("app.py"), "1").unwrap();
        assert_eq!(covered(&events, &watched), Some(b.join("app.py")));
        assert!(!watched.covers(&a.join("src/main.rs")));
    }
}
