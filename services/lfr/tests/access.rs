//! `lfr access` as a supervisor handling a subject access request uses it, against a real
//! nats-server, with the real models and real photos: a registered request first, a search of
//! that request's scope only, the photo discarded, everything recorded against the request.
//!
//! Alerts are built as the matcher builds them: the probe chip is the aligned face the face finder
//! makes of a photo (JPEG, as embed encodes it), the context image shows the person among others,
//! and all three images are sealed with the vault. Obama's alert (confirmed, then an arrest) has a
//! context of him beside a group of three strangers; Biden has a blue-list alert, and a false
//! alert raised against Obama's watch-list image (rejected by the operator); a last alert, of
//! Obama again, belongs to a deployment whose key was destroyed.

use lfr_common::audit::{query, AuditFilter, ObjectMatch};
use lfr_schemas::{
    subjects, AlertDecision, AlertOutcome, AuditAction, CandidateAlert, Decision, FaceRef,
    FrameRef, Message, Outcome, Sealed, Timestamp, WatchlistCategory,
};
use lfr_testkit::{sample_photo, NatsServer};
use lfr_vault::{AlertImage, MasterKey, Vault};
use lfr_vision::config::ModelsConfig;
use lfr_vision::detector::Detection;
use lfr_vision::embedder::{cosine, Embedder};
use lfr_vision::faces::FaceFinder;
use lfr_vision::image::encode_jpeg;
use lfr_vision::redact;
use lfr_watchlist::list::sha256_hex;
use opencv::core::{Mat, Rect, Scalar, Size, Vector, CV_8UC3};
use opencv::prelude::*;
use opencv::{imgcodecs, imgproc};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Instant;
use support::Person;

mod support;

const THRESHOLD: f32 = 0.6;

struct Models {
    finder: FaceFinder,
    embedder: Embedder,
}

impl Models {
    /// The live detector and quality gate, looking at photos up to 1280 px (as the command does).
    fn load() -> Models {
        let config = ModelsConfig {
            detector_input: [1280, 1280],
            ..Default::default()
        };
        let store = config.store().unwrap();
        Models {
            finder: config.face_finder(&store).unwrap(),
            embedder: config.embedder(&store).unwrap(),
        }
    }

    /// Faces that pass the quality gate, largest first: (detection, aligned RGB chip, template).
    fn faces(&mut self, bgr: &Mat) -> Vec<(Detection, Mat, Vec<f32>)> {
        let mut faces = self.finder.find(bgr).unwrap().faces;
        faces.sort_by(|a, b| {
            b.quality
                .eye_distance_px
                .total_cmp(&a.quality.eye_distance_px)
        });
        let chips: Vec<Mat> = faces.iter().map(|f| f.chip_rgb.clone()).collect();
        let templates = self.embedder.embed(&chips).unwrap();
        faces
            .into_iter()
            .zip(chips)
            .zip(templates)
            .map(|((f, c), t)| (f.detection, c, t))
            .collect()
    }

    /// Every face the detector sees, whether or not it passes the quality gate.
    fn detected(&mut self, bgr: &Mat) -> usize {
        self.finder.detector.detect(bgr).unwrap().len()
    }

    /// The probe chip of the largest face of `bgr`, as embed encodes it for the alert.
    fn probe_chip(&mut self, bgr: &Mat) -> Vec<u8> {
        let (_, chip, _) = self.faces(bgr).remove(0);
        let mut chip_bgr = Mat::default();
        imgproc::cvt_color_def(&chip, &mut chip_bgr, imgproc::COLOR_RGB2BGR).unwrap();
        encode_jpeg(&chip_bgr, 90).unwrap()
    }

    fn template(&mut self, bgr: &Mat) -> Vec<f32> {
        self.faces(bgr).remove(0).2
    }
}

fn photo(name: &str) -> Mat {
    let path = sample_photo(name);
    imgcodecs::imread(path.to_str().unwrap(), imgcodecs::IMREAD_COLOR).unwrap()
}

fn scaled(image: &Mat, height: i32) -> Mat {
    let width = image.cols() * height / image.rows();
    let mut out = Mat::default();
    imgproc::resize(
        image,
        &mut out,
        Size::new(width, height),
        0.0,
        0.0,
        imgproc::INTER_AREA,
    )
    .unwrap();
    out
}

/// The images side by side on one grey canvas, as a camera would see them together.
fn side_by_side(images: &[Mat]) -> Mat {
    let height = images.iter().map(|m| m.rows()).max().unwrap();
    let width = images.iter().map(|m| m.cols()).sum();
    let mut canvas =
        Mat::new_rows_cols_with_default(height, width, CV_8UC3, Scalar::all(110.0)).unwrap();
    let mut x = 0;
    for m in images {
        let mut roi = canvas
            .roi_mut(Rect::new(x, height - m.rows(), m.cols(), m.rows()))
            .unwrap();
        m.copy_to(&mut roi).unwrap();
        x += m.cols();
    }
    canvas
}

fn jpeg(bgr: &Mat) -> Vec<u8> {
    encode_jpeg(bgr, 90).unwrap()
}

fn decode(bytes: &[u8]) -> Mat {
    imgcodecs::imdecode(&Vector::from_slice(bytes), imgcodecs::IMREAD_COLOR).unwrap()
}

async fn seal(
    vault: &Vault,
    deployment: &str,
    id: &str,
    image: AlertImage,
    bytes: &[u8],
) -> Sealed {
    vault
        .seal(deployment, &image.aad(deployment, id), bytes)
        .await
        .unwrap()
}

/// Raise an alert as the matcher does: images sealed under the deployment's key.
#[allow(clippy::too_many_arguments)]
async fn raise(
    nats: &NatsServer,
    vault: &Vault,
    id: &str,
    deployment: &str,
    category: WatchlistCategory,
    probe: &[u8],
    context: &[u8],
    reference: &[u8],
) {
    let alert = CandidateAlert {
        alert_id: id.into(),
        deployment: deployment.into(),
        raised_at: Timestamp::now(),
        probe: FaceRef {
            frame: FrameRef {
                camera: "gate-1".into(),
                epoch: Timestamp(1),
                seq: 7,
                captured_at: Timestamp::now(),
            },
            index: 0,
        },
        category,
        entry_ref: "CUST-0001".into(),
        reference_image_sha256: sha256_hex(reference),
        watchlist_digest: "0".repeat(64),
        score: 0.74,
        corroborating_frames: 2,
        track_frames: 3,
        probe_jpeg: seal(vault, deployment, id, AlertImage::Probe, probe).await,
        context_jpeg: seal(vault, deployment, id, AlertImage::Context, context).await,
        reference_jpeg: seal(vault, deployment, id, AlertImage::Reference, reference).await,
    };
    let subject = if category == WatchlistCategory::Blue {
        subjects::blue_alerts(deployment)
    } else {
        subjects::alert_candidates(deployment)
    };
    publish(nats, subject, alert.encode()).await;
}

/// Published as the component that writes such messages (match, dispatch).
async fn publish(nats: &NatsServer, subject: String, payload: Vec<u8>) {
    nats.author(&subject)
        .await
        .publish(subject, payload.into())
        .await
        .unwrap()
        .await
        .unwrap();
}

/// `lfr access ARGS` as `who`, logged in.
fn lfr(who: &Person, master: &MasterKey, args: &[&str]) -> Output {
    lfr_with_stdin(who, master, args, &[])
}

/// `lfr access ARGS` as `who` with `stdin` on its standard input (`--photo -`).
fn lfr_with_stdin(who: &Person, master: &MasterKey, args: &[&str], stdin: &[u8]) -> Output {
    let mut all = vec!["access"];
    all.extend(args);
    let mut command = who.command(&all);
    command.env("LFR_MASTER_KEY", master.to_base64().as_str());
    support::run(command, stdin)
}

/// `lfr access ARGS` with nobody logged in.
fn nobody(nats: &NatsServer, master: &MasterKey, args: &[&str]) -> Output {
    let mut all = vec!["access"];
    all.extend(args);
    let mut command = support::lfr(nats, None, &all);
    command.env("LFR_MASTER_KEY", master.to_base64().as_str());
    support::run(command, b"")
}

/// Register a request as a supervisor does once the requester's identity is verified (by
/// another supervisor, sup-2).
fn register(who: &Person, master: &MasterKey, reference: &str, scope: &[&str]) {
    let mut args = vec![
        "register",
        "--request",
        reference,
        "--requester",
        "the requester of the test",
        "--verified-by",
        "sup-2",
        "--identity-evidence",
        "passport seen",
    ];
    args.extend(scope);
    let out = lfr(who, master, &args);
    assert!(out.status.success(), "{}", text(&out));
}

/// The request's record as stored in `lfr-access-requests`.
async fn registration(
    js: &async_nats::jetstream::Context,
    reference: &str,
) -> Option<serde_json::Value> {
    let kv = js
        .get_key_value(lfr_schemas::streams::buckets::ACCESS_REQUESTS)
        .await
        .unwrap();
    kv.get(reference)
        .await
        .unwrap()
        .map(|bytes| serde_json::from_slice(&bytes).unwrap())
}

/// Events on AUDIT about `object`.
async fn audit_of(
    js: &async_nats::jetstream::Context,
    object: ObjectMatch,
) -> Vec<lfr_schemas::AuditEvent> {
    query(
        js,
        &AuditFilter {
            object: Some(object),
            ..Default::default()
        },
    )
    .await
    .unwrap()
    .events
    .into_iter()
    .map(|e| e.event)
    .collect()
}

/// A copy of a sample photo in `dir` (the command removes the photos it searched for).
fn copy_photo(dir: &Path, name: &str) -> PathBuf {
    let to = dir.join(name.replace('/', "-"));
    std::fs::copy(sample_photo(name), &to).unwrap();
    to
}

fn text(out: &Output) -> String {
    format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `search --json` for `photo`: the ids found, and the whole report.
fn search(who: &Person, master: &MasterKey, photo: &Path, request: &str) -> serde_json::Value {
    let out = lfr(
        who,
        master,
        &[
            "search",
            "--photo",
            photo.to_str().unwrap(),
            "--request",
            request,
            "--json",
            "--keep-photo",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn found(report: &serde_json::Value) -> Vec<String> {
    report["found"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["alert_id"].as_str().unwrap().to_string())
        .collect()
}

/// The alerts of the module's doc comment, on a real server with the topology declared (the
/// `lfr-access-requests` bucket included) as `lfr bus init` declares it.
struct World {
    nats: NatsServer,
    js: async_nats::jetstream::Context,
    master: MasterKey,
    models: Models,
    /// What the camera saw around Obama: him and three strangers.
    crowd: Mat,
    obama_probe: Vec<u8>,
}

async fn world() -> World {
    let nats = NatsServer::start().await;
    let js = nats.admin().await;
    let master = MasterKey::generate();
    let vault = Vault::open(&js, master.clone()).await.unwrap();
    let mut models = Models::load();

    // Obama passes a camera beside three other people: the context shows all four.
    let obama2 = photo("faces/obama2.jpg");
    let obama_probe = models.probe_chip(&obama2);
    let crowd = side_by_side(&[
        scaled(&obama2, 640),
        scaled(&photo("group/sample1.jpg"), 640),
    ]);
    assert!(
        models.detected(&crowd) >= 4,
        "the context must show Obama and others"
    );
    let crowd_jpeg = jpeg(&crowd);
    let obama_reference = std::fs::read(sample_photo("faces/obama.jpg")).unwrap();
    raise(
        &nats,
        &vault,
        "a-obama",
        "match-day",
        WatchlistCategory::Wanted,
        &obama_probe,
        &crowd_jpeg,
        &obama_reference,
    )
    .await;
    // Confirmed by an operator; an officer arrested him.
    let decision = AlertDecision {
        alert_id: "a-obama".into(),
        deployment: "match-day".into(),
        decision: Decision::Confirmed,
        actor: "op-17".into(),
        reason: Some("matches custody image, seen with Mr Smith".into()),
        decided_at: Timestamp::now(),
    };
    publish(
        &nats,
        subjects::alert_decisions("match-day"),
        decision.encode(),
    )
    .await;
    let outcome = AlertOutcome {
        alert_id: "a-obama".into(),
        deployment: "match-day".into(),
        outcome: Outcome::EngagedArrested,
        actor: "pc-2231".into(),
        note: Some("arrested beside Ms Jones".into()),
        recorded_at: Timestamp::now(),
    };
    publish(
        &nats,
        subjects::alert_outcomes("match-day"),
        outcome.encode(),
    )
    .await;

    // Biden, a blue-list volunteer, alone.
    let biden = photo("faces/biden.jpg");
    let biden_probe = models.probe_chip(&biden);
    raise(
        &nats,
        &vault,
        "a-biden",
        "match-day",
        WatchlistCategory::Blue,
        &biden_probe,
        &jpeg(&scaled(&biden, 640)),
        &std::fs::read(sample_photo("faces/biden.jpg")).unwrap(),
    )
    .await;
    // Biden again, elsewhere, matched against Obama's watch-list image: the operator rejected
    // it as a false alert. Obama's image is not Biden's to receive.
    raise(
        &nats,
        &vault,
        "a-biden-false",
        "away-day",
        WatchlistCategory::Wanted,
        &biden_probe,
        &jpeg(&scaled(&biden, 640)),
        &obama_reference,
    )
    .await;
    let rejected = AlertDecision {
        alert_id: "a-biden-false".into(),
        deployment: "away-day".into(),
        decision: Decision::RejectedFalseAlert,
        actor: "op-3".into(),
        reason: None,
        decided_at: Timestamp::now(),
    };
    publish(
        &nats,
        subjects::alert_decisions("away-day"),
        rejected.encode(),
    )
    .await;

    // Obama again, at a deployment whose data key was destroyed: unreadable for good.
    raise(
        &nats,
        &vault,
        "a-shredded",
        "old-day",
        WatchlistCategory::Wanted,
        &obama_probe,
        &crowd_jpeg,
        &obama_reference,
    )
    .await;
    assert!(vault.destroy("old-day").await.unwrap());
    World {
        nats,
        js,
        master,
        models,
        crowd,
        obama_probe,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_export_finds_the_subjects_alerts_with_everyone_else_blurred() {
    let World {
        nats,
        js,
        master,
        mut models,
        crowd,
        obama_probe,
    } = world().await;
    // The supervisor handling the requests, logged in (sup-2 verifies requesters' identities).
    let sup1 = Person::bootstrap(&nats, "sup-1", None);
    // Each request registered once the requester's identity was verified; all deployments.
    let requests = [
        "SAR-OBAMA",
        "SAR-BIDEN",
        "SAR-STRANGER",
        "SAR-GROUP",
        "SAR-BLANK",
        "SAR-WRONG-KEY",
    ];
    for reference in requests {
        register(&sup1, &master, reference, &[]);
    }

    let dir = tempfile::tempdir().unwrap();
    // Another photo of Obama finds his alert, and not Biden's; the shredded one is counted.
    let obama3 = sample_photo("faces/obama3.jpg");
    let report = search(&sup1, &master, &obama3, "SAR-OBAMA");
    assert_eq!(found(&report), ["a-obama"], "{report:#}");
    assert_eq!(report["searched"], 4);
    assert_eq!(report["skipped"]["crypto_shredded"], 1);
    assert_eq!(report["skipped"]["unreadable"], 0);
    let hit = &report["found"][0];
    assert!(hit["similarity"].as_f64().unwrap() >= THRESHOLD as f64);
    assert_eq!(hit["deployment"], "match-day");
    assert_eq!(hit["camera"], "gate-1");
    assert_eq!(hit["review"], "confirmed");
    assert_eq!(hit["outcome"], "arrested");
    // The table names the same alert.
    let out = lfr(
        &sup1,
        &master,
        &[
            "search",
            "--photo",
            obama3.to_str().unwrap(),
            "--keep-photo",
            "--request",
            "SAR-OBAMA",
        ],
    );
    let table = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{}", text(&out));
    assert!(table.contains("1 alerts found"), "{table}");
    assert!(
        table.contains("a-obama") && !table.contains("a-biden"),
        "{table}"
    );
    assert!(table.contains("1 crypto-shredded"), "{table}");

    // Biden finds his alerts only, the blue-list one included.
    let biden_path = sample_photo("faces/biden.jpg");
    let report = search(&sup1, &master, &biden_path, "SAR-BIDEN");
    assert_eq!(found(&report), ["a-biden", "a-biden-false"], "{report:#}");
    assert_eq!(report["found"][0]["review"], "blue list (not reviewed)");
    assert_eq!(report["found"][1]["review"], "rejected");

    // A stranger (one face cut from a group photo) finds nothing.
    let group = photo("group/sample2.jpg");
    let (stranger, _, _) = models.faces(&group).remove(0);
    let [x1, y1, x2, y2] = stranger.bbox;
    let (w, h) = (x2 - x1, y2 - y1);
    let rect = Rect::new(
        (x1 - w).max(0.0) as i32,
        (y1 - h).max(0.0) as i32,
        (3.0 * w) as i32,
        (3.0 * h) as i32,
    ) & Rect::new(0, 0, group.cols(), group.rows());
    let stranger_path = dir.path().join("stranger.jpg");
    std::fs::write(
        &stranger_path,
        jpeg(&Mat::roi(&group, rect).unwrap().try_clone().unwrap()),
    )
    .unwrap();
    let report = search(&sup1, &master, &stranger_path, "SAR-STRANGER");
    assert_eq!(found(&report), Vec::<String>::new(), "{report:#}");

    // A group photo does not say whose data is asked for: refused, and nothing recorded.
    let out = lfr(
        &sup1,
        &master,
        &[
            "search",
            "--photo",
            sample_photo("group/sample1.jpg").to_str().unwrap(),
            "--keep-photo",
            "--request",
            "SAR-GROUP",
        ],
    );
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("faces of similar size"),
        "{}",
        text(&out)
    );
    // Neither does a photo without a face.
    let blank = dir.path().join("blank.jpg");
    std::fs::write(
        &blank,
        jpeg(&Mat::new_rows_cols_with_default(400, 300, CV_8UC3, Scalar::all(128.0)).unwrap()),
    )
    .unwrap();
    let out = lfr(
        &sup1,
        &master,
        &[
            "search",
            "--photo",
            blank.to_str().unwrap(),
            "--keep-photo",
            "--request",
            "SAR-BLANK",
        ],
    );
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("no usable face"), "{}", text(&out));

    // With another master key than the services', nothing opens: the search stops rather than
    // answer "nothing found".
    let out = lfr(
        &sup1,
        &MasterKey::generate(),
        &[
            "search",
            "--photo",
            obama3.to_str().unwrap(),
            "--keep-photo",
            "--request",
            "SAR-WRONG-KEY",
        ],
    );
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("master key"), "{}", text(&out));

    // The export for Obama.
    let bundle = dir.path().join("bundle");
    let export = [
        "export",
        "--photo",
        obama3.to_str().unwrap(),
        "--keep-photo",
        "--request",
        "SAR-OBAMA",
        "--out",
        bundle.to_str().unwrap(),
    ];
    let out = lfr(&sup1, &master, &export);
    assert!(out.status.success(), "{}", text(&out));
    let manifest_bytes = std::fs::read(bundle.join("manifest.json")).unwrap();
    let manifest: serde_json::Value = serde_json::from_slice(&manifest_bytes).unwrap();
    assert_eq!(manifest["request"], "SAR-OBAMA");
    assert_eq!(manifest["count"], 1);
    assert_eq!(manifest["alerts"], serde_json::json!(["a-obama"]));
    let mut entries: Vec<String> = std::fs::read_dir(&bundle)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    entries.sort();
    assert_eq!(entries, ["a-obama", "manifest.json"]);
    // Every file is in the manifest with its sha256, and nothing else is in the bundle.
    let files = manifest["files"].as_object().unwrap();
    let mut listed: Vec<&str> = files.keys().map(String::as_str).collect();
    listed.sort();
    assert_eq!(
        listed,
        [
            "a-obama/alert.json",
            "a-obama/context.jpg",
            "a-obama/probe.jpg",
            "a-obama/reference.jpg"
        ]
    );
    for (path, digest) in files {
        let bytes = std::fs::read(bundle.join(path)).unwrap();
        assert_eq!(digest.as_str().unwrap(), sha256_hex(&bytes), "{path}");
        let mode = std::fs::metadata(bundle.join(path))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{path}");
    }
    assert_eq!(
        std::fs::read_dir(bundle.join("a-obama")).unwrap().count(),
        4
    );
    assert_eq!(
        std::fs::read(bundle.join("a-obama/probe.jpg")).unwrap(),
        obama_probe
    );

    // In the context image, only Obama's face is left to see.
    let subject = models.template(&photo("faces/obama3.jpg"));
    let context = decode(&std::fs::read(bundle.join("a-obama/context.jpg")).unwrap());
    assert_eq!(context.size().unwrap(), crowd.size().unwrap());
    let before = models.detected(&crowd);
    let left = models.faces(&context);
    assert_eq!(
        models.detected(&context),
        1,
        "faces detectable after redaction (there were {before})"
    );
    assert_eq!(left.len(), 1);
    let similarity = cosine(&left[0].2, &subject);
    assert!(
        similarity >= THRESHOLD,
        "the face left is not Obama's: {similarity}"
    );
    // Not even the more sensitive redaction detector, at two scales, finds anyone else.
    let config = ModelsConfig::default();
    let store = config.store().unwrap();
    let mut sensitive = redact::sensitive_finder(&config, &store).unwrap();
    let seen = redact::detect_thoroughly(&mut sensitive.detector, &context).unwrap();
    assert_eq!(seen.len(), 1, "{seen:?}");

    // The reference is the image Obama was matched against; the record holds no staff ids and
    // no free text.
    let reference = decode(&std::fs::read(bundle.join("a-obama/reference.jpg")).unwrap());
    assert!(cosine(&models.template(&reference), &subject) >= THRESHOLD);
    let record_text = std::fs::read_to_string(bundle.join("a-obama/alert.json")).unwrap();
    let record: serde_json::Value = serde_json::from_str(&record_text).unwrap();
    assert_eq!(record["deployment"], "match-day");
    assert_eq!(record["camera"], "gate-1");
    assert_eq!(record["category"], "wanted");
    assert_eq!(record["review"], "confirmed");
    assert_eq!(record["outcomes"][0]["outcome"], "arrested");
    assert!(record["decided_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(record["legal_hold"], true);
    for secret in ["op-17", "pc-2231", "Smith", "Jones", "CUST-0001"] {
        assert!(!record_text.contains(secret), "{secret} in {record_text}");
    }

    // An existing directory is never written into.
    let out = lfr(&sup1, &master, &export);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("already exists"), "{}", text(&out));
    assert_eq!(
        std::fs::read(bundle.join("manifest.json")).unwrap(),
        manifest_bytes
    );

    // Biden's bundle holds his own watch-list image, and not Obama's, which his false alert was
    // raised against.
    let biden_bundle = dir.path().join("biden");
    let out = lfr(
        &sup1,
        &master,
        &[
            "export",
            "--photo",
            biden_path.to_str().unwrap(),
            "--keep-photo",
            "--request",
            "SAR-BIDEN",
            "--out",
            biden_bundle.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(biden_bundle.join("a-biden/reference.jpg").exists());
    assert!(biden_bundle.join("a-biden-false/context.jpg").exists());
    assert!(!biden_bundle.join("a-biden-false/reference.jpg").exists());
    let record: serde_json::Value = serde_json::from_slice(
        &std::fs::read(biden_bundle.join("a-biden-false/alert.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(record["images"]["reference"], serde_json::Value::Null);
    assert!(
        record["images"]["reference_note"]
            .as_str()
            .unwrap()
            .starts_with("withheld"),
        "{record:#}"
    );

    // AUDIT: one collection per request registered, one consultation per search made (the
    // refused and failed ones made none), one disclosure per export; digests, never images.
    let events = query(
        &js,
        &AuditFilter {
            object: Some(ObjectMatch::Prefix("access-request/".into())),
            ..Default::default()
        },
    )
    .await
    .unwrap()
    .events;
    let summary: Vec<(AuditAction, &str)> = events
        .iter()
        .map(|e| (e.event.action, e.event.object.as_str()))
        .collect();
    let mut expected: Vec<(AuditAction, String)> = requests
        .iter()
        .map(|r| (AuditAction::Collection, format!("access-request/{r}")))
        .collect();
    // Each comparison of a photo with the stored alerts is a combination, recorded before the
    // consultation or disclosure it led to.
    for (action, r) in [
        (AuditAction::Consultation, "SAR-OBAMA"),
        (AuditAction::Consultation, "SAR-OBAMA"),
        (AuditAction::Consultation, "SAR-BIDEN"),
        (AuditAction::Consultation, "SAR-STRANGER"),
        (AuditAction::Disclosure, "SAR-OBAMA"),
        (AuditAction::Disclosure, "SAR-BIDEN"),
    ] {
        expected.push((AuditAction::Combination, format!("access-request/{r}")));
        expected.push((action, format!("access-request/{r}")));
    }
    let expected: Vec<(AuditAction, &str)> =
        expected.iter().map(|(a, o)| (*a, o.as_str())).collect();
    assert_eq!(summary, expected);
    // Registered by the account logged in; sup-2, typed as the verifier, is only named.
    let registered = &events[0].event;
    assert_eq!(registered.actor, "sup-1");
    assert!(
        registered
            .justification
            .contains("identity verified by sup-2"),
        "{}",
        registered.justification
    );
    // The requester's name and the evidence are in the request's record, not on the log.
    assert!(!registered.justification.contains("requester of the test"));
    assert!(!registered.justification.contains("passport"));
    let (combined, events): (Vec<_>, Vec<_>) = events[requests.len()..]
        .iter()
        .partition(|e| e.event.action == AuditAction::Combination);
    let obama3_bytes = std::fs::read(&obama3).unwrap();
    let first_combination = &combined[0].event;
    assert!(
        first_combination.justification.starts_with(
            "right of access search: the requester's photo compared with 4 retained alerts"
        ),
        "{}",
        first_combination.justification
    );
    assert_eq!(
        first_combination.digest.as_deref(),
        Some(sha256_hex(&obama3_bytes).as_str())
    );
    for e in combined.iter().chain(&events) {
        let size = e.event.encode().len();
        assert!(size < 2048, "an audit event of {size} bytes: {:?}", e.event);
    }
    let first = &events[0].event;
    assert_eq!(first.actor, "sup-1");
    assert_eq!(first.role, "supervisor");
    assert!(
        first
            .justification
            .starts_with("right of access search: 1 alerts found"),
        "{}",
        first.justification
    );
    assert_eq!(
        first.digest.as_deref(),
        Some(sha256_hex(&obama3_bytes).as_str())
    );
    assert!(events[3]
        .event
        .justification
        .starts_with("right of access search: 0 alerts found"));
    let disclosure = &events[4].event;
    assert_eq!(disclosure.recipients, ["data-subject:SAR-OBAMA"]);
    assert_eq!(
        disclosure.digest.as_deref(),
        Some(sha256_hex(&manifest_bytes).as_str())
    );
    for e in events {
        let size = e.event.encode().len();
        assert!(size < 2048, "an audit event of {size} bytes: {:?}", e.event);
    }
    // Every match is on the alert's own trail too: consulted twice, disclosed once, for the
    // request, on its deployment's audit subject; each time the access-request hold is placed
    // (then renewed).
    let trail = audit_of(&js, ObjectMatch::Exact("alert/a-obama".into())).await;
    let actions: Vec<AuditAction> = trail.iter().map(|e| e.action).collect();
    assert_eq!(
        actions,
        [
            AuditAction::Consultation,
            AuditAction::Alteration,
            AuditAction::Consultation,
            AuditAction::Alteration,
            AuditAction::Disclosure,
            AuditAction::Alteration
        ]
    );
    assert!(
        trail[1]
            .justification
            .contains("hold placed (access-request"),
        "{:?}",
        trail[1]
    );
    for e in &trail {
        assert_eq!(e.deployment.as_deref(), Some("match-day"));
        let named = match e.action {
            AuditAction::Alteration => "case SAR-OBAMA",
            _ => "access-request/SAR-OBAMA",
        };
        assert!(e.justification.contains(named), "{}", e.justification);
    }
    assert_eq!(trail[4].recipients, ["data-subject:SAR-OBAMA"]);
    // The request's record holds the same: three searches, the export with its manifest.
    let record = registration(&js, "SAR-OBAMA").await.unwrap();
    let searches = record["searches"].as_array().unwrap();
    assert_eq!(searches.len(), 3, "{record:#}");
    assert_eq!(searches[2]["kind"], "export");
    assert_eq!(
        searches[2]["manifest_sha256"].as_str(),
        Some(sha256_hex(&manifest_bytes).as_str())
    );
    for s in searches {
        assert_eq!(s["found"][0]["alert_id"], "a-obama");
        assert_eq!(
            s["photo_sha256"].as_str(),
            Some(sha256_hex(&obama3_bytes).as_str())
        );
        assert_eq!(s["photo_file"], "kept");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_search_without_a_registered_and_open_request_is_refused() {
    let nats = NatsServer::start().await;
    let js = nats.admin().await;
    let master = MasterKey::generate();
    let sup1 = Person::bootstrap(&nats, "sup-1", None);
    let dir = tempfile::tempdir().unwrap();
    let photo = copy_photo(dir.path(), "faces/obama3.jpg");
    let search_for = |reference: &str| {
        lfr(
            &sup1,
            &master,
            &[
                "search",
                "--photo",
                photo.to_str().unwrap(),
                "--request",
                reference,
            ],
        )
    };

    // No registered request: refused, nothing searched, nothing recorded, the photo not touched.
    let out = search_for("SAR-UNKNOWN");
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("access request SAR-UNKNOWN is not registered"),
        "{}",
        text(&out)
    );
    assert!(text(&out).contains("lfr access register"), "{}", text(&out));
    let export = dir.path().join("bundle");
    let out = lfr(
        &sup1,
        &master,
        &[
            "export",
            "--photo",
            photo.to_str().unwrap(),
            "--request",
            "SAR-UNKNOWN",
            "--out",
            export.to_str().unwrap(),
        ],
    );
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("is not registered"), "{}", text(&out));
    assert!(!export.exists());
    assert!(photo.exists());
    assert!(audit_of(&js, ObjectMatch::Prefix("access-request/".into()))
        .await
        .is_empty());

    // Nobody logged in: not registered, nothing recorded.
    let registering = [
        "register",
        "--request",
        "SAR-1",
        "--requester",
        "J. Doe",
        "--verified-by",
        "sup-2",
        "--identity-evidence",
        "passport seen",
    ];
    support::refused(nobody(&nats, &master, &registering), support::NOT_LOGGED_IN);
    assert!(registration(&js, "SAR-1").await.is_none());
    assert!(audit_of(&js, ObjectMatch::Prefix("access-request/".into()))
        .await
        .is_empty());

    // A registration needs who verified the requester's identity, and on what.
    let out = lfr(
        &sup1,
        &master,
        &[
            "register",
            "--request",
            "SAR-1",
            "--requester",
            "J. Doe",
            "--verified-by",
            " ",
            "--identity-evidence",
            "passport seen",
        ],
    );
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("--verified-by"), "{}", text(&out));
    assert!(registration(&js, "SAR-1").await.is_none());

    // Registered: recorded with who asked, who verified, on what evidence and when.
    let before = lfr_schemas::Timestamp::now();
    register(
        &sup1,
        &master,
        "SAR-1",
        &[
            "--deployment",
            "match-day",
            "--from",
            "2026-01-01T00:00:00Z",
        ],
    );
    let record = registration(&js, "SAR-1").await.unwrap();
    assert_eq!(record["reference"], "SAR-1");
    assert_eq!(record["requester"], "the requester of the test");
    assert_eq!(record["identity_verified_by"], "sup-2");
    assert_eq!(record["identity_evidence"], "passport seen");
    assert_eq!(
        record["scope"],
        serde_json::json!({"deployments": ["match-day"], "from": "2026-01-01T00:00:00Z", "to": null})
    );
    assert_eq!(record["searches"], serde_json::json!([]));
    assert_eq!(record["closed"], serde_json::Value::Null);
    let at = lfr_watchlist::time::parse_utc(record["registered_at"].as_str().unwrap()).unwrap();
    assert!(at.0 + 1_000_000_000 >= before.0, "{record:#}");
    let events = audit_of(&js, ObjectMatch::Exact("access-request/SAR-1".into())).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].action, AuditAction::Collection);
    assert_eq!(
        events[0].actor, "sup-1",
        "the account logged in, not the verifier"
    );
    assert_eq!(record["registered_by"], "sup-1");
    // Registered once: a second registration is refused and changes nothing.
    let out = lfr(
        &sup1,
        &master,
        &[
            "register",
            "--request",
            "SAR-1",
            "--requester",
            "someone else",
            "--verified-by",
            "sup-3",
            "--identity-evidence",
            "none",
        ],
    );
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("already registered"), "{}", text(&out));
    assert_eq!(registration(&js, "SAR-1").await.unwrap(), record);

    // Nobody logged in: no search, export or closing, nothing recorded, the photo untouched.
    let export = dir.path().join("bundle-nobody");
    for args in [
        &[
            "search",
            "--photo",
            photo.to_str().unwrap(),
            "--request",
            "SAR-1",
        ][..],
        &[
            "export",
            "--photo",
            photo.to_str().unwrap(),
            "--request",
            "SAR-1",
            "--out",
            export.to_str().unwrap(),
        ][..],
        &["close", "--request", "SAR-1", "--reason", "answered"][..],
    ] {
        support::refused(nobody(&nats, &master, args), support::NOT_LOGGED_IN);
    }
    assert!(photo.exists() && !export.exists());
    assert_eq!(registration(&js, "SAR-1").await.unwrap(), record);
    assert_eq!(
        audit_of(&js, ObjectMatch::Prefix("access-request/".into()))
            .await
            .len(),
        1
    );

    // `show` prints it, to anyone (it changes and records nothing).
    let out = nobody(&nats, &master, &["show", "--request", "SAR-1"]);
    assert!(out.status.success(), "{}", text(&out));
    let shown = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(shown.contains("SAR-1: open"), "{shown}");
    assert!(shown.contains("by sup-2 (passport seen)"), "{shown}");
    assert!(shown.contains("Z by sup-1"), "registered by: {shown}");
    assert!(shown.contains("deployments match-day"), "{shown}");

    // Closed: no further search is made for it.
    let out = lfr(
        &sup1,
        &master,
        &[
            "close",
            "--request",
            "SAR-1",
            "--reason",
            "withdrawn by the requester",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let record = registration(&js, "SAR-1").await.unwrap();
    assert_eq!(record["closed"]["by"], "sup-1");
    assert_eq!(record["closed"]["reason"], "withdrawn by the requester");
    let out = search_for("SAR-1");
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("was closed by sup-1"), "{}", text(&out));
    assert!(photo.exists());
    let actions: Vec<AuditAction> = audit_of(&js, ObjectMatch::Prefix("access-request/".into()))
        .await
        .iter()
        .map(|e| e.action)
        .collect();
    assert_eq!(actions, [AuditAction::Collection, AuditAction::Alteration]);
    assert!(audit_of(&js, ObjectMatch::Prefix("alert/".into()))
        .await
        .is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_search_covers_the_request_only_records_every_match_and_keeps_no_photo() {
    let World {
        nats, js, master, ..
    } = world().await;
    let sup1 = Person::bootstrap(&nats, "sup-1", None);
    let dir = tempfile::tempdir().unwrap();

    // Biden asks about one deployment only: his match-day alert is outside the request.
    register(&sup1, &master, "SAR-AWAY", &["--deployment", "away-day"]);
    let photo = copy_photo(dir.path(), "faces/biden.jpg");
    let photo_bytes = std::fs::read(&photo).unwrap();
    let started = Instant::now();
    let out = lfr(
        &sup1,
        &master,
        &[
            "search",
            "--photo",
            photo.to_str().unwrap(),
            "--request",
            "SAR-AWAY",
            "--json",
        ],
    );
    let search_time = started.elapsed();
    assert!(out.status.success(), "{}", text(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(found(&report), ["a-biden-false"], "{report:#}");
    assert_eq!(report["searched"], 1);
    assert_eq!(report["out_of_scope"], 3);
    assert_eq!(report["scope"], "deployments away-day; any time");
    // The photo is gone once the search is recorded; only its digest is kept.
    assert!(!photo.exists(), "the photo's file was not removed");
    assert_eq!(report["photo_file"], "removed");
    let digest = sha256_hex(&photo_bytes);
    assert_eq!(report["photo_sha256"].as_str(), Some(digest.as_str()));

    // Recorded against the request: what was searched (by digest), and every alert found.
    let record = registration(&js, "SAR-AWAY").await.unwrap();
    let searches = record["searches"].as_array().unwrap();
    assert_eq!(searches.len(), 1, "{record:#}");
    let s = &searches[0];
    assert_eq!(s["kind"], "search");
    assert_eq!(s["by"], "sup-1");
    assert_eq!(s["photo_sha256"].as_str(), Some(digest.as_str()));
    assert_eq!(s["photo_file"], "removed");
    assert_eq!(s["searched"], 1);
    assert_eq!(s["out_of_scope"], 3);
    assert_eq!(s["found"].as_array().unwrap().len(), 1);
    assert_eq!(s["found"][0]["alert_id"], "a-biden-false");
    assert_eq!(s["found"][0]["deployment"], "away-day");
    assert!(s["found"][0]["similarity"].as_f64().unwrap() >= THRESHOLD as f64);
    assert_eq!(s["audit_event"], report["audit_event"]);
    // And on AUDIT: the consultation for the request, and one on the alert's own trail.
    let events = audit_of(&js, ObjectMatch::Exact("access-request/SAR-AWAY".into())).await;
    let consultation = events
        .iter()
        .find(|e| e.action == AuditAction::Consultation)
        .unwrap();
    assert_eq!(consultation.event_id, s["audit_event"].as_str().unwrap());
    assert_eq!(consultation.digest.as_deref(), Some(digest.as_str()));
    assert!(
        consultation
            .justification
            .contains("deployments away-day; any time; 3 outside it not searched"),
        "{}",
        consultation.justification
    );
    let trail = audit_of(&js, ObjectMatch::Prefix("alert/".into())).await;
    // The consultation, and the access-request hold placed on what it found.
    assert_eq!(trail.len(), 2, "{trail:?}");
    assert_eq!(trail[1].action, AuditAction::Alteration);
    assert_eq!(trail[0].object, "alert/a-biden-false");
    assert_eq!(trail[0].deployment.as_deref(), Some("away-day"));
    assert_eq!(trail[0].action, AuditAction::Consultation);

    // The export, photo on standard input (never a file): the bundle holds the request's alert
    // only, and is recorded against the request too.
    let bundle = dir.path().join("bundle");
    let out = lfr_with_stdin(
        &sup1,
        &master,
        &[
            "export",
            "--photo",
            "-",
            "--request",
            "SAR-AWAY",
            "--out",
            bundle.to_str().unwrap(),
        ],
        &photo_bytes,
    );
    assert!(out.status.success(), "{}", text(&out));
    let manifest_bytes = std::fs::read(bundle.join("manifest.json")).unwrap();
    let manifest: serde_json::Value = serde_json::from_slice(&manifest_bytes).unwrap();
    assert_eq!(manifest["alerts"], serde_json::json!(["a-biden-false"]));
    assert_eq!(manifest["scope"], "deployments away-day; any time");
    let record = registration(&js, "SAR-AWAY").await.unwrap();
    let export = &record["searches"][1];
    assert_eq!(export["kind"], "export");
    assert_eq!(export["photo_file"], "stdin");
    assert_eq!(export["photo_sha256"].as_str(), Some(digest.as_str()));
    assert_eq!(
        export["manifest_sha256"].as_str(),
        Some(sha256_hex(&manifest_bytes).as_str())
    );
    assert_eq!(export["found"][0]["alert_id"], "a-biden-false");

    // What the request found is held from erasure while it is answered, and released when the
    // request is closed.
    let access_hold = |book: &lfr_alerts::Book| {
        book.get("a-biden-false").and_then(|e| {
            e.holds
                .iter()
                .find(|h| h.placed.case_reference == "SAR-AWAY")
                .cloned()
        })
    };
    let held = access_hold(&lfr_alerts::feed::snapshot(&js).await.unwrap()).expect("a hold");
    assert_eq!(held.placed.reason, lfr_schemas::HoldReason::AccessRequest);
    assert!(held.lifted.is_none());
    assert!(lfr_alerts::feed::snapshot(&js)
        .await
        .unwrap()
        .get("a-biden-false")
        .unwrap()
        .is_held());
    let out = lfr(
        &sup1,
        &master,
        &["close", "--request", "SAR-AWAY", "--reason", "answered"],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("1 access-request holds released"),
        "{}",
        text(&out)
    );
    let book = lfr_alerts::feed::snapshot(&js).await.unwrap();
    assert!(
        access_hold(&book).unwrap().lifted.is_some(),
        "released on closing"
    );
    assert!(!book.get("a-biden-false").unwrap().is_held());

    // A request for a period when nothing was raised searches nothing at all.
    register(
        &sup1,
        &master,
        "SAR-LATER",
        &["--from", "2099-01-01T00:00:00Z"],
    );
    let out = lfr_with_stdin(
        &sup1,
        &master,
        &["search", "--photo", "-", "--request", "SAR-LATER", "--json"],
        &photo_bytes,
    );
    assert!(out.status.success(), "{}", text(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(found(&report), Vec::<String>::new(), "{report:#}");
    assert_eq!(report["searched"], 0);
    assert_eq!(report["out_of_scope"], 4);

    // Nothing the bus keeps on file holds the photo: every message of every stream and bucket
    // the administrator can read (the transient streams are memory only and hold no photo: the
    // command cannot publish to them).
    let mut messages = 0;
    for spec in lfr_schemas::streams::topology(&Default::default())
        .into_iter()
        .filter(|s| s.storage == lfr_schemas::streams::Storage::File)
    {
        let stream = js.get_stream(&spec.name).await.unwrap();
        let info = stream.get_info().await.unwrap();
        for seq in info.state.first_sequence..=info.state.last_sequence {
            let Ok(message) = stream.get_raw_message(seq).await else {
                continue;
            };
            messages += 1;
            let payload = &message.payload;
            // Four stretches of 256 bytes from inside the JPEG's compressed data.
            for k in 1..=4 {
                let at = photo_bytes.len() * k / 5;
                let chunk = &photo_bytes[at..at + 256];
                assert!(
                    !payload.windows(chunk.len()).any(|w| w == chunk),
                    "{} message {seq} holds bytes of the photo",
                    spec.name
                );
            }
        }
    }
    assert!(messages > 10, "{messages} messages read");
    eprintln!(
        "access search (a fresh CLI process: models loaded, 1 alert in scope of 4): {} ms",
        search_time.as_millis()
    );
}
