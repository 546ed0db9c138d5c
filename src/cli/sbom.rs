//! Renders `sbom`: the SPDX document, pretty, keys sorted (as every JSON document here).

use std::io::Write;
use std::path::Path;

use super::output::{json, open};
use super::CookbookArg;
use crate::error::Error;
use crate::ops::sbom as ops;

pub fn sbom(
    cookbook: &CookbookArg,
    top: Option<&Path>,
    container: &str,
    engine: &super::args::EngineArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), Error> {
    let mut ws = open(cookbook, top, err)?;
    ws.engine = engine.selector();
    let report = ops::sbom(&ws, container)?;
    json(&report, out);
    Ok(())
}
