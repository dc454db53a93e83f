//! Audit events: every service records collections, alterations, consultations, disclosures,
//! combinations and erasures on the AUDIT stream (file storage, deny delete, deny purge), with who,
//! when, why. Events name objects by reference and digest, never by content: no face image or
//! template is ever written to the audit log.
//!
//! # Recording an event
//!
//! An event starts from who acts, names what it is about by a typed [`AuditObject`] (rendered
//! `alert/<id>`, `deployment/<id>`, ...: no hand-written strings), says why, and is recorded:
//!
//! ```ignore
//! session.audit()
//!     .event(AuditAction::Consultation, AuditObject::Alert(id))
//!     .deployment(&deployment)
//!     .why("alert shown for review")
//!     .record(js)
//!     .await?;
//! ```
//!
//! An event without an actor, a role or a justification is refused ([`Incomplete`]) before
//! anything is written. `record` returns `Err` when the event is not on the log; callers
//! **fail closed**: what the event would have recorded (showing a face, a decision, a search)
//! does not happen.
//!
//! # The chain
//!
//! The events on AUDIT form one hash chain in stream order: each event's `prev_hash` is the `hash`
//! of the message stored just before it (64 zeros for the first), and its `hash`
//! ([`AuditEvent::compute_hash`]) covers every other field. Appending is linearizable across any
//! number of writers in any number of processes: [`append_event`] reads the stream's last message
//! (sequence and hash), links the new event onto it, and publishes with JetStream's
//! `Nats-Expected-Last-Sequence` header, so the server refuses the event if anything was stored
//! in between; the writer then re-reads and tries again (at most [`MAX_ATTEMPTS`] times, with a
//! short jittered back-off). The common case costs one last-message get and one publish.
//!
//! [`verify`] walks the whole stream in order and names the first broken link: an event that does
//! not decode, whose hash does not recompute, whose `prev_hash` is not its predecessor's hash, or a
//! missing stream sequence (a removed message). [`query`] reads events back with filters. Neither
//! records anything: reading the log is not itself audited.

use async_nats::jetstream::consumer::pull::OrderedConfig;
use async_nats::jetstream::consumer::DeliverPolicy;
use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::stream::LastRawMessageErrorKind;
use futures::StreamExt;
use lfr_schemas::{streams, subjects, AuditAction, AuditEvent, AuditObject, Message, Timestamp};
use std::fmt;
use std::time::Duration;

/// Attempts [`append_event`] makes before giving up when other writers keep winning the race.
pub const MAX_ATTEMPTS: u32 = 50;

/// How long [`verify`] and [`query`] wait for the next message before asking the server whether
/// any is still readable, and how many times they ask before declaring it stalled.
const PROBE_AFTER: Duration = Duration::from_secs(2);
const PROBES: u32 = 5;

/// Who acts: the account (or service) and the role it acts in. Every event starts here
/// ([`Audit::event`]), so none can be recorded without them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Audit<'a> {
    pub actor: &'a str,
    pub role: &'a str,
}

/// An event as stored: where on AUDIT, and how many tries the append took.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    /// Stream sequence of the event: also the length of the chain it ends.
    pub seq: u64,
    pub event: AuditEvent,
    /// 1 unless concurrent writers made this one re-read the chain's end.
    pub attempts: u32,
}

impl<'a> Audit<'a> {
    /// Start an event: `action` by this actor on `object`. Say why ([`Event::why`], required)
    /// and anything else that applies, then [`Event::record`] it.
    pub fn event(&self, action: AuditAction, object: AuditObject) -> Event<'a> {
        Event {
            by: *self,
            action,
            object,
            deployment: None,
            justification: String::new(),
            recipients: Vec::new(),
            digest: None,
        }
    }
}

/// One event being built (see [`Audit::event`]). Nothing is stored until [`Event::record`].
#[derive(Debug, Clone, PartialEq)]
#[must_use = "an audit event is stored only by `record`"]
pub struct Event<'a> {
    by: Audit<'a>,
    action: AuditAction,
    object: AuditObject,
    deployment: Option<String>,
    justification: String,
    recipients: Vec<String>,
    digest: Option<String>,
}

/// Why [`Event::build`] refused an event: the log must say who acted, in which role, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incomplete {
    NoActor,
    NoRole,
    NoJustification,
}

impl fmt::Display for Incomplete {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Incomplete::NoActor => "an audit event must name who acted",
            Incomplete::NoRole => "an audit event must name the role acted in",
            Incomplete::NoJustification => "an audit event must say why (a justification)",
        })
    }
}

impl std::error::Error for Incomplete {}

impl<'a> Event<'a> {
    /// The deployment the object belongs to: the event is stored on its audit subject (without
    /// one, on the system subject).
    pub fn deployment(mut self, deployment: impl Into<String>) -> Self {
        self.deployment = Some(deployment.into());
        self
    }

    /// Why it was done. Required: an event without a justification is refused.
    pub fn why(mut self, justification: impl Into<String>) -> Self {
        self.justification = justification.into();
        self
    }

    /// An account or device a disclosure went to (may be given more than once).
    pub fn recipient(mut self, recipient: impl Into<String>) -> Self {
        self.recipients.push(recipient.into());
        self
    }

    /// Every account or device a disclosure went to.
    pub fn recipients(mut self, recipients: impl IntoIterator<Item = String>) -> Self {
        self.recipients.extend(recipients);
        self
    }

    /// Hex sha256 of the object's content, where there is content.
    pub fn digest(mut self, digest: impl Into<String>) -> Self {
        self.digest = Some(digest.into());
        self
    }

    /// The event as it would be stored, not yet linked into the chain (`prev_hash` and `hash`
    /// empty), stamped now; refused without an actor, a role or a justification.
    pub fn build(self) -> Result<AuditEvent, Incomplete> {
        if self.by.actor.trim().is_empty() {
            return Err(Incomplete::NoActor);
        }
        if self.by.role.trim().is_empty() {
            return Err(Incomplete::NoRole);
        }
        if self.justification.trim().is_empty() {
            return Err(Incomplete::NoJustification);
        }
        let at = Timestamp::now();
        Ok(AuditEvent {
            event_id: format!("{}-{}", at.0, std::process::id()),
            at,
            action: self.action,
            actor: self.by.actor.into(),
            role: self.by.role.into(),
            deployment: self.deployment,
            object: self.object.to_string(),
            justification: self.justification,
            recipients: self.recipients,
            digest: self.digest,
            prev_hash: String::new(),
            hash: String::new(),
        })
    }

    /// Append the event at the end of the chain ([`append_event`]). An `Err` means it is not on
    /// the log: the caller must not go on with what it records.
    pub async fn record(self, js: &async_nats::jetstream::Context) -> anyhow::Result<Recorded> {
        append_event(js, self.build()?).await
    }
}

/// The end of the chain as last read: the stream's last sequence and the hash to link onto.
#[derive(Debug, Clone, PartialEq)]
struct Tip {
    seq: u64,
    hash: String,
}

/// Append `event` to the chain on AUDIT, on the subject of its deployment. Its `prev_hash` and
/// `hash` are overwritten (set by the chain); every other field is stored as given.
pub async fn append_event(
    js: &async_nats::jetstream::Context,
    mut event: AuditEvent,
) -> anyhow::Result<Recorded> {
    let stream = js.get_stream_no_info(streams::AUDIT).await?;
    let subject = subjects::audit(event.deployment.as_deref());
    let mut refused_at: Option<u64> = None;
    for attempt in 1..=MAX_ATTEMPTS {
        let mut tip = last_message(&stream).await?;
        if refused_at == Some(tip.seq) {
            // Refused at this sequence before, and still nothing newer can be read: the stream's
            // last messages are unreadable (lost or removed). Link past them; verify reports it.
            tip = tail_past_gap(&stream, tip).await?;
        }
        event.seal(&tip.hash);
        let publish = PublishMessage::build()
            .payload(event.encode().into())
            .expected_last_sequence(tip.seq);
        let result = match js.send_publish(subject.clone(), publish).await {
            Ok(ack) => ack.await,
            Err(e) => Err(e),
        };
        match result {
            Ok(ack) => {
                return Ok(Recorded {
                    seq: ack.sequence,
                    event,
                    attempts: attempt,
                })
            }
            Err(e) if e.kind() == PublishErrorKind::WrongLastSequence => {
                refused_at = Some(tip.seq);
                tokio::time::sleep(backoff(attempt)).await;
            }
            Err(e) => return Err(anyhow::anyhow!("audit event not stored: {e}")),
        }
    }
    anyhow::bail!(
        "audit event not stored: the audit chain kept moving ({MAX_ATTEMPTS} attempts lost to \
         concurrent writers)"
    )
}

/// One request: the last message of AUDIT (any subject), or sequence 0 and the genesis hash when
/// the stream holds none.
async fn last_message(stream: &async_nats::jetstream::stream::Stream<()>) -> anyhow::Result<Tip> {
    match stream
        .raw_message_builder()
        .last_by_subject(subjects::AUDIT_ALL)
        .send()
        .await
    {
        Ok(m) => Ok(Tip {
            seq: m.sequence,
            hash: AuditEvent::link_hash(&m.payload),
        }),
        Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => Ok(Tip {
            seq: 0,
            hash: AuditEvent::GENESIS_HASH.into(),
        }),
        Err(e) => Err(anyhow::anyhow!(
            "cannot read the end of the audit chain: {e}"
        )),
    }
}

/// The rare path: the server's last sequence is beyond the last readable message. Keep the hash of
/// the last readable one and expect the server's sequence, unless a message has meanwhile
/// appeared there (then link onto that one as usual).
async fn tail_past_gap(
    stream: &async_nats::jetstream::stream::Stream<()>,
    readable: Tip,
) -> anyhow::Result<Tip> {
    let last = stream.get_info().await?.state.last_sequence;
    if last <= readable.seq {
        return Ok(readable);
    }
    match stream.get_raw_message(last).await {
        Ok(m) => Ok(Tip {
            seq: m.sequence,
            hash: AuditEvent::link_hash(&m.payload),
        }),
        Err(e)
            if matches!(
                e.kind(),
                LastRawMessageErrorKind::NoMessageFound | LastRawMessageErrorKind::JetStream(_)
            ) =>
        {
            tracing::warn!(
                readable = readable.seq,
                last,
                "audit stream ends in unreadable messages; appending past them (the chain is broken)"
            );
            Ok(Tip {
                seq: last,
                hash: readable.hash,
            })
        }
        Err(e) => Err(anyhow::anyhow!(
            "cannot read the end of the audit chain: {e}"
        )),
    }
}

/// 1 ms plus a random part of up to 4 ms per attempt so far (at most 16 ms), so racing writers
/// spread out.
fn backoff(attempt: u32) -> Duration {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(attempt);
    let ceiling_us = 4_000 * u64::from(attempt.min(4));
    Duration::from_micros(1_000 + h.finish() % ceiling_us)
}

/// What [`verify`] found.
#[derive(Debug, Clone, PartialEq)]
pub enum ChainReport {
    /// Every event decodes, recomputes its hash and links onto the one before, with no sequence
    /// missing. `events` is the chain's length (the sequence of its last event); `last_hash` is
    /// the hash of its last event (the genesis hash when empty): together, an [`Anchor`] to write
    /// down so a later check can detect events cut from the end or a rewrite of the whole log.
    Intact { events: u64, last_hash: String },
    /// The first broken link, at stream sequence `seq`; the `verified` events checked before it
    /// (all of `1..seq` when verifying from the start) are intact.
    Broken {
        seq: u64,
        reason: Break,
        verified: u64,
    },
}

impl ChainReport {
    pub fn is_intact(&self) -> bool {
        matches!(self, ChainReport::Intact { .. })
    }

    /// The end of an intact, non-empty chain, to write down for a later [`verify_against`].
    pub fn anchor(&self) -> Option<Anchor> {
        match self {
            ChainReport::Intact { events, last_hash } if *events > 0 => Some(Anchor {
                seq: *events,
                hash: last_hash.clone(),
            }),
            _ => None,
        }
    }

    /// Intact: the chain's length; broken: the events checked intact before the break.
    pub fn verified_events(&self) -> u64 {
        match self {
            ChainReport::Intact { events, .. } => *events,
            ChainReport::Broken { verified, .. } => *verified,
        }
    }
}

/// A point of the chain written down outside the log (`SEQ:HASH`, as `lfr audit verify` prints
/// it): the stream alone cannot show that events were cut from its end, or that the whole log was
/// rewritten consistently; a later [`verify_against`] with an earlier anchor can.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anchor {
    pub seq: u64,
    pub hash: String,
}

impl fmt::Display for Anchor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.seq, self.hash)
    }
}

impl std::str::FromStr for Anchor {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> anyhow::Result<Anchor> {
        let bad = || anyhow::anyhow!("{s:?} is not an anchor like 1234:<64 hex digits>");
        let (seq, hash) = s.trim().split_once(':').ok_or_else(bad)?;
        let seq: u64 = seq.parse().map_err(|_| bad())?;
        let hash = hash.to_ascii_lowercase();
        if seq == 0 || hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        Ok(Anchor { seq, hash })
    }
}

impl fmt::Display for ChainReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChainReport::Intact { events, last_hash } => {
                write!(f, "intact: {events} events, last hash {last_hash}")
            }
            ChainReport::Broken {
                seq,
                reason,
                verified,
            } => write!(
                f,
                "BROKEN at sequence {seq}: {reason} ({verified} events before it are intact)"
            ),
        }
    }
}

/// Why a link is broken.
#[derive(Debug, Clone, PartialEq)]
pub enum Break {
    /// Stream sequences `from..=to` hold no message: removed, or lost by the server.
    Missing { from: u64, to: u64 },
    /// The message is not an audit event this version understands (corrupted, or foreign).
    Undecodable(String),
    /// The event is stored on a subject other than its deployment's.
    WrongSubject { subject: String, expected: String },
    /// The event's content no longer matches its hash: it was altered after it was written.
    HashMismatch { stored: String, computed: String },
    /// The event does not link onto the one before it: inserted, reordered, or its predecessor
    /// was rewritten with a recomputed hash.
    PrevHashMismatch { prev_hash: String, expected: String },
    /// The event at an [`Anchor`]'s sequence is not the one anchored: the log up to there was
    /// rewritten or replaced.
    AnchorMismatch { anchored: String, found: String },
    /// The log ends before an [`Anchor`]'s sequence: events up to `anchored` were lost from the
    /// end (a server that finds a damaged block after a crash may cut the stream short).
    Truncated { anchored: u64 },
}

impl fmt::Display for Break {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Break::Missing { from, to } if from == to => write!(f, "message {from} is missing"),
            Break::Missing { from, to } => write!(f, "messages {from} to {to} are missing"),
            Break::Undecodable(why) => write!(f, "not a readable audit event: {why}"),
            Break::WrongSubject { subject, expected } => {
                write!(
                    f,
                    "stored on {subject}, its deployment's subject is {expected}"
                )
            }
            Break::HashMismatch { stored, computed } => write!(
                f,
                "content altered: stored hash {stored}, content hashes to {computed}"
            ),
            Break::PrevHashMismatch {
                prev_hash,
                expected,
            } => write!(
                f,
                "does not follow the event before it: prev_hash {prev_hash}, expected {expected}"
            ),
            Break::AnchorMismatch { anchored, found } => write!(
                f,
                "not the event anchored here: hash {found}, anchored {anchored}"
            ),
            Break::Truncated { anchored } => write!(
                f,
                "the log ends here, but an anchor says it reached sequence {anchored}"
            ),
        }
    }
}

/// Check the whole chain on AUDIT in stream order and report the first broken link.
///
/// Events appended while this runs are verified too, up to the point where the reader catches up.
/// An error means the check could not be made (server unreachable, stream missing), not that the
/// chain is broken. Events lost from the very end of the log cannot be seen this way: see
/// [`verify_against`].
pub async fn verify(js: &async_nats::jetstream::Context) -> anyhow::Result<ChainReport> {
    verify_against(js, None).await
}

/// [`verify`], also checking that the chain still passes through `anchor` (an earlier intact
/// report's [`ChainReport::anchor`]): a log cut short before the anchor, or rewritten up to it, is
/// reported as broken.
pub async fn verify_against(
    js: &async_nats::jetstream::Context,
    anchor: Option<&Anchor>,
) -> anyhow::Result<ChainReport> {
    verify_from(js, 1, anchor).await
}

/// [`verify_against`] from stream sequence `from` on: the event at `from` is taken as the start
/// (its own link backwards is not checked) and everything after it is checked in full. A log
/// once broken stays broken (nothing can be removed from AUDIT); once the break has been
/// investigated, this checks that nothing after it was touched. An anchor before `from` is not
/// checked.
pub async fn verify_from(
    js: &async_nats::jetstream::Context,
    from: u64,
    anchor: Option<&Anchor>,
) -> anyhow::Result<ChainReport> {
    anyhow::ensure!(from >= 1, "stream sequences start at 1");
    let stream = audit_stream(js).await?;
    let state = stream.get_info().await?.state;
    anyhow::ensure!(
        from == 1 || from <= state.last_sequence,
        "the audit log ends at sequence {}: nothing to verify from {from}",
        state.last_sequence
    );
    // What the next event must link onto; unknown at a `from` after the start.
    let mut prev_hash = (from == 1).then(|| AuditEvent::GENESIS_HASH.to_string());
    let mut expected_seq = from;
    let mut verified = 0;
    let broken = |seq, reason, verified| {
        Ok(ChainReport::Broken {
            seq,
            reason,
            verified,
        })
    };
    if state.messages > 0 && state.last_sequence >= from {
        let consumer = stream
            .create_consumer(OrderedConfig {
                deliver_policy: DeliverPolicy::ByStartSequence {
                    start_sequence: from,
                },
                ..Default::default()
            })
            .await?;
        let mut reader = Reader::new(&stream, consumer, subjects::AUDIT_ALL).await?;
        while let Some((m, seq, pending)) = reader.next().await? {
            if seq != expected_seq {
                let reason = Break::Missing {
                    from: expected_seq,
                    to: seq - 1,
                };
                return broken(expected_seq, reason, verified);
            }
            let event = match AuditEvent::decode(&m.payload) {
                Ok(event) => event,
                Err(e) => return broken(seq, Break::Undecodable(e.to_string()), verified),
            };
            let subject = subjects::audit(event.deployment.as_deref());
            if m.subject.as_str() != subject {
                let reason = Break::WrongSubject {
                    subject: m.subject.to_string(),
                    expected: subject,
                };
                return broken(seq, reason, verified);
            }
            let computed = event.compute_hash();
            if computed != event.hash {
                let reason = Break::HashMismatch {
                    stored: event.hash,
                    computed,
                };
                return broken(seq, reason, verified);
            }
            if let Some(expected) = prev_hash.filter(|h| *h != event.prev_hash) {
                let reason = Break::PrevHashMismatch {
                    prev_hash: event.prev_hash,
                    expected,
                };
                return broken(seq, reason, verified);
            }
            if let Some(a) = anchor.filter(|a| a.seq == seq && a.hash != event.hash) {
                let reason = Break::AnchorMismatch {
                    anchored: a.hash.clone(),
                    found: event.hash,
                };
                return broken(seq, reason, verified);
            }
            prev_hash = Some(event.hash);
            verified += 1;
            expected_seq = seq + 1;
            if pending == 0 {
                break;
            }
        }
    }
    // Messages missing from the end (or every message gone).
    if state.last_sequence >= expected_seq {
        let reason = Break::Missing {
            from: expected_seq,
            to: state.last_sequence,
        };
        return broken(expected_seq, reason, verified);
    }
    if let Some(a) = anchor.filter(|a| a.seq >= expected_seq) {
        let reason = Break::Truncated { anchored: a.seq };
        return broken(expected_seq, reason, verified);
    }
    Ok(ChainReport::Intact {
        events: expected_seq - 1,
        last_hash: prev_hash.unwrap_or_else(|| AuditEvent::GENESIS_HASH.into()),
    })
}

/// Which events [`query`] returns. Every filter given must match; none given matches all.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuditFilter {
    /// Events of this deployment; `system` selects the events of no deployment (logins,
    /// accounts), as their subject `lfr.audit.system` does.
    pub deployment: Option<String>,
    pub actor: Option<String>,
    pub object: Option<ObjectMatch>,
    pub action: Option<AuditAction>,
    /// At or after (inclusive).
    pub since: Option<Timestamp>,
    /// Before (exclusive).
    pub until: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ObjectMatch {
    Exact(String),
    Prefix(String),
}

impl ObjectMatch {
    /// `alert/*` (a trailing `*`) is a prefix; anything else must match exactly.
    pub fn parse(s: &str) -> ObjectMatch {
        match s.strip_suffix('*') {
            Some(prefix) => ObjectMatch::Prefix(prefix.into()),
            None => ObjectMatch::Exact(s.into()),
        }
    }

    pub fn matches(&self, object: &str) -> bool {
        match self {
            ObjectMatch::Exact(o) => object == o,
            ObjectMatch::Prefix(p) => object.starts_with(p.as_str()),
        }
    }
}

impl AuditFilter {
    pub fn matches(&self, e: &AuditEvent) -> bool {
        self.deployment
            .as_ref()
            .is_none_or(|d| e.deployment.as_deref().unwrap_or(subjects::SYSTEM) == d)
            && self.actor.as_ref().is_none_or(|a| &e.actor == a)
            && self.object.as_ref().is_none_or(|o| o.matches(&e.object))
            && self.action.is_none_or(|a| e.action == a)
            && self.since.is_none_or(|t| e.at >= t)
            && self.until.is_none_or(|t| e.at < t)
    }
}

/// An event with where it is stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    pub seq: u64,
    pub event: AuditEvent,
}

/// What [`query`] found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueryResult {
    /// Matching events, in stream order.
    pub events: Vec<StoredEvent>,
    /// Sequences of messages that did not decode (see [`verify`]), whatever the filter.
    pub undecodable: Vec<u64>,
}

/// Events on AUDIT that match `filter`, oldest first. Read-only, and not audited itself.
pub async fn query(
    js: &async_nats::jetstream::Context,
    filter: &AuditFilter,
) -> anyhow::Result<QueryResult> {
    let stream = audit_stream(js).await?;
    // A deployment's events are on its own subject: let the server skip the rest.
    let filter_subject = match &filter.deployment {
        Some(d) if subjects::validate_token("deployment", d).is_ok() => subjects::audit(Some(d)),
        _ => subjects::AUDIT_ALL.to_string(),
    };
    let consumer = stream
        .create_consumer(OrderedConfig {
            filter_subject: filter_subject.clone(),
            deliver_policy: DeliverPolicy::All,
            ..Default::default()
        })
        .await?;
    let mut result = QueryResult::default();
    if consumer.cached_info().num_pending == 0 {
        return Ok(result);
    }
    let mut reader = Reader::new(&stream, consumer, &filter_subject).await?;
    while let Some((m, seq, pending)) = reader.next().await? {
        match AuditEvent::decode(&m.payload) {
            Ok(event) if filter.matches(&event) => result.events.push(StoredEvent { seq, event }),
            Ok(_) => {}
            Err(_) => result.undecodable.push(seq),
        }
        if pending == 0 {
            break;
        }
    }
    Ok(result)
}

async fn audit_stream(
    js: &async_nats::jetstream::Context,
) -> anyhow::Result<async_nats::jetstream::stream::Stream> {
    js.get_stream(streams::AUDIT)
        .await
        .map_err(|e| anyhow::anyhow!("cannot open the {} stream: {e}", streams::AUDIT))
}

/// Reads AUDIT in order through an ordered consumer, and tells a slow server from one that counts
/// messages it can no longer deliver (a damaged record at the end of the log).
struct Reader<'a, I> {
    stream: &'a async_nats::jetstream::stream::Stream<I>,
    messages: async_nats::jetstream::consumer::pull::Ordered,
    filter: &'a str,
    last_seq: u64,
}

impl<'a, I> Reader<'a, I> {
    async fn new(
        stream: &'a async_nats::jetstream::stream::Stream<I>,
        consumer: async_nats::jetstream::consumer::Consumer<OrderedConfig>,
        filter: &'a str,
    ) -> anyhow::Result<Reader<'a, I>> {
        Ok(Reader {
            stream,
            messages: consumer.messages().await?,
            filter,
            last_seq: 0,
        })
    }

    /// The next message with its stream sequence and the count still pending after it; `None`
    /// when nothing after the last one delivered can be read.
    async fn next(&mut self) -> anyhow::Result<Option<(async_nats::jetstream::Message, u64, u64)>> {
        for _ in 0..PROBES {
            match tokio::time::timeout(PROBE_AFTER, self.messages.next()).await {
                Ok(Some(m)) => {
                    let m = m?;
                    let (seq, pending) = {
                        let info = m.info().map_err(|e| anyhow::anyhow!("{e}"))?;
                        (info.stream_sequence, info.pending)
                    };
                    self.last_seq = seq;
                    return Ok(Some((m, seq, pending)));
                }
                Ok(None) => anyhow::bail!("the AUDIT consumer ended"),
                Err(_) => {
                    // Nothing for a while, though the server counted more: is any later message
                    // readable at all, or only counted?
                    match self
                        .stream
                        .get_first_raw_message_by_subject(self.filter, self.last_seq + 1)
                        .await
                    {
                        Ok(_) => continue,
                        Err(e) => match e.kind() {
                            LastRawMessageErrorKind::NoMessageFound
                            | LastRawMessageErrorKind::JetStream(_) => return Ok(None),
                            _ => anyhow::bail!("cannot read AUDIT: {e}"),
                        },
                    }
                }
            }
        }
        anyhow::bail!("AUDIT stopped delivering messages")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OP: Audit<'static> = Audit {
        actor: "op-1",
        role: "operator",
    };

    #[test]
    fn an_event_names_its_object_as_the_log_always_has() {
        let e = OP
            .event(AuditAction::Disclosure, AuditObject::Alert("a7".into()))
            .deployment("match-day")
            .why("confirmed alert delivered")
            .recipient("pc-1")
            .digest("ab")
            .build()
            .unwrap();
        assert_eq!(e.object, "alert/a7");
        assert_eq!((e.actor.as_str(), e.role.as_str()), ("op-1", "operator"));
        assert_eq!(e.deployment.as_deref(), Some("match-day"));
        assert_eq!(e.justification, "confirmed alert delivered");
        assert_eq!(e.recipients, ["pc-1"]);
        assert_eq!(e.digest.as_deref(), Some("ab"));
        assert!(
            e.prev_hash.is_empty() && e.hash.is_empty(),
            "linked only when appended"
        );
    }

    #[test]
    fn an_event_without_who_or_why_is_refused() {
        let object = || AuditObject::Deployment("d1".into());
        let unjustified = OP.event(AuditAction::Alteration, object());
        assert_eq!(unjustified.build(), Err(Incomplete::NoJustification));
        let blank = OP.event(AuditAction::Alteration, object()).why("  ");
        assert_eq!(blank.build(), Err(Incomplete::NoJustification));
        let nobody = Audit {
            actor: " ",
            role: "supervisor",
        };
        assert_eq!(
            nobody
                .event(AuditAction::Alteration, object())
                .why("x")
                .build(),
            Err(Incomplete::NoActor)
        );
        let no_role = Audit {
            actor: "sup-1",
            role: "",
        };
        assert_eq!(
            no_role
                .event(AuditAction::Alteration, object())
                .why("x")
                .build(),
            Err(Incomplete::NoRole)
        );
    }
}
