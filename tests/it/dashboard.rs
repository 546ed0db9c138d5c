//! The agent's dashboard in a real browser: the library renders the fixture status
//! (`cookbook::ops::agent::dashboard::fixture`) to a file, headless Chromium loads it at a
//! laptop's and a phone's size, with and without JavaScript, and the tests read what a person
//! would see. Screenshots land in `target/test-artifacts/`.

use std::path::PathBuf;

use cookbook::ops::agent::dashboard::{self, fixture};
use serde_json::json;

use crate::common::browser::{save_artifact, Browser, Scripts, LAPTOP, PHONE};
use crate::common::http::{response, FakeServer};

/// Records every Content-Security-Policy violation of the pages the browser loads next, in
/// `window.__violations` (installed through DevTools, before any page script, outside the CSP).
fn record_csp_violations(browser: &Browser) {
    browser.cdp(
        "Page.addScriptToEvaluateOnNewDocument",
        json!({ "source": "window.__violations = []; document.addEventListener('securitypolicyviolation', \
                 e => window.__violations.push(e.violatedDirective + ' ' + e.blockedURI));" }),
    );
}

fn violations(browser: &Browser) -> serde_json::Value {
    browser.execute("return window.__violations;")
}

/// The page as the agent serves it, with its Content-Security-Policy as a `<meta>` (a file has
/// no headers): the browser then enforces the policy the lead's server sends.
fn page_file(dir: &tempfile::TempDir, name: &str, html: &str) -> PathBuf {
    let policy = dashboard::csp().replace("; frame-ancestors 'none'", "");
    let html = html.replacen(
        "<meta charset=\"utf-8\">",
        &format!(
            "<meta charset=\"utf-8\">\n<meta http-equiv=\"Content-Security-Policy\" content=\"{policy}\">"
        ),
        1,
    );
    let path = dir.path().join(name);
    std::fs::write(&path, html).expect("write the page");
    path
}

fn dashboard_file(dir: &tempfile::TempDir) -> PathBuf {
    let html = dashboard::render(&fixture::status(), &fixture::timeline(), fixture::now());
    page_file(dir, "dashboard.html", &html)
}

/// What the page must say, wherever and however it is read.
fn assert_content(text: &str) {
    for expected in [
        "Site edge-lyon",
        "project shop",
        "Stage staging",
        "Stage production",
        "db",
        "cache",
        "api",
        "web",
        // A rollback on the timeline, and the deploy it undid.
        "↶ rollback",
        "back to r-20261205-230112-production",
        "↶ rolled back",
        // The refusal, and why.
        "Revision 9f8e7d6c5b4a was refused",
        fixture::REFUSAL,
        "⚠ drift",
        "⚠ 3 commits behind",
        "◐ starting",
        "✗ unhealthy",
    ] {
        assert!(
            text.contains(expected),
            "`{expected}` not on the page:\n{text}"
        );
    }
}

/// The page is no wider than the viewport: what is wider scrolls inside its own box.
fn assert_no_horizontal_overflow(browser: &Browser, width: u32) {
    let sizes = browser.execute(
        "return [document.documentElement.scrollWidth, window.innerWidth, document.body.scrollWidth];",
    );
    let (scroll, inner) = (sizes[0].as_u64().unwrap(), sizes[1].as_u64().unwrap());
    assert_eq!(inner, u64::from(width), "the viewport's width: {sizes}");
    assert!(scroll <= inner, "the page overflows its viewport: {sizes}");
}

#[test]
fn the_dashboard_reads_on_a_laptop_and_a_phone() {
    let Some(browser) = Browser::start(Scripts::Enabled) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let page = dashboard_file(&dir);

    browser.set_window_size(LAPTOP);
    record_csp_violations(&browser);
    browser.open_file(&page);
    assert_content(&browser.text());
    // The page's own style and script are what its CSP allows: nothing was blocked.
    assert_eq!(violations(&browser), json!([]));
    // The inline style ran under the page's CSP (its hash is right): the page is styled.
    let background = browser.execute("return getComputedStyle(document.body).backgroundColor;");
    assert_eq!(background, json!("rgb(246, 247, 249)"));
    // The plan drawn: a box per container, a path per edge.
    let counts = browser.execute(
        "return [document.querySelectorAll('svg rect.node').length, document.querySelectorAll('svg path.edge').length];",
    );
    assert_eq!(counts, json!([4, 3]));
    // What a screen reader leans on: the language, one top heading, every header cell scoped,
    // every scrolling region named and reachable by keyboard.
    let outline = browser.execute(
        "return [document.documentElement.lang, document.querySelectorAll('h1').length, \
         document.querySelectorAll('th:not([scope])').length, \
         document.querySelectorAll('[role=region]:not([aria-labelledby]), [role=region]:not([tabindex])').length];",
    );
    assert_eq!(outline, json!(["en", 1, 0, 0]));
    let dom = browser.source();
    assert!(dom.contains("<th scope=\"col\">Health</th>"));
    save_artifact(
        "dashboard-the_dashboard_reads_on_a_laptop_and_a_phone-laptop.png",
        &browser.screenshot_full_page(),
    );

    // The control: a script the page did not bring is blocked, and seen to be.
    let injected = dashboard::render(&fixture::status(), &fixture::timeline(), fixture::now())
        .replacen(
            "</main>",
            "</main><script>document.title = 'injected';</script>",
            1,
        );
    let injected = page_file(&dir, "injected.html", &injected);
    browser.open_file(&injected);
    let blocked = browser.execute("return [document.title, window.__violations];");
    assert_eq!(blocked[1], json!(["script-src-elem inline"]), "{blocked}");
    assert_ne!(blocked[0], json!("injected"));

    browser.emulate_phone(PHONE);
    browser.open_file(&page);
    assert_content(&browser.text());
    assert_no_horizontal_overflow(&browser, PHONE.0);
    // The wide tables scroll inside their boxes.
    let scrolls = browser.execute(
        "return [...document.querySelectorAll('.scroll')].some(e => e.scrollWidth > e.clientWidth);",
    );
    assert_eq!(
        scrolls,
        json!(true),
        "a table wider than a phone scrolls in its box"
    );
    save_artifact(
        "dashboard-the_dashboard_reads_on_a_laptop_and_a_phone-phone.png",
        &browser.screenshot_full_page(),
    );
}

#[test]
fn without_javascript_the_same_content_is_there() {
    let Some(browser) = Browser::start(Scripts::Disabled) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let page = dashboard_file(&dir);
    browser.emulate_phone(PHONE);
    browser.open_file(&page);
    let text = browser.text();
    assert_content(&text);
    // Scripts are off indeed: the <noscript> note shows, beside the refresh link.
    assert!(
        text.contains("refreshes itself every 15 seconds only with JavaScript"),
        "{text}"
    );
    assert!(text.contains("Refresh"));
    assert_no_horizontal_overflow(&browser, PHONE.0);
    save_artifact(
        "dashboard-without_javascript_the_same_content_is_there-phone.png",
        &browser.screenshot_full_page(),
    );
}

#[test]
fn hostile_strings_stay_text_in_the_browser() {
    let Some(browser) = Browser::start(Scripts::Enabled) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let html = dashboard::render(
        &fixture::hostile_status(),
        &fixture::hostile_timeline(),
        fixture::now(),
    );
    browser.open_file(&page_file(&dir, "hostile.html", &html));
    let found = browser.execute(
        "return [document.title === 'pwned', document.scripts.length, document.images.length, \
         document.querySelectorAll('[onload], [onerror]').length];",
    );
    assert_eq!(found, json!([false, 1, 0, 0]), "only the page's own script");
    let text = browser.text();
    assert!(text.contains(fixture::HOSTILE), "shown as text:\n{text}");
    assert!(text.contains("<img src=x onerror="), "{text}");
}

#[test]
fn the_fleet_page_reads_on_a_phone() {
    let Some(browser) = Browser::start(Scripts::Enabled) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (report, rows) = fixture::fleet();
    let html = dashboard::render_fleet(&report, &rows, fixture::now());
    browser.emulate_phone(PHONE);
    browser.open_file(&page_file(&dir, "fleet.html", &html));
    let text = browser.text();
    for expected in [
        "Fleet",
        "edge-lyon",
        "edge-oslo",
        "staging",
        "production",
        "⚠ degraded",
        "✗ unreachable",
        "not signed by the fleet's CA",
    ] {
        assert!(
            text.contains(expected),
            "`{expected}` not on the page:\n{text}"
        );
    }
    assert_no_horizontal_overflow(&browser, PHONE.0);
    save_artifact(
        "dashboard-the_fleet_page_reads_on_a_phone-phone.png",
        &browser.screenshot_full_page(),
    );
}

/// Served over HTTP with the CSP header the agent sends, the page fetches itself again after 15
/// seconds and shows what changed, and the policy blocks nothing of it.
#[test]
fn the_page_refreshes_itself_under_its_csp() {
    let Some(browser) = Browser::start(Scripts::Enabled) else {
        return;
    };
    const FRESH: &str = "a round that ended after the page was loaded";
    let first = dashboard::render(&fixture::status(), &fixture::timeline(), fixture::now());
    let mut later = fixture::status();
    later.rounds[0].message = FRESH.to_owned();
    let later = dashboard::render(&later, &fixture::timeline(), fixture::now());
    let csp = dashboard::csp();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let server = runtime.block_on(FakeServer::start(move |n, _| {
        let headers = [
            ("Content-Type", "text/html; charset=utf-8"),
            ("Content-Security-Policy", csp.as_str()),
            ("Cache-Control", "no-store"),
        ];
        response("200 OK", &headers, if n == 0 { &first } else { &later })
    }));
    record_csp_violations(&browser);
    browser.goto(&format!("http://{}/", server.host()));
    assert!(!browser.text().contains(FRESH));
    let started = std::time::Instant::now();
    while !browser.text().contains(FRESH) {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(40),
            "the page did not refresh itself; requests: {:?}",
            server.requests()
        );
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    assert_eq!(violations(&browser), json!([]));
    assert!(server.requests()[1].starts_with("GET / HTTP/1.1"));
    assert_content(&browser.text());
}
