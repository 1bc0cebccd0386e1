//! Stamps the commit into `latchkey --version`: `LATCHKEY_COMMIT` when the builder sets it (an
//! export without `.git`), else what git says, else `unknown`.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=LATCHKEY_COMMIT");
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-changed=.git/refs/heads");
    let commit = std::env::var("LATCHKEY_COMMIT")
        .ok()
        .filter(|commit| !commit.is_empty())
        .or_else(|| {
            Command::new("git")
                .args(["rev-parse", "--short=12", "HEAD"])
                .output()
                .ok()
                .filter(|output| output.status.success())
                .and_then(|output| String::from_utf8(output.stdout).ok())
                .map(|commit| commit.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=LATCHKEY_COMMIT={commit}");
}
