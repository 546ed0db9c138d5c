//! Maps JSON pointers to where they stand in the cookbook's text, and finds duplicate keys.
//!
//! Written by hand because serde_json keeps no spans, and the span-keeping JSON crates either
//! parse a superset (JSONC) into a whole AST or are unmaintained. This scanner runs only over
//! text that serde_json has already accepted, so it can assume well-formed JSON; it is
//! iterative (no recursion), so nesting depth costs heap, never stack.

use std::collections::{HashMap, HashSet};

use crate::diagnostic::{pointer_push, Location};

/// Where a value (and, for object members, its key) starts, as byte offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub key: Option<usize>,
    pub value: usize,
}

/// A key that appears twice in one object: serde_json would silently keep the last one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DuplicateKey {
    pub pointer: String,
    pub offset: usize,
}

#[derive(Debug, Default)]
pub struct SpanIndex {
    spans: HashMap<String, Span>,
    line_starts: Vec<usize>,
    pub duplicates: Vec<DuplicateKey>,
}

enum Frame {
    Object {
        pointer: String,
        keys: HashSet<String>,
        expect_key: bool,
    },
    Array {
        pointer: String,
        next: usize,
    },
}

/// [`SpanIndex::scan`]'s state between tokens.
struct Scanner {
    index: SpanIndex,
    /// The objects and arrays the scan is inside, innermost last.
    stack: Vec<Frame>,
    /// The pointer and key offset of the value expected next.
    pending: Option<(String, Option<usize>)>,
}

impl Scanner {
    /// After a `,`: an object expects a key, an array its next element.
    fn comma(&mut self) {
        match self.stack.last_mut() {
            Some(Frame::Object { expect_key, .. }) => *expect_key = true,
            Some(Frame::Array { pointer, next }) => {
                *next += 1;
                self.pending = Some((pointer_push(pointer, &next.to_string()), None));
            }
            None => {}
        }
    }

    /// The string starting at `i`, a key or a value; returns the offset after it.
    fn string(&mut self, text: &str, i: usize) -> usize {
        let end = string_end(text.as_bytes(), i);
        let Some(Frame::Object {
            pointer,
            keys,
            expect_key: expect_key @ true,
        }) = self.stack.last_mut()
        else {
            self.index.record(&mut self.pending, i);
            return end;
        };
        let raw = &text[i..end];
        let key: String = if raw.contains('\\') {
            serde_json::from_str(raw).unwrap_or_default()
        } else {
            raw[1..raw.len() - 1].to_owned()
        };
        *expect_key = false;
        let child = pointer_push(pointer, &key);
        if !keys.insert(key) {
            self.index.duplicates.push(DuplicateKey {
                pointer: child.clone(),
                offset: i,
            });
        }
        self.pending = Some((child, Some(i)));
        end
    }

    /// An object or array (`open`) starting at `i`.
    fn open(&mut self, open: u8, i: usize) {
        let pointer = self.index.record(&mut self.pending, i).unwrap_or_default();
        if open == b'{' {
            self.stack.push(Frame::Object {
                pointer,
                keys: HashSet::new(),
                expect_key: true,
            });
        } else {
            self.pending = Some((pointer_push(&pointer, "0"), None));
            self.stack.push(Frame::Array { pointer, next: 0 });
        }
    }
}

impl SpanIndex {
    /// Scans well-formed JSON text.
    pub fn scan(text: &str) -> SpanIndex {
        let bytes = text.as_bytes();
        let mut scanner = Scanner {
            index: SpanIndex {
                line_starts: std::iter::once(0)
                    .chain(memchr_newlines(bytes).map(|i| i + 1))
                    .collect(),
                ..SpanIndex::default()
            },
            stack: Vec::new(),
            pending: Some((String::new(), None)),
        };
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b' ' | b'\t' | b'\n' | b'\r' | b':' => i += 1,
                b',' => {
                    i += 1;
                    scanner.comma();
                }
                b'}' | b']' => {
                    scanner.stack.pop();
                    scanner.pending = None;
                    i += 1;
                }
                b'"' => i = scanner.string(text, i),
                open @ (b'{' | b'[') => {
                    scanner.open(open, i);
                    i += 1;
                }
                _ => {
                    scanner.index.record(&mut scanner.pending, i);
                    while i < bytes.len()
                        && !matches!(bytes[i], b',' | b']' | b'}' | b' ' | b'\t' | b'\n' | b'\r')
                    {
                        i += 1;
                    }
                }
            }
        }
        scanner.index
    }

    /// Whether any object has a key twice: the fast path for a well-formed cookbook. It builds no
    /// pointers (borrowing keys from the text unless they hold escapes), so a valid cookbook pays
    /// for one light scan; the full index is built only when there is something to report.
    pub fn has_duplicate_keys(text: &str) -> bool {
        let bytes = text.as_bytes();
        // One entry per open container: the keys seen so far for an object, `None` for an array.
        let mut stack: Vec<Option<HashSet<std::borrow::Cow<'_, str>>>> = Vec::new();
        let mut expect_key = false;
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'{' => {
                    stack.push(Some(HashSet::new()));
                    expect_key = true;
                    i += 1;
                }
                b'[' => {
                    stack.push(None);
                    expect_key = false;
                    i += 1;
                }
                b'}' | b']' => {
                    stack.pop();
                    expect_key = false;
                    i += 1;
                }
                b',' => {
                    expect_key = matches!(stack.last(), Some(Some(_)));
                    i += 1;
                }
                b'"' => {
                    let end = string_end(bytes, i);
                    if expect_key {
                        let raw = &text[i..end];
                        let key: std::borrow::Cow<'_, str> = if raw.contains('\\') {
                            serde_json::from_str::<String>(raw)
                                .unwrap_or_default()
                                .into()
                        } else {
                            raw[1..raw.len() - 1].into()
                        };
                        if let Some(Some(keys)) = stack.last_mut() {
                            if !keys.insert(key) {
                                return true;
                            }
                        }
                        expect_key = false;
                    }
                    i = end;
                }
                _ => i += 1,
            }
        }
        false
    }

    fn record(
        &mut self,
        pending: &mut Option<(String, Option<usize>)>,
        at: usize,
    ) -> Option<String> {
        let (pointer, key) = pending.take()?;
        self.spans.insert(pointer.clone(), Span { key, value: at });
        Some(pointer)
    }

    pub fn span(&self, pointer: &str) -> Option<Span> {
        self.spans.get(pointer).copied()
    }

    /// The location of a pointer's key (when asked and it has one) or value. A pointer that is not
    /// in the document (a missing member) falls back to its nearest present ancestor.
    pub fn locate(&self, text: &str, pointer: &str, at_key: bool) -> Location {
        let mut p = pointer;
        loop {
            if let Some(span) = self.span(p) {
                let offset = if at_key {
                    span.key.unwrap_or(span.value)
                } else {
                    span.value
                };
                return self.location(text, offset);
            }
            match p.rfind('/') {
                Some(cut) => p = &p[..cut],
                None => return Location { line: 1, column: 1 },
            }
        }
    }

    pub fn location(&self, text: &str, offset: usize) -> Location {
        let line = self.line_starts.partition_point(|&s| s <= offset).max(1);
        let start = self.line_starts[line - 1];
        let column = text
            .get(start..offset)
            .map_or(offset - start, |s| s.chars().count())
            + 1;
        Location { line, column }
    }
}

fn memchr_newlines(bytes: &[u8]) -> impl Iterator<Item = usize> + '_ {
    bytes
        .iter()
        .enumerate()
        .filter(|(_, &b)| b == b'\n')
        .map(|(i, _)| i)
}

/// The offset just past the closing quote of the string that opens at `start`.
fn string_end(bytes: &[u8], start: usize) -> usize {
    let mut i = start + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return i + 1,
            _ => i += 1,
        }
    }
    bytes.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locates_values_keys_and_array_items() {
        let text = "{\n  \"a\": [1, {\"b/c\": \"x\"}],\n  \"d\": {}\n}";
        let index = SpanIndex::scan(text);
        assert_eq!(
            index.locate(text, "/a", false),
            Location { line: 2, column: 8 }
        );
        assert_eq!(
            index.locate(text, "/a", true),
            Location { line: 2, column: 3 }
        );
        assert_eq!(
            index.locate(text, "/a/0", false),
            Location { line: 2, column: 9 }
        );
        assert_eq!(
            index.locate(text, "/a/1/b~1c", false),
            Location {
                line: 2,
                column: 20
            }
        );
        assert_eq!(
            index.locate(text, "/d/missing", false),
            Location { line: 3, column: 8 }
        );
        assert!(index.duplicates.is_empty());
    }

    #[test]
    fn finds_duplicate_keys_with_escapes() {
        let text = r#"{"a": 1, "\u0061": 2, "b": {"c": 1, "c": 2}}"#;
        let index = SpanIndex::scan(text);
        let dups: Vec<_> = index
            .duplicates
            .iter()
            .map(|d| d.pointer.as_str())
            .collect();
        assert_eq!(dups, ["/a", "/b/c"]);
    }

    #[test]
    fn duplicate_fast_path_agrees_with_the_full_scan() {
        for text in [
            r#"{"a": 1, "\u0061": 2}"#,
            r#"{"b": {"c": 1, "c": 2}}"#,
            r#"{"a": [{"x": 1}, {"x": 2}], "b": {"a": {"a": 1}}}"#,
            r#"{"a": "{\"a\": 1, \"a\": 2}", "k": [1, "a", "a"]}"#,
            r#"[{"a": 1}, {"a": 1, "b": [], "a": 3}]"#,
            r#"{}"#,
        ] {
            assert_eq!(
                SpanIndex::has_duplicate_keys(text),
                !SpanIndex::scan(text).duplicates.is_empty(),
                "{text}"
            );
        }
    }

    #[test]
    fn columns_count_characters() {
        let text = "{\"é\": \"ü\", \"x\": 1}";
        let index = SpanIndex::scan(text);
        assert_eq!(
            index.locate(text, "/x", true),
            Location {
                line: 1,
                column: 12
            }
        );
    }

    #[test]
    fn deep_nesting_does_not_recurse() {
        let text = format!("{}{}", "[".repeat(5_000), "]".repeat(5_000));
        let index = SpanIndex::scan(&text);
        assert!(index.span("").is_some());
    }
}
