//! `lfr login` / `lfr logout`: the command line acts as a person's own account, never as a name
//! typed on the command line.
//!
//! ```text
//! lfr login --account supt-17                  # prompts for the password, no echo
//! lfr login --account supt-17 --password-stdin < pw
//! lfr deployment authorise --id match-day      # acts as supt-17, with the rank on record
//! lfr logout
//! ```
//!
//! A login checks the password against the console's accounts (argon2id, the same rules and
//! throttle-free path as [`lfr_dispatch::auth::Accounts::verify`]) and opens an ordinary console
//! session (`lfr-sessions`, same lifetime): disabling the account or changing its password ends
//! it, exactly as in the browser. The session token is written to a private file (0600,
//! `$LFR_SESSION_FILE`, default `~/.config/lfr/session`), or may be handed over in
//! `LFR_SESSION` (scripts, CI); the bucket holds only its sha256. Every login is on AUDIT.
//!
//! Steps that record who did them ([`signed_in`]; [`supervisor`] for a supervisor's steps) refuse
//! to run without a live session; reads that change and record nothing need none.

use lfr_dispatch::auth::{Accounts, AuthConfig, Sessions};
use lfr_schemas::{AuditAction, AuditObject};
use lfr_watchlist::lifecycle::Actor;
use std::io::Read;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct LoginArgs {
    #[command(flatten)]
    nats: crate::connect::NatsArgs,
    /// Your console account.
    #[arg(long)]
    account: String,
    /// Read the password from the first line of stdin instead of prompting.
    #[arg(long)]
    password_stdin: bool,
}

#[derive(clap::Args)]
pub struct LogoutArgs {
    #[command(flatten)]
    nats: crate::connect::NatsArgs,
}

/// Where the session token is kept between commands.
pub fn session_file() -> PathBuf {
    if let Some(path) = std::env::var_os("LFR_SESSION_FILE") {
        return PathBuf::from(path);
    }
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .unwrap_or_else(|| PathBuf::from("."));
    config.join("lfr").join("session")
}

async fn sessions(js: &async_nats::jetstream::Context) -> anyhow::Result<Sessions> {
    let accounts = Accounts::open(js).await?;
    Sessions::open(js, accounts, AuthConfig::default().session_ttl).await
}

pub async fn login(args: LoginArgs) -> anyhow::Result<()> {
    let bus = args.nats.bus().await?;
    let js = &bus.jetstream;
    let password = read_password(args.password_stdin)?;
    let accounts = Accounts::open(js).await?;
    let account = match accounts.verify(&args.account, &password).await {
        Ok(account) => account,
        Err(refused) => {
            let _ = lfr_common::audit::Audit {
                actor: &args.account,
                role: "unknown",
            }
            .event(
                AuditAction::Login,
                AuditObject::Account(args.account.clone()),
            )
            .why("command-line login refused")
            .record(js)
            .await;
            anyhow::bail!("login refused: {refused}");
        }
    };
    let (token, session) = sessions(js).await?.start(&account).await?;
    session
        .audit()
        .event(AuditAction::Login, AuditObject::Account(account.id.clone()))
        .why("command-line login")
        .record(js)
        .await?;
    let path = session_file();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
    }
    let _ = std::fs::remove_file(&path);
    lfr_identity::credentials::create_private(&path, token.as_bytes())?;
    println!(
        "logged in as {} ({}{}) until {}; session in {}",
        account.id,
        account.role,
        account.rank.map(|r| format!(", {r}")).unwrap_or_default(),
        lfr_watchlist::time::format_utc(session.expires_at),
        path.display()
    );
    let _ = bus.client.flush().await;
    Ok(())
}

pub async fn logout(args: LogoutArgs) -> anyhow::Result<()> {
    let path = session_file();
    let Some(token) = read_token()? else {
        println!("not logged in");
        return Ok(());
    };
    let bus = args.nats.bus().await?;
    sessions(&bus.jetstream).await?.end(&token).await?;
    let _ = std::fs::remove_file(&path);
    println!("logged out");
    Ok(())
}

/// The account the command line acts as: the live session in `LFR_SESSION` or the session file.
/// Refused when there is none, or it has expired, or its account was disabled.
pub async fn signed_in(js: &async_nats::jetstream::Context) -> anyhow::Result<Actor> {
    let not_in = || anyhow::anyhow!("not logged in: run `lfr login --account <your account>`");
    let token = read_token()?.ok_or_else(not_in)?;
    let session = sessions(js).await?.get(&token).await?.ok_or_else(|| {
        anyhow::anyhow!(
            "your session has ended (expired, logged out, password changed or account \
             disabled): run `lfr login` again"
        )
    })?;
    Ok(session.actor())
}

/// [`signed_in`], refused unless the account is a supervisor's: holds, access requests, the
/// master key and accounts are theirs to change. `step` names the command, for the refusal.
pub async fn supervisor(js: &async_nats::jetstream::Context, step: &str) -> anyhow::Result<Actor> {
    only_supervisor(signed_in(js).await?, step)
}

/// `me`, refused unless a supervisor (see [`supervisor`]).
pub fn only_supervisor(me: Actor, step: &str) -> anyhow::Result<Actor> {
    anyhow::ensure!(
        me.role == lfr_dispatch::auth::Role::Supervisor.as_str(),
        "`{step}` is a supervisor's step: you are logged in as {} ({})",
        me.id,
        me.role
    );
    Ok(me)
}

fn read_token() -> anyhow::Result<Option<String>> {
    if let Ok(token) = std::env::var("LFR_SESSION") {
        return Ok(Some(token.trim().to_string()).filter(|t| !t.is_empty()));
    }
    let path = session_file();
    match std::fs::read_to_string(&path) {
        Ok(token) => Ok(Some(token.trim().to_string()).filter(|t| !t.is_empty())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(anyhow::anyhow!("cannot read {}: {e}", path.display())),
    }
}

/// The password: the first line of stdin, or typed at the terminal without echo.
fn read_password(from_stdin: bool) -> anyhow::Result<String> {
    if from_stdin {
        return password_from_stdin();
    }
    rpassword::prompt_password("Password: ")
        .map_err(|e| anyhow::anyhow!("cannot prompt for a password ({e}): use --password-stdin"))
}

/// The first line of stdin (at most 64 KiB are read), for `--password-stdin`.
pub fn password_from_stdin() -> anyhow::Result<String> {
    let mut input = String::new();
    std::io::stdin()
        .take(64 * 1024)
        .read_to_string(&mut input)
        .map_err(|e| anyhow::anyhow!("cannot read the password from stdin: {e}"))?;
    Ok(input.lines().next().unwrap_or("").to_string())
}
