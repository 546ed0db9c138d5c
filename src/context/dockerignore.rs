//! `.dockerignore`, matched exactly as Docker matches it.
//!
//! Written by hand because no crate implements Docker's rules: the `ignore`/`globset` crates follow
//! gitignore (unanchored names, `dir/` meaning directories only, different `**`), which is not what
//! the daemon does. This is a port of moby's `patternmatcher` (pattern → regex compilation,
//! exact/prefix/suffix fast paths, last-match-wins with `!` exceptions, a pattern matching a parent
//! directory excludes everything below it) and of its `ignorefile.ReadAll` line rules. The tests
//! below are moby's own cases.
//!
//! Pruning follows moby's archive walker: an excluded directory is skipped unless some `!`
//! pattern's text starts with the directory's path (so `!**/keep` does NOT save a directory, as in
//! Docker).

use std::path::Path;

use regex::Regex;

pub use super::file::FileError;

/// The largest `.dockerignore` read. Docker has no limit; a real one is a few KiB, and the cap
/// keeps a file linked to `/dev/zero` from exhausting memory.
pub const FILE_MAX: u64 = 4 << 20;

/// Reads the `.dockerignore` at `path`: `None` when there is none. A link is followed, as the
/// docker CLI does, but only to a regular file of at most [`FILE_MAX`] bytes (see
/// [`super::file`]).
pub fn read_file(path: &Path) -> Result<Option<String>, FileError> {
    Ok(super::file::read_regular(path, FILE_MAX)?
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned()))
}

/// A problem in a `.dockerignore` line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: invalid pattern {pattern:?}: {reason}")]
pub struct PatternError {
    pub line: usize,
    pub pattern: String,
    pub reason: String,
}

#[derive(Debug, Clone)]
enum Matcher {
    Exact(String),
    Prefix(String),
    Suffix(String),
    Regex(Regex),
}

#[derive(Debug, Clone)]
struct Pattern {
    text: String,
    exclusion: bool,
    matcher: Matcher,
}

/// The compiled patterns of one `.dockerignore`.
#[derive(Debug, Clone, Default)]
pub struct DockerIgnore {
    patterns: Vec<Pattern>,
}

/// Go's `filepath.Clean` on a `/`-separated path: lexical, no file system access.
fn clean(path: &str) -> String {
    if path.is_empty() {
        return ".".to_owned();
    }
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|p| *p != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            p => parts.push(p),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_owned(),
        (false, false) => joined,
    }
}

fn compile(pattern: &str) -> Result<Matcher, String> {
    #[derive(PartialEq)]
    enum Kind {
        Exact,
        Prefix,
        Suffix,
        Regex,
    }
    let mut re = String::from("^");
    let mut kind = Kind::Exact;
    let chars: Vec<char> = pattern.chars().collect();
    let mut i = 0;
    let mut first = true;
    while i < chars.len() {
        let ch = chars[i];
        i += 1;
        match ch {
            '*' if chars.get(i) == Some(&'*') => {
                i += 1;
                if chars.get(i) == Some(&'/') {
                    i += 1;
                }
                if i >= chars.len() {
                    if kind == Kind::Exact {
                        kind = Kind::Prefix;
                    } else {
                        re.push_str(".*");
                        kind = Kind::Regex;
                    }
                } else {
                    re.push_str("(.*/)?");
                    kind = Kind::Regex;
                }
                if first {
                    kind = Kind::Suffix;
                }
            }
            '*' => {
                re.push_str("[^/]*");
                kind = Kind::Regex;
            }
            '?' => {
                re.push_str("[^/]");
                kind = Kind::Regex;
            }
            '.' | '+' | '(' | ')' | '|' | '{' | '}' | '$' => {
                re.push('\\');
                re.push(ch);
            }
            '\\' => match chars.get(i) {
                Some(&next) => {
                    i += 1;
                    re.push('\\');
                    re.push(next);
                    kind = Kind::Regex;
                }
                None => re.push_str("\\\\"),
            },
            '[' | ']' => {
                re.push(ch);
                kind = Kind::Regex;
            }
            c => re.push(c),
        }
        first = false;
    }
    // Go's filepath.Match refuses these; so does Docker, when it loads the file.
    if pattern.chars().rev().take_while(|&c| c == '\\').count() % 2 == 1 {
        return Err("a pattern cannot end with `\\`".to_owned());
    }
    Ok(match kind {
        Kind::Exact => Matcher::Exact(pattern.to_owned()),
        Kind::Prefix => Matcher::Prefix(pattern[..pattern.len() - 2].to_owned()),
        Kind::Suffix => Matcher::Suffix(pattern[2..].to_owned()),
        Kind::Regex => {
            re.push('$');
            Matcher::Regex(
                Regex::new(&re)
                    .map_err(|_| "unbalanced `[` or `]`, or a bad character class".to_owned())?,
            )
        }
    })
}

impl Pattern {
    fn matches(&self, path: &str) -> bool {
        match &self.matcher {
            Matcher::Exact(p) => path == p,
            Matcher::Prefix(p) => path.starts_with(p.as_str()),
            Matcher::Suffix(s) => {
                path.ends_with(s.as_str()) || (s.starts_with('/') && path == &s[1..])
            }
            Matcher::Regex(r) => r.is_match(path),
        }
    }
}

impl DockerIgnore {
    /// Parses a `.dockerignore` file's text (moby `ignorefile.ReadAll`, then `patternmatcher.New`).
    pub fn parse(text: &str) -> Result<DockerIgnore, PatternError> {
        let mut lines = Vec::new();
        for (n, raw) in text.lines().enumerate() {
            let raw = if n == 0 {
                raw.trim_start_matches('\u{feff}')
            } else {
                raw
            };
            if raw.starts_with('#') {
                continue;
            }
            let mut p = raw.trim();
            if p.is_empty() {
                continue;
            }
            let invert = p.starts_with('!');
            if invert {
                p = p[1..].trim();
            }
            let mut p = if p.is_empty() {
                String::new()
            } else {
                clean(p)
            };
            if p.len() > 1 && p.starts_with('/') {
                p.remove(0);
            }
            lines.push((n + 1, if invert { format!("!{p}") } else { p }));
        }
        DockerIgnore::from_patterns(lines)
    }

    /// Compiles already-read patterns, numbered by line for errors.
    pub fn from_patterns(lines: Vec<(usize, String)>) -> Result<DockerIgnore, PatternError> {
        let mut patterns = Vec::new();
        for (line, raw) in lines {
            let p = raw.trim();
            if p.is_empty() {
                continue;
            }
            let p = clean(p);
            let (exclusion, p) = match p.strip_prefix('!') {
                Some("") => {
                    return Err(PatternError {
                        line,
                        pattern: raw,
                        reason: "`!` alone excludes nothing".to_owned(),
                    })
                }
                Some(rest) => (true, rest.to_owned()),
                None => (false, p),
            };
            let matcher = compile(&p).map_err(|reason| PatternError {
                line,
                pattern: raw.clone(),
                reason,
            })?;
            patterns.push(Pattern {
                text: p,
                exclusion,
                matcher,
            });
        }
        Ok(DockerIgnore { patterns })
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Adds `!path`: Docker's CLI re-includes the Dockerfile and `.dockerignore` when a pattern
    /// excludes them, because the builder needs them (`TrimBuildFilesFromExcludes`).
    pub fn keep(&mut self, path: &str) {
        if self.is_excluded(path) {
            let text = clean(path);
            let matcher = Matcher::Exact(text.clone());
            self.patterns.push(Pattern {
                text,
                exclusion: true,
                matcher,
            });
        }
    }

    /// moby `MatchesOrParentMatches`: last matching pattern wins; a pattern that matches any parent
    /// directory of `path` matches `path`.
    pub fn is_excluded(&self, path: &str) -> bool {
        let path = clean(path);
        if path == "." {
            return false;
        }
        let parents: Vec<&str> = match path.rfind('/') {
            Some(cut) => path[..cut].split('/').collect(),
            None => Vec::new(),
        };
        let mut matched = false;
        for p in &self.patterns {
            if p.exclusion != matched {
                continue;
            }
            let mut hit = p.matches(&path);
            if !hit {
                for i in 0..parents.len() {
                    if p.matches(&parents[..=i].join("/")) {
                        hit = true;
                        break;
                    }
                }
            }
            if hit {
                matched = !p.exclusion;
            }
        }
        matched
    }

    /// Whether an excluded directory may be skipped without walking it (moby's archive walker).
    pub fn can_prune(&self, dir: &str) -> bool {
        let dir_slash = format!("{dir}/");
        !self
            .patterns
            .iter()
            .any(|p| p.exclusion && format!("{}/", p.text).starts_with(&dir_slash))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(patterns: &[&str], path: &str) -> bool {
        let lines = patterns
            .iter()
            .enumerate()
            .map(|(i, p)| (i + 1, p.to_string()))
            .collect();
        DockerIgnore::from_patterns(lines)
            .unwrap()
            .is_excluded(path)
    }

    /// moby/patternmatcher `TestMatches`, the `MatchesOrParentMatches` variant (exact or inexact
    /// both count as a match there).
    #[test]
    fn moby_matches_table() {
        let cases: &[(&str, &str, bool)] = &[
            ("**", "file", true),
            ("**", "file/", true),
            ("**/", "file", true),
            ("**/", "file/", true),
            ("**", "/", true),
            ("**/", "/", true),
            ("**", "dir/file", true),
            ("**/", "dir/file", true),
            ("**", "dir/file/", true),
            ("**/", "dir/file/", true),
            ("**/**", "dir/file", true),
            ("**/**", "dir/file/", true),
            ("dir/**", "dir/file", true),
            ("dir/**", "dir/file/", true),
            ("dir/**", "dir/dir2/file", true),
            ("dir/**", "dir/dir2/file/", true),
            ("**/dir", "dir", true),
            ("**/dir", "dir/file", true),
            ("**/dir2/*", "dir/dir2/file", true),
            ("**/dir2/*", "dir/dir2/file/", true),
            ("**/dir2/**", "dir/dir2/dir3/file", true),
            ("**/dir2/**", "dir/dir2/dir3/file/", true),
            ("**file", "file", true),
            ("**file", "dir/file", true),
            ("**/file", "dir/file", true),
            ("**file", "dir/dir/file", true),
            ("**/file", "dir/dir/file", true),
            ("**/file*", "dir/dir/file", true),
            ("**/file*", "dir/dir/file.txt", true),
            ("**/file*txt", "dir/dir/file.txt", true),
            ("**/file*.txt", "dir/dir/file.txt", true),
            ("**/file*.txt*", "dir/dir/file.txt", true),
            ("**/**/*.txt", "dir/dir/file.txt", true),
            ("**/**/*.txt2", "dir/dir/file.txt", false),
            ("**/*.txt", "file.txt", true),
            ("**/**/*.txt", "file.txt", true),
            ("a**/*.txt", "a/file.txt", true),
            ("a**/*.txt", "a/dir/file.txt", true),
            ("a**/*.txt", "a/dir/dir/file.txt", true),
            ("a/*.txt", "a/dir/file.txt", false),
            ("a/*.txt", "a/file.txt", true),
            ("a/*.txt**", "a/file.txt", true),
            ("a[b-d]e", "ae", false),
            ("a[b-d]e", "ace", true),
            ("a[b-d]e", "aae", false),
            ("a[^b-d]e", "aze", true),
            (".*", ".foo", true),
            (".*", "foo", false),
            ("abc.def", "abcdef", false),
            ("abc.def", "abc.def", true),
            ("abc.def", "abcZdef", false),
            ("abc?def", "abcZdef", true),
            ("abc?def", "abcdef", false),
            ("**/foo/bar", "foo/bar", true),
            ("**/foo/bar", "dir/foo/bar", true),
            ("**/foo/bar", "dir/dir2/foo/bar", true),
            ("abc/**", "abc", false),
            ("abc/**", "abc/def", true),
            ("abc/**", "abc/def/ghi", true),
            ("**/.foo", ".foo", true),
            ("**/.foo", "bar.foo", false),
            ("a(b)c/def", "a(b)c/def", true),
            ("a(b)c/def", "a(b)c/xyz", false),
            ("a.|)$(}+{bc", "a.|)$(}+{bc", true),
            (
                "dist/*.whl",
                "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
                true,
            ),
            ("a\\\\", "a\\", true),
            ("a\\*b", "a*b", true),
        ];
        for (pattern, path, want) in cases {
            assert_eq!(
                m(&[pattern], path),
                *want,
                "pattern {pattern:?} path {path:?}"
            );
        }
    }

    /// moby's multi-pattern and folder-exception cases.
    #[test]
    fn moby_exceptions() {
        assert!(!m(&["**", "!util/docker/web"], "util/docker/web/foo"));
        assert!(m(
            &["**", "!util/docker/web", "util/docker/web/foo"],
            "util/docker/web/foo"
        ));
        assert!(!m(
            &["**", "!dist/*.whl"],
            "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl"
        ));
        assert!(!m(&["docs", "!docs/README.md"], "docs/README.md"));
        assert!(!m(&["docs/", "!docs/README.md"], "docs/README.md"));
        assert!(!m(&["docs/*", "!docs/README.md"], "docs/README.md"));
        assert!(m(&["!fileutils.go", "*.go"], "fileutils.go"));
        assert!(!m(&["*.go", "!fileutils.go"], "fileutils.go"));
        assert!(!m(&["*.go"], "."));
        assert!(m(&["*"], "fileutils.go"));
    }

    /// Go filepath.Match cases that moby runs through its matcher.
    #[test]
    fn go_match_table() {
        let cases: &[(&str, &str, bool)] = &[
            ("abc", "abc", true),
            ("*", "abc", true),
            ("*c", "abc", true),
            ("a*", "a", true),
            ("a*", "abc", true),
            ("a*", "ab/c", true),
            ("a*/b", "abc/b", true),
            ("a*/b", "a/c/b", false),
            ("a*b*c*d*e*/f", "axbxcxdxe/f", true),
            ("a*b*c*d*e*/f", "axbxcxdxexxx/f", true),
            ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", false),
            ("a*b*c*d*e*/f", "axbxcxdxexxx/fff", false),
            ("a*b?c*x", "abxbbxdbxebxczzx", true),
            ("a*b?c*x", "abxbbxdbxebxczzy", false),
            ("ab[c]", "abc", true),
            ("ab[b-d]", "abc", true),
            ("ab[e-g]", "abc", false),
            ("ab[^c]", "abc", false),
            ("ab[^b-d]", "abc", false),
            ("ab[^e-g]", "abc", true),
            ("a\\*b", "a*b", true),
            ("a\\*b", "ab", false),
            ("a?b", "a☺b", true),
            ("a[^a]b", "a☺b", true),
            ("a???b", "a☺b", false),
            ("a[^a][^a][^a]b", "a☺b", false),
            ("[a-ζ]*", "α", true),
            ("*[a-ζ]", "A", false),
            ("a?b", "a/b", false),
            ("a*b", "a/b", false),
            ("*x", "xxx", true),
        ];
        for (pattern, path, want) in cases {
            assert_eq!(
                m(&[pattern], path),
                *want,
                "pattern {pattern:?} path {path:?}"
            );
        }
    }

    #[test]
    fn bad_patterns_are_refused_with_their_line() {
        let e = DockerIgnore::parse("ok\n[\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(DockerIgnore::parse("!\n").is_err());
        assert!(DockerIgnore::parse("a[\n").is_err());
    }

    #[test]
    fn file_rules() {
        let di = DockerIgnore::parse(
            "\u{feff}# comment\n  node_modules  \n/build/\n!build/keep.txt\n #not-a-comment\n",
        )
        .unwrap();
        assert!(di.is_excluded("node_modules/x/y.js"));
        assert!(di.is_excluded("build/out.o"));
        assert!(!di.is_excluded("build/keep.txt"));
        assert!(di.is_excluded("#not-a-comment"));
        assert!(!di.is_excluded("src/node_modules.txt"));
        // anchored at the root, unlike gitignore
        assert!(!di.is_excluded("src/node_modules/x"));
    }

    #[test]
    fn pruning_follows_moby_walker() {
        let di = DockerIgnore::parse("build\n!build/keep.txt\nvendor\n!**/important\n").unwrap();
        assert!(!di.can_prune("build"));
        assert!(di.can_prune("vendor"));
    }

    #[test]
    fn keeps_build_files() {
        let mut di = DockerIgnore::parse("*\n").unwrap();
        di.keep("Dockerfile");
        di.keep(".dockerignore");
        assert!(!di.is_excluded("Dockerfile"));
        assert!(!di.is_excluded(".dockerignore"));
        assert!(di.is_excluded("main.py"));
    }
}
