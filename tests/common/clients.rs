//! Real client libraries in other languages, run against the proxy: finding
//! the interpreter that has the library (`.ci/install-deps` installs them
//! under tests/clients/), and running one of the scripts there with a bounded
//! wait.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use super::bins::redis_required;
use super::process::{kill_and_reap, wait_exit};

/// How long one client script may run: each takes a second or two.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(60);

/// tests/clients/, where the scripts and their installed libraries are.
pub fn clients_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients")
}

/// A Python that has redis-py: `REDIS_PY_PYTHON` if set, else the venv that
/// `.ci/install-deps` makes in tests/clients/python/.venv. `None` (after
/// printing `SKIP: ...`) when there is none; a panic instead when CI is set.
pub fn require_redis_py() -> Option<PathBuf> {
    let found = match std::env::var_os("REDIS_PY_PYTHON") {
        Some(python) => Ok(PathBuf::from(python)),
        None => {
            let python = clients_dir().join("python/.venv/bin/python");
            if python.is_file() {
                Ok(python)
            } else {
                Err(format!(
                    "redis-py not installed ({} missing)",
                    python.display()
                ))
            }
        }
    };
    require("redis-py", found)
}

/// Node.js with ioredis installed in tests/clients/node/node_modules (by
/// `.ci/install-deps`): the `node` to run. `None` (after printing
/// `SKIP: ...`) when either is missing; a panic instead when CI is set.
pub fn require_ioredis() -> Option<PathBuf> {
    let module = clients_dir().join("node/node_modules/ioredis/package.json");
    let found = if module.is_file() {
        find_on_path("node").ok_or_else(|| "node not installed".to_string())
    } else {
        Err(format!(
            "ioredis not installed ({} missing)",
            module.display()
        ))
    };
    require("ioredis", found)
}

fn require(library: &str, found: Result<PathBuf, String>) -> Option<PathBuf> {
    match found {
        Ok(path) => Some(path),
        Err(missing) if redis_required() => panic!(
            "{missing}, and CI is set, so this test fails instead of skipping. \
             `bash .ci/install-deps` installs {library} under tests/clients/."
        ),
        Err(missing) => {
            println!("SKIP: {missing}");
            None
        }
    }
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    let search = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&search)
        .map(|dir| dir.join(name))
        .find(|path| path.is_file())
}

/// Runs `program args...` in tests/clients/ and returns its stdout.
///
/// # Panics
/// When it cannot start, runs past [`SCRIPT_TIMEOUT`] or exits non-zero;
/// the message carries everything it printed.
pub fn run_client_script(program: &Path, args: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let (out_path, err_path) = (dir.path().join("stdout"), dir.path().join("stderr"));
    let mut child = Command::new(program)
        .args(args)
        .current_dir(clients_dir())
        .stdin(Stdio::null())
        .stdout(fs::File::create(&out_path).unwrap())
        .stderr(fs::File::create(&err_path).unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("{} {args:?}: {e}", program.display()));
    let status = wait_exit(&mut child, SCRIPT_TIMEOUT);
    if status.is_none() {
        kill_and_reap(&mut child);
    }
    let stdout = fs::read_to_string(&out_path).unwrap_or_default();
    let stderr = fs::read_to_string(&err_path).unwrap_or_default();
    match status {
        Some(status) if status.success() => stdout,
        Some(status) => panic!(
            "{} {args:?} failed ({status}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
            program.display()
        ),
        None => panic!(
            "{} {args:?} still running after {SCRIPT_TIMEOUT:?}:\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
            program.display()
        ),
    }
}
