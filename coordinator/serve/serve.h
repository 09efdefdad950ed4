// `seedgrid serve`: a read-only web view of every sweep in a registry, live while they run.
// One process, cpp-httplib's thread pool, one read-only registry connection behind a mutex
// (WAL readers never block the coordinator; on network filesystems the registry's own
// rollback-journal rules apply). The page and its script are compiled into the binary
// (assets/, embedded at build time): nothing is fetched from the network.
//
// Safety (docs/serve.md): binds 127.0.0.1 unless --bind says otherwise; bound anywhere else it
// requires a token (--token, or one generated and printed) on every request; only GET/HEAD;
// files only under a sweep's directory.
#pragma once

#include <string>

namespace CLI {
class App;
}

namespace seedgrid::serve {

struct ServeOptions {
  std::string registry;  // "" : the default registry (runs/registry.sqlite)
  int port = 8765;       // 0: any free port (the one chosen is printed)
  std::string bind = "127.0.0.1";
  std::string token;  // required off loopback; generated when empty there
};

// Adds serve's flags to `cmd`.
void AddServeFlags(CLI::App& cmd, ServeOptions* opts);

// Serves until SIGINT/SIGTERM; returns the exit code. `registry_path` is resolved already.
int RunServe(const ServeOptions& opts, const std::string& registry_path);

}  // namespace seedgrid::serve
