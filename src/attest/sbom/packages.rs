//! The packages an application's dependency files name with certainty: exact versions only.
//!
//! A range (`flask>=2`), an unpinned name, a marker that may leave a requirement out
//! (`; python_version < "3.9"`), a replaced Go module or a v1 `package-lock.json` (no `packages`
//! map) is not listed: the SBOM claims only what the files fix. Each parser takes the file's
//! bytes and returns what it can name, nothing for a file it cannot read (the SBOM is then
//! shorter, never wrong). [`read`] is the thin disk reader, through `context::file`.
//!
//! purls follow https://github.com/package-url/purl-spec (`pkg:pypi`, `pkg:npm`, `pkg:golang`,
//! `pkg:cargo`), percent-encoded by hand ([`encode`]): the four types here need only the spec's
//! one encoding rule, and no purl crate is in the tree.

use std::path::Path;

use super::Package;

/// The largest dependency file read: a `package-lock.json` of a large application is a few MiB.
pub const MAX_DEPENDENCY_FILE: u64 = 32 << 20;

/// The dependency files read, by name, in an application's source directory.
pub const FILES: [&str; 6] = [
    "requirements.txt",
    "package-lock.json",
    "go.mod",
    "Cargo.lock",
    "poetry.lock",
    "uv.lock",
];

/// Reads `path` (a regular file, capped) and names its packages by its file name; `source` is
/// what each package says it came from. Nothing for a file that is missing or unreadable.
pub fn read(path: &Path, source: &str) -> Vec<Package> {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return Vec::new();
    };
    match crate::context::file::read_regular(path, MAX_DEPENDENCY_FILE) {
        Ok(Some(bytes)) => from_file(name, &bytes, source),
        _ => Vec::new(),
    }
}

/// The packages a dependency file named `name` lists (a `*.txt` other than requirements.txt is
/// read as a requirements file too: `dependencies: "requirements/prod.txt"`).
pub fn from_file(name: &str, bytes: &[u8], source: &str) -> Vec<Package> {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return Vec::new();
    };
    match name {
        "package-lock.json" => package_lock(text, source),
        "go.mod" => go_mod(text, source),
        "Cargo.lock" => cargo_lock(text, source),
        "poetry.lock" | "uv.lock" => python_lock(text, source),
        _ if name.ends_with(".txt") => requirements(text, source),
        _ => Vec::new(),
    }
}

fn package(name: &str, version: &str, purl: Option<String>, source: &str) -> Package {
    Package {
        name: name.to_owned(),
        version: version.to_owned(),
        purl,
        source: source.to_owned(),
    }
}

/// `name==version` lines (extras dropped; comments, options, `-r` includes, markers, ranges and
/// wildcards skipped; `\` continuations joined, so hash-checking files read).
pub fn requirements(text: &str, source: &str) -> Vec<Package> {
    let joined = text.replace("\\\r\n", " ").replace("\\\n", " ");
    joined
        .lines()
        .filter_map(|line| pinned_requirement(line, source))
        .collect()
}

/// One `name==version` requirement (also the cookbook's own `dependencies` specs).
pub fn pinned_requirement(line: &str, source: &str) -> Option<Package> {
    // ` #` starts a comment; `--hash=…` options follow the requirement.
    let line = line.split(" #").next()?.split(" --").next()?.trim();
    if line.is_empty() || line.starts_with(['#', '-']) || line.contains(';') {
        return None;
    }
    let (name, version) = line.split_once("==")?;
    let name = name.split('[').next()?.trim();
    let version = version.trim();
    let name_ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    // `===` (arbitrary equality), `==1.*`, `==1,<2`: not one version.
    let version_ok = !version.is_empty()
        && version
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.+!".contains(&b));
    (name_ok && version_ok).then(|| {
        let purl = format!("pkg:pypi/{}@{}", encode(&pypi_name(name)), encode(version));
        package(name, version, Some(purl), source)
    })
}

/// PEP 503 normalization, as the purl spec asks for pypi names: lowercase, `_` and runs of
/// `-_.` as one `-`.
fn pypi_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            if !out.ends_with('-') {
                out.push('-');
            }
        } else {
            out.push(c.to_ascii_lowercase());
        }
    }
    out
}

/// npm's lock file v2/v3: every `node_modules/…` entry of `packages` with a version (links and
/// the root left out).
pub fn package_lock(text: &str, source: &str) -> Vec<Package> {
    let Ok(value) = serde_json::from_str::<serde_json::Value>(text) else {
        return Vec::new();
    };
    let Some(packages) = value.get("packages").and_then(|p| p.as_object()) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (key, entry) in packages {
        let Some(at) = key.rfind("node_modules/") else {
            continue; // the root ("") or a workspace folder
        };
        if entry.get("link").and_then(|l| l.as_bool()) == Some(true) {
            continue;
        }
        let Some(version) = entry.get("version").and_then(|v| v.as_str()) else {
            continue;
        };
        // An alias (`"x": "npm:y@1"`) installs `name` under the key's folder.
        let name = entry
            .get("name")
            .and_then(|n| n.as_str())
            .unwrap_or(&key[at + "node_modules/".len()..]);
        if name.is_empty() || version.is_empty() {
            continue;
        }
        let purl = match name.split_once('/') {
            Some((scope, rest)) if scope.starts_with('@') => {
                format!(
                    "pkg:npm/{}/{}@{}",
                    encode(scope),
                    encode(rest),
                    encode(version)
                )
            }
            _ => format!("pkg:npm/{}@{}", encode(name), encode(version)),
        };
        out.push(package(name, version, Some(purl), source));
    }
    out
}

/// `require` lines of `go.mod` (one line or a block); modules a `replace` directive redirects
/// are left out (what is built is then another module).
pub fn go_mod(text: &str, source: &str) -> Vec<Package> {
    let mut required = Vec::new();
    let mut replaced = std::collections::BTreeSet::new();
    let mut block: Option<&str> = None;
    for raw in text.lines() {
        let line = raw.split("//").next().unwrap_or_default().trim();
        if line.is_empty() {
            continue;
        }
        if let Some(directive) = block {
            if line == ")" {
                block = None;
            } else {
                directive_line(directive, line, &mut required, &mut replaced);
            }
            continue;
        }
        let (directive, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        let rest = rest.trim();
        if rest == "(" {
            block = Some(directive);
        } else {
            directive_line(directive, rest, &mut required, &mut replaced);
        }
    }
    required
        .into_iter()
        .filter(|(path, _)| !replaced.contains(path))
        .map(|(path, version)| {
            let purl = format!(
                "pkg:golang/{}@{}",
                path.split('/').map(encode).collect::<Vec<_>>().join("/"),
                encode(&version)
            );
            package(&path, &version, Some(purl), source)
        })
        .collect()
}

fn directive_line(
    directive: &str,
    line: &str,
    required: &mut Vec<(String, String)>,
    replaced: &mut std::collections::BTreeSet<String>,
) {
    let mut words = line.split_whitespace();
    match directive {
        "require" => {
            if let (Some(path), Some(version), None) = (words.next(), words.next(), words.next()) {
                if version.starts_with('v') {
                    required.push((path.trim_matches('"').to_owned(), version.to_owned()));
                }
            }
        }
        "replace" => {
            if let Some(path) = words.next() {
                replaced.insert(path.trim_matches('"').to_owned());
            }
        }
        _ => {}
    }
}

/// `[[package]]` entries of `Cargo.lock` from a registry (crates.io's purl); git sources are
/// named without a purl, the workspace's own crates (no `source`) not at all.
pub fn cargo_lock(text: &str, source: &str) -> Vec<Package> {
    toml_packages(text, |name, version, entry| {
        let from = entry.get("source")?.as_str()?;
        let crates_io = from.starts_with("registry+https://github.com/rust-lang/crates.io-index")
            || from.starts_with("sparse+https://index.crates.io/");
        let purl = crates_io.then(|| format!("pkg:cargo/{}@{}", encode(name), encode(version)));
        Some(package(name, version, purl, source))
    })
}

/// `[[package]]` entries of `poetry.lock` or `uv.lock`; uv's project itself (an editable or
/// virtual source) is not a dependency.
pub fn python_lock(text: &str, source: &str) -> Vec<Package> {
    toml_packages(text, |name, version, entry| {
        let own = entry
            .get("source")
            .and_then(|s| s.as_table())
            .is_some_and(|s| s.contains_key("editable") || s.contains_key("virtual"));
        if own {
            return None;
        }
        let purl = format!("pkg:pypi/{}@{}", encode(&pypi_name(name)), encode(version));
        Some(package(name, version, Some(purl), source))
    })
}

/// The `[[package]]` entries of a TOML lock file with a `name` and a `version`, each as `keep`
/// makes it (or leaves it out); nothing from a file that is not TOML.
fn toml_packages(
    text: &str,
    keep: impl Fn(&str, &str, &toml::Value) -> Option<Package>,
) -> Vec<Package> {
    let Ok(value) = text.parse::<toml::Table>() else {
        return Vec::new();
    };
    let Some(entries) = value.get("package").and_then(|p| p.as_array()) else {
        return Vec::new();
    };
    entries
        .iter()
        .filter_map(|entry| {
            let name = entry.get("name")?.as_str()?;
            let version = entry.get("version")?.as_str()?;
            keep(name, version, entry)
        })
        .collect()
}

/// Percent-encodes a purl segment: everything but ASCII letters, digits and `.-_~` (the purl
/// spec's rule for names, namespaces and versions; `:` and `@` are encoded, so a version such as
/// `sha256:…` or a scope `@x` cannot be read as a separator).
pub fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"._-~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(packages: &[Package]) -> Vec<(String, String, Option<String>)> {
        packages
            .iter()
            .map(|p| (p.name.clone(), p.version.clone(), p.purl.clone()))
            .collect()
    }

    fn p(name: &str, version: &str, purl: &str) -> (String, String, Option<String>) {
        (name.into(), version.into(), Some(purl.into()))
    }

    #[test]
    fn requirements_list_only_exact_pins() {
        let text = "\
# a comment
Flask==3.0.2  # web
uvicorn[standard]==0.29.0
requests>=2
gunicorn
numpy==1.*
pywin32==306 ; sys_platform == 'win32'
-r other.txt
--index-url https://example.com
Zope.Interface==6.2 \\
    --hash=sha256:0000
typing_extensions===4.10.0
";
        assert_eq!(
            named(&requirements(text, "requirements.txt")),
            vec![
                p("Flask", "3.0.2", "pkg:pypi/flask@3.0.2"),
                p("uvicorn", "0.29.0", "pkg:pypi/uvicorn@0.29.0"),
                p("Zope.Interface", "6.2", "pkg:pypi/zope-interface@6.2"),
            ]
        );
        assert_eq!(requirements("x==1.0", "r")[0].source, "r");
    }

    #[test]
    fn package_lock_v3_lists_installed_packages_with_scopes_encoded() {
        let text = r#"{"lockfileVersion":3,"packages":{
            "":{"name":"app","version":"1.0.0"},
            "node_modules/express":{"version":"4.19.2"},
            "node_modules/@babel/core":{"version":"7.24.0","dev":true},
            "node_modules/express/node_modules/debug":{"version":"2.6.9"},
            "node_modules/local":{"resolved":"../local","link":true},
            "node_modules/alias":{"name":"lodash","version":"4.17.21"},
            "packages/ws":{"version":"0.0.1"}
        }}"#;
        assert_eq!(
            named(&package_lock(text, "package-lock.json")),
            vec![
                p("@babel/core", "7.24.0", "pkg:npm/%40babel/core@7.24.0"),
                p("lodash", "4.17.21", "pkg:npm/lodash@4.17.21"),
                p("express", "4.19.2", "pkg:npm/express@4.19.2"),
                p("debug", "2.6.9", "pkg:npm/debug@2.6.9"),
            ]
        );
        let v1 = r#"{"lockfileVersion":1,"dependencies":{"express":{"version":"4.0.0"}}}"#;
        assert!(package_lock(v1, "x").is_empty());
        assert!(package_lock("not json", "x").is_empty());
    }

    #[test]
    fn go_mod_requires_are_listed_unless_replaced() {
        let text = "\
module example.com/app

go 1.22

require github.com/gorilla/mux v1.8.1

require (
\tgolang.org/x/net v0.24.0 // indirect
\tgithub.com/old/thing v2.0.0+incompatible
\texample.com/forked v1.0.0
)

replace example.com/forked => ../forked
";
        assert_eq!(
            named(&go_mod(text, "go.mod")),
            vec![
                p(
                    "github.com/gorilla/mux",
                    "v1.8.1",
                    "pkg:golang/github.com/gorilla/mux@v1.8.1"
                ),
                p(
                    "golang.org/x/net",
                    "v0.24.0",
                    "pkg:golang/golang.org/x/net@v0.24.0"
                ),
                p(
                    "github.com/old/thing",
                    "v2.0.0+incompatible",
                    "pkg:golang/github.com/old/thing@v2.0.0%2Bincompatible"
                ),
            ]
        );
    }

    #[test]
    fn cargo_lock_names_registry_crates_and_git_ones_without_a_purl() {
        let text = r#"
version = 3

[[package]]
name = "app"
version = "0.1.0"

[[package]]
name = "serde"
version = "1.0.200"
source = "registry+https://github.com/rust-lang/crates.io-index"

[[package]]
name = "fork"
version = "0.2.0"
source = "git+https://example.com/fork#abc"
"#;
        assert_eq!(
            named(&cargo_lock(text, "Cargo.lock")),
            vec![
                p("serde", "1.0.200", "pkg:cargo/serde@1.0.200"),
                ("fork".into(), "0.2.0".into(), None),
            ]
        );
    }

    #[test]
    fn uv_and_poetry_locks_leave_the_project_out() {
        let uv = r#"
version = 1
[[package]]
name = "app"
version = "0.1.0"
source = { editable = "." }

[[package]]
name = "Jinja2"
version = "3.1.3"
source = { registry = "https://pypi.org/simple" }
"#;
        assert_eq!(
            named(&from_file("uv.lock", uv.as_bytes(), "uv.lock")),
            vec![p("Jinja2", "3.1.3", "pkg:pypi/jinja2@3.1.3")]
        );
        let poetry = "[[package]]\nname = \"click\"\nversion = \"8.1.7\"\n";
        assert_eq!(
            named(&from_file("poetry.lock", poetry.as_bytes(), "poetry.lock")),
            vec![p("click", "8.1.7", "pkg:pypi/click@8.1.7")]
        );
    }

    #[test]
    fn purl_segments_are_percent_encoded() {
        assert_eq!(encode("sha256:ab"), "sha256%3Aab");
        assert_eq!(encode("@scope"), "%40scope");
        assert_eq!(encode("1.0+local"), "1.0%2Blocal");
        assert_eq!(encode("a b/é"), "a%20b%2F%C3%A9");
    }
}
