//! docs/privacy.md maps each DPIA promise to the test that keeps it: every test it names must
//! exist, so the page cannot go on citing a test that was renamed or removed.

use lfr_testkit::files_under;
use std::path::Path;

#[test]
fn every_test_the_privacy_page_cites_exists() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let page = std::fs::read_to_string(root.join("docs/privacy.md")).unwrap();
    let mut sources = String::new();
    for dir in ["services", "loadtest", "schemas"] {
        for file in files_under(&root.join(dir)) {
            if file.extension().is_some_and(|e| e == "rs") {
                sources.push_str(&std::fs::read_to_string(&file).unwrap());
            }
        }
    }
    // Backquoted snake_case names of four words or more are test names (`lfr_…` are metrics).
    let cited: Vec<&str> = page
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|s| {
            s.split('_').count() >= 4
                && !s.starts_with("lfr_")
                && s.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        })
        .collect();
    assert!(cited.len() >= 20, "only {} tests cited", cited.len());
    let missing: Vec<&&str> = cited
        .iter()
        .filter(|name| !sources.contains(&format!("fn {name}(")))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/privacy.md cites tests that do not exist: {missing:?}"
    );
}
