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
            kind: Some("static-site".to_owned()),
            run_command: Some(
                ["httpd", "-f", "-p", "8080", "-h", "/app"]
                    .map(str::to_owned)
                    .to_vec(),
            ),
            ..App::new("static", source_of(dir))
        }),
    );
    s.why(
        join(dir, "index.html"),
        "a static site (index.html, no build): served by busybox httpd on port 8080",
    );
    s.ports.insert("8080".into());
    s
}
