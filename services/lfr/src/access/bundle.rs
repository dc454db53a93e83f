//! The bundle an export writes for the data subject: per alert found, the probe chip, the context
//! image with every other face blurred, the watch-list image only where it is the subject's own,
//! and the alert's facts (no staff account ids, no free text); and a manifest with the sha256 of
//! every file. Every image is re-encoded, so no metadata survives.

use super::*;
use lfr_identity::credentials::create_private;

/// An alert as the bundle's `alert.json` tells it: what happened, when, where; no staff account
/// ids and no free text (operators' reasons, officers' notes), which may name other people.
#[derive(Serialize)]
struct AlertRecord {
    alert_id: String,
    deployment: String,
    camera: String,
    captured_at: String,
    raised_at: String,
    category: &'static str,
    /// Similarity of the alert's probe face to the data subject's photo.
    similarity_to_subject: f32,
    /// The similarity that raised the alert (probe face against the watch-list image).
    watchlist_score: f32,
    corroborating_frames: u16,
    track_frames: u16,
    review: &'static str,
    decided_at: Option<String>,
    outcomes: Vec<OutcomeRecord>,
    legal_hold: bool,
    legal_hold_released_at: Option<String>,
    images: Images,
    withheld: Vec<&'static str>,
}

#[derive(Serialize)]
struct OutcomeRecord {
    outcome: &'static str,
    description: &'static str,
    recorded_at: String,
}

#[derive(Serialize)]
struct Images {
    /// The face the camera saw, as the matcher compared it.
    probe: &'static str,
    context: Option<&'static str>,
    context_note: String,
    reference: Option<&'static str>,
    reference_note: String,
}

#[derive(Serialize)]
struct Manifest<'a> {
    request: &'a str,
    /// What the request covers: the deployments and period searched.
    scope: String,
    generated_at: String,
    threshold: f32,
    searched: usize,
    count: usize,
    skipped: Skipped,
    alerts: Vec<&'a str>,
    /// Path inside the bundle -> sha256 of the file.
    files: BTreeMap<String, String>,
}

/// Write the bundle into the new directory `out`; returns the sha256 of `manifest.json`.
pub(super) async fn write_bundle(
    out: &Path,
    request: &SearchArgs,
    scope: &Scope,
    search: &Search,
    vault: &Vault,
    vision: &mut Vision,
    subject: &[f32],
) -> anyhow::Result<String> {
    let mut files = BTreeMap::new();
    let mut alerts = Vec::new();
    for (n, m) in search.found.iter().enumerate() {
        let alert = &m.entry.alert;
        alerts.push(alert.alert_id.as_str());
        let folder = folder_name(n, &alert.alert_id);
        let dir = out.join(&folder);
        std::fs::DirBuilder::new().mode(0o700).create(&dir)?;
        let mut write = |name: &str, bytes: &[u8]| -> anyhow::Result<()> {
            create_private(&dir.join(name), bytes)?;
            files.insert(format!("{folder}/{name}"), sha256_hex(bytes));
            Ok(())
        };
        write("probe.jpg", &m.probe_jpeg)?;

        let context = open(vault, alert, AlertImage::Context, &alert.context_jpeg).await;
        let (context_file, context_note) = match context {
            Err(why) => (None, format!("not included: {why}")),
            Ok(jpeg) => match tokio::task::block_in_place(|| {
                vision.redact(&jpeg, subject, request.threshold)
            })? {
                None => (None, "not included: the image does not decode".into()),
                Some((bytes, redaction)) => {
                    write("context.jpg", &bytes)?;
                    let blurred = redaction.blurred.len();
                    let note = match redaction.subject {
                        Some(_) => {
                            format!("{blurred} other faces blurred; the data subject's face is not")
                        }
                        None => format!(
                            "{blurred} faces blurred: none was confidently the data subject's"
                        ),
                    };
                    (Some("context.jpg"), note)
                }
            },
        };

        let (reference_file, reference_note) = if disowned(&m.entry) {
            (
                None,
                "withheld: the alert was judged a false alert, so the watch-list image is of \
                 another person"
                    .into(),
            )
        } else {
            match open(vault, alert, AlertImage::Reference, &alert.reference_jpeg).await {
                Err(why) => (None, format!("not included: {why}")),
                Ok(jpeg) if jpeg.is_empty() => (
                    None,
                    "not included: no watch-list image was kept with the alert".into(),
                ),
                Ok(jpeg) => match tokio::task::block_in_place(|| {
                    vision.redact(&jpeg, subject, request.threshold)
                })? {
                    Some((bytes, redaction)) if redaction.subject.is_some() => {
                        write("reference.jpg", &bytes)?;
                        let note = match redaction.blurred.len() {
                            0 => "the watch-list image the probe face was matched against".into(),
                            n => format!(
                                "the watch-list image the probe face was matched against; {n} \
                                 other faces blurred"
                            ),
                        };
                        (Some("reference.jpg"), note)
                    }
                    _ => (
                        None,
                        "withheld: the watch-list image does not show the data subject".into(),
                    ),
                },
            }
        };

        let record = AlertRecord {
            alert_id: alert.alert_id.clone(),
            deployment: alert.deployment.clone(),
            camera: alert.probe.frame.camera.clone(),
            captured_at: format_utc(alert.probe.frame.captured_at),
            raised_at: format_utc(alert.raised_at),
            category: alert.category.as_str(),
            similarity_to_subject: m.similarity,
            watchlist_score: alert.score,
            corroborating_frames: alert.corroborating_frames,
            track_frames: alert.track_frames,
            review: review(&m.entry),
            decided_at: m.entry.decision.as_ref().map(|d| format_utc(d.decided_at)),
            outcomes: m
                .entry
                .outcomes
                .iter()
                .map(|o| OutcomeRecord {
                    outcome: o.outcome.as_str(),
                    description: o.outcome.describe(),
                    recorded_at: format_utc(o.recorded_at),
                })
                .collect(),
            legal_hold: m.entry.on_legal_hold(),
            legal_hold_released_at: m.entry.release.as_ref().map(|r| format_utc(r.released_at)),
            images: Images {
                probe: "probe.jpg",
                context: context_file,
                context_note,
                reference: reference_file,
                reference_note,
            },
            withheld: vec![
                "operators' and officers' account ids",
                "operators' reasons and officers' notes (free text)",
                "the watch-list entry reference and case references",
            ],
        };
        write("alert.json", &serde_json::to_vec_pretty(&record)?)?;
    }
    let manifest = Manifest {
        request: &request.request,
        scope: scope.describe(),
        generated_at: format_utc(Timestamp::now()),
        threshold: request.threshold,
        searched: search.searched,
        count: search.found.len(),
        skipped: search.skipped(),
        alerts,
        files,
    };
    let bytes = serde_json::to_vec_pretty(&manifest)?;
    create_private(&out.join("manifest.json"), &bytes)?;
    Ok(sha256_hex(&bytes))
}

/// Someone judged the alert's subject not to be the watch-list person.
fn disowned(entry: &Entry) -> bool {
    matches!(&entry.decision, Some(d) if d.decision == Decision::RejectedFalseAlert)
        || entry
            .outcomes
            .iter()
            .any(|o| o.outcome == Outcome::NotThePersonFalseAlert)
}

/// One of an alert's sealed images, or why it is not available.
async fn open(
    vault: &Vault,
    alert: &lfr_schemas::CandidateAlert,
    image: AlertImage,
    sealed: &lfr_schemas::Sealed,
) -> Result<Vec<u8>, String> {
    vault
        .unseal(sealed, &image.aad(&alert.deployment, &alert.alert_id))
        .await
        .map_err(|e| {
            if e.is_gone() {
                "its key was destroyed (crypto-shredded)".to_string()
            } else {
                eprintln!(
                    "alert {}: the {} image does not open: {e}",
                    alert.alert_id,
                    image.as_str()
                );
                "it does not open".to_string()
            }
        })
}

/// The alert's folder in the bundle: its id, or a numbered name if the id is not a safe name.
fn folder_name(n: usize, alert_id: &str) -> String {
    let safe = !alert_id.is_empty()
        && alert_id.len() <= 64
        && alert_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if safe {
        alert_id.to_string()
    } else {
        format!("alert-{:03}", n + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsafe_alert_ids_get_numbered_folders() {
        assert_eq!(folder_name(0, "3f9c0e1a"), "3f9c0e1a");
        assert_eq!(folder_name(0, "../etc"), "alert-001");
        assert_eq!(folder_name(4, ""), "alert-005");
    }
}
