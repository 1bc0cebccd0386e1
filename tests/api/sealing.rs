//! Files latchkey creates are owner-only, and looser ones it finds are tightened.

use crate::helpers::{PASSWORD, TestApp, on_postgres, spawn_app_with};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(10);

fn sqlite_path(app: &TestApp) -> Option<PathBuf> {
    app.database_url()
        .strip_prefix("sqlite://")
        .map(PathBuf::from)
}

/// The permission bits, in octal as `ls` and `chmod` show them.
#[cfg(unix)]
fn mode(path: &Path) -> String {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode();
    format!("{:o}", mode & 0o777)
}

async fn wait_for_eml(dir: &Path) -> PathBuf {
    let started = Instant::now();
    loop {
        let found = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|e| e == "eml"));
        if let Some(file) = found.filter(|f| std::fs::metadata(f).is_ok_and(|m| m.len() > 0)) {
            return file;
        }
        assert!(started.elapsed() < WAIT, "no .eml file written");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[cfg(unix)]
#[tokio::test]
async fn the_database_its_wal_and_shm_the_key_file_and_eml_files_are_owner_only() {
    let mail_dir = tempfile::tempdir().unwrap();
    let app = spawn_app_with(&["--mail-dir", &mail_dir.path().display().to_string()]).await;
    app.register("ada@example.com", PASSWORD).await;

    let eml = wait_for_eml(mail_dir.path()).await;
    assert_eq!(mode(&eml), "600", ".eml file");
    assert_eq!(
        mode(&app.dir.path().join("latchkey.key")),
        "600",
        "key file"
    );
    if let Some(path) = sqlite_path(&app) {
        for suffix in ["", "-wal", "-shm"] {
            let file = PathBuf::from(format!("{}{suffix}", path.display()));
            assert_eq!(mode(&file), "600", "{}", file.display());
        }
    }
}

#[cfg(unix)]
#[tokio::test]
async fn a_key_file_and_database_readable_by_others_are_tightened_at_start() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("loose.key");
    std::fs::write(&key_file, "ab".repeat(32)).unwrap();
    let db = dir.path().join("loose.db");
    std::fs::write(&db, "").unwrap();
    for file in [&key_file, &db] {
        std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let key_arg = key_file.display().to_string();
    let mut args = vec!["--secret-key-file", key_arg.as_str()];
    let db_url = format!("sqlite://{}", db.display());
    if !on_postgres() {
        args.extend(["--database-url", db_url.as_str()]);
    }

    let app = spawn_app_with(&args).await;

    assert_eq!(mode(&key_file), "600", "key file");
    if !on_postgres() {
        for suffix in ["", "-wal", "-shm"] {
            let file = PathBuf::from(format!("{}{suffix}", db.display()));
            assert_eq!(mode(&file), "600", "{}", file.display());
        }
    }
    drop(app);
}
