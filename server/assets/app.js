// Placeholder until the web UI issue: shows that the server is up.
const status = document.getElementById("status");
fetch("/healthz")
  .then((r) => r.json())
  .then((h) => { status.textContent = `Server status: ${h.status}. The web UI is being built; use the HTTP API (see /api/v1/openapi.json).`; })
  .catch(() => { status.textContent = "The server did not answer."; });
