//! What a site's engine offers, in the vocabulary of `capabilities`: `cookbook site detect`, and
//! deploy's refusal of a site that declares a capability its target does not have.
//!
//! Pipeline position: the engine's `/info` answer → **`Detected`** (pure, tested with plain
//! values) → printed, or compared with a site's declared capabilities before a deploy.
//!
//! Only capabilities this module can observe are checked: the CPU architecture (`amd64`, `arm64`,
//! …, as Docker names platforms) and `gpu` (an NVIDIA runtime registered with the engine). Any
//! other declared capability (`ssd`, `eu-west`) is the site author's word and is not refused.

use std::collections::BTreeSet;

use bollard::models::SystemInfo;

/// The capabilities this module can observe.
pub const OBSERVABLE: &[&str] = &[
    "amd64", "arm64", "arm", "386", "ppc64le", "s390x", "riscv64", "gpu",
];

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Detected {
    /// Docker's platform name for the engine's CPU (`amd64`, `arm64`).
    pub architecture: String,
    pub cores: i64,
    pub memory_bytes: i64,
    pub engine_version: String,
    pub os: String,
    pub gpu: bool,
}

/// `uname -m` names (what `/info` reports) to Docker platform names.
fn platform(machine: &str) -> String {
    match machine {
        "x86_64" => "amd64",
        "aarch64" | "arm64" => "arm64",
        "armv7l" | "armv6l" | "arm" => "arm",
        "i386" | "i686" => "386",
        other => other,
    }
    .to_owned()
}

impl Detected {
    pub fn from_info(info: &SystemInfo) -> Detected {
        Detected {
            architecture: platform(info.architecture.as_deref().unwrap_or("unknown")),
            cores: info.ncpu.unwrap_or(0),
            memory_bytes: info.mem_total.unwrap_or(0),
            engine_version: info.server_version.clone().unwrap_or_default(),
            os: info.os_type.clone().unwrap_or_default(),
            gpu: info
                .runtimes
                .as_ref()
                .is_some_and(|r| r.keys().any(|k| k.contains("nvidia"))),
        }
    }

    /// The observable capabilities the engine has.
    pub fn capabilities(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::from([self.architecture.clone()]);
        if self.gpu {
            out.insert("gpu".to_owned());
        }
        out
    }

    /// The declared capabilities this engine is seen not to have.
    pub fn missing<'a>(&self, declared: &'a BTreeSet<String>) -> Vec<&'a str> {
        let have = self.capabilities();
        declared
            .iter()
            .filter(|c| OBSERVABLE.contains(&c.as_str()) && !have.contains(*c))
            .map(String::as_str)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vocabulary_and_missing() {
        let info = SystemInfo {
            architecture: Some("x86_64".to_owned()),
            ncpu: Some(4),
            mem_total: Some(8 << 30),
            server_version: Some("20.10.24".to_owned()),
            os_type: Some("linux".to_owned()),
            ..Default::default()
        };
        let d = Detected::from_info(&info);
        assert_eq!(d.architecture, "amd64");
        assert!(!d.gpu);
        assert_eq!(d.capabilities(), BTreeSet::from(["amd64".to_owned()]));
        let declared: BTreeSet<String> = ["amd64", "gpu", "ssd", "arm64"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        // `ssd` cannot be observed: taken on the author's word.
        assert_eq!(d.missing(&declared), vec!["arm64", "gpu"]);

        let mut info = info;
        info.architecture = Some("aarch64".to_owned());
        info.runtimes = Some(std::collections::HashMap::from([(
            "nvidia".to_owned(),
            Default::default(),
        )]));
        let d = Detected::from_info(&info);
        assert_eq!(
            d.capabilities(),
            BTreeSet::from(["arm64".to_owned(), "gpu".to_owned()])
        );
    }
}
