//! The README's command blocks run as written (issue 12): every ```sh block is executed with
//! bash in a scratch copy of the repository's examples and fixtures, with the built `cookbook`
//! first on PATH, in the directory its `<!-- readme-test: cwd=DIR -->` line names. A block that
//! cannot run here says why in `<!-- readme-test: skip: REASON -->`; synopses with placeholders
//! are ```text blocks, not commands.

use crate::common;

use std::path::Path;
use std::process::{Command, Stdio};

/// One fenced block of a document and the `<!-- readme-test: … -->` line before it.
pub(crate) struct Block {
    pub(crate) line: usize,
    pub(crate) directive: Option<String>,
    pub(crate) script: String,
}

/// The ```LANG blocks of `text` (README.md's ```sh blocks here; docs/AGENT.md's in
/// `agent_packaging`).
pub(crate) fn blocks(text: &str, lang: &str) -> Vec<Block> {
    let fence = format!("```{lang}");
    let lines: Vec<&str> = text.lines().collect();
    let mut found = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if lines[i].trim_end() == fence {
            let directive = i
                .checked_sub(1)
                .and_then(|p| lines[p].trim().strip_prefix("<!-- readme-test:"))
                .and_then(|d| d.strip_suffix("-->"))
                .map(|d| d.trim().to_owned());
            let start = i + 1;
            let mut end = start;
            while end < lines.len() && lines[end].trim_end() != "```" {
                end += 1;
            }
            found.push(Block {
                line: i + 1,
                directive,
                script: lines[start..end].join("\n"),
            });
            i = end;
        }
        i += 1;
    }
    found
}

#[test]
fn every_command_block_of_the_readme_runs() {
    let root = common::repo_root();
    let text = std::fs::read_to_string(root.join("README.md")).unwrap();
    let blocks = blocks(&text, "sh");
    let bin_dir = Path::new(common::bin()).parent().unwrap().to_path_buf();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut ran = 0;
    for block in &blocks {
        let directive = block.directive.as_deref().unwrap_or_else(|| {
            panic!(
                "README.md:{}: a ```sh block needs a `<!-- readme-test: cwd=DIR -->` or \
                 `<!-- readme-test: skip: REASON -->` line before it",
                block.line
            )
        });
        if let Some(reason) = directive.strip_prefix("skip:") {
            assert!(
                !reason.trim().is_empty(),
                "README.md:{}: say why",
                block.line
            );
            continue;
        }
        let cwd = directive
            .strip_prefix("cwd=")
            .unwrap_or_else(|| panic!("README.md:{}: unknown directive {directive:?}", block.line));
        // A scratch copy: blocks write files (--write, -o) and must not touch the repository.
        let scratch = tempfile::tempdir().unwrap();
        common::copy_tree(&root.join(cwd), scratch.path());
        let output = Command::new("bash")
            .args(["-euo", "pipefail", "-c", &block.script])
            .current_dir(scratch.path())
            .env("PATH", &path)
            .env_remove("COOKBOOK_FILE")
            .env("COOKBOOK_CACHE_DIR", scratch.path().join(".cookbook"))
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "README.md:{} (in {cwd}) failed: {:?}\n--- script ---\n{}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            block.line,
            output.status,
            block.script,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
        );
        ran += 1;
    }
    assert!(ran >= 3, "only {ran} README blocks ran");
}
