//! Names of containers, applications and sites.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A name matching `[a-z0-9][a-z0-9_.-]{0,127}`: safe in image references, file names and labels.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Name(String);

impl Name {
    pub fn parse(s: &str) -> Option<Name> {
        let b = s.as_bytes();
        let ok = !b.is_empty()
            && b.len() <= 128
            && matches!(b[0], b'a'..=b'z' | b'0'..=b'9')
            && b.iter()
                .all(|c| matches!(c, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'.' | b'-'));
        ok.then(|| Name(s.to_owned()))
    }

    /// The project name a directory gives a cookbook that names none, by docker compose's rule
    /// (`NormalizeProjectName`): lowercased, every character a name cannot hold dropped, leading
    /// `_`, `.` and `-` dropped, cut to 128 bytes. `None` when nothing is left (`/`, `__`, `文档`).
    pub fn from_directory(directory: &str) -> Option<Name> {
        let kept: String = directory
            .chars()
            .flat_map(char::to_lowercase)
            .filter(|c| matches!(c, 'a'..='z' | '0'..='9' | '_' | '.' | '-'))
            .skip_while(|c| matches!(c, '_' | '.' | '-'))
            .take(128)
            .collect();
        Name::parse(&kept)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Name {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Name::parse(&s).ok_or_else(|| format!("invalid name {s:?}"))
    }
}

impl From<Name> for String {
    fn from(n: Name) -> String {
        n.0
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

impl std::borrow::Borrow<str> for Name {
    fn borrow(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::Name;

    #[test]
    fn accepts_and_refuses() {
        for ok in ["a", "0", "api-v2", "web_1.x", &"a".repeat(128)] {
            assert!(Name::parse(ok).is_some(), "{ok}");
        }
        for bad in [
            "",
            "-a",
            "_a",
            ".a",
            "A",
            "a b",
            "a/b",
            "ä",
            &"a".repeat(129),
        ] {
            assert!(Name::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn directory_names_normalize_like_compose() {
        let cases = [
            ("shop", Some("shop")),
            ("My Shop", Some("myshop")),
            ("Web_App-2.0", Some("web_app-2.0")),
            ("_hidden", Some("hidden")),
            ("..x", Some("x")),
            ("café", Some("caf")),
            ("文档", None),
            ("", None),
            ("__", None),
        ];
        for (dir, want) in cases {
            assert_eq!(
                Name::from_directory(dir).as_ref().map(Name::as_str),
                want,
                "{dir}"
            );
        }
        let long = "a".repeat(300);
        assert_eq!(Name::from_directory(&long).unwrap().as_str().len(), 128);
    }
}
