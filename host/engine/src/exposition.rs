//! Reading the Prometheus text exposition format, one sample line at a
//! time: what a server's `/metrics` says (`server_metrics`) and what
//! Barrage's own registry says when it is sent on by remote write
//! (`export`).
//!
//! Hand-written: `prometheus-parse` refuses the colons of recording-rule
//! style names that vLLM and SGLang use (`vllm:num_requests_waiting`), and
//! the other parser on crates.io is LGPL.

/// One sample line: its metric name, its labels as written between the
/// braces (checked, unescaped only on demand: most readers sum over them),
/// and its value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Line<'a> {
    /// The metric name.
    pub name: &'a str,
    /// What is between `{` and `}`, empty without labels.
    pub labels: &'a str,
    /// The value.
    pub value: f64,
}

impl<'a> Line<'a> {
    /// Read `line`; `None` for blank and comment lines.
    pub fn parse(line: &'a str) -> Result<Option<Line<'a>>, &'static str> {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            return Ok(None);
        }
        let name_end = line
            .char_indices()
            .find(|&(i, c)| !(c.is_ascii_alphabetic() || c == '_' || c == ':' || (i > 0 && c.is_ascii_digit())))
            .map_or(line.len(), |(i, _)| i);
        if name_end == 0 {
            return Err("no metric name");
        }
        let (name, mut rest) = line.split_at(name_end);
        let mut labels = "";
        if let Some(inner) = rest.strip_prefix('{') {
            let end = label_block_end(inner).ok_or("labels not closed")?;
            labels = &inner[..end];
            rest = &inner[end + 1..];
        }
        let mut fields = rest.split_whitespace();
        let value = match fields.next().ok_or("no value")? {
            "+Inf" | "Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            "NaN" => f64::NAN,
            v => v.parse().map_err(|_| "the value is not a number")?,
        };
        if let Some(ts) = fields.next() {
            ts.parse::<i64>().map_err(|_| "the timestamp is not a whole number")?;
        }
        if fields.next().is_some() {
            return Err("more than a value and a timestamp");
        }
        Ok(Some(Line { name, labels, value }))
    }

    /// The labels as (name, value) pairs, values unescaped.
    pub fn label_pairs(&self) -> Result<Vec<(String, String)>, &'static str> {
        let mut pairs = Vec::new();
        let mut rest = self.labels.trim();
        while !rest.is_empty() {
            let (name, after) = rest.split_once('=').ok_or("a label without `=`")?;
            let after = after.trim_start().strip_prefix('"').ok_or("a label value not quoted")?;
            let mut value = String::new();
            let mut chars = after.char_indices();
            let end = loop {
                match chars.next().ok_or("a label value not closed")? {
                    (_, '\\') => match chars.next().ok_or("a label value not closed")?.1 {
                        'n' => value.push('\n'),
                        c => value.push(c),
                    },
                    (i, '"') => break i,
                    (_, c) => value.push(c),
                }
            };
            pairs.push((name.trim().to_string(), value));
            rest = after[end + 1..].trim_start();
            rest = rest.strip_prefix(',').unwrap_or(rest).trim_start();
        }
        Ok(pairs)
    }
}

/// Where the label block that `inner` starts ends (the index of its `}`),
/// minding quoted values that may hold `}` and escaped `"`.
fn label_block_end(inner: &str) -> Option<usize> {
    let (mut quoted, mut escaped) = (false, false);
    for (i, c) in inner.char_indices() {
        match (quoted, escaped, c) {
            (true, true, _) => escaped = false,
            (true, false, '\\') => escaped = true,
            (_, false, '"') => quoted = !quoted,
            (false, _, '}') => return Some(i),
            _ => {}
        }
    }
    None
}

/// Every sample line of `body`, or the first line that is not the text
/// format, by number (`line 3 is not Prometheus text format (…): `…``).
pub fn lines(body: &str) -> Result<Vec<Line<'_>>, String> {
    let mut out = Vec::new();
    for (n, line) in body.lines().enumerate() {
        match Line::parse(line) {
            Ok(Some(l)) => out.push(l),
            Ok(None) => {}
            Err(why) => {
                let line: String = line.chars().take(80).collect();
                return Err(format!(
                    "line {} is not Prometheus text format ({why}): `{line}`",
                    n + 1
                ));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_kept_as_written_and_unescaped_on_demand() {
        let l = Line::parse(r#"x{a="}\"",b="two\\n\nlines" , c="" } 1 1700000000000"#)
            .unwrap()
            .unwrap();
        assert_eq!((l.name, l.value), ("x", 1.0));
        assert_eq!(
            l.label_pairs().unwrap(),
            [
                ("a".to_string(), "}\"".to_string()),
                ("b".to_string(), "two\\n\nlines".to_string()),
                ("c".to_string(), String::new())
            ]
        );
        let bare = Line::parse("up 0").unwrap().unwrap();
        assert!(bare.labels.is_empty() && bare.label_pairs().unwrap().is_empty());
        assert!(Line::parse("# TYPE up gauge").unwrap().is_none());
        let bad = Line { labels: "a=1", ..bare };
        assert_eq!(bad.label_pairs().unwrap_err(), "a label value not quoted");
    }
}
