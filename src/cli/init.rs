//! Rendering `cookbook init` (its flow is `ops::init`).
//!
//! Text mode keeps stdout pure JSON, the cookbook and nothing else, so `cookbook init >
//! cookbook.json` is a valid file; what `init` could not decide, the generated Dockerfiles and
//! `--explain` go to stderr as `#` comment lines. `--format json` prints one document with the
//! cookbook, the generated files, the waves and a `notes` array.

use std::io::Write;

use super::args::InitArgs;
use super::output::json;
use crate::error::Error;
use crate::ops::init::{init, InitOptions, InitReport, Limits};

pub fn run(args: &InitArgs, out: &mut dyn Write, err: &mut dyn Write) -> Result<(), Error> {
    let options = InitOptions {
        dir: args.dir.clone(),
        bases: args.bases.clone(),
        registry: args.registry.clone(),
        name: args.name.clone(),
        limits: Limits {
            max_files: args.max_files,
            time: args.time_limit,
        },
        write: args.write,
        force: args.force,
        explain: args.explain,
    };
    let report = init(&options, &mut |notes| {
        for n in notes {
            comment(err, "note: ", n);
        }
    })?;
    if args.format.is_json() {
        json(&report, out);
    } else {
        text(&report, out, err);
    }
    Ok(())
}

fn text(report: &InitReport, out: &mut dyn Write, err: &mut dyn Write) {
    if report.written.is_none() {
        let _ = out.write_all(report.text.as_bytes());
        for (path, text) in &report.files {
            let _ = writeln!(err, "# generated {path} (written with --write):");
            for l in text.lines() {
                let _ = writeln!(err, "#   {l}");
            }
        }
    }
    for (name, decisions) in report.explain.iter().flatten() {
        let _ = writeln!(err, "# {name}:");
        for d in decisions {
            let _ = writeln!(err, "#   {}: {}", d.file, d.decision);
        }
    }
    for n in &report.notes {
        comment(err, "note: ", n);
    }
    for p in report.written.iter().flatten() {
        let _ = writeln!(err, "# wrote {p}");
    }
    let waves: Vec<String> = (report.waves.iter())
        .map(|w| format!("[{}]", w.join(", ")))
        .collect();
    let _ = writeln!(
        err,
        "# {} container(s) in {} wave(s): {}",
        report.containers,
        report.waves.len(),
        waves.join(" ")
    );
}

/// `text` as `#` comment lines, the first after `prefix`.
fn comment(err: &mut dyn Write, prefix: &str, text: &str) {
    let mut lines = text.lines();
    if let Some(first) = lines.next() {
        let _ = writeln!(err, "# {prefix}{first}");
    }
    for l in lines {
        let _ = writeln!(err, "#   {l}");
    }
}
