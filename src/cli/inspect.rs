//! Rendering `validate`, `plan`, `hash`, `explain`, `context`, `schema` and `clean` (their flows
//! are `ops::inspect` and `ops::clean`), and printing `completions` and `man`.

use std::io::{IsTerminal, Write};
use std::path::Path;

use super::output::{self, count, json, open};
use super::{github, CiFormat, CookbookArg, Format, PlanFormat};
use crate::error::Error;
use crate::ops::inspect::{self as ops, ContextSink};
use crate::ops::CookbookFile;

pub fn validate(
    cookbook: &CookbookArg,
    top: Option<&Path>,
    format: CiFormat,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), Error> {
    let opened = open(cookbook, top, err);
    if format == CiFormat::Github {
        github::opened("validate", &opened, out);
    }
    let report = ops::validate(&opened?);
    match format {
        CiFormat::Json => json(&report, out),
        CiFormat::Text | CiFormat::Github => {
            let _ = writeln!(
                err,
                "{}: ok (format {}, {} in {}, {}, {})",
                report.file,
                report.manifest_version,
                count(report.containers, "container"),
                count(report.waves, "wave"),
                count(report.applications, "application"),
                count(report.sites, "site")
            );
        }
    }
    Ok(())
}

pub fn plan(
    cookbook: &CookbookArg,
    top: Option<&Path>,
    site: Option<&str>,
    strict: bool,
    format: PlanFormat,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), Error> {
    let ws = open(cookbook, top, err)?;
    let report = ops::plan(&ws, site, strict)?;
    output::warnings(&ws.file.label, &report.warnings, err);
    match format {
        PlanFormat::Json => json(&report, out),
        PlanFormat::Dot => {
            let _ = out.write_all(report.dot().as_bytes());
        }
        PlanFormat::Text => {
            let _ = out.write_all(report.text().as_bytes());
            // How each external base is pinned: `base REF (containers): pinned to sha256:…
            // (registry)`, or not yet.
            for (reference, base) in &report.bases {
                let names: Vec<&str> = base.containers.iter().map(|n| n.as_str()).collect();
                let state = match &base.pinned {
                    Some(pin) => format!("pinned to {} ({})", pin.digest, pin.source.as_str()),
                    None => "not pinned yet: apply pins it".to_owned(),
                };
                let _ = writeln!(err, "base {reference} ({}): {state}", names.join(", "));
            }
            if !report.builders.is_empty() {
                let pool: Vec<String> = report
                    .builders
                    .iter()
                    .map(|b| format!("{} ({})", b.name, b.engine))
                    .collect();
                let _ = writeln!(
                    err,
                    "builders: {}: each build goes to the least busy one when apply runs (apply --dry-run shows where)",
                    pool.join(", ")
                );
            }
        }
    }
    Ok(())
}

pub fn hash(
    cookbook: &CookbookArg,
    top: Option<&Path>,
    containers: &[String],
    strict: bool,
    format: Format,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), Error> {
    let ws = open(cookbook, top, err)?;
    let report = ops::hash(&ws, containers, strict)?;
    output::warnings(&ws.file.label, &report.warnings, err);
    match format {
        Format::Json => json(&report, out),
        Format::Text => {
            for name in &report.order {
                let _ = writeln!(out, "{}  {name}", report.input_hashes[name]);
            }
            let unpinned: Vec<&str> = (report.order.iter())
                .filter(|n| report.not_pinned.contains_key(*n))
                .map(|n| n.as_str())
                .collect();
            if !unpinned.is_empty() {
                let _ = writeln!(
                    err,
                    "note: the base images of {} are not pinned yet: apply pins them (and their \
                     hashes change then)",
                    unpinned.join(", ")
                );
            }
        }
    }
    // The process exits next: freeing one allocation per file (100,000s of them) one by one
    // was a tenth of a warm run's time.
    std::mem::forget(report);
    Ok(())
}

pub fn explain(
    cookbook: &CookbookArg,
    top: Option<&Path>,
    container: &str,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), Error> {
    let report = ops::explain(&open(cookbook, top, err)?, container)?;
    json(&report, out);
    if let Some(reference) = &report.unpinned_base {
        let _ = writeln!(
            err,
            "note: base {reference} of {} is not pinned yet: apply pins it (and this hash \
             changes then)",
            report.manifest.container
        );
    }
    Ok(())
}

pub fn context(
    cookbook: &CookbookArg,
    top: Option<&Path>,
    container: &str,
    output: &Path,
    format: Format,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), Error> {
    let file = cookbook.locate(top)?;
    let to_stdout = output.as_os_str() == "-";
    if to_stdout && format.is_json() {
        return Err(Error::Usage {
            message: "`--format json` needs `-o FILE`: with `-o -` standard output is the tar"
                .to_owned(),
            help: None,
        });
    }
    if to_stdout && std::io::stdout().is_terminal() {
        return Err(Error::Usage {
            message: "refusing to write a tar archive to a terminal".to_owned(),
            help: Some(format!(
                "redirect it (`cookbook context {container} -o - > {container}.tar`) or \
                 name a file with `-o`"
            )),
        });
    }
    let ws = output::open_file(file, err)?;
    if to_stdout {
        ops::context(&ws, container, ContextSink::Stream(out))?;
        return Ok(());
    }
    let report = ops::context(&ws, container, ContextSink::Path(output))?;
    let _ = writeln!(
        err,
        "wrote the context of {} to {} ({} entries, {} bytes of content, input hash {})",
        report.container, report.output, report.entries, report.bytes, report.input_hash
    );
    if format.is_json() {
        json(&report, out);
    }
    Ok(())
}

pub fn schema(version: Option<&str>, out: &mut dyn Write) -> Result<(), Error> {
    let _ = out.write_all(ops::schema(version)?.as_bytes());
    Ok(())
}

pub fn clean(file: &CookbookFile, dry_run: bool, err: &mut dyn Write) -> Result<(), Error> {
    let report = crate::ops::clean::clean(file, dry_run)?;
    if report.removed.is_empty() {
        let _ = writeln!(err, "clean: nothing to remove in {}", report.dir.display());
    }
    let verb = if report.dry_run {
        "would remove"
    } else {
        "removed"
    };
    for path in &report.removed {
        let _ = writeln!(err, "{verb} {}", path.display());
    }
    Ok(())
}

pub fn completions(
    shell: clap_complete::Shell,
    cli: &mut clap::Command,
    out: &mut dyn Write,
) -> Result<(), Error> {
    // Generated into memory: clap_complete panics when its writer fails (a closed pipe).
    let mut script = Vec::new();
    clap_complete::generate(shell, cli, "cookbook", &mut script);
    let _ = out.write_all(&script);
    Ok(())
}

pub fn man(cli: clap::Command, out: &mut dyn Write) -> Result<(), Error> {
    let mut page = Vec::new();
    clap_mangen::Man::new(cli)
        .render(&mut page)
        .expect("rendering into memory cannot fail");
    let _ = out.write_all(&page);
    Ok(())
}
