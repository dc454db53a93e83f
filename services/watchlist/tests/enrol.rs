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
