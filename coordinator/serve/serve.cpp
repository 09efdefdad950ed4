#include "coordinator/serve/serve.h"

#include <pthread.h>
#include <signal.h>

#include <cstdio>
#include <mutex>
#include <thread>

#include <fmt/format.h>
#include <httplib.h>
#include <CLI/CLI.hpp>

#include "coordinator/serve/api.h"
#include "coordinator/serve/assets.h"
#include "coordinator/serve/safety.h"
#include "core/registry.h"
#include "core/types.h"

namespace seedgrid::serve {

namespace {

constexpr const char* kTokenCookie = "seedgrid_token";

// The token a request carries: Authorization: Bearer, the cookie the page got, or ?token=.
std::string RequestToken(const httplib::Request& req) {
  const std::string auth = req.get_header_value("Authorization");
  if (auth.rfind("Bearer ", 0) == 0) return auth.substr(7);
  const std::string cookies = req.get_header_value("Cookie");
  const std::string key = std::string(kTokenCookie) + "=";
  for (size_t s = 0; s < cookies.size();) {
    size_t e = cookies.find(';', s);
    if (e == std::string::npos) e = cookies.size();
    std::string c = cookies.substr(s, e - s);
    c.erase(0, c.find_first_not_of(' '));
    if (c.rfind(key, 0) == 0) return c.substr(key.size());
    s = e + 1;
  }
  return req.has_param("token") ? req.get_param_value("token") : "";
}

void Send(httplib::Response& res, const Answer& a) {
  res.status = a.status;
  res.set_content(a.body, a.content_type.c_str());
}

void AddRoutes(httplib::Server& svr, Api& api, std::mutex& mu) {
  auto asset = [](const Asset& a) {
    return [&a](const httplib::Request&, httplib::Response& res) {
      res.set_content(std::string(a.body), a.content_type);
      if (std::string_view(a.content_type).starts_with("text/html")) {
        res.set_header("Content-Security-Policy",
                       "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; "
                       "base-uri 'none'; form-action 'none'");
      }
    };
  };
  svr.Get("/", asset(IndexHtml()));
  svr.Get("/app.js", asset(AppJs()));
  svr.Get("/style.css", asset(StyleCss()));
  svr.Get(R"(/(api|files)/.*)", [&](const httplib::Request& req, httplib::Response& res) {
    std::map<std::string, std::string> query(req.params.begin(), req.params.end());
    Answer a;
    {
      std::lock_guard<std::mutex> lock(mu);
      a = api.Get(req.path, query);
    }
    if (req.path.rfind("/files/", 0) == 0) {
      // A file is data, never a page of ours: scripts in an HTML or SVG file do not run.
      res.set_header(
          "Content-Security-Policy",
          "sandbox; default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'");
    }
    Send(res, a);
  });
  // Read-only: every other method is refused, whatever the path.
  auto refuse = [](const httplib::Request&, httplib::Response& res) {
    Send(res, ErrorAnswer(405, "seedgrid serve is read-only"));
  };
  svr.Post(".*", refuse);
  svr.Put(".*", refuse);
  svr.Patch(".*", refuse);
  svr.Delete(".*", refuse);
  svr.Options(".*", refuse);
}

}  // namespace

void AddServeFlags(CLI::App& cmd, ServeOptions* o) {
  cmd.add_option("--registry", o->registry, "Registry file (default runs/registry.sqlite)");
  cmd.add_option("--port", o->port, "TCP port (default 8765; 0: any free port)")
      ->check(CLI::Range(0, 65535));
  cmd.add_option("--bind", o->bind,
                 "Address to listen on (default 127.0.0.1; any other requires a token)");
  cmd.add_option("--token", o->token,
                 "Token every request must carry (default off loopback: generated, printed)");
}

// Opens the registry, prints where to look, and serves until a signal. The signal handling
// is a thread blocked in sigwait that stops the server (no work in a signal handler).
int RunServe(const ServeOptions& opts, const std::string& registry_path) {
  Registry reg(registry_path, Registry::Mode::kReadOnly);
  std::string token = opts.token;
  if (token.empty() && !IsLoopbackBind(opts.bind)) token = GenerateToken();

  SummaryCache cache;
  Refresher refresher(registry_path, cache, Api::kThroughputWindow);
  Api api(reg, {}, &cache);
  std::mutex mu;
  httplib::Server svr;
  svr.set_tcp_nodelay(true);  // small answers: no 40 ms wait for a delayed ACK
  svr.set_default_headers({{"X-Content-Type-Options", "nosniff"},
                           {"Cache-Control", "no-store"},
                           {"Referrer-Policy", "no-referrer"},
                           {"X-Frame-Options", "DENY"}});
  svr.set_pre_routing_handler([&](const httplib::Request& req, httplib::Response& res) {
    if (token.empty()) return httplib::Server::HandlerResponse::Unhandled;
    if (!TokenEquals(RequestToken(req), token)) {
      Send(res, ErrorAnswer(401,
                            "this server needs its token: open the URL `seedgrid serve` "
                            "printed (…/?token=…) or send Authorization: Bearer <token>"));
      return httplib::Server::HandlerResponse::Handled;
    }
    if (req.has_param("token")) {
      res.set_header("Set-Cookie",
                     fmt::format("{}={}; HttpOnly; SameSite=Strict; Path=/", kTokenCookie, token));
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });
  AddRoutes(svr, api, mu);

  int port = opts.port;
  if (port == 0) {
    port = svr.bind_to_any_port(opts.bind);
    if (port < 0) throw UsageError(fmt::format("cannot listen on {}", opts.bind));
  } else if (!svr.bind_to_port(opts.bind, port)) {
    throw UsageError(fmt::format("cannot listen on {}:{} (in use? try --port)", opts.bind, port));
  }

  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  std::thread stopper([&] {
    int sig = 0;
    sigwait(&sigs, &sig);
    svr.stop();
  });

  const std::string host =
      opts.bind.find(':') != std::string::npos ? "[" + opts.bind + "]" : opts.bind;
  fmt::print("seedgrid serve: http://{}:{}/{} (registry {}, read-only; Ctrl-C stops)\n", host, port,
             token.empty() ? "" : "?token=" + token, registry_path);
  std::fflush(stdout);
  const bool ok = svr.listen_after_bind();
  pthread_kill(stopper.native_handle(), SIGTERM);
  stopper.join();
  return ok ? 0 : exit_code::kInternal;
}

}  // namespace seedgrid::serve
