//! Why did a hash change? The differences between two hash manifests, most specific first.
//!
//! Pure: compares two `explain` documents field by field. Files are matched by path; recipe
//! fields are compared leaf by leaf and named by JSON pointer (`/build_args/VERSION`).

use std::collections::BTreeMap;
use std::fmt;

use serde_json::Value;

use super::HashManifest;
use crate::diagnostic::pointer_push;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    HashVersion {
        from: u32,
        to: u32,
    },
    Container {
        from: String,
        to: String,
    },
    FileAdded {
        path: String,
    },
    FileRemoved {
        path: String,
    },
    FileChanged {
        path: String,
        what: &'static str,
    },
    Recipe {
        pointer: String,
        from: Option<Value>,
        to: Option<Value>,
    },
    Dependency {
        name: String,
        from: Option<String>,
        to: Option<String>,
    },
}

fn short(v: &Option<Value>) -> String {
    match v {
        None => "(absent)".to_owned(),
        Some(Value::String(s)) if s.contains('\n') || s.len() > 60 => {
            format!("({} bytes of text)", s.len())
        }
        Some(v) => v.to_string(),
    }
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::HashVersion { from, to } => write!(f, "hash_version changed: {from} → {to}"),
            Change::Container { from, to } => write!(f, "container name changed: {from} → {to}"),
            Change::FileAdded { path } => write!(f, "file {path} added"),
            Change::FileRemoved { path } => write!(f, "file {path} removed"),
            Change::FileChanged { path, what } => write!(f, "file {path} changed ({what})"),
            Change::Recipe { pointer, from, to } => {
                write!(
                    f,
                    "recipe {pointer} changed: {} → {}",
                    short(from),
                    short(to)
                )
            }
            Change::Dependency {
                name,
                from: Some(_),
                to: Some(_),
            } => write!(f, "parent {name} changed"),
            Change::Dependency {
                name, from: None, ..
            } => write!(f, "parent {name} added"),
            Change::Dependency { name, .. } => write!(f, "parent {name} removed"),
        }
    }
}

fn diff_values(pointer: String, a: Option<&Value>, b: Option<&Value>, out: &mut Vec<Change>) {
    match (a, b) {
        (Some(Value::Object(x)), Some(Value::Object(y))) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                diff_values(pointer_push(&pointer, k), x.get(k), y.get(k), out);
            }
        }
        (Some(Value::Array(x)), Some(Value::Array(y))) if x.len() == y.len() => {
            for (i, (p, q)) in x.iter().zip(y).enumerate() {
                diff_values(
                    pointer_push(&pointer, &i.to_string()),
                    Some(p),
                    Some(q),
                    out,
                );
            }
        }
        (a, b) if a != b => out.push(Change::Recipe {
            pointer,
            from: a.cloned(),
            to: b.cloned(),
        }),
        _ => {}
    }
}

/// Every difference from `a` to `b`, in a stable order: identity, dependencies, files, recipe.
pub fn diff(a: &HashManifest, b: &HashManifest) -> Vec<Change> {
    let mut out = Vec::new();
    if a.hash_version != b.hash_version {
        out.push(Change::HashVersion {
            from: a.hash_version,
            to: b.hash_version,
        });
    }
    if a.container != b.container {
        out.push(Change::Container {
            from: a.container.clone(),
            to: b.container.clone(),
        });
    }
    let names: std::collections::BTreeSet<&String> =
        a.dependencies.keys().chain(b.dependencies.keys()).collect();
    for n in names {
        let (x, y) = (a.dependencies.get(n), b.dependencies.get(n));
        if x != y {
            out.push(Change::Dependency {
                name: n.clone(),
                from: x.cloned(),
                to: y.cloned(),
            });
        }
    }
    let fa: BTreeMap<&str, _> = a.files.iter().map(|f| (f.path.as_str(), f)).collect();
    let fb: BTreeMap<&str, _> = b.files.iter().map(|f| (f.path.as_str(), f)).collect();
    let paths: std::collections::BTreeSet<&str> = fa.keys().chain(fb.keys()).copied().collect();
    for p in paths {
        match (fa.get(p), fb.get(p)) {
            (Some(_), None) => out.push(Change::FileRemoved { path: p.to_owned() }),
            (None, Some(_)) => out.push(Change::FileAdded { path: p.to_owned() }),
            (Some(x), Some(y)) => {
                let what = if x.mode != y.mode {
                    match (x.mode.as_str(), y.mode.as_str()) {
                        (_, "120000") | ("120000", _) => Some("file type"),
                        _ => Some("executable bit"),
                    }
                } else if x.sha256 != y.sha256 {
                    Some(if x.mode == "120000" {
                        "symlink target"
                    } else {
                        "content"
                    })
                } else {
                    None
                };
                if let Some(what) = what {
                    out.push(Change::FileChanged {
                        path: p.to_owned(),
                        what,
                    });
                }
            }
            (None, None) => {}
        }
    }
    diff_values(String::new(), Some(&a.recipe), Some(&b.recipe), &mut out);
    out
}
