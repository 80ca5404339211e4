//! The deterministic activity-event workload: the audit log of a LED
//! ambient-lighting controller, as a stream of events a client would POST,
//! each with an explicit, strictly increasing `ts` (µs since the epoch).
//!
//! The stream is a pure function of [`Options`] (count, seed, start, span):
//! the only randomness is a [`ChaCha8Rng`] seeded with `seed`, whose output
//! the `rand_chacha` crate documents as stable across platforms and
//! versions, and nothing iterates a hash-ordered container. So every
//! checkout, every machine and every benchmark run sees the same events.
//!
//! The mix, by design (the sample's shares are printed by the `gen_events`
//! binary with `--stats`):
//!
//! | what | distribution |
//! |---|---|
//! | category | entity 50 %, device 25 %, auth 15 %, system 10 % |
//! | entities | 5000 ids over 8 types, Zipf–Mandelbrot popularity `1/(rank+4)`, a stable human name per id |
//! | actors | 20 human / integration labels with Zipf popularity (`s = 1.1`), plus `system` (automation, devices, most system events) and `unknown` (failed sign-ins and rejected keys) |
//! | severity | ~85 % info, ~12 % warning, ~3 % error |
//! | message | 40–160 characters from the entity name, the action and varied words |
//! | metadata | 0–4 small keys (`ip`, `fps`, `brightness`, `previous_state`, `reason`, …) |
//! | time | spread over `span_days` with a diurnal density (a sine warp of amplitude 0.6) |
//!
//! The entity set is drawn from the seed first, so for one seed the same
//! 5000 entities (ids, names, popularity) appear at every count.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;

use actlog_engine::{NewRecord, Severity};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use serde_json::{Map, Value};

/// 2026-01-01T00:00:00Z in µs: the default first possible timestamp.
pub const DEFAULT_START_TS: i64 = 1_767_225_600 * 1_000_000;
/// One day in µs.
const DAY_US: f64 = 86_400.0 * 1_000_000.0;
/// Entities in the workload.
pub const ENTITIES: usize = 5000;

/// What to generate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Options {
    /// Number of events.
    pub count: u64,
    /// Random seed.
    pub seed: u64,
    /// First possible timestamp, µs since the epoch.
    pub start_ts: i64,
    /// Timestamps are spread over this many days (> 0).
    pub span_days: f64,
}

impl Options {
    /// `count` events of `seed`, from [`DEFAULT_START_TS`] over 30 days.
    pub fn new(count: u64, seed: u64) -> Self {
        Options {
            count,
            seed,
            start_ts: DEFAULT_START_TS,
            span_days: 30.0,
        }
    }
}

/// One generated event: the fields a client would POST, plus its `ts`.
/// Serialized (field order as declared) it is one line of the events file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    /// µs since the epoch; strictly increasing along the stream.
    pub ts: i64,
    /// `entity`, `device`, `auth` or `system`.
    pub category: &'static str,
    /// e.g. `entity.updated`.
    pub action: &'static str,
    /// Who did it.
    pub actor: &'static str,
    /// Entity type, when the event is about an entity.
    pub entity_type: Option<&'static str>,
    /// Entity id, when the event is about an entity.
    pub entity_id: Option<String>,
    /// Entity name, when the event is about an entity.
    pub entity_name: Option<String>,
    /// Human-readable text, 40–160 characters.
    pub message: String,
    /// `info`, `warning` or `error`.
    pub severity: &'static str,
    /// Small structured details.
    pub metadata: Map<String, Value>,
}

impl Event {
    /// The event as the engine stores it: `(ts, record)`.
    pub fn into_record(self) -> (i64, NewRecord) {
        let severity = match self.severity {
            "warning" => Severity::Warning,
            "error" => Severity::Error,
            _ => Severity::Info,
        };
        let record = NewRecord {
            category: self.category.to_string(),
            action: self.action.to_string(),
            actor: Some(self.actor.to_string()),
            entity_type: self.entity_type.map(str::to_string),
            entity_id: self.entity_id,
            entity_name: self.entity_name,
            message: self.message,
            severity,
            metadata: self.metadata,
            occurred_at: None,
            recorded_by: Some(crate::workload::WORKLOAD_KEY.to_string()),
        };
        (self.ts, record)
    }
}

// ---------------------------------------------------------------------------
// Vocabulary
// ---------------------------------------------------------------------------

const ROOMS: &[&str] = &[
    "Kitchen",
    "Living Room",
    "Bedroom",
    "Office",
    "Hallway",
    "Garage",
    "Basement",
    "Patio",
    "Studio",
    "Den",
    "Nursery",
    "Bathroom",
    "Dining Room",
    "Game Room",
    "Home Theater",
    "Loft",
    "Porch",
    "Attic",
    "Guest Room",
    "Workshop",
    "Gym",
    "Library",
    "Stairs",
    "Balcony",
    "Master Suite",
    "Kids Room",
    "Media Room",
    "Laundry",
    "Entryway",
    "Sunroom",
];

/// One entity type: name, id prefix, share of the entity ids, the nouns
/// its names are made of, its label in messages, and how often its names
/// get a room prefix.
#[derive(Debug)]
struct EntityType {
    name: &'static str,
    prefix: &'static str,
    share: f64,
    nouns: &'static [&'static str],
    label: &'static str,
    room_share: f64,
}

const ENTITY_TYPES: &[EntityType] = &[
    EntityType {
        name: "device",
        prefix: "dev",
        share: 0.18,
        nouns: &[
            "LED Strip",
            "Light Bar",
            "Wall Panel",
            "Bulb Array",
            "Controller",
            "LED Matrix",
            "Ceiling Ring",
            "Desk Lamp",
            "TV Backlight",
            "Projector Bias Light",
            "Shelf Glow",
            "Cove Light",
            "Floor Lamp",
            "Cabinet Strip",
            "Monitor Backlight",
            "Window Frame",
        ],
        label: "device",
        room_share: 1.0,
    },
    EntityType {
        name: "capture_target",
        prefix: "cap",
        share: 0.10,
        nouns: &[
            "Monitor 1",
            "Monitor 2",
            "TV HDMI 1",
            "TV HDMI 2",
            "Projector Input",
            "Game Console",
            "Desktop Display",
            "Browser Window",
            "Media Player",
            "Capture Card",
            "Laptop Screen",
            "Ultrawide",
        ],
        label: "capture target",
        room_share: 0.6,
    },
    EntityType {
        name: "color_profile",
        prefix: "prof",
        share: 0.14,
        nouns: &[
            "Warm Evening",
            "Cinema",
            "Daylight 6500K",
            "Candlelight",
            "Cool Focus",
            "Vivid Gaming",
            "Night Shift",
            "Sunset Amber",
            "Neutral White",
            "Gallery White",
            "Deep Blue",
            "Soft Pastel",
        ],
        label: "color profile",
        room_share: 0.3,
    },
    EntityType {
        name: "scene",
        prefix: "scn",
        share: 0.20,
        nouns: &[
            "Movie Night",
            "Dinner",
            "Focus",
            "Party",
            "Sunrise",
            "Relax",
            "Reading",
            "Game Time",
            "Bedtime",
            "Morning Coffee",
            "Double Feature",
            "Holiday",
            "Storm Watch",
            "Welcome Home",
        ],
        label: "scene",
        room_share: 0.5,
    },
    EntityType {
        name: "automation",
        prefix: "auto",
        share: 0.14,
        nouns: &[
            "Sunset On",
            "Motion at Night",
            "Away Mode",
            "Wake Up",
            "Lights Out",
            "Door Open",
            "TV On Sync",
            "Doorbell Flash",
            "Vacation Random",
            "Sunrise Fade",
            "Quiet Hours",
            "Arrival",
        ],
        label: "automation",
        room_share: 0.5,
    },
    EntityType {
        name: "pattern",
        prefix: "pat",
        share: 0.12,
        nouns: &[
            "Rainbow Wave",
            "Breathing Blue",
            "Fire Flicker",
            "Aurora",
            "Ocean",
            "Meteor Rain",
            "Twinkle",
            "Color Chase",
            "Lava Lamp",
            "Police",
            "Candy Cane",
            "Heartbeat",
        ],
        label: "pattern",
        room_share: 0.3,
    },
    EntityType {
        name: "output_group",
        prefix: "grp",
        share: 0.08,
        nouns: &[
            "Zone",
            "All Lights",
            "Upstairs",
            "Downstairs",
            "Accent Group",
            "Ambilight Set",
            "Outdoor",
            "Ceiling Group",
        ],
        label: "output group",
        room_share: 0.8,
    },
    EntityType {
        name: "api_key_label",
        prefix: "key",
        share: 0.04,
        nouns: &[
            "Home Assistant",
            "Node-RED",
            "Phone Shortcut",
            "Stream Deck",
            "Voice Assistant",
            "Backup Script",
            "Dashboard Tablet",
            "CI Test",
            "OBS Plugin",
            "Grafana",
        ],
        label: "API key",
        room_share: 0.0,
    },
];

const ACTORS: &[&str] = &[
    "admin",
    "alice",
    "home-assistant",
    "bob",
    "mobile-app",
    "carol",
    "node-red",
    "living-room-tablet",
    "dave",
    "kitchen-display",
    "stream-deck",
    "erin",
    "voice-assistant",
    "frank",
    "backup-script",
    "grace",
    "obs-plugin",
    "heidi",
    "guest",
    "ivan",
];

const PROTOCOLS: &[&str] = &["wled", "adalight", "ddp", "e131", "artnet", "hue", "tpm2"];
const FIRMWARE: &[&str] = &["0.14.4", "0.15.0", "0.15.1", "2.1.0", "2.3.2", "1.8.7"];
const UPDATED_FIELDS: &[&str] = &[
    "brightness",
    "color",
    "speed",
    "palette",
    "led_count",
    "name",
    "schedule",
    "fps",
    "gamma",
    "segments",
    "transition",
    "target",
    "enabled",
];
const UPDATE_VERBS: &[&str] = &[
    "updated",
    "changed",
    "adjusted",
    "edited",
    "modified",
    "tweaked",
    "reconfigured",
];
const CREATE_VERBS: &[&str] = &["created", "added", "set up", "registered", "defined"];
const DELETE_VERBS: &[&str] = &["deleted", "removed", "discarded", "dropped"];
const DISCONNECT_REASONS: &[&str] = &[
    "timeout",
    "network_error",
    "shutdown",
    "wifi_roam",
    "power_loss",
    "reboot",
];
const HEALTH_STATES: &[&str] = &[
    "healthy",
    "degraded",
    "unresponsive",
    "overheating",
    "low_fps",
    "recovering",
];
const LOGIN_FAIL_REASONS: &[&str] = &[
    "bad_password",
    "unknown_user",
    "rate_limited",
    "expired_session",
    "mfa_failed",
];
const KEY_REJECT_REASONS: &[&str] = &[
    "revoked",
    "expired",
    "malformed",
    "unknown_key",
    "insufficient_scope",
];
/// A setting and the values it takes (numbers and strings, as JSON).
const SETTINGS: &[(&str, &[SettingValue])] = &[
    (
        "capture.fps",
        &[
            SettingValue::N(30),
            SettingValue::N(60),
            SettingValue::N(120),
        ],
    ),
    (
        "capture.smoothing",
        &[
            SettingValue::N(0),
            SettingValue::N(2),
            SettingValue::N(4),
            SettingValue::N(8),
        ],
    ),
    (
        "brightness.limit",
        &[
            SettingValue::N(60),
            SettingValue::N(80),
            SettingValue::N(100),
        ],
    ),
    (
        "server.port",
        &[SettingValue::N(8080), SettingValue::N(8443)],
    ),
    (
        "activity.retention_days",
        &[
            SettingValue::N(30),
            SettingValue::N(90),
            SettingValue::N(365),
        ],
    ),
    (
        "discovery.enabled",
        &[SettingValue::S("true"), SettingValue::S("false")],
    ),
    (
        "ui.theme",
        &[
            SettingValue::S("dark"),
            SettingValue::S("light"),
            SettingValue::S("system"),
        ],
    ),
    (
        "power.limit_ma",
        &[
            SettingValue::N(2000),
            SettingValue::N(4000),
            SettingValue::N(8000),
        ],
    ),
];
const CAPTURE_STOP_REASONS: &[&str] = &["user", "target_lost", "idle", "shutdown", "error"];
const SHUTDOWN_REASONS: &[&str] = &["signal", "update", "restart", "user_request"];
const CLIENT_KINDS: &[&str] = &["web UI", "mobile app", "REST API", "CLI", "integration"];
const NOTES: &[&str] = &[
    "",
    "",
    "",
    "",
    " (no visible change)",
    " after review",
    " via quick settings",
    " from the dashboard",
    " during calibration",
    " to match the evening mood",
    " for the weekend",
    " to reduce flicker",
    " ahead of the game stream",
    " per schedule",
    " after a firmware update",
    " to save power",
    " on request",
    " for the guests",
];
const QUALIFIERS: &[&str] = &[
    "Soft", "Bright", "Custom", "Classic", "Warm", "Cool", "Subtle", "Intense", "Slow", "Fast",
    "Alt", "Main", "Left", "Right", "Upper", "Lower", "Mini", "Spare",
];

const CATEGORIES: &[(&str, f64)] = &[
    ("entity", 0.50),
    ("device", 0.25),
    ("auth", 0.15),
    ("system", 0.10),
];
const ENTITY_ACTIONS: &[(&str, f64)] = &[
    ("entity.created", 0.12),
    ("entity.updated", 0.78),
    ("entity.deleted", 0.10),
];
const DEVICE_ACTIONS: &[(&str, f64)] = &[
    ("device.connected", 0.30),
    ("device.disconnected", 0.30),
    ("device.health_changed", 0.25),
    ("device.discovered", 0.10),
    ("device.lost", 0.05),
];
const AUTH_ACTIONS: &[(&str, f64)] = &[
    ("auth.login_succeeded", 0.72),
    ("auth.login_failed", 0.20),
    ("auth.key_rejected", 0.08),
];
const SYSTEM_ACTIONS: &[(&str, f64)] = &[
    ("system.capture_started", 0.34),
    ("system.capture_stopped", 0.34),
    ("system.settings_changed", 0.22),
    ("system.server_started", 0.04),
    ("system.server_shutting_down", 0.04),
    ("system.activity_cleared", 0.02),
];

const ENTITY_ZIPF_S: f64 = 1.0;
/// Zipf–Mandelbrot offset: an entity's weight is `1/(rank + q)^s`.
const ENTITY_ZIPF_Q: f64 = 4.0;
const ACTOR_ZIPF_S: f64 = 1.1;
/// Amplitude of the diurnal warp of the timestamps.
const DIURNAL_AMPLITUDE: f64 = 0.6;

#[derive(Debug, Clone, Copy)]
enum SettingValue {
    N(i64),
    S(&'static str),
}

impl SettingValue {
    fn json(self) -> Value {
        match self {
            SettingValue::N(n) => Value::from(n),
            SettingValue::S(s) => Value::from(s),
        }
    }

    fn text(self) -> String {
        match self {
            SettingValue::N(n) => n.to_string(),
            SettingValue::S(s) => s.to_string(),
        }
    }
}

/// Weighted choice over cumulative weights, by binary search.
struct Picker<T> {
    items: Vec<T>,
    cumulative: Vec<f64>,
}

impl<T: Clone> Picker<T> {
    fn new(pairs: impl IntoIterator<Item = (T, f64)>) -> Self {
        let mut items = Vec::new();
        let mut cumulative = Vec::new();
        let mut acc = 0.0;
        for (item, weight) in pairs {
            acc += weight;
            items.push(item);
            cumulative.push(acc);
        }
        assert!(!items.is_empty(), "a picker needs at least one item");
        Picker { items, cumulative }
    }

    /// The item whose cumulative weight first exceeds `r` (in `[0, 1)`) of
    /// the total.
    fn pick(&self, r: f64) -> T {
        let total = self.cumulative[self.cumulative.len() - 1];
        let at = r * total;
        let i = self.cumulative.partition_point(|c| *c <= at);
        self.items[i.min(self.items.len() - 1)].clone()
    }
}

/// One entity of the workload.
#[derive(Debug, Clone)]
struct Entity {
    kind: &'static EntityType,
    id: String,
    name: String,
}

/// The stream of events for one [`Options`]; an [`Iterator`] of [`Event`]s.
pub struct Generator {
    rng: ChaCha8Rng,
    all_entities: Picker<usize>,
    devices: Picker<usize>,
    capture_targets: Picker<usize>,
    entities: Vec<Entity>,
    categories: Picker<&'static str>,
    entity_actions: Picker<&'static str>,
    device_actions: Picker<&'static str>,
    auth_actions: Picker<&'static str>,
    system_actions: Picker<&'static str>,
    actors: Picker<&'static str>,
    next: u64,
    count: u64,
    start: i64,
    step: f64,
    prev_ts: i64,
}

impl Generator {
    /// The generator for `options`. Panics if `span_days` is not positive.
    pub fn new(options: Options) -> Self {
        assert!(
            options.span_days > 0.0 && options.span_days.is_finite(),
            "span_days must be > 0"
        );
        let mut rng = ChaCha8Rng::seed_from_u64(options.seed);
        let entities = build_entities(&mut rng);
        // Zipf weight by (shuffled) position, so names and popularity are
        // unrelated.
        let weight = |rank: usize| 1.0 / (rank as f64 + ENTITY_ZIPF_Q).powf(ENTITY_ZIPF_S);
        let all_entities = Picker::new((0..entities.len()).map(|i| (i, weight(i))));
        let of_type = |name: &str| {
            Picker::new(
                (0..entities.len())
                    .filter(|&i| entities[i].kind.name == name)
                    .map(|i| (i, weight(i))),
            )
        };
        let devices = of_type("device");
        let capture_targets = of_type("capture_target");
        let span = options.span_days * DAY_US;
        Generator {
            rng,
            all_entities,
            devices,
            capture_targets,
            entities,
            categories: Picker::new(CATEGORIES.iter().copied()),
            entity_actions: Picker::new(ENTITY_ACTIONS.iter().copied()),
            device_actions: Picker::new(DEVICE_ACTIONS.iter().copied()),
            auth_actions: Picker::new(AUTH_ACTIONS.iter().copied()),
            system_actions: Picker::new(SYSTEM_ACTIONS.iter().copied()),
            actors: Picker::new(
                ACTORS
                    .iter()
                    .enumerate()
                    .map(|(i, a)| (*a, 1.0 / ((i + 1) as f64).powf(ACTOR_ZIPF_S))),
            ),
            next: 0,
            count: options.count,
            start: options.start_ts,
            step: if options.count == 0 {
                0.0
            } else {
                span / options.count as f64
            },
            prev_ts: options.start_ts - 1,
        }
    }

    fn r(&mut self) -> f64 {
        self.rng.gen::<f64>()
    }

    fn choose<T: Copy>(&mut self, items: &[T]) -> T {
        let i = (self.r() * items.len() as f64) as usize;
        items[i.min(items.len() - 1)]
    }

    fn below(&mut self, n: u32) -> u32 {
        ((self.r() * f64::from(n)) as u32).min(n - 1)
    }

    fn actor(&mut self) -> &'static str {
        let r = self.r();
        self.actors.pick(r)
    }

    fn ip(&mut self) -> String {
        if self.r() < 0.85 {
            format!("192.168.1.{}", 2 + self.below(250))
        } else {
            let third = self.below(8);
            format!("10.0.{third}.{}", 2 + self.below(250))
        }
    }

    /// Stratified jitter plus the diurnal warp, strictly increasing.
    fn ts(&mut self) -> i64 {
        let x = (self.next as f64 + self.r()) * self.step;
        let two_pi = 2.0 * std::f64::consts::PI;
        let warp = DIURNAL_AMPLITUDE * DAY_US / two_pi;
        let w = (x - warp * (two_pi * x / DAY_US).sin()).max(0.0);
        let ts = (self.start + w as i64).max(self.prev_ts + 1);
        self.prev_ts = ts;
        ts
    }

    fn entity(&mut self, from: Which) -> &Entity {
        let r = self.r();
        let i = match from {
            Which::Any => self.all_entities.pick(r),
            Which::Device => self.devices.pick(r),
            Which::CaptureTarget => self.capture_targets.pick(r),
        };
        &self.entities[i]
    }

    fn event(&mut self) -> Event {
        let ts = self.ts();
        let r = self.r();
        let category = self.categories.pick(r);
        let r = self.r();
        let action = match category {
            "entity" => self.entity_actions.pick(r),
            "device" => self.device_actions.pick(r),
            "auth" => self.auth_actions.pick(r),
            _ => self.system_actions.pick(r),
        };
        let mut e = Event {
            ts,
            category,
            action,
            actor: "system",
            entity_type: None,
            entity_id: None,
            entity_name: None,
            message: String::new(),
            severity: "info",
            metadata: Map::new(),
        };
        let r = self.r();
        match category {
            "entity" => self.entity_event(&mut e, r),
            "device" => self.device_event(&mut e, r),
            "auth" => self.auth_event(&mut e),
            _ => self.system_event(&mut e, r),
        }
        if e.message.chars().count() < 40 {
            e.message.push_str(" (recorded by the activity service)");
        }
        if e.message.chars().count() > 160 {
            let mut cut: String = e.message.chars().take(157).collect();
            cut.push_str("...");
            e.message = cut;
        }
        e
    }

    fn set_entity(&mut self, e: &mut Event, from: Which) -> (&'static str, String) {
        let ent = self.entity(from).clone();
        e.entity_type = Some(ent.kind.name);
        e.entity_id = Some(ent.id);
        e.entity_name = Some(ent.name.clone());
        (ent.kind.label, ent.name)
    }

    fn entity_event(&mut self, e: &mut Event, r: f64) {
        let (label, name) = self.set_entity(e, Which::Any);
        e.actor = if r < 0.15 { "system" } else { self.actor() };
        let who = if e.actor == "system" {
            "Automation engine"
        } else {
            e.actor
        };
        let meta = &mut e.metadata;
        match e.action {
            "entity.updated" => {
                let field = self.choose(UPDATED_FIELDS);
                let verb = self.choose(UPDATE_VERBS);
                let note = self.choose(NOTES);
                meta.insert("fields".into(), field.into());
                let detail = match field {
                    "brightness" => {
                        let (from, to) = (self.below(256), self.below(256));
                        meta.insert("previous".into(), from.into());
                        meta.insert("brightness".into(), to.into());
                        format!("brightness from {from} to {to}")
                    }
                    "fps" => {
                        let fps = self.choose(&[30, 45, 60, 120]);
                        meta.insert("fps".into(), fps.into());
                        format!("frame rate set to {fps} fps")
                    }
                    _ => {
                        let mut d = format!("changed {}", field.replace('_', " "));
                        if self.r() < 0.3 {
                            let state = self.choose(&["enabled", "disabled"]);
                            meta.insert("previous_state".into(), state.into());
                            let _ = write!(d, " (was {state})");
                        }
                        d
                    }
                };
                e.message = format!("{who} {verb} {label} \"{name}\": {detail}{note}");
            }
            "entity.created" => {
                let verb = self.choose(CREATE_VERBS);
                let source = self.choose(CLIENT_KINDS);
                e.message = format!("{who} {verb} new {label} \"{name}\" from the {source}");
                meta.insert("source".into(), source.into());
                if self.r() < 0.5 {
                    let ip = self.ip();
                    e.metadata.insert("ip".into(), ip.into());
                }
            }
            _ => {
                let verb = self.choose(DELETE_VERBS);
                e.message = format!("{who} {verb} {label} \"{name}\"");
                if self.r() < 0.5 {
                    let refs = 1 + self.below(6);
                    let _ = write!(e.message, " and its {refs} references");
                }
                let reason = self.choose(&["user", "cleanup", "replaced", "import"]);
                e.metadata.insert("reason".into(), reason.into());
            }
        }
    }

    fn device_event(&mut self, e: &mut Event, r: f64) {
        let (_, name) = self.set_entity(e, Which::Device);
        e.actor = if r < 0.95 { "system" } else { self.actor() };
        let meta = &mut e.metadata;
        match e.action {
            "device.connected" => {
                let ip = self.ip();
                let protocol = self.choose(PROTOCOLS);
                let leds = self.choose(&[30, 60, 144, 150, 300, 600]);
                e.message =
                    format!("Device \"{name}\" connected at {ip} over {protocol} ({leds} LEDs)");
                meta.insert("ip".into(), ip.into());
                meta.insert("protocol".into(), protocol.into());
                meta.insert("leds".into(), leds.into());
                if self.r() < 0.5 {
                    let fw = self.choose(FIRMWARE);
                    e.metadata.insert("fw".into(), fw.into());
                }
            }
            "device.disconnected" => {
                let reason = self.choose(DISCONNECT_REASONS);
                let minutes = 1 + self.below(600);
                e.message = format!(
                    "Device \"{name}\" disconnected ({}) after {minutes} min online",
                    reason.replace('_', " ")
                );
                meta.insert("reason".into(), reason.into());
                meta.insert("previous_state".into(), "online".into());
                if !matches!(reason, "shutdown" | "reboot") {
                    e.severity = "warning";
                }
            }
            "device.health_changed" => {
                let from = self.choose(HEALTH_STATES);
                let mut to = self.choose(HEALTH_STATES);
                if from == to {
                    to = if from == "healthy" {
                        "degraded"
                    } else {
                        "healthy"
                    };
                }
                let fps = ((5.0 + self.r() * 115.0) * 10.0).round() / 10.0;
                e.message =
                    format!("Health of \"{name}\" changed from {from} to {to} at {fps:.1} fps");
                meta.insert("previous_state".into(), from.into());
                meta.insert("state".into(), to.into());
                meta.insert("fps".into(), fps.into());
                e.severity = match to {
                    "unresponsive" | "overheating" => "error",
                    "healthy" | "recovering" => "info",
                    _ => "warning",
                };
            }
            "device.discovered" => {
                let ip = self.ip();
                let protocol = self.choose(PROTOCOLS);
                e.message =
                    format!("Discovered {protocol} device \"{name}\" at {ip} on the local network");
                meta.insert("ip".into(), ip.into());
                meta.insert("protocol".into(), protocol.into());
            }
            _ => {
                let seconds = 60 * (5 + self.below(120));
                e.message =
                    format!("Lost contact with device \"{name}\"; last seen {seconds} s ago");
                meta.insert("last_seen_s".into(), seconds.into());
                e.severity = "error";
            }
        }
    }

    fn auth_event(&mut self, e: &mut Event) {
        let ip = self.ip();
        let client = self.choose(CLIENT_KINDS);
        match e.action {
            "auth.login_succeeded" => {
                e.actor = self.actor();
                e.message = format!("User {} signed in from {ip} using the {client}", e.actor);
                let method = if e.actor.contains('-') {
                    "api_key"
                } else {
                    "password"
                };
                e.metadata.insert("ip".into(), ip.into());
                e.metadata.insert("method".into(), method.into());
            }
            "auth.login_failed" => {
                e.actor = if self.r() < 0.7 {
                    self.actor()
                } else {
                    "unknown"
                };
                let reason = self.choose(LOGIN_FAIL_REASONS);
                e.message = format!(
                    "Failed sign-in for {} from {ip}: {}",
                    e.actor,
                    reason.replace('_', " ")
                );
                e.metadata.insert("ip".into(), ip.into());
                e.metadata.insert("reason".into(), reason.into());
                if self.r() < 0.3 {
                    let attempt = 2 + self.below(5);
                    e.metadata.insert("attempt".into(), attempt.into());
                }
                e.severity = "warning";
            }
            _ => {
                e.actor = if self.r() < 0.6 {
                    "unknown"
                } else {
                    self.actor()
                };
                let reason = self.choose(KEY_REJECT_REASONS);
                e.message = format!(
                    "Rejected API key presented by {client} from {ip} ({})",
                    reason.replace('_', " ")
                );
                e.metadata.insert("ip".into(), ip.into());
                e.metadata.insert("reason".into(), reason.into());
                e.severity = "warning";
            }
        }
    }

    fn system_event(&mut self, e: &mut Event, r: f64) {
        match e.action {
            "system.capture_started" => {
                let (_, name) = self.set_entity(e, Which::CaptureTarget);
                e.actor = if r < 0.8 { "system" } else { self.actor() };
                let fps = self.choose(&[30, 60, 60, 120]);
                e.message = format!("Screen capture started on \"{name}\" at {fps} fps");
                e.metadata.insert("fps".into(), fps.into());
            }
            "system.capture_stopped" => {
                let (_, name) = self.set_entity(e, Which::CaptureTarget);
                e.actor = if r < 0.8 { "system" } else { self.actor() };
                let reason = self.choose(CAPTURE_STOP_REASONS);
                let frames = self.below(2_000_000);
                e.message = format!(
                    "Screen capture stopped on \"{name}\" ({}) after {frames} frames",
                    reason.replace('_', " ")
                );
                e.metadata.insert("reason".into(), reason.into());
                e.metadata.insert("frames".into(), frames.into());
                e.severity = match reason {
                    "error" => "error",
                    "target_lost" => "warning",
                    _ => "info",
                };
            }
            "system.settings_changed" => {
                e.actor = self.actor();
                let (key, values) = self.choose(SETTINGS);
                let old = self.choose(values);
                let new = self.choose(values);
                e.message = format!(
                    "Setting {key} changed from {} to {} by {}",
                    old.text(),
                    new.text(),
                    e.actor
                );
                e.metadata.insert("key".into(), key.into());
                e.metadata.insert("previous".into(), old.json());
                e.metadata.insert("value".into(), new.json());
            }
            "system.server_started" => {
                let version = format!("2.{}.{}", self.below(4), self.below(10));
                e.message = format!("Server started, version {version} listening on port 8080");
                e.metadata.insert("version".into(), version.into());
                e.metadata.insert("port".into(), 8080.into());
            }
            "system.server_shutting_down" => {
                let reason = self.choose(SHUTDOWN_REASONS);
                e.message = format!(
                    "Server shutting down ({}); flushing state and closing devices",
                    reason.replace('_', " ")
                );
                e.metadata.insert("reason".into(), reason.into());
            }
            _ => {
                e.actor = self.actor();
                let deleted = self.below(50_000);
                e.message = format!(
                    "Activity log cleared by {}, {deleted} entries removed",
                    e.actor
                );
                e.metadata.insert("deleted".into(), deleted.into());
                e.severity = "warning";
            }
        }
    }
}

#[derive(Clone, Copy)]
enum Which {
    Any,
    Device,
    CaptureTarget,
}

impl Iterator for Generator {
    type Item = Event;

    fn next(&mut self) -> Option<Event> {
        if self.next == self.count {
            return None;
        }
        let e = self.event();
        self.next += 1;
        Some(e)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = usize::try_from(self.count - self.next).unwrap_or(usize::MAX);
        (left, Some(left))
    }
}

/// [`ENTITIES`] entities with unique ids, stable names, then shuffled
/// (Fisher–Yates) so that the Zipf rank given by position is unrelated to
/// the name.
fn build_entities(rng: &mut ChaCha8Rng) -> Vec<Entity> {
    let types = Picker::new(ENTITY_TYPES.iter().map(|t| (t, t.share)));
    let mut seen = HashSet::new();
    let mut name_count: HashMap<String, u32> = HashMap::new();
    let mut entities = Vec::with_capacity(ENTITIES);
    let mut r = || rng.gen::<f64>();
    let pick = |r: f64, n: usize| ((r * n as f64) as usize).min(n - 1);
    for _ in 0..ENTITIES {
        let kind: &'static EntityType = types.pick(r());
        let id = loop {
            let hex = (r() * 4_294_967_296.0) as u64;
            let id = format!("{}_{hex:08x}", kind.prefix);
            if seen.insert(id.clone()) {
                break id;
            }
        };
        let mut base = kind.nouns[pick(r(), kind.nouns.len())].to_string();
        if r() < 0.5 {
            base = format!("{} {base}", QUALIFIERS[pick(r(), QUALIFIERS.len())]);
        }
        if r() < kind.room_share {
            base = format!("{} {base}", ROOMS[pick(r(), ROOMS.len())]);
        }
        let k = name_count.entry(base.clone()).or_insert(0);
        *k += 1;
        let name = if *k == 1 { base } else { format!("{base} {k}") };
        entities.push(Entity { kind, id, name });
    }
    for i in (1..entities.len()).rev() {
        let j = pick(r(), i + 1);
        entities.swap(i, j);
    }
    entities
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(count: u64, seed: u64) -> Vec<Event> {
        Generator::new(Options::new(count, seed)).collect()
    }

    #[test]
    fn same_options_give_the_same_stream_and_seeds_differ() {
        let a = events(2000, 42);
        assert_eq!(a, events(2000, 42));
        assert_ne!(a, events(2000, 43));
        // The entity set is drawn first: a shorter run of one seed is not
        // the prefix (timestamps spread differently) but names the same
        // entities.
        let names = |v: &[Event]| {
            v.iter()
                .filter_map(|e| e.entity_id.clone().zip(e.entity_name.clone()))
                .collect::<HashMap<_, _>>()
        };
        let long = names(&a);
        for (id, name) in names(&events(500, 42)) {
            if let Some(n) = long.get(&id) {
                assert_eq!(n, &name, "entity {id} keeps its name");
            }
        }
    }

    #[test]
    fn timestamps_increase_strictly_within_the_span() {
        let o = Options::new(5000, 7);
        let v: Vec<Event> = Generator::new(o).collect();
        assert_eq!(v.len(), 5000);
        for w in v.windows(2) {
            assert!(w[0].ts < w[1].ts, "{} then {}", w[0].ts, w[1].ts);
        }
        let end = o.start_ts + (o.span_days * DAY_US) as i64 + DAY_US as i64;
        assert!(v[0].ts >= o.start_ts && v[v.len() - 1].ts < end);
    }

    #[test]
    fn the_mix_is_as_documented() {
        let v = events(100_000, 42);
        let share =
            |f: &dyn Fn(&Event) -> bool| v.iter().filter(|e| f(e)).count() as f64 / v.len() as f64;
        let near = |got: f64, want: f64, tol: f64| {
            assert!((got - want).abs() < tol, "{got} is not {want} ± {tol}")
        };
        near(share(&|e| e.category == "entity"), 0.50, 0.01);
        near(share(&|e| e.category == "device"), 0.25, 0.01);
        near(share(&|e| e.category == "auth"), 0.15, 0.01);
        near(share(&|e| e.category == "system"), 0.10, 0.01);
        near(share(&|e| e.severity == "info"), 0.85, 0.03);
        near(share(&|e| e.severity == "warning"), 0.12, 0.03);
        near(share(&|e| e.severity == "error"), 0.03, 0.015);
        for e in &v {
            let len = e.message.chars().count();
            assert!((40..=160).contains(&len), "{len}: {}", e.message);
            assert!(e.metadata.len() <= 4, "{:?}", e.metadata);
            assert_eq!(e.entity_id.is_some(), e.entity_type.is_some());
        }
        let ids: HashSet<_> = v.iter().filter_map(|e| e.entity_id.as_ref()).collect();
        assert!(ids.len() > 2000 && ids.len() <= ENTITIES, "{}", ids.len());
        let unknown = share(&|e| e.actor == "unknown");
        assert!(unknown > 0.01 && unknown < 0.1, "{unknown}");
    }

    #[test]
    fn an_event_round_trips_through_its_json_line() {
        for e in events(300, 1) {
            let line = serde_json::to_string(&e).expect("serialize");
            let (ts, record) = crate::workload::parse_event(&line).expect("parse");
            assert_eq!((ts, record), e.clone().into_record());
        }
    }
}
