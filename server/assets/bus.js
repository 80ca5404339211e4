// The live bus's message types, exactly as the server's allowlist
// (server/src/bus.rs MESSAGE_TYPES). A test checks the two agree.
export const BUS_MESSAGE_TYPES = ["activity_logged", "activity_cleared", "settings_changed"];
