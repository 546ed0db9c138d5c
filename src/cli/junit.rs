//! `verify --junit FILE`: the verification as a JUnit XML test report, the one format every CI
//! renders (GitLab's `artifacts:reports:junit`, Jenkins, GitHub's test-report actions).
//!
//! There is no formal JUnit standard; this writes the subset those readers agree on (Jenkins'
//! `junit-10.xsd`): `<testsuites>` with one `<testsuite name tests failures errors skipped
//! time>` of `<testcase classname name time>`, each holding nothing (passed), a `<failure
//! message type>` with the reasons as text, or a `<skipped message>`. One test case per
//! container (`classname`) and check (`name`: input hash, registry, rebuild, attestations);
//! the checks not asked for (`--registry`, `--rebuild`, `--attestations`) are left out.
//!
//! quick-xml writes and escapes; what XML 1.0 cannot carry at all (control characters other
//! than tab, CR and LF, which a file name may hold) is replaced by U+FFFD first, since no
//! escape makes it legal.

use std::time::Duration;

use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};
use quick_xml::Writer;

use crate::ops::verify::{Check, VerifyReport};

/// How one test case ended.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Passed,
    /// The reasons of this check, most specific first.
    Failed(Vec<String>),
    Skipped(&'static str),
}

/// The report as JUnit XML. `time`: how long the verification took (the test cases share it:
/// the checks run together, not one by one).
pub fn document(report: &VerifyReport, time: Duration) -> Vec<u8> {
    let checks: Vec<Check> = Check::ALL
        .into_iter()
        .filter(|check| match check {
            Check::InputHash => true,
            Check::Registry => report.registry_checked,
            Check::Rebuild => report.rebuild_checked,
            Check::Attestations => report.attestations_checked,
        })
        .collect();
    let mut cases = Vec::new();
    for (name, verdict) in &report.containers {
        for &check in &checks {
            let reasons: Vec<String> = (verdict.reasons.iter())
                .filter(|r| r.check() == check)
                .map(|r| r.to_string())
                .collect();
            let outcome = if !reasons.is_empty() {
                Outcome::Failed(reasons)
            } else {
                match check {
                    Check::InputHash => Outcome::Passed,
                    // Nothing to look up without a locked image: the input hash case says why.
                    Check::Registry | Check::Attestations if verdict.digest.is_none() => {
                        Outcome::Skipped("no published image in the lock")
                    }
                    Check::Rebuild if verdict.rebuilt_digest.is_none() => {
                        Outcome::Skipped("not rebuilt")
                    }
                    _ => Outcome::Passed,
                }
            };
            cases.push((name.as_str(), check, outcome));
        }
    }
    let count = |f: fn(&Outcome) -> bool| cases.iter().filter(|c| f(&c.2)).count().to_string();
    let tests = cases.len().to_string();
    let failures = count(|o| matches!(o, Outcome::Failed(_)));
    let skipped = count(|o| matches!(o, Outcome::Skipped(_)));
    let seconds = format!("{:.3}", time.as_secs_f64());
    let kind = if report.locked { "stale" } else { "mismatch" };

    let mut w = Writer::new_with_indent(Vec::new(), b' ', 2);
    let totals = [
        ("tests", tests.as_str()),
        ("failures", failures.as_str()),
        ("errors", "0"),
        ("skipped", skipped.as_str()),
        ("time", seconds.as_str()),
    ];
    let write = |w: &mut Writer<Vec<u8>>, event: Event<'_>| {
        w.write_event(event)
            .expect("writing into memory cannot fail");
    };
    write(
        &mut w,
        Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)),
    );
    let suites = BytesStart::new("testsuites")
        .with_attributes([("name", "cookbook verify")].into_iter().chain(totals));
    write(&mut w, Event::Start(suites));
    let suite = BytesStart::new("testsuite")
        .with_attributes([("name", "cookbook verify")].into_iter().chain(totals));
    write(&mut w, Event::Start(suite));
    for (container, check, outcome) in &cases {
        let container = legal(container);
        let case = BytesStart::new("testcase").with_attributes([
            ("classname", container.as_str()),
            ("name", check.name()),
            ("time", "0"),
        ]);
        match outcome {
            Outcome::Passed => write(&mut w, Event::Empty(case)),
            Outcome::Skipped(why) => {
                write(&mut w, Event::Start(case));
                let skipped = BytesStart::new("skipped").with_attributes([("message", *why)]);
                write(&mut w, Event::Empty(skipped));
                write(&mut w, Event::End(BytesEnd::new("testcase")));
            }
            Outcome::Failed(reasons) => {
                write(&mut w, Event::Start(case));
                // The attribute is one line (a parser turns a raw newline in it into a space);
                // the text has every reason, one a line.
                let first = legal(&reasons[0].replace(['\n', '\r'], " "));
                let failure = BytesStart::new("failure")
                    .with_attributes([("message", first.as_str()), ("type", kind)]);
                write(&mut w, Event::Start(failure));
                let text = legal(&reasons.join("\n"));
                write(&mut w, Event::Text(BytesText::new(&text)));
                write(&mut w, Event::End(BytesEnd::new("failure")));
                write(&mut w, Event::End(BytesEnd::new("testcase")));
            }
        }
    }
    write(&mut w, Event::End(BytesEnd::new("testsuite")));
    write(&mut w, Event::End(BytesEnd::new("testsuites")));
    let mut bytes = w.into_inner();
    bytes.push(b'\n');
    bytes
}

/// `s` with every character XML 1.0 cannot hold (its `Char` production) replaced by U+FFFD.
fn legal(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '\t' | '\n' | '\r' => c,
            '\u{FFFE}' | '\u{FFFF}' => char::REPLACEMENT_CHARACTER,
            c if c < ' ' => char::REPLACEMENT_CHARACTER,
            c => c,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn characters_xml_cannot_hold_are_replaced_and_the_rest_kept() {
        assert_eq!(legal("a\u{1}b\tc\u{FFFF}é"), "a\u{FFFD}b\tc\u{FFFD}é");
    }
}
