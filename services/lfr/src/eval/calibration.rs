//! Writing an evaluation's 1-in-1,000 operating point into the model manifest
//! (`lfr eval --write-calibration models/manifest.toml`), where deployments take their default
//! threshold from (`[artefact.embedder.calibration]`, read by
//! `lfr_vision::config::ModelsConfig::calibrated_threshold`).
//!
//! The manifest is hand-written TOML with comments that explain every model, so it is edited as
//! text: the embedder's `fpir_1_in_1000` and `measured_on` lines are replaced, or the section is
//! added at the end of that embedder's artefact. Whatever is written is parsed back and checked
//! before the file is replaced.

use lfr_vision::manifest::Manifest;
use std::path::Path;

/// The target: the DPIA's ceiling of one false alert in 1,000 searches of a face not on the list.
pub const TARGET_FPIR: f64 = 1e-3;

/// `text` (a manifest) with `embedder`'s calibration set to `threshold`, measured on `measured_on`.
pub fn set_calibration(
    text: &str,
    embedder: &str,
    threshold: f32,
    measured_on: &str,
) -> anyhow::Result<String> {
    let lines: Vec<&str> = text.lines().collect();
    let named = format!("name = \"{embedder}\"");
    let start = lines
        .iter()
        .position(|l| l.trim() == named)
        .ok_or_else(|| anyhow::anyhow!("the manifest has no artefact named {embedder:?}"))?;
    // The artefact runs to the next `[[artefact]]` (or the end).
    let end = lines[start + 1..]
        .iter()
        .position(|l| l.trim() == "[[artefact]]")
        .map_or(lines.len(), |i| start + 1 + i);
    let section = lines[start..end]
        .iter()
        .position(|l| l.trim() == "[artefact.embedder.calibration]")
        .map(|i| start + i);
    // Shortened upwards, never down: a lower threshold would let more false alerts through.
    let threshold = (threshold * 1000.0).ceil() / 1000.0;
    let value = format!("fpir_1_in_1000 = {threshold:.3}");
    let measured = format!("measured_on = {}", toml_string(measured_on));
    let mut out: Vec<String> = Vec::with_capacity(lines.len() + 4);
    match section {
        Some(at) => {
            // Replace the two keys inside the existing section (it ends at the next header).
            let section_end = lines[at + 1..end]
                .iter()
                .position(|l| l.trim_start().starts_with('['))
                .map_or(end, |i| at + 1 + i);
            out.extend(lines[..=at].iter().map(|l| l.to_string()));
            out.push(value);
            out.push(measured);
            out.extend(
                lines[at + 1..section_end]
                    .iter()
                    .filter(|l| {
                        let key = l.trim_start();
                        !key.starts_with("fpir_1_in_1000") && !key.starts_with("measured_on")
                    })
                    .map(|l| l.to_string()),
            );
            out.extend(lines[section_end..].iter().map(|l| l.to_string()));
        }
        None => {
            // Before the comments and blank lines that close the artefact.
            let mut insert = end;
            while insert > start && {
                let l = lines[insert - 1].trim();
                l.is_empty() || l.starts_with('#')
            } {
                insert -= 1;
            }
            out.extend(lines[..insert].iter().map(|l| l.to_string()));
            out.push(String::new());
            out.push("[artefact.embedder.calibration]".into());
            out.push(value);
            out.push(measured);
            out.extend(lines[insert..].iter().map(|l| l.to_string()));
        }
    }
    let mut written = out.join("\n");
    written.push('\n');
    let parsed: Manifest = toml::from_str(&written)
        .map_err(|e| anyhow::anyhow!("the calibrated manifest does not parse: {e}"))?;
    let got = parsed
        .artefact(embedder)?
        .embedder
        .as_ref()
        .and_then(|e| e.calibration.as_ref())
        .map(|c| c.fpir_1_in_1000);
    anyhow::ensure!(
        got.is_some_and(|t| (t - threshold).abs() < 5e-4),
        "the calibration did not land in {embedder}'s [artefact.embedder] section"
    );
    Ok(written)
}

/// Rewrite the manifest file at `path` with [`set_calibration`].
pub fn write(path: &Path, embedder: &str, threshold: f32, measured_on: &str) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    let updated = set_calibration(&text, embedder, threshold, measured_on)?;
    let tmp = path.with_extension("toml.new");
    std::fs::write(&tmp, updated)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

fn toml_string(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFEST: &str = r#"schema = 1

[[artefact]]
name = "a"
role = "embedder"
file = "a.onnx"
sha256 = "00"

[artefact.embedder]
dim = 2
template_size = [112, 112]
template = [[1.0, 1.0], [2.0, 1.0], [1.5, 1.5], [1.0, 2.0], [2.0, 2.0]]
metric = "cosine"
threshold = 0.45

# --------
# the next model

[[artefact]]
name = "b"
role = "embedder"
file = "b.onnx"
sha256 = "11"

[artefact.embedder]
dim = 2
template_size = [112, 112]
template = [[1.0, 1.0], [2.0, 1.0], [1.5, 1.5], [1.0, 2.0], [2.0, 2.0]]
metric = "cosine"
threshold = 0.5
"#;

    fn calibrated(text: &str, name: &str) -> Option<f32> {
        let m: Manifest = toml::from_str(text).unwrap();
        m.artefact(name)
            .unwrap()
            .embedder
            .as_ref()
            .unwrap()
            .calibration
            .as_ref()
            .map(|c| c.fpir_1_in_1000)
    }

    #[test]
    fn a_calibration_is_added_then_replaced_in_its_own_artefact_only() {
        let once = set_calibration(MANIFEST, "a", 0.6771, "LFW dev").unwrap();
        assert_eq!(
            calibrated(&once, "a"),
            Some(0.678),
            "rounded up, never down"
        );
        assert_eq!(calibrated(&once, "b"), None);
        assert!(once.contains("# the next model"), "comments are kept");
        let twice = set_calibration(&once, "a", 0.7, "LFW dev, again").unwrap();
        assert_eq!(calibrated(&twice, "a"), Some(0.7));
        assert_eq!(twice.matches("fpir_1_in_1000").count(), 1);
        assert!(twice.contains("LFW dev, again"));
        let last = set_calibration(&twice, "b", 0.55, "x").unwrap();
        assert_eq!(calibrated(&last, "b"), Some(0.55));
        assert_eq!(calibrated(&last, "a"), Some(0.7));
        assert!(set_calibration(MANIFEST, "nope", 0.5, "x").is_err());
    }

    #[test]
    fn the_repository_manifest_takes_a_calibration() {
        let text = include_str!("../../../../models/manifest.toml");
        let out = set_calibration(text, "mobilefacenet", 0.681, "test").unwrap();
        assert_eq!(calibrated(&out, "mobilefacenet"), Some(0.681));
    }
}
