//! Where a frame's time goes, in one process: decoding, the full search, the chip and the context
//! crop of each face (with its bystander re-search), and the embedding.
//!
//! ```sh
//! cargo run --release -p lfr-loadtest --example detect_cost
//! ```
//!
//! It reads the registry's group photos (`~/.cache/lfr/samples/group`, from `scripts/setup.sh`),
//! each scaled to 640x480, three rounds (the first is not counted: it warms the models up), with
//! the services' default models configuration. `docs/operations.md` (Capacity) quotes its figures.

use lfr_vision::config::ModelsConfig;
use lfr_vision::image::decode_jpeg;
use opencv::core::{Mat, Size};
use opencv::imgproc;
use std::time::Instant;

const ROUNDS: usize = 3;

/// Seconds spent, summed over the counted frames.
#[derive(Default)]
struct Spent {
    frames: usize,
    faces: usize,
    decode: f64,
    search: f64,
    chip: f64,
    context: f64,
    embed: f64,
}

fn timed<T>(total: &mut f64, work: impl FnOnce() -> T) -> T {
    let started = Instant::now();
    let out = work();
    *total += started.elapsed().as_secs_f64();
    out
}

fn main() -> anyhow::Result<()> {
    let models = ModelsConfig::default();
    let store = models.store()?;
    let mut finder = models.face_finder(&store)?;
    let mut embedder = models.embedder(&store)?;
    let photos = lfr_loadtest::scene::Samples::default_root().join("group");
    let mut spent = Spent::default();
    for round in 0..ROUNDS {
        let mut this = Spent::default();
        for i in 1..=6 {
            let jpeg = std::fs::read(photos.join(format!("sample{i}.jpg")))?;
            let frame = timed(&mut this.decode, || -> anyhow::Result<Mat> {
                let (image, _) = decode_jpeg(&jpeg, 640)?;
                let mut frame = Mat::default();
                let size = Size::new(640, 480);
                imgproc::resize(&image, &mut frame, size, 0.0, 0.0, imgproc::INTER_AREA)?;
                Ok(frame)
            })?;
            let everyone = timed(&mut this.search, || finder.detect_everyone(&frame))?;
            let candidates: Vec<_> = finder.candidates(&everyone).cloned().collect();
            for face in &candidates {
                // The chip alone, then chip and context: the difference is the context crop.
                let (mut chip, mut both) = (0.0, 0.0);
                let _ = timed(&mut chip, || finder.probe(&frame, face, &everyone, false))?;
                let probe = timed(&mut both, || finder.probe(&frame, face, &everyone, true))?;
                if let Ok(probe) = probe {
                    this.chip += chip;
                    this.context += (both - chip).max(0.0);
                    timed(&mut this.embed, || {
                        embedder.embed(std::slice::from_ref(&probe.chip_rgb))
                    })?;
                    this.faces += 1;
                }
            }
            this.frames += 1;
        }
        if round > 0 {
            spent = Spent {
                frames: spent.frames + this.frames,
                faces: spent.faces + this.faces,
                decode: spent.decode + this.decode,
                search: spent.search + this.search,
                chip: spent.chip + this.chip,
                context: spent.context + this.context,
                embed: spent.embed + this.embed,
            };
        }
    }
    let ms = |s: f64, n: usize| 1000.0 * s / n.max(1) as f64;
    let (f, n) = (spent.frames, spent.faces);
    println!("{f} frames, {n} faces that pass the quality gate");
    println!(
        "per frame: decode and scale {:.1} ms, full search {:.1} ms",
        ms(spent.decode, f),
        ms(spent.search, f)
    );
    println!(
        "per face: chip {:.1} ms, context crop {:.1} ms, embedding {:.1} ms",
        ms(spent.chip, n),
        ms(spent.context, n),
        ms(spent.embed, n)
    );
    Ok(())
}
