//! File digests for a context's entries: each file read at most once, on all cores.
//!
//! rayon spreads files over the cores; sha2 uses SHA-NI where the CPU has it (runtime
//! detection). Files whose identity the stat cache vouches for are not read at all.

use std::io::Read;

use rayon::prelude::*;
use sha2::{Digest, Sha256};

use crate::context::{ContextError, Entry, EntrySource};
use crate::state::stat_cache::{now_ns, StatCache};

const BUF: usize = 256 * 1024;

fn sha256_file(path: &std::path::Path, expected_size: u64) -> Result<[u8; 32], ContextError> {
    let io_err = |source| ContextError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(io_err)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; BUF.min(expected_size as usize + 1).max(1)];
    let mut total = 0u64;
    loop {
        let n = file.read(&mut buf).map_err(io_err)?;
        if n == 0 {
            break;
        }
        total += n as u64;
        hasher.update(&buf[..n]);
    }
    if total != expected_size {
        return Err(ContextError::Changed {
            path: path.to_path_buf(),
        });
    }
    Ok(hasher.finalize().into())
}

/// The hex SHA-256 of every entry, in entry order.
///
/// Workers return what they read alongside the digest; the stat cache learns it all in one
/// `insert_all` at the end rather than through a lock per file.
pub fn digest_entries(entries: &[Entry], cache: &StatCache) -> Result<Vec<String>, ContextError> {
    let results: Vec<([u8; 32], Option<i64>)> = entries
        .par_iter()
        .with_min_len(8)
        .map(|e| {
            Ok(match &e.source {
                EntrySource::Generated(bytes) => (Sha256::digest(bytes).into(), None),
                EntrySource::Link(target) => (Sha256::digest(target.as_bytes()).into(), None),
                EntrySource::Disk { path, stat } => match cache.get(path, stat) {
                    Some(d) => (d, None),
                    None => {
                        let started = now_ns();
                        (sha256_file(path, stat.size)?, Some(started))
                    }
                },
            })
        })
        .collect::<Result<_, ContextError>>()?;
    cache.insert_all(
        entries
            .iter()
            .zip(&results)
            .filter_map(|(e, (d, started))| match (&e.source, started) {
                (EntrySource::Disk { path, stat }, Some(at)) => {
                    Some((path.as_path(), *stat, *at, *d))
                }
                _ => None,
            }),
    );
    Ok(results.iter().map(|(d, _)| hex::encode(d)).collect())
}
