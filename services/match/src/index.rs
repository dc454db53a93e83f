//! # The watch-list index: which enrolled faces look most like this probe?
//!
//! Every face the embed service sees becomes a *template*: an L2-normalised vector of `dim` floats
//! (192 for MobileFaceNet, 128 for dlib ResNet). Two templates of the same person point in nearly
//! the same direction, so their *cosine similarity* is high. For unit vectors the cosine is just
//! the dot product, which is what this index computes: given a probe, it returns the `k` watch-list
//! entries with the highest dot product, best first. Deciding whether the best score is high enough
//! to raise an alert (the threshold `lfr eval` calibrates) is the caller's job, not the index's.
//!
//! The work is done by [faiss](https://github.com/facebookresearch/faiss) through the `faiss`
//! crate, in one of two ways ([`IndexKind`]):
//!
//! - **`Flat`** (the default) compares the probe with every template: exact, no training, no
//!   tuning. One 192-d probe against 10,000 templates reads 7.7 MB and takes well under a
//!   millisecond here, which covers any bespoke watch list a deployment is authorised to hold.
//! - **`Factory("HNSW32,Flat")`**, or any other faiss [index factory] string, for very large lists.
//!   Approximate indexes trade exactness (an enrolled face may occasionally not be the top hit) for
//!   speed, and cost build time. Their search-time knobs (`efSearch` for HNSW, `nprobe` for IVF)
//!   are set with [`WatchlistIndex::set_parameter`]; faiss's defaults favour speed over finding
//!   the enrolled face. Indexes that need training (`"IVF256,Flat"`...) are trained on the watch
//!   list itself. Every factory index is built with the inner-product metric.
//!
//! Entries are numbered by their position in the slice given to [`WatchlistIndex::build`]; the
//! match service maps that number back to its own watch-list record. The index is built once per
//! watch-list version and never changed afterwards: a new list means a new index.
//!
//! Templates are checked when the index is built (right length, finite, unit length within
//! [`UNIT_TOLERANCE`]), and probes when they are searched, so a bad template is reported with its
//! entry number instead of quietly producing scores that are not cosines.
//!
//! ## Threads
//!
//! Faiss documents its CPU indexes as safe for concurrent searches as long as nothing modifies
//! them (wiki: "Threads and asynchronous calls"), and the `faiss` crate marks its index types
//! `Send + Sync`. Its `Index::search` takes
//! `&mut self` all the same; only some types (among them the flat index) also implement
//! `ConcurrentIndex::search(&self)`. So a `Flat` index is searched through `&self` without a lock,
//! and a factory-built index sits behind a `Mutex`: searches on it take turns, which costs nothing
//! on a box where one task does the matching, and needs no `unsafe` here. Either way
//! `WatchlistIndex` is `Send + Sync` and can be shared through an `Arc` between tokio tasks.
//!
//! A search is CPU work that does not yield: microseconds for small lists, milliseconds for a
//! 100,000-entry flat list. Call it from `spawn_blocking` when lists are that large.
//!
//! Faiss runs threads of its own when one call carries several probes (OpenMP, and OpenBLAS from
//! 20 probes on) or builds an HNSW graph; a single probe never does. On a small machine shared with
//! the embedder those threads fight for the cores: a batch of 8 probes took up to 5 times longer
//! with two threads than with one here. Run the service with `OMP_NUM_THREADS=1`, which both
//! libraries read once, when the process starts (`omp_set_num_threads` would not do: it only
//! changes the thread that calls it).
//!
//! [index factory]: https://github.com/facebookresearch/faiss/wiki/The-index-factory

use anyhow::{bail, ensure, Context, Result};
use faiss::index::autotune::ParameterSpace;
use faiss::index::{ConcurrentIndex, IndexImpl, SearchResult};
use faiss::{index_factory, FlatIndex, Index, MetricType};
use std::sync::{Mutex, PoisonError};

/// How far a template's length may be from 1 before it is refused.
pub const UNIT_TOLERANCE: f32 = 1e-3;

/// Which faiss index holds the watch list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum IndexKind {
    /// Exact search: the probe is compared with every template.
    #[default]
    Flat,
    /// A faiss index factory string, such as `"HNSW32,Flat"`, built with the inner-product metric.
    Factory(String),
}

/// The templates of one watch list, ready to be searched.
#[derive(Debug)]
pub struct WatchlistIndex {
    dim: usize,
    len: usize,
    kind: IndexKind,
    inner: Inner,
}

#[derive(Debug)]
enum Inner {
    Flat(FlatIndex),
    Factory(Mutex<IndexImpl>),
}

impl WatchlistIndex {
    /// Builds the index from `templates`, each `dim` unit-length floats; entry `i` is
    /// `templates[i]`. An empty list is allowed: every search on it finds nothing.
    pub fn build(dim: usize, templates: &[Vec<f32>], kind: IndexKind) -> Result<Self> {
        ensure!(dim > 0, "template dimension must be positive");
        let faiss_dim = u32::try_from(dim).context("template dimension too large")?;

        // Faiss wants all rows in one contiguous array.
        let mut rows = Vec::with_capacity(templates.len() * dim);
        for (entry, template) in templates.iter().enumerate() {
            check_template(template, dim).with_context(|| format!("watch-list entry {entry}"))?;
            rows.extend_from_slice(template);
        }

        let inner = match &kind {
            IndexKind::Flat => {
                let mut index = FlatIndex::new_ip(faiss_dim)?;
                index.add(&rows)?;
                Inner::Flat(index)
            }
            IndexKind::Factory(description) => {
                let mut index = index_factory(faiss_dim, description, MetricType::InnerProduct)
                    .with_context(|| format!("faiss index factory {description:?}"))?;
                if !templates.is_empty() {
                    if !index.is_trained() {
                        index
                            .train(&rows)
                            .with_context(|| format!("training {description:?}"))?;
                    }
                    index.add(&rows)?;
                }
                Inner::Factory(Mutex::new(index))
            }
        };
        Ok(WatchlistIndex {
            dim,
            len: templates.len(),
            kind,
            inner,
        })
    }

    /// Sets a search-time parameter of a factory-built index, such as `efSearch` for HNSW (how
    /// many candidates it keeps while walking its graph: higher finds the true best match more
    /// often, and costs time) or `nprobe` for IVF. Set it before the index is shared.
    pub fn set_parameter(&mut self, name: &str, value: f64) -> Result<()> {
        match &mut self.inner {
            Inner::Flat(_) => bail!("the flat index has no parameter {name:?}: it is always exact"),
            Inner::Factory(index) => {
                let index = index.get_mut().unwrap_or_else(PoisonError::into_inner);
                ParameterSpace::new()?
                    .set_index_parameter(index, name, value)
                    .with_context(|| format!("setting {name}={value}"))
            }
        }
    }

    /// The number of entries.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The number of floats in a template.
    pub fn dim(&self) -> usize {
        self.dim
    }

    pub fn kind(&self) -> &IndexKind {
        &self.kind
    }

    /// The `k` entries most similar to `probe` as `(entry, cosine)`, best first. Fewer when the
    /// list holds fewer than `k` entries.
    pub fn search(&self, probe: &[f32], k: usize) -> Result<Vec<(usize, f32)>> {
        check_template(probe, self.dim).context("probe")?;
        let mut hits = self.search_rows(probe, 1, k)?;
        Ok(hits.pop().unwrap_or_default())
    }

    /// [`search`](Self::search) for several probes in one call: one result list per probe, in
    /// the order of `probes`.
    pub fn search_batch(&self, probes: &[Vec<f32>], k: usize) -> Result<Vec<Vec<(usize, f32)>>> {
        let mut rows = Vec::with_capacity(probes.len() * self.dim);
        for (i, probe) in probes.iter().enumerate() {
            check_template(probe, self.dim).with_context(|| format!("probe {i}"))?;
            rows.extend_from_slice(probe);
        }
        self.search_rows(&rows, probes.len(), k)
    }

    /// Searches `n` checked probes laid end to end in `rows`.
    fn search_rows(&self, rows: &[f32], n: usize, k: usize) -> Result<Vec<Vec<(usize, f32)>>> {
        let k = k.min(self.len);
        if k == 0 || n == 0 {
            return Ok(vec![Vec::new(); n]);
        }
        let SearchResult { distances, labels } = match &self.inner {
            Inner::Flat(index) => ConcurrentIndex::search(index, rows, k)?,
            Inner::Factory(index) => {
                // Searching never modifies the index, so a panic elsewhere while the lock was
                // held cannot have left it half-changed: a poisoned lock is safe to use.
                let mut index = index.lock().unwrap_or_else(PoisonError::into_inner);
                Index::search(&mut *index, rows, k)?
            }
        };
        // Faiss answers `k` slots per probe; approximate indexes mark slots they could not fill
        // with label -1 (`Idx::none()`), which `get()` turns into `None`.
        let hits = labels
            .chunks(k)
            .zip(distances.chunks(k))
            .map(|(labels, scores)| {
                labels
                    .iter()
                    .zip(scores)
                    .filter_map(|(label, &score)| Some((label.get()? as usize, score)))
                    .collect()
            })
            .collect();
        Ok(hits)
    }
}

/// A template must have `dim` finite values and length 1: only then is a dot product a cosine.
fn check_template(template: &[f32], dim: usize) -> Result<()> {
    if template.len() != dim {
        bail!("has {} values, expected {dim}", template.len());
    }
    if let Some(i) = template.iter().position(|x| !x.is_finite()) {
        bail!("value {i} is {}", template[i]);
    }
    let squares: f64 = template.iter().map(|&x| f64::from(x) * f64::from(x)).sum();
    let length = squares.sqrt();
    if (length - 1.0).abs() > f64::from(UNIT_TOLERANCE) {
        bail!("is not L2-normalised (length {length:.6})");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// xorshift64*: enough randomness for tests, and no dependency.
    struct Rng(u64);

    impl Rng {
        /// A value in [-1, 1).
        fn next(&mut self) -> f32 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            let bits = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40; // 24 bits
            bits as f32 / (1u64 << 23) as f32 - 1.0
        }

        fn unit(&mut self, dim: usize) -> Vec<f32> {
            let v: Vec<f32> = (0..dim).map(|_| self.next()).collect();
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            v.into_iter().map(|x| x / norm).collect()
        }

        fn units(&mut self, n: usize, dim: usize) -> Vec<Vec<f32>> {
            (0..n).map(|_| self.unit(dim)).collect()
        }
    }

    fn dot(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    /// The top `k` by brute force, best first.
    fn brute_force(templates: &[Vec<f32>], probe: &[f32], k: usize) -> Vec<(usize, f32)> {
        let mut all: Vec<_> = templates
            .iter()
            .map(|t| dot(t, probe))
            .enumerate()
            .collect();
        all.sort_by(|a, b| b.1.total_cmp(&a.1));
        all.truncate(k);
        all
    }

    /// Same scores rank by rank, and every returned entry really has the score reported for it
    /// (entries may swap places only where their scores tie within rounding).
    fn assert_same(templates: &[Vec<f32>], probe: &[f32], got: &[(usize, f32)], k: usize) {
        let want = brute_force(templates, probe, k);
        assert_eq!(got.len(), want.len());
        for (&(entry, score), &(_, want_score)) in got.iter().zip(&want) {
            assert!((score - want_score).abs() < 1e-5, "{got:?} vs {want:?}");
            assert!((score - dot(&templates[entry], probe)).abs() < 1e-5);
        }
    }

    #[test]
    fn flat_is_exact() {
        let mut rng = Rng(0x5EED);
        let templates = rng.units(2_000, 192);
        let index = WatchlistIndex::build(192, &templates, IndexKind::Flat).unwrap();
        assert_eq!((index.len(), index.dim()), (2_000, 192));
        for _ in 0..20 {
            let probe = rng.unit(192);
            assert_same(&templates, &probe, &index.search(&probe, 5).unwrap(), 5);
        }
    }

    #[test]
    fn batch_equals_one_by_one() {
        let mut rng = Rng(7);
        let templates = rng.units(500, 128);
        let index = WatchlistIndex::build(128, &templates, IndexKind::Flat).unwrap();
        // 30 probes: faiss switches to BLAS from 20 probes on, a different code path.
        let probes = rng.units(30, 128);
        let batch = index.search_batch(&probes, 3).unwrap();
        assert_eq!(batch.len(), probes.len());
        for (probe, hits) in probes.iter().zip(&batch) {
            assert_same(&templates, probe, hits, 3);
            // Same entries; scores differ in the last bits (BLAS sums in another order).
            let one: Vec<_> = index
                .search(probe, 3)
                .unwrap()
                .into_iter()
                .map(|h| h.0)
                .collect();
            assert_eq!(hits.iter().map(|h| h.0).collect::<Vec<_>>(), one);
        }
        assert!(index.search_batch(&[], 3).unwrap().is_empty());
    }

    #[test]
    fn a_template_finds_itself() {
        let mut rng = Rng(42);
        let templates = rng.units(1_000, 192);
        for kind in [IndexKind::Flat, IndexKind::Factory("HNSW32,Flat".into())] {
            let index = WatchlistIndex::build(192, &templates, kind.clone()).unwrap();
            for entry in [0, 1, 500, 999] {
                let hits = index.search(&templates[entry], 1).unwrap();
                assert_eq!(hits.len(), 1, "{kind:?}");
                assert_eq!(hits[0].0, entry, "{kind:?}");
                assert!((hits[0].1 - 1.0).abs() < 1e-5, "{kind:?}: {hits:?}");
            }
        }
    }

    #[test]
    fn hnsw_scores_are_cosines_best_first() {
        let mut rng = Rng(3);
        let templates = rng.units(1_000, 64);
        let kind = IndexKind::Factory("HNSW32,Flat".into());
        let index = WatchlistIndex::build(64, &templates, kind).unwrap();
        let probe = rng.unit(64);
        let hits = index.search(&probe, 10).unwrap();
        assert_eq!(hits.len(), 10);
        assert!(hits.windows(2).all(|w| w[0].1 >= w[1].1), "{hits:?}");
        for (entry, score) in hits {
            assert!((score - dot(&templates[entry], &probe)).abs() < 1e-5);
        }
    }

    #[test]
    fn search_parameters_are_set_or_refused() {
        let templates = Rng(4).units(100, 32);
        let hnsw = IndexKind::Factory("HNSW32,Flat".into());
        let mut index = WatchlistIndex::build(32, &templates, hnsw).unwrap();
        index.set_parameter("efSearch", 128.0).unwrap();
        assert_eq!(index.search(&templates[50], 1).unwrap()[0].0, 50);
        assert!(index.set_parameter("noSuchParameter", 1.0).is_err());
        let mut flat = WatchlistIndex::build(32, &templates, IndexKind::Flat).unwrap();
        assert!(flat.set_parameter("efSearch", 128.0).is_err());
    }

    #[test]
    fn a_factory_index_that_needs_training_is_trained() {
        let mut rng = Rng(11);
        let templates = rng.units(400, 32);
        let kind = IndexKind::Factory("IVF4,Flat".into());
        let index = WatchlistIndex::build(32, &templates, kind).unwrap();
        let hits = index.search(&templates[123], 1).unwrap();
        assert_eq!(hits[0].0, 123);
    }

    #[test]
    fn a_bad_factory_string_is_an_error() {
        let templates = Rng(1).units(10, 16);
        let kind = IndexKind::Factory("NoSuchIndex".into());
        let err = WatchlistIndex::build(16, &templates, kind).unwrap_err();
        assert!(format!("{err:#}").contains("NoSuchIndex"), "{err:#}");
    }

    #[test]
    fn k_is_clamped_to_the_list() {
        let templates = Rng(9).units(3, 16);
        for kind in [IndexKind::Flat, IndexKind::Factory("HNSW32,Flat".into())] {
            let index = WatchlistIndex::build(16, &templates, kind).unwrap();
            let hits = index.search(&templates[2], 10).unwrap();
            assert_eq!(hits.len(), 3);
            assert_eq!(hits[0].0, 2);
            assert!(index.search(&templates[2], 0).unwrap().is_empty());
        }
    }

    #[test]
    fn an_empty_list_finds_nothing() {
        let probe = Rng(5).unit(192);
        for kind in [IndexKind::Flat, IndexKind::Factory("IVF16,Flat".into())] {
            let index = WatchlistIndex::build(192, &[], kind).unwrap();
            assert!(index.is_empty());
            assert!(index.search(&probe, 1).unwrap().is_empty());
            assert_eq!(
                index.search_batch(std::slice::from_ref(&probe), 1).unwrap(),
                vec![vec![]]
            );
            // The probe is still checked.
            assert!(index.search(&probe[..10], 1).is_err());
        }
    }

    #[test]
    fn a_probe_of_the_wrong_dimension_is_refused() {
        let mut rng = Rng(8);
        let index = WatchlistIndex::build(192, &rng.units(10, 192), IndexKind::Flat).unwrap();
        let err = index.search(&rng.unit(128), 1).unwrap_err();
        assert!(
            format!("{err:#}").contains("128 values, expected 192"),
            "{err:#}"
        );
        let err = index
            .search_batch(&[rng.unit(192), rng.unit(128)], 1)
            .unwrap_err();
        assert!(format!("{err:#}").starts_with("probe 1"), "{err:#}");
    }

    #[test]
    fn bad_templates_are_refused_by_entry_number() {
        let mut rng = Rng(13);
        let good = rng.units(5, 64);
        let with = |entry: usize, template: Vec<f32>| {
            let mut templates = good.clone();
            templates[entry] = template;
            let err = WatchlistIndex::build(64, &templates, IndexKind::Flat).unwrap_err();
            format!("{err:#}")
        };
        let doubled = good[3].iter().map(|x| x * 2.0).collect();
        assert!(with(3, doubled).starts_with("watch-list entry 3: is not L2-normalised"));
        let mut nan = good[1].clone();
        nan[7] = f32::NAN;
        assert_eq!(with(1, nan), "watch-list entry 1: value 7 is NaN");
        let mut inf = good[0].clone();
        inf[0] = f32::INFINITY;
        assert_eq!(with(0, inf), "watch-list entry 0: value 0 is inf");
        assert_eq!(
            with(4, vec![0.0; 64]),
            "watch-list entry 4: is not L2-normalised (length 0.000000)"
        );
        assert_eq!(
            with(2, rng.unit(63)),
            "watch-list entry 2: has 63 values, expected 64"
        );
        assert!(WatchlistIndex::build(0, &[], IndexKind::Flat).is_err());
    }

    #[test]
    fn nearly_unit_templates_are_accepted() {
        let mut template = Rng(21).unit(192);
        template.iter_mut().for_each(|x| *x *= 1.0005);
        assert!(WatchlistIndex::build(192, &[template], IndexKind::Flat).is_ok());
    }

    #[test]
    fn the_index_can_be_shared_between_tasks() {
        fn send_sync<T: Send + Sync + 'static>() {}
        send_sync::<WatchlistIndex>();

        let mut rng = Rng(17);
        let templates = rng.units(100, 32);
        let kind = IndexKind::Factory("HNSW32,Flat".into());
        let index = std::sync::Arc::new(WatchlistIndex::build(32, &templates, kind).unwrap());
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let (index, probe) = (index.clone(), templates[t].clone());
                std::thread::spawn(move || index.search(&probe, 1).unwrap()[0].0)
            })
            .collect();
        for (t, thread) in threads.into_iter().enumerate() {
            assert_eq!(thread.join().unwrap(), t);
        }
    }
}
