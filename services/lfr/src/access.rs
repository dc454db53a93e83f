//! `lfr access`: the data subject's right of access (UK DPA 2018 Part 3, s.45), without
//! retrospective search.
//!
//! ```text
//! lfr login --account sup-1            # every step but `show` acts as a supervisor's account
//! lfr access register --request SAR-2026-0042 --requester "J. Doe" --verified-by sup-2 \
//!     --identity-evidence "passport seen" [--deployment D ...] [--from T] [--to T]
//! lfr access search --request SAR-2026-0042 --photo subject.jpg [--threshold 0.6] [--json] [--keep-photo]
//! lfr access export --request SAR-2026-0042 --photo subject.jpg --out DIR [--keep-photo]
//! lfr access show   --request SAR-2026-0042 [--json]
//! lfr access close  --request SAR-2026-0042 --reason "answered by letter"
//! ```
//!
//! **Who acts is the account logged in** ([`crate::login::supervisor`]): registering, searching,
//! exporting and closing are refused without a supervisor's session, and the request's record
//! and every audit event name that account. `--verified-by` is data about the request (who
//! checked the requester's identity, maybe someone else), never who acts.
//!
//! **A registered request first.** A face is searched for only for a request registered in the
//! `lfr-access-requests` bucket ([`request`]): who asked, who verified their identity, on what
//! evidence, when, and what the request covers (deployments, a period; everything if nothing is
//! named). A search or export for a reference that is not registered, or that was closed, is
//! refused before the photo is even read. Registering is recorded on AUDIT as a collection,
//! closing as an alteration.
//!
//! **The request's scope only.** A search finds the face in the subject's photo (the largest that
//! passes the quality gate; a photo where another face is nearly as large is refused, as it is
//! unclear whose data is asked for), embeds it, and compares it with the probe face of each
//! retained alert **in the request's scope** (blue-list alerts included); alerts outside it are
//! counted, never opened. Each probe chip is opened with the vault (`LFR_MASTER_KEY`), embedded as
//! it is (it is already aligned) and compared by cosine similarity. Alerts whose key was destroyed
//! (crypto-shredded) or that do not open are skipped and counted.
//!
//! **The photo is discarded.** It is read once (from a file or standard input), turned into a
//! template held in memory only, and dropped; its file is removed once the search is recorded
//! (unless `--keep-photo`). Only its sha256 is stored.
//!
//! **Everything recorded against the request.** Each search appends to the request's record what
//! was searched (the photo's sha256, threshold, embedder, how many alerts in scope, skipped and
//! outside it) and every alert found with its similarity; on AUDIT, first a **combination** for
//! the request (the photo compared with the stored alerts in scope; nothing found is shown or
//! written if it cannot be recorded), then one consultation (search) or
//! disclosure (export) for the request (`access-request/<REF>`, with the photo's or the manifest's
//! sha256) and one per alert found (`alert/<ID>`, on its deployment's audit subject). Results are
//! printed only once these are recorded; a bundle is written into a new private directory and
//! removed if its disclosure cannot be recorded, so nothing unrecorded is shown or handed over.
//!
//! An export makes the same search and writes a bundle ([`bundle`]) for the subject: per alert
//! found, the probe chip, the context image with **every other face blurred**
//! (`lfr_vision::redact`), the watch-list image only where it is the subject's own, and the
//! alert's times, camera, category, similarity, decision and outcomes (no staff account ids, no
//! free text); and a manifest with the sha256 of every file. See `docs/access.md`.

mod bundle;
mod request;

use crate::connect::NatsArgs;
use lfr_alerts::{feed, holds, Entry};
use lfr_common::audit::Audit;
use lfr_schemas::{
    AuditAction, AuditObject, Decision, HoldReason, Outcome, Timestamp, WatchlistCategory,
};
use lfr_vault::{AlertImage, MasterKey, Vault, VaultError};
use lfr_vision::config::ModelsConfig;
use lfr_vision::embedder::{cosine, Embedder};
use lfr_vision::faces::FaceFinder;
use lfr_vision::image::encode_jpeg;
use lfr_vision::redact;
use lfr_watchlist::lifecycle::Actor;
use lfr_watchlist::list::sha256_hex;
use lfr_watchlist::time::{format_utc, parse_utc};
use opencv::core::{Mat, Vector};
use opencv::prelude::*;
use opencv::{imgcodecs, imgproc};
use request::{
    check_reference, check_text, Closure, Found, PhotoFile, Registration, Requests, Scope,
    SearchKind, SearchRecord,
};
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

/// A second face at least this large (eye distance, relative to the largest face's) makes the
/// search photo ambiguous: it is refused.
const AMBIGUOUS_FACE: f32 = 0.5;
/// Probe chips embedded per inference call.
const BATCH: usize = 16;
/// Alert ids named in an audit event's justification (the manifest lists them all).
const IDS_IN_AUDIT: usize = 20;
/// Deployments named in an audit event's description of a scope (more are counted).
const DEPLOYMENTS_IN_AUDIT: usize = 4;
/// JPEG quality of the images written to a bundle (all re-encoded: no metadata survives).
const JPEG_QUALITY: i32 = 92;
/// Largest photo read from standard input.
const MAX_PHOTO_BYTES: u64 = 64 * 1024 * 1024;

#[derive(clap::Args)]
pub struct AccessArgs {
    #[command(flatten)]
    nats: NatsArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Register a subject access request once the requester's identity is verified: no search
    /// is made without one. Recorded on AUDIT as a collection.
    Register(RegisterArgs),
    /// Find the alerts in the request's scope that show the person in a photo, and print them.
    /// Recorded against the request, and on AUDIT as consultations.
    Search {
        #[command(flatten)]
        request: SearchArgs,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// The same search, then write the disclosure bundle (images with other people's faces
    /// blurred, each alert's record, a manifest of hashes) to a new directory. Recorded against
    /// the request, and on AUDIT as disclosures to the data subject.
    Export {
        #[command(flatten)]
        request: SearchArgs,
        /// Directory to create for the bundle (must not exist).
        #[arg(long)]
        out: PathBuf,
    },
    /// Print a request: who asked, who verified their identity, its scope, and every search
    /// and export made for it.
    Show {
        #[arg(long)]
        request: String,
        /// Print the stored record as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Close a request once it is answered or withdrawn: no further search is made for it.
    /// Recorded on AUDIT as an alteration.
    Close {
        #[arg(long)]
        request: String,
        /// Why, in one line (e.g. "answered: bundle sent 2026-12-02").
        #[arg(long)]
        reason: String,
    },
}

#[derive(clap::Args)]
struct RegisterArgs {
    /// The force's reference of the subject access request (e.g. SAR-2026-0042).
    #[arg(long)]
    request: String,
    /// The requester, as the force's SAR file names them.
    #[arg(long)]
    requester: String,
    /// Account id of the supervisor who verified the requester's identity (recorded with the
    /// request and on AUDIT; the one registering it is the account logged in).
    #[arg(long)]
    verified_by: String,
    /// What the identity was verified on, e.g. "passport seen".
    #[arg(long)]
    identity_evidence: String,
    /// A deployment the request covers (repeat for several). Without one, every deployment.
    #[arg(long = "deployment")]
    deployments: Vec<String>,
    /// Only alerts raised at or after this time (UTC, e.g. 2026-11-28T00:00:00Z).
    #[arg(long)]
    from: Option<String>,
    /// Only alerts raised at or before this time (UTC).
    #[arg(long)]
    to: Option<String>,
}

#[derive(clap::Args)]
struct SearchArgs {
    /// The registered request this search is made for (`lfr access register`).
    #[arg(long)]
    request: String,
    /// Photo of the data subject (JPEG or PNG), or `-` for standard input. The largest face
    /// passing the quality gate is searched for; a photo where another face is about as large is
    /// refused: crop it. Its file is removed once the search is recorded.
    #[arg(long)]
    photo: PathBuf,
    /// Keep the photo's file (e.g. to export after this search). Remove it yourself afterwards.
    #[arg(long)]
    keep_photo: bool,
    /// Cosine similarity from which an alert's probe face is taken to be the data subject.
    #[arg(long, default_value_t = 0.6)]
    threshold: f32,
    /// The embedder the services run (`[models] embedder`): probe chips are aligned for it.
    #[arg(long, default_value = "mobilefacenet")]
    embedder: String,
}

impl SearchArgs {
    fn check(&self) -> anyhow::Result<()> {
        check_reference(&self.request)?;
        anyhow::ensure!(
            self.threshold > 0.0 && self.threshold <= 1.0,
            "--threshold must be a cosine similarity in (0, 1]"
        );
        Ok(())
    }

    fn photo_on_stdin(&self) -> bool {
        self.photo.as_os_str() == "-"
    }
}

pub async fn run(args: AccessArgs) -> anyhow::Result<()> {
    let AccessArgs { nats, command } = args;
    match command {
        Command::Register(register_args) => register(&nats, register_args).await,
        Command::Search { request, json } => search_or_export(&nats, &request, None, json).await,
        Command::Export { request, out } => {
            search_or_export(&nats, &request, Some(&out), false).await
        }
        Command::Show { request, json } => show(&nats, &request, json).await,
        Command::Close { request, reason } => close(&nats, &request, &reason).await,
    }
}

/// The logged-in account, as the audit events and holds name it.
fn audit(me: &Actor) -> Audit<'_> {
    Audit {
        actor: &me.id,
        role: &me.role,
    }
}

fn object(reference: &str) -> AuditObject {
    AuditObject::AccessRequest(reference.into())
}

async fn register(nats: &NatsArgs, args: RegisterArgs) -> anyhow::Result<()> {
    check_reference(&args.request)?;
    check_text("--requester", &args.requester)?;
    check_text("--identity-evidence", &args.identity_evidence)?;
    anyhow::ensure!(
        !args.verified_by.trim().is_empty(),
        "--verified-by must name the account of the supervisor who verified the requester's \
         identity"
    );
    let mut deployments = args.deployments;
    for d in &deployments {
        lfr_schemas::subjects::validate_token("--deployment", d)?;
    }
    deployments.sort();
    deployments.dedup();
    let from = args.from.as_deref().map(parse_utc).transpose()?;
    let to = args.to.as_deref().map(parse_utc).transpose()?;
    if let (Some(from), Some(to)) = (from, to) {
        anyhow::ensure!(from <= to, "--from must not be after --to");
    }
    let registration = Registration {
        reference: args.request.clone(),
        requester: args.requester.trim().into(),
        identity_verified_by: args.verified_by.trim().into(),
        identity_evidence: args.identity_evidence.trim().into(),
        registered_at: Timestamp::now(),
        registered_by: String::new(),
        scope: Scope {
            deployments,
            from,
            to,
        },
        searches: Vec::new(),
        closed: None,
    };
    let bus = nats.bus().await?;
    let js = &bus.jetstream;
    let me = crate::login::supervisor(js, "lfr access register").await?;
    let registration = Registration {
        registered_by: me.id.clone(),
        ..registration
    };
    let requests = Requests::open(js).await?;
    let stored = requests.register(&registration).await?;
    // The requester's name and the evidence stay in the request's record: the log names the
    // request by reference and the record by digest.
    let event = audit(&me)
        .event(AuditAction::Collection, object(&registration.reference))
        .why(format!(
            "right of access request registered; requester's identity verified by {}; scope: {}",
            registration.identity_verified_by,
            scope_brief(&registration.scope)
        ))
        .digest(sha256_hex(&stored))
        .record(js)
        .await
        .map_err(|e| {
            e.context(format!(
                "access request {} is registered, but recording it on AUDIT failed",
                registration.reference
            ))
        })?;
    println!(
        "access request {} registered: requester's identity verified by {} ({}); scope: {}",
        registration.reference,
        registration.identity_verified_by,
        registration.identity_evidence,
        registration.scope.describe()
    );
    println!("recorded on AUDIT: event {}", event.event.event_id);
    Ok(())
}

/// The scope as an audit event tells it: a few deployments by name, more counted.
fn scope_brief(scope: &Scope) -> String {
    if scope.deployments.len() <= DEPLOYMENTS_IN_AUDIT {
        return scope.describe();
    }
    Scope {
        deployments: vec![format!("({} in all)", scope.deployments.len())],
        ..scope.clone()
    }
    .describe()
}

async fn show(nats: &NatsArgs, reference: &str, json: bool) -> anyhow::Result<()> {
    check_reference(reference)?;
    let js = nats.jetstream("lfr-access").await?;
    let requests = Requests::open(&js).await?;
    let Some((r, _)) = requests.get(reference).await? else {
        anyhow::bail!("access request {reference} is not registered");
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&r)?);
        return Ok(());
    }
    let state = match &r.closed {
        None => "open".to_string(),
        Some(c) => format!("closed by {} at {}: {}", c.by, format_utc(c.at), c.reason),
    };
    println!("access request {}: {state}", r.reference);
    println!("  requester:          {}", r.requester);
    println!(
        "  identity verified:  by {} ({})",
        r.identity_verified_by, r.identity_evidence
    );
    println!(
        "  registered:         {}{}",
        format_utc(r.registered_at),
        if r.registered_by.is_empty() {
            String::new()
        } else {
            format!(" by {}", r.registered_by)
        }
    );
    println!("  scope:              {}", r.scope.describe());
    println!("  searches:           {}", r.searches.len());
    for s in &r.searches {
        println!(
            "  {} {} by {}: {} alerts found at threshold {:.2} ({} in scope searched, {} outside \
             it not searched; skipped: {} crypto-shredded, {} unreadable); photo sha256 {} ({}); \
             audit event {}{}",
            format_utc(s.at),
            s.kind.as_str(),
            s.by,
            s.found.len(),
            s.threshold,
            s.searched,
            s.out_of_scope,
            s.crypto_shredded,
            s.unreadable,
            s.photo_sha256,
            s.photo_file.as_str(),
            s.audit_event,
            s.manifest_sha256
                .as_ref()
                .map_or(String::new(), |m| format!("; manifest.json sha256 {m}"))
        );
        for f in &s.found {
            println!(
                "    {}  {}  {}  {:.3}",
                f.alert_id,
                f.deployment,
                format_utc(f.raised_at),
                f.similarity
            );
        }
    }
    Ok(())
}

async fn close(nats: &NatsArgs, reference: &str, reason: &str) -> anyhow::Result<()> {
    check_reference(reference)?;
    check_text("--reason", reason)?;
    let bus = nats.bus().await?;
    let js = &bus.jetstream;
    let me = crate::login::supervisor(js, "lfr access close").await?;
    let requests = Requests::open(js).await?;
    let closure = Closure {
        by: me.id.clone(),
        at: Timestamp::now(),
        reason: reason.trim().into(),
    };
    let closed = requests
        .update(reference, |r| {
            if let Some(c) = &r.closed {
                anyhow::bail!(
                    "access request {reference} was already closed by {} at {}",
                    c.by,
                    format_utc(c.at)
                );
            }
            r.closed = Some(closure.clone());
            Ok(())
        })
        .await?;
    audit(&me)
        .event(AuditAction::Alteration, object(reference))
        .why(format!(
            "right of access request closed after {} searches: {}",
            closed.searches.len(),
            closure.reason
        ))
        .digest(sha256_hex(&serde_json::to_vec(&closed)?))
        .record(js)
        .await?;
    // Answered or withdrawn: what it found follows ordinary retention again.
    let released = release_holds(&bus, &closed, &me).await?;
    println!(
        "access request {reference} closed ({} searches recorded against it; {released} \
         access-request holds released)",
        closed.searches.len()
    );
    Ok(())
}

/// The photo's bytes, from its file or standard input.
fn read_photo(request: &SearchArgs) -> anyhow::Result<Vec<u8>> {
    if request.photo_on_stdin() {
        let mut bytes = Vec::new();
        std::io::stdin()
            .take(MAX_PHOTO_BYTES)
            .read_to_end(&mut bytes)
            .map_err(|e| anyhow::anyhow!("cannot read the photo from standard input: {e}"))?;
        return Ok(bytes);
    }
    std::fs::read(&request.photo)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", request.photo.display()))
}

/// Remove the photo's file, unless asked to keep it. Only a plain file is removed (never what a
/// link points to).
fn discard_photo(request: &SearchArgs) -> PhotoFile {
    if request.photo_on_stdin() {
        return PhotoFile::Stdin;
    }
    if request.keep_photo {
        return PhotoFile::Kept;
    }
    let path = &request.photo;
    let plain = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_file());
    match plain.then(|| std::fs::remove_file(path)) {
        Some(Ok(())) => PhotoFile::Removed,
        Some(Err(e)) => {
            eprintln!(
                "the photo {} could not be removed ({e}): delete it by hand",
                path.display()
            );
            PhotoFile::Kept
        }
        None => {
            eprintln!(
                "the photo {} is not a plain file and was not removed: delete it by hand",
                path.display()
            );
            PhotoFile::Kept
        }
    }
}

/// `lfr access search` and `export`: for a registered, open request only.
async fn search_or_export(
    nats: &NatsArgs,
    request: &SearchArgs,
    out: Option<&Path>,
    json: bool,
) -> anyhow::Result<()> {
    request.check()?;
    if let Some(out) = out {
        refuse_existing(out)?;
    }
    let master = MasterKey::from_env()?;
    let bus = nats.bus().await?;
    let js = &bus.jetstream;
    // Refused before anything is read: only a supervisor's own account searches.
    let me = crate::login::supervisor(
        js,
        if out.is_some() {
            "lfr access export"
        } else {
            "lfr access search"
        },
    )
    .await?;
    let requests = Requests::open(js).await?;
    // Refused before the photo is read: no face is searched for outside a registered request.
    let registration = requests.open_request(&request.request).await?;

    let photo = read_photo(request)?;
    let photo_sha256 = sha256_hex(&photo);
    let mut vision = tokio::task::block_in_place(|| Vision::load(&request.embedder))?;
    let subject = tokio::task::block_in_place(|| vision.subject(&photo))
        .map_err(|e| anyhow::anyhow!("{}: {e}", request.photo.display()))?;
    // From here on only the template (in memory) and the digest are left of the photo.
    drop(photo);

    let vault = Vault::open(js, master).await?;
    // The retained alerts as ALERTS holds them now: searched, then held for the request.
    let book = feed::snapshot(js).await?;
    let audit = audit(&me);
    let search = search(
        &book,
        &vault,
        &mut vision,
        &subject,
        request.threshold,
        &registration.scope,
    )
    .await?;
    // Comparing the requester's photo with the stored alerts combined the two: on the record
    // before anything found is shown or written, and nothing is if it cannot be recorded.
    audit
        .event(AuditAction::Combination, object(&request.request))
        .why(format!(
            "right of access {}: the requester's photo compared with {} retained alerts in the \
             request's scope ({}; {} outside it not searched)",
            if out.is_some() { "export" } else { "search" },
            search.searched,
            scope_brief(&registration.scope),
            search.out_of_scope
        ))
        .digest(&photo_sha256)
        .record(js)
        .await
        .map_err(|e| e.context("recording the comparison on AUDIT failed; nothing is shown"))?;
    let reference = request.request.as_str();
    let (kind, event, manifest_sha256) = match out {
        None => {
            let event = audit
                .event(AuditAction::Consultation, object(reference))
                .why(format!(
                    "right of access search: {} alerts found{}",
                    search.found.len(),
                    search.details(request.threshold, &registration.scope)
                ))
                .digest(&photo_sha256)
                .record(js)
                .await?
                .event;
            audit_each(
                js,
                &audit,
                AuditAction::Consultation,
                request,
                &search,
                &photo_sha256,
            )
            .await?;
            (SearchKind::Search, event, None)
        }
        Some(out) => {
            // Created here, not earlier: only a directory this command made is ever removed.
            std::fs::DirBuilder::new()
                .mode(0o700)
                .create(out)
                .map_err(|e| match e.kind() {
                    std::io::ErrorKind::AlreadyExists => already_exists(out),
                    _ => anyhow::anyhow!("cannot create {}: {e}", out.display()),
                })?;
            let written = bundle::write_bundle(
                out,
                request,
                &registration.scope,
                &search,
                &vault,
                &mut vision,
                &subject,
            )
            .await;
            let manifest_sha256 = match written {
                Ok(digest) => digest,
                Err(e) => {
                    let _ = std::fs::remove_dir_all(out);
                    return Err(e.context("writing the bundle failed; nothing was disclosed"));
                }
            };
            let recorded = async {
                let event = audit
                    .event(AuditAction::Disclosure, object(reference))
                    .why(format!(
                        "right of access export: {} alerts disclosed{}",
                        search.found.len(),
                        search.details(request.threshold, &registration.scope)
                    ))
                    .recipient(format!("data-subject:{reference}"))
                    .digest(&manifest_sha256)
                    .record(js)
                    .await?
                    .event;
                audit_each(
                    js,
                    &audit,
                    AuditAction::Disclosure,
                    request,
                    &search,
                    &manifest_sha256,
                )
                .await?;
                anyhow::Ok(event)
            }
            .await;
            match recorded {
                Ok(event) => (SearchKind::Export, event, Some(manifest_sha256)),
                Err(e) => {
                    // A disclosure that is not on the log must not happen.
                    let _ = std::fs::remove_dir_all(out);
                    return Err(
                        e.context("recording the disclosure on AUDIT failed; bundle removed")
                    );
                }
            }
        }
    };

    let photo_file = discard_photo(request);
    let record = SearchRecord {
        kind,
        at: event.at,
        by: me.id.clone(),
        photo_sha256: photo_sha256.clone(),
        photo_file,
        threshold: request.threshold,
        embedder: request.embedder.clone(),
        searched: search.searched,
        out_of_scope: search.out_of_scope,
        crypto_shredded: search.shredded,
        unreadable: search.unreadable,
        found: search
            .found
            .iter()
            .map(|m| Found {
                alert_id: m.entry.alert.alert_id.clone(),
                deployment: m.entry.alert.deployment.clone(),
                raised_at: m.entry.alert.raised_at,
                similarity: m.similarity,
            })
            .collect(),
        audit_event: event.event_id.clone(),
        manifest_sha256: manifest_sha256.clone(),
    };
    let stored = requests
        .update(reference, |r| {
            r.searches.push(record.clone());
            Ok(())
        })
        .await;
    if let Err(e) = stored {
        if let Some(out) = out {
            let _ = std::fs::remove_dir_all(out);
        }
        return Err(e.context(format!(
            "the {} is on AUDIT (event {}), but recording it against access request {reference} \
             failed{}",
            kind.as_str(),
            event.event_id,
            if out.is_some() {
                "; bundle removed"
            } else {
                ""
            }
        )));
    }

    let held = hold_found(&bus, &book, &search, reference, &me).await?;

    match out {
        None if json => {
            let report = SearchReport {
                request: reference,
                scope: registration.scope.describe(),
                threshold: request.threshold,
                searched: search.searched,
                out_of_scope: search.out_of_scope,
                found: search.found.iter().map(Summary::of).collect(),
                skipped: search.skipped(),
                photo_sha256: &photo_sha256,
                photo_file: photo_file.as_str(),
                audit_event: &event.event_id,
            };
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
        None => {
            print_search(request, &registration.scope, &search, &event, photo_file);
            println!("{held} alerts held for the request (reason access-request, case {reference}) until it is closed");
        }
        Some(out) => {
            println!(
                "bundle for {reference} written to {}: {} alerts ({} retained alerts in the \
                 request's scope searched, {} outside it not searched; {})",
                out.display(),
                search.found.len(),
                search.searched,
                search.out_of_scope,
                search.skipped_text()
            );
            println!(
                "manifest.json sha256 {}",
                manifest_sha256.as_deref().unwrap_or_default()
            );
            println!(
                "recorded against access request {reference} and on AUDIT: disclosure to \
                 data-subject:{reference}; photo {}. Review every image before it is released \
                 (docs/access.md).",
                photo_file.as_str()
            );
        }
    }
    Ok(())
}

/// Keep what the request found from erasure while it is answered: an access-request hold on each
/// alert found, under the request's reference (renewed if a search finds it again), released when
/// the request is closed. Returns how many alerts it holds.
async fn hold_found(
    bus: &lfr_common::bus::Bus,
    book: &lfr_alerts::Book,
    search: &Search,
    reference: &str,
    by: &Actor,
) -> anyhow::Result<usize> {
    for m in &search.found {
        let placed = holds::place(
            bus,
            book,
            holds::HoldRequest {
                target: holds::Target::Alert(m.entry.alert.alert_id.clone()),
                reason: HoldReason::AccessRequest,
                case_reference: reference,
                by: audit(by),
                at: Timestamp::now(),
            },
        )
        .await;
        placed.map_err(|e| {
            e.context(format!(
                "the search is recorded against {reference}, but alert {} could not be put on \
                 hold: place it with `lfr retention hold --alert {} --reason access-request \
                 --case {reference}`",
                m.entry.alert.alert_id, m.entry.alert.alert_id
            ))
        })?;
    }
    Ok(search.found.len())
}

/// Release the access-request holds a request's searches placed (an alert already erased, or
/// whose hold was released by hand, has none left). Returns how many were released.
async fn release_holds(
    bus: &lfr_common::bus::Bus,
    request: &Registration,
    by: &Actor,
) -> anyhow::Result<usize> {
    let book = feed::snapshot(&bus.jetstream).await?;
    let mut alerts: Vec<&str> = request
        .searches
        .iter()
        .flat_map(|s| s.found.iter().map(|f| f.alert_id.as_str()))
        .collect();
    alerts.sort_unstable();
    alerts.dedup();
    let mut released = 0;
    for alert in alerts {
        let standing = book.get(alert).is_some_and(|e| {
            e.holds
                .iter()
                .any(|h| h.lifted.is_none() && h.placed.case_reference == request.reference)
        });
        if !standing {
            continue;
        }
        holds::release(
            bus,
            &book,
            &holds::Target::Alert(alert.into()),
            &request.reference,
            audit(by),
            Timestamp::now(),
        )
        .await?;
        released += 1;
    }
    Ok(released)
}

/// One AUDIT event per alert found, on its deployment's audit subject, so that each alert's own
/// trail shows it was consulted (or disclosed) for the request.
async fn audit_each(
    js: &async_nats::jetstream::Context,
    audit: &Audit<'_>,
    action: AuditAction,
    request: &SearchArgs,
    search: &Search,
    digest: &str,
) -> anyhow::Result<()> {
    let reference = &request.request;
    for m in &search.found {
        let alert = &m.entry.alert;
        let (what, recipients) = match action {
            AuditAction::Disclosure => (
                "export: the alert's images and record disclosed to the data subject",
                vec![format!("data-subject:{reference}")],
            ),
            _ => ("search: the alert's probe face consulted", vec![]),
        };
        audit
            .event(action, AuditObject::Alert(alert.alert_id.clone()))
            .deployment(&alert.deployment)
            .why(format!(
                "right of access {what} for access-request/{reference} (similarity {:.3} to the \
                 requester's photo, threshold {:.2})",
                m.similarity, request.threshold
            ))
            .recipients(recipients)
            .digest(digest)
            .record(js)
            .await?;
    }
    Ok(())
}

/// The export directory must be new: a bundle is never written into or over another.
fn refuse_existing(out: &Path) -> anyhow::Result<()> {
    match std::fs::symlink_metadata(out) {
        Ok(_) => Err(already_exists(out)),
        Err(_) => Ok(()),
    }
}

fn already_exists(out: &Path) -> anyhow::Error {
    anyhow::anyhow!(
        "{} already exists: give a new directory for the bundle",
        out.display()
    )
}

/// The models a search needs: the live face finder (for the subject's photo), a more sensitive
/// one (for redaction), and the embedder.
struct Vision {
    finder: FaceFinder,
    sensitive: FaceFinder,
    embedder: Embedder,
}

impl Vision {
    fn load(embedder: &str) -> anyhow::Result<Vision> {
        let models = ModelsConfig {
            embedder: embedder.into(),
            // Photos handed in are larger than camera frames: look at them as enrolment does.
            detector_input: [1280, 1280],
            ..Default::default()
        };
        let store = models.store()?;
        Ok(Vision {
            finder: models.face_finder(&store)?,
            sensitive: redact::sensitive_finder(&models, &store)?,
            embedder: models.embedder(&store)?,
        })
    }

    /// The template of the data subject: the largest face of the photo that passes the quality
    /// gate, refused when another face is about as large.
    fn subject(&mut self, photo: &[u8]) -> anyhow::Result<Vec<f32>> {
        let bgr = decode(photo).ok_or_else(|| anyhow::anyhow!("not a decodable image"))?;
        let mut found = self.finder.find(&bgr)?;
        found.faces.sort_by(|a, b| {
            b.quality
                .eye_distance_px
                .total_cmp(&a.quality.eye_distance_px)
        });
        let Some(largest) = found.faces.first() else {
            let refused = if found.rejected.is_empty() {
                "no face detected".to_string()
            } else {
                format!(
                    "{} faces refused by the quality gate ({})",
                    found.rejected.len(),
                    found.rejected.join(", ")
                )
            };
            anyhow::bail!(
                "no usable face: {refused}. Use a clear, frontal photo of the data subject's face"
            );
        };
        let size = largest.quality.eye_distance_px;
        let alike = found
            .faces
            .iter()
            .filter(|f| f.quality.eye_distance_px >= AMBIGUOUS_FACE * size)
            .count();
        anyhow::ensure!(
            alike == 1,
            "{alike} faces of similar size: it is unclear who the data subject is. Crop the photo \
             to the data subject's face"
        );
        let chip = largest.chip_rgb.clone();
        let mut templates = self.embedder.embed(&[chip])?;
        templates
            .pop()
            .ok_or_else(|| anyhow::anyhow!("the embedder returned nothing"))
    }

    /// Templates of probe chips (JPEG of the embedder's chip size); `None` for a chip that does
    /// not decode.
    fn embed_chips(&mut self, jpegs: &[&[u8]]) -> anyhow::Result<Vec<Option<Vec<f32>>>> {
        let [w, h] = self.embedder.spec.template_size;
        let mut out = vec![None; jpegs.len()];
        let mut chips = Vec::new();
        let mut index = Vec::new();
        for (i, jpeg) in jpegs.iter().enumerate() {
            let Some(bgr) = decode(jpeg) else { continue };
            anyhow::ensure!(
                bgr.cols() as u32 == w && bgr.rows() as u32 == h,
                "probe chips are {}x{}, but embedder {} takes {w}x{h}: give --embedder the \
                 embedder the services run ([models] embedder)",
                bgr.cols(),
                bgr.rows(),
                self.embedder.name
            );
            let mut rgb = Mat::default();
            imgproc::cvt_color_def(&bgr, &mut rgb, imgproc::COLOR_BGR2RGB)?;
            chips.push(rgb);
            index.push(i);
        }
        for (batch, at) in chips.chunks(BATCH).zip(index.chunks(BATCH)) {
            for (template, &i) in self.embedder.embed(batch)?.into_iter().zip(at) {
                out[i] = Some(template);
            }
        }
        Ok(out)
    }

    /// `jpeg` with every face but the subject's blurred, re-encoded; `None` if it does not decode.
    fn redact(
        &mut self,
        jpeg: &[u8],
        subject: &[f32],
        threshold: f32,
    ) -> anyhow::Result<Option<(Vec<u8>, redact::Redaction)>> {
        let Some(bgr) = decode(jpeg) else {
            return Ok(None);
        };
        let redaction = redact::keep_subject(
            &mut self.sensitive,
            &mut self.embedder,
            &bgr,
            subject,
            threshold,
        )?;
        let bytes = encode_jpeg(&redaction.image, JPEG_QUALITY)?;
        Ok(Some((bytes, redaction)))
    }
}

/// Decode an image (JPEG, PNG) to BGR; `None` if it is not one, or absurdly large (its size is
/// read from its header before anything decodes it).
fn decode(bytes: &[u8]) -> Option<Mat> {
    lfr_vision::image::check_size(bytes, lfr_vision::image::MAX_PIXELS).ok()?;
    imgcodecs::imdecode(&Vector::from_slice(bytes), imgcodecs::IMREAD_COLOR)
        .ok()
        .filter(|m| !m.empty() && m.channels() == 3)
}

/// An alert whose probe face is the data subject's.
struct Match {
    entry: Entry,
    similarity: f32,
    probe_jpeg: Vec<u8>,
}

struct Search {
    /// Retained alerts in the request's scope, looked at (skipped ones included).
    searched: usize,
    /// Retained alerts outside the request's scope: counted, never opened.
    out_of_scope: usize,
    /// Oldest first.
    found: Vec<Match>,
    shredded: usize,
    unreadable: usize,
}

#[derive(Serialize)]
struct Skipped {
    crypto_shredded: usize,
    unreadable: usize,
}

impl Search {
    fn skipped(&self) -> Skipped {
        Skipped {
            crypto_shredded: self.shredded,
            unreadable: self.unreadable,
        }
    }

    fn skipped_text(&self) -> String {
        format!(
            "skipped: {} crypto-shredded, {} unreadable",
            self.shredded, self.unreadable
        )
    }

    /// What an audit event adds to its count: the scope of the search and the alerts.
    fn details(&self, threshold: f32, scope: &Scope) -> String {
        let mut ids: Vec<&str> = self
            .found
            .iter()
            .take(IDS_IN_AUDIT)
            .map(|m| m.entry.alert.alert_id.as_str())
            .collect();
        let more = self.found.len().saturating_sub(IDS_IN_AUDIT);
        let more_text = format!("and {more} more");
        if more > 0 {
            ids.push(&more_text);
        }
        let listed = if ids.is_empty() {
            String::new()
        } else {
            format!("; alerts {}", ids.join(", "))
        };
        format!(
            " (of {} retained alerts in the request's scope, {}; {} outside it not searched; \
             threshold {threshold:.2}; {}){listed}",
            self.searched,
            scope_brief(scope),
            self.out_of_scope,
            self.skipped_text()
        )
    }
}

/// Compare the subject with the probe face of every retained alert in the request's scope; the
/// others are counted and never opened.
async fn search(
    book: &lfr_alerts::Book,
    vault: &Vault,
    vision: &mut Vision,
    subject: &[f32],
    threshold: f32,
    scope: &Scope,
) -> anyhow::Result<Search> {
    let all = book.all();
    let retained = all.len();
    let mut entries: Vec<Entry> = all.into_iter().filter(|e| scope.covers(&e.alert)).collect();
    entries.sort_by(|a, b| {
        (a.alert.raised_at.0, &a.alert.alert_id).cmp(&(b.alert.raised_at.0, &b.alert.alert_id))
    });
    let mut result = Search {
        searched: entries.len(),
        out_of_scope: retained - entries.len(),
        found: Vec::new(),
        shredded: 0,
        unreadable: 0,
    };
    let mut opened: Vec<(Entry, Vec<u8>)> = Vec::new();
    for entry in entries {
        let alert = &entry.alert;
        let aad = AlertImage::Probe.aad(&alert.deployment, &alert.alert_id);
        match vault.unseal(&alert.probe_jpeg, &aad).await {
            Ok(jpeg) => opened.push((entry, jpeg)),
            Err(e) if e.is_gone() => result.shredded += 1,
            // Every alert would fail alike: an answer of "nothing found" would be false.
            Err(e @ (VaultError::Store(_) | VaultError::WrongMasterKey { .. })) => {
                return Err(anyhow::anyhow!(e).context("the search could not be made"));
            }
            Err(e) => {
                eprintln!("alert {} skipped: {e}", alert.alert_id);
                result.unreadable += 1;
            }
        }
    }
    let jpegs: Vec<&[u8]> = opened.iter().map(|(_, j)| j.as_slice()).collect();
    let templates = tokio::task::block_in_place(|| vision.embed_chips(&jpegs))?;
    for ((entry, probe_jpeg), template) in opened.into_iter().zip(templates) {
        let Some(template) = template else {
            eprintln!(
                "alert {} skipped: its probe image does not decode",
                entry.alert.alert_id
            );
            result.unreadable += 1;
            continue;
        };
        let similarity = cosine(&template, subject);
        if similarity >= threshold {
            result.found.push(Match {
                entry,
                similarity,
                probe_jpeg,
            });
        }
    }
    Ok(result)
}

/// One found alert, as `search --json` prints it.
#[derive(Serialize)]
struct Summary {
    alert_id: String,
    deployment: String,
    raised_at: String,
    camera: String,
    category: &'static str,
    similarity: f32,
    review: &'static str,
    outcome: Option<&'static str>,
}

impl Summary {
    fn of(m: &Match) -> Summary {
        let alert = &m.entry.alert;
        Summary {
            alert_id: alert.alert_id.clone(),
            deployment: alert.deployment.clone(),
            raised_at: format_utc(alert.raised_at),
            camera: alert.probe.frame.camera.clone(),
            category: alert.category.as_str(),
            similarity: m.similarity,
            review: review(&m.entry),
            outcome: m.entry.outcome().map(|o| o.outcome.as_str()),
        }
    }
}

#[derive(Serialize)]
struct SearchReport<'a> {
    request: &'a str,
    scope: String,
    threshold: f32,
    /// Retained alerts in the request's scope.
    searched: usize,
    out_of_scope: usize,
    found: Vec<Summary>,
    skipped: Skipped,
    photo_sha256: &'a str,
    /// What became of the photo's file: removed, kept, stdin.
    photo_file: &'a str,
    audit_event: &'a str,
}

/// What an operator made of the alert.
fn review(entry: &Entry) -> &'static str {
    if entry.alert.category == WatchlistCategory::Blue {
        return "blue list (not reviewed)";
    }
    match &entry.decision {
        None => "pending",
        Some(d) => d.decision.as_str(),
    }
}

fn print_search(
    request: &SearchArgs,
    scope: &Scope,
    search: &Search,
    event: &lfr_schemas::AuditEvent,
    photo_file: PhotoFile,
) {
    println!(
        "access request {} ({}): {} alerts found at threshold {:.2} ({} retained alerts in the \
         request's scope searched, {} outside it not searched; {})",
        request.request,
        scope.describe(),
        search.found.len(),
        request.threshold,
        search.searched,
        search.out_of_scope,
        search.skipped_text()
    );
    println!(
        "recorded against the request and on AUDIT (event {}); photo {}",
        event.event_id,
        photo_file.as_str()
    );
    if search.found.is_empty() {
        return;
    }
    println!(
        "{:<26} {:<16} {:<21} {:<12} {:>10}  {:<24} OUTCOME",
        "ALERT", "DEPLOYMENT", "RAISED (UTC)", "CAMERA", "SIMILARITY", "REVIEW"
    );
    for m in &search.found {
        let alert = &m.entry.alert;
        let outcome = m.entry.outcome().map_or("-".to_string(), |o| {
            format!("{} ({})", o.outcome.as_str(), format_utc(o.recorded_at))
        });
        println!(
            "{:<26} {:<16} {:<21} {:<12} {:>10.3}  {:<24} {outcome}",
            alert.alert_id,
            alert.deployment,
            format_utc(alert.raised_at),
            alert.probe.frame.camera,
            m.similarity,
            review(&m.entry),
        );
    }
}
