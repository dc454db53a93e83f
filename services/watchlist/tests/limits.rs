//! What an uploaded watch list may cost fits the pod that takes it: dispatch unpacks an upload
//! into `/tmp`, an in-memory volume counted in its memory limit, and then enrols it. The sums of
//! `docs/deployments.md` (*Limits*), checked against the Helm chart's values, so that raising an
//! archive limit without the pod's `/tmp` and memory fails here rather than in production.

use lfr_watchlist::api::ARCHIVE_BODY_LIMIT;
use lfr_watchlist::archive::Limits;
use lfr_watchlist::enrol::MAX_REFERENCE_PIXELS;

const MIB: u64 = 1024 * 1024;

/// What dispatch needs besides an upload: the detector and embedder enrolling at 1280x1280
/// (220 MiB resident, measured on the enrolment tests), the console's own state, and headroom.
const SERVICE: u64 = 512 * MIB;

/// The lines of the top-level `dispatch:` block of `values.yaml`.
fn dispatch_block(values: &str) -> Vec<&str> {
    values
        .lines()
        .skip_while(|l| *l != "dispatch:")
        .skip(1)
        .take_while(|l| l.is_empty() || l.starts_with(' ') || l.starts_with('#'))
        .collect()
}

/// The value of `key: value` in `lines`, also inside a flow map (`limits: {memory: 2Gi}`).
fn value<'a>(lines: &[&'a str], key: &str) -> &'a str {
    let pattern = format!("{key}:");
    lines
        .iter()
        .filter(|l| !l.trim_start().starts_with('#'))
        .find_map(|l| {
            let at = l.find(&pattern)?;
            let rest = l[at + pattern.len()..].trim_start();
            Some(rest.split([',', '}']).next().unwrap_or(rest).trim())
        })
        .unwrap_or_else(|| panic!("no {key} in dispatch's values"))
}

/// A Kubernetes quantity (`512Mi`, `2Gi`, `1G`, `1000`) in bytes.
fn bytes(quantity: &str) -> u64 {
    let units = [
        ("Ki", 1 << 10),
        ("Mi", 1 << 20),
        ("Gi", 1 << 30),
        ("K", 1_000),
        ("M", 1_000_000),
        ("G", 1_000_000_000),
    ];
    for (suffix, factor) in units {
        if let Some(n) = quantity.strip_suffix(suffix) {
            return n.parse::<u64>().expect("a number") * factor;
        }
    }
    quantity.parse().expect("a quantity")
}

#[test]
fn an_upload_fits_dispatch_s_tmp_and_memory() {
    let values = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../helm/lfr/values.yaml"),
    )
    .unwrap();
    let block = dispatch_block(&values);
    let tmp = bytes(value(&block, "tmpSizeLimit"));
    let limits_line = block
        .iter()
        .position(|l| l.trim_start().starts_with("limits:"))
        .expect("dispatch.resources.limits");
    let memory = bytes(value(&block[limits_line..], "memory"));
    let limits = Limits::default();

    // Unpacked, an archive fits /tmp twice: a second upload may unpack at the same time.
    assert!(
        2 * limits.max_total_bytes <= tmp,
        "2 x {} MiB unpacked > /tmp of {} MiB",
        limits.max_total_bytes / MIB,
        tmp / MIB
    );
    // Memory, at the worst moment of one upload. Unpacking: the upload and what it unpacked.
    // Enrolling (the upload is freed): what was unpacked, the enrolled images read back to be
    // stored, one image read and copied for the decoder, and its decoded pixels (BGR).
    let unpacking = ARCHIVE_BODY_LIMIT as u64 + limits.max_total_bytes;
    let enrolling =
        2 * limits.max_total_bytes + 2 * limits.max_file_bytes + 3 * MAX_REFERENCE_PIXELS;
    let peak = unpacking.max(enrolling) + SERVICE;
    assert!(
        peak <= memory,
        "an upload may need {} MiB, dispatch may use {} MiB",
        peak / MIB,
        memory / MIB
    );
    // Whatever the API accepts as a plain tar also unpacks; only a gzip can inflate past it.
    assert!(ARCHIVE_BODY_LIMIT as u64 <= limits.max_total_bytes);
    assert!(limits.max_file_bytes <= limits.max_total_bytes);
}
