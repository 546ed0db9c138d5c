//! Rendering `cookbook key generate` and `cookbook key id` (their flows are `ops::key`): the
//! paths written and the key id as text, or the report as JSON.

use std::io::Write;

use super::args::{KeyAlgorithmArg, KeyCommand};
use super::output;
use crate::error::Error;
use crate::ops::key::{generate, id, GenerateOptions, KeyAlgorithm};

pub fn run(command: &KeyCommand, out: &mut dyn Write) -> Result<(), Error> {
    match command {
        KeyCommand::Generate {
            algorithm,
            output: prefix,
            force,
            format,
        } => {
            let report = generate(&GenerateOptions {
                algorithm: match algorithm {
                    KeyAlgorithmArg::EcdsaP256 => KeyAlgorithm::EcdsaP256,
                    KeyAlgorithmArg::Ed25519 => KeyAlgorithm::Ed25519,
                },
                prefix: prefix.clone(),
                force: *force,
            })?;
            if format.is_json() {
                output::json(&report, out);
            } else {
                let _ = writeln!(
                    out,
                    "private key: {} (keep it secret)\npublic key:  {}\nkey id:      {} ({})",
                    report.private_key.display(),
                    report.public_key.display(),
                    report.key_id,
                    report.algorithm
                );
            }
        }
        KeyCommand::Id { file, format } => {
            let report = id(file)?;
            if format.is_json() {
                output::json(&report, out);
            } else {
                let _ = writeln!(out, "{}", report.key_id);
            }
        }
    }
    Ok(())
}
