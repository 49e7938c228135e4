//! JUnit XML, as CI systems read it: one suite of test cases, each passed
//! or failed with a message. It follows the common JUnit schemas (Ant's,
//! as Jenkins, GitLab and GitHub's test reporters read it): every
//! attribute they require is present. A run's gate and the plugin
//! conformance kit both write it.

use std::fmt::Write as _;

/// A suite of test cases.
#[derive(Debug, Clone, Default)]
pub struct Suite {
    /// The suite's name.
    pub name: String,
    /// When it ran, Unix seconds.
    pub started_unix_s: i64,
    /// How long it took, seconds.
    pub time_s: f64,
    /// `name = value` facts about the suite.
    pub properties: Vec<(String, String)>,
    /// The cases.
    pub cases: Vec<Case>,
    /// The suite's output (a console table, a report).
    pub output: String,
}

/// One test case.
#[derive(Debug, Clone, Default)]
pub struct Case {
    /// What was checked.
    pub name: String,
    /// Its class: where it belongs (`barrage.run`, `conformance.codec`).
    pub classname: String,
    /// Why it failed, with a type naming the kind of failure; none: passed.
    pub failure: Option<(String, String)>,
}

impl Suite {
    /// The XML document.
    pub fn xml(&self) -> String {
        let failures = self.cases.iter().filter(|c| c.failure.is_some()).count();
        let (y, mo, d, h, mi, s) = barrage_core::clock::utc(self.started_unix_s);
        let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n");
        let _ = writeln!(
            x,
            "  <testsuite name=\"{}\" package=\"{}\" id=\"0\" \
             timestamp=\"{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}\" hostname=\"{}\" tests=\"{}\" \
             failures=\"{failures}\" errors=\"0\" time=\"{:.3}\">",
            escape(&self.name),
            escape(&self.name),
            escape(hostname().as_str()),
            self.cases.len(),
            self.time_s,
        );
        x.push_str("    <properties>\n");
        for (name, value) in &self.properties {
            let _ = writeln!(
                x,
                "      <property name=\"{}\" value=\"{}\"/>",
                escape(name),
                escape(value)
            );
        }
        x.push_str("    </properties>\n");
        for c in &self.cases {
            let open = format!(
                "    <testcase name=\"{}\" classname=\"{}\" time=\"0\"",
                escape(&c.name),
                escape(&c.classname)
            );
            match &c.failure {
                None => {
                    let _ = writeln!(x, "{open}/>");
                }
                Some((why, kind)) => {
                    let _ = writeln!(
                        x,
                        "{open}>\n      <failure message=\"{}\" type=\"{}\">{}</failure>\n    </testcase>",
                        escape(why),
                        escape(kind),
                        escape_text(why)
                    );
                }
            }
        }
        let _ = writeln!(x, "    <system-out>{}</system-out>", escape_text(&self.output));
        x.push_str("    <system-err></system-err>\n  </testsuite>\n</testsuites>\n");
        x
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// Text fit for an XML attribute (where a parser would fold a newline into
/// a space, so it is escaped). Characters XML 1.0 cannot hold at all (most
/// control characters) become U+FFFD.
fn escape(s: &str) -> String {
    escape_text(s).replace('\n', "&#10;")
}

/// Text fit for an XML element.
fn escape_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\r' | '\n' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_counted_and_text_escaped() {
        let suite = Suite {
            name: "s".into(),
            cases: vec![
                Case {
                    name: "a < b".into(),
                    classname: "c".into(),
                    failure: None,
                },
                Case {
                    name: "b".into(),
                    classname: "c".into(),
                    failure: Some(("said \"no\"\nthen\u{1}".into(), "Kind".into())),
                },
            ],
            ..Suite::default()
        };
        let x = suite.xml();
        assert!(x.contains("tests=\"2\" failures=\"1\""), "{x}");
        assert!(x.contains("name=\"a &lt; b\""), "{x}");
        assert!(
            x.contains("message=\"said &quot;no&quot;&#10;then\u{FFFD}\" type=\"Kind\""),
            "{x}"
        );
    }
}
