//! Running an evaluation: a folder of labelled photos (one sub-folder per person) becomes a gallery
//! and probes, processed by exactly the detector, quality gate, aligner and embedder the services
//! run, then searched 1:N as the matcher would.
//!
//! Protocol (as for LFW in open-set studies): the first photo of every person with two or more
//! photos is enrolled (up to `--max-enrolled` people); their other photos are mated searches; every
//! photo of everyone else (people with a single photo, people beyond the enrolment limit) is a
//! non-mated search (a stranger walking past). The face used is the one nearest the photo's centre
//! (labelled sets centre the labelled person). A photo in which no face passes the quality gate is
//! a failure to acquire, counted and reported, not silently dropped.

use super::calibration;
use super::det_plot::render_svg;
use super::metrics::{EvalReport, Identification, Search, Verification, DET_POINTS};
use lfr_vision::config::ModelsConfig;
use lfr_vision::embedder::{cosine, Embedder};
use lfr_vision::faces::FaceFinder;
use opencv::imgcodecs;
use opencv::prelude::*;
use std::path::{Path, PathBuf};

#[derive(clap::Args)]
pub struct EvalArgs {
    /// Folder with one sub-folder of photos per person.
    #[arg(long)]
    pub photos: PathBuf,
    /// Where report.md, report.json and det.svg are written.
    #[arg(long, default_value = "results/eval")]
    pub out: PathBuf,
    /// Embedder to evaluate (a manifest name); the detector and quality gate are the defaults.
    #[arg(long, default_value = "mobilefacenet")]
    pub embedder: String,
    /// Use at most this many enrolled identities (0: all).
    #[arg(long, default_value_t = 0)]
    pub max_enrolled: usize,
    /// Use at most this many non-mated search photos (0: all): photos of people with a single photo
    /// and of people beyond `--max-enrolled`.
    #[arg(long, default_value_t = 0)]
    pub max_nonmated: usize,
    /// ONNX Runtime threads per model.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Write the measured 1-in-1,000 threshold into this model manifest as the embedder's
    /// calibration (every deployment's default threshold); refused unless the photos hold enough
    /// non-mated searches to measure it (1,000 or more).
    #[arg(long = "write-calibration")]
    pub write_calibration: Option<PathBuf>,
}

/// One person's photos, in name order.
struct Person {
    photos: Vec<PathBuf>,
}

pub fn run(args: EvalArgs) -> anyhow::Result<()> {
    let people = people(&args.photos)?;
    let (mut enrolled, singles): (Vec<&Person>, Vec<&Person>) =
        people.iter().partition(|p| p.photos.len() >= 2);
    // People beyond the enrolment limit are not on the list: all their photos are strangers too.
    let not_enrolled = if args.max_enrolled > 0 && enrolled.len() > args.max_enrolled {
        enrolled.split_off(args.max_enrolled)
    } else {
        Vec::new()
    };
    let mut strangers: Vec<&PathBuf> = singles
        .iter()
        .chain(&not_enrolled)
        .flat_map(|p| &p.photos)
        .collect();
    if args.max_nonmated > 0 {
        strangers.truncate(args.max_nonmated);
    }
    anyhow::ensure!(
        !enrolled.is_empty(),
        "no person in {} has two or more photos",
        args.photos.display()
    );

    let models = ModelsConfig {
        embedder: args.embedder.clone(),
        threads: args.threads,
        ..Default::default()
    };
    let store = models.store()?;
    let mut pipeline = Pipeline {
        finder: models.face_finder(&store)?,
        embedder: models.embedder(&store)?,
        failures: 0,
        processed: 0,
    };

    // Gallery: one template per enrolled person (None when no face was acquired).
    let gallery: Vec<Option<Vec<f32>>> = enrolled
        .iter()
        .map(|p| pipeline.template(&p.photos[0]))
        .collect();
    let enrolled_templates: Vec<(usize, &Vec<f32>)> = gallery
        .iter()
        .enumerate()
        .filter_map(|(i, t)| t.as_ref().map(|t| (i, t)))
        .collect();

    let mut searches = Vec::new();
    let mut genuine = Vec::new();
    let mut impostor = Vec::new();
    for (person, p) in enrolled.iter().enumerate() {
        let Some(mate) = gallery[person].as_ref() else {
            continue;
        };
        for photo in &p.photos[1..] {
            let Some(probe) = pipeline.template(photo) else {
                continue;
            };
            let mate_score = cosine(&probe, mate);
            let mut best_other = f32::NEG_INFINITY;
            for (other, t) in &enrolled_templates {
                if *other != person {
                    let s = cosine(&probe, t);
                    impostor.push(s);
                    best_other = best_other.max(s);
                }
            }
            genuine.push(mate_score);
            searches.push(Search::Mated {
                mate_score,
                mate_rank1: mate_score > best_other,
            });
        }
    }
    // The strictest thresholds are set by the few highest non-mated scores: keep them to show.
    let mut highest_nonmated: Vec<(f32, &Path, &Path)> = Vec::new();
    for photo in &strangers {
        let Some(probe) = pipeline.template(photo) else {
            continue;
        };
        let mut top = (f32::NEG_INFINITY, 0);
        for (i, t) in &enrolled_templates {
            let s = cosine(&probe, t);
            impostor.push(s);
            if s > top.0 {
                top = (s, *i);
            }
        }
        searches.push(Search::NonMated { top_score: top.0 });
        if top.0.is_finite() {
            highest_nonmated.push((top.0, photo, &enrolled[top.1].photos[0]));
        }
    }
    highest_nonmated.sort_by(|a, b| b.0.total_cmp(&a.0));
    highest_nonmated.truncate(10);

    let identification = Identification::new(&searches);
    let verification = Verification::new(&genuine, &impostor);
    let report = EvalReport::new(enrolled_templates.len(), &identification, &verification);
    let mut markdown = format!(
        "# lfr eval: {}\n\nPhotos: {} ({} people). Embedder: `{}`. Photos processed: {}, failures to \
         acquire a face that passes the quality gate: {} ({:.2}%).\n\n",
        args.photos.display(),
        people.iter().map(|p| p.photos.len()).sum::<usize>(),
        people.len(),
        args.embedder,
        pipeline.processed,
        pipeline.failures,
        100.0 * pipeline.failures as f64 / pipeline.processed.max(1) as f64
    );
    markdown.push_str(&report.to_markdown());
    markdown.push_str(&highest_nonmated_table(&highest_nonmated, &args.photos));
    markdown.push_str("\n![DET curve](det.svg)\n");

    let curve: Vec<(f64, f64)> = identification
        .det_curve(DET_POINTS)
        .iter()
        .map(|p| (p.fpir, p.fnir))
        .collect();
    let labels: Vec<String> = report
        .identification
        .iter()
        .map(|o| format!("FPIR {:.0e}: t={:.3}", o.target_fpir, o.threshold))
        .collect();
    let marks: Vec<(&str, f64, f64)> = report
        .identification
        .iter()
        .zip(&labels)
        .filter_map(|(o, l)| o.fnir.map(|f| (l.as_str(), o.fpir, f)))
        .collect();
    let svg = render_svg(&[(args.embedder.as_str(), curve)], &marks);

    std::fs::create_dir_all(&args.out)?;
    std::fs::write(args.out.join("report.md"), &markdown)?;
    std::fs::write(
        args.out.join("report.json"),
        serde_json::to_string_pretty(&report)?,
    )?;
    std::fs::write(args.out.join("det.svg"), svg)?;
    println!("{markdown}");
    println!("written: {}", args.out.join("report.md").display());
    if let Some(manifest) = &args.write_calibration {
        let point = identification
            .operating_point(calibration::TARGET_FPIR)
            .filter(|p| p.resolvable)
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "not calibrated: 1 in 1,000 cannot be measured on {} non-mated searches",
                    searches
                        .iter()
                        .filter(|s| matches!(s, Search::NonMated { .. }))
                        .count()
                )
            })?;
        let measured_on = format!(
            "lfr eval on {} ({} enrolled, {} non-mated searches), {}",
            args.photos.display(),
            enrolled_templates.len(),
            point.nonmated,
            lfr_watchlist::time::format_utc(lfr_schemas::Timestamp::now())
        );
        calibration::write(manifest, &args.embedder, point.threshold, &measured_on)?;
        println!(
            "calibrated {} in {}: 1 in 1,000 at {:.3}",
            args.embedder,
            manifest.display(),
            point.threshold
        );
    }
    Ok(())
}

/// The non-mated searches that came closest to an alert: where label errors in an evaluation set
/// (one person under two names) and photos whose largest face is someone else show up.
fn highest_nonmated_table(rows: &[(f32, &Path, &Path)], root: &Path) -> String {
    if rows.is_empty() {
        return String::new();
    }
    let short = |p: &Path| p.strip_prefix(root).unwrap_or(p).display().to_string();
    let mut md = String::from(
        "\n## Highest-scoring non-mated searches\n\nThe strict thresholds above are set by these few \
         searches. Check them: if a pair is in fact one person under two names, or the probe's largest \
         face is someone else, correct the evaluation set and run again.\n\n\
         | score | probe | closest enrolled photo |\n|---|---|---|\n",
    );
    for (score, probe, enrolled) in rows {
        md.push_str(&format!(
            "| {score:.4} | {} | {} |\n",
            short(probe),
            short(enrolled)
        ));
    }
    md
}

fn people(dir: &Path) -> anyhow::Result<Vec<Person>> {
    let mut people = Vec::new();
    let mut folders: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    folders.sort();
    for folder in folders {
        let mut photos: Vec<PathBuf> = std::fs::read_dir(&folder)?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_file())
            .collect();
        photos.sort();
        if !photos.is_empty() {
            people.push(Person { photos });
        }
    }
    Ok(people)
}

/// The services' own pipeline, applied to photos on disk.
struct Pipeline {
    finder: FaceFinder,
    embedder: Embedder,
    failures: usize,
    processed: usize,
}

impl Pipeline {
    /// The template of the face nearest the photo's centre that passes the quality gate.
    fn template(&mut self, photo: &Path) -> Option<Vec<f32>> {
        self.processed += 1;
        let template = self.try_template(photo).unwrap_or_else(|e| {
            tracing::warn!(photo = %photo.display(), error = %e, "photo not usable");
            None
        });
        if template.is_none() {
            self.failures += 1;
        }
        template
    }

    fn try_template(&mut self, photo: &Path) -> anyhow::Result<Option<Vec<f32>>> {
        let image = imgcodecs::imread(photo, imgcodecs::IMREAD_COLOR)?;
        anyhow::ensure!(!image.empty(), "not a readable image");
        let found = self.finder.find_chips(&image)?;
        // Labelled sets (LFW among them) centre the labelled person; bystanders sit elsewhere.
        let (cx, cy) = (image.cols() as f32 / 2.0, image.rows() as f32 / 2.0);
        let off_centre =
            |b: &[f32; 4]| ((b[0] + b[2]) / 2.0 - cx).powi(2) + ((b[1] + b[3]) / 2.0 - cy).powi(2);
        let Some(face) = found
            .faces
            .into_iter()
            .min_by(|a, b| off_centre(&a.detection.bbox).total_cmp(&off_centre(&b.detection.bbox)))
        else {
            return Ok(None);
        };
        Ok(self.embedder.embed(&[face.chip_rgb])?.pop())
    }
}
