// Preloaded into the skills installer by the install tests (NODE_OPTIONS=--require): its own web
// requests (the GitHub API's "is this repository private?", the audit service, telemetry) fail at
// once, so an install from "owner/name#ref" (cloned from a local repository through git's
// url.<base>.insteadOf) never leaves this machine.
globalThis.fetch = async () => {
  throw new TypeError("network disabled by tests/no_network.cjs");
};
