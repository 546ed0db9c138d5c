//! Benchmarks of the pure hashing core (no file system): the JCS input hash of a 100,000-file
//! manifest, and the `.dockerignore` matcher over 100,000 paths.
//!
//! `harness = false` with a plain median-of-N timer: no extra dependency, and the figures are
//! comparable run to run (`cargo bench --bench hash`). The whole-program comparison with
//! openssl/tar/git is `scripts/bench-hash.sh`; figures go in `docs/BENCHMARKS.md`.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use cookbook::context::dockerignore::DockerIgnore;
use cookbook::hash::{FileRecord, HashManifest, HASH_VERSION};

const FILES: usize = 100_000;

/// A deterministic pseudo-random stream (SplitMix64), so every run benches the same input.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// Cookbook-shaped paths: a few top-level directories, nested packages, varied extensions.
fn paths(n: usize) -> Vec<String> {
    let tops = ["src", "node_modules", "docs", "tests", "build", "assets"];
    let exts = ["rs", "js", "md", "log", "json", "png", "txt"];
    let mut rng = Rng(3);
    let mut out: Vec<String> = (0..n)
        .map(|i| {
            let top = tops[(rng.next() % tops.len() as u64) as usize];
            let ext = exts[(rng.next() % exts.len() as u64) as usize];
            format!(
                "{top}/pkg{:03}/mod{}/file{i:06}.{ext}",
                rng.next() % 200,
                rng.next() % 8
            )
        })
        .collect();
    out.sort();
    out
}

fn manifest(n: usize) -> HashManifest {
    let mut rng = Rng(7);
    let files = paths(n)
        .into_iter()
        .map(|path| {
            let mut digest = [0u8; 32];
            for chunk in digest.chunks_mut(8) {
                chunk.copy_from_slice(&rng.next().to_le_bytes());
            }
            FileRecord {
                path,
                mode: if rng.next().is_multiple_of(20) {
                    "100755"
                } else {
                    "100644"
                }
                .to_owned(),
                size: rng.next() % (1 << 20),
                sha256: digest.iter().map(|b| format!("{b:02x}")).collect(),
            }
        })
        .collect();
    HashManifest {
        hash_version: HASH_VERSION,
        container: "bench".to_owned(),
        recipe: serde_json::json!({
            "kind": "dockerfile",
            "dockerfile": "Dockerfile",
            "dockerfile_text": "FROM scratch\nCOPY . /srv/\n",
            "build_args": { "B": "2", "A": "1" },
            "target": null
        }),
        files,
        dependencies: BTreeMap::from([("base".to_owned(), "0".repeat(64))]),
        input_hash: String::new(),
    }
}

/// Runs `f` `runs` times after one warm-up and prints the median and the fastest run.
fn bench(name: &str, runs: usize, mut f: impl FnMut()) {
    f();
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    times.sort();
    println!(
        "{name:<44} median {:>9.2} ms   min {:>9.2} ms   ({runs} runs)",
        times[runs / 2].as_secs_f64() * 1e3,
        times[0].as_secs_f64() * 1e3
    );
}

fn main() {
    // `cargo test --benches` runs bench binaries with `--bench` absent: keep that quick.
    let quick = !std::env::args().any(|a| a == "--bench");
    let runs = if quick { 1 } else { 15 };

    let m = manifest(if quick { 1_000 } else { FILES });
    bench(
        &format!("jcs input hash, {} files", m.files.len()),
        runs,
        || {
            black_box(black_box(&m).compute_hash());
        },
    );

    let ignore = DockerIgnore::parse(
        "# typical .dockerignore\n\
         node_modules\n\
         **/*.log\n\
         !docs/important.log\n\
         build/\n\
         docs/**/*.png\n\
         tests/fixtures/**\n\
         *.tmp\n\
         **/mod7\n\
         !**/mod7/keep*.rs\n",
    )
    .expect("patterns compile");
    let ps = paths(if quick { 1_000 } else { FILES });
    let mut excluded = 0usize;
    bench(
        &format!(".dockerignore is_excluded, {} paths", ps.len()),
        runs,
        || {
            excluded = ps
                .iter()
                .filter(|p| black_box(&ignore).is_excluded(p))
                .count();
        },
    );
    assert!(
        excluded > 0 && excluded < ps.len(),
        "the patterns must both match and not match some paths ({excluded} of {})",
        ps.len()
    );
}
