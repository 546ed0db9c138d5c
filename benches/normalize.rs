//! Normalization throughput and memory (issue 11, "Benchmarks"; figures in docs/BENCHMARKS.md,
//! "Reproducible images").
//!
//! - `docker save IMAGE | target/release/deps/normalize-HASH -` normalizes the export streamed on
//!   stdin (run it under `/usr/bin/time -v` for the peak RSS; compare with
//!   `docker save IMAGE | sha256sum`). `COOKBOOK_BENCH_BASE` lists the base's diff_ids,
//!   comma-separated; `COOKBOOK_BENCH_OUT` is where the layout goes (a temp dir otherwise).
//! - `cargo bench --bench normalize` without arguments normalizes a synthetic 256 MiB export
//!   (16 files of 16 MiB in one layer) generated on disk.
//!
//! Plain `main` rather than criterion: one run of a GiB-sized input is the measurement, and
//! criterion's repetitions would take minutes.

use std::io::{Read, Write};
use std::time::Instant;

use cookbook::image::{normalize, Compression, NormalizeOptions};

fn main() {
    let stdin = std::env::args().skip(1).any(|a| a == "-");
    let base_diff_ids: Vec<String> = std::env::var("COOKBOOK_BENCH_BASE")
        .map(|b| {
            b.split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let compression = match std::env::var("COOKBOOK_BENCH_GZIP").as_deref() {
        Ok("1") => Compression::Gzip,
        _ => Compression::None,
    };
    let options = NormalizeOptions {
        base_diff_ids,
        compression,
    };
    let scratch = tempfile::tempdir().unwrap();
    let out = std::env::var("COOKBOOK_BENCH_OUT")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| scratch.path().join("layout"));

    let started = Instant::now();
    let (input_bytes, image) = if stdin {
        let mut counted = Counted::new(std::io::stdin().lock());
        let image = normalize(&mut counted, &options, &out).unwrap();
        (counted.bytes, image)
    } else {
        let export = scratch.path().join("export.tar");
        let bytes = synthetic_export(&export, 16, 16 << 20);
        let image = normalize(std::fs::File::open(&export).unwrap(), &options, &out).unwrap();
        (bytes, image)
    };
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "normalize: {:.1} MiB in {elapsed:.2} s ({:.0} MiB/s), {} layers, manifest {}",
        input_bytes as f64 / 1048576.0,
        input_bytes as f64 / 1048576.0 / elapsed,
        image.layers().len(),
        image.manifest_digest()
    );
}

/// A reader that counts what passes through.
struct Counted<R> {
    inner: R,
    bytes: u64,
}

impl<R> Counted<R> {
    fn new(inner: R) -> Self {
        Counted { inner, bytes: 0 }
    }
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }
}

/// Writes a legacy-layout export of one layer with `files` pseudo-random files of `size` bytes
/// to `path`, streaming (the layer goes to a file first so its diff_id is known); returns the
/// export's size.
fn synthetic_export(path: &std::path::Path, files: usize, size: usize) -> u64 {
    use sha2::{Digest as _, Sha256};
    let dir = path.parent().unwrap();
    let layer_path = dir.join("layer.tar");
    let mut layer = tar::Builder::new(std::io::BufWriter::new(
        std::fs::File::create(&layer_path).unwrap(),
    ));
    for i in 0..files {
        let mut header = tar::Header::new_gnu();
        header.set_size(size as u64);
        header.set_mode(0o644);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(1_795_000_000 + i as u64);
        header.set_cksum();
        let noise = Noise {
            state: 0x9e37_79b9_7f4a_7c15 ^ i as u64,
            left: size,
        };
        layer
            .append_data(&mut header, format!("data/{i:02}.bin"), noise)
            .unwrap();
    }
    layer.into_inner().unwrap().flush().unwrap();
    let mut hasher = Sha256::new();
    std::io::copy(&mut std::fs::File::open(&layer_path).unwrap(), &mut hasher).unwrap();
    let diff_id = format!("sha256:{}", hex::encode(hasher.finalize()));
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","config":{{}},"rootfs":{{"type":"layers","diff_ids":["{diff_id}"]}}}}"#
    );
    let manifest = r#"[{"Config":"config.json","RepoTags":null,"Layers":["l/layer.tar"]}]"#;
    let mut export = tar::Builder::new(std::fs::File::create(path).unwrap());
    let mut add = |name: &str, data: &mut dyn Read, size: u64| {
        let mut header = tar::Header::new_ustar();
        header.set_size(size);
        header.set_mode(0o644);
        header.set_cksum();
        export.append_data(&mut header, name, data).unwrap();
    };
    add("config.json", &mut config.as_bytes(), config.len() as u64);
    let layer_size = std::fs::metadata(&layer_path).unwrap().len();
    add(
        "l/layer.tar",
        &mut std::fs::File::open(&layer_path).unwrap(),
        layer_size,
    );
    add(
        "manifest.json",
        &mut manifest.as_bytes(),
        manifest.len() as u64,
    );
    export.into_inner().unwrap();
    std::fs::metadata(path).unwrap().len()
}

/// `left` pseudo-random bytes (xorshift64), incompressible like most binaries, never in memory.
struct Noise {
    state: u64,
    left: usize,
}

impl Read for Noise {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(self.left) / 8 * 8;
        let n = if n == 0 { buf.len().min(self.left) } else { n };
        for byte in buf[..n].chunks_mut(8) {
            self.state ^= self.state << 13;
            self.state ^= self.state >> 7;
            self.state ^= self.state << 17;
            byte.copy_from_slice(&self.state.to_le_bytes()[..byte.len()]);
        }
        self.left -= n;
        Ok(n)
    }
}
