//! Accuracy figures for calibrating a watch-list threshold, as NIST FRVT and ISO/IEC 19795-1 define
//! them.
//!
//! Live facial recognition is *open-set 1:N identification*: every face a camera sees is searched
//! against the watch list (the gallery), and an alert fires when the best candidate's similarity is
//! at or above a threshold (`score >= threshold`). Two kinds of search show how a threshold behaves:
//!
//! - A **mated** search is a probe of someone who *is* on the watch list. It succeeds when their own
//!   gallery entry (the mate) is the top candidate *and* scores at or above the threshold. The
//!   fraction that fail is the false negative identification rate, **FNIR**; TPIR = 1 − FNIR.
//! - A **non-mated** search is a probe of someone who is *not* on the list. It raises a false alert
//!   when its top score reaches the threshold; the fraction that do is the false positive
//!   identification rate, **FPIR**.
//!
//! Raising the threshold trades false alerts for misses. Calibration fixes the FPIR a deployment
//! can tolerate and takes the *lowest* threshold that keeps to it
//! ([`Identification::operating_point`]): every step higher only adds misses. The rank-1 rate
//! ignores the threshold (closed-set identification) and bounds TPIR from above: no threshold can
//! find a mate that is not the top candidate.
//!
//! Verification (1:1) asks the same of pairs of images ([`Verification`]): genuine pairs (one
//! person) should reach the threshold, the true accept rate TAR; impostor pairs (two people) should
//! not, the false accept rate FAR.
//!
//! **Resolution.** A rate measured on n searches moves in steps of 1/n. A target below 1/n cannot be
//! shown: the best available is a threshold above every non-mated score (0 of n alerts), which says
//! nothing about whether the true rate is below the target. Such operating points are flagged
//! `resolvable: false`. Even a resolvable one rests on few errors: showing a rate below p with 95 %
//! confidence takes about 3/p searches with no error at all (the rule of three).
//!
//! Scores are `f32` similarities, higher meaning more alike (cosine, in [−1, 1]). Each set of scores
//! is sorted once, O(n log n); every figure after that is a binary search. A chosen threshold is the
//! next `f32` above a score, so `score >= threshold` splits the scores exactly as reported, and
//! printing it with `{}` (shortest round-trip) keeps that true when an operator copies it into the
//! configuration. A NaN score counts as lower than every threshold, as `>=` treats it.

use serde::Serialize;

/// The FPIR targets of [`EvalReport`]: one false alert per 100, per 1,000 and per 6,000 passers-by.
pub const REPORT_FPIRS: [f64; 3] = [1e-2, 1e-3, 1.0 / 6000.0];

/// The FAR targets of [`EvalReport`].
pub const REPORT_FARS: [f64; 3] = [1e-2, 1e-3, 1e-4];

/// Points a DET curve is thinned to: plenty for a plot, small enough for a report.
pub const DET_POINTS: usize = 500;

/// What one search of the gallery yielded.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Search {
    /// The probe's person is enrolled. `mate_score` is the similarity to their gallery entry (the
    /// best of their entries when enrolled more than once); `mate_rank1` whether that entry was the
    /// top candidate of the search.
    Mated { mate_score: f32, mate_rank1: bool },
    /// The probe's person is not enrolled. `top_score` is the highest similarity over the gallery.
    NonMated { top_score: f32 },
}

/// The lowest threshold that keeps to an FPIR target, and what it costs in misses.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct OperatingPoint {
    /// The FPIR the deployment tolerates.
    pub target_fpir: f64,
    /// Alert when `score >= threshold`.
    pub threshold: f32,
    /// FPIR measured at the threshold: at most the target.
    pub fpir: f64,
    /// Non-mated searches that reach the threshold: the false alerts behind `fpir`.
    pub false_alerts: usize,
    /// Non-mated searches it was measured on.
    pub nonmated: usize,
    /// FNIR at the threshold; `None` without mated searches.
    pub fnir: Option<f64>,
    /// TPIR = 1 − FNIR; `None` without mated searches.
    pub tpir: Option<f64>,
    /// A 95 % bootstrap interval of `tpir` ([`Identification::tpir_interval`]), where computed.
    pub tpir_ci95: Option<[f64; 2]>,
    /// False when the target is below 1 / `nonmated`: the threshold then lies above every non-mated
    /// score, and the data cannot tell whether the true FPIR there meets the target.
    pub resolvable: bool,
}

/// The lowest threshold that keeps to a FAR target, and the TAR it leaves.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct VerificationPoint {
    pub target_far: f64,
    /// Accept a pair when `score >= threshold`.
    pub threshold: f32,
    /// FAR measured at the threshold: at most the target.
    pub far: f64,
    /// Impostor pairs that reach the threshold.
    pub false_accepts: usize,
    /// Impostor pairs it was measured on.
    pub impostor_pairs: usize,
    /// TAR at the threshold; `None` without genuine pairs.
    pub tar: Option<f64>,
    /// False when the target is below 1 / `impostor_pairs` (see [`OperatingPoint::resolvable`]).
    pub resolvable: bool,
}

/// One point of a DET (detection error trade-off) curve: the two error rates at one threshold.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct DetPoint {
    pub threshold: f32,
    pub fpir: f64,
    pub fnir: f64,
}

/// Open-set identification scores, sorted once for any number of questions.
#[derive(Clone, Debug, Default)]
pub struct Identification {
    /// Top scores of the non-mated searches.
    nonmated: Ascending,
    /// Mate scores of the mated searches whose mate was the top candidate: the only ones a
    /// threshold can let through.
    rank1_mates: Ascending,
    /// All mated searches, found at rank 1 or not.
    mated: usize,
}

impl Identification {
    pub fn new(searches: &[Search]) -> Identification {
        searches.iter().copied().collect()
    }

    pub fn mated(&self) -> usize {
        self.mated
    }

    pub fn nonmated(&self) -> usize {
        self.nonmated.len()
    }

    /// Fraction of non-mated searches whose top score reaches `threshold`.
    pub fn fpir(&self, threshold: f32) -> Option<f64> {
        rate(self.nonmated.at_or_above(threshold), self.nonmated.len())
    }

    /// Fraction of mated searches whose mate is not the top candidate at or above `threshold`.
    pub fn fnir(&self, threshold: f32) -> Option<f64> {
        let hits = self.rank1_mates.at_or_above(threshold);
        rate(self.mated - hits, self.mated)
    }

    /// Fraction of mated searches whose mate is the top candidate at or above `threshold`.
    pub fn tpir(&self, threshold: f32) -> Option<f64> {
        rate(self.rank1_mates.at_or_above(threshold), self.mated)
    }

    /// Closed-set rank-1 identification rate: fraction of mated searches whose mate is the top
    /// candidate, whatever its score.
    pub fn rank1_rate(&self) -> Option<f64> {
        rate(self.rank1_mates.len(), self.mated)
    }

    /// The lowest threshold whose FPIR is at most `target_fpir`; `None` without non-mated searches,
    /// where FPIR cannot be measured. Non-mated searches alone set the threshold; mated ones only
    /// tell what it costs.
    pub fn operating_point(&self, target_fpir: f64) -> Option<OperatingPoint> {
        let n = self.nonmated.len();
        let allowed = allowed_errors(target_fpir, n);
        let floor = self.nonmated.min().min(self.rank1_mates.min());
        let threshold = self.nonmated.lowest_threshold(allowed, floor);
        Some(OperatingPoint {
            target_fpir,
            threshold,
            fpir: self.fpir(threshold)?,
            false_alerts: self.nonmated.at_or_above(threshold),
            nonmated: n,
            fnir: self.fnir(threshold),
            tpir: self.tpir(threshold),
            tpir_ci95: None,
            resolvable: allowed > 0,
        })
    }

    /// A 95 % percentile-bootstrap interval of the TPIR at `target_fpir`: `rounds` resamples (with
    /// replacement) of the mated and of the non-mated searches, each recalibrated to the target, so
    /// the interval holds the threshold's own uncertainty as well as the mated searches'. The
    /// resamples come from `seed` alone, so a report is reproducible. `None` without mated or
    /// non-mated searches.
    pub fn tpir_interval(&self, target_fpir: f64, rounds: usize, seed: u64) -> Option<[f64; 2]> {
        let (n, m) = (self.nonmated.len(), self.mated);
        if n == 0 || m == 0 || rounds == 0 {
            return None;
        }
        // Mated searches as scores a threshold may reach: a mate not at rank 1 never does.
        let mated: Vec<f32> = self
            .rank1_mates
            .0
            .iter()
            .copied()
            .chain(std::iter::repeat_n(
                f32::NEG_INFINITY,
                m - self.rank1_mates.len(),
            ))
            .collect();
        let allowed = allowed_errors(target_fpir, n);
        let floor = self.nonmated.min().min(self.rank1_mates.min());
        let mut rng = SplitMix64(seed);
        let mut tpirs: Vec<f64> = (0..rounds)
            .map(|_| {
                let nonmated =
                    Ascending::new((0..n).map(|_| self.nonmated.0[rng.below(n)]).collect());
                let threshold = nonmated.lowest_threshold(allowed, floor);
                let hits = (0..m).filter(|_| mated[rng.below(m)] >= threshold).count();
                hits as f64 / m as f64
            })
            .collect();
        tpirs.sort_unstable_by(f64::total_cmp);
        let at = |q: f64| tpirs[((q * (rounds - 1) as f64).round() as usize).min(rounds - 1)];
        Some([at(0.025), at(0.975)])
    }

    /// (FPIR, FNIR) at every distinct score, thinned to at most `max_points` (at least 2) evenly
    /// along the curve on log-log axes, in order of rising threshold (falling FPIR). Empty without
    /// both mated and non-mated searches.
    pub fn det_curve(&self, max_points: usize) -> Vec<DetPoint> {
        det_curve(&self.nonmated, &self.rank1_mates, self.mated, max_points)
    }
}

impl FromIterator<Search> for Identification {
    fn from_iter<I: IntoIterator<Item = Search>>(searches: I) -> Identification {
        let (mut nonmated, mut rank1_mates, mut mated) = (Vec::new(), Vec::new(), 0);
        for search in searches {
            match search {
                Search::NonMated { top_score } => nonmated.push(top_score),
                Search::Mated {
                    mate_score,
                    mate_rank1,
                } => {
                    mated += 1;
                    if mate_rank1 {
                        rank1_mates.push(mate_score);
                    }
                }
            }
        }
        Identification {
            nonmated: Ascending::new(nonmated),
            rank1_mates: Ascending::new(rank1_mates),
            mated,
        }
    }
}

/// Verification (1:1) scores: genuine pairs show one person twice, impostor pairs two people.
#[derive(Clone, Debug, Default)]
pub struct Verification {
    genuine: Ascending,
    impostor: Ascending,
}

impl Verification {
    pub fn new(genuine: &[f32], impostor: &[f32]) -> Verification {
        Verification {
            genuine: Ascending::new(genuine.to_vec()),
            impostor: Ascending::new(impostor.to_vec()),
        }
    }

    pub fn genuine_pairs(&self) -> usize {
        self.genuine.len()
    }

    pub fn impostor_pairs(&self) -> usize {
        self.impostor.len()
    }

    /// Fraction of impostor pairs at or above `threshold`.
    pub fn far(&self, threshold: f32) -> Option<f64> {
        rate(self.impostor.at_or_above(threshold), self.impostor.len())
    }

    /// Fraction of genuine pairs at or above `threshold`.
    pub fn tar(&self, threshold: f32) -> Option<f64> {
        rate(self.genuine.at_or_above(threshold), self.genuine.len())
    }

    /// The lowest threshold whose FAR is at most `target_far`; `None` without impostor pairs.
    pub fn tar_at_far(&self, target_far: f64) -> Option<VerificationPoint> {
        let n = self.impostor.len();
        let allowed = allowed_errors(target_far, n);
        let floor = self.impostor.min().min(self.genuine.min());
        let threshold = self.impostor.lowest_threshold(allowed, floor);
        Some(VerificationPoint {
            target_far,
            threshold,
            far: self.far(threshold)?,
            false_accepts: self.impostor.at_or_above(threshold),
            impostor_pairs: n,
            tar: self.tar(threshold),
            resolvable: allowed > 0,
        })
    }
}

/// Bootstrap resamples per reported operating point.
pub const BOOTSTRAP_ROUNDS: usize = 1000;

/// The bootstrap's seed: a report is the same every time it is run on the same searches.
const BOOTSTRAP_SEED: u64 = 0x6c66_725f_6576_616c;

/// A small, fast, seeded generator (SplitMix64): enough for resampling, and no dependency.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0), by multiply-shift: bias below 2^-32 for any n used here.
    fn below(&mut self, n: usize) -> usize {
        (((self.next() >> 32) * n as u64) >> 32) as usize
    }
}

/// Scores sorted ascending, so counting those at or above a threshold is a binary search.
#[derive(Clone, Debug, Default)]
struct Ascending(Vec<f32>);

impl Ascending {
    fn new(mut scores: Vec<f32>) -> Ascending {
        for s in &mut scores {
            if s.is_nan() {
                *s = f32::NEG_INFINITY;
            }
        }
        scores.sort_unstable_by(f32::total_cmp);
        Ascending(scores)
    }

    fn len(&self) -> usize {
        self.0.len()
    }

    /// The lowest score; +∞ when there is none, so it never lowers a minimum.
    fn min(&self) -> f32 {
        self.0.first().copied().unwrap_or(f32::INFINITY)
    }

    fn at_or_above(&self, threshold: f32) -> usize {
        self.0.len() - self.0.partition_point(|&s| s < threshold)
    }

    /// The lowest threshold that at most `allowed` of these scores reach: just above the
    /// (allowed + 1)-th highest score, so ties with it fall below the threshold together. When all
    /// may reach it (always, when there are no scores), `floor`: the lowest score of any kind, so
    /// that everything does.
    fn lowest_threshold(&self, allowed: usize, floor: f32) -> f32 {
        let n = self.0.len();
        if allowed >= n {
            floor
        } else {
            self.0[n - 1 - allowed].next_up()
        }
    }
}

/// `count / total`, undefined for nothing.
fn rate(count: usize, total: usize) -> Option<f64> {
    (total > 0).then(|| count as f64 / total as f64)
}

/// How many errors among `n` a rate target allows: the largest k with k / n <= target, compared as
/// the reported rate is computed, so rounding can never make a reported rate exceed its target.
fn allowed_errors(target: f64, n: usize) -> usize {
    if n == 0 || target.is_nan() || target <= 0.0 {
        return 0;
    }
    if target >= 1.0 {
        return n;
    }
    let within = |k: usize| k as f64 / n as f64 <= target;
    let mut k = ((target * n as f64).floor() as usize).min(n);
    while k > 0 && !within(k) {
        k -= 1;
    }
    while k < n && within(k + 1) {
        k += 1;
    }
    k
}

/// A DET curve from error counts at every distinct score of either set. `positives` are the
/// scores that count as found when they reach the threshold, out of `positives_total`.
///
/// Thinning keeps a point once the curve has moved `step` (in decades, |Δx| + |Δy|) since the last
/// kept one. Both rates only move one way as the threshold rises, so the curve's whole length is at
/// most the span of the two log axes, rates of zero being held at half a count; a step of that
/// length over `max_points − 2` keeps at most `max_points`, the last point included.
fn det_curve(
    negatives: &Ascending,
    positives: &Ascending,
    positives_total: usize,
    max_points: usize,
) -> Vec<DetPoint> {
    let (n, m) = (negatives.len(), positives_total);
    if n == 0 || m == 0 {
        return Vec::new();
    }
    let (neg, pos) = (&negatives.0, &positives.0);
    let (floor_x, floor_y) = (0.5 / n as f64, 0.5 / m as f64);
    let log = |p: &DetPoint| (p.fpir.max(floor_x).log10(), p.fnir.max(floor_y).log10());
    let span = (2.0 * n as f64).log10() + (2.0 * m as f64).log10();
    let step = span / max_points.max(3).saturating_sub(2) as f64;

    let mut kept: Vec<DetPoint> = Vec::new();
    let mut last_kept = (f64::NAN, f64::NAN);
    let mut pending: Option<DetPoint> = None;
    let (mut i, mut j) = (0, 0);
    while i < neg.len() || j < pos.len() {
        let threshold = match (neg.get(i), pos.get(j)) {
            (Some(&a), Some(&b)) => a.min(b),
            (Some(&a), None) => a,
            (None, Some(&b)) => b,
            (None, None) => unreachable!(),
        };
        let point = DetPoint {
            threshold,
            fpir: (n - i) as f64 / n as f64,
            fnir: (m - (pos.len() - j)) as f64 / m as f64,
        };
        while i < neg.len() && neg[i] <= threshold {
            i += 1;
        }
        while j < pos.len() && pos[j] <= threshold {
            j += 1;
        }
        let (x, y) = log(&point);
        if kept.is_empty() || (x - last_kept.0).abs() + (y - last_kept.1).abs() >= step {
            kept.push(point);
            last_kept = (x, y);
            pending = None;
        } else {
            pending = Some(point);
        }
    }
    kept.extend(pending);
    kept
}

/// The figures `lfr eval` reports before a deployment.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EvalReport {
    /// Entries in the gallery searched (the stand-in watch list).
    pub gallery_size: usize,
    pub mated_searches: usize,
    pub nonmated_searches: usize,
    pub genuine_pairs: usize,
    pub impostor_pairs: usize,
    /// `None` without mated searches.
    pub rank1_rate: Option<f64>,
    /// At each of [`REPORT_FPIRS`]; empty without non-mated searches.
    pub identification: Vec<OperatingPoint>,
    /// At each of [`REPORT_FARS`]; empty without impostor pairs.
    pub verification: Vec<VerificationPoint>,
}

impl EvalReport {
    pub fn new(
        gallery_size: usize,
        identification: &Identification,
        verification: &Verification,
    ) -> EvalReport {
        EvalReport {
            gallery_size,
            mated_searches: identification.mated(),
            nonmated_searches: identification.nonmated(),
            genuine_pairs: verification.genuine_pairs(),
            impostor_pairs: verification.impostor_pairs(),
            rank1_rate: identification.rank1_rate(),
            identification: REPORT_FPIRS
                .iter()
                .filter_map(|&t| {
                    let mut point = identification.operating_point(t)?;
                    point.tpir_ci95 =
                        identification.tpir_interval(t, BOOTSTRAP_ROUNDS, BOOTSTRAP_SEED);
                    Some(point)
                })
                .collect(),
            verification: REPORT_FARS
                .iter()
                .filter_map(|&t| verification.tar_at_far(t))
                .collect(),
        }
    }

    /// The report for operators: a threshold per target and what it means for a deployment.
    pub fn to_markdown(&self) -> String {
        let mut md = String::new();
        let mut line = |s: &str| {
            md.push_str(s);
            md.push('\n');
        };
        line("# Watch-list threshold calibration");
        line("");
        line(&format!(
            "Gallery of {} entries; {} mated and {} non-mated searches; {} genuine and {} impostor \
             pairs.",
            thousands(self.gallery_size),
            thousands(self.mated_searches),
            thousands(self.nonmated_searches),
            thousands(self.genuine_pairs),
            thousands(self.impostor_pairs),
        ));
        line("");
        line(
            "An alert fires when a face's highest similarity to the watch list is at or above the \
             threshold. **FPIR** (false positive identification rate) is the fraction of passers-by \
             who are *not* on the watch list that would trigger an alert. **FNIR** (false negative \
             identification rate) is the fraction of watch-listed people who would walk past \
             undetected: their own entry was not the top candidate, or scored below the threshold. \
             TPIR = 1 − FNIR.",
        );
        line("");
        line("## Open-set identification (1:N): the watch-list threshold");
        line("");
        if let Some(r) = self.rank1_rate {
            line(&format!(
                "Rank-1 identification rate (closed set, any score): {}. No threshold can reach a \
                 higher TPIR.",
                percent(r)
            ));
            line("");
        }
        if self.identification.is_empty() {
            line("No non-mated searches: FPIR cannot be measured, so no threshold can be set.");
        } else {
            line("| target FPIR | threshold | measured FPIR | FNIR | TPIR | TPIR 95 % interval |");
            line("|---|---|---|---|---|---|");
            for p in &self.identification {
                line(&format!(
                    "| {} | {} | {} ({} of {}){} | {} | {} | {} |",
                    one_in(p.target_fpir),
                    p.threshold,
                    percent(p.fpir),
                    thousands(p.false_alerts),
                    thousands(p.nonmated),
                    if p.resolvable { "" } else { " ⚠" },
                    p.fnir.map_or("–".into(), percent),
                    p.tpir.map_or("–".into(), percent),
                    p.tpir_ci95.map_or("–".into(), |[lo, hi]| format!(
                        "{}–{}",
                        percent(lo),
                        percent(hi)
                    )),
                ));
            }
            line("");
            line(
                "Each threshold is the lowest that keeps to its target on this data: any lower one \
                 exceeds it. Thresholds are given in full; to shorten one, round it up, never \
                 down. FPIR grows with the size of the watch list, so calibrate with a gallery as \
                 large as the deployment's. The interval is a percentile bootstrap over 1,000 \
                 resamples of the mated and non-mated searches, each recalibrated to its target: \
                 it includes the threshold's own uncertainty, which at a target near one error in \
                 the non-mated searches dominates.",
            );
            unresolvable_note(
                &mut line,
                self.identification
                    .iter()
                    .map(|p| (p.resolvable, p.target_fpir, p.nonmated)),
                "non-mated searches",
            );
        }
        line("");
        line("## Verification (1:1)");
        line("");
        if self.verification.is_empty() {
            line("No impostor pairs: FAR cannot be measured.");
        } else {
            line(
                "A pair of face images is accepted as one person when its similarity is at or \
                 above the threshold. **FAR**: fraction of pairs of two different people accepted; \
                 **TAR**: fraction of pairs of one person accepted.",
            );
            line("");
            line("| target FAR | threshold | measured FAR | TAR |");
            line("|---|---|---|---|");
            for p in &self.verification {
                line(&format!(
                    "| {} | {} | {} ({} of {}){} | {} |",
                    one_in(p.target_far),
                    p.threshold,
                    percent(p.far),
                    thousands(p.false_accepts),
                    thousands(p.impostor_pairs),
                    if p.resolvable { "" } else { " ⚠" },
                    p.tar.map_or("–".into(), percent),
                ));
            }
            unresolvable_note(
                &mut line,
                self.verification
                    .iter()
                    .map(|p| (p.resolvable, p.target_far, p.impostor_pairs)),
                "impostor pairs",
            );
        }
        md
    }
}

/// The warning under a table with unresolvable targets: (resolvable, target, measured on).
fn unresolvable_note(
    line: &mut impl FnMut(&str),
    points: impl Iterator<Item = (bool, f64, usize)>,
    what: &str,
) {
    let unresolved: Vec<(f64, usize)> = points.filter(|p| !p.0).map(|p| (p.1, p.2)).collect();
    let Some(&(_, n)) = unresolved.first() else {
        return;
    };
    let needs: Vec<String> = unresolved
        .iter()
        .map(|&(target, _)| {
            format!(
                "{} needs at least {}",
                one_in(target),
                thousands(needed(target))
            )
        })
        .collect();
    line("");
    line(&format!(
        "⚠ Not resolvable with {} {what}: a target of {}. Its threshold lies just above \
         the highest of their scores, and whether the true rate there meets the target is \
         unknown.",
        thousands(n),
        needs.join("; of "),
    ));
}

/// Searches needed for a target to be resolvable: the least n with 1 / n <= target.
fn needed(target: f64) -> usize {
    if target.is_nan() || target <= 0.0 {
        return usize::MAX;
    }
    let resolves = |n: usize| 1.0 / n as f64 <= target;
    let mut n = ((1.0 / target).round() as usize).max(1);
    while !resolves(n) {
        n += 1;
    }
    while n > 1 && resolves(n - 1) {
        n -= 1;
    }
    n
}

/// A rate target for people: "1 in 6,000".
fn one_in(target: f64) -> String {
    let n = 1.0 / target;
    if target > 0.0 && (n - n.round()).abs() < 1e-6 * n {
        format!("1 in {}", thousands(n.round() as usize))
    } else {
        percent(target)
    }
}

/// A rate as a percentage with about two significant digits, of the rate or of what it falls
/// short of 100 % by, so neither rounds to 0 % or 100 %: "96.9%", "0.98%", "0.017%", "99.96%".
fn percent(rate: f64) -> String {
    let pct = rate * 100.0;
    if pct <= 0.0 || pct >= 100.0 {
        return format!("{pct}%");
    }
    // The nudge keeps 0.1 from 100 − 99.9 = 0.0999… a decimal longer.
    let decimals = |p: f64| (1 - (p.log10() + 1e-9).floor() as i32).max(1) as usize;
    let decimals = decimals(pct).max(decimals(100.0 - pct));
    format!("{pct:.decimals$}%")
}

/// 6000 as "6,000".
fn thousands(n: usize) -> String {
    lfr_alerts::accuracy::thousands(n as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn non(s: f32) -> Search {
        Search::NonMated { top_score: s }
    }

    fn hit(s: f32) -> Search {
        Search::Mated {
            mate_score: s,
            mate_rank1: true,
        }
    }

    fn missed(s: f32) -> Search {
        Search::Mated {
            mate_score: s,
            mate_rank1: false,
        }
    }

    fn operating_point(searches: &[Search], target_fpir: f64) -> Option<OperatingPoint> {
        Identification::new(searches).operating_point(target_fpir)
    }

    fn tar_at_far(genuine: &[f32], impostor: &[f32], target: f64) -> Option<VerificationPoint> {
        Verification::new(genuine, impostor).tar_at_far(target)
    }

    /// `n` non-mated and `m` mated searches with scores spread evenly: impostors over [0, 0.6),
    /// mates over [0.4, 1.0), one mate in ten missed at rank 1.
    fn spread(n: usize, m: usize) -> Vec<Search> {
        let non_scores = (0..n).map(|i| non(0.6 * i as f32 / n as f32));
        let mates = (0..m).map(|i| {
            let s = 0.4 + 0.6 * i as f32 / m as f32;
            if i % 10 == 0 {
                missed(s)
            } else {
                hit(s)
            }
        });
        non_scores.chain(mates).collect()
    }

    #[test]
    fn the_tpir_interval_holds_the_estimate_narrows_with_data_and_is_reproducible() {
        let width = |[lo, hi]: [f64; 2]| hi - lo;
        let small = Identification::new(&spread(200, 100));
        let large = Identification::new(&spread(5_000, 2_500));
        for id in [&small, &large] {
            let p = id.operating_point(1e-2).unwrap();
            let [lo, hi] = id.tpir_interval(1e-2, 200, 7).unwrap();
            let tpir = p.tpir.unwrap();
            assert!(lo <= tpir && tpir <= hi, "{lo} {tpir} {hi}");
            assert!(hi <= 0.9, "a mate missed at rank 1 is never found: {hi}");
        }
        let (a, b) = (
            small.tpir_interval(1e-2, 200, 7).unwrap(),
            large.tpir_interval(1e-2, 200, 7).unwrap(),
        );
        assert!(width(b) < width(a) / 3.0, "{a:?} {b:?}");
        assert_eq!(small.tpir_interval(1e-2, 200, 7), Some(a));
        // Nothing to resample: no interval.
        assert_eq!(
            Identification::new(&[hit(0.9)]).tpir_interval(1e-2, 500, 7),
            None
        );
        assert_eq!(
            Identification::new(&[non(0.9)]).tpir_interval(1e-2, 500, 7),
            None
        );
    }

    #[test]
    fn fpir_and_fnir_count_scores_at_the_threshold_as_reaching_it() {
        let id = Identification::new(&[non(0.2), non(0.5), non(0.5), non(0.8), hit(0.5), hit(0.9)]);
        assert_eq!(id.fpir(0.5), Some(0.75));
        assert_eq!(id.fpir(0.5f32.next_up()), Some(0.25));
        assert_eq!(id.fnir(0.5), Some(0.0));
        assert_eq!(id.fnir(0.5f32.next_up()), Some(0.5));
        assert_eq!(id.fpir(2.0), Some(0.0));
        assert_eq!(id.fnir(-2.0), Some(0.0));
    }

    #[test]
    fn a_mate_that_is_not_the_top_candidate_is_missed_at_every_threshold() {
        let id = Identification::new(&[non(0.1), hit(0.9), missed(0.95), missed(0.3)]);
        assert_eq!(id.rank1_rate(), Some(1.0 / 3.0));
        assert_eq!(id.fnir(f32::MIN), Some(2.0 / 3.0));
        assert_eq!(id.fnir(0.91), Some(1.0));
    }

    #[test]
    fn the_threshold_lies_just_above_the_first_non_mated_score_it_must_exclude() {
        // Ten non-mated searches, target 1 in 10: one may alert, so the threshold excludes the
        // second highest (0.7) and everything below it.
        let scores = [0.1, 0.2, 0.3, 0.35, 0.4, 0.5, 0.55, 0.6, 0.7, 0.9];
        let mut searches: Vec<Search> = scores.iter().map(|&s| non(s)).collect();
        searches.extend([hit(0.65), hit(0.75), hit(0.95), missed(0.99)]);
        let p = operating_point(&searches, 0.1).unwrap();
        assert_eq!(p.threshold, 0.7f32.next_up());
        assert_eq!((p.fpir, p.false_alerts, p.nonmated), (0.1, 1, 10));
        assert_eq!(p.fnir, Some(0.5));
        assert_eq!(p.tpir, Some(0.5));
        assert!(p.resolvable);
    }

    #[test]
    fn ties_at_the_threshold_fall_below_it_together() {
        // Target 2 in 8, but the second and third highest tie at 0.6: letting one through lets
        // both, so only the single 0.9 may alert and the FPIR lands below the target.
        let searches: Vec<Search> = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.6, 0.9]
            .iter()
            .map(|&s| non(s))
            .chain([hit(0.6), hit(0.61)])
            .collect();
        let p = operating_point(&searches, 0.25).unwrap();
        assert_eq!(p.threshold, 0.6f32.next_up());
        assert_eq!((p.false_alerts, p.fpir), (1, 0.125));
        assert_eq!(
            p.fnir,
            Some(0.5),
            "a mate tied with the excluded scores is missed too"
        );
        assert!(p.resolvable);
    }

    #[test]
    fn separable_scores_give_no_misses_and_no_false_alerts() {
        let mut searches: Vec<Search> = (0..100).map(|i| non(i as f32 / 1000.0)).collect();
        searches.extend((0..50).map(|i| hit(0.5 + i as f32 / 1000.0)));
        let id = Identification::new(&searches);
        let p = id.operating_point(0.01).unwrap();
        assert_eq!(p.threshold, 0.098f32.next_up());
        assert_eq!((p.false_alerts, p.fnir), (1, Some(0.0)));
        let strict = id.operating_point(0.001).unwrap();
        assert_eq!(strict.threshold, 0.099f32.next_up());
        assert_eq!((strict.false_alerts, strict.fnir), (0, Some(0.0)));
    }

    #[test]
    fn a_target_below_one_in_n_is_flagged_and_set_above_every_non_mated_score() {
        let searches = [non(0.3), non(0.8), non(0.5), hit(0.85), hit(0.7)];
        let p = operating_point(&searches, 1e-3).unwrap();
        assert!(!p.resolvable);
        assert_eq!(p.threshold, 0.8f32.next_up());
        assert_eq!((p.fpir, p.false_alerts), (0.0, 0));
        assert_eq!(p.fnir, Some(0.5));
        assert!(operating_point(&searches, 1.0 / 3.0).unwrap().resolvable);
        assert!(!operating_point(&searches, 0.0).unwrap().resolvable);
    }

    #[test]
    fn one_in_6000_is_resolvable_with_exactly_6000_non_mated_searches() {
        let searches: Vec<Search> = (0..6000).map(|i| non(i as f32 / 6000.0)).collect();
        let p = operating_point(&searches, 1.0 / 6000.0).unwrap();
        assert!(p.resolvable);
        assert_eq!(p.false_alerts, 1);
        assert_eq!(p.threshold, (5998.0f32 / 6000.0).next_up());
        assert!(
            !operating_point(&searches[1..], 1.0 / 6000.0)
                .unwrap()
                .resolvable
        );
    }

    #[test]
    fn without_non_mated_searches_no_threshold_can_be_set() {
        let id = Identification::new(&[hit(0.9), missed(0.4)]);
        assert_eq!(id.operating_point(0.01), None);
        assert_eq!(id.fpir(0.5), None);
        assert_eq!(id.rank1_rate(), Some(0.5));
        assert!(id.det_curve(DET_POINTS).is_empty());
    }

    #[test]
    fn without_mated_searches_the_threshold_is_set_but_fnir_is_unknown() {
        let id = Identification::new(&[non(0.3), non(0.4)]);
        let p = id.operating_point(0.5).unwrap();
        assert_eq!((p.threshold, p.false_alerts), (0.3f32.next_up(), 1));
        assert_eq!((p.fnir, p.tpir), (None, None));
        assert_eq!(id.rank1_rate(), None);
    }

    #[test]
    fn a_target_of_one_lets_every_score_through() {
        let id = Identification::new(&[non(0.3), non(0.4), hit(0.1), missed(0.9)]);
        let p = id.operating_point(1.0).unwrap();
        assert_eq!((p.threshold, p.fpir, p.fnir), (0.1, 1.0, Some(0.5)));
    }

    #[test]
    fn nan_scores_never_reach_a_threshold() {
        let id = Identification::new(&[non(f32::NAN), non(0.2), hit(f32::NAN), hit(0.5)]);
        assert_eq!(id.fpir(f32::MIN), Some(0.5));
        assert_eq!(id.fnir(f32::MIN), Some(0.5));
        let p = id.operating_point(0.5).unwrap();
        assert_eq!((p.threshold, p.false_alerts), (f32::MIN, 1));
    }

    #[test]
    fn verification_takes_the_lowest_threshold_within_the_far_target() {
        let genuine = [0.9, 0.8, 0.7, 0.45, 0.3];
        let impostor = [0.1, 0.2, 0.2, 0.3, 0.4, 0.45, 0.5, 0.5, 0.6, 0.2];
        // 1 in 10 allowed: 0.6 may pass, the tied 0.5s may not.
        let p = tar_at_far(&genuine, &impostor, 0.1).unwrap();
        assert_eq!(p.threshold, 0.5f32.next_up());
        assert_eq!((p.far, p.false_accepts, p.tar), (0.1, 1, Some(0.6)));
        assert!(p.resolvable);
        // 3 in 10: 0.6 and both 0.5s.
        let p = tar_at_far(&genuine, &impostor, 0.3).unwrap();
        assert_eq!(p.threshold, 0.45f32.next_up());
        assert_eq!((p.far, p.tar), (0.3, Some(0.6)));
        let p = tar_at_far(&genuine, &impostor, 1e-4).unwrap();
        assert!(!p.resolvable);
        assert_eq!((p.threshold, p.far), (0.6f32.next_up(), 0.0));
        assert_eq!(tar_at_far(&genuine, &[], 0.1), None);
        assert_eq!(tar_at_far(&[], &impostor, 0.1).unwrap().tar, None);
    }

    #[test]
    fn the_det_curve_has_a_point_per_distinct_score() {
        let id = Identification::new(&[
            non(0.2),
            non(0.5),
            non(0.5),
            hit(0.5),
            hit(0.7),
            missed(0.9),
        ]);
        let curve = id.det_curve(DET_POINTS);
        let expected = [
            (0.2, 1.0, 1.0 / 3.0),
            (0.5, 2.0 / 3.0, 1.0 / 3.0),
            (0.7, 0.0, 2.0 / 3.0),
        ];
        assert_eq!(curve.len(), expected.len());
        for (p, &(t, fpir, fnir)) in curve.iter().zip(&expected) {
            assert_eq!(p.threshold, t);
            assert!(
                (p.fpir - fpir).abs() < 1e-12 && (p.fnir - fnir).abs() < 1e-12,
                "{p:?}"
            );
        }
    }

    #[test]
    fn a_large_det_curve_is_thinned_keeping_both_ends() {
        let mut rng = XorShift(7);
        let searches: Vec<Search> = (0..200_000)
            .map(|i| {
                let s = rng.next_f32();
                if i % 4 == 0 {
                    hit(0.3 + s)
                } else {
                    non(s)
                }
            })
            .collect();
        let id = Identification::new(&searches);
        let full = id.det_curve(usize::MAX);
        let thin = id.det_curve(DET_POINTS);
        assert!(full.len() > 100_000);
        assert!(
            thin.len() <= DET_POINTS && thin.len() > DET_POINTS / 2,
            "{}",
            thin.len()
        );
        assert_eq!(thin.first(), full.first());
        assert_eq!(thin.last(), full.last());
        assert!(thin.windows(2).all(|w| w[0].threshold < w[1].threshold
            && w[0].fpir >= w[1].fpir
            && w[0].fnir <= w[1].fnir));
        assert_eq!(id.det_curve(0).len(), 2);
    }

    #[test]
    fn a_million_scores_are_calibrated_quickly() {
        let mut rng = XorShift(11);
        let searches: Vec<Search> = (0..1_000_000)
            .map(|i| {
                if i % 10 == 0 {
                    hit(rng.next_f32() * 0.5 + 0.5)
                } else {
                    non(rng.next_f32() * 0.7)
                }
            })
            .collect();
        let started = std::time::Instant::now();
        let id = Identification::new(&searches);
        let p = id.operating_point(1e-3).unwrap();
        let _ = id.det_curve(DET_POINTS);
        assert!(started.elapsed().as_secs() < 10, "{:?}", started.elapsed());
        assert!(p.false_alerts <= 900 && p.false_alerts > 890, "{p:?}");
    }

    /// A tiny deterministic generator: reproducible tests without the `rand` crate.
    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }

        /// Uniform in [0, 1).
        fn next_f32(&mut self) -> f32 {
            (self.next() >> 40) as f32 / (1u64 << 24) as f32
        }
    }

    #[test]
    fn every_calibrated_threshold_is_the_lowest_within_its_target() {
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        for case in 0..500 {
            // Coarse score grids make ties common; fine ones make them rare.
            let levels = [4, 16, 256, 1 << 20][case % 4] as u64;
            let n_nonmated = 1 + rng.below(300) as usize;
            let n_mated = rng.below(50) as usize;
            let score = |rng: &mut XorShift| rng.below(levels) as f32 / levels as f32 * 2.0 - 1.0;
            let mut searches = Vec::new();
            for _ in 0..n_nonmated {
                searches.push(non(score(&mut rng)));
            }
            for _ in 0..n_mated {
                let (s, rank1) = (score(&mut rng), rng.below(5) > 0);
                searches.push(if rank1 { hit(s) } else { missed(s) });
            }
            let id = Identification::new(&searches);
            let target = [0.5, 0.1, 0.01, 1e-3, 1.0 / 6000.0, 1.0 / n_nonmated as f64]
                [rng.below(6) as usize];

            let p = id.operating_point(target).unwrap();
            let brute_fp = |t: f32| {
                searches
                    .iter()
                    .filter(|s| matches!(s, Search::NonMated { top_score } if *top_score >= t))
                    .count()
            };
            let brute_hits = |t: f32| {
                searches
                    .iter()
                    .filter(|s| matches!(s, Search::Mated { mate_score, mate_rank1: true } if *mate_score >= t))
                    .count()
            };
            let ctx = format!("case {case}: target {target}, {n_nonmated} non-mated, {p:?}");
            assert_eq!(p.false_alerts, brute_fp(p.threshold), "{ctx}");
            assert!(p.fpir <= target, "{ctx}");
            assert_eq!(p.fpir, id.fpir(p.threshold).unwrap(), "{ctx}");
            if p.false_alerts < n_nonmated {
                let lower = id.fpir(p.threshold.next_down()).unwrap();
                assert!(lower > target, "one step lower gives {lower}: {ctx}");
            }
            assert_eq!(p.resolvable, 1.0 / n_nonmated as f64 <= target, "{ctx}");
            if n_mated > 0 {
                let tpir = brute_hits(p.threshold) as f64 / n_mated as f64;
                assert!((p.tpir.unwrap() - tpir).abs() < 1e-12, "{ctx}");
            }
        }
    }

    fn report() -> EvalReport {
        let mut rng = XorShift(3);
        let mut searches: Vec<Search> = (0..3000).map(|_| non(rng.next_f32() * 0.6)).collect();
        searches.extend((0..1000).map(|i| {
            let s = 0.4 + rng.next_f32() * 0.6;
            if i % 50 == 0 {
                missed(s)
            } else {
                hit(s)
            }
        }));
        let genuine: Vec<f32> = (0..500).map(|_| 0.3 + rng.next_f32() * 0.7).collect();
        let impostor: Vec<f32> = (0..20_000).map(|_| rng.next_f32() * 0.5).collect();
        EvalReport::new(
            1000,
            &Identification::new(&searches),
            &Verification::new(&genuine, &impostor),
        )
    }

    #[test]
    fn the_report_gives_a_threshold_per_target_and_explains_the_rates() {
        let r = report();
        assert_eq!((r.mated_searches, r.nonmated_searches), (1000, 3000));
        assert_eq!((r.genuine_pairs, r.impostor_pairs), (500, 20_000));
        assert_eq!(r.rank1_rate, Some(0.98));
        assert_eq!(r.identification.len(), 3);
        assert_eq!(r.verification.len(), 3);
        assert!(
            !r.identification[2].resolvable,
            "1 in 6,000 from 3,000 searches"
        );
        assert!(r.verification[2].resolvable, "1e-4 from 20,000 pairs");
        let md = r.to_markdown();
        for needle in [
            "| 1 in 100 |",
            "| 1 in 1,000 |",
            "| 1 in 6,000 |",
            "| 1 in 10,000 |",
            "passers-by",
            "walk past undetected",
            "Rank-1 identification rate (closed set, any score): 98.0%",
            "Not resolvable with 3,000 non-mated searches: a target of 1 in 6,000 needs at least \
             6,000.",
            &format!("| {} |", r.identification[1].threshold),
        ] {
            assert!(md.contains(needle), "missing {needle:?} in\n{md}");
        }
        assert!(!md.contains("impostor pairs:"), "{md}");
    }

    #[test]
    fn a_report_without_data_says_what_is_missing() {
        let md =
            EvalReport::new(0, &Identification::default(), &Verification::default()).to_markdown();
        assert!(md.contains("No non-mated searches"), "{md}");
        assert!(md.contains("No impostor pairs"), "{md}");
    }

    #[test]
    fn rates_read_well() {
        assert_eq!(percent(0.969), "96.9%");
        assert_eq!(percent(0.0098), "0.98%");
        assert_eq!(percent(1.0 / 6000.0), "0.017%");
        assert_eq!(percent(0.0), "0%");
        assert_eq!(percent(1.0), "100%");
        assert_eq!(percent(0.9996), "99.960%");
        assert_eq!(percent(0.98), "98.0%");
        assert_eq!(percent(0.999), "99.90%");
        assert_eq!(one_in(1.0 / 6000.0), "1 in 6,000");
        assert_eq!(one_in(0.3), "30.0%");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(thousands(999), "999");
        assert_eq!(needed(1.0 / 6000.0), 6000);
        assert_eq!(needed(1e-3), 1000);
    }
}
