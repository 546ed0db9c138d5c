//! Validate and plan a generated 10,000-container cookbook: `load::parse` does it all
//! (UTF-8, JSON syntax, span index and duplicate keys, schema, model, plan with its cycle check,
//! and the build_order check). Target: well under 0.3 s. Figures go to docs/BENCHMARKS.md.
//!
//! Run: `cargo bench --bench plan`

use std::fmt::Write;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

/// SplitMix64: the same cookbook on every run and machine.
struct Mix(u64);

impl Mix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// A cookbook of `containers` containers that looks like a big real one:
/// - a third Dockerfile-based, the rest generated from 1-3 of 1,000 applications;
/// - every 8th generated container is built FROM an earlier generated one (`container:` base);
/// - each container depends on 0-3 earlier ones, and 1 in 4 also on one of 20 shared services
///   (fan-in: each shared service is needed by ~125 containers);
/// - a full `build_order` the graph agrees with, and 50 sites of 40 containers each.
///
/// Edges only point to earlier containers, so the graph is acyclic and deep chains occur.
fn generate(containers: usize) -> String {
    let mut mix = Mix(0x00C0_0C0B_00C0);
    let name = |i: usize| format!("svc-{i:05}");
    let apps = 1_000;
    let mut s = String::with_capacity(containers * 400);
    s.push_str("{\n  \"manifest_version\": \"1.0\",\n  \"project\": { \"name\": \"big\", \"repository\": \"https://git.example.org/big.git\" },\n  \"applications\": {\n");
    for a in 0..apps {
        let _ = writeln!(
            s,
            "    \"app-{a:04}\": {{ \"language\": \"python\", \"source\": \"apps/app-{a:04}\", \"build_commands\": [\"pip install -r requirements.txt\"], {}\"env\": {{ \"APP\": \"{a}\" }} }}{}",
            // A container takes 1-3 consecutive applications and runs one of them: one in three
            // has a run_command.
            if a % 3 == 0 { format!("\"run_command\": [\"python\", \"-m\", \"app{a}\"], ") } else { String::new() },
            if a + 1 < apps { "," } else { "" }
        );
    }
    s.push_str("  },\n  \"containers\": {\n");
    let mut generated: Vec<usize> = Vec::new();
    for i in 0..containers {
        let mut deps: Vec<usize> = Vec::new();
        if i > 0 {
            for _ in 0..mix.below(4) {
                deps.push(mix.below(i));
            }
        }
        if i >= 20 && mix.below(4) == 0 {
            deps.push(mix.below(20));
        }
        deps.sort();
        deps.dedup();
        let deps: Vec<String> = deps.iter().map(|&d| format!("\"{}\"", name(d))).collect();
        let _ = write!(s, "    \"{}\": {{ ", name(i));
        if i % 3 == 0 {
            let _ = write!(
                s,
                "\"dockerfile\": \"images/{0}/Dockerfile\", \"context\": \"images/{0}\", \"build_args\": {{ \"N\": \"{i}\" }}",
                name(i)
            );
        } else {
            let base = if generated.len() > 8 && i % 8 == 1 {
                format!("container:{}", name(generated[mix.below(generated.len())]))
            } else {
                "debian:12-slim".to_owned()
            };
            let napps = 1 + mix.below(3);
            let first = mix.below(apps - napps);
            let list: Vec<String> = (first..first + napps)
                .map(|a| format!("\"app-{a:04}\""))
                .collect();
            let _ = write!(
                s,
                "\"base_image\": \"{base}\", \"applications\": [{}], \"ports\": [{}, \"{}/udp\"], \"env\": {{ \"ID\": \"{i}\" }}, \"labels\": {{ \"tier\": \"t{}\" }}",
                list.join(", "),
                8000 + i % 1000,
                9000 + i % 1000,
                i % 5
            );
            generated.push(i);
        }
        if !deps.is_empty() {
            let _ = write!(s, ", \"depends_on\": [{}]", deps.join(", "));
        }
        let _ = writeln!(
            s,
            ", \"ci_name\": \"big-{}\" }}{}",
            name(i),
            if i + 1 < containers { "," } else { "" }
        );
    }
    s.push_str("  },\n  \"packaging\": { \"registry\": \"127.0.0.1:5000/big\", \"tagging\": \"semver\", \"version\": \"1.2.3\", \"build_order\": [");
    let order: Vec<String> = (0..containers)
        .map(|i| format!("\"{}\"", name(i)))
        .collect();
    s.push_str(&order.join(", "));
    s.push_str("] },\n  \"federation\": { \"sites\": {\n");
    let sites = 50;
    for site in 0..sites {
        let mut members: Vec<usize> = (0..40).map(|_| mix.below(containers)).collect();
        members.sort();
        members.dedup();
        let members: Vec<String> = members
            .iter()
            .map(|&m| format!("\"{}\"", name(m)))
            .collect();
        let _ = writeln!(
            s,
            "    \"site-{site:02}\": {{ \"containers\": [{}] }}{}",
            members.join(", "),
            if site + 1 < sites { "," } else { "" }
        );
    }
    s.push_str("  } }\n}\n");
    s
}

/// This thread's CPU time (Linux): on a shared machine, wall time also counts the waits for a
/// core, so both are reported.
fn thread_cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let nanos: u64 = stat.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(nanos))
}

/// Median wall and CPU time of `runs` calls, printed beside criterion's own (wall-time) figures.
fn report_median(label: &str, runs: usize, mut f: impl FnMut()) {
    let mut wall = Vec::with_capacity(runs);
    let mut cpu = Vec::with_capacity(runs);
    for _ in 0..runs {
        let (c0, t0) = (thread_cpu_time(), Instant::now());
        f();
        wall.push(t0.elapsed());
        if let (Some(c0), Some(c1)) = (c0, thread_cpu_time()) {
            cpu.push(c1 - c0);
        }
    }
    wall.sort();
    cpu.sort();
    let cpu = cpu
        .get(cpu.len() / 2)
        .map_or("n/a".to_owned(), |c| format!("{c:.1?}"));
    eprintln!(
        "{label}: median of {runs}: wall {:.1?}, CPU {cpu}",
        wall[runs / 2]
    );
}

fn validate_and_plan(c: &mut Criterion) {
    let text = generate(10_000);
    // The generated cookbook must be valid, or the benchmark would time an early refusal.
    let cookbook::load::Parsed { cookbook, plan } = cookbook::load::parse(text.as_bytes())
        .unwrap_or_else(|d| {
            panic!(
                "the generated cookbook is invalid: {:?}",
                &d[..d.len().min(5)]
            )
        });
    assert_eq!(cookbook.containers.len(), 10_000);
    eprintln!(
        "generated cookbook: {} bytes, {} containers in {} waves, {} sites",
        text.len(),
        cookbook.containers.len(),
        plan.waves().len(),
        cookbook.sites.len()
    );

    report_median("load::parse, 10,000 containers", 15, || {
        black_box(cookbook::load::parse(black_box(text.as_bytes())).expect("valid"));
    });

    let mut group = c.benchmark_group("validate and plan");
    group.sample_size(20);
    group.throughput(Throughput::Bytes(text.len() as u64));
    group.bench_function("load::parse, 10,000 containers", |b| {
        b.iter(|| cookbook::load::parse(black_box(text.as_bytes())).expect("valid"))
    });
    // The failure path: the same cookbook with one dangling reference pays for the span index
    // that locates it.
    let broken = text.replacen("\"depends_on\": [\"", "\"depends_on\": [\"missing\", \"", 1);
    let problems = cookbook::load::parse(broken.as_bytes()).expect_err("one dangling depends_on");
    assert_eq!(problems.len(), 1, "{problems:?}");
    report_median("load::parse, 10,000 containers, one problem", 15, || {
        black_box(cookbook::load::parse(black_box(broken.as_bytes())).expect_err("invalid"));
    });
    group.bench_function("load::parse, 10,000 containers, one problem", |b| {
        b.iter(|| cookbook::load::parse(black_box(broken.as_bytes())).expect_err("invalid"))
    });
    group.finish();
}

criterion_group!(benches, validate_and_plan);
criterion_main!(benches);
