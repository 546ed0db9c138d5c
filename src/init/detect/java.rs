//! Java: the outermost directory with `pom.xml`, `build.gradle` or `build.gradle.kts`.
//!
//! Maven builds the jar its `pom.xml` names (`target/<artifactId>-<version>.jar`); Gradle's jar
//! name is not read, so its run command globs `build/libs/*.jar` through a shell. Spring Boot
//! listens on 8080 unless `application.properties` sets `server.port`.

use std::collections::BTreeSet;
use std::sync::LazyLock;

use regex::Regex;

use super::{
    add_client, join, port_in, source_of, within, App, Backing, Scan, Service, ServiceKind,
};

static POM_STRIP: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?s)<parent>.*?</parent>|<dependencies>.*|<build>.*").expect("regex")
});
static POM_ARTIFACT: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"<artifactId>\s*([^<\s]+)\s*</artifactId>").expect("regex"));
static POM_VERSION: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"<version>\s*([^<\s]+)\s*</version>").expect("regex"));
static JAVA_PORT: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?m)^\s*server\.port\s*[=:]\s*(\d{2,5})\s*$").expect("regex"));

pub(super) fn detect(scan: &mut Scan) -> Vec<Service> {
    let mut dirs: BTreeSet<&str> = BTreeSet::new();
    for m in ["pom.xml", "build.gradle", "build.gradle.kts"] {
        dirs.extend(scan.index.dirs_with(m));
    }
    let roots: Vec<&str> = dirs
        .iter()
        .copied()
        .filter(|d| !dirs.iter().any(|o| o != d && within(d, o)))
        .collect();
    let mut out = Vec::new();
    for dir in roots {
        if scan.taken.contains(dir) {
            scan.second_language(dir, "Java");
            continue;
        }
        let marker = if scan.index.has(dir, "pom.xml") {
            join(dir, "pom.xml")
        } else if scan.index.has(dir, "build.gradle") {
            join(dir, "build.gradle")
        } else {
            join(dir, "build.gradle.kts")
        };
        match scan.read_text(&marker) {
            Ok(text) => out.push(service(scan, dir, &marker, &text)),
            Err(e) => scan.note(format!("{e}: not used as a Java project")),
        }
    }
    out
}

fn service(scan: &mut Scan, dir: &str, marker: &str, text: &str) -> Service {
    let mut s = Service::new(
        scan.dir_name(dir),
        dir,
        ServiceKind::Generated(App::new("java", source_of(dir))),
    );
    let (build, run) = if scan.index.has(dir, "pom.xml") {
        maven(scan, dir, marker, text, &mut s)
    } else {
        gradle(scan, dir, marker, &mut s)
    };
    let spring = text.contains("spring-boot");
    port(scan, dir, marker, spring, &mut s);
    if spring {
        s.why(marker, "type spring-boot");
    }
    for (needle, b) in [
        ("org.postgresql", Backing::Postgres),
        ("jedis", Backing::Redis),
        ("lettuce", Backing::Redis),
        ("mongodb-driver", Backing::Mongo),
        ("mysql-connector", Backing::Mysql),
    ] {
        if text.contains(needle) {
            add_client(&mut s, marker, needle, Some(b));
        }
    }
    s.kind = ServiceKind::Generated(App {
        language: "java",
        kind: spring.then(|| "spring-boot".to_owned()),
        source: source_of(dir),
        build_commands: vec![build],
        run_command: Some(run),
        dependencies: vec![],
        version: None,
    });
    s
}

/// Maven's build command, and the run command of the jar the pom names.
fn maven(
    scan: &mut Scan,
    dir: &str,
    marker: &str,
    text: &str,
    s: &mut Service,
) -> (String, Vec<String>) {
    let without_parent = POM_STRIP.replace_all(text, "");
    let tag = |re: &Regex| re.captures(&without_parent).map(|c| c[1].to_owned());
    let tool = if scan.index.has(dir, "mvnw") {
        "./mvnw"
    } else {
        "mvn"
    };
    let run = match (tag(&POM_ARTIFACT), tag(&POM_VERSION)) {
        (Some(a), Some(v)) if !v.contains("${") => {
            s.why(marker, format!("artifact {a}-{v}.jar"));
            vec!["java".into(), "-jar".into(), format!("target/{a}-{v}.jar")]
        }
        _ => {
            scan.note(format!("{marker}: the jar's name could not be read: run_command uses target/*.jar through a shell"));
            vec![
                "/bin/sh".into(),
                "-c".into(),
                "exec java -jar target/*.jar".into(),
            ]
        }
    };
    s.why(
        marker,
        format!("language java (Maven): {tool} -B -DskipTests package"),
    );
    (format!("{tool} -B -DskipTests package"), run)
}

/// Gradle's build command, and a run command that globs the jar.
fn gradle(scan: &mut Scan, dir: &str, marker: &str, s: &mut Service) -> (String, Vec<String>) {
    let tool = if scan.index.has(dir, "gradlew") {
        "./gradlew"
    } else {
        "gradle"
    };
    s.why(
        marker,
        format!("language java (Gradle): {tool} build -x test"),
    );
    scan.note(format!("{marker}: Gradle's jar name is not read by init: run_command uses build/libs/*.jar through a shell"));
    (
        format!("{tool} build -x test --no-daemon"),
        vec![
            "/bin/sh".into(),
            "-c".into(),
            "exec java -jar build/libs/*.jar".into(),
        ],
    )
}

/// `server.port` of `application.properties`, else Spring Boot's default.
fn port(scan: &Scan, dir: &str, marker: &str, spring: bool, s: &mut Service) {
    let props = join(dir, "src/main/resources/application.properties");
    let port = if scan
        .index
        .has(&join(dir, "src/main/resources"), "application.properties")
    {
        scan.read_text(&props)
            .ok()
            .and_then(|t| port_in(&JAVA_PORT, &t))
            .inspect(|p| {
                s.why(&props, format!("port {p} (server.port)"));
            })
    } else {
        None
    };
    match (port, spring) {
        (Some(p), _) => {
            s.ports.insert(p);
        }
        (None, true) => {
            s.why(marker, "port 8080 (Spring Boot's default)");
            s.ports.insert("8080".into());
        }
        _ => {}
    }
}
