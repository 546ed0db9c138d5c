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

/// How a Java project builds: its manifests, the command that fetches its dependencies from them,
/// its build command, and the jar it leaves (a path or a shell glob, relative to the project).
struct Build {
    manifests: Vec<String>,
    fetch: String,
    build: String,
    jar: String,
}

fn service(scan: &mut Scan, dir: &str, marker: &str, text: &str) -> Service {
    let mut s = Service::new(
        scan.dir_name(dir),
        dir,
        ServiceKind::Generated(App::new("java", source_of(dir))),
    );
    let b = if scan.index.has(dir, "pom.xml") {
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
    s.why(
        marker,
        format!("{} copied first: `{}` fetches the dependencies in a layer that caches; a build stage builds the jar, the runtime stage (a JRE) holds only the jar", b.manifests.join(", "), b.fetch),
    );
    s.kind = ServiceKind::Generated(App {
        kind: spring.then(|| "spring-boot".to_owned()),
        manifests: b.manifests,
        install: vec![b.fetch],
        build_commands: vec![
            b.build,
            format!("mkdir -p /out && cp {} /out/app.jar", b.jar),
        ],
        run_command: Some(vec!["java".into(), "-jar".into(), "app.jar".into()]),
        artifact: Some("/out/app.jar".into()),
        ..App::new("java", source_of(dir))
    });
    s
}

/// The files of `candidates` present in `dir` (a trailing `/` names a directory).
fn present(scan: &Scan, dir: &str, candidates: &[&str]) -> Vec<String> {
    candidates
        .iter()
        .filter(|c| match c.strip_suffix('/') {
            Some(sub) => scan.index.dirs.keys().any(|d| within(d, &join(dir, sub))),
            None => scan.index.has(dir, c),
        })
        .map(|c| c.to_string())
        .collect()
}

/// Maven's build, and the jar the pom names.
fn maven(scan: &mut Scan, dir: &str, marker: &str, text: &str, s: &mut Service) -> Build {
    let without_parent = POM_STRIP.replace_all(text, "");
    let tag = |re: &Regex| re.captures(&without_parent).map(|c| c[1].to_owned());
    let tool = if scan.index.has(dir, "mvnw") {
        "./mvnw"
    } else {
        "mvn"
    };
    let jar = match (tag(&POM_ARTIFACT), tag(&POM_VERSION)) {
        (Some(a), Some(v)) if !v.contains("${") => {
            s.why(marker, format!("artifact {a}-{v}.jar"));
            format!("target/{a}-{v}.jar")
        }
        _ => {
            scan.note(format!("{marker}: the jar's name could not be read: the build copies target/*.jar, which must match one file"));
            "target/*.jar".to_owned()
        }
    };
    s.why(
        marker,
        format!("language java (Maven): {tool} -B -DskipTests package"),
    );
    Build {
        manifests: present(scan, dir, &["pom.xml", "mvnw", ".mvn/"]),
        fetch: format!("{tool} -B -q dependency:go-offline"),
        build: format!("{tool} -B -DskipTests package"),
        jar,
    }
}

/// Gradle's build; the jar is the first of `build/libs` that is not the `-plain` one.
fn gradle(scan: &mut Scan, dir: &str, marker: &str, s: &mut Service) -> Build {
    let tool = if scan.index.has(dir, "gradlew") {
        "./gradlew"
    } else {
        "gradle"
    };
    s.why(
        marker,
        format!("language java (Gradle): {tool} build -x test"),
    );
    scan.note(format!("{marker}: Gradle's jar name is not read by init: the build copies the first jar of build/libs that is not `-plain`"));
    Build {
        manifests: present(
            scan,
            dir,
            &[
                "build.gradle",
                "build.gradle.kts",
                "settings.gradle",
                "settings.gradle.kts",
                "gradle.properties",
                "gradlew",
                "gradle/",
            ],
        ),
        fetch: format!("{tool} dependencies --no-daemon -q"),
        build: format!("{tool} build -x test --no-daemon"),
        jar: "\"$(ls build/libs/*.jar | grep -v -- '-plain.jar$' | head -n 1)\"".to_owned(),
    }
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
