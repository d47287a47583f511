//! `reporter-vault`: see `reporter-vault --help`.

use std::process::ExitCode;

fn main() -> ExitCode {
    vault_service::cli::main()
}
