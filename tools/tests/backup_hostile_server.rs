//! `actlog-inspect backup --url` against a hostile server: a listing that
//! names files outside the backup directory (`../x`, an absolute path) is
//! refused with exit 1 and nothing is written outside `--to`. The server is
//! a small stub on loopback that answers every request the way an attacker
//! would.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::thread;

const BIN: &str = env!("CARGO_BIN_EXE_actlog-inspect");

/// Serves `listing` for `GET /api/v1/backup` and fixed bytes for anything
/// else, for at most `requests` requests; returns the base URL.
fn hostile_server(listing: String, requests: usize) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let addr = listener.local_addr().expect("address");
    thread::spawn(move || {
        for stream in listener.incoming().take(requests) {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().expect("clone stream"));
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).is_err() {
                continue;
            }
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let body = if request_line.starts_with("GET /api/v1/backup ") {
                listing.clone()
            } else {
                "attacker-controlled bytes\n".to_string()
            };
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    format!("http://{addr}")
}

fn backup_from(url: &str, to: &Path) -> (i32, String) {
    let out = Command::new(BIN)
        .args(["backup", "--url", url, "--to"])
        .arg(to)
        .args(["--token", "whatever"])
        .env_remove("ACTLOG_TOKEN")
        .output()
        .expect("run actlog-inspect");
    (
        out.status.code().expect("exited, not killed"),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn names_outside_the_backup_directory_are_refused() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let outside = tmp.path().join("pwned_by_backup.txt");
    let absolute = tmp.path().join("abs_pwned.txt");
    for name in [
        "../pwned_by_backup.txt".to_string(),
        absolute.display().to_string(),
        "sub/seg-00000000000000000001.log".to_string(),
        "notes.txt".to_string(),
    ] {
        let listing = serde_json::json!({
            "files": [
                {"name": "WATERMARK", "len": 26, "immutable": false, "ids": null},
                {"name": name, "len": 26, "immutable": false, "ids": null},
            ]
        })
        .to_string();
        let url = hostile_server(listing, 8);
        let to = tmp.path().join("bk");
        let (code, stderr) = backup_from(&url, &to);
        assert_eq!(code, 1, "{name}: {stderr}");
        assert!(
            stderr.contains("not part of a data directory"),
            "{name}: {stderr}"
        );
        assert!(!outside.exists(), "{name} wrote outside --to");
        assert!(!absolute.exists(), "{name} wrote outside --to");
        assert!(
            !to.join("sub").exists() && !to.join("notes.txt").exists(),
            "{name} was written"
        );
    }
}
