//! The `FROM` lines of a Dockerfile: which image each stage starts from, and the same Dockerfile
//! with each external image named by its pin.
//!
//! Pipeline position: a Dockerfile container's text → **its stages** → the pins `apply` records
//! for each external image (`apply::pin`), the input hash under hash_version 3 (`hash`), the text
//! the engine builds (`build`: every external `FROM` rewritten to its pin), and the image whose
//! layers a build carries (`build::base_reference`). Pure: text in, values out. The one reader of
//! `FROM` lines: every caller sees the same stages.
//!
//! What is read, as the classic builder reads it: the `escape` parser directive, line
//! continuations (comment and empty lines inside one dropped), the `ARG`s before the first
//! `FROM` (the only ones a `FROM` can use; a declared one takes the cookbook's `build_args` value
//! over its default), `$NAME`, `${NAME}`, `${NAME:-word}`, `${NAME-word}`, `${NAME:+word}`,
//! `${NAME+word}` in the image, `--flags` (kept, never read), `AS name`. A stage is built on:
//! an earlier stage (`FROM build`, matched as the engine matches, ignoring case), nothing
//! (`scratch`), an image of cookbook's own local namespace (`cookbook.local/…`, named by content
//! already: see `context::dockerfile::local_image`), or an external image, whose reference must
//! follow Docker's grammar.
//!
//! Stricter than the engine on purpose: a variable with no value in a `FROM` image is an error
//! naming the line, even where the engine would take what is left (`FROM ${MIRROR}busybox` with
//! `MIRROR` unset builds `busybox`): what a pin is keyed by must be what the author meant, not an
//! accident of an unset argument. `ARG MIRROR=` (empty on purpose) is a value.
//!
//! Written by hand because no maintained crate parses Dockerfiles for Rust (dockerfile-parser is
//! unmaintained since 2021), and only `ARG` and `FROM` are needed. Heredocs (BuildKit only; the
//! engine here builds with the classic builder) are not read: a heredoc line that starts with
//! `FROM` would be taken for an instruction.

use std::collections::BTreeMap;

use crate::oci::{FromImage, WrittenReference};

/// What a stage is built on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StageBase {
    /// An image from a registry or the engine: pinned in `cookbook.lock`.
    External(WrittenReference),
    /// The earlier stage at this index.
    Stage(usize),
    /// `scratch`: no image.
    Scratch,
    /// An image of cookbook's local namespace (`cookbook.local/<project>/<container>:<hash>`).
    Local(String),
}

/// One `FROM` instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FromLine {
    /// The physical lines it spans, 1-based, first and last.
    pub lines: (usize, usize),
    /// `--platform=…` and other flags, as written.
    pub flags: Vec<String>,
    /// The image word as written (`${BASE}:1`).
    pub written: String,
    /// The image word with its variables substituted.
    pub image: String,
    /// `AS name`, as written.
    pub name: Option<String>,
    pub base: StageBase,
}

/// Every stage of a Dockerfile, in order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FromLines {
    pub stages: Vec<FromLine>,
}

/// A `FROM` line that names no image cookbook can pin, with the line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {problem}")]
pub struct FromLineError {
    pub line: usize,
    pub problem: FromProblem,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FromProblem {
    #[error(
        "`FROM {written}` uses `${variable}`, which has no value: declare it with a default \
         before the first FROM (`ARG {variable}=…`) or give it in the container's `build_args`"
    )]
    NoValue { written: String, variable: String },
    #[error("`FROM {written}` uses `{expansion}`, a form of variable cookbook does not read")]
    Expansion { written: String, expansion: String },
    #[error("FROM names no image")]
    NoImage,
    #[error("`FROM {0}`: FROM takes an image and an optional `AS name`, nothing more")]
    Extra(String),
    #[error("`FROM {written}` names `{image}`, which is not an image reference: {reason}")]
    Reference {
        written: String,
        image: String,
        reason: String,
    },
}

/// An instruction: its text with continuations joined, and the physical lines it spans.
struct Instruction {
    text: String,
    lines: (usize, usize),
}

/// The escape character a `# escape=` parser directive sets (`\` without one).
fn escape_directive(dockerfile: &str) -> char {
    for line in dockerfile.lines() {
        let Some(comment) = line.trim_start().strip_prefix('#') else {
            return '\\';
        };
        let Some((key, value)) = comment.split_once('=') else {
            return '\\';
        };
        if !key.trim().eq_ignore_ascii_case("escape") {
            // Another directive (`syntax`) or a plain comment, which ends the directives.
            let directive =
                !key.trim().is_empty() && key.trim().chars().all(|c| c.is_ascii_alphanumeric());
            if directive {
                continue;
            }
            return '\\';
        }
        return match value.trim() {
            "`" => '`',
            _ => '\\',
        };
    }
    '\\'
}

/// The instructions of `dockerfile`, continuations joined (comment and empty lines inside a
/// continuation are dropped, as the engine drops them).
fn instructions(dockerfile: &str) -> Vec<Instruction> {
    let escape = escape_directive(dockerfile);
    let mut out = Vec::new();
    let mut text = String::new();
    let mut first = 0;
    for (i, line) in dockerfile.lines().enumerate() {
        let number = i + 1;
        let trimmed = line.trim();
        if trimmed.starts_with('#') || trimmed.is_empty() {
            continue;
        }
        if text.is_empty() {
            first = number;
        }
        match trimmed.strip_suffix(escape) {
            Some(head) => {
                text.push_str(head);
                text.push(' ');
            }
            None => {
                text.push_str(trimmed);
                out.push(Instruction {
                    text: std::mem::take(&mut text),
                    lines: (first, number),
                });
            }
        }
    }
    if !text.trim().is_empty() {
        let last = dockerfile.lines().count();
        out.push(Instruction {
            text,
            lines: (first, last),
        });
    }
    out
}

fn unquote(text: &str) -> &str {
    for q in ['"', '\''] {
        if let Some(inner) = text.strip_prefix(q).and_then(|r| r.strip_suffix(q)) {
            return inner;
        }
    }
    text
}

/// Why a word could not be expanded.
enum Unexpanded {
    NoValue(String),
    Expansion(String),
}

/// `word` with `$NAME`, `${NAME}` and `${NAME<op>word}` (`:-`, `-`, `:+`, `+`) replaced from
/// `args`; a name with no value (not `ARG NAME=`, which is empty) is refused.
fn expand(word: &str, args: &BTreeMap<String, String>) -> Result<String, Unexpanded> {
    let name_len = |s: &str| {
        s.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(s.len())
    };
    let mut out = String::new();
    let mut rest = word;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(braced) = after.strip_prefix('{') {
            let Some(end) = braced.find('}') else {
                return Err(Unexpanded::Expansion(rest[at..].to_owned()));
            };
            let inner = &braced[..end];
            let len = name_len(inner);
            let (name, op) = inner.split_at(len);
            let value = args.get(name);
            let expanded = match op {
                "" => value
                    .ok_or_else(|| Unexpanded::NoValue(name.to_owned()))?
                    .clone(),
                _ if name.is_empty() => {
                    return Err(Unexpanded::Expansion(format!("${{{inner}}}")));
                }
                op => {
                    let (op, alternative) = ["-", ":-", "+", ":+"]
                        .iter()
                        .rev()
                        .find_map(|o| op.strip_prefix(o).map(|w| (*o, w)))
                        .ok_or_else(|| Unexpanded::Expansion(format!("${{{inner}}}")))?;
                    let set = match op.starts_with(':') {
                        true => value.is_some_and(|v| !v.is_empty()),
                        false => value.is_some(),
                    };
                    match (op.ends_with('-'), set) {
                        (true, true) | (false, false) => value.cloned().unwrap_or_default(),
                        (true, false) | (false, true) => expand(alternative, args)?,
                    }
                }
            };
            out.push_str(&expanded);
            rest = &braced[end + 1..];
        } else {
            let len = name_len(after);
            if len == 0 {
                out.push('$');
            } else {
                let name = &after[..len];
                let value = args
                    .get(name)
                    .ok_or_else(|| Unexpanded::NoValue(name.to_owned()))?;
                out.push_str(value);
            }
            rest = &after[len..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// Reads the stages of `dockerfile`, with `build_args` overriding the defaults of the `ARG`s
/// declared before the first `FROM`.
pub fn parse(
    dockerfile: &str,
    build_args: &BTreeMap<String, String>,
) -> Result<FromLines, FromLineError> {
    let mut args: BTreeMap<String, String> = BTreeMap::new();
    let mut stages: Vec<FromLine> = Vec::new();
    for instruction in instructions(dockerfile) {
        let line = instruction.lines.0;
        let mut words = instruction.text.split_whitespace();
        let Some(keyword) = words.next() else {
            continue;
        };
        if keyword.eq_ignore_ascii_case("ARG") && stages.is_empty() {
            for word in words {
                let (name, default) = match word.split_once('=') {
                    Some((n, d)) => (n, Some(unquote(d))),
                    None => (word, None),
                };
                // A default may use the arguments declared before it; one it cannot expand is
                // no value (a FROM that uses it says so).
                let default = default.and_then(|d| expand(d, &args).ok());
                match build_args.get(name).cloned().or(default) {
                    Some(value) => args.insert(name.to_owned(), value),
                    None => args.remove(name),
                };
            }
        } else if keyword.eq_ignore_ascii_case("FROM") {
            let stage = from_line(words, &args, &stages, instruction.lines)
                .map_err(|problem| FromLineError { line, problem })?;
            stages.push(stage);
        }
    }
    Ok(FromLines { stages })
}

/// One `FROM` instruction's words (after the keyword), read against the stages before it.
fn from_line<'w>(
    words: impl Iterator<Item = &'w str>,
    args: &BTreeMap<String, String>,
    earlier: &[FromLine],
    lines: (usize, usize),
) -> Result<FromLine, FromProblem> {
    let mut words = words.peekable();
    let mut flags = Vec::new();
    while let Some(flag) = words.next_if(|w| w.starts_with("--")) {
        flags.push(flag.to_owned());
    }
    let written = words.next().ok_or(FromProblem::NoImage)?.to_owned();
    let rest: Vec<&str> = words.collect();
    let name = match rest.as_slice() {
        [] => None,
        [as_word, name] if as_word.eq_ignore_ascii_case("AS") => Some((*name).to_owned()),
        _ => return Err(FromProblem::Extra(format!("{written} {}", rest.join(" ")))),
    };
    let image = expand(&written, args).map_err(|e| match e {
        Unexpanded::NoValue(variable) => FromProblem::NoValue {
            written: written.clone(),
            variable,
        },
        Unexpanded::Expansion(expansion) => FromProblem::Expansion {
            written: written.clone(),
            expansion,
        },
    })?;
    let stage = earlier.iter().rposition(|s| {
        s.name
            .as_deref()
            .is_some_and(|n| n.eq_ignore_ascii_case(&image))
    });
    let base = if let Some(index) = stage {
        StageBase::Stage(index)
    } else if image.eq_ignore_ascii_case(crate::model::SCRATCH) {
        StageBase::Scratch
    } else if image.is_empty() {
        return Err(FromProblem::NoImage);
    } else if crate::model::is_local_image(&image) {
        StageBase::Local(image.clone())
    } else {
        let reference = WrittenReference::parse(&image).map_err(|e| FromProblem::Reference {
            written: written.clone(),
            image: image.clone(),
            reason: crate::oci::reference_reason(&e),
        })?;
        StageBase::External(reference)
    };
    Ok(FromLine {
        lines,
        flags,
        written,
        image,
        name,
        base,
    })
}

impl FromLines {
    /// Every external image, in stage order, each once.
    pub fn external(&self) -> Vec<&WrittenReference> {
        let mut out: Vec<&WrittenReference> = Vec::new();
        for stage in &self.stages {
            if let StageBase::External(reference) = &stage.base {
                if !out.contains(&reference) {
                    out.push(reference);
                }
            }
        }
        out
    }

    /// The image the stage `target` (the last stage without one) starts from, following stages
    /// built on earlier stages; `None` for `scratch`, an unknown target or no stage.
    pub fn final_image(&self, target: Option<&str>) -> Option<&str> {
        let mut index = match target {
            Some(t) => self
                .stages
                .iter()
                .position(|s| s.name.as_deref().is_some_and(|n| n.eq_ignore_ascii_case(t)))?,
            None => self.stages.len().checked_sub(1)?,
        };
        // Each step goes to an earlier stage, so this ends.
        loop {
            let stage = &self.stages[index];
            match &stage.base {
                StageBase::Stage(i) => index = *i,
                StageBase::Scratch => return None,
                StageBase::External(_) | StageBase::Local(_) => return Some(&stage.image),
            }
        }
    }

    /// `dockerfile` (the bytes these lines were read from) with each external stage's `FROM`
    /// naming the image `pin` gives for its reference (flags and `AS name` kept; an instruction
    /// over several lines becomes one line followed by empty ones, so that every other line
    /// keeps its number in the engine's messages). Every other line is copied byte for byte
    /// (a Dockerfile need not be UTF-8 outside its `FROM` lines). `None` when no line changes.
    pub fn rewrite(
        &self,
        dockerfile: &[u8],
        pin: impl Fn(&WrittenReference) -> Option<FromImage>,
    ) -> Option<Vec<u8>> {
        let mut replaced: BTreeMap<usize, (usize, String)> = BTreeMap::new();
        for stage in &self.stages {
            let StageBase::External(reference) = &stage.base else {
                continue;
            };
            let Some(image) = pin(reference).map(|i| i.to_string()) else {
                continue;
            };
            if image == stage.written {
                continue;
            }
            let mut line = String::from("FROM ");
            for flag in &stage.flags {
                line.push_str(flag);
                line.push(' ');
            }
            line.push_str(&image);
            if let Some(name) = &stage.name {
                line.push_str(" AS ");
                line.push_str(name);
            }
            replaced.insert(stage.lines.0, (stage.lines.1, line));
        }
        if replaced.is_empty() {
            return None;
        }
        let mut out = Vec::with_capacity(dockerfile.len() + 80 * replaced.len());
        let mut skip_to = 0;
        for (i, line) in dockerfile.split_inclusive(|b| *b == b'\n').enumerate() {
            let number = i + 1;
            if let Some((last, text)) = replaced.get(&number) {
                out.extend_from_slice(text.as_bytes());
                out.push(b'\n');
                skip_to = *last;
            } else if number <= skip_to {
                out.push(b'\n');
            } else {
                out.extend_from_slice(line);
            }
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::Digest;

    fn args(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn externals(text: &str, build_args: &[(&str, &str)]) -> Vec<String> {
        parse(text, &args(build_args))
            .unwrap()
            .external()
            .iter()
            .map(|r| r.as_str().to_owned())
            .collect()
    }

    fn problem(text: &str) -> FromLineError {
        parse(text, &BTreeMap::new()).unwrap_err()
    }

    #[test]
    fn every_external_stage_and_nothing_else() {
        let multi = "# syntax=docker/dockerfile:1\n\
                     ARG GO=1.22\n\
                     FROM --platform=$BUILDPLATFORM golang:${GO} AS build\n\
                     RUN go build\n\
                     FROM build AS test\n\
                     FROM scratch AS empty\n\
                     FROM cookbook.local/shop/api:abc AS parent\n\
                     from Alpine-Is-Not-A-Stage/../x AS bad\n";
        // The last line is no reference: refused, naming it.
        let e = problem(multi);
        assert_eq!(e.line, 8);
        assert!(matches!(e.problem, FromProblem::Reference { .. }), "{e}");
        let multi = multi.replace("Alpine-Is-Not-A-Stage/../x", "alpine:3");
        assert_eq!(externals(&multi, &[]), ["golang:1.22", "alpine:3"]);
        assert_eq!(
            externals(&multi, &[("GO", "1.21")]),
            ["golang:1.21", "alpine:3"]
        );
        let lines = parse(&multi, &BTreeMap::new()).unwrap();
        assert_eq!(lines.stages[1].base, StageBase::Stage(0));
        assert_eq!(lines.stages[2].base, StageBase::Scratch);
        assert!(matches!(lines.stages[3].base, StageBase::Local(_)));
        assert_eq!(lines.stages[0].flags, ["--platform=$BUILDPLATFORM"]);
        // The same image twice is one pin.
        assert_eq!(
            externals("FROM b:1 AS one\nFROM b:1\nFROM ONE\n", &[]),
            ["b:1"]
        );
    }

    #[test]
    fn args_before_the_first_from_only_and_declared_ones_only() {
        let text = "ARG REG=r.example\nARG NAME=\"base\"\nARG TAG\nFROM $REG/${NAME}:${TAG:-1}\nARG LATE=x\nFROM ${LATE:-late}:1\n";
        assert_eq!(externals(text, &[]), ["r.example/base:1", "late:1"]);
        assert_eq!(
            externals(text, &[("TAG", "2"), ("LATE", "no"), ("UNDECLARED", "z")]),
            ["r.example/base:2", "late:1"]
        );
        // A default built from an earlier argument; `+` forms; an empty value is a value.
        assert_eq!(
            externals(
                "ARG A=x\nARG B=${A}/y\nARG E=\nFROM ${E}$B:${A:+set}${NONE+unset}\n",
                &[]
            ),
            ["x/y:set"]
        );
    }

    #[test]
    fn a_variable_without_a_value_names_the_line() {
        let e = problem("# c\nARG BASE\n\nFROM \\\n  ${BASE}\n");
        assert_eq!(e.line, 4);
        assert_eq!(
            e.problem,
            FromProblem::NoValue {
                written: "${BASE}".into(),
                variable: "BASE".into()
            }
        );
        assert!(matches!(
            problem("FROM ${X#pre}\n").problem,
            FromProblem::Expansion { .. }
        ));
        assert!(matches!(
            problem("FROM ${X\n").problem,
            FromProblem::Expansion { .. }
        ));
        assert_eq!(problem("FROM\n").problem, FromProblem::NoImage);
        assert!(matches!(
            problem("FROM a b c\n").problem,
            FromProblem::Extra(_)
        ));
    }

    #[test]
    fn the_escape_directive_and_continuations() {
        let text = "# escape=`\nFROM --platform=linux/amd64 `\n  # a comment inside\n\n  b:1 `\n  AS x\nRUN c:\\dir\n";
        let lines = parse(text, &BTreeMap::new()).unwrap();
        assert_eq!(lines.stages[0].lines, (2, 6));
        assert_eq!(lines.stages[0].name.as_deref(), Some("x"));
        assert_eq!(externals(text, &[]), ["b:1"]);
    }

    #[test]
    fn final_image_follows_stages() {
        let none = BTreeMap::new();
        let multi = "FROM golang:1 AS build\nFROM build AS test\nFROM alpine:3 as run\n";
        let lines = parse(multi, &none).unwrap();
        assert_eq!(lines.final_image(None), Some("alpine:3"));
        assert_eq!(lines.final_image(Some("TEST")), Some("golang:1"));
        assert_eq!(lines.final_image(Some("nope")), None);
        let scratch = parse("FROM scratch\n", &none).unwrap();
        assert_eq!(scratch.final_image(None), None);
    }

    #[test]
    fn rewrite_names_the_pins_and_keeps_everything_else() {
        let d = Digest::parse(&format!("sha256:{}", "a".repeat(64))).unwrap();
        let text = "ARG B=b\n# keep\nFROM --platform=linux/amd64 ${B}:1 \\\n    AS build\nRUN x\nFROM build\nFROM c@sha256:0000000000000000000000000000000000000000000000000000000000000000\nFROM scratch\nFROM e:2\nCOPY --from=build / /\n";
        let lines = parse(text, &BTreeMap::new()).unwrap();
        let pinned = lines
            .rewrite(text.as_bytes(), |r| match r.as_str() {
                "b:1" => Some(FromImage::Pinned(r.clone(), d.clone())),
                "e:2" => Some(FromImage::Id(d.clone())),
                _ => Some(FromImage::Reference(r.clone())),
            })
            .unwrap();
        let pinned = String::from_utf8(pinned).unwrap();
        let expected = format!(
            "ARG B=b\n# keep\nFROM --platform=linux/amd64 b:1@{d} AS build\n\nRUN x\nFROM build\nFROM c@sha256:{}\nFROM scratch\nFROM {d}\nCOPY --from=build / /\n",
            "0".repeat(64)
        );
        assert_eq!(pinned, expected);
        assert_eq!(pinned.lines().count(), text.lines().count());
        // The rewritten text reads as the same stages, on the pins.
        let again = parse(&pinned, &BTreeMap::new()).unwrap();
        assert_eq!(again.stages.len(), lines.stages.len());
        assert_eq!(again.final_image(None), Some(d.as_str()));
        // Nothing to change: no text.
        let written = |r: &WrittenReference| Some(FromImage::Reference(r.clone()));
        assert_eq!(lines.rewrite(text.as_bytes(), |_| None), None);
        let plain = "FROM a:1\n";
        assert_eq!(
            parse(plain, &BTreeMap::new())
                .unwrap()
                .rewrite(plain.as_bytes(), written),
            None
        );
        // Bytes that are not UTF-8 outside the FROM lines are kept as they are.
        let latin1 = b"FROM a:1\nRUN echo \xe9\n";
        let text = String::from_utf8_lossy(latin1);
        let lines = parse(&text, &BTreeMap::new()).unwrap();
        let rewritten = lines
            .rewrite(latin1, |r| Some(FromImage::Pinned(r.clone(), d.clone())))
            .unwrap();
        let expected = [b"FROM a:1@", d.as_str().as_bytes(), b"\nRUN echo \xe9\n"].concat();
        assert_eq!(rewritten, expected);
    }
}
