//! The web UI's end-to-end tests (`ui-tests/`, node's test runner driving
//! Debian's Chromium through playwright-core) as part of `cargo test`.
//!
//! They fail — never skip — when node, `ui-tests/node_modules` or
//! `/usr/bin/chromium` is missing: `scripts/test` installs what is missing
//! and then runs `cargo test`.

use std::path::Path;
use std::process::Command;

#[test]
fn web_ui_in_headless_chromium() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../ui-tests");
    assert!(
        dir.join("node_modules/playwright-core").is_dir(),
        "ui-tests/node_modules is missing: run `npm ci` in ui-tests (scripts/test does)"
    );
    assert!(
        Path::new("/usr/bin/chromium").exists(),
        "/usr/bin/chromium is missing: run `apt-get install -y chromium` (scripts/test does)"
    );
    let out = Command::new("node")
        .args(["--test", "--test-reporter=spec"])
        .arg("tests/")
        .current_dir(&dir)
        .env("ACTLOG_BIN", env!("CARGO_BIN_EXE_actlog"))
        .output()
        .unwrap_or_else(|e| panic!("cannot run node (install Node.js 20 or later): {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the web UI tests failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    // Print the spec report so a passing run still shows what ran.
    println!("{stdout}");
}
