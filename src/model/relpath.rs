//! Paths relative to the cookbook's directory.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;

/// A normalized, `/`-separated path relative to the cookbook's directory that never leaves it.
/// `"."` is the directory itself and is stored as the empty path. It is not an absolute `PathBuf`:
/// joining it to a real directory is the edge's job (`RelPath::under`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct RelPath(String);

/// Why a path was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RelPathError {
    Absolute,
    Escapes,
    Backslash,
    Empty,
}

impl fmt::Display for RelPathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RelPathError::Absolute => "is absolute",
            RelPathError::Escapes => "leaves the cookbook's directory",
            RelPathError::Backslash => "contains a backslash",
            RelPathError::Empty => "is empty",
        })
    }
}

impl RelPath {
    /// Parses and normalizes lexically: `./a//b/../c` becomes `a/c`. Symlinks are the context
    /// builder's concern; this only guarantees that the text cannot name anything outside.
    pub fn parse(s: &str) -> Result<RelPath, RelPathError> {
        if s.is_empty() {
            return Err(RelPathError::Empty);
        }
        if s.starts_with('/') || (s.len() >= 2 && s.as_bytes()[1] == b':') {
            return Err(RelPathError::Absolute);
        }
        if s.contains('\\') {
            return Err(RelPathError::Backslash);
        }
        let mut parts: Vec<&str> = Vec::new();
        for part in s.split('/') {
            match part {
                "" | "." => {}
                ".." => {
                    if parts.pop().is_none() {
                        return Err(RelPathError::Escapes);
                    }
                }
                p => parts.push(p),
            }
        }
        Ok(RelPath(parts.join("/")))
    }

    /// The path as `/`-separated text; `"."` for the cookbook's directory itself.
    pub fn as_str(&self) -> &str {
        if self.0.is_empty() {
            "."
        } else {
            &self.0
        }
    }

    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// The real path under a base directory.
    pub fn under(&self, base: &Path) -> PathBuf {
        if self.0.is_empty() {
            base.to_path_buf()
        } else {
            base.join(&self.0)
        }
    }

    /// `rest` below this path (`rest` is itself a normalized relative path, so the result is too).
    pub fn join(&self, rest: &RelPath) -> RelPath {
        match (self.0.is_empty(), rest.0.is_empty()) {
            (true, _) => rest.clone(),
            (_, true) => self.clone(),
            _ => RelPath(format!("{}/{}", self.0, rest.0)),
        }
    }

    /// This path relative to `dir`, when it lies inside `dir`.
    pub fn strip_prefix(&self, dir: &RelPath) -> Option<RelPath> {
        if dir.0.is_empty() {
            return Some(self.clone());
        }
        let rest = self.0.strip_prefix(&dir.0)?;
        if rest.is_empty() {
            Some(RelPath(String::new()))
        } else {
            rest.strip_prefix('/').map(|r| RelPath(r.to_owned()))
        }
    }
}

impl fmt::Display for RelPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for RelPath {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes() {
        assert_eq!(RelPath::parse("./a//b/../c").unwrap().as_str(), "a/c");
        assert_eq!(RelPath::parse(".").unwrap().as_str(), ".");
        assert_eq!(RelPath::parse("a/..").unwrap().as_str(), ".");
        assert!(RelPath::parse("a/..").unwrap().is_root());
    }

    #[test]
    fn refuses() {
        assert_eq!(RelPath::parse("/etc"), Err(RelPathError::Absolute));
        assert_eq!(RelPath::parse("C:/x"), Err(RelPathError::Absolute));
        assert_eq!(RelPath::parse(".."), Err(RelPathError::Escapes));
        assert_eq!(RelPath::parse("a/../../b"), Err(RelPathError::Escapes));
        assert_eq!(RelPath::parse("a\\b"), Err(RelPathError::Backslash));
        assert_eq!(RelPath::parse(""), Err(RelPathError::Empty));
    }

    #[test]
    fn strips_prefix() {
        let p = RelPath::parse("svc/api/main.py").unwrap();
        assert_eq!(
            p.strip_prefix(&RelPath::parse("svc").unwrap())
                .unwrap()
                .as_str(),
            "api/main.py"
        );
        assert_eq!(p.strip_prefix(&RelPath::parse("sv").unwrap()), None);
    }

    #[test]
    fn joins() {
        let (root, a, b) = (
            RelPath::default(),
            RelPath::parse("a").unwrap(),
            RelPath::parse("b/c").unwrap(),
        );
        assert_eq!(a.join(&b).as_str(), "a/b/c");
        assert_eq!(root.join(&b).as_str(), "b/c");
        assert_eq!(a.join(&root).as_str(), "a");
    }
}
