//! Reading a service's `/metrics`: the counters and histograms a step is judged by.

use crate::stats::Buckets;
pub use lfr_common::http::get;
use std::net::SocketAddr;

/// One scrape of Prometheus text exposition.
#[derive(Debug, Clone, Default)]
pub struct Scrape {
    text: String,
}

impl Scrape {
    pub fn parse(text: impl Into<String>) -> Scrape {
        Scrape { text: text.into() }
    }

    /// Sum of every sample of `name` whose labels include all of `labels`.
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples(name)
            .filter(|(l, _)| has_labels(l, labels))
            .map(|(_, v)| v)
            .sum()
    }

    /// The cumulative buckets of histogram `name` (summed over label sets).
    pub fn buckets(&self, name: &str) -> Buckets {
        let mut out: Buckets = Vec::new();
        for (labels, value) in self.samples(&format!("{name}_bucket")) {
            let Some(le) = label(labels, "le") else {
                continue;
            };
            let le: f64 = if le == "+Inf" {
                f64::INFINITY
            } else {
                match le.parse() {
                    Ok(v) => v,
                    Err(_) => continue,
                }
            };
            match out.iter_mut().find(|(b, _)| *b == le) {
                Some((_, n)) => *n += value,
                None => out.push((le, value)),
            }
        }
        out.sort_by(|a, b| a.0.total_cmp(&b.0));
        out
    }

    /// `(labels, value)` of every sample of exactly `name`.
    fn samples<'a>(&'a self, name: &'a str) -> impl Iterator<Item = (&'a str, f64)> + 'a {
        self.text.lines().filter_map(move |line| {
            let rest = line.strip_prefix(name)?;
            let (labels, value) = if let Some(after) = rest.strip_prefix('{') {
                let (labels, value) = after.split_once('}')?;
                (labels, value)
            } else if rest.starts_with(' ') {
                ("", rest)
            } else {
                return None;
            };
            let value: f64 = value.split_whitespace().next()?.parse().ok()?;
            Some((labels, value))
        })
    }
}

fn label<'a>(labels: &'a str, key: &str) -> Option<&'a str> {
    labels.split(',').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k.trim() == key).then(|| v.trim().trim_matches('"'))
    })
}

fn has_labels(labels: &str, want: &[(&str, &str)]) -> bool {
    want.iter().all(|(k, v)| label(labels, k) == Some(*v))
}

/// GET `http://addr/metrics` (loopback or the NATS host only: see `system::check_scrape_target`).
pub async fn fetch(addr: SocketAddr) -> anyhow::Result<Scrape> {
    let body = get(addr, "/metrics").await?;
    Ok(Scrape::parse(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# HELP lfr_stage_messages_total Messages consumed
lfr_stage_messages_total{outcome="ok",service="detect",stage="detect"} 40
lfr_stage_messages_total{outcome="rejected",service="detect",stage="detect"} 2
lfr_stage_messages_total_extra 9
lfr_match_decision_seconds_bucket{service="match",le="0.1"} 3
lfr_match_decision_seconds_bucket{service="match",le="1"} 7
lfr_match_decision_seconds_bucket{service="match",le="+Inf"} 8
lfr_up 1
"#;

    #[test]
    fn sums_samples_with_matching_labels() {
        let s = Scrape::parse(TEXT);
        assert_eq!(
            s.sum("lfr_stage_messages_total", &[("stage", "detect")]),
            42.0
        );
        assert_eq!(
            s.sum("lfr_stage_messages_total", &[("outcome", "ok")]),
            40.0
        );
        assert_eq!(
            s.sum("lfr_stage_messages_total", &[("stage", "embed")]),
            0.0
        );
        assert_eq!(s.sum("lfr_up", &[]), 1.0);
    }

    #[test]
    fn reads_histogram_buckets_in_order() {
        let b = Scrape::parse(TEXT).buckets("lfr_match_decision_seconds");
        assert_eq!(b, vec![(0.1, 3.0), (1.0, 7.0), (f64::INFINITY, 8.0)]);
    }
}
