// Node-RED settings for the benchmark: no editor, no admin API, warnings only.
// Started by bench/run.sh as
//   node node_modules/node-red/red.js --settings settings.js --userDir TMPDIR
// with BENCH_PORT, BENCH_API_KEY and BENCH_SINK_URL set. The flow is read from flows.json beside
// this file; nothing is written to it (there is no editor to deploy from). Node-RED keeps nothing
// on disk per request.
const path = require("path");

module.exports = {
    uiHost: "127.0.0.1",
    uiPort: Number(process.env.BENCH_PORT || 1880),
    flowFile: path.join(__dirname, "flows.json"),
    flowFilePretty: true,
    // No editor and no admin API: only the flow's HTTP endpoints are served.
    httpAdminRoot: false,
    httpNodeRoot: "/",
    diagnostics: { enabled: false, ui: false },
    runtimeState: { enabled: false, ui: false },
    telemetry: { enabled: false, updateNotification: false },
    logging: {
        console: { level: "warn", metrics: false, audit: false },
    },
    // No credentials are used; this only silences the "Encrypted credentials" warning.
    credentialSecret: false,
    functionExternalModules: false,
    exportGlobalContextKeys: false,
};
