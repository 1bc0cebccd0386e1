//! Parse the command line, start logging, dispatch.

use clap::{CommandFactory, FromArgMatches};
use latchkey::cli::{self, Cli};
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let command = match latchkey::config::file::apply(Cli::command(), &args) {
        Ok(command) => command,
        Err(error) => return fail(&error),
    };
    // clap prints its whole message (usage and hint included, coloured only on a terminal) and
    // exits 2 on a usage error, 0 for --help and --version.
    let matches = command.get_matches_from(args);
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|error| error.exit());
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => return fail(&format!("cannot start the runtime: {error}")),
    };
    match runtime.block_on(cli::run(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        // A reader that went away (`latchkey openapi | head`) took all it wanted.
        Err(error) if cli::is_broken_pipe(&error) => ExitCode::SUCCESS,
        Err(error) => fail(&format!("{error:#}")),
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("latchkey: {message}");
    ExitCode::from(2)
}
