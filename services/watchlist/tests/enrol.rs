//! Enrolment on real photos with the real models: good references are enrolled, and every bad one
//! (no face, several faces, turned, corrupt, missing, duplicate, inconsistent, too close to another
//! subject) is refused
//! with its reason.

use lfr_testkit::sample_photo;
use lfr_vision::config::ModelsConfig;
use lfr_watchlist::enrol::{Enroller, Enrolment};
use std::path::Path;

fn folder(files: &[(&str, &str)], manifest: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (sample, name) in files {
        std::fs::copy(sample_photo(sample), dir.path().join(name)).unwrap();
    }
    std::fs::write(dir.path().join("manifest.toml"), manifest).unwrap();
    dir
}

fn run(dir: &Path) -> anyhow::Result<Enrolment> {
    Enroller::load(&ModelsConfig::default())?.enrol(dir, "match-day")
}

fn reason<'a>(e: &'a Enrolment, reference: &str) -> &'a str {
    &e.refused
        .iter()
        .find(|r| r.reference == reference)
        .unwrap_or_else(|| panic!("{reference} not refused: {:?}", e.refused))
        .reason
}

#[test]
fn good_references_are_enrolled_and_bad_ones_refused_with_reasons() {
    let dir = folder(
        &[
            ("faces/obama.jpg", "a.jpg"),
            ("faces/obama3.jpg", "a2.jpg"),
            ("faces/obama2.jpg", "turned.jpg"),
            ("faces/biden.jpg", "b.jpg"),
            ("group/sample1.jpg", "group.jpg"),
        ],
        r#"
[[entry]]
reference = "CUST-A"
category = "wanted"
image = "a.jpg"
[[entry]]
reference = "CUST-A"
category = "wanted"
image = "a2.jpg"
[[entry]]
reference = "CUST-B"
category = "missing-vulnerable"
image = "b.jpg"
[[entry]]
reference = "CUST-DUP"
category = "risk"
image = "b.jpg"
[[entry]]
reference = "CUST-GROUP"
category = "wanted"
image = "group.jpg"
[[entry]]
reference = "CUST-TURNED"
category = "wanted"
image = "turned.jpg"
[[entry]]
reference = "CUST-CORRUPT"
category = "wanted"
image = "corrupt.jpg"
[[entry]]
reference = "CUST-BLANK"
category = "wanted"
image = "blank.jpg"
[[entry]]
reference = "CUST-MISSING"
category = "wanted"
image = "nowhere.jpg"
"#,
    );
    std::fs::write(
        dir.path().join("corrupt.jpg"),
        b"\xFF\xD8\xFF\xE0 not really",
    )
    .unwrap();
    let blank = opencv::core::Mat::new_rows_cols_with_default(
        400,
        400,
        opencv::core::CV_8UC3,
        opencv::core::Scalar::all(128.0),
    )
    .unwrap();
    opencv::imgcodecs::imwrite(
        dir.path().join("blank.jpg"),
        &blank,
        &opencv::core::Vector::new(),
    )
    .unwrap();

    let e = run(dir.path()).unwrap();
    let enrolled: Vec<&str> = e
        .list
        .entries
        .iter()
        .map(|x| x.reference.as_str())
        .collect();
    assert_eq!(
        enrolled,
        vec!["CUST-A", "CUST-A", "CUST-B"],
        "refused: {:?}",
        e.refused
    );
    assert_eq!(e.list.subjects(), 2);
    assert!(reason(&e, "CUST-DUP").contains("duplicate"));
    assert!(reason(&e, "CUST-GROUP").contains("faces: a reference image must show one person"));
    assert!(reason(&e, "CUST-CORRUPT").contains("not a decodable image"));
    assert!(reason(&e, "CUST-BLANK").contains("no face"));
    assert!(reason(&e, "CUST-MISSING").contains("unreadable"));
    assert!(reason(&e, "CUST-TURNED").contains("not frontal"));
    assert_eq!(e.refused.len(), 6);
}

#[test]
fn inconsistent_images_and_subjects_too_close_to_each_other_are_refused() {
    let dir = folder(
        &[
            ("faces/obama.jpg", "a.jpg"),
            ("faces/obama3.jpg", "c.jpg"),
            ("faces/biden.jpg", "b.jpg"),
        ],
        r#"
[[entry]]
reference = "CUST-A"
category = "wanted"
image = "a.jpg"
[[entry]]
reference = "CUST-C"
category = "wanted"
image = "c.jpg"
[[entry]]
reference = "CUST-MIXED"
category = "risk"
image = "b.jpg"
"#,
    );
    // Obama filed under two references: each matches the other subject.
    let e = run(dir.path()).unwrap();
    assert!(
        reason(&e, "CUST-A").contains("too close to an image of CUST-C"),
        "{:?}",
        e.refused
    );
    assert!(reason(&e, "CUST-C").contains("too close to an image of CUST-A"));
    assert_eq!(e.list.entries.len(), 1);

    // One reference holding two different people.
    let dir = folder(
        &[("faces/obama.jpg", "a.jpg"), ("faces/biden.jpg", "b.jpg")],
        r#"
[[entry]]
reference = "CUST-MIXED"
category = "wanted"
image = "a.jpg"
[[entry]]
reference = "CUST-MIXED"
category = "wanted"
image = "b.jpg"
"#,
    );
    let e = run(dir.path()).unwrap();
    assert!(e.list.entries.is_empty());
    assert!(
        e.refused.iter().all(|r| r.reason.contains("inconsistent")),
        "{:?}",
        e.refused
    );
}

#[test]
fn an_empty_or_malformed_manifest_is_refused_whole() {
    let dir = folder(&[], "");
    let err = run(dir.path()).err().unwrap().to_string();
    assert!(err.contains("cannot be empty"), "{err}");
    let dir = folder(
        &[],
        "[[entry]]\nreference = \"X\"\ncategory = \"suspect\"\nimage = \"x.jpg\"\n",
    );
    let err = run(dir.path()).err().unwrap().to_string();
    assert!(err.contains("invalid watch-list manifest"), "{err}");
}

#[test]
fn the_digest_of_an_enrolment_is_reproducible() {
    let manifest = "[[entry]]\nreference = \"CUST-A\"\ncategory = \"wanted\"\nimage = \"a.jpg\"\n";
    let first = run(folder(&[("faces/obama.jpg", "a.jpg")], manifest).path()).unwrap();
    let second = run(folder(&[("faces/obama.jpg", "a.jpg")], manifest).path()).unwrap();
    assert_eq!(first.list.digest(), second.list.digest());
    assert_eq!(first.list.digest().len(), 64);
}

#[test]
fn images_outside_the_folder_are_refused() {
    let outside = folder(&[("faces/biden.jpg", "b.jpg")], "");
    let b = outside.path().join("b.jpg");
    let dir = folder(
        &[("faces/obama.jpg", "a.jpg")],
        &format!(
            "[[entry]]\nreference = \"CUST-A\"\ncategory = \"wanted\"\nimage = \"./a.jpg\"\n\
             [[entry]]\nreference = \"CUST-ABS\"\ncategory = \"wanted\"\nimage = {:?}\n\
             [[entry]]\nreference = \"CUST-UP\"\ncategory = \"wanted\"\nimage = \"../b.jpg\"\n",
            b.display().to_string()
        ),
    );
    let e = run(dir.path()).unwrap();
    assert_eq!(e.list.entries.len(), 1, "{:?}", e.refused);
    assert!(reason(&e, "CUST-ABS").contains("inside the watch-list folder"));
    assert!(reason(&e, "CUST-UP").contains("inside the watch-list folder"));
}

/// A real custody-style JPEG whose frame header is rewritten to claim `width` x `height`: a few
/// dozen kilobytes that a decoder would expand to `width * height * 3` bytes.
fn jpeg_claiming(width: u16, height: u16) -> Vec<u8> {
    let mut jpeg = std::fs::read(sample_photo("faces/obama.jpg")).unwrap();
    let (_, w, h) = lfr_vision::image::dimensions(&jpeg).unwrap();
    let sof = (0..jpeg.len() - 9)
        .find(|&i| {
            jpeg[i] == 0xFF
                && matches!(jpeg[i + 1], 0xC0..=0xC2)
                && u16::from_be_bytes([jpeg[i + 5], jpeg[i + 6]]) as u32 == h
                && u16::from_be_bytes([jpeg[i + 7], jpeg[i + 8]]) as u32 == w
        })
        .expect("the photo's frame header");
    jpeg[sof + 5..sof + 7].copy_from_slice(&height.to_be_bytes());
    jpeg[sof + 7..sof + 9].copy_from_slice(&width.to_be_bytes());
    jpeg
}

/// A PNG signature and header chunk claiming `width` x `height`, then its end: 45 bytes.
fn png_claiming(width: u32, height: u32) -> Vec<u8> {
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend_from_slice(&13u32.to_be_bytes());
    png.extend_from_slice(b"IHDR");
    png.extend_from_slice(&width.to_be_bytes());
    png.extend_from_slice(&height.to_be_bytes());
    png.extend_from_slice(&[8, 2, 0, 0, 0, 0x2D, 0x19, 0x7C, 0x3A]);
    png.extend_from_slice(&[0, 0, 0, 0, b'I', b'E', b'N', b'D', 0xAE, 0x42, 0x60, 0x82]);
    png
}

#[test]
fn images_claiming_huge_dimensions_are_refused_from_their_header_without_being_decoded() {
    let dir = folder(
        &[],
        r#"
[[entry]]
reference = "CUST-BOMB-JPEG"
category = "wanted"
image = "bomb.jpg"
[[entry]]
reference = "CUST-BOMB-PNG"
category = "wanted"
image = "bomb.png"
[[entry]]
reference = "CUST-GIF"
category = "wanted"
image = "photo.gif"
"#,
    );
    // 30000x30000 pixels: 2.7 GB once decoded, from files of a few kilobytes.
    let jpeg = jpeg_claiming(30_000, 30_000);
    assert!(jpeg.len() < 1024 * 1024);
    std::fs::write(dir.path().join("bomb.jpg"), &jpeg).unwrap();
    std::fs::write(dir.path().join("bomb.png"), png_claiming(30_000, 30_000)).unwrap();
    std::fs::write(dir.path().join("photo.gif"), b"GIF89a\x30\x75\x30\x75").unwrap();

    let mut enroller = Enroller::load(&ModelsConfig::default()).unwrap();
    let started = std::time::Instant::now();
    let e = enroller.enrol(dir.path(), "match-day").unwrap();
    let took = started.elapsed();

    assert!(e.list.entries.is_empty());
    for bomb in ["CUST-BOMB-JPEG", "CUST-BOMB-PNG"] {
        let why = reason(&e, bomb);
        assert!(
            why.contains("image too large: 30000x30000 pixels")
                && why.contains(&format!(
                    "at most {}",
                    lfr_watchlist::enrol::MAX_REFERENCE_PIXELS
                ))
                && why.contains("without decoding"),
            "{bomb}: {why}"
        );
    }
    assert!(reason(&e, "CUST-GIF").contains("not a decodable image: neither a JPEG nor a PNG"));
    // Reading three headers, not decoding 5.4 GB of pixels and running a detector over them.
    assert!(
        took < std::time::Duration::from_secs(1),
        "took {took:?}: were the images decoded?"
    );
}
