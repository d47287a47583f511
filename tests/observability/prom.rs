//! A strict reader of the Prometheus text exposition format (0.0.4), enough to check what
//! `/metrics` serves: every sample line is `name{labels} value`, every family declares HELP
//! and TYPE before its first sample, and the histograms are well formed.

use std::collections::{BTreeMap, HashMap};

/// One sample.
#[derive(Debug, Clone)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// A parsed exposition.
#[derive(Debug, Default)]
pub struct Exposition {
    pub samples: Vec<Sample>,
    /// Family name → TYPE.
    pub types: HashMap<String, String>,
    /// Family name → HELP text.
    pub help: HashMap<String, String>,
}

fn valid_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn valid_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn parse_value(s: &str) -> Result<f64, String> {
    match s {
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => s.parse::<f64>().map_err(|_| format!("bad value `{s}`")),
    }
}

/// `{a="x",b="y"}` (the braces already removed) into a map; escapes `\\`, `\"`, `\n`.
fn parse_labels(s: &str) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    let mut rest = s;
    while !rest.is_empty() {
        let (name, after) = rest
            .split_once("=\"")
            .ok_or_else(|| format!("label without =\" in `{s}`"))?;
        if !valid_label_name(name) {
            return Err(format!("bad label name `{name}`"));
        }
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    Some((_, 'n')) => value.push('\n'),
                    other => return Err(format!("bad escape {other:?} in `{s}`")),
                },
                '"' => {
                    end = Some(i);
                    break;
                }
                c => value.push(c),
            }
        }
        let end = end.ok_or_else(|| format!("unterminated label value in `{s}`"))?;
        if out.insert(name.to_owned(), value).is_some() {
            return Err(format!("label `{name}` twice in `{s}`"));
        }
        rest = &after[end + 1..];
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
    Ok(out)
}

/// The family a sample belongs to, given the declared types.
fn family_of<'a>(name: &'a str, types: &HashMap<String, String>) -> &'a str {
    if types.contains_key(name) {
        return name;
    }
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix)
            && types
                .get(base)
                .is_some_and(|t| t == "histogram" || t == "summary")
        {
            return base;
        }
    }
    name
}

/// Parses `text`, or says which line is wrong and why.
pub fn parse(text: &str) -> Result<Exposition, String> {
    let mut exp = Exposition::default();
    for (n, line) in text.lines().enumerate() {
        let n = n + 1;
        if line.trim().is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            let comment = comment.trim_start();
            if let Some(rest) = comment.strip_prefix("HELP ") {
                let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
                if !valid_name(name) {
                    return Err(format!("line {n}: bad HELP name `{name}`"));
                }
                if exp.help.insert(name.to_owned(), help.to_owned()).is_some() {
                    return Err(format!("line {n}: second HELP for `{name}`"));
                }
            } else if let Some(rest) = comment.strip_prefix("TYPE ") {
                let (name, kind) = rest
                    .split_once(' ')
                    .ok_or_else(|| format!("line {n}: TYPE without a type"))?;
                if !valid_name(name) {
                    return Err(format!("line {n}: bad TYPE name `{name}`"));
                }
                if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind) {
                    return Err(format!("line {n}: unknown type `{kind}`"));
                }
                if exp.types.insert(name.to_owned(), kind.to_owned()).is_some() {
                    return Err(format!("line {n}: second TYPE for `{name}`"));
                }
            }
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .ok_or_else(|| format!("line {n}: no value: `{line}`"))?;
        let value = parse_value(value).map_err(|e| format!("line {n}: {e}"))?;
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => {
                let inner = rest
                    .strip_suffix('}')
                    .ok_or_else(|| format!("line {n}: labels not closed: `{line}`"))?;
                (
                    name,
                    parse_labels(inner).map_err(|e| format!("line {n}: {e}"))?,
                )
            }
            None => (series, BTreeMap::new()),
        };
        if !valid_name(name) {
            return Err(format!("line {n}: bad metric name `{name}`"));
        }
        let family = family_of(name, &exp.types);
        if !exp.types.contains_key(family) {
            return Err(format!("line {n}: `{name}` has no TYPE before it"));
        }
        if !exp.help.contains_key(family) {
            return Err(format!("line {n}: `{name}` has no HELP before it"));
        }
        exp.samples.push(Sample {
            name: name.to_owned(),
            labels,
            value,
        });
    }
    exp.check_histograms()?;
    Ok(exp)
}

impl Exposition {
    /// The samples named `name` whose labels include every pair in `with`.
    pub fn find(&self, name: &str, with: &[(&str, &str)]) -> Vec<&Sample> {
        self.samples
            .iter()
            .filter(|s| {
                s.name == name
                    && with
                        .iter()
                        .all(|(k, v)| s.labels.get(*k).is_some_and(|x| x == v))
            })
            .collect()
    }

    /// The one sample named `name` with exactly these labels.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.samples
            .iter()
            .find(|s| {
                s.name == name
                    && s.labels.len() == labels.len()
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.get(*k).is_some_and(|x| x == v))
            })
            .map(|s| s.value)
    }

    /// Every histogram series: cumulative buckets, a `+Inf` bucket equal to `_count`, a sum.
    fn check_histograms(&self) -> Result<(), String> {
        for (family, kind) in &self.types {
            if kind != "histogram" {
                continue;
            }
            let mut series: BTreeMap<BTreeMap<String, String>, Vec<(f64, f64)>> = BTreeMap::new();
            for s in self
                .samples
                .iter()
                .filter(|s| s.name == format!("{family}_bucket"))
            {
                let le = s
                    .labels
                    .get("le")
                    .ok_or_else(|| format!("{family}_bucket without le"))?;
                let le = parse_value(le)?;
                let mut key = s.labels.clone();
                key.remove("le");
                series.entry(key).or_default().push((le, s.value));
            }
            for (labels, mut buckets) in series {
                buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
                if buckets.windows(2).any(|w| w[1].1 < w[0].1) {
                    return Err(format!("{family}{labels:?}: buckets not cumulative"));
                }
                let inf = buckets
                    .last()
                    .filter(|b| b.0.is_infinite())
                    .ok_or_else(|| format!("{family}{labels:?}: no +Inf bucket"))?
                    .1;
                let with: Vec<(&str, &str)> = labels
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                let count = self
                    .value(&format!("{family}_count"), &with)
                    .ok_or_else(|| format!("{family}{labels:?}: no _count"))?;
                if count != inf {
                    return Err(format!("{family}{labels:?}: _count {count} != +Inf {inf}"));
                }
                self.value(&format!("{family}_sum"), &with)
                    .ok_or_else(|| format!("{family}{labels:?}: no _sum"))?;
            }
        }
        Ok(())
    }
}

#[test]
fn the_reader_rejects_what_prometheus_would() {
    assert!(parse("# HELP a x\n# TYPE a gauge\na 1\n").is_ok());
    assert!(parse("a 1\n").is_err(), "no TYPE");
    assert!(parse("# TYPE a gauge\na 1\n").is_err(), "no HELP");
    assert!(parse("# HELP a x\n# TYPE a gauge\na{b=\"1\" 1\n").is_err());
    assert!(parse("# HELP a x\n# TYPE a gauge\na one\n").is_err());
    assert!(parse("# HELP a x\n# TYPE a gauge\n9a 1\n").is_err());
    let h = "# HELP h x\n# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 3\nh_sum 1.5\nh_count 3\n";
    assert!(parse(h).is_ok());
    assert!(parse(&h.replace("h_count 3", "h_count 4")).is_err());
    assert!(parse(&h.replace("le=\"1\"} 2", "le=\"1\"} 5")).is_err());
    let e = parse("# HELP a x\n# TYPE a counter\na{k=\"v\\\"w\"} 2\n").expect("escapes");
    assert_eq!(e.value("a", &[("k", "v\"w")]), Some(2.0));
}
