//! Static sites: a directory with `index.html` that neither holds nor lies inside another
//! service, served as it is by busybox httpd.

use super::{join, source_of, within, App, Scan, Service, ServiceKind};

pub(super) fn detect(scan: &mut Scan) -> Vec<Service> {
    let taken = &scan.taken;
    let mut roots: Vec<&str> = Vec::new();
    for dir in scan.index.dirs_with("index.html") {
        if taken.iter().any(|t| within(dir, t)) || roots.iter().any(|r| within(dir, r)) {
            continue;
        }
        // A directory that contains another service is a project, not a site.
        if taken.iter().any(|t| within(t, dir)) {
            continue;
        }
        roots.push(dir);
    }
    roots.into_iter().map(|dir| site(scan, dir)).collect()
}

fn site(scan: &Scan, dir: &str) -> Service {
    let mut s = Service::new(
        scan.dir_name(dir),
        dir,
        ServiceKind::Generated(App {
            language: "static",
            kind: Some("static-site".to_owned()),
            source: source_of(dir),
            build_commands: vec![],
            run_command: Some(vec![
                "httpd".into(),
                "-f".into(),
                "-p".into(),
                "8080".into(),
                "-h".into(),
                "{app_dir}".into(),
            ]),
            dependencies: vec![],
            version: None,
        }),
    );
    s.why(
        join(dir, "index.html"),
        "a static site (index.html, no build): served by busybox httpd on port 8080",
    );
    s.ports.insert("8080".into());
    s
}
