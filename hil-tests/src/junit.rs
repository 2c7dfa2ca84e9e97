//! JUnit XML, the format CI systems read test results in: one `<testsuite>` per rig,
//! one `<testcase>` per [`Check`], a `<failure>` with the findings when it failed.

use std::fmt::Write as _;
use std::time::Duration;

use crate::checks::Check;

/// The JUnit document for `checks` of suite `suite`, run in `elapsed`.
pub fn render(suite: &str, checks: &[Check], elapsed: Duration) -> String {
    let failures = checks.iter().filter(|c| !c.passed).count();
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        xml,
        "<testsuites tests=\"{}\" failures=\"{failures}\" time=\"{:.3}\">",
        checks.len(),
        elapsed.as_secs_f64()
    );
    let _ = writeln!(
        xml,
        "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" time=\"{:.3}\">",
        escape(suite),
        checks.len(),
        elapsed.as_secs_f64()
    );
    for check in checks {
        let _ = writeln!(
            xml,
            "    <testcase name=\"{}\" classname=\"cadence-hil.{}\">",
            escape(&check.name),
            escape(suite)
        );
        let details = escape(&check.details.join("\n"));
        if check.passed {
            let _ = writeln!(xml, "      <system-out>{details}</system-out>");
        } else {
            let _ = writeln!(
                xml,
                "      <failure message=\"{}\">{details}</failure>",
                escape(&check.summary)
            );
        }
        xml.push_str("    </testcase>\n");
    }
    xml.push_str("  </testsuite>\n</testsuites>\n");
    xml
}

/// `text` with XML's special characters escaped (for text and attribute values).
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' | '\t' => out.push(c),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(name: &str, passed: bool) -> Check {
        Check {
            name: name.into(),
            passed,
            summary: "a < b & \"c\"".into(),
            details: vec!["line 1".into(), "line <2>".into()],
        }
    }

    #[test]
    fn lists_every_check_and_escapes_text() {
        let xml = render(
            "host",
            &[check("hello", true), check("accounting", false)],
            Duration::from_millis(1500),
        );
        assert!(xml.contains("tests=\"2\" failures=\"1\""));
        assert!(xml.contains("<testcase name=\"hello\" classname=\"cadence-hil.host\">"));
        assert!(xml.contains(
            "<failure message=\"a &lt; b &amp; &quot;c&quot;\">line 1\nline &lt;2&gt;</failure>"
        ));
        assert!(xml.contains("time=\"1.500\""));
        assert_eq!(xml.matches("<testcase ").count(), 2);
    }
}
