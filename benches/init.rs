//! `cookbook init` on a 100,000-file repository. Target: under 1 s warm (the file system's
//! metadata cached, as on a second run). Figures go to docs/BENCHMARKS.md ("Init").
//!
//! The repository, generated once under /tmp (kept between runs, remade when incomplete): a
//! compose monorepo (Postgres image, a FastAPI service, a Node service with a lock file, a
//! Dockerfile service) whose services hold 100,000 source files in 1,000 directories, plus a
//! `.gitignore`d build directory and a `node_modules` that init must not walk.
//!
//! Two measurements: `init::init` (walk, detect, generate, parse: everything but printing), with
//! criterion; and the release binary end to end (`cookbook init DIR --format json`, process start
//! and output included), median of 10 runs.
//!
//! Run: `cargo bench --bench init`

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use cookbook::init::{init, Options};
use criterion::{criterion_group, criterion_main, Criterion};

const FILES: usize = 100_000;
const DIRS: usize = 1_000;

fn write(path: &Path, text: &str) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
}

/// The benchmark repository; made once, reused while its completion marker is there.
fn repository() -> PathBuf {
    let root = PathBuf::from("/tmp/cookbook-bench-init-100k/shop");
    let marker = root.parent().unwrap().join("complete");
    if marker.exists() {
        return root;
    }
    let _ = fs::remove_dir_all(root.parent().unwrap());
    write(
        &root.join("compose.yaml"),
        "services:\n  db:\n    image: postgres:16.4\n    ports: [\"5432:5432\"]\n  api:\n    build: ./services/api\n    depends_on: [db]\n  web:\n    build: ./services/web\n    depends_on: [api]\n  edge:\n    build: ./services/edge\n",
    );
    write(&root.join(".gitignore"), "build/\n");
    write(
        &root.join("services/api/requirements.txt"),
        "fastapi==0.115.0\nuvicorn==0.30.6\npsycopg2-binary==2.9.9\n",
    );
    write(
        &root.join("services/api/main.py"),
        "from fastapi import FastAPI\napp = FastAPI()\n",
    );
    write(
        &root.join("services/web/package.json"),
        r#"{"scripts":{"start":"node server.js"},"dependencies":{"express":"^4.19.2","pg":"^8"}}"#,
    );
    write(&root.join("services/web/package-lock.json"), "{}");
    write(
        &root.join("services/web/server.js"),
        "require('express')().listen(3000);\n",
    );
    write(
        &root.join("services/edge/Dockerfile"),
        "FROM nginx:1.27-alpine\n",
    );
    // 100,000 source files spread over the three services, plus ignored trees.
    let services = ["services/api/app", "services/web/src", "services/edge/html"];
    let per_dir = FILES / DIRS;
    for d in 0..DIRS {
        let dir = root.join(services[d % 3]).join(format!("m{d:04}"));
        fs::create_dir_all(&dir).unwrap();
        let first = dir.join("f000.txt");
        fs::write(&first, "x").unwrap();
        for f in 1..per_dir {
            fs::hard_link(&first, dir.join(format!("f{f:03}.txt"))).unwrap();
        }
    }
    for d in 0..50 {
        write(&root.join(format!("build/out{d}/index.html")), "<html>");
        write(
            &root.join(format!("services/web/node_modules/p{d}/package.json")),
            "{}",
        );
    }
    fs::write(&marker, "").unwrap();
    root
}

fn bench(c: &mut Criterion) {
    let root = repository();
    // Warm: the first walk fills the kernel's caches.
    let g = init(&root, &Options::default()).expect("init");
    assert_eq!(g.waves.len(), 3, "{:?}", g.waves);

    let mut group = c.benchmark_group("init");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    group.bench_function("100,000 files (library)", |b| {
        b.iter(|| init(&root, &Options::default()).expect("init"))
    });
    group.finish();

    let mut runs: Vec<Duration> = (0..10)
        .map(|_| {
            let t = Instant::now();
            let out = Command::new(env!("CARGO_BIN_EXE_cookbook"))
                .args(["init", root.to_str().unwrap(), "--format", "json"])
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            t.elapsed()
        })
        .collect();
    runs.sort();
    println!(
        "cookbook init (release binary, 100,000 files, warm): median {:?}, min {:?}, max {:?} of 10",
        runs[5], runs[0], runs[9]
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
