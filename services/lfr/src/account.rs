//! `lfr account`: console accounts from the terminal.
//!
//! ```text
//! lfr account create   --id supt-17 --role supervisor --rank superintendent   # first run: no login
//! lfr login --account supt-17                                                 # then as that account
//! lfr account create   --id op-3 --role operator --deployments match-day,fair --password-stdin < pw
//! lfr account list
//! lfr account assign   --id op-3 --deployments match-day
//! lfr account password --id op-3 --password-stdin < pw
//! lfr account rank     --id supt-17 --rank chief-superintendent     # promotions; --rank none clears
//! lfr account disable  --id op-3
//! lfr account enable   --id op-3
//! ```
//!
//! This is how the first supervisor account comes to exist ("first-run bootstrap"): there is
//! never a default account or password. While no active supervisor account exists, `create
//! --role supervisor` runs without a login and is recorded as the actor `bootstrap` (it says
//! so); whoever can reach NATS can run it, so on a real system that is the administrators' NATS
//! credentials. Once a supervisor exists, every change is a supervisor's step taken as the
//! logged-in account ([`crate::login::supervisor`]) and refused without one; `list` reads and
//! needs no login. Every change is recorded on the AUDIT stream (`ConfigurationChange`, object
//! `account/<id>`, actor the account logged in, or `bootstrap`). Passwords are never echoed,
//! printed or logged, and `list` never shows hashes. The rules (id format, password policy,
//! argon2id) live in [`lfr_dispatch::auth::accounts`], shared with the console.

use lfr_dispatch::auth::accounts::{audit_change, check_password};
use lfr_dispatch::auth::{Accounts, Role};
use lfr_watchlist::deployment::Rank;
use lfr_watchlist::lifecycle::Actor;

/// The actor of the first supervisor's creation, before anyone can log in.
const BOOTSTRAP: &str = "bootstrap";

#[derive(clap::Args)]
pub struct AccountArgs {
    #[command(flatten)]
    nats: crate::connect::NatsArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Create an account (the password is prompted for twice, or read from stdin).
    Create {
        #[arg(long)]
        id: String,
        /// operator, officer, supervisor or auditor.
        #[arg(long)]
        role: Role,
        /// Deployment ids an operator or officer works on, comma-separated.
        #[arg(long, value_delimiter = ',')]
        deployments: Vec<String>,
        /// Read the password from the first line of stdin instead of prompting.
        #[arg(long)]
        password_stdin: bool,
        /// The person's police rank (superintendent or above may authorise deployments).
        #[arg(long)]
        rank: Option<Rank>,
    },
    /// Record a person's rank (`none` clears it).
    Rank {
        #[arg(long)]
        id: String,
        #[arg(long, value_parser = parse_rank)]
        rank: OptionalRank,
    },
    /// List accounts (never their password hashes).
    List,
    /// Replace the deployments an account works on.
    Assign {
        #[arg(long)]
        id: String,
        /// Comma-separated; `--deployments ""` assigns none.
        #[arg(long, value_delimiter = ',', num_args = 0.., required = true)]
        deployments: Vec<String>,
    },
    /// Set a new password.
    Password {
        #[arg(long)]
        id: String,
        #[arg(long)]
        password_stdin: bool,
    },
    /// Refuse the account's logins; its open sessions stop at their next request.
    Disable {
        #[arg(long)]
        id: String,
    },
    /// Allow a disabled account to log in again.
    Enable {
        #[arg(long)]
        id: String,
    },
}

impl Command {
    fn name(&self) -> &'static str {
        match self {
            Command::Create { .. } => "lfr account create",
            Command::Rank { .. } => "lfr account rank",
            Command::List => "lfr account list",
            Command::Assign { .. } => "lfr account assign",
            Command::Password { .. } => "lfr account password",
            Command::Disable { .. } => "lfr account disable",
            Command::Enable { .. } => "lfr account enable",
        }
    }
}

/// Who changes accounts: the logged-in supervisor; without a session, `bootstrap` creating the
/// first supervisor while no active one exists (nobody could log in to do it); else refused.
async fn acting(
    js: &async_nats::jetstream::Context,
    accounts: &Accounts,
    command: &Command,
) -> anyhow::Result<Actor> {
    let not_in = match crate::login::signed_in(js).await {
        Ok(me) => return crate::login::only_supervisor(me, command.name()),
        Err(not_in) => not_in,
    };
    let supervised = accounts
        .list()
        .await?
        .iter()
        .any(|a| a.role == Role::Supervisor && !a.disabled);
    if supervised {
        return Err(not_in);
    }
    match command {
        Command::Create {
            role: Role::Supervisor,
            ..
        } => Ok(Actor::new(BOOTSTRAP, Role::Supervisor.as_str())),
        _ => anyhow::bail!(
            "no active supervisor account exists yet: create the first with `lfr account create \
             --id <your id> --role supervisor` (first-run bootstrap, no login needed), then \
             `lfr login` as it"
        ),
    }
}

pub async fn run(args: AccountArgs) -> anyhow::Result<()> {
    let bus = args.nats.bus().await?;
    let js = &bus.jetstream;
    let accounts = Accounts::open(js).await?;
    if matches!(args.command, Command::List) {
        return list(&accounts).await;
    }
    let me = acting(js, &accounts, &args.command).await?;
    // Who acts (the account, or `bootstrap`) and in which role, as the audit event names them.
    let (by, acting_as) = (me.id.as_str(), me.role.as_str());
    match args.command {
        Command::Create {
            id,
            role,
            deployments,
            password_stdin,
            rank,
        } => {
            // Refuse a taken id before asking for a password.
            if accounts.get(&id).await?.is_some() {
                anyhow::bail!("account {id} already exists");
            }
            // Reserved ids (the first-run actor, the API token) are refused before the prompt.
            lfr_dispatch::auth::accounts::check_id(&id)?;
            let password = read_password(password_stdin)?;
            let mut account = accounts.create(&id, role, &password, deployments).await?;
            if rank.is_some() {
                account = accounts.set_rank(&id, rank).await?;
            }
            let assigned = list_or_none(&account.deployments);
            let ranked = rank.map(|r| format!(", rank {r}")).unwrap_or_default();
            audit_change(
                js,
                by,
                acting_as,
                &id,
                &format!("account created: role {role}{ranked}, deployments {assigned}"),
            )
            .await?;
            println!("created {role} account {id} (deployments: {assigned})");
            if by == BOOTSTRAP {
                println!(
                    "first-run bootstrap: no active supervisor account existed, so {id} was \
                     created without a login and recorded on AUDIT as `{BOOTSTRAP}`; log in \
                     with `lfr login --account {id}` for every other change"
                );
            }
            if !role.sees_all_deployments() && account.deployments.is_empty() {
                println!(
                    "note: {id} sees no deployment until one is assigned (lfr account assign)"
                );
            }
        }
        Command::List => unreachable!("answered above"),
        Command::Assign { id, deployments } => {
            let deployments = deployments.into_iter().filter(|d| !d.is_empty()).collect();
            let account = accounts.assign(&id, deployments).await?;
            let assigned = list_or_none(&account.deployments);
            audit_change(
                js,
                by,
                acting_as,
                &id,
                &format!("deployments assigned: {assigned}"),
            )
            .await?;
            println!("account {id} now works on: {assigned}");
        }
        Command::Password { id, password_stdin } => {
            if accounts.get(&id).await?.is_none() {
                anyhow::bail!("no account {id}");
            }
            let password = read_password(password_stdin)?;
            accounts.set_password(&id, &password).await?;
            audit_change(js, by, acting_as, &id, "password changed").await?;
            println!("password of {id} changed");
        }
        Command::Rank { id, rank } => {
            accounts.set_rank(&id, rank.0).await?;
            let named = rank
                .0
                .map(|r| r.to_string())
                .unwrap_or_else(|| "none".into());
            audit_change(js, by, acting_as, &id, &format!("rank recorded: {named}")).await?;
            println!("account {id} now has rank {named}");
        }
        Command::Disable { id } => {
            accounts.disable(&id).await?;
            audit_change(js, by, acting_as, &id, "account disabled").await?;
            println!("account {id} disabled");
        }
        Command::Enable { id } => {
            accounts.enable(&id).await?;
            audit_change(js, by, acting_as, &id, "account enabled").await?;
            println!("account {id} enabled");
        }
    }
    let _ = bus.client.flush().await;
    Ok(())
}

/// `list`: reading needs no login (nothing is changed or recorded).
async fn list(accounts: &Accounts) -> anyhow::Result<()> {
    let all = accounts.list().await?;
    println!(
        "{:<24} {:<11} {:<21} {:<9} {:<21} DEPLOYMENTS",
        "ID", "ROLE", "RANK", "STATUS", "CREATED"
    );
    for a in all {
        let deployments = if a.role.sees_all_deployments() {
            "(all)".to_string()
        } else {
            list_or_none(&a.deployments)
        };
        println!(
            "{:<24} {:<11} {:<21} {:<9} {:<21} {}",
            a.id,
            a.role.as_str(),
            a.rank.map(|r| r.as_str()).unwrap_or("-"),
            if a.disabled { "disabled" } else { "active" },
            lfr_watchlist::time::format_utc(a.created_at),
            deployments
        );
    }
    Ok(())
}

/// The new password: the first line of stdin, or typed twice at the terminal without echo.
fn read_password(from_stdin: bool) -> anyhow::Result<String> {
    if from_stdin {
        let line = crate::login::password_from_stdin()?;
        check_password(&line)?;
        return Ok(line);
    }
    let no_tty = |e: std::io::Error| {
        anyhow::anyhow!("cannot prompt for a password ({e}): pass it with --password-stdin")
    };
    let first = rpassword::prompt_password("New password: ").map_err(no_tty)?;
    check_password(&first)?;
    let second = rpassword::prompt_password("Again: ").map_err(no_tty)?;
    anyhow::ensure!(first == second, "the two passwords differ; nothing changed");
    Ok(first)
}

/// A rank, or `none`.
#[derive(Clone, Copy)]
struct OptionalRank(Option<Rank>);

fn parse_rank(s: &str) -> Result<OptionalRank, String> {
    if s.eq_ignore_ascii_case("none") {
        return Ok(OptionalRank(None));
    }
    s.parse().map(|r| OptionalRank(Some(r)))
}

fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items.join(",")
    }
}
