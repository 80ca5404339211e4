//! `--demo`: fills an empty log with a week of realistic activity from an
//! ambient-lighting controller, so a new user sees the product at once.

use actlog_engine::{Log, NewRecord, Severity};
use serde_json::json;

const ROOMS: &[&str] = &[
    "Kitchen",
    "Living Room",
    "Office",
    "Bedroom",
    "Home Theater",
    "Studio",
    "Patio",
];
const DEVICES: &[&str] = &[
    "LED Strip",
    "Light Bar",
    "TV Backlight",
    "Projector Bias Light",
    "Desk Lamp",
    "Ceiling Ring",
];
const SCENES: &[&str] = &[
    "Movie Night",
    "Dinner",
    "Focus",
    "Relax",
    "Bedtime",
    "Morning Coffee",
];
const PEOPLE: &[&str] = &["alice", "bob", "kitchen-tablet", "home-assistant", "carol"];
const IPS: &[&str] = &["192.168.1.20", "192.168.1.34", "192.168.1.51", "10.0.0.7"];

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[(self.next() % xs.len() as u64) as usize]
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn event(rng: &mut Rng) -> NewRecord {
    let roll = rng.below(100);
    let room = rng.pick(ROOMS);
    let device = rng.pick(DEVICES);
    let dev_name = format!("{room} {device}");
    let dev_id = format!("dev_{}", 10 + rng.below(40));
    let person = rng.pick(PEOPLE);
    let mut r;
    if roll < 45 {
        let scene = rng.pick(SCENES);
        let (action, verb) = match rng.below(3) {
            0 => ("entity.updated", "Updated"),
            1 => ("entity.created", "Created"),
            _ => ("entity.deleted", "Deleted"),
        };
        r = NewRecord::new("entity", action, format!("{verb} scene '{scene}'"));
        r.entity_type = Some("scene".into());
        r.entity_id = Some(format!(
            "scn_{}",
            scene.len() + scene.as_bytes()[0] as usize
        ));
        r.entity_name = Some(scene.into());
        r.actor = Some(person.into());
        r.metadata
            .insert("brightness".into(), json!(20 + rng.below(80)));
    } else if roll < 75 {
        let (action, msg, sev) = match rng.below(4) {
            0 | 1 => (
                "device.connected",
                format!("{dev_name} connected"),
                Severity::Info,
            ),
            2 => (
                "device.disconnected",
                format!("{dev_name} dropped off the network"),
                Severity::Warning,
            ),
            _ => (
                "device.error",
                format!("{dev_name} reported a capture error (fps fell to 4)"),
                Severity::Error,
            ),
        };
        r = NewRecord::new("device", action, msg);
        r.severity = sev;
        r.entity_type = Some("device".into());
        r.entity_id = Some(dev_id);
        r.entity_name = Some(dev_name);
        r.metadata.insert("ip".into(), json!(rng.pick(IPS)));
    } else if roll < 92 {
        let ok = rng.below(5) > 0;
        r = if ok {
            let mut r = NewRecord::new(
                "auth",
                "auth.login_succeeded",
                format!("'{person}' signed in to the web UI"),
            );
            r.actor = Some(person.into());
            r
        } else {
            let mut r = NewRecord::new("auth", "auth.login_failed", "Failed web sign-in");
            r.severity = Severity::Warning;
            // As the server's own failure records carry (API.md).
            r.metadata.insert("count".into(), json!(1 + rng.below(3)));
            r
        };
        r.metadata.insert("source".into(), json!(rng.pick(IPS)));
    } else {
        r = NewRecord::new(
            "system",
            "system.settings_changed",
            "Capture frame rate set to 30 fps",
        );
        r.actor = Some(person.into());
        r.metadata.insert("fps".into(), json!(30));
    }
    // Sample data the server writes itself, whatever actor it names.
    r.recorded_by = Some(crate::recorder::RECORDED_BY_SERVER.into());
    r
}

/// Number of demo records.
pub const DEMO_RECORDS: usize = 1500;

/// Appends a week of demo activity if the log has never held a record.
/// Returns how many records were added.
pub fn fill_if_empty(log: &Log) -> Result<usize, actlog_engine::Error> {
    if log.last_id().is_some() {
        return Ok(0);
    }
    let now = actlog_engine::now_us();
    let week = 7 * 86_400_000_000i64;
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let step = week / DEMO_RECORDS as i64;
    let batch: Vec<(i64, NewRecord)> = (0..DEMO_RECORDS)
        .map(|i| {
            let jitter = (rng.below(step as u64 / 2)) as i64;
            (now - week + i as i64 * step + jitter, event(&mut rng))
        })
        .collect();
    for chunk in batch.chunks(500) {
        log.append_at(chunk)?;
    }
    Ok(DEMO_RECORDS)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Demo records are the server's own: whatever actor they name, none
    /// can pass for a key's.
    #[test]
    fn demo_records_are_recorded_by_the_server() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = Log::open(dir.path(), actlog_engine::Config::default()).expect("open");
        assert_eq!(fill_if_empty(&log).expect("fill"), DEMO_RECORDS);
        let mut n = 0;
        for r in log.iter(0, actlog_engine::Direction::Forward) {
            let r = r.expect("read");
            assert_eq!(
                r.recorded_by.as_deref(),
                Some(crate::recorder::RECORDED_BY_SERVER)
            );
            n += 1;
        }
        assert_eq!(n, DEMO_RECORDS);
        assert_eq!(fill_if_empty(&log).expect("not empty"), 0);
    }
}
