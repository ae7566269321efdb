//! The command line: one subcommand group per file. Every command takes `--json` (a global
//! flag): what it shows, creates, changes or removes is printed in the one shape of its object
//! type ([`crate::ops::view`]). Exit codes: 0 ok, 1 the operation failed, 2 a usage error or something named that
//! does not exist. With `--json`, an error is `{"error": {"code", "message"}}` on stderr.
//!
//! Output goes through [`out!`], not `println!`: a closed standard output (`latchkey audit |
//! head -1`) ends the command quietly instead of panicking.

/// `println!` for command output: a closed pipe ends the command quietly (exit 0, the reader
/// has what it wanted); any other write failure ends it with a message and exit 1.
macro_rules! out {
    () => {
        $crate::cli::write_out(format_args!(""))
    };
    ($($arg:tt)*) => {
        $crate::cli::write_out(format_args!($($arg)*))
    };
}

/// Writes one line of command output (see [`out!`]).
pub(crate) fn write_out(line: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    let written = stdout
        .write_fmt(line)
        .and_then(|()| stdout.write_all(b"\n"))
        .and_then(|()| stdout.flush());
    match written {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        Err(e) => {
            eprintln!("latchkey: cannot write to standard output: {e}");
            std::process::exit(1);
        }
    }
}

mod apikey;
mod client;
mod group;
mod keys;
mod man;
mod ops;
mod rule;
mod serve;
mod settings;
mod user;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::error::Error;
use crate::store::Store;

/// latchkey: OAuth 2.0, OpenID Connect, ES256 JWTs and API keys in one binary and one SQLite file.
#[derive(Parser, Debug)]
#[command(name = "latchkey", version, about, long_about = None)]
pub struct Cli {
    /// Data directory holding latchkey.db [default: the platform data directory, e.g. ~/.local/share/latchkey]
    #[arg(long, global = true, env = "LATCHKEY_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,

    /// Print which database the command uses (to standard error; with --json as a JSON
    /// object, {"database": PATH})
    #[arg(short, long, global = true)]
    verbose: bool,

    /// Print JSON instead of text: the object shown, created, changed or removed, and errors as
    /// {"error": {"code", "message"}} on standard error
    #[arg(long, global = true)]
    json: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the server (creates the data directory, database and signing keys on first start)
    Serve(serve::ServeArgs),
    /// Create the data directory and an empty database without starting the server (to add
    /// users and clients first); every other command refuses to run without a database
    Init,
    /// Manage OAuth clients
    #[command(subcommand)]
    Client(client::ClientCmd),
    /// Manage API keys for apps and scripts
    #[command(subcommand)]
    Apikey(apikey::ApiKeyCmd),
    /// Manage forward-auth access rules for apps behind a reverse proxy
    #[command(subcommand)]
    Rule(rule::RuleCmd),
    /// Show the audit log
    Audit(ops::AuditArgs),
    /// Write a consistent copy of the database while the server runs (- for standard output)
    Backup(ops::BackupArgs),
    /// Replace the database with a backup (the server must be stopped; the old one is kept)
    Restore(ops::RestoreArgs),
    /// Check the data directory, database, keys and issuer; exit 1 if something needs fixing
    Check(ops::CheckArgs),
    /// Exit 0 if the server on the listen address answers /healthz (for containers and monitors)
    Healthcheck(ops::HealthcheckArgs),
    /// Manage users and their groups
    #[command(subcommand)]
    User(user::UserCmd),
    /// Manage groups: members, description, and the rules and clients that name them
    #[command(subcommand)]
    Group(group::GroupCmd),
    /// List and rotate signing keys
    #[command(subcommand)]
    Keys(keys::KeysCmd),
    /// Show and change runtime settings stored in the database
    #[command(subcommand)]
    Settings(settings::SettingsCmd),
    /// Write the man pages (latchkey.1 and one per subcommand) into a directory
    #[command(hide = true)]
    Man {
        /// Where to write them (created if missing)
        #[arg(default_value = ".", value_name = "DIR")]
        dir: PathBuf,
    },
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let mut msg = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                msg.push_str(&format!(": {s}"));
                source = s.source();
            }
            // A script that asked for JSON gets the error as JSON too, on standard error.
            if wants_json() {
                let body = serde_json::json!({"error": {"code": e.code(), "message": msg}});
                eprintln!("{body}");
            } else {
                eprintln!("latchkey: {msg}");
            }
            ExitCode::from(e.exit_code())
        }
    }
}

/// Whether the command line asked for JSON, read from the arguments themselves so an error
/// from parsing them is JSON too.
fn wants_json() -> bool {
    std::env::args_os()
        .take_while(|a| a != "--")
        .any(|a| a == "--json")
}

fn run(cli: Cli) -> Result<(), Error> {
    let json = cli.json;
    if let Command::Healthcheck(args) = cli.command {
        return ops::healthcheck(args, json);
    }
    if let Command::Man { dir } = &cli.command {
        return man::run(dir);
    }
    if !matches!(cli.command, Command::Serve(_)) {
        // Warnings of the operations layer (an audit event that could not be written) reach
        // the admin on standard error; `serve` sets up its own logger from its flags.
        crate::logger::init_cli();
    }
    let data_dir = match cli.data_dir {
        Some(d) => d,
        None => crate::config::default_data_dir()?,
    };
    if cli.verbose {
        let db = crate::ops::installation::database_path(&data_dir);
        if json {
            eprintln!("{}", serde_json::json!({"database": db}));
        } else {
            eprintln!("using database {}", db.display());
        }
    }
    match cli.command {
        Command::Serve(args) => serve::run(data_dir, args, json),
        Command::Init => init(&data_dir, json),
        Command::Client(cmd) => client::run(&mut open(&data_dir)?, cmd, json),
        Command::User(cmd) => user::run(&mut open(&data_dir)?, cmd, json),
        Command::Group(cmd) => group::run(&mut open(&data_dir)?, cmd, json),
        Command::Apikey(cmd) => apikey::run(&mut open(&data_dir)?, cmd, json),
        Command::Rule(cmd) => rule::run(&mut open(&data_dir)?, cmd, json),
        Command::Keys(cmd) => keys::run(&mut open(&data_dir)?, cmd, json),
        Command::Settings(cmd) => settings::run(&mut open(&data_dir)?, cmd, json),
        Command::Audit(args) => ops::audit(&open(&data_dir)?, args, json),
        Command::Backup(args) => ops::backup(&mut open(&data_dir)?, &data_dir, args, json),
        Command::Restore(args) => ops::restore(&data_dir, args, json),
        Command::Check(args) => ops::check(&data_dir, args, json),
        Command::Healthcheck(_) | Command::Man { .. } => Ok(()),
    }
}

/// Opens the database of an administrative command; a missing one is refused (exit 2) and
/// nothing is created.
fn open(data_dir: &std::path::Path) -> Result<Store, Error> {
    Ok(crate::ops::installation::open_existing(data_dir)?)
}

/// `latchkey init`: the data directory and an empty database, as the first `serve` makes them.
fn init(data_dir: &std::path::Path, json: bool) -> Result<(), Error> {
    use crate::ops::installation::Initialised;
    let (db, created) = match crate::ops::installation::init(data_dir)? {
        Initialised::Created(db) => (db, true),
        Initialised::Existed(db) => (db, false),
    };
    if json {
        print_json(&serde_json::json!({"database": db, "created": created}));
    } else if created {
        out!("created {}", db.display());
    } else {
        out!("{} already exists; nothing changed", db.display());
    }
    Ok(())
}

/// Parses a duration flag: a number with its unit (`90s`, `15m`, `12h`, `30d`, `2w`), in
/// seconds; a bare number is refused (see [`crate::timefmt::parse_duration`]). Ranges are the
/// operations' business.
pub fn parse_seconds(s: &str) -> Result<i64, String> {
    crate::timefmt::parse_duration(s)
}

/// Prints a value as pretty JSON.
fn print_json(value: &serde_json::Value) {
    out!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_else(|_| "null".into())
    );
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    /// Every argument of every command, hidden ones included, says what it is for: `--help` and
    /// the man pages show nothing else about it.
    #[test]
    fn every_argument_has_help_text() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in cmd.get_arguments() {
                if arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("{path} {}", arg.get_id()));
                }
            }
            for sub in cmd.get_subcommands() {
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut cmd = Cli::command();
        cmd.build();
        let mut missing = Vec::new();
        walk(&cmd, "latchkey", &mut missing);
        assert!(
            missing.is_empty(),
            "arguments without help text: {missing:#?}"
        );
    }

    /// The CLI reference (`docs/cli.md`) names every command and every long option of it, so
    /// it cannot fall behind the binary: a new command or flag fails this test until it is
    /// documented. (The man pages are rendered from the definition itself.)
    #[test]
    fn the_cli_reference_names_every_command_and_option() {
        const REFERENCE: &str = include_str!("../../docs/cli.md");
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            if cmd.is_hide_set() || cmd.get_name() == "help" {
                return;
            }
            if cmd.get_subcommands().next().is_none() && !REFERENCE.contains(path) {
                missing.push(path.to_string());
            }
            for arg in cmd.get_arguments() {
                let Some(long) = arg.get_long() else { continue };
                if arg.is_hide_set() || ["help", "version", "data-dir"].contains(&long) {
                    continue;
                }
                if !REFERENCE.contains(&format!("--{long}")) {
                    missing.push(format!("{path} --{long}"));
                }
            }
            for sub in cmd.get_subcommands() {
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut cmd = Cli::command();
        cmd.build();
        let mut missing = Vec::new();
        walk(&cmd, "latchkey", &mut missing);
        assert!(
            missing.is_empty(),
            "docs/cli.md does not mention: {missing:#?}"
        );
    }
}
