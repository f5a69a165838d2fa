//! The AWS emulator as a child process: `scripts/emulator.py` under the project's
//! virtualenv, single-threaded, on a free loopback port.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running emulator; stopped when dropped.
#[derive(Debug)]
pub struct Emulator {
    child: Child,
    url: String,
}

impl Emulator {
    /// Starts the emulator from the repository at `root` (which has `.venv` and `scripts/`),
    /// logging to `log`, and waits until it listens.
    pub fn start(root: &Path, log: &Path) -> Result<Self, String> {
        let python = root.join(".venv/bin/python");
        if !python.exists() {
            return Err(format!(
                "{} is missing; run scripts/emulator-venv first",
                python.display()
            ));
        }
        let port_file =
            std::env::temp_dir().join(format!("pim-emulator-{}.port", uuid::Uuid::new_v4()));
        let log_file = std::fs::File::create(log)
            .map_err(|err| format!("cannot create {}: {err}", log.display()))?;
        let child = Command::new(&python)
            .arg(root.join("scripts/emulator.py"))
            .args(["--port", "0", "--port-file"])
            .arg(&port_file)
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .map_err(|err| format!("cannot start the emulator: {err}"))?;
        let mut emulator = Self { child, url: String::new() };
        emulator.url = wait_for_port(&mut emulator.child, &port_file)?;
        Ok(emulator)
    }

    /// The emulator's base URL.
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_for_port(child: &mut Child, port_file: &PathBuf) -> Result<String, String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("the emulator exited at start ({status}); see its log"));
        }
        if let Ok(port) = std::fs::read_to_string(port_file) {
            let _ = std::fs::remove_file(port_file);
            return Ok(format!("http://127.0.0.1:{}", port.trim()));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err("the emulator did not start within 60 seconds".into())
}

/// The repository root, from this crate's location at build time.
pub fn repository_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("local/ has a parent").to_path_buf()
}
