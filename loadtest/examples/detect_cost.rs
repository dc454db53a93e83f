use lfr_vision::config::ModelsConfig;
use lfr_vision::image::decode_jpeg;
use std::time::Instant;

fn main() -> anyhow::Result<()> {
    let models = ModelsConfig::default();
    let store = models.store()?;
    let mut finder = models.face_finder(&store)?;
    let mut embedder = models.embedder(&store)?;
    let dir = std::path::PathBuf::from(std::env::var("HOME")?).join(".cache/lfr/samples/group");
    let (mut t_dec, mut t_det, mut t_chip, mut t_ctx, mut t_emb, mut n, mut faces) =
        (0.0, 0.0, 0.0, 0.0, 0.0, 0, 0);
    for round in 0..3 {
        for i in 1..=6 {
            let jpeg = std::fs::read(dir.join(format!("sample{i}.jpg")))?;
            let t = Instant::now();
            let (img, _) = decode_jpeg(&jpeg, 640).unwrap();
            let mut resized = opencv::core::Mat::default();
            opencv::imgproc::resize(
                &img,
                &mut resized,
                opencv::core::Size::new(640, 480),
                0.0,
                0.0,
                opencv::imgproc::INTER_AREA,
            )?;
            let img = resized;
            let d0 = t.elapsed().as_secs_f64();
            let t = Instant::now();
            let everyone = finder.detect_everyone(&img)?;
            let d1 = t.elapsed().as_secs_f64();
            let cands: Vec<_> = finder.candidates(&everyone).cloned().collect();
            let mut chips = Vec::new();
            let (mut c1, mut c2) = (0.0, 0.0);
            for d in &cands {
                let t = Instant::now();
                let p = finder.probe(&img, d, &everyone, false)?;
                c1 += t.elapsed().as_secs_f64();
                let t = Instant::now();
                let q = finder.probe(&img, d, &everyone, true)?;
                c2 += t.elapsed().as_secs_f64();
                if let (Ok(p), Ok(_)) = (p, q) {
                    chips.push(p.chip_rgb);
                }
            }
            let t = Instant::now();
            for c in &chips {
                embedder.embed(std::slice::from_ref(c))?;
            }
            let e = t.elapsed().as_secs_f64();
            if round > 0 {
                t_dec += d0;
                t_det += d1;
                t_chip += c1;
                t_ctx += c2 - c1;
                t_emb += e;
                n += 1;
                faces += chips.len();
            }
        }
    }
    let f = n as f64;
    println!("frames {n} faces {faces} ({:.1}/frame)", faces as f64 / f);
    println!(
        "per frame ms: decode {:.1} detect {:.1} chips {:.1} context {:.1} embed {:.1}",
        1e3 * t_dec / f,
        1e3 * t_det / f,
        1e3 * t_chip / f,
        1e3 * t_ctx / f,
        1e3 * t_emb / f
    );
    println!(
        "per face ms: chip {:.1} context {:.1} embed {:.1}",
        1e3 * t_chip / faces as f64,
        1e3 * t_ctx / faces as f64,
        1e3 * t_emb / faces as f64
    );
    Ok(())
}
