//! `netpool-api-listing RUSTDOC_JSON`: print the public API the JSON describes, one
//! item a line, sorted, blanket impls (`impl<T> From<T> for T`...) left out — what
//! `cargo public-api --omit blanket-impls` prints for it. See `api/update.sh`.

use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    let Some(path) = std::env::args_os().nth(1) else {
        eprintln!("usage: netpool-api-listing RUSTDOC_JSON");
        return ExitCode::from(2);
    };
    let api = match public_api::Builder::from_rustdoc_json(&path)
        .omit_blanket_impls(true)
        .build()
    {
        Ok(api) => api,
        Err(e) => {
            eprintln!("error: reading {}: {e}", path.to_string_lossy());
            return ExitCode::FAILURE;
        }
    };
    let mut out = std::io::stdout().lock();
    for item in api.items() {
        if writeln!(out, "{item}").is_err() {
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}
