//! The watch list of one deployment and its digest.
//!
//! The digest is a sha256 over a canonical encoding of every entry (reference, category, image
//! hash, template) in reference order. It is what the reviewing officer signs off and what every
//! matcher replica must report after loading: if one bit of one template differs, the digests
//! differ and the deployment is not verified.

use lfr_schemas::WatchlistCategory;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// The force's subject reference (e.g. a custody record number), never a name.
    pub reference: String,
    pub category: WatchlistCategory,
    pub note: String,
    /// sha256 of the reference image as enrolled.
    pub image_sha256: String,
    /// L2-normalised template of the reference image.
    pub template: Vec<f32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WatchList {
    pub deployment: String,
    /// Embedder (manifest name) the templates were made with; probes of another model never match.
    pub model: String,
    pub entries: Vec<Entry>,
}

impl WatchList {
    pub fn new(deployment: &str, model: &str, mut entries: Vec<Entry>) -> WatchList {
        entries.sort_by(|a, b| {
            a.reference
                .cmp(&b.reference)
                .then(a.image_sha256.cmp(&b.image_sha256))
        });
        WatchList {
            deployment: deployment.into(),
            model: model.into(),
            entries,
        }
    }

    /// Hex sha256 of the canonical encoding; independent of the order entries were added in.
    pub fn digest(&self) -> String {
        let mut entries: Vec<&Entry> = self.entries.iter().collect();
        entries.sort_by(|a, b| {
            a.reference
                .cmp(&b.reference)
                .then(a.image_sha256.cmp(&b.image_sha256))
        });
        let mut h = Sha256::new();
        let field = |h: &mut Sha256, bytes: &[u8]| {
            h.update((bytes.len() as u64).to_le_bytes());
            h.update(bytes);
        };
        field(&mut h, b"lfr-watchlist-v1");
        field(&mut h, self.deployment.as_bytes());
        field(&mut h, self.model.as_bytes());
        for e in entries {
            field(&mut h, e.reference.as_bytes());
            field(&mut h, format!("{:?}", e.category).as_bytes());
            field(&mut h, e.image_sha256.as_bytes());
            let template: Vec<u8> = e.template.iter().flat_map(|v| v.to_le_bytes()).collect();
            field(&mut h, &template);
        }
        hex(&h.finalize())
    }

    /// Subjects (distinct references) on the list.
    pub fn subjects(&self) -> usize {
        let mut refs: Vec<&str> = self.entries.iter().map(|e| e.reference.as_str()).collect();
        refs.dedup();
        refs.len()
    }
}

pub use lfr_schemas::hex;

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(r: &str, t: f32) -> Entry {
        Entry {
            reference: r.into(),
            category: WatchlistCategory::Wanted,
            note: String::new(),
            image_sha256: sha256_hex(r.as_bytes()),
            template: vec![t, 0.0],
        }
    }

    #[test]
    fn the_digest_ignores_order_and_catches_any_change() {
        let a = WatchList::new("d1", "m", vec![entry("A", 1.0), entry("B", 0.0)]);
        let b = WatchList::new("d1", "m", vec![entry("B", 0.0), entry("A", 1.0)]);
        assert_eq!(a.digest(), b.digest());
        let mut tampered = a.clone();
        tampered.entries[0].template[0] = f32::from_bits(1.0f32.to_bits() ^ 1);
        assert_ne!(a.digest(), tampered.digest());
        let mut recategorised = a.clone();
        recategorised.entries[1].category = WatchlistCategory::Blue;
        assert_ne!(a.digest(), recategorised.digest());
        assert_ne!(
            a.digest(),
            WatchList::new("d2", "m", a.entries.clone()).digest()
        );
    }
}
