//! A strict reader of the Prometheus text exposition format (version 0.0.4), for `GET /metrics`.
//!
//! Like the SSE parser, it is written here rather than taken from a crate, because its point is
//! to refuse what a lenient scraper would let pass: lines that are not LF-terminated, `# TYPE`
//! after a family's samples or twice, a family's samples split into two groups, a series given
//! twice, bad escapes, label names reserved to Prometheus (`__…`), counters below zero, and
//! histograms whose buckets are not cumulative or lack `+Inf` = `_count`.

use std::collections::{BTreeMap, HashSet};

/// One sample line: `name{labels} value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    /// In the order written.
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl Sample {
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(label, _)| label == name)
            .map(|(_, value)| value.as_str())
    }
}

/// A metric family: its `# TYPE` (`untyped` without one) and its samples.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Family {
    pub kind: String,
    pub help: Option<String>,
    pub samples: Vec<Sample>,
}

/// A whole exposition, by family name.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Exposition {
    pub families: BTreeMap<String, Family>,
}

impl Exposition {
    /// The sum of the samples `name` whose labels include every one of `labels` (a server may
    /// split a series by labels of its own); `None` when there is none.
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.samples()
            .filter(|sample| sample.name == name)
            .filter(|sample| labels.iter().all(|(k, v)| sample.label(k) == Some(*v)))
            .map(|sample| sample.value)
            .reduce(|sum, value| sum + value)
    }

    /// Every sample of every family.
    pub fn samples(&self) -> impl Iterator<Item = &Sample> {
        self.families.values().flat_map(|family| &family.samples)
    }
}

/// The family a sample name belongs to, given the types declared so far: `x_bucket`, `x_sum`
/// and `x_count` belong to histogram `x`; `x_sum` and `x_count` to summary `x`.
fn family_of<'a>(name: &'a str, kinds: &BTreeMap<String, Family>) -> &'a str {
    for (suffix, kinds_with_it) in [
        ("_bucket", &["histogram"][..]),
        ("_sum", &["histogram", "summary"][..]),
        ("_count", &["histogram", "summary"][..]),
    ] {
        if let Some(base) = name.strip_suffix(suffix)
            && kinds
                .get(base)
                .is_some_and(|family| kinds_with_it.contains(&family.kind.as_str()))
        {
            return base;
        }
    }
    name
}

/// Reads an exposition strictly; the error names the line and what is wrong with it.
pub fn parse(text: &str) -> Result<Exposition, String> {
    if text.is_empty() {
        return Err("the exposition is empty".into());
    }
    if !text.ends_with('\n') {
        return Err("the last line does not end with LF".into());
    }
    let mut exposition = Exposition::default();
    let mut closed: HashSet<String> = HashSet::new();
    let mut current: Option<String> = None;
    let mut series: HashSet<String> = HashSet::new();
    for (index, line) in text[..text.len() - 1].split('\n').enumerate() {
        let at = |why: String| format!("line {}: {why}: {line:?}", index + 1);
        if line.contains('\r') {
            return Err(at("a CR in the line (lines end with LF alone)".into()));
        }
        if line.trim().is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            let words: Vec<&str> = comment.trim_start().splitn(3, [' ', '\t']).collect();
            match words.as_slice() {
                ["TYPE", name, kind] => {
                    valid_metric_name(name).map_err(&at)?;
                    let kind = kind.trim();
                    if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind) {
                        return Err(at(format!("unknown type {kind:?}")));
                    }
                    let family = exposition.families.entry((*name).to_owned()).or_default();
                    if !family.samples.is_empty() {
                        return Err(at(format!("# TYPE for {name} after its samples")));
                    }
                    if !family.kind.is_empty() {
                        return Err(at(format!("a second # TYPE for {name}")));
                    }
                    family.kind = kind.to_owned();
                }
                ["HELP", name, help @ ..] => {
                    valid_metric_name(name).map_err(&at)?;
                    let help = unescape(help.first().unwrap_or(&""), false).map_err(&at)?;
                    let family = exposition.families.entry((*name).to_owned()).or_default();
                    if family.help.replace(help).is_some() {
                        return Err(at(format!("a second # HELP for {name}")));
                    }
                }
                ["TYPE", ..] => return Err(at("an incomplete # TYPE".into())),
                _ => {} // any other comment
            }
            continue;
        }
        let sample = parse_sample(line).map_err(&at)?;
        let family_name = family_of(&sample.name, &exposition.families).to_owned();
        if current.as_deref() != Some(family_name.as_str()) {
            if closed.contains(&family_name) {
                return Err(at(format!(
                    "a sample of {family_name} after another family's: a family's lines are one group"
                )));
            }
            if let Some(previous) = current.replace(family_name.clone()) {
                closed.insert(previous);
            }
        }
        let mut labels = sample.labels.clone();
        labels.sort();
        if !series.insert(format!("{}{labels:?}", sample.name)) {
            return Err(at("the same series twice".into()));
        }
        let family = exposition.families.entry(family_name).or_default();
        if family.kind.is_empty() {
            family.kind = "untyped".into();
        }
        family.samples.push(sample);
    }
    for (name, family) in &exposition.families {
        check_family(name, family)?;
    }
    Ok(exposition)
}

fn check_family(name: &str, family: &Family) -> Result<(), String> {
    match family.kind.as_str() {
        "counter" => {
            for sample in &family.samples {
                if sample.value.is_nan() || sample.value < 0.0 {
                    return Err(format!(
                        "counter {name} is {} (a counter is ≥ 0)",
                        sample.value
                    ));
                }
            }
        }
        "histogram" => check_histogram(name, family)?,
        "" => {} // HELP alone, no samples
        _ => {
            for sample in &family.samples {
                let own = sample.name == name
                    || (family.kind == "summary"
                        && [format!("{name}_sum"), format!("{name}_count")].contains(&sample.name));
                if !own {
                    return Err(format!(
                        "{} {name} has a sample named {}",
                        family.kind, sample.name
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Per label set (without `le`): buckets cumulative by `le`, a `+Inf` bucket equal to `_count`,
/// and a `_sum`.
fn check_histogram(name: &str, family: &Family) -> Result<(), String> {
    /// One label set's buckets (`le`, count), `_sum` and `_count`.
    type Series = (Vec<(f64, f64)>, Option<f64>, Option<f64>);
    let mut by_labels: BTreeMap<Vec<(String, String)>, Series> = BTreeMap::new();
    for sample in &family.samples {
        let mut labels: Vec<(String, String)> = sample
            .labels
            .iter()
            .filter(|(label, _)| label != "le")
            .cloned()
            .collect();
        labels.sort();
        let entry = by_labels.entry(labels).or_default();
        let suffix = sample.name.strip_prefix(name).unwrap_or_default();
        match suffix {
            "_bucket" => {
                let le = sample
                    .label("le")
                    .ok_or_else(|| format!("histogram {name}: a bucket without le: {sample:?}"))?;
                let bound = parse_value(le)
                    .ok_or_else(|| format!("histogram {name}: le={le:?} is not a number"))?;
                entry.0.push((bound, sample.value));
            }
            "_sum" => entry.1 = Some(sample.value),
            "_count" => entry.2 = Some(sample.value),
            _ => {
                return Err(format!(
                    "histogram {name} has a sample named {}",
                    sample.name
                ));
            }
        }
    }
    for (labels, (mut buckets, sum, count)) in by_labels {
        let what = format!("histogram {name}{labels:?}");
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        if buckets.windows(2).any(|pair| pair[1].1 < pair[0].1) {
            return Err(format!("{what}: buckets are not cumulative: {buckets:?}"));
        }
        let infinite = buckets.last().filter(|(bound, _)| *bound == f64::INFINITY);
        let (Some((_, infinite)), Some(count)) = (infinite, count) else {
            return Err(format!("{what}: needs a +Inf bucket and a _count"));
        };
        if *infinite != count {
            return Err(format!(
                "{what}: the +Inf bucket is {infinite} but _count is {count}"
            ));
        }
        if sum.is_none_or(f64::is_nan) {
            return Err(format!("{what}: no _sum"));
        }
    }
    Ok(())
}

fn valid_metric_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':');
    if first_ok && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
        Ok(())
    } else {
        Err(format!("{name:?} is not a metric name"))
    }
}

fn valid_label_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if !first_ok || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(format!("{name:?} is not a label name"));
    }
    if name.starts_with("__") {
        return Err(format!(
            "label name {name:?} is reserved (__ is Prometheus's own)"
        ));
    }
    Ok(())
}

/// Undoes the format's escapes: `\\` and `\n` (and `\"` in label values); any other is an error.
fn unescape(text: &str, quotes: bool) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            Some('"') if quotes => out.push('"'),
            other => {
                return Err(format!(
                    "a bad escape \\{}",
                    other.map(String::from).unwrap_or_default()
                ));
            }
        }
    }
    Ok(out)
}

/// A value as Go's `ParseFloat` reads it (what Prometheus uses), with `+Inf`, `-Inf`, `NaN`.
fn parse_value(text: &str) -> Option<f64> {
    match text {
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ if text
            .chars()
            .all(|c| c.is_ascii_digit() || "+-.eE".contains(c)) =>
        {
            text.parse().ok()
        }
        _ => None,
    }
}

fn parse_sample(line: &str) -> Result<Sample, String> {
    let name_end = line
        .find(['{', ' ', '\t'])
        .ok_or("a sample without a value")?;
    let name = &line[..name_end];
    valid_metric_name(name)?;
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(inside) = rest.strip_prefix('{') {
        let mut text = inside;
        loop {
            text = text.trim_start_matches([' ', '\t']);
            if let Some(after) = text.strip_prefix('}') {
                rest = after;
                break;
            }
            let eq = text.find('=').ok_or("a label without =")?;
            let label = text[..eq].trim_end_matches([' ', '\t']);
            valid_label_name(label)?;
            if labels.iter().any(|(seen, _)| seen == label) {
                return Err(format!("label {label:?} twice"));
            }
            let value_text = text[eq + 1..]
                .trim_start_matches([' ', '\t'])
                .strip_prefix('"')
                .ok_or_else(|| format!("label {label:?}'s value is not quoted"))?;
            let close = closing_quote(value_text)
                .ok_or_else(|| format!("label {label:?}'s value has no closing quote"))?;
            labels.push((label.to_owned(), unescape(&value_text[..close], true)?));
            text = value_text[close + 1..].trim_start_matches([' ', '\t']);
            if let Some(after) = text.strip_prefix(',') {
                text = after;
            } else if !text.starts_with('}') {
                return Err("labels must be separated by commas".into());
            }
        }
    }
    let mut fields = rest.split([' ', '\t']).filter(|field| !field.is_empty());
    let value_text = fields.next().ok_or("a sample without a value")?;
    let value = parse_value(value_text).ok_or_else(|| format!("{value_text:?} is not a value"))?;
    if let Some(timestamp) = fields.next()
        && timestamp.parse::<i64>().is_err()
    {
        return Err(format!("{timestamp:?} is not a timestamp in milliseconds"));
    }
    if fields.next().is_some() {
        return Err("something after the value and timestamp".into());
    }
    if !rest.is_empty() && !rest.starts_with([' ', '\t']) {
        return Err("no space before the value".into());
    }
    Ok(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

/// The index of the first quote not escaped by a backslash.
fn closing_quote(text: &str) -> Option<usize> {
    let mut escaped = false;
    for (index, c) in text.char_indices() {
        match c {
            '\\' if !escaped => escaped = true,
            '"' if !escaped => return Some(index),
            _ => escaped = false,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "\
# HELP sse_clients Event streams open.
# TYPE sse_clients gauge
sse_clients 3

# TYPE sse_events_published_total counter
sse_events_published_total{kind=\"tick\"} 12
sse_events_published_total{kind=\"custom\",} 0
# a comment
# TYPE d histogram
d_bucket{le=\"0.5\"} 1
d_bucket{le=\"+Inf\"} 2
d_sum 3.25
d_count 2
odd{path=\"a\\\"b\\\\c\\nd\"} 1e3 1700000000000
";

    #[test]
    fn reads_a_good_exposition() {
        let exposition = parse(GOOD).unwrap();
        assert_eq!(exposition.families["sse_clients"].kind, "gauge");
        assert_eq!(
            exposition.families["sse_clients"].help.as_deref(),
            Some("Event streams open.")
        );
        assert_eq!(exposition.sum("sse_clients", &[]), Some(3.0));
        assert_eq!(
            exposition.sum("sse_events_published_total", &[("kind", "tick")]),
            Some(12.0)
        );
        assert_eq!(exposition.sum("d_count", &[]), Some(2.0));
        assert_eq!(exposition.families["d"].samples.len(), 4);
        assert_eq!(
            exposition.families["odd"].samples[0].label("path"),
            Some("a\"b\\c\nd")
        );
        assert_eq!(exposition.families["odd"].kind, "untyped");
        assert_eq!(
            exposition.sum("sse_events_published_total", &[]),
            Some(12.0)
        );
        assert_eq!(exposition.sum("nothing", &[]), None);
    }

    #[test]
    fn refuses_what_a_strict_reader_must() {
        let cases = [
            ("", "empty"),
            ("a 1", "not end with LF"),
            ("a 1\r\n", "CR"),
            ("a 1\n# TYPE a gauge\n", "after its samples"),
            ("# TYPE a gauge\n# TYPE a counter\n", "second # TYPE"),
            ("# TYPE a thing\n", "unknown type"),
            ("a 1\nb 1\na{x=\"1\"} 2\n", "one group"),
            ("a 1\na 2\n", "same series twice"),
            ("a{x=\"1\",x=\"2\"} 1\n", "twice"),
            ("a{__x=\"1\"} 1\n", "reserved"),
            ("a{x=1} 1\n", "not quoted"),
            ("a{x=\"1} 1\n", "closing quote"),
            ("a{x=\"\\t\"} 1\n", "bad escape"),
            ("a{x=\"1\" y=\"2\"} 1\n", "commas"),
            ("a one\n", "not a value"),
            ("a 1 2 3\n", "after the value"),
            ("a 1 soon\n", "timestamp"),
            ("1a 1\n", "metric name"),
            ("a\n", "without a value"),
            ("# TYPE c counter\nc -1\n", "≥ 0"),
            (
                "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n",
                "cumulative",
            ),
            (
                "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n",
                "+Inf",
            ),
            (
                "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 1\n",
                "_count is",
            ),
            (
                "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\nh_count 1\n",
                "no _sum",
            ),
            ("# TYPE h histogram\nh_bucket{le=\"x\"} 1\n", "not a number"),
        ];
        for (text, why) in cases {
            let error = parse(text).expect_err(text);
            assert!(
                error.contains(why),
                "{text:?}: {error:?} should say {why:?}"
            );
        }
    }

    #[test]
    fn reads_what_the_servers_render() {
        // The exporter's own output, as the examples serve it.
        let metrics = sse_core::metrics::Metrics::new();
        let text = metrics.render(2, 9, true);
        let exposition = parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(exposition.sum("sse_clients", &[]), Some(2.0));
        assert_eq!(
            exposition.families["sse_stream_duration_seconds"].kind,
            "histogram"
        );
    }
}
