//! `--format github` of `validate`, `apply` and `verify`: GitHub Actions workflow commands
//! (<https://docs.github.com/en/actions/reference/workflow-commands-for-github-actions>), so a
//! problem shows on the pull request's line.
//!
//! The commands go to stdout, the stream `--format` output always goes to; stderr keeps the
//! lines text mode prints there (progress, the summary, the error). The runner reads commands
//! from both streams, but an apply's groups must stay whole, so they are written in one stream
//! and one write per build.
//!
//! Everything printed is escaped as the runner unescapes it: a message (`%`, CR, LF) and a
//! property (also `:` and `,`), so no text from a cookbook, a registry or a build log can end a
//! command early or start another. A build's output is folded in `::group::` between
//! `::stop-commands::TOKEN` and `::TOKEN::` (a token drawn from the system's random source per
//! run), so a `RUN` step that prints `::error::` or `::add-mask::` is shown, not obeyed.
//!
//! Files are named relative to the repository's root (`GITHUB_WORKSPACE`, else the current
//! directory), `/`-separated, as GitHub matches annotations to the diff.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::{self, Write as _};
use std::io::Write;
use std::path::{Component, Path, PathBuf};
use std::sync::Mutex;

use crate::diagnostic::{Diagnostic, Location, Severity};
use crate::error::Error;
use crate::ops::apply::{Event, Name, Reporter};
use crate::ops::inspect::ContainerSource;
use crate::ops::Workspace;

/// `error` or `warning`: the two annotation levels cookbook uses (`notice` says nothing a log
/// line would not).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Error,
    Warning,
}

/// One `::error …::message` or `::warning …::message` command.
#[derive(Debug, Clone, Default)]
pub struct Annotation {
    pub level: Option<Level>,
    /// The file, relative to the repository root (see [`Paths::relative`]).
    pub file: Option<String>,
    pub location: Option<Location>,
    pub title: Option<String>,
    pub message: String,
}

impl Annotation {
    pub fn error(title: impl Into<String>, message: impl Into<String>) -> Self {
        Annotation {
            level: Some(Level::Error),
            title: Some(title.into()),
            message: message.into(),
            ..Annotation::default()
        }
    }

    pub fn warning(title: impl Into<String>, message: impl Into<String>) -> Self {
        Annotation {
            level: Some(Level::Warning),
            ..Annotation::error(title, message)
        }
    }

    /// At `file` (already relative), at `location` when known.
    pub fn at(mut self, file: Option<String>, location: Option<Location>) -> Self {
        self.file = file;
        self.location = location.filter(|_| self.file.is_some());
        self
    }
}

impl fmt::Display for Annotation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let command = match self.level {
            Some(Level::Warning) => "warning",
            _ => "error",
        };
        write!(f, "::{command}")?;
        let mut properties = Vec::new();
        if let Some(file) = &self.file {
            properties.push(format!("file={}", escape_property(file)));
            if let Some(l) = self.location {
                properties.push(format!("line={}", l.line));
                properties.push(format!("col={}", l.column));
            }
        }
        if let Some(title) = &self.title {
            properties.push(format!("title={}", escape_property(title)));
        }
        if !properties.is_empty() {
            write!(f, " {}", properties.join(","))?;
        }
        write!(f, "::{}", escape_data(&self.message))
    }
}

/// A command's message as the runner unescapes it (its `escapeData`): `%`, CR and LF.
pub fn escape_data(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '%' => out.push_str("%25"),
            '\r' => out.push_str("%0D"),
            '\n' => out.push_str("%0A"),
            c => out.push(c),
        }
    }
    out
}

/// A command's property value (its `escapeProperty`): the message's escapes, and `:` and `,`,
/// which would end the value.
pub fn escape_property(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in escape_data(s).chars() {
        match c {
            ':' => out.push_str("%3A"),
            ',' => out.push_str("%2C"),
            c => out.push(c),
        }
    }
    out
}

/// Where paths are named from: the repository's root as GitHub sees it, and the directory the
/// command ran in (which relative paths start from).
#[derive(Debug, Clone)]
pub struct Paths {
    root: PathBuf,
    cwd: PathBuf,
}

impl Paths {
    /// `GITHUB_WORKSPACE` (the checkout, set by the runner) when set, else the current directory.
    pub fn from_env() -> Self {
        let cwd = std::env::current_dir().unwrap_or_default();
        let root = std::env::var_os("GITHUB_WORKSPACE")
            .filter(|w| !w.is_empty())
            .map(|w| normalize(&cwd.join(w)))
            .unwrap_or_else(|| cwd.clone());
        Paths { root, cwd }
    }

    #[cfg(test)]
    pub fn new(root: &Path, cwd: &Path) -> Self {
        Paths {
            root: normalize(root),
            cwd: normalize(cwd),
        }
    }

    /// `path` (absolute, or relative to the current directory) relative to the root,
    /// `/`-separated; as written, made absolute, when it lies outside the root (GitHub then
    /// shows the annotation without a line in the diff). `None` for standard input.
    pub fn relative(&self, path: &Path) -> Option<String> {
        if path.as_os_str() == "<stdin>" {
            return None;
        }
        let absolute = normalize(&self.cwd.join(path));
        let within = |root: &Path| {
            absolute.strip_prefix(root).ok().map(|rel| {
                rel.components()
                    .map(|c| c.as_os_str().to_string_lossy())
                    .collect::<Vec<_>>()
                    .join("/")
            })
        };
        // The runner's workspace may be reached through a symlink the current directory
        // resolved (macOS's /var → /private/var): compare real paths too.
        within(&self.root)
            .or_else(|| {
                let real_root = self.root.canonicalize().ok()?;
                let real = absolute.canonicalize().ok()?;
                real.strip_prefix(real_root).ok().map(|rel| {
                    rel.components()
                        .map(|c| c.as_os_str().to_string_lossy())
                        .collect::<Vec<_>>()
                        .join("/")
                })
            })
            .or_else(|| Some(absolute.to_string_lossy().into_owned()))
    }
}

/// `a/./b/../c` → `a/c`, without touching the file system (the file may not exist).
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            c => out.push(c.as_os_str()),
        }
    }
    out
}

/// One annotation per diagnostic, on its file's line.
pub fn diagnostics(file: &str, diagnostics: &[Diagnostic], paths: &Paths, out: &mut dyn Write) {
    let file = paths.relative(Path::new(file));
    for d in diagnostics {
        let level = match d.severity {
            Severity::Error => Level::Error,
            Severity::Warning => Level::Warning,
        };
        let mut message = String::new();
        if !d.pointer.is_empty() {
            let _ = write!(
                message,
                "{}: ",
                crate::diagnostic::shorten_pointer(&d.pointer)
            );
        }
        message.push_str(&d.message);
        if let Some(help) = &d.help {
            let _ = write!(message, "\nhelp: {help}");
        }
        let annotation = Annotation {
            level: Some(level),
            title: Some(d.code.to_owned()),
            message,
            ..Annotation::default()
        }
        .at(file.clone(), d.location);
        let _ = writeln!(out, "{annotation}");
    }
}

/// The cookbook opened by `command`: its warnings, or the problems that refused it, one
/// annotation each; any other failure to open it as one.
pub fn opened(command: &str, opened: &Result<Workspace, Error>, out: &mut dyn Write) {
    let paths = Paths::from_env();
    match opened {
        Ok(ws) => diagnostics(&ws.file.label, &ws.warnings, &paths, out),
        Err(Error::Invalid {
            file,
            diagnostics: d,
        }) => diagnostics(file, d, &paths, out),
        Err(e) => failure(command, e, out),
    }
}

/// A failure of the whole command as one annotation, unless it is already one per diagnostic
/// (an invalid cookbook) or said by the report (verify's mismatches, apply's failed builds).
pub fn failure(command: &str, e: &Error, out: &mut dyn Write) {
    if matches!(e, Error::Invalid { .. }) {
        return;
    }
    let _ = writeln!(
        out,
        "{}",
        Annotation::error(format!("cookbook {command}"), e.to_string())
    );
}

/// Where an annotation about `container` goes: its Dockerfile (from the top: the build log
/// says which step), else its key in the cookbook.
pub fn container_site(
    container: &str,
    cookbook: &Path,
    sources: &BTreeMap<Name, ContainerSource>,
    paths: &Paths,
) -> (Option<String>, Option<Location>) {
    let source = sources.iter().find(|(n, _)| n.as_str() == container);
    match source {
        Some((
            _,
            ContainerSource {
                dockerfile: Some(dockerfile),
                ..
            },
        )) => (paths.relative(dockerfile), None),
        Some((_, s)) => (paths.relative(cookbook), Some(s.location)),
        None => (paths.relative(cookbook), None),
    }
}

/// A run's token for `::stop-commands::`: 128 bits from the system's random source, so that a
/// build log cannot guess it and turn commands back on.
fn stop_token() -> String {
    use rand_core::RngCore;
    let mut bytes = [0u8; 16];
    rand_core::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// A build's output folded in a group, command processing stopped inside it: one string, so
/// one write.
fn group(title: &str, token: &str, dropped: usize, lines: impl Iterator<Item = String>) -> String {
    let mut s = format!(
        "::group::{}\n::stop-commands::{token}\n",
        escape_data(title)
    );
    if dropped > 0 {
        let _ = writeln!(s, "({dropped} earlier lines left out)");
    }
    for line in lines {
        // A line is one line: a CR inside it would let the runner see a second one.
        let _ = writeln!(s, "{}", line.replace('\r', "\\r"));
    }
    let _ = write!(s, "::{token}::\n::endgroup::\n");
    s
}

/// stderr under `--format github`. The runner reads workflow commands on every line of both
/// streams (a line that, trimmed, starts with `::`), and stderr carries others' words: an
/// engine's or a registry's reason, a file's name holding a newline. Such a line is shown
/// quoted (`> ::…`), never obeyed; cookbook's own commands go to stdout.
pub struct Inert<W> {
    inner: W,
    line_start: bool,
}

impl<W: Write> Inert<W> {
    pub fn new(inner: W) -> Inert<W> {
        Inert {
            inner,
            line_start: true,
        }
    }
}

impl<W: Write> Write for Inert<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut quoted = Vec::with_capacity(buf.len() + 2);
        for (i, &byte) in buf.iter().enumerate() {
            if self.line_start {
                let rest = buf[i..].iter().skip_while(|c| matches!(c, b' ' | b'\t'));
                if rest.take(2).eq(b"::".iter()) {
                    quoted.extend_from_slice(b"> ");
                }
            }
            quoted.push(byte);
            self.line_start = byte == b'\n';
        }
        self.inner.write_all(&quoted)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// The most lines of a successful build's output kept for its group (the last ones); a failed
/// build's output comes whole with its failure.
const GROUP_LINES: usize = 5000;

/// `apply --format github`'s reporter: text mode's progress lines through `plain` (on stderr),
/// and on stdout each build's output in a group when it ends, a failed build as an error on its
/// Dockerfile or cookbook line, warnings (a base moved, no engine) as warnings.
pub struct Builds {
    plain: Box<dyn Reporter>,
    out: Mutex<Box<dyn Write + Send>>,
    logs: Mutex<BTreeMap<Name, (usize, VecDeque<String>)>>,
    token: String,
    cookbook: PathBuf,
    sources: BTreeMap<Name, ContainerSource>,
    paths: Paths,
}

impl Builds {
    pub fn new(
        plain: Box<dyn Reporter>,
        cookbook: &Path,
        sources: BTreeMap<Name, ContainerSource>,
    ) -> Self {
        Builds {
            plain,
            out: Mutex::new(Box::new(std::io::stdout())),
            logs: Mutex::new(BTreeMap::new()),
            token: stop_token(),
            cookbook: cookbook.to_path_buf(),
            sources,
            paths: Paths::from_env(),
        }
    }

    fn print(&self, s: &str) {
        let mut out = self.out.lock().expect("no panics while printing");
        let _ = out.write_all(s.as_bytes());
        let _ = out.flush();
    }

    fn take_log(&self, name: &Name) -> (usize, VecDeque<String>) {
        let mut logs = self.logs.lock().expect("no panics while printing");
        logs.remove(name).unwrap_or_default()
    }
}

impl Reporter for Builds {
    fn event(&self, event: Event<'_>) {
        match event {
            Event::Line { name, line } => {
                let mut logs = self.logs.lock().expect("no panics while printing");
                let (dropped, lines) = logs.entry(name.clone()).or_default();
                if lines.len() == GROUP_LINES {
                    lines.pop_front();
                    *dropped += 1;
                }
                lines.push_back(line.to_owned());
            }
            Event::Built { name, .. } => {
                let (dropped, lines) = self.take_log(name);
                self.print(&group(
                    &format!("{name}: build output"),
                    &self.token,
                    dropped,
                    lines.into_iter(),
                ));
            }
            Event::Failed { name, reason, log } => {
                self.take_log(name);
                // The log is in the group on stdout; stderr keeps the one FAILED line.
                self.plain.event(Event::Failed {
                    name,
                    reason,
                    log: &[],
                });
                let mut s = String::new();
                if !log.is_empty() {
                    s = group(
                        &format!("{name}: build output (failed)"),
                        &self.token,
                        0,
                        log.iter().cloned(),
                    );
                }
                let (file, location) =
                    container_site(name.as_str(), &self.cookbook, &self.sources, &self.paths);
                let annotation = Annotation::error(
                    format!("cookbook apply: {name} failed"),
                    format!("{name}: {reason}"),
                )
                .at(file, location);
                let _ = writeln!(s, "{annotation}");
                self.print(&s);
                return;
            }
            Event::WithoutEngine { why } => self.print(&format!(
                "{}\n",
                Annotation::warning(
                    "cookbook apply: no Docker engine",
                    format!(
                        "no Docker engine ({why}): only the containers that need none are built"
                    ),
                )
            )),
            Event::BaseMoved { moved } => self.print(&format!(
                "{}\n",
                Annotation::warning(
                    "cookbook apply: a base image moved",
                    format!(
                        "base image {} moved under its tag: pinned {}, now {}; run `cookbook \
                         update` to rebuild on the new image",
                        moved.reference, moved.pinned.digest, moved.now.digest
                    ),
                )
            )),
            _ => {}
        }
        self.plain.event(event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stderr_lines_that_would_be_commands_are_quoted() {
        let mut inert = Inert::new(Vec::new());
        write!(
            inert,
            "[x] FAILED: denied\n::add-mask::secret\n  ::error::x\nok :: fine\n"
        )
        .unwrap();
        write!(inert, "::warning::y").unwrap();
        assert_eq!(
            String::from_utf8(inert.inner).unwrap(),
            "[x] FAILED: denied\n> ::add-mask::secret\n>   ::error::x\nok :: fine\n> ::warning::y"
        );
    }

    #[test]
    fn messages_and_properties_are_escaped_as_the_runner_unescapes_them() {
        assert_eq!(escape_data("50% done\r\nnext"), "50%25 done%0D%0Anext");
        assert_eq!(escape_property("a:b,c%\n"), "a%3Ab%2Cc%25%0A");
        let a = Annotation::error("t: x, y", "line one\nline two ::warning::no").at(
            Some("dir/cook,book.json".into()),
            Some(Location { line: 3, column: 7 }),
        );
        assert_eq!(
            a.to_string(),
            "::error file=dir/cook%2Cbook.json,line=3,col=7,title=t%3A x%2C y::line one%0Aline \
             two ::warning::no"
        );
        // A line without a file has no line either.
        let b = Annotation::warning("t", "m").at(None, Some(Location { line: 1, column: 1 }));
        assert_eq!(b.to_string(), "::warning title=t::m");
    }

    #[test]
    fn paths_are_relative_to_the_workspace_whatever_the_current_directory() {
        let paths = Paths::new(Path::new("/w/repo"), Path::new("/w/repo/sub"));
        assert_eq!(
            paths.relative(Path::new("cookbook.json")).unwrap(),
            "sub/cookbook.json"
        );
        assert_eq!(
            paths.relative(Path::new("./x/../cookbook.json")).unwrap(),
            "sub/cookbook.json"
        );
        assert_eq!(
            paths.relative(Path::new("/w/repo/a/Dockerfile")).unwrap(),
            "a/Dockerfile"
        );
        assert_eq!(
            paths.relative(Path::new("../../elsewhere/c.json")).unwrap(),
            "/w/elsewhere/c.json"
        );
        assert_eq!(paths.relative(Path::new("<stdin>")), None);
    }

    #[test]
    fn a_group_stops_commands_with_its_token_and_keeps_lines_whole() {
        let s = group(
            "api: build output",
            "t0k",
            2,
            ["::error::fake".to_owned(), "a\rb".to_owned()].into_iter(),
        );
        assert_eq!(
            s,
            "::group::api: build output\n::stop-commands::t0k\n(2 earlier lines left out)\n\
             ::error::fake\na\\rb\n::t0k::\n::endgroup::\n"
        );
        assert_ne!(stop_token(), stop_token());
        assert_eq!(stop_token().len(), 32);
    }
}
